//! AWS (kind `aws`): RDS databases and S3 buckets in one account and region, on the official
//! AWS SDK for Rust.
//!
//! One `[providers.<name>]` section is one account and region; each plan's `settings` names
//! the product it sells with `service = "s3"` or `service = "rds"` (see [`s3`] and [`rds`] for
//! what each does). The folder has the shape every cloud provider shares:
//!
//! - `mod.rs` (this file): [`Aws`], the [`Broker`] implementation, dispatching on the plan;
//! - [`config`]: the settings, from the configuration file or code, checked at start;
//! - [`client`]: the SDK clients (credentials through the standard AWS chain);
//! - [`error`]: what AWS errors mean in OSB terms, decided in one table;
//! - [`s3`], [`rds`]: the products.
//!
//! Why it is shaped so:
//! - **Idempotent by naming.** Every resource is named from the OSB id it serves
//!   ([`crate::names::cloud_name`]), so a call repeated after a crash finds and adopts what
//!   the first created; nothing relies on the broker remembering an AWS id it never persisted.
//! - **Long work is polled.** Creating, changing and deleting DB instances and emptying
//!   buckets answer "in progress"; the engine polls with back-off. Binds and unbinds are
//!   short and answer synchronously.
//! - **Retries in two layers.** The SDK retries each call (standard mode: throttling, 5xx,
//!   timeouts, with back-off and jitter, `max_attempts`); what still fails transiently becomes
//!   [`BrokerError::Transient`] and the engine tries the operation again later.
//! - **No secret in a log.** Static keys and the generated passwords are
//!   [`skybroker_config::Secret`]s or live only in the stored state and in binding
//!   credentials; nothing here formats them, and the SDK's own types redact them.
//! - **Lazy clients.** Building the provider (at start and in `check-config`) touches no
//!   network; the SDK clients are made on the first call, on a worker.

pub mod client;
pub mod config;
pub mod error;
pub mod rds;
pub mod s3;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use skybroker_config::ProviderConfig;
use tokio::sync::OnceCell;

pub use client::AwsClients;
pub use config::{AwsBuilder, AwsSettings, BuildError, StaticCredentials};
use rds::{AwsRds, RdsPlan};
use s3::{AwsS3, S3Plan};

use crate::SettingsError;
use crate::{Broker, BrokerError, OperationKind, OperationRequest, Progress};

/// The SDK crates the provider is built on, re-exported so tests and embedding applications
/// make clients of exactly the same versions (e.g. to use the credentials a binding returns).
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_iam as iam;
    pub use aws_sdk_rds as rds;
    pub use aws_sdk_s3 as s3;
}

/// The plugin's name, for logs, metrics and errors.
const BROKER: &str = "aws";

/// A plan's `settings`: the product, then its own settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum AwsPlan {
    /// An S3 bucket per instance.
    S3(S3Plan),
    /// An RDS DB instance per instance.
    Rds(RdsPlan),
}

impl AwsPlan {
    /// Parses and checks a plan's settings.
    pub fn parse(settings: &Value) -> Result<AwsPlan, SettingsError> {
        let plan: AwsPlan = serde_json::from_value(settings.clone()).map_err(|err| {
            SettingsError::invalid(format!(
                "{err} (an aws plan needs service = \"s3\" or service = \"rds\")"
            ))
        })?;
        match &plan {
            AwsPlan::S3(s3) => s3.check()?,
            AwsPlan::Rds(rds) => rds.check()?,
        }
        Ok(plan)
    }

    fn of(request: &OperationRequest) -> Result<AwsPlan, BrokerError> {
        AwsPlan::parse(&request.plan_settings).map_err(BrokerError::from)
    }

    fn service(&self) -> &'static str {
        match self {
            AwsPlan::S3(_) => "s3",
            AwsPlan::Rds(_) => "rds",
        }
    }
}

/// A field of the reference an earlier call answered with.
fn reference_field<'a>(request: &'a OperationRequest, key: &str) -> Option<&'a Value> {
    request.reference.as_ref()?.get(key)
}

/// The AWS provider: one account and region.
#[derive(Debug)]
pub struct Aws {
    /// What was configured.
    settings: AwsSettings,
    /// The SDK clients, made on first use.
    clients: OnceCell<AwsClients>,
}

