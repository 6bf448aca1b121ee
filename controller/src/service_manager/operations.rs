//! `?async=true` and the operations it creates.
//!
//! Registering or updating an external broker calls it for its catalog, which may take as
//! long as the broker likes. With `async=true` the request is checked at once (400, 404, 409
//! answer as usual), then stored as an operation and answered 202 with
//! `Location: /v1/service_brokers/{id}/operations/{operation_id}`; the operation runs in the
//! background and its record says how it ended (`succeeded`, or `failed` with the status and
//! description the request would have got). The record is written before the 202, so an
//! operation whose process dies is run again when a broker on the same store starts
//! (`resume`), by the replica that claims it. Requests that do not call a broker (platforms,
//! visibilities, deletes) finish at once and answer as without `async=true`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skybroker_storage::{
    now_millis, Change, RegistryOperation, RegistryOperationState, RegistryRecord, ServiceBroker,
};

use super::schema::{self, ErrorBody};
use super::{answer, id_of, timestamp};
use crate::api::request::Query;
use crate::core::Core;
use crate::error::ApiError;

/// Whether the query asks for `async=true` (400 for anything but `true`/`false`).
pub(crate) fn requested(query: Option<&str>) -> Result<bool, ApiError> {
    match Query::parse(query).hint("async")?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "async must be true or false, not {other:?}"
        ))),
    }
}

fn shown(operation: &RegistryOperation) -> schema::Operation {
    schema::Operation {
        id: operation.id.clone(),
        kind: operation.kind.clone(),
        state: match operation.state {
            RegistryOperationState::InProgress => "in progress",
            RegistryOperationState::Succeeded => "succeeded",
            RegistryOperationState::Failed => "failed",
        }
        .to_owned(),
        resource_type: operation.resource_type.clone(),
        resource_id: operation.resource_id.clone(),
        description: operation.description.clone(),
        status: operation.status,
        created_at: timestamp(operation.created_at),
        updated_at: timestamp(operation.updated_at),
    }
}

/// Stores the operation of `kind` on `broker`, starts it, and answers 202 with its location.
pub(crate) async fn accept(
    core: &Arc<Core>,
    kind: &str,
    broker: ServiceBroker,
) -> Result<Response, ApiError> {
    let now = now_millis();
    let operation = RegistryOperation {
        id: uuid::Uuid::new_v4().to_string(),
        kind: kind.to_owned(),
        resource_type: "service_brokers".to_owned(),
        resource_id: broker.id.clone(),
        state: RegistryOperationState::InProgress,
        description: None,
        status: None,
        request: serde_json::to_value(&broker).expect("a broker serializes"),
        created_at: now,
        updated_at: now,
    };
    core.state
        .commit(vec![Change::PutRegistry(RegistryRecord::Operation(
            operation.clone(),
        ))])
        .await?;
    let location = format!(
        "/v1/service_brokers/{}/operations/{}",
        operation.resource_id, operation.id
    );
    tokio::spawn(run(Arc::clone(core), operation.clone()));
    let mut response = answer(StatusCode::ACCEPTED, &shown(&operation));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Runs an operation to its end and records how it ended, unless another replica has
/// claimed it.
async fn run(core: Arc<Core>, mut operation: RegistryOperation) {
    match core.state.store().claim(&operation.id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            // Left in progress: the next start runs it.
            log::warn!("operation {} not claimed: {err}", operation.id);
            return;
        }
    }
    let broker: Result<ServiceBroker, _> = serde_json::from_value(operation.request.clone());
    let outcome = match broker {
        Ok(broker) => super::brokers::store_fetched(&core, broker).await,
        Err(err) => Err(ApiError::Internal(format!(
            "operation {}: {err}",
            operation.id
        ))),
    };
    let success = if operation.kind == "create" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match outcome {
        Ok(_) => {
            operation.state = RegistryOperationState::Succeeded;
            operation.status = Some(success.as_u16());
        }
        Err(err) => {
            operation.state = RegistryOperationState::Failed;
            operation.status = Some(err.status().as_u16());
            operation.description = Some(err.to_string());
        }
    }
    operation.updated_at = now_millis().max(operation.updated_at + 1);
    // The request is done with: its copy of the credentials goes.
    operation.request = serde_json::Value::Null;
    let id = operation.id.clone();
    if let Err(err) = core
        .state
        .commit(vec![Change::PutRegistry(RegistryRecord::Operation(
            operation,
        ))])
        .await
    {
        log::warn!("operation {id} finished but its record was not stored: {err}");
    }
    let _ = core.state.store().release(&id).await;
}

/// Runs again every operation left in progress by a process that stopped: called at start.
pub fn resume(core: &Arc<Core>) {
    for operation in core.state.registry_operations() {
        if operation.state != RegistryOperationState::InProgress {
            continue;
        }
        log::info!("resuming Service Manager operation {}", operation.id);
        tokio::spawn(run(Arc::clone(core), operation));
    }
}

/// `GET /v1/service_brokers/{id}/operations/{operation_id}`.
#[utoipa::path(get, path = "/v1/service_brokers/{id}/operations/{operation_id}", tag = "service_brokers",
    params(
        ("id" = String, Path, description = "The broker's id"),
        ("operation_id" = String, Path, description = "The operation's id"),
    ),
    responses(
        (status = 200, description = "The operation", body = schema::Operation),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such operation of this broker", body = ErrorBody),
    ))]
pub async fn get_one(
    State(core): State<Arc<Core>>,
    Path((id, operation_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let operation = core
        .state
        .registry_operation(id_of(&operation_id)?)
        .filter(|operation| operation.resource_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no operation {operation_id:?} of {id:?}")))?;
    Ok(answer(StatusCode::OK, &shown(&operation)).into_response())
}
