//! Admission of instance requests: provision (OSB-PROV), fetch (OSB-GETI), update (OSB-UPD),
//! deprovision (OSB-DEPROV).

use serde_json::{Map, Value};
use skybroker_config::SchemaKind;
use skybroker_storage::{
    now_millis, Change, InstanceState, Operation, OperationId, OperationKind, Read,
    ServiceInstance, StateMap, UpdateTarget,
};

use super::{
    answer, busy, check_async, decided, delete_plan, last_operation_of, lock_and_read, repeat_of,
    same_parameters, Answer, Caller, DeleteRequest,
};
use crate::catalog::check_maintenance;
use crate::core::Core;
use crate::engine::transitions;
use crate::error::ApiError;

/// A provision as the platform sent it.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The instance to create.
    pub instance_id: String,
    /// `service_id`.
    pub service_id: String,
    /// `plan_id`.
    pub plan_id: String,
    /// `parameters` (absent is empty).
    pub parameters: Map<String, Value>,
    /// `context`.
    pub context: Option<Map<String, Value>>,
    /// `organization_guid` (deprecated, D-09).
    pub organization_guid: Option<String>,
    /// `space_guid` (deprecated, D-09).
    pub space_guid: Option<String>,
    /// `maintenance_info.version`.
    pub maintenance_version: Option<String>,
    /// Who asks.
    pub caller: Caller,
}

/// An update as the platform sent it.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The instance.
    pub instance_id: String,
    /// `service_id`.
    pub service_id: String,
    /// `plan_id`, when the plan changes.
    pub plan_id: Option<String>,
    /// `parameters` to merge into the current ones.
    pub parameters: Option<Map<String, Value>>,
    /// `context`.
    pub context: Option<Map<String, Value>>,
    /// `maintenance_info.version`.
    pub maintenance_version: Option<String>,
    /// Who asks.
    pub caller: Caller,
}

fn instance_busy(what: &str) -> ApiError {
    busy(&format!("the instance is {what}"))
}

fn not_found(instance_id: &str) -> ApiError {
    ApiError::NotFound(format!("instance {instance_id} does not exist"))
}

/// Provisions unless the instance exists: an identical repeat answers from what exists, a
/// different one is a conflict.
pub async fn provision(
    core: &Core,
    request: ProvisionRequest,
) -> Result<Answer<ServiceInstance>, ApiError> {
    let plan = core
        .catalog
        .requested_plan(&request.service_id, &request.plan_id)?;
    request.caller.check_visible(&plan)?;
    check_maintenance(plan.plan(), request.maintenance_version.as_deref())?;
    let parameters = Value::Object(request.parameters);
    core.catalog.check_parameters(
        &plan,
        Some(SchemaKind::InstanceCreate),
        Some(OperationKind::Provision),
        &parameters,
    )?;
    let sync = plan.is_sync_for(OperationKind::Provision, request.caller.accepts_incomplete);
    check_async(sync, &request.caller)?;
    // What the platform asks for; each attempt builds its records from it.
    let requested = ServiceInstance {
        id: request.instance_id.into(),
        service_id: request.service_id.into(),
        plan_id: request.plan_id.into(),
        parameters,
        context: request.context.map_or(Value::Null, Value::Object),
        organization_guid: request.organization_guid,
        space_guid: request.space_guid,
        maintenance_version: request.maintenance_version.or_else(|| {
            plan.plan()
                .maintenance_info
                .as_ref()
                .map(|m| m.version.clone())
        }),
        dashboard_url: None,
        metadata: None,
        state: InstanceState::Provisioning,
        plugin_state: Value::Null,
        last_operation: None,
        created_at: 0,
        platform_id: request.caller.platform.clone(),
        shared: false,
        labels: Default::default(),
    };
    let (requested, caller) = (&requested, &request.caller);
    decided(core, move |_| provision_once(core, requested, sync, caller)).await
}

