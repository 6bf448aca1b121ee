//! RDS: a DB instance per OSB instance (MySQL or PostgreSQL), a database in it, and an
//! account per binding.
//!
//! - **Provision** calls `CreateDBInstance` with a `ClientToken` derived from the instance
//!   and operation ids: a call repeated after a crash (same operation) gets the instance the
//!   first call made, never a second one, while a later provision reusing the id (D-07) gets
//!   a new one. The engine then polls `DescribeDBInstanceAttribute` until `Running`, and the
//!   database is created.
//! - **Update** changes class and storage (`ModifyDBInstanceSpec`) and polls until the
//!   instance runs with them; an engine change or a smaller disk is refused (422).
//! - **Bind** creates an account with a strong random password (`CreateAccount`; a repeat
//!   finds it and resets its password) and grants it the database, read-write or read-only
//!   as the plan says. Credentials carry the instance's real connection string.
//! - **Unbind** deletes the account; **deprovision** deletes the instance and polls until it
//!   is gone. A deprovision that halts a creation (D-17) waits until Alibaba lets the
//!   instance be deleted.
//!
//! Names inside the instance (database, accounts) are `sb_` plus a hash of the OSB id: RDS
//! accounts allow at most 32 characters, so the operator's prefix is not repeated there
//! (the instance itself is dedicated and described by `<prefix>-<hash>`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{AlibabaClient, Product};
use super::error::AlibabaError;
use crate::names::{cloud_name, resource_name};
use crate::sql::{database_credentials, state_str};
use crate::SettingsError;
use crate::{BrokerError, Completion, OperationKind, OperationRequest, Progress};

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// MySQL.
    Mysql,
    /// PostgreSQL.
    Postgresql,
}

impl Engine {
    /// The name in the RDS API.
    fn api_name(self) -> &'static str {
        match self {
            Engine::Mysql => "MySQL",
            Engine::Postgresql => "PostgreSQL",
        }
    }

    /// URI and JDBC schemes.
    fn schemes(self) -> (&'static str, &'static str) {
        match self {
            Engine::Mysql => ("mysql", "mysql"),
            Engine::Postgresql => ("postgresql", "postgresql"),
        }
    }

    fn charset(self) -> &'static str {
        match self {
            Engine::Mysql => "utf8mb4",
            Engine::Postgresql => "UTF8",
        }
    }
}

/// How the instance is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum NetType {
    /// From the VPC only.
    #[default]
    Intranet,
    /// From the internet (still behind the allow-list).
    Internet,
}

/// An RDS plan's `settings` (besides `service = "rds"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsPlan {
    /// The engine.
    pub engine: Engine,
    /// The engine version, e.g. `8.0` or `16.0`.
    pub engine_version: String,
    /// The instance class, e.g. `mysql.n2.small.1`.
    pub instance_class: String,
    /// Storage in GB.
    pub storage_gb: u32,
    /// `cloud_essd` (default), `cloud_ssd`, `local_ssd`...
    #[serde(default = "default_storage_type")]
    pub storage_type: String,
    /// Network type.
    #[serde(default)]
    pub net_type: NetType,
    /// The allow-list when a request names none (addresses or CIDR blocks).
    #[serde(default = "default_security_ips")]
    pub security_ips: Vec<String>,
    /// Zone, VPC and vSwitch, when the account needs them named.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// The VPC.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// The vSwitch.
    #[serde(default)]
    pub vswitch_id: Option<String>,
    /// Bindings may only read.
    #[serde(default)]
    pub read_only: bool,
}

fn default_storage_type() -> String {
    "cloud_essd".to_owned()
}

fn default_security_ips() -> Vec<String> {
    vec!["127.0.0.1".to_owned()]
}

/// Most allow-list entries RDS takes.
const MAX_SECURITY_IPS: usize = 1000;

