//! The one place where failures become OSB error responses.
//!
//! Every handler returns `Result<_, ApiError>`; this module maps each variant to its status
//! code and OSB `error` code, following the spec table (checklist §0 and §4):
//!
//! | variant | status | `error` |
//! |---|---|---|
//! | `BadRequest`, `OriginatingIdentity` | 400 | – |
//! | `Unauthorized` | 401 | – |
//! | `NotFound` | 404 | – |
//! | `MethodNotAllowed` | 405 | – |
//! | `Conflict` | 409 | – |
//! | `Gone` | 410 | – |
//! | `VersionMissing`, `VersionUnsupported` | 412 (D-01; 400 when configured) | – |
//! | `BodyTimeout` | 408 | – |
//! | `PayloadTooLarge` | 413 | – |
//! | `Forbidden` | 403 | – |
//! | `BadGateway` | 502 | – |
//! | `AsyncRequired` | 422 | `AsyncRequired` |
//! | `Concurrency`, `StoreConflict` | 422 | `ConcurrencyError` |
//! | `RequiresApp` | 422 | `RequiresApp` |
//! | `MaintenanceInfoConflict` | 422 | `MaintenanceInfoConflict` |
//! | `Unprocessable` | 422 | – |
//! | `OperationFailed` | 500 (+ `instance_usable`/`update_repeatable` where allowed) | – |
//! | `Internal` | 500, generic description; the cause is logged once here | – |
//! | `QueueFull`, `StoreUnavailable` | 503 with `Retry-After` | – |
//!
//! Client errors (4xx) are logged at debug level only; they are the caller's business.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use skybroker_storage::{Operation, OperationKind, StoreError};

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Every way an OSB request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request or invalid data.
    #[error("{0}")]
    BadRequest(String),
    /// A malformed `X-Broker-API-Originating-Identity` (D-02).
    #[error("malformed X-Broker-API-Originating-Identity: {0}")]
    OriginatingIdentity(String),
    /// Missing or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The resource does not exist (or is not retrievable).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not use this (a plan not visible to the calling platform).
    #[error("{0}")]
    Forbidden(String),
    /// An external broker cannot be reached or answered what OSB does not allow.
    #[error("{0}")]
    BadGateway(String),
    /// A route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Exists with different attributes.
    #[error("{0}")]
    Conflict(String),
    /// Deleted, or never existed (DELETE).
    #[error("{0}")]
    Gone(String),
    /// No `X-Broker-API-Version` header (D-01).
    #[error("the X-Broker-API-Version header is required; this broker supports 2.13 to 2.17")]
    VersionMissing {
        /// Answer 400 instead of 412 (configuration).
        as_bad_request: bool,
    },
    /// An API version this broker does not serve.
    #[error("X-Broker-API-Version {0:?} is not supported; use a version from 2.13 to 2.17")]
    VersionUnsupported(String),
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive in time (`server.body_read_timeout_secs`).
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The plan needs `accepts_incomplete=true`.
    #[error("this service plan requires client support for asynchronous operations (accepts_incomplete=true)")]
    AsyncRequired,
    /// Another operation is running on the resource.
    #[error("{0}")]
    Concurrency(String),
    /// Another replica changed the resource between this replica's read and its write (the
    /// store refused the write); `admission::decided` decides once more before a platform
    /// sees it.
    #[error("the resource was changed concurrently; retry the request")]
    StoreConflict,
    /// `app_guid` is required.
    #[error("this service requires an app_guid")]
    RequiresApp,
    /// `maintenance_info.version` does not match the plan.
    #[error("{0}")]
    MaintenanceInfoConflict(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    Unprocessable(String),
    /// A synchronous operation failed at the provider.
    #[error("{description}")]
    OperationFailed {
        /// User-facing reason.
        description: String,
        /// Only for update and deprovision.
        instance_usable: Option<bool>,
        /// Only for update.
        update_repeatable: Option<bool>,
    },
    /// The dispatcher is full and a synchronous request could not be queued (D-11).
    #[error("the broker is busy; retry later")]
    QueueFull,
    /// The store cannot be written.
    #[error("the broker cannot persist state right now; retry later")]
    StoreUnavailable,
    /// A bug or unexpected failure; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The error a failed synchronous operation answers with: a client error as 400 or 422,
    /// anything else as the OSB failure, with the flags the spec allows for its kind
    /// (OSB-ERR-02: both for an update, `instance_usable` for a deprovision).
    pub fn from_failed(operation: &Operation) -> Self {
        let Some(failure) = &operation.failure else {
            return ApiError::Internal(format!(
                "operation {} failed without a reason",
                operation.id
            ));
        };
        if failure.unreachable {
            return ApiError::BadGateway(failure.description.clone());
        }
        if failure.cancelled {
            return ApiError::Concurrency(failure.description.clone());
        }
        if failure.client_error {
            return if failure.unprocessable {
                ApiError::Unprocessable(failure.description.clone())
            } else {
                ApiError::BadRequest(failure.description.clone())
            };
        }
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

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::OriginatingIdentity(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::VersionMissing {
                as_bad_request: true,
            } => StatusCode::BAD_REQUEST,
            ApiError::VersionMissing { .. } | ApiError::VersionUnsupported(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::AsyncRequired
            | ApiError::Concurrency(_)
            | ApiError::StoreConflict
            | ApiError::RequiresApp
            | ApiError::MaintenanceInfoConflict(_)
            | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::OperationFailed { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::QueueFull | ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OSB `error` code; `None` where the spec defines none.
    pub fn osb_code(&self) -> Option<&'static str> {
        match self {
            ApiError::AsyncRequired => Some("AsyncRequired"),
            ApiError::Concurrency(_) | ApiError::StoreConflict => Some("ConcurrencyError"),
            ApiError::RequiresApp => Some("RequiresApp"),
            ApiError::MaintenanceInfoConflict(_) => Some("MaintenanceInfoConflict"),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        if let Some(code) = self.osb_code() {
            body.insert("error".into(), json!(code));
        }
        let description = match self {
            ApiError::Internal(_) => "internal error; the broker logged the cause".to_owned(),
            other => other.to_string(),
        };
        body.insert("description".into(), json!(description));
        if let ApiError::OperationFailed {
            instance_usable,
            update_repeatable,
            ..
        } = self
        {
            if let Some(usable) = instance_usable {
                body.insert("instance_usable".into(), json!(usable));
            }
            if let Some(repeatable) = update_repeatable {
                body.insert("update_repeatable".into(), json!(repeatable));
            }
        }
        Value::Object(body)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            // Another replica changed the resource between our read and our write.
            StoreError::Conflict { .. } => ApiError::StoreConflict,
            StoreError::Unavailable(message) => {
                log::warn!("store unavailable: {message}");
                ApiError::StoreUnavailable
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The one place a 5xx cause is logged.
            log::error!("request failed with {status}: {self}");
        } else {
            log::debug!("request rejected with {status}: {self}");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"skybroker\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // OSB-ERR-03: the four codes, all 422.
    #[test]
    fn osb_codes_come_with_422() {
        let cases = [
            (ApiError::AsyncRequired, "AsyncRequired"),
            (ApiError::Concurrency("x".into()), "ConcurrencyError"),
            (ApiError::RequiresApp, "RequiresApp"),
            (
                ApiError::MaintenanceInfoConflict("x".into()),
                "MaintenanceInfoConflict",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(error.body()["error"], code);
        }
    }

    // OSB-ERR-02: instance_usable/update_repeatable only on failed operations.
    #[test]
    fn failure_flags_appear_only_on_operation_failures() {
        let conflict = ApiError::Conflict("differs".into()).body();
        assert!(conflict.get("instance_usable").is_none() && conflict.get("error").is_none());
        let failed = ApiError::OperationFailed {
            description: "no".into(),
            instance_usable: Some(true),
            update_repeatable: Some(false),
        }
        .body();
        assert_eq!(failed["instance_usable"], true);
        assert_eq!(failed["update_repeatable"], false);
    }

    /// Issue #16: a synchronous create a concurrent delete stopped (D-17) answers 422
    /// ConcurrencyError, not 500: the platform's request met another operation.
    #[test]
    fn a_create_cancelled_by_a_delete_is_a_concurrency_error() {
        let mut operation: Operation = serde_json::from_value(json!({
            "id": "op-1", "kind": "bind", "instance_id": "i-1", "binding_id": "b-1",
            "state": "failed", "sync": true, "created_at": 1, "deadline": 2,
        }))
        .unwrap();
        operation.failure = Some(skybroker_storage::Failure::new("stopped"));
        assert_eq!(
            ApiError::from_failed(&operation).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        operation.failure = Some(skybroker_storage::Failure::new("stopped").cancelled());
        let err = ApiError::from_failed(&operation);
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.body()["error"], "ConcurrencyError");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let body = ApiError::Internal("password=hunter2 in /secret/path".into()).body();
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_version_is_412_unless_configured_otherwise() {
        let strict = ApiError::VersionMissing {
            as_bad_request: false,
        };
        assert_eq!(strict.status(), StatusCode::PRECONDITION_FAILED);
        let lenient = ApiError::VersionMissing {
            as_bad_request: true,
        };
        assert_eq!(lenient.status(), StatusCode::BAD_REQUEST);
    }
}
