//! Polling: instance last_operation (E6, OSB-LOI) and binding last_operation (E10, OSB-LOB).
//!
//! Answered from the map only. Which operation answers (D-13): the one named by `operation`
//! if this broker issued it for this resource and still retains it, else the newest one.
//! After an async delete, the retained record answers `succeeded`; once it is cleaned up, a
//! poll naming one of our operation ids answers 410 (D-08), and anything else 404.
//!
//! Platforms poll this endpoint more than any other (every in-flight operation, every few
//! seconds), so it reads its query hints without copying them (from the request's `Uri`,
//! which shares the request's bytes, where `RawQuery` would copy) and writes its body straight
//! from the record, without an intermediate JSON tree.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use skybroker_storage::{
    now_millis, InstanceState, Operation, OperationKind, OperationState, Target,
};

use crate::api::request::path;
use crate::core::Core;
use crate::error::ApiError;

/// A last_operation body (OSB-LOI-03…07). Fields in alphabetical order, as the JSON object
/// this replaced wrote them.
#[derive(Debug, Serialize)]
struct LastOperationBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_usable: Option<bool>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_repeatable: Option<bool>,
}

impl LastOperationBody<'_> {
    /// A body with only a state.
    fn state(state: &'static str) -> Self {
        LastOperationBody {
            description: None,
            instance_usable: None,
            state,
            update_repeatable: None,
        }
    }
}

/// The `operation` hint of a poll, after checking the form of every hint (`service_id` and
/// `plan_id` are hints only). The rules of [`crate::api::request::Query::hint`]: values are
/// percent-decoded, the last occurrence counts, and a parameter present but empty is a 400;
/// values that need no decoding are borrowed from the query string.
fn poll_hints(raw: Option<&str>) -> Result<Option<Cow<'_, str>>, ApiError> {
    let (mut operation, mut service_id, mut plan_id) = (None, None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "operation" => operation = Some(value),
            "service_id" => service_id = Some(value),
            "plan_id" => plan_id = Some(value),
            _ => {}
        }
    }
    for (name, value) in [
        ("operation", &operation),
        ("service_id", &service_id),
        ("plan_id", &plan_id),
    ] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::BadRequest(format!(
                "query parameter {name} must not be empty"
            )));
        }
    }
    Ok(operation)
}

