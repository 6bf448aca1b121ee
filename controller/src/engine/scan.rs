//! The scanner: turns due operations into jobs for the workers.
//!
//! One pass dispatches the operations due by now, the longest due first, as fast as the
//! workers take them. When their queue is full the pass first dispatches the operations a
//! synchronous request waits for (they may be due their 503, D-11), then waits for the workers
//! to free half the queue; if that takes longer than a scan interval (slow plugin calls) the
//! pass ends and the rest stay due where they are (the next pass starts with them). So a pass
//! costs what it dispatches, not what is due.
//!
//! Jobs are prepared in batches that fit the queue's room and then handed over together: a
//! worker woken for the first job of a batch finds the next ones already queued, so a pass
//! wakes idle workers a few times per batch instead of once per job (a wake is a system call,
//! and in a VM an interrupt to another core: most of a job's cost when plugins answer fast).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use skybroker_dispatcher::SubmitError;
use skybroker_storage::{
    now_millis, Basis, BindingState, Change, Claims, Dispatchable, Failure, Operation,
    OperationBrief, OperationId, OperationKind, Sealed, ServiceBinding, ServiceInstance,
    StoreError, UnixMillis,
};
use tokio::sync::watch;

use super::transitions;
use super::{apply, lock, Engine, SyncOutcome};
use crate::jobs::{Call, Job, SealedRequest};
use crate::metrics::{Admitted, EndedAs};

/// The most changes one commit carries when a step touches many records (a deprovision's
/// bindings): etcd takes 128 operations per transaction (`MAX_TXN_OPS`), and a basis may add
/// a few of its own.
pub(super) const MAX_CHANGES: usize = 100;

/// How often a replica tries to claim an operation another replica drives.
const CLAIM_RETRY_MS: u64 = 1000;

