//! Cross-operation behaviour: halting creates (D-17), cascading deletes (D-03), deadlines,
//! force-delete of unknown resources, and restart of operations in flight.

use reqwest::StatusCode;
use serde_json::json;
use skybroker_config::StorageBackend;

use crate::harness::*;

/// D-17, OSB-DEPROV-03: DELETE during an async provision is accepted; the provision reads
/// failed (cancelled) when polled by its id, the delete succeeds, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_halts_a_running_provision() {
    let broker = Broker::with_config(fast_config(800)).await;
    let (_, body) = broker
        .put_instance("h-1", &provision_body(ASYNC), true)
        .await;
    let provision = body["operation"].as_str().unwrap().to_owned();
    let (status, body) = broker.delete_instance("h-1", ASYNC, true).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deprovision = body["operation"].as_str().unwrap().to_owned();
    // Issue #16: an instance whose provision never succeeded is not fetchable while it is
    // deleted either.
    let (status, fetched) = broker.get_instance("h-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{fetched}");
    let (_, halted) = broker.last_operation("h-1", Some(&provision)).await;
    assert_eq!(halted["state"], "failed");
    assert!(
        halted["description"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{halted}"
    );
    let (_, latest) = broker.last_operation("h-1", None).await;
    assert_eq!(
        latest["state"], "in progress",
        "no operation value: the delete answers: {latest}"
    );
    assert_eq!(
        broker.wait_instance("h-1", &deprovision).await["state"],
        "succeeded"
    );
    assert!(broker.core().state.instance("h-1").is_none());
    assert_eq!(broker.get_instance("h-1").await.0, StatusCode::NOT_FOUND);
    broker.stop().await;
}

/// D-17, OSB-UNB-02: unbind during an async bind is accepted and ends with no binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_halts_a_running_bind() {
    let broker = Broker::with_config(fast_config(500)).await;
    broker.provision_async("h-2").await;
    let (_, body) = broker
        .put_binding("h-2", "b-h", &bind_body(ASYNC), true)
        .await;
    let bind = body["operation"].as_str().unwrap().to_owned();
    let (status, body) = broker.delete_binding("h-2", "b-h", ASYNC, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let unbind = body["operation"].as_str().unwrap().to_owned();
    // Issue #16: nor is a binding whose bind never succeeded, while it is deleted.
    let (status, fetched) = broker.get_binding("h-2", "b-h").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{fetched}");
    assert_eq!(
        broker
            .binding_last_operation("h-2", "b-h", Some(&bind))
            .await
            .1["state"],
        "failed"
    );
    assert_eq!(
        broker.wait_binding("h-2", "b-h", &unbind).await["state"],
        "succeeded"
    );
    assert_eq!(
        broker.get_binding("h-2", "b-h").await.0,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

/// D-03: deprovision with bindings unbinds them first (sync and async plans).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovision_cascades_to_bindings() {
    let broker = Broker::start().await;
    broker.provision_sync("cas-1", SYNC).await;
    for b in ["b-1", "b-2"] {
        assert_eq!(
            broker
                .put_binding("cas-1", b, &bind_body(SYNC), false)
                .await
                .0,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        broker.delete_instance("cas-1", SYNC, false).await.0,
        StatusCode::OK
    );
    assert_eq!(broker.core().state.counts().bindings, 0);
    assert_eq!(
        broker.get_binding("cas-1", "b-1").await.0,
        StatusCode::NOT_FOUND
    );

    broker.provision_async("cas-2").await;
    let (_, body) = broker
        .put_binding("cas-2", "b-3", &bind_body(ASYNC), true)
        .await;
    broker
        .wait_binding("cas-2", "b-3", body["operation"].as_str().unwrap())
        .await;
    let (status, body) = broker.delete_instance("cas-2", ASYNC, true).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        broker
            .wait_instance("cas-2", body["operation"].as_str().unwrap())
            .await["state"],
        "succeeded"
    );
    assert!(broker.core().state.binding("b-3").is_none());
    assert!(broker.core().state.instance("cas-2").is_none());
    broker.stop().await;
}

/// OSB-POLL-03, OSB-CAT-26: an operation that outlives the plan's maximum_polling_duration
/// fails with a description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_fail_after_maximum_polling_duration() {
    let mut config = fast_config(5_000);
    config.services[0].plans[1].maximum_polling_duration = Some(1);
    let broker = Broker::with_config(config).await;
    let (_, body) = broker
        .put_instance("mp-1", &provision_body(ASYNC), true)
        .await;
    let last = broker
        .wait_instance("mp-1", body["operation"].as_str().unwrap())
        .await;
    assert_eq!(last["state"], "failed");
    assert!(
        last["description"].as_str().unwrap().contains("deadline"),
        "{last}"
    );
    broker.stop().await;
}

