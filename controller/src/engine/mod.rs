//! The status-scanning engine: drives every operation in flight to its end.
//!
//! # Shape
//! - [`schedule`]: operations in flight sit in an index ordered by their next due time, and
//!   poll delays grow with back-off and jitter.
//! - [`scan`]: the scanner takes due entries, longest due first, while the workers' queue
//!   has room (a pass costs what it dispatches, never a walk over all instances or all that
//!   is due) and turns each into a job on the dispatcher: a *start* call when the plugin has
//!   not accepted the work yet, a *poll* call once it reported "in progress". A deprovision
//!   first cascades to its bindings (D-03).
//! - [`apply`]: outcomes come back from the workers and are applied under the instance lock,
//!   outcomes of different instances concurrently (their commits then share group-commit
//!   transactions): persist the transition, then reschedule (with back-off) or finish, then
//!   wake a synchronous request waiting for it.
//! - [`transitions`]: the state machine itself, as pure functions the others call.
//! - [`cleanup`]: finished operation records older than the retention are removed (D-08).
//!
//! Busy marks keep at most one job per instance on a worker at any time, so a plugin never
//! sees concurrent calls for one instance and its bindings (a deprovision that halts a
//! running provision waits until that call returns, D-17).
//!
//! # Guarantees
//! - The store is the queue of record. An operation accepted but not yet queued (full
//!   dispatcher, crash, restart) stays `in progress` in the store and is scheduled again by
//!   [`Engine::resume`] at start or by the scanner on its next pass.
//! - Every step may repeat after a crash: plugin calls are idempotent by contract, and a
//!   transition is persisted before anything depends on it.
//! - An operation that outlives its deadline (the plan's `maximum_polling_duration`) fails.

pub mod apply;
pub mod cleanup;
pub mod scan;
pub mod schedule;
pub mod transitions;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashbrown::HashMap;
use skybroker_config::{EngineConfig, Plan};
use skybroker_dispatcher::Dispatcher;
use skybroker_storage::{
    now_millis, Basis, Change, Claims, Operation, OperationId, OperationKind, ServiceBinding,
    ServiceInstance, StateMap, UnixMillis,
};
use tokio::sync::{oneshot, MutexGuard, Notify};

pub use apply::run_applier;
pub use cleanup::{cleanup_once, run_cleanup};
pub use scan::run_scanner;

use crate::catalog::Catalogs;
use crate::error::ApiError;
use crate::jobs::Job;
use crate::locks::InstanceLocks;
use crate::metrics::{Admitted, Live, Metrics, Sample};
use schedule::Schedule;

/// A finished operation with the records as they were right after it.
#[derive(Debug)]
pub struct Finished {
    /// The final operation.
    pub operation: Operation,
    /// The instance right after (absent once deprovisioned or reverted).
    pub instance: Option<ServiceInstance>,
    /// The binding right after (bind only).
    pub binding: Option<ServiceBinding>,
}

/// What a synchronous request waiting for its operation learns.
#[derive(Debug)]
pub enum SyncOutcome {
    /// The operation reached a terminal state.
    Finished(Box<Finished>),
    /// It could not be queued in time (D-11); its records were removed.
    QueueFull,
}

/// How an operation was launched.
#[derive(Debug)]
pub enum Launched {
    /// Asynchronous: the platform polls this operation id.
    Async(OperationId),
    /// Synchronous: finished, with the records as they were right after.
    Finished(Box<Finished>),
}

