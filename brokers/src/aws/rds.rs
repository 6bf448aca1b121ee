//! RDS databases (`service = "rds"` plans): a DB instance per service instance, a database
//! user per binding made by the local-database code.
//!
//! - **Provision** is two steps so that a crash can never lose the master password: the first
//!   call only generates the password and answers "in progress" with it in the instance's
//!   state, which the engine persists; the first poll then creates the DB instance
//!   `<prefix>-<hash of the instance id>` with that password (an instance that exists already
//!   is adopted: the call is a repeat), and later polls wait until it is `available`. The
//!   instance carries the tag `skybroker:credentials` naming the operation whose password it
//!   has; an adopted instance whose tag differs (a failed provision repeated) gets the stored
//!   password set again. The password never leaves the stored state.
//! - **Bind** connects to the instance's endpoint as the master user and runs the local
//!   provider (`crate::sql`): the instance's database and roles are created when missing
//!   (idempotent), then a per-binding user with read-write or read-only grants. Roles and
//!   grants thus have one implementation for servers the operator runs and for RDS.
//! - **Unbind** drops that user, again through the local provider.
//! - **Update** modifies class, storage, backup retention and multi-AZ (applied immediately)
//!   and polls until nothing is pending; storage cannot shrink and the engine cannot change.
//! - **Deprovision** deletes the instance (a final snapshot when the plan says so) and polls
//!   until it is gone.

use aws_sdk_rds::types::{DbInstance, Tag};
use serde::Deserialize;
use serde_json::{json, Value};
use skybroker_config::Secret;

use super::client::AwsClients;
use super::error::{broker_error, classify, Kind};
use super::{reference_field, AwsSettings};
use crate::names::{cloud_name, new_password};
use crate::sql::mysql::MysqlServer;
use crate::sql::postgres::PostgresServer;
use crate::sql::{PlanSettings, ServerSettings};
use crate::SettingsError;
use crate::{Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress};

/// The tag naming the operation whose master password an instance has.
const CREDENTIALS_TAG: &str = "skybroker:credentials";

/// The database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// RDS for PostgreSQL.
    Postgres,
    /// RDS for MySQL.
    Mysql,
    /// RDS for MariaDB.
    Mariadb,
}

impl Engine {
    /// RDS's name of the engine.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Mariadb => "mariadb",
        }
    }
}

/// A `service = "rds"` plan's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsPlan {
    /// The engine.
    pub engine: Engine,
    /// The engine version (else RDS's default for the engine).
    #[serde(default)]
    pub engine_version: Option<String>,
    /// The instance class, e.g. `db.t4g.micro`.
    pub instance_class: String,
    /// Other classes a provision or update parameter `instance_class` may pick.
    #[serde(default)]
    pub allowed_instance_classes: Vec<String>,
    /// Storage in GiB.
    pub allocated_storage_gb: i32,
    /// The most a parameter `allocated_storage_gb` may ask for (else storage is fixed).
    #[serde(default)]
    pub max_allocated_storage_gb: Option<i32>,
    /// `gp3`, `gp2`, `io1`... (else RDS's default).
    #[serde(default)]
    pub storage_type: Option<String>,
    /// The DB subnet group (else the default VPC's).
    #[serde(default)]
    pub subnet_group: Option<String>,
    /// VPC security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Days of automated backups (0 turns them off; at most 35).
    #[serde(default = "default_backup_days")]
    pub backup_retention_days: i32,
    /// A standby in another availability zone.
    #[serde(default)]
    pub multi_az: bool,
    /// Whether the instance gets a public address.
    #[serde(default)]
    pub publicly_accessible: bool,
    /// Encryption at rest.
    #[serde(default = "yes")]
    pub storage_encrypted: bool,
    /// Take a final snapshot when deprovisioned.
    #[serde(default = "yes")]
    pub final_snapshot: bool,
    /// The master user's name.
    #[serde(default = "default_master")]
    pub master_username: String,
    /// The per-binding users and the database inside the instance: the local providers'
    /// plan settings (`access`, `connection_limit`, `encoding`, `extensions`), handed to
    /// them as they are.
    #[serde(default)]
    pub database: Value,
}

fn default_backup_days() -> i32 {
    7
}

fn yes() -> bool {
    true
}

fn default_master() -> String {
    "skybroker".to_owned()
}

