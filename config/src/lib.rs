//! Skybroker's configuration: one TOML file (or the built-in default) plus environment
//! overrides, parsed once at the edge into typed structs and passed down explicitly.
//!
//! # Layout
//! - [`Config`] and its sections (server, storage, dispatcher, engine, metrics) live here.
//! - [`catalog`]: the OSB offerings and plans, as served.
//! - [`validate`]: the catalog rules `check-config` and `serve` apply.
//!
//! Secrets (the broker password, bearer tokens) are [`Secret`]s: their `Debug` prints
//! `******`, so a `{:?}` of the configuration never leaks them.

#![warn(missing_docs)]

pub mod catalog;
pub mod validate;
pub mod vocabulary;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use catalog::{MaintenanceInfo, Plan, SchemaKind, ServiceOffering};
pub use validate::{validate, validate_services, Problem, Severity};
pub use vocabulary::{BindingId, InstanceId, OperationId, OperationKind, PlanId, ServiceId};

/// The built-in configuration `skybroker serve` uses without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse into a configuration.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or "built-in configuration".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment variable holds a value that does not parse.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is compared or sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OSB HTTP server and its authentication.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where state is persisted.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The worker pool that runs plugin calls.
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
    /// The status-scanning engine.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The metrics and health-probe listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Configured providers by name; an offering's `broker` names one of these, or a built-in
    /// plugin (`sandbox`).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The catalog: service offerings with their plans.
    #[serde(default)]
    pub services: Vec<ServiceOffering>,
}

/// `[providers.<name>]`: one configured provider (a cloud account, a database server...).
///
/// `kind` picks the plugin; the other keys are the plugin's own settings, checked by the
/// plugin at start. The secret is never a plain setting: it comes from the environment
/// variable named by `password_env` or from `password_file` (a mounted secret), resolved once
/// at load into [`ProviderConfig::password`].
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    /// The plugin kind, e.g. `postgres`, `mysql`.
    pub kind: String,
    /// Name of the environment variable holding the secret.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the secret.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The resolved secret (never read from the file itself).
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Everything else, for the plugin.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on (`SKYBROKER_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Basic-auth user name (`SKYBROKER_USERNAME`).
    #[serde(default = "default_username")]
    pub username: String,
    /// Basic-auth password (`SKYBROKER_PASSWORD`); when absent a random one is generated.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password (a mounted Kubernetes secret), read at load.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Opaque bearer tokens accepted besides basic auth (OSB-AUTH-05).
    #[serde(default)]
    pub bearer_tokens: Vec<Secret>,
    /// Bearer tokens of the Service Manager API (`/v1`); none: that API refuses every
    /// request (`SKYBROKER_ADMIN_TOKEN` adds one).
    #[serde(default)]
    pub admin_tokens: Vec<Secret>,
    /// A file of admin tokens, one per line (a mounted Kubernetes secret), besides
    /// `admin_tokens`; read again while the broker runs (`secret_reload_secs`).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Seconds between reads of `password_file` and `admin_token_file`: a rotated secret
    /// takes effect within this long, without a restart, and the old one stops working. 0:
    /// read at start only.
    #[serde(default = "default_secret_reload_secs")]
    pub secret_reload_secs: u64,
    /// Largest accepted request body in bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// Seconds an in-flight request may take to finish at shutdown.
    #[serde(default = "default_drain_secs")]
    pub shutdown_grace_secs: u64,
    /// Seconds a client has to send a request's headers; a slower one is disconnected (a
    /// connection held open by a trickle of header bytes costs a task and a socket).
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body, from when its headers arrived;
    /// a slower one gets 408.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// Answer 400 instead of 412 when `X-Broker-API-Version` is missing (the v2.16 MAY).
    #[serde(default)]
    pub missing_version_is_bad_request: bool,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Which backend keeps the state.
    #[serde(default)]
    pub backend: StorageBackend,
    /// Directory of the embedded store (`SKYBROKER_DATA_DIR`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The etcd cluster, for `backend = "etcd"`.
    #[serde(default)]
    pub etcd: EtcdConfig,
}

/// The `Store` backends (`SKYBROKER_STORAGE`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The embedded durable database in `data_dir` (single node).
    #[default]
    Embedded,
    /// In memory only: nothing survives a restart (tests, demos).
    Memory,
    /// An etcd cluster: durable, shared by several replicas.
    Etcd,
}

impl std::str::FromStr for StorageBackend {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "embedded" => Ok(StorageBackend::Embedded),
            "memory" => Ok(StorageBackend::Memory),
            "etcd" => Ok(StorageBackend::Etcd),
            other => Err(format!(
                "unknown storage backend {other:?} (options are: embedded, memory, etcd)"
            )),
        }
    }
}

/// `[storage.etcd]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs (`SKYBROKER_ETCD_ENDPOINTS`, comma-separated).
    #[serde(default = "default_etcd_endpoints")]
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix (`SKYBROKER_ETCD_PREFIX`).
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    /// etcd user (`SKYBROKER_ETCD_USERNAME`).
    #[serde(default)]
    pub username: Option<String>,
    /// etcd password (`SKYBROKER_ETCD_PASSWORD`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password (a mounted secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed etcd's certificate: turns TLS on.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Seconds before a dead replica's operations are taken over by another.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    /// Deadline of every etcd request, in seconds.
    #[serde(default = "default_etcd_timeout")]
    pub request_timeout_secs: u64,
}

