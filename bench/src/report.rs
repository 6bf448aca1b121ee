//! The figures as Markdown tables (readable in a terminal, pasted as-is into
//! `bench/README.md`), and the issue's targets checked against them.

use std::fmt::Write as _;
use std::time::Duration;

use crate::dashboard::DashboardResult;
use crate::engine::EngineResult;
use crate::http::HttpResult;
use crate::startup::StartupResult;
use crate::storebench::{EtcdPutResult, StandbyResult, StoreResult};

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// The machine, once.
    pub machine: String,
    /// Load average before the run.
    pub load_before: String,
    /// Load average after the run.
    pub load_after: String,
    /// The broker's log level during the HTTP scenarios.
    pub log_level: String,
    /// The hyper limit (catalog bytes, same generator).
    pub limit: Option<HttpResult>,
    /// Scenarios 1–4.
    pub http: Vec<HttpResult>,
    /// Scenarios that could not run, and why.
    pub skipped: Vec<(String, String)>,
    /// Scenario 5.
    pub engine: Vec<EngineResult>,
    /// Scenarios 6 and 7.
    pub startup: Vec<StartupResult>,
    /// The embedded store alone.
    pub store: Vec<StoreResult>,
    /// The dashboard's pages.
    pub dashboard: Vec<DashboardResult>,
    /// Raw puts to the etcd of the provision scenario.
    pub etcd_puts: Vec<EtcdPutResult>,
    /// A standby replica's claims on etcd.
    pub standby: Option<StandbyResult>,
    /// Throughput against concurrency.
    pub sweep: Vec<crate::sweep::SweepPoint>,
    /// Total run time.
    pub elapsed: Duration,
}