/// What the engine works with: handed over by the server at start.
#[derive(Debug)]
pub struct Parts {
    /// The engine's settings.
    pub config: EngineConfig,
    /// Plans and plugins.
    pub catalog: Arc<Catalogs>,
    /// The state map over the store.
    pub state: Arc<StateMap>,
    /// Per-instance locks, shared with admission.
    pub locks: Arc<InstanceLocks>,
    /// The worker pool.
    pub dispatcher: Dispatcher<Job>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The engine: its handles and its bookkeeping (the tasks are `run_scanner`, `run_applier`
/// and `run_cleanup`).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    catalog: Arc<Catalogs>,
    state: Arc<StateMap>,
    locks: Arc<InstanceLocks>,
    dispatcher: Dispatcher<Job>,
    metrics: Arc<Metrics>,
    schedule: Mutex<Schedule>,
    /// Instances with a job on a worker, and which operation it is for.
    busy: Mutex<HashMap<String, String>>,
    /// Synchronous requests waiting, by operation id.
    waiters: Mutex<HashMap<String, oneshot::Sender<SyncOutcome>>>,
    /// Wakes the scanner when something is due now.
    wake: Notify,
    /// Set while the scanner waits for room in the workers' queue.
    wants_room: AtomicBool,
    /// Wakes the scanner when the workers' queue has room again.
    room: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // These maps stay consistent across a panic (single inserts and removes).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creation times of operations: wall-clock milliseconds, but strictly increasing within the
/// process, so "the newest operation of an instance" is never a tie (a delete that halts a
/// provision in the same millisecond must still be the newer one, D-13).
fn operation_clock() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_millis();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(0);
    now.max(previous + 1)
}

impl Engine {
    /// An idle engine over `parts`.
    pub fn new(parts: Parts) -> Self {
        Engine {
            config: parts.config,
            catalog: parts.catalog,
            state: parts.state,
            locks: parts.locks,
            dispatcher: parts.dispatcher,
            metrics: parts.metrics,
            schedule: Mutex::default(),
            busy: Mutex::default(),
            waiters: Mutex::default(),
            wake: Notify::new(),
            wants_room: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// The worker pool (the server shuts it down).
    pub fn dispatcher(&self) -> &Dispatcher<Job> {
        &self.dispatcher
    }

    /// The metrics it records.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A new in-progress operation, with its deadline: the plan's
    /// `maximum_polling_duration`, else the engine's default; a synchronous one gets the
    /// synchronous timeout.
    pub fn new_operation(
        &self,
        kind: OperationKind,
        (instance_id, binding_id): (&str, Option<&str>),
        plan: &Plan,
        sync: bool,
        requested_by: Option<String>,
    ) -> Operation {
        let now = operation_clock();
        let deadline_secs = if sync {
            self.config.sync_timeout_secs
        } else {
            plan.maximum_polling_duration
                .unwrap_or(self.config.operation_timeout_secs)
        };
        transitions::new_operation(
            kind,
            instance_id,
            binding_id,
            sync,
            requested_by,
            now,
            now + deadline_secs * 1000,
        )
    }

    /// Makes an operation due now and wakes the scanner.
    pub fn schedule_now(&self, operation_id: &str) {
        self.schedule_at(operation_id, now_millis());
        self.wake.notify_one();
    }

    /// Makes an operation due at `due`.
    pub fn schedule_at(&self, operation_id: &str, due: UnixMillis) {
        lock(&self.schedule).insert(operation_id, due);
    }

    /// When an operation is next polled, if it is scheduled.
    pub fn next_due(&self, operation_id: &str) -> Option<UnixMillis> {
        lock(&self.schedule).due(operation_id)
    }

    /// Number of operations scheduled (in flight and not on a worker).
    pub fn scheduled(&self) -> usize {
        lock(&self.schedule).len()
    }

    /// Number of operations the engine drives: scheduled, or on a worker (metrics).
    pub fn in_flight(&self) -> usize {
        self.scheduled() + lock(&self.busy).len()
    }

    /// The delay before polling `operation_id` again after `attempts` calls.
    fn backoff(&self, operation_id: &str, attempts: u32) -> u64 {
        schedule::backoff(
            self.config.poll_interval_ms,
            self.config.max_poll_interval_ms,
            operation_id,
            attempts,
        )
    }

    /// Schedules every operation the store holds in progress. Called at start, before
    /// serving, and after a replica reloaded its map.
    pub fn resume(&self) {
        let pending = self.state.operations_in_progress();
        if !pending.is_empty() {
            log::info!("resuming {} operation(s) in flight", pending.len());
        }
        let now = now_millis();
        for operation in pending {
            self.schedule_at(&operation.id, now);
        }
        // Due now: the first pass need not wait for the scan interval.
        self.wake.notify_one();
    }

    /// Persists an admitted operation with its changes on the `basis` the decision read
    /// (a record changed since fails it: [`ApiError::StoreConflict`], decided again),
    /// releases the instance lock, and launches it: the one way a request starts work.
    pub async fn submit(
        &self,
        guard: MutexGuard<'_, ()>,
        basis: Basis,
        changes: Vec<Change>,
        operation: Operation,
    ) -> Result<Launched, ApiError> {
        let admitted = Admitted::of(&changes);
        let halted = halted_by(&changes);
        // Claimed as it is stored: this replica drives what it accepts (the creates it
        // halted are given up, if this replica drove them).
        let claims = claims(vec![operation.id.clone()], &halted);
        (self.state)
            .commit_claiming(&basis, changes, &claims)
            .await?;
        drop(guard);
        self.metrics.record_admitted(admitted);
        self.wake(halted);
        log::info!(
            "operation {} ({}) accepted",
            operation.id,
            operation.describe(),
        );
        self.launch(operation).await
    }

    /// Hands a committed operation over. Asynchronous operations return at once; synchronous
    /// ones wait for their outcome (called *after* the instance lock is released: the
    /// applier needs it to apply the outcome).
    async fn launch(&self, operation: Operation) -> Result<Launched, ApiError> {
        if !operation.sync {
            self.schedule_now(&operation.id);
            return Ok(Launched::Async(operation.id));
        }
        let waiter = self.register_waiter(&operation.id);
        // A delete may have halted it already (D-17), before there was a waiter to wake.
        self.answer_if_ended(&operation.id);
        self.schedule_now(&operation.id);
        let timeout = Duration::from_secs(self.config.sync_timeout_secs);
        match tokio::time::timeout(timeout, waiter).await {
            Ok(Ok(SyncOutcome::Finished(finished))) => Ok(Launched::Finished(finished)),
            Ok(Ok(SyncOutcome::QueueFull)) => Err(ApiError::QueueFull),
            // The engine dropped the waiter: it is shutting down; the operation is persisted
            // and resumes at the next start.
            Ok(Err(_)) => Err(ApiError::StoreUnavailable),
            Err(_) => {
                self.forget_waiter(&operation.id);
                Err(ApiError::Internal(format!(
                    "synchronous {} {} did not finish in {timeout:?}; it continues in the background",
                    operation.kind.name(),
                    operation.id
                )))
            }
        }
    }

    /// Registers a synchronous waiter; call before scheduling.
    fn register_waiter(&self, operation_id: &str) -> oneshot::Receiver<SyncOutcome> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).insert(operation_id.to_owned(), sender);
        receiver
    }

