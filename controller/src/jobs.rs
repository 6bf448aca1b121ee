//! The jobs the dispatcher runs: one plugin call each, on a worker thread.
//!
//! A job carries everything the call needs (the plugin and an owned request), so a worker never
//! touches the map or the store; it reports an [`Outcome`] back to the engine, which applies it.
//! Plugin futures are driven with the runtime handle captured at start (`Handle::block_on`),
//! so async drivers work unchanged while one call occupies one worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use skybroker_brokers::{Broker, BrokerError, OperationKind, OperationRequest, Progress};
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
    /// The operation it advances.
    pub operation_id: String,
    /// The instance the operation belongs to (the engine's per-instance busy mark).
    pub instance_id: String,
    /// Start or poll.
    pub call: Call,
    /// The plugin.
    pub broker: Arc<dyn Broker>,
    /// The request; holds parameters and plugin state, so it is never logged.
    pub request: OperationRequest,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately not the request: parameters and state may hold secrets.
        f.debug_struct("Job")
            .field("name", &self.name())
            .field("operation_id", &self.operation_id)
            .field("instance_id", &self.instance_id)
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
    /// A name for logs: `provision`, `poll-bind`, ...
    pub fn name(&self) -> String {
        let kind = kind_name(self.request.kind);
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
    let request = &job.request;
    // AssertUnwindSafe: the plugin and request are not used after a panic except to report it.
    let result = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            match job.call {
                Call::Poll => broker.poll(request).await,
                Call::Start => match request.kind {
                    OperationKind::Provision => broker.provision(request).await,
                    OperationKind::Update => broker.update(request).await,
                    OperationKind::Deprovision => broker.deprovision(request).await,
                    OperationKind::Bind => broker.bind(request).await,
                    OperationKind::Unbind => broker.unbind(request).await,
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
    metrics.observe_plugin_call(broker.name(), request.kind, job.call, elapsed, &result);
    log::debug!(
        "{name} of operation {} by {} took {elapsed:?}",
        job.operation_id,
        broker.name(),
    );
    let outcome = Outcome {
        operation_id: job.operation_id,
        instance_id: job.instance_id,
        result,
    };
    // The engine's applier stopped only at shutdown; the operation stays in progress in the
    // store and is resumed at the next start.
    if outcomes.blocking_send(outcome).is_err() {
        log::info!("outcome of {name} not applied (shutting down); it resumes at next start");
    }
}
