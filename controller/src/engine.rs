//! The status-scanning engine: drives every operation in flight to its end.
//!
//! # Shape
//! - **Schedule**: operations in flight sit in an index ordered by their next due time. The
//!   scanner takes due entries, longest due first, while the workers' queue has room (a pass
//!   costs what it dispatches, never a walk over all instances or all that is due) and turns
//!   each into a job on the dispatcher: a *start* call when the plugin has not accepted the
//!   work yet, a *poll* call once it reported "in progress".
//! - **Busy marks**: at most one job per instance is on a worker at any time, so a plugin never
//!   sees concurrent calls for one instance and its bindings (a deprovision that halts a
//!   running provision waits until that call returns, D-17).
//! - **Applier**: outcomes come back from the workers over a channel and are applied under the
//!   instance lock, outcomes of different instances concurrently (their commits then share
//!   group-commit transactions): persist the transition, then reschedule (with back-off) or
//!   finish, then wake a synchronous request waiting for it.
//! - **Clean-up**: finished operation records older than the retention are removed (D-08).
//!
//! # Guarantees
//! - The store is the queue of record. An operation accepted but not yet queued (full
//!   dispatcher, crash, restart) stays `in progress` in the store and is scheduled again by
//!   [`resume`] at start or by the scanner on its next pass.
//! - Every step may repeat after a crash: plugin calls are idempotent by contract, and a
//!   transition is persisted before anything depends on it.
//! - An operation that outlives its deadline (the plan's `maximum_polling_duration`) fails.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashbrown::HashMap;
use serde_json::Value;
use skybroker_brokers::{BrokerError, Completion, Progress};
use skybroker_config::EngineConfig;
use skybroker_dispatcher::SubmitError;
use skybroker_storage::{
    now_millis, BindingState, Change, Failure, InstanceState, Operation, OperationBrief,
    OperationKind, OperationState, Sealed, ServiceBinding, ServiceInstance, StoreError, UnixMillis,
};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::core::{plugin_kind, Core};
use crate::jobs::{Call, Job, Outcome, SealedRequest};
use crate::metrics::{Admitted, Outcome as MetricOutcome};

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

/// How often a replica tries to claim an operation another replica drives.
const CLAIM_RETRY_MS: u64 = 1000;

/// Gives up the claim on a finished operation; a failure only delays other replicas'
/// standby (the claim lapses with the lease anyway).
async fn release(core: &Core, operation_id: &str) {
    if let Err(err) = core.state.store().release(operation_id).await {
        log::debug!("operation {operation_id}: claim not released ({err})");
    }
}

/// Plugin calls a synchronous operation gets when they fail transiently.
const SYNC_ATTEMPTS: u32 = 3;

/// What a synchronous request waiting for its operation learns.
#[derive(Debug)]
pub enum SyncOutcome {
    /// The operation reached a terminal state.
    Finished(Box<Finished>),
    /// It could not be queued in time (D-11); its records were removed.
    QueueFull,
}

/// Due-time index of operations in flight. Both maps share one allocation per id, so taking
/// an operation out touches its id once (the scanner's cost per job is mostly such memory
/// accesses).
#[derive(Debug, Default)]
struct Schedule {
    by_due: BTreeSet<(UnixMillis, Arc<str>)>,
    due_of: HashMap<Arc<str>, UnixMillis>,
}

impl Schedule {
    fn insert(&mut self, operation_id: &str, due: UnixMillis) {
        let id = match self.due_of.get_key_value(operation_id) {
            Some((id, &old)) => {
                let id = Arc::clone(id);
                self.by_due.remove(&(old, Arc::clone(&id)));
                id
            }
            None => Arc::from(operation_id),
        };
        self.due_of.insert(Arc::clone(&id), due);
        self.by_due.insert((due, id));
    }

    /// The operation due first, if it is due by `now`, out of the index.
    fn pop_due(&mut self, now: UnixMillis) -> Option<Arc<str>> {
        let (at, _) = self.by_due.first()?;
        if *at > now {
            return None;
        }
        let (_, id) = self.by_due.pop_first()?;
        self.due_of.remove(&id);
        Some(id)
    }

    /// Those of `operation_ids` due by `now`, out of the index; the others stay.
    fn take_if_due(&mut self, operation_ids: Vec<String>, now: UnixMillis) -> Vec<Arc<str>> {
        operation_ids
            .into_iter()
            .filter_map(|id| {
                if self.due_of.get(id.as_str()).is_none_or(|due| *due > now) {
                    return None;
                }
                let (id, due) = self.due_of.remove_entry(id.as_str())?;
                self.by_due.remove(&(due, Arc::clone(&id)));
                Some(id)
            })
            .collect()
    }
}

/// The engine's shared bookkeeping (the tasks are the `run_*` functions).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
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

