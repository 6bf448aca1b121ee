//! A `Store` that keeps everything in memory: tests and throw-away demos. It implements the
//! same revision and conflict rules as the durable backends and passes the same suite.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{
    Claims, Entry, Expect, PageVisitor, RecordFormat, Revision, Store, StoreError, Write,
};

/// Key → (revision, value).
type Entries = BTreeMap<String, (Revision, Vec<u8>)>;

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The entries, and the last revision issued.
    inner: Mutex<(Entries, Revision)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Checks every expectation against `current`; shared by the backends that evaluate
/// conditions themselves.
pub(crate) fn check_expectations(
    writes: &[Write],
    current: impl Fn(&str) -> Result<Option<Revision>, StoreError>,
) -> Result<(), StoreError> {
    for write in writes {
        let found = current(&write.key)?;
        let holds = match write.expect {
            Expect::Any => true,
            Expect::Absent => found.is_none(),
            Expect::Revision(expected) => found == Some(expected),
        };
        if !holds {
            return Err(StoreError::Conflict {
                key: write.key.clone(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn load_pages(&self, visit: &mut PageVisitor<'_>) -> Result<(), StoreError> {
        // One page: the memory store holds everything in memory anyway.
        let page = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner
                .0
                .iter()
                .map(|(key, (revision, value))| Entry {
                    key: key.clone(),
                    value: value.clone(),
                    revision: *revision,
                })
                .collect()
        };
        visit(page)
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
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, last) = &mut *inner;
        check_expectations(&writes, |key| Ok(map.get(key).map(|(rev, _)| *rev)))?;
        *last += 1;
        let revision = *last;
        for write in writes {
            match write.value {
                Some(value) => {
                    map.insert(write.key, (revision, value));
                }
                None => {
                    map.remove(&write.key);
                }
            }
        }
        Ok(revision)
    }

    async fn check(&self) -> Result<(), StoreError> {
        // Memory is always reachable; taking the lock proves no commit is stuck holding it.
        drop(self.inner.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    /// Packed: nothing outlives the process.
    fn record_format(&self) -> RecordFormat {
        RecordFormat::Packed
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        crate::testing::conformance(&super::MemoryStore::new()).await;
    }
}
