//! One HTTP client for the Alibaba provider: RPC calls to RDS and RAM, REST calls to OSS.
//!
//! Why one client: every call needs the same things done the same way, and they are easy to
//! get subtly wrong when repeated per product:
//! - each attempt is signed afresh ([`credential`](super::credential)): a new date, and for
//!   RPC a new nonce, which the service refuses to see twice;
//! - throttling, 5xx and lost connections are retried with exponential back-off and full
//!   jitter, up to [`ClientConfig::max_attempts`]; everything else is returned at once
//!   (`AlibabaError::is_retryable` decides, from the table in [`error`](super::error));
//! - each attempt asks the [`Signer`](super::auth) for credentials, which may be temporary
//!   ones it keeps fresh; if the service refuses temporary credentials, they are dropped and
//!   the next attempt signs with new ones;
//! - errors carry the provider's request id, which Alibaba's support needs;
//! - logs say what was called and how it ended (one `debug` line per call, one `warn` per
//!   retry), never with the parameters: RDS calls carry database passwords.
//!
//! Retries repeat a call as it was sent. Calls that create something must therefore be safe
//! to repeat: RDS creates carry a `ClientToken`, RAM creates answer `EntityAlreadyExists`.
//!
//! TLS is rustls on the *ring* provider (as everywhere in the workspace), with the
//! platform's trusted roots, handed to reqwest ready-made so that its default provider
//! (aws-lc) stays out of the build.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use md5::Digest as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use time::OffsetDateTime;

use super::auth::{default_sts_endpoint, CredentialSource, Signer};
use super::credential::{
    acs3_canonical_query, acs3_sign, oss4_canonical_query, oss4_sign, percent_encode,
    percent_encode_path, AccessKey, Acs3SigningRequest, Credentials, OssSigningRequest,
};
use super::error::{AlibabaError, Kind};

/// The RPC-style products the broker calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// ApsaraDB RDS, API version 2014-08-15.
    Rds,
    /// Resource Access Management, API version 2015-05-01.
    Ram,
    /// Security Token Service, API version 2015-04-01 (temporary credentials).
    Sts,
}

impl Product {
    /// The API version (`x-acs-version`).
    pub fn version(self) -> &'static str {
        match self {
            Product::Rds => "2014-08-15",
            Product::Ram => "2015-05-01",
            Product::Sts => "2015-04-01",
        }
    }

    /// The short name used in errors and logs.
    pub fn service(self) -> &'static str {
        match self {
            Product::Rds => "RDS",
            Product::Ram => "RAM",
            Product::Sts => "STS",
        }
    }
}

/// Regions whose RDS API is served by the central endpoint `rds.aliyuncs.com`; every other
/// region has its own, `rds.<region>.aliyuncs.com` (RDS API reference, "Endpoints":
/// <https://www.alibabacloud.com/help/en/rds/developer-reference/api-rds-2014-08-15-endpoint>).
const RDS_CENTRAL_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-hongkong",
    "us-east-1",
    "us-west-1",
];

/// The RDS endpoint for `region`: the central one where Alibaba serves the region from it,
/// else the regional one.
pub fn default_rds_endpoint(region: &str) -> String {
    if RDS_CENTRAL_REGIONS.contains(&region) {
        "https://rds.aliyuncs.com".to_owned()
    } else {
        format!("https://rds.{region}.aliyuncs.com")
    }
}

/// How to reach Alibaba Cloud and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the credentials every request is signed with come from.
    pub credentials: CredentialSource,
    /// The region resources are made in, e.g. `cn-hangzhou`; also OSS's signing region.
    pub region: String,
    /// RDS base URL with scheme; default [`default_rds_endpoint`] of the region.
    pub rds_endpoint: String,
    /// RAM base URL (one global endpoint); default `https://ram.aliyuncs.com`.
    pub ram_endpoint: String,
    /// OSS base URL, `scheme://host[:port]`; default `https://oss-<region>.aliyuncs.com`.
    pub oss_endpoint: String,
    /// STS base URL, where temporary credentials are asked for; default
    /// [`default_sts_endpoint`] of the region.
    pub sts_endpoint: String,
    /// Address buckets as `<endpoint>/<bucket>/<key>` instead of `<bucket>.<host>/<key>`
    /// (for look-alikes and fakes; Alibaba itself wants virtual-hosted); default false.
    pub oss_path_style: bool,
    /// Attempts per call, the first included; default 4.
    pub max_attempts: u32,
    /// How long to wait for a connection; default 5 s.
    pub connect_timeout: Duration,
    /// How long one attempt may take, body included; default 30 s.
    pub request_timeout: Duration,
    /// The first back-off; each retry doubles it, up to 10 s, and waits a random part of it
    /// (full jitter); default 200 ms.
    pub initial_backoff: Duration,
}

/// The longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl ClientConfig {
    /// The defaults for `region`, signing with a long-lived AccessKey.
    pub fn new(access_key: AccessKey, region: impl Into<String>) -> ClientConfig {
        ClientConfig::with_credentials(CredentialSource::AccessKey(access_key), region)
    }

    /// The defaults for `region`, signing with credentials from `source`.
    pub fn with_credentials(source: CredentialSource, region: impl Into<String>) -> ClientConfig {
        let region = region.into();
        ClientConfig {
            credentials: source,
            rds_endpoint: default_rds_endpoint(&region),
            ram_endpoint: "https://ram.aliyuncs.com".to_owned(),
            oss_endpoint: format!("https://oss-{region}.aliyuncs.com"),
            sts_endpoint: default_sts_endpoint(&region),
            region,
            oss_path_style: false,
            max_attempts: 4,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(200),
        }
    }
}

/// The client. Cheap to clone: clones share the configuration, the connection pool and the
/// credentials.
#[derive(Clone, Debug)]
pub struct AlibabaClient {
    transport: Transport,
    signer: Signer,
    config: Arc<ClientConfig>,
    rds: Url,
    ram: Url,
    oss: Url,
    sts: Url,
}

/// Sending with retries, shared by the client and the credential fetches (which must not go
/// through the client: it asks them for its credentials). Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    max_attempts: u32,
    initial_backoff: Duration,
}

