//! RDS (API version 2014-08-15): DB instances with the state machine a broker has to poll
//! through, and the databases and accounts inside them.
//!
//! # Instances
//! `CreateDBInstance` answers at once with the id, and the instance stays `Creating` for
//! [`FakeConfig::creating`](crate::FakeConfig) before it is `Running`; a repeated
//! `ClientToken` answers the first call's instance and creates nothing. A spec change keeps
//! it `DBInstanceClassChanging` for `changing` (the new class and storage show when it is
//! done); `DeleteDBInstance` makes it `Deleting` for `deleting`, then it is gone
//! (`InvalidDBInstanceId.NotFound`). States move lazily, when the instance is next looked
//! at, so no task runs per instance.
//!
//! A class ending in `.fail` (e.g. `mysql.n2.small.fail`) models a creation the cloud
//! cannot complete: the instance is `Creating` as usual and then disappears, which is what
//! RDS shows for an order that was not delivered (its state table has no failed state; the
//! instance is never delivered and is released). A broker polling it sees
//! `InvalidDBInstanceId.NotFound` where it expected `Running`.
//!
//! Instance ids are `rm-` (MySQL) or `pgm-` (PostgreSQL) and 17 random characters, as on
//! the real service.
//!
//! # What is checked, with the real codes
//! Codes and messages come from RDS's published API metadata (per-action error tables),
//! except `MissingParameter`/`InvalidParameter`, which are the gateway's:
//! - required parameters (`MissingParameter`), engine (`InvalidEngine.Malformed`), version
//!   (`InvalidEngineVersion.Malformed`), class (`InvalidDBInstanceClass.Malformed` for a
//!   malformed name, `InvalidDBInstanceClass.NotFound` for one the engine has no such
//!   family for: a class must start with `mysql.`/`rds.mysql.` or `pg.`/`rds.pg.`), storage
//!   (`InvalidDBInstanceStorage`: 5 to 64000 GB in steps of 5), storage type
//!   (`InvalidDBInstanceStorageType`), the IP whitelist (`InvalidSecurityIPList.Format`),
//!   the pay type (`InvalidPayType`), the region (`InvalidRegionId.NotFound`) and the
//!   instance quota (403 `QuotaExceeded.CreateInstance`);
//! - an unknown instance: 404 `InvalidDBInstanceId.NotFound` (the metadata lists it under
//!   400 for some actions and 404 for others; the gateway convention for `*.NotFound` and
//!   the broker's expectations are 404);
//! - operations in the wrong state: 403 `IncorrectDBInstanceState` (400 for
//!   `ModifyDBInstanceSpec`, as its own table says); listing accounts or databases of an
//!   instance still `Creating`: 400 `InvalidDBInstanceStatus.NotSupport`;
//! - databases: `InvalidDBName.Format` (2–64 characters, lower-case letters, digits, `_`
//!   and `-`, starting with a letter and ending with a letter or digit), `.Forbid`,
//!   `.Duplicate`, `.NotFound`, `InvalidCharacterSetName.Format`;
//! - accounts: `InvalidAccountName.Malformed` (MySQL 2–32 characters, 2–16 for 5.6,
//!   letters, digits, `_`; PostgreSQL 2–63, lower-case), `.Forbid`, `.Duplicate`,
//!   `.NotFound`; `InvalidAccountPassword.Malformed` (8–32 characters, three of upper-case,
//!   lower-case, digits and `!@#$%^&*()_+-=`, nothing else);
//! - grants: `InvalidAccountPrivilege.Malformed` (MySQL: `ReadWrite`, `ReadOnly`,
//!   `DDLOnly`, `DMLOnly`; PostgreSQL: only `DBOwner`, as the real API for cloud-disk
//!   PostgreSQL), `InvalidDBNameOrAccountPrivilege` when the lists differ in length.
//!
//! # Real databases
//! With [`FakeConfig::postgres`](crate::FakeConfig)/`mysql` set, instances of that engine
//! hand out the server's host and port and their databases, accounts and grants are made
//! on it ([`crate::dbserver`]); otherwise they are only recorded, and the endpoint is the
//! made-up `<id>.mysql.rds.aliyuncs.com:3306` / `<id>.pg.rds.aliyuncs.com:5432`.
//!
//! Simplified: one zone and network per instance as given (no VPC checks), no billing
//! (`Prepaid` behaves like `Postpaid`), `Super` accounts get no server-wide rights on
//! MySQL, paging by `PageNumber`/`PageSize` only (no `NextToken`), and the instance quota
//! counts every instance the account has, whatever its state.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Instant;

use serde_json::{json, Value};

use crate::api::{self, ApiError, Params};
use crate::dbserver::{DbServer, ServerError};
use crate::{lock, ram, Shared};

/// The RDS actions this fake answers.
pub const ACTIONS: &[&str] = &[
    "CreateDBInstance",
    "DescribeDBInstanceAttribute",
    "DescribeDBInstances",
    "ModifyDBInstanceSpec",
    "ModifySecurityIps",
    "DeleteDBInstance",
    "CreateDatabase",
    "DeleteDatabase",
    "DescribeDatabases",
    "CreateAccount",
    "DescribeAccounts",
    "ResetAccountPassword",
    "GrantAccountPrivilege",
    "RevokeAccountPrivilege",
    "DeleteAccount",
];

/// Storage types `CreateDBInstance` accepts.
const STORAGE_TYPES: &[&str] = &[
    "local_ssd",
    "cloud_ssd",
    "cloud_essd",
    "cloud_essd2",
    "cloud_essd3",
    "general_essd",
];

/// Database names RDS keeps for itself.
const FORBIDDEN_DB_NAMES: &[&str] = &[
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "postgres",
    "template0",
    "template1",
];

/// Account names RDS keeps for itself.
const FORBIDDEN_ACCOUNT_NAMES: &[&str] = &[
    "root",
    "admin",
    "aliyun_root",
    "mysql",
    "postgres",
    "replicator",
    "rdsadmin",
];

/// The special characters RDS passwords may contain.
const PASSWORD_SPECIALS: &str = "!@#$%^&*()_+-=";

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// MySQL (MariaDB on the test server speaks the same SQL).
    MySql,
    /// PostgreSQL.
    PostgreSql,
}

impl Engine {
    fn parse(value: &str) -> Result<Engine, ApiError> {
        if value.eq_ignore_ascii_case("MySQL") {
            Ok(Engine::MySql)
        } else if value.eq_ignore_ascii_case("PostgreSQL") {
            Ok(Engine::PostgreSql)
        } else {
            Err(ApiError::new(
                400,
                "InvalidEngine.Malformed",
                "Specified engine is not valid.",
            ))
        }
    }

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            Engine::MySql => "MySQL",
            Engine::PostgreSql => "PostgreSQL",
        }
    }

    fn versions(self) -> &'static [&'static str] {
        match self {
            Engine::MySql => &["5.5", "5.6", "5.7", "8.0"],
            Engine::PostgreSql => &[
                "10.0", "11.0", "12.0", "13.0", "14.0", "15.0", "16.0", "17.0",
            ],
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Engine::MySql => "rm-",
            Engine::PostgreSql => "pgm-",
        }
    }

    fn class_prefixes(self) -> &'static [&'static str] {
        match self {
            Engine::MySql => &["mysql.", "rds.mysql."],
            Engine::PostgreSql => &["pg.", "rds.pg."],
        }
    }

    fn default_endpoint(self, id: &str) -> (String, u16) {
        match self {
            Engine::MySql => (format!("{id}.mysql.rds.aliyuncs.com"), 3306),
            Engine::PostgreSql => (format!("{id}.pg.rds.aliyuncs.com"), 5432),
        }
    }
}