fn default_etcd_endpoints() -> Vec<String> {
    vec!["http://127.0.0.1:2379".to_owned()]
}
fn default_etcd_prefix() -> String {
    "/skybroker/".to_owned()
}
fn default_lease_ttl() -> u64 {
    10
}
fn default_etcd_timeout() -> u64 {
    5
}

/// `[dispatcher]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Worker threads; default 2 × cores, at least 4.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Jobs the channel holds in front of the workers; default 64 × workers.
    #[serde(default)]
    pub queue_capacity: Option<usize>,
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Milliseconds between scans of the in-flight index.
    #[serde(default = "default_scan_ms")]
    pub scan_interval_ms: u64,
    /// First delay between two polls of one operation.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// The longest delay between two polls once backed off.
    #[serde(default = "default_max_poll_ms")]
    pub max_poll_interval_ms: u64,
    /// Deadline for operations whose plan has no `maximum_polling_duration`.
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_secs: u64,
    /// How long a synchronous request waits for its plugin call.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_secs: u64,
    /// How long a synchronous request waits for room in the dispatcher queue (D-11).
    #[serde(default = "default_queue_wait")]
    pub queue_wait_ms: u64,
    /// How long finished operation records are kept (D-08).
    #[serde(default = "default_retention")]
    pub operation_retention_secs: u64,
    /// How often the clean-up of old operation records runs.
    #[serde(default = "default_cleanup")]
    pub cleanup_interval_secs: u64,
    /// Deprovision succeeds when the provider says the instance is already gone.
    #[serde(default = "yes")]
    pub force_delete_unknown_instances: bool,
    /// Unbind succeeds when the provider says the binding is already gone.
    #[serde(default = "yes")]
    pub force_delete_unknown_bindings: bool,
}

/// `[metrics]`: the second listener, for Prometheus (`/metrics`) and the Kubernetes probes
/// (`/healthz`, `/readyz`). It has no authentication, so it is separate from the OSB port and
/// listens on loopback unless told otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether the listener runs at all; `false` also turns the probes off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on (`SKYBROKER_METRICS_LISTEN`).
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_username() -> String {
    "skybroker".to_owned()
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_drain_secs() -> u64 {
    30
}
fn default_secret_reload_secs() -> u64 {
    10
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_body_read_timeout_secs() -> u64 {
    30
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./skybroker-data")
}
fn default_scan_ms() -> u64 {
    100
}
fn default_poll_ms() -> u64 {
    500
}
fn default_max_poll_ms() -> u64 {
    30_000
}
fn default_operation_timeout() -> u64 {
    24 * 3600
}
fn default_sync_timeout() -> u64 {
    50
}
fn default_queue_wait() -> u64 {
    2_000
}
fn default_retention() -> u64 {
    24 * 3600
}
fn default_cleanup() -> u64 {
    60
}
fn yes() -> bool {
    true
}

macro_rules! defaults_from_serde {
    ($($ty:ty),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                // An empty table takes every `#[serde(default = ...)]`, so the defaults are
                // written once, next to the fields.
                toml::from_str("").expect("every field has a default")
            }
        }
    )*};
}
defaults_from_serde!(
    ServerConfig,
    StorageConfig,
    EtcdConfig,
    DispatcherConfig,
    EngineConfig,
    MetricsConfig
);

