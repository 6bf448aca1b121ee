//! The etcd store: durable, consistent state shared by several controller replicas.
//!
//! # Key layout (under the configured prefix, `/skybroker/` by default)
//! - `instances/<id>`, `bindings/<id>`, `operations/<id>`: the records, JSON in a versioned
//!   envelope (written by the map; this module only moves bytes).
//! - `owners/<operation id>`: which replica drives an in-flight operation; the value is the
//!   replica's id and the key is attached to that replica's lease, so it vanishes when the
//!   replica dies and another replica can claim the operation.
//!
//! # Guarantees
//! - Every commit goes in one etcd transaction whose comparisons are the writes'
//!   expectations (`create_revision = 0` for "absent", `mod_revision = r` for "at r"): no
//!   lost update between replicas. The store revision is etcd's revision. Commits that wait
//!   together share a transaction ([`commit`]: group commit), so several commits may get one
//!   revision, as the keys of one commit do.
//! - Claims ride along: the ownership key of an operation a commit creates (or ends) is put
//!   (or removed) in that commit's transaction, and the claims this replica holds on its
//!   current lease are remembered, so driving an operation asks etcd nothing more until it
//!   ends. They are trusted only while the lease surely lives (renewed within its time to
//!   live): in a partition etcd may let it lapse, and another replica take over, before the
//!   keeper notices.
//! - `load` reads the whole prefix in pages at one revision (a consistent snapshot, never one
//!   giant response) and `watch` continues from exactly that revision; a compacted history
//!   is reported as [`WatchEvent::Reset`] so the caller reloads.
//! - [`Store::sync_point`] writes `sync/<replica id>` (on the replica's lease). Events of one
//!   watch arrive in revision order, so when that put comes back through the watch (forwarded
//!   as [`WatchEvent::Progress`]) every earlier change has arrived: a replica that misses a
//!   record waits for that instead of answering 404 or 410 for what another replica has just
//!   created. (Not etcd's progress requests: before 3.4.25 and 3.5.8 etcd could report a
//!   revision whose events were still to be sent, etcd issue 15220; Debian 12 has 3.4.23.)
//! - etcd being unreachable is [`StoreError::Unavailable`]; the client reconnects by itself
//!   and the lease is granted again, so the broker recovers without a restart.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, KeyValue, PutOptions, TlsOptions,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Code;

mod commit;

use commit::{ClaimsTaken, Connection, Group};

use crate::store::{
    Claims, Entry, PageVisitor, RecordFormat, Revision, Store, StoreError, StoreMember,
    StoreStatus, WatchEvent, Write, LOAD_PAGE,
};

/// Where ownership keys live, under the prefix.
const OWNERS: &str = "owners/";

/// Prefix of the sync markers (see the module doc), under the store's prefix.
const SYNC: &str = "sync/";

/// Operations etcd takes in one transaction (its `--max-txn-ops`, 128 unless the cluster
/// was started with more): a commit of more writes is refused before it is sent.
pub const MAX_TXN_OPS: usize = 128;

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix.
    pub prefix: String,
    /// User name and password for etcd authentication.
    pub user: Option<(String, String)>,
    /// PEM of the CA that signed etcd's certificate (TLS).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key (mutual TLS).
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Time to live of this replica's lease: how long a dead replica's operations wait
    /// before another replica takes them over.
    pub lease_ttl: Duration,
    /// Deadline of every request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or the key.
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("tls", &self.ca_pem.is_some())
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

/// The cluster's client endpoints, with one connection at a time and failover.
///
/// etcd-client can balance over several endpoints, but its balancer keeps choosing a member
/// that just died (its connection fails fast, so it looks least loaded). Holding one
/// connection and moving to the next member when that one is unreachable keeps the broker
/// serving while any quorum member answers.
struct Endpoints {
    list: Vec<String>,
    options: ConnectOptions,
    /// The index of the member in use, and its client.
    current: std::sync::Mutex<(usize, Client)>,
}

impl Endpoints {
    /// Connects to the first member that answers, starting at `start`.
    async fn connect_any(
        list: &[String],
        options: &ConnectOptions,
        start: usize,
    ) -> Result<(usize, Client), StoreError> {
        let mut last = None;
        for offset in 0..list.len() {
            let index = (start + offset) % list.len();
            match Client::connect([&list[index]], Some(options.clone())).await {
                Ok(client) => return Ok((index, client)),
                Err(err) => last = Some(map_error(err)),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Backend("no etcd endpoints configured".to_owned())))
    }

    /// The client in use and its member's index.
    fn client(&self) -> (usize, Client) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// Moves on from member `failed` to the next one that answers (unless another caller
    /// already moved on).
    async fn failover(&self, failed: usize) {
        if self.list.len() < 2 || self.client().0 != failed {
            return;
        }
        if let Ok((index, client)) = Self::connect_any(&self.list, &self.options, failed + 1).await
        {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.0 == failed {
                log::warn!(
                    "etcd member {} unreachable; using {}",
                    self.list[failed],
                    self.list[index]
                );
                *current = (index, client);
            }
        }
    }

    /// Runs `call` on the current client; an unreachable member triggers failover.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let (index, client) = self.client();
        let result = call(client).await.map_err(map_error);
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.failover(index).await;
        }
        result
    }
}

/// This replica's lease, and how long etcd keeps it at least: since the last renewal was
/// sent, its time to live (etcd counts from when the renewal reached it, later).
#[derive(Debug, Default)]
pub(crate) struct Lease {
    /// The lease (0 while none is granted).
    id: AtomicI64,
    /// Until when it surely lives, on [`Lease::clock`].
    alive_until: AtomicU64,
}