/// An account's privilege on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Read and write, including DDL (MySQL).
    ReadWrite,
    /// Read only (MySQL).
    ReadOnly,
    /// DDL only (MySQL).
    DdlOnly,
    /// DML only (MySQL).
    DmlOnly,
    /// Owner of the database (PostgreSQL).
    DbOwner,
}

impl Privilege {
    /// Parses an `AccountPrivilege` value valid for `engine`.
    fn parse(value: &str, engine: Engine) -> Result<Privilege, ApiError> {
        let privilege = match (value, engine) {
            ("ReadWrite", Engine::MySql) => Privilege::ReadWrite,
            ("ReadOnly", Engine::MySql) => Privilege::ReadOnly,
            ("DDLOnly", Engine::MySql) => Privilege::DdlOnly,
            ("DMLOnly", Engine::MySql) => Privilege::DmlOnly,
            ("DBOwner", Engine::PostgreSql) => Privilege::DbOwner,
            _ => {
                return Err(ApiError::new(
                    400,
                    "InvalidAccountPrivilege.Malformed",
                    "Specified account privilege is not valid.",
                ))
            }
        };
        Ok(privilege)
    }

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::ReadWrite => "ReadWrite",
            Privilege::ReadOnly => "ReadOnly",
            Privilege::DdlOnly => "DDLOnly",
            Privilege::DmlOnly => "DMLOnly",
            Privilege::DbOwner => "DBOwner",
        }
    }

    /// `AccountPrivilegeDetail`: what the privilege amounts to.
    fn detail(self) -> &'static str {
        match self {
            Privilege::ReadWrite => "SELECT,INSERT,UPDATE,DELETE,CREATE,DROP,REFERENCES,INDEX,ALTER,CREATE TEMPORARY TABLES,LOCK TABLES,EXECUTE,CREATE VIEW,SHOW VIEW,CREATE ROUTINE,ALTER ROUTINE,EVENT,TRIGGER",
            Privilege::ReadOnly => "SELECT,LOCK TABLES,SHOW VIEW",
            Privilege::DdlOnly => "CREATE,DROP,INDEX,ALTER,CREATE TEMPORARY TABLES,LOCK TABLES,CREATE VIEW,SHOW VIEW,CREATE ROUTINE,ALTER ROUTINE,EVENT,TRIGGER",
            Privilege::DmlOnly => "SELECT,INSERT,UPDATE,DELETE,CREATE TEMPORARY TABLES,LOCK TABLES,EXECUTE,SHOW VIEW,EVENT,TRIGGER",
            Privilege::DbOwner => "ALL",
        }
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Being created until `until`; then `Running`, or gone when `fails`.
    Creating { until: Instant, fails: bool },
    /// In service.
    Running,
    /// Changing to `class`/`storage` until `until`.
    Changing {
        until: Instant,
        class: String,
        storage: i64,
    },
    /// Being released until `until`; then gone.
    Deleting { until: Instant },
}

/// One database of an instance.
#[derive(Debug, Clone)]
struct Database {
    /// `CharacterSetName` as given.
    charset: String,
    /// `DBDescription`.
    description: String,
}

/// One account of an instance.
#[derive(Debug, Clone)]
struct Account {
    /// `Normal` or `Super`.
    account_type: String,
    /// `AccountDescription`.
    description: String,
    /// Its privilege per database.
    privileges: BTreeMap<String, Privilege>,
}

/// One DB instance.
#[derive(Debug, Clone)]
struct Instance {
    /// Creation order, for stable listings.
    seq: u64,
    engine: Engine,
    engine_version: String,
    class: String,
    storage: i64,
    storage_type: String,
    net_type: String,
    security_ips: String,
    description: String,
    pay_type: String,
    zone_id: String,
    vpc_id: String,
    vswitch_id: String,
    client_token: Option<String>,
    /// `CreationTime`.
    created: String,
    /// `ConnectionString` and `Port`.
    endpoint: (String, u16),
    phase: Phase,
    databases: BTreeMap<String, Database>,
    accounts: BTreeMap<String, Account>,
}

impl Instance {
    /// `DBInstanceStatus`.
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Creating { .. } => "Creating",
            Phase::Running => "Running",
            Phase::Changing { .. } => "DBInstanceClassChanging",
            Phase::Deleting { .. } => "Deleting",
        }
    }

    /// Refuses unless the instance is `Running` (403, the code most actions list).
    fn require_running(&self) -> Result<(), ApiError> {
        if self.phase == Phase::Running {
            Ok(())
        } else {
            Err(incorrect_state(403))
        }
    }

    /// Refuses listing accounts or databases before the instance exists.
    fn require_created(&self) -> Result<(), ApiError> {
        match self.phase {
            Phase::Creating { .. } => Err(ApiError::new(
                400,
                "InvalidDBInstanceStatus.NotSupport",
                "The Specified instance status is not supported to query account list.",
            )),
            _ => Ok(()),
        }
    }
}

/// The answer `CreateDBInstance` gave, kept for repeats of its `ClientToken`.
#[derive(Debug, Clone)]
struct Created {
    id: String,
    order_id: String,
    endpoint: (String, u16),
}

/// All RDS state.
#[derive(Debug, Default)]
pub struct Rds {
    /// Instances by id.
    instances: BTreeMap<String, Instance>,
    /// `ClientToken` → what its `CreateDBInstance` answered.
    client_tokens: HashMap<String, Created>,
    /// The next instance's creation order.
    next_seq: u64,
}

impl Rds {
    /// Moves every instance whose timer ran out to its next state.
    fn advance(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (id, instance) in &mut self.instances {
            match &instance.phase {
                Phase::Creating { until, fails } if now >= *until => {
                    if *fails {
                        log::info!("fake RDS: {id} could not be delivered; released");
                        gone.push(id.clone());
                    } else {
                        instance.phase = Phase::Running;
                    }
                }
                Phase::Changing {
                    until,
                    class,
                    storage,
                } if now >= *until => {
                    instance.class = class.clone();
                    instance.storage = *storage;
                    instance.phase = Phase::Running;
                }
                Phase::Deleting { until } if now >= *until => gone.push(id.clone()),
                _ => {}
            }
        }
        for id in gone {
            self.instances.remove(&id);
        }
    }

    /// The instance `id`, its state brought up to date.
    fn instance(&mut self, id: &str) -> Result<&mut Instance, ApiError> {
        self.advance(Instant::now());
        self.instances.get_mut(id).ok_or_else(|| {
            ApiError::new(
                404,
                "InvalidDBInstanceId.NotFound",
                "The DBInstanceId provided does not exist in our records.",
            )
        })
    }

