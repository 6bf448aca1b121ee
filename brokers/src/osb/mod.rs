//! Remote OSB brokers: the plugin that forwards every call to an external broker registered
//! through the Service Manager API (`POST /v1/service_brokers`).
//!
//! An external broker's instances are then tracked like the built-in ones: the controller
//! persists each operation before it answers, the engine polls the broker's
//! `last_operation`, a crash resumes what was in flight, and every replica sees the records.
//! The plugin only speaks OSB to the broker: it passes on whether the platform accepts an
//! asynchronous answer, sends `X-Broker-API-Version: 2.17`, the originating identity (the
//! platform and user id Skybroker keeps, D-02) and a request identity (the operation id, the
//! same on every repeat, so both sides' logs can be matched), and turns the broker's answers
//! into [`Progress`] or [`BrokerError`].
//!
//! | broker answers | becomes |
//! |---|---|
//! | 200, 201 (410 on a delete) | `Done` |
//! | 202 | `InProgress`, polled through `last_operation` (a bind then fetches the binding) |
//! | 400 | `InvalidParameters` (the platform's 400) |
//! | 422 | `Unprocessable` (422), `ConcurrencyError` a transient error |
//! | 502, 503, 504, unreachable, garbage | `Transient`: retried until the deadline |
//! | any other | `Failed` with the broker's description |

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::{
    BindingResult, Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress,
    SettingsError,
};

/// The OSB version spoken to external brokers.
pub const API_VERSION: &str = "2.17";

/// How Skybroker authenticates to an external broker.
#[derive(Clone)]
pub enum RemoteAuth {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteAuth::Basic { username, .. } => write!(f, "Basic({username}, ******)"),
            RemoteAuth::Bearer(_) => f.write_str("Bearer(******)"),
        }
    }
}

/// Why talking to an external broker failed, outside a plugin call (catalog fetches).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The broker cannot be reached or did not answer in time.
    #[error("broker at {url} is unreachable: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
    /// The broker answered, but not what OSB says it answers.
    #[error("broker at {url} answered {status}: {message}")]
    BadAnswer {
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
    /// The broker refused Skybroker's credentials.
    #[error("broker at {url} refused the credentials ({status})")]
    Refused {
        /// Where.
        url: String,
        /// 401 or 403.
        status: u16,
    },
}

/// An HTTP client for external brokers: rustls on ring with the system's roots (plain http
/// works without them), a connect and a request timeout, no redirects (credentials go to one
/// host only). Cheap to clone; one is shared by every remote broker, so connections pool.
///
/// # Errors
/// TLS cannot be set up.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SettingsError> {
    let tls = crate::tls::client_config(false).map_err(SettingsError::invalid)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("skybroker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| SettingsError::invalid(format!("HTTP client: {err}")))
}

