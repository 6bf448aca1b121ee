//! Service bindings: bind (E7), fetch (E8), unbind (E9).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};
use skybroker_brokers::OperationKind as PluginKind;
use skybroker_config::SchemaKind;
use skybroker_storage::{BindingState, Change, InstanceState, OperationKind, ServiceBinding};

use crate::api::instances::requested_plan;
use crate::api::request::{
    decided, json, path, repeat_of, respond, same_parameters, DeleteRequest, JsonBody, Query,
};
use crate::api::{ApiVersion, Originator};
use crate::core::Core;
use crate::error::ApiError;

/// What the platform receives for a binding, trimmed to the client's version (D-14:
/// `endpoints` from 2.15, `metadata` from 2.16).
fn binding_body(binding: &ServiceBinding, version: ApiVersion) -> Value {
    let mut body = match &binding.result {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if !version.at_least(15) {
        body.remove("endpoints");
    }
    if !version.at_least(16) {
        body.remove("metadata");
    }
    Value::Object(body)
}

fn busy(what: &str) -> ApiError {
    ApiError::Concurrency(format!("{what}; retry when it has finished"))
}

/// `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-BIND, OSB-ROT).
pub async fn put_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    Extension(originator): Extension<Originator>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let accepts_incomplete = Query::parse(raw.as_deref()).accepts_incomplete()?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let request = BindRequest {
        instance_id: &instance_id,
        binding_id: &binding_id,
        accepts_incomplete,
        body: &body,
        version,
        requested_by: &originator.0,
    };
    let (core, request) = (&core, &request);
    decided(core, move |caught_up| bind(core, request, caught_up)).await
}

/// A bind request as read from HTTP.
struct BindRequest<'a> {
    instance_id: &'a str,
    binding_id: &'a str,
    accepts_incomplete: bool,
    body: &'a JsonBody,
    version: ApiVersion,
    requested_by: &'a Option<String>,
}

