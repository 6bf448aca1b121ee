//! Scenarios 6 and 7: start-up time and memory with many stored instances.
//!
//! The store is filled in this process through the library (the same records the broker
//! writes for a finished async sandbox provision: the instance and its operation record,
//! kept for `operation_retention_secs`), and then the real broker starts on it. Start-up is
//! the time from spawning the process to its `listening` line, so it covers everything:
//! opening the store, reading and decoding every record (from etcd: paged range reads at one
//! revision), indexing, binding. Memory is the broker's RSS once it listens; the cost per
//! instance is the growth over a broker on an empty store, divided by the number of
//! instances.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skybroker_storage::{EmbeddedStore, EtcdOptions, EtcdStore, StateMap, Store};

use crate::http::{broker_config, etcd_prefix, Backend};
use crate::process::Server;
use crate::records;

/// One start-up's figures.
#[derive(Debug, Clone)]
pub struct StartupResult {
    /// The store the broker loaded from.
    pub store: &'static str,
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
    records::fill(&state, instances, in_flight, attempts, 1000).await?;
    // Dropping the map closes the database, so the broker can open it.
    Ok(())
}

/// Fills `prefix` of the etcd at `endpoint` with `instances` finished provisions, in
/// commits of 60 instances (etcd allows 128 keys in one transaction).
async fn seed_etcd(endpoint: &str, prefix: &str, instances: usize) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdOptions {
            endpoints: vec![endpoint.to_owned()],
            prefix: prefix.to_owned(),
            user: None,
            ca_pem: None,
            identity_pem: None,
            lease_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        })
        .await?,
    );
    let state = StateMap::open(store).await?;
    records::fill(&state, instances, 0, 1, 60).await?;
    Ok(())
}

/// Removes everything under `prefix` of the etcd at `endpoint`.
async fn clear_etcd(endpoint: &str, prefix: &str) -> anyhow::Result<()> {
    let mut client = etcd_client::Client::connect([endpoint], None).await?;
    client
        .delete(
            prefix,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await?;
    Ok(())
}

/// Starts the broker on stores of every size in `sizes` (an empty one first, for the
/// baseline) and measures each start: on the embedded store, then, given an etcd endpoint,
/// on etcd.
pub async fn run(
    bin: &Path,
    work_dir: &Path,
    sizes: &[usize],
    log_level: &str,
    etcd: Option<&str>,
) -> anyhow::Result<Vec<StartupResult>> {
    let mut results: Vec<StartupResult> = Vec::new();
    let backends = std::iter::once(Backend::Embedded).chain(etcd.map(|_| Backend::Etcd));
    for backend in backends {
        let mut empty_rss = None;
        for &instances in std::iter::once(&0).chain(sizes) {
            let data_dir = work_dir.join(format!("startup-{instances}"));
            if data_dir.exists() {
                std::fs::remove_dir_all(&data_dir)?;
            }
            let prefix = etcd_prefix(&format!("startup-{instances}"));
            eprintln!("  seeding {instances} instances ({})", backend.name());
            let config = match (backend, etcd) {
                (Backend::Etcd, Some(endpoint)) => {
                    seed_etcd(endpoint, &prefix, instances).await?;
                    broker_config(backend, Some((endpoint, &prefix)))?
                }
                _ => {
                    seed(&data_dir, instances, 0, 1).await?;
                    broker_config(Backend::Embedded, None)?
                }
            };
            let name = format!("startup-{}-{instances}", backend.name());
            let server = Server::broker(bin, &config, work_dir, &data_dir, log_level, &name)?;
            // Let the start-up settle (the allocator returns what loading freed).
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (rss, peak_rss) = server.memory()?;
            let started_in = server.started_in;
            server.stop()?;
            let base: u64 = *empty_rss.get_or_insert(rss);
            results.push(StartupResult {
                store: backend.name(),
                instances,
                started_in,
                rss,
                peak_rss,
                rss_per_instance: (instances > 0)
                    .then(|| (rss as f64 - base as f64) / instances as f64),
            });
            if data_dir.exists() {
                std::fs::remove_dir_all(&data_dir)?;
            }
            if let (Backend::Etcd, Some(endpoint)) = (backend, etcd) {
                clear_etcd(endpoint, &prefix).await?;
            }
        }
    }
    Ok(results)
}
