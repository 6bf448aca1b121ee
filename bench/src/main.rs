//! `skybroker-bench`: how much traffic one Skybroker replica holds, measured in one run
//! against the physical limit of the machine it runs on (issue #5).
//!
//! Operators size a broker on these figures, so they come from the real thing: the release
//! `skybroker` binary as a child process, configured as shipped (sandbox catalog, embedded
//! store), driven over loopback by an efficient closed-loop generator, with its CPU time and
//! memory read from `/proc`. On the same run, the same generator measures a minimal hyper
//! server answering the same catalog bytes: the limit of this machine and generator. Every
//! HTTP figure is printed as a share of it, which makes runs on different machines
//! comparable. The engine is measured in this process on the library, where a scan pass can
//! be isolated.
//!
//! # Layout
//! - `load`: the generator; `process`: the servers as child processes; `limit`: the hyper
//!   server; `procfs`: CPU and memory from `/proc`.
//! - `http`: scenarios 1–4; `proxy`: the Service Manager's proxy; `engine`: 5; `startup`:
//!   6 and 7; `storebench`: the embedded
//!   store alone (group commit); `records`: stored records shaped like the broker's.
//! - `sweep`: throughput against concurrency, drawn as an SVG chart.
//! - `report`: the tables and the targets.
//!
//! Run `cargo run --release -p skybroker-bench -- --help`; `bench/README.md` has the latest
//! figures.

mod dashboard;
mod engine;
mod http;
mod limit;
mod load;
mod process;
mod procfs;
mod proxy;
mod records;
mod report;
mod startup;
mod storebench;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use crate::http::Backend;
use crate::load::{OsbHeaders, Plan, Workload};
use crate::process::Server;
use crate::report::Report;

/// How long a scenario waits for the machine to be quiet before it starts (`procfs::settle`).
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// Benchmarks and load tests for Skybroker, side by side with a minimal hyper server.
#[derive(Debug, Parser)]
#[command(name = "skybroker-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: the minimal hyper server, run as a child process by the benchmark.
    #[command(hide = true)]
    LimitServer {
        /// The bytes to answer with.
        body: PathBuf,
    },
    /// Fills an embedded store (a broker's data directory) with finished sandbox provisions,
    /// to measure a start-up or its memory by hand (e.g. under heaptrack).
    Seed {
        /// The data directory to create (replaced if it exists).
        #[arg(long)]
        data_dir: PathBuf,
        /// How many instances (each with its operation record).
        #[arg(long, default_value_t = 100_000)]
        instances: usize,
        /// How many of them are still provisioning (polled at the longest interval).
        #[arg(long, default_value_t = 0)]
        in_flight: usize,
    },
}

