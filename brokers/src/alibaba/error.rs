//! Alibaba Cloud errors, classified once and mapped to [`BrokerError`] once.
//!
//! Why here: RDS, RAM and OSS fail the same few ways (throttled, unavailable, busy, refused,
//! not found) but spell them with their own codes. [`AlibabaError::kind`] reads the code (and,
//! without one, the HTTP status) through the one table below; the client's retries, the
//! plugins' special cases ("not found" on a delete means gone) and the OSB mapping all ask
//! it, so the meaning of a code is decided in one place:
//!
//! | Alibaba says | [`Kind`] | [`BrokerError`] |
//! |---|---|---|
//! | `Throttling`, `Throttling.*`, `*QpsLimitExceeded`, HTTP 429 | `Throttled` | `Transient` (the client retried already) |
//! | `ServiceUnavailable`, `InternalError`, other 5xx, `SignatureNonceUsed`, no answer, an unreadable answer | `Unavailable` | `Transient` (the client retried what it could) |
//! | a resource in the wrong state for now (`IncorrectDBInstanceState`, `OperationDenied.DBInstanceStatus`, `OperationAborted`, ...) | `Busy` | `Transient` (not retried within the call: states change in minutes) |
//! | bad key, signature, token or clock (`InvalidAccessKeyId*`, `SignatureDoesNotMatch`, `IncompleteSignature`, `InvalidTimeStamp.*`, `RequestTimeTooSkewed`, `MissingSecurityToken`, `InvalidSecurityToken*`, `SecurityTokenExpired`) | `Credentials` | `Unauthenticated` |
//! | temporary credentials could not be had ([`AlibabaError::Credentials`]: STS refused, the token file is unreadable, no ECS metadata) | `Credentials`, or `Unavailable` when it may pass | `Unauthenticated` or `Transient` |
//! | the key lacks a permission (`Forbidden*`, `NoPermission`, `AccessDenied`, ...) | `Denied` | `Failed`, saying to fix the key's RAM policy |
//! | quota, stock or balance exhausted (`QuotaExceeded*`, `LimitExceeded*`, `*.NotEnough`, `InsufficientBalance`, `TooManyBuckets`) | `Quota` | `Failed` |
//! | the resource is there already (`EntityAlreadyExists*`, `*.Duplicate`) | `AlreadyExists` | `Failed` (callers that adopt ask first) |
//! | the resource does not exist (`*.NotFound`, `EntityNotExist.*`, `NoSuchBucket`, `NoSuchKey`, ...; HTTP 404 without code) | `NotFound` | `NotFound` |
//! | a value was refused (`InvalidParameter*`, `MissingParameter*`, `*.Malformed`, `InvalidArgument`, ...) | `Invalid` | `InvalidParameters` |
//! | anything else | `Other` | `Failed` with service, call, code, message and request id (a bad client configuration: `Provider`) |
//!
//! A failed credential fetch is never read as the call's own answer: STS saying
//! `EntityNotExist.Role` must not make a delete believe its bucket is gone, so such errors
//! are wrapped in [`AlibabaError::Credentials`] before anything classifies them.
//!
//! Every message carries the provider's request id, which Alibaba's support needs to trace a
//! call. Should a message repeat the value of a password-like parameter, the client replaces
//! it with `******` before the message goes anywhere.

use crate::BrokerError;

