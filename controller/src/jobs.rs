//! The jobs the dispatcher runs: one plugin call each, on a worker thread.
//!
//! A job carries everything the call needs (the plugin and an owned request), so a worker never
//! touches the map or the store; it reports an [`Outcome`] back to the engine, which applies it.
//! Plugin futures are driven with the runtime handle captured at start (`Handle::block_on`),
//! so async drivers work unchanged while one call occupies one worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use skybroker_brokers::{Broker, BrokerError, OperationKind, OperationRequest, Progress};
use skybroker_storage::{Sealed, ServiceBinding, ServiceInstance};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Which plugin method a job calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Start the operation (provision, update, ...).
    Start,
    /// Poll work the plugin reported in progress.
    Poll,
}

/// One plugin call.
pub struct Job {
    /// Start or poll.
    pub call: Call,
    /// The plugin.
    pub broker: Arc<dyn Broker>,
    /// The request; holds parameters and plugin state, so it is never logged.
    pub request: SealedRequest,
}

/// A job's request with the instance and binding it is built from still packed, as the map
/// keeps them: the worker decodes them ([`SealedRequest::open`]). Decoding the records is most
/// of what building a request costs, and jobs are built by the one scanner task while the
/// workers are many.
pub struct SealedRequest {
    /// The request, but for the fields `open` fills in from the records.
    pub base: OperationRequest,
    /// The instance (as the engine read it under the instance's lock).
    pub instance: Sealed<ServiceInstance>,
    /// The binding, for binding operations.
    pub binding: Option<Sealed<ServiceBinding>>,
    /// Whether `base` already holds the parameters, context and maintenance version (an
    /// update's come with its operation); else they come from the binding or the instance.
    pub from_update: bool,
}

impl SealedRequest {
    /// The full request.
    pub fn open(self) -> OperationRequest {
        let mut request = self.base;
        let instance = self.instance.open();
        request.service_id = instance.service_id;
        request.instance_state = instance.plugin_state;
        let (plan_id, parameters, context) = match self.binding.map(Sealed::<ServiceBinding>::open)
        {
            Some(binding) => {
                request.binding_state = binding.plugin_state;
                (binding.plan_id, binding.parameters, binding.context)
            }
            None => (instance.plan_id, instance.parameters, instance.context),
        };
        if !self.from_update {
            request.plan_id = plan_id;
            request.parameters = parameters;
            request.context = context;
            request.maintenance_version = instance.maintenance_version;
        }
        request
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately not the request: parameters and state may hold secrets.
        f.debug_struct("Job")
            .field("name", &self.name())
            .field("operation_id", &self.operation_id())
            .field("instance_id", &self.instance_id())
            .finish()
    }
}

/// The name of a plugin operation kind, for logs and metric labels.
pub fn kind_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Provision => "provision",
        OperationKind::Update => "update",
        OperationKind::Deprovision => "deprovision",
        OperationKind::Bind => "bind",
        OperationKind::Unbind => "unbind",
    }
}

impl Job {
    /// The operation it advances.
    pub fn operation_id(&self) -> &str {
        &self.request.base.operation_id
    }

    /// The instance the operation belongs to (the engine's per-instance busy mark).
    pub fn instance_id(&self) -> &str {
        &self.request.base.instance_id
    }

    /// A name for logs: `provision`, `poll-bind`, ...
    pub fn name(&self) -> String {
        let kind = kind_name(self.request.base.kind);
        match self.call {
            Call::Start => kind.to_owned(),
            Call::Poll => format!("poll-{kind}"),
        }
    }
}

/// What a job produced, for the engine.
#[derive(Debug)]
pub struct Outcome {
    /// The operation.
    pub operation_id: String,
    /// Its instance.
    pub instance_id: String,
    /// The plugin's answer (a panic becomes a provider error).
    pub result: Result<Progress, BrokerError>,
}

/// A panic inside a plugin, as an error.
#[derive(Debug, thiserror::Error)]
#[error("the plugin panicked")]
struct PluginPanicked;

