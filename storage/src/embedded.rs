//! The embedded durable store, the default for a single node: a redb database file in the
//! data directory. redb gives crash-safe ACID commits (a commit is fsynced before it returns),
//! so a `commit` that returned `Ok` survives `kill -9` and power loss.
//!
//! Layout: table `entries` maps key → (revision, value); table `meta` holds the last revision.
//!
//! # Group commit
//! A durable write transaction costs an fsync, and redb runs one write transaction at a time,
//! so committing each `commit` on its own caps the broker at one fsync per accepted request.
//! Instead, one committer thread owns every write: callers queue their commit and wait for
//! its answer; the thread takes *everything* queued while the previous transaction was being
//! made durable, applies those commits in queue order inside one write transaction, commits it
//! (one fsync), and only then answers each caller. Under load, many commits share one fsync;
//! alone, a commit waits for nothing (no timer, no batching window).
//!
//! Each commit keeps the semantics it would have alone:
//! - its expectations are checked against the state left by everything before it, the
//!   earlier commits of its own batch included; a commit whose expectation fails applies
//!   nothing and gets its own [`StoreError::Conflict`], without affecting the others;
//! - each applied commit gets its own revision, larger than every earlier one, and every key
//!   it writes carries that revision;
//! - nothing is answered before the transaction holding it is durable; if that transaction
//!   fails, every commit of the batch fails (nothing of it was applied).
//!
//! Reads (`load`, `check`) use redb read transactions, outside the async workers' way
//! (`block_in_place` or the blocking pool); they never wait behind the committer.
//!
//! # Memory
//! The map above holds every record, so the store's own cache only needs to speed up writes:
//! it is capped well below redb's default (see `CACHE_BYTES`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::memory::check_expectations;
use crate::store::{
    Claims, Entry, PageVisitor, RecordFormat, Revision, Store, StoreError, StoreStatus, Write,
    LOAD_PAGE,
};

const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_REVISION: &str = "last_revision";
/// The database file inside the data directory.
pub const FILE_NAME: &str = "skybroker.redb";
/// Most commits one write transaction takes: bounds a transaction's size and the wait of
/// the last commit in it.
const MAX_BATCH: usize = 1024;
/// redb's page cache (read cache and write buffer together). redb's default, 1 GiB, ends up
/// holding the whole file once `load` has read every record at start: about 1.6 KiB of RSS
/// per stored instance (156 MiB for 100,000) that nothing reads again, as the map serves every
/// read. A small cache still holds the upper levels of the B-tree that every write walks (a
/// few hundred branch pages for 100,000 instances); leaf pages come from the kernel's page
/// cache, which is shared and reclaimable. Measured with `skybroker-bench`: async provisions
/// per second within noise of the 1 GiB default and of 32 MiB, which cost 250 bytes more per
/// instance at 100,000.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    /// The open database (reads; the committer holds it too).
    db: Arc<Database>,
    /// Its file, for messages.
    path: PathBuf,
    /// The thread that makes every commit; stopped when the last handle is dropped.
    committer: Arc<Committer>,
}

/// How many commits and write transactions the store has made: `commits / transactions` is
/// the average batch, how many commits shared one fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Write transactions committed (each one durable, one fsync).
    pub transactions: u64,
    /// Commits answered from those transactions (applied or conflicting).
    pub commits: u64,
}

/// A commit waiting for the committer.
struct Pending {
    /// The commit's writes.
    writes: Vec<Write>,
    /// Where its answer goes, once durable.
    reply: oneshot::Sender<Result<Revision, StoreError>>,
}

/// Counters shared by the committer thread and the handles.
#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    commits: AtomicU64,
}