impl Engine {
    /// An idle engine.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            schedule: Mutex::default(),
            busy: Mutex::default(),
            waiters: Mutex::default(),
            wake: Notify::new(),
            wants_room: AtomicBool::new(false),
            room: Notify::new(),
        }
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
        lock(&self.schedule).due_of.get(operation_id).copied()
    }

    /// Number of operations scheduled (in flight and not on a worker).
    pub fn scheduled(&self) -> usize {
        lock(&self.schedule).due_of.len()
    }

    /// Number of operations the engine drives: scheduled, or on a worker (metrics).
    pub fn in_flight(&self) -> usize {
        self.scheduled() + lock(&self.busy).len()
    }

    /// Registers a synchronous waiter; call before scheduling.
    pub fn register_waiter(&self, operation_id: &str) -> oneshot::Receiver<SyncOutcome> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).insert(operation_id.to_owned(), sender);
        receiver
    }

    /// Whether a synchronous request in this process waits for the operation.
    fn has_waiter(&self, operation_id: &str) -> bool {
        lock(&self.waiters).contains_key(operation_id)
    }

    /// Drops a waiter that gave up.
    pub fn forget_waiter(&self, operation_id: &str) {
        lock(&self.waiters).remove(operation_id);
    }

    fn notify(&self, operation_id: &str, outcome: SyncOutcome) {
        if let Some(waiter) = lock(&self.waiters).remove(operation_id) {
            let _ = waiter.send(outcome);
        }
    }

    /// The delay before the next poll: the poll interval, growing by half with every attempt,
    /// capped, then shortened by up to a quarter (jitter). Without the jitter, operations
    /// accepted together (a burst of provisions, a restart) would stay in step for their whole
    /// life: every poll of theirs due in the same pass, and sent to the cloud's API at once.
    /// The jitter is drawn from the operation and attempt, so it needs no random source.
    fn backoff(&self, operation_id: &str, attempts: u32) -> u64 {
        let grown = self.config.poll_interval_ms as f64 * 1.5f64.powi(attempts.min(30) as i32 - 1);
        let delay = (grown as u64).clamp(1, self.config.max_poll_interval_ms.max(1));
        // FNV-1a over the id and the attempt count.
        let hash = operation_id
            .bytes()
            .chain(attempts.to_le_bytes())
            .fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
        (delay - delay * (hash % 1024) / 4096).max(1)
    }
}

/// Schedules every operation the store holds in progress. Called once at start, before
/// serving.
pub fn resume(core: &Core) {
    let pending = core.state.operations_in_progress();
    if !pending.is_empty() {
        log::info!("resuming {} operation(s) in flight", pending.len());
    }
    let now = now_millis();
    for operation in pending {
        core.engine.schedule_at(&operation.id, now);
    }
    // Due now: the first pass need not wait for the scan interval.
    core.engine.wake.notify_one();
}