/// One attempt of [`provision`], under the instance lock, on what the map holds.
async fn provision_once(
    core: &Core,
    requested: &ServiceInstance,
    sync: bool,
    caller: &Caller,
) -> Result<Answer<ServiceInstance>, ApiError> {
    let guard = core.locks.lock(&requested.id).await;
    let basis = core.state.basis(&[Read::Instance(&requested.id)]);
    let mut retried_failed = false;
    if let Some(existing) = core.state.instance(&requested.id) {
        if existing.platform_id != requested.platform_id {
            // Another platform's (or the broker's own): its id is taken, and nothing of it
            // is shown.
            return Err(ApiError::Conflict(format!(
                "instance id {} is taken",
                requested.id
            )));
        }
        let identical = existing.service_id == requested.service_id
            && existing.plan_id == requested.plan_id
            && (requested.parameters.as_object())
                .is_some_and(|sent| same_parameters(&existing.parameters, sent))
            && existing.organization_guid == requested.organization_guid
            && existing.space_guid == requested.space_guid;
        if !identical {
            return Err(ApiError::Conflict(format!(
                "instance {} already exists with different attributes",
                requested.id
            )));
        }
        match existing.state {
            // OSB-PROV-06: identical and provisioned.
            InstanceState::Ready => return Ok(Answer::Existing(existing)),
            // OSB-PROV-08: identical and still provisioning: the same operation.
            InstanceState::Provisioning => {
                let last = existing.last_operation.as_deref();
                return repeat_of(core, last, |_| true, instance_busy("being provisioned"));
            }
            InstanceState::Updating => return Err(instance_busy("being updated")),
            InstanceState::Deprovisioning => return Err(instance_busy("being deprovisioned")),
            // A failed provision repeated identically is tried again.
            InstanceState::ProvisionFailed => retried_failed = true,
        }
    }
    // The plan is in the catalog: `provision` checked it.
    let plan = core
        .catalog
        .requested_plan(&requested.service_id, &requested.plan_id)?;
    let operation = core.engine.new_operation(
        OperationKind::Provision,
        (&requested.id, None),
        plan.plan(),
        sync,
        caller.requested_by.clone(),
    );
    let instance = ServiceInstance {
        last_operation: Some(operation.id.clone()),
        created_at: operation.created_at,
        ..requested.clone()
    };
    // A new instance is created only if the store has none (another replica may have created
    // it since the map was read); a failed one is replaced only as read.
    let put = if retried_failed {
        Change::PutInstance(instance)
    } else {
        Change::CreateInstance(instance)
    };
    let changes = vec![put, Change::PutOperation(operation.clone())];
    let launched = core.engine.submit(guard, basis, changes, operation).await?;
    answer(launched, |done| done.instance)
}

/// The instance as a platform may fetch it: 404 unless its offering allows fetching
/// (D-06) and its provision has succeeded (OSB-GETI); 422 while an update runs.
pub async fn fetch(
    core: &Core,
    instance_id: &str,
    platform: Option<&str>,
) -> Result<ServiceInstance, ApiError> {
    // A miss may be another replica's fresh record.
    core.state
        .catch_up_unless(|state| state.has_instance(instance_id))
        .await?;
    let instance = core
        .state
        .instance(instance_id)
        .filter(|instance| instance.belongs_to(platform))
        .ok_or_else(|| not_found(instance_id))?;
    let retrievable = core
        .catalog
        .offering(&instance.service_id)
        .is_some_and(|o| o.instances_retrievable);
    if !retrievable {
        // D-06.
        return Err(ApiError::NotFound(
            "this service does not support fetching instances (instances_retrievable is false)"
                .to_owned(),
        ));
    }
    match instance.state {
        InstanceState::Provisioning | InstanceState::ProvisionFailed => Err(not_found(instance_id)),
        InstanceState::Updating => Err(instance_busy("being updated")),
        // Deleted before it ever existed (a halted or failed provision): still not there.
        InstanceState::Deprovisioning
            if deletes_what_never_existed(core, &instance.last_operation) =>
        {
            Err(not_found(instance_id))
        }
        InstanceState::Ready | InstanceState::Deprovisioning => Ok(instance),
    }
}

