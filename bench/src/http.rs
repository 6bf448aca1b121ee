//! The HTTP scenarios (1–4 of issue #5) and the limit they are compared with: the workloads,
//! the broker configuration they run on, and one measurement around a generator run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};

use crate::load::{self, Measured, OsbHeaders, Plan, Workload};
use crate::process::Server;
use crate::records::{ASYNC_DELAY_MS, ASYNC_PLAN, SERVICE, SYNC_PLAN};

/// A store backend the provision scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded redb store (the default; durable, one node).
    Embedded,
    /// The memory store: what persistence costs, by difference.
    Memory,
    /// etcd (`storage.backend = "etcd"`): the one `--etcd-endpoint` names, else a private one
    /// the benchmark starts; skipped, with the reason, when neither works.
    Etcd,
}

impl Backend {
    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Memory => "memory",
            Backend::Etcd => "etcd",
        }
    }
}

/// The broker configuration every scenario runs on: the built-in sandbox catalog, with async
/// operations that stay in flight for the whole run, on `backend`. Engine, dispatcher and
/// server settings are the shipped defaults.
///
/// `etcd` is the endpoint and key prefix for the etcd backend.
pub fn broker_config(backend: Backend, etcd: Option<(&str, &str)>) -> anyhow::Result<String> {
    let mut config: toml::Table = toml::from_str(skybroker_config::DEFAULT_CONFIG)
        .context("parsing the built-in configuration")?;
    let storage = config
        .entry("storage")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("[storage] is a table")?;
    storage.insert("backend".into(), backend.name().into());
    // The etcd backend (storage/src/etcd.rs) is configured by `[storage.etcd]`; each scenario
    // gets its own key prefix so runs never see each other's records. A broker that refuses
    // this configuration or cannot reach etcd makes the scenario skipped, with its reason.
    if backend == Backend::Etcd {
        let (endpoint, prefix) = etcd.context("an etcd endpoint is required for the etcd store")?;
        let mut table = toml::Table::new();
        table.insert(
            "endpoints".into(),
            toml::Value::Array(vec![endpoint.into()]),
        );
        table.insert("prefix".into(), prefix.into());
        storage.insert("etcd".into(), toml::Value::Table(table));
    }
    let services = config
        .get_mut("services")
        .and_then(toml::Value::as_array_mut)
        .context("the built-in configuration has services")?;
    for plan in services
        .iter_mut()
        .filter_map(|s| s.get_mut("plans")?.as_array_mut())
        .flatten()
    {
        if plan.get("id").and_then(toml::Value::as_str) == Some(ASYNC_PLAN) {
            let settings = plan
                .get_mut("settings")
                .and_then(toml::Value::as_table_mut)
                .context("the async plan has settings")?;
            settings.insert("delay_ms".into(), (ASYNC_DELAY_MS as i64).into());
        }
    }
    Ok(toml::to_string(&config)?)
}

// ===== workloads =====

/// `GET /v2/catalog` (scenario 1, and the limit).
pub struct Catalog {
    /// Request headers.
    pub headers: OsbHeaders,
}

impl Workload for Catalog {
    fn request(&self, _conn: usize, _seq: u64) -> (Request<Full<Bytes>>, StatusCode) {
        (
            self.headers.request(Method::GET, "/v2/catalog", None),
            StatusCode::OK,
        )
    }
}

/// The provision body the platform sends for the sandbox `plan`.
fn provision_body(plan: &str) -> Bytes {
    provision_body_of(SERVICE, plan)
}

/// The provision body for `plan` of the offering `service`.
fn provision_body_of(service: &str, plan: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "service_id": service,
            "plan_id": plan,
            "organization_guid": "org-bench",
            "space_guid": "space-bench",
            "context": {
                "platform": "cloudfoundry",
                "organization_guid": "org-bench",
                "space_guid": "space-bench",
            },
        })
        .to_string(),
    )
}

/// Async provisions with ids unique to `prefix` (scenario 3; also fills scenario 2).
pub struct Provision {
    headers: OsbHeaders,
    prefix: String,
    body: Bytes,
    /// `(instance id, operation id)` of every accepted provision, when asked for.
    accepted: Option<Mutex<Vec<(String, String)>>>,
}

impl Provision {
    /// Provisions named `{prefix}-{connection}-{sequence}`; `keep` remembers them.
    pub fn new(headers: OsbHeaders, prefix: &str, keep: bool) -> Provision {
        Provision {
            headers,
            prefix: prefix.to_owned(),
            body: provision_body(ASYNC_PLAN),
            accepted: keep.then(|| Mutex::new(Vec::new())),
        }
    }

    /// [`Provision::new`], for `plan` of the offering `service` (another catalog's).
    pub fn of(
        headers: OsbHeaders,
        prefix: &str,
        keep: bool,
        service: &str,
        plan: &str,
    ) -> Provision {
        Provision {
            body: provision_body_of(service, plan),
            ..Provision::new(headers, prefix, keep)
        }
    }