/// The scanner task: dispatches due operations until shutdown.
pub async fn run_scanner(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(core.config.engine.scan_interval_ms.max(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = core.engine.wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        let started = std::time::Instant::now();
        scan_pass(&core, now_millis()).await;
        core.metrics.observe_scan(started.elapsed());
    }
    log::debug!("scanner stopped");
}

/// One pass: dispatches the operations due by `now`, the longest due first, as fast as the
/// workers take them. When their queue is full the pass first dispatches the operations a
/// synchronous request waits for (they may be due their 503, D-11), then waits for the
/// workers to free half the queue; if that takes longer than a scan interval (slow plugin
/// calls) the pass ends and the rest stay due where they are (the next pass starts with
/// them). So a pass costs what it dispatches, not what is due.
///
/// Jobs are prepared in batches that fit the queue's room and then handed over together: a
/// worker woken for the first job of a batch finds the next ones already queued, so a pass
/// wakes idle workers a few times per batch instead of once per job (a wake is a system call,
/// and in a VM an interrupt to another core: most of a job's cost when plugins answer fast).
async fn scan_pass(core: &Core, now: UnixMillis) {
    // At most what was scheduled when the pass began: an operation rescheduled during the
    // pass is never taken again by it, even if the clock steps back.
    let mut room = core.engine.scheduled();
    while room > 0 {
        let fits = core.dispatcher.room().min(room);
        if fits == 0 {
            dispatch_waited_for(core, now).await;
            if !wait_for_room(core).await {
                return;
            }
            continue;
        }
        let mut batch = Vec::with_capacity(fits);
        let mut drained = false;
        for _ in 0..fits {
            room -= 1;
            let next = lock(&core.engine.schedule).pop_due(now);
            let Some(operation_id) = next else {
                drained = true;
                break;
            };
            if let Some(ready) = prepare(core, &operation_id).await {
                batch.push(ready);
            }
        }
        hand_over(core, batch).await;
        if drained {
            break;
        }
    }
    dispatch_waited_for(core, now).await;
}

/// Dispatches the due operations a synchronous request in this process waits for, past a
/// full queue if need be: those that cannot be queued in time get their 503 (D-11). Found
/// among the waiters (few), not by walking what is due.
async fn dispatch_waited_for(core: &Core, now: UnixMillis) {
    let waited_for: Vec<String> = lock(&core.engine.waiters).keys().cloned().collect();
    if waited_for.is_empty() {
        return;
    }
    let waited_for = lock(&core.engine.schedule).take_if_due(waited_for, now);
    let mut batch = Vec::with_capacity(waited_for.len());
    for operation_id in waited_for {
        if let Some(ready) = prepare(core, &operation_id).await {
            batch.push(ready);
        }
    }
    hand_over(core, batch).await;
}

/// Waits until the workers have freed half their queue, at most one scan interval; answers
/// whether they did.
async fn wait_for_room(core: &Core) -> bool {
    let engine = &core.engine;
    engine.wants_room.store(true, Ordering::SeqCst);
    // Checked after raising the flag: room made before it was raised is seen here, room
    // made after it wakes the wait below (a notification before the wait is kept).
    if !has_half_room(core) {
        let interval = Duration::from_millis(core.config.engine.scan_interval_ms.max(1));
        let _ = tokio::time::timeout(interval, engine.room.notified()).await;
    }
    engine.wants_room.store(false, Ordering::SeqCst);
    has_half_room(core)
}

fn has_half_room(core: &Core) -> bool {
    core.dispatcher.room() * 2 >= core.dispatcher.capacity()
}

/// Called for every outcome that comes back: wakes a scanner waiting for room once half the
/// workers' queue is free.
fn job_finished(core: &Core) {
    let engine = &core.engine;
    if engine.wants_room.load(Ordering::SeqCst) && has_half_room(core) {
        engine.wants_room.store(false, Ordering::SeqCst);
        engine.room.notify_one();
    }
}

/// A job prepared for the workers, with what deciding about it needs if the queue refuses it.
struct Ready {
    job: Job,
    kind: OperationKind,
    sync: bool,
    created_at: UnixMillis,
    /// When it was prepared.
    now: UnixMillis,
}

/// Turns one due operation into a job with its instance marked busy, or settles it here
/// (reschedules, fails or cascades it) and answers `None`.
async fn prepare(core: &Core, operation_id: &str) -> Option<Ready> {
    let instance_id = core.state.instance_of_operation_in_progress(operation_id)?;
    let _guard = core.locks.lock(&instance_id).await;
    // Re-read under the lock: a request may have changed it meanwhile. The record stays
    // packed unless this step needs more than its brief.
    let (brief, operation) = core.state.operation_to_dispatch(operation_id)?;
    let now = now_millis();
    let retry_soon = now + core.config.engine.scan_interval_ms.max(1);
    if lock(&core.engine.busy).contains_key(&instance_id) {
        core.engine.schedule_at(operation_id, retry_soon);
        return None;
    }
    // With several replicas on one store, exactly one drives each operation; the others
    // try again now and then, to take over when the owner dies (its claim lapses).
    match core.state.store().claim(operation_id).await {
        Ok(true) => {}
        Ok(false) => {
            core.engine.schedule_at(operation_id, now + CLAIM_RETRY_MS);
            return None;
        }
        Err(err) => {
            log::debug!("operation {operation_id}: cannot claim it now ({err})");
            core.engine.schedule_at(operation_id, now + CLAIM_RETRY_MS);
            return None;
        }
    }
    if now > brief.deadline {
        let operation = operation.open();
        let failure = timeout_failure(&operation);
        finish_failed(core, operation, failure).await;
        return None;
    }
    // D-03: a deprovision first unbinds every binding, as operations of their own.
    if brief.kind == OperationKind::Deprovision {
        let bindings = core.state.bindings_of(&instance_id);
        if !bindings.is_empty() {
            let deprovision = operation.open();
            if let Some(failure) = failed_cascade(core, &deprovision, &bindings) {
                finish_failed(core, deprovision, failure).await;
                return None;
            }
            if unbinds_first(core, &deprovision) {
                if let Err(err) = cascade_unbind(core, &deprovision, bindings).await {
                    log::warn!("cascading unbind for {operation_id} not persisted: {err}");
                }
                core.engine.schedule_at(operation_id, retry_soon);
                return None;
            }
        }
    }
    let job = match build_job(core, &brief, operation) {
        Ok(job) => job,
        Err(failed) => {
            let (operation, description) = *failed;
            let failure = Failure {
                description,
                instance_usable: None,
                update_repeatable: None,
                client_error: false,
                unprocessable: false,
            };
            finish_failed(core, operation.open(), failure).await;
            return None;
        }
    };
    lock(&core.engine.busy).insert(instance_id, operation_id.to_owned());
    Some(Ready {
        job,
        kind: brief.kind,
        sync: brief.sync,
        created_at: brief.created_at,
        now,
    })
}

/// Queues a batch of prepared jobs; those the queue refuses are rescheduled, or answered 503
/// (D-11).
async fn hand_over(core: &Core, batch: Vec<Ready>) {
    for ready in batch {
        let call = ready.job.call;
        match core.dispatcher.try_submit(ready.job) {
            Ok(()) if call == Call::Poll => core.metrics.poll_queued(ready.kind),
            Ok(()) => {}
            Err(SubmitError::Full(job)) => {
                lock(&core.engine.busy).remove(job.instance_id());
                not_queued(core, &job, ready.sync, ready.created_at, ready.now).await;
            }
            Err(SubmitError::ShutDown(job)) => {
                // Shutting down: the operation stays in progress in the store.
                lock(&core.engine.busy).remove(job.instance_id());
            }
        }
    }
}

/// An operation whose job the queue refused: it waits its turn, unless a synchronous request
/// here has waited too long for it (D-11).
async fn not_queued(core: &Core, job: &Job, sync: bool, created_at: UnixMillis, now: UnixMillis) {
    let operation_id = job.operation_id();
    let waited = now.saturating_sub(created_at);
    // Only for a request waiting here: a synchronous operation resumed after a restart, or
    // driven for another replica, has nobody to answer and waits its turn.
    if !(sync && waited >= core.config.engine.queue_wait_ms && core.engine.has_waiter(operation_id))
    {
        core.engine.schedule_at(
            operation_id,
            now + core.config.engine.scan_interval_ms.max(1),
        );
        return;
    }
    // D-11: a synchronous request that cannot be queued in time gets 503; its records go, as
    // nothing was done. Decided under the instance lock, on the record as it is now.
    let _guard = core.locks.lock(job.instance_id()).await;
    let Some(operation) = core
        .state
        .operation(operation_id)
        .filter(Operation::in_progress)
    else {
        return;
    };
    match core.state.commit(revert_changes(core, &operation)).await {
        Ok(()) => core
            .metrics
            .operation_finished(operation.kind, MetricOutcome::QueueFull),
        Err(err) => log::warn!("reverting {operation_id} not persisted: {err}"),
    }
    release(core, operation_id).await;
    core.engine.notify(operation_id, SyncOutcome::QueueFull);
}

/// A failure for `deprovision` when an unbind it cascaded to has failed: deleting the instance
/// under a binding that still exists would orphan its credentials, and cascading again would
/// loop.
fn failed_cascade(
    core: &Core,
    deprovision: &Operation,
    bindings: &[ServiceBinding],
) -> Option<Failure> {
    bindings.iter().find_map(|binding| {
        let unbind = core.state.operation(binding.last_operation.as_deref()?)?;
        let failed_since = unbind.kind == OperationKind::Unbind
            && unbind.state == OperationState::Failed
            && unbind.created_at >= deprovision.created_at;
        failed_since.then(|| Failure {
            description: format!(
                "binding {} could not be deleted: {}",
                binding.id,
                unbind
                    .failure
                    .as_ref()
                    .map_or("unknown error", |f| f.description.as_str())
            ),
            instance_usable: Some(true),
            update_repeatable: None,
            client_error: false,
            unprocessable: false,
        })
    })
}

/// Whether a deprovision's bindings are unbound now (D-03): before the plugin's first call,
/// unless the plugin wants to see the deprovision first (to refuse it with nothing revoked);
/// then once that call has answered in progress.
fn unbinds_first(core: &Core, deprovision: &Operation) -> bool {
    if deprovision.reference.is_some() {
        return true;
    }
    let plan = core
        .state
        .instance(&deprovision.instance_id)
        .and_then(|instance| core.plan(&instance.service_id, &instance.plan_id));
    plan.is_none_or(|plan| plan.broker.unbinds_before_deprovision(&plan.plan.settings))
}

/// Starts an unbind for every binding not yet unbinding.
async fn cascade_unbind(
    core: &Core,
    deprovision: &Operation,
    bindings: Vec<ServiceBinding>,
) -> Result<(), StoreError> {
    let mut changes = Vec::new();
    let mut started = Vec::new();
    for binding in bindings {
        if binding.state == BindingState::Unbinding {
            continue;
        }
        let Some(plan) = core.plan(&binding.service_id, &binding.plan_id) else {
            // The plan left the catalog: nothing can unbind it; drop the record.
            changes.push(Change::DeleteBinding(binding.id.clone()));
            continue;
        };
        let sync = !plan
            .broker
            .is_async(&plan.plan.settings, plugin_kind(OperationKind::Unbind));
        let (mut unbind_changes, operation) = crate::lifecycle::begin_unbind(
            core,
            &binding,
            plan.plan,
            sync,
            deprovision.requested_by.clone(),
        );
        changes.append(&mut unbind_changes);
        started.push(operation.id);
    }
    let admitted = Admitted::of(&changes);
    core.state.commit(changes).await?;
    core.metrics.record_admitted(admitted);
    for id in started {
        log::info!("operation {id}: unbind cascaded from {}", deprovision.id);
        core.engine.schedule_now(&id);
    }
    Ok(())
}

/// Builds the plugin call for an operation from the map. The operation, instance and binding
/// go to the worker still packed (see [`SealedRequest`]); only the ids that choose the plan
/// are read here, in place. When it cannot be built the operation comes back with the reason.
fn build_job(
    core: &Core,
    brief: &OperationBrief,
    operation: Sealed<Operation>,
) -> Result<Job, Box<(Sealed<Operation>, String)>> {
    let Some(instance) = core.state.sealed_instance(operation.instance_id()) else {
        let reason = format!("instance {} no longer exists", operation.instance_id());
        return Err(Box::new((operation, reason)));
    };
    let binding = match operation.binding_id() {
        Some(id) if brief.kind.is_binding() => match core.state.sealed_binding(id) {
            Some(binding) => Some(binding),
            None => {
                let reason = format!("binding {id} no longer exists");
                return Err(Box::new((operation, reason)));
            }
        },
        _ => None,
    };
    // An update names its plan in the record (rare enough to decode it for that).
    let update_plan = brief
        .updates
        .then(|| operation.open().update.map(|update| update.plan_id))
        .flatten();
    let plan_id = match (&update_plan, &binding) {
        (Some(plan_id), _) => plan_id.as_str(),
        (None, Some(binding)) => binding.plan_id(),
        (None, None) => instance.plan_id(),
    };
    let Some(plan) = core.plan(instance.service_id(), plan_id) else {
        let reason = format!("plan {plan_id} is no longer in the catalog");
        return Err(Box::new((operation, reason)));
    };
    Ok(Job {
        kind: plugin_kind(brief.kind),
        call: if brief.started {
            Call::Poll
        } else {
            Call::Start
        },
        broker: Arc::clone(plan.broker),
        request: SealedRequest {
            plan_settings: Arc::clone(&plan.plan.settings),
            operation,
            instance,
            binding,
        },
    })
}

/// Outcomes the applier applies at once. Each apply holds its instance's lock and waits for
/// its commit; applying outcomes of different instances together lets the store batch their
/// commits (group commit) instead of paying one durable write after another.
const APPLYING_AT_ONCE: usize = 64;

/// The applier task: applies outcomes until stopped, then drains what is left and waits for
/// every apply under way.
///
/// Outcomes of one instance never race: a worker holds at most one job per instance (busy
/// marks), and an apply holds the instance lock that the next dispatch of that instance waits
/// for.
pub async fn run_applier(
    core: Arc<Core>,
    mut outcomes: mpsc::Receiver<Outcome>,
    mut stop: watch::Receiver<bool>,
) {
    let mut applying = tokio::task::JoinSet::new();
    let spawn = |applying: &mut tokio::task::JoinSet<()>, outcome| {
        let core = Arc::clone(&core);
        applying.spawn(async move { apply(&core, outcome).await });
    };
    loop {
        if applying.len() >= APPLYING_AT_ONCE {
            reap(applying.join_next().await);
            continue;
        }
        tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some(outcome) => {
                    job_finished(&core);
                    spawn(&mut applying, outcome);
                }
                None => break,
            },
            done = applying.join_next(), if !applying.is_empty() => reap(done),
            _ = stop.changed() => {
                while let Ok(outcome) = outcomes.try_recv() {
                    spawn(&mut applying, outcome);
                }
                break;
            }
        }
    }
    while let Some(done) = applying.join_next().await {
        reap(Some(done));
    }
    log::debug!("applier stopped");
}

