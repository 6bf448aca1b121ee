//! The OSB state machine as pure functions: `(records, outcome, now) -> (records, effects)`.
//!
//! Nothing here reads the map, writes the store, locks, logs or looks at the clock: the
//! callers (admission and the engine's applier) read the records under the instance lock,
//! call one of these, and carry out what it returns. So every transition of an instance, a
//! binding and an operation is written once, and the table-driven tests below list them all.
//!
//! | operation | succeeds | fails | 4xx while synchronous / not queued in time |
//! |---|---|---|---|
//! | provision | instance `ready` | `provision_failed` | instance removed |
//! | update | target applied, `ready` | `ready` (or `provision_failed` if it halted a create) | `ready` |
//! | deprovision | instance and its bindings removed | `ready` (`provision_failed` if it halted a create) | `ready` |
//! | bind | binding `bound`, credentials kept | `bind_failed` | binding removed |
//! | unbind | binding removed | `bound` (`bind_failed` if it halted a create) | `bound` |

use serde_json::Value;
use skybroker_brokers::{BrokerError, Completion, Progress};
use skybroker_storage::{
    BindingId, BindingState, Change, Failure, InstanceState, Operation, OperationKind,
    OperationState, ServiceBinding, ServiceInstance, UnixMillis,
};

/// Plugin calls a synchronous operation gets when they fail transiently: its caller waits.
pub const SYNC_ATTEMPTS: u32 = 3;

/// A new in-progress operation of `kind`, created at `now`, ending at `deadline`.
pub fn new_operation(
    kind: OperationKind,
    instance_id: &str,
    binding_id: Option<&str>,
    sync: bool,
    requested_by: Option<String>,
    now: UnixMillis,
    deadline: UnixMillis,
) -> Operation {
    Operation {
        // D-16: short, URL-safe; the kind prefix helps people reading logs. Time-ordered
        // (UUIDv7): new operations' keys sort together at the end of the store's B-tree, so
        // a group commit of many writes them into a few pages, not one page each.
        id: format!("{}-{}", kind.name(), uuid::Uuid::now_v7().simple()).into(),
        kind,
        instance_id: instance_id.into(),
        binding_id: binding_id.map(Into::into),
        state: OperationState::InProgress,
        sync,
        description: None,
        failure: None,
        reference: None,
        halted_reference: None,
        halted: false,
        update: None,
        attempts: 0,
        requested_by,
        created_at: now,
        deadline,
        finished_at: None,
    }
}

/// The records an operation works on, as read under its instance's lock.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The operation.
    pub operation: Operation,
    /// Its instance, if it still exists.
    pub instance: Option<ServiceInstance>,
    /// Its binding (binding operations), if it still exists.
    pub binding: Option<ServiceBinding>,
    /// The ids of the instance's bindings (read for a deprovision only: they go with it).
    pub bindings: Vec<BindingId>,
}

/// How a finished operation is recorded.
#[derive(Debug)]
pub enum Ending {
    /// Persist `changes` (the operation record among them).
    Finish {
        /// The final operation.
        operation: Operation,
        /// What to commit.
        changes: Vec<Change>,
    },
    /// A synchronous request's client error, or a request that could not be queued in time:
    /// undo the admission (`changes` delete the operation record too); `operation` is what
    /// the waiting request is answered with.
    Revert {
        /// The final operation, not persisted.
        operation: Operation,
        /// What to commit.
        changes: Vec<Change>,
    },
}

/// What the engine does after a plugin call answered.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// The operation is over (see [`succeeded`] and [`failed`] for the records).
    Succeed(Box<Completion>),
    /// The operation failed.
    Fail(Failure),
    /// Still running, with something new to persist (reference, description or plugin
    /// state); poll again after the back-off for its attempt count.
    Persist {
        /// Plugin state to store on the instance or binding.
        state: Option<Value>,
    },
    /// Still running, nothing learnt but the attempt count, which need not survive a
    /// restart: keep it in the map only and poll again (issue #5: polls of many young
    /// operations would otherwise cost a commit each).
    Unchanged,
    /// A transient error: keep the attempt count and ask again after the back-off.
    Retry,
    /// The operation was no longer in progress (halted by a delete, D-17): only the plugin's
    /// state, if it reported one, is kept so the delete can find the resource.
    Halted {
        /// The state to keep.
        state: Option<Value>,
    },
}

