//! The OSB catalog as configured: offerings and plans exactly as `GET /v2/catalog` serves them,
//! plus two Skybroker fields that are never served: the offering's `broker` (which plugin
//! implements it) and the plan's `settings` (handed to that plugin untouched).
//!
//! Serialization *is* the wire format, so every optional field is skipped when absent and the
//! private fields are `skip_serializing`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"services": [...]}`, the body of `GET /v2/catalog`.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog<'a> {
    /// The offerings, in configuration order.
    pub services: &'a [ServiceOffering],
}

/// An OSB service offering (checklist OSB-CAT-04..16).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOffering {
    /// Globally unique, immutable id.
    pub id: String,
    /// Unique, CLI-friendly name.
    pub name: String,
    /// User-facing description.
    pub description: String,
    /// Default bindability of the plans.
    pub bindable: bool,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Platform features the offering needs (`syslog_drain`, `route_forwarding`, `volume_mount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Whether `GET /v2/service_instances/:id` is supported.
    #[serde(default)]
    pub instances_retrievable: bool,
    /// Whether `GET .../service_bindings/:id` is supported.
    #[serde(default)]
    pub bindings_retrievable: bool,
    /// Whether context-only updates are accepted.
    #[serde(default)]
    pub allow_context_updates: bool,
    /// Opaque metadata (profile conventions: displayName, imageUrl, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Cloud Foundry dashboard client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_client: Option<Value>,
    /// Whether plan changes are supported (spec spelling).
    #[serde(default)]
    pub plan_updateable: bool,
    /// At least one plan.
    pub plans: Vec<Plan>,
    /// Which broker plugin implements this offering (never served).
    #[serde(skip_serializing)]
    pub broker: String,
}

/// An OSB plan (checklist OSB-CAT-17..27).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Globally unique, immutable id.
    pub id: String,
    /// Name, unique within the offering.
    pub name: String,
    /// User-facing description.
    pub description: String,
    /// Opaque metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Whether the plan is free (spec default true).
    #[serde(default = "yes")]
    pub free: bool,
    /// Overrides the offering's `bindable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindable: Option<bool>,
    /// Whether bindings of this plan may be rotated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binding_rotatable: bool,
    /// Overrides the offering's `plan_updateable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_updateable: Option<bool>,
    /// JSON schemas for parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Schemas>,
    /// Seconds a platform polls before giving up; also the engine's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_polling_duration: Option<u64>,
    /// The plan's maintenance version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfo>,
    /// Plugin-specific settings (never served). Shared: every plugin call's request holds
    /// them, and a job is built for each call.
    #[serde(default, skip_serializing)]
    pub settings: Arc<Value>,
}

fn yes() -> bool {
    true
}

/// `maintenance_info` of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceInfo {
    /// SemVer 2.0 version.
    pub version: String,
    /// What an upgrade to this version changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `schemas` of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schemas {
    /// Instance schemas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_instance: Option<InstanceSchemas>,
    /// Binding schemas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_binding: Option<BindingSchemas>,
}

/// `schemas.service_instance`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSchemas {
    /// Schema of provision parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<SchemaParameters>,
    /// Schema of update parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<SchemaParameters>,
}

/// `schemas.service_binding`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSchemas {
    /// Schema of bind parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<SchemaParameters>,
}

/// `{"parameters": <JSON schema>}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaParameters {
    /// The JSON schema.
    pub parameters: Value,
}

/// Which parameter schema of a plan applies to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// Provision.
    InstanceCreate,
    /// Update.
    InstanceUpdate,
    /// Bind.
    BindingCreate,
}

impl ServiceOffering {
    /// The plan with this id, if it belongs to this offering.
    pub fn plan(&self, plan_id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == plan_id)
    }
}

impl Plan {
    /// Whether the plan can be bound, the plan's own flag winning over the offering's.
    pub fn is_bindable(&self, offering: &ServiceOffering) -> bool {
        self.bindable.unwrap_or(offering.bindable)
    }

    /// Whether a platform may change *to or from* this plan.
    pub fn is_updateable(&self, offering: &ServiceOffering) -> bool {
        self.plan_updateable.unwrap_or(offering.plan_updateable)
    }

    /// The parameter schema for `kind`, if the plan declares one.
    pub fn schema(&self, kind: SchemaKind) -> Option<&Value> {
        let schemas = self.schemas.as_ref()?;
        let params = match kind {
            SchemaKind::InstanceCreate => schemas.service_instance.as_ref()?.create.as_ref(),
            SchemaKind::InstanceUpdate => schemas.service_instance.as_ref()?.update.as_ref(),
            SchemaKind::BindingCreate => schemas.service_binding.as_ref()?.create.as_ref(),
        };
        params.map(|p| &p.parameters)
    }
}
