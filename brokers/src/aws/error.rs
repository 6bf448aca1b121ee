//! AWS errors, classified once and mapped to [`BrokerError`] once.
//!
//! Why here: every AWS call fails the same few ways (throttled, unreachable, refused, not
//! found, already there), but each service spells them with its own error codes. The calls in
//! `s3.rs` and `rds.rs` ask [`classify`] only when they handle a case themselves ("already
//! exists" means adopt, "not found" on a delete means gone) and hand everything else to
//! [`broker_error`], so the OSB meaning of an AWS error is decided in one table:
//!
//! | AWS says | [`Kind`] | [`BrokerError`] |
//! |---|---|---|
//! | throttling codes, 429, 5xx, timeouts, connection failures | `Throttled`, `Unavailable` | `Transient` (the engine retries with back-off; the SDK already retried per its retry config) |
//! | a resource in a transitional state (`InvalidDBInstanceState`, `OperationAborted`, ...) | `Busy` | `Transient` |
//! | bad or expired credentials; a role that cannot be assumed, no credentials found | `Credentials` | `Unauthenticated` |
//! | the credential source (STS, instance metadata) timed out | `Unavailable` | `Transient` |
//! | permission denied | `Denied` | `Failed`, naming the call so the operator can fix the policy |
//! | quotas and capacity | `Quota` | `Failed` |
//! | invalid values | `Invalid` | `InvalidParameters` |
//! | the resource does not exist | `NotFound` | `NotFound` |
//! | anything else | `Other` | `Failed` with AWS's code and message |
//!
//! AWS error messages never contain the caller's secrets, so they are shown as they are.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::BrokerError;

/// What an AWS error means to a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The resource exists already (and is the caller's: adopt it).
    AlreadyExists,
    /// The resource does not exist.
    NotFound,
    /// Too many requests: try later.
    Throttled,
    /// AWS could not be reached or failed (timeouts, connection errors, 5xx).
    Unavailable,
    /// The resource is busy with another change: try later.
    Busy,
    /// The credentials are invalid or expired.
    Credentials,
    /// The credentials lack a permission.
    Denied,
    /// A quota or the capacity is exhausted.
    Quota,
    /// A value was refused.
    Invalid,
    /// Anything else.
    Other,
}

const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
];
const CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "UnrecognizedClientException",
    "AuthFailure",
    "MissingAuthenticationToken",
];
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AllAccessDisabled",
    "AccountProblem",
    "OptInRequired",
];
const QUOTA: &[&str] = &[
    "LimitExceeded",
    "TooManyBuckets",
    "InstanceQuotaExceeded",
    "StorageQuotaExceeded",
    "SnapshotQuotaExceeded",
    "InsufficientDBInstanceCapacity",
    "InsufficientStorageClusterCapacity",
];
const NOT_FOUND: &[&str] = &[
    "NotFound",
    "NoSuchBucket",
    "NoSuchEntity",
    "NoSuchKey",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
];
const ALREADY_EXISTS: &[&str] = &[
    "BucketAlreadyOwnedByYou",
    "EntityAlreadyExists",
    "DBInstanceAlreadyExists",
    "DBInstanceAlreadyExistsFault",
    "DBSnapshotAlreadyExists",
];
const BUSY: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "OperationAborted",
    "ConcurrentModification",
    "ConflictingDomainExists",
];
const INVALID: &[&str] = &[
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "ValidationError",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidRequest",
    "InvalidInput",
    "MalformedPolicyDocument",
    "MalformedXML",
    "StorageTypeNotSupported",
    "StorageTypeNotSupportedFault",
    "InvalidSubnet",
    "InvalidVPCNetworkStateFault",
    "DBSubnetGroupNotFoundFault",
    "DBParameterGroupNotFound",
    "KMSKeyNotAccessibleFault",
];

/// Classifies an SDK error.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Kind
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // Credentials are resolved before a request is sent, so their failures arrive as
    // dispatch or construction failures; they are the broker's configuration (a role it may
    // not assume, no source of credentials), not AWS being away, unless the source timed out.
    if let Some(credentials) = credentials_error(err) {
        return match credentials {
            CredentialsError::ProviderTimedOut(_) => Kind::Unavailable,
            _ => Kind::Credentials,
        };
    }
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Kind::Unavailable
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            classify_code(service.err().code(), status)
        }
        // ConstructionFailure, and variants added later.
        _ => Kind::Other,
    }
}

