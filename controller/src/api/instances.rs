//! Service instances: provision (E2), fetch (E3), update (E4), deprovision (E5).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use skybroker_brokers::OperationKind as PluginKind;
use skybroker_config::SchemaKind;
use skybroker_storage::{
    Change, InstanceState, Operation, OperationKind, ServiceInstance, UpdateTarget,
};

use crate::api::request::{
    check_maintenance, decided, json, path, repeat_of, respond, same_parameters, DeleteRequest,
    JsonBody, Query,
};
use crate::api::{ApiVersion, Originator};
use crate::core::{Core, PlanRef};
use crate::error::ApiError;

/// The offering and plan named by a request, or the 400 that says which is unknown
/// (OSB-ERR-06).
pub fn requested_plan<'a>(
    core: &'a Core,
    service_id: &str,
    plan_id: &str,
) -> Result<PlanRef<'a>, ApiError> {
    if core.config.offering(service_id).is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown service_id {service_id:?}"
        )));
    }
    core.plan(service_id, plan_id).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "plan_id {plan_id:?} is not a plan of service {service_id:?}"
        ))
    })
}

fn busy(what: &str) -> ApiError {
    ApiError::Concurrency(format!(
        "the instance is {what}; retry when it has finished"
    ))
}

/// The body of a finished provision or update (and of an identical repeat).
fn instance_body(instance: &ServiceInstance, version: ApiVersion) -> Value {
    let mut body = Map::new();
    if let Some(url) = &instance.dashboard_url {
        body.insert("dashboard_url".into(), json!(url));
    }
    if let (Some(metadata), true) = (&instance.metadata, version.at_least(16)) {
        body.insert("metadata".into(), metadata.clone());
    }
    Value::Object(body)
}

/// `PUT /v2/service_instances/:instance_id` (OSB-PROV).
pub async fn put_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    Extension(originator): Extension<Originator>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let accepts_incomplete = Query::parse(raw.as_deref()).accepts_incomplete()?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let service_id = body.required_str("service_id")?;
    let plan_id = body.required_str("plan_id")?;
    let context = body.optional_object("context")?;
    let organization_guid = body.optional_str("organization_guid")?;
    let space_guid = body.optional_str("space_guid")?;
    // D-09: the deprecated CF fields are required unless a context says where it comes from.
    if context.is_none() {
        if organization_guid.is_none() {
            return Err(ApiError::BadRequest(
                "organization_guid is required".to_owned(),
            ));
        }
        if space_guid.is_none() {
            return Err(ApiError::BadRequest("space_guid is required".to_owned()));
        }
    }
    let parameters = body.optional_object("parameters")?.unwrap_or_default();
    let maintenance_version = body.maintenance_version()?;
    let plan = requested_plan(&core, &service_id, &plan_id)?;
    check_maintenance(plan.plan, maintenance_version.as_deref())?;
    core.schemas.check(
        plan.plan,
        SchemaKind::InstanceCreate,
        &Value::Object(parameters.clone()),
    )?;
    plan.broker
        .check_parameters(
            &plan.plan.settings,
            PluginKind::Provision,
            &Value::Object(parameters.clone()),
        )
        .map_err(ApiError::BadRequest)?;
    let sync = !plan
        .broker
        .is_async(&plan.plan.settings, PluginKind::Provision);
    if !sync && !accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }

    // What the platform asks for; each attempt builds its records from it.
    let requested = ServiceInstance {
        id: instance_id,
        service_id,
        plan_id,
        parameters: Value::Object(parameters),
        context: context.map_or(Value::Null, Value::Object),
        organization_guid,
        space_guid,
        maintenance_version: maintenance_version.or_else(|| {
            plan.plan
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
    };
    let admission = Admission {
        core: &core,
        plan,
        sync,
        requested_by: &originator.0,
    };
    let (admission, requested) = (&admission, &requested);
    decided(&core, move |_| provision(admission, requested, version)).await
}

/// What a provision attempt needs besides the requested instance.
struct Admission<'a> {
    core: &'a Core,
    plan: PlanRef<'a>,
    sync: bool,
    requested_by: &'a Option<String>,
}

/// Provisions `requested` unless the instance exists: under the instance lock, on what the
/// map holds.
async fn provision(
    admission: &Admission<'_>,
    requested: &ServiceInstance,
    version: ApiVersion,
) -> Result<Response, ApiError> {
    let core = admission.core;
    let guard = core.locks.lock(&requested.id).await;
    let mut retried_failed = false;
    if let Some(existing) = core.state.instance(&requested.id) {
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
            InstanceState::Ready => {
                return Ok(json(StatusCode::OK, instance_body(&existing, version)))
            }
            // OSB-PROV-08: identical and still provisioning: the same operation.
            InstanceState::Provisioning => {
                let last = existing.last_operation.as_deref();
                return repeat_of(core, last, |_| true, busy("being provisioned"));
            }
            InstanceState::Updating => return Err(busy("being updated")),
            InstanceState::Deprovisioning => return Err(busy("being deprovisioned")),
            // A failed provision repeated identically is tried again.
            InstanceState::ProvisionFailed => retried_failed = true,
        }
    }
    let operation = core.new_operation(
        OperationKind::Provision,
        &requested.id,
        None,
        admission.plan.plan,
        admission.sync,
        admission.requested_by.clone(),
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
    let launched = core.admit(guard, changes, operation).await?;
    respond(launched, |done| {
        let instance = done.instance.as_ref()?;
        Some(json(StatusCode::CREATED, instance_body(instance, version)))
    })
}