/// Whether the delete `last_operation` names removes a resource whose create never
/// succeeded (see `Operation::halted`).
pub(super) fn deletes_what_never_existed(
    core: &Core,
    last_operation: &Option<OperationId>,
) -> bool {
    (last_operation.as_deref())
        .and_then(|id| core.state.operation(id))
        .is_some_and(|delete| delete.halted_a_create())
}

/// Updates (OSB-UPD): a new plan, parameters merged key by key, maintenance or context.
pub async fn update(
    core: &Core,
    request: UpdateRequest,
) -> Result<Answer<ServiceInstance>, ApiError> {
    core.catalog.requested_offering(&request.service_id)?;
    if let Some(plan_id) = &request.plan_id {
        core.catalog.requested_plan(&request.service_id, plan_id)?;
    }
    let request = &request;
    decided(core, move |caught_up| update_once(core, request, caught_up)).await
}

/// One attempt of [`update`], under the instance lock, on what the map holds.
async fn update_once(
    core: &Core,
    request: &UpdateRequest,
    caught_up: bool,
) -> Result<Answer<ServiceInstance>, ApiError> {
    let instance_id = request.instance_id.as_str();
    let service_id = request.service_id.as_str();
    let present = |state: &StateMap| state.has_instance(instance_id);
    let reads = [Read::Instance(instance_id)];
    let (guard, basis) = lock_and_read(core, instance_id, caught_up, present, &reads).await?;
    let mut instance = core
        .state
        .instance(instance_id)
        .filter(|instance| instance.belongs_to(request.caller.platform.as_deref()))
        .ok_or_else(|| not_found(instance_id))?;
    if instance.service_id != service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the instance's service"
        )));
    }
    let target_plan_id = (request.plan_id.clone()).unwrap_or_else(|| instance.plan_id.to_string());
    let plan = core.catalog.requested_plan(service_id, &target_plan_id)?;
    request.caller.check_visible(&plan)?;
    if target_plan_id != instance.plan_id {
        let current_updateable = core
            .catalog
            .plan(service_id, &instance.plan_id)
            .is_none_or(|current| current.plan().is_updateable(current.offering()));
        if !current_updateable {
            return Err(ApiError::Unprocessable(format!(
                "the plan of instance {instance_id} cannot be changed (plan_updateable is false)"
            )));
        }
    }
    check_maintenance(plan.plan(), request.maintenance_version.as_deref())?;
    if let Some(parameters) = &request.parameters {
        let sent = Value::Object(parameters.clone());
        core.catalog
            .check_parameters(&plan, Some(SchemaKind::InstanceUpdate), None, &sent)?;
    }
    // Parameters sent are merged key by key into the current ones; absent keys stay.
    let mut merged = instance.parameters.as_object().cloned().unwrap_or_default();
    merged.extend(request.parameters.clone().unwrap_or_default());
    let merged = Value::Object(merged);
    core.catalog
        .check_parameters(&plan, None, Some(OperationKind::Update), &merged)?;
    let target = UpdateTarget {
        plan_id: target_plan_id.into(),
        parameters: merged,
        maintenance_version: (request.maintenance_version.clone())
            .or_else(|| instance.maintenance_version.clone()),
        context: (request.context.clone()).map_or_else(|| instance.context.clone(), Value::Object),
        previous_plan_id: instance.plan_id.clone(),
    };
    match instance.state {
        InstanceState::Ready => {}
        InstanceState::Updating => {
            // OSB-UPD-08: the same update again gets the same operation.
            let last = instance.last_operation.as_deref();
            let same = |op: &Operation| op.update.as_ref() == Some(&target);
            return repeat_of(core, last, same, instance_busy("being updated"));
        }
        InstanceState::Provisioning => return Err(instance_busy("being provisioned")),
        InstanceState::Deprovisioning => return Err(instance_busy("being deprovisioned")),
        InstanceState::ProvisionFailed => {
            return Err(ApiError::Unprocessable(format!(
                "instance {instance_id} failed to provision and cannot be updated"
            )))
        }
    }
    let only_context = target.plan_id == instance.plan_id
        && target.parameters == instance.parameters
        && target.maintenance_version == instance.maintenance_version;
    if only_context {
        // OSB-UPD-06: nothing for the provider to do; a new context is simply recorded.
        if target.context != instance.context {
            instance.context = target.context;
            core.state
                .commit_on(&basis, vec![Change::PutInstance(instance.clone())])
                .await?;
        }
        return Ok(Answer::Existing(instance));
    }
    let sync = plan.is_sync_for(OperationKind::Update, request.caller.accepts_incomplete);
    check_async(sync, &request.caller)?;
    let mut operation = core.engine.new_operation(
        OperationKind::Update,
        (instance_id, None),
        plan.plan(),
        sync,
        request.caller.requested_by.clone(),
    );
    operation.update = Some(target);
    instance.state = InstanceState::Updating;
    instance.last_operation = Some(operation.id.clone());
    let changes = vec![
        Change::PutInstance(instance),
        Change::PutOperation(operation.clone()),
    ];
    let launched = core.engine.submit(guard, basis, changes, operation).await?;
    answer(launched, |done| done.instance)
}