/// Logs an apply that panicked (a bug): its operation stays in progress and is resumed at
/// the next start.
fn reap(done: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(err)) = done {
        log::error!("applying an outcome failed: {err}");
    }
}

/// Applies one plugin outcome to its operation.
pub async fn apply(core: &Core, outcome: Outcome) {
    let Outcome {
        operation_id,
        instance_id,
        result,
    } = outcome;
    let _guard = core.locks.lock(&instance_id).await;
    lock(&core.engine.busy).remove(&instance_id);
    let Some(mut operation) = core.state.operation(&operation_id) else {
        return;
    };
    if !operation.in_progress() {
        // Halted meanwhile (D-17): keep what the plugin learnt about the resource, so the
        // deprovision that halted it can find it.
        if let Ok(Progress::InProgress {
            state: Some(state), ..
        })
        | Ok(Progress::Done(Completion {
            state: Some(state), ..
        })) = &result
        {
            keep_plugin_state(core, &operation, state.clone()).await;
        }
        return;
    }
    operation.attempts += 1;
    let engine = &core.config.engine;
    match result {
        Ok(Progress::Done(completion)) => finish_succeeded(core, operation, completion).await,
        Ok(Progress::Failed {
            description,
            instance_usable,
            update_repeatable,
        }) => {
            let failure = Failure {
                description,
                instance_usable,
                update_repeatable,
                client_error: false,
                unprocessable: false,
            };
            finish_failed(core, operation, failure).await;
        }
        Ok(Progress::InProgress {
            reference,
            description,
            state,
        }) => {
            if now_millis() > operation.deadline {
                let failure = timeout_failure(&operation);
                finish_failed(core, operation, failure).await;
                return;
            }
            let delay = core.engine.backoff(&operation.id, operation.attempts);
            let id = operation.id.clone();
            // A poll that learnt nothing new (same reference and description, no state)
            // changes only the attempt count, which need not survive a restart: the map
            // keeps it and the store is not written (issue #5: polls of many young
            // operations would otherwise cost a commit each).
            let unchanged = state.is_none()
                && operation.reference.as_ref() == Some(&reference)
                && operation.description == description;
            if unchanged {
                // (Not in the map any more: nothing is left to drive.)
                if core.state.update_unpersisted(operation) {
                    core.engine.schedule_at(&id, now_millis() + delay);
                }
                return;
            }
            operation.reference = Some(reference);
            operation.description = description;
            let mut changes = Vec::new();
            if let Some(state) = state {
                changes.extend(plugin_state_change(core, &operation, state));
            }
            changes.push(Change::PutOperation(operation));
            persist_then_schedule(core, &id, changes, delay).await;
        }
        Err(BrokerError::NotFound(what))
            if matches!(
                operation.kind,
                OperationKind::Deprovision | OperationKind::Unbind
            ) && operation.reference.is_none() =>
        {
            let force = if operation.kind == OperationKind::Deprovision {
                engine.force_delete_unknown_instances
            } else {
                engine.force_delete_unknown_bindings
            };
            if force {
                log::info!(
                    "operation {operation_id}: {what}; removing the record (force_delete_unknown)"
                );
                finish_succeeded(core, operation, Completion::default()).await;
            } else {
                let failure = Failure {
                    description: format!("the provider does not know this resource: {what}"),
                    instance_usable: Some(true),
                    update_repeatable: None,
                    client_error: false,
                    unprocessable: false,
                };
                finish_failed(core, operation, failure).await;
            }
        }
        // Transient errors are retried until the deadline; a synchronous request, whose
        // caller is waiting, gets three tries.
        Err(err)
            if err.is_transient()
                && now_millis() < operation.deadline
                && (!operation.sync || operation.attempts < SYNC_ATTEMPTS) =>
        {
            log::warn!("operation {operation_id}: {err}; retrying");
            let delay = core.engine.backoff(&operation.id, operation.attempts);
            let id = operation.id.clone();
            persist_then_schedule(core, &id, vec![Change::PutOperation(operation)], delay).await;
        }
        Err(err) => {
            let description = match &err {
                BrokerError::Provider { .. } => {
                    // The cause may name internals; it is logged here, once.
                    log::error!("operation {operation_id} failed: {err}");
                    format!(
                        "the {} operation failed at the provider",
                        operation.kind.name()
                    )
                }
                // The other variants carry messages written for the platform user.
                _ => err.to_string(),
            };
            let failure = Failure {
                description,
                instance_usable: None,
                update_repeatable: None,
                client_error: err.is_client_error(),
                unprocessable: matches!(err, BrokerError::Unprocessable(_)),
            };
            finish_failed(core, operation, failure).await;
        }
    }
}