/// Checks one allow-list entry: an IPv4 address or CIDR block.
fn check_security_ip(entry: &str) -> Result<(), SettingsError> {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (entry, None),
    };
    let invalid = || {
        SettingsError::invalid(format!(
            "security_ips entry {entry:?} is not an IPv4 address or CIDR block"
        ))
    };
    address
        .parse::<std::net::Ipv4Addr>()
        .map_err(|_| invalid())?;
    match prefix.map(str::parse::<u8>) {
        None | Some(Ok(0..=32)) => Ok(()),
        Some(_) => Err(invalid()),
    }
}

fn check_security_ips(entries: &[String]) -> Result<(), SettingsError> {
    if entries.is_empty() || entries.len() > MAX_SECURITY_IPS {
        return Err(SettingsError::invalid(format!(
            "security_ips needs 1 to {MAX_SECURITY_IPS} entries, not {}",
            entries.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        check_security_ip(entry)?;
        if !seen.insert(entry) {
            return Err(SettingsError::invalid(format!(
                "security_ips lists {entry:?} twice"
            )));
        }
    }
    Ok(())
}

impl RdsPlan {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), SettingsError> {
        let simple = |value: &str| {
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
        };
        for (name, value) in [
            ("engine_version", Some(&self.engine_version)),
            ("instance_class", Some(&self.instance_class)),
            ("storage_type", Some(&self.storage_type)),
            ("zone_id", self.zone_id.as_ref()),
            ("vpc_id", self.vpc_id.as_ref()),
            ("vswitch_id", self.vswitch_id.as_ref()),
        ] {
            if value.is_some_and(|v| !simple(v)) {
                return Err(SettingsError::invalid(format!(
                    "{name} {value:?} is not a plain RDS identifier"
                )));
            }
        }
        if self.read_only && self.engine == Engine::Postgresql {
            return Err(SettingsError::invalid(
                "read_only is not available for PostgreSQL: RDS grants PostgreSQL \
                        accounts only DBOwner on a database",
            ));
        }
        if !(5..=32_000).contains(&self.storage_gb) || !self.storage_gb.is_multiple_of(5) {
            return Err(SettingsError::invalid(format!(
                "storage_gb {} must be a multiple of 5 from 5 to 32000 (RDS sells storage in                  steps of 5 GB)",
                self.storage_gb
            )));
        }
        check_security_ips(&self.security_ips)
    }

    /// The allow-list of a request: its `security_ips` parameter, else the plan's. Any other
    /// parameter is refused (400) before anything is created.
    pub fn security_ips(&self, parameters: &Value) -> Result<String, BrokerError> {
        let invalid = BrokerError::InvalidParameters;
        let Some(parameters) = parameters.as_object() else {
            return Ok(self.security_ips.join(","));
        };
        if let Some(unknown) = parameters.keys().find(|k| *k != "security_ips") {
            return Err(invalid(format!(
                "unknown parameter {unknown:?} (RDS plans take security_ips)"
            )));
        }
        match parameters.get("security_ips") {
            None => Ok(self.security_ips.join(",")),
            Some(value) => {
                let entries: Vec<String> = serde_json::from_value(value.clone()).map_err(|_| {
                    invalid("security_ips must be an array of IP addresses or CIDR blocks".into())
                })?;
                check_security_ips(&entries)?;
                Ok(entries.join(","))
            }
        }
    }
}

/// A strong random password RDS accepts: 28 characters with upper and lower case letters,
/// digits and a hyphen (three classes, as RDS requires), 143 random bits, safe in URIs.
pub fn new_account_password() -> String {
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let random: String = (0..24)
        .map(|_| char::from(ALPHANUMERIC[rand::random_range(0..ALPHANUMERIC.len())]))
        .collect();
    format!("Sb1-{random}")
}

/// The instance attributes used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute {
    #[serde(rename = "DBInstanceStatus")]
    status: String,
    #[serde(rename = "DBInstanceClass", default)]
    class: String,
    #[serde(rename = "DBInstanceStorage", default)]
    storage: Value,
    #[serde(default)]
    connection_string: String,
    #[serde(default)]
    port: Value,
}

/// Statuses after which an instance will not come to run.
fn failed_status(status: &str) -> bool {
    let status = status.to_ascii_lowercase();
    status.contains("fail") || status == "released" || status == "deleted"
}

/// A number RDS sends as a string or a number.
fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// The RDS product of one account.
#[derive(Debug)]
pub struct AlibabaRds<'a> {
    /// The account's client.
    pub client: &'a AlibabaClient,
    /// The resource name prefix.
    pub name_prefix: &'a str,
}

