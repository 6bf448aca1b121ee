//! Prometheus metrics: what an operator needs to see the broker's load and health, kept in
//! `prometheus-client` types and served by the metrics listener ([`crate::admin`]).
//!
//! # What is measured (every name starts with `skybroker_`)
//! | metric | type | labels |
//! |---|---|---|
//! | `http_request_duration_seconds` | histogram (its `_count` counts requests) | `method`, `route`, `status` |
//! | `store_write_duration_seconds` | histogram | |
//! | `store_write_errors_total` | counter | `error` |
//! | `provider_call_duration_seconds` | histogram | `provider`, `operation`, `call` |
//! | `provider_call_errors_total` | counter | `provider`, `operation`, `call`, `error` |
//! | `engine_polls_total` | counter (poll jobs queued) | `operation` |
//! | `engine_scan_duration_seconds` | histogram (one scanner pass) | |
//! | `operations_started_total` | counter | `operation` |
//! | `operations_finished_total` | counter | `operation`, `outcome` |
//! | `build_info` | gauge, always 1 | `version` |
//!
//! Read at scrape time from where the numbers already live, never kept twice:
//! `dispatcher_queue_depth`, `dispatcher_queue_capacity`, `dispatcher_workers`,
//! `dispatcher_busy_workers` (gauges), `dispatcher_rejected_jobs_total`,
//! `dispatcher_completed_jobs_total`, `dispatcher_panicked_jobs_total` (counters),
//! `engine_in_flight_operations`, `operations{state}`, `instances`, `bindings` (gauges).
//!
//! # Rules
//! - **Bounded labels.** No label holds an instance, binding or operation id, a credential or
//!   anything else a client chooses: a route is the template it matched
//!   (`/v2/service_instances/{instance_id}`), a method outside the standard set is `other`, and
//!   providers, operations, outcomes and errors are names fixed in the code. The number of
//!   series is bounded by the code, not by the traffic.
//! - **Cheap on the request path.** Counters are atomics. A histogram observation takes the
//!   short lock of its own series (the crate has no atomic histogram); there is no lock shared
//!   by all requests, and label sets are `&'static str`s, so recording allocates nothing.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use skybroker_brokers::{BrokerError, Progress};
use skybroker_dispatcher::Stats;
use skybroker_storage::{
    Change, Counts, OperationCounts, OperationKind, Revision, Store, StoreError, Write,
};

/// Every metric name starts with this.
pub const PREFIX: &str = "skybroker";

/// Request latency buckets (seconds): from a map read to a synchronous call that waits.
const HTTP_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Store commit buckets (seconds): memory commits are microseconds, fsyncs milliseconds.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];
/// Provider call buckets (seconds): cloud APIs take up to minutes.
const PROVIDER_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Scanner pass buckets (seconds).
const SCAN_BUCKETS: [f64; 10] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25,
];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}
fn provider_histogram() -> Histogram {
    Histogram::new(PROVIDER_BUCKETS)
}

/// A family of histograms built by a plain function (so the family is `Debug`).
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

/// Labels of a plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: &'static str,
    operation: &'static str,
    call: &'static str,
}

/// Labels of a failed plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallErrorLabels {
    provider: &'static str,
    operation: &'static str,
    call: &'static str,
    error: &'static str,
}

/// Labels naming an operation kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// Labels of a finished operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Labels of a store error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// Labels of a state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// How an operation ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedAs {
    /// It succeeded.
    Succeeded,
    /// It failed (the provider said so, an error, or its deadline).
    Failed,
    /// A delete halted it while it ran (D-17).
    Halted,
    /// A synchronous request could not be queued in time and was undone (D-11).
    QueueFull,
}

impl EndedAs {
    fn label(self) -> &'static str {
        match self {
            EndedAs::Succeeded => "succeeded",
            EndedAs::Failed => "failed",
            EndedAs::Halted => "halted",
            EndedAs::QueueFull => "queue_full",
        }
    }
}

/// The operations a batch of changes starts and halts, noted before the commit consumes the
/// batch and recorded ([`Metrics::record_admitted`]) once it succeeded. In a batch that admits
/// work, an operation written in progress is new, and one written finished is a running
/// create the new delete halts (D-17).
#[derive(Debug, Default)]
pub struct Admitted(Vec<(OperationKind, bool)>);

