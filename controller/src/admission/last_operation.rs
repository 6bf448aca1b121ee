//! Which operation a poll answers with: instance last_operation (E6, OSB-LOI) and binding
//! last_operation (E10, OSB-LOB).
//!
//! Answered from the map only. Which operation answers (D-13): the one named by `operation`
//! if this broker issued it for this resource and still retains it, else the newest one.
//! After an async delete, the retained record answers `succeeded`; once it is cleaned up, a
//! poll naming one of our operation ids answers 410 (D-08), and anything else 404 (D-10 for
//! bindings). A replica that holds nothing to answer with catches up with the store first
//! (another replica may have accepted the operation a moment ago).

use skybroker_storage::{
    InstanceState, Operation, OperationKind, OperationState, Target, UnixMillis,
};

use crate::core::Core;
use crate::error::ApiError;
use skybroker_storage::ServiceInstance;

/// What a poll answers.
#[derive(Debug)]
pub enum Polled {
    /// An operation record answers (boxed: it is large and the other answer is a word).
    Operation(Box<PolledOperation>),
    /// No operation record is left (cleaned up after the retention): the resource itself
    /// says how its last operation ended.
    State(OperationState),
}

/// An operation that answers a poll.
#[derive(Debug)]
pub struct PolledOperation {
    /// The record.
    pub operation: Operation,
    /// When the engine next polls the provider for it, if it is scheduled (`Retry-After`).
    pub next_poll: Option<UnixMillis>,
}

/// Whether `id` has the shape of an operation id this broker issues (`kind-<32 hex>`).
fn looks_issued(id: &str) -> bool {
    id.split_once('-').is_some_and(|(kind, hex)| {
        OperationKind::from_name(kind).is_some()
            && hex.len() == 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The answer when no operation record of the resource is left: 410 when the platform polls
/// an operation id we issued and no longer hold (it was deleted, D-08), 404 otherwise.
fn without_record(core: &Core, operation: Option<&str>, what: &str) -> ApiError {
    match operation {
        Some(id) if looks_issued(id) && core.state.operation(id).is_none() => {
            ApiError::Gone(format!("{what} no longer exists"))
        }
        _ => ApiError::NotFound(format!("{what} does not exist")),
    }
}

/// `answer` from the records this replica holds; when it has none to answer with, `answer`
/// again once the replica has caught up with the store; else the answer for a resource
/// without records (`what`: its kind and id).
async fn answer_caught_up(
    core: &Core,
    requested: Option<&str>,
    (kind, id): (&str, &str),
    answer: impl Fn(bool) -> Option<Polled>,
) -> Result<Polled, ApiError> {
    if let Some(polled) = answer(false) {
        return Ok(polled);
    }
    if let Err(err) = core.state.catch_up().await {
        // The store is away: what the map holds still answers (a cleaned-up operation's
        // instance), only an absence cannot be vouched for.
        return answer(true).ok_or_else(|| err.into());
    }
    answer(true).ok_or_else(|| without_record(core, requested, &format!("{kind} {id}")))
}

fn polled(core: &Core, operation: Operation) -> Polled {
    let next_poll = (operation.in_progress())
        .then(|| core.engine.next_due(&operation.id))
        .flatten();
    Polled::Operation(Box::new(PolledOperation {
        operation,
        next_poll,
    }))
}

/// 404 for a platform asking about an instance that is not its own (`reaches` says which
/// are).
fn refuse_others(
    core: &Core,
    instance_id: &str,
    platform: Option<&str>,
    reaches: fn(&ServiceInstance, Option<&str>) -> bool,
) -> Result<(), ApiError> {
    // The broker's own credentials reach everything: nothing read on the common path.
    if platform.is_none() {
        return Ok(());
    }
    match core.state.instance(instance_id) {
        Some(instance) if !reaches(&instance, platform) => Err(ApiError::NotFound(format!(
            "instance {instance_id} does not exist"
        ))),
        _ => Ok(()),
    }
}

/// The last operation of an instance, `requested` being the platform's `operation` hint.
pub async fn instance(
    core: &Core,
    instance_id: &str,
    requested: Option<&str>,
    platform: Option<&str>,
) -> Result<Polled, ApiError> {
    refuse_others(core, instance_id, platform, ServiceInstance::belongs_to)?;
    answer_caught_up(core, requested, ("instance", instance_id), |settled| {
        instance_answer(core, instance_id, requested, settled)
    })
    .await
}

/// The answer from the records this replica holds: `None` when it holds neither the instance
/// nor any of its operations, or (unless `settled`: caught up with the store already) not the
/// operation the platform named, which is then answered for by the latest one if any.
fn instance_answer(
    core: &Core,
    instance_id: &str,
    requested: Option<&str>,
    settled: bool,
) -> Option<Polled> {
    let named = requested
        .and_then(|id| core.state.operation(id))
        .filter(|op| op.instance_id == instance_id && !op.kind.is_binding());
    if requested.is_some() && named.is_none() && !settled {
        return None;
    }
    let operation = named.or_else(|| {
        core.state
            .latest_operation(&Target::Instance(instance_id.into()))
    });
    if let Some(operation) = operation {
        return Some(polled(core, operation));
    }
    // The records were cleaned up: answer from the instance itself.
    let instance = core.state.instance(instance_id)?;
    Some(Polled::State(match instance.state {
        InstanceState::Ready => OperationState::Succeeded,
        InstanceState::ProvisionFailed => OperationState::Failed,
        _ => OperationState::InProgress,
    }))
}

/// The last operation of a binding of an instance (D-10 when there is nothing to answer
/// with).
pub async fn binding(
    core: &Core,
    (instance_id, binding_id): (&str, &str),
    requested: Option<&str>,
    platform: Option<&str>,
) -> Result<Polled, ApiError> {
    refuse_others(core, instance_id, platform, ServiceInstance::bindable_by)?;
    answer_caught_up(core, requested, ("binding", binding_id), |settled| {
        binding_answer(core, (instance_id, binding_id), requested, settled)
    })
    .await
}

/// As [`instance_answer`], for a binding of an instance.
fn binding_answer(
    core: &Core,
    (instance_id, binding_id): (&str, &str),
    requested: Option<&str>,
    settled: bool,
) -> Option<Polled> {
    let ours = |op: &Operation| {
        op.instance_id == instance_id && op.binding_id.as_deref() == Some(binding_id)
    };
    let named = requested
        .and_then(|id| core.state.operation(id))
        .filter(|op| ours(op));
    if requested.is_some() && named.is_none() && !settled {
        return None;
    }
    let operation = named.or_else(|| {
        core.state
            .latest_operation(&Target::Binding(binding_id.into()))
            .filter(|op| ours(op))
    });
    if let Some(operation) = operation {
        return Some(polled(core, operation));
    }
    core.state
        .binding(binding_id)
        .filter(|b| b.instance_id == instance_id)?;
    Some(Polled::State(OperationState::Succeeded))
}

#[cfg(test)]
mod tests {
    use super::looks_issued;

    #[test]
    fn issued_operation_ids_are_recognised() {
        assert!(looks_issued("deprovision-0123456789abcdef0123456789abcdef"));
        assert!(!looks_issued("provision"));
        assert!(!looks_issued("deprovision-xyz"));
        assert!(!looks_issued("delete-0123456789abcdef0123456789abcdef"));
    }
}