/// An HTTP client as [`http_client`] builds it, for one broker that wants a client
/// certificate (`identity`: chain and key, PEM) or whose certificate chains to `ca_pem`.
///
/// # Errors
/// PEM that holds no certificate or a key rustls cannot use.
pub fn http_client_for(
    timeout: Duration,
    ca_pem: Option<&str>,
    identity: Option<(&str, &str)>,
) -> Result<reqwest::Client, SettingsError> {
    let tls = crate::tls::client_config_for(ca_pem, identity).map_err(SettingsError::invalid)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("skybroker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| SettingsError::invalid(format!("HTTP client: {err}")))
}

/// The plugin of one external broker.
#[derive(Debug, Clone)]
pub struct RemoteBroker {
    /// The registered name (for logs and errors).
    name: String,
    /// The base URL, without a trailing slash.
    url: String,
    auth: RemoteAuth,
    http: reqwest::Client,
}

/// One answer of the broker: status and body (`Null` when empty).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// The broker's `description` (or `error`), for messages.
    fn description(&self) -> String {
        let text = |key: &str| {
            self.body
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        text("description")
            .or_else(|| text("error"))
            .unwrap_or_else(|| format!("the broker answered {}", self.status))
    }

    /// An OSB field of the body.
    fn field(&self, key: &str) -> Option<Value> {
        self.body.get(key).filter(|v| !v.is_null()).cloned()
    }
}

impl RemoteBroker {
    /// The plugin for the broker at `url` (its catalog is `<url>/v2/catalog`).
    pub fn new(name: &str, url: &str, auth: RemoteAuth, http: reqwest::Client) -> Self {
        RemoteBroker {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            auth,
            http,
        }
    }

    /// `GET /v2/catalog`: the broker's `services`.
    ///
    /// # Errors
    /// Unreachable, credentials refused, or not an OSB catalog.
    pub async fn fetch_catalog(&self) -> Result<Vec<Value>, RemoteError> {
        let url = format!("{}/v2/catalog", self.url);
        let response = self
            .authorized(self.http.get(&url))
            .header("X-Broker-API-Version", API_VERSION)
            .send()
            .await
            .map_err(|err| RemoteError::Unreachable {
                url: url.clone(),
                message: without_url(&err),
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RemoteError::Refused {
                url,
                status: status.as_u16(),
            });
        }
        let bad = |message: String| RemoteError::BadAnswer {
            url: url.clone(),
            status: status.as_u16(),
            message,
        };
        if !status.is_success() {
            return Err(bad("expected 200 with the catalog".to_owned()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|err| bad(format!("not a JSON catalog: {}", without_url(&err))))?;
        match body.get("services") {
            Some(Value::Array(services)) => Ok(services.clone()),
            _ => Err(bad("the catalog has no `services` array".to_owned())),
        }
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            RemoteAuth::Basic { username, password } => {
                builder.basic_auth(username, Some(password))
            }
            RemoteAuth::Bearer(token) => builder.bearer_auth(token),
        }
    }

    /// One OSB call for `request`; a broker that cannot be reached or answers garbage is a
    /// transient error (the engine retries until the operation's deadline).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        request: &OperationRequest,
    ) -> Result<Answer, BrokerError> {
        let url = format!("{}{path}", self.url);
        let mut builder = self
            .authorized(self.http.request(method, &url))
            .query(query)
            .header("X-Broker-API-Version", API_VERSION)
            .header(
                "X-Broker-API-Request-Identity",
                request.operation_id.as_str(),
            );
        if let Some(identity) = originating_identity(request.originating_identity.as_deref()) {
            builder = builder.header("X-Broker-API-Originating-Identity", identity);
        }
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.map_err(|err| {
            BrokerError::Transient(format!(
                "broker {} is unreachable: {}",
                self.name,
                without_url(&err)
            ))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|err| {
            BrokerError::Transient(format!(
                "broker {} broke off its answer: {}",
                self.name,
                without_url(&err)
            ))
        })?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                BrokerError::Transient(format!(
                    "broker {} answered {status} with a body that is not JSON",
                    self.name
                ))
            })?
        };
        Ok(Answer { status, body })
    }

    /// The error of an answer no success: what OSB says each status means.
    fn refusal(&self, answer: &Answer) -> BrokerError {
        let description = answer.description();
        match answer.status {
            StatusCode::BAD_REQUEST => BrokerError::InvalidParameters(description),
            StatusCode::UNPROCESSABLE_ENTITY
                if answer.body.get("error").and_then(Value::as_str) == Some("ConcurrencyError") =>
            {
                BrokerError::Transient(format!("broker {}: {description}", self.name))
            }
            StatusCode::UNPROCESSABLE_ENTITY => BrokerError::Unprocessable(description),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BrokerError::Unauthenticated(
                format!("broker {} refused Skybroker's credentials", self.name),
            ),
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS => {
                BrokerError::Transient(format!("broker {}: {description}", self.name))
            }
            _ => BrokerError::Failed(format!("broker {}: {description}", self.name)),
        }
    }

    /// The `Progress` of a create or change the broker answered.
    fn progress(
        &self,
        answer: Answer,
        done: impl FnOnce(&Answer) -> Completion,
    ) -> Result<Progress, BrokerError> {
        match answer.status {
            StatusCode::OK | StatusCode::CREATED => Ok(Progress::Done(done(&answer))),
            StatusCode::ACCEPTED => Ok(Progress::InProgress {
                reference: json!({ "operation": answer.field("operation") }),
                description: None,
                state: None,
            }),
            _ => Err(self.refusal(&answer)),
        }
    }

    /// The `Progress` of a delete the broker answered (410: already gone, done).
    fn deleted(&self, answer: Answer) -> Result<Progress, BrokerError> {
        match answer.status {
            StatusCode::GONE => Ok(Progress::Done(Completion::default())),
            _ => self.progress(answer, |_| Completion::default()),
        }
    }

    /// A create or change (`PUT`, `PATCH`) of `path` with `body`, the platform's
    /// `accepts_incomplete` passed on; `done` reads what a finished one answered.
    async fn change(
        &self,
        method: Method,
        path: &str,
        body: Map<String, Value>,
        request: &OperationRequest,
        done: impl FnOnce(&Answer) -> Completion,
    ) -> Result<Progress, BrokerError> {
        let query = [("accepts_incomplete", accepts_incomplete(request))];
        let answer = self
            .call(method, path, &query, Some(Value::Object(body)), request)
            .await?;
        self.progress(answer, done)
    }

    /// Fetches a binding's credentials after its asynchronous bind succeeded.
    async fn fetch_binding(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let answer = self
            .call(Method::GET, &binding_path(request)?, &[], None, request)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.refusal(&answer));
        }
        Ok(Progress::Done(Completion {
            binding: Some(binding_result(&answer)),
            ..Completion::default()
        }))
    }
}

