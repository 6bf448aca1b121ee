//! `/v1/service_instances` and `/v1/service_bindings`: every instance and binding the state
//! map tracks, created through `/v2` on any broker (built-in or external) by any platform,
//! read in id order, labelled, and followed through their operations.
//!
//! Nothing here creates or deletes: platforms do that through their OSB endpoint, so that
//! every create and delete takes the one path the engine persists and resumes. What the
//! Service Manager adds is the landscape's view (which platform made what, on which broker),
//! labels, instance sharing, and the operations of both under
//! `/v1/service_instances/{id}/operations/{operation_id}` (and the same for bindings).
//!
//! A binding's credentials are not shown: they belong to the platform that bound (and to its
//! application), and an operator listing bindings has no use for them.
//!
//! # Instance sharing
//! An instance belongs to the platform that created it: another platform neither sees nor
//! changes it. `PATCH /v1/service_instances/<id>` with `{"shared": true}` shares it: every
//! platform that sees its plan may then bind to it (and read, poll and delete its own
//! bindings); only the creating platform updates or deprovisions it. `{"shared": false}`
//! stops new bindings; existing ones stay until unbound.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use skybroker_storage::{Change, Operation, OperationState, Read, ServiceBinding, ServiceInstance};

use super::query::apply_label_changes;
use super::schema::{self, BindingPage, BindingPatch, ErrorBody, InstancePage, InstancePatch};
use super::{answer, id_of, list, timestamp, values, Paging};
use crate::api::request::Query;
use crate::catalog::{sm_id, Catalog};
use crate::core::Core;
use crate::error::ApiError;

fn instance_shown(catalog: &Catalog, instance: &ServiceInstance) -> schema::ServiceInstance {
    let owner = catalog.owner(&instance.service_id).unwrap_or("");
    schema::ServiceInstance {
        id: instance.id.to_string(),
        service_plan_id: sm_id(owner, &instance.plan_id),
        service_offering_id: sm_id(owner, &instance.service_id),
        broker_id: owner.to_owned(),
        catalog_service_id: instance.service_id.to_string(),
        catalog_plan_id: instance.plan_id.to_string(),
        state: format!("{:?}", instance.state).to_lowercase(),
        context: instance.context.clone(),
        dashboard_url: instance.dashboard_url.clone(),
        last_operation: instance.last_operation.as_ref().map(|id| id.to_string()),
        platform_id: instance.platform_id.clone(),
        shared: instance.shared,
        labels: instance.labels.clone(),
        created_at: timestamp(instance.created_at),
    }
}

fn binding_shown(catalog: &Catalog, binding: &ServiceBinding) -> schema::ServiceBinding {
    let owner = catalog.owner(&binding.service_id).unwrap_or("");
    schema::ServiceBinding {
        id: binding.id.to_string(),
        service_instance_id: binding.instance_id.to_string(),
        service_plan_id: sm_id(owner, &binding.plan_id),
        broker_id: owner.to_owned(),
        state: format!("{:?}", binding.state).to_lowercase(),
        app_guid: binding.app_guid.clone(),
        bind_resource: binding.bind_resource.clone(),
        context: binding.context.clone(),
        last_operation: binding.last_operation.as_ref().map(|id| id.to_string()),
        platform_id: binding.platform_id.clone(),
        labels: binding.labels.clone(),
        created_at: timestamp(binding.created_at),
    }
}

/// `GET /v1/service_instances`: every tracked instance, a page at a time.
#[utoipa::path(get, path = "/v1/service_instances", tag = "service_instances",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of instances of every broker", body = InstancePage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list_instances(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let paging = Paging::of(&Query::parse(query.as_deref()))?;
    let catalog = core.catalog.current();
    let (instances, more) = if paging.filter.is_empty() {
        core.state
            .instances_page(paging.after.as_deref(), paging.max_items, |_| true)
    } else {
        // The instances in id order, each shown and tested, until the page is full.
        core.state
            .instances_matching(paging.after.as_deref(), paging.max_items, |instance| {
                paging
                    .filter
                    .accepts(&values(&[instance_shown(&catalog, instance)]).remove(0))
            })
    };
    let items: Vec<schema::ServiceInstance> = instances
        .iter()
        .map(|instance| instance_shown(&catalog, instance))
        .collect();
    Ok(list("/service_instances", &paging, values(&items), more))
}

/// `GET /v1/service_instances/{id}`.
#[utoipa::path(get, path = "/v1/service_instances/{id}", tag = "service_instances",
    params(("id" = String, Path, description = "The instance's id")),
    responses(
        (status = 200, description = "The instance", body = schema::ServiceInstance),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ))]
pub async fn get_instance(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let instance = core
        .state
        .instance(id)
        .ok_or_else(|| ApiError::NotFound(format!("no service instance {id:?}")))?;
    Ok(answer(
        StatusCode::OK,
        &instance_shown(&core.catalog.current(), &instance),
    ))
}

