//! Headers, authentication and general message rules (OSB-HDR, OSB-AUTH, OSB-GEN).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// Every route of E1–E10 with a method, for the cross-cutting rules.
fn routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/v2/catalog"),
        (Method::PUT, "/v2/service_instances/i"),
        (Method::GET, "/v2/service_instances/i"),
        (Method::PATCH, "/v2/service_instances/i"),
        (
            Method::DELETE,
            "/v2/service_instances/i?service_id=s&plan_id=p",
        ),
        (Method::GET, "/v2/service_instances/i/last_operation"),
        (Method::PUT, "/v2/service_instances/i/service_bindings/b"),
        (Method::GET, "/v2/service_instances/i/service_bindings/b"),
        (
            Method::DELETE,
            "/v2/service_instances/i/service_bindings/b?service_id=s&plan_id=p",
        ),
        (
            Method::GET,
            "/v2/service_instances/i/service_bindings/b/last_operation",
        ),
    ]
}

/// OSB-AUTH-03/04: every route answers 401 without credentials and with wrong ones, with an
/// OSB error body; D-18: the request identity is echoed on the 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_requires_authentication() {
    let broker = Broker::start().await;
    for (method, path) in routes() {
        let url = format!("{}{path}", broker.url);
        let anonymous = broker
            .client
            .request(method.clone(), &url)
            .header("X-Broker-API-Version", "2.17")
            .header("X-Broker-API-Request-Identity", "rid-401")
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert_eq!(
            anonymous.headers()["x-broker-api-request-identity"],
            "rid-401"
        );
        let body: Value = anonymous.json().await.unwrap();
        assert!(body["description"].is_string());
        for (user, password) in [(USER, "wrong"), ("other", PASSWORD), ("", "")] {
            let wrong = broker
                .client
                .request(method.clone(), &url)
                .basic_auth(user, Some(password))
                .header("X-Broker-API-Version", "2.17")
                .send()
                .await
                .unwrap();
            assert_eq!(
                wrong.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {user}"
            );
        }
    }
    broker.stop().await;
}

/// OSB-AUTH-05: a configured bearer token is accepted, any other is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_accepted_when_configured() {
    let broker = Broker::start().await;
    let with_token = |token: &str| {
        broker
            .client
            .get(format!("{}/v2/catalog", broker.url))
            .bearer_auth(token)
            .header("X-Broker-API-Version", "2.17")
    };
    assert_eq!(
        with_token("token-abc").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        with_token("token-abd").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    broker.stop().await;
}

/// D-01, OSB-HDR-02/04: a missing, empty or too old version gets 412 with a body naming the
/// supported versions on every route; 2.13–2.17 are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_header_is_checked_on_every_route() {
    let broker = Broker::start().await;
    for (method, path) in routes() {
        let url = format!("{}{path}", broker.url);
        for version in [None, Some(""), Some("2.12"), Some("1.0"), Some("3.0")] {
            let mut request = broker
                .client
                .request(method.clone(), &url)
                .basic_auth(USER, Some(PASSWORD));
            if let Some(version) = version {
                request = request.header("X-Broker-API-Version", version);
            }
            let response = request
                .header("X-Broker-API-Request-Identity", "rid-412")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::PRECONDITION_FAILED,
                "{method} {path} {version:?}"
            );
            assert_eq!(
                response.headers()["x-broker-api-request-identity"],
                "rid-412",
                "D-18"
            );
            let body: Value = response.json().await.unwrap();
            assert!(
                body["description"].as_str().unwrap().contains("2.13"),
                "{body}"
            );
        }
    }
    for version in ["2.13", "2.14", "2.15", "2.16", "2.17"] {
        let response = broker
            .client
            .get(format!("{}/v2/catalog", broker.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", version)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{version}");
    }
    broker.stop().await;
}

/// OSB-HDR-09, D-18: the request identity is echoed on success and on validation errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_identity_is_echoed() {
    let broker = Broker::start().await;
    for (method, path) in routes() {
        let response = broker
            .request(method.clone(), path)
            .header("X-Broker-API-Request-Identity", "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-broker-api-request-identity"],
            "abc-123",
            "{method} {path}"
        );
    }
    broker.stop().await;
}

/// D-02: a malformed originating identity is 400; a valid one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originating_identity_is_validated() {
    let broker = Broker::start().await;
    let valid = "cloudfoundry eyJ1c2VyX2lkIjogIjY4M2VhNzQ4LTMwOTItNGZmNC1iNjU2LTM5Y2FjYzRkNTM2MCJ9";
    let (status, _) = broker
        .send(
            broker
                .request(Method::PUT, "/v2/service_instances/oi-1")
                .header("X-Broker-API-Originating-Identity", valid)
                .json(&provision_body(SYNC)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for bad in [
        "cloudfoundry",
        "cloudfoundry %%%",
        "kubernetes bm90IGpzb24=",
    ] {
        let (status, body) = broker
            .send(
                broker
                    .request(Method::PUT, "/v2/service_instances/oi-2")
                    .header("X-Broker-API-Originating-Identity", bad)
                    .json(&provision_body(SYNC)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("Originating-Identity"));
    }
    assert_eq!(
        broker.get_instance("oi-2").await.0,
        StatusCode::NOT_FOUND,
        "OSB-ERR-04"
    );
    broker.stop().await;
}

/// OSB-GEN-01: unknown fields, nested too, are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_do_not_halt_processing() {
    let broker = Broker::start().await;
    let mut body = provision_body(SYNC);
    body["x-foo"] = json!(1);
    body["context"]["x-nested"] = json!({"a": [1, 2]});
    let (status, _) = broker.put_instance("gen-1", &body, false).await;
    assert_eq!(status, StatusCode::CREATED);
    broker.stop().await;
}

/// OSB-GEN-05, OSB-PROV-03: bodies that are not JSON objects, or declared as another type,
/// are 400 with an OSB error body; nothing is created (OSB-ERR-04).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400() {
    let broker = Broker::start().await;
    let path = "/v2/service_instances/gen-2";
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1,2]"),
        ("application/json", ""),
        ("text/plain", &provision_body(SYNC).to_string()),
    ] {
        let (status, error) = broker
            .send(
                broker
                    .request(Method::PUT, path)
                    .header("Content-Type", content_type)
                    .body(body.to_owned()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type} {body}");
        assert!(error["description"].is_string());
    }
    // No Content-Type at all is accepted (OSB-GEN-04).
    let (status, _) = broker
        .send(
            broker
                .request(Method::PUT, path)
                .body(provision_body(SYNC).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    broker.stop().await;
}

/// OSB-GEN-06: ids with percent-encoded reserved characters round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_ids_round_trip() {
    let broker = Broker::start().await;
    let (status, _) = broker
        .put_instance("a%2Fb%20c", &provision_body(SYNC), false)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(broker.core().state.instance("a/b c").is_some());
    let (status, body) = broker.get_instance("a%2Fb%20c").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    broker.stop().await;
}

/// Unknown routes and methods answer with OSB error bodies, never plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_get_json_errors() {
    let broker = Broker::start().await;
    let (status, body) = broker.send(broker.request(Method::GET, "/v2/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["description"].is_string());
    let (status, body) = broker
        .send(broker.request(Method::POST, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["description"].is_string());
    broker.stop().await;
}