/// Runs `job` on the current (worker) thread, records the call in `metrics`, and sends its
/// outcome.
pub fn run(job: Job, runtime: &Handle, outcomes: &mpsc::Sender<Outcome>, metrics: &Metrics) {
    let started = std::time::Instant::now();
    let name = job.name();
    let broker = Arc::clone(&job.broker);
    let call = job.call;
    let request = job.request.open();
    // AssertUnwindSafe: the plugin and request are not used after a panic except to report it.
    let result = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            match call {
                Call::Poll => broker.poll(&request).await,
                Call::Start => match request.kind {
                    OperationKind::Provision => broker.provision(&request).await,
                    OperationKind::Update => broker.update(&request).await,
                    OperationKind::Deprovision => broker.deprovision(&request).await,
                    OperationKind::Bind => broker.bind(&request).await,
                    OperationKind::Unbind => broker.unbind(&request).await,
                },
            }
        })
    }))
    .unwrap_or_else(|_| {
        Err(BrokerError::Provider {
            broker: broker.name(),
            source: Box::new(PluginPanicked),
        })
    });
    let elapsed = started.elapsed();
    metrics.observe_plugin_call(broker.name(), request.kind, call, elapsed, &result);
    log::debug!(
        "{name} of operation {} by {} took {elapsed:?}",
        request.operation_id,
        broker.name(),
    );
    let outcome = Outcome {
        operation_id: request.operation_id,
        instance_id: request.instance_id,
        result,
    };
    // The engine's applier stopped only at shutdown; the operation stays in progress in the
    // store and is resumed at the next start.
    if outcomes.blocking_send(outcome).is_err() {
        log::info!("outcome of {name} not applied (shutting down); it resumes at next start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use skybroker_storage::{Change, MemoryStore, StateMap};

    async fn map() -> StateMap {
        let state = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        let instance: ServiceInstance = serde_json::from_value(json!({
            "id": "i-1", "service_id": "svc", "plan_id": "small",
            "parameters": {"size": 1}, "context": {"platform": "cloudfoundry"},
            "maintenance_version": "1.0.0", "state": "ready",
            "plugin_state": {"resource": "r-1"}, "created_at": 1
        }))
        .unwrap();
        let binding: ServiceBinding = serde_json::from_value(json!({
            "id": "b-1", "instance_id": "i-1", "service_id": "svc", "plan_id": "bindable",
            "parameters": {"role": "reader"}, "context": {"platform": "kubernetes"},
            "state": "binding", "plugin_state": {"user": "u-1"}, "created_at": 2
        }))
        .unwrap();
        state
            .commit(vec![
                Change::PutInstance(instance),
                Change::PutBinding(binding),
            ])
            .await
            .unwrap();
        state
    }

    fn base(kind: OperationKind) -> OperationRequest {
        OperationRequest {
            kind,
            operation_id: "op-1".into(),
            instance_id: "i-1".into(),
            binding_id: None,
            service_id: String::new(),
            plan_id: String::new(),
            previous_plan_id: None,
            plan_settings: Arc::new(json!({"mode": "async"})),
            parameters: Value::Null,
            context: Value::Null,
            maintenance_version: None,
            instance_state: Value::Null,
            binding_state: Value::Null,
            reference: Some(json!({"id": 7})),
        }
    }

    #[tokio::test]
    async fn an_instance_operation_gets_the_instance_fields() {
        let state = map().await;
        let request = SealedRequest {
            base: base(OperationKind::Deprovision),
            instance: state.sealed_instance("i-1").unwrap(),
            binding: None,
            from_update: false,
        }
        .open();
        assert_eq!(request.service_id, "svc");
        assert_eq!(request.plan_id, "small");
        assert_eq!(request.parameters, json!({"size": 1}));
        assert_eq!(request.context, json!({"platform": "cloudfoundry"}));
        assert_eq!(request.maintenance_version.as_deref(), Some("1.0.0"));
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
        assert_eq!(request.binding_state, Value::Null);
        assert_eq!(
            request.reference,
            Some(json!({"id": 7})),
            "base fields stay"
        );
    }

    #[tokio::test]
    async fn a_binding_operation_gets_the_bindings_fields_and_its_instances_state() {
        let state = map().await;
        let mut base = base(OperationKind::Bind);
        base.binding_id = Some("b-1".into());
        let request = SealedRequest {
            base,
            instance: state.sealed_instance("i-1").unwrap(),
            binding: state.sealed_binding("b-1"),
            from_update: false,
        }
        .open();
        assert_eq!(request.service_id, "svc");
        assert_eq!(request.plan_id, "bindable");
        assert_eq!(request.parameters, json!({"role": "reader"}));
        assert_eq!(request.context, json!({"platform": "kubernetes"}));
        assert_eq!(request.binding_state, json!({"user": "u-1"}));
        // A binding sees its instance's state.
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
    }

    #[tokio::test]
    async fn an_update_keeps_what_it_brings() {
        let state = map().await;
        let mut base = base(OperationKind::Update);
        base.plan_id = "large".into();
        base.previous_plan_id = Some("small".into());
        base.parameters = json!({"size": 2});
        base.context = json!({"platform": "cloudfoundry", "space_guid": "s"});
        base.maintenance_version = Some("2.0.0".into());
        let request = SealedRequest {
            base,
            instance: state.sealed_instance("i-1").unwrap(),
            binding: None,
            from_update: true,
        }
        .open();
        assert_eq!(request.service_id, "svc");
        assert_eq!(
            (
                request.plan_id.as_str(),
                request.previous_plan_id.as_deref()
            ),
            ("large", Some("small"))
        );
        assert_eq!(request.parameters, json!({"size": 2}));
        assert_eq!(request.maintenance_version.as_deref(), Some("2.0.0"));
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
    }
}
