//! `Core`: the handles the request path is given at start, and nothing else.
//!
//! A plain struct, built once by [`crate::server`] and passed down to the HTTP layer and
//! admission. No module it holds (catalog, state map, locks, engine, metrics) imports it:
//! the engine owns its own handles, so requests flow one way, api → admission → engine.

use std::sync::Arc;

use skybroker_config::Config;
use skybroker_storage::StateMap;

use crate::catalog::Catalogs;
use crate::credentials::{LiveSecrets, PlatformLogins};
use crate::engine::Engine;
use crate::locks::InstanceLocks;
use crate::metrics::Metrics;

/// Everything a request may use.
#[derive(Debug)]
pub struct Core {
    /// The validated configuration (server settings: body limit, credentials, versions).
    pub config: Config,
    /// Plans, plugins, visibilities and parameter checks (the current version).
    pub catalog: Arc<Catalogs>,
    /// The state map over the store.
    pub state: Arc<StateMap>,
    /// Per-instance locks for read-decide-commit.
    pub locks: Arc<InstanceLocks>,
    /// The engine: admitted operations are handed to it.
    pub engine: Arc<Engine>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Platform logins verified so far (Service Manager).
    pub logins: PlatformLogins,
    /// The broker's password and admin tokens as they are now (files are read again).
    pub secrets: Arc<LiveSecrets>,
}
