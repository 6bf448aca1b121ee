//! Alibaba Cloud (kind `alibaba`): RDS databases, OSS buckets and RAM credentials in one
//! account and region, on Alibaba Cloud's OpenAPI.
//!
//! One `[providers.<name>]` section is one account and region, reached with an AccessKey
//! pair or with temporary credentials (an assumed RAM role, ACK's RRSA, an ECS instance's
//! RAM role: see [`auth`]); each
//! plan's `settings` names the product it sells with `service = "rds"` or `service = "oss"`
//! (see [`rds`] and [`oss`]). The folder has the shape every cloud provider shares:
//!
//! - `mod.rs` (this file): [`Alibaba`], the [`Broker`] implementation, dispatching on the plan;
//! - [`config`]: the settings, from the configuration file or code, checked at start;
//! - [`auth`]: where the signing credentials come from, and keeping temporary ones fresh;
//! - [`credential`]: the AccessKey and the two signatures (ACS3 for RPC, OSS4 for OSS);
//! - [`client`]: one HTTP client: signing, retries with back-off and jitter, timeouts,
//!   request ids;
//! - [`error`]: what Alibaba's error codes mean in OSB terms, decided in one table;
//! - [`rds`], [`oss`], [`ram`]: the products.
//!
//! Why it is shaped so:
//! - **No SDK.** Alibaba Cloud publishes no maintained Rust SDK; the RPC and OSS protocols are
//!   small, so the provider speaks them over reqwest, with the signatures written once in
//!   [`credential`] and checked against the examples Alibaba publishes.
//! - **Idempotent by naming and tokens.** Buckets, RAM users and policies are named from the
//!   OSB id they serve; RDS creations carry a `ClientToken`; a call repeated after a crash
//!   adopts what the first one made.
//! - **Long work is polled.** RDS creations, changes and deletions and the emptying of buckets
//!   answer "in progress"; the engine polls with back-off.
//! - **No secret in a log.** AccessKey secrets and security tokens are
//!   [`skybroker_config::Secret`]s; binding passwords and keys travel only in credentials and
//!   are never formatted into messages.

pub mod auth;
pub mod client;
pub mod config;
pub mod credential;
pub mod error;
pub mod oss;
pub mod ram;
pub mod rds;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use skybroker_config::ProviderConfig;

pub use client::AlibabaClient;
pub use config::{AlibabaBuilder, AlibabaSettings, BuildError};
use oss::{AlibabaOss, OssPlan};
use rds::{AlibabaRds, RdsPlan};

use crate::SettingsError;
use crate::{Broker, BrokerError, OperationKind, OperationRequest, Progress};

/// The plugin's name, for logs, metrics and errors.
const BROKER: &str = "alibaba";

/// A plan's `settings`: the product, then its own settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum AlibabaPlan {
    /// An RDS instance per instance.
    Rds(RdsPlan),
    /// An OSS bucket per instance.
    Oss(OssPlan),
}

impl AlibabaPlan {
    /// Parses and checks a plan's settings.
    pub fn parse(settings: &Value) -> Result<AlibabaPlan, SettingsError> {
        let plan: AlibabaPlan = serde_json::from_value(settings.clone()).map_err(|err| {
            SettingsError::invalid(format!(
                "{err} (an alibaba plan needs service = \"rds\" or service = \"oss\")"
            ))
        })?;
        match &plan {
            AlibabaPlan::Rds(rds) => rds.check()?,
            AlibabaPlan::Oss(oss) => oss.check()?,
        }
        Ok(plan)
    }

    fn of(request: &OperationRequest) -> Result<AlibabaPlan, BrokerError> {
        AlibabaPlan::parse(&request.plan_settings).map_err(BrokerError::from)
    }

    fn service(&self) -> &'static str {
        match self {
            AlibabaPlan::Rds(_) => "rds",
            AlibabaPlan::Oss(_) => "oss",
        }
    }
}

/// The Alibaba Cloud provider: one account and region (and, for OSS plans that name one,
/// other regions of the same account).
#[derive(Debug)]
pub struct Alibaba {
    settings: AlibabaSettings,
    client: AlibabaClient,
    /// Clients for OSS plans in another region than the provider's, made on first use.
    regional: std::sync::Mutex<std::collections::HashMap<String, AlibabaClient>>,
}

impl Alibaba {
    /// Builds the provider from `[providers.<name>]` (nothing is sent to Alibaba Cloud yet).
    ///
    /// # Errors
    /// Every setting problem [`AlibabaBuilder::build`] finds.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, SettingsError> {
        let settings = AlibabaBuilder::from_config(config)?
            .build()
            .map_err(|err| SettingsError::invalid(err.to_string()))?;
        Alibaba::new(settings).map_err(|err| SettingsError::invalid(err.to_string()))
    }

    /// The provider for settings built in code.
    ///
    /// # Errors
    /// The HTTP client cannot be made (no CA certificates for https endpoints).
    pub fn new(settings: AlibabaSettings) -> Result<Self, error::AlibabaError> {
        let client = AlibabaClient::new(settings.client.clone())?;
        Ok(Alibaba {
            settings,
            client,
            regional: Default::default(),
        })
    }

    /// The client for an OSS plan: the provider's, or one signing for the plan's region and
    /// (unless `oss_endpoint` is set) reaching that region's endpoint.
    fn oss_client(&self, plan: &OssPlan) -> Result<AlibabaClient, BrokerError> {
        let provider_region = &self.settings.client.region;
        let Some(region) = plan.region.as_ref().filter(|r| *r != provider_region) else {
            return Ok(self.client.clone());
        };
        let mut regional = self.regional.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = regional.get(region) {
            return Ok(client.clone());
        }
        let oss_endpoint = (!self.settings.oss_endpoint_overridden)
            .then(|| format!("https://oss-{region}.aliyuncs.com"));
        // Shares the provider client's connections and credentials.
        let client = self.client.for_region(region, oss_endpoint)?;
        regional.insert(region.clone(), client.clone());
        Ok(client)
    }

    fn rds(&self) -> AlibabaRds<'_> {
        AlibabaRds {
            client: &self.client,
            name_prefix: &self.settings.name_prefix,
        }
    }

    fn oss<'a>(&'a self, client: &'a AlibabaClient) -> AlibabaOss<'a> {
        AlibabaOss {
            client,
            name_prefix: &self.settings.name_prefix,
        }
    }
}