impl Config {
    /// Parses a TOML configuration; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let error = |message: String| ConfigError::Parse {
            origin: origin.to_owned(),
            message,
        };
        // The catalog's types ignore unknown fields (a remote broker's catalog may carry
        // fields of a later spec version, OSB-GEN-01); in a file an unknown key is a typo,
        // so every ignored path is refused here.
        let mut unknown = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|err| error(err.to_string()))?;
        let config: Config = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|err| error(err.to_string()))?;
        if !unknown.is_empty() {
            return Err(error(format!("unknown field(s): {}", unknown.join(", "))));
        }
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The built-in configuration (sandbox catalog, embedded store).
    pub fn builtin() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in configuration")
            .expect("the built-in configuration parses (tested)")
    }

    /// Applies the `SKYBROKER_*` overrides from `env`, then reads `password_file`.
    ///
    /// `env` is passed in (main hands over `std::env::vars()`): the configuration itself
    /// reads no process environment below `main`. The cloud providers' credential chains are
    /// the exception, as in their SDKs: the AWS SDK and the Alibaba provider read their
    /// standard variables (`AWS_*`, `ALIBABA_CLOUD_*`) when a plan needs credentials.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(listen) = env.get("SKYBROKER_LISTEN") {
            self.server.listen = listen.parse().map_err(|err| ConfigError::Env {
                name: "SKYBROKER_LISTEN",
                message: format!("{listen:?} is not address:port ({err})"),
            })?;
        }
        if let Some(listen) = env.get("SKYBROKER_METRICS_LISTEN") {
            self.metrics.listen = listen.parse().map_err(|err| ConfigError::Env {
                name: "SKYBROKER_METRICS_LISTEN",
                message: format!("{listen:?} is not address:port ({err})"),
            })?;
        }
        if let Some(username) = env.get("SKYBROKER_USERNAME") {
            self.server.username = username.clone();
        }
        if let Some(token) = env.get("SKYBROKER_ADMIN_TOKEN").filter(|t| !t.is_empty()) {
            self.server.admin_tokens.push(Secret::new(token.clone()));
        }
        if let Some(password) = env.get("SKYBROKER_PASSWORD") {
            self.server.password = Some(Secret::new(password.clone()));
        }
        if let Some(backend) = env.get("SKYBROKER_STORAGE") {
            self.storage.backend = backend.parse().map_err(|message| ConfigError::Env {
                name: "SKYBROKER_STORAGE",
                message,
            })?;
        }
        let etcd = &mut self.storage.etcd;
        if let Some(endpoints) = env.get("SKYBROKER_ETCD_ENDPOINTS") {
            etcd.endpoints = endpoints
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(prefix) = env.get("SKYBROKER_ETCD_PREFIX") {
            etcd.prefix = prefix.clone();
        }
        if let Some(username) = env.get("SKYBROKER_ETCD_USERNAME") {
            etcd.username = Some(username.clone());
        }
        if let Some(password) = env.get("SKYBROKER_ETCD_PASSWORD") {
            etcd.password = Some(Secret::new(password.clone()));
        }
        if etcd.password.is_none() {
            if let Some(path) = &etcd.password_file {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                etcd.password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
            }
        }
        if let Some(dir) = env.get("SKYBROKER_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(dir);
        }
        if self.server.password.is_none() {
            if let Some(path) = &self.server.password_file {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                self.server.password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
            }
        }
        for provider in self.providers.values_mut() {
            if let Some(variable) = &provider.password_env {
                provider.password = env.get(variable).map(|v| Secret::new(v.clone()));
            }
            if provider.password.is_none() {
                if let Some(path) = &provider.password_file {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    provider.password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
                }
            }
        }
        Ok(())
    }

    /// The offering with this id.
    pub fn offering(&self, service_id: &str) -> Option<&ServiceOffering> {
        self.services
            .iter()
            .find(|offering| offering.id == service_id)
    }
}