impl Aws {
    /// Builds the provider from `[providers.<name>]` (nothing is sent to AWS yet).
    ///
    /// # Errors
    /// Every setting problem [`AwsBuilder::build`] finds.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, SettingsError> {
        let settings = AwsBuilder::from_config(config)?
            .build()
            .map_err(|err| SettingsError::invalid(err.to_string()))?;
        Ok(Aws::new(settings))
    }

    /// The provider for settings built in code.
    pub fn new(settings: AwsSettings) -> Self {
        Aws {
            settings,
            clients: OnceCell::new(),
        }
    }

    async fn clients(&self) -> &AwsClients {
        self.clients
            .get_or_init(|| AwsClients::connect(&self.settings))
            .await
    }

    async fn s3(&self) -> AwsS3<'_> {
        AwsS3 {
            settings: &self.settings,
            clients: self.clients().await,
        }
    }

    async fn rds(&self) -> AwsRds<'_> {
        AwsRds {
            settings: &self.settings,
            clients: self.clients().await,
        }
    }
}

#[async_trait]
impl Broker for Aws {
    fn name(&self) -> &'static str {
        BROKER
    }

    fn is_async(&self, _plan_settings: &Value, kind: OperationKind) -> bool {
        // Instances take seconds (buckets) to many minutes (DB instances); credentials are
        // quick to make and remove.
        !matches!(kind, OperationKind::Bind | OperationKind::Unbind)
    }

    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError> {
        AwsPlan::parse(plan_settings).map(|_| ())
    }

    fn unbinds_before_deprovision(&self, plan_settings: &Value) -> bool {
        // A plan that keeps data checks for objects before any binding is revoked.
        !matches!(AwsPlan::parse(plan_settings), Ok(AwsPlan::S3(plan))
            if plan.on_deprovision == s3::OnDeprovision::RefuseIfNotEmpty)
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            AwsPlan::S3(plan) => self.s3().await.provision(request, &plan).await,
            AwsPlan::Rds(plan) => self.rds().await.provision(request, &plan).await,
        }
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let plan = AwsPlan::of(request)?;
        let current = request.instance_state["service"].as_str();
        if current.is_some_and(|service| service != plan.service()) {
            return Err(BrokerError::Unprocessable(format!(
                "an instance of {} cannot move to a {} plan",
                current.unwrap_or_default(),
                plan.service()
            )));
        }
        match plan {
            AwsPlan::S3(plan) => self.s3().await.update(request, &plan).await,
            AwsPlan::Rds(plan) => self.rds().await.update(request, &plan).await,
        }
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            AwsPlan::S3(plan) => self.s3().await.deprovision(request, &plan).await,
            AwsPlan::Rds(plan) => self.rds().await.deprovision(request, &plan).await,
        }
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            AwsPlan::S3(plan) => self.s3().await.bind(request, &plan).await,
            AwsPlan::Rds(plan) => self.rds().await.bind(request, &plan).await,
        }
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            AwsPlan::S3(_) => self.s3().await.unbind(request).await,
            AwsPlan::Rds(plan) => self.rds().await.unbind(request, &plan).await,
        }
    }

    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            // Only emptying a bucket spans polls: carry on deleting.
            AwsPlan::S3(plan) if request.kind == OperationKind::Deprovision => {
                self.s3().await.deprovision(request, &plan).await
            }
            AwsPlan::S3(_) => Err(BrokerError::Failed(
                "nothing to poll for this S3 operation".to_owned(),
            )),
            AwsPlan::Rds(plan) => self.rds().await.poll(request, &plan).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_name_their_service_and_refuse_unknown_keys() {
        assert!(matches!(
            AwsPlan::parse(&json!({"service": "s3", "versioning": true})),
            Ok(AwsPlan::S3(S3Plan {
                versioning: true,
                ..
            }))
        ));
        let rds = json!({"service": "rds", "engine": "postgres",
                         "instance_class": "db.t4g.micro", "allocated_storage_gb": 20});
        assert!(matches!(AwsPlan::parse(&rds), Ok(AwsPlan::Rds(_))));
        for (settings, needle) in [
            (json!({}), "service"),
            (json!({"service": "dynamodb"}), "unknown variant"),
            (
                json!({"service": "s3", "versionning": true}),
                "unknown field",
            ),
            (
                json!({"service": "rds", "engine": "oracle"}),
                "unknown variant",
            ),
        ] {
            let err = AwsPlan::parse(&settings).unwrap_err().to_string();
            assert!(err.contains(needle), "{settings}: {err}");
        }
    }

    #[test]
    fn instances_are_async_and_bindings_sync() {
        let aws = Aws::new(AwsBuilder::new().with_region("eu-west-1").build().unwrap());
        assert!(aws.is_async(&Value::Null, OperationKind::Provision));
        assert!(aws.is_async(&Value::Null, OperationKind::Deprovision));
        assert!(!aws.is_async(&Value::Null, OperationKind::Bind));
    }
}
