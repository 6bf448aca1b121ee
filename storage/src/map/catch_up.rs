//! Catching up with other replicas. The map follows the others' commits through the
//! store's watch, a moment after they are made, so a record missing from the map may be one
//! another replica has just created. Before a reader answers that something does not exist,
//! [`StateMap::catch_up`] writes a sync marker (`Store::sync_point`) and waits until the
//! watch has delivered the marker's revision: then the map holds every change committed
//! before the call. Markers are shared by concurrent catch-ups, so a burst of misses costs
//! the store one or two writes; a marker the watch will not deliver (after a reload) is
//! followed by another, and after 5 s the miss is answered `Unavailable`. Kept apart from
//! the rest of the map, which answers from memory and never waits for the watch.

use std::time::Duration;

use super::StateMap;
use crate::store::{Revision, StoreError};

/// Sync markers written by [`StateMap::catch_up`]. A marker serves every catch-up that began
/// before its write started, so a burst of misses costs the store one or two writes, not one
/// each.
#[derive(Debug, Default)]
pub(super) struct Markers {
    /// How many marker writes have started (each gets the next number).
    started: u64,
    /// The latest marker written: its number and its revision.
    written: Option<(u64, Revision)>,
}

/// How long [`StateMap::catch_up`] waits for the watch before it gives up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// How long [`StateMap::catch_up`] waits for one marker before it writes another.
const MARKER_AGAIN: Duration = Duration::from_secs(1);

impl StateMap {
    /// Waits until the map holds every change committed to the store before the call, by
    /// this process or another; at once for a store only this process writes. Costs a store
    /// write (the sync marker, see [`Store::sync_point`](crate::Store::sync_point)) and the watch's delay, so it is for
    /// misses: a record not found may be one another replica has just created.
    ///
    /// # Errors
    /// The store cannot write its marker, or the watch did not deliver it within 5 s
    /// ([`StoreError::Unavailable`]: the map cannot vouch for an absence).
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + CATCH_UP_LIMIT;
        let mut watched = self.watched.subscribe();
        loop {
            // Any marker whose write starts from now on will do.
            let now = self.markers.lock().await.started;
            let Some(target) = self.marker_after(now).await? else {
                return Ok(());
            };
            // A marker the watch will not deliver (it was restarted from a reload past the
            // marker's revision) is followed by a new one a second later.
            let wait = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(MARKER_AGAIN);
            let reached = watched.wait_for(|watched| *watched >= target);
            // (The sender lives as long as the map: `wait_for` cannot fail.)
            if matches!(tokio::time::timeout(wait, reached).await, Ok(Ok(_))) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "the watch has not delivered revision {target} within {CATCH_UP_LIMIT:?}"
                )));
            }
        }
    }

    /// The revision of a marker whose write started after `started` writes had: the latest
    /// one if it did, else a new one. `None` for a store without markers.
    async fn marker_after(&self, started: u64) -> Result<Option<Revision>, StoreError> {
        let mut markers = self.markers.lock().await;
        if let Some((number, revision)) = markers.written {
            if number > started {
                return Ok(Some(revision));
            }
        }
        markers.started += 1;
        let number = markers.started;
        let revision = self.store.sync_point().await?;
        if let Some(revision) = revision {
            markers.written = Some((number, revision));
        }
        Ok(revision)
    }

    /// [`StateMap::catch_up`] unless `present` finds what the caller looks for: a hit costs
    /// nothing more. Call it before taking an instance lock (the engine waits for those), then
    /// read under the lock.
    ///
    /// # Errors
    /// As [`StateMap::catch_up`], only when `present` found nothing.
    pub async fn catch_up_unless(
        &self,
        present: impl Fn(&StateMap) -> bool,
    ) -> Result<(), StoreError> {
        if present(self) {
            return Ok(());
        }
        self.catch_up().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::map::tests::instance;
    use crate::map::Change;
    use crate::memory::MemoryStore;
    use crate::store::WatchEvent;

    /// Two maps on one etcd key space, as two replicas. Replica B does not hold what A has
    /// just committed until B's watch delivers it; `catch_up` waits for that (and for
    /// nothing on a store only this process writes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn catch_up_waits_until_another_replicas_commit_is_applied() {
        let memory = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        tokio::time::timeout(Duration::from_millis(100), memory.catch_up())
            .await
            .expect("a store only this process writes has nothing to wait for")
            .unwrap();
        let Some(endpoint) = crate::testing::etcd_endpoint() else {
            return;
        };
        let options = crate::testing::etcd_options(&endpoint);
        let connect = || crate::etcd::EtcdStore::connect(options.clone());
        let a = StateMap::open(Arc::new(connect().await.unwrap()))
            .await
            .unwrap();
        let b = Arc::new(
            StateMap::open(Arc::new(connect().await.unwrap()))
                .await
                .unwrap(),
        );
        let mut changes = b.store().watch().await.unwrap().expect("etcd watches");
        // B's follower, run by hand: applies what the watch delivers until `until` ends.
        async fn follow<T>(
            b: &StateMap,
            changes: &mut tokio::sync::mpsc::Receiver<WatchEvent>,
            until: tokio::task::JoinHandle<T>,
        ) -> T {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while !until.is_finished() {
                assert!(std::time::Instant::now() < deadline, "not caught up in 3 s");
                let next = tokio::time::timeout(Duration::from_millis(20), changes.recv());
                if let Ok(Some(event)) = next.await {
                    b.apply_remote(vec![event]);
                }
            }
            until.await.unwrap()
        }
        // Nothing changed yet: B is caught up once its sync marker comes back.
        let idle = {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.catch_up().await })
        };
        follow(&b, &mut changes, idle).await.unwrap();

        a.commit(vec![Change::PutInstance(instance("fresh"))])
            .await
            .unwrap();
        assert!(
            b.instance("fresh").is_none(),
            "B's watch is not applied yet"
        );
        let reader = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                b.catch_up_unless(|map| map.has_instance("fresh")).await?;
                Ok::<_, StoreError>(b.instance("fresh"))
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!reader.is_finished(), "the reader waits for the watch");
        let found = follow(&b, &mut changes, reader).await.unwrap();
        assert_eq!(found.map(|i| i.id.into_string()), Some("fresh".to_owned()));
        // Absent after catching up: absent in the store.
        let never = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                b.catch_up_unless(|map| map.has_instance("never")).await?;
                Ok::<_, StoreError>(b.instance("never"))
            })
        };
        assert!(follow(&b, &mut changes, never).await.unwrap().is_none());

        // A burst of misses shares markers: 20 concurrent catch-ups write one or two.
        let before = b.markers.lock().await.started;
        let burst = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                let mut readers = tokio::task::JoinSet::new();
                for _ in 0..20 {
                    let b = Arc::clone(&b);
                    readers.spawn(async move { b.catch_up().await });
                }
                readers.join_all().await
            })
        };
        for result in follow(&b, &mut changes, burst).await {
            result.unwrap();
        }
        let written = b.markers.lock().await.started - before;
        assert!(
            (1..=2).contains(&written),
            "{written} markers for 20 readers"
        );

        // A reload while a reader waits (after a watch reset): the new watch starts past the
        // reader's marker and never delivers it, so the reader writes another.
        let waiting = {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.catch_up().await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.reload().await.unwrap();
        drop(changes);
        let mut changes = b.store().watch().await.unwrap().expect("etcd watches");
        follow(&b, &mut changes, waiting).await.unwrap();
    }
}