/// `platform base64({"user_id": user})` from Skybroker's `platform user-id` (D-02 keeps no
/// more than that, so no more is passed on).
fn originating_identity(requested_by: Option<&str>) -> Option<String> {
    let (platform, user) = requested_by?.split_once(' ')?;
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&json!({ "user_id": user })).ok()?);
    Some(format!("{platform} {encoded}"))
}

/// A reqwest error's text without the URL (it may hold credentials in its user info).
fn without_url(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    if let Some(url) = err.url() {
        message = message.replace(url.as_str(), "<broker>");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn instance_path(request: &OperationRequest) -> String {
    format!("/v2/service_instances/{}", request.instance_id)
}

fn binding_path(request: &OperationRequest) -> Result<String, BrokerError> {
    let binding = request
        .binding_id
        .as_ref()
        .ok_or_else(|| BrokerError::Failed("a binding call without a binding id".to_owned()))?;
    Ok(format!(
        "/v2/service_instances/{}/service_bindings/{binding}",
        request.instance_id
    ))
}

/// What a bind answer carries for the platform.
fn binding_result(answer: &Answer) -> BindingResult {
    BindingResult {
        credentials: answer.field("credentials"),
        endpoints: answer.field("endpoints"),
        syslog_drain_url: answer
            .field("syslog_drain_url")
            .and_then(|v| v.as_str().map(str::to_owned)),
        route_service_url: answer
            .field("route_service_url")
            .and_then(|v| v.as_str().map(str::to_owned)),
        volume_mounts: answer.field("volume_mounts"),
        metadata: answer.field("metadata"),
    }
}

/// What a provision or update answer carries for the instance.
fn instance_completion(answer: &Answer) -> Completion {
    Completion {
        dashboard_url: answer
            .field("dashboard_url")
            .and_then(|v| v.as_str().map(str::to_owned)),
        metadata: answer.field("metadata"),
        ..Completion::default()
    }
}

/// The body fields every create and update sends.
fn common_body(request: &OperationRequest) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("service_id".into(), json!(request.service_id.as_str()));
    body.insert("plan_id".into(), json!(request.plan_id.as_str()));
    if !request.context.is_null() {
        body.insert("context".into(), request.context.clone());
    }
    if request
        .parameters
        .as_object()
        .is_some_and(|p| !p.is_empty())
    {
        body.insert("parameters".into(), request.parameters.clone());
    }
    if let Some(version) = &request.maintenance_version {
        body.insert("maintenance_info".into(), json!({ "version": version }));
    }
    body
}

fn accepts_incomplete(request: &OperationRequest) -> &'static str {
    if request.accepts_incomplete {
        "true"
    } else {
        "false"
    }
}

