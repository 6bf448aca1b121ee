//! The stores alone, in this process.
//!
//! - The embedded store: durable commits per second with one committer and with many
//!   concurrent ones. It isolates what group commit buys: with one committer every commit
//!   pays its own fsync; with many, concurrent commits share one write transaction and one
//!   fsync, each still acknowledged only once it is durable.
//! - etcd: raw puts per second straight through `etcd-client` (no broker, no transaction,
//!   no condition), sequential and concurrent, to the etcd the broker's provision scenario
//!   uses in the same run: the ceiling the broker's etcd figure is read against.
//! - etcd claims from a replica standing by: one replica holds many operations' claims and
//!   another asks for each, as its scanner does once a second to take over when the owner
//!   dies. A pass costs that scanner this long (each claim under its instance's lock).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skybroker_storage::{Claims, EmbeddedStore, EtcdOptions, EtcdStore, Expect, Store, Write};

/// One configuration's figures.
#[derive(Debug, Clone)]
pub struct StoreResult {
    /// Concurrent committers.
    pub committers: usize,
    /// Acknowledged commits.
    pub commits: u64,
    /// Commits per second.
    pub per_second: f64,
    /// Median commit latency.
    pub p50: Duration,
    /// 99th percentile commit latency.
    pub p99: Duration,
    /// Commits that shared one write transaction (one fsync), on average.
    pub per_transaction: f64,
}

/// A commit like an async provision's admission: the instance and its operation, both new.
fn admission(committer: usize, seq: u64) -> Vec<Write> {
    let id = format!("{committer}-{seq}");
    vec![
        Write {
            key: format!("instances/store-bench-{id}"),
            value: Some(vec![b'i'; 600]),
            expect: Expect::Absent,
        },
        Write {
            key: format!("operations/provision-store-bench-{id}"),
            value: Some(vec![b'o'; 450]),
            expect: Expect::Absent,
        },
    ]
}

/// Commits from `committers` concurrent tasks for `duration` (at most `max_commits` in
/// all) on a fresh store in `dir`.
pub async fn run(
    dir: &Path,
    committers: usize,
    duration: Duration,
    max_commits: u64,
) -> anyhow::Result<StoreResult> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let store = Arc::new(EmbeddedStore::open(dir)?);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let share = (max_commits / committers as u64).max(1);
    let tasks: Vec<_> = (0..committers)
        .map(|committer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for seq in 0..share {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    store.commit(admission(committer, seq)).await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, skybroker_storage::StoreError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let stats = store.group_commit_stats();
    drop(store);
    std::fs::remove_dir_all(dir)?;
    latencies.sort_unstable();
    Ok(StoreResult {
        committers,
        commits: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        per_transaction: stats.commits as f64 / stats.transactions.max(1) as f64,
    })
}

/// Raw puts to one etcd, for one level of concurrency.
#[derive(Debug, Clone)]
pub struct EtcdPutResult {
    /// Puts in flight at once (1: sequential, each waits for the previous).
    pub concurrency: usize,
    /// Each put a transaction conditioned on the key being new (as the broker's commits
    /// are), rather than a plain put.
    pub conditioned: bool,
    /// Acknowledged puts.
    pub puts: u64,
    /// Puts per second.
    pub per_second: f64,
    /// Median put latency.
    pub p50: Duration,
    /// 99th percentile put latency.
    pub p99: Duration,
}

/// Puts ~1 KiB values (an admission's two records together) under a private prefix of
/// `endpoint` from `concurrency` tasks for `duration`, then deletes the prefix.
/// With `conditioned`, each put is a transaction that compares the key's create revision
/// with 0 first, the shape of the broker's admissions.
pub async fn etcd_puts(
    endpoint: &str,
    concurrency: usize,
    conditioned: bool,
    duration: Duration,
) -> anyhow::Result<EtcdPutResult> {
    let client = etcd_client::Client::connect([endpoint], None).await?;
    let prefix = format!(
        "/skybroker-bench-raw/{}/{concurrency}-{conditioned}/",
        std::process::id()
    );
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let mut kv = client.kv_client();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let key = format!("{prefix}{task}-{seq}");
                    if conditioned {
                        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                        let txn = Txn::new()
                            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                            .and_then([TxnOp::put(key, vec![b'p'; 1050], None)]);
                        kv.txn(txn).await?;
                    } else {
                        kv.put(key, vec![b'p'; 1050], None).await?;
                    }
                    latencies.push(sent.elapsed());
                    seq += 1;
                }
                Ok::<_, etcd_client::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    client
        .kv_client()
        .delete(
            prefix,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await?;
    latencies.sort_unstable();
    let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
    Ok(EtcdPutResult {
        concurrency,
        conditioned,
        puts: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

/// A standby replica's passes over operations another replica drives.
#[derive(Debug, Clone)]
pub struct StandbyResult {
    /// Operations the owner holds.
    pub operations: usize,
    /// Each pass asking for every one of them (a second apart).
    pub passes: Vec<Duration>,
}

/// One replica takes the claims of `operations` operations (in commits, as admissions do);
/// a second asks for each of them in three passes a second apart, every claim refused.
pub async fn standby_claims(endpoint: &str, operations: usize) -> anyhow::Result<StandbyResult> {
    let prefix = format!("/skybroker-bench-standby/{}/", std::process::id());
    let connect = || {
        EtcdStore::connect(EtcdOptions {
            endpoints: vec![endpoint.to_owned()],
            prefix: prefix.clone(),
            user: None,
            ca_pem: None,
            identity_pem: None,
            lease_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        })
    };
    let (owner, standby) = (connect().await?, connect().await?);
    // Each store is granted its lease in the background: claims wait for it.
    for store in [&owner, &standby] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.claim("standby-bench-lease").await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "no etcd lease granted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let passes = standby_passes(&owner, &standby, operations).await;
    // Cleared whatever the passes came to (the claims go with the leases, the records not).
    let cleared = async {
        let mut client = etcd_client::Client::connect([endpoint], None).await?;
        let all = etcd_client::DeleteOptions::new().with_prefix();
        client.delete(prefix.as_str(), Some(all)).await
    }
    .await;
    let passes = passes?;
    cleared?;
    Ok(StandbyResult { operations, passes })
}

/// The passes of [`standby_claims`], once the owner holds its claims.
async fn standby_passes(
    owner: &EtcdStore,
    standby: &EtcdStore,
    operations: usize,
) -> anyhow::Result<Vec<Duration>> {
    let ids: Vec<String> = (0..operations)
        .map(|i| format!("standby-bench-{i}"))
        .collect();
    for chunk in ids.chunks(100) {
        let write = Write {
            key: format!("operations/{}", chunk[0]),
            value: Some(b"o".to_vec()),
            expect: Expect::Any,
        };
        let claims = Claims {
            take: chunk.iter().map(|id| id.as_str().into()).collect(),
            give_up: Vec::new(),
        };
        owner.commit_claiming(vec![write], &claims).await?;
    }
    // What the standby learnt of the claims while waiting for its lease is old by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut passes = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for id in &ids {
            anyhow::ensure!(!standby.claim(id).await?, "{id}: the standby took it");
        }
        passes.push(started.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(passes)
}

/// The `q` quantile of sorted latencies (zero when there are none).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}
