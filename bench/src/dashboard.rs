//! The operator dashboard with many instances (issue #19: the page loads in under a second
//! at 100,000 instances): the real binary on a seeded embedded store, each page fetched as
//! a browser would (basic auth, a new connection), timed end to end.
//!
//! Why these pages: the first page is what an operator opens; the live part is what the
//! script fetches every two seconds; a deep page (`after=` an id in the middle) shows that
//! paging does not walk from the start; filters that match nothing and that match only the
//! in-flight instances walk the whole map once, the worst the page does.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http::{broker_config, Backend};
use crate::load::{one, OsbHeaders};
use crate::process::Server;
use crate::records;

/// Requests per page, after one unmeasured.
const SAMPLES: usize = 10;

/// One page's figures.
#[derive(Debug, Clone)]
pub struct DashboardResult {
    /// Instances stored.
    pub instances: usize,
    /// Which page.
    pub page: &'static str,
    /// The fastest load.
    pub best: Duration,
    /// The median load.
    pub median: Duration,
    /// The slowest load.
    pub worst: Duration,
    /// The page's size in bytes.
    pub bytes: usize,
}

/// Seeds `instances` (the first `in_flight` still provisioning), starts the broker and
/// times each page.
pub async fn run(
    bin: &Path,
    work_dir: &Path,
    instances: usize,
    in_flight: usize,
    log_level: &str,
) -> anyhow::Result<Vec<DashboardResult>> {
    let data_dir = work_dir.join(format!("dashboard-{instances}"));
    eprintln!("  seeding {instances} instances, {in_flight} in flight");
    crate::startup::seed(&data_dir, instances, in_flight, 12).await?;
    let config = broker_config(Backend::Embedded, None)?;
    let name = format!("dashboard-{instances}");
    let server = Server::broker(bin, &config, work_dir, &data_dir, log_level, &name)?;
    let addr = server
        .metrics_addr
        .ok_or_else(|| anyhow::anyhow!("the broker has no metrics listener"))?;
    let headers = OsbHeaders::new(addr);
    let (middle, _) = records::ids(instances / 2);
    let pages: [(&'static str, String); 5] = [
        ("first page (/dashboard)", "/dashboard".to_owned()),
        ("live refresh", "/dashboard/live".to_owned()),
        (
            "a page in the middle",
            format!("/dashboard/live?after={middle}"),
        ),
        (
            "filter matching nothing",
            "/dashboard/live?q=no-such-instance".to_owned(),
        ),
        (
            "filter: state provisioning",
            "/dashboard/live?state=provisioning".to_owned(),
        ),
    ];
    let mut results = Vec::new();
    for (page, path) in pages {
        let mut times = Vec::with_capacity(SAMPLES);
        let mut bytes = 0;
        for sample in 0..=SAMPLES {
            let started = Instant::now();
            let (status, body) = one(addr, headers.request(Method::GET, &path, None)).await?;
            let took = started.elapsed();
            anyhow::ensure!(status.is_success(), "GET {path}: {status}");
            bytes = body.len();
            if sample > 0 {
                times.push(took);
            }
        }
        times.sort();
        let result = DashboardResult {
            instances,
            page,
            best: times[0],
            median: times[times.len() / 2],
            worst: times[times.len() - 1],
            bytes,
        };
        eprintln!(
            "  {page}: median {:?}, worst {:?}, {} bytes",
            result.median, result.worst, result.bytes
        );
        results.push(result);
    }
    server.stop()?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(results)
}