/// Who signs one call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Auth<'a> {
    /// The client's credentials, from its [`Signer`].
    Signer(&'a Signer),
    /// These credentials (the base key that signs an AssumeRole).
    Key(&'a Arc<Credentials>),
}

/// One OSS request: what to call, built with the chained setters.
#[derive(Debug, Clone)]
pub struct OssRequest {
    /// The HTTP method.
    pub method: Method,
    /// The bucket; `None` for service-level calls (ListBuckets).
    pub bucket: Option<String>,
    /// The object key, unencoded.
    pub key: Option<String>,
    /// Sub-resources and parameters, unencoded: `("acl", None)`, `("list-type", Some("2"))`.
    pub query: Vec<(String, Option<String>)>,
    /// Extra headers (`content-type`, `x-oss-acl`, `x-oss-meta-*`...).
    pub headers: Vec<(String, String)>,
    /// The body; the client adds its `Content-MD5` when it is not empty.
    pub body: Vec<u8>,
}

impl OssRequest {
    /// A request for `bucket` (or the service, with `None`).
    pub fn new(method: Method, bucket: Option<&str>) -> Self {
        OssRequest {
            method,
            bucket: bucket.map(str::to_owned),
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The object key.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Adds a query parameter or sub-resource.
    pub fn query(mut self, name: &str, value: Option<&str>) -> Self {
        self.query.push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// How the request is named in errors and logs: method, bucket, key and the parameter
    /// names (not their values), e.g. `PUT bucket?acl`.
    fn action(&self) -> String {
        let mut action = format!("{} {}", self.method, self.bucket.as_deref().unwrap_or("/"));
        if let Some(key) = &self.key {
            action.push('/');
            action.push_str(key);
        }
        let names: Vec<&str> = self.query.iter().map(|(name, _)| name.as_str()).collect();
        if !names.is_empty() {
            action.push('?');
            action.push_str(&names.join("&"));
        }
        action
    }
}

/// A successful OSS answer.
#[derive(Debug, Clone)]
pub struct OssResponse {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The response headers (`ETag`, `x-oss-*`...).
    pub headers: HeaderMap,
    /// The body (XML for most bucket calls).
    pub body: Vec<u8>,
    /// `x-oss-request-id`.
    pub request_id: String,
}

/// An answer of any status, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    status: u16,
    headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The fields of an error answer, whichever format it came in.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "RequestId", default)]
    request_id: String,
}

/// How a product answers: RPC in JSON, OSS in XML; both put a request id in a header too.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Protocol {
    Rpc,
    Oss,
}

impl Protocol {
    fn request_id_header(self) -> &'static str {
        match self {
            Protocol::Rpc => "x-acs-request-id",
            Protocol::Oss => "x-oss-request-id",
        }
    }

    /// The error fields of `answer`; empty ones where it has none (a `HEAD`, a proxy's page).
    fn error_body(self, answer: &Answer) -> ErrorBody {
        let body = match self {
            Protocol::Rpc => serde_json::from_slice::<ErrorBody>(&answer.body).ok(),
            Protocol::Oss => std::str::from_utf8(&answer.body)
                .ok()
                .and_then(|text| quick_xml::de::from_str::<ErrorBody>(text).ok()),
        };
        let mut body = body.unwrap_or_default();
        if body.request_id.is_empty() {
            body.request_id = self.header_request_id(answer);
        }
        body
    }

    fn header_request_id(self, answer: &Answer) -> String {
        answer
            .header(self.request_id_header())
            .unwrap_or_default()
            .to_owned()
    }
}

impl AlibabaClient {
    /// Builds the client: checks the endpoints and sets up TLS. Sends nothing.
    pub fn new(config: ClientConfig) -> Result<AlibabaClient, AlibabaError> {
        if config.max_attempts == 0 {
            return Err(AlibabaError::Config(
                "max_attempts must be at least 1".to_owned(),
            ));
        }
        let rds = endpoint_url("rds_endpoint", &config.rds_endpoint)?;
        let ram = endpoint_url("ram_endpoint", &config.ram_endpoint)?;
        let oss = endpoint_url("oss_endpoint", &config.oss_endpoint)?;
        let sts = endpoint_url("sts_endpoint", &config.sts_endpoint)?;
        let mut endpoints = vec![&rds, &ram, &oss];
        // STS is asked only for temporary credentials: a key of its own needs no roots.
        if matches!(
            config.credentials,
            CredentialSource::AssumeRole { .. } | CredentialSource::Oidc { .. }
        ) {
            endpoints.push(&sts);
        }
        let needs_roots = endpoints.iter().any(|url| url.scheme() == "https");
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(needs_roots)?)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A signed request is valid for one host only; a redirect is an error to report.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("skybroker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| AlibabaError::Config(format!("HTTP client: {err}")))?;
        let transport = Transport {
            http,
            max_attempts: config.max_attempts,
            initial_backoff: config.initial_backoff,
        };
        let signer = Signer::new(&config.credentials, &transport, &sts);
        Ok(AlibabaClient {
            transport,
            signer,
            config: Arc::new(config),
            rds,
            ram,
            oss,
            sts,
        })
    }