impl Lease {
    /// Milliseconds on a monotonic clock (a wall clock set back must not extend a lease).
    fn clock() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }

    fn granted(&self, id: i64, ttl_secs: i64) {
        self.alive_until.store(
            Self::clock() + ttl_secs.max(0) as u64 * 1000,
            Ordering::SeqCst,
        );
        self.id.store(id, Ordering::SeqCst);
    }

    fn renewed(&self, sent: u64, ttl_secs: i64) {
        self.alive_until
            .store(sent + ttl_secs.max(0) as u64 * 1000, Ordering::SeqCst);
    }

    fn lost(&self) {
        self.id.store(0, Ordering::SeqCst);
        self.alive_until.store(0, Ordering::SeqCst);
    }

    /// The lease, if one is granted.
    pub(crate) fn id(&self) -> Option<i64> {
        Some(self.id.load(Ordering::SeqCst)).filter(|id| *id != 0)
    }

    /// The lease, if etcd surely still keeps it (renewed within its time to live).
    fn surely_alive(&self) -> Option<i64> {
        self.id()
            .filter(|_| Self::clock() < self.alive_until.load(Ordering::SeqCst))
    }
}

/// The claims this replica holds, and on which lease. A claim on the current lease is known
/// held without asking etcd: the engine claims an operation before each of its polls, and
/// each claim asked of etcd is a transaction through its log (a disk write on every member).
/// A new lease (the old one lapsed: its keys are gone, and other replicas may have claimed
/// them) starts an empty set.
#[derive(Debug, Default)]
struct Held {
    lease: i64,
    operations: HashSet<String>,
}

impl Held {
    fn holds(&self, lease: i64, operation_id: &str) -> bool {
        self.lease == lease && self.operations.contains(operation_id)
    }

    fn took(&mut self, lease: i64, operation_id: &str) {
        if self.lease != lease {
            self.lease = lease;
            self.operations.clear();
        }
        self.operations.insert(operation_id.to_owned());
    }

    /// Forgets a claim; whether it was held.
    fn gave_up(&mut self, operation_id: &str) -> bool {
        self.operations.remove(operation_id)
    }
}

/// How long one read of every claim answers for the operations other replicas hold.
const OTHERS_FRESH: Duration = Duration::from_millis(500);

/// The operations other replicas held at the last read of every claim.
///
/// A replica standing by asks about every operation another drives once a second, to take
/// over when that one dies. One read of all the claims answers those questions, not one read
/// per operation: with thousands in flight, reads one by one held the standby's scanner for
/// seconds a pass (each under its instance's lock) and cost etcd a request each. An answer
/// at most [`OTHERS_FRESH`] old (counted from when its read ended) delays a takeover by that
/// and the read's own time, against a claim that lapses with its replica's lease, seconds
/// after the replica died. A read that failed answers its error for as long, so claims wait
/// for etcd without each trying the read again (each waiting out a request timeout).
#[derive(Default)]
struct Others {
    /// When the last read ended.
    read_at: Option<Instant>,
    /// Reads ended so far, failed ones included: a claim that waited for a read takes its
    /// answer whatever its age, rather than reading again.
    generation: u64,
    /// The operations it found held by other replicas, and those refused since.
    operations: HashSet<String>,
    /// The revision it read at.
    revision: i64,
    /// Why it failed, if it did.
    failure: Option<StoreError>,
    /// How many reads succeeded (tests).
    reads: u64,
}

impl Others {
    /// Whether another replica holds `operation_id`, unless the last read is older than
    /// `fresh` (or there was none).
    fn answer(&self, operation_id: &str, fresh: Duration) -> Option<Result<bool, StoreError>> {
        if self.read_at.is_none_or(|at| at.elapsed() >= fresh) {
            return None;
        }
        Some(self.last_read(operation_id))
    }

    /// What the last read says of `operation_id`.
    fn last_read(&self, operation_id: &str) -> Result<bool, StoreError> {
        match &self.failure {
            Some(err) => Err(err.clone()),
            None => Ok(self.operations.contains(operation_id)),
        }
    }
}

/// The etcd store.
pub struct EtcdStore {
    connection: Arc<Connection>,
    /// Commits go through it (see [`commit`]).
    group: Group,
    /// The claims this replica holds (see [`Held`]).
    held: Mutex<Held>,
    /// The claims other replicas hold (see [`Others`]).
    others: Mutex<Others>,
    /// Held while every claim is read: one read at a time, never under `others`.
    reading_others: tokio::sync::Mutex<()>,
    /// How long a read of every claim answers: [`OTHERS_FRESH`] (tests set their own).
    others_fresh: Duration,
    /// The revision of the last `load`, where `watch` starts.
    loaded_at: AtomicI64,
    /// Keeps the lease alive; aborted on drop.
    keeper: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.connection.prefix)
            .field("replica", &self.connection.replica)
            .finish()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Maps a client error: anything about reaching etcd is `Unavailable`.
