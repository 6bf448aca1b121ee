//! The applier: carries out what each plugin answer means for its operation.
//!
//! An outcome is applied under its instance's lock: the records are read, the pure
//! [`transitions`](super::transitions) say what changes, and this module persists it, then
//! reschedules (with back-off) or finishes the operation and wakes a synchronous request
//! waiting for it.
//!
//! Outcomes of one instance never race: a worker holds at most one job per instance (busy
//! marks), and an apply holds the instance lock that the next dispatch of that instance
//! waits for.

use std::sync::Arc;

use skybroker_brokers::BrokerError;
use skybroker_storage::{
    now_millis, Basis, Change, Claims, Failure, Operation, OperationKind, Read, StoreError,
};
use tokio::sync::{mpsc, watch};

use super::scan::MAX_CHANGES;
use super::transitions::{self, Ending, Policy, Step, Subject};
use super::{lock, scan, Engine};
use crate::jobs::Outcome;
use crate::metrics::EndedAs;

/// Outcomes the applier applies at once. Each apply holds its instance's lock and waits for
/// its commit; applying outcomes of different instances together lets the store batch their
/// commits (group commit) instead of paying one durable write after another.
const APPLYING_AT_ONCE: usize = 64;

/// The applier task: applies outcomes until stopped, then drains what is left and waits for
/// every apply under way.
pub async fn run_applier(
    engine: Arc<Engine>,
    mut outcomes: mpsc::Receiver<Outcome>,
    mut stop: watch::Receiver<bool>,
) {
    let mut applying = tokio::task::JoinSet::new();
    let spawn = |applying: &mut tokio::task::JoinSet<()>, outcome| {
        let engine = Arc::clone(&engine);
        applying.spawn(async move { apply(&engine, outcome).await });
    };
    loop {
        if applying.len() >= APPLYING_AT_ONCE {
            reap(applying.join_next().await);
            continue;
        }
        tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some(outcome) => {
                    scan::job_finished(&engine);
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

/// What the engine's steps for `operation_id` rest on, taken under the instance lock before
/// its records are read: the operation, its instance and (see [`with_binding`]) its
/// binding. Only what a step writes is conditioned on it (another replica's change to one
/// of them since fails the commit, and the step is retried on what the map then holds).
pub(super) fn basis(engine: &Engine, operation_id: &str, instance_id: &str) -> Basis {
    (engine.state)
        .basis(&[Read::Operation(operation_id), Read::Instance(instance_id)])
        .written_only()
}

/// `basis` with the binding of `operation`, if it has one.
pub(super) fn with_binding(engine: &Engine, mut basis: Basis, operation: &Operation) -> Basis {
    if let Some(binding_id) = operation.binding_id.as_deref() {
        basis.extend(engine.state.basis(&[Read::Binding(binding_id)]));
    }
    basis
}

/// The records `operation` works on, read from the map (the caller holds the instance lock).
pub(super) fn subject(engine: &Engine, operation: Operation) -> Subject {
    let instance = engine.state.instance(&operation.instance_id);
    let binding = (operation.binding_id.as_deref())
        .filter(|_| operation.kind.is_binding())
        .and_then(|id| engine.state.binding(id));
    let bindings = if operation.kind == OperationKind::Deprovision {
        let bindings = engine.state.bindings_of(&operation.instance_id);
        bindings.into_iter().map(|binding| binding.id).collect()
    } else {
        Vec::new()
    };
    Subject {
        operation,
        instance,
        binding,
        bindings,
    }
}

/// Applies one plugin outcome to its operation.
pub async fn apply(engine: &Engine, outcome: Outcome) {
    let Outcome {
        operation_id,
        instance_id,
        result,
    } = outcome;
    let _guard = engine.locks.lock(&instance_id).await;
    lock(&engine.busy).remove(instance_id.as_str());
    let basis = basis(engine, &operation_id, &instance_id);
    let Some(mut operation) = engine.state.operation(&operation_id) else {
        return;
    };
    let basis = with_binding(engine, basis, &operation);
    match &result {
        // The cause may name internals: logged here, once; the platform gets a summary.
        Err(err @ BrokerError::Provider { .. }) => {
            log::error!("operation {operation_id} failed: {err}")
        }
        Err(err) if err.is_transient() => {
            log::warn!("operation {operation_id}: {err}; retrying if there is time")
        }
        _ => {}
    }
    let policy = Policy {
        force_delete_unknown_instances: engine.config.force_delete_unknown_instances,
        force_delete_unknown_bindings: engine.config.force_delete_unknown_bindings,
    };
    let forced = matches!(result, Err(BrokerError::NotFound(_)));
    match transitions::advance(&mut operation, result, policy, now_millis()) {
        Step::Succeed(completion) => {
            if forced {
                log::info!(
                    "operation {operation_id}: the provider does not know the resource; \
                     removing the record (force_delete_unknown)"
                );
            }
            let ending =
                transitions::succeeded(subject(engine, operation), *completion, now_millis());
            carry_out(engine, &basis, ending).await;
        }
        Step::Fail(failure) => finish_failed(engine, &basis, operation, failure).await,
        Step::Unchanged => {
            let delay = engine.backoff(&operation.id, operation.attempts);
            // (Not in the map any more: nothing is left to drive.)
            if engine.state.update_unpersisted(operation) {
                engine.schedule_at(&operation_id, now_millis() + delay);
            }
        }
        Step::Persist { state } => {
            let delay = engine.backoff(&operation.id, operation.attempts);
            let mut changes = Vec::new();
            if let Some(state) = state {
                let subject = subject(engine, operation.clone());
                changes.extend(transitions::plugin_state(subject, state));
            }
            changes.push(Change::PutOperation(operation));
            persist_then_schedule(engine, &basis, &operation_id, changes, delay).await;
        }
        Step::Retry => {
            let delay = engine.backoff(&operation.id, operation.attempts);
            let changes = vec![Change::PutOperation(operation)];
            persist_then_schedule(engine, &basis, &operation_id, changes, delay).await;
        }
        Step::Halted { state: Some(state) } => {
            // Halted meanwhile (D-17): keep what the plugin learnt about the resource, so the
            // deprovision that halted it can find it.
            if let Some(change) = transitions::plugin_state(subject(engine, operation), state) {
                if let Err(err) = engine.state.commit_on(&basis, vec![change]).await {
                    log::warn!("plugin state of halted {operation_id} not persisted: {err}");
                }
            }
            // The delete that halted it ended it, on this replica or another: the claim goes.
            engine.release(&operation_id).await;
        }
        Step::Halted { state: None } => engine.release(&operation_id).await,
    }
}

async fn persist_then_schedule(
    engine: &Engine,
    basis: &Basis,
    operation_id: &str,
    changes: Vec<Change>,
    delay: u64,
) {
    match engine.state.commit_on(basis, changes).await {
        Ok(()) => engine.schedule_at(operation_id, now_millis() + delay),
        Err(err) => {
            // Not persisted: the plugin will simply be asked again.
            log::warn!("operation {operation_id}: progress not persisted ({err}); retrying");
            engine.schedule_at(operation_id, now_millis() + delay.max(1000));
        }
    }
}

/// Fails `operation` on `basis` (the caller holds its instance's lock).
pub(super) async fn finish_failed(
    engine: &Engine,
    basis: &Basis,
    operation: Operation,
    failure: Failure,
) {
    log::info!(
        "operation {} ({}) failed: {}",
        operation.id,
        operation.describe(),
        failure.description
    );
    let ending = transitions::failed(subject(engine, operation), failure, now_millis());
    carry_out(engine, basis, ending).await;
}

/// Persists an ending, counts it, releases the operation's claim and wakes a request waiting
/// for it; an ending that cannot be persisted is retried.
async fn carry_out(engine: &Engine, basis: &Basis, ending: Ending) {
    let (operation, mut changes, reverted) = match ending {
        Ending::Finish { operation, changes } => (operation, changes, false),
        Ending::Revert { operation, changes } => (operation, changes, true),
    };
    // A deprovision of an instance with many bindings deletes them ahead, in commits etcd
    // takes; the instance and the operation go last, together.
    while changes.len() > MAX_CHANGES {
        let ahead: Vec<Change> = changes
            .iter()
            .filter(|change| matches!(change, Change::DeleteBinding(_)))
            .take(MAX_CHANGES)
            .cloned()
            .collect();
        if ahead.is_empty() {
            break;
        }
        changes.retain(|change| !ahead.iter().any(|a| same_binding_delete(a, change)));
        if let Err(err) = engine.state.commit(ahead).await {
            retry_later(engine, &operation.id, err);
            return;
        }
    }
    // The claim goes with the ending (the record too, when reverted).
    let claims = Claims::giving_up(operation.id.clone());
    if let Err(err) = engine.state.commit_claiming(basis, changes, &claims).await {
        retry_later(engine, &operation.id, err);
        return;
    }
    let succeeded = operation.failure.is_none();
    if !reverted {
        log::info!(
            "operation {} ({}) {}",
            operation.id,
            operation.describe(),
            if succeeded { "succeeded" } else { "failed" }
        );
    }
    let outcome = if succeeded {
        EndedAs::Succeeded
    } else {
        EndedAs::Failed
    };
    engine.metrics.operation_finished(operation.kind, outcome);
    engine.finished(operation);
}

/// Whether two changes delete the same binding.
fn same_binding_delete(a: &Change, b: &Change) -> bool {
    matches!((a, b), (Change::DeleteBinding(x), Change::DeleteBinding(y)) if x == y)
}

fn retry_later(engine: &Engine, operation_id: &str, err: StoreError) {
    // The transition was not persisted, so the operation is still in progress in the store
    // and the map: poll it again (the plugin call is idempotent).
    log::warn!("operation {operation_id}: final state not persisted ({err}); retrying");
    engine.schedule_at(operation_id, now_millis() + 1000);
}
