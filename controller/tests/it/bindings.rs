//! E7–E9: bind, fetch binding, unbind.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// OSB-BIND-06, D-04, OSB-ERR-04: invalid binds are 400 (404 for an unknown instance) and
/// create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_binds() {
    let broker = Broker::start().await;
    broker.provision_sync("bi-1", SYNC).await;
    broker.provision_sync("bi-nb", NOBIND).await;
    let valid = bind_body(SYNC);
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut body = valid.clone();
        f(body.as_object_mut().unwrap());
        body
    };
    let cases = [
        (
            "missing service_id",
            edit(&|b| {
                b.remove("service_id");
            }),
        ),
        (
            "missing plan_id",
            edit(&|b| {
                b.remove("plan_id");
            }),
        ),
        (
            "unknown service_id",
            edit(&|b| {
                b.insert("service_id".into(), json!("x"));
            }),
        ),
        (
            "unknown plan_id",
            edit(&|b| {
                b.insert("plan_id".into(), json!("x"));
            }),
        ),
        (
            "other plan than the instance's",
            edit(&|b| {
                b.insert("plan_id".into(), json!(SIZED));
            }),
        ),
        (
            "empty app_guid",
            edit(&|b| {
                b.insert("app_guid".into(), json!(""));
            }),
        ),
        (
            "bind_resource not an object",
            edit(&|b| {
                b.insert("bind_resource".into(), json!(1));
            }),
        ),
    ];
    for (case, body) in cases {
        let (status, error) = broker.put_binding("bi-1", "b-bad", &body, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {error}");
    }
    assert!(broker.core().state.binding("b-bad").is_none());
    let (status, _) = broker
        .put_binding("bi-nb", "b-nb", &bind_body(NOBIND), false)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "D-04: not bindable");
    let (status, _) = broker.put_binding("nope", "b-x", &valid, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "D-04: unknown instance");
    broker.stop().await;
}

