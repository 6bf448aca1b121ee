//! E2–E5: provision, fetch, update and deprovision of instances.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// OSB-PROV-03, OSB-ERR-06, D-09, OSB-ERR-04: every malformed or invalid provision is 400 and
/// creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_provisions_are_400_and_change_nothing() {
    let broker = Broker::start().await;
    let valid = provision_body(SIZED);
    let mut no_context = valid.clone();
    no_context.as_object_mut().unwrap().remove("context");
    let edit = |base: &Value, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut body = base.clone();
        f(body.as_object_mut().unwrap());
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "missing service_id",
            edit(&valid, &|b| {
                b.remove("service_id");
            }),
        ),
        (
            "missing plan_id",
            edit(&valid, &|b| {
                b.remove("plan_id");
            }),
        ),
        (
            "empty service_id",
            edit(&valid, &|b| {
                b.insert("service_id".into(), json!(""));
            }),
        ),
        (
            "unknown service_id",
            edit(&valid, &|b| {
                b.insert("service_id".into(), json!("nope"));
            }),
        ),
        (
            "unknown plan_id",
            edit(&valid, &|b| {
                b.insert("plan_id".into(), json!("nope"));
            }),
        ),
        (
            "missing organization_guid",
            edit(&no_context, &|b| {
                b.remove("organization_guid");
            }),
        ),
        (
            "missing space_guid",
            edit(&no_context, &|b| {
                b.remove("space_guid");
            }),
        ),
        (
            "empty organization_guid",
            edit(&valid, &|b| {
                b.insert("organization_guid".into(), json!(""));
            }),
        ),
        (
            "empty space_guid",
            edit(&valid, &|b| {
                b.insert("space_guid".into(), json!(""));
            }),
        ),
        (
            "parameters not an object",
            edit(&valid, &|b| {
                b.insert("parameters".into(), json!([1]));
            }),
        ),
        (
            "context not an object",
            edit(&valid, &|b| {
                b.insert("context".into(), json!("cf"));
            }),
        ),
        (
            "size missing (schema)",
            edit(&valid, &|b| {
                b.insert("parameters".into(), json!({}));
            }),
        ),
        (
            "size too big (schema)",
            edit(&valid, &|b| {
                b.insert("parameters".into(), json!({"size": 101}));
            }),
        ),
        (
            "size not integer (schema)",
            edit(&valid, &|b| {
                b.insert("parameters".into(), json!({"size": "big"}));
            }),
        ),
    ];
    for (case, body) in cases {
        let (status, error) = broker.put_instance("bad-1", &body, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {error}");
        assert!(
            error["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}"
        );
        assert!(error.get("instance_usable").is_none(), "OSB-ERR-02: {case}");
    }
    assert!(broker.core().state.instance("bad-1").is_none());
    let (status, body) = broker.get_instance("bad-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    broker.stop().await;
}

/// D-09: a Kubernetes-style body with only `context` is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_only_provision_is_accepted() {
    let broker = Broker::start().await;
    let body = json!({
        "service_id": SERVICE, "plan_id": SYNC,
        "context": {"platform": "kubernetes", "namespace": "default", "clusterid": "c1"},
    });
    assert_eq!(
        broker.put_instance("k8s-1", &body, false).await.0,
        StatusCode::CREATED
    );
    broker.stop().await;
}

/// OSB-PROV-05/06/10: 201 once, 200 for an identical repeat, 409 for a different one, and the
/// instance stays as first created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_provision_created_repeat_and_conflict() {
    let broker = Broker::start().await;
    let (status, body) = broker
        .put_instance("p-1", &provision_body(SIZED), false)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        body["dashboard_url"].as_str().unwrap().contains("p-1"),
        "OSB-PROV-14"
    );
    let (status, again) = broker
        .put_instance("p-1", &provision_body(SIZED), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, body, "same body shape on the repeat");
    let mut other_params = provision_body(SIZED);
    other_params["parameters"] = json!({"size": 6});
    assert_eq!(
        broker.put_instance("p-1", &other_params, false).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        broker
            .put_instance("p-1", &provision_body(SYNC), false)
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (status, instance) = broker.get_instance("p-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(instance["plan_id"], SIZED);
    assert_eq!(instance["parameters"], json!({"size": 5}));
    broker.stop().await;
}

/// OSB-ASYNC-03, OSB-PROV-02/11: async-only plans need accepts_incomplete=true (absent or
/// false → 422 AsyncRequired, nothing created); a bad value is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_plans_require_accepts_incomplete() {
    let broker = Broker::start().await;
    for query in ["", "?accepts_incomplete=false"] {
        let (status, body) = broker
            .send(
                broker
                    .request(Method::PUT, &format!("/v2/service_instances/a-1{query}"))
                    .json(&provision_body(ASYNC)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"], "AsyncRequired");
    }
    let (status, _) = broker
        .send(
            broker
                .request(
                    Method::PUT,
                    "/v2/service_instances/a-1?accepts_incomplete=yes",
                )
                .json(&provision_body(ASYNC)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(broker.core().state.instance("a-1").is_none(), "OSB-ERR-04");
    broker.stop().await;
}

/// OSB-ASYNC-02, OSB-ASYNC-01: a sync plan ignores accepts_incomplete=true and answers 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_plans_answer_synchronously_even_when_async_is_accepted() {
    let broker = Broker::start().await;
    assert_eq!(
        broker
            .put_instance("s-1", &provision_body(SYNC), true)
            .await
            .0,
        StatusCode::CREATED
    );
    broker.stop().await;
}

/// OSB-PROV-07/08, OSB-LOI-11, OSB-GETI-04, D-16: 202 with an operation; an identical repeat
/// while running gets 202 with the same operation; GET is 404 until done, then 200; an
/// identical repeat afterwards gets 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_provision_lifecycle() {
    let broker = Broker::with_config(fast_config(600)).await;
    let (status, body) = broker
        .put_instance("ap-1", &provision_body(ASYNC), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let operation = body["operation"].as_str().unwrap().to_owned();
    assert!(operation.len() <= 10_000);
    assert!(
        operation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "D-16"
    );
    let (status, again) = broker
        .put_instance("ap-1", &provision_body(ASYNC), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["operation"], operation.as_str());
    assert_eq!(broker.get_instance("ap-1").await.0, StatusCode::NOT_FOUND);
    let mut different = provision_body(ASYNC);
    different["parameters"] = json!({"x": 1});
    assert_eq!(
        broker.put_instance("ap-1", &different, true).await.0,
        StatusCode::CONFLICT,
        "OSB-PROV-10"
    );
    let last = broker.wait_instance("ap-1", &operation).await;
    assert_eq!(last["state"], "succeeded");
    assert_eq!(
        broker.get_instance("ap-1").await.0,
        StatusCode::OK,
        "OSB-GETI-01"
    );
    assert_eq!(
        broker
            .put_instance("ap-1", &provision_body(ASYNC), true)
            .await
            .0,
        StatusCode::OK,
        "OSB-PROV-06"
    );
    broker.stop().await;
}

/// OSB-PROV-12, OSB-MI-03, D-05, D-15: maintenance_info must match the plan's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_info_is_checked() {
    let broker = Broker::start().await;
    let mut body = provision_body(SIZED);
    body["maintenance_info"] = json!({"version": "0.0.1"});
    let (status, error) = broker.put_instance("mi-1", &body, false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"], "MaintenanceInfoConflict");
    let mut body = provision_body(SYNC);
    body["maintenance_info"] = json!({"version": "1.0.0"});
    let (status, error) = broker.put_instance("mi-2", &body, false).await;
    assert_eq!(
        (status, &error["error"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("MaintenanceInfoConflict")
        ),
        "D-05"
    );
    body["maintenance_info"] = json!({});
    assert_eq!(
        broker.put_instance("mi-2", &body, false).await.0,
        StatusCode::CREATED,
        "D-15"
    );
    let mut body = provision_body(SIZED);
    body["maintenance_info"] = json!({"version": "1.0.0", "description": "ignored"});
    assert_eq!(
        broker.put_instance("mi-3", &body, false).await.0,
        StatusCode::CREATED,
        "OSB-MI-02"
    );
    let (_, instance) = broker.get_instance("mi-3").await;
    assert_eq!(
        instance["maintenance_info"]["version"], "1.0.0",
        "OSB-MI-05"
    );
    broker.stop().await;
}

/// A plugin's client error on a sync provision is 400 and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_rejection_is_400_and_leaves_nothing() {
    let broker = Broker::start().await;
    let mut body = provision_body(SYNC);
    body["parameters"] = json!({"reject": "region not available"});
    let (status, error) = broker.put_instance("rej-1", &body, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["description"]
        .as_str()
        .unwrap()
        .contains("region not available"));
    assert!(broker.core().state.instance("rej-1").is_none());
    assert_eq!(
        broker.last_operation("rej-1", None).await.0,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

/// OSB-GETI-03/05, D-06: fetch returns the current state; 422 ConcurrencyError during an async
/// update; 404 when the offering is not retrievable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_instance_rules() {
    let mut config = fast_config(400);
    let mut hidden = config.services[0].clone();
    hidden.id = "hidden-service".into();
    hidden.name = "hidden".into();
    hidden.instances_retrievable = false;
    hidden.bindings_retrievable = false;
    for plan in &mut hidden.plans {
        plan.id = format!("hidden-{}", plan.name);
    }
    config.services.push(hidden);
    let broker = Broker::with_config(config).await;
    broker.provision_async("f-1").await;
    let (status, body) = broker.get_instance("f-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["service_id"].as_str(), body["plan_id"].as_str()),
        (Some(SERVICE), Some(ASYNC))
    );
    let update = json!({"service_id": SERVICE, "parameters": {"size": 9}});
    let (status, _) = broker.patch_instance("f-1", &update, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = broker.get_instance("f-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "ConcurrencyError");
    let (status, _) = broker
        .send(broker.request(Method::GET, "/v2/service_instances/f-1?service_id="))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "hints are non-empty when present"
    );
    let mut body = provision_body(SYNC);
    body["service_id"] = json!("hidden-service");
    body["plan_id"] = json!("hidden-sync");
    assert_eq!(
        broker.put_instance("h-1", &body, false).await.0,
        StatusCode::CREATED
    );
    let (status, body) = broker.get_instance("h-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "D-06");
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("instances_retrievable"));
    assert_eq!(
        broker.get_instance("never").await.0,
        StatusCode::NOT_FOUND,
        "OSB-GETI-04"
    );
    broker.stop().await;
}

/// OSB-UPD-05/06/09/12: update validation; a body with only service_id changes nothing; 4xx
/// applies none of the changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_validation_and_no_partial_changes() {
    let broker = Broker::start().await;
    broker.provision_sync("u-1", SIZED).await;
    let cases = [
        ("missing service_id", json!({"plan_id": SYNC})),
        ("unknown service_id", json!({"service_id": "nope"})),
        (
            "unknown plan_id",
            json!({"service_id": SERVICE, "plan_id": "nope"}),
        ),
        (
            "schema violation",
            json!({"service_id": SERVICE, "parameters": {"size": 0}}),
        ),
        (
            "parameters not an object",
            json!({"service_id": SERVICE, "parameters": 3}),
        ),
    ];
    for (case, body) in cases {
        let (status, error) = broker.patch_instance("u-1", &body, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {error}");
    }
    let (status, body) = broker
        .patch_instance("u-1", &json!({"service_id": SERVICE}), false)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, instance) = broker.get_instance("u-1").await;
    assert_eq!(instance["plan_id"], SIZED);
    assert_eq!(instance["parameters"], json!({"size": 5}));
    let mut mi = json!({"service_id": SERVICE, "maintenance_info": {"version": "2.0.0"}});
    assert_eq!(
        broker.patch_instance("u-1", &mi, false).await.1["error"],
        "MaintenanceInfoConflict"
    );
    mi["maintenance_info"]["version"] = json!("1.0.0");
    assert_eq!(
        broker.patch_instance("u-1", &mi, false).await.0,
        StatusCode::OK,
        "OSB-MI-04"
    );
    assert_eq!(
        broker
            .patch_instance("nope", &json!({"service_id": SERVICE}), false)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // OSB-UPD-12: a valid plan change with invalid parameters applies nothing.
    broker.provision_sync("u-1b", SYNC).await;
    let change = json!({"service_id": SERVICE, "plan_id": SIZED, "parameters": {"size": 0}});
    assert_eq!(
        broker.patch_instance("u-1b", &change, false).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(broker.get_instance("u-1b").await.1["plan_id"], SYNC);
    broker.stop().await;
}

/// OSB-UPD-06, OSB-UPD-05: sync update applies plan and merged parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_update_applies_plan_and_parameters() {
    let broker = Broker::start().await;
    broker.provision_sync("u-2", SIZED).await;
    let (status, _) = broker
        .patch_instance(
            "u-2",
            &json!({"service_id": SERVICE, "parameters": {"size": 7, "extra": true}}),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, instance) = broker.get_instance("u-2").await;
    assert_eq!(instance["parameters"], json!({"size": 7, "extra": true}));
    let (status, _) = broker
        .patch_instance(
            "u-2",
            &json!({"service_id": SERVICE, "plan_id": SYNC, "previous_values": {"plan_id": SIZED}}),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, instance) = broker.get_instance("u-2").await;
    assert_eq!(instance["plan_id"], SYNC);
    broker.stop().await;
}

/// OSB-UPD-07/08, OSB-ASYNC-06, OSB-UPD-15: async update 202, identical repeat same operation,
/// a different concurrent update or a delete is 422 ConcurrencyError (D-17); polls with the old
/// plan id are accepted; GET shows the new parameters after success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_update_lifecycle() {
    let broker = Broker::with_config(fast_config(500)).await;
    broker.provision_async("u-3").await;
    let update = json!({"service_id": SERVICE, "parameters": {"size": 3}});
    assert_eq!(
        broker.patch_instance("u-3", &update, false).await.1["error"],
        "AsyncRequired"
    );
    let (status, body) = broker.patch_instance("u-3", &update, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let operation = body["operation"].as_str().unwrap().to_owned();
    let (status, again) = broker.patch_instance("u-3", &update, true).await;
    assert_eq!(
        (status, again["operation"].as_str()),
        (StatusCode::ACCEPTED, Some(operation.as_str()))
    );
    let other = json!({"service_id": SERVICE, "parameters": {"size": 4}});
    let (status, body) = broker.patch_instance("u-3", &other, true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError"))
    );
    let (status, body) = broker.delete_instance("u-3", ASYNC, true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError")),
        "D-17"
    );
    let (status, body) = broker
        .send(broker.request(Method::GET, &format!("/v2/service_instances/u-3/last_operation?operation={operation}&plan_id={ASYNC}&service_id={SERVICE}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = broker.wait_instance("u-3", &operation).await;
    assert_eq!(last["state"], "succeeded");
    assert_eq!(
        broker.get_instance("u-3").await.1["parameters"],
        json!({"size": 3})
    );
    broker.stop().await;
}

/// OSB-UPD-01/11: a plan change on a non-updateable plan is 422 with a description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_change_requires_plan_updateable() {
    let mut config = fast_config(300);
    config.services[0].plans[0].plan_updateable = Some(false);
    let broker = Broker::with_config(config).await;
    broker.provision_sync("u-4", SYNC).await;
    let (status, body) = broker
        .patch_instance(
            "u-4",
            &json!({"service_id": SERVICE, "plan_id": SIZED, "parameters": {"size": 1}}),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("plan_updateable"));
    assert_eq!(broker.get_instance("u-4").await.1["plan_id"], SYNC);
    broker.stop().await;
}

/// OSB-DEPROV-04/05/07/08: required query parameters, 200 then 410, 410 for unknown ids,
/// 400 for a service_id that is not the instance's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovision_rules() {
    let broker = Broker::start().await;
    broker.provision_sync("d-1", SYNC).await;
    for query in [
        "",
        &format!("?service_id={SERVICE}"),
        &format!("?plan_id={SYNC}"),
    ] {
        let (status, _) = broker
            .send(broker.request(Method::DELETE, &format!("/v2/service_instances/d-1{query}")))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    let (status, _) = broker
        .send(broker.request(
            Method::DELETE,
            &format!("/v2/service_instances/d-1?service_id=other&plan_id={SYNC}"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = broker.delete_instance("d-1", SYNC, false).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        broker.delete_instance("d-1", SYNC, false).await.0,
        StatusCode::GONE
    );
    assert_eq!(
        broker.delete_instance("never", SYNC, false).await.0,
        StatusCode::GONE
    );
    broker.stop().await;
}

/// OSB-DEPROV-06/09, D-08: async deprovision: AsyncRequired without the flag, 202, a repeat
/// gets the same operation, last_operation ends succeeded and stays so, GET is 404 afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_deprovision_lifecycle() {
    let broker = Broker::start().await;
    broker.provision_async("d-2").await;
    assert_eq!(
        broker.delete_instance("d-2", ASYNC, false).await.1["error"],
        "AsyncRequired"
    );
    let (status, body) = broker.delete_instance("d-2", ASYNC, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let operation = body["operation"].as_str().unwrap().to_owned();
    let (status, again) = broker.delete_instance("d-2", ASYNC, true).await;
    assert_eq!(
        (status, again["operation"].as_str()),
        (StatusCode::ACCEPTED, Some(operation.as_str()))
    );
    assert_eq!(
        broker.wait_instance("d-2", &operation).await["state"],
        "succeeded"
    );
    for _ in 0..3 {
        let (status, body) = broker.last_operation("d-2", Some(&operation)).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("succeeded")),
            "OSB-LOI-10"
        );
    }
    assert_eq!(broker.get_instance("d-2").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        broker.delete_instance("d-2", ASYNC, true).await.0,
        StatusCode::GONE
    );
    broker.stop().await;
}