/// Why a call to Alibaba Cloud failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlibabaError {
    /// The service answered with an error.
    #[error(
        "{service} {action} failed: {what}: {message} (HTTP {status}, request id {id})",
        what = code_or_status(code, *status),
        id = or_none(request_id)
    )]
    Api {
        /// `RDS`, `RAM` or `OSS`.
        service: &'static str,
        /// The RPC action, or the OSS method and resource (`PUT bucket?acl`).
        action: String,
        /// The HTTP status.
        status: u16,
        /// Alibaba's error code (`Throttling.User`, `NoSuchBucket`...); empty when the answer
        /// had none (a `HEAD`, a proxy's error page).
        code: String,
        /// Alibaba's message.
        message: String,
        /// The provider's request id; empty if the answer had none.
        request_id: String,
    },
    /// The request did not get an answer (after retries).
    #[error("{service} {action}: no answer: {}", causes(source))]
    Transport {
        /// `RDS`, `RAM` or `OSS`.
        service: &'static str,
        /// The RPC action, or the OSS method and resource.
        action: String,
        /// The cause (connection refused, timed out...); its URL is removed, since RPC
        /// query strings carry the call's parameters.
        source: reqwest::Error,
    },
    /// An answer we could not read.
    #[error(
        "{service} {action}: unreadable answer: {detail} (request id {id})",
        id = or_none(request_id)
    )]
    Decode {
        /// `RDS`, `RAM` or `OSS`.
        service: &'static str,
        /// The RPC action, or the OSS method and resource.
        action: String,
        /// What was wrong with it.
        detail: String,
        /// The provider's request id, if the answer had one.
        request_id: String,
    },
    /// The client's configuration is unusable (bad endpoint URL...).
    #[error("Alibaba Cloud client configuration: {0}")]
    Config(String),
    /// Temporary credentials could not be had, so the call was not sent.
    #[error("no Alibaba Cloud credentials from {from}: {detail}")]
    Credentials {
        /// Where they were asked for: `STS AssumeRole`, `ECS instance metadata`...
        from: &'static str,
        /// What went wrong, with the service's code and request id when it answered.
        detail: String,
        /// Whether asking again later may succeed (STS throttled or down, metadata service
        /// unreachable).
        transient: bool,
    },
}

/// What an Alibaba Cloud error means to the broker: the rows of the module's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Too many requests: try again shortly.
    Throttled,
    /// Alibaba could not be reached or failed (5xx, timeouts): try again shortly.
    Unavailable,
    /// The resource is in a state that does not allow the call now: try again later.
    Busy,
    /// The AccessKey, the signature or the clock is wrong.
    Credentials,
    /// The AccessKey lacks a permission.
    Denied,
    /// A quota, the stock or the account balance is exhausted.
    Quota,
    /// The resource exists already.
    AlreadyExists,
    /// The resource does not exist.
    NotFound,
    /// A parameter value was refused.
    Invalid,
    /// Anything else.
    Other,
}

/// Codes matched exactly, first table wins (so `InvalidAccessKeyId.NotFound` is a credentials
/// problem, not a missing resource, and `InvalidAction.NotFound` is a bug, not a resource).
const EXACT: &[(&str, Kind)] = &[
    // Credentials, signature, clock.
    ("InvalidAccessKeyId", Kind::Credentials),
    ("InvalidAccessKeyId.NotFound", Kind::Credentials),
    ("InvalidAccessKeyId.Inactive", Kind::Credentials),
    ("SignatureDoesNotMatch", Kind::Credentials),
    ("IncompleteSignature", Kind::Credentials),
    ("InvalidTimeStamp", Kind::Credentials),
    ("IllegalTimestamp", Kind::Credentials),
    ("RequestTimeTooSkewed", Kind::Credentials),
    ("Forbidden.AccessKeyDisabled", Kind::Credentials),
    ("InvalidSecurityToken", Kind::Credentials),
    ("MissingSecurityToken", Kind::Credentials),
    ("SecurityTokenExpired", Kind::Credentials),
    // Not resources: wrong API name or version, a bug in the caller.
    ("InvalidAction.NotFound", Kind::Other),
    ("InvalidVersion", Kind::Other),
    ("InvalidAction", Kind::Other),
    // RDS answers 404 with this for a missing instance although it starts "Forbidden.".
    ("Forbidden.InstanceNotFound", Kind::NotFound),
    // A missing network or place named in a create is a bad parameter, not a missing
    // resource of the caller's.
    ("InvalidVPCId.NotFound", Kind::Invalid),
    ("InvalidVpcId.NotFound", Kind::Invalid),
    ("InvalidVSwitchId.NotFound", Kind::Invalid),
    ("InvalidZoneId.NotFound", Kind::Invalid),
    ("InvalidRegionId.NotFound", Kind::Invalid),
    ("InvalidSecurityGroupId.NotFound", Kind::Invalid),
    // A repeated nonce is cured by the next attempt, which signs with a new one.
    ("SignatureNonceUsed", Kind::Unavailable),
    ("ServiceUnavailable", Kind::Unavailable),
    ("InternalError", Kind::Unavailable),
    ("InternalFailure", Kind::Unavailable),
    ("InternalServerError", Kind::Unavailable),
    ("UnknownError", Kind::Unavailable),
    ("ServiceTimeout", Kind::Unavailable),
    ("RequestTimeout", Kind::Unavailable),
    ("Throttling", Kind::Throttled),
    ("QpsLimitExceeded", Kind::Throttled),
    ("TotalQpsLimitExceeded", Kind::Throttled),
    ("MetaOperationQpsLimitExceeded", Kind::Throttled),
    ("ActiveRequestLimitExceeded", Kind::Throttled),
    ("UploadTrafficRateLimitExceeded", Kind::Throttled),
    ("DownloadTrafficRateLimitExceeded", Kind::Throttled),
    // RDS: the instance is creating, restarting, changing class...; OSS: a conflicting
    // operation on the bucket is in progress.
    ("IncorrectDBInstanceState", Kind::Busy),
    ("IncorrectDBState", Kind::Busy),
    ("IncorrectDBStatus", Kind::Busy),
    ("IncorrectAccountStatus", Kind::Busy),
    ("OperationDenied.DBInstanceStatus", Kind::Busy),
    ("OperationDenied.DBStatus", Kind::Busy),
    ("OperationDenied.AccountStatus", Kind::Busy),
    ("TaskConflict", Kind::Busy),
    ("OperationAborted", Kind::Busy),
    ("ConcurrentUpdateOnSameObject", Kind::Busy),
    ("NoPermission", Kind::Denied),
    ("AccessDenied", Kind::Denied),
    ("Forbidden", Kind::Denied),
    ("Unauthorized", Kind::Denied),
    ("ActionUnauthorized", Kind::Denied),
    ("InsufficientBalance", Kind::Quota),
    ("TooManyBuckets", Kind::Quota),
    ("NoSuchBucket", Kind::NotFound),
    ("NoSuchKey", Kind::NotFound),
    ("NoSuchUpload", Kind::NotFound),
    ("NoSuchLifecycle", Kind::NotFound),
    ("NoSuchBucketPolicy", Kind::NotFound),
    ("NoSuchCORSConfiguration", Kind::NotFound),
    ("MissingParameter", Kind::Invalid),
    ("InvalidParameter", Kind::Invalid),
    ("InvalidArgument", Kind::Invalid),
    ("InvalidBucketName", Kind::Invalid),
    ("InvalidObjectName", Kind::Invalid),
    ("MalformedXML", Kind::Invalid),
    ("InvalidPolicyDocument", Kind::Invalid),
    ("UnsupportedParameter", Kind::Invalid),
];

