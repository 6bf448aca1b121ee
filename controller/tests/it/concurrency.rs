//! Concurrency and back-pressure: D-11, D-12, OSB-ASYNC-06.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::*;

/// D-12, OSB-PROV-08/10: 16 concurrent identical async provisions of one id create exactly one
/// instance; every answer is 202 with the same operation (or 200 once done), never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_identical_async_provisions_create_one_instance() {
    let broker = Arc::new(Broker::start().await);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                broker
                    .put_instance("c-1", &provision_body(ASYNC), true)
                    .await
            })
        })
        .collect();
    let mut operations = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(
            matches!(status, StatusCode::ACCEPTED | StatusCode::OK),
            "{status} {body}"
        );
        if status == StatusCode::ACCEPTED {
            operations.insert(body["operation"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(operations.len(), 1, "one operation: {operations:?}");
    let provisions = broker.core().state.counts();
    assert_eq!(provisions.instances, 1);
    assert_eq!(
        provisions.operations, 1,
        "exactly one provision operation was created"
    );
    let operation = operations.into_iter().next().unwrap();
    assert_eq!(
        broker.wait_instance("c-1", &operation).await["state"],
        "succeeded"
    );
}

/// D-12: 16 concurrent sync provisions of one id, half with other parameters: exactly one
/// instance, the rest 200/409/422, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_conflicting_sync_provisions_create_one_instance() {
    let broker = Arc::new(Broker::start().await);
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                let mut body = provision_body(SIZED);
                body["parameters"] = json!({"size": 1 + n % 2});
                broker.put_instance("c-2", &body, false).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK | StatusCode::CONFLICT => {}
            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(body["error"], "ConcurrencyError"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(broker.core().state.counts().instances, 1);
}

/// D-11 behind a backlog: once the queue is full, the scanner leaves the due asynchronous
/// operations where they are, but a synchronous request still gets its 503 in time instead of
/// waiting for the backlog to drain; the backlog then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sync_request_gets_its_503_past_an_async_backlog() {
    let mut config = fast_config(50);
    config.dispatcher.workers = Some(1);
    config.dispatcher.queue_capacity = Some(1);
    config.engine.queue_wait_ms = 100;
    config.services[0].plans[0].settings = json!({"mode": "sync", "delay_ms": 3000}).into();
    let broker = Arc::new(Broker::with_config(config).await);
    // Two slow synchronous provisions: one on the worker, one in the queue.
    let blockers: Vec<_> = (0..2)
        .map(|n| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                broker
                    .put_instance(&format!("blocker-{n}"), &provision_body(SYNC), false)
                    .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A backlog of asynchronous provisions, accepted and due, with no room to run: far more
    // than a scan pass takes on while the queue is full (one, every 5 ms).
    let admissions: Vec<_> = (0..8)
        .map(|task| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for n in 0..50 {
                    let id = format!("backlog-{task}-{n}");
                    let (status, body) =
                        broker.put_instance(&id, &provision_body(ASYNC), true).await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                    accepted.push((id, body["operation"].as_str().unwrap().to_owned()));
                }
                accepted
            })
        })
        .collect();
    let mut backlog = Vec::new();
    for admission in admissions {
        backlog.extend(admission.await.unwrap());
    }
    let started = std::time::Instant::now();
    let body = provision_body(SYNC);
    let late = broker.put_instance("late", &body, false);
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(10), late)
        .await
        .expect("the synchronous request is answered while the backlog waits");
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The worker is busy for 3 s per blocker: an answer within a second came from the queue
    // wait (100 ms), not from the backlog draining.
    assert!(
        waited < std::time::Duration::from_secs(1),
        "answered after {waited:?}"
    );
    assert!(
        broker.core().state.instance("late").is_none(),
        "a 503 leaves nothing"
    );
    for blocker in blockers {
        let (status, body) = blocker.await.unwrap();
        assert!(
            matches!(
                status,
                StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{status} {body}"
        );
    }
    for (id, operation) in backlog {
        assert_eq!(
            broker.wait_instance(&id, &operation).await["state"],
            "succeeded"
        );
    }
}

