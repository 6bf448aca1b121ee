//! A small ACS3-HMAC-SHA256 signer written for these tests from the published algorithm,
//! apart from the fake's verifier (whose unit tests check it against a signature made by
//! the official Python SDK), so the two can only agree by both being right.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub const RDS: &str = "2014-08-15";
pub const RAM: &str = "2015-05-01";
pub const STS: &str = "2015-04-01";

/// A key to sign with.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// One RPC call, adjustable before it is signed.
#[derive(Clone, Debug)]
pub struct Call {
    pub version: String,
    pub action: String,
    /// Parameters sent in the query string (not encoded).
    pub query: Vec<(String, String)>,
    /// A form body (not encoded), sent as `application/x-www-form-urlencoded` when not empty.
    pub form: Vec<(String, String)>,
    pub date: OffsetDateTime,
    pub nonce: String,
}

impl Call {
    pub fn new(version: &str, action: &str, params: &[(&str, &str)]) -> Call {
        Call {
            version: version.to_owned(),
            action: action.to_owned(),
            query: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            form: Vec::new(),
            date: OffsetDateTime::now_utc(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// What to break after signing, to see the fake notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// Flip one hex digit of the signature.
    Signature,
    /// Send a body other than the one signed (the header still names the signed one).
    Body,
    /// Leave `x-acs-signature-nonce` out of the request and of the signed headers.
    DropNonce,
    /// Send an extra `x-acs-*` header that was not signed.
    UnsignedAcsHeader,
}

/// Signs and sends calls to the fake's RPC endpoint.
pub struct Client {
    http: reqwest::Client,
    url: String,
    pub key: Key,
    /// The STS security token sent (and signed) with a temporary key.
    pub security_token: Option<String>,
}

impl Client {
    pub fn new(url: &str, key: Key) -> Client {
        Client {
            http: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::new()
            },
            url: url.to_owned(),
            key,
            security_token: None,
        }
    }

    /// Sends a call with fresh date and nonce; panics unless it succeeds.
    pub async fn ok(&self, version: &str, action: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self
            .send(&Call::new(version, action, params), Tamper::None)
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        body
    }

    /// Sends a call that must fail; returns the status and `Code`.
    pub async fn err(&self, version: &str, action: &str, params: &[(&str, &str)]) -> (u16, String) {
        let (status, body) = self
            .send(&Call::new(version, action, params), Tamper::None)
            .await;
        assert_ne!(status, StatusCode::OK, "{action} succeeded: {body}");
        (
            status.as_u16(),
            body["Code"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Signs `call` with this client's key and sends it.
    pub async fn send(&self, call: &Call, tamper: Tamper) -> (StatusCode, Value) {
        let host = self.url.trim_start_matches("http://").to_owned();
        let query = encode_pairs(&call.query);
        let body = encode_pairs(&call.form).into_bytes();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-acs-action".into(), call.action.clone()),
            ("x-acs-version".into(), call.version.clone()),
            ("x-acs-date".into(), date(call.date)),
            ("x-acs-signature-nonce".into(), call.nonce.clone()),
            (
                "x-acs-content-sha256".into(),
                hex::encode(Sha256::digest(&body)),
            ),
        ];
        if !call.form.is_empty() {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if let Some(token) = &self.security_token {
            headers.push(("x-acs-security-token".into(), token.clone()));
        }
        if tamper == Tamper::DropNonce {
            headers.retain(|(name, _)| name != "x-acs-signature-nonce");
        }
        headers.sort();

        let canonical_headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}:{}\n", value.trim()))
            .collect();
        let signed_headers = headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "POST\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
            hex::encode(Sha256::digest(&body))
        );
        let string_to_sign = format!(
            "ACS3-HMAC-SHA256\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.secret.as_bytes()).unwrap();
        mac.update(string_to_sign.as_bytes());
        let mut signature = hex::encode(mac.finalize().into_bytes());
        if tamper == Tamper::Signature {
            let flipped = if signature.starts_with('0') { "1" } else { "0" };
            signature.replace_range(0..1, flipped);
        }

        let mut request = self
            .http
            .post(format!("{}/?{query}", self.url))
            .header(
                "authorization",
                format!(
                    "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed_headers},Signature={signature}",
                    self.key.id
                ),
            );
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if tamper == Tamper::UnsignedAcsHeader {
            request = request.header("x-acs-extra", "surprise");
        }
        let body = if tamper == Tamper::Body {
            b"Other=body".to_vec()
        } else {
            body
        };
        let response = request.body(body).send().await.expect("the fake answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ`.
pub fn date(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `a=1&b=x%20y`, pairs sorted, RFC 3986 encoding (what the canonical query wants, and a
/// valid URL query too).
fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
