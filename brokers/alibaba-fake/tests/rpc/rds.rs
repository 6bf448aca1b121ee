//! RDS over HTTP: creation and its idempotency, the state machine, throttling, and the
//! unsigned control routes.

use std::time::Duration;

use skybroker_alibaba_fake::FakeConfig;

use crate::client::{Call, Tamper, RDS};
use crate::{mysql_instance, start, start_with, wait_for_status};

#[tokio::test]
async fn creation_is_idempotent_per_client_token() {
    let (fake, client) = start().await;
    let first = client
        .ok(RDS, "CreateDBInstance", &mysql_instance("token-1"))
        .await;
    let again = client
        .ok(RDS, "CreateDBInstance", &mysql_instance("token-1"))
        .await;
    assert_eq!(first["DBInstanceId"], again["DBInstanceId"]);
    assert_eq!(first["OrderId"], again["OrderId"]);
    let other = client
        .ok(RDS, "CreateDBInstance", &mysql_instance("token-2"))
        .await;
    assert_ne!(first["DBInstanceId"], other["DBInstanceId"]);
    let snapshot = fake.snapshot();
    let instances = snapshot["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().any(|i| i["client_token"] == "token-1"));
}

#[tokio::test]
async fn an_instance_is_created_changed_and_deleted_in_time() {
    let (_fake, client) = start().await;
    let created = client
        .ok(RDS, "CreateDBInstance", &mysql_instance("t"))
        .await;
    let id = created["DBInstanceId"].as_str().unwrap().to_owned();
    let status = |answer: &serde_json::Value| {
        answer["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"].clone()
    };
    let answer = client
        .ok(RDS, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(status(&answer), "Creating");
    // Not before its time...
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = client
        .ok(RDS, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(status(&answer), "Creating");
    // ...but after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = client
        .ok(RDS, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(status(&answer), "Running");

    client
        .ok(
            RDS,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "mysql.n4.large.2c"),
            ],
        )
        .await;
    let (code_status, code) = client
        .err(
            RDS,
            "ModifyDBInstanceSpec",
            &[("DBInstanceId", &id), ("DBInstanceStorage", "100")],
        )
        .await;
    assert_eq!(
        (code_status, code.as_str()),
        (400, "IncorrectDBInstanceState")
    );
    wait_for_status(&client, &id, "Running").await;
    let answer = client
        .ok(RDS, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(
        answer["Items"]["DBInstanceAttribute"][0]["DBInstanceClass"],
        "mysql.n4.large.2c"
    );

    client
        .ok(RDS, "DeleteDBInstance", &[("DBInstanceId", &id)])
        .await;
    let (code_status, code) = client
        .err(RDS, "DeleteDBInstance", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(
        (code_status, code.as_str()),
        (403, "IncorrectDBInstanceState")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code_status, code) = client
        .err(RDS, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
        .await;
    assert_eq!(
        (code_status, code.as_str()),
        (404, "InvalidDBInstanceId.NotFound")
    );
    let listed = client
        .ok(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    assert_eq!(listed["TotalRecordCount"], 0);
}

#[tokio::test]
async fn the_quota_is_enforced() {
    let (_fake, client) = start_with(FakeConfig {
        instance_quota: 1,
        ..FakeConfig::default()
    })
    .await;
    client
        .ok(RDS, "CreateDBInstance", &mysql_instance("a"))
        .await;
    let (status, code) = client
        .err(RDS, "CreateDBInstance", &mysql_instance("b"))
        .await;
    assert_eq!(
        (status, code.as_str()),
        (403, "QuotaExceeded.CreateInstance")
    );
}

#[tokio::test]
async fn injected_throttling_answers_the_real_code_then_stops() {
    let (fake, client) = start().await;
    fake.throttle_next(2);
    for _ in 0..2 {
        let (status, body) = client
            .send(
                &Call::new(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")]),
                Tamper::None,
            )
            .await;
        assert_eq!(status.as_u16(), 400);
        assert_eq!(body["Code"], "Throttling.User");
        assert_eq!(
            body["Message"],
            "Request was denied due to user flow control."
        );
    }
    client
        .ok(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
}

#[tokio::test]
async fn the_control_routes_need_no_signature() {
    let (fake, client) = start().await;
    let http = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    };
    let response = http
        .post(format!("{}/__fake/throttle?calls=1", fake.rpc_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (status, _) = client
        .err(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    assert_eq!(status, 400);

    client
        .ok(RDS, "CreateDBInstance", &mysql_instance("t"))
        .await;
    let state: serde_json::Value = http
        .get(format!("{}/__fake/state", fake.rpc_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["instances"][0]["status"], "Creating");
    assert!(state["ram"]["users"].is_array());
    assert!(state["oss"].is_object());
}
