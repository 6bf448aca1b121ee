//! Parsing OSB requests into checked values, with a 400 that says exactly what is wrong
//! (OSB-GEN-05, OSB-GEN-10). Unknown fields are ignored (OSB-GEN-01).

use std::collections::HashMap;
use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use skybroker_config::{MaintenanceInfo, Plan};
use skybroker_storage::{Operation, OperationKind};

use crate::core::Launched;
use crate::engine::Finished;
use crate::error::ApiError;

/// A JSON object body.
#[derive(Debug)]
pub struct JsonBody(Map<String, Value>);

impl JsonBody {
    /// Parses a body that must be a JSON object. A `Content-Type` other than JSON is refused;
    /// none at all is accepted (OSB-GEN-04).
    /// A body the framework could not read (too large, broken stream) is 413 or 400.
    pub fn read(
        headers: &HeaderMap,
        bytes: Result<Bytes, BytesRejection>,
        limit: usize,
    ) -> Result<Self, ApiError> {
        let bytes = bytes.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest(format!("cannot read the body: {}", rejection.body_text()))
            }
        })?;
        Self::parse(headers, &bytes)
    }

    /// Parses a body that must be a JSON object (see [`JsonBody::read`]).
    pub fn parse(headers: &HeaderMap, bytes: &[u8]) -> Result<Self, ApiError> {
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = content_type.split(';').next().unwrap_or("").trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::BadRequest(format!(
                    "Content-Type must be application/json, not {essence:?}"
                )));
            }
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|err| ApiError::BadRequest(format!("the body is not valid JSON: {err}")))?;
        match value {
            Value::Object(map) => Ok(JsonBody(map)),
            _ => Err(ApiError::BadRequest(
                "the body must be a JSON object".to_owned(),
            )),
        }
    }

    /// A required non-empty string field.
    pub fn required_str(&self, field: &str) -> Result<String, ApiError> {
        self.optional_str(field)?
            .ok_or_else(|| ApiError::BadRequest(format!("{field} is required")))
    }

    /// An optional string field that, when present, is a non-empty string (`null` counts as
    /// absent).
    pub fn optional_str(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(ApiError::BadRequest(format!(
                "{field} must not be an empty string"
            ))),
            Some(_) => Err(ApiError::BadRequest(format!("{field} must be a string"))),
        }
    }

    /// An optional object field (`null` counts as absent).
    pub fn optional_object(&self, field: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(ApiError::BadRequest(format!("{field} must be an object"))),
        }
    }

    /// `maintenance_info.version`; an empty object counts as absent (D-15), other fields are
    /// ignored (OSB-MI-02).
    pub fn maintenance_version(&self) -> Result<Option<String>, ApiError> {
        let Some(info) = self.optional_object("maintenance_info")? else {
            return Ok(None);
        };
        match info.get("version") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if !v.is_empty() => Ok(Some(v.clone())),
            Some(_) => Err(ApiError::BadRequest(
                "maintenance_info.version must be a non-empty string".to_owned(),
            )),
        }
    }
}

/// Query parameters.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string (percent-decoded, OSB-GEN-06).
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// `accepts_incomplete`: absent is false; anything but `true`/`false` is 400.
    pub fn accepts_incomplete(&self) -> Result<bool, ApiError> {
        match self.0.get("accepts_incomplete").map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "accepts_incomplete must be true or false, not {other:?}"
            ))),
        }
    }

    /// A required, non-empty parameter.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.hint(name)?
            .ok_or_else(|| ApiError::BadRequest(format!("query parameter {name} is required")))
    }

    /// An optional parameter that must be non-empty when present.
    pub fn hint(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Err(ApiError::BadRequest(format!(
                "query parameter {name} must not be empty"
            ))),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

/// Turns a path extraction failure into a 400.
pub fn path<T>(path: Result<axum::extract::Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|p| p.0)
        .map_err(|err| ApiError::BadRequest(format!("bad path: {}", err.body_text())))
}

/// OSB-PROV-12, OSB-MI-03, D-05: a requested version must equal the plan's.
pub fn check_maintenance(plan: &Plan, requested: Option<&str>) -> Result<(), ApiError> {
    match (requested, &plan.maintenance_info) {
        (None, _) => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) if v == version => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) => Err(ApiError::MaintenanceInfoConflict(
            format!("maintenance_info.version {v} does not match the plan's version {version}"),
        )),
        (Some(v), None) => Err(ApiError::MaintenanceInfoConflict(format!(
            "maintenance_info.version {v} was sent, but the plan has no maintenance_info"
        ))),
    }
}