impl RdsPlan {
    /// The `database` settings, parsed and checked as the local providers do.
    pub fn database_settings(&self) -> Result<PlanSettings, BrokerError> {
        PlanSettings::effective(&self.database, &Value::Null)
    }

    /// Checks what cannot be expressed in types.
    pub fn check(&self) -> Result<(), SettingsError> {
        let database =
            (self.database_settings()).map_err(|err| SettingsError::invalid(err.to_string()))?;
        if self.engine != Engine::Postgres && !database.extensions.is_empty() {
            return Err(SettingsError::invalid(
                "database.extensions are a PostgreSQL setting",
            ));
        }
        if !(0..=35).contains(&self.backup_retention_days) {
            return Err(SettingsError::invalid(
                "backup_retention_days must be between 0 and 35",
            ));
        }
        if self.allocated_storage_gb < 5 {
            return Err(SettingsError::invalid(
                "allocated_storage_gb must be at least 5",
            ));
        }
        if self
            .max_allocated_storage_gb
            .is_some_and(|max| max < self.allocated_storage_gb)
        {
            return Err(SettingsError::invalid(
                "max_allocated_storage_gb is below allocated_storage_gb",
            ));
        }
        let name_ok = self.master_username.len() <= 16
            && self
                .master_username
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
            && self
                .master_username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(SettingsError::invalid(
                "master_username must be a letter then letters, digits or _ (at most 16)",
            ));
        }
        Ok(())
    }
}

/// What an instance looks like: the plan's values with the request's parameters applied.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    instance_class: String,
    allocated_storage_gb: i32,
    backup_retention_days: i32,
    multi_az: bool,
}

impl Shape {
    /// The plan's shape with the parameters `instance_class` (one of the plan's
    /// `allowed_instance_classes`), `allocated_storage_gb` (up to `max_allocated_storage_gb`),
    /// `backup_retention_days` (0–35) and `multi_az` applied. Other parameters are ignored.
    fn of(plan: &RdsPlan, parameters: &Value) -> Result<Shape, BrokerError> {
        let invalid = |message: String| BrokerError::InvalidParameters(message);
        let mut shape = Shape {
            instance_class: plan.instance_class.clone(),
            allocated_storage_gb: plan.allocated_storage_gb,
            backup_retention_days: plan.backup_retention_days,
            multi_az: plan.multi_az,
        };
        if let Some(class) = parameters.get("instance_class") {
            let class = class.as_str().unwrap_or_default();
            if class != plan.instance_class
                && !plan.allowed_instance_classes.iter().any(|c| c == class)
            {
                let mut options = vec![plan.instance_class.as_str()];
                options.extend(plan.allowed_instance_classes.iter().map(String::as_str));
                return Err(invalid(format!(
                    "instance_class {class:?} is not offered by this plan (options are: {})",
                    options.join(", ")
                )));
            }
            shape.instance_class = class.to_owned();
        }
        if let Some(storage) = parameters.get("allocated_storage_gb") {
            let max = plan
                .max_allocated_storage_gb
                .unwrap_or(plan.allocated_storage_gb);
            shape.allocated_storage_gb = storage
                .as_i64()
                .and_then(|gb| i32::try_from(gb).ok())
                .filter(|gb| (plan.allocated_storage_gb..=max).contains(gb))
                .ok_or_else(|| {
                    invalid(format!(
                        "allocated_storage_gb must be an integer from {} to {max}",
                        plan.allocated_storage_gb
                    ))
                })?;
        }
        if let Some(days) = parameters.get("backup_retention_days") {
            shape.backup_retention_days = days
                .as_i64()
                .and_then(|d| i32::try_from(d).ok())
                .filter(|d| (0..=35).contains(d))
                .ok_or_else(|| {
                    invalid("backup_retention_days must be an integer from 0 to 35".to_owned())
                })?;
        }
        if let Some(multi_az) = parameters.get("multi_az") {
            shape.multi_az = multi_az
                .as_bool()
                .ok_or_else(|| invalid("multi_az must be true or false".to_owned()))?;
        }
        Ok(shape)
    }

    fn to_json(&self) -> Value {
        json!({
            "instance_class": self.instance_class,
            "allocated_storage_gb": self.allocated_storage_gb,
            "backup_retention_days": self.backup_retention_days,
            "multi_az": self.multi_az,
        })
    }
}