impl DispatcherConfig {
    /// Worker threads: the configured number, else 2 × cores and at least 4.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (2 * cores).max(4)
        })
    }

    /// Channel capacity: the configured number, else 64 per worker.
    pub fn capacity(&self) -> usize {
        self.queue_capacity
            .unwrap_or_else(|| 64 * self.worker_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_configuration_is_valid_and_has_the_sandbox_plans() {
        let config = Config::builtin();
        let errors: Vec<_> = validate(&config)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let sandbox = &config.services[0];
        assert_eq!(sandbox.name, "sandbox");
        let names: Vec<_> = sandbox.plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sync", "async", "fail", "sized", "nobind"]);
        assert!(sandbox.instances_retrievable && sandbox.bindings_retrievable);
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::builtin();
        let env = HashMap::from([
            ("SKYBROKER_LISTEN".to_owned(), "127.0.0.1:9999".to_owned()),
            ("SKYBROKER_USERNAME".to_owned(), "admin".to_owned()),
            ("SKYBROKER_PASSWORD".to_owned(), "hunter2".to_owned()),
            ("SKYBROKER_DATA_DIR".to_owned(), "/tmp/x".to_owned()),
        ]);
        config.apply_env(&env).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.server.username, "admin");
        assert_eq!(config.server.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/x"));
        let bad = HashMap::from([("SKYBROKER_LISTEN".to_owned(), "nope".to_owned())]);
        let err = config.apply_env(&bad).unwrap_err().to_string();
        assert!(err.contains("SKYBROKER_LISTEN"), "{err}");
    }

    #[test]
    fn metrics_listener_defaults_to_loopback_and_follows_the_environment() {
        let mut config = Config::builtin();
        assert!(config.metrics.enabled);
        assert_eq!(config.metrics.listen, "127.0.0.1:9090".parse().unwrap());
        let parsed = Config::parse(
            "[metrics]\nenabled = false\nlisten = \"0.0.0.0:9100\"\n",
            "x.toml",
        )
        .unwrap();
        assert!(!parsed.metrics.enabled);
        assert_eq!(parsed.metrics.listen.port(), 9100);
        let env = HashMap::from([(
            "SKYBROKER_METRICS_LISTEN".to_owned(),
            "0.0.0.0:9999".to_owned(),
        )]);
        config.apply_env(&env).unwrap();
        assert_eq!(config.metrics.listen, "0.0.0.0:9999".parse().unwrap());
        let bad = HashMap::from([("SKYBROKER_METRICS_LISTEN".to_owned(), "9090".to_owned())]);
        let err = config.apply_env(&bad).unwrap_err().to_string();
        assert!(err.contains("SKYBROKER_METRICS_LISTEN"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let mut config = Config::builtin();
        config.server.password = Some(Secret::new("topsecret"));
        config.server.bearer_tokens = vec![Secret::new("tok-123")];
        let debug = format!("{config:?}");
        assert!(!debug.contains("topsecret") && !debug.contains("tok-123"));
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let err = Config::parse("[server]\nlisten_port = 1\n", "x.toml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("x.toml") && text.contains("listen_port"),
            "{text}"
        );
    }

    fn with_plan_edit(edit: impl FnOnce(&mut Config)) -> Vec<Problem> {
        let mut config = Config::builtin();
        edit(&mut config);
        validate(&config)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect()
    }

    // OSB-CAT-33: duplicate plan ids are errors that name both places.
    #[test]
    fn duplicate_plan_ids_are_reported_at_the_offending_plan() {
        let problems = with_plan_edit(|c| {
            let first = c.services[0].plans[0].id.clone();
            c.services[0].plans[1].id = first;
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].location, "services[sandbox].plans[async].id");
        assert!(problems[0].message.contains("plans[sync]"));
    }

    // OSB-CAT-27 / OSB-MI-01: maintenance_info.version is SemVer.
    #[test]
    fn bad_maintenance_version_is_reported() {
        let problems = with_plan_edit(|c| {
            c.services[0].plans[3].maintenance_info = Some(MaintenanceInfo {
                version: "1.0".into(),
                description: None,
            });
        });
        assert_eq!(
            problems[0].location,
            "services[sandbox].plans[sized].maintenance_info.version"
        );
    }

    // OSB-CAT-29: every schema declares `$schema`.
    #[test]
    fn schema_without_dollar_schema_is_reported() {
        let problems = with_plan_edit(|c| {
            let schemas = c.services[0].plans[3].schemas.as_mut().unwrap();
            let create = schemas.service_instance.as_mut().unwrap().create.as_mut();
            create
                .unwrap()
                .parameters
                .as_object_mut()
                .unwrap()
                .remove("$schema");
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].location,
            "services[sandbox].plans[sized].schemas.service_instance.create.parameters"
        );
        assert!(problems[0].message.contains("$schema"));
    }

    // OSB-CAT-30, OSB-CAT-10, OSB-CAT-04, OSB-CAT-08.
    #[test]
    fn remote_refs_requires_names_and_empty_plans_are_reported() {
        let problems = with_plan_edit(|c| {
            let schemas = c.services[0].plans[3].schemas.as_mut().unwrap();
            let update = schemas.service_instance.as_mut().unwrap().update.as_mut();
            update.unwrap().parameters["properties"]["x"] =
                serde_json::json!({"$ref": "https://example.com/s.json"});
            c.services[0].requires = vec!["log_drain".into()];
            let mut copy = c.services[0].clone();
            copy.id = "other".into();
            copy.plans.clear();
            c.services.push(copy);
        });
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(has("properties.x.$ref"), "{text:?}");
        assert!(has("requires[0]"), "{text:?}");
        assert!(has("duplicate service name"), "{text:?}");
        assert!(has("at least one plan"), "{text:?}");
    }
}