#[async_trait]
impl Broker for Alibaba {
    fn name(&self) -> &'static str {
        BROKER
    }

    fn is_async(&self, plan_settings: &Value, kind: OperationKind) -> bool {
        match (AlibabaPlan::parse(plan_settings), kind) {
            (_, OperationKind::Bind | OperationKind::Unbind) => false,
            // Buckets are made and changed in one call; deleting one may mean emptying it.
            (Ok(AlibabaPlan::Oss(plan)), OperationKind::Deprovision) => plan.deprovision_is_async(),
            (Ok(AlibabaPlan::Oss(_)), _) => false,
            _ => true,
        }
    }

    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError> {
        AlibabaPlan::parse(plan_settings).map(|_| ())
    }

    fn unbinds_before_deprovision(&self, plan_settings: &Value) -> bool {
        // A refusing OSS plan checks for objects before any binding is revoked.
        !matches!(AlibabaPlan::parse(plan_settings), Ok(AlibabaPlan::Oss(plan)) if !plan.deprovision_is_async())
    }

    fn check_parameters(
        &self,
        plan_settings: &Value,
        _kind: OperationKind,
        parameters: &Value,
    ) -> Result<(), SettingsError> {
        let checked = match AlibabaPlan::parse(plan_settings)? {
            AlibabaPlan::Rds(plan) => plan.security_ips(parameters).map(|_| ()),
            AlibabaPlan::Oss(_) => oss::refuse_parameters(parameters),
        };
        checked.map_err(|err| match err {
            BrokerError::InvalidParameters(message) => SettingsError::Invalid(message),
            other => SettingsError::invalid(other.to_string()),
        })
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AlibabaPlan::of(request)? {
            AlibabaPlan::Rds(plan) => self.rds().provision(request, &plan).await,
            AlibabaPlan::Oss(plan) => {
                let client = self.oss_client(&plan)?;
                self.oss(&client).provision(request, &plan).await
            }
        }
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let plan = AlibabaPlan::of(request)?;
        let current = request.instance_state["service"].as_str();
        if current.is_some_and(|service| service != plan.service()) {
            return Err(BrokerError::Unprocessable(format!(
                "an instance of {} cannot move to a {} plan",
                current.unwrap_or_default(),
                plan.service()
            )));
        }
        match plan {
            AlibabaPlan::Rds(plan) => self.rds().update(request, &plan).await,
            AlibabaPlan::Oss(plan) => {
                let client = self.oss_client(&plan)?;
                self.oss(&client).update(request, &plan).await
            }
        }
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AlibabaPlan::of(request)? {
            AlibabaPlan::Rds(plan) => self.rds().deprovision(request, &plan).await,
            AlibabaPlan::Oss(plan) => {
                let client = self.oss_client(&plan)?;
                self.oss(&client).deprovision(request, &plan).await
            }
        }
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AlibabaPlan::of(request)? {
            AlibabaPlan::Rds(plan) => self.rds().bind(request, &plan).await,
            AlibabaPlan::Oss(plan) => {
                let client = self.oss_client(&plan)?;
                self.oss(&client).bind(request, &plan).await
            }
        }
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AlibabaPlan::of(request)? {
            AlibabaPlan::Rds(_) => self.rds().unbind(request).await,
            AlibabaPlan::Oss(_) => self.oss(&self.client).unbind(request).await,
        }
    }

    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AlibabaPlan::of(request)? {
            AlibabaPlan::Rds(plan) => self.rds().poll(request, &plan).await,
            // Only emptying a bucket spans polls: carry on.
            AlibabaPlan::Oss(plan) if request.kind == OperationKind::Deprovision => {
                let client = self.oss_client(&plan)?;
                self.oss(&client).deprovision(request, &plan).await
            }
            AlibabaPlan::Oss(_) => Err(BrokerError::Failed(
                "nothing to poll for this OSS operation".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_name_their_service_and_refuse_unknown_keys() {
        let rds = json!({"service": "rds", "engine": "mysql", "engine_version": "8.0",
                         "instance_class": "mysql.n2.small.1", "storage_gb": 20});
        assert!(matches!(AlibabaPlan::parse(&rds), Ok(AlibabaPlan::Rds(_))));
        assert!(matches!(
            AlibabaPlan::parse(&json!({"service": "oss"})),
            Ok(AlibabaPlan::Oss(_))
        ));
        for (settings, needle) in [
            (json!({}), "service"),
            (json!({"service": "ecs"}), "unknown variant"),
            (
                json!({"service": "oss", "acll": "private"}),
                "unknown field",
            ),
            (
                json!({"service": "rds", "engine": "postgresql", "engine_version": "16.0",
                       "instance_class": "pg.n2.small.1", "storage_gb": 20, "read_only": true}),
                "read_only",
            ),
        ] {
            let err = AlibabaPlan::parse(&settings).unwrap_err().to_string();
            assert!(err.contains(needle), "{settings}: {err}");
        }
    }
}