    /// Instances, databases and accounts with their privileges, for tests (no passwords).
    pub fn snapshot(&mut self) -> Value {
        self.advance(Instant::now());
        let instances: Vec<Value> = self
            .instances
            .iter()
            .map(|(id, instance)| {
                json!({
                    "id": id,
                    "status": instance.status(),
                    "engine": instance.engine.name(),
                    "engine_version": instance.engine_version,
                    "class": instance.class,
                    "storage": instance.storage,
                    "storage_type": instance.storage_type,
                    "net_type": instance.net_type,
                    "client_token": instance.client_token,
                    "connection_string": instance.endpoint.0,
                    "port": instance.endpoint.1,
                    "databases": instance.databases.iter().map(|(name, db)| json!({
                        "name": name,
                        "charset": db.charset,
                    })).collect::<Vec<_>>(),
                    "accounts": instance.accounts.iter().map(|(name, account)| json!({
                        "name": name,
                        "type": account.account_type,
                        "privileges": account.privileges.iter().map(|(db, privilege)| json!({
                            "db": db,
                            "privilege": privilege.name(),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "instances": instances })
    }
}

// ===== The RDS actions =====

/// Answers one RDS action (already authenticated and authorized).
pub async fn handle(shared: &Shared, action: &str, params: &Params) -> Result<Value, ApiError> {
    match action {
        "CreateDBInstance" => create_instance(shared, params),
        "DescribeDBInstanceAttribute" => describe_instance(shared, params),
        "DescribeDBInstances" => describe_instances(shared, params),
        "ModifyDBInstanceSpec" => modify_spec(shared, params),
        "ModifySecurityIps" => modify_security_ips(shared, params),
        "DeleteDBInstance" => delete_instance(shared, params).await,
        "CreateDatabase" => create_database(shared, params).await,
        "DeleteDatabase" => delete_database(shared, params).await,
        "DescribeDatabases" => describe_databases(shared, params),
        "CreateAccount" => create_account(shared, params).await,
        "DescribeAccounts" => describe_accounts(shared, params),
        "ResetAccountPassword" => reset_password(shared, params).await,
        "GrantAccountPrivilege" => grant_privilege(shared, params).await,
        "RevokeAccountPrivilege" => revoke_privilege(shared, params).await,
        "DeleteAccount" => delete_account(shared, params).await,
        // The endpoint only dispatches names from ACTIONS.
        _ => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}

/// The authorization resource of an RDS call: the instance it names, or all instances.
pub fn resource_of(region: &str, params: &Params) -> String {
    let id = params.get("DBInstanceId").unwrap_or("*");
    format!("acs:rds:{region}:{}:dbinstance/{id}", ram::ACCOUNT_ID)
}

fn create_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let config = &shared.config;
    if params.required("RegionId")? != config.region {
        return Err(region_not_found());
    }
    let engine = Engine::parse(params.required("Engine")?)?;
    let engine_version = canonical_version(engine, params.required("EngineVersion")?)?;
    let class = params.required("DBInstanceClass")?;
    let fails = check_class(engine, class)?;
    let storage = params
        .integer("DBInstanceStorage")?
        .ok_or_else(|| ApiError::missing("DBInstanceStorage"))?;
    check_storage(storage)?;
    let net_type = params.required("DBInstanceNetType")?;
    if net_type != "Internet" && net_type != "Intranet" {
        return Err(ApiError::invalid("DBInstanceNetType"));
    }
    let security_ips = params.required("SecurityIPList")?;
    check_security_ips(security_ips)?;
    let pay_type = params.required("PayType")?;
    if pay_type != "Postpaid" && pay_type != "Prepaid" {
        return Err(ApiError::new(
            400,
            "InvalidPayType",
            "The specified PayType is invalid.",
        ));
    }
    let storage_type = params.get("DBInstanceStorageType").unwrap_or("cloud_essd");
    if !STORAGE_TYPES.contains(&storage_type) {
        return Err(ApiError::new(
            400,
            "InvalidDBInstanceStorageType",
            "The specified DBInstanceStorageType is invalid.",
        ));
    }
    let description = params.get("DBInstanceDescription").unwrap_or_default();
    if description.chars().count() > 255 {
        return Err(ApiError::invalid("DBInstanceDescription"));
    }
    let client_token = params.get("ClientToken");
    if client_token.is_some_and(|token| token.len() > 64 || !token.is_ascii()) {
        return Err(ApiError::invalid("ClientToken"));
    }

    let mut rds = lock(&shared.rds);
    let now = Instant::now();
    rds.advance(now);
    let created = match client_token.and_then(|token| rds.client_tokens.get(token)) {
        // A repeat: the same answer, nothing new.
        Some(created) => created.clone(),
        None => {
            if rds.instances.len() >= config.instance_quota {
                return Err(ApiError::new(
                    403,
                    "QuotaExceeded.CreateInstance",
                    "The quota of create instance exceeds.",
                ));
            }
            let id = format!(
                "{}{}",
                engine.id_prefix(),
                api::random_string(api::LOWER_ALNUM, 17)
            );
            let endpoint = match server(shared, engine) {
                Some(server) => (server.host().to_owned(), server.port()),
                None => engine.default_endpoint(&id),
            };
            let created = Created {
                id: id.clone(),
                order_id: format!("2{}", api::random_string(api::DIGITS, 14)),
                endpoint: endpoint.clone(),
            };
            let seq = rds.next_seq;
            rds.next_seq += 1;
            let instance = Instance {
                seq,
                engine,
                engine_version,
                class: class.to_owned(),
                storage,
                storage_type: storage_type.to_owned(),
                net_type: net_type.to_owned(),
                security_ips: security_ips.to_owned(),
                description: description.to_owned(),
                pay_type: pay_type.to_owned(),
                zone_id: params
                    .get("ZoneId")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{}-a", config.region)),
                vpc_id: params.get("VPCId").unwrap_or_default().to_owned(),
                vswitch_id: params.get("VSwitchId").unwrap_or_default().to_owned(),
                client_token: client_token.map(str::to_owned),
                created: api::now_iso8601(),
                endpoint,
                phase: Phase::Creating {
                    until: now + config.creating,
                    fails,
                },
                databases: BTreeMap::new(),
                accounts: BTreeMap::new(),
            };
            log::info!("fake RDS: creating {id} ({} {class})", engine.name());
            rds.instances.insert(id, instance);
            if let Some(token) = client_token {
                rds.client_tokens.insert(token.to_owned(), created.clone());
            }
            created
        }
    };
    Ok(json!({
        "DBInstanceId": created.id,
        "OrderId": created.order_id,
        "ConnectionString": created.endpoint.0,
        "Port": created.endpoint.1.to_string(),
    }))
}

fn describe_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let ids = params.required("DBInstanceId")?;
    let mut rds = lock(&shared.rds);
    let mut items = Vec::new();
    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let instance = rds.instance(id)?;
        items.push(attributes(id, instance, &shared.config.region));
    }
    Ok(json!({ "Items": { "DBInstanceAttribute": items } }))
}

fn describe_instances(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let region = params.required("RegionId")?;
    let page_size = params.integer("PageSize")?.unwrap_or(30);
    if !(1..=100).contains(&page_size) {
        return Err(ApiError::invalid("PageSize"));
    }
    let page_number = params.integer("PageNumber")?.unwrap_or(1);
    if page_number < 1 {
        return Err(ApiError::invalid("PageNumber"));
    }
    let ids: Option<Vec<&str>> = params
        .get("DBInstanceId")
        .map(|ids| ids.split(',').map(str::trim).collect());
    let engine = params.get("Engine").map(Engine::parse).transpose()?;
    let status = params.get("DBInstanceStatus");

    let mut rds = lock(&shared.rds);
    rds.advance(Instant::now());
    let mut matching: Vec<(&String, &Instance)> = rds
        .instances
        .iter()
        .filter(|_| region == shared.config.region)
        .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(&id.as_str())))
        .filter(|(_, instance)| engine.is_none_or(|engine| instance.engine == engine))
        .filter(|(_, instance)| status.is_none_or(|status| instance.status() == status))
        .collect();
    matching.sort_by_key(|(_, instance)| instance.seq);
    let total = matching.len();
    // Both were checked positive above.
    let skip = (page_number as usize - 1).saturating_mul(page_size as usize);
    let page: Vec<Value> = matching
        .into_iter()
        .skip(skip)
        .take(page_size as usize)
        .map(|(id, instance)| summary(id, instance, &shared.config.region))
        .collect();
    Ok(json!({
        "PageNumber": page_number,
        "PageRecordCount": page.len(),
        "TotalRecordCount": total,
        "Items": { "DBInstance": page },
    }))
}

/// Replaces the default allow-list group (`SecurityIps`; the real API's `ModifyMode` and
/// named groups are not modelled). A change the real service applies in seconds, at once here.
fn modify_security_ips(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let ips = params.required("SecurityIps")?;
    check_security_ips(ips)?;
    let mut rds = lock(&shared.rds);
    let instance = rds.instance(id)?;
    if instance.phase != Phase::Running {
        return Err(incorrect_state(400));
    }
    instance.security_ips = ips.to_owned();
    Ok(json!({ "TaskId": api::random_string(api::DIGITS, 9) }))
}

fn modify_spec(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let class = params.get("DBInstanceClass");
    let storage = params.integer("DBInstanceStorage")?;
    if class.is_none() && storage.is_none() {
        return Err(ApiError::missing("DBInstanceClass"));
    }
    let changing = shared.config.changing;
    let mut rds = lock(&shared.rds);
    let instance = rds.instance(id)?;
    if let Some(class) = class {
        if check_class(instance.engine, class).is_err() {
            return Err(ApiError::new(
                400,
                "InvalidDBInstanceClass.NotFound",
                "Specified DB instance class is not found.",
            ));
        }
    }
    if let Some(storage) = storage {
        check_storage(storage)?;
        if storage < instance.storage {
            return Err(ApiError::new(
                400,
                "NotSupportReduceDiskSize",
                "Not support reduce disk size.",
            ));
        }
    }
    if instance.phase != Phase::Running {
        return Err(incorrect_state(400));
    }
    instance.phase = Phase::Changing {
        until: Instant::now() + changing,
        class: class.unwrap_or(&instance.class).to_owned(),
        storage: storage.unwrap_or(instance.storage),
    };
    Ok(json!({
        "DBInstanceId": id,
        // The metadata types this one as a number.
        "OrderId": api::random_string(api::DIGITS, 14).parse::<u64>().unwrap_or(1),
    }))
}

async fn delete_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let (engine, databases, accounts) = {
        let deleting = shared.config.deleting;
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        instance.require_running()?;
        instance.phase = Phase::Deleting {
            until: Instant::now() + deleting,
        };
        log::info!("fake RDS: deleting {id}");
        let databases: Vec<String> = instance.databases.keys().cloned().collect();
        let accounts: Vec<String> = instance.accounts.keys().cloned().collect();
        (instance.engine, databases, accounts)
    };
    if let Some(server) = server(shared, engine) {
        // The release goes on whatever the server says, as the cloud's would; a failure
        // here only leaves litter on the test server, so it is logged loudly.
        for account in &accounts {
            if let Err(err) = server.drop_account(account, &databases).await {
                log::error!("fake RDS: dropping account {account} of {id}: {err}");
            }
        }
        for database in &databases {
            if let Err(err) = server.drop_database(database, &[]).await {
                log::error!("fake RDS: dropping database {database} of {id}: {err}");
            }
        }
    }
    Ok(json!({ "RegionId": shared.config.region }))
}

async fn create_database(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("DBName")?;
    let charset = params.required("CharacterSetName")?;
    let description = params.get("DBDescription").unwrap_or_default();
    let engine = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        check_db_name(name, instance.engine)?;
        check_charset(charset, instance.engine)?;
        instance.require_running()?;
        if instance.databases.contains_key(name) {
            return Err(ApiError::new(
                400,
                "InvalidDBName.Duplicate",
                "Specified DB name already exists in the This instance.",
            ));
        }
        // Reserved now, so a concurrent duplicate is refused while the server works.
        instance.databases.insert(
            name.to_owned(),
            Database {
                charset: charset.to_owned(),
                description: description.to_owned(),
            },
        );
        instance.engine
    };
    if let Some(server) = server(shared, engine) {
        if let Err(err) = server.create_database(name, charset).await {
            if let Ok(instance) = lock(&shared.rds).instance(id) {
                instance.databases.remove(name);
            }
            return Err(server_error(err));
        }
    }
    Ok(json!({}))
}

async fn delete_database(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("DBName")?;
    let (engine, holders) = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        instance.require_running()?;
        if instance.databases.remove(name).is_none() {
            return Err(db_not_found());
        }
        let mut holders = Vec::new();
        for (account_name, account) in &mut instance.accounts {
            if account.privileges.remove(name).is_some() {
                holders.push(account_name.clone());
            }
        }
        (instance.engine, holders)
    };
    if let Some(server) = server(shared, engine) {
        server
            .drop_database(name, &holders)
            .await
            .map_err(server_error)?;
    }
    Ok(json!({}))
}

fn describe_databases(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let only = params.get("DBName");
    let mut rds = lock(&shared.rds);
    let instance = rds.instance(id)?;
    instance.require_created()?;
    let databases: Vec<Value> = instance
        .databases
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name.as_str()))
        .map(|(name, database)| {
            let accounts: Vec<Value> = instance
                .accounts
                .iter()
                .filter_map(|(account, details)| {
                    details.privileges.get(name).map(|privilege| {
                        json!({
                            "Account": account,
                            "AccountPrivilege": privilege.name(),
                            "AccountPrivilegeDetail": privilege.detail(),
                        })
                    })
                })
                .collect();
            json!({
                "DBName": name,
                "DBStatus": "Running",
                "DBInstanceId": id,
                "Engine": instance.engine.name(),
                "CharacterSetName": database.charset,
                "DBDescription": database.description,
                "Accounts": { "AccountPrivilegeInfo": accounts },
            })
        })
        .collect();
    Ok(json!({
        "PageNumber": 1,
        "PageRecordCount": databases.len(),
        "Databases": { "Database": databases },
    }))
}

