//! Operating the broker (issue 9): the metrics listener's `/metrics`, `/healthz` and `/readyz`.
//!
//! `/metrics` is scraped before and after a lifecycle and parsed whole, in both formats it
//! serves, by an independent parser (`openmetrics-parser`); the counters and histograms must
//! have moved by what the lifecycle did, and no label may carry an id. `/readyz` must follow
//! the store: a store that stops answering makes the broker unready, its return ready again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use reqwest::{Method, StatusCode};
use skybroker_storage::{MemoryStore, Revision, Store, StoreError, Write};

use crate::harness::*;

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// The Prometheus text exposition, parsed (the parse must succeed).
async fn scrape(broker: &Broker) -> (Exposition, String) {
    let (status, content_type, text) = broker.get_admin("/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let exposition = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|err| panic!("the exposition does not parse: {err:?}\n{text}"));
    (exposition, text)
}

/// The sum over the series of `family` whose labels include `labels`: a counter's or gauge's
/// value, a histogram's count; 0 when there is no such series.
fn value(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(family) = exposition.families.get(family) else {
        return 0.0;
    };
    family
        .iter_samples()
        .filter(|sample| {
            let set = sample.get_labelset().expect("a label set");
            labels
                .iter()
                .all(|(name, value)| set.get_label_value(name) == Some(*value))
        })
        .map(|sample| match &sample.value {
            PrometheusValue::Counter(counter) => counter.value.as_f64(),
            PrometheusValue::Gauge(number) | PrometheusValue::Unknown(number) => number.as_f64(),
            PrometheusValue::Histogram(histogram) => histogram.count.unwrap_or(0) as f64,
            PrometheusValue::Summary(summary) => summary.count.unwrap_or(0) as f64,
        })
        .sum()
}

/// Scrapes until the workers have settled: a worker counts its job as completed (and itself
/// idle) only after handing the outcome over, so the last increments may trail the operation's
/// end by a moment.
async fn scrape_settled(broker: &Broker) -> (Exposition, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (exposition, text) = scrape(broker).await;
        let settled = value(&exposition, "skybroker_dispatcher_busy_workers", &[]) == 0.0
            && value(
                &exposition,
                "skybroker_dispatcher_completed_jobs_total",
                &[],
            ) == value(&exposition, "skybroker_provider_call_duration_seconds", &[])
            // An operation's outcome is counted just after its final state is stored, so a
            // client may see `succeeded` a moment before the counter moves.
            && value(&exposition, "skybroker_operations_finished_total", &[])
                == value(&exposition, "skybroker_operations_started_total", &[]);
        if settled || std::time::Instant::now() > deadline {
            return (exposition, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

const REQUESTS: &str = "skybroker_http_request_duration_seconds";

/// The http histogram's count for one method, route and status.
fn requests(exposition: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    value(
        exposition,
        REQUESTS,
        &[("method", method), ("route", route), ("status", status)],
    )
}

/// An async provision, a failing async provision, an async deprovision, a catalog fetch, an
/// unauthenticated request and an unknown route move exactly the metrics they should; the
/// exposition parses whole as Prometheus text and as OpenMetrics; route labels are templates
/// and no id appears anywhere in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_moves_the_counters_and_histograms() {
    let broker = Broker::with_config(fast_config(100)).await;
    let (before, _) = scrape(&broker).await;
    assert_eq!(value(&before, REQUESTS, &[]), 0.0, "no OSB request yet");
    assert_eq!(
        value(&before, "skybroker_operations_started_total", &[]),
        0.0
    );
    assert_eq!(value(&before, "skybroker_build_info", &[]), 1.0);
    assert_eq!(
        value(&before, "skybroker_engine_in_flight_operations", &[]),
        0.0
    );

    assert_eq!(
        broker
            .send(broker.request(Method::GET, "/v2/catalog"))
            .await
            .0,
        StatusCode::OK
    );
    let unauthenticated = broker
        .client
        .get(format!("{}/v2/catalog", broker.url))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        broker
            .send(broker.request(Method::GET, "/v2/no-such-route/metrics-id-9"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    broker.provision_async("metrics-instance-1").await;
    let (status, body) = broker
        .put_instance("metrics-instance-2", &provision_body(FAIL), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failing = body["operation"].as_str().unwrap().to_owned();
    assert_eq!(
        broker.wait_instance("metrics-instance-2", &failing).await["state"],
        "failed"
    );
    let (status, body) = broker
        .delete_instance("metrics-instance-1", ASYNC, true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deprovision = body["operation"].as_str().unwrap().to_owned();
    assert_eq!(
        broker
            .wait_instance("metrics-instance-1", &deprovision)
            .await["state"],
        "succeeded"
    );

    let (after, text) = scrape_settled(&broker).await;

    // The same registry in OpenMetrics, which Prometheus asks for, parses as well.
    let (status, content_type, openmetrics) = broker
        .get_admin(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&openmetrics)
        .unwrap_or_else(|err| panic!("OpenMetrics does not parse: {err:?}\n{openmetrics}"));
    assert_eq!(parsed.families.len(), after.families.len());

    // Bounded labels: templates only, and no id anywhere.
    for id in [
        "metrics-instance-1",
        "metrics-instance-2",
        "metrics-id-9",
        failing.as_str(),
        deprovision.as_str(),
    ] {
        assert!(
            !text.contains(id),
            "{id} leaked into the exposition:\n{text}"
        );
    }
    let family = &after.families[REQUESTS];
    for sample in family.iter_samples() {
        let labels = sample.get_labelset().unwrap();
        let route = labels.get_label_value("route").unwrap();
        assert!(
            skybroker::api::ROUTES.contains(&route) || route == "unmatched",
            "route label {route:?}"
        );
        // A histogram: cumulative buckets ending in +Inf, which equals the count.
        let PrometheusValue::Histogram(histogram) = &sample.value else {
            panic!("{REQUESTS} is a histogram");
        };
        let counts: Vec<f64> = histogram.buckets.iter().map(|b| b.count.as_f64()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        let last = histogram.buckets.last().unwrap();
        assert!(last.upper_bound.is_infinite());
        assert_eq!(last.count.as_f64(), histogram.count.unwrap() as f64);
    }

    // Requests, by route template and status.
    let instance = skybroker::api::ROUTE_INSTANCE;
    let last_operation = skybroker::api::ROUTE_INSTANCE_LAST_OPERATION;
    assert_eq!(requests(&after, "GET", "/v2/catalog", "200"), 1.0);
    assert_eq!(requests(&after, "GET", "/v2/catalog", "401"), 1.0);
    assert_eq!(requests(&after, "GET", "unmatched", "404"), 1.0);
    assert_eq!(requests(&after, "PUT", instance, "202"), 2.0);
    assert_eq!(requests(&after, "DELETE", instance, "202"), 1.0);
    assert!(requests(&after, "GET", last_operation, "200") >= 3.0);

    // Operations, by kind and outcome; nothing left in flight.
    let started = |operation| {
        value(
            &after,
            "skybroker_operations_started_total",
            &[("operation", operation)],
        )
    };
    let finished = |operation, outcome| {
        value(
            &after,
            "skybroker_operations_finished_total",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    assert_eq!(started("provision"), 2.0);
    assert_eq!(started("deprovision"), 1.0);
    assert_eq!(finished("provision", "succeeded"), 1.0);
    assert_eq!(finished("provision", "failed"), 1.0);
    assert_eq!(finished("deprovision", "succeeded"), 1.0);
    assert_eq!(
        value(&after, "skybroker_engine_in_flight_operations", &[]),
        0.0
    );
    let records = |state| value(&after, "skybroker_operations", &[("state", state)]);
    assert_eq!(
        (
            records("in_progress"),
            records("succeeded"),
            records("failed")
        ),
        (0.0, 2.0, 1.0)
    );
    assert_eq!(
        value(&after, "skybroker_instances", &[]),
        1.0,
        "the failed one stays"
    );

    // Polls and plugin calls: every poll queued was a poll call made.
    let polls = value(&after, "skybroker_engine_polls_total", &[]);
    assert!(
        value(
            &after,
            "skybroker_engine_polls_total",
            &[("operation", "provision")]
        ) >= 2.0,
        "both async provisions were polled"
    );
    let calls =
        |labels: &[(&str, &str)]| value(&after, "skybroker_provider_call_duration_seconds", labels);
    let sandbox = ("provider", "sandbox");
    assert_eq!(
        calls(&[sandbox, ("operation", "provision"), ("call", "start")]),
        2.0
    );
    assert_eq!(
        calls(&[sandbox, ("operation", "deprovision"), ("call", "start")]),
        1.0
    );
    assert_eq!(calls(&[sandbox, ("call", "poll")]), polls);
    assert_eq!(
        value(&after, "skybroker_provider_call_errors_total", &[]),
        0.0
    );

    // The dispatcher ran every call and refused none.
    let config = &broker.core().config.dispatcher;
    let gauge = |name| value(&after, name, &[]);
    assert_eq!(
        gauge("skybroker_dispatcher_queue_capacity"),
        config.capacity() as f64
    );
    assert_eq!(
        gauge("skybroker_dispatcher_workers"),
        config.worker_count() as f64
    );
    assert_eq!(gauge("skybroker_dispatcher_queue_depth"), 0.0);
    assert_eq!(gauge("skybroker_dispatcher_busy_workers"), 0.0);
    assert_eq!(gauge("skybroker_dispatcher_rejected_jobs_total"), 0.0);
    assert_eq!(
        gauge("skybroker_dispatcher_completed_jobs_total"),
        calls(&[])
    );

    // The store wrote every transition, without error; the scanner ran.
    assert!(gauge("skybroker_store_write_duration_seconds") >= 6.0);
    assert_eq!(gauge("skybroker_store_write_errors_total"), 0.0);
    assert!(gauge("skybroker_engine_scan_duration_seconds") > 0.0);
    broker.stop().await;
}

/// A memory store that can be made unreachable: every call then fails as an unreachable
/// etcd would.
#[derive(Debug, Default)]
struct Switchable {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Switchable {
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused (test)".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Switchable {
    async fn load_pages(
        &self,
        visit: &mut skybroker_storage::PageVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.load_pages(visit).await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        self.reachable()?;
        self.inner.commit(writes).await
    }

    async fn commit_claiming(
        &self,
        writes: Vec<Write>,
        claims: &skybroker_storage::Claims,
    ) -> Result<Revision, StoreError> {
        self.reachable()?;
        self.inner.commit_claiming(writes, claims).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.check().await
    }

    fn name(&self) -> &'static str {
        "switchable"
    }

    fn record_format(&self) -> skybroker_storage::RecordFormat {
        self.inner.record_format()
    }

    fn loaded_revision(&self) -> Revision {
        self.inner.loaded_revision()
    }
}

/// `/healthz` answers while the process lives; `/readyz` turns 503 when the store stops
/// answering (and writes fail with 503, counted as store errors) and 200 when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store() {
    let store = Arc::new(Switchable::default());
    let broker = Broker::with_store(fast_config(100), Arc::clone(&store) as Arc<dyn Store>).await;
    let probe = |path| broker.get_admin(path, None);

    let (status, _, body) = probe("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    let (status, _, body) = probe("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "ready\nstore: ok\ncatalog: ok\ndispatcher: ok\n");

    store.set_down(true);
    let (status, _, body) = probe("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.starts_with("not ready\n") && body.contains("store: failed"),
        "{body}"
    );
    assert!(
        !body.contains("connection refused"),
        "details stay in the log"
    );
    let (status, _, _) = probe("/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "liveness does not depend on the store"
    );
    let (status, body) = broker
        .put_instance("ready-1", &provision_body(SYNC), false)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (metrics, _) = scrape(&broker).await;
    assert_eq!(
        value(
            &metrics,
            "skybroker_store_write_errors_total",
            &[("error", "unavailable")]
        ),
        1.0
    );

    store.set_down(false);
    let (status, _, body) = probe("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    broker.provision_sync("ready-1", SYNC).await;
    broker.stop().await;
}

/// `[metrics] enabled = false`: no second listener, and the OSB API serves as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_can_be_turned_off() {
    let mut config = fast_config(100);
    config.metrics.enabled = false;
    let broker = Broker::with_config(config).await;
    assert!(broker.running.as_ref().unwrap().metrics_addr.is_none());
    broker.provision_sync("off-1", SYNC).await;
    broker.stop().await;
}
