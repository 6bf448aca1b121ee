//! What the kernel knows about a process: CPU time, resident memory, the machine itself.
//!
//! Read from `/proc` rather than measured inside the broker, so the broker runs as shipped
//! (the real binary, no instrumentation) and the figures include everything it does: the
//! runtime, the workers, the store's threads, the allocator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// Kernel clock ticks per second for `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux
/// architecture this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of a process, all its threads included (also the threads that
/// already exited).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let mut fields = rest.split_whitespace();
    // After ')' come `state` (field 3) … `utime` (field 14) and `stime` (field 15).
    let utime: u64 = fields.nth(11).context("no utime")?.parse()?;
    let stime: u64 = fields.next().context("no stime")?.parse()?;
    Ok(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// Resident memory of a process: `(VmRSS, VmHWM)` in bytes, now and at its peak.
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed status line")?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak resident memory (`VmHWM`) of a process to its current RSS, so the next
/// reading is the peak of what happened since. Linux ≥ 4.0; a failure leaves the peak since
/// start, which is reported as such.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The `/proc` directory of the calling thread (`/proc/<pid>/task/<tid>`), for reading its
/// CPU time from another thread.
pub fn current_thread_dir() -> anyhow::Result<PathBuf> {
    // The link reads `<pid>/task/<tid>`, relative to /proc.
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    Ok(Path::new("/proc").join(link))
}

/// CPU time of one thread in nanoseconds (`schedstat`: the scheduler's exact accounting,
/// where `stat` only has 10 ms ticks).
pub fn thread_cpu(thread_dir: &Path) -> anyhow::Result<Duration> {
    let schedstat = std::fs::read_to_string(thread_dir.join("schedstat"))
        .with_context(|| format!("reading {}/schedstat", thread_dir.display()))?;
    let nanos: u64 = schedstat
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()?;
    Ok(Duration::from_nanos(nanos))
}

/// The share of the machine's CPU time (all cores) that was busy over `window`, from
/// `/proc/stat`; `None` where it cannot be read.
fn busy_share(window: Duration) -> Option<f64> {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some((ticks.iter().sum(), idle))
    };
    let (total_before, idle_before) = sample()?;
    std::thread::sleep(window);
    let (total_after, idle_after) = sample()?;
    let total = total_after.saturating_sub(total_before);
    let idle = idle_after.saturating_sub(idle_before);
    (total > 0).then(|| total.saturating_sub(idle) as f64 / total as f64)
}

/// Busy share of the machine under which it counts as quiet.
const QUIET: f64 = 0.10;

/// Waits, at most `limit`, until the machine is quiet (under 10% of its CPU time busy over a
/// quarter of a second), so that a scenario does not carry the tail of the one before it (a
/// store still compacting, a stopped broker's last work); says so on stderr when it is not.
/// On two cores a busy neighbour also slows the measured thread's own CPU time (the caches
/// and the memory bus are shared), so this matters for CPU figures too.
pub fn settle(limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let Some(busy) = busy_share(Duration::from_millis(250)) else {
            return;
        };
        if busy < QUIET {
            return;
        }
        if std::time::Instant::now() >= deadline {
            eprintln!(
                "  the machine did not settle: {:.0}% of its CPU time busy",
                busy * 100.0
            );
            return;
        }
    }
}

/// The load average line (`1 min, 5 min, 15 min`), printed with every set of figures: the
/// machine is shared, and figures taken under load are not comparable.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One line describing the machine: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{model}, {cores} cores, {memory_gib:.0} GiB RAM, Linux {kernel}")
}