    /// A client for OSS in another region of the same account: it signs for `region` and
    /// reaches `oss_endpoint` (when given), and shares this one's connections and
    /// credentials, so temporary credentials are fetched once for all regions.
    pub fn for_region(
        &self,
        region: &str,
        oss_endpoint: Option<String>,
    ) -> Result<AlibabaClient, AlibabaError> {
        let mut config = (*self.config).clone();
        config.region = region.to_owned();
        if let Some(endpoint) = oss_endpoint {
            config.oss_endpoint = endpoint;
        }
        let oss = endpoint_url("oss_endpoint", &config.oss_endpoint)?;
        Ok(AlibabaClient {
            config: Arc::new(config),
            oss,
            ..self.clone()
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// One RPC call (POST, params in the query string, empty body, ACS3-signed); the JSON
    /// body of a 2xx answer.
    ///
    /// # Errors
    /// [`AlibabaError::Api`] with the service's code when it refused (after retrying
    /// throttling and 5xx), [`AlibabaError::Transport`] when no answer came, and
    /// [`AlibabaError::Decode`] when a 2xx answer is not JSON.
    pub async fn rpc(
        &self,
        product: Product,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, AlibabaError> {
        let endpoint = match product {
            Product::Rds => &self.rds,
            Product::Ram => &self.ram,
            Product::Sts => &self.sts,
        };
        self.transport
            .rpc(
                endpoint,
                product,
                action,
                params,
                Auth::Signer(&self.signer),
            )
            .await
    }

    /// One OSS call (OSS4-signed); any 2xx is `Ok`, anything else the XML `<Error>` decoded
    /// into [`AlibabaError::Api`] (`code` empty when the answer had no body, as for `HEAD`).
    pub async fn oss(&self, request: OssRequest) -> Result<OssResponse, AlibabaError> {
        let action = request.action();
        let (url, host) = self.oss_url(&request)?;
        let mut unsigned: Vec<(String, String)> = request.headers.clone();
        unsigned.push(("host".to_owned(), host));
        let has = |name: &str| {
            request
                .headers
                .iter()
                .any(|(present, _)| present.eq_ignore_ascii_case(name))
        };
        if !request.body.is_empty() && !has("content-md5") {
            let md5 = md5::Md5::digest(&request.body);
            unsigned.push((
                "content-md5".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(md5),
            ));
        }
        let unsigned: Vec<(&str, &str)> = unsigned
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let query: Vec<(&str, Option<&str>)> = request
            .query
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        let build = |credentials: Option<&Credentials>| {
            let credentials = credentials
                .ok_or_else(|| AlibabaError::Config("OSS calls are always signed".to_owned()))?;
            let signing = OssSigningRequest {
                method: request.method.as_str(),
                bucket: request.bucket.as_deref(),
                key: request.key.as_deref(),
                query: &query,
                headers: &unsigned,
                additional_headers: &[],
            };
            let now = OffsetDateTime::now_utc();
            let signed = oss4_sign(credentials, &self.config.region, &signing, now);
            // `Date` is not signed in V4 (`x-oss-date` is); Alibaba's SDKs send both.
            let date = http_date(now);
            let headers = header_map(
                unsigned
                    .iter()
                    .copied()
                    .chain(signed.iter().map(|(name, value)| (*name, value.as_str())))
                    .chain([("date", date.as_str())]),
            )?;
            Ok(self
                .transport
                .http
                .request(request.method.clone(), url.clone())
                .headers(headers)
                .body(request.body.clone()))
        };
        let answer = self
            .transport
            .call(
                "OSS",
                &action,
                Protocol::Oss,
                &[],
                Some(Auth::Signer(&self.signer)),
                build,
            )
            .await?;
        let request_id = Protocol::Oss.header_request_id(&answer);
        Ok(OssResponse {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
            request_id,
        })
    }

    /// The URL applications use for a bucket (virtual-hosted, or path-style when
    /// `oss_path_style`), without a trailing slash.
    pub fn oss_bucket_url(&self, bucket: &str) -> String {
        if self.config.oss_path_style {
            format!(
                "{}://{}/{}",
                self.oss.scheme(),
                authority(&self.oss),
                percent_encode(bucket)
            )
        } else {
            format!("{}://{bucket}.{}", self.oss.scheme(), authority(&self.oss))
        }
    }

    /// The URL and `Host` of an OSS request. The query on the wire is the canonical one
    /// (sorted, encoded as signed), with `name` alone for parameters without value.
    fn oss_url(&self, request: &OssRequest) -> Result<(Url, String), AlibabaError> {
        let mut path = String::from("/");
        let host = match &request.bucket {
            Some(bucket) if self.config.oss_path_style => {
                path.push_str(bucket);
                path.push('/');
                authority(&self.oss)
            }
            Some(bucket) => format!("{bucket}.{}", authority(&self.oss)),
            None => authority(&self.oss),
        };
        if let Some(key) = &request.key {
            path.push_str(key);
        }
        let query: Vec<(&str, Option<&str>)> = request
            .query
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        let query = oss4_canonical_query(&query);
        let mut url = format!(
            "{}://{host}{}",
            self.oss.scheme(),
            percent_encode_path(&path)
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let url = Url::parse(&url).map_err(|err| {
            AlibabaError::Config(format!("OSS URL for {}: {err}", request.action()))
        })?;
        Ok((url, host))
    }
}

impl Transport {
    /// The HTTP client (for calls that are not Alibaba Cloud APIs: the metadata service).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One RPC call to `endpoint` (POST, params in the query string, empty body,
    /// ACS3-signed by `auth`); the JSON body of a 2xx answer.
    pub(crate) async fn rpc(
        &self,
        endpoint: &Url,
        product: Product,
        action: &str,
        params: &[(&str, &str)],
        auth: Auth<'_>,
    ) -> Result<serde_json::Value, AlibabaError> {
        let host = authority(endpoint);
        let path = endpoint.path().to_owned();
        let mut url = endpoint.clone();
        // The wire query is the canonical one: what is signed is exactly what is sent.
        let query = acs3_canonical_query(params);
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        let unsigned = [
            ("host", host.as_str()),
            ("x-acs-action", action),
            ("x-acs-version", product.version()),
        ];
        let build = |credentials: Option<&Credentials>| {
            let credentials = credentials.ok_or_else(|| {
                AlibabaError::Config("signed RPC calls need credentials".to_owned())
            })?;
            let request = Acs3SigningRequest {
                method: "POST",
                path: &path,
                query: params,
                headers: &unsigned,
                body: b"",
            };
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let signed = acs3_sign(credentials, &request, OffsetDateTime::now_utc(), &nonce);
            let headers = header_map(
                unsigned
                    .iter()
                    .map(|(name, value)| (*name, *value))
                    .chain(signed.iter().map(|(name, value)| (*name, value.as_str())))
                    .chain([("accept", "application/json")]),
            )?;
            Ok(self.http.post(url.clone()).headers(headers))
        };
        let secrets = secret_values(params);
        let answer = self
            .call(
                product.service(),
                action,
                Protocol::Rpc,
                &secrets,
                Some(auth),
                build,
            )
            .await?;
        serde_json::from_slice(&answer.body).map_err(|err| AlibabaError::Decode {
            service: product.service(),
            action: action.to_owned(),
            detail: format!("not JSON: {err}"),
            request_id: Protocol::Rpc.header_request_id(&answer),
        })
    }

    /// Sends the request `build` makes (signed anew each time, with the credentials `auth`
    /// gives for that attempt; `None` for anonymous calls) until it succeeds, fails for good,
    /// or `max_attempts` is reached; returns the 2xx answer.
    ///
    /// Temporary credentials the service refuses are dropped once and the call tried again
    /// with new ones, without waiting: they may have been revoked, or the clocks disagree.
    pub(crate) async fn call(
        &self,
        service: &'static str,
        action: &str,
        protocol: Protocol,
        secrets: &[&str],
        auth: Option<Auth<'_>>,
        build: impl Fn(Option<&Credentials>) -> Result<reqwest::RequestBuilder, AlibabaError>,
    ) -> Result<Answer, AlibabaError> {
        let max = self.max_attempts;
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            let credentials = match auth {
                Some(Auth::Signer(signer)) => Some(signer.credentials().await?),
                Some(Auth::Key(credentials)) => Some(credentials.clone()),
                None => None,
            };
            let error = match send(build(credentials.as_deref())?).await {
                Ok(answer) if answer.is_success() => {
                    let request_id = match protocol.header_request_id(&answer) {
                        id if id.is_empty() => protocol.error_body(&answer).request_id,
                        id => id,
                    };
                    log::debug!(
                        "{service} {action}: HTTP {}, request id {request_id}, attempt {attempt}",
                        answer.status
                    );
                    return Ok(answer);
                }
                Ok(answer) => {
                    let body = protocol.error_body(&answer);
                    AlibabaError::Api {
                        service,
                        action: action.to_owned(),
                        status: answer.status,
                        code: body.code,
                        message: scrub(body.message, secrets),
                        request_id: body.request_id,
                    }
                }
                Err(source) => AlibabaError::Transport {
                    service,
                    action: action.to_owned(),
                    // The URL holds the RPC parameters, passwords included.
                    source: source.without_url(),
                },
            };
            let refused_credentials = match (auth, &credentials) {
                (Some(Auth::Signer(signer)), Some(used))
                    if !renewed && error.kind() == Kind::Credentials =>
                {
                    signer.invalidate(used)
                }
                _ => false,
            };
            if attempt >= max || !(error.is_retryable() || refused_credentials) {
                log::debug!("{service} {action}: failed after {attempt} attempt(s): {error}");
                return Err(error);
            }
            if refused_credentials {
                renewed = true;
                log::warn!(
                    "{service} {action}: attempt {attempt} of {max} refused the temporary \
                     credentials, retrying with new ones: {error}"
                );
            } else {
                let delay = backoff(self.initial_backoff, attempt);
                log::warn!(
                    "{service} {action}: attempt {attempt} of {max} failed, retrying in {delay:?}: {error}"
                );
                tokio::time::sleep(delay).await;
            }
            attempt += 1;
        }
    }
}

/// Sends one request and reads the whole answer.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The wait before attempt `attempt + 1`: a random duration up to `initial` × 2^(attempt-1),
/// capped at [`MAX_BACKOFF`] ("full jitter": clients throttled together spread out).
fn backoff(initial: Duration, attempt: u32) -> Duration {
    let ceiling = initial
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// An HTTP date (`Sun, 03 Dec 2023 12:12:12 GMT`).
fn http_date(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        // Only date fields, which every date can fill.
        .expect("date fields always format")
}

/// Parses an endpoint: an `http` or `https` URL with a host.
fn endpoint_url(name: &str, endpoint: &str) -> Result<Url, AlibabaError> {
    let url = Url::parse(endpoint)
        .map_err(|err| AlibabaError::Config(format!("{name} {endpoint:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AlibabaError::Config(format!(
            "{name} {endpoint:?}: expected http(s)://host[:port]"
        )));
    }
    Ok(url)
}

/// `host[:port]` of `url`, as the `Host` header carries it (the port only when not the
/// scheme's default, which the URL parser already drops).
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// A header map from name/value pairs; a value that is not a valid header (a newline in a
/// caller's metadata) is a configuration error, not something to send.
fn header_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, AlibabaError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| AlibabaError::Config(format!("invalid header name {name:?}")))?;
        // The value may be secret-adjacent (metadata); name only the header.
        let value = HeaderValue::from_str(value)
            .map_err(|_| AlibabaError::Config(format!("invalid value for header {name}")))?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// The values of password- and secret-like parameters, which error messages must not echo.
fn secret_values<'a>(params: &[(&str, &'a str)]) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(name, value)| {
            let name = name.to_ascii_lowercase();
            (name.contains("password") || name.contains("secret") || name.contains("token"))
                && value.len() >= 4
        })
        .map(|(_, value)| *value)
        .collect()
}