/// OSB-BIND-07/08/10/13/17/19, D-19, OSB-GETB-03: 201 with credentials and endpoints, 200 for
/// an identical repeat, 409 for a different one; each binding has its own secret; fetch returns
/// the same credentials; the binding sees its instance's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bind_fetch_and_repeat() {
    let broker = Broker::start().await;
    broker.provision_sync("bs-1", SYNC).await;
    let (status, first) = broker
        .put_binding("bs-1", "b-1", &bind_body(SYNC), false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let credentials = &first["credentials"];
    assert_eq!(
        credentials["resource"], "sandbox-bs-1",
        "the binding sees the instance state"
    );
    let endpoints = first["endpoints"].as_array().unwrap();
    assert!(
        endpoints[0]["ports"][0].is_string(),
        "OSB-BIND-17: ports are strings"
    );
    let (status, again) = broker
        .put_binding("bs-1", "b-1", &bind_body(SYNC), false)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let mut different = bind_body(SYNC);
    different["parameters"] = json!({"role": "admin"});
    assert_eq!(
        broker.put_binding("bs-1", "b-1", &different, false).await.0,
        StatusCode::CONFLICT
    );
    let (_, second) = broker
        .put_binding("bs-1", "b-2", &bind_body(SYNC), false)
        .await;
    assert_ne!(
        second["credentials"]["password"], credentials["password"],
        "D-19"
    );
    assert_ne!(
        second["credentials"]["username"], credentials["username"],
        "D-19"
    );
    let (status, fetched) = broker.get_binding("bs-1", "b-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["credentials"], *credentials);
    // A binding id is global: the same id on another instance conflicts.
    broker.provision_sync("bs-2", SYNC).await;
    assert_eq!(
        broker
            .put_binding("bs-2", "b-1", &bind_body(SYNC), false)
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        broker.get_binding("bs-2", "b-1").await.0,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

/// OSB-BIND-09, OSB-GETB-01/04, OSB-LOB-01/04: async bind: 202 without credentials, a repeat
/// gets the same operation, fetch is 404 until done, then the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_bind_lifecycle() {
    let broker = Broker::with_config(fast_config(400)).await;
    broker.provision_async("ba-1").await;
    assert_eq!(
        broker
            .put_binding("ba-1", "b-a", &bind_body(ASYNC), false)
            .await
            .1["error"],
        "AsyncRequired"
    );
    let (status, body) = broker
        .put_binding("ba-1", "b-a", &bind_body(ASYNC), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body.get("credentials").is_none(), "no credentials in a 202");
    let operation = body["operation"].as_str().unwrap().to_owned();
    let (status, again) = broker
        .put_binding("ba-1", "b-a", &bind_body(ASYNC), true)
        .await;
    assert_eq!(
        (status, again["operation"].as_str()),
        (StatusCode::ACCEPTED, Some(operation.as_str()))
    );
    assert_eq!(
        broker.get_binding("ba-1", "b-a").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        broker.wait_binding("ba-1", "b-a", &operation).await["state"],
        "succeeded"
    );
    let (status, fetched) = broker.get_binding("ba-1", "b-a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        fetched["credentials"]["password"].is_string(),
        "OSB-GETB-03"
    );
    broker.stop().await;
}

/// OSB-UNB-03/04/05/07/08: unbind rules, sync and async.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_rules() {
    let broker = Broker::start().await;
    broker.provision_sync("ub-1", SYNC).await;
    broker
        .put_binding("ub-1", "b-u", &bind_body(SYNC), false)
        .await;
    for query in [
        "",
        &format!("?service_id={SERVICE}"),
        &format!("?plan_id={SYNC}"),
    ] {
        let path = format!("/v2/service_instances/ub-1/service_bindings/b-u{query}");
        assert_eq!(
            broker.send(broker.request(Method::DELETE, &path)).await.0,
            StatusCode::BAD_REQUEST,
            "{query}"
        );
    }
    let (status, body) = broker.delete_binding("ub-1", "b-u", SYNC, false).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        broker.delete_binding("ub-1", "b-u", SYNC, false).await.0,
        StatusCode::GONE
    );
    assert_eq!(
        broker.delete_binding("ub-1", "never", SYNC, false).await.0,
        StatusCode::GONE
    );
    assert_eq!(
        broker.get_binding("ub-1", "b-u").await.0,
        StatusCode::NOT_FOUND
    );

    broker.provision_async("ub-2").await;
    let (_, body) = broker
        .put_binding("ub-2", "b-v", &bind_body(ASYNC), true)
        .await;
    broker
        .wait_binding("ub-2", "b-v", body["operation"].as_str().unwrap())
        .await;
    assert_eq!(
        broker.delete_binding("ub-2", "b-v", ASYNC, false).await.1["error"],
        "AsyncRequired"
    );
    let (status, body) = broker.delete_binding("ub-2", "b-v", ASYNC, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let operation = body["operation"].as_str().unwrap().to_owned();
    let (status, again) = broker.delete_binding("ub-2", "b-v", ASYNC, true).await;
    assert_eq!(
        (status, again["operation"].as_str()),
        (StatusCode::ACCEPTED, Some(operation.as_str()))
    );
    assert_eq!(
        broker.wait_binding("ub-2", "b-v", &operation).await["state"],
        "succeeded"
    );
    assert_eq!(
        broker.delete_binding("ub-2", "b-v", ASYNC, true).await.0,
        StatusCode::GONE
    );
    broker.stop().await;
}

/// D-04: bind while the instance is being provisioned or updated is 422 ConcurrencyError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_on_a_busy_instance_is_concurrency_error() {
    let broker = Broker::with_config(fast_config(500)).await;
    let (_, body) = broker
        .put_instance("bb-1", &provision_body(ASYNC), true)
        .await;
    let (status, error) = broker
        .put_binding("bb-1", "b-b", &bind_body(ASYNC), true)
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError"))
    );
    broker
        .wait_instance("bb-1", body["operation"].as_str().unwrap())
        .await;
    broker
        .patch_instance(
            "bb-1",
            &json!({"service_id": SERVICE, "parameters": {"a": 1}}),
            true,
        )
        .await;
    let (status, error) = broker
        .put_binding("bb-1", "b-b", &bind_body(ASYNC), true)
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError"))
    );
    broker.stop().await;
}