async fn persist_then_schedule(core: &Core, operation_id: &str, changes: Vec<Change>, delay: u64) {
    match core.state.commit(changes).await {
        Ok(()) => core.engine.schedule_at(operation_id, now_millis() + delay),
        Err(err) => {
            // Not persisted: the plugin will simply be asked again.
            log::warn!("operation {operation_id}: progress not persisted ({err}); retrying");
            core.engine
                .schedule_at(operation_id, now_millis() + delay.max(1000));
        }
    }
}

fn timeout_failure(operation: &Operation) -> Failure {
    Failure {
        description: format!(
            "the {} did not finish before its deadline (maximum_polling_duration)",
            operation.kind.name()
        ),
        instance_usable: None,
        update_repeatable: None,
        client_error: false,
        unprocessable: false,
    }
}

/// The change that stores a plugin's state on the instance or binding of `operation`.
fn plugin_state_change(core: &Core, operation: &Operation, state: Value) -> Option<Change> {
    if operation.kind.is_binding() {
        let mut binding = core.state.binding(operation.binding_id.as_deref()?)?;
        binding.plugin_state = state;
        Some(Change::PutBinding(binding))
    } else {
        let mut instance = core.state.instance(&operation.instance_id)?;
        instance.plugin_state = state;
        Some(Change::PutInstance(instance))
    }
}

