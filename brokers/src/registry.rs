//! Which plugin serves which offering.
//!
//! Providers are a closed enum with one `match` building them: the set of plugins is visible
//! and compile-checked, with no global registration magic. Adding a provider is one variant,
//! one arm here, and one module.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use skybroker_config::{Problem, ServiceOffering, Severity};

use crate::sandbox::Sandbox;
use crate::Broker;

/// The plugins this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The built-in sandbox.
    Sandbox,
}

impl BrokerKind {
    /// Every kind, for messages.
    pub const ALL: [(&'static str, BrokerKind); 1] = [("sandbox", BrokerKind::Sandbox)];
}

impl FromStr for BrokerKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        BrokerKind::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let options: Vec<_> = BrokerKind::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown broker {name:?} (options are: {})",
                    options.join(", ")
                )
            })
    }
}

/// Builds the plugin of a kind.
pub fn build_broker(kind: BrokerKind) -> Arc<dyn Broker> {
    match kind {
        BrokerKind::Sandbox => Arc::new(Sandbox::new()),
    }
}

/// Offering id → plugin.
#[derive(Debug, Default, Clone)]
pub struct BrokerRegistry {
    by_service: HashMap<String, Arc<dyn Broker>>,
}

impl BrokerRegistry {
    /// Builds one plugin per kind used and checks every plan's settings.
    ///
    /// # Errors
    /// One problem per offering naming an unknown broker or plan with bad settings, each
    /// with its location.
    pub fn from_catalog(services: &[ServiceOffering]) -> Result<Self, Vec<Problem>> {
        let error = |location: String, message: String| Problem {
            severity: Severity::Error,
            location,
            message,
        };
        let mut built: HashMap<&str, Arc<dyn Broker>> = HashMap::new();
        let mut registry = BrokerRegistry::default();
        let mut problems = Vec::new();
        for offering in services {
            let broker = match built.get(offering.broker.as_str()) {
                Some(broker) => Arc::clone(broker),
                None => match offering.broker.parse::<BrokerKind>() {
                    Ok(kind) => {
                        let broker = build_broker(kind);
                        built.insert(&offering.broker, Arc::clone(&broker));
                        broker
                    }
                    Err(message) => {
                        problems.push(error(
                            format!("services[{}].broker", offering.name),
                            message,
                        ));
                        continue;
                    }
                },
            };
            for plan in &offering.plans {
                if let Err(message) = broker.check_plan_settings(&plan.settings) {
                    problems.push(error(
                        format!("services[{}].plans[{}].settings", offering.name, plan.name),
                        message,
                    ));
                }
            }
            registry.by_service.insert(offering.id.clone(), broker);
        }
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(problems)
        }
    }

    /// Registers a plugin for an offering by hand (tests, embedding applications).
    pub fn register(&mut self, service_id: impl Into<String>, broker: Arc<dyn Broker>) {
        self.by_service.insert(service_id.into(), broker);
    }

    /// The plugin serving an offering.
    pub fn get(&self, service_id: &str) -> Option<&Arc<dyn Broker>> {
        self.by_service.get(service_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_brokers_list_the_options() {
        let err = "aws-rds".parse::<BrokerKind>().unwrap_err();
        assert!(err.contains("options are: sandbox"), "{err}");
    }

    #[test]
    fn the_builtin_catalog_builds_and_bad_settings_are_located() {
        let mut config = skybroker_config::Config::builtin();
        let registry = BrokerRegistry::from_catalog(&config.services).unwrap();
        assert_eq!(
            registry.get(&config.services[0].id).unwrap().name(),
            "sandbox"
        );
        config.services[0].plans[1].settings = serde_json::json!({"mode": "sometimes"});
        let problems = BrokerRegistry::from_catalog(&config.services).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].location,
            "services[sandbox].plans[async].settings"
        );
    }
}