async fn create_account(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("AccountName")?;
    let password = params.required("AccountPassword")?;
    let account_type = params.get("AccountType").unwrap_or("Normal");
    if account_type != "Normal" && account_type != "Super" {
        return Err(ApiError::invalid("AccountType"));
    }
    let description = params.get("AccountDescription").unwrap_or_default();
    let engine = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        check_account_name(name, instance.engine, &instance.engine_version)?;
        check_password(password)?;
        instance.require_running()?;
        if instance.accounts.contains_key(name) {
            return Err(ApiError::new(
                400,
                "InvalidAccountName.Duplicate",
                "Specified account name already exists in this instance.",
            ));
        }
        instance.accounts.insert(
            name.to_owned(),
            Account {
                account_type: account_type.to_owned(),
                description: description.to_owned(),
                privileges: BTreeMap::new(),
            },
        );
        instance.engine
    };
    if let Some(server) = server(shared, engine) {
        if let Err(err) = server
            .create_account(name, password, account_type == "Super")
            .await
        {
            if let Ok(instance) = lock(&shared.rds).instance(id) {
                instance.accounts.remove(name);
            }
            return Err(server_error(err));
        }
    }
    Ok(json!({}))
}

fn describe_accounts(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let only = params.get("AccountName");
    let mut rds = lock(&shared.rds);
    let instance = rds.instance(id)?;
    instance.require_created()?;
    let accounts: Vec<Value> = instance
        .accounts
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name.as_str()))
        .map(|(name, account)| {
            let privileges: Vec<Value> = account
                .privileges
                .iter()
                .map(|(db, privilege)| {
                    json!({
                        "DBName": db,
                        "AccountPrivilege": privilege.name(),
                        "AccountPrivilegeDetail": privilege.detail(),
                    })
                })
                .collect();
            json!({
                "DBInstanceId": id,
                "AccountName": name,
                "AccountStatus": "Available",
                "AccountType": account.account_type,
                "AccountDescription": account.description,
                "PrivExceeded": "0",
                "DatabasePrivileges": { "DatabasePrivilege": privileges },
            })
        })
        .collect();
    Ok(json!({
        "PageNumber": 1,
        "TotalRecordCount": accounts.len(),
        "Accounts": { "DBInstanceAccount": accounts },
    }))
}

