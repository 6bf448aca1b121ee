//! Loading the whole map from its store (at start-up, and after a watch reset) as a pipeline:
//! the store's pages are read on the caller's thread, decoded and packed on one thread per
//! core, and applied to the tables in store order on one more thread.
//!
//! Why a pipeline: with a million instances (issue #20), reading, decoding and filling the
//! tables are each a second or more. Done one after the other for each page, most of the
//! machine waits: reading page N+1 and filling the tables with page N-1 now overlap with
//! decoding page N. Store order is kept (a later revision of a key is applied after an
//! earlier one, as a plain loop would). The bounded queues keep a few raw pages in flight;
//! decoded pages that arrive ahead of their turn wait for it in packed form, as they would in
//! the tables, so a load never holds the store twice over.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::codec::decode_entry;
use super::{Maps, Packing};
use crate::store::{Entry, Revision, Store, StoreError};

/// A page decoded and packed, in store order, or why it could not be.
type Decoded = Result<Vec<(Revision, Packing)>, StoreError>;

/// Decoding threads at most (pages are 1,000 entries; more threads only queue).
const MOST_DECODERS: usize = 8;

/// Everything `store` holds (see the module doc). A record that cannot be decoded fails the
/// whole load with its [`StoreError::Corrupt`], and the reading stops at the next page.
pub(super) async fn load(store: &dyn Store) -> Result<Maps, StoreError> {
    let decoders = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MOST_DECODERS);
    let (pages, to_decode) = bounded::<(u64, Vec<Entry>)>(2 * decoders);
    let (decoded, to_apply) = bounded::<(u64, Decoded)>(2 * decoders);
    let failed = Arc::new(AtomicBool::new(false));
    // (Should a thread fail to start, those started end by themselves once `pages` is
    // dropped.)
    let mut decoding = Vec::with_capacity(decoders);
    for _ in 0..decoders {
        let (to_decode, decoded) = (to_decode.clone(), decoded.clone());
        decoding.push(spawn(move || decode_pages(&to_decode, &decoded))?);
    }
    drop((to_decode, decoded));
    let applier = {
        let failed = Arc::clone(&failed);
        spawn(move || apply_in_order(&to_apply, &failed))?
    };

    let mut next = 0;
    let read = store
        .load_pages(&mut |page| {
            if failed.load(Ordering::Relaxed) {
                // The applier has the error; the load answers it below.
                return Err(StoreError::Backend("a page did not decode".to_owned()));
            }
            pages.send((next, page)).map_err(|_| stopped())?;
            next += 1;
            Ok(())
        })
        .await;
    // Every thread is joined before anything is answered: the decoders end once the pages
    // are, and the applier once the decoders are.
    drop(pages);
    let mut panicked = false;
    for decoder in decoding {
        panicked |= decoder.join().is_err();
    }
    let applied = applier.join().unwrap_or_else(|_| Err(stopped()));
    match (read, applied) {
        // A decoding failure stopped the read: its own error says which record.
        (_, Err(err)) => Err(err),
        (Err(err), Ok(_)) => Err(err),
        (Ok(()), Ok(_)) if panicked => Err(stopped()),
        (Ok(()), Ok(mut maps)) => {
            // The watch takes over from the snapshot read.
            maps.delivered = store.loaded_revision();
            Ok(maps)
        }
    }
}

fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, StoreError> {
    std::thread::Builder::new()
        .name("skybroker-load".to_owned())
        .spawn(work)
        .map_err(|err| StoreError::Backend(format!("cannot start a loading thread: {err}")))
}

fn stopped() -> StoreError {
    StoreError::Backend("a thread loading the store stopped".to_owned())
}

/// A decoding thread: pages in, decoded pages out, until either queue closes.
fn decode_pages(pages: &Receiver<(u64, Vec<Entry>)>, decoded: &Sender<(u64, Decoded)>) {
    for (number, page) in pages {
        let result = decode_page(&page);
        // The page's buffers are freed here, while the next one is read.
        drop(page);
        if decoded.send((number, result)).is_err() {
            return;
        }
    }
}

