//! Skybroker, the controller: one Open Service Broker API v2.17 endpoint in front of many
//! clouds.
//!
//! # Layout
//! - [`api`]: the HTTP routes and layers (auth, version, request identity, logging).
//! - [`error`]: `ApiError`, the one mapping from failures to OSB error responses.
//! - [`core`]: the state shared by handlers and engine.
//! - [`lifecycle`]: starting deletions that may halt a running create (D-17) or cascade (D-03).
//! - [`engine`]: the status-scanning engine (schedule, dispatch, apply, clean-up).
//! - [`jobs`]: the plugin calls the dispatcher runs.
//! - [`locks`]: per-instance locks for read-decide-commit.
//! - [`replicas`]: following other replicas' changes on a shared store (etcd).
//! - [`schemas`]: compiled parameter schemas.
//! - [`server`]: wiring, start and orderly shutdown.
//! - [`metrics`]: the Prometheus metrics and the store wrapper that times commits.
//! - [`admin`]: the metrics listener (`/metrics`, `/healthz`, `/readyz`).
//! - [`logging`]: human or JSON-lines log output, with the request identity.
//!
//! Architecture invariants: only this crate knows HTTP and OSB JSON; plugin calls run only on
//! the dispatcher's worker threads, never on the async runtime; every change is persisted
//! before it is acknowledged.

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod core;
pub mod engine;
pub mod error;
pub mod jobs;
pub mod lifecycle;
pub mod locks;
pub mod logging;
pub mod metrics;
pub mod replicas;
pub mod schemas;
pub mod server;

pub use server::{
    check_config, ensure_password, load_config, serve, shutdown_signal, start, start_with_store,
    Running,
};
