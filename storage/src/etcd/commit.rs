//! Commits to etcd: one transaction each, or several merged into one (group commit).
//!
//! etcd's cost is per transaction far more than per key: each is a raft entry, a pass of
//! its apply loop and a round trip. Commits that wait together (64 platforms provisioning at
//! once, and the engine's progress beside them) go as one transaction: the writes of all,
//! the conditions of all. A merged transaction whose conditions do not all hold is split,
//! each commit tried alone, so a conflict fails only its own commit. Commits of one key
//! never share a transaction (etcd refuses a key twice in one), and a merged transaction
//! stays within etcd's limits of operations and bytes.
//!
//! A commit goes at once while fewer than [`IN_FLIGHT`] transactions are under way; else it
//! waits for one of them, and goes with every commit that waited with it. Two in flight keep
//! etcd's disk busy while the next batch gathers (issue #20: the etcd path against raw puts).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{Endpoints, Lease, MAX_TXN_OPS, OWNERS};
use crate::model::OperationId;
use crate::store::{Claims, Expect, Revision, StoreError, Write};

/// Attempts of a commit when etcd is unreachable (a member just died, a leader election),
/// at least; more while the retry budget (the request timeout) lasts.
const MIN_ATTEMPTS: u32 = 3;
/// First pause between attempts; doubles each time.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Operations of a transaction that nests claims: etcd allows a nested transaction only the
/// operations the outer one leaves of its limit, so one is kept free.
const MAX_WITH_CLAIMS: usize = MAX_TXN_OPS - 1;
/// Transactions in flight at once; commits arriving meanwhile wait and go merged. Measured
/// (bench/README.md, issue #20): async provisions over etcd at 64 connections reached
/// 5,500–6,100/s with 8, 7,100–8,000/s with 2 (etcd's CPU per request down by a third),
/// 5,700–6,200/s with 1 (nothing overlaps etcd's disk write).
const IN_FLIGHT: usize = 2;
/// The most bytes of values a merged transaction carries (etcd refuses requests over
/// `--max-request-bytes`, 1.5 MiB by default; a single commit is never held to this).
const MERGED_BYTES: usize = 512 * 1024;
/// Commits waiting for a transaction, at most (then callers wait to hand theirs over).
const WAITING: usize = 4096;

/// No claims, for a commit that cannot take them along.
static NO_CLAIMS: Claims = Claims {
    take: Vec::new(),
    give_up: Vec::new(),
};

/// Whether a commit's claims went into its transaction.
pub(super) enum ClaimsTaken {
    /// They did, on this lease; these operations were claimed (a claim held by someone
    /// already is not).
    Yes { lease: i64, taken: Vec<OperationId> },
    /// They did not (no lease, too many writes, or an outcome read back after a retry).
    No,
}

/// A commit's result, with what became of its claims.
pub(super) type Committed = Result<(Revision, ClaimsTaken), StoreError>;

/// What a transaction needs: the connection, where the keys live, and whose claims they are.
/// Shared by the store and its group committer.
pub(super) struct Connection {
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) prefix: String,
    /// This process's id, the value of the ownership keys it holds.
    pub(super) replica: String,
    /// This replica's lease.
    pub(super) lease: Arc<Lease>,
    /// How long a commit keeps retrying while etcd is unreachable.
    pub(super) retry_budget: Duration,
}