/// The error a failed synchronous operation answers with.
pub fn failure_error(operation: &Operation) -> ApiError {
    let Some(failure) = &operation.failure else {
        return ApiError::Internal(format!(
            "operation {} failed without a reason",
            operation.id
        ));
    };
    if failure.client_error {
        return if failure.unprocessable {
            ApiError::Unprocessable(failure.description.clone())
        } else {
            ApiError::BadRequest(failure.description.clone())
        };
    }
    // OSB-ERR-02: the flags only for failed update (both) and deprovision (usable).
    let (instance_usable, update_repeatable) = match operation.kind {
        OperationKind::Update => (
            Some(failure.instance_usable.unwrap_or(true)),
            Some(failure.update_repeatable.unwrap_or(true)),
        ),
        OperationKind::Deprovision => (Some(failure.instance_usable.unwrap_or(true)), None),
        _ => (None, None),
    };
    ApiError::OperationFailed {
        description: failure.description.clone(),
        instance_usable,
        update_repeatable,
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `{"operation": id}` with 202.
pub fn accepted(operation_id: &str) -> Response {
    json(
        StatusCode::ACCEPTED,
        serde_json::json!({ "operation": operation_id }),
    )
}

/// Whether the parameters as sent equal the stored ones (absent and `{}` are the same).
pub fn same_parameters(stored: &Value, sent: &Map<String, Value>) -> bool {
    match stored {
        Value::Object(map) => map == sent,
        Value::Null => sent.is_empty(),
        _ => false,
    }
}

/// The response to a launched operation: 202 with its id when asynchronous; `success`'s
/// response when it finished well (`None` if the record it needs is gone); the failure's error
/// otherwise.
pub fn respond(
    launched: Launched,
    success: impl FnOnce(&Finished) -> Option<Response>,
) -> Result<Response, ApiError> {
    match launched {
        Launched::Async(operation_id) => Ok(accepted(&operation_id)),
        Launched::Finished(done) if done.operation.failure.is_none() => {
            success(&done).ok_or_else(|| failure_error(&done.operation))
        }
        Launched::Finished(done) => Err(failure_error(&done.operation)),
    }
}

/// A deprovision or unbind as read from HTTP.
pub struct DeleteRequest<'a> {
    /// The instance (of the binding).
    pub instance_id: &'a str,
    /// `service_id` from the query.
    pub service_id: &'a str,
    /// `plan_id` from the query.
    pub plan_id: &'a str,
    /// `accepts_incomplete` from the query.
    pub accepts_incomplete: bool,
    /// The originating identity, recorded with the operation.
    pub requested_by: &'a Option<String>,
}

/// Runs `decide` (read the map, decide, commit under the instance lock) and, when it could
/// not proceed on what the map held, catches up with the store and decides once more on what
/// the map then holds: when its commit lost to another replica's change the map had not seen
/// yet (a store conflict), or when it found the resource busy with an operation (which may
/// have finished on another replica already). So a platform repeating on replica B what
/// replica A has just done gets the answer A would give (200, 202, 409, 410), not a 422. What
/// still stops it after catching up is the platform's 422 ConcurrencyError. `decide` is told
/// whether the map has just caught up (so that a miss need not catch up again).
pub async fn decided<F>(
    core: &crate::core::Core,
    decide: impl Fn(bool) -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    match decide(false).await {
        Err(ApiError::StoreConflict | ApiError::Concurrency(_)) => {
            core.state.catch_up().await?;
            decide(true).await
        }
        result => result,
    }
}

/// The answer to a request repeating the operation that runs on a resource: 202 with the
/// same operation while it runs asynchronously and `same` holds (OSB-PROV-08, OSB-UPD-08,
/// OSB-DEPROV-06, OSB-BIND-09, OSB-UNB-05); otherwise `busy`, a 422 ConcurrencyError (a
/// synchronous operation has a request waiting for it and cannot be joined).
pub fn repeat_of(
    core: &crate::core::Core,
    last_operation: Option<&str>,
    same: impl Fn(&Operation) -> bool,
    busy: ApiError,
) -> Result<Response, ApiError> {
    match last_operation.and_then(|id| core.state.operation(id)) {
        Some(op) if !op.sync && op.in_progress() && same(&op) => Ok(accepted(&op.id)),
        _ => Err(busy),
    }
}