/// The committer thread and the queue to it.
struct Committer {
    /// The queue; taken (closed) on drop so the thread ends.
    queue: Option<mpsc::Sender<Pending>>,
    /// The thread, joined on drop so the database is closed when the store is gone.
    thread: Option<JoinHandle<()>>,
    /// What it has done.
    counters: Arc<Counters>,
    /// Held by a test to make commits pile up into one batch.
    #[cfg(test)]
    gate: Arc<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what it holds; joining it
        // releases its handle on the database, so the file can be opened again at once.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory, and starts its
    /// committer thread.
    ///
    /// # Errors
    /// The directory cannot be created, the file is locked by another process or corrupt, or
    /// the thread cannot be started.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Backend(format!("cannot create {}: {err}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|err| StoreError::Backend(format!("cannot open {}: {err}", path.display())))?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(ENTRIES).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        let (queue, requests) = mpsc::channel();
        #[cfg(test)]
        let gate = Arc::new(std::sync::Mutex::new(()));
        let thread = {
            let db = Arc::clone(&db);
            let counters = Arc::clone(&counters);
            #[cfg(test)]
            let gate = Arc::clone(&gate);
            std::thread::Builder::new()
                .name("skybroker-store".to_owned())
                .spawn(move || {
                    while let Ok(first) = requests.recv() {
                        #[cfg(test)]
                        let _gate = gate.lock().unwrap_or_else(|e| e.into_inner());
                        // Everything that queued up meanwhile joins this transaction.
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match requests.try_recv() {
                                Ok(pending) => batch.push(pending),
                                Err(_) => break,
                            }
                        }
                        commit_batch(&db, batch, &counters);
                    }
                })
                .map_err(|err| backend(format!("cannot start the store's committer: {err}")))?
        };
        Ok(EmbeddedStore {
            db,
            path,
            committer: Arc::new(Committer {
                queue: Some(queue),
                thread: Some(thread),
                counters,
                #[cfg(test)]
                gate,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many commits shared how many write transactions so far.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        let counters = &self.committer.counters;
        GroupCommitStats {
            transactions: counters.transactions.load(Ordering::Relaxed),
            commits: counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Queues a commit; the answer arrives once its transaction is durable.
    fn submit(
        &self,
        writes: Vec<Write>,
    ) -> Result<oneshot::Receiver<Result<Revision, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the store's committer has stopped".to_owned());
        self.committer
            .queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Pending { writes, reply })
            .map_err(|_| stopped())?;
        Ok(answer)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| StoreError::Backend(format!("store task failed: {err}")))?
    }
}

/// Commits one batch and answers every commit in it, only after the transaction is durable.
fn commit_batch(db: &Database, batch: Vec<Pending>, counters: &Counters) {
    let (commits, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.writes, pending.reply))
        .unzip();
    match apply_batch(db, &commits) {
        Ok((results, transactions)) => {
            counters
                .transactions
                .fetch_add(transactions, Ordering::Relaxed);
            counters
                .commits
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            for (reply, result) in replies.into_iter().zip(results) {
                // A caller that stopped waiting still had its commit applied, as before.
                let _ = reply.send(result);
            }
        }
        Err(err) => {
            let message = err.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(message.clone())));
            }
        }
    }
}

/// Applies `commits` in order inside one write transaction and makes it durable. Returns each
/// commit's own result and the number of transactions committed (0 when every commit
/// conflicted: nothing to write, nothing to make durable).
///
/// # Errors
/// A backend failure; the transaction is then dropped, which aborts it, so nothing of the
/// batch is applied.
fn apply_batch(
    db: &Database,
    commits: &[Vec<Write>],
) -> Result<(Vec<Result<Revision, StoreError>>, u64), StoreError> {
    // redb allows one write transaction at a time, and only this thread writes, so checking
    // expectations and applying writes inside it is atomic with respect to every other commit.
    let txn = db.begin_write().map_err(backend)?;
    let (results, applied) = {
        let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let mut last = meta
            .get(LAST_REVISION)
            .map_err(backend)?
            .map_or(0, |v| v.value());
        let mut results = Vec::with_capacity(commits.len());
        let mut applied = false;
        for writes in commits {
            // Checked against the transaction's view: the commits before this one in the
            // batch count, exactly as if they had been committed alone.
            let checked = check_expectations(writes, |key| {
                Ok(entries.get(key).map_err(backend)?.map(|v| v.value().0))
            });
            match checked {
                Ok(()) => {}
                Err(conflict @ StoreError::Conflict { .. }) => {
                    results.push(Err(conflict));
                    continue;
                }
                Err(other) => return Err(other),
            }
            let revision = last + 1;
            for write in writes {
                match &write.value {
                    Some(value) => {
                        entries
                            .insert(write.key.as_str(), (revision, value.as_slice()))
                            .map_err(backend)?;
                    }
                    None => {
                        entries.remove(write.key.as_str()).map_err(backend)?;
                    }
                }
            }
            last = revision;
            applied = true;
            results.push(Ok(revision));
        }
        if applied {
            meta.insert(LAST_REVISION, last).map_err(backend)?;
        }
        (results, applied)
    };
    if !applied {
        // Only conflicts, judged against durable state: answer them without an fsync.
        txn.abort().map_err(backend)?;
        return Ok((results, 0));
    }
    txn.commit().map_err(backend)?;
    Ok((results, 1))
}