/// The scenarios (numbers as in issue #5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 1. GET /v2/catalog with basic auth.
    Catalog,
    /// 2. GET last_operation on in-flight async instances.
    LastOperation,
    /// 3. async provisions with unique ids, per store backend.
    Provision,
    /// 4. the synchronous lifecycle per client loop.
    Lifecycle,
    /// 5. the engine's scan passes, in process.
    Engine,
    /// 6 and 7. start-up time and RSS with many stored instances.
    Startup,
    /// The stores alone: embedded commits/s with 1 and many committers (group commit); with
    /// etcd among the stores, a standby replica's passes over another's claims.
    Store,
    /// The Service Manager's proxy: catalog, provisions and last_operation through a central
    /// broker as a share of talking to the external broker directly (issue #18).
    Proxy,
    /// The operator dashboard's pages with many stored instances (issue #19).
    Dashboard,
    /// Throughput against concurrency for the limit, the catalog and async provisions, drawn
    /// as an SVG chart (issue #20).
    Sweep,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenarios to run (comma-separated); default all.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,
    /// A short run: 2 s per HTTP scenario, 2,000 in flight, engine up to 10,000, start-up
    /// with 10,000.
    #[arg(long)]
    quick: bool,
    /// Seconds each HTTP scenario is measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of unmeasured load before each HTTP scenario.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests per HTTP scenario at most (a bound besides the duration).
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// In-flight async instances polled by scenario 2.
    #[arg(long, default_value_t = 10_000)]
    in_flight: usize,
    /// Seconds the broker's CPU is measured without requests after scenario 2 (the engine
    /// alone, polling the in-flight operations).
    #[arg(long, default_value_t = 2.0)]
    idle_window: f64,
    /// Store backends for scenario 3 (embedded, memory, etcd).
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Backend::Embedded, Backend::Memory, Backend::Etcd])]
    stores: Vec<Backend>,
    /// etcd client URL for `--stores etcd` (e.g. http://127.0.0.1:2379); without it the
    /// benchmark starts a private etcd (the `etcd` on PATH) for the scenario.
    #[arg(long)]
    etcd_endpoint: Option<String>,
    /// Operations one replica drives while another stands by (`store` with etcd among the
    /// stores).
    #[arg(long, default_value_t = 10_000)]
    standby_operations: usize,
    /// Engine sizes: the smallest in flight in maps of every size (the cost must stay flat),
    /// then the largest map with every size in flight (the cost grows).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
    engine_sizes: Vec<usize>,
    /// Seconds of steady engine passes measured per engine configuration.
    #[arg(long, default_value_t = 3.0)]
    engine_window: f64,
    /// Stored instances for the start-up scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    startup_sizes: Vec<usize>,
    /// Stored instances for the dashboard scenario.
    #[arg(long, default_value_t = 100_000)]
    dashboard_instances: usize,
    /// How many of those are still provisioning.
    #[arg(long, default_value_t = 1_000)]
    dashboard_in_flight: usize,
    /// Connection counts of the sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16, 64, 256])]
    sweep_connections: Vec<usize>,
    /// Seconds each point of the sweep is measured.
    #[arg(long, default_value_t = 2.0)]
    sweep_seconds: f64,
    /// Where the sweep's chart goes (default: `throughput.svg` in the work directory).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The broker's RUST_LOG (`info` is what `serve` runs with by default: an access-log
    /// line per request).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The skybroker binary (default: build the release one next to this executable).
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Where stores, configurations and broker logs go.
    #[arg(long, default_value = "/var/tmp/skybroker-bench")]
    work_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::LimitServer { body }) => return limit::serve(body),
        Some(Command::Seed {
            data_dir,
            instances,
            in_flight,
        }) => {
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(startup::seed(data_dir, *instances, *in_flight, 12));
        }
        None => {}
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build of the benchmark runs a debug build of the broker; \
             run with --release for figures that mean anything"
        );
    }
    let mut args = cli.run;
    if args.quick {
        args.duration = args.duration.min(2.0);
        args.warmup = args.warmup.min(0.5);
        args.in_flight = args.in_flight.min(2_000);
        args.engine_sizes.retain(|&n| n <= 10_000);
        args.engine_window = args.engine_window.min(1.0);
        args.startup_sizes.retain(|&n| n <= 10_000);
        args.dashboard_instances = args.dashboard_instances.min(10_000);
    }
    if args.only.is_empty() {
        args.only = Scenario::value_variants().to_vec();
    }
    std::fs::create_dir_all(&args.work_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = run(&args, &runtime)?;
    println!("{}", report.render());
    Ok(())
}

