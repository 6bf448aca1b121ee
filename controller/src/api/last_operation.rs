//! Polling over HTTP: instance last_operation (E6, OSB-LOI) and binding last_operation (E10,
//! OSB-LOB). [`crate::admission::last_operation`] decides which operation answers (D-13) and
//! when nothing does (404/410); this module reads the hints and writes the body.
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
use skybroker_storage::{now_millis, OperationKind, OperationState};

use crate::admission::last_operation::{self, Polled, PolledOperation};
use crate::api::request::path;
use crate::api::Who;
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

fn state_name(state: OperationState) -> &'static str {
    match state {
        OperationState::InProgress => "in progress",
        OperationState::Succeeded => "succeeded",
        OperationState::Failed => "failed",
    }
}

/// The last_operation response for what admission found.
fn respond(polled: Polled) -> Response {
    let operation = match polled {
        Polled::Operation(operation) => operation,
        Polled::State(state) => {
            let body = LastOperationBody::state(state_name(state));
            return (StatusCode::OK, axum::Json(body)).into_response();
        }
    };
    let PolledOperation {
        operation,
        next_poll,
    } = *operation;
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
        let now = now_millis();
        let seconds = next_poll
            .unwrap_or(now)
            .saturating_sub(now)
            .div_ceil(1000)
            .max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `GET /v2/service_instances/:instance_id/last_operation`.
pub async fn get_instance_last_operation(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    uri: Uri,
    who: Who,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let requested = poll_hints(uri.query())?;
    let platform = who.principal.platform();
    let polled =
        last_operation::instance(&core, &instance_id, requested.as_deref(), platform).await?;
    Ok(respond(polled))
}

/// `GET /v2/service_instances/:iid/service_bindings/:bid/last_operation`.
pub async fn get_binding_last_operation(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    who: Who,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let requested = poll_hints(uri.query())?;
    let ids = (instance_id.as_str(), binding_id.as_str());
    let platform = who.principal.platform();
    let polled = last_operation::binding(&core, ids, requested.as_deref(), platform).await?;
    Ok(respond(polled))
}

#[cfg(test)]
mod tests {
    use super::{poll_hints, LastOperationBody};
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
}
