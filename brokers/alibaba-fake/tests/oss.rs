//! The fake OSS over a real socket: V4 signatures accepted and rejected, the bucket and
//! object lifecycle, DeleteMultipleObjects' Content-MD5, ACLs, RAM policies, throttling.
//!
//! Requests are signed by a small signer written here for the tests, apart from the
//! fake's verifier (the fake's unit tests check it against the official SDK's signatures).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use skybroker_alibaba_fake::ram::PolicyType;
use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};
use time::OffsetDateTime;

// ===== a test-only OSS4-HMAC-SHA256 signer =====

/// A key the tests sign with.
#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

/// One request to send.
struct Call {
    method: Method,
    /// The bucket, if any.
    bucket: Option<String>,
    /// The object key (not encoded), if any.
    key: Option<String>,
    /// `(name, value)` query parameters, not encoded.
    query: Vec<(String, String)>,
    /// Extra headers (names lower case).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sign with this key, or send anonymously.
    key_pair: Option<Key>,
    /// The signing time (now unless a test wants a stale one).
    signed_at: OffsetDateTime,
    /// The region in the credential scope.
    region: String,
    /// Flip one hex digit of the signature before sending.
    tamper: bool,
}

/// RFC 3986 percent-encoding, keeping `/` when asked.
fn encode(text: &str, keep_slash: bool) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            b'/' if keep_slash => "/".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Call {
    fn new(method: Method, bucket: Option<&str>, key: Option<&str>, signer: &Key) -> Call {
        Call {
            method,
            bucket: bucket.map(str::to_owned),
            key: key.map(str::to_owned),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            key_pair: Some(signer.clone()),
            signed_at: OffsetDateTime::now_utc(),
            region: "cn-hangzhou".to_owned(),
            tamper: false,
        }
    }

    fn query(mut self, name: &str, value: &str) -> Call {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Call {
        self.body = body.into();
        self
    }

    fn anonymous(mut self) -> Call {
        self.key_pair = None;
        self
    }

    /// Adds `Content-MD5` of the body.
    fn with_md5(self) -> Call {
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&self.body));
        self.header("content-md5", &md5)
    }

    /// Sends the call to the fake and returns status, headers and body text.
    async fn send(
        mut self,
        fake: &FakeAlibaba,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut path = String::from("/");
        if let Some(bucket) = &self.bucket {
            path.push_str(bucket);
            path.push('/');
        }
        if let Some(key) = &self.key {
            path.push_str(&encode(key, true));
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(name, value)| {
                if value.is_empty() {
                    encode(name, false)
                } else {
                    format!("{}={}", encode(name, false), encode(value, false))
                }
            })
            .collect();
        let mut url = format!("{}{path}", fake.oss_url());
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }

        if let Some(key_pair) = self.key_pair.clone() {
            let stamp = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                self.signed_at.year(),
                u8::from(self.signed_at.month()),
                self.signed_at.day(),
                self.signed_at.hour(),
                self.signed_at.minute(),
                self.signed_at.second()
            );
            self.headers.push(("x-oss-date".to_owned(), stamp.clone()));
            self.headers.push((
                "x-oss-content-sha256".to_owned(),
                "UNSIGNED-PAYLOAD".to_owned(),
            ));
            let mut signed: Vec<(String, String)> = self
                .headers
                .iter()
                .filter(|(name, _)| {
                    name.starts_with("x-oss-") || name == "content-type" || name == "content-md5"
                })
                .cloned()
                .collect();
            signed.sort();
            let canonical_headers: String =
                signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let mut canonical_query = query.clone();
            canonical_query.sort();
            let uri = match &self.bucket {
                None => "/".to_owned(),
                Some(bucket) => format!(
                    "/{bucket}/{}",
                    encode(self.key.as_deref().unwrap_or(""), true)
                ),
            };
            let canonical = format!(
                "{}\n{uri}\n{}\n{canonical_headers}\n\nUNSIGNED-PAYLOAD",
                self.method,
                canonical_query.join("&")
            );
            let date = &stamp[..8];
            let scope = format!("{date}/{}/oss/aliyun_v4_request", self.region);
            let to_sign = format!(
                "OSS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            );
            let mut key = hmac_sha256(format!("aliyun_v4{}", key_pair.secret).as_bytes(), date);
            for part in [self.region.as_str(), "oss", "aliyun_v4_request"] {
                key = hmac_sha256(&key, part);
            }
            let mut signature = hex::encode(hmac_sha256(&key, &to_sign));
            if self.tamper {
                let flipped = if signature.starts_with('0') { "1" } else { "0" };
                signature.replace_range(0..1, flipped);
            }
            self.headers.push((
                "authorization".to_owned(),
                format!(
                    "OSS4-HMAC-SHA256 Credential={}/{scope},Signature={signature}",
                    key_pair.id
                ),
            ));
        }

        let mut request = {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        }
        .request(self.method.clone(), url)
        .body(self.body);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("the fake answers");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }
}

