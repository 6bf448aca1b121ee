//! Secrets from mounted files (issue #21): a rotated password or admin token takes effect
//! without a restart, and the old one stops working.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::*;

/// The status of the catalog asked with `password`.
async fn catalog_as(broker: &Broker, password: &str) -> StatusCode {
    broker
        .client
        .get(format!("{}/v2/catalog", broker.url))
        .basic_auth(USER, Some(password))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .expect("an answer")
        .status()
}

/// The status of a Service Manager list asked with `token`.
async fn platforms_as(broker: &Broker, token: &str) -> StatusCode {
    broker
        .client
        .get(format!("{}/v1/platforms", broker.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_files_take_effect_without_a_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let password_file = dir.path().join("password");
    let token_file = dir.path().join("admin-tokens");
    std::fs::write(&password_file, "first-password\n").unwrap();
    std::fs::write(&token_file, "token-one\n").unwrap();
    let mut config = fast_config(300);
    config.server.password = None;
    config.server.password_file = Some(password_file.clone());
    config.server.admin_token_file = Some(token_file.clone());
    config.server.secret_reload_secs = 1;
    // As `serve` loads it: the password read from its file.
    config
        .apply_env(&Default::default())
        .expect("the file is read");
    let broker = Broker::with_config(config).await;
    assert_eq!(catalog_as(&broker, "first-password").await, StatusCode::OK);
    assert_eq!(platforms_as(&broker, "token-one").await, StatusCode::OK);

    // Kubernetes swaps the mounted files.
    std::fs::write(&password_file, "second-password\n").unwrap();
    std::fs::write(&token_file, "token-two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while catalog_as(&broker, "second-password").await != StatusCode::OK
        || platforms_as(&broker, "token-two").await != StatusCode::OK
    {
        assert!(
            Instant::now() < deadline,
            "the new secrets never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        catalog_as(&broker, "first-password").await,
        StatusCode::UNAUTHORIZED,
        "the old password stopped working"
    );
    assert_eq!(
        platforms_as(&broker, "token-one").await,
        StatusCode::UNAUTHORIZED,
        "the old token stopped working"
    );

    // A file missing for a moment (a swap in progress) keeps what works.
    std::fs::remove_file(&password_file).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(catalog_as(&broker, "second-password").await, StatusCode::OK);
    broker.stop().await;
}