    /// Whether a synchronous request in this process waits for the operation.
    fn has_waiter(&self, operation_id: &str) -> bool {
        lock(&self.waiters).contains_key(operation_id)
    }

    /// Drops a waiter that gave up.
    fn forget_waiter(&self, operation_id: &str) {
        lock(&self.waiters).remove(operation_id);
    }

    fn notify(&self, operation_id: &str, outcome: SyncOutcome) {
        if let Some(waiter) = lock(&self.waiters).remove(operation_id) {
            let _ = waiter.send(outcome);
        }
    }

    /// Wakes the local requests waiting for `operations` (see [`halted_by`]), once committed.
    fn wake(&self, operations: Vec<Operation>) {
        for operation in operations {
            self.finished(operation);
        }
    }

    /// Answers the waiter of `operation_id` if the operation has ended: the in-progress check
    /// reads no record; only an ended one is decoded.
    fn answer_if_ended(&self, operation_id: &str) {
        if self
            .state
            .instance_of_operation_in_progress(operation_id)
            .is_some()
        {
            return;
        }
        if let Some(ended) = (self.state.operation(operation_id)).filter(|op| !op.in_progress()) {
            self.finished(ended);
        }
    }

    /// Wakes a local request waiting for `operation`, which has finished (here, or on
    /// another replica), with the records as the map holds them now.
    pub fn finished(&self, operation: Operation) {
        let instance = self.state.instance(&operation.instance_id);
        let binding = operation
            .binding_id
            .as_deref()
            .and_then(|id| self.state.binding(id));
        let id = operation.id.clone();
        let finished = Finished {
            operation,
            instance,
            binding,
        };
        self.notify(&id, SyncOutcome::Finished(Box::new(finished)));
    }

    /// Gives up the claim on a finished operation; a failure only delays other replicas'
    /// standby (the claim lapses with the lease anyway).
    async fn release(&self, operation_id: &str) {
        if let Err(err) = self.state.store().release(operation_id).await {
            log::debug!("operation {operation_id}: claim not released ({err})");
        }
    }
}

impl Live for Engine {
    fn sample(&self) -> Sample {
        Sample {
            dispatcher: self.dispatcher.stats(),
            in_flight: self.in_flight(),
            counts: self.state.counts(),
            operations: self.state.operation_counts(),
        }
    }
}

/// The claims of a commit that starts `take` and halts `halted` (given up, if this replica
/// drove them).
fn claims(take: Vec<OperationId>, halted: &[Operation]) -> Claims {
    Claims {
        take,
        give_up: halted.iter().map(|halted| halted.id.clone()).collect(),
    }
}

/// The operations `changes` end without the engine applying an outcome to them: creates a
/// delete halts (D-17). A synchronous request may wait for one here; once the changes are
/// committed it must be woken (the create's own outcome, if it ever comes, finds it ended
/// and changes nothing).
fn halted_by(changes: &[Change]) -> Vec<Operation> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::PutOperation(operation) if !operation.in_progress() => Some(operation.clone()),
            _ => None,
        })
        .collect()
}
