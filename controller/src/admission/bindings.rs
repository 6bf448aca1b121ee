//! Admission of binding requests: bind (OSB-BIND) and rotation (OSB-ROT), fetch (OSB-GETB),
//! unbind (OSB-UNB).

use serde_json::{Map, Value};
use skybroker_config::SchemaKind;
use skybroker_storage::{
    now_millis, BindingId, BindingState, Change, InstanceState, OperationKind, Read,
    ServiceBinding, StateMap,
};

use super::{
    answer, busy, check_async, decided, delete_plan, last_operation_of, lock_and_read, repeat_of,
    same_parameters, Answer, Caller, DeleteRequest,
};
use crate::core::Core;
use crate::engine::transitions;
use crate::error::ApiError;

/// A bind as the platform sent it.
#[derive(Debug, Clone)]
pub struct BindRequest {
    /// The instance to bind.
    pub instance_id: String,
    /// The binding to create.
    pub binding_id: String,
    /// `service_id` (optional only in a rotation, OSB-ROT-02).
    pub service_id: Option<String>,
    /// `plan_id` (optional only in a rotation).
    pub plan_id: Option<String>,
    /// `predecessor_binding_id`: a rotation of that binding.
    pub predecessor_id: Option<BindingId>,
    /// `app_guid`.
    pub app_guid: Option<String>,
    /// `bind_resource`.
    pub bind_resource: Option<Map<String, Value>>,
    /// `context`.
    pub context: Option<Map<String, Value>>,
    /// `parameters`.
    pub parameters: Option<Map<String, Value>>,
    /// Who asks.
    pub caller: Caller,
}

/// Binds or rotates.
pub async fn bind(core: &Core, request: BindRequest) -> Result<Answer<ServiceBinding>, ApiError> {
    match (&request.service_id, &request.plan_id) {
        (Some(service_id), Some(plan_id)) => {
            core.catalog.requested_plan(service_id, plan_id)?;
        }
        (Some(service_id), None) => {
            core.catalog.requested_offering(service_id)?;
        }
        _ => {}
    }
    let request = &request;
    decided(core, move |caught_up| bind_once(core, request, caught_up)).await
}

