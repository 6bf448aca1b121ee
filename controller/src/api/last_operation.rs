//! Polling: instance last_operation (E6, OSB-LOI) and binding last_operation (E10, OSB-LOB).
//!
//! Answered from the map only. Which operation answers (D-13): the one named by `operation`
//! if this broker issued it for this resource and still retains it, else the newest one.
//! After an async delete, the retained record answers `succeeded`; once it is cleaned up, a
//! poll naming one of our operation ids answers 410 (D-08), and anything else 404.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use skybroker_storage::{
    now_millis, InstanceState, Operation, OperationKind, OperationState, Target,
};

use crate::api::request::{path, Query};
use crate::core::Core;
use crate::error::ApiError;

/// Whether `id` has the shape of an operation id this broker issues (`kind-<32 hex>`).
fn looks_issued(id: &str) -> bool {
    id.split_once('-').is_some_and(|(kind, hex)| {
        ["provision", "update", "deprovision", "bind", "unbind"].contains(&kind)
            && hex.len() == 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn state_name(state: OperationState) -> &'static str {
    match state {
        OperationState::InProgress => "in progress",
        OperationState::Succeeded => "succeeded",
        OperationState::Failed => "failed",
    }
}

/// The last_operation response for an operation record.
fn respond(core: &Core, operation: &Operation) -> Response {
    let mut body = Map::new();
    body.insert("state".into(), json!(state_name(operation.state)));
    let description = match (&operation.failure, &operation.description) {
        (Some(failure), _) => Some(failure.description.clone()),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    if let Some(text) = description.filter(|t| !t.is_empty()) {
        body.insert("description".into(), json!(text));
    }
    if let Some(failure) = &operation.failure {
        // OSB-LOI-07: only for failed updates (both) and deprovisions (usable).
        if matches!(
            operation.kind,
            OperationKind::Update | OperationKind::Deprovision
        ) {
            body.insert(
                "instance_usable".into(),
                json!(failure.instance_usable.unwrap_or(true)),
            );
        }
        if operation.kind == OperationKind::Update {
            body.insert(
                "update_repeatable".into(),
                json!(failure.update_repeatable.unwrap_or(true)),
            );
        }
    }
    let mut response = (StatusCode::OK, axum::Json(Value::Object(body))).into_response();
    if operation.in_progress() {
        // OSB-LOI-08: seconds until the engine next polls the provider.
        let due = core
            .engine
            .next_due(&operation.id)
            .unwrap_or_else(now_millis);
        let seconds = due.saturating_sub(now_millis()).div_ceil(1000).max(1);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&seconds.to_string()).expect("digits are a header"),
        );
    }
    response
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

/// `GET /v2/service_instances/:instance_id/last_operation`.
pub async fn get_instance_last_operation(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let query = Query::parse(raw.as_deref());
    let requested = query.hint("operation")?;
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let named = requested
        .as_deref()
        .and_then(|id| core.state.operation(id))
        .filter(|op| op.instance_id == instance_id && !op.kind.is_binding());
    let operation = named.or_else(|| {
        core.state
            .latest_operation(&Target::Instance(instance_id.clone()))
    });
    if let Some(operation) = operation {
        return Ok(respond(&core, &operation));
    }
    // The records were cleaned up: answer from the instance itself.
    let Some(instance) = core.state.instance(&instance_id) else {
        return Err(without_record(
            &core,
            requested.as_deref(),
            &format!("instance {instance_id}"),
        ));
    };
    let state = match instance.state {
        InstanceState::Ready => "succeeded",
        InstanceState::ProvisionFailed => "failed",
        _ => "in progress",
    };
    Ok((StatusCode::OK, axum::Json(json!({ "state": state }))).into_response())
}

/// `GET /v2/service_instances/:iid/service_bindings/:bid/last_operation`.
pub async fn get_binding_last_operation(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let query = Query::parse(raw.as_deref());
    let requested = query.hint("operation")?;
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let ours = |op: &Operation| {
        op.instance_id == instance_id && op.binding_id.as_deref() == Some(binding_id.as_str())
    };
    let named = requested
        .as_deref()
        .and_then(|id| core.state.operation(id))
        .filter(|op| ours(op));
    let operation = named.or_else(|| {
        core.state
            .latest_operation(&Target::Binding(binding_id.clone()))
            .filter(|op| ours(op))
    });
    if let Some(operation) = operation {
        return Ok(respond(&core, &operation));
    }
    match core
        .state
        .binding(&binding_id)
        .filter(|b| b.instance_id == instance_id)
    {
        Some(_) => {
            Ok((StatusCode::OK, axum::Json(json!({ "state": "succeeded" }))).into_response())
        }
        // D-10.
        None => Err(without_record(
            &core,
            requested.as_deref(),
            &format!("binding {binding_id}"),
        )),
    }
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