/// `PATCH /v1/service_instances/{id}`: `{"shared": true|false}` and/or label changes.
#[utoipa::path(patch, path = "/v1/service_instances/{id}", tag = "service_instances",
    params(("id" = String, Path, description = "The instance's id")),
    request_body = InstancePatch,
    responses(
        (status = 200, description = "The instance, changed", body = schema::ServiceInstance),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 422, description = "Changed meanwhile: try again", body = ErrorBody),
    ))]
pub async fn update_instance(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?.to_owned();
    let body = super::body(&headers, &bytes)?;
    let shared = match body.get("shared") {
        None => None,
        Some(Value::Bool(shared)) => Some(*shared),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "shared must be true or false".to_owned(),
            ))
        }
    };
    let labels = body.get("labels");
    if shared.is_none() && labels.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to change: send shared (true or false) or labels".to_owned(),
        ));
    }
    // Under the instance's lock and on what was read, like every change to an instance.
    let guard = core.locks.lock(&id).await;
    let basis = core.state.basis(&[Read::Instance(&id)]);
    let mut instance = core
        .state
        .instance(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no service instance {id:?}")))?;
    let before = (instance.shared, instance.labels.clone());
    if let Some(shared) = shared {
        instance.shared = shared;
    }
    if let Some(changes) = labels {
        apply_label_changes(&mut instance.labels, changes)?;
    }
    if (instance.shared, &instance.labels) != (before.0, &before.1) {
        core.state
            .commit_on(&basis, vec![Change::PutInstance(instance.clone())])
            .await?;
        log::info!(
            "instance {id} changed by the Service Manager: shared {}, {} label(s)",
            instance.shared,
            instance.labels.len()
        );
    }
    drop(guard);
    Ok(answer(
        StatusCode::OK,
        &instance_shown(&core.catalog.current(), &instance),
    ))
}

/// `GET /v1/service_bindings`: every tracked binding, a page at a time.
#[utoipa::path(get, path = "/v1/service_bindings", tag = "service_bindings",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of bindings of every broker", body = BindingPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list_bindings(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let paging = Paging::of(&Query::parse(query.as_deref()))?;
    let catalog = core.catalog.current();
    let (bindings, more) =
        core.state
            .bindings_matching(paging.after.as_deref(), paging.max_items, |binding| {
                paging.filter.is_empty()
                    || paging
                        .filter
                        .accepts(&values(&[binding_shown(&catalog, binding)]).remove(0))
            });
    let items: Vec<schema::ServiceBinding> = bindings
        .iter()
        .map(|binding| binding_shown(&catalog, binding))
        .collect();
    Ok(list("/service_bindings", &paging, values(&items), more))
}

/// `GET /v1/service_bindings/{id}`.
#[utoipa::path(get, path = "/v1/service_bindings/{id}", tag = "service_bindings",
    params(("id" = String, Path, description = "The binding's id")),
    responses(
        (status = 200, description = "The binding (without its credentials)", body = schema::ServiceBinding),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such binding", body = ErrorBody),
    ))]
pub async fn get_binding(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let binding = core
        .state
        .binding(id)
        .ok_or_else(|| ApiError::NotFound(format!("no service binding {id:?}")))?;
    Ok(answer(
        StatusCode::OK,
        &binding_shown(&core.catalog.current(), &binding),
    ))
}

/// `PATCH /v1/service_bindings/{id}`: label changes.
#[utoipa::path(patch, path = "/v1/service_bindings/{id}", tag = "service_bindings",
    params(("id" = String, Path, description = "The binding's id")),
    request_body = BindingPatch,
    responses(
        (status = 200, description = "The binding, relabelled", body = schema::ServiceBinding),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such binding", body = ErrorBody),
        (status = 422, description = "Changed meanwhile: try again", body = ErrorBody),
    ))]
pub async fn update_binding(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?.to_owned();
    let body = super::body(&headers, &bytes)?;
    let changes = body
        .get("labels")
        .ok_or_else(|| ApiError::BadRequest("nothing to change: send labels".to_owned()))?;
    let missing = || ApiError::NotFound(format!("no service binding {id:?}"));
    // A binding changes under its instance's lock, like a bind or an unbind.
    let instance_id = core.state.binding(&id).ok_or_else(missing)?.instance_id;
    let guard = core.locks.lock(&instance_id).await;
    let basis = core.state.basis(&[Read::Binding(&id)]);
    let mut binding = core.state.binding(&id).ok_or_else(missing)?;
    let before = binding.labels.clone();
    apply_label_changes(&mut binding.labels, changes)?;
    if binding.labels != before {
        core.state
            .commit_on(&basis, vec![Change::PutBinding(binding.clone())])
            .await?;
        log::info!(
            "binding {id} relabelled by the Service Manager: {} label(s)",
            binding.labels.len()
        );
    }
    drop(guard);
    Ok(answer(
        StatusCode::OK,
        &binding_shown(&core.catalog.current(), &binding),
    ))
}

