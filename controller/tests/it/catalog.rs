//! E1: the catalog.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::*;

/// OSB-CAT-01, OSB-CAT-04..08, OSB-CAT-17..19, OSB-CAT-27, OSB-GEN-03: the sandbox catalog is
/// served with every required field and no Skybroker-private field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_lists_the_sandbox_offering_and_its_plans() {
    let broker = Broker::start().await;
    let response = broker
        .request(Method::GET, "/v2/catalog")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let services = body["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    let sandbox = &services[0];
    assert_eq!(sandbox["name"], "sandbox");
    assert_eq!(sandbox["id"], SERVICE);
    for flag in [
        "bindable",
        "instances_retrievable",
        "bindings_retrievable",
        "plan_updateable",
    ] {
        assert_eq!(sandbox[flag], true, "{flag}");
    }
    assert!(
        sandbox.get("broker").is_none(),
        "private fields are never served"
    );
    let plans = sandbox["plans"].as_array().unwrap();
    let names: Vec<_> = plans.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sync", "async", "fail", "sized", "nobind"]);
    for plan in plans {
        assert!(plan["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(plan["description"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(
            plan.get("settings").is_none(),
            "plugin settings are never served"
        );
    }
    let sized = &plans[3];
    assert_eq!(sized["maintenance_info"]["version"], "1.0.0");
    let create = &sized["schemas"]["service_instance"]["create"]["parameters"];
    assert!(create["$schema"].is_string(), "OSB-CAT-29");
    assert_eq!(plans[4]["bindable"], false);
    broker.stop().await;
}

/// OSB-HDR-11: the catalog carries an ETag and a matching If-None-Match gets 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_revalidates_with_etag() {
    let broker = Broker::start().await;
    let first = broker
        .request(Method::GET, "/v2/catalog")
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = broker
        .request(Method::GET, "/v2/catalog")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let stale = broker
        .request(Method::GET, "/v2/catalog")
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    broker.stop().await;
}

/// D-14: a 2.13 client gets no field introduced after 2.14 (maintenance_info,
/// maximum_polling_duration), a 2.17 client gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_answers_in_the_clients_version() {
    let broker = Broker::start().await;
    let old: Value = broker
        .request_as("2.13", Method::GET, "/v2/catalog")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plans = old["services"][0]["plans"].as_array().unwrap();
    assert!(plans.iter().all(|p| p.get("maintenance_info").is_none()));
    assert!(plans
        .iter()
        .all(|p| p.get("maximum_polling_duration").is_none()));
    let (_, new) = broker
        .send(broker.request(Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(
        new["services"][0]["plans"][3]["maintenance_info"]["version"],
        "1.0.0"
    );
    assert_eq!(
        new["services"][0]["plans"][1]["maximum_polling_duration"],
        3600
    );
    broker.stop().await;
}
