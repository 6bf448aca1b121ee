//! Parsing OSB requests into checked values, with a 400 that says exactly what is wrong
//! (OSB-GEN-05, OSB-GEN-10). Unknown fields are ignored (OSB-GEN-01).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use crate::admission::{Answer, Caller};
use crate::error::ApiError;

/// Reads the body of `request` whole, within `deadline` from now and `limit` bytes, and hands
/// the request on with the body in memory (handlers read it at once anyway). A body that
/// trickles in slower than that is 408: hyper bounds only how long the headers take, and a
/// body read without a deadline would let one slow client hold a task as long as it likes.
/// A request without a body passes untouched.
///
/// # Errors
/// 408 past the deadline, 413 above the limit, 400 for a body the connection broke off.
pub async fn read_body(
    request: Request,
    limit: usize,
    deadline: Duration,
) -> Result<Request, ApiError> {
    if request.body().size_hint().exact() == Some(0) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await;
    match collected {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(err)) if err.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge(limit)),
        Ok(Err(err)) => Err(ApiError::BadRequest(format!("cannot read the body: {err}"))),
        Err(_elapsed) => Err(ApiError::BodyTimeout(deadline.as_secs())),
    }
}

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

    /// A field as sent.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
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

/// The most characters an instance or binding id may have (OSB-GEN-09's 255; platforms send
/// GUIDs of 36).
pub const MAX_ID_CHARS: usize = 255;

/// The ids of a route: checked before anything else looks at them.
pub trait PathIds {
    /// Refuses ids no platform sends: longer than [`MAX_ID_CHARS`], or with control
    /// characters (a NUL, a newline) that would end up in store keys and log lines.
    fn check(&self) -> Result<(), ApiError>;
}

fn check_id(name: &str, id: &str) -> Result<(), ApiError> {
    if id.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::BadRequest(format!(
            "{name} is longer than {MAX_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(())
}

impl PathIds for String {
    fn check(&self) -> Result<(), ApiError> {
        check_id("instance_id", self)
    }
}

impl PathIds for (String, String) {
    fn check(&self) -> Result<(), ApiError> {
        check_id("instance_id", &self.0)?;
        check_id("binding_id", &self.1)
    }
}

/// The route's ids, checked ([`PathIds`]); a path extraction failure is a 400.
pub fn path<T: PathIds>(
    path: Result<axum::extract::Path<T>, PathRejection>,
) -> Result<T, ApiError> {
    let ids = path
        .map(|p| p.0)
        .map_err(|err| ApiError::BadRequest(format!("bad path: {}", err.body_text())))?;
    ids.check()?;
    Ok(ids)
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

/// The response to an admitted request: `existing` and `done` render the records with their
/// status (`done_status`: 201 for a create, 200 otherwise), an accepted operation is 202
/// with its id.
pub fn render<T>(
    answer: Answer<T>,
    done_status: StatusCode,
    body: impl FnOnce(&T) -> Value,
) -> Response {
    match answer {
        Answer::Existing(record) => json(StatusCode::OK, body(&record)),
        Answer::Done(record) => json(done_status, body(&record)),
        Answer::Accepted(operation_id) => accepted(&operation_id),
    }
}

/// The caller of a changing request: `accepts_incomplete` from the query (400 unless
/// `true`/`false`) and the originating identity.
pub fn caller(
    query: &Query,
    requested_by: Option<String>,
    platform: Option<&str>,
) -> Result<Caller, ApiError> {
    Ok(Caller {
        accepts_incomplete: query.accepts_incomplete()?,
        requested_by,
        platform: platform.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_no_platform_sends_are_refused() {
        assert!("5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f0001"
            .to_owned()
            .check()
            .is_ok());
        assert!(
            "a/b c ../..".to_owned().check().is_ok(),
            "reserved characters round-trip"
        );
        assert!("é".repeat(255).check().is_ok(), "characters, not bytes");
        for bad in ["x".repeat(256), "a\0b".to_owned(), "line\nbreak".to_owned()] {
            assert!(
                matches!(bad.check(), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let binding = ("i-1".to_owned(), "b\u{7f}".to_owned());
        match binding.check() {
            Err(ApiError::BadRequest(message)) => assert!(message.starts_with("binding_id")),
            other => panic!("{other:?}"),
        }
    }
}

/// Hostile input (issue #16): bodies, queries and ids of any shape parse into values or
/// 400s, never a panic, and only what the rules allow is accepted.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn bodies_parse_to_objects_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            match JsonBody::parse(&HeaderMap::new(), &bytes) {
                Ok(body) => {
                    let value: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert!(value.is_object());
                    // Field readers answer a value or a 400, whatever the field holds.
                    for field in ["service_id", "plan_id", "parameters", "context"] {
                        let _ = body.optional_str(field);
                        let _ = body.optional_object(field);
                    }
                    let _ = body.maintenance_version();
                }
                Err(err) => prop_assert!(matches!(err, ApiError::BadRequest(_))),
            }
        }

        #[test]
        fn json_objects_of_any_shape_are_read_field_by_field(
            fields in proptest::collection::btree_map("[a-z_]{1,12}", any::<Option<i32>>(), 0..8),
            text in ".{0,20}",
        ) {
            let mut object = Map::new();
            for (key, value) in fields {
                object.insert(key, value.map_or(Value::String(text.clone()), Value::from));
            }
            let bytes = serde_json::to_vec(&Value::Object(object)).unwrap();
            let body = JsonBody::parse(&HeaderMap::new(), &bytes).unwrap();
            for field in ["service_id", "plan_id", "organization_guid"] {
                match body.optional_str(field) {
                    Ok(Some(value)) => prop_assert!(!value.is_empty()),
                    Ok(None) => {}
                    Err(err) => prop_assert!(matches!(err, ApiError::BadRequest(_))),
                }
            }
        }

        #[test]
        fn queries_parse_and_only_true_or_false_is_accepted(raw in ".{0,80}") {
            let query = Query::parse(Some(&raw));
            match query.accepts_incomplete() {
                Ok(_) => {
                    let value = query.0.get("accepts_incomplete").map(String::as_str);
                    prop_assert!(matches!(value, None | Some("true") | Some("false")));
                }
                Err(err) => prop_assert!(matches!(err, ApiError::BadRequest(_))),
            }
            if let Ok(Some(hint)) = query.hint("service_id") {
                prop_assert!(!hint.is_empty());
            }
        }

        #[test]
        fn ids_are_accepted_exactly_when_a_platform_could_send_them(id in "\\PC{0,300}|.{0,40}") {
            let allowed = id.chars().count() <= MAX_ID_CHARS && !id.chars().any(char::is_control);
            prop_assert_eq!(id.clone().check().is_ok(), allowed);
        }
    }
}