/// Code shapes, tried in order after [`EXACT`]: (prefix, suffix, kind); empty means any.
const SHAPES: &[(&str, &str, Kind)] = &[
    ("InvalidTimeStamp.", "", Kind::Credentials),
    ("InvalidSecurityToken.", "", Kind::Credentials),
    ("Throttling.", "", Kind::Throttled),
    ("Forbidden.", "", Kind::Denied),
    ("Forbbiden.", "", Kind::Denied), // sic: some RDS actions spell it so.
    ("QuotaExceed", "", Kind::Quota), // QuotaExceeded, QuotaExceeded.*, QuotaExceed.*
    ("LimitExceeded", "", Kind::Quota), // RAM: LimitExceeded.User.AccessKey...
    ("", ".NotEnough", Kind::Quota),  // RDS stock: *.NotEnough
    ("", ".QuotaExceeded", Kind::Quota),
    ("EntityAlreadyExists", "", Kind::AlreadyExists),
    ("", ".Duplicate", Kind::AlreadyExists),
    ("EntityNotExist", "", Kind::NotFound),
    ("", ".NotFound", Kind::NotFound),
    ("", ".NotExist", Kind::NotFound),
    ("InvalidParameter", "", Kind::Invalid),
    ("MissingParameter", "", Kind::Invalid),
    ("", ".Malformed", Kind::Invalid),
    ("", ".Invalid", Kind::Invalid),
];

/// Classifies an error code (empty if the answer had none) and HTTP status.
pub fn classify(code: &str, status: u16) -> Kind {
    if let Some((_, kind)) = EXACT.iter().find(|(exact, _)| *exact == code) {
        return *kind;
    }
    let shape = SHAPES.iter().find(|(prefix, suffix, _)| {
        !code.is_empty() && code.starts_with(prefix) && code.ends_with(suffix)
    });
    match (shape, status) {
        (Some((_, _, kind)), _) => *kind,
        (None, 429) => Kind::Throttled,
        (None, 500..) => Kind::Unavailable,
        // HEAD answers have no body, so no code.
        (None, 404) if code.is_empty() => Kind::NotFound,
        (None, 403) if code.is_empty() => Kind::Denied,
        _ => Kind::Other,
    }
}