fn decode_page(page: &[Entry]) -> Decoded {
    let mut decoded = Vec::with_capacity(page.len());
    for entry in page {
        if let Some(change) = decode_entry(entry)? {
            decoded.push((entry.revision, change.into()));
        }
    }
    Ok(decoded)
}

/// The applying thread: fills the tables with the decoded pages in store order (they arrive
/// in any order). After an error it only drains the queue, so no decoder waits on it.
fn apply_in_order(
    decoded: &Receiver<(u64, Decoded)>,
    failed: &AtomicBool,
) -> Result<Maps, StoreError> {
    let mut maps = Maps::default();
    let mut early: BTreeMap<u64, Decoded> = BTreeMap::new();
    let mut next = 0;
    let mut error = None;
    for (number, page) in decoded {
        if error.is_some() {
            continue;
        }
        early.insert(number, page);
        while let Some(page) = early.remove(&next) {
            next += 1;
            match page {
                Ok(page) => {
                    for (revision, packing) in page {
                        maps.apply(revision, packing);
                    }
                }
                Err(err) => {
                    failed.store(true, Ordering::Relaxed);
                    error = Some(err);
                    break;
                }
            }
        }
    }
    match error {
        Some(err) => Err(err),
        // A page never came: its decoder stopped.
        None if !early.is_empty() => Err(stopped()),
        None => Ok(maps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::codec::{instance_key, json_value};
    use crate::map::tests::instance;
    use crate::map::{Change, StateMap};
    use crate::memory::MemoryStore;
    use crate::store::{Expect, Write, LOAD_PAGE};

    /// A memory store with `count` instances, written in both forms (odd ids in JSON), and
    /// `corrupt` in place of one of them.
    async fn store_of(count: usize, corrupt: Option<usize>) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let ids: Vec<String> = (0..count).map(|n| format!("i{n:06}")).collect();
        for chunk in ids.chunks(500) {
            let changes = chunk
                .iter()
                .filter(|id| id.ends_with(['0', '2', '4', '6', '8']))
                .map(|id| Change::PutInstance(instance(id)))
                .collect();
            map.commit(changes).await.unwrap();
            let json = chunk
                .iter()
                .filter(|id| id.ends_with(['1', '3', '5', '7', '9']))
                .map(|id| Write {
                    key: instance_key(id),
                    value: json_value(&Change::PutInstance(instance(id))),
                    expect: Expect::Any,
                })
                .collect();
            store.commit(json).await.unwrap();
        }
        if let Some(n) = corrupt {
            let write = Write {
                key: instance_key(&ids[n]),
                value: Some(b"{\"v\":1,\"record\":{\"id\":5}}".to_vec()),
                expect: Expect::Any,
            };
            store.commit(vec![write]).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn many_pages_load_whole_in_both_forms() {
        let count = 3 * LOAD_PAGE + 17;
        let store = store_of(count, None).await;
        let maps = load(store.as_ref()).await.unwrap();
        assert_eq!(maps.instances.len(), count);
        for n in [0, 1, LOAD_PAGE, 2 * LOAD_PAGE + 1, count - 1] {
            let id = format!("i{n:06}");
            let held = maps.instances.get(&id).unwrap();
            assert_eq!(
                held.packed.unpack::<crate::model::ServiceInstance>(),
                instance(&id)
            );
        }
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_fails_the_load_and_names_its_key() {
        let count = 3 * LOAD_PAGE;
        let store = store_of(count, Some(LOAD_PAGE + 5)).await;
        let err = load(store.as_ref()).await.unwrap_err();
        match err {
            StoreError::Corrupt { key, .. } => {
                assert_eq!(key, instance_key(&format!("i{:06}", LOAD_PAGE + 5)));
            }
            other => panic!("not a corrupt record: {other:?}"),
        }
    }
}