/// What the engine's configuration says about unknown resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// A deprovision the provider does not know succeeds (removes the record).
    pub force_delete_unknown_instances: bool,
    /// An unbind the provider does not know succeeds.
    pub force_delete_unknown_bindings: bool,
}

/// Advances `operation` by one plugin answer at `now`: counts the attempt, records a new
/// reference and description, and says what happens next.
pub fn advance(
    operation: &mut Operation,
    answer: Result<Progress, BrokerError>,
    policy: Policy,
    now: UnixMillis,
) -> Step {
    if !operation.in_progress() {
        let state = match answer {
            Ok(Progress::InProgress { state, .. }) => state,
            Ok(Progress::Done(completion)) => completion.state,
            _ => None,
        };
        return Step::Halted { state };
    }
    operation.attempts += 1;
    match answer {
        Ok(Progress::Done(completion)) => match binding_metadata_problem(&completion) {
            // What would reach the platform as a broken binding fails instead.
            Some(problem) => Step::Fail(Failure::new(format!(
                "the provider returned invalid binding metadata: {problem}"
            ))),
            None => Step::Succeed(Box::new(completion)),
        },
        Ok(Progress::Failed {
            description,
            instance_usable,
            update_repeatable,
        }) => Step::Fail(
            Failure::new(description)
                .instance_usable(instance_usable)
                .update_repeatable(update_repeatable),
        ),
        Ok(Progress::InProgress { .. }) if now > operation.deadline => {
            Step::Fail(timeout_failure(operation.kind))
        }
        Ok(Progress::InProgress {
            reference,
            description,
            state,
        }) => {
            let unchanged = state.is_none()
                && operation.reference.as_ref() == Some(&reference)
                && operation.description == description;
            if unchanged {
                return Step::Unchanged;
            }
            operation.reference = Some(reference);
            operation.description = description;
            Step::Persist { state }
        }
        // A delete of something the provider never heard of, before the provider took it.
        Err(BrokerError::NotFound(what))
            if matches!(
                operation.kind,
                OperationKind::Deprovision | OperationKind::Unbind
            ) && operation.reference.is_none() =>
        {
            let force = if operation.kind == OperationKind::Deprovision {
                policy.force_delete_unknown_instances
            } else {
                policy.force_delete_unknown_bindings
            };
            if force {
                Step::Succeed(Box::default())
            } else {
                Step::Fail(
                    Failure::new(format!("the provider does not know this resource: {what}"))
                        .instance_usable(Some(true)),
                )
            }
        }
        // Transient errors are retried until the deadline; a synchronous request, whose
        // caller is waiting, gets a few tries.
        Err(err)
            if err.is_transient()
                && now < operation.deadline
                && (!operation.sync || operation.attempts < SYNC_ATTEMPTS) =>
        {
            Step::Retry
        }
        Err(err) => {
            let description = match &err {
                // The cause may name internals: the caller logs it, the platform gets this.
                BrokerError::Provider { .. } => format!(
                    "the {} operation failed at the provider",
                    operation.kind.name()
                ),
                // The other variants carry messages written for the platform user.
                _ => err.to_string(),
            };
            let failure = Failure::new(description);
            Step::Fail(if err.is_client_error() {
                failure.client_error(matches!(err, BrokerError::Unprocessable(_)))
            } else if err.is_transient() {
                failure.unreachable()
            } else {
                failure
            })
        }
    }
}

/// OSB-BIND-12: a binding's `metadata` is an object whose `expires_at` and `renew_before`,
/// when present, are ISO-8601 UTC times (`yyyy-mm-ddThh:mm:ss.sZ`), `renew_before` no later
/// than `expires_at`. What is wrong with a completion's, if anything.
pub fn binding_metadata_problem(completion: &Completion) -> Option<String> {
    let metadata = completion.binding.as_ref()?.metadata.as_ref()?;
    let Value::Object(fields) = metadata else {
        return Some("metadata must be an object".to_owned());
    };
    let time = |field: &str| -> Result<Option<time::OffsetDateTime>, String> {
        let Some(value) = fields.get(field) else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .filter(|text| text.ends_with('Z'))
            .ok_or_else(|| format!("{field} must be a UTC time like 2026-01-31T12:00:00.0Z"))?;
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|err| format!("{field} {text:?} is not an ISO-8601 time: {err}"))
    };
    match (time("expires_at"), time("renew_before")) {
        (Err(problem), _) | (_, Err(problem)) => Some(problem),
        (Ok(Some(expires)), Ok(Some(renew))) if renew > expires => {
            Some("renew_before is later than expires_at".to_owned())
        }
        (Ok(None), Ok(Some(_))) => Some("renew_before without expires_at".to_owned()),
        _ => None,
    }
}

