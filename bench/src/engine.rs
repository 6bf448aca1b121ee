//! Scenario 5: the engine under load, in this process, on the library.
//!
//! The broker's own pieces are wired as `server::start` wires them (map over a memory store,
//! the sandbox plugin on the dispatcher's workers, the applier), except that the scanner
//! runs alone on a thread of its own: the CPU time of that thread is then exactly the CPU
//! time of the scan passes, read from the kernel (`schedstat`, nanoseconds). Pass boundaries
//! come from the broker's own `engine_scan_duration_seconds` histogram, which also gives the
//! wall time of each pass.
//!
//! The map holds `instances` instances, `in_flight` of which have a provision the plugin
//! accepted and the engine polls. At the start every in-flight operation is due at once (as
//! after a restart, [`skybroker::engine::Engine::resume`]): that first pass is the *burst*. Then the
//! engine runs on its normal schedule for the measured window (*steady*).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use skybroker::catalog::Catalogs;
use skybroker::engine::{self, Engine, Parts};
use skybroker::locks::InstanceLocks;
use skybroker::metrics::{Live, Metrics};
use skybroker_config::{Config, Secret, StorageBackend};
use skybroker_dispatcher::Dispatcher;
use skybroker_storage::{MemoryStore, StateMap, Store};
use tokio::sync::{mpsc, watch};

use crate::procfs;
use crate::records::{self, ASYNC_DELAY_MS};

/// Outcomes in flight between workers and the applier (as in the server).
const OUTCOME_BUFFER: usize = 1024;
/// How often the pass counter is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// The figures of one engine configuration.
#[derive(Debug, Clone)]
pub struct EngineResult {
    /// Operations in flight.
    pub in_flight: usize,
    /// Instances in the map.
    pub instances: usize,
    /// CPU time of the first pass, which found every in-flight operation due.
    pub burst_cpu: Duration,
    /// Wall time of that pass.
    pub burst_wall: Duration,
    /// Jobs that pass handed to the workers (those finished, running or queued when it
    /// ended): with workers that keep up, every due operation; with busy ones, about the
    /// queue's capacity.
    pub burst_jobs: u64,
    /// Passes in the steady window.
    pub passes: u64,
    /// Mean CPU time of a steady pass.
    pub steady_cpu_mean: Duration,
    /// Largest CPU time of a steady pass.
    pub steady_cpu_max: Duration,
    /// Mean wall time of a steady pass.
    pub steady_wall_mean: Duration,
    /// Plugin calls (polls) completed per second in the steady window.
    pub jobs_per_second: f64,
}

/// Passes counted so far and their total wall time, from the broker's histogram.
fn scan_totals(registry: &prometheus_client::registry::Registry) -> (u64, f64) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return (0, 0.0);
    }
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("skybroker_engine_scan_duration_seconds_count") as u64,
        value("skybroker_engine_scan_duration_seconds_sum"),
    )
}

/// Builds the engine over a memory store filled as the scenario says.
async fn engine(
    in_flight: usize,
    instances: usize,
) -> anyhow::Result<(Arc<Engine>, mpsc::Receiver<skybroker::jobs::Outcome>)> {
    let mut config = Config::builtin();
    config.storage.backend = StorageBackend::Memory;
    config.server.password = Some(Secret::new("unused"));
    for plan in &mut config.services[0].plans {
        if let Some(delay) = std::sync::Arc::make_mut(&mut plan.settings).get_mut("delay_ms") {
            *delay = serde_json::json!(ASYNC_DELAY_MS);
        }
    }
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let state = Arc::new(StateMap::open(store).await?);
    records::fill(&state, instances, in_flight, 1, 1000).await?;
    let catalog = Arc::new(Catalogs::new(&config, Arc::clone(&state)).map_err(anyhow::Error::msg)?);
    let metrics = Arc::new(Metrics::new());
    let (outcome_sender, outcomes) = mpsc::channel(OUTCOME_BUFFER);
    let runtime = tokio::runtime::Handle::current();
    let job_metrics = Arc::clone(&metrics);
    let dispatcher = Dispatcher::start(
        "bench-worker",
        config.dispatcher.worker_count(),
        config.dispatcher.capacity(),
        move |job| skybroker::jobs::run(job, &runtime, &outcome_sender, &job_metrics),
    );
    let engine = Arc::new(Engine::new(Parts {
        config: config.engine.clone(),
        catalog,
        state,
        locks: Arc::new(InstanceLocks::default()),
        dispatcher,
        metrics: Arc::clone(&metrics),
    }));
    Ok((engine, outcomes))
}

