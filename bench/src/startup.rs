//! Scenarios 6 and 7: start-up time and memory with many stored instances.
//!
//! The embedded store is filled in this process through the library (the same records the
//! broker writes for a finished async sandbox provision: the instance and its operation
//! record, kept for `operation_retention_secs`), closed, and then the real broker starts on
//! it. Start-up is the time from spawning the process to its `listening` line, so it covers
//! everything: opening the database, reading and decoding every record, indexing, binding.
//! Memory is the broker's RSS once it listens; the cost per instance is the growth over a
//! broker on an empty store, divided by the number of instances.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skybroker_storage::{EmbeddedStore, StateMap, Store};

use crate::http::{broker_config, Backend};
use crate::process::Server;
use crate::records;

/// One start-up's figures.
#[derive(Debug, Clone)]
pub struct StartupResult {
    /// Instances stored (each with its operation record).
    pub instances: usize,
    /// From spawn to listening.
    pub started_in: Duration,
    /// RSS once listening (bytes).
    pub rss: u64,
    /// Peak RSS during start-up (bytes).
    pub peak_rss: u64,
    /// RSS growth per instance over the empty store (bytes), for non-empty stores.
    pub rss_per_instance: Option<f64>,
}

/// Fills a fresh embedded store in `data_dir` with `instances` provisions, the first
/// `in_flight` of them still running after `attempts` plugin calls, the others finished.
pub async fn seed(
    data_dir: &Path,
    instances: usize,
    in_flight: usize,
    attempts: u32,
) -> anyhow::Result<()> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)?;
    }
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(data_dir)?);
    let state = StateMap::open(store).await?;
    records::fill(&state, instances, in_flight, attempts).await?;
    // Dropping the map closes the database, so the broker can open it.
    Ok(())
}

/// Starts the broker on stores of every size in `sizes` (an empty one first, for the
/// baseline) and measures each start.
pub async fn run(
    bin: &Path,
    work_dir: &Path,
    sizes: &[usize],
    log_level: &str,
) -> anyhow::Result<Vec<StartupResult>> {
    let config = broker_config(Backend::Embedded, None)?;
    let mut results: Vec<StartupResult> = Vec::new();
    let mut empty_rss = None;
    for &instances in std::iter::once(&0).chain(sizes) {
        let data_dir = work_dir.join(format!("startup-{instances}"));
        eprintln!("  seeding {instances} instances");
        seed(&data_dir, instances, 0, 1).await?;
        let name = format!("startup-{instances}");
        let server = Server::broker(bin, &config, work_dir, &data_dir, log_level, &name)?;
        // Let the start-up settle (the allocator returns what loading freed).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss, peak_rss) = server.memory()?;
        let started_in = server.started_in;
        server.stop()?;
        let base: u64 = *empty_rss.get_or_insert(rss);
        results.push(StartupResult {
            instances,
            started_in,
            rss,
            peak_rss,
            rss_per_instance: (instances > 0)
                .then(|| (rss as f64 - base as f64) / instances as f64),
        });
        std::fs::remove_dir_all(&data_dir)?;
    }
    Ok(results)
}