/// `message` with every secret value replaced by `******`.
fn scrub(mut message: String, secrets: &[&str]) -> String {
    for secret in secrets {
        if message.contains(secret) {
            message = message.replace(secret, "******");
        }
    }
    message
}

/// The rustls configuration: the ring provider and the platform's trusted roots. Loading
/// roots fails on a system without any; that only matters when an endpoint is https, so
/// plain-http set-ups (tests, fakes) work without them.
fn tls_config(needs_roots: bool) -> Result<rustls::ClientConfig, AlibabaError> {
    crate::tls::client_config(needs_roots).map_err(AlibabaError::Config)
}

#[cfg(test)]
mod tests {
    //! Against a small server on 127.0.0.1 that checks every request the way Alibaba does
    //! (headers present, signature recomputed with `credential`'s functions) and answers
    //! from a script.

    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use axum::extract::{Request, State};
    use axum::response::Response;
    use percent_encoding::percent_decode_str;
    use skybroker_config::Secret;

    use super::*;
    use crate::alibaba::credential::{acs3_authorization, oss4_authorization, sha256_hex};
    use crate::BrokerError;

    const KEY_ID: &str = "LTAI5tTestKey000000000";
    const SECRET: &str = "Test-Secret-Zk39qW7vX2";
    const PASSWORD: &str = "Sup3r-Secret-Pa55word";

