//! Which plugin serves which offering.
//!
//! Providers are a closed enum with one `match` building them: the set of plugins is visible
//! and compile-checked, with no global registration magic. Adding a provider is one variant,
//! one arm here, and one module.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use std::collections::BTreeMap;

use skybroker_config::{Problem, ProviderConfig, ServiceOffering, Severity};

use crate::sandbox::Sandbox;
use crate::Broker;

/// The plugins this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The built-in sandbox (needs no provider section).
    Sandbox,
    /// Databases on a PostgreSQL server.
    Postgres,
    /// Databases on a MySQL/MariaDB server.
    Mysql,
    /// RDS databases and S3 buckets on AWS (needs the cargo feature `aws`, on by default).
    Aws,
    /// RDS databases, OSS buckets and RAM credentials on Alibaba Cloud (needs the cargo
    /// feature `alibaba`, on by default).
    Alibaba,
}

impl BrokerKind {
    /// Every kind, for messages.
    pub const ALL: [(&'static str, BrokerKind); 5] = [
        ("sandbox", BrokerKind::Sandbox),
        ("postgres", BrokerKind::Postgres),
        ("mysql", BrokerKind::Mysql),
        ("aws", BrokerKind::Aws),
        ("alibaba", BrokerKind::Alibaba),
    ];
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

/// Builds the plugin of a kind from its provider section (none for built-ins).
///
/// # Errors
/// The settings are invalid, or the kind needs a provider section and has none.
pub fn build_broker(
    kind: BrokerKind,
    config: Option<&ProviderConfig>,
) -> Result<Arc<dyn Broker>, String> {
    let needs_config = || "this kind needs a [providers.<name>] section".to_owned();
    Ok(match kind {
        BrokerKind::Sandbox => Arc::new(Sandbox::new()),
        BrokerKind::Postgres => Arc::new(
            crate::local::postgres(config.ok_or_else(needs_config)?).map_err(|e| e.to_string())?,
        ),
        BrokerKind::Mysql => Arc::new(
            crate::local::mysql(config.ok_or_else(needs_config)?).map_err(|e| e.to_string())?,
        ),
        #[cfg(feature = "aws")]
        BrokerKind::Aws => Arc::new(crate::aws::Aws::from_config(
            config.ok_or_else(needs_config)?,
        )?),
        #[cfg(not(feature = "aws"))]
        BrokerKind::Aws => {
            return Err("this build has no AWS support (cargo feature `aws`)".to_owned())
        }
        #[cfg(feature = "alibaba")]
        BrokerKind::Alibaba => Arc::new(crate::alibaba::Alibaba::from_config(
            config.ok_or_else(needs_config)?,
        )?),
        #[cfg(not(feature = "alibaba"))]
        BrokerKind::Alibaba => {
            return Err(
                "this build has no Alibaba Cloud support (cargo feature `alibaba`)".to_owned(),
            )
        }
    })
}

/// Offering id → plugin.
#[derive(Debug, Default, Clone)]
pub struct BrokerRegistry {
    by_service: HashMap<String, Arc<dyn Broker>>,
}

impl BrokerRegistry {
    /// Builds every configured provider, resolves each offering's `broker` (a provider name,
    /// or a built-in kind such as `sandbox`), and checks every plan's settings.
    ///
    /// # Errors
    /// Every problem, with its location: unknown kinds, bad provider settings, offerings that
    /// name no provider, plans whose settings the plugin refuses.
    pub fn from_config(
        providers: &BTreeMap<String, ProviderConfig>,
        services: &[ServiceOffering],
    ) -> Result<Self, Vec<Problem>> {
        let error = |location: String, message: String| Problem {
            severity: Severity::Error,
            location,
            message,
        };
        let mut problems = Vec::new();
        let mut built: BTreeMap<&str, Arc<dyn Broker>> = BTreeMap::new();
        for (name, provider) in providers {
            let result = provider
                .kind
                .parse::<BrokerKind>()
                .and_then(|kind| build_broker(kind, Some(provider)));
            match result {
                Ok(broker) => {
                    built.insert(name, broker);
                }
                Err(message) => problems.push(error(format!("providers.{name}"), message)),
            }
        }
        let mut registry = BrokerRegistry::default();
        for offering in services {
            let name = offering.broker.as_str();
            let broker = match built.get(name) {
                Some(broker) => Arc::clone(broker),
                None if providers.contains_key(name) => continue, // already reported
                None => match name
                    .parse::<BrokerKind>()
                    .and_then(|kind| build_broker(kind, None))
                {
                    Ok(broker) => {
                        built.insert(name, Arc::clone(&broker));
                        broker
                    }
                    Err(message) => {
                        problems.push(error(
                            format!("services[{}].broker", offering.name),
                            format!("{name:?} is neither a configured provider nor usable built-in: {message}"),
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
        assert!(
            err.contains("options are: sandbox, postgres, mysql"),
            "{err}"
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_providers_build_offline_and_their_plans_are_checked() {
        let mut config = skybroker_config::Config::builtin();
        let provider: ProviderConfig =
            serde_json::from_value(serde_json::json!({"kind": "aws", "region": "eu-west-1"}))
                .unwrap();
        config.providers.insert("aws".into(), provider);
        config.services[0].broker = "aws".into();
        for plan in &mut config.services[0].plans {
            plan.settings = serde_json::json!({"service": "s3"}).into();
        }
        let registry = BrokerRegistry::from_config(&config.providers, &config.services).unwrap();
        assert_eq!(registry.get(&config.services[0].id).unwrap().name(), "aws");
        config.services[0].plans[0].settings =
            serde_json::json!({"service": "s3", "versioned": true}).into();
        let problems =
            BrokerRegistry::from_config(&config.providers, &config.services).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("versioned"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn the_builtin_catalog_builds_and_bad_settings_are_located() {
        let mut config = skybroker_config::Config::builtin();
        let registry = BrokerRegistry::from_config(&config.providers, &config.services).unwrap();
        assert_eq!(
            registry.get(&config.services[0].id).unwrap().name(),
            "sandbox"
        );
        config.services[0].plans[1].settings = serde_json::json!({"mode": "sometimes"}).into();
        let problems =
            BrokerRegistry::from_config(&config.providers, &config.services).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].location,
            "services[sandbox].plans[async].settings"
        );
    }
}