/// One attempt of [`bind`], under the instance lock, on what the map holds.
async fn bind_once(
    core: &Core,
    request: &BindRequest,
    caught_up: bool,
) -> Result<Answer<ServiceBinding>, ApiError> {
    let instance_id = request.instance_id.as_str();
    let binding_id = request.binding_id.as_str();
    let predecessor_id = &request.predecessor_id;
    let present = |state: &StateMap| {
        state.has_instance(instance_id)
            && (predecessor_id.as_deref()).is_none_or(|id| state.has_binding(id))
    };
    // The decision rests on the instance (its state), the binding and a predecessor: a
    // change to any of them on another replica before the commit fails it (issue #16).
    let mut reads = vec![Read::Instance(instance_id), Read::Binding(binding_id)];
    if let Some(predecessor_id) = predecessor_id {
        reads.push(Read::Binding(predecessor_id));
    }
    let (guard, basis) = lock_and_read(core, instance_id, caught_up, present, &reads).await?;
    // D-04: binding to an unknown instance is 404 (and to another platform's, unless it
    // is shared).
    let instance = core
        .state
        .instance(instance_id)
        .filter(|instance| instance.bindable_by(request.caller.platform.as_deref()))
        .ok_or_else(|| ApiError::NotFound(format!("instance {instance_id} does not exist")))?;
    let other_service = (request.service_id.as_ref()).is_some_and(|s| *s != instance.service_id);
    let other_plan = (request.plan_id.as_ref()).is_some_and(|p| *p != instance.plan_id);
    if other_service || other_plan {
        return Err(ApiError::BadRequest(format!(
            "service_id and plan_id must be those of instance {instance_id}"
        )));
    }
    let plan = core
        .catalog
        .requested_plan(&instance.service_id, &instance.plan_id)?;
    request.caller.check_visible(&plan)?;
    if !plan.plan().is_bindable(plan.offering()) {
        return Err(ApiError::BadRequest(format!(
            "plan {} is not bindable",
            plan.plan().name
        )));
    }
    let mut parameters = request.parameters.clone();
    if let Some(predecessor_id) = predecessor_id {
        if !plan.plan().binding_rotatable {
            return Err(ApiError::BadRequest(format!(
                "plan {} does not allow binding rotation (binding_rotatable is false)",
                plan.plan().name
            )));
        }
        let predecessor = core
            .state
            .binding(predecessor_id)
            .filter(|b| b.instance_id == instance_id && b.state == BindingState::Bound)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "predecessor_binding_id {predecessor_id:?} is not a binding of instance {instance_id}"
                ))
            })?;
        // OSB-ROT-04: the platform does not resend parameters; carry them over.
        if parameters.is_none() {
            parameters = predecessor.parameters.as_object().cloned();
        }
    }
    let parameters = parameters.unwrap_or_default();
    core.catalog.check_parameters(
        &plan,
        Some(SchemaKind::BindingCreate),
        None,
        &Value::Object(parameters.clone()),
    )?;
    match instance.state {
        InstanceState::Ready => {}
        InstanceState::ProvisionFailed => {
            return Err(ApiError::Unprocessable(format!(
                "instance {instance_id} failed to provision and cannot be bound"
            )))
        }
        // D-04.
        InstanceState::Provisioning => return Err(busy("the instance is being provisioned")),
        InstanceState::Updating => return Err(busy("the instance is being updated")),
        InstanceState::Deprovisioning => return Err(busy("the instance is being deprovisioned")),
    }
    let sync = plan.is_sync_for(OperationKind::Bind, request.caller.accepts_incomplete);
    check_async(sync, &request.caller)?;
    let bind_resource = (request.bind_resource.clone()).map_or(Value::Null, Value::Object);
    let mut retried_failed = false;
    if let Some(existing) = core.state.binding(binding_id) {
        let identical = existing.instance_id == instance_id
            && same_parameters(&existing.parameters, &parameters)
            && existing.bind_resource == bind_resource
            && existing.app_guid == request.app_guid
            && existing.predecessor_binding_id == *predecessor_id;
        if !identical {
            return Err(ApiError::Conflict(format!(
                "binding {binding_id} already exists with different attributes"
            )));
        }
        match existing.state {
            // OSB-BIND-07.
            BindingState::Bound => return Ok(Answer::Existing(existing)),
            BindingState::Binding => {
                let last = existing.last_operation.as_deref();
                return repeat_of(core, last, |_| true, busy("the binding is being created"));
            }
            BindingState::Unbinding => return Err(busy("the binding is being deleted")),
            BindingState::BindFailed => retried_failed = true,
        }
    }
    let operation = core.engine.new_operation(
        OperationKind::Bind,
        (instance_id, Some(binding_id)),
        plan.plan(),
        sync,
        request.caller.requested_by.clone(),
    );
    let binding = ServiceBinding {
        id: binding_id.into(),
        instance_id: instance_id.into(),
        service_id: instance.service_id.clone(),
        plan_id: instance.plan_id.clone(),
        parameters: Value::Object(parameters),
        bind_resource,
        app_guid: request.app_guid.clone(),
        context: (request.context.clone()).map_or(Value::Null, Value::Object),
        predecessor_binding_id: predecessor_id.clone(),
        state: BindingState::Binding,
        result: Value::Null,
        plugin_state: Value::Null,
        last_operation: Some(operation.id.clone()),
        created_at: operation.created_at,
        platform_id: request.caller.platform.clone(),
        labels: Default::default(),
    };
    // A new binding is created only if the store has none (another replica may have created
    // it since the map was read); a failed one is replaced only as read.
    let put = if retried_failed {
        Change::PutBinding(binding)
    } else {
        Change::CreateBinding(binding)
    };
    let changes = vec![put, Change::PutOperation(operation.clone())];
    // OSB-BIND-09: a 202 never carries credentials.
    let launched = core.engine.submit(guard, basis, changes, operation).await?;
    answer(launched, |done| done.binding)
}

/// Whether `platform` reaches the bindings of the instance (see
/// `ServiceInstance::bindable_by`); an instance the map does not hold answers yes (what
/// follows decides on the binding alone).
pub(super) fn bindable_by(core: &Core, instance_id: &str, platform: Option<&str>) -> bool {
    platform.is_none()
        || core
            .state
            .instance(instance_id)
            .is_none_or(|instance| instance.bindable_by(platform))
}

