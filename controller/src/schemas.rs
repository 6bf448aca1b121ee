//! Parameter validation against the plans' JSON schemas (OSB-PROV-04, OSB-UPD-05, OSB-BIND-06).
//!
//! Every schema is compiled once at start (compiling per request would cost more than the rest
//! of the request); a request's `parameters` are then checked against the compiled validator
//! and every violation is listed in the 400's description.

use std::collections::HashMap;

use serde_json::Value;
use skybroker_config::{Plan, SchemaKind, ServiceOffering};

use crate::error::ApiError;

/// Compiled validators by (plan id, schema kind).
#[derive(Default)]
pub struct SchemaCache {
    validators: HashMap<(String, u8), jsonschema::Validator>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("schemas", &self.validators.len())
            .finish()
    }
}

fn slot(kind: SchemaKind) -> u8 {
    match kind {
        SchemaKind::InstanceCreate => 0,
        SchemaKind::InstanceUpdate => 1,
        SchemaKind::BindingCreate => 2,
    }
}

impl SchemaCache {
    /// Compiles every schema of the catalog.
    ///
    /// # Errors
    /// A schema that does not compile (the configuration check reports the same).
    pub fn compile(services: &[ServiceOffering]) -> Result<Self, String> {
        let mut cache = SchemaCache::default();
        for offering in services {
            for plan in &offering.plans {
                for kind in [
                    SchemaKind::InstanceCreate,
                    SchemaKind::InstanceUpdate,
                    SchemaKind::BindingCreate,
                ] {
                    if let Some(schema) = plan.schema(kind) {
                        let validator = jsonschema::validator_for(schema)
                            .map_err(|err| format!("plan {}: {err}", plan.name))?;
                        cache
                            .validators
                            .insert((plan.id.clone(), slot(kind)), validator);
                    }
                }
            }
        }
        Ok(cache)
    }

    /// Checks `parameters` against the plan's schema of `kind`, if it has one.
    pub fn check(&self, plan: &Plan, kind: SchemaKind, parameters: &Value) -> Result<(), ApiError> {
        let Some(validator) = self.validators.get(&(plan.id.clone(), slot(kind))) else {
            return Ok(());
        };
        let problems: Vec<String> = validator
            .iter_errors(parameters)
            .map(|err| {
                let path = err.instance_path().to_string();
                if path.is_empty() {
                    format!("parameters: {err}")
                } else {
                    format!("parameters{path}: {err}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "parameters do not match the plan's schema: {}",
                problems.join("; ")
            )))
        }
    }
}