async fn keep_plugin_state(core: &Core, operation: &Operation, state: Value) {
    if let Some(change) = plugin_state_change(core, operation, state) {
        if let Err(err) = core.state.commit(vec![change]).await {
            log::warn!(
                "plugin state of halted {} not persisted: {err}",
                operation.id
            );
        }
    }
}

/// Persists a success and wakes a waiter.
async fn finish_succeeded(core: &Core, mut operation: Operation, completion: Completion) {
    let mut changes = Vec::new();
    let instance = core.state.instance(&operation.instance_id);
    let binding = operation
        .binding_id
        .as_deref()
        .and_then(|id| core.state.binding(id));
    match operation.kind {
        OperationKind::Provision | OperationKind::Update => {
            if let Some(mut instance) = instance {
                // OSB-UPD-12: an update's changes apply only now that it succeeded.
                if let Some(update) = &operation.update {
                    instance.plan_id = update.plan_id.clone();
                    instance.parameters = update.parameters.clone();
                    instance.maintenance_version = update.maintenance_version.clone();
                    instance.context = update.context.clone();
                }
                instance.state = InstanceState::Ready;
                if let Some(state) = completion.state {
                    instance.plugin_state = state;
                }
                if completion.dashboard_url.is_some() {
                    instance.dashboard_url = completion.dashboard_url;
                }
                if completion.metadata.is_some() {
                    instance.metadata = completion.metadata;
                }
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Deprovision => {
            for binding in core.state.bindings_of(&operation.instance_id) {
                changes.push(Change::DeleteBinding(binding.id));
            }
            changes.push(Change::DeleteInstance(operation.instance_id.clone()));
        }
        OperationKind::Bind => {
            if let Some(mut binding) = binding {
                binding.state = BindingState::Bound;
                binding.result = serde_json::to_value(completion.binding.unwrap_or_default())
                    .unwrap_or(Value::Null);
                if let Some(state) = completion.state {
                    binding.plugin_state = state;
                }
                changes.push(Change::PutBinding(binding));
            }
        }
        OperationKind::Unbind => {
            if let Some(binding) = binding {
                changes.push(Change::DeleteBinding(binding.id));
            }
        }
    }
    operation.state = OperationState::Succeeded;
    operation.description = None;
    operation.finished_at = Some(now_millis());
    finish(core, operation, changes).await;
}

/// Persists a failure (or, for a synchronous client error, removes what the request created)
/// and wakes a waiter.
async fn finish_failed(core: &Core, mut operation: Operation, failure: Failure) {
    if operation.sync && failure.client_error {
        // A 4xx changes nothing (OSB-ERR-04): undo the admission.
        let changes = revert_changes(core, &operation);
        operation.state = OperationState::Failed;
        operation.failure = Some(failure);
        operation.finished_at = Some(now_millis());
        match core.state.commit(changes).await {
            Ok(()) => {
                core.metrics
                    .operation_finished(operation.kind, MetricOutcome::Failed);
                notify_finished(core, operation);
            }
            Err(err) => retry_later(core, &operation.id, err),
        }
        return;
    }
    let mut changes = Vec::new();
    match operation.kind {
        OperationKind::Provision => {
            if let Some(mut instance) = core.state.instance(&operation.instance_id) {
                instance.state = InstanceState::ProvisionFailed;
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Update | OperationKind::Deprovision => {
            if let Some(mut instance) = core.state.instance(&operation.instance_id) {
                instance.state = if operation.halted_a_create() {
                    InstanceState::ProvisionFailed
                } else {
                    InstanceState::Ready
                };
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Bind | OperationKind::Unbind => {
            let binding = operation
                .binding_id
                .as_deref()
                .and_then(|id| core.state.binding(id));
            if let Some(mut binding) = binding {
                binding.state = match (operation.kind, operation.halted_a_create()) {
                    (OperationKind::Unbind, false) => BindingState::Bound,
                    _ => BindingState::BindFailed,
                };
                changes.push(Change::PutBinding(binding));
            }
        }
    }
    log::info!(
        "operation {} ({} of {}) failed: {}",
        operation.id,
        operation.kind.name(),
        operation
            .binding_id
            .as_deref()
            .unwrap_or(&operation.instance_id),
        failure.description
    );
    operation.state = OperationState::Failed;
    operation.description = None;
    operation.failure = Some(failure);
    operation.finished_at = Some(now_millis());
    finish(core, operation, changes).await;
}

async fn finish(core: &Core, operation: Operation, mut changes: Vec<Change>) {
    changes.push(Change::PutOperation(operation.clone()));
    match core.state.commit(changes).await {
        Ok(()) => {
            log::info!(
                "operation {} ({} of {}) {}",
                operation.id,
                operation.kind.name(),
                operation
                    .binding_id
                    .as_deref()
                    .unwrap_or(&operation.instance_id),
                match operation.state {
                    OperationState::Succeeded => "succeeded",
                    OperationState::Failed => "failed",
                    OperationState::InProgress => "in progress",
                }
            );
            let outcome = if operation.state == OperationState::Succeeded {
                MetricOutcome::Succeeded
            } else {
                MetricOutcome::Failed
            };
            core.metrics.operation_finished(operation.kind, outcome);
            release(core, &operation.id).await;
            notify_finished(core, operation);
        }
        Err(err) => retry_later(core, &operation.id, err),
    }
}

/// An operation another replica finished: wake a local request waiting for it.
pub fn finished_elsewhere(core: &Core, operation: Operation) {
    notify_finished(core, operation);
}

fn notify_finished(core: &Core, operation: Operation) {
    let instance = core.state.instance(&operation.instance_id);
    let binding = operation
        .binding_id
        .as_deref()
        .and_then(|id| core.state.binding(id));
    let id = operation.id.clone();
    let finished = Finished {
        operation,
        instance,
        binding,
    };
    core.engine
        .notify(&id, SyncOutcome::Finished(Box::new(finished)));
}

fn retry_later(core: &Core, operation_id: &str, err: StoreError) {
    // The transition was not persisted, so the operation is still in progress in the store
    // and the map: poll it again (the plugin call is idempotent).
    log::warn!("operation {operation_id}: final state not persisted ({err}); retrying");
    core.engine.schedule_at(operation_id, now_millis() + 1000);
}

/// Removes what admitting `operation` created, and the operation record itself.
fn revert_changes(core: &Core, operation: &Operation) -> Vec<Change> {
    let mut changes = vec![Change::DeleteOperation(operation.id.clone())];
    match operation.kind {
        OperationKind::Provision => {
            changes.push(Change::DeleteInstance(operation.instance_id.clone()));
        }
        OperationKind::Bind => {
            if let Some(id) = &operation.binding_id {
                changes.push(Change::DeleteBinding(id.clone()));
            }
        }
        OperationKind::Update | OperationKind::Deprovision => {
            if let Some(mut instance) = core.state.instance(&operation.instance_id) {
                instance.state = InstanceState::Ready;
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Unbind => {
            let binding = operation
                .binding_id
                .as_deref()
                .and_then(|id| core.state.binding(id));
            if let Some(mut binding) = binding {
                binding.state = BindingState::Bound;
                changes.push(Change::PutBinding(binding));
            }
        }
    }
    changes
}

/// The clean-up task: removes finished operation records older than the retention (D-08).
pub async fn run_cleanup(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_secs(core.config.engine.cleanup_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let removed = cleanup_once(&core, now_millis()).await;
        if removed > 0 {
            log::info!("removed {removed} finished operation record(s) past retention");
        }
    }
}

/// Removes the records of operations finished before `now - retention`; returns how many.
pub async fn cleanup_once(core: &Core, now: UnixMillis) -> usize {
    let cutoff = now.saturating_sub(core.config.engine.operation_retention_secs * 1000);
    let expired = core.state.finished_by(cutoff);
    let mut removed = 0;
    for id in expired {
        let Some(operation) = core.state.operation(&id) else {
            continue;
        };
        let _guard = core.locks.lock(&operation.instance_id).await;
        if core.state.operation(&id).is_some_and(|o| !o.in_progress()) {
            match core
                .state
                .commit(vec![Change::DeleteOperation(id.clone())])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_capped_and_spread() {
        let mut config = skybroker_config::Config::builtin().engine;
        config.poll_interval_ms = 1_000;
        config.max_poll_interval_ms = 30_000;
        let engine = Engine::new(config);
        let delays = |attempts| -> Vec<u64> {
            (0..1000)
                .map(|n| engine.backoff(&format!("op-{n}"), attempts))
                .collect()
        };
        for (attempts, full) in [(1, 1_000), (2, 1_500), (3, 2_250), (20, 30_000)] {
            let delays = delays(attempts);
            let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
            assert!(
                *min >= full * 3 / 4 && *max <= full,
                "attempt {attempts}: {min}..{max} outside 3/4 of {full}..{full}"
            );
            // Spread over the quarter: operations accepted together drift apart.
            assert!(max - min > full / 5, "attempt {attempts}: {min}..{max}");
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(
                distinct.len() > 100,
                "attempt {attempts}: {}",
                distinct.len()
            );
        }
        // The same operation and attempt always wait the same.
        assert_eq!(engine.backoff("op-1", 4), engine.backoff("op-1", 4));
    }

    #[test]
    fn the_schedule_hands_out_what_is_due_longest_due_first() {
        let mut schedule = Schedule::default();
        schedule.insert("b", 20);
        schedule.insert("a", 10);
        schedule.insert("c", 30);
        // Rescheduling moves an operation; it is never due twice.
        schedule.insert("c", 15);
        assert_eq!(schedule.pop_due(20).as_deref(), Some("a"));
        assert_eq!(schedule.pop_due(20).as_deref(), Some("c"));
        assert_eq!(schedule.pop_due(20).as_deref(), Some("b"));
        assert_eq!(schedule.pop_due(20), None);
        assert!(schedule.due_of.is_empty() && schedule.by_due.is_empty());
    }

    #[test]
    fn chosen_due_operations_leave_the_schedule_and_the_rest_stay() {
        let mut schedule = Schedule::default();
        for (id, due) in [
            ("async-1", 5),
            ("sync-1", 8),
            ("async-2", 9),
            ("sync-2", 50),
        ] {
            schedule.insert(id, due);
        }
        let wanted = vec!["sync-1".to_owned(), "sync-2".to_owned(), "gone".to_owned()];
        // sync-2 is not due yet and "gone" is not scheduled: only sync-1 is taken.
        assert_eq!(schedule.take_if_due(wanted, 10), [Arc::from("sync-1")]);
        assert_eq!(schedule.pop_due(10).as_deref(), Some("async-1"));
        assert_eq!(schedule.pop_due(10).as_deref(), Some("async-2"));
        assert_eq!(schedule.pop_due(10), None);
        assert_eq!(schedule.due_of.get("sync-2"), Some(&50));
        assert_eq!(schedule.by_due.len(), 1, "both maps agree");
    }
}