fn run(args: &RunArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        machine: procfs::machine(),
        load_before: procfs::load_average(),
        log_level: args.log_level.clone(),
        ..Report::default()
    };
    eprintln!("machine: {}", report.machine);
    eprintln!("load average: {}", report.load_before);
    let wants = |s: Scenario| args.only.contains(&s);
    let http_wanted = [
        Scenario::Catalog,
        Scenario::LastOperation,
        Scenario::Provision,
        Scenario::Lifecycle,
        Scenario::Proxy,
    ]
    .into_iter()
    .any(wants);
    let needs_broker = http_wanted
        || wants(Scenario::Startup)
        || wants(Scenario::Dashboard)
        || wants(Scenario::Sweep);
    let bin = if needs_broker {
        let bin = process::broker_binary(args.broker_bin.as_deref())?;
        eprintln!("broker binary: {}", bin.display());
        Some(bin)
    } else {
        None
    };
    if let (true, Some(bin)) = (http_wanted, &bin) {
        runtime.block_on(http_scenarios(args, bin, &mut report))?;
    }
    if wants(Scenario::Engine) {
        for (in_flight, instances) in engine_grid(&args.engine_sizes) {
            eprintln!("== 5. engine: {in_flight} in flight, {instances} instances");
            let window = Duration::from_secs_f64(args.engine_window);
            report
                .engine
                .push(engine::run(in_flight, instances, window)?);
        }
    }
    if let (true, Some(bin)) = (wants(Scenario::Startup), &bin) {
        eprintln!("== 6, 7. start-up and memory");
        // From etcd too when etcd is among the stores: the given one, or a private one.
        let private_etcd = match (args.stores.contains(&Backend::Etcd), &args.etcd_endpoint) {
            (true, None) => match runtime.block_on(process::Etcd::start(&args.work_dir)) {
                Ok(etcd) => Some(etcd),
                Err(err) => {
                    let name = "6. start-up from etcd".to_owned();
                    report.skipped.push((name, format!("{err:#}")));
                    None
                }
            },
            _ => None,
        };
        let etcd = match &private_etcd {
            Some(etcd) => Some(etcd.endpoint.as_str()),
            None => args
                .etcd_endpoint
                .as_deref()
                .filter(|_| args.stores.contains(&Backend::Etcd)),
        };
        report.startup = runtime.block_on(startup::run(
            bin,
            &args.work_dir,
            &args.startup_sizes,
            &args.log_level,
            etcd,
        ))?;
        drop(private_etcd);
    }
    if let (true, Some(bin)) = (wants(Scenario::Dashboard), &bin) {
        eprintln!("== dashboard: {} instances", args.dashboard_instances);
        report.dashboard = runtime.block_on(dashboard::run(
            bin,
            &args.work_dir,
            args.dashboard_instances,
            args.dashboard_in_flight.min(args.dashboard_instances),
            &args.log_level,
        ))?;
    }
    if let (true, Some(bin)) = (wants(Scenario::Sweep), &bin) {
        report.sweep = runtime.block_on(sweep::run(
            bin,
            &args.work_dir,
            &args.log_level,
            &args.sweep_connections,
            args.sweep_seconds,
        ))?;
        let path = (args.plot.clone()).unwrap_or_else(|| args.work_dir.join("throughput.svg"));
        let subtitle = format!(
            "{}, {} s per point",
            time::OffsetDateTime::now_utc().date(),
            args.sweep_seconds
        );
        sweep::plot(&report.sweep, &subtitle, &path)?;
        eprintln!("sweep chart: {}", path.display());
    }
    if wants(Scenario::Store) {
        for committers in [1, 64] {
            eprintln!("== embedded store: {committers} committer(s)");
            let dir = args.work_dir.join("store-bench");
            report.store.push(runtime.block_on(storebench::run(
                &dir,
                committers,
                Duration::from_secs(3),
                200_000,
            ))?);
        }
        if args.stores.contains(&Backend::Etcd) {
            eprintln!("== etcd: a standby replica's claims");
            let standby = runtime.block_on(async {
                let private_etcd = match &args.etcd_endpoint {
                    Some(_) => None,
                    None => Some(process::Etcd::start(&args.work_dir).await?),
                };
                let endpoint = match (&private_etcd, &args.etcd_endpoint) {
                    (Some(etcd), _) => etcd.endpoint.clone(),
                    (None, endpoint) => endpoint.clone().unwrap_or_default(),
                };
                storebench::standby_claims(&endpoint, args.standby_operations).await
            });
            match standby {
                Ok(standby) => report.standby = Some(standby),
                Err(err) => {
                    let name = "etcd: a standby replica's claims".to_owned();
                    report.skipped.push((name, format!("{err:#}")));
                }
            }
        }
    }
    report.load_after = procfs::load_average();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The engine configurations: a fixed 1,000 in flight in maps of every size (the cost must
/// not grow), then the largest map with every in-flight count (the cost grows with these).
fn engine_grid(sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    let (Some(&smallest), Some(&largest)) = (sizes.first(), sizes.last()) else {
        return Vec::new();
    };
    let mut grid: Vec<(usize, usize)> = sizes.iter().map(|&n| (smallest, n)).collect();
    grid.extend(sizes.iter().skip(1).map(|&n| (n, largest)));
    grid
}

/// A plan for one HTTP scenario.
fn plan(args: &RunArgs, seconds: f64, max_requests: u64) -> Plan {
    Plan {
        connections: args.connections,
        duration: Duration::from_secs_f64(seconds),
        max_requests,
    }
}

/// Scenarios 1–4, with the limit measured first.
async fn http_scenarios(args: &RunArgs, bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    let wants = |s: Scenario| args.only.contains(&s);
    let measured = plan(args, args.duration, args.max_requests);
    let warmup = plan(args, args.warmup, args.max_requests);
    let work = &args.work_dir;
    let fresh_dir = |name: &str| -> anyhow::Result<PathBuf> {
        let dir = work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(dir)
    };
    let level = &args.log_level;

    // Broker A: the catalog, then last_operation over in-flight provisions.
    let config = http::broker_config(Backend::Embedded, None)?;
    let broker = Server::broker(bin, &config, work, &fresh_dir("data-a")?, level, "broker-a")?;
    let headers = OsbHeaders::new(broker.addr);

    // The limit: the same catalog bytes from a minimal hyper server.
    let catalog = http::fetch_catalog(broker.addr).await?;
    let body_file = work.join("catalog.json");
    std::fs::write(&body_file, &catalog)?;
    let limit = Server::limit(&body_file)?;
    eprintln!("== limit: minimal hyper server, same catalog bytes");
    let limit_workload: Arc<dyn Workload> = Arc::new(http::Catalog {
        headers: OsbHeaders::new(limit.addr),
    });
    report.limit = Some(
        http::measure(
            "0. limit: hyper, catalog bytes",
            &limit,
            measured,
            Some((warmup, Arc::clone(&limit_workload))),
            limit_workload,
        )
        .await?,
    );
    limit.stop()?;

    if wants(Scenario::Catalog) {
        eprintln!("== 1. catalog");
        let workload: Arc<dyn Workload> = Arc::new(http::Catalog {
            headers: headers.clone(),
        });
        let result = http::measure(
            "1. catalog",
            &broker,
            measured,
            Some((warmup, Arc::clone(&workload))),
            workload,
        )
        .await?;
        report.http.push(result);
    }
    if wants(Scenario::LastOperation) {
        eprintln!(
            "== 2b. last_operation: provisioning {} instances",
            args.in_flight
        );
        let seeding = Arc::new(http::Provision::new(headers.clone(), "inflight", true));
        let seed_plan = Plan {
            connections: args.connections,
            duration: Duration::from_secs(300),
            max_requests: args.in_flight as u64,
        };
        let seeded = load::run(broker.addr, seed_plan, seeding.clone()).await;
        let operations = seeding.accepted();
        anyhow::ensure!(
            !operations.is_empty(),
            "no provision was accepted: {:?}",
            seeded.first_error
        );
        eprintln!("== 2b. last_operation on {} in flight", operations.len());
        let workload: Arc<dyn Workload> =
            Arc::new(http::LastOperation::new(headers.clone(), &operations));
        let mut result = http::measure(
            &format!(
                "2b. last_operation ({} in flight, just accepted: the engine polls each every 0.5–5 s)",
                operations.len()
            ),
            &broker,
            measured,
            Some((warmup, Arc::clone(&workload))),
            workload,
        )
        .await?;
        // What the engine costs on its own meanwhile, polling the in-flight operations:
        // part of every request's CPU figure above.
        let idle = http::idle_cpu(&broker, Duration::from_secs_f64(args.idle_window)).await?;
        result.note.push_str(&format!(
            "; idle (engine alone): {:.0}% of a core",
            idle * 100.0
        ));
        report.http.push(result);
    }
    broker.stop()?;

    if wants(Scenario::LastOperation) {
        // The same polls on operations that have run for minutes: the engine polls each at
        // its longest interval (30 s), as it does for most of an operation's life.
        let in_flight = args.in_flight;
        eprintln!("== 2a. last_operation: {in_flight} operations in flight for minutes");
        let dir = fresh_dir("data-aged")?;
        startup::seed(&dir, in_flight, in_flight, 12).await?;
        let broker = Server::broker(bin, &config, work, &dir, level, "broker-aged")?;
        // At start every operation is due once (resume); let that pass first.
        http::wait_for_jobs(&broker, in_flight as u64, Duration::from_secs(120)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let operations: Vec<(String, String)> = (0..in_flight).map(records::ids).collect();
        let workload: Arc<dyn Workload> = Arc::new(http::LastOperation::new(
            OsbHeaders::new(broker.addr),
            &operations,
        ));
        let mut result = http::measure(
            &format!(
                "2a. last_operation ({in_flight} in flight for minutes: the engine polls each every 30 s)"
            ),
            &broker,
            measured,
            Some((warmup, Arc::clone(&workload))),
            workload,
        )
        .await?;
        let idle = http::idle_cpu(&broker, Duration::from_secs_f64(args.idle_window)).await?;
        result.note.push_str(&format!(
            "; idle (engine alone): {:.0}% of a core",
            idle * 100.0
        ));
        report.http.push(result);
        broker.stop()?;
    }

    if wants(Scenario::Provision) {
        for &backend in &args.stores {
            let name = format!("3. async provision ({})", backend.name());
            eprintln!("== {name}");
            // The etcd store needs an etcd: the given one, or a private one for this scenario
            // (kept until the broker has stopped).
            let mut private_etcd = None;
            let endpoint = match (backend, &args.etcd_endpoint) {
                (Backend::Etcd, None) => match process::Etcd::start(work).await {
                    Ok(etcd) => {
                        let endpoint = etcd.endpoint.clone();
                        private_etcd = Some(etcd);
                        Some(endpoint)
                    }
                    Err(err) => {
                        report.skipped.push((name, format!("{err:#}")));
                        continue;
                    }
                },
                (_, endpoint) => endpoint.clone(),
            };
            let prefix = http::etcd_prefix("provision");
            let config = http::broker_config(backend, endpoint.as_deref().map(|e| (e, &*prefix)));
            let started = config.and_then(|config| {
                let dir = fresh_dir(&format!("data-provision-{}", backend.name()))?;
                Server::broker(
                    bin,
                    &config,
                    work,
                    &dir,
                    level,
                    &format!("broker-provision-{}", backend.name()),
                )
            });
            let broker = match started {
                Ok(broker) => broker,
                Err(err) if backend == Backend::Etcd => {
                    report.skipped.push((name, format!("{err:#}")));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let headers = OsbHeaders::new(broker.addr);
            let result = http::measure_with(
                &name,
                &broker,
                private_etcd.as_ref().map(|etcd| ("etcd", etcd.pid())),
                measured,
                Some((
                    warmup,
                    Arc::new(http::Provision::new(headers.clone(), "warmup", false)),
                )),
                Arc::new(http::Provision::new(headers, "measured", false)),
            )
            .await?;
            report.http.push(result);
            broker.stop()?;
            if let Some(endpoint) = endpoint.as_deref().filter(|_| backend == Backend::Etcd) {
                // The ceiling for this figure: raw puts to the same etcd, right after.
                for (concurrency, conditioned) in [(1, false), (64, false), (64, true)] {
                    eprintln!("== etcd alone: {concurrency} put(s) in flight");
                    let seconds = Duration::from_secs(3);
                    let raw = storebench::etcd_puts(endpoint, concurrency, conditioned, seconds);
                    report.etcd_puts.push(raw.await?);
                }
            }
            drop(private_etcd);
        }
    }

    if wants(Scenario::Proxy) {
        let results = proxy::run(
            bin,
            work,
            level,
            (measured, warmup),
            args.in_flight.min(2_000),
        )
        .await?;
        report.http.extend(results);
    }

    if wants(Scenario::Lifecycle) {
        eprintln!("== 4. sync lifecycle");
        let broker = Server::broker(
            bin,
            &config,
            work,
            &fresh_dir("data-lifecycle")?,
            level,
            "broker-lifecycle",
        )?;
        let headers = OsbHeaders::new(broker.addr);
        let result = http::measure(
            "4. sync lifecycle (4 requests per loop)",
            &broker,
            measured,
            Some((
                warmup,
                Arc::new(http::Lifecycle::new(headers.clone(), "warmup")),
            )),
            Arc::new(http::Lifecycle::new(headers, "measured")),
        )
        .await?;
        report.http.push(result);
        broker.stop()?;
    }
    // The brokers' stores (hundreds of MiB after the provision scenarios); their logs and
    // configurations stay for a look after the run.
    for entry in std::fs::read_dir(work)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("data-") {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
