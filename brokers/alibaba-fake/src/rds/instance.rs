//! The instance operations: CreateDBInstance (with `ClientToken` repeats and the quota),
//! DescribeDBInstanceAttribute, DescribeDBInstances, ModifyDBInstanceSpec,
//! ModifySecurityIps and DeleteDBInstance, and the two views of an instance they answer
//! with.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::engine::Engine;
use super::error::{incorrect_state, region_not_found};
use super::server;
use super::state::{Created, Instance, Phase};
use super::validate::{
    canonical_version, check_class, check_security_ips, check_storage, STORAGE_TYPES,
};
use crate::api::{self, ApiError, Params};
use crate::{lock, Shared};

pub(super) fn create_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) fn describe_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let ids = params.required("DBInstanceId")?;
    let mut rds = lock(&shared.rds);
    let mut items = Vec::new();
    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let instance = rds.instance(id)?;
        items.push(attributes(id, instance, &shared.config.region));
    }
    Ok(json!({ "Items": { "DBInstanceAttribute": items } }))
}

pub(super) fn describe_instances(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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
pub(super) fn modify_security_ips(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) fn modify_spec(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

pub(super) async fn delete_instance(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rds::handle;
    use crate::rds::test_support::{call, create_params, shared, status};
    use crate::FakeConfig;

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
}
