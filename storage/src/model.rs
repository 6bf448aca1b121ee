//! The records Skybroker keeps: service instances, service bindings and operations.
//!
//! These are the stored shape (they are what the store persists, as versioned JSON or packed:
//! see the map's `codec`), deliberately separate from the OSB wire bodies in the controller:
//! renaming a wire field must never make stored state unreadable. The packed form stores
//! fields by position, so a field added later goes **at the end** of its struct and is
//! `#[serde(default)]`, so that old records still load; fields are never reordered or removed.

use crate::registry::Labels;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Serde for `Option<Value>` fields whose `Some(Value::Null)` means something: a plugin's
/// null reference (the work was accepted, there is nothing to name) and D-17's "this delete
/// halted a create that had no reference yet".
///
/// JSON writes them as it always did (`null` either way, so on etcd the difference does not
/// survive a restart). The packed form (MessagePack, not human-readable: the map in memory and
/// the embedded store) would read `Some(Null)` back as `None`, so it writes `Some(v)` as `[v]`
/// and the difference survives.
mod null_aware {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Option<Value>, out: S) -> Result<S::Ok, S::Error> {
        if out.is_human_readable() {
            value.serialize(out)
        } else {
            value.as_ref().map(std::slice::from_ref).serialize(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<Value>, D::Error> {
        if input.is_human_readable() {
            Option::<Value>::deserialize(input)
        } else {
            Ok(Option::<[Value; 1]>::deserialize(input)?.map(|[value]| value))
        }
    }
}

/// Milliseconds since the Unix epoch; the only clock stored records use.
pub type UnixMillis = u64;

/// Now, in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Provision accepted and running.
    Provisioning,
    /// Provisioned and usable.
    Ready,
    /// The provision failed (or was cancelled); only deprovision or a retry apply.
    ProvisionFailed,
    /// An update is running.
    Updating,
    /// A deprovision is running.
    Deprovisioning,
}

/// A service instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// The platform's id.
    pub id: InstanceId,
    /// Offering id.
    pub service_id: ServiceId,
    /// Current plan id.
    pub plan_id: PlanId,
    /// Current parameters (an object).
    #[serde(default)]
    pub parameters: Value,
    /// The platform context of the last provision or update.
    #[serde(default)]
    pub context: Value,
    /// Deprecated CF fields, kept to judge identical repeats.
    #[serde(default)]
    pub organization_guid: Option<String>,
    /// Deprecated CF fields, kept to judge identical repeats.
    #[serde(default)]
    pub space_guid: Option<String>,
    /// Applied `maintenance_info.version`.
    #[serde(default)]
    pub maintenance_version: Option<String>,
    /// Dashboard URL the plugin reported.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// `metadata` (labels, attributes) the plugin reported.
    #[serde(default, with = "null_aware")]
    pub metadata: Option<Value>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// State the plugin returned, handed back on every later call (and to bindings).
    #[serde(default)]
    pub plugin_state: Value,
    /// The operation that last changed this instance.
    #[serde(default)]
    pub last_operation: Option<OperationId>,
    /// When the instance was first accepted.
    pub created_at: UnixMillis,
    /// The Service Manager platform that created it; `None`: the broker's own credentials.
    /// Another platform neither sees nor changes it (unless `shared`, to bind).
    #[serde(default)]
    pub platform_id: Option<String>,
    /// Shared with every platform that sees its plan: they may bind to it (Service Manager's
    /// instance sharing); only the creating platform changes or deletes it.
    #[serde(default)]
    pub shared: bool,
    /// Service Manager labels an operator put on it (`PATCH /v1/service_instances/<id>`).
    #[serde(default)]
    pub labels: Labels,
}

impl ServiceInstance {
    /// Whether `platform` (`None`: the broker's own credentials, which reach everything)
    /// may read, change or delete the instance: the platform that created it may.
    pub fn belongs_to(&self, platform: Option<&str>) -> bool {
        platform.is_none() || self.platform_id.as_deref() == platform
    }