/// The text of `<name>` in an XML answer (the first one).
fn element(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].to_owned())
}

async fn start() -> (FakeAlibaba, Key) {
    let config = FakeConfig::default();
    let root = Key {
        id: config.access_key_id.clone(),
        secret: config.access_key_secret.clone(),
    };
    (FakeAlibaba::start(config).await.unwrap(), root)
}

// ===== the tests =====

#[tokio::test]
async fn a_signed_call_is_accepted_and_one_changed_byte_is_not() {
    let (fake, root) = start().await;
    let (status, headers, body) = Call::new(Method::PUT, Some("signed-ok"), None, &root)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-oss-request-id"].len(), 24);
    assert_eq!(headers["server"], "AliyunOSS");

    let mut call = Call::new(Method::GET, Some("signed-ok"), None, &root).query("bucketInfo", "");
    call.tamper = true;
    let (status, headers, body) = call.send(&fake).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Code").as_deref(),
        Some("SignatureDoesNotMatch"),
        "{body}"
    );
    assert_eq!(headers["x-oss-ec"], "0002-00000201");
    assert_eq!(
        element(&body, "RequestId").as_deref(),
        headers["x-oss-request-id"].to_str().ok()
    );
    assert!(element(&body, "StringToSign")
        .unwrap()
        .starts_with("OSS4-HMAC-SHA256\n"));
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));

    // The same call, untampered, is accepted.
    let (status, _, body) = Call::new(Method::GET, Some("signed-ok"), None, &root)
        .query("bucketInfo", "")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(element(&body, "Name").as_deref(), Some("signed-ok"));
}

#[tokio::test]
async fn stale_unknown_and_misregioned_signatures_are_refused() {
    let (fake, root) = start().await;

    let mut stale = Call::new(Method::GET, None, None, &root);
    stale.signed_at = OffsetDateTime::now_utc() - Duration::from_secs(16 * 60);
    let (status, headers, body) = stale.send(&fake).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Code").as_deref(),
        Some("RequestTimeTooSkewed"),
        "{body}"
    );
    assert_eq!(
        element(&body, "MaxAllowedSkewMilliseconds").as_deref(),
        Some("900000")
    );
    assert_eq!(headers["x-oss-ec"], "0002-00000504");

    // 14 minutes in the future is still inside the window.
    let mut early = Call::new(Method::GET, None, None, &root);
    early.signed_at = OffsetDateTime::now_utc() + Duration::from_secs(14 * 60);
    assert_eq!(early.send(&fake).await.0, StatusCode::OK);

    let stranger = Key {
        id: "LTAI5tNoSuchKey000000000".to_owned(),
        secret: "x".to_owned(),
    };
    let (status, _, body) = Call::new(Method::GET, None, None, &stranger)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Code").as_deref(),
        Some("InvalidAccessKeyId")
    );
    assert_eq!(
        element(&body, "OSSAccessKeyId").as_deref(),
        Some("LTAI5tNoSuchKey000000000")
    );

    let mut elsewhere = Call::new(Method::GET, None, None, &root);
    elsewhere.region = "cn-beijing".to_owned();
    let (status, _, body) = elsewhere.send(&fake).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(element(&body, "Code").as_deref(), Some("InvalidArgument"));
    assert_eq!(
        element(&body, "Message").as_deref(),
        Some("The signing region in credential is invalid.")
    );

    // A wrong secret for a real key id is a signature mismatch.
    let wrong_secret = Key {
        id: root.id.clone(),
        secret: "not-the-secret".to_owned(),
    };
    let (status, _, body) = Call::new(Method::GET, None, None, &wrong_secret)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::FORBIDDEN, Some("SignatureDoesNotMatch"))
    );
}