async fn reset_password(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("AccountName")?;
    let password = params.required("AccountPassword")?;
    let engine = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        check_password(password)?;
        if !instance.accounts.contains_key(name) {
            return Err(account_not_found());
        }
        instance.require_running()?;
        instance.engine
    };
    if let Some(server) = server(shared, engine) {
        server
            .set_password(name, password)
            .await
            .map_err(server_error)?;
    }
    Ok(json!({}))
}

async fn grant_privilege(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("AccountName")?;
    let databases: Vec<&str> = params
        .required("DBName")?
        .split(',')
        .map(str::trim)
        .collect();
    let privileges: Vec<&str> = params
        .required("AccountPrivilege")?
        .split(',')
        .map(str::trim)
        .collect();
    if databases.len() != privileges.len() {
        return Err(ApiError::new(
            400,
            "InvalidDBNameOrAccountPrivilege",
            "Account permissions and database names must correspond.",
        ));
    }
    // (database, new privilege, privilege it replaces)
    let (engine, changes) = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        let engine = instance.engine;
        let mut changes = Vec::new();
        for (database, privilege) in databases.iter().zip(&privileges) {
            let privilege = Privilege::parse(privilege, engine)?;
            if !instance.databases.contains_key(*database) {
                return Err(db_not_found());
            }
            changes.push((database.to_string(), privilege));
        }
        let account = instance.accounts.get(name).ok_or_else(account_not_found)?;
        let changes: Vec<(String, Privilege, Option<Privilege>)> = changes
            .into_iter()
            .map(|(database, privilege)| {
                let old = account.privileges.get(&database).copied();
                (database, privilege, old)
            })
            .filter(|(_, privilege, old)| *old != Some(*privilege))
            .collect();
        instance.require_running()?;
        (engine, changes)
    };
    if let Some(server) = server(shared, engine) {
        for (database, privilege, old) in &changes {
            if old.is_some() {
                server.revoke(name, database).await.map_err(server_error)?;
            }
            server
                .grant(name, database, *privilege)
                .await
                .map_err(server_error)?;
        }
    }
    let mut rds = lock(&shared.rds);
    if let Some(account) = rds.instance(id)?.accounts.get_mut(name) {
        for (database, privilege, _) in changes {
            account.privileges.insert(database, privilege);
        }
    }
    Ok(json!({}))
}

async fn revoke_privilege(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("AccountName")?;
    let databases: Vec<&str> = params
        .required("DBName")?
        .split(',')
        .map(str::trim)
        .collect();
    let (engine, held) = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        for database in &databases {
            if !instance.databases.contains_key(*database) {
                return Err(db_not_found());
            }
        }
        let account = instance.accounts.get(name).ok_or_else(account_not_found)?;
        let held: Vec<String> = databases
            .iter()
            .filter(|database| account.privileges.contains_key(**database))
            .map(|database| database.to_string())
            .collect();
        instance.require_running()?;
        (instance.engine, held)
    };
    if let Some(server) = server(shared, engine) {
        for database in &held {
            server.revoke(name, database).await.map_err(server_error)?;
        }
    }
    let mut rds = lock(&shared.rds);
    if let Some(account) = rds.instance(id)?.accounts.get_mut(name) {
        for database in &held {
            account.privileges.remove(database);
        }
    }
    Ok(json!({}))
}

async fn delete_account(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let id = params.required("DBInstanceId")?;
    let name = params.required("AccountName")?;
    let (engine, account, databases) = {
        let mut rds = lock(&shared.rds);
        let instance = rds.instance(id)?;
        if !instance.accounts.contains_key(name) {
            return Err(account_not_found());
        }
        instance.require_running()?;
        // Removed now so nothing new is granted to it meanwhile; put back if the server
        // refuses.
        let account = instance.accounts.remove(name);
        let databases: Vec<String> = instance.databases.keys().cloned().collect();
        (instance.engine, account, databases)
    };
    if let Some(server) = server(shared, engine) {
        if let Err(err) = server.drop_account(name, &databases).await {
            if let (Ok(instance), Some(account)) = (lock(&shared.rds).instance(id), account) {
                instance.accounts.insert(name.to_owned(), account);
            }
            return Err(server_error(err));
        }
    }
    Ok(json!({}))
}

// ===== Answers and checks =====

/// `DescribeDBInstanceAttribute`'s view of an instance.
fn attributes(id: &str, instance: &Instance, region: &str) -> Value {
    json!({
        "DBInstanceId": id,
        "RegionId": region,
        "ZoneId": instance.zone_id,
        "Engine": instance.engine.name(),
        "EngineVersion": instance.engine_version,
        "DBInstanceClass": instance.class,
        "DBInstanceStorage": instance.storage,
        "DBInstanceStorageType": instance.storage_type,
        "DBInstanceStatus": instance.status(),
        "DBInstanceNetType": instance.net_type,
        "DBInstanceType": "Primary",
        "DBInstanceDescription": instance.description,
        "ConnectionString": instance.endpoint.0,
        "Port": instance.endpoint.1.to_string(),
        "SecurityIPList": instance.security_ips,
        "PayType": instance.pay_type,
        "InstanceNetworkType": if instance.vpc_id.is_empty() { "Classic" } else { "VPC" },
        "VpcId": instance.vpc_id,
        "VSwitchId": instance.vswitch_id,
        "CreationTime": instance.created,
        "Category": "Basic",
        "ConnectionMode": "Standard",
        "LockMode": "Unlock",
        "MaintainTime": "18:00Z-22:00Z",
        "AccountMaxQuantity": 50,
        "DBMaxQuantity": 200,
    })
}

/// `DescribeDBInstances`' view of an instance.
fn summary(id: &str, instance: &Instance, region: &str) -> Value {
    json!({
        "DBInstanceId": id,
        "DBInstanceDescription": instance.description,
        "DBInstanceStatus": instance.status(),
        "DBInstanceClass": instance.class,
        "DBInstanceStorageType": instance.storage_type,
        "DBInstanceNetType": instance.net_type,
        "DBInstanceType": "Primary",
        "Engine": instance.engine.name(),
        "EngineVersion": instance.engine_version,
        "RegionId": region,
        "ZoneId": instance.zone_id,
        "PayType": instance.pay_type,
        "CreateTime": instance.created,
        "ConnectionString": instance.endpoint.0,
        "InstanceNetworkType": if instance.vpc_id.is_empty() { "Classic" } else { "VPC" },
        "VpcId": instance.vpc_id,
        "VSwitchId": instance.vswitch_id,
        "LockMode": "Unlock",
    })
}