/// Every stored entry, in key order.
fn read_pages(db: &Database, visit: &mut PageVisitor<'_>) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let table = txn.open_table(ENTRIES).map_err(backend)?;
    let mut page = Vec::with_capacity(LOAD_PAGE);
    for row in table.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let (revision, bytes) = value.value();
        page.push(Entry {
            key: key.value().to_owned(),
            value: bytes.to_vec(),
            revision,
        });
        if page.len() == LOAD_PAGE {
            visit(std::mem::replace(&mut page, Vec::with_capacity(LOAD_PAGE)))?;
        }
    }
    if page.is_empty() {
        return Ok(());
    }
    visit(page)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load_pages(&self, visit: &mut PageVisitor<'_>) -> Result<(), StoreError> {
        // The read runs on this very thread, page by page, while the map's loading threads
        // decode the pages it has handed over (a few at a time: a full queue blocks `visit`).
        // (Read whole on the blocking pool, the entries stayed resident in that thread's
        // arena, pinned there by the few allocations that outlive the load: about 1 KiB of
        // RSS per stored instance.) On a multi-threaded runtime
        // `block_in_place` lets the other tasks move on; a current-thread runtime (tests,
        // tools) has nothing else to run while it opens its store.
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_threaded {
            tokio::task::block_in_place(|| read_pages(&self.db, visit))
        } else {
            read_pages(&self.db, visit)
        }
    }

    fn loaded_revision(&self) -> Revision {
        // Nobody else writes it: nothing to watch for.
        0
    }

    async fn commit_claiming(
        &self,
        writes: Vec<Write>,
        _claims: &Claims,
    ) -> Result<Revision, StoreError> {
        // Only this process opens it: nobody else could drive an operation.
        self.commit(writes).await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        let answer = self.submit(writes)?;
        answer.await.map_err(|_| {
            StoreError::Backend("the store's committer stopped before answering".to_owned())
        })?
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let size = std::fs::metadata(&self.path)
            .map_err(|err| {
                StoreError::Backend(format!("cannot read {}: {err}", self.path.display()))
            })?
            .len();
        Ok(StoreStatus {
            location: Some(self.path.display().to_string()),
            size_bytes: Some(size),
            ..StoreStatus::default()
        })
    }

    async fn check(&self) -> Result<(), StoreError> {
        // Commits need the committer thread: a dead one (a bug) makes the store unusable.
        if self
            .committer
            .thread
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
        {
            return Err(StoreError::Unavailable(
                "the embedded store's committer thread has stopped".to_owned(),
            ));
        }
        // A read transaction that opens the table touches the file and its header without
        // taking the single write lock, so a probe never waits behind a commit.
        self.blocking(|db| {
            let txn = db.begin_read().map_err(backend)?;
            txn.open_table(ENTRIES).map_err(backend)?;
            Ok(())
        })
        .await
    }

    fn name(&self) -> &'static str {
        "embedded"
    }

    /// Packed: one process opens the file, and a build reads what an earlier one wrote.
    fn record_format(&self) -> RecordFormat {
        RecordFormat::Packed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Expect;

    fn put(key: &str, value: &[u8], expect: Expect) -> Write {
        Write {
            key: key.to_owned(),
            value: Some(value.to_vec()),
            expect,
        }
    }

    /// `(key, value, revision)` of everything stored.
    async fn contents(store: &EmbeddedStore) -> Vec<(String, Vec<u8>, Revision)> {
        store
            .load()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.revision))
            .collect()
    }

    #[tokio::test]
    async fn embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        crate::testing::conformance(&EmbeddedStore::open(dir.path()).unwrap()).await;
    }

    /// Issue #19: the embedded store names its file and its size for the dashboard.
    #[tokio::test]
    async fn the_store_describes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let status = store.status().await.unwrap();
        assert_eq!(
            status.location.as_deref(),
            Some(dir.path().join(FILE_NAME).to_str().unwrap())
        );
        assert!(status.size_bytes.is_some_and(|size| size > 0));
        assert!(status.members.is_empty() && status.version.is_none());
    }

    /// Start-up reads the store in pages of `LOAD_PAGE`, in key order, on a current-thread
    /// runtime and on a multi-threaded one (where the read runs in `block_in_place`).
    async fn loads_in_pages_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let total = 2 * LOAD_PAGE + 500;
        let writes = (0..total)
            .rev()
            .map(|n| put(&format!("instances/{n:06}"), b"{}", Expect::Absent))
            .collect();
        store.commit(writes).await.unwrap();
        let mut pages = Vec::new();
        store
            .load_pages(&mut |page| {
                pages.push(page.into_iter().map(|e| e.key).collect::<Vec<_>>());
                Ok(())
            })
            .await
            .unwrap();
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [LOAD_PAGE, LOAD_PAGE, 500]);
        let keys: Vec<String> = pages.concat();
        let expected: Vec<String> = (0..total).map(|n| format!("instances/{n:06}")).collect();
        assert_eq!(keys, expected);
        // A visitor's error stops the load and is returned.
        let mut visited = 0;
        let stopped = store
            .load_pages(&mut |_| {
                visited += 1;
                Err(StoreError::Backend("enough".into()))
            })
            .await;
        assert!(matches!(stopped, Err(StoreError::Backend(m)) if m == "enough"));
        assert_eq!(visited, 1);
    }

    #[tokio::test]
    async fn loads_in_pages_on_a_current_thread_runtime() {
        loads_in_pages_in_key_order().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loads_in_pages_on_a_multi_threaded_runtime() {
        loads_in_pages_in_key_order().await;
    }

    #[tokio::test]
    async fn committed_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let revision = {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let write = Write {
                key: "instances/a".into(),
                value: Some(b"{}".to_vec()),
                expect: Expect::Absent,
            };
            store.commit(vec![write]).await.unwrap()
        };
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let entries = store.load().await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].revision, revision);
        // Revisions keep growing across reopenings.
        let next = store
            .commit(vec![Write {
                key: "instances/b".into(),
                value: Some(vec![1]),
                expect: Expect::Any,
            }])
            .await
            .unwrap();
        assert!(next > revision);
    }

    #[tokio::test]
    async fn a_batch_checks_each_commit_on_its_own_and_gives_each_its_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        // Held, the committer cannot start a transaction: all five commits queue up and are
        // then taken as one batch.
        let gate = store.committer.gate.lock().unwrap();
        let a = store
            .submit(vec![put("instances/k1", b"a", Expect::Absent)])
            .unwrap();
        // Conflicts with `a`, committed before it in the same batch.
        let b = store
            .submit(vec![put("instances/k1", b"b", Expect::Absent)])
            .unwrap();
        let c = store
            .submit(vec![put("instances/k2", b"c", Expect::Absent)])
            .unwrap();
        // Sees `a`'s revision (the first of a fresh store).
        let d = store
            .submit(vec![put("instances/k1", b"d", Expect::Revision(1))])
            .unwrap();
        // Conflicts on its second write (k2 exists since `c`): its first write must not apply.
        let e = store
            .submit(vec![
                put("instances/k3", b"e", Expect::Absent),
                put("instances/k2", b"e", Expect::Absent),
            ])
            .unwrap();
        drop(gate);
        let (a, b, c, d, e) = (
            a.await.unwrap(),
            b.await.unwrap(),
            c.await.unwrap(),
            d.await.unwrap(),
            e.await.unwrap(),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(b, Err(StoreError::Conflict { ref key }) if key == "instances/k1"));
        assert_eq!(c.unwrap(), 2);
        assert_eq!(d.unwrap(), 3);
        assert!(matches!(e, Err(StoreError::Conflict { ref key }) if key == "instances/k2"));
        assert_eq!(
            contents(&store).await,
            [
                ("instances/k1".to_owned(), b"d".to_vec(), 3),
                ("instances/k2".to_owned(), b"c".to_vec(), 2),
            ]
        );
        // The five commits shared one transaction (one fsync).
        assert_eq!(
            store.group_commit_stats(),
            GroupCommitStats {
                transactions: 1,
                commits: 5
            }
        );
    }

    #[tokio::test]
    async fn nothing_is_answered_before_its_transaction_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let gate = store.committer.gate.lock().unwrap();
        let mut answer = store
            .submit(vec![put("instances/a", b"1", Expect::Absent)])
            .unwrap();
        // A blocking sleep: the committer is a thread of its own, and the gate must not be
        // held across an await.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
            "answered while its transaction could not run"
        );
        drop(gate);
        assert_eq!(answer.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_batch_of_only_conflicts_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let first = store
            .commit(vec![put("instances/a", b"1", Expect::Absent)])
            .await
            .unwrap();
        let conflict = store
            .commit(vec![put("instances/a", b"2", Expect::Absent)])
            .await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })));
        // The conflict used no revision.
        let next = store
            .commit(vec![put("instances/b", b"1", Expect::Absent)])
            .await
            .unwrap();
        assert_eq!(next, first + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_get_distinct_increasing_revisions_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|index| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("instances/{index:03}");
                    let revision = store
                        .commit(vec![put(&key, b"x", Expect::Absent)])
                        .await
                        .unwrap();
                    (key, revision)
                })
            })
            .collect();
        let mut committed = Vec::new();
        for task in tasks {
            committed.push(task.await.unwrap());
        }
        let mut revisions: Vec<Revision> = committed.iter().map(|(_, r)| *r).collect();
        revisions.sort_unstable();
        assert_eq!(
            revisions,
            (1..=200).collect::<Vec<_>>(),
            "one revision per commit, none shared, none skipped"
        );
        let stats = store.group_commit_stats();
        assert_eq!(stats.commits, 200);
        drop(store);

        // Every acknowledged commit is durable, each key with its commit's revision.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        committed.sort();
        let stored: Vec<(String, Revision)> = contents(&store)
            .await
            .into_iter()
            .map(|(key, _, revision)| (key, revision))
            .collect();
        assert_eq!(stored, committed);
        let next = store
            .commit(vec![put("instances/next", b"x", Expect::Absent)])
            .await
            .unwrap();
        assert_eq!(next, 201);
    }
}