/// The binding as a platform may fetch it: 404 unless its offering allows fetching (D-06)
/// and its bind has succeeded (OSB-GETB-04).
pub async fn fetch(
    core: &Core,
    instance_id: &str,
    binding_id: &str,
    platform: Option<&str>,
) -> Result<ServiceBinding, ApiError> {
    let not_found = || ApiError::NotFound(format!("binding {binding_id} does not exist"));
    // A miss may be another replica's fresh record.
    core.state
        .catch_up_unless(|state| state.has_binding(binding_id))
        .await?;
    let binding = core
        .state
        .binding(binding_id)
        .filter(|b| b.instance_id == instance_id)
        .filter(|_| bindable_by(core, instance_id, platform))
        .ok_or_else(not_found)?;
    let retrievable = core
        .catalog
        .offering(&binding.service_id)
        .is_some_and(|o| o.bindings_retrievable);
    if !retrievable {
        // D-06.
        return Err(ApiError::NotFound(
            "this service does not support fetching bindings (bindings_retrievable is false)"
                .to_owned(),
        ));
    }
    match binding.state {
        // OSB-GETB-04: not there until the bind finished.
        BindingState::Binding | BindingState::BindFailed => Err(not_found()),
        // Deleted before it ever existed (a halted or failed bind): still not there.
        BindingState::Unbinding
            if super::instances::deletes_what_never_existed(core, &binding.last_operation) =>
        {
            Err(not_found())
        }
        BindingState::Bound | BindingState::Unbinding => Ok(binding),
    }
}

/// Unbinds (OSB-UNB); a bind still running asynchronously is halted (D-17).
pub async fn unbind(
    core: &Core,
    binding_id: &str,
    request: DeleteRequest,
) -> Result<Answer<()>, ApiError> {
    // A repeat on a replica that has not seen the first request's records yet loses its
    // write to them and is decided again on them (the same operation).
    let request = &request;
    decided(core, move |caught_up| {
        unbind_once(core, binding_id, request, caught_up)
    })
    .await
}

/// One attempt of [`unbind`], under the instance lock, on what the map holds.
async fn unbind_once(
    core: &Core,
    binding_id: &str,
    request: &DeleteRequest,
    caught_up: bool,
) -> Result<Answer<()>, ApiError> {
    let DeleteRequest {
        instance_id,
        service_id,
        plan_id,
        caller,
    } = request;
    let present = |state: &StateMap| state.has_binding(binding_id);
    let reads = [Read::Instance(instance_id), Read::Binding(binding_id)];
    let (guard, mut basis) = lock_and_read(core, instance_id, caught_up, present, &reads).await?;
    let binding = core
        .state
        .binding(binding_id)
        .filter(|b| b.instance_id == *instance_id)
        .filter(|_| bindable_by(core, instance_id, caller.platform.as_deref()))
        .ok_or_else(|| ApiError::Gone(format!("binding {binding_id} does not exist")))?;
    if binding.service_id != *service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the binding's service"
        )));
    }
    let own = (binding.service_id.as_str(), binding.plan_id.as_str());
    let plan = delete_plan(core, (service_id, plan_id), own)?;
    let sync = plan.is_sync_for(OperationKind::Unbind, caller.accepts_incomplete);
    check_async(sync, caller)?;
    let running = last_operation_of(core, &mut basis, binding.last_operation.as_deref());
    match binding.state {
        BindingState::Unbinding => {
            // OSB-UNB-05: a repeat gets the same operation.
            let last = binding.last_operation.as_deref();
            return repeat_of(core, last, |_| true, busy("the binding is being deleted"));
        }
        // D-17: an async bind is halted; a synchronous one has a request waiting.
        BindingState::Binding if running.as_ref().is_none_or(|op| op.sync) => {
            return Err(busy("the binding is being created"))
        }
        BindingState::Binding | BindingState::Bound | BindingState::BindFailed => {}
    }
    // An instance being deleted unbinds its bindings itself (D-03); a platform's unbind
    // meanwhile would race its cascade.
    let instance = core.state.instance(instance_id);
    if instance.is_some_and(|i| i.state == InstanceState::Deprovisioning) {
        return Err(busy("the instance is being deprovisioned"));
    }
    let operation = core.engine.new_operation(
        OperationKind::Unbind,
        (instance_id, Some(binding_id)),
        plan.plan(),
        sync,
        caller.requested_by.clone(),
    );
    let (changes, operation) =
        transitions::begin_unbind(&binding, running, operation, now_millis());
    let launched = core.engine.submit(guard, basis, changes, operation).await?;
    answer(launched, |_| Some(()))
}