/// OSB-ROT-01..04: rotation needs a rotatable plan and a bound predecessor of the same
/// instance; both bindings are valid after it and the parameters carry over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_rotation() {
    let mut config = fast_config(300);
    config.services[0].plans[0].binding_rotatable = true;
    let broker = Broker::with_config(config).await;
    broker.provision_sync("rot-1", SYNC).await;
    broker.provision_sync("rot-2", NOBIND).await;
    let mut body = bind_body(SYNC);
    body["parameters"] = json!({"role": "reader"});
    let (_, old) = broker.put_binding("rot-1", "b-old", &body, false).await;
    let rotation = json!({"predecessor_binding_id": "b-old"});
    let (status, new) = broker.put_binding("rot-1", "b-new", &rotation, false).await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    assert_ne!(
        new["credentials"]["password"],
        old["credentials"]["password"]
    );
    assert_eq!(
        broker.get_binding("rot-1", "b-old").await.0,
        StatusCode::OK,
        "OSB-ROT-03"
    );
    assert_eq!(
        broker.get_binding("rot-1", "b-new").await.1["parameters"],
        json!({"role": "reader"}),
        "OSB-ROT-04"
    );
    let unknown = json!({"predecessor_binding_id": "b-none"});
    assert_eq!(
        broker.put_binding("rot-1", "b-x", &unknown, false).await.0,
        StatusCode::BAD_REQUEST
    );
    broker.stop().await;
    // A plan that is not rotatable refuses rotation.
    let broker = Broker::start().await;
    broker.provision_sync("rot-3", SYNC).await;
    broker
        .put_binding("rot-3", "b-1", &bind_body(SYNC), false)
        .await;
    let (status, body) = broker
        .put_binding(
            "rot-3",
            "b-2",
            &json!({"predecessor_binding_id": "b-1"}),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("binding_rotatable"));
    broker.stop().await;
}

/// D-14: a 2.14 client gets no `endpoints` in the bind response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_response_follows_the_clients_version() {
    let broker = Broker::start().await;
    broker.provision_sync("v-1", SYNC).await;
    let (status, body) = broker
        .send(
            broker
                .request_as(
                    "2.14",
                    Method::PUT,
                    "/v2/service_instances/v-1/service_bindings/b-old-client",
                )
                .json(&bind_body(SYNC)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body.get("endpoints").is_none(), "{body}");
    assert!(body["credentials"].is_object());
    let (_, current) = broker.get_binding("v-1", "b-old-client").await;
    assert!(current["endpoints"].is_array());
    broker.stop().await;
}

/// Issue #16, OSB-BIND-12: a plan whose bindings expire gives each binding `metadata` with
/// `expires_at` and an earlier `renew_before` (ISO-8601 UTC), in the bind's answer and on
/// fetch, to clients of 2.16 and later only (D-14).
#[tokio::test]
async fn expiring_bindings_carry_their_metadata() {
    let mut config = fast_config(100);
    let plan = config.services[0]
        .plans
        .iter_mut()
        .find(|plan| plan.id == SYNC)
        .unwrap();
    std::sync::Arc::make_mut(&mut plan.settings)["binding_ttl_secs"] = json!(3600);
    let broker = Broker::with_config(config).await;
    broker.provision_sync("exp-1", SYNC).await;
    let (status, bound) = broker
        .put_binding("exp-1", "exp-b1", &bind_body(SYNC), false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let time = |value: &Value| {
        let text = value.as_str().unwrap_or_else(|| panic!("{bound}"));
        assert!(text.ends_with('Z'), "{text}");
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let expires = time(&bound["metadata"]["expires_at"]);
    let renew = time(&bound["metadata"]["renew_before"]);
    let now = time::OffsetDateTime::now_utc();
    assert!(renew < expires, "{bound}");
    assert!(
        expires > now + time::Duration::minutes(59) && expires < now + time::Duration::minutes(61),
        "{bound}"
    );
    let (_, fetched) = broker.get_binding("exp-1", "exp-b1").await;
    assert_eq!(fetched["metadata"], bound["metadata"]);
    let (_, old) = broker
        .send(broker.request_as(
            "2.15",
            reqwest::Method::GET,
            "/v2/service_instances/exp-1/service_bindings/exp-b1",
        ))
        .await;
    assert!(old.get("metadata").is_none(), "{old}");
    broker.stop().await;
}
