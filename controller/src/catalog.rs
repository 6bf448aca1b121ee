//! The catalog as the controller uses it: which offering and plan a request names, which plugin
//! serves them, and the checks a request's parameters must pass before anything is decided.
//!
//! It is built once at start from the validated configuration and never changes while the
//! process runs, so every part of the controller (admission, engine, API) shares one
//! `Arc<Catalog>` and asks it without locks.

use serde_json::Value;
use skybroker_brokers::{Broker, BrokerRegistry, OperationKind as PluginKind};
use skybroker_config::{Config, MaintenanceInfo, Plan, SchemaKind, ServiceOffering};
use skybroker_storage::OperationKind;
use std::sync::Arc;

use crate::error::ApiError;
use crate::schemas::SchemaCache;

/// The offerings, their plugins and their compiled parameter schemas.
#[derive(Debug)]
pub struct Catalog {
    /// The offerings, as configured.
    services: Vec<ServiceOffering>,
    /// Offering → plugin.
    brokers: BrokerRegistry,
    /// Compiled parameter schemas.
    schemas: SchemaCache,
}

/// An offering, one of its plans, and the plugin serving it.
#[derive(Debug, Clone, Copy)]
pub struct PlanRef<'a> {
    /// The offering.
    pub offering: &'a ServiceOffering,
    /// The plan.
    pub plan: &'a Plan,
    /// The plugin.
    pub broker: &'a Arc<dyn Broker>,
}

impl PlanRef<'_> {
    /// Whether the plugin runs `kind` on this plan synchronously (the request waits for it).
    pub fn is_sync(&self, kind: OperationKind) -> bool {
        !self.broker.is_async(&self.plan.settings, plugin_kind(kind))
    }
}

/// The plugin-facing kind of a stored operation kind.
pub fn plugin_kind(kind: OperationKind) -> PluginKind {
    match kind {
        OperationKind::Provision => PluginKind::Provision,
        OperationKind::Update => PluginKind::Update,
        OperationKind::Deprovision => PluginKind::Deprovision,
        OperationKind::Bind => PluginKind::Bind,
        OperationKind::Unbind => PluginKind::Unbind,
    }
}

impl Catalog {
    /// The catalog of a validated configuration: its plugins built, its schemas compiled.
    ///
    /// # Errors
    /// Every problem of a plugin's settings, or a schema that does not compile (the
    /// configuration check reports the same).
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let brokers = BrokerRegistry::from_config(&config.providers, &config.services)
            .map_err(|problems| format!("{problems:?}"))?;
        let schemas = SchemaCache::compile(config)?;
        Ok(Catalog {
            services: config.services.clone(),
            brokers,
            schemas,
        })
    }

    /// The offerings.
    pub fn services(&self) -> &[ServiceOffering] {
        &self.services
    }

    /// The offering with `service_id`.
    pub fn offering(&self, service_id: &str) -> Option<&ServiceOffering> {
        self.services.iter().find(|o| o.id == service_id)
    }

    /// The offering, plan and plugin for ids, if the catalog has them together.
    pub fn plan(&self, service_id: &str, plan_id: &str) -> Option<PlanRef<'_>> {
        let offering = self.offering(service_id)?;
        let plan = offering.plan(plan_id)?;
        let broker = self.brokers.get(service_id)?;
        Some(PlanRef {
            offering,
            plan,
            broker,
        })
    }

    /// The offering of `service_id`, or the 400 that says it is unknown (OSB-ERR-06).
    pub fn requested_offering(&self, service_id: &str) -> Result<&ServiceOffering, ApiError> {
        self.offering(service_id)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown service_id {service_id:?}")))
    }

    /// The offering and plan named by a request, or the 400 that says which is unknown
    /// (OSB-ERR-06).
    pub fn requested_plan(&self, service_id: &str, plan_id: &str) -> Result<PlanRef<'_>, ApiError> {
        self.requested_offering(service_id)?;
        self.plan(service_id, plan_id).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "plan_id {plan_id:?} is not a plan of service {service_id:?}"
            ))
        })
    }

    /// Checks parameters against the plan's schema for `schema` (OSB-PROV-04, OSB-UPD-05,
    /// OSB-BIND-06) and, when `plugin` names an operation, against the plugin's own rules.
    pub fn check_parameters(
        &self,
        plan: PlanRef<'_>,
        schema: Option<SchemaKind>,
        plugin: Option<OperationKind>,
        parameters: &Value,
    ) -> Result<(), ApiError> {
        if let Some(schema) = schema {
            self.schemas.check(plan.plan, schema, parameters)?;
        }
        if let Some(kind) = plugin {
            plan.broker
                .check_parameters(&plan.plan.settings, plugin_kind(kind), parameters)
                .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        }
        Ok(())
    }
}

/// OSB-PROV-12, OSB-MI-03, D-05: a requested maintenance version must equal the plan's.
pub fn check_maintenance(plan: &Plan, requested: Option<&str>) -> Result<(), ApiError> {
    match (requested, &plan.maintenance_info) {
        (None, _) => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) if v == version => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) => Err(ApiError::MaintenanceInfoConflict(
            format!("maintenance_info.version {v} does not match the plan's version {version}"),
        )),
        (Some(v), None) => Err(ApiError::MaintenanceInfoConflict(format!(
            "maintenance_info.version {v} was sent, but the plan has no maintenance_info"
        ))),
    }
}
