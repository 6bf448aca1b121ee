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

impl ServiceOffering {
    /// An offering of an external broker's catalog (its `GET /v2/catalog`), served by the
    /// plugin `broker`. Fields this build does not know are ignored (OSB-GEN-01); plan
    /// `settings`, Skybroker's own, never come from a remote catalog.
    ///
    /// # Errors
    /// What is missing or of the wrong type, naming the offering.
    pub fn from_broker_catalog(offering: &Value, broker: &str) -> Result<ServiceOffering, String> {
        let named = offering
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| offering.get("id").and_then(Value::as_str))
            .map_or_else(String::new, |name| format!(" {name:?}"));
        let mut offering = offering.clone();
        let object = offering
            .as_object_mut()
            .ok_or_else(|| "a service offering must be a JSON object".to_owned())?;
        object.insert("broker".to_owned(), Value::String(broker.to_owned()));
        if let Some(Value::Array(plans)) = object.get_mut("plans") {
            for plan in plans.iter_mut().filter_map(Value::as_object_mut) {
                plan.remove("settings");
            }
        }
        serde_json::from_value(offering).map_err(|err| format!("service offering{named}: {err}"))
    }
}

fn yes() -> bool {
    true
}

/// `maintenance_info` of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaintenanceInfo {
    /// SemVer 2.0 version.
    pub version: String,
    /// What an upgrade to this version changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `schemas` of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
pub struct BindingSchemas {
    /// Schema of bind parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<SchemaParameters>,
}

/// `{"parameters": <JSON schema>}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote() -> Value {
        json!({
            "id": "svc-1", "name": "db", "description": "A database", "bindable": true,
            "some_future_field": {"anything": 1},
            "plans": [{
                "id": "plan-1", "name": "small", "description": "Small",
                "settings": {"mode": "sync"},
                "maintenance_info": {"version": "1.0.0", "not_yet_specified": true}
            }]
        })
    }

    #[test]
    fn a_remote_catalog_may_carry_fields_of_later_versions_but_never_our_settings() {
        let offering = ServiceOffering::from_broker_catalog(&remote(), "broker-7").unwrap();
        assert_eq!(offering.broker, "broker-7");
        assert_eq!(offering.plans[0].id, "plan-1");
        assert!(
            offering.plans[0].settings.is_null(),
            "settings are ours alone"
        );
    }

    #[test]
    fn a_remote_offering_missing_a_field_is_named() {
        let mut broken = remote();
        broken.as_object_mut().unwrap().remove("description");
        let err = ServiceOffering::from_broker_catalog(&broken, "b").unwrap_err();
        assert!(
            err.contains("\"db\"") && err.contains("description"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_configuration_file_is_still_refused() {
        let text = r#"
[[services]]
id = "s"
name = "s"
description = "d"
bindable = true
broker = "sandbox"
colour = "blue"
plans = []
"#;
        let err = crate::Config::parse(text, "test").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