impl AlibabaRds<'_> {
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, AlibabaError> {
        self.client.rpc(Product::Rds, action, params).await
    }

    fn description(&self, request: &OperationRequest) -> String {
        cloud_name(self.name_prefix, &request.instance_id)
    }

    /// The instance's attributes; `None` when it does not exist.
    async fn describe(&self, id: &str) -> Result<Option<Attribute>, BrokerError> {
        let answer = match self
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await
        {
            Ok(answer) => answer,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let first = answer["Items"]["DBInstanceAttribute"]
            .get(0)
            .cloned()
            .unwrap_or(Value::Null);
        if first.is_null() {
            return Ok(None);
        }
        serde_json::from_value(first).map(Some).map_err(|err| {
            BrokerError::Failed(format!("RDS instance {id}: unexpected answer: {err}"))
        })
    }

    /// The id of the instance this OSB instance made: from its state, the reference of the
    /// creation it halts, or (a crash between create and record) a search by description.
    async fn instance_id(&self, request: &OperationRequest) -> Result<Option<String>, BrokerError> {
        let known = request.instance_state["db_instance_id"]
            .as_str()
            .or_else(|| request.reference.as_ref()?.get("db_instance_id")?.as_str());
        if let Some(id) = known {
            return Ok(Some(id.to_owned()));
        }
        let description = self.description(request);
        let region = self.client.config().region.clone();
        for page in 1..=100u32 {
            let page_number = page.to_string();
            let answer = self
                .call(
                    "DescribeDBInstances",
                    &[
                        ("RegionId", &region),
                        ("PageSize", "100"),
                        ("PageNumber", &page_number),
                    ],
                )
                .await?;
            let items = answer["Items"]["DBInstance"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(found) = items
                .iter()
                .find(|item| item["DBInstanceDescription"] == description.as_str())
            {
                return Ok(found["DBInstanceId"].as_str().map(str::to_owned));
            }
            if items.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// Creates the instance; the engine polls it.
    pub async fn provision(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let security_ips = plan.security_ips(&request.parameters)?;
        let description = self.description(request);
        let token = cloud_name(
            self.name_prefix,
            &format!("{}/{}", request.instance_id, request.operation_id),
        );
        let storage = plan.storage_gb.to_string();
        let region = self.client.config().region.clone();
        let net_type = format!("{:?}", plan.net_type);
        let mut params: Vec<(&str, &str)> = vec![
            ("RegionId", &region),
            ("Engine", plan.engine.api_name()),
            ("EngineVersion", &plan.engine_version),
            ("DBInstanceClass", &plan.instance_class),
            ("DBInstanceStorage", &storage),
            ("DBInstanceStorageType", &plan.storage_type),
            ("DBInstanceNetType", &net_type),
            ("SecurityIPList", &security_ips),
            ("PayType", "Postpaid"),
            ("ClientToken", &token),
            ("DBInstanceDescription", &description),
        ];
        for (name, value) in [
            ("ZoneId", &plan.zone_id),
            ("VPCId", &plan.vpc_id),
            ("VSwitchId", &plan.vswitch_id),
        ] {
            if let Some(value) = value {
                params.push((name, value));
            }
        }
        if plan.vpc_id.is_some() {
            params.push(("InstanceNetworkType", "VPC"));
        }
        let created = self.call("CreateDBInstance", &params).await?;
        let id = created["DBInstanceId"]
            .as_str()
            .ok_or_else(|| {
                BrokerError::Failed("RDS CreateDBInstance answered no DBInstanceId".into())
            })?
            .to_owned();
        log::info!(
            "instance {}: RDS instance {id} creating",
            request.instance_id
        );
        Ok(Progress::InProgress {
            reference: json!({"step": "creating", "db_instance_id": id}),
            description: Some(format!("creating the RDS instance {id}")),
            state: Some(json!({"service": "rds", "db_instance_id": id})),
        })
    }

    /// Follows a creation, change or deletion.
    pub async fn poll(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let Some(id) = self.instance_id(request).await? else {
            return Ok(match request.kind {
                OperationKind::Deprovision => Progress::Done(Completion::default()),
                _ => Progress::Failed {
                    description: "the RDS instance is gone".into(),
                    instance_usable: Some(false),
                    update_repeatable: None,
                },
            });
        };
        match request.kind {
            OperationKind::Deprovision => self.delete(request, &id).await,
            OperationKind::Update => self.follow_change(request, plan, &id).await,
            _ => self.follow_creation(request, plan, &id).await,
        }
    }

    async fn follow_creation(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
        id: &str,
    ) -> Result<Progress, BrokerError> {
        let Some(attribute) = self.describe(id).await? else {
            return Ok(Progress::Failed {
                description: format!(
                    "the RDS instance {id} disappeared while it was being created: Alibaba \
                     Cloud could not create it (check the plan's class, zone and the account's \
                     quota and balance)"
                ),
                instance_usable: None,
                update_repeatable: None,
            });
        };
        if failed_status(&attribute.status) {
            return Ok(Progress::Failed {
                description: format!(
                    "the RDS instance {id} could not be created: status {}",
                    attribute.status
                ),
                instance_usable: None,
                update_repeatable: None,
            });
        }
        if attribute.status != "Running" {
            return Ok(in_progress(id, "creating", &attribute.status));
        }
        let database = resource_name("sb", &request.instance_id);
        let created = self
            .call(
                "CreateDatabase",
                &[
                    ("DBInstanceId", id),
                    ("DBName", &database),
                    ("CharacterSetName", plan.engine.charset()),
                ],
            )
            .await;
        match created {
            Ok(_) => {}
            Err(err) if err.is_already_exists() => {}
            Err(err) => return Err(err.into()),
        }
        let port = number(&attribute.port)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                BrokerError::Failed(format!("RDS instance {id} has no port in its attributes"))
            })?;
        Ok(Progress::Done(Completion {
            state: Some(json!({
                "service": "rds",
                "db_instance_id": id,
                "engine": plan.engine,
                "host": attribute.connection_string,
                "port": port,
                "database": database,
                "instance_class": attribute.class,
                "storage_gb": number(&attribute.storage),
                "security_ips": plan.security_ips(&request.parameters)?,
            })),
            ..Completion::default()
        }))
    }

    /// Changes class and storage to the plan's.
    pub async fn update(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let security_ips = plan.security_ips(&request.parameters)?;
        let state = &request.instance_state;
        let engine: Option<Engine> = serde_json::from_value(state["engine"].clone()).ok();
        if engine.is_some_and(|engine| engine != plan.engine) {
            return Err(BrokerError::Unprocessable(format!(
                "an RDS instance keeps its engine ({}); this plan's is {}",
                state["engine"],
                plan.engine.api_name()
            )));
        }
        if number(&state["storage_gb"]).is_some_and(|gb| gb > u64::from(plan.storage_gb)) {
            return Err(BrokerError::Unprocessable(format!(
                "RDS storage cannot shrink ({} GB now, the plan has {} GB)",
                state["storage_gb"], plan.storage_gb
            )));
        }
        let id = state_str(state, "db_instance_id")?.to_owned();
        if state["security_ips"].as_str() != Some(&security_ips) {
            self.call(
                "ModifySecurityIps",
                &[("DBInstanceId", &id), ("SecurityIps", &security_ips)],
            )
            .await?;
        }
        let unchanged = state["instance_class"].as_str() == Some(&plan.instance_class)
            && number(&state["storage_gb"]) == Some(u64::from(plan.storage_gb));
        if unchanged {
            let mut state = state.clone();
            state["security_ips"] = json!(security_ips);
            return Ok(Progress::Done(Completion {
                state: Some(state),
                ..Completion::default()
            }));
        }
        let storage = plan.storage_gb.to_string();
        self.call(
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", &plan.instance_class),
                ("DBInstanceStorage", &storage),
                ("PayType", "Postpaid"),
            ],
        )
        .await?;
        Ok(in_progress(&id, "changing", "changing"))
    }

    async fn follow_change(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
        id: &str,
    ) -> Result<Progress, BrokerError> {
        let Some(attribute) = self.describe(id).await? else {
            return Ok(Progress::Failed {
                description: format!("the RDS instance {id} is gone"),
                instance_usable: Some(false),
                update_repeatable: None,
            });
        };
        let applied = attribute.status == "Running"
            && attribute.class == plan.instance_class
            && number(&attribute.storage) == Some(u64::from(plan.storage_gb));
        if !applied {
            return Ok(in_progress(id, "changing", &attribute.status));
        }
        let mut state = request.instance_state.clone();
        state["instance_class"] = json!(attribute.class);
        state["storage_gb"] = json!(plan.storage_gb);
        state["security_ips"] = json!(plan.security_ips(&request.parameters)?);
        Ok(Progress::Done(Completion {
            state: Some(state),
            ..Completion::default()
        }))
    }

    /// Deletes the instance (waiting while Alibaba does not allow it yet).
    pub async fn deprovision(
        &self,
        request: &OperationRequest,
        _plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        match self.instance_id(request).await? {
            Some(id) => self.delete(request, &id).await,
            None => Err(BrokerError::NotFound(format!(
                "no RDS instance described {}",
                self.description(request)
            ))),
        }
    }

    async fn delete(&self, request: &OperationRequest, id: &str) -> Result<Progress, BrokerError> {
        let deleting = request
            .reference
            .as_ref()
            .is_some_and(|r| r["step"] == "deleting");
        if deleting {
            return match self.describe(id).await? {
                None => Ok(Progress::Done(Completion::default())),
                Some(attribute) => Ok(in_progress(id, "deleting", &attribute.status)),
            };
        }
        match self.call("DeleteDBInstance", &[("DBInstanceId", id)]).await {
            Ok(_) => Ok(in_progress(id, "deleting", "Deleting")),
            Err(err) if err.is_not_found() => Ok(Progress::Done(Completion::default())),
            // Still being created (a halted provision, D-17) or changed: try again later.
            Err(err) if err.is_transient() => {
                log::info!("RDS instance {id} cannot be deleted yet: {err}");
                Ok(in_progress(id, "waiting_to_delete", "busy"))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// An account for the binding, granted the database.
    pub async fn bind(
        &self,
        request: &OperationRequest,
        plan: &RdsPlan,
    ) -> Result<Progress, BrokerError> {
        let state = &request.instance_state;
        let id = state_str(state, "db_instance_id")?;
        let host = state_str(state, "host")?;
        let database = state_str(state, "database")?;
        let port = number(&state["port"])
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| BrokerError::Failed("the instance has no port recorded".into()))?;
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let account = resource_name("sb", binding_id);
        let password = new_account_password();
        let created = self
            .call(
                "CreateAccount",
                &[
                    ("DBInstanceId", id),
                    ("AccountName", &account),
                    ("AccountPassword", &password),
                    ("AccountType", "Normal"),
                    ("AccountDescription", "skybroker binding"),
                ],
            )
            .await;
        match created {
            Ok(_) => {}
            // A repeat after a crash: the password the first try set is lost; set ours.
            Err(err) if err.is_already_exists() => {
                self.call(
                    "ResetAccountPassword",
                    &[
                        ("DBInstanceId", id),
                        ("AccountName", &account),
                        ("AccountPassword", &password),
                    ],
                )
                .await?;
            }
            Err(err) => return Err(err.into()),
        }
        let engine: Engine = serde_json::from_value(state["engine"].clone()).unwrap_or(plan.engine);
        // RDS PostgreSQL grants only ownership of a database; MySQL read-write or read-only.
        let privilege = match (engine, plan.read_only) {
            (Engine::Postgresql, _) => "DBOwner",
            (Engine::Mysql, false) => "ReadWrite",
            (Engine::Mysql, true) => "ReadOnly",
        };
        self.call(
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", id),
                ("AccountName", &account),
                ("DBName", database),
                ("AccountPrivilege", privilege),
            ],
        )
        .await?;
        let (scheme, jdbc) = engine.schemes();
        let binding = database_credentials(scheme, jdbc, host, port, database, &account, &password);
        Ok(Progress::Done(Completion {
            state: Some(json!({"account": account})),
            binding: Some(binding),
            ..Completion::default()
        }))
    }

    /// Deletes the binding's account.
    pub async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let id = state_str(&request.instance_state, "db_instance_id")?;
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let account = resource_name("sb", binding_id);
        match self
            .call(
                "DeleteAccount",
                &[("DBInstanceId", id), ("AccountName", &account)],
            )
            .await
        {
            Ok(_) => Ok(Progress::Done(Completion::default())),
            Err(err) if err.is_not_found() => Ok(Progress::Done(Completion::default())),
            Err(err) => Err(err.into()),
        }
    }
}

