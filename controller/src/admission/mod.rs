//! Admission: whether a request may start an operation, and which.
//!
//! Between the HTTP layer (which parsed the request into one of the typed requests here) and
//! the engine (which runs what is admitted), this is where a request is checked against the
//! catalog (offering, plan, parameters, maintenance info) and against the state map
//! (existing records, identical repeats, conflicts, operations already running), and where
//! the decision is made: answer from what exists, refuse, or commit the records of a new
//! operation and hand it to the engine. Every decision is read, decided and committed under
//! the instance's lock; the state machine's record changes come from
//! [`crate::engine::transitions`].
//!
//! One module per resource, as the API: [`instances`] (provision, fetch, update,
//! deprovision), [`bindings`] (bind, fetch, unbind) and [`last_operation`] (which operation a
//! poll answers with, D-13).

pub mod bindings;
pub mod instances;
pub mod last_operation;

use std::future::Future;

use serde_json::{Map, Value};
use skybroker_storage::{Basis, Operation, OperationId, Read, StateMap};
use tokio::sync::MutexGuard;

use crate::catalog::PlanRef;
use crate::core::Core;
use crate::engine::{Finished, Launched};
use crate::error::ApiError;

/// What an admitted request answers (errors are `ApiError`s).
#[derive(Debug)]
pub enum Answer<T> {
    /// Nothing new was started: an identical repeat of a finished create, or an update with
    /// nothing for the provider to do (200).
    Existing(T),
    /// Done synchronously (201 for a create, 200 otherwise).
    Done(T),
    /// Accepted asynchronously: the platform polls this operation (202).
    Accepted(OperationId),
}

/// Who asked and how: the parts every changing request carries.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `accepts_incomplete=true`: the platform can poll.
    pub accepts_incomplete: bool,
    /// The originating identity (`platform user`), recorded with the operation.
    pub requested_by: Option<String>,
    /// The registered platform calling (Service Manager); `None` for the broker's own
    /// credentials, which see every plan.
    pub platform: Option<String>,
}

impl Caller {
    /// 403 unless the caller sees `plan` (a platform sees the plans made visible to it).
    pub fn check_visible(&self, plan: &PlanRef) -> Result<(), ApiError> {
        if plan.visible_to(self.platform.as_deref()) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "plan {:?} is not visible to this platform",
            plan.plan().name
        )))
    }
}

/// A deprovision or unbind.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    /// The instance (of the binding).
    pub instance_id: String,
    /// `service_id` from the query.
    pub service_id: String,
    /// `plan_id` from the query.
    pub plan_id: String,
    /// Who asks.
    pub caller: Caller,
}

/// Runs `decide` (read the map, decide, commit under the instance lock) and, when it could
/// not proceed on what the map held, catches up with the store and decides once more on what
/// the map then holds: when its commit lost to another replica's change the map had not seen
/// yet (a store conflict), or when it found the resource busy with an operation (which may
/// have finished on another replica already). So a platform repeating on replica B what
/// replica A has just done gets the answer A would give (200, 202, 409, 410), not a 422. What
/// still stops it after catching up is the platform's 422 ConcurrencyError. `decide` is told
/// whether the map has just caught up (so that a miss need not catch up again).
async fn decided<T, F>(core: &Core, decide: impl Fn(bool) -> F) -> Result<Answer<T>, ApiError>
where
    F: Future<Output = Result<Answer<T>, ApiError>>,
{
    match decide(false).await {
        Err(ApiError::StoreConflict | ApiError::Concurrency(_)) => {
            core.state.catch_up().await?;
            decide(true).await
        }
        result => result,
    }
}

/// The opening of a decision on records that should exist: unless the map has just caught up,
/// catch up when `present` does not hold (a miss may be another replica's fresh record; done
/// outside the instance lock, which the engine waits for); then the instance lock, and the
/// basis of `reads` taken under it before anything is read (issue #16).
async fn lock_and_read<'a>(
    core: &'a Core,
    instance_id: &str,
    caught_up: bool,
    present: impl Fn(&StateMap) -> bool,
    reads: &[Read<'_>],
) -> Result<(MutexGuard<'a, ()>, Basis), ApiError> {
    if !caught_up {
        core.state.catch_up_unless(present).await?;
    }
    let guard = core.locks.lock(instance_id).await;
    Ok((guard, core.state.basis(reads)))
}