#[tokio::test]
async fn bucket_and_object_lifecycle() {
    let (fake, root) = start().await;
    let bucket = Some("life-cycle");

    let config = "<CreateBucketConfiguration><StorageClass>IA</StorageClass>\
                  <DataRedundancyType>ZRS</DataRedundancyType></CreateBucketConfiguration>";
    let (status, headers, body) = Call::new(Method::PUT, bucket, None, &root)
        .header("x-oss-acl", "public-read")
        .header("content-type", "application/xml")
        .body(config)
        .with_md5()
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["location"], "/life-cycle");

    let (status, _, body) = Call::new(Method::PUT, bucket, None, &root)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::CONFLICT, Some("BucketAlreadyExists"))
    );
    let (status, _, body) = Call::new(Method::PUT, Some("Bad_Name"), None, &root)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::BAD_REQUEST, Some("InvalidBucketName"))
    );

    let (status, _, info) = Call::new(Method::GET, bucket, None, &root)
        .query("bucketInfo", "")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK);
    for (name, value) in [
        ("Name", "life-cycle"),
        ("Location", "oss-cn-hangzhou"),
        ("StorageClass", "IA"),
        ("DataRedundancyType", "ZRS"),
        ("Grant", "public-read"),
        ("ExtranetEndpoint", "oss-cn-hangzhou.aliyuncs.com"),
        ("IntranetEndpoint", "oss-cn-hangzhou-internal.aliyuncs.com"),
    ] {
        assert_eq!(element(&info, name).as_deref(), Some(value), "{info}");
    }
    assert!(element(&info, "CreationDate").unwrap().ends_with(".000Z"));

    let (status, _, acl) = Call::new(Method::GET, bucket, None, &root)
        .query("acl", "")
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&acl, "Grant").as_deref()),
        (StatusCode::OK, Some("public-read"))
    );

    // Objects: put, get, head, list page by page.
    for key in ["dir/a b.txt", "dir/c+d.txt", "top.txt"] {
        let (status, headers, body) = Call::new(Method::PUT, bucket, Some(key), &root)
            .header("content-type", "text/plain")
            .header("x-oss-meta-origin", "test")
            .body(format!("content of {key}"))
            .with_md5()
            .send(&fake)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let md5 = hex::encode_upper(Md5::digest(format!("content of {key}").as_bytes()));
        assert_eq!(headers["etag"], format!("\"{md5}\"").as_str());
        assert!(headers.contains_key("x-oss-hash-crc64ecma"));
    }
    let (status, headers, body) = Call::new(Method::GET, bucket, Some("dir/a b.txt"), &root)
        .send(&fake)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "content of dir/a b.txt")
    );
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-oss-meta-origin"], "test");
    let (status, headers, body) = Call::new(Method::HEAD, bucket, Some("top.txt"), &root)
        .send(&fake)
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(headers["content-length"], "18");

    let (status, headers, body) = Call::new(Method::GET, bucket, Some("missing"), &root)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::NOT_FOUND, Some("NoSuchKey"))
    );
    assert_eq!(headers["x-oss-ec"], "0026-00000001");
    let (status, headers, body) = Call::new(Method::HEAD, bucket, Some("missing"), &root)
        .send(&fake)
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
    assert!(headers.contains_key("x-oss-err"));

    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut call = Call::new(Method::GET, bucket, None, &root)
            .query("list-type", "2")
            .query("max-keys", "2")
            .query("encoding-type", "url");
        if let Some(token) = &token {
            call = call.query("continuation-token", token);
        }
        let (status, _, page) = call.send(&fake).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut rest = page.as_str();
        while let Some(at) = rest.find("<Key>") {
            let end = rest[at..].find("</Key>").unwrap() + at;
            keys.push(rest[at + 5..end].to_owned());
            rest = &rest[end..];
        }
        let count: usize = element(&page, "KeyCount").unwrap().parse().unwrap();
        assert!(count <= 2);
        if element(&page, "IsTruncated").as_deref() == Some("false") {
            assert!(element(&page, "NextContinuationToken").is_none());
            break;
        }
        token = element(&page, "NextContinuationToken");
    }
    assert_eq!(keys, ["dir%2Fa%20b.txt", "dir%2Fc%2Bd.txt", "top.txt"]);

    let (status, _, page) = Call::new(Method::GET, bucket, None, &root)
        .query("list-type", "2")
        .query("delimiter", "/")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(element(&page, "Prefix").as_deref(), Some(""));
    assert!(
        page.contains("<CommonPrefixes>\n    <Prefix>dir/</Prefix>"),
        "{page}"
    );
    assert_eq!(element(&page, "KeyCount").as_deref(), Some("2"));

    // A bucket with objects is not deleted.
    let (status, headers, body) = Call::new(Method::DELETE, bucket, None, &root)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::CONFLICT, Some("BucketNotEmpty"))
    );
    assert_eq!(headers["x-oss-ec"], "0015-00000301");

    let (status, _, _) = Call::new(Method::DELETE, bucket, Some("top.txt"), &root)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let delete = "<Delete><Quiet>false</Quiet><Object><Key>dir/a b.txt</Key></Object>\
                  <Object><Key>dir/c+d.txt</Key></Object><Object><Key>never-was</Key></Object></Delete>";
    let (status, _, body) = Call::new(Method::POST, bucket, None, &root)
        .query("delete", "")
        .header("content-type", "application/xml")
        .body(delete)
        .with_md5()
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("<Deleted>").count(), 3, "{body}");
    assert_eq!(fake.snapshot()["oss"]["buckets"][0]["objects"], 0);

    let (status, _, _) = Call::new(Method::DELETE, bucket, None, &root)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers, body) = Call::new(Method::GET, bucket, None, &root)
        .query("bucketInfo", "")
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::NOT_FOUND, Some("NoSuchBucket"))
    );
    assert_eq!(headers["x-oss-ec"], "0015-00000101");
    assert_eq!(fake.snapshot()["oss"]["buckets"], serde_json::json!([]));
}