impl Admitted {
    /// Notes the operations `changes` writes.
    pub fn of(changes: &[Change]) -> Admitted {
        Admitted(
            changes
                .iter()
                .filter_map(|change| match change {
                    Change::PutOperation(operation) => {
                        Some((operation.kind, operation.in_progress()))
                    }
                    _ => None,
                })
                .collect(),
        )
    }
}

/// One minute of the operator dashboard's chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Its start, in milliseconds since the epoch.
    pub start: u64,
    /// Operations admitted.
    pub started: u64,
    /// Operations that succeeded.
    pub succeeded: u64,
    /// Operations that failed (a halted create counts as failed here).
    pub failed: u64,
    /// The deepest the dispatcher's queue was seen (at scanner passes).
    pub queue_max: usize,
}

/// The last hour, a minute at a time: what the dashboard draws. Prometheus keeps the real
/// history; this is for an operator without one.
#[derive(Debug, Default)]
struct History {
    minutes: std::collections::VecDeque<Minute>,
}

/// Minutes of history kept.
pub const HISTORY_MINUTES: usize = 60;

impl History {
    /// The bucket of the minute `now` falls in, made if new (the oldest dropped).
    fn at(&mut self, now: u64) -> &mut Minute {
        let start = now - now % 60_000;
        if self.minutes.back().is_none_or(|last| last.start < start) {
            self.minutes.push_back(Minute {
                start,
                ..Minute::default()
            });
            while self.minutes.len() > HISTORY_MINUTES {
                self.minutes.pop_front();
            }
        }
        self.minutes.back_mut().expect("just pushed")
    }

    /// The last hour up to `now`, one entry per minute, empty minutes included, oldest first.
    fn hour(&self, now: u64) -> Vec<Minute> {
        let current = now - now % 60_000;
        (0..HISTORY_MINUTES as u64)
            .rev()
            .map(|back| current - back * 60_000)
            .map(|start| {
                self.minutes
                    .iter()
                    .find(|m| m.start == start)
                    .copied()
                    .unwrap_or(Minute {
                        start,
                        ..Minute::default()
                    })
            })
            .collect()
    }
}

