//! The `Store` trait: the durability seam under the in-memory map.
//!
//! A store is a flat key space of byte values, each with the revision of the commit that last
//! wrote it (etcd's `mod_revision` model). A commit is a batch of writes that applies
//! atomically, each guarded by an expectation on the key's current revision, so the etcd backend
//! can turn it into one transaction and several replicas never lose an update.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::model::OperationId;

/// A store revision; every commit gets a new, larger one.
pub type Revision = u64;

/// What a write expects of the key before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything: an unconditional write.
    Any,
    /// The key does not exist.
    Absent,
    /// The key exists at exactly this revision.
    Revision(Revision),
}

/// One write of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
    /// The condition.
    pub expect: Expect,
}

/// The claims (see [`Store::claim`]) a commit takes and gives up with its writes.
///
/// On a store shared by replicas they go into the commit's transaction: the replica that
/// accepts an operation claims it as it stores it, and gives the claim up as it stores its
/// end, instead of a round trip to the store for each (issue #20: the etcd path). They are
/// an economy, never a condition of the commit: a claim the store could not take with it is
/// taken by [`Store::claim`] before the operation is driven, and one not given up lapses
/// with its process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Operations this process drives from now on (the commit creates them).
    pub take: Vec<OperationId>,
    /// Operations this process stops driving (the commit ends them): given up only where
    /// this process holds them.
    pub give_up: Vec<OperationId>,
}

impl Claims {
    /// No claim taken or given up.
    pub fn none() -> Self {
        Claims::default()
    }

    /// Gives up the claim on `operation`, which the commit ends.
    pub fn giving_up(operation: impl Into<OperationId>) -> Self {
        Claims {
            take: Vec::new(),
            give_up: vec![operation.into()],
        }
    }

    /// Whether there is nothing to take or give up.
    pub fn is_empty(&self) -> bool {
        self.take.is_empty() && self.give_up.is_empty()
    }
}

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision of the commit that wrote it.
    pub revision: Revision,
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A write's expectation did not hold: someone else changed the key. Nothing was applied.
    #[error("concurrent change to {key}")]
    Conflict {
        /// The first key whose expectation failed.
        key: String,
    },
    /// The store cannot be reached or did not answer in time; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value cannot be read back.
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Any other backend failure.
    #[error("store failure: {0}")]
    Backend(String),
    /// A commit larger than the store takes in one transaction (etcd: `--max-txn-ops`,
    /// 128 by default); nothing was applied. Callers keep their commits smaller.
    #[error("a commit of {writes} writes is more than the store takes at once ({limit})")]
    TooManyWrites {
        /// The writes of the commit.
        writes: usize,
        /// What the store takes.
        limit: usize,
    },
}

/// What [`Store::load_pages`] hands each page of entries to; an error stops the load.
pub type PageVisitor<'a> = dyn FnMut(Vec<Entry>) -> Result<(), StoreError> + Send + 'a;

/// How the state map writes its records into a store. It reads both, whatever the store says,
/// so a store holding records of either form (written before a change of format, say) loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// A versioned JSON envelope: what operators read with the store's own tools, and what
    /// every build understands (replicas of two versions share an etcd during an upgrade).
    Json,
    /// The map's own packed form (MessagePack, fields by position): no parsing of JSON and
    /// no second encoding, for a store only this process opens (issue #20: a million
    /// instances load in a fraction of the time).
    Packed,
}

/// Entries per page of [`Store::load_pages`].
pub const LOAD_PAGE: usize = 1000;

