//! OSS: buckets and objects behind OSS4-HMAC-SHA256 verification and RAM policies.
//!
//! Every request goes through one pipeline, in the order the real service answers:
//! 1. address and operation (`endpoint`): path-style `/<bucket>/<key>` (the fake's
//!    loopback port) or virtual-hosted `Host: <bucket>.<domain>`; a malformed bucket or
//!    object name is `InvalidBucketName` / `InvalidObjectName`;
//! 2. injected throttling: 503 `MetaOperationQpsLimitExceeded` for service and bucket
//!    configuration operations, 503 `TotalQpsLimitExceeded` for data operations (both from
//!    OSS's "HTTP status code 503" page);
//! 3. authentication (`signature`): anonymous, or a valid V4 signature of a known key;
//! 4. `Content-MD5`, when sent, must be the body's (`InvalidDigest`);
//! 5. the operation, which looks the bucket up (`NoSuchBucket` before any permission
//!    check, as bucket names are global) and asks RAM whether the caller's policies allow
//!    the operation's action on `acs:oss:*:*:<bucket>[/<key>]`; a bucket's ACL may grant
//!    object reads (`public-read`) and writes (`public-read-write`) to anyone on top.
//!
//! Every answer carries `x-oss-request-id` and `Server: AliyunOSS`; errors are OSS's XML
//! `Error` document (`error`).
//!
//! # Layout
//! - `endpoint`: addresses, the operation table, RAM actions;
//! - `signature`: V4 verification;
//! - `bucket`, `object`: the operations;
//! - `state`: buckets and objects; `xml`: encoding helpers and request documents;
//! - `error`: the error document.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use md5::{Digest, Md5};
use time::OffsetDateTime;

use crate::{lock, Shared};

mod bucket;
mod endpoint;
mod error;
mod object;
mod signature;
mod state;
mod xml;

use endpoint::{Endpoint, Query};
use error::OssError;
use signature::{Caller, SignedParts};
use state::{Acl, Bucket};

/// The largest request body the fake reads (real OSS takes 5 GB in one PutObject; tests
/// need far less, and the whole body is held in memory).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The account id OSS shows as bucket and object owner. The fake serves one account.
const OWNER_ID: &str = "1508512345678901";

/// Buckets and objects.
#[derive(Debug, Default)]
pub struct OssState {
    /// Buckets by name, in name order (the order ListBuckets returns).
    ///
    /// One mutex over the whole map: every operation is a short, synchronous change, never
    /// held across an `.await` nor while RAM is consulted, and some (DeleteBucket,
    /// DeleteMultipleObjects) must see a bucket and its objects at one instant.
    buckets: Mutex<BTreeMap<String, Bucket>>,
}

impl OssState {
    /// Everything held, for tests: each bucket's name, storage class, redundancy, ACL,
    /// object count and bytes (no object data).
    pub fn snapshot(&self) -> serde_json::Value {
        let buckets = lock(&self.buckets);
        let buckets: Vec<serde_json::Value> = buckets
            .iter()
            .map(|(name, bucket)| {
                serde_json::json!({
                    "name": name,
                    "storage_class": bucket.storage_class,
                    "data_redundancy_type": bucket.redundancy,
                    "acl": bucket.acl.as_str(),
                    "objects": bucket.objects.len(),
                    "bytes": bucket.objects.values().map(|object| object.data.len()).sum::<usize>(),
                })
            })
            .collect();
        serde_json::json!({ "buckets": buckets })
    }
}

/// The OSS endpoint: path-style addressing (`/<bucket>/<key>`), virtual-hosted too.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// One request, start to end: runs the pipeline, renders errors, stamps the request id.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map_or_else(
            || format!("oss-{}.aliyuncs.com", shared.config.region),
            str::to_owned,
        );

    let result = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => serve(
            &shared,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &host,
            body,
        ),
        Err(_) => Err(OssError::new(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size.",
        )),
    };
    let mut response = result.unwrap_or_else(|err| {
        log::debug!("fake OSS: {} {} -> {err}", parts.method, parts.uri);
        err.into_response(&request_id, &host, head)
    });
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-oss-request-id", value);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("AliyunOSS"));
    response
}