/// `GET /v2/service_instances/:instance_id` (OSB-GETI).
pub async fn get_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let query = Query::parse(raw.as_deref());
    // Hints only (OSB-GETI-02): checked for form, never required.
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let not_found = || ApiError::NotFound(format!("instance {instance_id} does not exist"));
    // A miss may be another replica's fresh record.
    core.state
        .catch_up_unless(|state| state.has_instance(&instance_id))
        .await?;
    let instance = core.state.instance(&instance_id).ok_or_else(not_found)?;
    let retrievable = core
        .config
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
        InstanceState::Provisioning | InstanceState::ProvisionFailed => return Err(not_found()),
        InstanceState::Updating => return Err(busy("being updated")),
        InstanceState::Ready | InstanceState::Deprovisioning => {}
    }
    let mut body = instance_body(&instance, version);
    body["service_id"] = json!(instance.service_id);
    body["plan_id"] = json!(instance.plan_id);
    body["parameters"] = instance.parameters.clone();
    if let (Some(v), true) = (&instance.maintenance_version, version.at_least(15)) {
        body["maintenance_info"] = json!({ "version": v });
    }
    Ok(json(StatusCode::OK, body))
}

/// `PATCH /v2/service_instances/:instance_id` (OSB-UPD).
pub async fn patch_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    Extension(originator): Extension<Originator>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let accepts_incomplete = Query::parse(raw.as_deref()).accepts_incomplete()?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let request = UpdateRequest {
        instance_id: &instance_id,
        accepts_incomplete,
        body: &body,
        version,
        requested_by: &originator.0,
    };
    let (core, request) = (&core, &request);
    decided(core, move |caught_up| update(core, request, caught_up)).await
}

/// An update request as read from HTTP.
struct UpdateRequest<'a> {
    instance_id: &'a str,
    accepts_incomplete: bool,
    body: &'a JsonBody,
    version: ApiVersion,
    requested_by: &'a Option<String>,
}

/// Updates (OSB-UPD) under the instance lock, on what the map holds.
async fn update(
    core: &Core,
    request: &UpdateRequest<'_>,
    caught_up: bool,
) -> Result<Response, ApiError> {
    let &UpdateRequest {
        instance_id,
        accepts_incomplete,
        body,
        version,
        requested_by,
    } = request;
    let service_id = body.required_str("service_id")?;
    let requested_plan_id = body.optional_str("plan_id")?;
    let parameters = body.optional_object("parameters")?;
    let context = body.optional_object("context")?;
    body.optional_object("previous_values")?;
    let maintenance_version = body.maintenance_version()?;
    if core.config.offering(&service_id).is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown service_id {service_id:?}"
        )));
    }
    if let Some(plan_id) = &requested_plan_id {
        requested_plan(core, &service_id, plan_id)?;
    }

    // A miss may be another replica's fresh record: catch up first, outside the instance
    // lock (the engine waits for it).
    if !caught_up {
        core.state
            .catch_up_unless(|state| state.has_instance(instance_id))
            .await?;
    }
    let guard = core.locks.lock(instance_id).await;
    let mut instance = core
        .state
        .instance(instance_id)
        .ok_or_else(|| ApiError::NotFound(format!("instance {instance_id} does not exist")))?;
    if instance.service_id != service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the instance's service"
        )));
    }
    let target_plan_id = requested_plan_id.unwrap_or_else(|| instance.plan_id.clone());
    let plan = requested_plan(core, &service_id, &target_plan_id)?;
    let changes_plan = target_plan_id != instance.plan_id;
    if changes_plan {
        let current_updateable = core
            .plan(&service_id, &instance.plan_id)
            .is_none_or(|current| current.plan.is_updateable(current.offering));
        if !current_updateable {
            return Err(ApiError::Unprocessable(format!(
                "the plan of instance {instance_id} cannot be changed (plan_updateable is false)"
            )));
        }
    }
    check_maintenance(plan.plan, maintenance_version.as_deref())?;
    if let Some(parameters) = &parameters {
        core.schemas.check(
            plan.plan,
            SchemaKind::InstanceUpdate,
            &Value::Object(parameters.clone()),
        )?;
    }
    // Parameters sent are merged key by key into the current ones; absent keys stay.
    let mut merged = instance.parameters.as_object().cloned().unwrap_or_default();
    merged.extend(parameters.unwrap_or_default());
    let merged = Value::Object(merged);
    plan.broker
        .check_parameters(&plan.plan.settings, PluginKind::Update, &merged)
        .map_err(ApiError::BadRequest)?;
    let target = UpdateTarget {
        plan_id: target_plan_id,
        parameters: merged,
        maintenance_version: maintenance_version.or_else(|| instance.maintenance_version.clone()),
        context: context.map_or_else(|| instance.context.clone(), Value::Object),
        previous_plan_id: instance.plan_id.clone(),
    };
    match instance.state {
        InstanceState::Ready => {}
        InstanceState::Updating => {
            // OSB-UPD-08: the same update again gets the same operation.
            let last = instance.last_operation.as_deref();
            let same = |op: &Operation| op.update.as_ref() == Some(&target);
            return repeat_of(core, last, same, busy("being updated"));
        }
        InstanceState::Provisioning => return Err(busy("being provisioned")),
        InstanceState::Deprovisioning => return Err(busy("being deprovisioned")),
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
                .commit(vec![Change::PutInstance(instance.clone())])
                .await?;
        }
        return Ok(json(StatusCode::OK, instance_body(&instance, version)));
    }
    let sync = !plan
        .broker
        .is_async(&plan.plan.settings, PluginKind::Update);
    if !sync && !accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }
    let mut operation = core.new_operation(
        OperationKind::Update,
        instance_id,
        None,
        plan.plan,
        sync,
        requested_by.clone(),
    );
    operation.update = Some(target);
    instance.state = InstanceState::Updating;
    instance.last_operation = Some(operation.id.clone());
    let changes = vec![
        Change::PutInstance(instance),
        Change::PutOperation(operation.clone()),
    ];
    let launched = core.admit(guard, changes, operation).await?;
    respond(launched, |done| {
        let instance = done.instance.as_ref()?;
        Some(json(StatusCode::OK, instance_body(instance, version)))
    })
}