/// Binds (OSB-BIND) or rotates (OSB-ROT) under the instance lock, on what the map holds.
async fn bind(
    core: &Core,
    request: &BindRequest<'_>,
    caught_up: bool,
) -> Result<Response, ApiError> {
    let &BindRequest {
        instance_id,
        binding_id,
        accepts_incomplete,
        body,
        version,
        requested_by,
    } = request;
    let predecessor_id = body.optional_str("predecessor_binding_id")?;
    // OSB-ROT-02: a rotation request may carry nothing but the predecessor.
    let (service_id, plan_id) = if predecessor_id.is_some() {
        (
            body.optional_str("service_id")?,
            body.optional_str("plan_id")?,
        )
    } else {
        (
            Some(body.required_str("service_id")?),
            Some(body.required_str("plan_id")?),
        )
    };
    let app_guid = body.optional_str("app_guid")?;
    let bind_resource = body.optional_object("bind_resource")?;
    let context = body.optional_object("context")?;
    let mut parameters = body.optional_object("parameters")?;
    if let (Some(service_id), Some(plan_id)) = (&service_id, &plan_id) {
        requested_plan(core, service_id, plan_id)?;
    } else if let Some(service_id) = &service_id {
        if core.config.offering(service_id).is_none() {
            return Err(ApiError::BadRequest(format!(
                "unknown service_id {service_id:?}"
            )));
        }
    }

    // A miss may be another replica's fresh record: catch up first, outside the instance
    // lock (the engine waits for it).
    if !caught_up {
        core.state
            .catch_up_unless(|state| {
                state.has_instance(instance_id)
                    && (predecessor_id.as_deref()).is_none_or(|id| state.has_binding(id))
            })
            .await?;
    }
    let guard = core.locks.lock(instance_id).await;
    // D-04: binding to an unknown instance is 404.
    let instance = core
        .state
        .instance(instance_id)
        .ok_or_else(|| ApiError::NotFound(format!("instance {instance_id} does not exist")))?;
    if service_id
        .as_ref()
        .is_some_and(|s| *s != instance.service_id)
        || plan_id.as_ref().is_some_and(|p| *p != instance.plan_id)
    {
        return Err(ApiError::BadRequest(format!(
            "service_id and plan_id must be those of instance {instance_id}"
        )));
    }
    let plan = requested_plan(core, &instance.service_id, &instance.plan_id)?;
    if !plan.plan.is_bindable(plan.offering) {
        return Err(ApiError::BadRequest(format!(
            "plan {} is not bindable",
            plan.plan.name
        )));
    }
    if let Some(predecessor_id) = &predecessor_id {
        if !plan.plan.binding_rotatable {
            return Err(ApiError::BadRequest(format!(
                "plan {} does not allow binding rotation (binding_rotatable is false)",
                plan.plan.name
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
    core.schemas.check(
        plan.plan,
        SchemaKind::BindingCreate,
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
    let sync = !plan.broker.is_async(&plan.plan.settings, PluginKind::Bind);
    if !sync && !accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }
    let bind_resource = bind_resource.map_or(Value::Null, Value::Object);
    let mut retried_failed = false;
    if let Some(existing) = core.state.binding(binding_id) {
        let identical = existing.instance_id == instance_id
            && same_parameters(&existing.parameters, &parameters)
            && existing.bind_resource == bind_resource
            && existing.app_guid == app_guid
            && existing.predecessor_binding_id == predecessor_id;
        if !identical {
            return Err(ApiError::Conflict(format!(
                "binding {binding_id} already exists with different attributes"
            )));
        }
        match existing.state {
            // OSB-BIND-07.
            BindingState::Bound => {
                return Ok(json(StatusCode::OK, binding_body(&existing, version)))
            }
            BindingState::Binding => {
                let last = existing.last_operation.as_deref();
                return repeat_of(core, last, |_| true, busy("the binding is being created"));
            }
            BindingState::Unbinding => return Err(busy("the binding is being deleted")),
            BindingState::BindFailed => retried_failed = true,
        }
    }
    let operation = core.new_operation(
        OperationKind::Bind,
        instance_id,
        Some(binding_id),
        plan.plan,
        sync,
        requested_by.clone(),
    );
    let binding = ServiceBinding {
        id: binding_id.to_owned(),
        instance_id: instance_id.to_owned(),
        service_id: instance.service_id.clone(),
        plan_id: instance.plan_id.clone(),
        parameters: Value::Object(parameters),
        bind_resource,
        app_guid,
        context: context.map_or(Value::Null, Value::Object),
        predecessor_binding_id: predecessor_id,
        state: BindingState::Binding,
        result: Value::Null,
        plugin_state: Value::Null,
        last_operation: Some(operation.id.clone()),
        created_at: operation.created_at,
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
    let launched = core.admit(guard, changes, operation).await?;
    respond(launched, |done| {
        let binding = done.binding.as_ref()?;
        Some(json(StatusCode::CREATED, binding_body(binding, version)))
    })
}

/// `GET /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-GETB).
pub async fn get_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let query = Query::parse(raw.as_deref());
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let not_found = || ApiError::NotFound(format!("binding {binding_id} does not exist"));
    // A miss may be another replica's fresh record.
    core.state
        .catch_up_unless(|state| state.has_binding(&binding_id))
        .await?;
    let binding = core
        .state
        .binding(&binding_id)
        .filter(|b| b.instance_id == instance_id)
        .ok_or_else(not_found)?;
    let retrievable = core
        .config
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
        BindingState::Bound | BindingState::Unbinding => {
            let mut body = binding_body(&binding, version);
            body["parameters"] = binding.parameters.clone();
            Ok(json(StatusCode::OK, body))
        }
    }
}

/// `DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-UNB).
pub async fn delete_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(originator): Extension<Originator>,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let query = Query::parse(raw.as_deref());
    let service_id = query.required("service_id")?;
    let plan_id = query.required("plan_id")?;
    let accepts_incomplete = query.accepts_incomplete()?;

    // A repeat on a replica that has not seen the first request's records yet loses its
    // write to them and is decided again on them (the same operation).
    let request = DeleteRequest {
        instance_id: &instance_id,
        service_id: &service_id,
        plan_id: &plan_id,
        accepts_incomplete,
        requested_by: &originator.0,
    };
    let (core, binding_id, request) = (&core, &binding_id, &request);
    decided(core, move |caught_up| {
        unbind(core, binding_id, request, caught_up)
    })
    .await
}

/// Unbinds (OSB-UNB) under the instance lock, on what the map holds.
async fn unbind(
    core: &Core,
    binding_id: &str,
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
            .catch_up_unless(|state| state.has_binding(binding_id))
            .await?;
    }
    let guard = core.locks.lock(instance_id).await;
    let binding = core
        .state
        .binding(binding_id)
        .filter(|b| b.instance_id == instance_id)
        .ok_or_else(|| ApiError::Gone(format!("binding {binding_id} does not exist")))?;
    if binding.service_id != service_id {
        return Err(ApiError::BadRequest(format!(
            "service_id {service_id:?} is not the binding's service"
        )));
    }
    requested_plan(core, service_id, plan_id)?;
    let plan = core
        .plan(&binding.service_id, &binding.plan_id)
        .map_or_else(|| requested_plan(core, service_id, plan_id), Ok)?;
    let sync = !plan
        .broker
        .is_async(&plan.plan.settings, PluginKind::Unbind);
    if !sync && !accepts_incomplete {
        return Err(ApiError::AsyncRequired);
    }
    let running = binding
        .last_operation
        .as_deref()
        .and_then(|id| core.state.operation(id));
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
    let (changes, operation) =
        crate::lifecycle::begin_unbind(core, &binding, plan.plan, sync, requested_by.clone());
    let launched = core.admit(guard, changes, operation).await?;
    respond(launched, |_| Some(json(StatusCode::OK, json!({}))))
}
