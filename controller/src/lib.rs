//! Skybroker, the controller: one Open Service Broker API v2.17 endpoint in front of many
//! clouds.
//!
//! # Layout
//! A request goes one way: [`api`] → [`admission`] → store commit → [`engine`] →
//! dispatcher → plugin ([`jobs`]). Modules import only those to their right in that chain
//! and the leaves below; `tests/architecture.rs` checks there is no import circle.
//!
//! - [`api`]: HTTP only: routes and layers (auth, version, request identity, access log),
//!   parsing into typed requests, rendering answers for the client's version.
//! - [`admission`]: a request checked against the catalog and the state map, and decided:
//!   identical repeats, conflicts, operations running, what to commit.
//! - [`core`]: the plain struct of handles the request path is given.
//! - [`engine`]: the status-scanning engine (schedule, scan, apply, pure transitions,
//!   clean-up).
//! - [`jobs`]: the plugin calls the dispatcher runs.
//! - [`catalog`]: offerings, plans, their plugins and parameter checks.
//! - [`error`]: `ApiError`, the one mapping from failures to OSB error responses.
//! - [`locks`]: per-instance locks for read-decide-commit.
//! - [`credentials`]: platform passwords: generated, hashed, checked.
//! - [`replicas`]: following other replicas' changes on a shared store (etcd).
//! - [`schemas`]: compiled parameter schemas.
//! - [`service_manager`]: the Service Manager API (`/v1`): external brokers, platforms,
//!   visibilities, and what they offer and hold.
//! - [`server`]: wiring, start and orderly shutdown.
//! - [`listener`]: the accept loop, with the header deadline slow clients need.
//! - [`metrics`]: the Prometheus metrics and the store wrapper that times commits.
//! - [`admin`]: the metrics listener (`/metrics`, `/healthz`, `/readyz`).
//! - [`admin_cli`]: `skybroker admin`, a command-line client of the Service Manager API.
//! - [`dashboard`]: the operator dashboard on the metrics listener (`/dashboard`).
//! - [`logging`]: human or JSON-lines log output, with the request identity.
//!
//! Architecture invariants: only this crate knows HTTP and OSB JSON; plugin calls run only on
//! the dispatcher's worker threads, never on the async runtime; every change is persisted
//! before it is acknowledged.

#![warn(missing_docs)]

pub mod admin;
pub mod admin_cli;
pub mod admission;
pub mod api;
pub mod catalog;
pub mod core;
pub mod credentials;
pub mod dashboard;
pub mod engine;
pub mod error;
pub mod jobs;
pub mod listener;
pub mod locks;
pub mod logging;
pub mod metrics;
pub mod replicas;
pub mod schemas;
pub mod server;
pub mod service_manager;

pub use server::{
    check_config, ensure_password, load_config, serve, shutdown_signal, start, start_with_store,
    Running,
};
