//! Several replicas on one etcd store: each keeps its map current with the others' changes.
//!
//! The store's watch delivers every change another replica commits; this task applies them to
//! the map (so any replica answers any request with the same state), schedules the
//! operations they leave in progress, and wakes a local request waiting for an operation
//! another replica finished. Those are driven by the replica that claimed them (see
//! `Store::claim`); the others keep trying to claim them now and then, so when the owner dies
//! its lease lapses and one of them takes over.
//!
//! When changes were lost (the history was compacted while this replica was away) the map is
//! loaded again from scratch and watching starts over.

use std::sync::Arc;
use std::time::Duration;

use skybroker_storage::{now_millis, WatchEvent};
use tokio::sync::{mpsc, watch};

use crate::core::Core;

/// Changes applied in one go.
const BATCH: usize = 256;
/// How long the replica that accepted an operation has to claim it before others try.
const STANDBY_MS: u64 = 1000;

/// Follows the store's changes until `stop`.
pub async fn follow(
    core: Arc<Core>,
    mut changes: mpsc::Receiver<WatchEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return,
            event = changes.recv() => event,
        };
        let mut batch = match first {
            Some(WatchEvent::Reset) | None => {
                changes = match resync(&core, &mut stop).await {
                    Some(changes) => changes,
                    None => return,
                };
                continue;
            }
            Some(event) => vec![event],
        };
        while batch.len() < BATCH {
            match changes.try_recv() {
                Ok(WatchEvent::Reset) => {
                    batch.push(WatchEvent::Reset);
                    break;
                }
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let reset = batch.last() == Some(&WatchEvent::Reset);
        for operation in core.state.apply_remote(batch) {
            if operation.in_progress() {
                // Driven by whoever claimed it (normally the replica that accepted it, which
                // gets a head start); this replica stands by to take over.
                core.engine
                    .schedule_at(&operation.id, now_millis() + STANDBY_MS);
            } else {
                // Another replica ended it (or a delete there halted it while this replica
                // drove it: the claim goes). A request here may be waiting for it.
                if let Err(err) = core.state.store().release(&operation.id).await {
                    log::debug!("operation {}: claim not released ({err})", operation.id);
                }
                core.engine.finished(operation);
            }
        }
        if reset {
            changes = match resync(&core, &mut stop).await {
                Some(changes) => changes,
                None => return,
            };
        }
    }
}

/// Loads everything again and starts a new watch; retries until it works or `stop`.
async fn resync(
    core: &Arc<Core>,
    stop: &mut watch::Receiver<bool>,
) -> Option<mpsc::Receiver<WatchEvent>> {
    loop {
        let attempt = async {
            core.state.reload().await?;
            core.state.store().watch().await
        };
        match attempt.await {
            Ok(Some(changes)) => {
                core.engine.resume();
                log::info!("state reloaded from the store; following changes again");
                return Some(changes);
            }
            Ok(None) => return None,
            Err(err) => log::warn!("reloading state failed: {err}; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
