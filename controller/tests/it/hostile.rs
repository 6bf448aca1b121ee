//! Hostile input (issue #16): whatever a client sends, the answer is a 4xx with an OSB error
//! body (`{"error"?, "description"}`), never a 5xx, a panic or a plain-text error, and nothing
//! is created by a refused request.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// A refusal: the status, and an OSB error body that says why.
fn refused(status: StatusCode, body: &Value, expected: StatusCode, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    assert!(
        body["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: an OSB error body: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_deep_and_broken_bodies_are_refused() {
    let broker = Broker::start().await;
    let put = |body: Vec<u8>| {
        broker
            .request(Method::PUT, "/v2/service_instances/hostile-1")
            .header("Content-Type", "application/json")
            .body(body)
    };
    // 10 MB: more than the configured limit.
    let mut huge = serde_json::to_vec(&provision_body(SYNC)).unwrap();
    huge.truncate(huge.len() - 1);
    huge.extend_from_slice(b", \"padding\": \"");
    huge.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    huge.extend_from_slice(b"\"}");
    // The broker answers as soon as the limit is passed and closes the connection; a client
    // still sending may see the connection reset before it reads the answer (TCP discards
    // it), so a reset is tried again: what must hold is that the answer, when read, is 413.
    let mut answer = None;
    for _ in 0..5 {
        match put(huge.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                let body: Value = serde_json::from_str(&response.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                answer = Some((status, body));
                break;
            }
            Err(err) => eprintln!("10 MB body: {err} (connection reset while sending; again)"),
        }
    }
    let (status, body) = answer.expect("a 413 was read in one of 5 tries");
    refused(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "10 MB body");
    // 10,000 levels of nesting.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, body) = broker.send(put(deep.into_bytes())).await;
    refused(status, &body, StatusCode::BAD_REQUEST, "10k-deep JSON");
    // Not UTF-8.
    let (status, body) = broker
        .send(put(b"{\"service_id\": \"\xff\xfe\"}".to_vec()))
        .await;
    refused(status, &body, StatusCode::BAD_REQUEST, "invalid UTF-8");
    // Not an object, empty, truncated.
    for garbage in [&b"[]"[..], b"", b"{\"service_id\": ", b"null", b"\0\0\0"] {
        let (status, body) = broker.send(put(garbage.to_vec())).await;
        refused(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            &String::from_utf8_lossy(garbage),
        );
    }
    assert!(broker.core().state.instance("hostile-1").is_none());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_the_wrong_type_is_refused_by_name() {
    let broker = Broker::start().await;
    for (field, value) in [
        ("service_id", json!(5)),
        ("plan_id", json!(["x"])),
        ("parameters", json!("size=1")),
        ("context", json!([])),
        ("organization_guid", json!({})),
        ("space_guid", json!(true)),
        ("maintenance_info", json!(3)),
        ("service_id", json!("")),
    ] {
        let mut body = provision_body(SYNC);
        body[field] = value.clone();
        let (status, answer) = broker.put_instance("typed-1", &body, false).await;
        refused(status, &answer, StatusCode::BAD_REQUEST, field);
        assert!(
            answer["description"].as_str().unwrap().contains(field),
            "{field} {value}: {answer}"
        );
    }
    for query in ["accepts_incomplete=yes", "accepts_incomplete="] {
        let (status, answer) = broker
            .send(
                broker
                    .request(
                        Method::PUT,
                        &format!("/v2/service_instances/typed-1?{query}"),
                    )
                    .json(&provision_body(SYNC)),
            )
            .await;
        refused(status, &answer, StatusCode::BAD_REQUEST, query);
    }
    assert!(broker.core().state.instance("typed-1").is_none());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_no_platform_sends_are_refused_and_odd_ones_stay_ids() {
    let broker = Broker::start().await;
    let long = "i".repeat(10 * 1024);
    for id in ["nul%00id", "line%0Abreak", long.as_str()] {
        let (status, body) = broker.put_instance(id, &provision_body(SYNC), false).await;
        refused(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            &id[..id.len().min(20)],
        );
        let (status, body) = broker
            .put_binding("some-instance", id, &bind_body(SYNC), false)
            .await;
        refused(status, &body, StatusCode::BAD_REQUEST, "binding id");
    }
    assert_eq!(broker.core().state.counts().instances, 0);
    // A path traversal is only an id: stored and fetched as one, nothing else is touched.
    let traversal = "..%2F..%2Fetc%2Fpasswd";
    let (status, body) = broker
        .put_instance(traversal, &provision_body(SYNC), false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(broker.core().state.instance("../../etc/passwd").is_some());
    assert_eq!(broker.get_instance(traversal).await.0, StatusCode::OK);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_credentials_are_401_with_an_osb_body() {
    let broker = Broker::start().await;
    for authorization in [
        "Bearer ",
        "Bearer %%%",
        "Bearer token-abc-but-longer",
        "Basic ===",
        "Basic cGxhdGZvcm0=",
        "Digest username=platform",
        "bearer token-abc",
    ] {
        let response = broker
            .client
            .get(format!("{}/v2/catalog", broker.url))
            .header("X-Broker-API-Version", "2.17")
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        refused(status, &body, StatusCode::UNAUTHORIZED, authorization);
    }
    broker.stop().await;
}

/// Duplicate keys in a body are not an error (JSON leaves them to the reader); the last one
/// counts, as in most JSON parsers, and the request is answered as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_take_the_last_value() {
    let broker = Broker::start().await;
    let body = format!(
        r#"{{"service_id": "nonsense", "service_id": "{SERVICE}", "plan_id": "{SYNC}",
            "organization_guid": "o", "space_guid": "s"}}"#
    );
    let (status, answer) = broker
        .send(
            broker
                .request(Method::PUT, "/v2/service_instances/dup-1")
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        broker.core().state.instance("dup-1").unwrap().service_id,
        SERVICE
    );
    broker.stop().await;
}

/// Random requests against the running broker (property-based, 1,500 of them): routes with
/// odd ids, queries, content types and bodies mutated from valid ones; none gets a 5xx, and
/// every 4xx carries an OSB error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_get_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let broker = std::sync::Arc::new(Broker::start().await);
    let id = prop_oneof![
        "[a-z0-9-]{1,12}",
        "\\PC{1,20}",
        Just("..%2F..".to_owned()),
        Just("%00".to_owned()),
        Just("%FF%FE".to_owned()),
    ];
    let path = (0..6usize, id.clone(), id).prop_map(|(route, instance, binding)| match route {
        0 => "/v2/catalog".to_owned(),
        1 => format!("/v2/service_instances/{instance}"),
        2 => format!("/v2/service_instances/{instance}/last_operation"),
        3 => format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
        4 => format!("/v2/service_instances/{instance}/service_bindings/{binding}/last_operation"),
        _ => format!("/v2/{instance}"),
    });
    let method = prop_oneof![
        Just(reqwest::Method::GET),
        Just(reqwest::Method::PUT),
        Just(reqwest::Method::PATCH),
        Just(reqwest::Method::DELETE),
        Just(reqwest::Method::POST),
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just(format!("?service_id={SERVICE}&plan_id={SYNC}")),
        Just(format!(
            "?service_id={SERVICE}&plan_id={ASYNC}&accepts_incomplete=true"
        )),
        "\\?[a-z_=&%0-9]{0,30}",
    ];
    let field = prop_oneof![
        Just("service_id"),
        Just("plan_id"),
        Just("parameters"),
        Just("context"),
        Just("maintenance_info"),
        Just("bind_resource"),
        Just("predecessor_binding_id"),
    ];
    let value = prop_oneof![
        Just(json!(null)),
        Just(json!(1)),
        Just(json!("")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(SYNC)),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (field, value).prop_map(|(field, value)| {
            let mut body = provision_body(SYNC);
            body[field] = value;
            serde_json::to_vec(&body).unwrap()
        }),
    ];
    let content_type = prop_oneof![
        Just("application/json"),
        Just("text/plain"),
        Just("application/merge-patch+json"),
        Just(""),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 1_500,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(
        &(method, path, query, body, content_type),
        |(method, path, query, body, content_type)| {
            let broker = std::sync::Arc::clone(&broker);
            let (status, text) = tokio::task::block_in_place(|| {
                handle.block_on(async move {
                    let mut request = broker.request(method, &format!("{path}{query}"));
                    if !content_type.is_empty() {
                        request = request.header("Content-Type", content_type);
                    }
                    let response = request.body(body).send().await.unwrap();
                    let status = response.status();
                    (status, response.text().await.unwrap_or_default())
                })
            });
            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prop_assert!(!status.is_server_error(), "{status}: {text}");
            if status.is_client_error() {
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                prop_assert!(body["description"].is_string(), "{status}: {text}");
            }
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "{} random requests, no server error",
        sent.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A raw connection to `broker`, for clients no HTTP library would be.
async fn raw_connection(broker: &Broker) -> tokio::net::TcpStream {
    let addr = broker.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

/// Everything the broker sends until it closes the connection (or `within` passes).
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

/// Slow clients (issue #16 item 4): headers that trickle in are cut off at the header
/// deadline, a body that stalls gets 408 with an OSB body at the body deadline, and the broker
/// serves everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_at_their_deadlines() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    let mut config = fast_config(300);
    config.server.header_read_timeout_secs = 1;
    config.server.body_read_timeout_secs = 1;
    let broker = Broker::with_config(config).await;

    // Headers, a byte every 100 ms: never complete, so the connection is closed at ~1 s.
    let mut slow_headers = raw_connection(&broker).await;
    let started = Instant::now();
    slow_headers
        .write_all(b"GET /v2/catalog HTTP/1.1\r\nHost: broker\r\n")
        .await
        .expect("write");
    let trickle = async {
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow_headers.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(10) {
                return started.elapsed();
            }
        }
        unreachable!("the pattern cycles")
    };
    let cut_after = trickle.await;
    assert!(
        cut_after < Duration::from_secs(5),
        "a trickle of header bytes kept the connection for {cut_after:?}"
    );

    // A whole header, then 10 of the 100 body bytes it announces, then nothing.
    let mut slow_body = raw_connection(&broker).await;
    let credentials = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    let head = format!(
        "PUT /v2/service_instances/slow-body HTTP/1.1\r\nHost: broker\r\n\
         Authorization: Basic {credentials}\r\nX-Broker-API-Version: 2.17\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"service"
    );
    let started = Instant::now();
    slow_body.write_all(head.as_bytes()).await.expect("write");
    // Meanwhile a well-behaved client is served.
    let (status, _) = broker
        .send(broker.request(Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = read_until_closed(&mut slow_body, Duration::from_secs(10))
        .await
        .expect("the broker answered and closed within 10 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body is 408: {answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert!(body["description"].is_string(), "an OSB error body: {body}");
    assert!(broker.core().state.instance("slow-body").is_none());
    broker.stop().await;
}
