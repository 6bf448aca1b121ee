//! The sandbox plugin: a simulated cloud service that behaves like a real one, without a cloud.
//!
//! Platform teams use it to test their OSB integration and we use it for benchmarks, so every
//! behaviour is set per plan in `settings`:
//!
//! | setting | meaning | default |
//! |---|---|---|
//! | `mode` | `sync` (every call completes at once), `async` (every call is long-running), `fail` (provision is long-running and fails; the rest is synchronous) | required |
//! | `delay_ms` | how long an async operation runs; a sync call sleeps this long on its worker | 1000 async, 0 sync |
//! | `failure_rate` | share (0.0–1.0) of async operations that end `failed` | 0.0 |
//! | `failure_message` | description of failures | a generic one |
//! | `missing_on_delete` | deprovision and unbind report the resource already gone (simulates deletion out of band) | false |
//! | `binding_ttl_secs` | bindings expire this long after they are made (`metadata.expires_at`, `renew_before` at half) | none |
//!
//! Long-running work is a reference holding the time it completes, so a restarted broker polls
//! it to the same end; whether an operation fails is derived from its id, so a repeated call
//! answers the same. A provision parameter `"reject": "<reason>"` makes the call fail as a
//! client error (400), to exercise that path.
//!
//! Shaped like every provider folder: this file is the plugin, [`config`] its plan settings;
//! there is no cloud, so no client, and its errors are the settings' own.

mod config;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::SettingsError;
use crate::{
    BindingResult, Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress,
};
use config::Settings;

/// The sandbox plugin.
#[derive(Debug, Default)]
pub struct Sandbox;

impl Sandbox {
    /// A sandbox plugin.
    pub fn new() -> Self {
        Sandbox
    }

