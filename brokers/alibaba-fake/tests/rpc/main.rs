//! The fake's RPC endpoint (RDS and RAM) over a real socket, one test binary:
//! - `signature`: what the gateway accepts and refuses, with the real codes;
//! - `rds`: the instance state machine, idempotency and throttling over HTTP;
//! - `ram`: users, keys and policies, and RAM keys calling RDS under their policies;
//! - `sts`: AssumeRole and AssumeRoleWithOIDC with what STS checks, and temporary keys
//!   held to their token, their expiry and their role's policies;
//! - `databases`: grants made real on PostgreSQL and MySQL servers, when
//!   `SKYBROKER_TEST_POSTGRES` / `SKYBROKER_TEST_MYSQL` name them (skipped loudly
//!   otherwise, and failing when `CI=true`).
//!
//! Calls are signed by `client`, a signer written for the tests from the published
//! algorithm and apart from the fake's verifier.

mod client;
mod databases;
mod ram;
mod rds;
mod signature;
mod sts;

use std::time::Duration;

use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};

use client::{Client, Key};

/// A fake with short state-machine timings, and a client signing with its root key.
pub async fn start() -> (FakeAlibaba, Client) {
    start_with(FakeConfig {
        creating: Duration::from_millis(300),
        deleting: Duration::from_millis(200),
        changing: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .await
}

/// A fake with `config`, and a client signing with its root key.
pub async fn start_with(config: FakeConfig) -> (FakeAlibaba, Client) {
    let key = Key {
        id: config.access_key_id.clone(),
        secret: config.access_key_secret.clone(),
    };
    let fake = FakeAlibaba::start(config).await.expect("the fake starts");
    let client = Client::new(&fake.rpc_url(), key);
    (fake, client)
}

/// The parameters of a small MySQL instance.
pub fn mysql_instance(token: &str) -> Vec<(&str, &str)> {
    vec![
        ("RegionId", "cn-hangzhou"),
        ("Engine", "MySQL"),
        ("EngineVersion", "8.0"),
        ("DBInstanceClass", "mysql.n2.small.1"),
        ("DBInstanceStorage", "20"),
        ("DBInstanceNetType", "Intranet"),
        ("SecurityIPList", "0.0.0.0/0"),
        ("PayType", "Postpaid"),
        ("ClientToken", token),
    ]
}

/// Polls `DescribeDBInstanceAttribute` until the status is `want` (or 5 s pass).
pub async fn wait_for_status(client: &Client, id: &str, want: &str) {
    for _ in 0..100 {
        let answer = client
            .ok(
                client::RDS,
                "DescribeDBInstanceAttribute",
                &[("DBInstanceId", id)],
            )
            .await;
        if answer["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never became {want}");
}