    /// Whether `platform` may bind to the instance: its own, or one shared with it.
    pub fn bindable_by(&self, platform: Option<&str>) -> bool {
        self.belongs_to(platform) || self.shared
    }
}

/// Where a binding is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingState {
    /// Bind accepted and running.
    Binding,
    /// Bound: credentials available.
    Bound,
    /// The bind failed (or was cancelled).
    BindFailed,
    /// An unbind is running.
    Unbinding,
}

/// A service binding. Binding ids are globally unique (OSB-GEN-07), so they key bindings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceBinding {
    /// The platform's id.
    pub id: BindingId,
    /// The instance bound.
    pub instance_id: InstanceId,
    /// Offering id sent with the bind.
    pub service_id: ServiceId,
    /// Plan id sent with the bind.
    pub plan_id: PlanId,
    /// Bind parameters (an object).
    #[serde(default)]
    pub parameters: Value,
    /// `bind_resource` as sent.
    #[serde(default)]
    pub bind_resource: Value,
    /// `app_guid` as sent.
    #[serde(default)]
    pub app_guid: Option<String>,
    /// Platform context.
    #[serde(default)]
    pub context: Value,
    /// The binding this one rotated (OSB-ROT).
    #[serde(default)]
    pub predecessor_binding_id: Option<BindingId>,
    /// Lifecycle state.
    pub state: BindingState,
    /// What the plugin returned for the platform: credentials, endpoints, ... (see
    /// `skybroker_brokers::BindingResult`). Secret: never logged.
    #[serde(default)]
    pub result: Value,
    /// State the plugin returned, handed back on unbind.
    #[serde(default)]
    pub plugin_state: Value,
    /// The operation that last changed this binding.
    #[serde(default)]
    pub last_operation: Option<OperationId>,
    /// When the binding was first accepted.
    pub created_at: UnixMillis,
    /// The Service Manager platform that bound; `None`: the broker's own credentials.
    #[serde(default)]
    pub platform_id: Option<String>,
    /// Service Manager labels an operator put on it (`PATCH /v1/service_bindings/<id>`).
    #[serde(default)]
    pub labels: Labels,
}

pub use skybroker_config::{BindingId, InstanceId, OperationId, OperationKind, PlanId, ServiceId};

/// The OSB state of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Still running.
    InProgress,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
}

/// The changes an update applies once it succeeds (none are applied before, OSB-UPD-12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTarget {
    /// The plan after the update.
    pub plan_id: PlanId,
    /// The full parameters after the update.
    pub parameters: Value,
    /// The maintenance version after the update.
    #[serde(default)]
    pub maintenance_version: Option<String>,
    /// The context after the update.
    #[serde(default)]
    pub context: Value,
    /// The plan before the update (platforms poll with it, OSB-UPD-15).
    pub previous_plan_id: PlanId,
}

/// A failed operation's error, as the platform will read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// User-facing description.
    pub description: String,
    /// Whether the instance is still usable (failed update or deprovision only).
    #[serde(default)]
    pub instance_usable: Option<bool>,
    /// Whether the update may be repeated (failed update only).
    #[serde(default)]
    pub update_repeatable: Option<bool>,
    /// The plugin judged the request itself invalid: a synchronous request answers 4xx and
    /// its records are removed (a 4xx changes nothing, OSB-ERR-04).
    #[serde(default)]
    pub client_error: bool,
    /// With `client_error`: the request was valid but cannot be done in the resource's state
    /// or the provider's limits (422 rather than 400).
    #[serde(default)]
    pub unprocessable: bool,
    /// The provider could not be reached, or kept failing in a way that may pass, until the
    /// operation gave up: a synchronous request answers 502, not 500.
    // Never skipped when false: records are packed positionally in memory (see `packed`).
    #[serde(default)]
    pub unreachable: bool,
    /// A delete of the resource stopped this create while it ran (D-17): a synchronous
    /// request answers 422 ConcurrencyError, as it would have had the delete come first.
    #[serde(default)]
    pub cancelled: bool,
}