/// `5C3D8D2A0ACA54D87B43A1B2`: 24 upper-case hex digits, the shape of OSS request ids.
fn new_request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    id[..24].to_owned()
}

/// The pipeline after the body is read (synchronous: nothing in it waits).
fn serve(
    shared: &Shared,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    host: &str,
    body: Bytes,
) -> Result<Response, OssError> {
    let address = endpoint::parse_address(host, uri.path())?;
    let raw_query = uri.query().unwrap_or("");
    let query = Query::parse(raw_query)?;
    let endpoint = Endpoint::from_request(method, &address, &query, headers)?;

    if shared.faults.take_throttle() {
        return Err(throttled(&endpoint));
    }

    let signed = SignedParts {
        method: method.as_str(),
        bucket: address.bucket.as_deref(),
        key: address.key.as_deref(),
        raw_query,
        headers,
        body: &body,
    };
    let now = OffsetDateTime::now_utc();
    let caller = signature::authenticate(shared, &signed, now)?;
    check_content_md5(headers, &body)?;

    // Stored times have whole seconds, as OSS's (`...T07:08:09.000Z`, and `Last-Modified`).
    let now = now.replace_nanosecond(0).unwrap_or(now);
    log::debug!("fake OSS: {} by {caller:?}", endpoint.name());
    let call = Call {
        shared,
        caller,
        action: endpoint.action(),
        headers,
        query: &query,
        body,
        now,
    };
    match endpoint {
        Endpoint::ListBuckets => bucket::list_buckets(&call),
        Endpoint::PutBucket { bucket } => bucket::put_bucket(&call, &bucket),
        Endpoint::GetBucketInfo { bucket } => bucket::get_bucket_info(&call, &bucket),
        Endpoint::GetBucketLocation { bucket } => bucket::get_bucket_location(&call, &bucket),
        Endpoint::GetBucketAcl { bucket } => bucket::get_bucket_acl(&call, &bucket),
        Endpoint::PutBucketAcl { bucket } => bucket::put_bucket_acl(&call, &bucket),
        Endpoint::DeleteBucket { bucket } => bucket::delete_bucket(&call, &bucket),
        Endpoint::ListObjects { bucket } => bucket::list_objects(&call, &bucket),
        Endpoint::ListObjectsV2 { bucket } => bucket::list_objects_v2(&call, &bucket),
        Endpoint::DeleteMultipleObjects { bucket } => {
            bucket::delete_multiple_objects(&call, &bucket)
        }
        Endpoint::PutObject { bucket, key } => object::put_object(&call, &bucket, &key),
        Endpoint::GetObject { bucket, key } => object::get_object(&call, &bucket, &key, false),
        Endpoint::HeadObject { bucket, key } => object::get_object(&call, &bucket, &key, true),
        Endpoint::DeleteObject { bucket, key } => object::delete_object(&call, &bucket, &key),
    }
}

/// The answer to a call taken by injected throttling.
fn throttled(endpoint: &Endpoint) -> OssError {
    if endpoint.is_meta() {
        OssError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "MetaOperationQpsLimitExceeded",
            "Qps limit for the meta operation is exceeded",
        )
    } else {
        OssError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TotalQpsLimitExceeded",
            "Max total qps limit is exceeded",
        )
    }
}

/// A sent `Content-MD5` must be the base64 MD5 of the body, as OSS checks on every upload.
fn check_content_md5(headers: &HeaderMap, body: &[u8]) -> Result<(), OssError> {
    let Some(value) = headers.get("content-md5") else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let sent = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default();
    if sent.len() != 16 || sent[..] != Md5::digest(body)[..] {
        return Err(OssError::invalid_digest(&text));
    }
    Ok(())
}

/// One authenticated call, as the operations see it.
struct Call<'a> {
    /// The fake's state.
    shared: &'a Shared,
    /// Who is calling.
    caller: Caller,
    /// The RAM action the operation needs (per object for DeleteMultipleObjects).
    action: &'static str,
    /// The request headers.
    headers: &'a HeaderMap,
    /// The decoded query parameters.
    query: &'a Query,
    /// The request body.
    body: Bytes,
    /// When the call arrived.
    now: OffsetDateTime,
}

