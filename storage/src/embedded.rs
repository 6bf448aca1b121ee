//! The embedded durable store, the default for a single node: a redb database file in the
//! data directory. redb gives crash-safe ACID commits (a commit is fsynced before it returns),
//! so a `commit` that returned `Ok` survives `kill -9` and power loss.
//!
//! Layout: table `entries` maps key → (revision, value); table `meta` holds the last revision.
//! redb is synchronous, so every call runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::memory::check_expectations;
use crate::store::{Entry, Revision, Store, StoreError, Write};

const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_REVISION: &str = "last_revision";
/// The database file inside the data directory.
pub const FILE_NAME: &str = "skybroker.redb";

/// The embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    /// The open database.
    db: Arc<Database>,
    /// Its file, for messages.
    path: PathBuf,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory.
    ///
    /// # Errors
    /// The directory cannot be created, or the file is locked by another process or corrupt.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Backend(format!("cannot create {}: {err}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|err| StoreError::Backend(format!("cannot open {}: {err}", path.display())))?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(ENTRIES).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self) -> Result<Vec<Entry>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ENTRIES).map_err(backend)?;
            let mut entries = Vec::new();
            for row in table.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let (revision, bytes) = value.value();
                entries.push(Entry {
                    key: key.value().to_owned(),
                    value: bytes.to_vec(),
                    revision,
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        self.blocking(move |db| {
            // redb allows one write transaction at a time, so checking the expectations and
            // applying the writes inside it is atomic with respect to other commits.
            let txn = db.begin_write().map_err(backend)?;
            let revision = {
                let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
                let mut meta = txn.open_table(META).map_err(backend)?;
                check_expectations(&writes, |key| {
                    Ok(entries.get(key).map_err(backend)?.map(|v| v.value().0))
                })?;
                let last = meta
                    .get(LAST_REVISION)
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                let revision = last + 1;
                meta.insert(LAST_REVISION, revision).map_err(backend)?;
                for write in &writes {
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
                revision
            };
            txn.commit().map_err(backend)?;
            Ok(revision)
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Expect;

    #[tokio::test]
    async fn embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        crate::testing::conformance(&EmbeddedStore::open(dir.path()).unwrap()).await;
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
}