impl Connection {
    pub(super) fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// One attempt at a commit: one transaction, with the claims when they fit in it (and a
    /// lease is granted to take them on); the answer says whether they went along.
    pub(super) async fn try_commit(
        &self,
        writes: &[Write],
        claims: &Claims,
    ) -> Result<(Revision, ClaimsTaken), StoreError> {
        let mut compares = Vec::new();
        let mut operations = Vec::new();
        for write in writes {
            let key = self.full_key(&write.key);
            match write.expect {
                Expect::Any => {}
                Expect::Absent => {
                    compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0))
                }
                Expect::Revision(revision) => compares.push(Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision as i64,
                )),
            }
            operations.push(match &write.value {
                Some(value) => TxnOp::put(key, value.clone(), None),
                None => TxnOp::delete(key, None),
            });
        }
        let fits = writes.len() + claims.take.len() + claims.give_up.len() <= MAX_WITH_CLAIMS;
        let lease = self
            .current_lease()
            .ok()
            .filter(|_| fits && !claims.is_empty());
        if let Some(lease) = lease {
            for id in &claims.take {
                operations.push(TxnOp::txn(self.claim_txn(id, lease)));
            }
            for id in &claims.give_up {
                operations.push(TxnOp::txn(self.release_txn(id)));
            }
        }
        let txn = Txn::new().when(compares).and_then(operations);
        let response = self
            .endpoints
            .call(|mut c| async move { c.txn(txn).await })
            .await?;
        if !response.succeeded() {
            let conditional: Vec<&str> = writes
                .iter()
                .filter(|w| w.expect != Expect::Any)
                .map(|w| w.key.as_str())
                .collect();
            return Err(StoreError::Conflict {
                key: conditional.join(", "),
            });
        }
        let revision = response.header().map_or(0, |h| h.revision()) as Revision;
        let Some(lease) = lease else {
            return Ok((revision, ClaimsTaken::No));
        };
        // The answers of the claims follow those of the writes, in order.
        let taken = (response.op_responses().into_iter().skip(writes.len()))
            .zip(&claims.take)
            .filter(|(answer, _)| matches!(answer, TxnOpResponse::Txn(txn) if txn.succeeded()))
            .map(|(_, id)| id.clone())
            .collect();
        Ok((revision, ClaimsTaken::Yes { lease, taken }))
    }

    /// The transaction that claims `operation_id` on `lease` unless someone holds it.
    pub(super) fn claim_txn(&self, operation_id: &str, lease: i64) -> Txn {
        let key = self.full_key(&format!("{OWNERS}{operation_id}"));
        Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                self.replica.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
    }

    /// The transaction that removes this replica's claim on `operation_id` (only its own).
    pub(super) fn release_txn(&self, operation_id: &str) -> Txn {
        let key = self.full_key(&format!("{OWNERS}{operation_id}"));
        Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                self.replica.clone(),
            )])
            .and_then([TxnOp::delete(key, None)])
    }

    /// A commit, retried while etcd is unreachable (see [`Store::commit`]).
    ///
    /// `uncertain`: an earlier attempt of these writes may have applied (its answer was
    /// lost), so a conflict is read back before it is reported. The answer says whether the
    /// outcome was uncertain at the end (for a merged commit split after it).
    pub(super) async fn commit_attempts(
        &self,
        writes: &[Write],
        claims: &Claims,
        mut uncertain: bool,
    ) -> (Committed, bool) {
        let mut delay = RETRY_DELAY;
        let mut attempt = 1;
        let mut claims = claims;
        let give_up = tokio::time::Instant::now() + self.retry_budget;
        loop {
            match self.try_commit(writes, claims).await {
                Err(StoreError::Unavailable(message))
                    if attempt < MIN_ATTEMPTS || tokio::time::Instant::now() < give_up =>
                {
                    // Typically a member that just died: the next attempt goes to another.
                    log::debug!("etcd commit attempt {attempt} failed ({message}); retrying");
                    uncertain = true;
                }
                // The lease lapsed before the keeper noticed: the claims cannot go on it, and
                // they never fail a commit (see `Claims`); taken later by `claim`.
                Err(StoreError::Backend(message))
                    if !claims.is_empty() && message.contains("lease not found") =>
                {
                    log::debug!("etcd lease gone ({message}); committing without the claims");
                    claims = &NO_CLAIMS;
                    continue;
                }
                // After a failed attempt whose outcome is unknown, a conflict may be our own
                // earlier attempt having applied: read back before calling it a conflict.
                Err(StoreError::Conflict { key }) if uncertain => {
                    let committed = match self.already_applied(writes).await {
                        // Whether the claims went along is not known: as if they did not.
                        Ok(Some(revision)) => Ok((revision, ClaimsTaken::No)),
                        Ok(None) => Err(StoreError::Conflict { key }),
                        Err(err) => Err(err),
                    };
                    return (committed, uncertain);
                }
                result => return (result, uncertain),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
            attempt += 1;
        }
    }

    /// Whether every write of `writes` is what etcd holds now (an earlier attempt applied);
    /// the revision they were written at if so.
    pub(super) async fn already_applied(
        &self,
        writes: &[Write],
    ) -> Result<Option<Revision>, StoreError> {
        let mut revision = None;
        // A commit of deletes only leaves no revision behind: the store's revision then (at
        // or past the delete's) stands for it, so the map takes the deletes.
        let mut read_at = 0;
        for write in writes {
            let key = self.full_key(&write.key);
            let response = self
                .endpoints
                .call(|mut c| async move { c.get(key, None).await })
                .await?;
            read_at = response.header().map_or(0, |h| h.revision()) as Revision;
            let current = response.kvs().first();
            let same = match (&write.value, current) {
                (Some(value), Some(kv)) => {
                    revision = Some(kv.mod_revision() as Revision);
                    kv.value() == value.as_slice()
                }
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Ok(None);
            }
        }
        Ok(revision.or(Some(read_at)))
    }

    /// This replica's lease, or `Unavailable` while none is granted.
    pub(super) fn current_lease(&self) -> Result<i64, StoreError> {
        (self.lease.id()).ok_or_else(|| StoreError::Unavailable("no etcd lease yet".to_owned()))
    }
}

/// A commit waiting for its transaction.
struct Pending {
    writes: Vec<Write>,
    claims: Claims,
    answer: oneshot::Sender<Committed>,
}

impl Pending {
    /// Operations of its transaction: the writes and the claims.
    fn operations(&self) -> usize {
        self.writes.len() + self.claims.take.len() + self.claims.give_up.len()
    }

    fn bytes(&self) -> usize {
        (self.writes.iter())
            .map(|write| write.key.len() + write.value.as_ref().map_or(0, Vec::len))
            .sum()
    }

