//! Broker plugins: the one trait every cloud integration implements, and the registry that maps
//! catalog offerings to plugins.
//!
//! # Layout
//! - [`Broker`]: the plugin trait, with [`OperationRequest`] in and [`Progress`] out.
//! - [`BrokerError`]: what a plugin call can fail with, in semantic variants.
//! - [`registry`]: `PROVIDERS` (one line per provider) and `BrokerRegistry`.
//! - [`sandbox`]: the built-in sandbox plugin.
//! - [`local`]: databases on operator-run PostgreSQL and MySQL/MariaDB servers.
//! - [`aws`] (cargo feature `aws`, on by default): RDS databases and S3 buckets on AWS.
//! - [`alibaba`] (cargo feature `alibaba`, on by default): RDS databases, OSS buckets and RAM
//!   credentials on Alibaba Cloud.
//! - [`osb`]: external OSB brokers registered at run time (the Service Manager's proxy).
//! - [`names`]: deterministic resource names and generated passwords, shared by every plugin.
//!
//! Architecture invariant: plugins know one cloud service each and nothing of OSB status
//! codes, the store or HTTP; the controller owns OSB semantics.

#![warn(missing_docs)]

#[cfg(feature = "alibaba")]
pub mod alibaba;
#[cfg(feature = "aws")]
pub mod aws;
pub mod local;
pub mod names;
pub mod osb;
pub mod registry;
pub mod sandbox;
pub mod sql;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use registry::{build_broker, BrokerRegistry, ProviderError, PROVIDERS};

pub use skybroker_config::{BindingId, InstanceId, OperationId, OperationKind, PlanId, ServiceId};

/// Everything a plugin gets for one call. Owned, so it can travel to a worker thread.
///
/// A call may be a repeat of an earlier one (after a crash, or a transient error): plugins
/// make each call idempotent, using `operation_id` as the provider's idempotency token or
/// deterministic resource names derived from `instance_id`/`binding_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRequest {
    /// Which operation.
    pub kind: OperationKind,
    /// The controller's operation id: stable across repeats of the same operation.
    pub operation_id: OperationId,
    /// The instance (for bind and unbind, the instance bound).
    pub instance_id: InstanceId,
    /// The binding, for bind and unbind.
    pub binding_id: Option<BindingId>,
    /// The offering.
    pub service_id: ServiceId,
    /// The plan the operation works with (for an update, the plan after it).
    pub plan_id: PlanId,
    /// The plan before an update.
    pub previous_plan_id: Option<PlanId>,
    /// The plan's `settings` from the configuration (shared with the catalog).
    pub plan_settings: Arc<Value>,
    /// The request's parameters (for an update, the full parameters after it).
    pub parameters: Value,
    /// The platform context.
    pub context: Value,
    /// The `maintenance_info.version` requested.
    pub maintenance_version: Option<String>,
    /// What provision returned as instance state (and later calls updated); a binding sees
    /// its instance's state here.
    pub instance_state: Value,
    /// What bind returned as binding state (unbind and binding polls).
    pub binding_state: Value,
    /// The provider reference from an earlier `InProgress`, when polling; on deprovision or
    /// unbind, the reference of the create it halts (D-17), if one was running.
    pub reference: Option<Value>,
    /// Whether the platform accepted an asynchronous answer (`accepts_incomplete=true`);
    /// false when its request waits for this call.
    pub accepts_incomplete: bool,
    /// Who asked, as `platform user-id` (D-02), for providers that pass it on.
    pub originating_identity: Option<String>,
}

/// What a plugin hands back for a binding (everything the platform receives).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingResult {
    /// Credentials; secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Value>,
    /// Network endpoints (`[{host, ports, protocol}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Value>,
    /// For `requires: [syslog_drain]` offerings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_drain_url: Option<String>,
    /// For `requires: [route_forwarding]` offerings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_service_url: Option<String>,
    /// For `requires: [volume_mount]` offerings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Value>,
    /// `{expires_at, renew_before}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A finished operation's results; every field is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// New plugin state of the instance (provision, update) or binding (bind); `None` keeps
    /// the current one.
    pub state: Option<Value>,
    /// Dashboard URL of the instance.
    pub dashboard_url: Option<String>,
    /// Instance `metadata` (`labels`, `attributes`).
    pub metadata: Option<Value>,
    /// Bind results.
    pub binding: Option<BindingResult>,
}

/// What a plugin call reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The operation finished successfully.
    Done(Completion),
    /// The provider is still working: poll again later with `reference`.
    InProgress {
        /// The provider's handle on the work (an operation id, a resource name...).
        reference: Value,
        /// Optional progress text for last_operation.
        description: Option<String>,
        /// Plugin state to keep already (e.g. the resource id), so a deprovision that
        /// halts this work can find it.
        state: Option<Value>,
    },
    /// The provider finished the operation and it failed.
    Failed {
        /// User-facing reason.
        description: String,
        /// Whether the instance is still usable (update, deprovision).
        instance_usable: Option<bool>,
        /// Whether the update may be retried.
        update_repeatable: Option<bool>,
    },
}