/// `1.23 ms`, `456 µs`, `2.1 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `12.3 MiB`.
pub fn bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl Report {
    /// The whole report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Machine: {}", self.machine);
        let _ = writeln!(
            out,
            "Load average (1/5/15 min): {} before, {} after; run took {:.0} s; broker RUST_LOG={}",
            self.load_before,
            self.load_after,
            self.elapsed.as_secs_f64(),
            self.log_level
        );
        if !self.http.is_empty() || self.limit.is_some() {
            out.push_str(&self.http_table());
        }
        for (name, why) in &self.skipped {
            let _ = writeln!(out, "\nSkipped: {name}: {why}");
        }
        if !self.engine.is_empty() {
            out.push_str(&self.engine_table());
        }
        if !self.startup.is_empty() {
            out.push_str(&self.startup_table());
        }
        if !self.store.is_empty() {
            out.push_str(&self.store_table());
        }
        if !self.dashboard.is_empty() {
            out.push_str(&self.dashboard_table());
        }
        if !self.etcd_puts.is_empty() {
            out.push_str(&self.etcd_table());
        }
        if let Some(standby) = &self.standby {
            out.push_str(&standby_table(standby));
        }
        if !self.sweep.is_empty() {
            out.push_str(&self.sweep_table());
        }
        out.push_str(&self.targets());
        out
    }

    fn sweep_table(&self) -> String {
        let mut out = String::from(
            "\n### Throughput against concurrency\n\n\
             | series | connections | req/s | vs limit at the same concurrency | p99 |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for point in &self.sweep {
            let limit = self
                .sweep
                .iter()
                .find(|p| p.connections == point.connections && p.series.starts_with("limit"))
                .map(|p| p.per_second);
            let ratio = limit.map_or("–".to_owned(), |l| {
                format!("{:.0}%", 100.0 * point.per_second / l.max(1e-9))
            });
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} |",
                point.series,
                point.connections,
                point.per_second,
                ratio,
                duration(point.p99)
            );
        }
        out
    }

    fn limit_rps(&self) -> Option<f64> {
        self.limit.as_ref().map(|l| l.measured.per_second())
    }

    fn http_table(&self) -> String {
        let mut out = String::from(
            "\n### HTTP (closed loop, keep-alive connections)\n\n\
             | scenario | req/s | vs limit | p50 | p99 | max | errors | server CPU/req | server CPU | peak RSS | notes |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let limit = self.limit_rps();
        for result in self.limit.iter().chain(&self.http) {
            let m = &result.measured;
            let ratio = limit.map_or("–".to_owned(), |l| {
                format!("{:.0}%", 100.0 * m.per_second() / l)
            });
            let cpu_share = result.cpu.as_secs_f64() / m.elapsed.as_secs_f64().max(1e-9);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.2} s ({:.0}% of a core) | {} | {} |",
                result.name,
                m.per_second(),
                ratio,
                duration(m.quantile(0.5)),
                duration(m.quantile(0.99)),
                duration(m.max()),
                m.errors,
                duration(result.cpu_per_request()),
                result.cpu.as_secs_f64(),
                cpu_share * 100.0,
                bytes(result.peak_rss),
                result.note,
            );
        }
        out
    }

    fn engine_table(&self) -> String {
        let mut out = String::from(
            "\n### Engine scan passes (scanner thread CPU, in process)\n\n\
             | in flight | instances | burst pass CPU | burst pass wall | burst jobs | CPU per burst job | steady passes | steady pass CPU mean | steady pass CPU max | steady pass wall mean | plugin calls/s |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for e in &self.engine {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                e.in_flight,
                e.instances,
                duration(e.burst_cpu),
                duration(e.burst_wall),
                e.burst_jobs,
                duration(e.burst_cpu / e.burst_jobs.max(1) as u32),
                e.passes,
                duration(e.steady_cpu_mean),
                duration(e.steady_cpu_max),
                duration(e.steady_wall_mean),
                e.jobs_per_second,
            );
        }
        out
    }

    fn startup_table(&self) -> String {
        let mut out = String::from(
            "\n### Start-up and memory (each instance with its operation record)\n\n\
             | store | instances | start-up (spawn → listening) | RSS after start | peak RSS during start | RSS per instance |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for s in &self.startup {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                s.store,
                s.instances,
                duration(s.started_in),
                bytes(s.rss),
                bytes(s.peak_rss),
                s.rss_per_instance
                    .map_or("–".to_owned(), |b| format!("{b:.0} B")),
            );
        }
        out
    }

    fn dashboard_table(&self) -> String {
        let mut out = String::from(
            "\n### Operator dashboard (a new connection per page, basic auth, 10 loads)\n\n\
             | instances | page | best | median | worst | size |\n\
             |---:|---|---:|---:|---:|---:|\n",
        );
        for d in &self.dashboard {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0} KiB |",
                d.instances,
                d.page,
                duration(d.best),
                duration(d.median),
                duration(d.worst),
                d.bytes as f64 / 1024.0,
            );
        }
        out
    }

    fn store_table(&self) -> String {
        let mut out = String::from(
            "\n### Embedded store alone (durable commits of 2 new keys, ~1 KiB)\n\n\
             | concurrent committers | commits | commits/s | p50 | p99 | commits per transaction (fsync) |\n\
             |---:|---:|---:|---:|---:|---:|\n",
        );
        for s in &self.store {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {:.1} |",
                s.committers,
                s.commits,
                s.per_second,
                duration(s.p50),
                duration(s.p99),
                s.per_transaction,
            );
        }
        out
    }

    fn etcd_table(&self) -> String {
        let mut out = String::from(
            "\n### etcd alone (raw puts of ~1 KiB through etcd-client, same etcd as 3. on etcd)\n\n\
             | puts in flight | kind | puts | puts/s | p50 | p99 |\n\
             |---:|---|---:|---:|---:|---:|\n",
        );
        for e in &self.etcd_puts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} |",
                e.concurrency,
                if e.conditioned {
                    "txn: create_revision = 0, put"
                } else {
                    "put"
                },
                e.puts,
                e.per_second,
                duration(e.p50),
                duration(e.p99),
            );
        }
        out
    }

    /// The issue's targets, each with the figure it is judged on.
    fn targets(&self) -> String {
        let mut out =
            String::from("\n### Targets\n\n| target | measured | met |\n|---|---:|:---:|\n");
        let mut line = |target: &str, measured: String, met: bool| {
            let _ = writeln!(
                out,
                "| {target} | {measured} | {} |",
                if met { "yes" } else { "**no**" }
            );
        };
        for page in self.dashboard.iter().filter(|d| d.instances >= 100_000) {
            line(
                &format!(
                    "dashboard < 1 s at {} instances: {}",
                    page.instances, page.page
                ),
                format!("{} (worst)", duration(page.worst)),
                page.worst < Duration::from_secs(1),
            );
        }
        let limit = self.limit_rps();
        let find = |prefix: &str| self.http.iter().find(|r| r.name.starts_with(prefix));
        // Issue #5's goals, with issue #20's beside them where it raised one.
        if let (Some(limit), Some(catalog)) = (limit, find("1. catalog")) {
            let percent = 100.0 * catalog.measured.per_second() / limit;
            for (goal, issue) in [(70.0, ""), (90.0, " (#20)")] {
                line(
                    &format!("catalog ≥ {goal}% of the hyper limit{issue}"),
                    format!("{percent:.0}%"),
                    percent >= goal,
                );
            }
        }
        for (prefix, case) in [
            ("2a. last_operation", "in flight for minutes"),
            ("2b. last_operation", "just accepted"),
        ] {
            if let (Some(limit), Some(polls)) = (limit, find(prefix)) {
                let share = polls.measured.per_second() / limit;
                line(
                    &format!("last_operation ≥ 60% of the hyper limit ({case})"),
                    format!("{:.0}%", share * 100.0),
                    share >= 0.60,
                );
            }
        }
        if let Some(provision) = find("3. async provision (embedded") {
            let rps = provision.measured.per_second();
            for (goal, shown, issue) in [(10_000.0, "10,000", ""), (20_000.0, "20,000", " (#20)")] {
                line(
                    &format!("async provisions, embedded store ≥ {shown}/s{issue}"),
                    format!("{rps:.0}/s"),
                    rps >= goal,
                );
            }
        }
        let mut scan_pass = |target: &str, e: &EngineResult, goal: Duration| {
            let worst = e.burst_cpu.max(e.steady_cpu_max);
            let measured = format!(
                "burst {}, steady max {}",
                duration(e.burst_cpu),
                duration(e.steady_cpu_max)
            );
            line(target, measured, worst < goal);
        };
        if let Some(e) =
            (self.engine.iter()).find(|e| e.in_flight == 10_000 && e.instances == 100_000)
        {
            let target = "scan pass with 10,000 in flight (100,000 instances) < 20 ms CPU";
            scan_pass(target, e, Duration::from_millis(20));
        }
        if let Some(e) =
            (self.engine.iter()).find(|e| e.in_flight == 10_000 && e.instances >= 1_000_000)
        {
            let target = format!(
                "scan pass with 10,000 due at {} instances < 10 ms CPU (#20)",
                e.instances
            );
            scan_pass(&target, e, Duration::from_millis(10));
        }
        let embedded = |s: &&StartupResult| s.store == "embedded";
        if let Some(s) = self
            .startup
            .iter()
            .filter(embedded)
            .find(|s| s.instances == 100_000)
        {
            line(
                "start-up with 100,000 instances < 2 s",
                duration(s.started_in),
                s.started_in < Duration::from_secs(2),
            );
        }
        let per_instance = self.startup.iter().filter(embedded).rev();
        if let Some(per) = per_instance.filter_map(|s| s.rss_per_instance).next() {
            line(
                "RSS per stored instance < 1 KiB",
                format!("{per:.0} B"),
                per < 1024.0,
            );
        }
        if let Some(s) = (self.startup.iter().filter(embedded)).find(|s| s.instances >= 1_000_000) {
            line(
                &format!("start-up with {} instances < 5 s (#20)", s.instances),
                duration(s.started_in),
                s.started_in < Duration::from_secs(5),
            );
            line(
                &format!("RSS with {} instances < 1 GiB (#20)", s.instances),
                format!("{:.0} MiB", s.rss as f64 / (1024.0 * 1024.0)),
                s.rss < 1 << 30,
            );
        }
        out
    }
}

/// A standby replica's passes over the claims another replica holds.
fn standby_table(standby: &StandbyResult) -> String {
    let mut out = format!(
        "\n### etcd: a standby replica asks for {} claims another replica holds\n\n\
         | pass | time | per claim |\n\
         |---:|---:|---:|\n",
        standby.operations
    );
    for (n, pass) in standby.passes.iter().enumerate() {
        let per_claim = pass.as_secs_f64() * 1e6 / standby.operations.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {per_claim:.1} µs |",
            n + 1,
            duration(*pass)
        );
    }
    out
}