impl Call<'_> {
    /// The value of a header, if present and text.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Whether the caller's RAM policies, or else `acl`, allow `action` on `resource`.
    fn allowed(&self, action: &str, resource: &str, acl: Option<Acl>) -> bool {
        let by_policy = match &self.caller {
            Caller::Signed { principal, .. } => {
                lock(&self.shared.ram).allows(principal, action, resource)
            }
            Caller::Anonymous => false,
        };
        by_policy || acl.is_some_and(|acl| acl.grants(action))
    }

    /// Authorizes a service-level operation (ListBuckets).
    fn authorize_service(&self) -> Result<(), OssError> {
        if self.allowed(self.action, endpoint::SERVICE_RESOURCE, None) {
            return Ok(());
        }
        Err(OssError::access_denied(match self.caller {
            Caller::Anonymous => "Anonymous access is forbidden for this operation.",
            Caller::Signed { .. } => "You are forbidden to list buckets.",
        }))
    }

    /// Authorizes an operation on a bucket itself (its configuration, its listing).
    fn authorize_bucket(&self, bucket: &str) -> Result<(), OssError> {
        if self.allowed(self.action, &endpoint::bucket_resource(bucket), None) {
            return Ok(());
        }
        Err(OssError::access_denied(match self.caller {
            Caller::Anonymous => "Anonymous access is forbidden for this operation.",
            Caller::Signed { .. } => "The bucket you access does not belong to you.",
        })
        .detail("BucketName", bucket))
    }

    /// Authorizes an operation on one object of a bucket with this ACL.
    fn authorize_object(&self, bucket: &str, key: &str, acl: Acl) -> Result<(), OssError> {
        if self.allowed(
            self.action,
            &endpoint::object_resource(bucket, key),
            Some(acl),
        ) {
            return Ok(());
        }
        Err(OssError::access_denied(
            "You have no right to access this object because of bucket acl.",
        ))
    }

    /// The bucket's ACL, or `NoSuchBucket`. The lock is released before RAM is asked.
    fn bucket_acl(&self, bucket: &str) -> Result<Acl, OssError> {
        let buckets = lock(&self.shared.oss.buckets);
        buckets
            .get(bucket)
            .map(|found| found.acl)
            .ok_or_else(|| OssError::no_such_bucket(bucket))
    }

    /// Runs `change` on the bucket under the lock, or answers `NoSuchBucket` (it may have
    /// been deleted since it was authorized).
    fn with_bucket<T>(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut Bucket) -> T,
    ) -> Result<T, OssError> {
        let mut buckets = lock(&self.shared.oss.buckets);
        let found = buckets
            .get_mut(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        Ok(change(found))
    }
}

/// A 200 answer with an XML document.
fn xml_response(document: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(axum::body::Body::from(document))
        .unwrap_or_default()
}

/// An answer with this status and no body.
fn empty_response(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(axum::body::Body::empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_osss() {
        let id = new_request_id();
        assert_eq!(id.len(), 24);
        assert!(id
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte.is_ascii_uppercase()));
    }

    #[test]
    fn content_md5_must_be_the_bodys() {
        let mut headers = HeaderMap::new();
        assert!(check_content_md5(&headers, b"anything").is_ok());
        headers.insert(
            "content-md5",
            HeaderValue::from_static("XUFAKrxLKna5cZ2REBfFkg=="),
        );
        assert!(check_content_md5(&headers, b"hello").is_ok());
        assert_eq!(
            check_content_md5(&headers, b"hellO").unwrap_err().code,
            "InvalidDigest"
        );
        headers.insert("content-md5", HeaderValue::from_static("not base64"));
        assert_eq!(
            check_content_md5(&headers, b"hello").unwrap_err().code,
            "InvalidDigest"
        );
        // The MD5 of the empty body, which the Python SDK sends with every bodiless call.
        headers.insert(
            "content-md5",
            HeaderValue::from_static("1B2M2Y8AsgTpgAmY7PhCfg=="),
        );
        assert!(check_content_md5(&headers, b"").is_ok());
    }
}