/// A durable key-value store with revisions and conditional batch commits.
///
/// # Guarantees an implementation gives
/// - `commit` is atomic: all writes apply or none does, and a failed expectation is
///   [`StoreError::Conflict`] with nothing applied.
/// - When `commit` returns `Ok`, the writes survive a crash of the process (and, for a
///   durable backend, of the machine).
/// - Every key written by one commit gets that commit's revision, larger than any before.
#[async_trait]
pub trait Store: std::fmt::Debug + Send + Sync + 'static {
    /// Every stored entry, in key order, handed to `visit` a page at a time (one consistent
    /// snapshot). The map decodes pages as they come, a few at a time (its load blocks
    /// `visit` while they queue), so a large store is never held twice over at start-up:
    /// issue #5's memory per instance, since buffers freed in bulk after a load stay resident
    /// between the records that outlive them.
    async fn load_pages(&self, visit: &mut PageVisitor<'_>) -> Result<(), StoreError>;

    /// Every stored entry, in key order, at once (tests and tools; the map reads in pages).
    async fn load(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        self.load_pages(&mut |mut page| {
            entries.append(&mut page);
            Ok(())
        })
        .await?;
        Ok(entries)
    }

    /// Applies `writes` atomically; returns the commit's revision.
    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError>;

    /// [`Store::commit`], taking and giving up `claims` with the writes where the store can
    /// (see [`Claims`]). A store only one process opens has no claims to keep and just
    /// commits. No default: a store that wraps another must pass the claims on.
    async fn commit_claiming(
        &self,
        writes: Vec<Write>,
        claims: &Claims,
    ) -> Result<Revision, StoreError>;

    /// Whether the store can serve reads and writes right now, without changing anything:
    /// the readiness probe asks this, so it must be cheap and must not block for long (the
    /// caller bounds it with a timeout all the same).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (or another variant) saying why the store cannot serve.
    async fn check(&self) -> Result<(), StoreError>;

    /// A short name for logs ("memory", "embedded", "etcd").
    fn name(&self) -> &'static str;

    /// The form the map writes its records in (see [`RecordFormat`]). No default: a store
    /// that wraps another must pass its answer on.
    fn record_format(&self) -> RecordFormat;

    /// The revision of the snapshot the last load read: [`Store::watch`] delivers what comes
    /// after it. 0 for a store no other process writes. No default, as `record_format`.
    fn loaded_revision(&self) -> Revision;

    /// What the store can tell an operator about itself (the dashboard's store card): where
    /// the data is, how big, and for a cluster its members and leader. Like [`Store::check`],
    /// read-only and quick. The default knows nothing beyond the name.
    ///
    /// # Errors
    /// The store could not be asked.
    async fn status(&self) -> Result<StoreStatus, StoreError> {
        Ok(StoreStatus::default())
    }

    /// Changes other processes commit from the last [`Store::load`] on, as they happen;
    /// `None` for a store no other process writes (memory, embedded). After a
    /// [`WatchEvent::Reset`] the caller loads everything again and watches anew.
    async fn watch(&self) -> Result<Option<mpsc::Receiver<WatchEvent>>, StoreError> {
        Ok(None)
    }

    /// Claims the right to drive an operation for this process. `false` when another live
    /// process holds it; a claim lapses when its process dies, so another takes over.
    /// Stores with a single process always grant it.
    async fn claim(&self, _operation_id: &str) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Gives a claim up (the operation finished).
    async fn release(&self, _operation_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// A point every change committed before the call precedes, for a reader that must see
    /// them all: the store writes a marker that its watch delivers after every earlier change,
    /// as [`WatchEvent::Progress`] with the revision returned here (`StateMap::catch_up` waits
    /// for it). `None` for a store only this process writes: its map is never behind.
    async fn sync_point(&self) -> Result<Option<Revision>, StoreError> {
        Ok(None)
    }
}

/// A change another process made, from [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written.
    Put(Entry),
    /// A key was deleted by the commit at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The deleting commit's revision.
        revision: Revision,
    },
    /// Changes were lost (history compacted, watch broken beyond repair): load again.
    Reset,
    /// Every change up to this revision has been delivered (the events before this one): the
    /// marker of a [`Store::sync_point`].
    Progress(Revision),
}

#[cfg(test)]
fn _object_safe(_: &dyn Store) {}

/// A store's description of itself, for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// Where the data is: the embedded store's file, etcd's key prefix.
    pub location: Option<String>,
    /// The server's version (etcd).
    pub version: Option<String>,
    /// The size of the data on disk, in bytes (etcd: the answering member's database).
    pub size_bytes: Option<u64>,
    /// The cluster's members (etcd), in the order the cluster lists them.
    pub members: Vec<StoreMember>,
}

/// One member of a store cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreMember {
    /// Its name (empty while it has not started).
    pub name: String,
    /// Where clients reach it.
    pub client_urls: Vec<String>,
    /// Whether it leads the cluster now.
    pub leader: bool,
    /// Whether it is a learner (not voting yet).
    pub learner: bool,
}