#[tokio::test]
async fn delete_multiple_objects_checks_content_md5() {
    let (fake, root) = start().await;
    let bucket = Some("md5-checked");
    Call::new(Method::PUT, bucket, None, &root)
        .send(&fake)
        .await;
    Call::new(Method::PUT, bucket, Some("k"), &root)
        .body("v")
        .send(&fake)
        .await;
    let delete = "<Delete><Object><Key>k</Key></Object></Delete>";

    let (status, _, body) = Call::new(Method::POST, bucket, None, &root)
        .query("delete", "")
        .header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(delete)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::BAD_REQUEST, Some("InvalidDigest"))
    );

    let (status, headers, body) = Call::new(Method::POST, bucket, None, &root)
        .query("delete", "")
        .body(delete)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::BAD_REQUEST, Some("MissingArgument"))
    );
    assert_eq!(headers["x-oss-ec"], "0016-00000606");

    let (status, _, body) = Call::new(Method::POST, bucket, None, &root)
        .query("delete", "")
        .body("<Delete><Object></Object></Delete>")
        .with_md5()
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::BAD_REQUEST, Some("MalformedXML"))
    );
    assert_eq!(fake.snapshot()["oss"]["buckets"][0]["objects"], 1);

    // Quiet mode answers nothing when everything was deleted.
    let (status, _, body) = Call::new(Method::POST, bucket, None, &root)
        .query("delete", "")
        .body("<Delete><Quiet>true</Quiet><Object><Key>k</Key></Object></Delete>")
        .with_md5()
        .send(&fake)
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(fake.snapshot()["oss"]["buckets"][0]["objects"], 0);
}