/// Deprovisions (OSB-DEPROV); a provision still running asynchronously is halted (D-17).
pub async fn deprovision(core: &Core, request: DeleteRequest) -> Result<Answer<()>, ApiError> {
    // A repeat on a replica that has not seen the first request's records yet loses its
    // write to them and is decided again on them (the same operation: 202).
    let request = &request;
    decided(core, move |caught_up| {
        deprovision_once(core, request, caught_up)
    })
    .await
}

/// One attempt of [`deprovision`], under the instance lock, on what the map holds.
async fn deprovision_once(
    core: &Core,
    request: &DeleteRequest,
    caught_up: bool,
) -> Result<Answer<()>, ApiError> {
    let DeleteRequest {
        instance_id,
        service_id,
        plan_id,
        caller,
    } = request;
    let present = |state: &StateMap| state.has_instance(instance_id);
    let reads = [Read::Instance(instance_id)];
    let (guard, mut basis) = lock_and_read(core, instance_id, caught_up, present, &reads).await?;
    let instance = core
        .state
        .instance(instance_id)
        .filter(|instance| instance.belongs_to(caller.platform.as_deref()))
        .ok_or_else(|| ApiError::Gone(format!("instance {instance_id} does not exist")))?;
    if instance.service_id != *service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the instance's service"
        )));
    }
    // The instance's own plan decides how it is deleted; the platform may send a stale one.
    let plan = delete_plan(core, (service_id, plan_id), (service_id, &instance.plan_id))?;
    let sync = plan.is_sync_for(OperationKind::Deprovision, caller.accepts_incomplete);
    check_async(sync, caller)?;
    let running = last_operation_of(core, &mut basis, instance.last_operation.as_deref());
    match instance.state {
        InstanceState::Deprovisioning => {
            // OSB-DEPROV-06: a repeat gets the same operation.
            let last = instance.last_operation.as_deref();
            return repeat_of(core, last, |_| true, instance_busy("being deprovisioned"));
        }
        InstanceState::Updating => return Err(instance_busy("being updated")),
        // D-17: an async provision is halted and the instance deleted; a synchronous one
        // has a request waiting for it and cannot be interrupted.
        InstanceState::Provisioning if running.as_ref().is_none_or(|op| op.sync) => {
            return Err(instance_busy("being provisioned"))
        }
        InstanceState::Provisioning | InstanceState::Ready | InstanceState::ProvisionFailed => {}
    }
    let operation = core.engine.new_operation(
        OperationKind::Deprovision,
        (instance_id, None),
        plan.plan(),
        sync,
        caller.requested_by.clone(),
    );
    let (changes, operation) =
        transitions::begin_deprovision(&instance, running, operation, now_millis());
    let launched = core.engine.submit(guard, basis, changes, operation).await?;
    answer(launched, |_| Some(()))
}