impl AlibabaError {
    /// Alibaba's error code, for errors the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AlibabaError::Api { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    /// The provider's request id, when there was an answer that carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            AlibabaError::Api { request_id, .. } | AlibabaError::Decode { request_id, .. }
                if !request_id.is_empty() =>
            {
                Some(request_id)
            }
            _ => None,
        }
    }

    /// What the error means (the module's table).
    pub fn kind(&self) -> Kind {
        match self {
            AlibabaError::Api { code, status, .. } => classify(code, *status),
            AlibabaError::Transport { .. } => Kind::Unavailable,
            // A cut-off or garbled answer is as likely to pass as a 5xx.
            AlibabaError::Decode { .. } => Kind::Unavailable,
            AlibabaError::Config(_) => Kind::Other,
            AlibabaError::Credentials {
                transient: true, ..
            } => Kind::Unavailable,
            AlibabaError::Credentials { .. } => Kind::Credentials,
        }
    }

    /// A failure of the call that fetched temporary credentials, wrapped so that it is not
    /// taken for an answer about the resource the caller wanted.
    pub fn credentials(from: &'static str, err: AlibabaError) -> AlibabaError {
        AlibabaError::Credentials {
            from,
            transient: err.is_transient(),
            detail: err.to_string(),
        }
    }

    /// Whether repeating the call later may succeed (throttled, unavailable, busy).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            Kind::Throttled | Kind::Unavailable | Kind::Busy
        )
    }

    /// Whether the resource the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == Kind::NotFound
    }

    /// Whether the resource the call would create exists already.
    pub fn is_already_exists(&self) -> bool {
        self.kind() == Kind::AlreadyExists
    }

    /// Whether the client should repeat the call right away (after a back-off): throttling
    /// and unavailability pass in seconds; a busy resource takes minutes, so that is left to
    /// the engine's polling.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            // A request that could not be built will not build next time either.
            AlibabaError::Transport { source, .. } => !source.is_builder(),
            // The fetch retried what it could already.
            AlibabaError::Credentials { .. } => false,
            _ => matches!(self.kind(), Kind::Throttled | Kind::Unavailable),
        }
    }
}

impl From<AlibabaError> for BrokerError {
    fn from(err: AlibabaError) -> BrokerError {
        if let AlibabaError::Credentials { transient, .. } = &err {
            return if *transient {
                BrokerError::Transient(err.to_string())
            } else {
                BrokerError::Unauthenticated(format!(
                    "{err} (check the broker's credential settings and the role's trust policy)"
                ))
            };
        }
        match err.kind() {
            Kind::Throttled | Kind::Unavailable | Kind::Busy => {
                BrokerError::Transient(format!("Alibaba Cloud unavailable or busy: {err}"))
            }
            Kind::Credentials => BrokerError::Unauthenticated(format!(
                "Alibaba Cloud refused the broker's AccessKey (check the key, and the broker host's clock): {err}"
            )),
            Kind::Denied => BrokerError::Failed(format!(
                "Alibaba Cloud denied the broker's AccessKey a permission (grant it in the key's RAM policy): {err}"
            )),
            Kind::Quota => BrokerError::Failed(format!(
                "Alibaba Cloud quota, stock or balance exhausted (raise the quota or pick another plan or zone): {err}"
            )),
            Kind::Invalid => {
                BrokerError::InvalidParameters(format!("Alibaba Cloud refused a value: {err}"))
            }
            Kind::NotFound => BrokerError::NotFound(err.to_string()),
            Kind::AlreadyExists | Kind::Other => match err {
                AlibabaError::Api { .. } => {
                    BrokerError::Failed(format!("Alibaba Cloud refused: {err}"))
                }
                other => BrokerError::Provider {
                    broker: "alibaba",
                    source: Box::new(other),
                },
            },
        }
    }
}

/// The code, or `HTTP <status>` for answers without one.
fn code_or_status(code: &str, status: u16) -> String {
    if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_owned()
    }
}

fn or_none(request_id: &str) -> &str {
    if request_id.is_empty() {
        "(none)"
    } else {
        request_id
    }
}