/// A master password RDS accepts for every engine: 40 hex digits (MySQL and MariaDB allow
/// at most 41 characters), 160 bits.
fn master_password() -> String {
    new_password()[..40].to_owned()
}

/// A string of the instance state.
fn state_str<'a>(request: &'a OperationRequest, key: &str) -> Result<&'a str, BrokerError> {
    crate::sql::state_str(&request.instance_state, key)
}

/// The RDS half of the AWS provider.
#[derive(Debug)]
pub struct AwsRds<'a> {
    /// The provider's settings.
    pub settings: &'a AwsSettings,
    /// The clients of the instance's account.
    pub clients: AwsClients,
}

impl AwsRds<'_> {
    fn identifier(&self, request: &OperationRequest) -> String {
        cloud_name(&self.settings.name_prefix, &request.instance_id)
    }

    /// Step one: the password, persisted before anything exists at AWS.
    pub async fn provision(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let shape = Shape::of(plan, &request.parameters)?;
        let identifier = self.identifier(request);
        Ok(Progress::InProgress {
            reference: json!({"step": "create"}),
            description: Some(format!("creating the DB instance {identifier}")),
            state: Some(json!({
                "service": "rds",
                "region": self.clients.region,
                "identifier": identifier,
                "engine": plan.engine.name(),
                "master_username": plan.master_username,
                "master_password": master_password(),
                "credentials": request.operation_id,
                "shape": shape.to_json(),
            })),
        })
    }

    /// Step two: creates the DB instance, or adopts it.
    async fn create(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let shape = Shape::of(plan, &request.parameters)?;
        let identifier = self.identifier(request);
        let credentials = state_str(request, "credentials")?;
        let tags = [
            Tag::builder()
                .key("skybroker:managed")
                .value("true")
                .build(),
            Tag::builder()
                .key(CREDENTIALS_TAG)
                .value(credentials)
                .build(),
        ];
        let created = self
            .clients
            .rds
            .create_db_instance()
            .db_instance_identifier(&identifier)
            .engine(plan.engine.name())
            .set_engine_version(plan.engine_version.clone())
            .db_instance_class(&shape.instance_class)
            .allocated_storage(shape.allocated_storage_gb)
            .set_storage_type(plan.storage_type.clone())
            .master_username(state_str(request, "master_username")?)
            .master_user_password(state_str(request, "master_password")?)
            .set_db_subnet_group_name(plan.subnet_group.clone())
            .set_vpc_security_group_ids(
                (!plan.security_groups.is_empty()).then(|| plan.security_groups.clone()),
            )
            .backup_retention_period(shape.backup_retention_days)
            .multi_az(shape.multi_az)
            .publicly_accessible(plan.publicly_accessible)
            .storage_encrypted(plan.storage_encrypted)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(tags.to_vec()))
            .send()
            .await;
        let reset_password = match created {
            Ok(_) => {
                log::info!("creating RDS instance {identifier}");
                false
            }
            Err(err) if classify(&err) == Kind::AlreadyExists => {
                let instance = self.describe(&identifier).await?.ok_or_else(|| {
                    BrokerError::Transient(format!(
                        "the DB instance {identifier} exists and cannot be described yet"
                    ))
                })?;
                let tag = |key: &str| {
                    instance
                        .tag_list()
                        .iter()
                        .find(|t| t.key() == Some(key))
                        .and_then(|t| t.value())
                        .map(str::to_owned)
                };
                if tag("skybroker:managed").as_deref() != Some("true") {
                    return Err(BrokerError::Failed(format!(
                        "a DB instance named {identifier} exists and Skybroker did not create it"
                    )));
                }
                log::info!("adopting RDS instance {identifier}");
                tag(CREDENTIALS_TAG).as_deref() != Some(credentials)
            }
            Err(err) => {
                return Err(broker_error(
                    &format!("RDS CreateDBInstance {identifier}"),
                    err,
                ))
            }
        };
        Ok(Progress::InProgress {
            reference: json!({"step": "wait", "reset_password": reset_password}),
            description: Some(format!("DB instance {identifier}: creating")),
            state: None,
        })
    }

    /// The instance, or `None` when it does not exist.
    async fn describe(&self, identifier: &str) -> Result<Option<DbInstance>, BrokerError> {
        match self
            .clients
            .rds
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
            .await
        {
            Ok(output) => Ok(output.db_instances().first().cloned()),
            Err(err) if classify(&err) == Kind::NotFound => Ok(None),
            Err(err) => Err(broker_error(
                &format!("RDS DescribeDBInstances {identifier}"),
                err,
            )),
        }
    }

    /// Waits for a provision or update to be applied.
    async fn wait(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let identifier = self.identifier(request);
        let Some(instance) = self.describe(&identifier).await? else {
            return Ok(Progress::Failed {
                description: format!("the DB instance {identifier} no longer exists"),
                instance_usable: Some(false),
                update_repeatable: None,
            });
        };
        let status = instance.db_instance_status().unwrap_or("unknown");
        let in_progress = |status: &str| {
            Ok(Progress::InProgress {
                reference: request.reference.clone().unwrap_or(Value::Null),
                description: Some(format!("DB instance {identifier}: {status}")),
                state: None,
            })
        };
        match status {
            "available" => {}
            "failed"
            | "incompatible-network"
            | "incompatible-option-group"
            | "incompatible-parameters"
            | "incompatible-restore"
            | "inaccessible-encryption-credentials"
            | "restore-error"
            | "storage-full"
            | "insufficient-capacity"
            | "stopped"
            | "stopping"
            | "deleting" => {
                return Ok(Progress::Failed {
                    description: format!("the DB instance {identifier} is {status}"),
                    instance_usable: Some(request.kind == OperationKind::Update),
                    update_repeatable: Some(true),
                })
            }
            other => return in_progress(other),
        }
        if reference_field(request, "reset_password").and_then(Value::as_bool) == Some(true) {
            // Adopted with another password than the stored one: set ours.
            self.clients
                .rds
                .modify_db_instance()
                .db_instance_identifier(&identifier)
                .master_user_password(state_str(request, "master_password")?)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|err| broker_error(&format!("RDS ModifyDBInstance {identifier}"), err))?;
            if let Some(arn) = instance.db_instance_arn() {
                self.clients
                    .rds
                    .add_tags_to_resource()
                    .resource_name(arn)
                    .tags(
                        Tag::builder()
                            .key(CREDENTIALS_TAG)
                            .value(state_str(request, "credentials")?)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|err| {
                        broker_error(&format!("RDS AddTagsToResource {identifier}"), err)
                    })?;
            }
            return Ok(Progress::InProgress {
                reference: json!({"step": "wait"}),
                description: Some(format!(
                    "DB instance {identifier}: resetting the master password"
                )),
                state: None,
            });
        }
        if let Some(pending) = instance.pending_modified_values() {
            let pending = pending.db_instance_class().is_some()
                || pending.allocated_storage().is_some()
                || pending.multi_az().is_some()
                || pending.backup_retention_period().is_some()
                || pending.master_user_password().is_some()
                || pending.storage_type().is_some();
            if pending {
                return in_progress("applying changes");
            }
        }
        let endpoint = instance.endpoint().ok_or_else(|| {
            BrokerError::Transient(format!("DB instance {identifier} has no endpoint yet"))
        })?;
        let mut state = request.instance_state.clone();
        state["endpoint"] = json!({
            "address": endpoint.address(),
            "port": endpoint.port(),
        });
        state["shape"] = Shape::of(plan, &request.parameters)?.to_json();
        log::info!("RDS instance {identifier} is available");
        Ok(Progress::Done(Completion {
            state: Some(state),
            ..Completion::default()
        }))
    }

    /// Modifies the instance to the new plan and parameters.
    pub async fn update(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let identifier = self.identifier(request);
        if state_str(request, "engine")? != plan.engine.name() {
            return Err(BrokerError::Unprocessable(
                "the engine of an existing DB instance cannot change".to_owned(),
            ));
        }
        let shape = Shape::of(plan, &request.parameters)?;
        let current: Shape = {
            let stored = &request.instance_state["shape"];
            Shape {
                instance_class: stored["instance_class"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                allocated_storage_gb: stored["allocated_storage_gb"].as_i64().unwrap_or(0) as i32,
                backup_retention_days: stored["backup_retention_days"].as_i64().unwrap_or(0) as i32,
                multi_az: stored["multi_az"].as_bool().unwrap_or(false),
            }
        };
        if shape.allocated_storage_gb < current.allocated_storage_gb {
            return Err(BrokerError::Unprocessable(format!(
                "storage cannot shrink (from {} GiB to {} GiB)",
                current.allocated_storage_gb, shape.allocated_storage_gb
            )));
        }
        if shape != current {
            let mut modify = self
                .clients
                .rds
                .modify_db_instance()
                .db_instance_identifier(&identifier)
                .apply_immediately(true);
            if shape.instance_class != current.instance_class {
                modify = modify.db_instance_class(&shape.instance_class);
            }
            if shape.allocated_storage_gb != current.allocated_storage_gb {
                modify = modify.allocated_storage(shape.allocated_storage_gb);
            }
            if shape.backup_retention_days != current.backup_retention_days {
                modify = modify.backup_retention_period(shape.backup_retention_days);
            }
            if shape.multi_az != current.multi_az {
                modify = modify.multi_az(shape.multi_az);
            }
            modify
                .send()
                .await
                .map_err(|err| broker_error(&format!("RDS ModifyDBInstance {identifier}"), err))?;
            log::info!("modifying RDS instance {identifier}");
        }
        Ok(Progress::InProgress {
            reference: json!({"step": "wait"}),
            description: Some(format!("DB instance {identifier}: modifying")),
            state: None,
        })
    }

    /// Deletes the instance (with a final snapshot if the plan says so).
    pub async fn deprovision(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let identifier = self.identifier(request);
        // Unique per deprovision, and the same when the call is repeated.
        let snapshot = cloud_name(&format!("{identifier}-final"), &request.operation_id);
        let deleted = self
            .clients
            .rds
            .delete_db_instance()
            .db_instance_identifier(&identifier)
            .skip_final_snapshot(!plan.final_snapshot)
            .set_final_db_snapshot_identifier(plan.final_snapshot.then_some(snapshot))
            .delete_automated_backups(true)
            .send()
            .await;
        match deleted {
            Ok(_) => log::info!("deleting RDS instance {identifier}"),
            Err(err) if classify(&err) == Kind::NotFound => {
                return Err(BrokerError::NotFound(format!(
                    "the DB instance {identifier} does not exist"
                )))
            }
            // Already being deleted (a repeat), or busy: look at it.
            Err(err) if classify(&err) == Kind::Busy => match self.describe(&identifier).await? {
                None => return Ok(Progress::Done(Completion::default())),
                Some(instance) if instance.db_instance_status() == Some("deleting") => {}
                Some(instance) => {
                    return Err(BrokerError::Transient(format!(
                        "the DB instance {identifier} is {} and cannot be deleted yet",
                        instance.db_instance_status().unwrap_or("busy")
                    )))
                }
            },
            Err(err) => {
                return Err(broker_error(
                    &format!("RDS DeleteDBInstance {identifier}"),
                    err,
                ))
            }
        }
        Ok(Progress::InProgress {
            reference: json!({"step": "delete-wait"}),
            description: Some(format!("DB instance {identifier}: deleting")),
            state: None,
        })
    }

    /// Polls a provision, update or deprovision.
    pub async fn poll(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        match reference_field(request, "step").and_then(Value::as_str) {
            Some("create") => self.create(request, plan).await,
            Some("wait") => self.wait(request, plan).await,
            Some("delete-wait") => {
                let identifier = self.identifier(request);
                match self.describe(&identifier).await? {
                    None => {
                        log::info!("RDS instance {identifier} is gone");
                        Ok(Progress::Done(Completion::default()))
                    }
                    Some(instance) => Ok(Progress::InProgress {
                        reference: json!({"step": "delete-wait"}),
                        description: Some(format!(
                            "DB instance {identifier}: {}",
                            instance.db_instance_status().unwrap_or("deleting")
                        )),
                        state: None,
                    }),
                }
            }
            _ => Err(BrokerError::Failed(
                "unknown RDS operation reference".to_owned(),
            )),
        }
    }

    /// How the broker reaches the instance's database as its master user.
    fn server(&self, request: &OperationRequest) -> Result<(Engine, ServerSettings), BrokerError> {
        let engine = match state_str(request, "engine")? {
            "postgres" => Engine::Postgres,
            "mysql" => Engine::Mysql,
            _ => Engine::Mariadb,
        };
        let (host, port) = match &self.settings.database_endpoint_override {
            Some((host, port)) => (host.clone(), *port),
            None => {
                let endpoint = &request.instance_state["endpoint"];
                let host = endpoint["address"].as_str().ok_or_else(|| {
                    BrokerError::Failed("the DB instance has no endpoint recorded".to_owned())
                })?;
                let port = endpoint["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok());
                (host.to_owned(), port.unwrap_or(5432))
            }
        };
        let server = ServerSettings {
            public_host: host.clone(),
            public_port: port,
            host,
            port,
            admin_user: state_str(request, "master_username")?.to_owned(),
            admin_password: Some(Secret::new(state_str(request, "master_password")?)),
            admin_database: match engine {
                Engine::Postgres => "postgres",
                Engine::Mysql | Engine::Mariadb => "mysql",
            }
            .to_owned(),
            tls: self.settings.database_tls,
            ca_pem: self.settings.database_ca_pem.clone(),
            connect_timeout: self.settings.connect_timeout,
            user_host: "%".to_owned(),
        };
        Ok((engine, server))
    }

    /// A request for the local provider: this one, with the plan's `database` settings.
    fn local_request(
        request: &OperationRequest,
        kind: OperationKind,
        plan: &RdsPlan,
        instance_state: Value,
    ) -> Result<OperationRequest, BrokerError> {
        Ok(OperationRequest {
            kind,
            plan_settings: plan.database.clone().into(),
            parameters: Value::Null,
            instance_state,
            ..request.clone()
        })
    }

    /// Creates the binding's database user (and, when missing, the database and its roles).
    pub async fn bind(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let (engine, server) = self.server(request)?;
        let local: Box<dyn Broker> = match engine {
            Engine::Postgres => Box::new(PostgresServer::with_server(server)),
            Engine::Mysql | Engine::Mariadb => Box::new(MysqlServer::with_server(server)),
        };
        let provision = Self::local_request(request, OperationKind::Provision, plan, Value::Null)?;
        let database_state = match local.provision(&provision).await? {
            Progress::Done(Completion {
                state: Some(state), ..
            }) => state,
            other => {
                return Err(BrokerError::Failed(format!(
                    "preparing the database failed: {other:?}"
                )))
            }
        };
        let bind = Self::local_request(request, OperationKind::Bind, plan, database_state)?;
        local.bind(&bind).await
    }

    /// Drops the binding's database user.
    pub async fn unbind(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let (engine, server) = self.server(request)?;
        match engine {
            Engine::Postgres => {
                let state =
                    PostgresServer::state_of(&request.instance_id, &plan.database_settings()?);
                let unbind = Self::local_request(request, OperationKind::Unbind, plan, state)?;
                PostgresServer::with_server(server).unbind(&unbind).await
            }
            Engine::Mysql | Engine::Mariadb => {
                let unbind =
                    Self::local_request(request, OperationKind::Unbind, plan, Value::Null)?;
                MysqlServer::with_server(server).unbind(&unbind).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RdsPlan {
        serde_json::from_value(json!({
            "engine": "postgres",
            "instance_class": "db.t4g.micro",
            "allowed_instance_classes": ["db.t4g.small"],
            "allocated_storage_gb": 20,
            "max_allocated_storage_gb": 100,
        }))
        .unwrap()
    }

    #[test]
    fn parameters_stay_within_the_plan() {
        let plan = plan();
        let shape = Shape::of(
            &plan,
            &json!({"instance_class": "db.t4g.small", "allocated_storage_gb": 50, "multi_az": true}),
        )
        .unwrap();
        assert_eq!(shape.instance_class, "db.t4g.small");
        assert_eq!(shape.allocated_storage_gb, 50);
        assert!(shape.multi_az);
        for parameters in [
            json!({"instance_class": "db.r6g.16xlarge"}),
            json!({"allocated_storage_gb": 10}),
            json!({"allocated_storage_gb": 101}),
            json!({"allocated_storage_gb": "50"}),
            json!({"backup_retention_days": 36}),
            json!({"multi_az": "yes"}),
        ] {
            assert!(Shape::of(&plan, &parameters).is_err(), "{parameters}");
        }
    }

    #[test]
    fn plans_are_checked() {
        assert!(plan().check().is_ok());
        let mut bad = plan();
        bad.engine = Engine::Mysql;
        bad.database = json!({"extensions": ["pgcrypto"]});
        assert!(bad.check().unwrap_err().to_string().contains("PostgreSQL"));
        let mut bad = plan();
        bad.master_username = "1admin".into();
        assert!(bad.check().is_err());
    }

    #[test]
    fn master_passwords_fit_every_engine() {
        let password = master_password();
        assert_eq!(password.len(), 40);
        assert!(password.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