    /// Starts an operation: at once for sync plans, as a timed reference for async ones.
    async fn start(
        &self,
        request: &OperationRequest,
        done: impl FnOnce() -> Completion,
    ) -> Result<Progress, BrokerError> {
        let settings = Settings::parse(&request.plan_settings)?;
        let delay = settings.delay(request.kind);
        if settings.is_async(request.kind) {
            let ready_at = now_millis() + delay.as_millis() as u64;
            let completion = done();
            return Ok(Progress::InProgress {
                reference: json!({ "ready_at": ready_at }),
                description: Some(format!("sandbox {} running", request.kind.name())),
                state: completion.state,
            });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(if settings.fails(request) {
            settings.failure()
        } else {
            Progress::Done(done())
        })
    }

    fn instance_state(request: &OperationRequest) -> Value {
        let mut state = json!({
            "resource": format!("sandbox-{}", request.instance_id),
            "plan_id": request.plan_id,
        });
        if let Some(size) = request.parameters.get("size") {
            state["size"] = size.clone();
        }
        state
    }

    /// OSB-BIND-12 binding metadata for a plan whose bindings expire.
    fn binding_metadata(request: &OperationRequest) -> Option<Value> {
        let ttl = Settings::parse(&request.plan_settings)
            .ok()?
            .binding_ttl_secs?;
        let now = time::OffsetDateTime::now_utc();
        let at = |seconds: u64| {
            let when = now + time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
            when.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        Some(json!({ "expires_at": at(ttl)?, "renew_before": at(ttl / 2)? }))
    }

    fn binding_completion(request: &OperationRequest) -> Completion {
        // The binding sees its instance's state: the resource name comes from provision.
        let resource = request
            .instance_state
            .get("resource")
            .and_then(Value::as_str)
            .unwrap_or("sandbox-unknown")
            .to_owned();
        let binding_id = request.binding_id.clone().unwrap_or_default();
        let username = format!("u-{}", short(&binding_id));
        let password = uuid::Uuid::new_v4().simple().to_string();
        let host = format!("{resource}.sandbox.invalid");
        Completion {
            state: Some(json!({ "username": username })),
            binding: Some(BindingResult {
                credentials: Some(json!({
                    "uri": format!("sandbox://{username}:{password}@{host}:5432/{resource}"),
                    "username": username,
                    "password": password,
                    "host": host,
                    "port": 5432,
                    "resource": resource,
                })),
                endpoints: Some(json!([{ "host": host, "ports": ["5432"], "protocol": "tcp" }])),
                metadata: Self::binding_metadata(request),
                ..BindingResult::default()
            }),
            ..Completion::default()
        }
    }

    fn check_delete(request: &OperationRequest) -> Result<(), BrokerError> {
        let settings = Settings::parse(&request.plan_settings)?;
        if settings.missing_on_delete {
            return Err(BrokerError::NotFound(format!(
                "sandbox resource of {} is already gone",
                request
                    .binding_id
                    .as_deref()
                    .unwrap_or(&request.instance_id)
            )));
        }
        Ok(())
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn short(id: &str) -> String {
    id.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect()
}

#[async_trait]
impl Broker for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn is_async(&self, plan_settings: &Value, kind: OperationKind) -> bool {
        Settings::parse(plan_settings).is_ok_and(|s| s.is_async(kind))
    }

    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError> {
        Settings::parse(plan_settings).map(|_| ())
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        if let Some(reason) = request.parameters.get("reject").and_then(Value::as_str) {
            return Err(BrokerError::InvalidParameters(reason.to_owned()));
        }
        let state = Self::instance_state(request);
        let settings = Settings::parse(&request.plan_settings)?;
        let dashboard_url = (!settings.is_async(request.kind))
            .then(|| format!("https://sandbox.invalid/dashboard/{}", request.instance_id));
        self.start(request, || Completion {
            state: Some(state),
            dashboard_url,
            ..Completion::default()
        })
        .await
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let state = Self::instance_state(request);
        self.start(request, || Completion {
            state: Some(state),
            ..Completion::default()
        })
        .await
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        Self::check_delete(request)?;
        self.start(request, Completion::default).await
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let completion = Self::binding_completion(request);
        self.start(request, || completion).await
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        Self::check_delete(request)?;
        self.start(request, Completion::default).await
    }

    async fn poll(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = Settings::parse(&request.plan_settings)?;
        let ready_at = request
            .reference
            .as_ref()
            .and_then(|r| r.get("ready_at"))
            .and_then(Value::as_u64)
            .ok_or_else(|| BrokerError::NotFound("no sandbox operation reference".to_owned()))?;
        if now_millis() < ready_at {
            return Ok(Progress::InProgress {
                reference: json!({ "ready_at": ready_at }),
                description: Some(format!("sandbox {} running", request.kind.name())),
                state: None,
            });
        }
        if settings.fails(request) {
            return Ok(settings.failure());
        }
        Ok(Progress::Done(match request.kind {
            // No dashboard URL here: the spec wants one in the first response or never
            // (OSB-PROV-14), and the 202 went out before the sandbox ran.
            OperationKind::Provision | OperationKind::Update => Completion {
                state: Some(Self::instance_state(request)),
                ..Completion::default()
            },
            OperationKind::Bind => Self::binding_completion(request),
            OperationKind::Deprovision | OperationKind::Unbind => Completion::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(kind: OperationKind, settings: Value) -> OperationRequest {
        OperationRequest {
            kind,
            operation_id: "op-1".into(),
            instance_id: "i-1".into(),
            binding_id: Some("b-1".into()),
            service_id: "s".into(),
            plan_id: "p".into(),
            previous_plan_id: None,
            plan_settings: settings.into(),
            parameters: json!({"size": 3}),
            context: Value::Null,
            maintenance_version: None,
            instance_state: json!({"resource": "sandbox-i-1"}),
            binding_state: Value::Null,
            reference: None,
            accepts_incomplete: true,
            originating_identity: None,
        }
    }

    #[tokio::test]
    async fn sync_plans_complete_at_once_with_state() {
        let sandbox = Sandbox::new();
        let req = request(OperationKind::Provision, json!({"mode": "sync"}));
        assert!(!sandbox.is_async(&req.plan_settings, OperationKind::Provision));
        let Progress::Done(done) = sandbox.provision(&req).await.unwrap() else {
            panic!("sync provision must be done");
        };
        assert_eq!(done.state.unwrap()["size"], 3);
    }

    #[tokio::test]
    async fn async_plans_run_until_their_reference_is_due() {
        let sandbox = Sandbox::new();
        let mut req = request(
            OperationKind::Bind,
            json!({"mode": "async", "delay_ms": 50}),
        );
        let Progress::InProgress { reference, .. } = sandbox.bind(&req).await.unwrap() else {
            panic!("async bind must be in progress");
        };
        req.reference = Some(reference);
        assert!(matches!(
            sandbox.poll(&req).await.unwrap(),
            Progress::InProgress { .. }
        ));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let Progress::Done(done) = sandbox.poll(&req).await.unwrap() else {
            panic!("due bind must be done");
        };
        let credentials = done.binding.unwrap().credentials.unwrap();
        // The binding sees its instance's state.
        assert_eq!(credentials["resource"], "sandbox-i-1");
    }

    #[tokio::test]
    async fn every_binding_gets_its_own_secret() {
        let sandbox = Sandbox::new();
        let req = request(OperationKind::Bind, json!({"mode": "sync"}));
        let secret = |p: Progress| match p {
            Progress::Done(c) => c.binding.unwrap().credentials.unwrap()["password"].clone(),
            other => panic!("{other:?}"),
        };
        let a = secret(sandbox.bind(&req).await.unwrap());
        let b = secret(sandbox.bind(&req).await.unwrap());
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn failure_rate_is_stable_per_operation() {
        let settings = Settings::parse(&json!({"mode": "async", "failure_rate": 0.5})).unwrap();
        let mut failures = 0;
        for n in 0..200 {
            let mut req = request(OperationKind::Provision, json!({}));
            req.operation_id = format!("op-{n}").into();
            let first = settings.fails(&req);
            assert_eq!(first, settings.fails(&req), "repeats agree");
            failures += usize::from(first);
        }
        assert!((60..140).contains(&failures), "about half fail: {failures}");
    }

    #[test]
    fn settings_are_checked() {
        let sandbox = Sandbox::new();
        assert!(sandbox
            .check_plan_settings(&json!({"mode": "async"}))
            .is_ok());
        assert!(sandbox.check_plan_settings(&json!({"mode": "x"})).is_err());
        assert!(sandbox
            .check_plan_settings(&json!({"mode": "sync", "failure_rate": 2}))
            .is_err());
        assert!(sandbox
            .check_plan_settings(&json!({"mode": "sync", "delay": 1}))
            .is_err());
    }
}