/// An error and its causes, `: `-separated (a reqwest error alone says only "error sending
/// request"; the causes say refused, timed out, DNS...).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, status: u16) -> AlibabaError {
        AlibabaError::Api {
            service: "RDS",
            action: "DescribeDBInstances".into(),
            status,
            code: code.into(),
            message: "the message".into(),
            request_id: "5E4C2F3A-0000-4000-8000-000000000001".into(),
        }
    }

    #[test]
    fn the_table() {
        for (code, status, kind) in [
            ("Throttling", 400, Kind::Throttled),
            ("Throttling.User", 400, Kind::Throttled),
            ("Throttling.Api", 400, Kind::Throttled),
            ("QpsLimitExceeded", 429, Kind::Throttled),
            ("", 429, Kind::Throttled),
            ("TotalQpsLimitExceeded", 503, Kind::Throttled),
            ("ServiceUnavailable", 503, Kind::Unavailable),
            ("InternalError", 500, Kind::Unavailable),
            ("SomethingNew", 502, Kind::Unavailable),
            ("", 500, Kind::Unavailable),
            ("SignatureNonceUsed", 400, Kind::Unavailable),
            // RDS answers this one with HTTP 500; it is still a state, not an outage.
            ("IncorrectDBInstanceState", 500, Kind::Busy),
            ("OperationDenied.DBInstanceStatus", 403, Kind::Busy),
            ("OperationAborted", 409, Kind::Busy),
            ("InvalidAccessKeyId.NotFound", 404, Kind::Credentials),
            ("InvalidAccessKeyId", 403, Kind::Credentials),
            ("SignatureDoesNotMatch", 400, Kind::Credentials),
            ("IncompleteSignature", 400, Kind::Credentials),
            ("InvalidTimeStamp.Expired", 400, Kind::Credentials),
            ("InvalidTimeStamp.Format", 400, Kind::Credentials),
            ("MissingSecurityToken", 400, Kind::Credentials),
            ("InvalidSecurityToken.Expired", 400, Kind::Credentials),
            (
                "InvalidSecurityToken.MismatchWithAccessKey",
                400,
                Kind::Credentials,
            ),
            ("SecurityTokenExpired", 403, Kind::Credentials),
            ("RequestTimeTooSkewed", 403, Kind::Credentials),
            ("Forbidden.RAM", 403, Kind::Denied),
            ("Forbidden", 403, Kind::Denied),
            ("NoPermission", 403, Kind::Denied),
            ("AccessDenied", 403, Kind::Denied),
            ("", 403, Kind::Denied),
            ("QuotaExceeded", 400, Kind::Quota),
            ("QuotaExceeded.DBInstance", 400, Kind::Quota),
            ("QuotaExceed.Instance", 400, Kind::Quota),
            ("LimitExceeded.User.AccessKey", 409, Kind::Quota),
            ("InvalidDBInstanceClass.NotEnough", 400, Kind::Quota),
            ("InsufficientBalance", 400, Kind::Quota),
            ("TooManyBuckets", 400, Kind::Quota),
            ("EntityAlreadyExists.User", 409, Kind::AlreadyExists),
            ("InvalidAccountName.Duplicate", 400, Kind::AlreadyExists),
            ("InvalidDBName.Duplicate", 400, Kind::AlreadyExists),
            ("InvalidDBInstanceId.NotFound", 404, Kind::NotFound),
            ("InvalidDBInstance.NotFound", 404, Kind::NotFound),
            ("Forbidden.InstanceNotFound", 404, Kind::NotFound),
            ("InvalidAccountName.NotFound", 404, Kind::NotFound),
            ("InvalidDBName.NotFound", 404, Kind::NotFound),
            ("EntityNotExist.User", 404, Kind::NotFound),
            ("EntityNotExist.User.AccessKey", 404, Kind::NotFound),
            ("EntityNotExist.Policy", 404, Kind::NotFound),
            ("NoSuchBucket", 404, Kind::NotFound),
            ("NoSuchKey", 404, Kind::NotFound),
            ("", 404, Kind::NotFound),
            ("InvalidAction.NotFound", 404, Kind::Other),
            ("InvalidParameter", 400, Kind::Invalid),
            ("InvalidParameter.UserName.InvalidChars", 400, Kind::Invalid),
            ("MissingParameter", 400, Kind::Invalid),
            ("MissingParameter.RegionId", 400, Kind::Invalid),
            ("InvalidDBInstanceClass.Malformed", 400, Kind::Invalid),
            ("InvalidArgument", 400, Kind::Invalid),
            ("InvalidBucketName", 400, Kind::Invalid),
            ("MalformedXML", 400, Kind::Invalid),
            // Another account's bucket (or, perhaps, ours): adopting it is the caller's call.
            ("BucketAlreadyExists", 409, Kind::Other),
            ("BucketNotEmpty", 409, Kind::Other),
            ("SomethingNew", 400, Kind::Other),
        ] {
            assert_eq!(classify(code, status), kind, "{code:?} {status}");
        }
    }

    /// The variant of a broker error, and its text.
    fn variant(err: AlibabaError) -> (&'static str, String) {
        let broker = BrokerError::from(err);
        let name = match &broker {
            BrokerError::Transient(_) => "Transient",
            BrokerError::Unauthenticated(_) => "Unauthenticated",
            BrokerError::NotFound(_) => "NotFound",
            BrokerError::Failed(_) => "Failed",
            BrokerError::InvalidParameters(_) => "InvalidParameters",
            BrokerError::Provider { .. } => "Provider",
            _ => "other",
        };
        (name, broker.to_string())
    }

    #[test]
    fn broker_errors() {
        for (err, expected, mentions) in [
            (api("Throttling.User", 400), "Transient", "Throttling.User"),
            (
                api("IncorrectDBInstanceState", 500),
                "Transient",
                "IncorrectDBInstanceState",
            ),
            (
                api("SignatureDoesNotMatch", 400),
                "Unauthenticated",
                "clock",
            ),
            (
                api("InvalidDBInstanceId.NotFound", 404),
                "NotFound",
                "request id",
            ),
            (api("Forbidden.RAM", 403), "Failed", "RAM policy"),
            (api("QuotaExceeded.DBInstance", 400), "Failed", "quota"),
            (
                api("EntityAlreadyExists.User", 409),
                "Failed",
                "EntityAlreadyExists.User",
            ),
            (api("SomethingNew", 400), "Failed", "SomethingNew"),
            (
                api("InvalidParameter", 400),
                "InvalidParameters",
                "InvalidParameter",
            ),
            (
                AlibabaError::Config("bad endpoint".into()),
                "Provider",
                "bad endpoint",
            ),
            (
                AlibabaError::credentials("STS AssumeRole", api("EntityNotExist.Role", 404)),
                "Unauthenticated",
                "EntityNotExist.Role",
            ),
            (
                AlibabaError::credentials("STS AssumeRole", api("Throttling.User", 400)),
                "Transient",
                "STS AssumeRole",
            ),
        ] {
            let (name, text) = variant(err);
            assert_eq!(name, expected, "{text}");
            assert!(text.contains(mentions), "{text} should mention {mentions}");
        }
    }

    #[test]
    fn messages_carry_code_and_request_id() {
        let err = api("Forbidden.RAM", 403);
        assert_eq!(
            err.to_string(),
            "RDS DescribeDBInstances failed: Forbidden.RAM: the message \
             (HTTP 403, request id 5E4C2F3A-0000-4000-8000-000000000001)"
        );
        let broker = BrokerError::from(err).to_string();
        assert!(broker.contains("Forbidden.RAM"), "{broker}");
        assert!(
            broker.contains("5E4C2F3A-0000-4000-8000-000000000001"),
            "{broker}"
        );

        let head = AlibabaError::Api {
            service: "OSS",
            action: "HEAD bucket".into(),
            status: 404,
            code: String::new(),
            message: String::new(),
            request_id: String::new(),
        };
        assert_eq!(head.code(), None);
        assert_eq!(head.request_id(), None);
        assert!(head.is_not_found());
        assert!(head.to_string().contains("HTTP 404"), "{head}");
    }

    #[test]
    fn transient_and_retryable_differ_for_busy() {
        let busy = api("IncorrectDBInstanceState", 500);
        assert!(busy.is_transient());
        assert!(!busy.is_retryable());
        let throttled = api("Throttling.User", 400);
        assert!(throttled.is_transient() && throttled.is_retryable());
        let denied = api("Forbidden.RAM", 403);
        assert!(!denied.is_transient() && !denied.is_retryable());
    }
}