/// The server instances of `engine` live on, if one is configured.
fn server(shared: &Shared, engine: Engine) -> Option<DbServer> {
    let address = match engine {
        Engine::MySql => shared.config.mysql.as_deref(),
        Engine::PostgreSql => shared.config.postgres.as_deref(),
    }?;
    DbServer::parse(engine, address)
}

/// A server failure: unreachable is the real `Database.ConnectError`; a refusal is an
/// internal error of the fake (logged, since the caller sees only the generic answer).
fn server_error(err: ServerError) -> ApiError {
    match err {
        ServerError::Unreachable(_) => {
            log::warn!("fake RDS: {err}");
            ApiError::new(
                400,
                "Database.ConnectError",
                "Database connect error. please check instance status and database processlist",
            )
        }
        ServerError::Refused(_) => {
            log::error!("fake RDS: {err}");
            ApiError::internal()
        }
    }
}

fn incorrect_state(status: u16) -> ApiError {
    ApiError::new(
        status,
        "IncorrectDBInstanceState",
        "Current DB instance state does not support this operation.",
    )
}

fn region_not_found() -> ApiError {
    ApiError::new(
        404,
        "InvalidRegionId.NotFound",
        "The RegionId provided does not exist in our records.",
    )
}

fn db_not_found() -> ApiError {
    ApiError::new(
        400,
        "InvalidDBName.NotFound",
        "Specified DB name does not exist.",
    )
}

fn account_not_found() -> ApiError {
    ApiError::new(
        400,
        "InvalidAccountName.NotFound",
        "Specified account name does not exist.",
    )
}

/// Accepts a supported version (`15` for PostgreSQL counts as `15.0`).
fn canonical_version(engine: Engine, version: &str) -> Result<String, ApiError> {
    let version = match engine {
        Engine::PostgreSql if !version.contains('.') => format!("{version}.0"),
        _ => version.to_owned(),
    };
    if engine.versions().contains(&version.as_str()) {
        Ok(version)
    } else {
        Err(ApiError::new(
            400,
            "InvalidEngineVersion.Malformed",
            "The specified parameter EngineVersion is not valid.",
        ))
    }
}

/// Checks a class for `engine`; true for the `*.fail` classes whose creation fails.
fn check_class(engine: Engine, class: &str) -> Result<bool, ApiError> {
    let well_formed = !class.is_empty()
        && class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
        && class.split('.').all(|part| !part.is_empty());
    if !well_formed {
        return Err(ApiError::new(
            400,
            "InvalidDBInstanceClass.Malformed",
            "The specified parameter DBInstanceClass is not valid.",
        ));
    }
    let family = engine
        .class_prefixes()
        .iter()
        .any(|prefix| class.len() > prefix.len() && class.starts_with(prefix));
    if !family {
        return Err(ApiError::new(
            400,
            "InvalidDBInstanceClass.NotFound",
            "Specified DB instance class is not found.",
        ));
    }
    Ok(class.ends_with(".fail"))
}

fn check_storage(storage: i64) -> Result<(), ApiError> {
    if (5..=64000).contains(&storage) && storage % 5 == 0 {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidDBInstanceStorage",
            "The specified DBInstanceStorage is invalid.",
        ))
    }
}

/// A comma-separated list of up to 1000 distinct IPv4 addresses or CIDR blocks.
fn check_security_ips(list: &str) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::new(
            400,
            "InvalidSecurityIPList.Format",
            "The specified parameter securityIPList is not valid.",
        )
    };
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.len() > 1000 {
        return Err(invalid());
    }
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let (address, prefix) = entry.split_once('/').unwrap_or((entry, "32"));
        let prefix_ok = prefix.parse::<u8>().is_ok_and(|p| p <= 32);
        if address.parse::<Ipv4Addr>().is_err() || !prefix_ok || !seen.insert(entry) {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_db_name(name: &str, engine: Engine) -> Result<(), ApiError> {
    let max = match engine {
        Engine::MySql => 64,
        Engine::PostgreSql => 63,
    };
    let bytes = name.as_bytes();
    let valid = (2..=max).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if !valid {
        return Err(ApiError::new(
            400,
            "InvalidDBName.Format",
            "Specified DB name is not valid.",
        ));
    }
    if FORBIDDEN_DB_NAMES.contains(&name) {
        return Err(ApiError::new(
            400,
            "InvalidDBName.Forbid",
            "Specified DB name is a keyword in RDS.",
        ));
    }
    Ok(())
}

/// MySQL: `utf8`, `gbk`, `latin1`, `utf8mb4`. PostgreSQL: `ENCODING[,COLLATE[,CTYPE]]`
/// with one of the encodings RDS lists and locale names of letters, digits, `_`, `.`, `-`, `@`.
fn check_charset(charset: &str, engine: Engine) -> Result<(), ApiError> {
    const PG_ENCODINGS: &[&str] = &[
        "KOI8U",
        "UTF8",
        "WIN866",
        "WIN874",
        "WIN1250",
        "WIN1251",
        "WIN1252",
        "WIN1253",
        "WIN1254",
        "WIN1255",
        "WIN1256",
        "WIN1257",
        "WIN1258",
        "EUC_CN",
        "EUC_KR",
        "EUC_TW",
        "EUC_JP",
        "EUC_JIS_2004",
        "KOI8R",
        "MULE_INTERNAL",
        "LATIN1",
        "LATIN2",
        "LATIN3",
        "LATIN4",
        "LATIN5",
        "LATIN6",
        "LATIN7",
        "LATIN8",
        "LATIN9",
        "LATIN10",
        "ISO_8859_5",
        "ISO_8859_6",
        "ISO_8859_7",
        "ISO_8859_8",
        "SQL_ASCII",
    ];
    let valid = match engine {
        Engine::MySql => ["utf8", "gbk", "latin1", "utf8mb4"].contains(&charset),
        Engine::PostgreSql => {
            let parts: Vec<&str> = charset.split(',').map(str::trim).collect();
            let locale_ok = |locale: &&str| {
                !locale.is_empty()
                    && locale
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
            };
            parts.len() <= 3 && PG_ENCODINGS.contains(&parts[0]) && parts[1..].iter().all(locale_ok)
        }
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidCharacterSetName.Format",
            "Specified character set name is not valid.",
        ))
    }
}

fn check_account_name(name: &str, engine: Engine, version: &str) -> Result<(), ApiError> {
    let max = match engine {
        Engine::MySql if version == "5.6" || version == "5.5" => 16,
        Engine::MySql => 32,
        Engine::PostgreSql => 63,
    };
    let letter = |b: &u8| match engine {
        Engine::MySql => b.is_ascii_alphabetic(),
        Engine::PostgreSql => b.is_ascii_lowercase(),
    };
    let bytes = name.as_bytes();
    let valid = (2..=max).contains(&bytes.len())
        && letter(&bytes[0])
        && (letter(&bytes[bytes.len() - 1]) || bytes[bytes.len() - 1].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| letter(b) || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(ApiError::new(
            400,
            "InvalidAccountName.Malformed",
            "The specified parameter \"AccountName\" is not valid.",
        ));
    }
    if FORBIDDEN_ACCOUNT_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ApiError::new(
            400,
            "InvalidAccountName.Forbid",
            "Specified account name is a keyword in RDS.",
        ));
    }
    Ok(())
}