/// The scanner task: dispatches due operations until shutdown.
pub async fn run_scanner(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(engine.config.scan_interval_ms.max(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        let started = std::time::Instant::now();
        scan_pass(&engine, now_millis()).await;
        engine.metrics.observe_scan(started.elapsed());
        engine
            .metrics
            .note_queue(engine.dispatcher.stats().queue_depth);
    }
    log::debug!("scanner stopped");
}

/// One pass (see the module doc).
async fn scan_pass(engine: &Engine, now: UnixMillis) {
    // At most what was scheduled when the pass began: an operation rescheduled during the
    // pass is never taken again by it, even if the clock steps back.
    let mut room = engine.scheduled();
    while room > 0 {
        let fits = engine.dispatcher.room().min(room);
        if fits == 0 {
            dispatch_waited_for(engine, now).await;
            if !wait_for_room(engine).await {
                return;
            }
            continue;
        }
        let due = lock(&engine.schedule).pop_due_many(now, fits);
        let drained = due.len() < fits;
        room -= due.len();
        let mut batch = Vec::with_capacity(due.len());
        for operation_id in due {
            if let Some(ready) = prepare(engine, &operation_id).await {
                batch.push(ready);
            }
        }
        hand_over(engine, batch).await;
        if drained {
            break;
        }
    }
    dispatch_waited_for(engine, now).await;
}

/// Dispatches the due operations a synchronous request in this process waits for, past a
/// full queue if need be: those that cannot be queued in time get their 503 (D-11). Found
/// among the waiters (few), not by walking what is due.
async fn dispatch_waited_for(engine: &Engine, now: UnixMillis) {
    let waited_for: Vec<String> = lock(&engine.waiters).keys().cloned().collect();
    if waited_for.is_empty() {
        return;
    }
    // A request whose operation ended without passing through this process's applier or
    // watch follower (finished by another replica while the watch was re-established and
    // the map reloaded, say) is answered now rather than at its timeout. (An operation
    // another replica removed, reverting a request it could not queue, is not seen here:
    // that request still waits for its timeout.)
    for operation_id in &waited_for {
        engine.answer_if_ended(operation_id);
    }
    let waited_for = lock(&engine.schedule).take_if_due(waited_for, now);
    let mut batch = Vec::with_capacity(waited_for.len());
    for operation_id in waited_for {
        if let Some(ready) = prepare(engine, &operation_id).await {
            batch.push(ready);
        }
    }
    hand_over(engine, batch).await;
}

/// Waits until the workers have freed half their queue, at most one scan interval; answers
/// whether they did.
async fn wait_for_room(engine: &Engine) -> bool {
    engine.wants_room.store(true, Ordering::SeqCst);
    // Checked after raising the flag: room made before it was raised is seen here, room
    // made after it wakes the wait below (a notification before the wait is kept).
    if !has_half_room(engine) {
        let interval = Duration::from_millis(engine.config.scan_interval_ms.max(1));
        let _ = tokio::time::timeout(interval, engine.room.notified()).await;
    }
    engine.wants_room.store(false, Ordering::SeqCst);
    has_half_room(engine)
}

fn has_half_room(engine: &Engine) -> bool {
    engine.dispatcher.room() * 2 >= engine.dispatcher.capacity()
}

/// Called for every outcome that comes back: wakes a scanner waiting for room once half the
/// workers' queue is free.
pub(super) fn job_finished(engine: &Engine) {
    if engine.wants_room.load(Ordering::SeqCst) && has_half_room(engine) {
        engine.wants_room.store(false, Ordering::SeqCst);
        engine.room.notify_one();
    }
}

/// A job prepared for the workers, with what deciding about it needs if the queue refuses it.
struct Ready {
    job: Job,
    kind: OperationKind,
    refused: Refused,
}

/// What deciding about a job the queue refused needs.
struct Refused {
    sync: bool,
    created_at: UnixMillis,
    /// When it was prepared.
    now: UnixMillis,
}

/// Turns one due operation into a job with its instance marked busy, or settles it here
/// (reschedules, fails or cascades it) and answers `None`.
async fn prepare(engine: &Engine, operation_id: &str) -> Option<Ready> {
    let instance_id = engine
        .state
        .instance_of_operation_in_progress(operation_id)?;
    let _guard = engine.locks.lock(&instance_id).await;
    // Re-read under the lock: a request may have changed it meanwhile. The records stay
    // packed unless this step needs more than the operation's brief.
    let Dispatchable {
        basis,
        brief,
        operation,
        instance,
    } = engine.state.to_dispatch(operation_id, &instance_id)?;
    let now = now_millis();
    let retry_soon = now + engine.config.scan_interval_ms.max(1);
    if lock(&engine.busy).contains_key(&instance_id) {
        engine.schedule_at(operation_id, retry_soon);
        return None;
    }
    // With several replicas on one store, exactly one drives each operation; the others
    // try again now and then, to take over when the owner dies (its claim lapses).
    match engine.state.store().claim(operation_id).await {
        Ok(true) => {}
        Ok(false) => {
            engine.schedule_at(operation_id, now + CLAIM_RETRY_MS);
            return None;
        }
        Err(err) => {
            log::debug!("operation {operation_id}: cannot claim it now ({err})");
            engine.schedule_at(operation_id, now + CLAIM_RETRY_MS);
            return None;
        }
    }
    if now > brief.deadline {
        let operation = operation.open();
        let failure = transitions::timeout_failure(operation.kind);
        let basis = apply::with_binding(engine, basis, &operation);
        apply::finish_failed(engine, &basis, operation, failure).await;
        return None;
    }
    // D-03: a deprovision first unbinds every binding, as operations of their own.
    if brief.kind == OperationKind::Deprovision {
        let bindings = engine.state.bindings_of(&instance_id);
        if !bindings.is_empty() {
            let deprovision = operation.open();
            let unbinds: Vec<(ServiceBinding, Option<Operation>)> = bindings
                .into_iter()
                .map(|binding| {
                    let last = (binding.last_operation.as_deref())
                        .and_then(|id| engine.state.operation(id));
                    (binding, last)
                })
                .collect();
            if let Some(failure) = transitions::failed_cascade(&deprovision, &unbinds) {
                apply::finish_failed(engine, &basis, deprovision, failure).await;
                return None;
            }
            if unbinds_first(engine, &deprovision) {
                let bindings = unbinds.into_iter().map(|(binding, _)| binding).collect();
                if let Err(err) = cascade_unbind(engine, &deprovision, bindings).await {
                    log::warn!("cascading unbind for {operation_id} not persisted: {err}");
                }
                engine.schedule_at(operation_id, retry_soon);
                return None;
            }
        }
    }
    let job = match build_job(engine, &brief, operation, instance) {
        Ok(job) => job,
        Err(failed) => {
            let (operation, description) = *failed;
            let operation = operation.open();
            let basis = apply::with_binding(engine, basis, &operation);
            apply::finish_failed(engine, &basis, operation, Failure::new(description)).await;
            return None;
        }
    };
    lock(&engine.busy).insert(instance_id, operation_id.to_owned());
    Some(Ready {
        job,
        kind: brief.kind,
        refused: Refused {
            sync: brief.sync,
            created_at: brief.created_at,
            now,
        },
    })
}

/// Queues a batch of prepared jobs; those the queue refuses are rescheduled, or answered 503
/// (D-11).
async fn hand_over(engine: &Engine, batch: Vec<Ready>) {
    for ready in batch {
        let call = ready.job.call;
        match engine.dispatcher.try_submit(ready.job) {
            Ok(()) if call == Call::Poll => engine.metrics.poll_queued(ready.kind),
            Ok(()) => {}
            Err(SubmitError::Full(job)) => {
                lock(&engine.busy).remove(job.instance_id());
                not_queued(engine, &job, &ready.refused).await;
            }
            Err(SubmitError::ShutDown(job)) => {
                // Shutting down: the operation stays in progress in the store.
                lock(&engine.busy).remove(job.instance_id());
            }
        }
    }
}

/// An operation whose job the queue refused: it waits its turn, unless a synchronous request
/// here has waited too long for it (D-11).
async fn not_queued(engine: &Engine, job: &Job, ready: &Refused) {
    let operation_id = job.operation_id();
    let waited = ready.now.saturating_sub(ready.created_at);
    // Only for a request waiting here: a synchronous operation resumed after a restart, or
    // driven for another replica, has nobody to answer and waits its turn.
    if !(ready.sync && waited >= engine.config.queue_wait_ms && engine.has_waiter(operation_id)) {
        engine.schedule_at(
            operation_id,
            ready.now + engine.config.scan_interval_ms.max(1),
        );
        return;
    }
    // D-11: a synchronous request that cannot be queued in time gets 503; its records go, as
    // nothing was done. Decided under the instance lock, on the record as it is now.
    let _guard = engine.locks.lock(job.instance_id()).await;
    let Some(operation) = engine
        .state
        .operation(operation_id)
        .filter(Operation::in_progress)
    else {
        return;
    };
    let subject = apply::subject(engine, operation);
    let kind = subject.operation.kind;
    let changes = transitions::revert(&subject);
    let claims = Claims::giving_up(operation_id);
    match (engine.state)
        .commit_claiming(&Basis::default(), changes, &claims)
        .await
    {
        Ok(()) => engine.metrics.operation_finished(kind, EndedAs::QueueFull),
        Err(err) => {
            // Still in progress in the store: it runs after all, and its request waits on.
            log::warn!("reverting {operation_id} not persisted: {err}; it stays queued");
            let retry = now_millis() + engine.config.scan_interval_ms.max(1);
            engine.schedule_at(operation_id, retry);
            return;
        }
    }
    engine.notify(operation_id, SyncOutcome::QueueFull);
}

/// Whether a deprovision's bindings are unbound now (D-03): before the plugin's first call,
/// unless the plugin wants to see the deprovision first (to refuse it with nothing revoked);
/// then once that call has answered in progress.
fn unbinds_first(engine: &Engine, deprovision: &Operation) -> bool {
    if deprovision.reference.is_some() {
        return true;
    }
    let instance = engine.state.instance(&deprovision.instance_id);
    let plan = instance
        .as_ref()
        .and_then(|instance| engine.catalog.plan(&instance.service_id, &instance.plan_id));
    plan.is_none_or(|plan| {
        plan.broker()
            .unbinds_before_deprovision(&plan.plan().settings)
    })
}

/// Starts an unbind for every binding not yet unbinding.
async fn cascade_unbind(
    engine: &Engine,
    deprovision: &Operation,
    bindings: Vec<ServiceBinding>,
) -> Result<(), StoreError> {
    // One group of changes a binding, committed in batches etcd takes (a group is never
    // split: a binding must not point at an operation that was not stored with it). Each
    // batch starts unbinds of its own, so a failure part way leaves the rest for the next
    // pass.
    let mut groups: Vec<Vec<Change>> = Vec::new();
    let mut started = Vec::new();
    for binding in bindings {
        if binding.state == BindingState::Unbinding {
            continue;
        }
        let Some(plan) = engine.catalog.plan(&binding.service_id, &binding.plan_id) else {
            // The plan left the catalog: nothing can unbind it; drop the record.
            groups.push(vec![Change::DeleteBinding(binding.id.clone())]);
            continue;
        };
        let operation = engine.new_operation(
            OperationKind::Unbind,
            (&binding.instance_id, Some(&binding.id)),
            plan.plan(),
            plan.is_sync(OperationKind::Unbind),
            deprovision.requested_by.clone(),
        );
        let create = (binding.state == BindingState::Binding)
            .then_some(binding.last_operation.as_deref())
            .flatten()
            .and_then(|id| engine.state.operation(id));
        let (unbind_changes, operation) =
            transitions::begin_unbind(&binding, create, operation, now_millis());
        groups.push(unbind_changes);
        started.push(operation.id);
    }
    let mut batch: Vec<Change> = Vec::new();
    let mut groups = groups.into_iter().peekable();
    while let Some(group) = groups.next() {
        batch.extend(group);
        let full = groups
            .peek()
            .is_none_or(|next| batch.len() + next.len() > MAX_CHANGES);
        if full {
            let admitted = Admitted::of(&batch);
            let halted = super::halted_by(&batch);
            // This replica drives the unbinds it starts (see `Engine::submit`).
            let claims = super::claims(started_by(&batch), &halted);
            let batch = std::mem::take(&mut batch);
            (engine.state)
                .commit_claiming(&Basis::default(), batch, &claims)
                .await?;
            engine.metrics.record_admitted(admitted);
            engine.wake(halted);
        }
    }
    for id in started {
        log::info!("operation {id}: unbind cascaded from {}", deprovision.id);
        engine.schedule_now(&id);
    }
    Ok(())
}

/// The operations `changes` start (stored in progress).
fn started_by(changes: &[Change]) -> Vec<OperationId> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::PutOperation(operation) if operation.in_progress() => {
                Some(operation.id.clone())
            }
            _ => None,
        })
        .collect()
}

