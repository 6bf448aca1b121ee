//! Which plugin serves which offering.
//!
//! Providers are one table, [`PROVIDERS`]: each `kind` a configuration may name and the
//! function that builds its plugin. The set of plugins is visible and compile-checked, with no
//! global registration magic; adding a provider is its folder plus one line in that table
//! (CONTRIBUTING.md lists the rest: a cargo feature, a test that runs the contract suite).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use skybroker_config::{Problem, ProviderConfig, ServiceOffering, Severity};

use crate::{Broker, SettingsError};

/// Why a provider's plugin cannot be built: said at start-up and by `check-config`, with
/// the section's location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No provider has this kind.
    #[error("unknown broker {kind:?} (options are: {options})")]
    UnknownKind {
        /// The kind named.
        kind: String,
        /// The kinds this build knows, comma-separated.
        options: String,
    },
    /// The kind needs a `[providers.<name>]` section and was named without one.
    #[error("this kind needs a [providers.<name>] section")]
    NeedsSection,
    /// The kind's cargo feature is off in this build.
    #[error("this build has no {provider} support (cargo feature `{feature}`)")]
    NotBuilt {
        /// The provider, for people.
        provider: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The section's settings are wrong.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// A local provider's section is wrong.
    #[error("{0}")]
    Local(#[from] crate::local::ConfigError),
}

/// Builds a provider's plugin from its `[providers.<name>]` section, or as a built-in
/// without one (`None`, when an offering names the kind itself).
pub type Build = fn(Option<&ProviderConfig>) -> Result<Arc<dyn Broker>, ProviderError>;

/// Every provider this build knows: its `kind`, and how its plugin is built.
pub const PROVIDERS: [(&str, Build); 5] = [
    ("sandbox", |_| Ok(Arc::new(crate::sandbox::Sandbox::new()))),
    ("postgres", |config| {
        Ok(Arc::new(crate::local::postgres(section(config)?)?))
    }),
    ("mysql", |config| {
        Ok(Arc::new(crate::local::mysql(section(config)?)?))
    }),
    ("aws", aws),
    ("alibaba", alibaba),
];

/// The section a provider needs.
fn section(config: Option<&ProviderConfig>) -> Result<&ProviderConfig, ProviderError> {
    config.ok_or(ProviderError::NeedsSection)
}

/// RDS databases and S3 buckets on AWS (the cargo feature `aws`, on by default).
fn aws(config: Option<&ProviderConfig>) -> Result<Arc<dyn Broker>, ProviderError> {
    #[cfg(feature = "aws")]
    return Ok(Arc::new(crate::aws::Aws::from_config(section(config)?)?));
    #[cfg(not(feature = "aws"))]
    {
        let _ = config;
        Err(ProviderError::NotBuilt {
            provider: "AWS",
            feature: "aws",
        })
    }
}

/// RDS databases, OSS buckets and RAM credentials on Alibaba Cloud (the cargo feature
/// `alibaba`, on by default).
fn alibaba(config: Option<&ProviderConfig>) -> Result<Arc<dyn Broker>, ProviderError> {
    #[cfg(feature = "alibaba")]
    return Ok(Arc::new(crate::alibaba::Alibaba::from_config(section(
        config,
    )?)?));
    #[cfg(not(feature = "alibaba"))]
    {
        let _ = config;
        Err(ProviderError::NotBuilt {
            provider: "Alibaba Cloud",
            feature: "alibaba",
        })
    }
}

/// Builds the plugin of provider `kind` from its section (none for built-ins).
///
/// # Errors
/// An unknown kind (the message lists the known ones), invalid settings, or a kind that needs
/// a provider section and has none.
pub fn build_broker(
    kind: &str,
    config: Option<&ProviderConfig>,
) -> Result<Arc<dyn Broker>, ProviderError> {
    let Some((_, build)) = PROVIDERS.iter().find(|(known, _)| *known == kind) else {
        let options: Vec<&str> = PROVIDERS.iter().map(|(known, _)| *known).collect();
        return Err(ProviderError::UnknownKind {
            kind: kind.to_owned(),
            options: options.join(", "),
        });
    };
    build(config)
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
            let result = build_broker(&provider.kind, Some(provider));
            match result {
                Ok(broker) => {
                    built.insert(name, broker);
                }
                Err(err) => problems.push(error(format!("providers.{name}"), err.to_string())),
            }
        }
        let mut registry = BrokerRegistry::default();
        for offering in services {
            let name = offering.broker.as_str();
            let broker = match built.get(name) {
                Some(broker) => Arc::clone(broker),
                None if providers.contains_key(name) => continue, // already reported
                None => match build_broker(name, None) {
                    Ok(broker) => {
                        built.insert(name, Arc::clone(&broker));
                        broker
                    }
                    Err(err) => {
                        problems.push(error(
                            format!("services[{}].broker", offering.name),
                            format!("{name:?} is neither a configured provider nor usable built-in: {err}"),
                        ));
                        continue;
                    }
                },
            };
            for plan in &offering.plans {
                if let Err(message) = broker.check_plan_settings(&plan.settings) {
                    problems.push(error(
                        format!("services[{}].plans[{}].settings", offering.name, plan.name),
                        message.to_string(),
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
        let Err(err) = build_broker("aws-rds", None) else {
            panic!("an unknown kind builds");
        };
        let err = err.to_string();
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