/// The failure of an operation that outlived its deadline (the plan's
/// `maximum_polling_duration`).
pub fn timeout_failure(kind: OperationKind) -> Failure {
    Failure::new(format!(
        "the {} did not finish before its deadline (maximum_polling_duration)",
        kind.name()
    ))
}

/// The change that stores a plugin's state on the instance or binding of the subject.
pub fn plugin_state(subject: Subject, state: Value) -> Option<Change> {
    if subject.operation.kind.is_binding() {
        let mut binding = subject.binding?;
        binding.plugin_state = state;
        Some(Change::PutBinding(binding))
    } else {
        let mut instance = subject.instance?;
        instance.plugin_state = state;
        Some(Change::PutInstance(instance))
    }
}

/// The records of a successful operation.
pub fn succeeded(subject: Subject, completion: Completion, now: UnixMillis) -> Ending {
    let Subject {
        mut operation,
        instance,
        binding,
        bindings,
    } = subject;
    let mut changes = Vec::new();
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
            changes.extend(bindings.into_iter().map(Change::DeleteBinding));
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
    operation.finished_at = Some(now);
    changes.push(Change::PutOperation(operation.clone()));
    Ending::Finish { operation, changes }
}

/// The records of a failed operation; a synchronous client error changes nothing
/// (OSB-ERR-04): its admission is undone.
pub fn failed(subject: Subject, failure: Failure, now: UnixMillis) -> Ending {
    if subject.operation.sync && failure.client_error {
        let changes = revert(&subject);
        let mut operation = subject.operation;
        operation.state = OperationState::Failed;
        operation.failure = Some(failure);
        operation.finished_at = Some(now);
        return Ending::Revert { operation, changes };
    }
    let Subject {
        mut operation,
        instance,
        binding,
        ..
    } = subject;
    let mut changes = Vec::new();
    let halted_a_create = operation.halted_a_create();
    match operation.kind {
        OperationKind::Provision => {
            if let Some(mut instance) = instance {
                instance.state = InstanceState::ProvisionFailed;
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Update | OperationKind::Deprovision => {
            if let Some(mut instance) = instance {
                instance.state = if halted_a_create {
                    InstanceState::ProvisionFailed
                } else {
                    InstanceState::Ready
                };
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Bind | OperationKind::Unbind => {
            if let Some(mut binding) = binding {
                binding.state = match (operation.kind, halted_a_create) {
                    (OperationKind::Unbind, false) => BindingState::Bound,
                    _ => BindingState::BindFailed,
                };
                changes.push(Change::PutBinding(binding));
            }
        }
    }
    operation.state = OperationState::Failed;
    operation.description = None;
    operation.failure = Some(failure);
    operation.finished_at = Some(now);
    changes.push(Change::PutOperation(operation.clone()));
    Ending::Finish { operation, changes }
}

/// The changes that undo admitting the subject's operation, its record included: a create
/// removes what it created, anything else puts its resource back as it was.
pub fn revert(subject: &Subject) -> Vec<Change> {
    let operation = &subject.operation;
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
            if let Some(mut instance) = subject.instance.clone() {
                instance.state = InstanceState::Ready;
                changes.push(Change::PutInstance(instance));
            }
        }
        OperationKind::Unbind => {
            if let Some(mut binding) = subject.binding.clone() {
                binding.state = BindingState::Bound;
                changes.push(Change::PutBinding(binding));
            }
        }
    }
    changes
}

/// The create operation `create` as halted by the delete `by` (D-17), with the provider
/// reference it had, if it was still running.
fn halt(create: Option<Operation>, by: &Operation, now: UnixMillis) -> Option<(Operation, Value)> {
    let mut create = create.filter(Operation::in_progress)?;
    create.state = OperationState::Failed;
    create.finished_at = Some(now);
    create.failure = Some(
        Failure::new(format!(
            "the {} was cancelled by {} {}",
            create.kind.name(),
            by.kind.name(),
            by.id
        ))
        .cancelled(),
    );
    let reference = create.reference.clone().unwrap_or_default();
    Some((create, reference))
}

/// The changes that start deleting a resource with `operation`: when its create still runs
/// (`creating`, with that create's operation `create`), the create is halted and its
/// reference handed to the delete (D-17); when its create failed (`failed`), the delete is
/// marked the same way, without a reference. Either way the resource never existed for the
/// platform: it cannot be fetched while it is deleted (issue #16), and a delete that fails
/// leaves it failed, not ready. Returns the changes and the operation as started.
fn begin_delete(
    mut operation: Operation,
    (creating, failed): (bool, bool),
    create: Option<Operation>,
    now: UnixMillis,
) -> (Vec<Change>, Operation) {
    let mut changes = Vec::new();
    if failed {
        operation.halted = true;
    }
    if creating {
        operation.halted = true;
        // `Null` marks a create that had no reference yet (see `Operation::halted`).
        operation.halted_reference = Some(match halt(create, &operation, now) {
            Some((create, reference)) => {
                changes.push(Change::PutOperation(create));
                reference
            }
            None => Value::Null,
        });
    }
    (changes, operation)
}

/// The changes that start unbinding `binding` with the new `operation` (`create`: the
/// binding's last operation, read when it is still `binding`).
pub fn begin_unbind(
    binding: &ServiceBinding,
    create: Option<Operation>,
    operation: Operation,
    now: UnixMillis,
) -> (Vec<Change>, Operation) {
    let never_created = (
        binding.state == BindingState::Binding,
        binding.state == BindingState::BindFailed,
    );
    let (mut changes, operation) = begin_delete(operation, never_created, create, now);
    let mut binding = binding.clone();
    binding.state = BindingState::Unbinding;
    binding.last_operation = Some(operation.id.clone());
    changes.push(Change::PutBinding(binding));
    changes.push(Change::PutOperation(operation.clone()));
    (changes, operation)
}

/// The changes that start deprovisioning `instance` with the new `operation` (`create`: the
/// instance's last operation, read when it is still `provisioning`).
pub fn begin_deprovision(
    instance: &ServiceInstance,
    create: Option<Operation>,
    operation: Operation,
    now: UnixMillis,
) -> (Vec<Change>, Operation) {
    let never_created = (
        instance.state == InstanceState::Provisioning,
        instance.state == InstanceState::ProvisionFailed,
    );
    let (mut changes, operation) = begin_delete(operation, never_created, create, now);
    let mut instance = instance.clone();
    instance.state = InstanceState::Deprovisioning;
    instance.last_operation = Some(operation.id.clone());
    changes.push(Change::PutInstance(instance));
    changes.push(Change::PutOperation(operation.clone()));
    (changes, operation)
}

/// A failure for `deprovision` when an unbind it cascaded to has failed since it began
/// (`unbinds`: each binding with its last operation): deleting the instance under a binding
/// that still exists would orphan its credentials, and cascading again would loop (D-03).
pub fn failed_cascade(
    deprovision: &Operation,
    unbinds: &[(ServiceBinding, Option<Operation>)],
) -> Option<Failure> {
    unbinds.iter().find_map(|(binding, unbind)| {
        let unbind = unbind.as_ref()?;
        let failed_since = unbind.kind == OperationKind::Unbind
            && unbind.state == OperationState::Failed
            && unbind.created_at >= deprovision.created_at;
        failed_since.then(|| {
            let cause = unbind
                .failure
                .as_ref()
                .map_or("unknown error", |f| f.description.as_str());
            Failure::new(format!(
                "binding {} could not be deleted: {cause}",
                binding.id
            ))
            .instance_usable(Some(true))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skybroker_brokers::BindingResult;

    const NOW: UnixMillis = 5_000;

    fn operation(kind: OperationKind, sync: bool) -> Operation {
        let binding = kind.is_binding().then_some("b-1");
        new_operation(kind, "i-1", binding, sync, None, 1_000, 10_000)
    }

    fn instance(state: InstanceState) -> ServiceInstance {
        serde_json::from_value(json!({
            "id": "i-1", "service_id": "svc", "plan_id": "small", "parameters": {"a": 1},
            "context": null, "state": state, "plugin_state": {"db": "d-1"}, "created_at": 1
        }))
        .unwrap()
    }

    fn binding(state: BindingState) -> ServiceBinding {
        serde_json::from_value(json!({
            "id": "b-1", "instance_id": "i-1", "service_id": "svc", "plan_id": "small",
            "parameters": {}, "context": null, "state": state, "plugin_state": null,
            "created_at": 2
        }))
        .unwrap()
    }

    /// The subject of `kind` in the state its admission leaves.
    fn subject(kind: OperationKind, sync: bool) -> Subject {
        let instance_state = match kind {
            OperationKind::Provision => InstanceState::Provisioning,
            OperationKind::Update => InstanceState::Updating,
            OperationKind::Deprovision => InstanceState::Deprovisioning,
            _ => InstanceState::Ready,
        };
        let binding_state = match kind {
            OperationKind::Bind => Some(BindingState::Binding),
            OperationKind::Unbind => Some(BindingState::Unbinding),
            _ => None,
        };
        Subject {
            operation: operation(kind, sync),
            instance: Some(instance(instance_state)),
            binding: binding_state.map(binding),
            bindings: if kind == OperationKind::Deprovision {
                vec!["b-1".into(), "b-2".into()]
            } else {
                vec![]
            },
        }
    }

    /// The instance state, binding state and deletions an ending leaves, and its operation.
    fn summary(ending: &Ending) -> (String, &Operation) {
        let (operation, changes) = match ending {
            Ending::Finish { operation, changes } => (operation, changes),
            Ending::Revert { operation, changes } => (operation, changes),
        };
        let words: Vec<String> = changes
            .iter()
            .map(|change| match change {
                Change::PutInstance(i) => format!("instance {:?}", i.state),
                Change::PutBinding(b) => format!("binding {:?}", b.state),
                Change::DeleteInstance(_) => "instance removed".into(),
                Change::DeleteBinding(id) => format!("{id} removed"),
                Change::PutOperation(o) => format!("operation {:?}", o.state),
                Change::DeleteOperation(_) => "operation removed".into(),
                other => format!("{other:?}"),
            })
            .collect();
        (words.join(", "), operation)
    }

    // Every terminal transition of the OSB state machine (checklist §7, D-03, D-17,
    // OSB-ERR-04, OSB-UPD-12).
    #[test]
    fn every_ending_leaves_the_records_the_spec_asks_for() {
        use OperationKind::*;
        let table: &[(OperationKind, &str, &str)] = &[
            (Provision, "succeeds", "instance Ready, operation Succeeded"),
            (
                Provision,
                "fails",
                "instance ProvisionFailed, operation Failed",
            ),
            (Provision, "4xx sync", "operation removed, instance removed"),
            (Update, "succeeds", "instance Ready, operation Succeeded"),
            (Update, "fails", "instance Ready, operation Failed"),
            (Update, "4xx sync", "operation removed, instance Ready"),
            (
                Deprovision,
                "succeeds",
                "b-1 removed, b-2 removed, instance removed, operation Succeeded",
            ),
            (Deprovision, "fails", "instance Ready, operation Failed"),
            (Deprovision, "4xx sync", "operation removed, instance Ready"),
            (Bind, "succeeds", "binding Bound, operation Succeeded"),
            (Bind, "fails", "binding BindFailed, operation Failed"),
            (Bind, "4xx sync", "operation removed, b-1 removed"),
            (Unbind, "succeeds", "b-1 removed, operation Succeeded"),
            (Unbind, "fails", "binding Bound, operation Failed"),
            (Unbind, "4xx sync", "operation removed, binding Bound"),
        ];
        for (kind, how, expected) in table {
            let ending = match *how {
                "succeeds" => succeeded(subject(*kind, false), Completion::default(), NOW),
                "fails" => failed(subject(*kind, false), Failure::new("no"), NOW),
                _ => failed(
                    subject(*kind, true),
                    Failure::new("bad").client_error(false),
                    NOW,
                ),
            };
            let (words, operation) = summary(&ending);
            assert_eq!(words, *expected, "{kind:?} {how}");
            assert_eq!(operation.finished_at, Some(NOW), "{kind:?} {how}");
            assert_eq!(
                matches!(ending, Ending::Revert { .. }),
                *how == "4xx sync",
                "{kind:?} {how}"
            );
        }
    }

    // D-17: a delete that halted a create leaves a failed create behind when it fails.
    #[test]
    fn a_failed_delete_that_halted_a_create_leaves_the_create_failed() {
        for (kind, expected) in [
            (
                OperationKind::Deprovision,
                "instance ProvisionFailed, operation Failed",
            ),
            (
                OperationKind::Unbind,
                "binding BindFailed, operation Failed",
            ),
        ] {
            let mut subject = subject(kind, false);
            subject.operation.halted = true;
            let ending = failed(subject, Failure::new("no"), NOW);
            assert_eq!(summary(&ending).0, expected, "{kind:?}");
        }
    }

    #[test]
    fn success_applies_what_the_plugin_and_the_update_bring() {
        let mut update = subject(OperationKind::Update, false);
        update.operation.update = Some(skybroker_storage::UpdateTarget {
            plan_id: "large".into(),
            parameters: json!({"a": 2}),
            maintenance_version: Some("2.0".into()),
            context: json!({"space": "s"}),
            previous_plan_id: "small".into(),
        });
        let completion = Completion {
            state: Some(json!({"db": "d-2"})),
            dashboard_url: Some("https://dash".into()),
            metadata: Some(json!({"labels": {}})),
            binding: None,
        };
        let Ending::Finish { changes, .. } = succeeded(update, completion, NOW) else {
            panic!("an update finishes");
        };
        let Change::PutInstance(instance) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert_eq!(
            (instance.plan_id.as_str(), &instance.parameters),
            ("large", &json!({"a": 2}))
        );
        assert_eq!(instance.maintenance_version.as_deref(), Some("2.0"));
        assert_eq!(instance.context, json!({"space": "s"}));
        assert_eq!(instance.plugin_state, json!({"db": "d-2"}));
        assert_eq!(instance.dashboard_url.as_deref(), Some("https://dash"));

        let credentials = BindingResult {
            credentials: Some(json!({"password": "p"})),
            ..BindingResult::default()
        };
        let completion = Completion {
            binding: Some(credentials),
            ..Completion::default()
        };
        let Ending::Finish { changes, .. } =
            succeeded(subject(OperationKind::Bind, false), completion, NOW)
        else {
            panic!("a bind finishes");
        };
        let Change::PutBinding(binding) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert_eq!(binding.result["credentials"], json!({"password": "p"}));
    }

    /// What `advance` says for one answer to an operation of `kind`.
    fn step(kind: OperationKind, sync: bool, answer: Result<Progress, BrokerError>) -> Step {
        advance(&mut operation(kind, sync), answer, Policy::default(), NOW)
    }

    fn in_progress(reference: Value, state: Option<Value>) -> Result<Progress, BrokerError> {
        Ok(Progress::InProgress {
            reference,
            description: None,
            state,
        })
    }

    // Every answer a plugin can give, and what the engine does with it.
    #[test]
    fn every_answer_advances_the_operation_as_the_table_says() {
        use OperationKind::*;
        let provider = || BrokerError::Provider {
            broker: "test",
            source: "secret internals".into(),
        };
        let failed = |description: &str| Progress::Failed {
            description: description.into(),
            instance_usable: Some(false),
            update_repeatable: None,
        };
        assert_eq!(
            step(Provision, false, Ok(Progress::Done(Completion::default()))),
            Step::Succeed(Box::default())
        );
        assert_eq!(
            step(Update, false, Ok(failed("quota"))),
            Step::Fail(Failure::new("quota").instance_usable(Some(false)))
        );
        assert_eq!(
            step(Provision, false, in_progress(json!("r"), None)),
            Step::Persist { state: None },
            "a first reference is persisted"
        );
        assert_eq!(
            step(Bind, false, Err(BrokerError::Transient("throttled".into()))),
            Step::Retry
        );
        assert_eq!(
            step(Provision, false, Err(provider())),
            Step::Fail(Failure::new(
                "the provision operation failed at the provider"
            )),
            "a provider's internals never reach the platform"
        );
        assert_eq!(
            step(
                Bind,
                true,
                Err(BrokerError::InvalidParameters("size".into()))
            ),
            Step::Fail(Failure::new("invalid parameters: size").client_error(false))
        );
        assert_eq!(
            step(
                Update,
                true,
                Err(BrokerError::Unprocessable("quota".into()))
            ),
            Step::Fail(Failure::new("not possible now: quota").client_error(true))
        );
        // A delete of something the provider does not know: failed, unless forced.
        let unknown = || Err(BrokerError::NotFound("db d-1".into()));
        assert_eq!(
            step(Deprovision, false, unknown()),
            Step::Fail(
                Failure::new("the provider does not know this resource: db d-1")
                    .instance_usable(Some(true))
            )
        );
        let forced = Policy {
            force_delete_unknown_instances: true,
            force_delete_unknown_bindings: true,
        };
        for kind in [Deprovision, Unbind] {
            let mut op = operation(kind, false);
            assert_eq!(
                advance(&mut op, unknown(), forced, NOW),
                Step::Succeed(Box::default())
            );
        }
        // For a create it is an ordinary error.
        assert!(matches!(step(Provision, false, unknown()), Step::Fail(_)));
    }

    // OSB-BIND-12: binding metadata a plugin returns is checked before a platform sees it.
    #[test]
    fn binding_metadata_is_checked() {
        let done = |metadata: Value| {
            Ok(Progress::Done(Completion {
                binding: Some(BindingResult {
                    credentials: Some(json!({"password": "p"})),
                    metadata: Some(metadata),
                    ..BindingResult::default()
                }),
                ..Completion::default()
            }))
        };
        for good in [
            json!({}),
            json!({"expires_at": "2026-12-31T23:59:59.0Z"}),
            json!({"expires_at": "2026-12-31T23:59:59Z", "renew_before": "2026-12-30T00:00:00.5Z"}),
        ] {
            assert!(
                matches!(
                    step(OperationKind::Bind, false, done(good.clone())),
                    Step::Succeed(_)
                ),
                "{good}"
            );
        }
        for (bad, why) in [
            (json!("soon"), "must be an object"),
            (json!({"expires_at": "tomorrow"}), "UTC time"),
            (
                json!({"expires_at": "2026-12-31T23:59:59+02:00"}),
                "UTC time",
            ),
            (
                json!({"expires_at": "2026-13-31T23:59:59Z"}),
                "not an ISO-8601 time",
            ),
            (
                json!({"expires_at": "2026-12-30T00:00:00Z", "renew_before": "2026-12-31T00:00:00Z"}),
                "later than expires_at",
            ),
            (
                json!({"renew_before": "2026-12-31T00:00:00Z"}),
                "without expires_at",
            ),
        ] {
            match step(OperationKind::Bind, false, done(bad.clone())) {
                Step::Fail(failure) => assert!(
                    failure.description.contains(why),
                    "{bad}: {}",
                    failure.description
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn polls_persist_only_what_is_new_and_stop_at_the_deadline() {
        let mut op = operation(OperationKind::Provision, false);
        let policy = Policy::default();
        assert_eq!(
            advance(&mut op, in_progress(json!("r"), None), policy, NOW),
            Step::Persist { state: None }
        );
        assert_eq!(op.reference, Some(json!("r")));
        assert_eq!(
            advance(&mut op, in_progress(json!("r"), None), policy, NOW),
            Step::Unchanged
        );
        assert_eq!(
            advance(
                &mut op,
                in_progress(json!("r"), Some(json!({"id": 1}))),
                policy,
                NOW
            ),
            Step::Persist {
                state: Some(json!({"id": 1}))
            }
        );
        assert_eq!(op.attempts, 3);
        let late = op.deadline + 1;
        assert_eq!(
            advance(&mut op, in_progress(json!("r"), None), policy, late),
            Step::Fail(timeout_failure(OperationKind::Provision))
        );
        // Transient errors past the deadline fail too.
        assert!(matches!(
            advance(
                &mut op,
                Err(BrokerError::Transient("x".into())),
                policy,
                late
            ),
            Step::Fail(_)
        ));
    }

    #[test]
    fn a_synchronous_operation_gets_a_few_tries() {
        let mut op = operation(OperationKind::Bind, true);
        let transient = || Err(BrokerError::Transient("throttled".into()));
        for _ in 1..SYNC_ATTEMPTS {
            assert_eq!(
                advance(&mut op, transient(), Policy::default(), NOW),
                Step::Retry
            );
        }
        // Given up on a provider that kept failing in a way that may pass: the waiting
        // request answers 502 (an unreachable external broker, issue #18), not 500.
        assert!(matches!(
            advance(&mut op, transient(), Policy::default(), NOW),
            Step::Fail(failure) if failure.unreachable && !failure.client_error
        ));
    }

    #[test]
    fn an_answer_for_a_halted_operation_keeps_only_the_plugin_state() {
        let mut op = operation(OperationKind::Provision, false);
        op.state = OperationState::Failed;
        let step = advance(
            &mut op,
            in_progress(json!("r"), Some(json!({"db": "d-9"}))),
            Policy::default(),
            NOW,
        );
        assert_eq!(
            step,
            Step::Halted {
                state: Some(json!({"db": "d-9"}))
            }
        );
        assert_eq!(op.attempts, 0, "a halted operation is not advanced");
        assert_eq!(op.reference, None);
    }

    // D-17: deleting what is still being created halts the create and takes its reference.
    #[test]
    fn a_delete_halts_a_running_create() {
        let mut create = operation(OperationKind::Provision, false);
        create.reference = Some(json!({"job": 7}));
        let delete = operation(OperationKind::Deprovision, false);
        let (changes, delete) = begin_deprovision(
            &instance(InstanceState::Provisioning),
            Some(create.clone()),
            delete,
            NOW,
        );
        assert!(delete.halted);
        assert_eq!(delete.halted_reference, Some(json!({"job": 7})));
        let Change::PutOperation(halted) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert_eq!(halted.state, OperationState::Failed);
        assert!(halted
            .failure
            .as_ref()
            .unwrap()
            .description
            .contains("cancelled"));
        let Change::PutInstance(deleting) = &changes[1] else {
            panic!("{changes:?}");
        };
        assert_eq!(deleting.state, InstanceState::Deprovisioning);
        assert_eq!(deleting.last_operation.as_deref(), Some(delete.id.as_str()));

        // A create without a reference yet: the marker is `null`.
        let unbind = operation(OperationKind::Unbind, false);
        let bind = operation(OperationKind::Bind, false);
        let (changes, unbind) =
            begin_unbind(&binding(BindingState::Binding), Some(bind), unbind, NOW);
        assert_eq!(unbind.halted_reference, Some(Value::Null));
        assert!(unbind.halted_a_create());
        assert_eq!(changes.len(), 3, "{changes:?}");

        // Deleting a failed create is marked too: a failed delete leaves it failed.
        let (changes, delete) = begin_deprovision(
            &instance(InstanceState::ProvisionFailed),
            None,
            operation(OperationKind::Deprovision, false),
            NOW,
        );
        assert!(delete.halted_a_create() && delete.halted_reference.is_none());
        assert_eq!(changes.len(), 2);
        let mut subject = subject(OperationKind::Deprovision, false);
        subject.operation = delete;
        let ending = failed(subject, Failure::new("no"), NOW);
        assert_eq!(
            summary(&ending).0,
            "instance ProvisionFailed, operation Failed"
        );

        // Deleting a ready resource halts nothing.
        let (changes, delete) = begin_deprovision(
            &instance(InstanceState::Ready),
            None,
            operation(OperationKind::Deprovision, false),
            NOW,
        );
        assert!(!delete.halted_a_create());
        assert_eq!(changes.len(), 2);
    }

    // D-03: a deprovision stops when an unbind it cascaded to has failed since it began.
    #[test]
    fn a_failed_cascaded_unbind_fails_the_deprovision() {
        let deprovision = operation(OperationKind::Deprovision, false);
        let mut unbind = operation(OperationKind::Unbind, false);
        unbind.state = OperationState::Failed;
        unbind.failure = Some(Failure::new("locked"));
        let mut older = unbind.clone();
        older.created_at = deprovision.created_at - 1;
        let bound = binding(BindingState::Bound);
        assert_eq!(
            failed_cascade(&deprovision, &[(bound.clone(), Some(older))]),
            None,
            "an unbind that failed before the deprovision began does not count"
        );
        assert_eq!(
            failed_cascade(&deprovision, &[(bound, Some(unbind))]),
            Some(
                Failure::new("binding b-1 could not be deleted: locked")
                    .instance_usable(Some(true))
            )
        );
    }
}