/// D-11: with one worker and a queue of one, a burst of slow synchronous provisions gets 503
/// with Retry-After for those that cannot be queued in time, and those leave nothing behind;
/// asynchronous requests are accepted (202) even when the queue is full and all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_queue_gives_503_for_sync_and_202_for_async() {
    let mut config = fast_config(50);
    config.dispatcher.workers = Some(1);
    config.dispatcher.queue_capacity = Some(1);
    config.engine.queue_wait_ms = 100;
    config.services[0].plans[0].settings = json!({"mode": "sync", "delay_ms": 300}).into();
    let broker = Arc::new(Broker::with_config(config).await);
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                let id = format!("q-{n}");
                let response = broker
                    .request(reqwest::Method::PUT, &format!("/v2/service_instances/{id}"))
                    .json(&provision_body(SYNC))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (id, response.status(), retry_after)
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        let (id, status, retry_after) = task.await.unwrap();
        match status {
            StatusCode::CREATED => assert!(broker.core().state.instance(&id).is_some()),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(retry_after.is_some(), "503 carries Retry-After");
                assert!(
                    broker.core().state.instance(&id).is_none(),
                    "a 503 leaves nothing"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "the burst overran the queue");
    // Async work is never refused: it waits in the store for a worker.
    let mut operations = Vec::new();
    for n in 0..8 {
        let (status, body) = broker
            .put_instance(&format!("qa-{n}"), &provision_body(ASYNC), true)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        operations.push((
            format!("qa-{n}"),
            body["operation"].as_str().unwrap().to_owned(),
        ));
    }
    for (id, operation) in operations {
        assert_eq!(
            broker.wait_instance(&id, &operation).await["state"],
            "succeeded"
        );
    }
}

/// OSB-BIND-10, D-12: 16 concurrent identical sync binds of one id create one binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_binds_create_one_binding() {
    let broker = Arc::new(Broker::start().await);
    broker.provision_sync("cb-1", SYNC).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                broker
                    .put_binding("cb-1", "b-c", &bind_body(SYNC), false)
                    .await
            })
        })
        .collect();
    let mut passwords = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                passwords.insert(body["credentials"]["password"].as_str().unwrap().to_owned());
            }
            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(body["error"], "ConcurrencyError"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(passwords.len(), 1, "every success shows the one binding");
    assert_eq!(broker.core().state.counts().bindings, 1);
}

/// A scan pass keeps feeding the workers while they make room: 40 operations due at once (as
/// after a restart) go through a queue of 2 in one pass, without waiting for the next pass (a
/// minute away here). The first broker starts them; the second, on the same store, finds them
/// all due and polls each once (they are done by then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pass_feeds_the_workers_past_the_queues_capacity() {
    let store: Arc<dyn skybroker_storage::Store> = Arc::new(skybroker_storage::MemoryStore::new());
    let broker = Broker::with_store(fast_config(300), Arc::clone(&store)).await;
    let mut operations = Vec::new();
    for n in 0..40 {
        let (status, body) = broker
            .put_instance(&format!("pf-{n}"), &provision_body(ASYNC), true)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        operations.push(body["operation"].as_str().unwrap().to_owned());
    }
    // Each started (the plugin answered with its reference) and still in progress.
    let started = |broker: &Broker| {
        operations.iter().all(|id| {
            broker
                .core()
                .state
                .operation(id)
                .is_some_and(|op| op.reference.is_some())
        })
    };
    for _ in 0..200 {
        if started(&broker) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(started(&broker), "the first broker started every provision");
    broker.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    let mut config = fast_config(300);
    config.engine.scan_interval_ms = 60_000;
    config.dispatcher.workers = Some(1);
    config.dispatcher.queue_capacity = Some(2);
    let broker = Broker::with_store(config, store).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let finished = |broker: &Broker| {
        operations
            .iter()
            .filter(|id| {
                broker
                    .core()
                    .state
                    .operation(id)
                    .is_some_and(|op| !op.in_progress())
            })
            .count()
    };
    while finished(&broker) < operations.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        finished(&broker),
        operations.len(),
        "every due operation went through the queue of 2 in the first pass"
    );
    broker.stop().await;
}