/// An OSB operation as the Service Manager shows operations.
fn operation_shown(operation: &Operation) -> schema::Operation {
    use skybroker_config::OperationKind::*;
    let (kind, resource_type, resource_id) = match operation.kind {
        Provision => ("create", "service_instances", &*operation.instance_id),
        Update => ("update", "service_instances", &*operation.instance_id),
        Deprovision => ("delete", "service_instances", &*operation.instance_id),
        Bind | Unbind => (
            if operation.kind == Bind {
                "create"
            } else {
                "delete"
            },
            "service_bindings",
            operation.binding_id.as_deref().unwrap_or_default(),
        ),
    };
    let state = match operation.state {
        OperationState::InProgress => "in progress",
        OperationState::Succeeded => "succeeded",
        OperationState::Failed => "failed",
    };
    let description = match &operation.failure {
        Some(failure) => Some(failure.description.clone()),
        None => operation.description.clone(),
    };
    schema::Operation {
        id: operation.id.to_string(),
        kind: kind.to_owned(),
        state: state.to_owned(),
        resource_type: resource_type.to_owned(),
        resource_id: resource_id.to_owned(),
        description,
        status: None,
        created_at: timestamp(operation.created_at),
        updated_at: timestamp(operation.finished_at.unwrap_or(operation.created_at)),
    }
}

/// The operation `operation_id` of the resource `id` of `resource_type`, if it is one of its.
fn osb_operation(
    core: &Core,
    resource_type: &str,
    id: &str,
    operation_id: &str,
) -> Result<Response, ApiError> {
    let operation_id = id_of(operation_id)?;
    core.state
        .operation(operation_id)
        .map(|operation| operation_shown(&operation))
        .filter(|shown| shown.resource_type == resource_type && shown.resource_id == id)
        .map(|shown| answer(StatusCode::OK, &shown))
        .ok_or_else(|| ApiError::NotFound(format!("no operation {operation_id:?} of {id:?}")))
}

/// `GET /v1/service_instances/{id}/operations/{operation_id}`: a provision, update or
/// deprovision of the instance (as long as the operation is kept, see
/// `[operations] retain_finished_secs`).
#[utoipa::path(get, path = "/v1/service_instances/{id}/operations/{operation_id}", tag = "service_instances",
    params(
        ("id" = String, Path, description = "The instance's id"),
        ("operation_id" = String, Path, description = "The operation's id (the OSB `operation`)"),
    ),
    responses(
        (status = 200, description = "The operation", body = schema::Operation),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such operation of this instance", body = ErrorBody),
    ))]
pub async fn instance_operation(
    State(core): State<Arc<Core>>,
    Path((id, operation_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    osb_operation(&core, "service_instances", id_of(&id)?, &operation_id)
}

/// `GET /v1/service_bindings/{id}/operations/{operation_id}`: a bind or unbind.
#[utoipa::path(get, path = "/v1/service_bindings/{id}/operations/{operation_id}", tag = "service_bindings",
    params(
        ("id" = String, Path, description = "The binding's id"),
        ("operation_id" = String, Path, description = "The operation's id (the OSB `operation`)"),
    ),
    responses(
        (status = 200, description = "The operation", body = schema::Operation),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such operation of this binding", body = ErrorBody),
    ))]
pub async fn binding_operation(
    State(core): State<Arc<Core>>,
    Path((id, operation_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    osb_operation(&core, "service_bindings", id_of(&id)?, &operation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn operation(kind: &str, binding: Option<&str>, state: &str) -> Operation {
        serde_json::from_value(json!({
            "id": "op-1", "kind": kind, "instance_id": "i-1", "binding_id": binding,
            "state": state, "sync": false, "created_at": 1_000, "deadline": 9_000,
            "finished_at": if state == "in_progress" { Value::Null } else { json!(2_000) },
            "failure": if state == "failed" { json!({"description": "quota"}) } else { Value::Null },
        }))
        .unwrap()
    }

    #[test]
    fn osb_operations_are_shown_as_service_manager_operations() {
        let shown = operation_shown(&operation("provision", None, "in_progress"));
        assert_eq!(
            (
                shown.kind.as_str(),
                shown.state.as_str(),
                shown.resource_type.as_str(),
                shown.resource_id.as_str()
            ),
            ("create", "in progress", "service_instances", "i-1")
        );
        assert_eq!(shown.updated_at, shown.created_at);
        let shown = operation_shown(&operation("unbind", Some("b-1"), "failed"));
        assert_eq!(
            (
                shown.kind.as_str(),
                shown.state.as_str(),
                shown.resource_type.as_str(),
                shown.resource_id.as_str()
            ),
            ("delete", "failed", "service_bindings", "b-1")
        );
        assert_eq!(shown.description.as_deref(), Some("quota"));
        assert_eq!(shown.updated_at, "1970-01-01T00:00:02Z");
        let shown = operation_shown(&operation("deprovision", None, "succeeded"));
        assert_eq!(
            (shown.kind.as_str(), shown.state.as_str()),
            ("delete", "succeeded")
        );
    }
}
