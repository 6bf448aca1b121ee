//! The test harness: a broker on an ephemeral port and a client that speaks OSB to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use skybroker::Running;
use skybroker_config::{Config, Secret, ServiceOffering, StorageBackend};
use skybroker_storage::Store;

pub const SERVICE: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f0001";
pub const SYNC: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1001";
pub const ASYNC: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1002";
pub const FAIL: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1003";
pub const SIZED: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1004";
pub const NOBIND: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1005";
pub const USER: &str = "platform";
pub const PASSWORD: &str = "s3cret-broker-password";

/// A running broker for one test.
pub struct Broker {
    pub url: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
}

/// The built-in configuration, made fast: memory store, quick scans and polls, and the
/// async plans' delay at `delay_ms`.
pub fn fast_config(delay_ms: u64) -> Config {
    let mut config = Config::builtin();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.username = USER.to_owned();
    config.server.password = Some(Secret::new(PASSWORD));
    config.server.bearer_tokens = vec![Secret::new("token-abc")];
    // SKYBROKER_TEST_STORE=etcd runs the whole suite on etcd (a fresh prefix per broker).
    match std::env::var("SKYBROKER_TEST_STORE").as_deref() {
        Ok("etcd") => {
            let endpoint = std::env::var("SKYBROKER_TEST_ETCD").expect("SKYBROKER_TEST_ETCD");
            config.storage.backend = StorageBackend::Etcd;
            config.storage.etcd.endpoints = vec![endpoint];
            config.storage.etcd.prefix =
                format!("/skybroker-it/{}/", uuid::Uuid::new_v4().simple());
            config.storage.etcd.lease_ttl_secs = 2;
        }
        _ => config.storage.backend = StorageBackend::Memory,
    }
    config.metrics.listen = "127.0.0.1:0".parse().unwrap();
    config.engine.scan_interval_ms = 5;
    config.engine.poll_interval_ms = 20;
    config.engine.max_poll_interval_ms = 50;
    config.server.shutdown_grace_secs = 5;
    for plan in &mut config.services[0].plans {
        if let Some(delay) = std::sync::Arc::make_mut(&mut plan.settings).get_mut("delay_ms") {
            *delay = json!(delay_ms);
        }
    }
    config
}

impl Broker {
    /// The built-in catalog with 300 ms async operations.
    pub async fn start() -> Broker {
        Broker::with_config(fast_config(300)).await
    }

    /// A broker on `config`.
    pub async fn with_config(config: Config) -> Broker {
        let _ = env_logger::builder().is_test(true).try_init();
        let running = skybroker::start(config).await.expect("broker starts");
        Broker {
            url: format!("http://{}", running.addr),
            client: http_client(),
            running: Some(running),
        }
    }

