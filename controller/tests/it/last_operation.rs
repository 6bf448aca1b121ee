//! E6 and E10: polling.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

/// OSB-LOI-02/03/08, D-13: state enum with the space, Retry-After in seconds while in
/// progress, hints optional, unknown operation values answer for the latest operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_last_operation_while_in_progress() {
    let broker = Broker::with_config(fast_config(1500)).await;
    let (_, body) = broker
        .put_instance("lo-1", &provision_body(ASYNC), true)
        .await;
    let operation = body["operation"].as_str().unwrap().to_owned();
    let response = broker
        .request(
            Method::GET,
            &format!("/v2/service_instances/lo-1/last_operation?operation={operation}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["state"], "in progress");
    for query in ["", "?operation=provision", "?service_id=x&plan_id=y"] {
        let (status, body) = broker
            .send(broker.request(
                Method::GET,
                &format!("/v2/service_instances/lo-1/last_operation{query}"),
            ))
            .await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("in progress")),
            "{query}"
        );
    }
    let (status, _) = broker
        .send(broker.request(
            Method::GET,
            "/v2/service_instances/lo-1/last_operation?operation=",
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "OSB-LOI-04: empty operation"
    );
    assert_eq!(
        broker.last_operation("nope", None).await.0,
        StatusCode::NOT_FOUND,
        "OSB-LOI-05"
    );
    broker.stop().await;
}

/// OSB-LOI-07, OSB-LOI-10, OSB-LOI-12: a failed provision reports failed with a description and
/// without instance_usable; repeated polls agree; the platform can then clean up with DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_provision_reports_failed() {
    let broker = Broker::start().await;
    let (status, body) = broker
        .put_instance("lf-1", &provision_body(FAIL), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let operation = body["operation"].as_str().unwrap().to_owned();
    let last = broker.wait_instance("lf-1", &operation).await;
    assert_eq!(last["state"], "failed");
    assert!(last["description"]
        .as_str()
        .unwrap()
        .contains("always fails"));
    assert!(last.get("instance_usable").is_none() && last.get("update_repeatable").is_none());
    for _ in 0..3 {
        assert_eq!(
            broker.last_operation("lf-1", Some(&operation)).await.1,
            last
        );
    }
    assert_eq!(broker.get_instance("lf-1").await.0, StatusCode::NOT_FOUND);
    // OSB-DEPROV-12: orphan mitigation.
    let (status, _) = broker.delete_instance("lf-1", FAIL, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        broker.delete_instance("lf-1", FAIL, false).await.0,
        StatusCode::GONE
    );
    broker.stop().await;
}

/// D-10, OSB-LOB-04: binding last_operation for an unknown binding is 404, and the operation
/// of a binding is not reachable through another binding or instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_last_operation_rules() {
    let broker = Broker::start().await;
    broker.provision_async("lb-1").await;
    let (_, body) = broker
        .put_binding("lb-1", "b-l", &bind_body(ASYNC), true)
        .await;
    let operation = body["operation"].as_str().unwrap().to_owned();
    assert_eq!(
        broker.wait_binding("lb-1", "b-l", &operation).await["state"],
        "succeeded"
    );
    assert_eq!(
        broker
            .binding_last_operation("lb-1", "b-none", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        broker
            .binding_last_operation("lb-x", "b-l", Some(&operation))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = broker.binding_last_operation("lb-1", "b-l", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"state": "succeeded"}))
    );
    broker.stop().await;
}

/// D-08: after an async deprovision, last_operation answers succeeded while the record is kept,
/// then 410 once it is cleaned up; polling a never-issued operation of an unknown instance is
/// 404. D-07: the id can be provisioned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_then_gone_then_reuse() {
    let mut config = fast_config(100);
    config.engine.operation_retention_secs = 1;
    config.engine.cleanup_interval_secs = 1;
    let broker = Broker::with_config(config).await;
    broker.provision_async("lr-1").await;
    let (_, body) = broker.delete_instance("lr-1", ASYNC, true).await;
    let operation = body["operation"].as_str().unwrap().to_owned();
    assert_eq!(
        broker.wait_instance("lr-1", &operation).await["state"],
        "succeeded"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = broker.last_operation("lr-1", Some(&operation)).await;
        if status == StatusCode::GONE {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "the record was never cleaned up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(broker.core().state.operation(&operation).is_none());
    assert_eq!(
        broker.last_operation("lr-1", Some("whatever")).await.0,
        StatusCode::NOT_FOUND
    );
    broker.provision_async("lr-1").await;
    broker.stop().await;
}