#[tokio::test]
async fn anonymous_access_follows_the_bucket_acl() {
    let (fake, root) = start().await;
    let bucket = Some("acl-bucket");
    Call::new(Method::PUT, bucket, None, &root)
        .send(&fake)
        .await;
    Call::new(Method::PUT, bucket, Some("k"), &root)
        .body("v")
        .send(&fake)
        .await;

    let (status, _, body) = Call::new(Method::GET, bucket, Some("k"), &root)
        .anonymous()
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::FORBIDDEN, Some("AccessDenied"))
    );

    let (status, _, _) = Call::new(Method::PUT, bucket, None, &root)
        .query("acl", "")
        .header("x-oss-acl", "public-read")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = Call::new(Method::GET, bucket, Some("k"), &root)
        .anonymous()
        .send(&fake)
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "v"));
    // Public-read is not public-write, and listing or bucket settings stay private.
    let (status, _, _) = Call::new(Method::PUT, bucket, Some("k2"), &root)
        .anonymous()
        .body("x")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = Call::new(Method::GET, bucket, None, &root)
        .anonymous()
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = Call::new(Method::GET, None, None, &root)
        .anonymous()
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Message").as_deref(),
        Some("Anonymous access is forbidden for this operation.")
    );

    let (status, _, body) = Call::new(Method::PUT, bucket, None, &root)
        .query("acl", "")
        .header("x-oss-acl", "everyone")
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::BAD_REQUEST, Some("InvalidArgument"))
    );
    assert_eq!(
        element(&body, "Message").as_deref(),
        Some("no such bucket access control exists")
    );
}

#[tokio::test]
async fn a_ram_user_allowed_one_bucket_is_denied_another() {
    let (fake, root) = start().await;
    for bucket in ["bucket-a", "bucket-b"] {
        Call::new(Method::PUT, Some(bucket), None, &root)
            .send(&fake)
            .await;
        Call::new(Method::PUT, Some(bucket), Some("k"), &root)
            .body("v")
            .send(&fake)
            .await;
    }
    let user = {
        let shared = fake.shared();
        let mut ram = shared.ram.lock().unwrap();
        ram.create_user("only-a", "", "").unwrap();
        let document = r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:*"],
            "Resource": ["acs:oss:*:*:bucket-a", "acs:oss:*:*:bucket-a/*"]}]}"#;
        ram.create_policy("bucket-a-only", document, "").unwrap();
        ram.attach_policy("only-a", PolicyType::Custom, "bucket-a-only")
            .unwrap();
        let (id, secret) = ram.create_access_key("only-a").unwrap();
        Key { id, secret }
    };

    let (status, _, body) = Call::new(Method::GET, Some("bucket-a"), Some("k"), &user)
        .send(&fake)
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "v"));
    let (status, _, _) = Call::new(Method::PUT, Some("bucket-a"), Some("new"), &user)
        .body("x")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = Call::new(Method::GET, Some("bucket-a"), None, &user)
        .query("list-type", "2")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = Call::new(Method::GET, Some("bucket-b"), Some("k"), &user)
        .send(&fake)
        .await;
    assert_eq!(
        (status, element(&body, "Code").as_deref()),
        (StatusCode::FORBIDDEN, Some("AccessDenied")),
        "{body}"
    );
    assert_eq!(headers["x-oss-ec"], "0003-00000001");
    let (status, _, body) = Call::new(Method::GET, Some("bucket-b"), None, &user)
        .query("list-type", "2")
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Message").as_deref(),
        Some("The bucket you access does not belong to you.")
    );
    let (status, _, _) = Call::new(Method::DELETE, Some("bucket-b"), Some("k"), &user)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = Call::new(Method::PUT, Some("bucket-c"), None, &user)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = Call::new(Method::GET, None, None, &user).send(&fake).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        element(&body, "Message").as_deref(),
        Some("You are forbidden to list buckets.")
    );

    // DeleteMultipleObjects needs every object allowed.
    let (status, _, _) = Call::new(Method::POST, Some("bucket-b"), None, &user)
        .query("delete", "")
        .body("<Delete><Object><Key>k</Key></Object></Delete>")
        .with_md5()
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(fake.snapshot()["oss"]["buckets"][1]["objects"], 1);
}

#[tokio::test]
async fn injected_throttling_answers_like_oss() {
    let (fake, root) = start().await;
    Call::new(Method::PUT, Some("throttled"), None, &root)
        .send(&fake)
        .await;

    fake.throttle_next(2);
    let (status, _, body) = Call::new(Method::GET, None, None, &root).send(&fake).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        element(&body, "Code").as_deref(),
        Some("MetaOperationQpsLimitExceeded")
    );
    let (status, _, body) = Call::new(Method::GET, Some("throttled"), Some("k"), &root)
        .send(&fake)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        element(&body, "Code").as_deref(),
        Some("TotalQpsLimitExceeded")
    );

    let (status, _, _) = Call::new(Method::GET, None, None, &root).send(&fake).await;
    assert_eq!(status, StatusCode::OK);
}