    fn instance_id(&self, conn: usize, seq: u64) -> String {
        format!("{}-{conn}-{seq}", self.prefix)
    }

    /// The provisions accepted so far.
    pub fn accepted(&self) -> Vec<(String, String)> {
        self.accepted
            .as_ref()
            .map(|a| a.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }
}

impl Workload for Provision {
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, StatusCode) {
        let path = format!(
            "/v2/service_instances/{}?accepts_incomplete=true",
            self.instance_id(conn, seq)
        );
        (
            self.headers
                .request(Method::PUT, &path, Some(self.body.clone())),
            StatusCode::ACCEPTED,
        )
    }

    fn observe(&self, conn: usize, seq: u64, body: &Bytes) {
        let Some(accepted) = &self.accepted else {
            return;
        };
        let operation = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("operation")?.as_str().map(str::to_owned));
        if let Some(operation) = operation {
            accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.instance_id(conn, seq), operation));
        }
    }
}

/// `GET …/last_operation` round-robin over in-flight instances, with the hints a platform
/// sends (scenario 2).
pub struct LastOperation {
    headers: OsbHeaders,
    paths: Vec<String>,
}

impl LastOperation {
    /// Polls of the given `(instance id, operation id)`s.
    pub fn new(headers: OsbHeaders, operations: &[(String, String)]) -> LastOperation {
        LastOperation::of(headers, operations, SERVICE, ASYNC_PLAN)
    }

    /// Polls of the given operations on `plan` of the offering `service`.
    pub fn of(
        headers: OsbHeaders,
        operations: &[(String, String)],
        service: &str,
        plan: &str,
    ) -> LastOperation {
        let paths = operations
            .iter()
            .map(|(instance, operation)| {
                format!(
                    "/v2/service_instances/{instance}/last_operation?operation={operation}&service_id={service}&plan_id={plan}"
                )
            })
            .collect();
        LastOperation { headers, paths }
    }
}

impl Workload for LastOperation {
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, StatusCode) {
        // Connections start far apart, so they do not poll the same instance in step.
        let index = (conn as u64 * 7919 + seq) as usize % self.paths.len();
        (
            self.headers.request(Method::GET, &self.paths[index], None),
            StatusCode::OK,
        )
    }
}

/// The synchronous lifecycle per client loop (scenario 4): provision (201) → bind (201) →
/// unbind (200) → deprovision (200), on the sandbox `sync` plan.
pub struct Lifecycle {
    headers: OsbHeaders,
    prefix: String,
    provision: Bytes,
    bind: Bytes,
}

impl Lifecycle {
    /// Loops on instances named `{prefix}-{connection}-{loop}`.
    pub fn new(headers: OsbHeaders, prefix: &str) -> Lifecycle {
        Lifecycle {
            headers,
            prefix: prefix.to_owned(),
            provision: provision_body(SYNC_PLAN),
            bind: Bytes::from(
                serde_json::json!({
                    "service_id": SERVICE,
                    "plan_id": SYNC_PLAN,
                    "bind_resource": { "app_guid": "app-bench" },
                    "context": { "platform": "cloudfoundry" },
                })
                .to_string(),
            ),
        }
    }
}

impl Workload for Lifecycle {
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, StatusCode) {
        let instance = format!("/v2/service_instances/{}-{conn}-{}", self.prefix, seq / 4);
        let binding = format!(
            "{instance}/service_bindings/{}-b-{conn}-{}",
            self.prefix,
            seq / 4
        );
        let hints = format!("service_id={SERVICE}&plan_id={SYNC_PLAN}");
        let h = &self.headers;
        match seq % 4 {
            0 => (
                h.request(Method::PUT, &instance, Some(self.provision.clone())),
                StatusCode::CREATED,
            ),
            1 => (
                h.request(Method::PUT, &binding, Some(self.bind.clone())),
                StatusCode::CREATED,
            ),
            2 => (
                h.request(Method::DELETE, &format!("{binding}?{hints}"), None),
                StatusCode::OK,
            ),
            _ => (
                h.request(Method::DELETE, &format!("{instance}?{hints}"), None),
                StatusCode::OK,
            ),
        }
    }
}

// ===== measuring =====

/// One HTTP scenario's figures.
#[derive(Debug, Clone)]
pub struct HttpResult {
    /// What was measured.
    pub name: String,
    /// The generator's side.
    pub measured: Measured,
    /// Server CPU time (user + system) during the measured window.
    pub cpu: Duration,
    /// Server peak RSS during the scenario (bytes).
    pub peak_rss: u64,
    /// Anything else worth knowing (store commits, engine activity).
    pub note: String,
}

impl HttpResult {
    /// Server CPU per answered request.
    pub fn cpu_per_request(&self) -> Duration {
        let requests = (self.measured.ok + self.measured.errors).max(1);
        self.cpu / requests as u32
    }
}