/// The broker's metrics. One instance per broker, shared by the HTTP layer, the engine, the
/// workers and the store wrapper; every method may be called from any thread.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by method, route and status.
    requests: HistogramFamily<RequestLabels>,
    /// Store commits.
    store_writes: Histogram,
    /// How long the last store commit took, in microseconds (`u64::MAX`: none yet).
    last_store_write: std::sync::atomic::AtomicU64,
    /// Failed store commits by error.
    store_errors: Family<ErrorLabels, Counter>,
    /// Plugin calls.
    provider_calls: HistogramFamily<CallLabels>,
    /// Plugin calls that returned an error.
    provider_errors: Family<CallErrorLabels, Counter>,
    /// Poll jobs queued.
    polls: Family<OperationLabels, Counter>,
    /// Scanner passes.
    scans: Histogram,
    /// Operations admitted.
    started: Family<OperationLabels, Counter>,
    /// Operations ended.
    finished: Family<OutcomeLabels, Counter>,
    /// The last hour for the dashboard.
    history: std::sync::Mutex<History>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics at zero.
    pub fn new() -> Self {
        Metrics {
            requests: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            store_writes: Histogram::new(STORE_BUCKETS),
            last_store_write: std::sync::atomic::AtomicU64::new(u64::MAX),
            store_errors: Family::default(),
            provider_calls: Family::new_with_constructor(provider_histogram as fn() -> Histogram),
            provider_errors: Family::default(),
            polls: Family::default(),
            scans: Histogram::new(SCAN_BUCKETS),
            started: Family::default(),
            finished: Family::default(),
            history: Default::default(),
        }
    }

    /// A registry exposing these metrics and the scrape-time values of `live` (held weakly:
    /// the registry never keeps a broker that shut down alive).
    pub fn registry(&self, live: Weak<dyn Live>) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "http_request_duration_seconds",
            "OSB requests by method, route template and status, and how long they took",
            self.requests.clone(),
        );
        registry.register(
            "store_write_duration_seconds",
            "Store commits and how long they took",
            self.store_writes.clone(),
        );
        registry.register(
            "store_write_errors",
            "Store commits that failed, by error",
            self.store_errors.clone(),
        );
        registry.register(
            "provider_call_duration_seconds",
            "Plugin calls by provider, operation and call (start or poll), and how long they took",
            self.provider_calls.clone(),
        );
        registry.register(
            "provider_call_errors",
            "Plugin calls that returned an error, by provider, operation, call and error",
            self.provider_errors.clone(),
        );
        registry.register(
            "engine_polls",
            "Poll calls the engine queued, by operation",
            self.polls.clone(),
        );
        registry.register(
            "engine_scan_duration_seconds",
            "Passes of the engine's scanner over the due operations, and how long they took",
            self.scans.clone(),
        );
        registry.register(
            "operations_started",
            "Operations admitted, by operation",
            self.started.clone(),
        );
        registry.register(
            "operations_finished",
            "Operations ended, by operation and outcome",
            self.finished.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ScrapeTime { live }));
        registry
    }

    /// Records one answered OSB request.
    pub fn observe_request(
        &self,
        method: &str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            method: method_label(method),
            route,
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records one store commit.
    pub fn observe_store_write(&self, elapsed: Duration, result: Result<(), &StoreError>) {
        self.store_writes.observe(elapsed.as_secs_f64());
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX - 1);
        self.last_store_write
            .store(micros, std::sync::atomic::Ordering::Relaxed);
        if let Err(err) = result {
            self.store_errors
                .get_or_create(&ErrorLabels {
                    error: store_error_label(err),
                })
                .inc();
        }
    }

    /// How long the last store commit took (the dashboard's store card), if there was one.
    pub fn last_store_write(&self) -> Option<Duration> {
        match self
            .last_store_write
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// Records one plugin call and, if it returned an error, which.
    pub fn observe_plugin_call(
        &self,
        provider: &'static str,
        kind: OperationKind,
        call: &'static str,
        elapsed: Duration,
        result: &Result<Progress, BrokerError>,
    ) {
        let operation = kind.name();
        self.provider_calls
            .get_or_create(&CallLabels {
                provider,
                operation,
                call,
            })
            .observe(elapsed.as_secs_f64());
        if let Err(err) = result {
            self.provider_errors
                .get_or_create(&CallErrorLabels {
                    provider,
                    operation,
                    call,
                    error: broker_error_label(err),
                })
                .inc();
        }
    }

    /// Records a poll job queued for an operation of `kind`.
    pub fn poll_queued(&self, kind: OperationKind) {
        self.polls
            .get_or_create(&OperationLabels {
                operation: kind.name(),
            })
            .inc();
    }

    /// Records one pass of the scanner.
    pub fn observe_scan(&self, elapsed: Duration) {
        self.scans.observe(elapsed.as_secs_f64());
    }

    /// Records what a committed batch started and halted.
    pub fn record_admitted(&self, admitted: Admitted) {
        for (kind, started) in admitted.0 {
            if started {
                self.operation_started(kind);
            } else {
                self.operation_finished(kind, EndedAs::Halted);
            }
        }
    }

    /// Records an operation admitted.
    pub fn operation_started(&self, kind: OperationKind) {
        self.started
            .get_or_create(&OperationLabels {
                operation: kind.name(),
            })
            .inc();
        self.in_history(|minute| minute.started += 1);
    }

    /// Notes the dispatcher's queue depth (the scanner does, at every pass).
    pub fn note_queue(&self, depth: usize) {
        self.in_history(|minute| minute.queue_max = minute.queue_max.max(depth));
    }

    /// The last hour, a minute at a time, oldest first.
    pub fn last_hour(&self) -> Vec<Minute> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.hour(skybroker_storage::now_millis())
    }

    fn in_history(&self, change: impl FnOnce(&mut Minute)) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        change(history.at(skybroker_storage::now_millis()));
    }

    /// Records an operation ended.
    pub fn operation_finished(&self, kind: OperationKind, outcome: EndedAs) {
        self.finished
            .get_or_create(&OutcomeLabels {
                operation: kind.name(),
                outcome: outcome.label(),
            })
            .inc();
        self.in_history(|minute| match outcome {
            EndedAs::Succeeded => minute.succeeded += 1,
            _ => minute.failed += 1,
        });
    }
}