/// The credentials failure somewhere in `err`'s causes, if it is one.
fn credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CredentialsError> {
    let mut cause = err.source();
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

/// Classifies an AWS error code (when the response had one) and HTTP status.
fn classify_code(code: Option<&str>, status: u16) -> Kind {
    let is = |list: &[&str]| code.is_some_and(|code| list.contains(&code));
    if is(THROTTLED) || status == 429 {
        Kind::Throttled
    } else if is(CREDENTIALS) {
        Kind::Credentials
    } else if is(DENIED) {
        Kind::Denied
    } else if is(QUOTA) {
        Kind::Quota
    } else if is(ALREADY_EXISTS) {
        Kind::AlreadyExists
    } else if is(NOT_FOUND) {
        Kind::NotFound
    } else if is(BUSY) {
        Kind::Busy
    } else if is(INVALID) {
        Kind::Invalid
    } else if status >= 500 {
        Kind::Unavailable
    } else if code.is_none() && status == 404 {
        // HEAD requests carry no body, so no code.
        Kind::NotFound
    } else if code.is_none() && status == 403 {
        Kind::Denied
    } else {
        Kind::Other
    }
}

/// An error and its causes, `: `-separated: the Display texts only (`Debug` of SDK errors
/// carries whole requests and responses, which have no place in a message).
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The error for a failed call; `call` names it for the reader, e.g. `S3 CreateBucket
/// skybroker-1a2b…`.
pub fn broker_error<E>(call: &str, err: SdkError<E, HttpResponse>) -> BrokerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = classify(&err);
    let what = match (&err, err.code()) {
        (SdkError::ServiceError(_), Some(code)) => {
            format!(
                "{call}: {code}: {}",
                err.message().unwrap_or("(no message)")
            )
        }
        (SdkError::ServiceError(service), None) => {
            format!("{call}: HTTP {}", service.raw().status().as_u16())
        }
        // Connection trouble: the chain of causes says what happened (refused, timed out...).
        _ => format!("{call}: {}", causes(&err)),
    };
    match kind {
        Kind::Throttled | Kind::Unavailable | Kind::Busy => {
            BrokerError::Transient(format!("AWS unavailable or busy: {what}"))
        }
        Kind::Credentials => BrokerError::Unauthenticated(what),
        Kind::Denied => BrokerError::Failed(format!(
            "AWS denied the broker's credentials a permission (see the IAM policy in the README): {what}"
        )),
        Kind::Quota => BrokerError::Failed(format!("AWS quota or capacity exhausted: {what}")),
        Kind::Invalid => BrokerError::InvalidParameters(format!("AWS refused a value: {what}")),
        Kind::NotFound => BrokerError::NotFound(what),
        Kind::AlreadyExists | Kind::Other => match err {
            SdkError::ServiceError(_) => BrokerError::Failed(format!("AWS refused: {what}")),
            other => BrokerError::Provider {
                broker: super::BROKER,
                source: Box::new(other),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_classified() {
        for (code, status, kind) in [
            (Some("Throttling"), 400, Kind::Throttled),
            (Some("SlowDown"), 503, Kind::Throttled),
            (None, 429, Kind::Throttled),
            (Some("InternalError"), 500, Kind::Unavailable),
            (Some("InvalidClientTokenId"), 403, Kind::Credentials),
            (Some("AccessDenied"), 403, Kind::Denied),
            (None, 403, Kind::Denied),
            (Some("LimitExceeded"), 409, Kind::Quota),
            (Some("NoSuchBucket"), 404, Kind::NotFound),
            (None, 404, Kind::NotFound),
            (Some("DBInstanceNotFound"), 404, Kind::NotFound),
            (Some("EntityAlreadyExists"), 409, Kind::AlreadyExists),
            (Some("BucketAlreadyOwnedByYou"), 409, Kind::AlreadyExists),
            // Another account's bucket is not ours to adopt.
            (Some("BucketAlreadyExists"), 409, Kind::Other),
            (Some("InvalidDBInstanceState"), 400, Kind::Busy),
            (Some("InvalidParameterValue"), 400, Kind::Invalid),
            (Some("SomethingNew"), 400, Kind::Other),
        ] {
            assert_eq!(classify_code(code, status), kind, "{code:?} {status}");
        }
    }
}