    /// The keys it writes (claims included, as ownership keys).
    fn keys(&self) -> impl Iterator<Item = String> + '_ {
        let claims = self.claims.take.iter().chain(&self.claims.give_up);
        (self.writes.iter().map(|write| write.key.clone()))
            .chain(claims.map(|id| format!("{OWNERS}{id}")))
    }
}

/// Commits going to etcd as one transaction.
#[derive(Default)]
struct Batch {
    commits: Vec<Pending>,
    keys: HashSet<String>,
    operations: usize,
    bytes: usize,
}

impl Batch {
    /// Adds `pending` unless it shares a key with the batch or would take it past etcd's
    /// limits; then it is handed back (for the next batch). The first commit always fits.
    fn add(&mut self, pending: Pending) -> Result<(), Pending> {
        let operations = self.operations + pending.operations();
        let bytes = self.bytes + pending.bytes();
        let fits = operations <= MAX_WITH_CLAIMS && bytes <= MERGED_BYTES;
        if !self.commits.is_empty() && !fits {
            return Err(pending);
        }
        let keys: Vec<String> = pending.keys().collect();
        if !self.commits.is_empty() && keys.iter().any(|key| self.keys.contains(key)) {
            return Err(pending);
        }
        self.keys.extend(keys);
        self.operations = operations;
        self.bytes = bytes;
        self.commits.push(pending);
        Ok(())
    }

    /// Commits the batch and answers each of its commits.
    async fn commit(mut self, connection: &Arc<Connection>) {
        if self.commits.len() == 1 {
            let Pending {
                writes,
                claims,
                answer,
            } = self.commits.remove(0);
            let (committed, _) = connection.commit_attempts(&writes, &claims, false).await;
            let _ = answer.send(committed);
            return;
        }
        let mut writes = Vec::with_capacity(self.operations);
        let mut claims = Claims::none();
        for pending in &self.commits {
            writes.extend(pending.writes.iter().cloned());
            claims.take.extend(pending.claims.take.iter().cloned());
            claims
                .give_up
                .extend(pending.claims.give_up.iter().cloned());
        }
        let (committed, uncertain) = connection.commit_attempts(&writes, &claims, false).await;
        match committed {
            Ok((revision, taken)) => {
                for pending in self.commits {
                    let taken = match &taken {
                        ClaimsTaken::Yes { lease, taken } => ClaimsTaken::Yes {
                            lease: *lease,
                            taken: (taken.iter())
                                .filter(|id| pending.claims.take.contains(id))
                                .cloned()
                                .collect(),
                        },
                        ClaimsTaken::No => ClaimsTaken::No,
                    };
                    let _ = pending.answer.send(Ok((revision, taken)));
                }
            }
            // etcd out of reach for the whole retry budget: the same for each alone.
            Err(err @ StoreError::Unavailable(_)) => {
                for pending in self.commits {
                    let _ = pending.answer.send(Err(err.clone()));
                }
            }
            Err(_) => {
                // Whose condition (or which write) failed etcd does not say: each alone
                // decides, reading back first if the merged one may have applied.
                let mut alone = tokio::task::JoinSet::new();
                for pending in self.commits {
                    let connection = Arc::clone(connection);
                    alone.spawn(async move {
                        let (committed, _) = connection
                            .commit_attempts(&pending.writes, &pending.claims, uncertain)
                            .await;
                        let _ = pending.answer.send(committed);
                    });
                }
                while alone.join_next().await.is_some() {}
            }
        }
    }
}

/// The group committer: takes commits, and sends them as transactions, merged while
/// earlier ones are under way (see the module doc).
pub(super) struct Group {
    queue: mpsc::Sender<Pending>,
    task: JoinHandle<()>,
}

impl Group {
    /// Starts the committer on `connection`.
    pub(super) fn start(connection: Arc<Connection>) -> Group {
        let (queue, waiting) = mpsc::channel(WAITING);
        let task = tokio::spawn(run(connection, waiting));
        Group { queue, task }
    }

    /// Commits `writes` with `claims`, in a transaction of its own or merged with others.
    pub(super) async fn commit(&self, writes: Vec<Write>, claims: Claims) -> Committed {
        // etcd refuses larger transactions with an opaque error; say it plainly instead.
        if writes.len() > MAX_TXN_OPS {
            return Err(StoreError::TooManyWrites {
                writes: writes.len(),
                limit: MAX_TXN_OPS,
            });
        }
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            writes,
            claims,
            answer,
        };
        let stopped = || StoreError::Unavailable("the etcd store is closing".to_owned());
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The committer's loop: a batch is what waited while every transaction slot was taken.
async fn run(connection: Arc<Connection>, mut waiting: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut held_over: Option<Pending> = None;
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let first = match held_over.take() {
            Some(pending) => pending,
            None => match waiting.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut batch = Batch::default();
        let _ = batch.add(first);
        while let Ok(next) = waiting.try_recv() {
            if let Err(next) = batch.add(next) {
                held_over = Some(next);
                break;
            }
        }
        tokio::spawn(send(Arc::clone(&connection), batch, slot));
    }
}

async fn send(connection: Arc<Connection>, batch: Batch, _slot: OwnedSemaphorePermit) {
    batch.commit(&connection).await;
}
