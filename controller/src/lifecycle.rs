//! Starting deletions, shared by the request handlers and the engine's cascade (D-03).
//!
//! Deleting something whose creation still runs halts the creation first (D-17): the create's
//! operation ends `failed` ("cancelled"), its provider reference is handed to the delete, and the
//! engine runs the delete once the create's current plugin call has returned.

use skybroker_config::Plan;
use skybroker_storage::{
    now_millis, BindingState, Change, Failure, InstanceState, Operation, OperationKind,
    OperationState, ServiceBinding, ServiceInstance,
};

use crate::core::Core;

/// Marks a running create operation as halted by a delete.
fn halt(
    core: &Core,
    create: Option<&str>,
    by: &Operation,
    changes: &mut Vec<Change>,
) -> Option<serde_json::Value> {
    let mut create = core.state.operation(create?)?;
    if !create.in_progress() {
        return None;
    }
    create.state = OperationState::Failed;
    create.finished_at = Some(now_millis());
    create.failure = Some(Failure {
        description: format!(
            "the {} was cancelled by {} {}",
            create.kind.name(),
            by.kind.name(),
            by.id
        ),
        instance_usable: None,
        update_repeatable: None,
        client_error: false,
        unprocessable: false,
    });
    let reference = create.reference.clone();
    changes.push(Change::PutOperation(create));
    reference
}

/// The changes that start unbinding `binding`, and the new operation.
pub fn begin_unbind(
    core: &Core,
    binding: &ServiceBinding,
    plan: &Plan,
    sync: bool,
    requested_by: Option<String>,
) -> (Vec<Change>, Operation) {
    let mut operation = core.new_operation(
        OperationKind::Unbind,
        &binding.instance_id,
        Some(&binding.id),
        plan,
        sync,
        requested_by,
    );
    let mut changes = Vec::new();
    if binding.state == BindingState::Binding {
        operation.halted = true;
        operation.halted_reference = Some(
            halt(
                core,
                binding.last_operation.as_deref(),
                &operation,
                &mut changes,
            )
            .unwrap_or_default(),
        );
    }
    let mut binding = binding.clone();
    binding.state = BindingState::Unbinding;
    binding.last_operation = Some(operation.id.clone());
    changes.push(Change::PutBinding(binding));
    changes.push(Change::PutOperation(operation.clone()));
    (changes, operation)
}

/// The changes that start deprovisioning `instance`, and the new operation.
pub fn begin_deprovision(
    core: &Core,
    instance: &ServiceInstance,
    plan: &Plan,
    sync: bool,
    requested_by: Option<String>,
) -> (Vec<Change>, Operation) {
    let mut operation = core.new_operation(
        OperationKind::Deprovision,
        &instance.id,
        None,
        plan,
        sync,
        requested_by,
    );
    let mut changes = Vec::new();
    if instance.state == InstanceState::Provisioning {
        operation.halted = true;
        operation.halted_reference = Some(
            halt(
                core,
                instance.last_operation.as_deref(),
                &operation,
                &mut changes,
            )
            .unwrap_or_default(),
        );
    }
    let mut instance = instance.clone();
    instance.state = InstanceState::Deprovisioning;
    instance.last_operation = Some(operation.id.clone());
    changes.push(Change::PutInstance(instance));
    changes.push(Change::PutOperation(operation.clone()));
    (changes, operation)
}