/// The `method` label: the standard methods by name, anything else `other` (a client may send
/// any token as a method, and labels must stay bounded).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn store_error_label(err: &StoreError) -> &'static str {
    match err {
        StoreError::Conflict { .. } => "conflict",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Corrupt { .. } => "corrupt",
        StoreError::Backend(_) => "backend",
        // The enum is non-exhaustive: a variant added later is still counted.
        _ => "other",
    }
}

// The enum may grow: a variant added later is still counted, as `other`.
#[allow(unreachable_patterns)]
fn broker_error_label(err: &BrokerError) -> &'static str {
    match err {
        BrokerError::InvalidParameters(_) => "invalid_parameters",
        BrokerError::NotFound(_) => "not_found",
        BrokerError::Unprocessable(_) => "unprocessable",
        BrokerError::Unauthenticated(_) => "unauthenticated",
        BrokerError::Failed(_) => "failed",
        BrokerError::Transient(_) => "transient",
        BrokerError::Provider { .. } => "provider",
        _ => "other",
    }
}

/// What the running broker reports at each scrape (the engine, which holds the dispatcher
/// and the map, implements it).
pub trait Live: Send + Sync {
    /// The values of this moment.
    fn sample(&self) -> Sample;
}

/// One scrape's values.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The dispatcher's queue and workers.
    pub dispatcher: Stats,
    /// Operations the engine drives (scheduled or on a worker).
    pub in_flight: usize,
    /// Records in the map.
    pub counts: Counts,
    /// Operation records by state.
    pub operations: OperationCounts,
}

/// The values read from the broker at each scrape.
struct ScrapeTime {
    live: Weak<dyn Live>,
}

impl std::fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeTime")
    }
}