/// Measures one configuration: the burst pass, then `window` of steady passes.
pub fn run(in_flight: usize, instances: usize, window: Duration) -> anyhow::Result<EngineResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-engine")
        .build()?;
    let (core, outcomes) = runtime.block_on(engine(in_flight, instances))?;
    procfs::settle(crate::SETTLE_LIMIT);
    // Every in-flight operation due now, as after a restart.
    core.resume();

    let (stop_scanner, scanner_stopped) = watch::channel(false);
    let (thread_sender, thread_dir) = std::sync::mpsc::channel();
    let scanner_core = Arc::clone(&core);
    let scanner = std::thread::Builder::new()
        .name("bench-scanner".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = thread_sender.send(Err(anyhow::Error::from(err)));
                    return;
                }
            };
            // Announced once the runtime exists, so its set-up is not counted.
            let _ = thread_sender.send(procfs::current_thread_dir());
            runtime.block_on(engine::run_scanner(scanner_core, scanner_stopped));
        })?;
    let thread_dir = thread_dir
        .recv()
        .context("the scanner thread did not start")??;
    let (stop_applier, applier_stopped) = watch::channel(false);
    let applier = runtime.spawn(engine::run_applier(
        Arc::clone(&core),
        outcomes,
        applier_stopped,
    ));

    // Only the broker's own metrics: a registry without the scrape-time collector, whose
    // per-state operation counts would walk the whole map at every sample.
    let registry = core
        .metrics()
        .registry(Weak::<Engine>::new() as Weak<dyn Live>);
    let mut last_cpu = procfs::thread_cpu(&thread_dir)?;
    let (mut last_count, mut last_sum) = scan_totals(&registry);
    let burst_deadline = Instant::now() + Duration::from_secs(120);
    // The burst: the first pass.
    let (burst_cpu, burst_wall, burst_jobs) = loop {
        std::thread::sleep(SAMPLE_EVERY);
        let (count, sum) = scan_totals(&registry);
        if count > last_count {
            let cpu = procfs::thread_cpu(&thread_dir)?;
            let stats = core.dispatcher().stats();
            let result = (
                cpu.saturating_sub(last_cpu),
                Duration::from_secs_f64((sum - last_sum).max(0.0)),
                stats.completed + (stats.queue_depth + stats.busy_workers) as u64,
            );
            (last_count, last_sum, last_cpu) = (count, sum, cpu);
            break result;
        }
        anyhow::ensure!(
            Instant::now() < burst_deadline,
            "the scanner made no pass in 120 s"
        );
    };

    // The steady window.
    let completed_before = core.dispatcher().stats().completed;
    let started = Instant::now();
    let (mut passes, mut cpu_total, mut cpu_max, mut wall_total) =
        (0u64, Duration::ZERO, Duration::ZERO, 0.0f64);
    while started.elapsed() < window {
        std::thread::sleep(SAMPLE_EVERY);
        let (count, sum) = scan_totals(&registry);
        if count > last_count {
            let cpu = procfs::thread_cpu(&thread_dir)?;
            let n = count - last_count;
            let spent = cpu.saturating_sub(last_cpu);
            passes += n;
            cpu_total += spent;
            // Two passes between samples share the time (rare: passes are 100 ms apart).
            let per_pass = spent / n as u32;
            cpu_max = cpu_max.max(per_pass);
            wall_total += sum - last_sum;
            (last_count, last_sum, last_cpu) = (count, sum, cpu);
        }
    }
    let elapsed = started.elapsed();
    let completed = core.dispatcher().stats().completed - completed_before;

    // Orderly stop, as the server does it: scanner, workers, applier.
    let _ = stop_scanner.send(true);
    let _ = scanner.join();
    core.dispatcher().shutdown();
    let _ = stop_applier.send(true);
    let _ = runtime.block_on(applier);
    drop(core);
    runtime.shutdown_timeout(Duration::from_secs(5));

    let passes_nonzero = passes.max(1);
    Ok(EngineResult {
        in_flight,
        instances,
        burst_cpu,
        burst_wall,
        burst_jobs,
        passes,
        steady_cpu_mean: cpu_total / passes_nonzero as u32,
        steady_cpu_max: cpu_max,
        steady_wall_mean: Duration::from_secs_f64((wall_total / passes_nonzero as f64).max(0.0)),
        jobs_per_second: completed as f64 / elapsed.as_secs_f64(),
    })
}