/// Work still running at RDS.
fn in_progress(id: &str, step: &str, status: &str) -> Progress {
    Progress::InProgress {
        reference: json!({"step": step, "db_instance_id": id}),
        description: Some(format!("RDS instance {id}: {status}")),
        state: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RdsPlan {
        serde_json::from_value(json!({"engine": "mysql", "engine_version": "8.0",
            "instance_class": "mysql.n2.small.1", "storage_gb": 20}))
        .unwrap()
    }

    #[test]
    fn passwords_meet_rds_rules_and_differ() {
        let (a, b) = (new_account_password(), new_account_password());
        assert_ne!(a, b);
        assert!((8..=32).contains(&a.len()));
        assert!(a.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(a.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(a.bytes().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn allow_lists_come_from_parameters_or_the_plan_and_are_checked() {
        let plan = plan();
        assert!(plan.check().is_ok());
        assert_eq!(plan.security_ips(&Value::Null).unwrap(), "127.0.0.1");
        assert_eq!(
            plan.security_ips(&json!({"security_ips": ["10.0.0.0/8", "192.168.1.7"]}))
                .unwrap(),
            "10.0.0.0/8,192.168.1.7"
        );
        for bad in [
            json!({"security_ips": ["10.0.0.0/33"]}),
            json!({"security_ips": ["10.0.0.1", "10.0.0.1"]}),
            json!({"security_ips": ["::1"]}),
            json!({"security_ips": ["0.0.0.0,1.1.1.1"]}),
            json!({"security_ips": "10.0.0.1"}),
            json!({"security_ips": []}),
            json!({"engine": "oracle"}),
        ] {
            assert!(
                matches!(
                    plan.security_ips(&bad),
                    Err(BrokerError::InvalidParameters(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn plans_refuse_what_rds_would() {
        let mut bad = plan();
        bad.instance_class = "mysql.n2 small".into();
        assert!(bad.check().is_err());
        for storage_gb in [1, 21, 32_005] {
            let mut bad = plan();
            bad.storage_gb = storage_gb;
            assert!(bad
                .check()
                .unwrap_err()
                .to_string()
                .contains("multiple of 5"));
        }
        assert!(serde_json::from_value::<RdsPlan>(json!({"engine": "oracle",
            "engine_version": "19", "instance_class": "x", "storage_gb": 20}))
        .is_err());
    }
}
