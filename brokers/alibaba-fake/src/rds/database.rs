//! The databases and accounts inside an instance, and the grants between them:
//! Create/Delete/DescribeDatabases, CreateAccount, DescribeAccounts, ResetAccountPassword,
//! Grant/RevokeAccountPrivilege and DeleteAccount. With a real server configured, each
//! change is recorded first (so a concurrent duplicate is refused), made on the server,
//! and undone in the record if the server refuses.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::engine::Privilege;
use super::error::{account_not_found, db_not_found, server_error};
use super::server;
use super::state::{Account, Database};
use super::validate::{check_account_name, check_charset, check_db_name, check_password};
use crate::api::{ApiError, Params};
use crate::{lock, Shared};

pub(super) async fn create_database(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn delete_database(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) fn describe_databases(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn create_account(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) fn describe_accounts(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn reset_password(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn grant_privilege(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn revoke_privilege(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn delete_account(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::rds::handle;
    use crate::rds::test_support::{call, create_params, shared};

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
}
