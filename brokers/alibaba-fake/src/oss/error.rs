//! OSS error answers: the HTTP status, `Code`, `Message` and `EC` the real service sends,
//! rendered as its XML `Error` document.
//!
//! The codes, messages and EC numbers come from OSS's own error pages and from error
//! samples in the official SDKs' test suites; where the real service's EC number was not
//! found, the `EC` element is left out rather than invented. An answer to a `HEAD` request
//! has no body, so, like the real service, the document travels base64-encoded in the
//! `x-oss-err` header (the official SDKs read it from there).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;

use super::xml;

/// One rejected request, before it is rendered for a particular request id and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Code` element, e.g. `SignatureDoesNotMatch`.
    pub code: &'static str,
    /// The `Message` element.
    pub message: String,
    /// The `EC` element (and `x-oss-ec` header), when the real service's number is known.
    pub ec: Option<&'static str>,
    /// Further elements after `HostId`, in order, e.g. `BucketName`.
    pub details: Vec<(&'static str, String)>,
}

impl OssError {
    /// An error with no EC number and no further elements.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OssError {
        OssError {
            status,
            code,
            message: message.into(),
            ec: None,
            details: Vec::new(),
        }
    }

    /// Sets the EC number.
    pub fn ec(mut self, ec: &'static str) -> OssError {
        self.ec = Some(ec);
        self
    }

    /// Appends an element after `HostId`.
    pub fn detail(mut self, name: &'static str, value: impl Into<String>) -> OssError {
        self.details.push((name, value.into()));
        self
    }

    // ===== the errors more than one place answers =====

    /// 400 `InvalidArgument`: a malformed header, query parameter or Authorization field.
    pub fn invalid_argument(message: impl Into<String>) -> OssError {
        OssError::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    /// 400 `MalformedXML`: a request body that is not the document the operation takes.
    pub fn malformed_xml() -> OssError {
        OssError::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    }

    /// 400 `InvalidBucketName`.
    pub fn invalid_bucket_name(bucket: &str) -> OssError {
        OssError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "The specified bucket is not valid.",
        )
        .detail("BucketName", bucket)
    }

    /// 400 `InvalidObjectName`.
    pub fn invalid_object_name(key: &str) -> OssError {
        OssError::new(
            StatusCode::BAD_REQUEST,
            "InvalidObjectName",
            "The specified object is not valid.",
        )
        .detail("ObjectName", key)
    }

    /// 404 `NoSuchBucket` (EC as in a real answer quoted on Alibaba's developer forum).
    pub fn no_such_bucket(bucket: &str) -> OssError {
        OssError::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        )
        .detail("BucketName", bucket)
        .ec("0015-00000101")
    }

    /// 404 `NoSuchKey`.
    pub fn no_such_key(key: &str) -> OssError {
        OssError::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
        .detail("Key", key)
        .ec("0026-00000001")
    }

    /// 403 `AccessDenied` (EC 0003-00000001: no policy or ACL grants the operation).
    pub fn access_denied(message: impl Into<String>) -> OssError {
        OssError::new(StatusCode::FORBIDDEN, "AccessDenied", message).ec("0003-00000001")
    }

    /// 400 `InvalidDigest`: a `Content-MD5` that is not a base64 MD5, or not the body's.
    pub fn invalid_digest(content_md5: &str) -> OssError {
        OssError::new(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        )
        .detail("Content-MD5", content_md5)
    }

    /// 501 `NotImplemented`: a real OSS operation this fake does not model.
    pub fn not_implemented(what: &str) -> OssError {
        OssError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("{what} is not implemented by the fake OSS."),
        )
    }

    /// Renders the error for one request. `head` leaves the body out and carries the
    /// document in `x-oss-err` instead.
    pub fn into_response(self, request_id: &str, host_id: &str, head: bool) -> Response {
        let mut document = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n");
        let mut element = |name: &str, value: &str| {
            document.push_str(&format!("  <{name}>{}</{name}>\n", xml::escape(value)));
        };
        element("Code", self.code);
        element("Message", &self.message);
        element("RequestId", request_id);
        element("HostId", host_id);
        for (name, value) in &self.details {
            element(name, value);
        }
        if let Some(ec) = self.ec {
            element("EC", ec);
        }
        document.push_str("</Error>\n");

        let mut builder = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/xml");
        if let Some(ec) = self.ec {
            builder = builder.header("x-oss-ec", ec);
        }
        let body = if head {
            let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_bytes());
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                builder = builder.header("x-oss-err", value);
            }
            axum::body::Body::empty()
        } else {
            axum::body::Body::from(document)
        };
        // Only the status and fixed ASCII headers are set above, so building cannot fail.
        builder.body(body).unwrap_or_default()
    }
}

impl std::fmt::Display for OssError {
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

impl std::error::Error for OssError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_the_real_error_document() {
        let response = OssError::no_such_bucket("a&b").into_response("ABC", "a&b.oss.test", false);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-oss-ec"], "0015-00000101");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n"),
            "{body}"
        );
        for part in [
            "<Code>NoSuchBucket</Code>",
            "<Message>The specified bucket does not exist.</Message>",
            "<RequestId>ABC</RequestId>",
            "<HostId>a&amp;b.oss.test</HostId>",
            "<BucketName>a&amp;b</BucketName>",
            "<EC>0015-00000101</EC>",
        ] {
            assert!(body.contains(part), "{part} missing in {body}");
        }
    }

    #[tokio::test]
    async fn a_head_answer_carries_the_document_in_a_header() {
        let response = OssError::no_such_key("k").into_response("ID", "host", true);
        let encoded = response.headers()["x-oss-err"].to_str().unwrap().to_owned();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert!(String::from_utf8(decoded)
            .unwrap()
            .contains("<Code>NoSuchKey</Code>"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(body.is_empty());
    }
}