fn map_error(err: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    let unreachable =
        |inner: &dyn StdError| StoreError::Unavailable(describe(inner.to_string(), inner.source()));
    match err {
        E::TransportError(ref inner) => unreachable(inner),
        E::IoError(ref inner) => unreachable(inner),
        E::GRpcStatus(ref status)
            if matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
            ) =>
        {
            StoreError::Unavailable(describe(status.message().to_owned(), status.source()))
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// An error's `message` followed by its causes from `source` on. tonic's errors say only
/// "transport error" or "operation was canceled" and keep the reason (a refused
/// certificate, a closed connection) in their sources, which is what an operator needs to
/// see. Layers often repeat their cause's text, so a text that another one of the chain
/// contains is left out.
fn describe(message: String, source: Option<&(dyn StdError + 'static)>) -> String {
    let mut texts = vec![message];
    let mut next = source;
    while let Some(current) = next {
        texts.push(current.to_string());
        next = current.source();
    }
    let repeated = |index: usize, text: &String| {
        texts.iter().enumerate().any(|(other_index, other)| {
            other_index != index
                && other.contains(text.as_str())
                && (other != text || other_index < index)
        })
    };
    let kept: Vec<&str> = texts
        .iter()
        .enumerate()
        .filter(|(index, text)| !repeated(*index, text))
        .map(|(_, text)| text.as_str())
        .collect();
    kept.join(": ")
}

/// The end of the key range that holds every key starting with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// Connects, and starts keeping this replica's lease alive.
    ///
    /// # Errors
    /// etcd cannot be reached, or rejects the credentials.
    pub async fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.request_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(10), options.request_timeout);
        if let Some((name, password)) = &options.user {
            // etcd's auth tokens lapse (after `--auth-token-ttl` unused, 300 s by default, and
            // all at once when a member restarts); without the refresh every request after
            // that fails with "invalid auth token" until the broker restarts.
            connect = connect
                .with_user(name.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        if options.ca_pem.is_some() || options.identity_pem.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &options.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &options.identity_pem {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(tls);
        }
        let connect = connect.with_require_leader(true);
        let first = Endpoints::connect_any(&options.endpoints, &connect, 0).await?;
        let endpoints = Arc::new(Endpoints {
            list: options.endpoints.clone(),
            options: connect,
            current: std::sync::Mutex::new(first),
        });
        let lease = Arc::new(Lease::default());
        let keeper = tokio::spawn(keep_lease(
            Arc::clone(&endpoints),
            Arc::clone(&lease),
            options.lease_ttl,
        ));
        let connection = Arc::new(Connection {
            endpoints,
            prefix: options.prefix,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            lease,
            retry_budget: options.request_timeout,
        });
        Ok(EtcdStore {
            group: Group::start(Arc::clone(&connection)),
            connection,
            held: Mutex::default(),
            others: Mutex::default(),
            reading_others: tokio::sync::Mutex::default(),
            others_fresh: OTHERS_FRESH,
            loaded_at: AtomicI64::new(0),
            keeper,
        })
    }

    /// The store key of an etcd key under the prefix, unless it is an ownership key or a sync
    /// marker.
    fn store_key(prefix: &str, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
        (!key.starts_with(OWNERS) && !key.starts_with(SYNC)).then(|| key.to_owned())
    }

    /// Whether an etcd key is a sync marker under the prefix.
    fn is_sync_marker(prefix: &str, key: &[u8]) -> bool {
        key.strip_prefix(prefix.as_bytes())
            .is_some_and(|key| key.starts_with(SYNC.as_bytes()))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Single inserts and removes: consistent across a panic.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers claims taken on `lease`, if it is still the current one (an answer that
    /// comes after a new lease was granted names claims that lapse with the old one).
    fn took<'a>(&self, lease: i64, operations: impl IntoIterator<Item = &'a str>) {
        if self.connection.lease.id() != Some(lease) {
            return;
        }
        let mut held = self.held();
        for id in operations {
            held.took(lease, id);
        }
    }

    /// Reads every key under `prefix` in pages of [`LOAD_PAGE`], all at the first page's
    /// revision (one consistent snapshot, never one giant response), handing each page to
    /// `page` in key order; answers that revision.
    ///
    /// No sort order is asked for: etcd returns a range in key order anyway, and a range
    /// with any sort order is read whole on the server before the limit cuts it, so every
    /// page of a paged read would cost the server all the keys after it.
    async fn read_pages(
        &self,
        prefix: &str,
        mut page: impl FnMut(&[KeyValue]) -> Result<(), StoreError>,
    ) -> Result<i64, StoreError> {
        let end = range_end(prefix);
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LOAD_PAGE as i64);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let key = start.clone();
            let response = self
                .connection
                .endpoints
                .call(|mut c| async move { c.get(key, Some(options)).await })
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            page(response.kvs())?;
            match (response.more(), response.kvs().last()) {
                (true, Some(last)) => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(revision),
            }
        }
    }

    fn others(&self) -> std::sync::MutexGuard<'_, Others> {
        // Whole assignments: consistent across a panic.
        self.others.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether another replica held `operation_id`'s claim at the last read of every claim
    /// (see [`Others`]), read again when older than `others_fresh`. An answer a little old
    /// only delays a claim: the transaction that takes one decides.
    async fn held_by_another(&self, operation_id: &str) -> Result<bool, StoreError> {
        let generation = {
            let others = self.others();
            if let Some(answer) = others.answer(operation_id, self.others_fresh) {
                return answer;
            }
            others.generation
        };
        // Those who wait here take the answer of the read the first of them made.
        let _reading = self.reading_others.lock().await;
        {
            let others = self.others();
            if others.generation != generation {
                return others.last_read(operation_id);
            }
        }
        let prefix = self.connection.full_key(OWNERS);
        let mine = self.connection.replica.as_bytes();
        let mut operations = HashSet::new();
        let read = self
            .read_pages(&prefix, |kvs| {
                let held = kvs.iter().filter(|kv| kv.value() != mine);
                operations.extend(held.filter_map(|kv| {
                    let key = std::str::from_utf8(kv.key()).ok()?;
                    Some(key.strip_prefix(prefix.as_str())?.to_owned())
                }));
                Ok(())
            })
            .await;
        let mut others = self.others();
        others.read_at = Some(Instant::now());
        others.generation += 1;
        match read {
            Ok(revision) => {
                let held = operations.contains(operation_id);
                others.operations = operations;
                others.revision = revision;
                others.failure = None;
                others.reads += 1;
                Ok(held)
            }
            Err(err) => {
                others.failure = Some(err.clone());
                Err(err)
            }
        }
    }
}

/// Grants this replica's lease and keeps it alive; grants a new one whenever it is lost
/// (etcd down longer than the TTL, a broken stream).
async fn keep_lease(endpoints: Arc<Endpoints>, lease: Arc<Lease>, ttl: Duration) {
    let ttl_secs = ttl.as_secs().max(2) as i64;
    let interval = Duration::from_millis((ttl_secs as u64 * 1000) / 3);
    loop {
        let granted = endpoints
            .call(|mut c| async move { c.lease_grant(ttl_secs, None).await })
            .await;
        let granted = match granted {
            Ok(granted) => granted.id(),
            Err(err) => {
                log::warn!("etcd lease not granted: {err}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        lease.granted(granted, ttl_secs);
        log::debug!("etcd lease {granted:x} granted for {ttl_secs}s");
        let (index, mut client) = endpoints.client();
        if let Ok((mut keeper, mut stream)) = client.lease_keep_alive(granted).await {
            loop {
                tokio::time::sleep(interval).await;
                let sent = Lease::clock();
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match stream.message().await {
                    // A TTL of 0 means the lease expired meanwhile.
                    Ok(Some(response)) if response.ttl() > 0 => {
                        lease.renewed(sent, response.ttl());
                    }
                    _ => break,
                }
            }
        }
        // The member may be gone: move on before granting again (a lease lives in the
        // cluster, but this one lapses while the stream is down, so a new one is simpler).
        endpoints.failover(index).await;
        lease.lost();
        log::warn!("etcd lease {granted:x} lost; granting a new one");
    }
}

#[async_trait]
impl Store for EtcdStore {
    /// JSON: operators read it with `etcdctl`, and replicas of two builds share it during an
    /// upgrade.
    fn record_format(&self) -> RecordFormat {
        RecordFormat::Json
    }

    async fn load_pages(&self, visit: &mut PageVisitor<'_>) -> Result<(), StoreError> {
        let prefix = &self.connection.prefix;
        let revision = self
            .read_pages(prefix, |kvs| {
                visit(
                    kvs.iter()
                        .filter_map(|kv| {
                            Some(Entry {
                                key: Self::store_key(prefix, kv.key())?,
                                value: kv.value().to_vec(),
                                revision: kv.mod_revision() as Revision,
                            })
                        })
                        .collect(),
                )
            })
            .await?;
        self.loaded_at.store(revision, Ordering::SeqCst);
        Ok(())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        self.commit_claiming(writes, &Claims::none()).await
    }

    fn loaded_revision(&self) -> Revision {
        self.loaded_at.load(Ordering::SeqCst) as Revision
    }

    async fn commit_claiming(
        &self,
        writes: Vec<Write>,
        claims: &Claims,
    ) -> Result<Revision, StoreError> {
        let (revision, taken) = self.group.commit(writes, claims.clone()).await?;
        match taken {
            ClaimsTaken::Yes { lease, taken } => {
                self.took(lease, taken.iter().map(|id| id.as_str()));
                let mut held = self.held();
                for id in &claims.give_up {
                    held.gave_up(id);
                }
            }
            ClaimsTaken::No => {
                // Taken by `claim` when the operation is driven; given up here.
                for id in &claims.give_up {
                    if let Err(err) = self.release(id).await {
                        log::debug!("operation {id}: claim not released ({err})");
                    }
                }
            }
        }
        Ok(revision)
    }

    async fn check(&self) -> Result<(), StoreError> {
        let options = GetOptions::new().with_count_only();
        let key = self.connection.full_key("health");
        self.connection
            .endpoints
            .call(|mut c| async move { c.get(key, Some(options)).await })
            .await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let (status, members) = self
            .connection
            .endpoints
            .call(|mut c| async move {
                let status = c.status().await?;
                let members = c.member_list().await?;
                Ok((status, members))
            })
            .await?;
        let leader = status.leader();
        Ok(StoreStatus {
            location: Some(format!("key prefix {}", self.connection.prefix)),
            version: Some(status.version().to_owned()),
            size_bytes: u64::try_from(status.db_size()).ok(),
            members: members
                .members()
                .iter()
                .map(|member| StoreMember {
                    name: member.name().to_owned(),
                    client_urls: member.client_urls().to_vec(),
                    leader: member.id() == leader,
                    learner: member.is_learner(),
                })
                .collect(),
        })
    }

    async fn sync_point(&self) -> Result<Option<Revision>, StoreError> {
        // On the replica's lease, so the marker goes with the replica; before the lease is
        // granted, or when etcd no longer knows it (lapsed in an outage, not renewed yet),
        // without one (one small key per replica id).
        let key = self
            .connection
            .full_key(&format!("{SYNC}{}", self.connection.replica));
        let put = |lease: Option<i64>| {
            let key = key.clone();
            let options = lease.map(|lease| PutOptions::new().with_lease(lease));
            self.connection
                .endpoints
                .call(|mut c| async move { c.put(key, Vec::new(), options).await })
        };
        let response = match self.connection.current_lease() {
            Ok(lease) => match put(Some(lease)).await {
                Err(StoreError::Backend(message)) => {
                    log::debug!("sync marker not written on lease {lease:x}: {message}");
                    put(None).await?
                }
                result => result?,
            },
            Err(_) => put(None).await?,
        };
        let header = response
            .header()
            .ok_or_else(|| StoreError::Backend("etcd answered a put without a header".into()))?;
        Ok(Some(header.revision() as Revision))
    }

    async fn watch(&self) -> Result<Option<mpsc::Receiver<WatchEvent>>, StoreError> {
        let (sender, receiver) = mpsc::channel(1024);
        let from = self.loaded_at.load(Ordering::SeqCst) + 1;
        tokio::spawn(forward_changes(
            Arc::clone(&self.connection.endpoints),
            self.connection.prefix.clone(),
            from,
            sender,
        ));
        Ok(Some(receiver))
    }

    async fn claim(&self, operation_id: &str) -> Result<bool, StoreError> {
        let lease = self.connection.current_lease()?;
        // Known held only while the lease surely lives: in a partition etcd may have let it
        // lapse (and another replica claimed the operation) before the keeper notices.
        let alive = self.connection.lease.surely_alive() == Some(lease);
        if alive && self.held().holds(lease, operation_id) {
            return Ok(true);
        }
        if self.held_by_another(operation_id).await? {
            return Ok(false);
        }
        let key = self.connection.full_key(&format!("{OWNERS}{operation_id}"));
        let txn = self
            .connection
            .claim_txn(operation_id, lease)
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .connection
            .endpoints
            .call(|mut c| async move { c.txn(txn).await })
            .await?;
        // Held already: by this replica (an earlier claim), or by another live one.
        let owner = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| (kv.value() == self.connection.replica.as_bytes(), kv.lease())),
            _ => None,
        });
        let mine = response.succeeded() || owner.is_some_and(|(mine, _)| mine);
        if !mine {
            // Taken since the last read of every claim: not asked about again until the next,
            // unless that read is newer than this answer (and may have seen the claim lapse).
            let revision = response.header().map_or(0, |h| h.revision());
            let mut others = self.others();
            if revision >= others.revision {
                others.operations.insert(operation_id.to_owned());
            }
        }
        // Remembered only on the current lease: a claim on a lease this replica lost (still
        // alive in etcd until it lapses) must be asked for again, to be taken anew then.
        if response.succeeded() || owner == Some((true, lease)) {
            self.took(lease, [operation_id]);
        }
        Ok(mine)
    }

    async fn release(&self, operation_id: &str) -> Result<(), StoreError> {
        // Every claim on the current lease is in `held`; one on a lease lost lapses with it.
        if !self.held().gave_up(operation_id) {
            return Ok(());
        }
        let txn = self.connection.release_txn(operation_id);
        self.connection
            .endpoints
            .call(|mut c| async move { c.txn(txn).await })
            .await?;
        Ok(())
    }
}

/// The store's current revision, if it is below the last one this watch has seen (`from` - 1):
/// revisions never go back in a living etcd, so the store was restored from a backup taken
/// earlier (without `etcdutl snapshot restore --bump-revision`) or another cluster answers.
fn went_back(current: Option<i64>, from: i64) -> Option<i64> {
    current.filter(|&current| current > 0 && current + 1 < from)
}

/// Forwards every change under `prefix` from revision `from` on, reconnecting the watch when
/// the stream breaks; a compacted history ends with [`WatchEvent::Reset`]. A sync marker's put
/// is forwarded as [`WatchEvent::Progress`].
async fn forward_changes(
    endpoints: Arc<Endpoints>,
    prefix: String,
    mut from: i64,
    sender: mpsc::Sender<WatchEvent>,
) {
    loop {
        let options = WatchOptions::new()
            .with_range(range_end(&prefix))
            .with_start_revision(from)
            .with_progress_notify();
        let (index, mut client) = endpoints.client();
        let mut stream = match client.watch(prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(err) => {
                endpoints.failover(index).await;
                log::warn!("etcd watch not started: {err}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => break, // reconnect from `from`
            };
            if response.compact_revision() > 0
                || (response.canceled() && response.compact_revision() > 0)
            {
                log::warn!("etcd history compacted past revision {from}; reloading");
                let _ = sender.send(WatchEvent::Reset).await;
                return;
            }
            if let Some(current) = went_back(response.header().map(|h| h.revision()), from) {
                // Restored from a backup (or replaced by another cluster): the revisions this
                // watch waits for were handed out again to other changes, which it would
                // never see. Only a full reload tells what the store now holds.
                log::error!(
                    "etcd's revision went back to {current} after this replica had seen {}: \
                     the store was restored from a backup; reloading everything from it",
                    from - 1
                );
                let _ = sender.send(WatchEvent::Reset).await;
                return;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let revision = kv.mod_revision() as Revision;
                from = from.max(kv.mod_revision() + 1);
                if EtcdStore::is_sync_marker(&prefix, kv.key()) {
                    let put = event.event_type() == etcd_client::EventType::Put;
                    if put && sender.send(WatchEvent::Progress(revision)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let Some(key) = EtcdStore::store_key(&prefix, kv.key()) else {
                    continue;
                };
                let change = match event.event_type() {
                    etcd_client::EventType::Put => WatchEvent::Put(Entry {
                        key,
                        value: kv.value().to_vec(),
                        revision,
                    }),
                    etcd_client::EventType::Delete => WatchEvent::Delete { key, revision },
                };
                if sender.send(change).await.is_err() {
                    return; // nobody listens any more
                }
            }
            // A periodic progress notification (no events) moves `from` to its header: etcd
            // sends those to a watch that has caught up. Not the header of the response that
            // confirms the watch, nor of one with events: while the watch catches up on history
            // they name revisions whose events are still to come, and a reconnect from there
            // would skip them.
            let progress =
                response.events().is_empty() && !response.created() && !response.canceled();
            if let Some(header) = response.header().filter(|_| progress) {
                from = from.max(header.revision() + 1);
            }
            if response.canceled() {
                log::warn!(
                    "etcd watch canceled ({}); watching again",
                    response.cancel_reason()
                );
                // etcd refuses a watch whose auth token expired inside the stream: the call
                // succeeds, so the client's automatic refresh never sees the refusal, and the
                // watch would be refused again and again with the same token.
                if response.cancel_reason().contains("invalid auth token") {
                    if let Err(err) = client.refresh_token().await {
                        log::warn!("etcd auth token not renewed: {err}");
                    }
                }
                break;
            }
        }
        if sender.is_closed() {
            return;
        }
        endpoints.failover(index).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OperationId;
    use crate::store::Expect;

    #[test]
    fn a_revision_below_the_last_one_seen_means_a_restored_store() {
        // The watch has seen revision 41 (it waits for 42 on).
        assert_eq!(went_back(Some(41), 42), None, "nothing new yet");
        assert_eq!(went_back(Some(90), 42), None, "moved on");
        assert_eq!(
            went_back(Some(40), 42),
            Some(40),
            "restored to an earlier point"
        );
        assert_eq!(went_back(None, 42), None, "no header: nothing known");
    }

    #[test]
    fn range_end_covers_the_prefix() {
        assert_eq!(range_end("/skybroker/"), b"/skybroker0".to_vec());
        assert_eq!(range_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn ownership_keys_are_not_records() {
        assert_eq!(
            EtcdStore::store_key("/p/", b"/p/instances/a"),
            Some("instances/a".into())
        );
        assert_eq!(EtcdStore::store_key("/p/", b"/p/owners/op-1"), None);
        assert_eq!(EtcdStore::store_key("/p/", b"/p/sync/replica-1"), None);
        assert!(EtcdStore::is_sync_marker("/p/", b"/p/sync/replica-1"));
        assert!(!EtcdStore::is_sync_marker("/p/", b"/p/instances/sync/x"));
        assert!(!EtcdStore::is_sync_marker("/p/", b"/q/sync/replica-1"));
        assert_eq!(EtcdStore::store_key("/p/", b"/q/instances/a"), None);
    }

    #[test]
    fn errors_show_their_causes_once() {
        /// An error layer: its text and its cause.
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl StdError for Layer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|cause| cause as _)
            }
        }
        let layer = |text, cause| Some(Box::new(Layer(text, cause)));

        // What tonic reports when etcd refuses a TLS client (seen in tests/etcd_security.rs).
        let alert = Layer(
            "transport error",
            layer(
                "connection error: received fatal alert: BadCertificate",
                layer("received fatal alert: BadCertificate", None),
            ),
        );
        assert_eq!(
            describe("transport error".into(), Some(&alert)),
            "transport error: connection error: received fatal alert: BadCertificate"
        );
        let closed = Layer(
            "transport error",
            layer("operation was canceled: connection closed", None),
        );
        assert_eq!(
            describe("operation was canceled".into(), Some(&closed)),
            "transport error: operation was canceled: connection closed"
        );
        assert_eq!(describe("deadline".into(), None), "deadline");
    }

    #[test]
    fn options_never_show_secrets() {
        let options = EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/p/".into(),
            user: Some(("broker".into(), "hunter2".into())),
            ca_pem: None,
            identity_pem: Some((b"cert".to_vec(), b"PRIVATE KEY".to_vec())),
            lease_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
        };
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }

    /// The conformance suite and the etcd specifics, on a real etcd
    /// (`SKYBROKER_TEST_ETCD=http://host:port`, set by the README test command).
    #[tokio::test]
    async fn etcd_store_passes_the_conformance_suite() {
        let Some(store) = one_replica().await else {
            return;
        };
        crate::testing::conformance(&store).await;
    }

    /// Issue #19: the store describes its cluster for the dashboard: the test etcd's one
    /// member, its client URL, marked leader; the version and database size of a real server.
    #[tokio::test]
    async fn the_cluster_is_described_with_its_leader() {
        let Some(endpoint) = crate::testing::etcd_endpoint() else {
            return;
        };
        let options = crate::testing::etcd_options(&endpoint);
        let prefix = options.prefix.clone();
        let store = EtcdStore::connect(options).await.unwrap();
        let status = store.status().await.unwrap();
        assert_eq!(status.location, Some(format!("key prefix {prefix}")));
        assert!(
            status
                .version
                .as_deref()
                .is_some_and(|v| v.starts_with("3.")),
            "{status:?}"
        );
        assert!(status.size_bytes.is_some_and(|size| size > 0), "{status:?}");
        assert_eq!(
            status.members.iter().filter(|member| member.leader).count(),
            1,
            "{status:?}"
        );
        assert!(
            status
                .members
                .iter()
                .any(|member| member.client_urls.contains(&endpoint)),
            "{status:?}"
        );
    }

    /// Issue #16: a commit above etcd's 128 operations is refused plainly, before it is sent,
    /// and applies nothing; 128 go through.
    #[tokio::test]
    async fn commits_above_the_transaction_limit_are_refused_plainly() {
        let Some(store) = one_replica().await else {
            return;
        };
        let writes = |count: usize, tag: &str| -> Vec<Write> {
            (0..count)
                .map(|n| Write {
                    key: format!("instances/{tag}-{n:04}"),
                    value: Some(vec![1]),
                    expect: Expect::Absent,
                })
                .collect()
        };
        match store.commit(writes(MAX_TXN_OPS + 1, "over")).await {
            Err(StoreError::TooManyWrites { writes, limit }) => {
                assert_eq!((writes, limit), (129, 128))
            }
            other => panic!("{other:?}"),
        }
        assert!(store.load().await.unwrap().is_empty(), "nothing applied");
        store.commit(writes(MAX_TXN_OPS, "at")).await.unwrap();
        assert_eq!(store.load().await.unwrap().len(), MAX_TXN_OPS);
    }

    #[tokio::test]
    async fn load_pages_through_many_keys_at_one_revision() {
        let Some(store) = one_replica().await else {
            return;
        };
        // etcd allows 128 operations per transaction.
        for chunk in 0..25 {
            let writes = (0..100)
                .map(|n| Write {
                    key: format!("instances/{chunk:02}-{n:05}"),
                    value: Some(vec![1]),
                    expect: Expect::Absent,
                })
                .collect();
            store.commit(writes).await.unwrap();
        }
        let entries = store.load().await.unwrap();
        assert_eq!(entries.len(), 2500, "more than two pages");
        assert!(entries.windows(2).all(|w| w[0].key < w[1].key), "key order");
    }

    #[tokio::test]
    async fn watch_sees_other_writers_and_claims_are_exclusive() {
        let Some((a, b)) = two_replicas().await else {
            return;
        };
        a.load().await.unwrap();
        let mut changes = a.watch().await.unwrap().expect("etcd watches");
        let revision = b
            .commit(vec![Write {
                key: "instances/w".into(),
                value: Some(b"x".to_vec()),
                expect: Expect::Absent,
            }])
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .unwrap();
        assert_eq!(
            event,
            Some(WatchEvent::Put(Entry {
                key: "instances/w".into(),
                value: b"x".to_vec(),
                revision
            }))
        );
        // Claims: exactly one replica owns an operation.
        assert!(a.claim("op-1").await.unwrap());
        assert!(a.claim("op-1").await.unwrap(), "a claim is kept");
        assert!(
            !b.claim("op-1").await.unwrap(),
            "another replica is refused"
        );
        b.release("op-1").await.unwrap();
        assert!(
            !b.claim("op-1").await.unwrap(),
            "release by another replica does nothing"
        );
        a.release("op-1").await.unwrap();
        takes(&b, "op-1").await;
        // A dead replica's claims lapse with its lease.
        drop(b);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !a.claim("op-1").await.unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "the claim never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // A replica standing by learns who holds every claim in one read, however many it asks
    // about (issue #20: one read each held its scanner for seconds a pass), reads them again
    // once that read is old, and takes a claim given up after that.
    #[tokio::test]
    async fn one_read_answers_for_every_claim_another_replica_holds() {
        let Some((a, mut b)) = two_replicas().await else {
            return;
        };
        // Reads age only when the test says so.
        b.others_fresh = Duration::from_secs(600);
        let ids: Vec<String> = (0..300).map(|i| format!("op-held-{i}")).collect();
        for id in &ids {
            assert!(a.claim(id).await.unwrap());
        }
        for id in &ids {
            assert!(!b.claim(id).await.unwrap(), "{id} is held by a");
        }
        assert_eq!(b.others().reads, 1, "one read for 300 claims");
        assert!(b.claim("op-free").await.unwrap(), "a claim no one holds");

        // Taken after b's read: refused by its transaction, then known without another read.
        assert!(a.claim("op-late").await.unwrap());
        assert!(!b.claim("op-late").await.unwrap());
        assert!(b.others().operations.contains("op-late"), "remembered");
        assert!(!b.claim("op-late").await.unwrap());
        assert_eq!(b.others().reads, 1, "no read for it");
        // A refusal older than the last read does not overrule it (which may have seen the
        // claim lapse since).
        assert!(a.claim("op-later").await.unwrap());
        b.others().revision = i64::MAX;
        assert!(!b.claim("op-later").await.unwrap());
        assert!(!b.others().operations.contains("op-later"));

        // Given up: taken at the next read.
        a.release(&ids[7]).await.unwrap();
        b.others().read_at = None;
        assert!(b.claim(&ids[7]).await.unwrap(), "given up, so taken");
        assert_eq!(b.others().reads, 2, "read again");
        assert_eq!(
            owner(&b, &ids[7]).await.as_deref(),
            Some(b.connection.replica.as_str())
        );
        assert!(!b.claim(&ids[8]).await.unwrap(), "the rest stay a's");

        // Claims that wait for a read take its answer, however old it is when it ends.
        // (This runtime has one thread: all 20 are waiting before the first read ends.)
        b.others_fresh = Duration::ZERO;
        let b = Arc::new(b);
        let mut waiting = tokio::task::JoinSet::new();
        for id in &ids[10..30] {
            let (b, id) = (Arc::clone(&b), id.clone());
            waiting.spawn(async move { b.claim(&id).await });
        }
        while let Some(answer) = waiting.join_next().await {
            assert!(matches!(answer, Ok(Ok(false))), "{answer:?}");
        }
        assert_eq!(b.others().reads, 3, "one read for the 20 that waited");
    }

    /// A store on a fresh prefix of the test etcd; `None` without an etcd to test against.
    async fn one_replica() -> Option<EtcdStore> {
        let endpoint = crate::testing::etcd_endpoint()?;
        let options = crate::testing::etcd_options(&endpoint);
        Some(EtcdStore::connect(options).await.unwrap())
    }

    /// Two replicas on one fresh prefix of the test etcd, each with its lease; `None` without
    /// an etcd to test against.
    async fn two_replicas() -> Option<(EtcdStore, EtcdStore)> {
        let endpoint = crate::testing::etcd_endpoint()?;
        let options = crate::testing::etcd_options(&endpoint);
        let a = EtcdStore::connect(options.clone()).await.unwrap();
        let b = EtcdStore::connect(options).await.unwrap();
        with_leases(&[&a, &b]).await;
        Some((a, b))
    }

    /// Claims `operation_id` for `store`, which may take until its last read of every claim
    /// is old (up to 5 s here).
    async fn takes(store: &EtcdStore, operation_id: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !store.claim(operation_id).await.unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "{operation_id} was never taken"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 5 s) until each store has its lease.
    async fn with_leases(stores: &[&EtcdStore]) {
        for store in stores {
            for _ in 0..50 {
                if store.connection.current_lease().is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The owner of `operation_id`'s claim, read from etcd itself.
    async fn owner(store: &EtcdStore, operation_id: &str) -> Option<String> {
        let key = store
            .connection
            .full_key(&format!("{OWNERS}{operation_id}"));
        let response = (store.connection.endpoints)
            .call(|mut c| async move { c.get(key, None).await })
            .await
            .unwrap();
        let kv = response.kvs().first()?;
        Some(String::from_utf8(kv.value().to_vec()).unwrap())
    }

    // Issue #20: the replica that stores an operation claims it in the same transaction, and
    // gives the claim up in the one that stores its end; a claim another replica holds is
    // neither taken nor given up by a commit.
    #[tokio::test]
    async fn commits_take_and_give_up_claims_in_their_transaction() {
        let Some((a, b)) = two_replicas().await else {
            return;
        };
        let put = |key: &str| Write {
            key: key.into(),
            value: Some(b"x".to_vec()),
            expect: Expect::Any,
        };
        let claims = |take: &[&str], give_up: &[&str]| Claims {
            take: take.iter().map(|id| OperationId::from(*id)).collect(),
            give_up: give_up.iter().map(|id| OperationId::from(*id)).collect(),
        };
        assert!(b.claim("op-b").await.unwrap());
        a.commit_claiming(
            vec![put("operations/op-a")],
            &claims(&["op-a", "op-b"], &[]),
        )
        .await
        .unwrap();
        assert_eq!(
            owner(&a, "op-a").await.as_deref(),
            Some(a.connection.replica.as_str())
        );
        assert_eq!(
            owner(&a, "op-b").await.as_deref(),
            Some(b.connection.replica.as_str()),
            "another replica's claim stays its own"
        );
        assert!(a.claim("op-a").await.unwrap());
        assert!(!b.claim("op-a").await.unwrap(), "taken by the commit");
        assert!(!a.claim("op-b").await.unwrap());

        // A commit that fails its condition takes no claim.
        let absent = Write {
            expect: Expect::Absent,
            ..put("operations/op-a")
        };
        let refused = a
            .commit_claiming(vec![absent], &claims(&["op-c"], &[]))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { .. })),
            "{refused:?}"
        );
        assert_eq!(owner(&a, "op-c").await, None);

        // Giving up: only a's own claim goes.
        a.commit_claiming(
            vec![put("operations/op-a")],
            &claims(&[], &["op-a", "op-b"]),
        )
        .await
        .unwrap();
        assert_eq!(owner(&a, "op-a").await, None);
        assert_eq!(
            owner(&a, "op-b").await.as_deref(),
            Some(b.connection.replica.as_str())
        );
        takes(&b, "op-a").await; // given up, so b may take it
        assert!(!a.claim("op-a").await.unwrap(), "a no longer holds it");

        // etcd gives a nested transaction what the outer one leaves of its 128 operations:
        // claims go along only while one is left; a commit at the limit goes without them.
        let many = |n: usize, tag: &str| -> Vec<Write> {
            (0..n)
                .map(|i| put(&format!("instances/{tag}-{i}")))
                .collect()
        };
        a.commit_claiming(many(127, "full"), &claims(&["op-full"], &[]))
            .await
            .expect("the writes go, without the claim");
        assert_eq!(owner(&a, "op-full").await, None);
        a.commit_claiming(many(126, "room"), &claims(&["op-room"], &[]))
            .await
            .unwrap();
        assert_eq!(
            owner(&a, "op-room").await.as_deref(),
            Some(a.connection.replica.as_str())
        );
    }

    // Issue #20: commits that wait together go as one transaction; a failed condition in it
    // fails only its own commit, and two commits of one key never share a transaction.
    #[tokio::test]
    async fn concurrent_commits_share_transactions_and_conflicts_stay_their_own() {
        let Some(store) = one_replica().await else {
            return;
        };
        let store = Arc::new(store);
        let put = |key: String, expect| Write {
            key,
            value: Some(b"x".to_vec()),
            expect,
        };
        store
            .commit(vec![put("instances/taken".into(), Expect::Absent)])
            .await
            .unwrap();
        // Handed over together (this runtime has one thread: every task queues its commit
        // before the committer runs): 100 new keys, one that exists already, and the same
        // key three times.
        let mut commits = tokio::task::JoinSet::new();
        for n in 0..100 {
            let store = Arc::clone(&store);
            let write = put(format!("instances/g{n}"), Expect::Absent);
            commits.spawn(async move { (n, store.commit(vec![write]).await) });
        }
        for n in 100..103 {
            let store = Arc::clone(&store);
            let write = put("instances/same".into(), Expect::Any);
            commits.spawn(async move { (n, store.commit(vec![write]).await) });
        }
        let taken = put("instances/taken".into(), Expect::Absent);
        let conflicting = Arc::clone(&store);
        commits.spawn(async move { (103, conflicting.commit(vec![taken]).await) });
        let mut revisions = std::collections::BTreeSet::new();
        while let Some(done) = commits.join_next().await {
            let (n, result) = done.unwrap();
            match (n, result) {
                (103, Err(StoreError::Conflict { .. })) => {}
                (103, other) => panic!("the existing key was created again: {other:?}"),
                (_, Ok(revision)) => {
                    revisions.insert(revision);
                }
                (n, Err(err)) => panic!("commit {n} failed: {err}"),
            }
        }
        assert!(
            revisions.len() < 50,
            "103 commits in {} transactions: they were not merged",
            revisions.len()
        );
        let stored = store.load().await.unwrap();
        let keys: Vec<&str> = stored.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(keys.len(), 102, "{keys:?}");
        assert!((0..100).all(|n| keys.contains(&format!("instances/g{n}").as_str())));
    }
}