/// Why a provider's section, a plan's settings or a request's parameters are refused: what
/// `check-config` prints for the operator, or the 400 a platform gets. Found offline, before
/// anything is sent to a cloud.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The keys do not have the expected shape: missing, unknown, or of the wrong type.
    #[error("{0}")]
    Shape(#[from] serde_json::Error),
    /// A file a setting names cannot be read.
    #[error("{setting} {}: {source}", path.display())]
    File {
        /// The setting that names it, e.g. `ca_file`.
        setting: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// A value that cannot work, and why.
    #[error("{0}")]
    Invalid(String),
}

impl SettingsError {
    /// A value that cannot work, and why.
    pub fn invalid(why: impl Into<String>) -> Self {
        SettingsError::Invalid(why.into())
    }
}

/// Settings a call finds wrong are the request's mistake (400).
impl From<SettingsError> for BrokerError {
    fn from(err: SettingsError) -> Self {
        BrokerError::InvalidParameters(err.to_string())
    }
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The request's parameters are invalid for this provider (a client error: 400).
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// The resource does not exist at the provider.
    #[error("not found at the provider: {0}")]
    NotFound(String),
    /// The provider refuses for quota or state reasons (a client error: 422).
    #[error("not possible now: {0}")]
    Unprocessable(String),
    /// The provider rejected the plugin's credentials.
    #[error("the provider rejected the credentials: {0}")]
    Unauthenticated(String),
    /// The provider refused or failed, with a message a platform user can act on (permission
    /// denied, quota exceeded...). Shown as the operation's description; never holds secrets.
    #[error("{0}")]
    Failed(String),
    /// A failure that may pass: throttling, timeouts, 5xx. The engine retries with back-off.
    #[error("transient provider failure: {0}")]
    Transient(String),
    /// Any other failure, with its cause.
    #[error("{broker} failed: {source}")]
    Provider {
        /// The plugin.
        broker: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BrokerError {
    /// Whether the request itself is at fault (the controller answers a 4xx for sync calls).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            BrokerError::InvalidParameters(_) | BrokerError::Unprocessable(_)
        )
    }

    /// Whether repeating the call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BrokerError::Transient(_))
    }
}

/// A broker plugin: one cloud service.
///
/// # Contract
/// - Calls run on the dispatcher's worker threads (driven by `Handle::block_on`), one call per
///   worker at a time; a plugin may block or await freely.
/// - Every call may be repeated after a crash or a transient error, with the same
///   `operation_id`: implementations are idempotent ("already exists" means adopt it,
///   "already gone" on delete is [`BrokerError::NotFound`], which the controller may treat as
///   success, see `force_delete_unknown_*`).
/// - A call answers [`Progress::InProgress`] for long work; the controller then calls
///   [`Broker::poll`] with the reference until `Done` or `Failed`.
/// - Secrets in requests and results are never logged.
#[async_trait]
pub trait Broker: std::fmt::Debug + Send + Sync + 'static {
    /// The plugin's name for logs and errors, e.g. `"sandbox"`.
    fn name(&self) -> &'static str;

    /// Whether `kind` on this plan can only complete asynchronously. The controller then
    /// answers 422 AsyncRequired without `accepts_incomplete=true`; otherwise it waits for
    /// the call and answers synchronously.
    fn is_async(&self, plan_settings: &Value, kind: OperationKind) -> bool;

    /// Whether the plugin takes the platform's word instead: asynchronous whenever the
    /// platform accepts it (`accepts_incomplete=true`, and for the work the controller starts
    /// on its own), synchronous otherwise. A plugin in front of another broker answers true:
    /// that broker decides, and answers 422 AsyncRequired when it needs to be polled.
    fn async_when_accepted(&self) -> bool {
        false
    }

    /// Checks a plan's `settings` at start-up; the error says what is wrong.
    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError>;

    /// Whether a deprovision on this plan unbinds the instance's bindings first (D-03), the
    /// default. A plugin answers false when it must see the deprovision before anything is
    /// revoked, to refuse it with every binding intact (a bucket that still holds data): the
    /// controller then calls its deprovision first and unbinds once that call has answered
    /// [`Progress::InProgress`], before the operation completes.
    fn unbinds_before_deprovision(&self, _plan_settings: &Value) -> bool {
        true
    }

    /// Checks the parameters of a provision or an update (for an update: all of them, as
    /// they will be after it) before the controller accepts the request, so that a platform
    /// gets 400 for what the plugin would refuse even when the operation then runs
    /// asynchronously. Offline and quick: no call to the provider. The default accepts
    /// anything (the plugin may still refuse when it runs).
    fn check_parameters(
        &self,
        _plan_settings: &Value,
        _kind: OperationKind,
        _parameters: &Value,
    ) -> Result<(), SettingsError> {
        Ok(())
    }

    /// Creates an instance.
    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;

    /// Changes an instance's plan, parameters or maintenance version.
    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;

    /// Deletes an instance and everything provisioning created.
    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;

    /// Creates a binding with credentials of its own (D-19).
    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;

    /// Deletes a binding, revoking its credentials.
    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;

    /// Checks work reported `InProgress`; `request.reference` holds its reference.
    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError>;
}

#[cfg(test)]
fn _object_safe(_: Box<dyn Broker>) {}