/// The plan a delete runs with: the resource's own (`own`: its offering and plan), the
/// platform's query naming a plan of the catalog (400 otherwise) but possibly a stale one.
fn delete_plan(
    core: &Core,
    (service_id, plan_id): (&str, &str),
    own: (&str, &str),
) -> Result<PlanRef, ApiError> {
    core.catalog.requested_plan(service_id, plan_id)?;
    match core.catalog.plan(own.0, own.1) {
        Some(plan) => Ok(plan),
        None => core.catalog.requested_plan(service_id, plan_id),
    }
}

/// The last operation of a resource being deleted, which the delete halts if it is a
/// running create (D-17): it is written too, so it joins the decision's basis.
fn last_operation_of(
    core: &Core,
    basis: &mut Basis,
    last_operation: Option<&str>,
) -> Option<Operation> {
    let id = last_operation?;
    basis.extend(core.state.basis(&[Read::Operation(id)]));
    core.state.operation(id)
}

/// The answer to a request repeating the operation that runs on a resource: the same
/// operation while it runs asynchronously and `same` holds (OSB-PROV-08, OSB-UPD-08,
/// OSB-DEPROV-06, OSB-BIND-09, OSB-UNB-05); otherwise `busy`, a 422 ConcurrencyError (a
/// synchronous operation has a request waiting for it and cannot be joined).
fn repeat_of<T>(
    core: &Core,
    last_operation: Option<&str>,
    same: impl Fn(&Operation) -> bool,
    busy: ApiError,
) -> Result<Answer<T>, ApiError> {
    match last_operation.and_then(|id| core.state.operation(id)) {
        Some(op) if !op.sync && op.in_progress() && same(&op) => Ok(Answer::Accepted(op.id)),
        _ => Err(busy),
    }
}

/// The answer of a launched operation: its id when asynchronous; `done`'s pick of the
/// records when it finished well (the failure's error if the record is gone); the failure's
/// error otherwise.
fn answer<T>(
    launched: Launched,
    done: impl FnOnce(Finished) -> Option<T>,
) -> Result<Answer<T>, ApiError> {
    match launched {
        Launched::Async(operation_id) => Ok(Answer::Accepted(operation_id)),
        Launched::Finished(finished) if finished.operation.failure.is_none() => {
            let error = ApiError::from_failed(&finished.operation);
            done(*finished).map(Answer::Done).ok_or(error)
        }
        Launched::Finished(finished) => Err(ApiError::from_failed(&finished.operation)),
    }
}

/// Whether the parameters as sent equal the stored ones (absent and `{}` are the same).
fn same_parameters(stored: &Value, sent: &Map<String, Value>) -> bool {
    match stored {
        Value::Object(map) => map == sent,
        Value::Null => sent.is_empty(),
        _ => false,
    }
}

/// The 422 for a resource another operation is working on.
fn busy(what: &str) -> ApiError {
    ApiError::Concurrency(format!("{what}; retry when it has finished"))
}

/// Refuses a plan that runs asynchronously when the platform cannot poll (OSB-ASYNC).
fn check_async(sync: bool, caller: &Caller) -> Result<(), ApiError> {
    if !sync && !caller.accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_and_empty_parameters_are_the_same() {
        let empty = Map::new();
        let sent = json!({"a": 1}).as_object().unwrap().clone();
        assert!(same_parameters(&Value::Null, &empty));
        assert!(same_parameters(&json!({}), &empty));
        assert!(same_parameters(&json!({"a": 1}), &sent));
        assert!(!same_parameters(&json!({"a": 2}), &sent));
        assert!(!same_parameters(&Value::Null, &sent));
        assert!(!same_parameters(&json!([1]), &empty));
    }

    #[test]
    fn asynchronous_plans_need_a_platform_that_polls() {
        let polls = Caller {
            accepts_incomplete: true,
            ..Caller::default()
        };
        assert!(check_async(false, &polls).is_ok());
        assert!(check_async(true, &Caller::default()).is_ok());
        assert!(matches!(
            check_async(false, &Caller::default()),
            Err(ApiError::AsyncRequired)
        ));
    }
}