/// 8 to 32 characters, each an upper-case or lower-case letter, a digit or one of
/// [`PASSWORD_SPECIALS`], with at least three of those four kinds.
fn check_password(password: &str) -> Result<(), ApiError> {
    let malformed = || {
        ApiError::new(
            400,
            "InvalidAccountPassword.Malformed",
            "The specified parameter \"AccountPassword\" is not valid.",
        )
    };
    if !(8..=32).contains(&password.chars().count()) {
        return Err(malformed());
    }
    let mut kinds = [false; 4];
    for c in password.chars() {
        let kind = if c.is_ascii_uppercase() {
            0
        } else if c.is_ascii_lowercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else if PASSWORD_SPECIALS.contains(c) {
            3
        } else {
            return Err(malformed());
        };
        kinds[kind] = true;
    }
    if kinds.iter().filter(|kind| **kind).count() < 3 {
        return Err(malformed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::FakeConfig;

    fn shared() -> Shared {
        Shared::new(FakeConfig {
            creating: Duration::from_millis(50),
            deleting: Duration::from_millis(50),
            changing: Duration::from_millis(50),
            instance_quota: 2,
            ..FakeConfig::default()
        })
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn create_params(extra: &[(&str, &str)]) -> Params {
        let mut pairs = vec![
            ("RegionId", "cn-hangzhou"),
            ("Engine", "MySQL"),
            ("EngineVersion", "8.0"),
            ("DBInstanceClass", "mysql.n2.small.1"),
            ("DBInstanceStorage", "20"),
            ("DBInstanceNetType", "Intranet"),
            ("SecurityIPList", "10.0.0.0/8,192.168.1.1"),
            ("PayType", "Postpaid"),
        ];
        pairs.extend_from_slice(extra);
        params(&pairs)
    }

    async fn call(
        shared: &Shared,
        action: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        handle(shared, action, &params(pairs)).await
    }

    async fn status(shared: &Shared, id: &str) -> Result<String, ApiError> {
        let answer = call(
            shared,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", id)],
        )
        .await?;
        Ok(
            answer["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    #[tokio::test]
    async fn an_instance_goes_through_its_states() {
        let shared = shared();
        let created = handle(&shared, "CreateDBInstance", &create_params(&[]))
            .await
            .unwrap();
        let id = created["DBInstanceId"].as_str().unwrap().to_owned();
        assert!(id.starts_with("rm-") && id.len() == 20, "{id}");
        assert_eq!(created["Port"], "3306");
        assert_eq!(status(&shared, &id).await.unwrap(), "Creating");
        let err = call(
            &shared,
            "CreateDatabase",
            &[
                ("DBInstanceId", &id),
                ("DBName", "app"),
                ("CharacterSetName", "utf8mb4"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (403, "IncorrectDBInstanceState")
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(status(&shared, &id).await.unwrap(), "Running");

        call(
            &shared,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "mysql.n4.medium.2c"),
                ("DBInstanceStorage", "40"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            status(&shared, &id).await.unwrap(),
            "DBInstanceClassChanging"
        );
        let err = call(
            &shared,
            "ModifyDBInstanceSpec",
            &[("DBInstanceId", &id), ("DBInstanceStorage", "50")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (400, "IncorrectDBInstanceState")
        );
        let err = call(&shared, "DeleteDBInstance", &[("DBInstanceId", &id)])
            .await
            .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (403, "IncorrectDBInstanceState")
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        let answer = call(
            &shared,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", &id)],
        )
        .await
        .unwrap();
        let attributes = &answer["Items"]["DBInstanceAttribute"][0];
        assert_eq!(attributes["DBInstanceStatus"], "Running");
        assert_eq!(attributes["DBInstanceClass"], "mysql.n4.medium.2c");
        assert_eq!(attributes["DBInstanceStorage"], 40);
        let err = call(
            &shared,
            "ModifyDBInstanceSpec",
            &[("DBInstanceId", &id), ("DBInstanceStorage", "20")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "NotSupportReduceDiskSize");

        call(&shared, "DeleteDBInstance", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(status(&shared, &id).await.unwrap(), "Deleting");
        tokio::time::sleep(Duration::from_millis(80)).await;
        let err = status(&shared, &id).await.unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (404, "InvalidDBInstanceId.NotFound")
        );
    }

    #[tokio::test]
    async fn client_tokens_make_creation_idempotent_and_the_quota_holds() {
        let shared = shared();
        let first = handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("ClientToken", "op-1")]),
        )
        .await
        .unwrap();
        let again = handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("ClientToken", "op-1")]),
        )
        .await
        .unwrap();
        assert_eq!(first, again);
        assert_eq!(lock(&shared.rds).instances.len(), 1);
        handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("ClientToken", "op-2")]),
        )
        .await
        .unwrap();
        let err = handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("ClientToken", "op-3")]),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (403, "QuotaExceeded.CreateInstance")
        );
        // A repeat is still answered at the quota.
        handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("ClientToken", "op-1")]),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_failing_class_is_never_delivered() {
        let shared = shared();
        let created = handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[("DBInstanceClass", "mysql.n2.small.fail")]),
        )
        .await
        .unwrap();
        let id = created["DBInstanceId"].as_str().unwrap();
        assert_eq!(status(&shared, id).await.unwrap(), "Creating");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            status(&shared, id).await.unwrap_err().code,
            "InvalidDBInstanceId.NotFound"
        );
    }

    #[tokio::test]
    async fn creation_parameters_are_checked() {
        let shared = shared();
        for (pairs, code) in [
            (vec![("Engine", "Oracle")], "InvalidEngine.Malformed"),
            (
                vec![("EngineVersion", "9.9")],
                "InvalidEngineVersion.Malformed",
            ),
            (
                vec![("DBInstanceClass", "pg.n2.small.1")],
                "InvalidDBInstanceClass.NotFound",
            ),
            (
                vec![("DBInstanceClass", "mysql..x")],
                "InvalidDBInstanceClass.Malformed",
            ),
            (
                vec![("DBInstanceStorage", "21")],
                "InvalidDBInstanceStorage",
            ),
            (vec![("DBInstanceStorage", "lots")], "InvalidParameter"),
            (vec![("DBInstanceNetType", "Public")], "InvalidParameter"),
            (
                vec![("SecurityIPList", "10.0.0.1,10.0.0.1")],
                "InvalidSecurityIPList.Format",
            ),
            (
                vec![("SecurityIPList", "10.0.0.0/33")],
                "InvalidSecurityIPList.Format",
            ),
            (vec![("PayType", "Free")], "InvalidPayType"),
            (
                vec![("DBInstanceStorageType", "floppy")],
                "InvalidDBInstanceStorageType",
            ),
            (vec![("RegionId", "mars-1")], "InvalidRegionId.NotFound"),
            (vec![("DBInstanceClass", "")], "MissingParameter"),
        ] {
            let err = handle(&shared, "CreateDBInstance", &create_params(&pairs))
                .await
                .unwrap_err();
            assert_eq!(err.code, code, "{pairs:?}");
        }
        let created = handle(
            &shared,
            "CreateDBInstance",
            &create_params(&[
                ("Engine", "PostgreSQL"),
                ("EngineVersion", "15.0"),
                ("DBInstanceClass", "pg.n2.small.2c"),
            ]),
        )
        .await
        .unwrap();
        assert!(created["DBInstanceId"]
            .as_str()
            .unwrap()
            .starts_with("pgm-"));
        assert_eq!(created["Port"], "5432");
    }

    #[tokio::test]
    async fn databases_accounts_and_grants_are_recorded() {
        let shared = shared();
        let created = handle(&shared, "CreateDBInstance", &create_params(&[]))
            .await
            .unwrap();
        let id = created["DBInstanceId"].as_str().unwrap().to_owned();
        let err = call(&shared, "DescribeAccounts", &[("DBInstanceId", &id)])
            .await
            .unwrap_err();
        assert_eq!(err.code, "InvalidDBInstanceStatus.NotSupport");
        tokio::time::sleep(Duration::from_millis(80)).await;

        let db = [
            ("DBInstanceId", id.as_str()),
            ("DBName", "app_db"),
            ("CharacterSetName", "utf8mb4"),
        ];
        call(&shared, "CreateDatabase", &db).await.unwrap();
        assert_eq!(
            call(&shared, "CreateDatabase", &db).await.unwrap_err().code,
            "InvalidDBName.Duplicate"
        );
        for (name, code) in [
            ("1app", "InvalidDBName.Format"),
            ("App", "InvalidDBName.Format"),
            ("mysql", "InvalidDBName.Forbid"),
        ] {
            let err = call(
                &shared,
                "CreateDatabase",
                &[
                    ("DBInstanceId", &id),
                    ("DBName", name),
                    ("CharacterSetName", "utf8"),
                ],
            )
            .await
            .unwrap_err();
            assert_eq!(err.code, code, "{name}");
        }
        let err = call(
            &shared,
            "CreateDatabase",
            &[
                ("DBInstanceId", &id),
                ("DBName", "other"),
                ("CharacterSetName", "ebcdic"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidCharacterSetName.Format");

        for (name, password, code) in [
            ("1user", "Passw0rd!", "InvalidAccountName.Malformed"),
            ("user_", "Passw0rd!", "InvalidAccountName.Malformed"),
            ("root", "Passw0rd!", "InvalidAccountName.Forbid"),
            ("user1", "short1A", "InvalidAccountPassword.Malformed"),
            ("user1", "alllowercase1", "InvalidAccountPassword.Malformed"),
            (
                "user1",
                "Passw0rd with space",
                "InvalidAccountPassword.Malformed",
            ),
        ] {
            let err = call(
                &shared,
                "CreateAccount",
                &[
                    ("DBInstanceId", &id),
                    ("AccountName", name),
                    ("AccountPassword", password),
                ],
            )
            .await
            .unwrap_err();
            assert_eq!(err.code, code, "{name} {password}");
        }
        let account = [
            ("DBInstanceId", id.as_str()),
            ("AccountName", "app_user"),
            ("AccountPassword", "lower_and_UPPER"),
        ];
        call(&shared, "CreateAccount", &account).await.unwrap();
        assert_eq!(
            call(&shared, "CreateAccount", &account)
                .await
                .unwrap_err()
                .code,
            "InvalidAccountName.Duplicate"
        );

        let err = call(
            &shared,
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "app_user"),
                ("DBName", "app_db"),
                ("AccountPrivilege", "DBOwner"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidAccountPrivilege.Malformed");
        let err = call(
            &shared,
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "app_user"),
                ("DBName", "app_db"),
                ("AccountPrivilege", "ReadOnly,ReadWrite"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidDBNameOrAccountPrivilege");
        let err = call(
            &shared,
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "nobody"),
                ("DBName", "app_db"),
                ("AccountPrivilege", "ReadOnly"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidAccountName.NotFound");
        call(
            &shared,
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "app_user"),
                ("DBName", "app_db"),
                ("AccountPrivilege", "ReadOnly"),
            ],
        )
        .await
        .unwrap();
        let accounts = call(&shared, "DescribeAccounts", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        let privileges = &accounts["Accounts"]["DBInstanceAccount"][0]["DatabasePrivileges"]
            ["DatabasePrivilege"];
        assert_eq!(privileges[0]["DBName"], "app_db");
        assert_eq!(privileges[0]["AccountPrivilege"], "ReadOnly");
        let databases = call(&shared, "DescribeDatabases", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(
            databases["Databases"]["Database"][0]["Accounts"]["AccountPrivilegeInfo"][0]["Account"],
            "app_user"
        );

        call(
            &shared,
            "RevokeAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "app_user"),
                ("DBName", "app_db"),
            ],
        )
        .await
        .unwrap();
        call(
            &shared,
            "ResetAccountPassword",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "app_user"),
                ("AccountPassword", "An0ther-one"),
            ],
        )
        .await
        .unwrap();
        call(
            &shared,
            "DeleteAccount",
            &[("DBInstanceId", &id), ("AccountName", "app_user")],
        )
        .await
        .unwrap();
        let err = call(
            &shared,
            "DeleteAccount",
            &[("DBInstanceId", &id), ("AccountName", "app_user")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidAccountName.NotFound");
        call(
            &shared,
            "DeleteDatabase",
            &[("DBInstanceId", &id), ("DBName", "app_db")],
        )
        .await
        .unwrap();
        let err = call(
            &shared,
            "DeleteDatabase",
            &[("DBInstanceId", &id), ("DBName", "app_db")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidDBName.NotFound");
    }

    #[tokio::test]
    async fn listings_are_paged() {
        let shared = Shared::new(FakeConfig::default());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let created = handle(&shared, "CreateDBInstance", &create_params(&[]))
                .await
                .unwrap();
            ids.push(created["DBInstanceId"].as_str().unwrap().to_owned());
        }
        let page = call(
            &shared,
            "DescribeDBInstances",
            &[
                ("RegionId", "cn-hangzhou"),
                ("PageSize", "2"),
                ("PageNumber", "2"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(page["TotalRecordCount"], 3);
        assert_eq!(page["PageRecordCount"], 1);
        assert_eq!(
            page["Items"]["DBInstance"][0]["DBInstanceId"],
            ids[2].as_str()
        );
        let one = call(
            &shared,
            "DescribeDBInstances",
            &[("RegionId", "cn-hangzhou"), ("DBInstanceId", &ids[1])],
        )
        .await
        .unwrap();
        assert_eq!(one["TotalRecordCount"], 1);
        assert_eq!(
            one["Items"]["DBInstance"][0]["DBInstanceStatus"],
            "Creating"
        );
        let err = call(
            &shared,
            "DescribeDBInstances",
            &[("RegionId", "cn-hangzhou"), ("PageSize", "101")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidParameter");
    }

    #[test]
    fn postgres_only_knows_db_owner() {
        assert_eq!(
            Privilege::parse("DBOwner", Engine::PostgreSql).unwrap(),
            Privilege::DbOwner
        );
        assert!(Privilege::parse("ReadOnly", Engine::PostgreSql).is_err());
        assert!(Privilege::parse("DBOwner", Engine::MySql).is_err());
    }

    #[test]
    fn account_names_follow_the_engine() {
        assert!(check_account_name("App_User1", Engine::MySql, "8.0").is_ok());
        assert!(check_account_name("App_User1", Engine::PostgreSql, "15.0").is_err());
        assert!(check_account_name("a_seventeen_chars", Engine::MySql, "5.6").is_err());
        assert!(check_account_name("a_seventeen_chars", Engine::MySql, "5.7").is_ok());
    }
}