/// `DELETE /v2/service_instances/:instance_id` (OSB-DEPROV).
pub async fn delete_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(originator): Extension<Originator>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let query = Query::parse(raw.as_deref());
    let service_id = query.required("service_id")?;
    let plan_id = query.required("plan_id")?;
    let accepts_incomplete = query.accepts_incomplete()?;

    // A repeat on a replica that has not seen the first request's records yet loses its
    // write to them and is decided again on them (the same operation: 202).
    let request = DeleteRequest {
        instance_id: &instance_id,
        service_id: &service_id,
        plan_id: &plan_id,
        accepts_incomplete,
        requested_by: &originator.0,
    };
    let (core, request) = (&core, &request);
    decided(core, move |caught_up| deprovision(core, request, caught_up)).await
}

/// Deprovisions (OSB-DEPROV) under the instance lock, on what the map holds.
async fn deprovision(
    core: &Core,
    request: &DeleteRequest<'_>,
    caught_up: bool,
) -> Result<Response, ApiError> {
    let &DeleteRequest {
        instance_id,
        service_id,
        plan_id,
        accepts_incomplete,
        requested_by,
    } = request;
    // A miss may be another replica's fresh record: catch up first, outside the instance
    // lock (the engine waits for it).
    if !caught_up {
        core.state
            .catch_up_unless(|state| state.has_instance(instance_id))
            .await?;
    }
    let guard = core.locks.lock(instance_id).await;
    let instance = core
        .state
        .instance(instance_id)
        .ok_or_else(|| ApiError::Gone(format!("instance {instance_id} does not exist")))?;
    if instance.service_id != service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the instance's service"
        )));
    }
    requested_plan(core, service_id, plan_id)?;
    // The instance's own plan decides how it is deleted; the platform may send a stale one.
    let plan = core
        .plan(service_id, &instance.plan_id)
        .map_or_else(|| requested_plan(core, service_id, plan_id), Ok)?;
    let sync = !plan
        .broker
        .is_async(&plan.plan.settings, PluginKind::Deprovision);
    if !sync && !accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }
    let running = instance
        .last_operation
        .as_deref()
        .and_then(|id| core.state.operation(id));
    match instance.state {
        InstanceState::Deprovisioning => {
            // OSB-DEPROV-06: a repeat gets the same operation.
            let last = instance.last_operation.as_deref();
            return repeat_of(core, last, |_| true, busy("being deprovisioned"));
        }
        InstanceState::Updating => return Err(busy("being updated")),
        // D-17: an async provision is halted and the instance deleted; a synchronous one
        // has a request waiting for it and cannot be interrupted.
        InstanceState::Provisioning if running.as_ref().is_none_or(|op| op.sync) => {
            return Err(busy("being provisioned"))
        }
        InstanceState::Provisioning | InstanceState::Ready | InstanceState::ProvisionFailed => {}
    }
    let (changes, operation) =
        crate::lifecycle::begin_deprovision(core, &instance, plan.plan, sync, requested_by.clone());
    let launched = core.admit(guard, changes, operation).await?;
    respond(launched, |_| Some(json(StatusCode::OK, json!({}))))
}