#[async_trait]
impl Broker for RemoteBroker {
    fn name(&self) -> &'static str {
        "osb"
    }

    /// The broker decides: the platform's `accepts_incomplete` is passed on, and the broker
    /// answers 422 AsyncRequired when it needs it.
    fn is_async(&self, _plan_settings: &Value, _kind: OperationKind) -> bool {
        false
    }

    fn async_when_accepted(&self) -> bool {
        true
    }

    fn check_plan_settings(&self, _plan_settings: &Value) -> Result<(), SettingsError> {
        Ok(())
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let mut body = common_body(request);
        // Deprecated but still required by brokers written before 2.12: taken from the
        // Cloud Foundry context when it has them.
        for key in ["organization_guid", "space_guid"] {
            if let Some(value) = request.context.get(key).filter(|v| v.is_string()) {
                body.insert(key.into(), value.clone());
            }
        }
        self.change(
            Method::PUT,
            &instance_path(request),
            body,
            request,
            instance_completion,
        )
        .await
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let mut body = common_body(request);
        let previous_plan = request
            .previous_plan_id
            .as_ref()
            .unwrap_or(&request.plan_id);
        body.insert(
            "previous_values".into(),
            json!({ "service_id": request.service_id.as_str(), "plan_id": previous_plan.as_str() }),
        );
        self.change(
            Method::PATCH,
            &instance_path(request),
            body,
            request,
            instance_completion,
        )
        .await
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let answer = self
            .call(
                Method::DELETE,
                &instance_path(request),
                &[
                    ("service_id", request.service_id.as_str()),
                    ("plan_id", request.plan_id.as_str()),
                    ("accepts_incomplete", accepts_incomplete(request)),
                ],
                None,
                request,
            )
            .await?;
        self.deleted(answer)
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let body = common_body(request);
        self.change(
            Method::PUT,
            &binding_path(request)?,
            body,
            request,
            |answer| Completion {
                binding: Some(binding_result(answer)),
                ..Completion::default()
            },
        )
        .await
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let answer = self
            .call(
                Method::DELETE,
                &binding_path(request)?,
                &[
                    ("service_id", request.service_id.as_str()),
                    ("plan_id", request.plan_id.as_str()),
                    ("accepts_incomplete", accepts_incomplete(request)),
                ],
                None,
                request,
            )
            .await?;
        self.deleted(answer)
    }

    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let reference = request.reference.clone().unwrap_or(Value::Null);
        let operation = reference
            .get("operation")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let path = if request.kind.is_binding() {
            format!("{}/last_operation", binding_path(request)?)
        } else {
            format!("{}/last_operation", instance_path(request))
        };
        let mut query = vec![
            ("service_id", request.service_id.as_str()),
            ("plan_id", request.plan_id.as_str()),
        ];
        if let Some(operation) = &operation {
            query.push(("operation", operation));
        }
        let answer = self.call(Method::GET, &path, &query, None, request).await?;
        let deleting = matches!(
            request.kind,
            OperationKind::Deprovision | OperationKind::Unbind
        );
        match answer.status {
            StatusCode::GONE if deleting => return Ok(Progress::Done(Completion::default())),
            StatusCode::OK => {}
            _ => return Err(self.refusal(&answer)),
        }
        let description = answer
            .field("description")
            .and_then(|v| v.as_str().map(str::to_owned));
        match answer.body.get("state").and_then(Value::as_str) {
            Some("in progress") => Ok(Progress::InProgress {
                reference,
                description,
                state: None,
            }),
            Some("succeeded") if request.kind == OperationKind::Bind => {
                self.fetch_binding(request).await
            }
            Some("succeeded") => Ok(Progress::Done(Completion::default())),
            Some("failed") => Ok(Progress::Failed {
                description: description
                    .unwrap_or_else(|| format!("broker {} reports a failure", self.name)),
                instance_usable: answer.field("instance_usable").and_then(|v| v.as_bool()),
                update_repeatable: answer.field("update_repeatable").and_then(|v| v.as_bool()),
            }),
            _ => Err(BrokerError::Transient(format!(
                "broker {} answered last_operation without a valid state",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originating_identity_passed_on_holds_the_platform_and_user_only() {
        let header = originating_identity(Some("cloudfoundry user-42")).unwrap();
        let (platform, encoded) = header.split_once(' ').unwrap();
        assert_eq!(platform, "cloudfoundry");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let value: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(value, json!({"user_id": "user-42"}));
        assert_eq!(originating_identity(None), None);
    }

    #[test]
    fn credentials_never_show() {
        let shown = format!(
            "{:?} {:?}",
            RemoteAuth::Basic {
                username: "u".into(),
                password: "pw-secret".into()
            },
            RemoteAuth::Bearer("tok-secret".into())
        );
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn statuses_map_to_what_osb_says_they_mean() {
        let broker = RemoteBroker::new(
            "ext",
            "http://127.0.0.1:1",
            RemoteAuth::Bearer("t".into()),
            http_client(Duration::from_secs(1)).unwrap(),
        );
        let answer = |status: u16, body: Value| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body,
        };
        let bad = broker.refusal(&answer(400, json!({"description": "size too big"})));
        assert!(
            matches!(&bad, BrokerError::InvalidParameters(d) if d == "size too big"),
            "{bad:?}"
        );
        let busy = broker.refusal(&answer(422, json!({"error": "ConcurrencyError"})));
        assert!(busy.is_transient(), "{busy:?}");
        let refused = broker.refusal(&answer(422, json!({"error": "AsyncRequired"})));
        assert!(refused.is_client_error(), "{refused:?}");
        assert!(broker.refusal(&answer(503, Value::Null)).is_transient());
        let failed = broker.refusal(&answer(500, json!({"description": "quota"})));
        assert!(
            matches!(&failed, BrokerError::Failed(d) if d.contains("quota")),
            "{failed:?}"
        );
        let gone = broker.deleted(answer(410, json!({}))).unwrap();
        assert_eq!(gone, Progress::Done(Completion::default()));
        let accepted = broker
            .progress(answer(202, json!({"operation": "op-9"})), |_| {
                Completion::default()
            })
            .unwrap();
        assert!(
            matches!(&accepted, Progress::InProgress { reference, .. } if reference["operation"] == "op-9"),
            "{accepted:?}"
        );
    }
}