/// Writes one unlabelled gauge.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Writes one unlabelled counter (`_total` is appended by the encoder).
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // Gone only while the broker shuts down: report nothing rather than zeros.
        let Some(live) = self.live.upgrade() else {
            return Ok(());
        };
        let Sample {
            dispatcher: stats,
            in_flight,
            counts,
            operations,
        } = live.sample();
        let e = &mut encoder;
        gauge(
            e,
            "dispatcher_queue_depth",
            "Jobs waiting for a worker.",
            to_i64(stats.queue_depth),
        )?;
        gauge(
            e,
            "dispatcher_queue_capacity",
            "Jobs the queue holds.",
            to_i64(stats.capacity),
        )?;
        gauge(
            e,
            "dispatcher_workers",
            "Worker threads.",
            to_i64(stats.workers),
        )?;
        gauge(
            e,
            "dispatcher_busy_workers",
            "Workers running a plugin call.",
            to_i64(stats.busy_workers),
        )?;
        counter(
            e,
            "dispatcher_rejected_jobs",
            "Jobs refused because the queue was full (retried later).",
            stats.rejected,
        )?;
        counter(e, "dispatcher_completed_jobs", "Jobs run.", stats.completed)?;
        counter(
            e,
            "dispatcher_panicked_jobs",
            "Jobs whose plugin call panicked.",
            stats.panicked,
        )?;
        gauge(
            e,
            "engine_in_flight_operations",
            "Operations in progress the engine drives (scheduled or on a worker).",
            to_i64(in_flight),
        )?;
        gauge(
            e,
            "instances",
            "Service instances in the state map.",
            to_i64(counts.instances),
        )?;
        gauge(
            e,
            "bindings",
            "Service bindings in the state map.",
            to_i64(counts.bindings),
        )?;
        let mut family = encoder.encode_descriptor(
            "operations",
            "Operation records in the state map by state (finished ones are kept for the retention).",
            None,
            MetricType::Gauge,
        )?;
        for (state, value) in [
            ("in_progress", operations.in_progress),
            ("succeeded", operations.succeeded),
            ("failed", operations.failed),
        ] {
            let labels = StateLabels { state };
            ConstGauge::new(to_i64(value)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A [`Store`] that times every commit and counts its errors, around the configured one.
#[derive(Debug)]
pub struct MeteredStore {
    /// The store that does the work.
    inner: Arc<dyn Store>,
    /// Where the timings go.
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner, metrics })
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn load_pages(
        &self,
        visit: &mut skybroker_storage::PageVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.inner.load_pages(visit).await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        let started = Instant::now();
        let result = self.inner.commit(writes).await;
        self.metrics
            .observe_store_write(started.elapsed(), result.as_ref().map(|_| ()));
        result
    }

    async fn commit_claiming(
        &self,
        writes: Vec<Write>,
        claims: &skybroker_storage::Claims,
    ) -> Result<Revision, StoreError> {
        let started = Instant::now();
        let result = self.inner.commit_claiming(writes, claims).await;
        self.metrics
            .observe_store_write(started.elapsed(), result.as_ref().map(|_| ()));
        result
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.check().await
    }

    async fn status(&self) -> Result<skybroker_storage::StoreStatus, StoreError> {
        self.inner.status().await
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn record_format(&self) -> skybroker_storage::RecordFormat {
        self.inner.record_format()
    }

    fn loaded_revision(&self) -> Revision {
        self.inner.loaded_revision()
    }

    async fn watch(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<skybroker_storage::WatchEvent>>, StoreError>
    {
        self.inner.watch().await
    }

    async fn claim(&self, operation_id: &str) -> Result<bool, StoreError> {
        self.inner.claim(operation_id).await
    }

    async fn release(&self, operation_id: &str) -> Result<(), StoreError> {
        self.inner.release(operation_id).await
    }

    async fn sync_point(&self) -> Result<Option<Revision>, StoreError> {
        self.inner.sync_point().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Live` that is never there (a registry without the scrape-time values).
    struct Nothing;
    impl Live for Nothing {
        fn sample(&self) -> Sample {
            unreachable!("never upgraded")
        }
    }

    fn exposition(metrics: &Metrics) -> String {
        let registry = metrics.registry(Weak::<Nothing>::new());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn the_history_keeps_an_hour_a_minute_at_a_time() {
        let mut history = History::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        history.at(t0 + 5_000).started += 2;
        history.at(t0 + 59_000).succeeded += 1;
        history.at(t0 + 60_000).failed += 1;
        history.at(t0 + 61 * 60_000).queue_max = 7; // an hour later
        let hour = history.hour(t0 + 61 * 60_000 + 1);
        assert_eq!(hour.len(), HISTORY_MINUTES);
        assert_eq!(hour.last().unwrap().queue_max, 7);
        assert_eq!(
            hour[0].start,
            t0 + 2 * 60_000,
            "the oldest minute an hour back"
        );
        assert!(
            hour.iter().all(|m| m.started == 0),
            "the first minute fell out"
        );
        assert_eq!(
            history.minutes.len(),
            3,
            "only minutes with something in them are kept"
        );
        let earlier = history.hour(t0 + 60_001);
        assert_eq!(earlier.last().unwrap().failed, 1);
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("PUT"), "PUT");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }

    #[test]
    fn recorded_values_appear_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.observe_request(
            "PUT",
            "/v2/service_instances/{instance_id}",
            202,
            Duration::from_millis(3),
        );
        metrics.observe_store_write(
            Duration::from_micros(50),
            Err(&StoreError::Conflict {
                key: "instances/secret-id".into(),
            }),
        );
        metrics.observe_plugin_call(
            "sandbox",
            OperationKind::Provision,
            "poll",
            Duration::from_millis(1),
            &Err(BrokerError::Transient("throttled for account 1234".into())),
        );
        metrics.operation_finished(OperationKind::Bind, EndedAs::QueueFull);
        let text = exposition(&metrics);
        for expected in [
            r#"skybroker_http_request_duration_seconds_count{method="PUT",route="/v2/service_instances/{instance_id}",status="202"} 1"#,
            r#"skybroker_store_write_errors_total{error="conflict"} 1"#,
            r#"skybroker_provider_call_errors_total{provider="sandbox",operation="provision",call="poll",error="transient"} 1"#,
            r#"skybroker_operations_finished_total{operation="bind",outcome="queue_full"} 1"#,
            r#"skybroker_build_info{version=""#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        // Error messages and keys never become labels.
        assert!(
            !text.contains("secret-id") && !text.contains("1234"),
            "{text}"
        );
    }
}