/// Whether `id` has the shape of an operation id this broker issues (`kind-<32 hex>`).
fn looks_issued(id: &str) -> bool {
    id.split_once('-').is_some_and(|(kind, hex)| {
        OperationKind::from_name(kind).is_some()
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
    let description = match (&operation.failure, &operation.description) {
        (Some(failure), _) => Some(failure.description.as_str()),
        (None, Some(text)) => Some(text.as_str()),
        (None, None) => None,
    };
    let mut body = LastOperationBody {
        description: description.filter(|t| !t.is_empty()),
        ..LastOperationBody::state(state_name(operation.state))
    };
    if let Some(failure) = &operation.failure {
        // OSB-LOI-07: only for failed updates (both) and deprovisions (usable).
        if matches!(
            operation.kind,
            OperationKind::Update | OperationKind::Deprovision
        ) {
            body.instance_usable = Some(failure.instance_usable.unwrap_or(true));
        }
        if operation.kind == OperationKind::Update {
            body.update_repeatable = Some(failure.update_repeatable.unwrap_or(true));
        }
    }
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if operation.in_progress() {
        // OSB-LOI-08: seconds until the engine next polls the provider.
        let due = core
            .engine
            .next_due(&operation.id)
            .unwrap_or_else(now_millis);
        let seconds = due.saturating_sub(now_millis()).div_ceil(1000).max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
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
    uri: Uri,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let requested = poll_hints(uri.query())?;
    let requested = requested.as_deref();
    answer_caught_up(&core, requested, ("instance", &instance_id), |settled| {
        instance_answer(&core, &instance_id, requested, settled)
    })
    .await
}

/// `answer` from the records this replica holds; when it has none to answer with, `answer`
/// again once the replica has caught up with the store (another replica may have accepted
/// the operation a moment ago); else the answer for a resource without records (`what`:
/// its kind and id).
async fn answer_caught_up(
    core: &Core,
    requested: Option<&str>,
    (kind, id): (&str, &str),
    answer: impl Fn(bool) -> Option<Response>,
) -> Result<Response, ApiError> {
    if let Some(response) = answer(false) {
        return Ok(response);
    }
    if let Err(err) = core.state.catch_up().await {
        // The store is away: what the map holds still answers (a cleaned-up operation's
        // instance), only an absence cannot be vouched for.
        return answer(true).ok_or_else(|| err.into());
    }
    answer(true).ok_or_else(|| without_record(core, requested, &format!("{kind} {id}")))
}

/// The answer from the records this replica holds: `None` when it holds neither the instance
/// nor any of its operations, or (unless `settled`: caught up with the store already) not the
/// operation the platform named, which is then answered for by the latest one if any.
fn instance_answer(
    core: &Core,
    instance_id: &str,
    requested: Option<&str>,
    settled: bool,
) -> Option<Response> {
    let named = requested
        .and_then(|id| core.state.operation(id))
        .filter(|op| op.instance_id == instance_id && !op.kind.is_binding());
    if requested.is_some() && named.is_none() && !settled {
        return None;
    }
    let operation = named.or_else(|| {
        core.state
            .latest_operation(&Target::Instance(instance_id.to_owned()))
    });
    if let Some(operation) = operation {
        return Some(respond(core, &operation));
    }
    // The records were cleaned up: answer from the instance itself.
    let instance = core.state.instance(instance_id)?;
    let state = match instance.state {
        InstanceState::Ready => "succeeded",
        InstanceState::ProvisionFailed => "failed",
        _ => "in progress",
    };
    Some((StatusCode::OK, axum::Json(LastOperationBody::state(state))).into_response())
}

/// `GET /v2/service_instances/:iid/service_bindings/:bid/last_operation`.
pub async fn get_binding_last_operation(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let requested = poll_hints(uri.query())?;
    let requested = requested.as_deref();
    // D-10 when there is nothing to answer with.
    answer_caught_up(&core, requested, ("binding", &binding_id), |settled| {
        binding_answer(&core, (&instance_id, &binding_id), requested, settled)
    })
    .await
}

/// As [`instance_answer`], for a binding of an instance.
fn binding_answer(
    core: &Core,
    (instance_id, binding_id): (&str, &str),
    requested: Option<&str>,
    settled: bool,
) -> Option<Response> {
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
            .latest_operation(&Target::Binding(binding_id.to_owned()))
            .filter(|op| ours(op))
    });
    if let Some(operation) = operation {
        return Some(respond(core, &operation));
    }
    core.state
        .binding(binding_id)
        .filter(|b| b.instance_id == instance_id)?;
    Some(
        (
            StatusCode::OK,
            axum::Json(LastOperationBody::state("succeeded")),
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::{looks_issued, poll_hints, LastOperationBody};
    use crate::error::ApiError;

    #[test]
    fn poll_hints_follow_the_query_rules() {
        assert_eq!(poll_hints(None).unwrap(), None);
        assert_eq!(
            poll_hints(Some("service_id=s&plan_id=p&operation=provision-1"))
                .unwrap()
                .as_deref(),
            Some("provision-1")
        );
        // Percent-decoded; the last occurrence counts.
        assert_eq!(
            poll_hints(Some("operation=a&operation=b%2Fc"))
                .unwrap()
                .as_deref(),
            Some("b/c")
        );
        for (query, name) in [
            ("operation=", "operation"),
            ("operation=x&service_id=", "service_id"),
            ("plan_id=&operation=x", "plan_id"),
        ] {
            match poll_hints(Some(query)) {
                Err(ApiError::BadRequest(message)) => {
                    assert_eq!(message, format!("query parameter {name} must not be empty"))
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn bodies_keep_their_shape() {
        let full = LastOperationBody {
            description: Some("out of quota"),
            instance_usable: Some(true),
            state: "failed",
            update_repeatable: Some(false),
        };
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            r#"{"description":"out of quota","instance_usable":true,"state":"failed","update_repeatable":false}"#
        );
        assert_eq!(
            serde_json::to_string(&LastOperationBody::state("in progress")).unwrap(),
            r#"{"state":"in progress"}"#
        );
    }

    #[test]
    fn issued_operation_ids_are_recognised() {
        assert!(looks_issued("deprovision-0123456789abcdef0123456789abcdef"));
        assert!(!looks_issued("provision"));
        assert!(!looks_issued("deprovision-xyz"));
        assert!(!looks_issued("delete-0123456789abcdef0123456789abcdef"));
    }
}
