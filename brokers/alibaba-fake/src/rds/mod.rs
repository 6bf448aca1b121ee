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
//!
//! # Layout
//! - here: [`ACTIONS`], [`handle`] (the dispatch by action), [`resource_of`] (what RAM
//!   authorizes a call against), and the real server an instance lives on, if any;
//! - [`Engine`], [`Privilege`] (`engine`): the two engines and the privileges an account
//!   may hold on a database;
//! - [`Rds`] (`state`): instances with their databases and accounts, and the state machine
//!   that moves them along;
//! - `instance`: the instance operations and the two views of an instance they answer;
//! - `database`: the databases and accounts inside an instance, and the grants between them;
//! - `validate`: the parameter checks (engine versions, classes, storage, allow-lists,
//!   database and account names, character sets, passwords);
//! - `error`: the error answers several operations share, and server failures.

use serde_json::Value;

use crate::api::{ApiError, Params};
use crate::dbserver::DbServer;
use crate::{ram, Shared};

mod database;
mod engine;
mod error;
mod instance;
mod state;
mod validate;

pub use engine::{Engine, Privilege};
pub use state::Rds;

use database::{
    create_account, create_database, delete_account, delete_database, describe_accounts,
    describe_databases, grant_privilege, reset_password, revoke_privilege,
};
use instance::{
    create_instance, delete_instance, describe_instance, describe_instances, modify_security_ips,
    modify_spec,
};

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

/// The server instances of `engine` live on, if one is configured.
fn server(shared: &Shared, engine: Engine) -> Option<DbServer> {
    let address = match engine {
        Engine::MySql => shared.config.mysql.as_deref(),
        Engine::PostgreSql => shared.config.postgres.as_deref(),
    }?;
    DbServer::parse(engine, address)
}

/// What the operations' tests share: a fake with short timers and a small quota, and
/// calls through [`handle`].
#[cfg(test)]
mod test_support {
    use std::time::Duration;

    use serde_json::Value;

    use super::handle;
    use crate::api::{ApiError, Params};
    use crate::{FakeConfig, Shared};

    pub(super) fn shared() -> Shared {
        Shared::new(FakeConfig {
            creating: Duration::from_millis(50),
            deleting: Duration::from_millis(50),
            changing: Duration::from_millis(50),
            instance_quota: 2,
            ..FakeConfig::default()
        })
    }

    pub(super) fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    pub(super) fn create_params(extra: &[(&str, &str)]) -> Params {
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

    pub(super) async fn call(
        shared: &Shared,
        action: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        handle(shared, action, &params(pairs)).await
    }

    pub(super) async fn status(shared: &Shared, id: &str) -> Result<String, ApiError> {
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
}
