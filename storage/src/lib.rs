//! Skybroker's state: the in-memory map of instances, bindings and operations, and the
//! durable stores it is written through to.
//!
//! # Layout
//! - [`model`]: the stored records.
//! - [`store`]: the `Store` trait (revisions, conditional batch commits).
//! - [`memory`], [`embedded`], [`etcd`]: the backends.
//! - [`map`]: the `StateMap` every reader uses.
//! - [`registry`]: the Service Manager's records (external brokers, platforms, visibilities).
//! - `testing`: the conformance suite every backend runs.
//!
//! Architecture invariant: this crate knows nothing about clouds, HTTP or OSB JSON.

#![warn(missing_docs)]

pub mod embedded;
pub mod etcd;
pub mod map;
pub mod memory;
pub mod model;
mod packed;
pub mod registry;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use embedded::EmbeddedStore;
pub use etcd::{EtcdOptions, EtcdStore, MAX_TXN_OPS};
pub use map::{
    Basis, Change, Counts, Dispatchable, OperationBrief, OperationCounts, Read, StateMap, Target,
};
pub use memory::MemoryStore;
pub use model::*;
pub use packed::Sealed;
pub use registry::{
    BrokerCredentials, BrokerTls, Labels, Platform, RegistryKind, RegistryName, RegistryOperation,
    RegistryOperationState, RegistryRecord, ServiceBroker, Visibility,
};
pub use store::{
    Claims, Entry, Expect, PageVisitor, RecordFormat, Revision, Store, StoreError, StoreMember,
    StoreStatus, WatchEvent, Write, LOAD_PAGE,
};