    /// A broker on `config` over `store` instead of the configured one.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Broker {
        let _ = env_logger::builder().is_test(true).try_init();
        let running = skybroker::start_with_store(config, store)
            .await
            .expect("broker starts");
        Broker {
            url: format!("http://{}", running.addr),
            client: http_client(),
            running: Some(running),
        }
    }

    /// `http://` and the metrics listener's address.
    pub fn metrics_url(&self) -> String {
        let running = self.running.as_ref().expect("running");
        format!(
            "http://{}",
            running
                .metrics_addr
                .expect("the metrics listener is enabled")
        )
    }

    /// GETs `path` on the metrics listener with `accept`: status, content type and body.
    pub async fn get_admin(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut request = self.client.get(format!("{}{path}", self.metrics_url()));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, response.text().await.unwrap())
    }

    pub fn core(&self) -> &skybroker::core::Core {
        &self.running.as_ref().unwrap().core
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// A request with valid auth and version headers.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as("2.17", method, path)
    }

    /// A request with valid auth from a client speaking `version`.
    pub fn request_as(&self, version: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", version)
    }

    pub async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text}"))
        };
        (status, body)
    }

    pub async fn put_instance(
        &self,
        id: &str,
        body: &Value,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let query = if accepts_incomplete {
            "?accepts_incomplete=true"
        } else {
            ""
        };
        self.send(
            self.request(Method::PUT, &format!("/v2/service_instances/{id}{query}"))
                .json(body),
        )
        .await
    }

    pub async fn patch_instance(
        &self,
        id: &str,
        body: &Value,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let query = if accepts_incomplete {
            "?accepts_incomplete=true"
        } else {
            ""
        };
        self.send(
            self.request(Method::PATCH, &format!("/v2/service_instances/{id}{query}"))
                .json(body),
        )
        .await
    }

    pub async fn get_instance(&self, id: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, &format!("/v2/service_instances/{id}")))
            .await
    }

    pub async fn delete_instance(
        &self,
        id: &str,
        plan: &str,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let query = format!(
            "?service_id={SERVICE}&plan_id={plan}{}",
            if accepts_incomplete {
                "&accepts_incomplete=true"
            } else {
                ""
            }
        );
        self.send(self.request(
            Method::DELETE,
            &format!("/v2/service_instances/{id}{query}"),
        ))
        .await
    }

    pub async fn delete_instance_of(
        &self,
        id: &str,
        service: &str,
        plan: &str,
    ) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{id}?service_id={service}&plan_id={plan}");
        self.send(self.request(Method::DELETE, &path)).await
    }

    pub async fn delete_binding_of(
        &self,
        instance: &str,
        id: &str,
        service: &str,
        plan: &str,
    ) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{instance}/service_bindings/{id}?service_id={service}&plan_id={plan}");
        self.send(self.request(Method::DELETE, &path)).await
    }

    pub async fn put_binding(
        &self,
        instance: &str,
        id: &str,
        body: &Value,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let query = if accepts_incomplete {
            "?accepts_incomplete=true"
        } else {
            ""
        };
        let path = format!("/v2/service_instances/{instance}/service_bindings/{id}{query}");
        self.send(self.request(Method::PUT, &path).json(body)).await
    }

    pub async fn get_binding(&self, instance: &str, id: &str) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{instance}/service_bindings/{id}");
        self.send(self.request(Method::GET, &path)).await
    }

    pub async fn delete_binding(
        &self,
        instance: &str,
        id: &str,
        plan: &str,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let path = format!(
            "/v2/service_instances/{instance}/service_bindings/{id}?service_id={SERVICE}&plan_id={plan}{}",
            if accepts_incomplete { "&accepts_incomplete=true" } else { "" }
        );
        self.send(self.request(Method::DELETE, &path)).await
    }

    pub async fn last_operation(
        &self,
        instance: &str,
        operation: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut path = format!("/v2/service_instances/{instance}/last_operation");
        if let Some(op) = operation {
            path.push_str(&format!("?operation={op}"));
        }
        self.send(self.request(Method::GET, &path)).await
    }

    pub async fn binding_last_operation(
        &self,
        instance: &str,
        binding: &str,
        operation: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut path =
            format!("/v2/service_instances/{instance}/service_bindings/{binding}/last_operation");
        if let Some(op) = operation {
            path.push_str(&format!("?operation={op}"));
        }
        self.send(self.request(Method::GET, &path)).await
    }

    /// Polls instance last_operation until a terminal state; returns the final body.
    pub async fn wait_instance(&self, instance: &str, operation: &str) -> Value {
        wait_terminal(|| self.last_operation(instance, Some(operation))).await
    }

    /// Polls binding last_operation until a terminal state.
    pub async fn wait_binding(&self, instance: &str, binding: &str, operation: &str) -> Value {
        wait_terminal(|| self.binding_last_operation(instance, binding, Some(operation))).await
    }

    /// Provisions synchronously on `plan` and asserts 201.
    pub async fn provision_sync(&self, id: &str, plan: &str) {
        let (status, body) = self.put_instance(id, &provision_body(plan), false).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Provisions asynchronously and waits for success.
    pub async fn provision_async(&self, id: &str) {
        let (status, body) = self.put_instance(id, &provision_body(ASYNC), true).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let last = self
            .wait_instance(id, body["operation"].as_str().unwrap())
            .await;
        assert_eq!(last["state"], "succeeded", "{last}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A test that panics leaves its broker to the runtime's shutdown; nothing to do.
    }
}

async fn wait_terminal<F, Fut>(mut poll: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = poll().await;
        assert_eq!(status, StatusCode::OK, "last_operation: {body}");
        if body["state"] != "in progress" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "operation did not finish in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid provision body for `plan`.
pub fn provision_body(plan: &str) -> Value {
    let mut body = json!({
        "service_id": SERVICE,
        "plan_id": plan,
        "organization_guid": "org-1",
        "space_guid": "space-1",
        "context": {"platform": "cloudfoundry", "organization_guid": "org-1", "space_guid": "space-1"},
    });
    if plan == SIZED {
        body["parameters"] = json!({"size": 5});
    }
    body
}

/// A valid bind body for `plan`.
pub fn bind_body(plan: &str) -> Value {
    json!({
        "service_id": SERVICE,
        "plan_id": plan,
        "bind_resource": {"app_guid": "app-1"},
        "context": {"platform": "cloudfoundry"},
    })
}

/// An HTTP client for tests. The workspace's reqwest is built with rustls but no default
/// crypto provider (the Alibaba provider brings its own, on ring), so the process default is
/// installed here first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A unique id for a test's instance or binding: `prefix-<32 hex digits>`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An offering of the provider `broker` with `plans`: `(name, settings)`, each plan's id
/// `<id>-<name>`; every plan may be 120 s long.
pub fn provider_offering(
    id: &str,
    broker: &str,
    description: &str,
    plans: &[(&str, Value)],
) -> ServiceOffering {
    let plans: Vec<Value> = plans
        .iter()
        .map(|(name, settings)| {
            json!({
                "id": format!("{id}-{name}"), "name": name, "description": name,
                "settings": settings, "maximum_polling_duration": 120,
            })
        })
        .collect();
    serde_json::from_value(json!({
        "id": id, "name": id, "description": description, "bindable": true,
        "instances_retrievable": true, "bindings_retrievable": true,
        "plan_updateable": true, "broker": broker, "plans": plans,
    }))
    .expect("test offering parses")
}

/// A provision body for the plan `<service>-<plan>` with `parameters`.
pub fn provider_provision_body(service: &str, plan: &str, parameters: Value) -> Value {
    json!({
        "service_id": service,
        "plan_id": format!("{service}-{plan}"),
        "organization_guid": "org", "space_guid": "space",
        "parameters": parameters,
    })
}