    fn key() -> AccessKey {
        AccessKey {
            id: KEY_ID.to_owned(),
            secret: Secret::new(SECRET),
        }
    }

    /// A client for the server at `addr`, with a tiny back-off.
    fn client(addr: SocketAddr) -> AlibabaClient {
        let mut config = ClientConfig::new(key(), "cn-hangzhou");
        config.rds_endpoint = format!("http://{addr}");
        config.ram_endpoint = format!("http://{addr}");
        config.oss_endpoint = format!("http://{addr}");
        config.oss_path_style = true;
        config.initial_backoff = Duration::from_millis(1);
        AlibabaClient::new(config).unwrap()
    }

    // ===== the scripted server =====

    /// One canned answer.
    #[derive(Clone)]
    struct Canned {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    }

    fn json(status: u16, body: serde_json::Value) -> Canned {
        Canned {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_string(),
        }
    }

    /// What the server saw of one request.
    struct Seen {
        method: String,
        path: String,
        query: Vec<(String, Option<String>)>,
        headers: HeaderMap,
        body: Vec<u8>,
        /// `Err` says what was wrong with the request's signature or shape.
        check: Result<(), String>,
    }

    impl Seen {
        fn header(&self, name: &str) -> &str {
            self.headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
        }
    }

    #[derive(Clone, Copy)]
    enum Check {
        Acs3,
        Oss4,
    }

    /// Answers in order; the last one again once they run out.
    #[derive(Default)]
    struct Script {
        answers: VecDeque<Canned>,
        last: Option<Canned>,
        seen: Vec<Seen>,
    }

    #[derive(Clone)]
    struct Server {
        check: Check,
        script: Arc<Mutex<Script>>,
    }

    impl Server {
        async fn start(check: Check, answers: Vec<Canned>) -> (SocketAddr, Server) {
            let server = Server {
                check,
                script: Arc::new(Mutex::new(Script {
                    answers: answers.into(),
                    ..Script::default()
                })),
            };
            let app = axum::Router::new()
                .fallback(answer)
                .with_state(server.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (addr, server)
        }

        /// Runs `f` on what the server saw.
        fn seen<T>(&self, f: impl FnOnce(&[Seen]) -> T) -> T {
            f(&self.script.lock().unwrap().seen)
        }
    }

    async fn answer(State(server): State<Server>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let query = decode_query(parts.uri.query().unwrap_or_default());
        let path = percent_decode_str(parts.uri.path())
            .decode_utf8()
            .unwrap()
            .into_owned();
        let seen = Seen {
            method: parts.method.to_string(),
            path,
            query,
            headers: parts.headers,
            body,
            check: Ok(()),
        };
        let check = match server.check {
            Check::Acs3 => check_acs3(&seen),
            Check::Oss4 => check_oss4(&seen),
        };
        let mut script = server.script.lock().unwrap();
        let canned = match &check {
            Ok(()) => {
                let next = script.answers.pop_front().or_else(|| script.last.clone());
                script.last = next.clone();
                next.expect("the script has answers")
            }
            // As Alibaba answers a bad signature: JSON for RPC, XML for OSS.
            Err(problem) => match server.check {
                Check::Acs3 => json(
                    400,
                    serde_json::json!({
                        "RequestId": "req-bad-signature",
                        "Code": "SignatureDoesNotMatch",
                        "Message": problem,
                    }),
                ),
                Check::Oss4 => Canned {
                    status: 403,
                    headers: vec![("x-oss-request-id", "oss-req-bad-signature".to_owned())],
                    body: "<Error><Code>SignatureDoesNotMatch</Code>\
                           <Message>The request signature we calculated does not match.</Message>\
                           <RequestId>oss-req-bad-signature</RequestId></Error>"
                        .to_owned(),
                },
            },
        };
        script.seen.push(Seen { check, ..seen });
        let mut response = Response::builder().status(canned.status);
        for (name, value) in canned.headers {
            response = response.header(name, value);
        }
        response.body(canned.body.into()).unwrap()
    }

