//! What the RDS and RAM handlers share: the parameters of a call, the error answer, and
//! the small formats (request ids, dates, generated ids) every Alibaba Cloud RPC API uses.
//!
//! Error codes and messages follow the public API metadata and error-center texts; the
//! module that answers an error names where its code comes from.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;

/// An error answer in the RPC shape: status, `Code` and `Message` (the endpoint adds
/// `RequestId`, `HostId` and `Recommend`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Code` field, e.g. `InvalidDBInstanceId.NotFound`.
    pub code: String,
    /// The `Message` field.
    pub message: String,
    /// The `AccessDeniedDetail` object of a RAM denial, which the official SDKs surface.
    pub access_denied_detail: Option<Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            // Every caller passes a literal 4xx/5xx; the fallback only guards typos.
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_owned(),
            message: message.into(),
            access_denied_detail: None,
        }
    }

    /// A required parameter is absent: the gateway's own answer, before any product sees
    /// the call.
    pub fn missing(name: &str) -> ApiError {
        ApiError::new(
            400,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    /// A parameter has a value of the wrong form (not a number, not one of the choices).
    pub fn invalid(name: &str) -> ApiError {
        ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid."),
        )
    }

    /// Something failed inside the fake (a database server refused, say); the details go
    /// to the log, the caller gets the generic answer the real service gives.
    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The parameters of one call: the query string and a form body, merged (a body value wins
/// over a query value of the same name; the official SDKs never send both).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parameters from decoded name/value pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params(pairs.into_iter().collect())
    }

    /// A parameter's value; an empty value counts as absent, as it does for the real API.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// A parameter that must be there.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    /// An optional integer parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|value| value.trim().parse().map_err(|_| ApiError::invalid(name)))
            .transpose()
    }
}

/// A fresh request id in the real form (an upper-case UUID).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// Lower-case letters and digits, the alphabet of RDS instance ids.
pub const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Letters and digits, the alphabet of AccessKey ids and secrets.
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Digits, for numeric ids (order ids, user ids).
pub const DIGITS: &[u8] = b"0123456789";

/// `len` characters drawn from `alphabet` (thread RNG: unpredictable enough for a fake's
/// secrets, which only ever guard loopback test servers).
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
        .collect()
}

/// A time in the form every API here uses: `2015-01-23T12:33:18Z`.
pub fn iso8601(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The current time, formatted by [`iso8601`].
pub fn now_iso8601() -> String {
    iso8601(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let params = Params::from_pairs([
            ("A".to_owned(), String::new()),
            ("B".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(params.get("A"), None);
        assert_eq!(params.required("A").unwrap_err().code, "MissingParameter");
        assert_eq!(params.required("B").unwrap(), "x");
    }

    #[test]
    fn integers_are_checked() {
        let params = Params::from_pairs([
            ("N".to_owned(), "20".to_owned()),
            ("X".to_owned(), "2O".to_owned()),
        ]);
        assert_eq!(params.integer("N").unwrap(), Some(20));
        assert_eq!(params.integer("Missing").unwrap(), None);
        assert_eq!(params.integer("X").unwrap_err().code, "InvalidParameter");
    }

    #[test]
    fn dates_have_the_api_form() {
        let at = time::macros::datetime!(2015-01-23 12:33:18 UTC);
        assert_eq!(iso8601(at), "2015-01-23T12:33:18Z");
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let id = random_string(LOWER_ALNUM, 17);
        assert_eq!(id.len(), 17);
        assert!(id.bytes().all(|b| LOWER_ALNUM.contains(&b)));
    }
}
