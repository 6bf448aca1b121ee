//! AWS (kind `aws`): RDS databases and S3 buckets in one account and region, on the official
//! AWS SDK for Rust.
//!
//! One `[providers.<name>]` section is one set of credentials and a default region (and
//! role); each plan's `settings` names the product it sells with `service = "s3"` or
//! `service = "rds"` (see [`s3`] and [`rds`] for what each does), and may place it in a
//! `region` and under a `role_arn` (with `external_id`) of its own ([`Placement`]). The folder
//! has the shape every cloud provider shares:
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
//!   network; the SDK clients of an account (region and role) are made on its first call, on
//!   a worker, and kept.
//! - **An instance stays where it was made.** Its region is recorded in its state when it is
//!   created and every later call goes there; a plan change that would move it to another
//!   region is refused (422), as AWS cannot move buckets or DB instances between regions.

pub mod client;
pub mod config;
pub mod error;
pub mod rds;
pub mod s3;

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use skybroker_config::ProviderConfig;
use tokio::sync::Mutex;

pub use client::{Account, AwsClients};
pub use config::{AssumeRole, AwsBuilder, AwsSettings, BuildError, StaticCredentials};
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

/// Where a plan's resources are made and as whom, when not the provider's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The plan's region.
    pub region: Option<String>,
    /// The plan's role.
    pub role: Option<AssumeRole>,
}

/// A plan's settings as written: the placement keys, and the product's own beside them.
#[derive(Debug, Deserialize)]
struct PlanSettings {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(flatten)]
    product: AwsPlan,
}

impl AwsPlan {
    /// Parses and checks a plan's settings (the product's; see [`AwsPlan::parse_placed`]).
    pub fn parse(settings: &Value) -> Result<AwsPlan, SettingsError> {
        AwsPlan::parse_placed(settings).map(|(plan, _)| plan)
    }