/// force_delete_unknown: a resource already gone at the provider is deleted from the broker
/// when the flag is on (default), and the deprovision fails (instance kept) when it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_delete_unknown_instances_and_bindings() {
    let gone = |config: &mut skybroker_config::Config| {
        config.services[0].plans[0].settings =
            json!({"mode": "sync", "missing_on_delete": true}).into();
    };
    let mut config = fast_config(100);
    gone(&mut config);
    let broker = Broker::with_config(config).await;
    broker.provision_sync("fd-1", SYNC).await;
    broker
        .put_binding("fd-1", "b-f", &bind_body(SYNC), false)
        .await;
    assert_eq!(
        broker.delete_binding("fd-1", "b-f", SYNC, false).await.0,
        StatusCode::OK
    );
    assert_eq!(
        broker.delete_instance("fd-1", SYNC, false).await.0,
        StatusCode::OK
    );
    assert!(broker.core().state.instance("fd-1").is_none());
    broker.stop().await;

    let mut config = fast_config(100);
    gone(&mut config);
    config.engine.force_delete_unknown_instances = false;
    config.engine.force_delete_unknown_bindings = false;
    let broker = Broker::with_config(config).await;
    broker.provision_sync("fd-2", SYNC).await;
    broker
        .put_binding("fd-2", "b-g", &bind_body(SYNC), false)
        .await;
    let (status, body) = broker.delete_binding("fd-2", "b-g", SYNC, false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.get("instance_usable").is_none(),
        "OSB-ERR-02: not on unbind"
    );
    assert_eq!(
        broker.get_binding("fd-2", "b-g").await.0,
        StatusCode::OK,
        "binding kept"
    );
    // D-03: the cascaded unbind fails, so the deprovision fails and keeps the instance.
    let (status, body) = broker.delete_instance("fd-2", SYNC, false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["description"].as_str().unwrap().contains("b-g"),
        "{body}"
    );
    assert_eq!(body["instance_usable"], true);
    assert!(
        broker.core().state.instance("fd-2").is_some(),
        "instance kept"
    );
    broker.stop().await;
}

/// Restartable operations: an async provision in flight when the broker stops is resumed by
/// the next broker on the same embedded store and completes; a clean restart keeps every
/// instance. (The kill -9 variant runs the real binary in tests/process.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_in_flight_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = fast_config(1_000);
        config.storage.backend = StorageBackend::Embedded;
        config.storage.data_dir = dir.path().to_owned();
        config
    };
    let broker = Broker::with_config(config()).await;
    broker.provision_sync("r-sync", SYNC).await;
    let (_, body) = broker
        .put_instance("r-async", &provision_body(ASYNC), true)
        .await;
    let operation = body["operation"].as_str().unwrap().to_owned();
    broker.stop().await;
    {
        // The records went into the store in its packed form (0xc1, a version, MessagePack:
        // the map's codec), through every wrapper the broker puts around its store.
        let store = skybroker_storage::EmbeddedStore::open(dir.path()).unwrap();
        let entries = skybroker_storage::Store::load(&store).await.unwrap();
        let records: Vec<(&str, u8)> = (entries.iter())
            .filter(|entry| {
                entry.key.starts_with("instances/") || entry.key.starts_with("operations/")
            })
            .map(|entry| (entry.key.as_str(), entry.value[0]))
            .collect();
        assert_eq!(records.len(), 4, "{records:?}");
        assert!(
            records.iter().all(|(_, first)| *first == 0xc1),
            "{records:?}"
        );
    }
    let broker = Broker::with_config(config()).await;
    assert_eq!(broker.get_instance("r-sync").await.0, StatusCode::OK);
    assert_eq!(
        broker.wait_instance("r-async", &operation).await["state"],
        "succeeded"
    );
    assert_eq!(broker.get_instance("r-async").await.0, StatusCode::OK);
    broker.stop().await;
}

/// A sync update failure rolls nothing forward and reports instance_usable and
/// update_repeatable (OSB-UPD-12/13, OSB-ERR-02).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_async_update_keeps_the_old_plan() {
    let mut config = fast_config(100);
    config.services[0].plans[1].settings =
        json!({"mode": "async", "delay_ms": 100, "failure_rate": 1.0}).into();
    let broker = Broker::with_config(config).await;
    broker.provision_sync("uf-1", SYNC).await;
    let (status, body) = broker
        .patch_instance(
            "uf-1",
            &json!({"service_id": SERVICE, "plan_id": ASYNC}),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let last = broker
        .wait_instance("uf-1", body["operation"].as_str().unwrap())
        .await;
    assert_eq!(last["state"], "failed");
    assert_eq!(last["instance_usable"], true);
    assert_eq!(last["update_repeatable"], true);
    assert_eq!(broker.get_instance("uf-1").await.1["plan_id"], SYNC);
    broker.stop().await;
}

/// Issue #16, D-03: a deprovision cascades to more bindings than one etcd transaction takes
/// (128 operations, two a binding): its commits are cut to size, every binding is unbound and
/// nothing is left (run on etcd by the suite's second pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovision_cascades_to_more_bindings_than_one_transaction_takes() {
    let broker = std::sync::Arc::new(Broker::start().await);
    broker.provision_sync("many-1", SYNC).await;
    for chunk in 0..13 {
        let binds: Vec<_> = (0..10)
            .map(|n| {
                let broker = std::sync::Arc::clone(&broker);
                tokio::spawn(async move {
                    let id = format!("many-b{chunk:02}{n}");
                    broker
                        .put_binding("many-1", &id, &bind_body(SYNC), false)
                        .await
                })
            })
            .collect();
        for bind in binds {
            let (status, body) = bind.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    assert_eq!(broker.core().state.counts().bindings, 130);
    let (status, body) = broker.delete_instance("many-1", SYNC, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(broker.core().state.instance("many-1").is_none());
    assert_eq!(broker.core().state.counts().bindings, 0);
    assert_eq!(
        broker.get_binding("many-1", "many-b000").await.0,
        StatusCode::NOT_FOUND
    );
}