/// Builds the plugin call for an operation from the map. The operation, instance and binding
/// go to the worker still packed (see [`SealedRequest`]); only the ids that choose the plan
/// are read here, in place. When it cannot be built the operation comes back with the reason.
fn build_job(
    engine: &Engine,
    brief: &OperationBrief,
    operation: Sealed<Operation>,
    instance: Option<Sealed<ServiceInstance>>,
) -> Result<Job, Box<(Sealed<Operation>, String)>> {
    let Some(instance) = instance else {
        let reason = format!("instance {} no longer exists", operation.instance_id());
        return Err(Box::new((operation, reason)));
    };
    let binding = match operation.binding_id() {
        Some(id) if brief.kind.is_binding() => match engine.state.sealed_binding(id) {
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
    let Some(plan) = engine.catalog.plan(instance.service_id(), plan_id) else {
        let reason = format!("plan {plan_id} is no longer in the catalog");
        return Err(Box::new((operation, reason)));
    };
    Ok(Job {
        kind: brief.kind,
        call: if brief.started {
            Call::Poll
        } else {
            Call::Start
        },
        broker: Arc::clone(plan.broker()),
        request: SealedRequest {
            plan_settings: Arc::clone(&plan.plan().settings),
            operation,
            instance,
            binding,
        },
    })
}