    /// `a=1&b&c=%20` → `[(a, Some(1)), (b, None), (c, Some(" "))]`.
    fn decode_query(query: &str) -> Vec<(String, Option<String>)> {
        let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (decode(name), Some(decode(value))),
                None => (decode(pair), None),
            })
            .collect()
    }

    fn header_pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect()
    }

    /// `Name1=v1,Name2=v2` after the algorithm → the value of `name`.
    fn auth_field<'a>(authorization: &'a str, name: &str) -> Option<&'a str> {
        let (_, fields) = authorization.split_once(' ')?;
        fields
            .split(',')
            .find_map(|field| field.trim().strip_prefix(name)?.strip_prefix('='))
    }

    fn check_acs3(seen: &Seen) -> Result<(), String> {
        for required in [
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
            "authorization",
        ] {
            if seen.header(required).is_empty() {
                return Err(format!("missing {required}"));
            }
        }
        if seen.header("x-acs-content-sha256") != sha256_hex(&seen.body) {
            return Err("x-acs-content-sha256 is not the body's hash".into());
        }
        let date = seen.header("x-acs-date");
        time::PrimitiveDateTime::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
        )
        .map_err(|err| format!("x-acs-date {date}: {err}"))?;
        let authorization = seen.header("authorization");
        if !authorization.starts_with("ACS3-HMAC-SHA256 ")
            || auth_field(authorization, "Credential") != Some(KEY_ID)
        {
            return Err(format!("authorization {authorization}"));
        }
        // Recompute over exactly the headers the client says it signed.
        let names = auth_field(authorization, "SignedHeaders").unwrap_or_default();
        let all = header_pairs(&seen.headers);
        let signed: Vec<(&str, &str)> = all
            .iter()
            .copied()
            .filter(|(name, _)| names.split(';').any(|signed| signed == *name))
            .collect();
        let query: Vec<(&str, &str)> = seen
            .query
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref().unwrap_or("")))
            .collect();
        let expected = acs3_authorization(
            &key(),
            &Acs3SigningRequest {
                method: &seen.method,
                path: &seen.path,
                query: &query,
                headers: &signed,
                body: &seen.body,
            },
        );
        if expected != authorization {
            return Err(format!("signature: expected {expected}"));
        }
        Ok(())
    }

    fn check_oss4(seen: &Seen) -> Result<(), String> {
        for required in [
            "host",
            "x-oss-date",
            "x-oss-content-sha256",
            "authorization",
        ] {
            if seen.header(required).is_empty() {
                return Err(format!("missing {required}"));
            }
        }
        if !seen.body.is_empty() {
            let md5 =
                base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&seen.body));
            if seen.header("content-md5") != md5 {
                return Err("content-md5 is not the body's".into());
            }
        }
        let authorization = seen.header("authorization");
        let credential = auth_field(authorization, "Credential").unwrap_or_default();
        let date = seen.header("x-oss-date").get(..8).unwrap_or_default();
        if !authorization.starts_with("OSS4-HMAC-SHA256 ")
            || credential != format!("{KEY_ID}/{date}/cn-hangzhou/oss/aliyun_v4_request")
        {
            return Err(format!("authorization {authorization}"));
        }
        // Path-style: /bucket/key.
        let mut segments = seen.path.trim_start_matches('/').splitn(2, '/');
        let bucket = segments.next().filter(|bucket| !bucket.is_empty());
        let object = segments.next().filter(|key| !key.is_empty());
        let additional: Vec<&str> = auth_field(authorization, "AdditionalHeaders")
            .map(|names| names.split(';').collect())
            .unwrap_or_default();
        let query: Vec<(&str, Option<&str>)> = seen
            .query
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        let headers = header_pairs(&seen.headers);
        let expected = oss4_authorization(
            &key(),
            "cn-hangzhou",
            &OssSigningRequest {
                method: &seen.method,
                bucket,
                key: object,
                query: &query,
                headers: &headers,
                additional_headers: &additional,
            },
        );
        if expected != authorization {
            return Err(format!("signature: expected {expected}"));
        }
        Ok(())
    }

    // ===== logs =====

    /// Collects every log line of the test binary, so tests can check none leaks a secret.
    struct Capture(Mutex<Vec<String>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    fn capture_logs() {
        // Only the first call installs it; the others find it there.
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    }

    fn logged(containing: &str) -> Vec<String> {
        let lines = CAPTURE.0.lock().unwrap();
        lines
            .iter()
            .filter(|line| line.contains(containing))
            .cloned()
            .collect()
    }

    fn assert_no_secret_logged() {
        assert_eq!(logged(PASSWORD), Vec::<String>::new());
        assert_eq!(logged(SECRET), Vec::<String>::new());
    }

    // ===== RPC =====

    fn throttled() -> Canned {
        json(
            400,
            serde_json::json!({
                "RequestId": "req-throttled",
                "HostId": "rds.aliyuncs.com",
                "Code": "Throttling.User",
                "Message": "Request was denied due to user flow control.",
                "Recommend": "https://api.aliyun.com/troubleshoot?q=Throttling.User",
            }),
        )
    }

    const CREATE_ACCOUNT: [(&str, &str); 4] = [
        ("DBInstanceId", "rm-skybroker1"),
        ("AccountName", "app_user"),
        ("AccountPassword", PASSWORD),
        ("AccountDescription", "made by skybroker * for tests"),
    ];

    #[tokio::test]
    async fn rpc_retries_throttling_then_succeeds() {
        capture_logs();
        let ok = Canned {
            status: 200,
            headers: vec![("x-acs-request-id", "req-created".to_owned())],
            body: r#"{"RequestId":"req-created"}"#.to_owned(),
        };
        let (addr, server) = Server::start(Check::Acs3, vec![throttled(), throttled(), ok]).await;

        let value = client(addr)
            .rpc(Product::Rds, "CreateAccount", &CREATE_ACCOUNT)
            .await
            .unwrap();

        assert_eq!(value["RequestId"], "req-created");
        server.seen(|seen| {
            assert_eq!(seen.len(), 3);
            for request in seen {
                assert_eq!(request.check, Ok(()));
                assert_eq!(request.method, "POST");
                assert_eq!(request.path, "/");
                assert!(request.body.is_empty());
                assert_eq!(request.header("x-acs-action"), "CreateAccount");
                assert_eq!(request.header("x-acs-version"), "2014-08-15");
                assert_eq!(request.header("host"), addr.to_string());
                assert!(request
                    .query
                    .contains(&("AccountPassword".to_owned(), Some(PASSWORD.to_owned()))));
            }
            // Each attempt is signed anew, with a nonce of its own.
            let mut nonces: Vec<&str> = seen
                .iter()
                .map(|r| r.header("x-acs-signature-nonce"))
                .collect();
            nonces.sort();
            nonces.dedup();
            assert_eq!(nonces.len(), 3);
        });
        let retries = logged("RDS CreateAccount: attempt");
        assert!(
            retries.iter().any(|line| line.starts_with("WARN")
                && line.contains("attempt 1 of 4")
                && line.contains("Throttling.User")
                && line.contains("req-throttled")),
            "{retries:?}"
        );
        assert_no_secret_logged();
    }

    #[tokio::test]
    async fn rpc_gives_up_after_max_attempts_on_5xx() {
        capture_logs();
        let gateway = Canned {
            status: 502,
            headers: vec![],
            body: "<html>Bad Gateway</html>".to_owned(),
        };
        let unavailable = json(
            503,
            serde_json::json!({
                "RequestId": "req-503",
                "Code": "ServiceUnavailable",
                "Message": "The request has failed due to a temporary failure of the server.",
            }),
        );
        let (addr, server) = Server::start(Check::Acs3, vec![gateway, unavailable]).await;

        let err = client(addr)
            .rpc(Product::Ram, "CreateUser", &[("UserName", "skybroker-1")])
            .await
            .unwrap_err();

        server.seen(|seen| {
            assert_eq!(seen.len(), 4);
            assert!(seen.iter().all(|request| request.check == Ok(())));
            assert_eq!(seen[0].header("x-acs-version"), "2015-05-01");
        });
        assert!(
            matches!(&err, AlibabaError::Api { service: "RAM", status: 503, code, .. } if code == "ServiceUnavailable"),
            "{err:?}"
        );
        assert_eq!(err.request_id(), Some("req-503"));
        assert!(err.is_transient());
        match BrokerError::from(err) {
            BrokerError::Transient(text) => assert!(text.contains("req-503"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn rpc_error_bodies_are_decoded_and_not_retried() {
        let not_found = json(
            404,
            serde_json::json!({
                "RequestId": "6B2E2E6C-3A2B-4C4D-8E8F-0A1B2C3D4E5F",
                "HostId": "rds.aliyuncs.com",
                "Code": "InvalidDBInstanceId.NotFound",
                "Message": "The specified instance is not found.",
                "Recommend": "https://api.aliyun.com/troubleshoot?q=InvalidDBInstanceId.NotFound",
            }),
        );
        let (addr, server) = Server::start(Check::Acs3, vec![not_found]).await;

        let err = client(addr)
            .rpc(
                Product::Rds,
                "DescribeDBInstanceAttribute",
                &[("DBInstanceId", "rm-gone")],
            )
            .await
            .unwrap_err();

        server.seen(|seen| assert_eq!(seen.len(), 1));
        match &err {
            AlibabaError::Api {
                service,
                action,
                status,
                code,
                message,
                request_id,
            } => {
                assert_eq!(*service, "RDS");
                assert_eq!(action, "DescribeDBInstanceAttribute");
                assert_eq!(*status, 404);
                assert_eq!(code, "InvalidDBInstanceId.NotFound");
                assert_eq!(message, "The specified instance is not found.");
                assert_eq!(request_id, "6B2E2E6C-3A2B-4C4D-8E8F-0A1B2C3D4E5F");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_not_found());
        assert!(matches!(BrokerError::from(err), BrokerError::NotFound(_)));
    }

    #[tokio::test]
    async fn rpc_non_json_success_is_a_decode_error() {
        let garbled = Canned {
            status: 200,
            headers: vec![("x-acs-request-id", "req-garbled".to_owned())],
            body: "{\"RequestId\":".to_owned(),
        };
        let (addr, _server) = Server::start(Check::Acs3, vec![garbled]).await;
        let err = client(addr)
            .rpc(Product::Rds, "DescribeRegions", &[])
            .await
            .unwrap_err();
        assert!(matches!(err, AlibabaError::Decode { .. }), "{err:?}");
        assert_eq!(err.request_id(), Some("req-garbled"));
    }

    // ===== OSS =====

    #[tokio::test]
    async fn oss_calls_are_signed_and_errors_decoded_from_xml() {
        let stored = Canned {
            status: 200,
            headers: vec![
                ("x-oss-request-id", "oss-req-put".to_owned()),
                ("etag", "\"5D41402ABC4B2A76B9719D911017C592\"".to_owned()),
            ],
            body: String::new(),
        };
        let no_such_bucket = Canned {
            status: 404,
            headers: vec![
                ("content-type", "application/xml".to_owned()),
                ("x-oss-request-id", "oss-req-list".to_owned()),
            ],
            body: r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchBucket</Code>
  <Message>The specified bucket does not exist.</Message>
  <RequestId>oss-req-list</RequestId>
  <HostId>missing.oss-cn-hangzhou.aliyuncs.com</HostId>
  <BucketName>missing</BucketName>
  <EC>0015-00000101</EC>
</Error>"#
                .to_owned(),
        };
        let head_missing = Canned {
            status: 404,
            headers: vec![("x-oss-request-id", "oss-req-head".to_owned())],
            body: String::new(),
        };
        let (addr, server) =
            Server::start(Check::Oss4, vec![stored, no_such_bucket, head_missing]).await;
        let client = client(addr);

        let put = OssRequest::new(Method::PUT, Some("skybroker-test"))
            .key("dir/a b+c.txt")
            .header("Content-Type", "text/plain")
            .header("x-oss-meta-owner", "skybroker")
            .body(b"hello".to_vec());
        let response = client.oss(put).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.request_id, "oss-req-put");
        assert!(response.headers.contains_key("etag"));

        let list = OssRequest::new(Method::GET, Some("missing"))
            .query("list-type", Some("2"))
            .query("prefix", Some("a b/"));
        let err = client.oss(list).await.unwrap_err();
        match &err {
            AlibabaError::Api {
                service,
                action,
                status,
                code,
                message,
                request_id,
            } => {
                assert_eq!(*service, "OSS");
                assert_eq!(action, "GET missing?list-type&prefix");
                assert_eq!(*status, 404);
                assert_eq!(code, "NoSuchBucket");
                assert_eq!(message, "The specified bucket does not exist.");
                assert_eq!(request_id, "oss-req-list");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_not_found());

        let head = OssRequest::new(Method::HEAD, Some("missing")).query("bucketInfo", None);
        let err = client.oss(head).await.unwrap_err();
        assert_eq!(err.code(), None);
        assert_eq!(err.request_id(), Some("oss-req-head"));
        assert!(err.is_not_found());

        server.seen(|seen| {
            assert_eq!(seen.len(), 3);
            assert!(
                seen.iter().all(|request| request.check == Ok(())),
                "{:?}",
                seen.iter().map(|r| &r.check).collect::<Vec<_>>()
            );
            assert_eq!(seen[0].path, "/skybroker-test/dir/a b+c.txt");
            assert_eq!(seen[0].body, b"hello");
            assert_eq!(seen[0].header("x-oss-content-sha256"), "UNSIGNED-PAYLOAD");
            assert_eq!(seen[0].header("content-md5"), "XUFAKrxLKna5cZ2REBfFkg==");
            assert_eq!(seen[1].path, "/missing/");
            assert_eq!(
                seen[1].query,
                [
                    ("list-type".to_owned(), Some("2".to_owned())),
                    ("prefix".to_owned(), Some("a b/".to_owned())),
                ]
            );
            assert_eq!(seen[2].query, [("bucketInfo".to_owned(), None)]);
        });
    }

    #[test]
    fn oss_addressing() {
        let mut config = ClientConfig::new(key(), "cn-hangzhou");
        assert_eq!(config.oss_endpoint, "https://oss-cn-hangzhou.aliyuncs.com");
        // No https endpoint: this test needs no CA certificates on the machine.
        config.rds_endpoint = "http://rds.aliyuncs.com".into();
        config.ram_endpoint = "http://ram.aliyuncs.com".into();
        config.oss_endpoint = "http://oss-cn-hangzhou.aliyuncs.com".into();
        let virtual_hosted = AlibabaClient::new(config.clone()).unwrap();
        config.oss_path_style = true;
        config.oss_endpoint = "http://127.0.0.1:9000".into();
        let path_style = AlibabaClient::new(config).unwrap();

        assert_eq!(
            virtual_hosted.oss_bucket_url("b1"),
            "http://b1.oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(path_style.oss_bucket_url("b1"), "http://127.0.0.1:9000/b1");

        let request = OssRequest::new(Method::GET, Some("b1"))
            .key("x/y z")
            .query("acl", None);
        let (url, host) = virtual_hosted.oss_url(&request).unwrap();
        assert_eq!(
            url.as_str(),
            "http://b1.oss-cn-hangzhou.aliyuncs.com/x/y%20z?acl"
        );
        assert_eq!(host, "b1.oss-cn-hangzhou.aliyuncs.com");
        let (url, host) = path_style.oss_url(&request).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/b1/x/y%20z?acl");
        assert_eq!(host, "127.0.0.1:9000");
        let (url, _) = path_style
            .oss_url(&OssRequest::new(Method::GET, None))
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn defaults_and_endpoints() {
        let config = ClientConfig::new(key(), "cn-hangzhou");
        assert_eq!(config.rds_endpoint, "https://rds.aliyuncs.com");
        assert_eq!(config.ram_endpoint, "https://ram.aliyuncs.com");
        assert_eq!(config.max_attempts, 4);
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.initial_backoff, Duration::from_millis(200));
        assert_eq!(
            ClientConfig::new(key(), "ap-southeast-1").rds_endpoint,
            "https://rds.ap-southeast-1.aliyuncs.com"
        );

        // https endpoints need the system's CA certificates; without any, the client says so.
        match AlibabaClient::new(ClientConfig::new(key(), "cn-hangzhou")) {
            Ok(_) => {}
            Err(AlibabaError::Config(text)) => assert!(text.contains("ca-certificates"), "{text}"),
            Err(other) => panic!("{other:?}"),
        }
        assert_eq!(
            http_date(OffsetDateTime::from_unix_timestamp(1_701_605_532).unwrap()),
            "Sun, 03 Dec 2023 12:12:12 GMT"
        );

        let mut bad = ClientConfig::new(key(), "cn-hangzhou");
        bad.oss_endpoint = "oss-cn-hangzhou.aliyuncs.com".into();
        assert!(matches!(
            AlibabaClient::new(bad),
            Err(AlibabaError::Config(_))
        ));
        let mut bad = ClientConfig::new(key(), "cn-hangzhou");
        bad.max_attempts = 0;
        assert!(matches!(
            AlibabaClient::new(bad),
            Err(AlibabaError::Config(_))
        ));
    }

    #[test]
    fn backoff_grows_with_full_jitter_and_a_cap() {
        let initial = Duration::from_millis(200);
        for _ in 0..100 {
            assert!(backoff(initial, 1) <= Duration::from_millis(200));
            assert!(backoff(initial, 3) <= Duration::from_millis(800));
            assert!(backoff(initial, 40) <= MAX_BACKOFF);
        }
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_as_unauthenticated() {
        let ok = json(200, serde_json::json!({"RequestId": "req-ok"}));
        let (rpc_addr, rpc_server) = Server::start(Check::Acs3, vec![ok.clone()]).await;
        let (oss_addr, _) = Server::start(Check::Oss4, vec![ok]).await;
        let mut config = client(rpc_addr).config().clone();
        config.credentials = CredentialSource::AccessKey(AccessKey {
            id: KEY_ID.to_owned(),
            secret: Secret::new("not-the-secret"),
        });
        config.oss_endpoint = format!("http://{oss_addr}");
        let client = AlibabaClient::new(config).unwrap();

        let err = client
            .rpc(Product::Ram, "GetUser", &[("UserName", "u")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
        assert_eq!(err.request_id(), Some("req-bad-signature"));
        assert!(matches!(
            BrokerError::from(err),
            BrokerError::Unauthenticated(_)
        ));
        // Not retried: a new signature with the same secret is as wrong.
        rpc_server.seen(|seen| assert_eq!(seen.len(), 1));

        let err = client
            .oss(OssRequest::new(Method::GET, Some("b")).query("acl", None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
        assert_eq!(err.request_id(), Some("oss-req-bad-signature"));
        assert!(matches!(
            BrokerError::from(err),
            BrokerError::Unauthenticated(_)
        ));
    }

    // ===== secrets =====

    #[tokio::test]
    async fn secrets_stay_out_of_debug_errors_and_logs() {
        capture_logs();
        // The service echoing a password back (it should not, but one never knows).
        let echo = json(
            400,
            serde_json::json!({
                "RequestId": "req-echo",
                "Code": "InvalidAccountPassword.Malformed",
                "Message": format!("The password {PASSWORD} does not meet the policy."),
            }),
        );
        let (addr, _server) = Server::start(Check::Acs3, vec![echo]).await;
        let client = client(addr);
        let refused = client
            .rpc(Product::Rds, "CreateAccount", &CREATE_ACCOUNT)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("******"), "{refused}");

        // No server at all: the transport error must not carry the URL (the parameters).
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let mut config = client.config().clone();
        config.rds_endpoint = format!("http://{closed_addr}");
        config.max_attempts = 2;
        let unreachable = AlibabaClient::new(config)
            .unwrap()
            .rpc(Product::Rds, "CreateAccount", &CREATE_ACCOUNT)
            .await
            .unwrap_err();
        assert!(
            matches!(unreachable, AlibabaError::Transport { .. }),
            "{unreachable:?}"
        );
        assert!(unreachable.is_transient());

        for text in [
            format!("{:?}", client.config()),
            format!("{client:?}"),
            format!("{refused} {refused:?}"),
            format!("{unreachable} {unreachable:?}"),
            BrokerError::from(refused).to_string(),
            BrokerError::from(unreachable).to_string(),
        ] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!text.contains("Pa55word"), "{text}");
        }
        assert_no_secret_logged();
    }
}
