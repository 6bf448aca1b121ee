//! The jobs the dispatcher runs: one plugin call each, on a worker thread.
//!
//! A job carries everything the call needs (the plugin and an owned request), so a worker never
//! touches the map or the store; it reports an [`Outcome`] back to the engine, which applies it.
//! Plugin futures are driven with the runtime handle captured at start (`Handle::block_on`),
//! so async drivers work unchanged while one call occupies one worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value;
use skybroker_brokers::{
    Broker, BrokerError, InstanceId, OperationId, OperationKind, OperationRequest, Progress,
};
use skybroker_storage::{Operation, Sealed, ServiceBinding, ServiceInstance};
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

impl Call {
    /// The `call` label of the provider metrics.
    pub fn label(self) -> &'static str {
        match self {
            Call::Start => "start",
            Call::Poll => "poll",
        }
    }
}

/// One plugin call.
pub struct Job {
    /// Which operation.
    pub kind: OperationKind,
    /// Start or poll.
    pub call: Call,
    /// The plugin.
    pub broker: Arc<dyn Broker>,
    /// The request; holds parameters and plugin state, so it is never logged.
    pub request: SealedRequest,
}

/// A job's request as the records it is built from, still packed as the map keeps them: the
/// worker decodes them into the plugin's request ([`SealedRequest::open`]). Decoding the
/// records is most of what building a request costs, and jobs are built by the one scanner
/// task while the workers are many.
pub struct SealedRequest {
    /// The operation (as the engine read it under the instance's lock).
    pub operation: Sealed<Operation>,
    /// Its instance.
    pub instance: Sealed<ServiceInstance>,
    /// Its binding, for binding operations.
    pub binding: Option<Sealed<ServiceBinding>>,
    /// The settings of the plan the call works with.
    pub plan_settings: Arc<Value>,
}

impl SealedRequest {
    /// The plugin's request: an update's plan, parameters, context and version come with its
    /// operation; other operations take them from the binding, else the instance. A binding
    /// sees its instance's state.
    pub fn open(self) -> OperationRequest {
        let operation = self.operation.open();
        let instance = self.instance.open();
        let (binding_state, binding) = match self.binding.map(|binding| binding.open()) {
            Some(mut binding) => (std::mem::take(&mut binding.plugin_state), Some(binding)),
            None => (Value::Null, None),
        };
        let (plan_id, parameters, context, maintenance_version, previous_plan_id) =
            match (operation.update, binding) {
                (Some(update), _) => (
                    update.plan_id,
                    update.parameters,
                    update.context,
                    update.maintenance_version,
                    Some(update.previous_plan_id),
                ),
                (None, Some(binding)) => (
                    binding.plan_id,
                    binding.parameters,
                    binding.context,
                    instance.maintenance_version,
                    None,
                ),
                (None, None) => (
                    instance.plan_id,
                    instance.parameters,
                    instance.context,
                    instance.maintenance_version,
                    None,
                ),
            };
        let reference = match operation.reference {
            Some(reference) => Some(reference),
            // `Null` only marks "this delete halted a create" (D-17) that had no reference yet.
            None => operation.halted_reference.filter(|r| !r.is_null()),
        };
        OperationRequest {
            kind: operation.kind,
            operation_id: operation.id,
            instance_id: operation.instance_id,
            binding_id: operation.binding_id,
            service_id: instance.service_id,
            plan_id,
            previous_plan_id,
            plan_settings: self.plan_settings,
            parameters,
            context,
            maintenance_version,
            instance_state: instance.plugin_state,
            binding_state,
            reference,
            accepts_incomplete: !operation.sync,
            originating_identity: operation.requested_by,
        }
    }
}

impl Job {
    /// The operation it advances.
    pub fn operation_id(&self) -> &str {
        self.request.operation.id()
    }

    /// The instance the operation belongs to (the engine's per-instance busy mark).
    pub fn instance_id(&self) -> &str {
        self.request.operation.instance_id()
    }