impl Failure {
    /// A failure with only a description: the provider's or the engine's, not the request's
    /// fault, and no statement about the instance. The one place a `Failure` is built; the
    /// setters below add what a particular failure knows.
    pub fn new(description: impl Into<String>) -> Self {
        Failure {
            description: description.into(),
            instance_usable: None,
            update_repeatable: None,
            client_error: false,
            unprocessable: false,
            unreachable: false,
            cancelled: false,
        }
    }

    /// Marks the create as stopped by a delete (see [`Failure::cancelled`]).
    pub fn cancelled(mut self) -> Self {
        self.cancelled = true;
        self
    }

    /// Says whether the instance is still usable.
    pub fn instance_usable(mut self, usable: Option<bool>) -> Self {
        self.instance_usable = usable;
        self
    }

    /// Says whether the update may be repeated.
    pub fn update_repeatable(mut self, repeatable: Option<bool>) -> Self {
        self.update_repeatable = repeatable;
        self
    }

    /// Marks the provider as unreachable (see [`Failure::unreachable`]).
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }

    /// Marks the request itself as at fault (4xx); `unprocessable` picks 422 over 400.
    pub fn client_error(mut self, unprocessable: bool) -> Self {
        self.client_error = true;
        self.unprocessable = unprocessable;
        self
    }
}

/// One provision, update, deprovision, bind or unbind, synchronous or asynchronous.
///
/// The store is the queue of record: an operation `InProgress` is work that must finish, and
/// the engine resumes every one of them after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The id returned to the platform as `operation` (URL-safe, D-16).
    pub id: OperationId,
    /// What it does.
    pub kind: OperationKind,
    /// The instance it acts on (or whose binding it acts on).
    pub instance_id: InstanceId,
    /// The binding, for bind and unbind.
    #[serde(default)]
    pub binding_id: Option<BindingId>,
    /// OSB state.
    pub state: OperationState,
    /// Whether a request is waiting for it synchronously.
    pub sync: bool,
    /// Last progress description from the plugin.
    #[serde(default)]
    pub description: Option<String>,
    /// The failure, once failed.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The provider's reference while the plugin reports "in progress"; `None` means the
    /// plugin has not accepted the work yet and must be called (again).
    #[serde(default, with = "null_aware")]
    pub reference: Option<Value>,
    /// For deprovision and unbind that halted a running create (D-17): the create's provider
    /// reference, handed to the plugin so it can cancel or find the resource.
    #[serde(default, with = "null_aware")]
    pub halted_reference: Option<Value>,
    /// For deprovision and unbind: the resource's create never succeeded (it deletes a failed
    /// create, or halted a running one, D-17): the resource is not fetchable meanwhile, and a
    /// failed delete leaves it failed. For a halted create, with or without a
    /// reference. Should it fail, the resource is left failed, not usable. (Stored on its own:
    /// JSON cannot tell a `null` reference from none, so the reference alone did not survive a
    /// restart as the marker.)
    #[serde(default)]
    pub halted: bool,
    /// For updates: what to apply on success.
    #[serde(default)]
    pub update: Option<UpdateTarget>,
    /// Plugin calls made so far (start plus polls).
    #[serde(default)]
    pub attempts: u32,
    /// Who asked (platform and user from the originating identity), for audit.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// When it was accepted.
    pub created_at: UnixMillis,
    /// When it must have finished, or it fails.
    pub deadline: UnixMillis,
    /// When it reached a terminal state.
    #[serde(default)]
    pub finished_at: Option<UnixMillis>,
}

impl Operation {
    /// Whether it still runs.
    pub fn in_progress(&self) -> bool {
        self.state == OperationState::InProgress
    }

    /// `kind of resource` for logs: `provision of i-1`, `bind of b-1`.
    pub fn describe(&self) -> String {
        let resource = self.binding_id.as_deref().unwrap_or(&self.instance_id);
        format!("{} of {resource}", self.kind.name())
    }

    /// Whether this delete halted a running create (D-17); records written before `halted`
    /// existed carry only the reference.
    pub fn halted_a_create(&self) -> bool {
        self.halted || self.halted_reference.is_some()
    }
}