/// Runs `workload` against `server` (after `warmup`, if any) and measures both sides.
pub async fn measure(
    name: &str,
    server: &Server,
    plan: Plan,
    warmup: Option<(Plan, Arc<dyn Workload>)>,
    workload: Arc<dyn Workload>,
) -> anyhow::Result<HttpResult> {
    measure_with(name, server, None, plan, warmup, workload).await
}

/// [`measure`], also reporting the CPU time of a process the server depends on
/// (`(name, pid)`, e.g. its etcd) over the same window.
pub async fn measure_with(
    name: &str,
    server: &Server,
    companion: Option<(&str, u32)>,
    plan: Plan,
    warmup: Option<(Plan, Arc<dyn Workload>)>,
    workload: Arc<dyn Workload>,
) -> anyhow::Result<HttpResult> {
    tokio::task::block_in_place(|| crate::procfs::settle(crate::SETTLE_LIMIT));
    if let Some((warmup_plan, warmup_workload)) = warmup {
        load::run(server.addr, warmup_plan, warmup_workload).await;
    }
    let before_metrics = scrape(server.metrics_addr).await;
    server.reset_peak();
    let companion_before = companion
        .map(|(_, pid)| crate::procfs::cpu_time(pid))
        .transpose()?;
    let before = server.usage()?;
    let measured = load::run(server.addr, plan, workload).await;
    let after = server.usage()?;
    let companion_cpu = match (companion, companion_before) {
        (Some((name, pid)), Some(before)) => {
            Some((name, crate::procfs::cpu_time(pid)?.saturating_sub(before)))
        }
        _ => None,
    };
    let (_, peak_rss) = server.memory()?;
    let after_metrics = scrape(server.metrics_addr).await;
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let delta = |metric: &str| {
        after_metrics.get(metric).copied().unwrap_or(0.0)
            - before_metrics.get(metric).copied().unwrap_or(0.0)
    };
    let mut note = String::new();
    if server.metrics_addr.is_some() {
        let commits = delta("skybroker_store_write_duration_seconds_count");
        let polls = delta("skybroker_engine_polls_total");
        note = format!(
            "{:.0} store commits/s, {:.0} engine polls/s",
            commits / seconds,
            polls / seconds
        );
    }
    if let Some((companion, cpu)) = companion_cpu {
        note.push_str(&format!(
            "; {companion} CPU {:.0}% of a core ({} per request)",
            100.0 * cpu.as_secs_f64() / seconds,
            crate::report::duration(cpu / (measured.ok + measured.errors).max(1) as u32)
        ));
    }
    if let Some(error) = &measured.first_error {
        note.push_str(&format!("; first error: {error}"));
    }
    Ok(HttpResult {
        name: name.to_owned(),
        cpu: after.cpu.saturating_sub(before.cpu),
        measured,
        peak_rss,
        note,
    })
}

/// Waits until the broker's workers have completed `jobs` plugin calls (at most `timeout`):
/// after a start on in-flight operations, until each has been polled once.
pub async fn wait_for_jobs(server: &Server, jobs: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let metrics = scrape(server.metrics_addr).await;
        let done = metrics
            .get("skybroker_dispatcher_completed_jobs_total")
            .copied()
            .unwrap_or(0.0);
        if done >= jobs as f64 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {done} of {jobs} plugin calls done after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The share of a core `server` uses over `window` with no requests.
pub async fn idle_cpu(server: &Server, window: Duration) -> anyhow::Result<f64> {
    let before = server.usage()?;
    tokio::time::sleep(window).await;
    let after = server.usage()?;
    Ok(after.cpu.saturating_sub(before.cpu).as_secs_f64()
        / after.at.duration_since(before.at).as_secs_f64())
}

/// The broker's metrics, summed over labels, by metric name; empty when it has no metrics
/// listener or does not answer.
pub async fn scrape(metrics_addr: Option<SocketAddr>) -> HashMap<String, f64> {
    let mut totals = HashMap::new();
    let Some(addr) = metrics_addr else {
        return totals;
    };
    let request = Request::builder()
        .uri("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let Ok((StatusCode::OK, body)) = load::one(addr, request).await else {
        return totals;
    };
    for line in String::from_utf8_lossy(&body).lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(value) = value.parse::<f64>() {
            *totals.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    totals
}

/// The catalog body a server answers (what the limit server then serves).
pub async fn fetch_catalog(addr: SocketAddr) -> anyhow::Result<Bytes> {
    let headers = OsbHeaders::new(addr);
    let (status, body) = load::one(addr, headers.request(Method::GET, "/v2/catalog", None))
        .await
        .context("fetching the catalog")?;
    anyhow::ensure!(status == StatusCode::OK, "the catalog answered {status}");
    Ok(body)
}

/// A key prefix of this run's own for the scenario `name` on etcd.
pub fn etcd_prefix(name: &str) -> String {
    format!("/skybroker-bench/{}/{name}/", std::process::id())
}