    /// A name for logs: `provision`, `poll-bind`, ...
    pub fn name(&self) -> String {
        let kind = self.kind.name();
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
    pub operation_id: OperationId,
    /// Its instance.
    pub instance_id: InstanceId,
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
    metrics.observe_plugin_call(broker.name(), request.kind, call.label(), elapsed, &result);
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
    use serde_json::json;
    use skybroker_storage::{Change, MemoryStore, StateMap};

    /// A map with an instance, a binding of it, and `operation` (in progress).
    async fn map(operation: Value) -> StateMap {
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
        let mut record = json!({
            "id": "op-1", "instance_id": "i-1", "state": "in_progress", "sync": false,
            "created_at": 3, "deadline": 4
        });
        record
            .as_object_mut()
            .unwrap()
            .extend(operation.as_object().unwrap().clone());
        let operation: Operation = serde_json::from_value(record).unwrap();
        state
            .commit(vec![
                Change::PutInstance(instance),
                Change::PutBinding(binding),
                Change::PutOperation(operation),
            ])
            .await
            .unwrap();
        state
    }

    fn sealed(state: &StateMap, binding: bool) -> SealedRequest {
        let dispatchable = state.to_dispatch("op-1", "i-1").unwrap();
        SealedRequest {
            operation: dispatchable.operation,
            instance: dispatchable.instance.unwrap(),
            binding: binding.then(|| state.sealed_binding("b-1").unwrap()),
            plan_settings: Arc::new(json!({"mode": "async"})),
        }
    }

    #[tokio::test]
    async fn an_instance_operation_gets_the_instance_fields() {
        let state = map(json!({"kind": "deprovision", "reference": {"id": 7}})).await;
        let request = sealed(&state, false).open();
        assert_eq!(request.kind, OperationKind::Deprovision);
        assert_eq!(
            (request.operation_id.as_str(), request.instance_id.as_str()),
            ("op-1", "i-1")
        );
        assert_eq!(request.service_id, "svc");
        assert_eq!(request.plan_id, "small");
        assert_eq!(request.parameters, json!({"size": 1}));
        assert_eq!(request.context, json!({"platform": "cloudfoundry"}));
        assert_eq!(request.maintenance_version.as_deref(), Some("1.0.0"));
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
        assert_eq!(request.binding_state, Value::Null);
        assert_eq!(request.reference, Some(json!({"id": 7})));
        assert_eq!(*request.plan_settings, json!({"mode": "async"}));
    }

    #[tokio::test]
    async fn a_binding_operation_gets_the_bindings_fields_and_its_instances_state() {
        let state = map(json!({"kind": "bind", "binding_id": "b-1"})).await;
        let request = sealed(&state, true).open();
        assert_eq!(request.binding_id.as_deref(), Some("b-1"));
        assert_eq!(request.service_id, "svc");
        assert_eq!(request.plan_id, "bindable");
        assert_eq!(request.parameters, json!({"role": "reader"}));
        assert_eq!(request.context, json!({"platform": "kubernetes"}));
        assert_eq!(request.binding_state, json!({"user": "u-1"}));
        // A binding sees its instance's state.
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
        assert_eq!(request.reference, None, "not started yet");
    }

    #[tokio::test]
    async fn an_update_keeps_what_it_brings() {
        let state = map(json!({"kind": "update", "update": {
            "plan_id": "large", "previous_plan_id": "small", "parameters": {"size": 2},
            "context": {"space_guid": "s"}, "maintenance_version": "2.0.0"
        }}))
        .await;
        let request = sealed(&state, false).open();
        assert_eq!(request.service_id, "svc");
        assert_eq!(
            (
                request.plan_id.as_str(),
                request.previous_plan_id.as_deref()
            ),
            ("large", Some("small"))
        );
        assert_eq!(request.parameters, json!({"size": 2}));
        assert_eq!(request.context, json!({"space_guid": "s"}));
        assert_eq!(request.maintenance_version.as_deref(), Some("2.0.0"));
        assert_eq!(request.instance_state, json!({"resource": "r-1"}));
    }

    #[tokio::test]
    async fn a_halting_delete_carries_the_reference_of_the_create_it_halts() {
        // D-17: the create's reference, unless it had none yet (`null`).
        let state = map(json!({"kind": "deprovision", "halted_reference": {"id": 9}})).await;
        assert_eq!(
            sealed(&state, false).open().reference,
            Some(json!({"id": 9}))
        );
        let state =
            map(json!({"kind": "deprovision", "halted_reference": null, "halted": true})).await;
        assert_eq!(sealed(&state, false).open().reference, None);
    }
}