    /// Parses and checks a plan's settings: the product and where it is placed.
    pub fn parse_placed(settings: &Value) -> Result<(AwsPlan, Placement), SettingsError> {
        let raw: PlanSettings = serde_json::from_value(settings.clone()).map_err(|err| {
            SettingsError::invalid(format!(
                "{err} (an aws plan needs service = \"s3\" or service = \"rds\")"
            ))
        })?;
        match &raw.product {
            AwsPlan::S3(s3) => s3.check()?,
            AwsPlan::Rds(rds) => rds.check()?,
        }
        let invalid = |err: BuildError| SettingsError::invalid(err.to_string());
        if let Some(region) = &raw.region {
            config::check_region(region).map_err(invalid)?;
        }
        let role = match (raw.role_arn, raw.external_id) {
            (Some(arn), external_id) => Some(AssumeRole::new(arn, external_id).map_err(invalid)?),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(SettingsError::invalid(
                    "external_id is the role's: it needs role_arn",
                ))
            }
        };
        let placement = Placement {
            region: raw.region,
            role,
        };
        Ok((raw.product, placement))
    }

    fn of(request: &OperationRequest) -> Result<(AwsPlan, Placement), BrokerError> {
        AwsPlan::parse_placed(&request.plan_settings).map_err(BrokerError::from)
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

/// The AWS provider: one set of credentials, the accounts and regions its plans reach.
#[derive(Debug)]
pub struct Aws {
    /// What was configured.
    settings: AwsSettings,
    /// The SDK clients of each account called so far, made on first use.
    clients: Mutex<HashMap<Account, AwsClients>>,
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
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The account of an operation: the region its instance was made in (recorded in its
    /// state; an instance made before regions were recorded is in the provider's), or for a
    /// provision the plan's region, else the provider's; the plan's role, else the provider's.
    fn account(&self, request: &OperationRequest, placement: &Placement) -> Account {
        let recorded = request.instance_state["region"].as_str().map(str::to_owned);
        let region = match (recorded, request.kind) {
            (Some(region), _) => region,
            (None, OperationKind::Provision) => placement
                .region
                .clone()
                .unwrap_or_else(|| self.settings.region.clone()),
            (None, _) => self.settings.region.clone(),
        };
        let role = placement
            .role
            .clone()
            .or_else(|| self.settings.assume_role.clone());
        Account { region, role }
    }

    async fn clients(&self, account: Account) -> AwsClients {
        let mut clients = self.clients.lock().await;
        if let Some(known) = clients.get(&account) {
            return known.clone();
        }
        let made = AwsClients::connect_to(&self.settings, &account).await;
        clients.insert(account, made.clone());
        made
    }

    async fn s3(&self, request: &OperationRequest, placement: &Placement) -> AwsS3<'_> {
        AwsS3 {
            settings: &self.settings,
            clients: self.clients(self.account(request, placement)).await,
        }
    }

    async fn rds(&self, request: &OperationRequest, placement: &Placement) -> AwsRds<'_> {
        AwsRds {
            settings: &self.settings,
            clients: self.clients(self.account(request, placement)).await,
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
            (AwsPlan::S3(plan), at) => self.s3(request, &at).await.provision(request, &plan).await,
            (AwsPlan::Rds(plan), at) => {
                self.rds(request, &at).await.provision(request, &plan).await
            }
        }
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let (plan, at) = AwsPlan::of(request)?;
        let current = request.instance_state["service"].as_str();
        if current.is_some_and(|service| service != plan.service()) {
            return Err(BrokerError::Unprocessable(format!(
                "an instance of {} cannot move to a {} plan",
                current.unwrap_or_default(),
                plan.service()
            )));
        }
        let here = self.account(request, &at).region;
        let there = at.region.as_deref().unwrap_or(&self.settings.region);
        if here != there {
            return Err(BrokerError::Unprocessable(format!(
                "the instance is in {here} and the plan's region is {there}: AWS cannot move it \
                 between regions"
            )));
        }
        match plan {
            AwsPlan::S3(plan) => self.s3(request, &at).await.update(request, &plan).await,
            AwsPlan::Rds(plan) => self.rds(request, &at).await.update(request, &plan).await,
        }
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            (AwsPlan::S3(plan), at) => {
                self.s3(request, &at)
                    .await
                    .deprovision(request, &plan)
                    .await
            }
            (AwsPlan::Rds(plan), at) => {
                self.rds(request, &at)
                    .await
                    .deprovision(request, &plan)
                    .await
            }
        }
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            (AwsPlan::S3(plan), at) => self.s3(request, &at).await.bind(request, &plan).await,
            (AwsPlan::Rds(plan), at) => self.rds(request, &at).await.bind(request, &plan).await,
        }
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            (AwsPlan::S3(_), at) => self.s3(request, &at).await.unbind(request).await,
            (AwsPlan::Rds(plan), at) => self.rds(request, &at).await.unbind(request, &plan).await,
        }
    }

    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        match AwsPlan::of(request)? {
            // Only emptying a bucket spans polls: carry on deleting.
            (AwsPlan::S3(plan), at) if request.kind == OperationKind::Deprovision => {
                self.s3(request, &at)
                    .await
                    .deprovision(request, &plan)
                    .await
            }
            (AwsPlan::S3(_), _) => Err(BrokerError::Failed(
                "nothing to poll for this S3 operation".to_owned(),
            )),
            (AwsPlan::Rds(plan), at) => self.rds(request, &at).await.poll(request, &plan).await,
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
        let placed = json!({"service": "s3", "region": "ap-south-1",
                            "role_arn": "arn:aws:iam::123456789012:role/tenant",
                            "external_id": "tenant-7"});
        let (plan, placement) = AwsPlan::parse_placed(&placed).unwrap();
        assert!(matches!(plan, AwsPlan::S3(_)));
        assert_eq!(placement.region.as_deref(), Some("ap-south-1"));
        let role = placement.role.unwrap();
        assert_eq!(role.arn, "arn:aws:iam::123456789012:role/tenant");
        assert_eq!(role.external_id.as_deref(), Some("tenant-7"));
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
            (json!({"service": "s3", "region": "EU WEST"}), "region"),
            (
                json!({"service": "s3", "role_arn": "arn:aws:iam::1:role/x"}),
                "not an IAM role ARN",
            ),
            (
                json!({"service": "s3", "external_id": "x-1"}),
                "needs role_arn",
            ),
        ] {
            let err = AwsPlan::parse(&settings).unwrap_err().to_string();
            assert!(err.contains(needle), "{settings}: {err}");
        }
    }

    #[test]
    fn an_instance_is_called_in_its_own_region() {
        let aws = Aws::new(AwsBuilder::new().with_region("eu-west-1").build().unwrap());
        let placement = Placement {
            region: Some("us-west-2".to_owned()),
            role: None,
        };
        let request = |kind, state: Value| OperationRequest {
            kind,
            operation_id: "op-1".into(),
            instance_id: "instance-1".into(),
            binding_id: None,
            service_id: "s3".into(),
            plan_id: "s3-west".into(),
            previous_plan_id: None,
            plan_settings: std::sync::Arc::new(json!({"service": "s3", "region": "us-west-2"})),
            parameters: Value::Null,
            context: Value::Null,
            maintenance_version: None,
            instance_state: state,
            binding_state: Value::Null,
            reference: None,
            accepts_incomplete: true,
            originating_identity: None,
        };
        let region = |kind, state| aws.account(&request(kind, state), &placement).region;
        // A provision goes where the plan says; later calls where the instance is.
        assert_eq!(region(OperationKind::Provision, Value::Null), "us-west-2");
        assert_eq!(
            region(OperationKind::Deprovision, json!({"region": "ap-south-1"})),
            "ap-south-1"
        );
        // An instance whose state has no region was made before regions were recorded: in the
        // provider's, whatever its plan says now.
        assert_eq!(region(OperationKind::Bind, json!({})), "eu-west-1");
        assert_eq!(region(OperationKind::Update, json!({})), "eu-west-1");
    }

    #[test]
    fn instances_are_async_and_bindings_sync() {
        let aws = Aws::new(AwsBuilder::new().with_region("eu-west-1").build().unwrap());
        assert!(aws.is_async(&Value::Null, OperationKind::Provision));
        assert!(aws.is_async(&Value::Null, OperationKind::Deprovision));
        assert!(!aws.is_async(&Value::Null, OperationKind::Bind));
    }
}
