//! Scheduled clean-up of finished operations (D-08): a finished operation's record answers
//! last_operation for the retention (`engine.operation_retention_secs`), then goes, so the
//! store does not grow with every operation ever run.

use std::sync::Arc;
use std::time::Duration;

use skybroker_storage::{now_millis, Change, UnixMillis};
use tokio::sync::watch;

use super::Engine;

/// The clean-up task: removes finished operation records older than the retention.
pub async fn run_cleanup(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_secs(engine.config.cleanup_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let removed = cleanup_once(&engine, now_millis()).await;
        if removed > 0 {
            log::info!("removed {removed} finished operation record(s) past retention");
        }
    }
}

/// Removes the records of operations finished before `now - retention`; returns how many.
pub async fn cleanup_once(engine: &Engine, now: UnixMillis) -> usize {
    let cutoff = now.saturating_sub(engine.config.operation_retention_secs * 1000);
    let expired = engine.state.finished_by(cutoff);
    let mut removed = 0;
    for id in expired {
        let Some(operation) = engine.state.operation(&id) else {
            continue;
        };
        let _guard = engine.locks.lock(&operation.instance_id).await;
        if engine
            .state
            .operation(&id)
            .is_some_and(|o| !o.in_progress())
        {
            match engine
                .state
                .commit(vec![Change::DeleteOperation(id.as_str().into())])
                .await
            {
                Ok(()) => removed += 1,
                // The record stays, and the next clean-up tries again.
                Err(err) => log::warn!("clean-up of {id} not persisted: {err}"),
            }
        }
    }
    removed
}
