//! `Core`: the state every handler and engine task shares, and the few rules both apply
//! (finding plans, building operations, deciding sync or async, launching an operation).

use std::sync::Arc;
use std::time::Duration;

use skybroker_brokers::{Broker, BrokerRegistry, OperationKind as PluginKind};
use skybroker_config::{Config, Plan, ServiceOffering};
use skybroker_dispatcher::Dispatcher;
use skybroker_storage::{now_millis, Change, Operation, OperationKind, OperationState, StateMap};

use crate::api::catalog::CatalogCache;
use crate::engine::{Engine, Finished, SyncOutcome};
use crate::error::ApiError;
use crate::jobs::Job;
use crate::locks::InstanceLocks;
use crate::metrics::{Admitted, Metrics};
use crate::schemas::SchemaCache;

/// Everything shared.
#[derive(Debug)]
pub struct Core {
    /// The validated configuration.
    pub config: Config,
    /// Offering → plugin.
    pub brokers: BrokerRegistry,
    /// The catalog, rendered once.
    pub catalog: CatalogCache,
    /// Compiled parameter schemas.
    pub schemas: SchemaCache,
    /// The state map over the store.
    pub state: StateMap,
    /// Per-instance locks for read-decide-commit.
    pub locks: InstanceLocks,
    /// The status-scanning engine's schedule, busy marks and waiters.
    pub engine: Engine,
    /// The worker pool.
    pub dispatcher: Dispatcher<Job>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// An offering, one of its plans, and the plugin serving it.
#[derive(Debug, Clone, Copy)]
pub struct PlanRef<'a> {
    /// The offering.
    pub offering: &'a ServiceOffering,
    /// The plan.
    pub plan: &'a Plan,
    /// The plugin.
    pub broker: &'a Arc<dyn Broker>,
}

/// How an operation was launched.
#[derive(Debug)]
pub enum Launched {
    /// Asynchronous: the platform polls this operation id.
    Async(String),
    /// Synchronous: finished, with the records as they were right after.
    Finished(Box<Finished>),
}

/// Creation times of operations: wall-clock milliseconds, but strictly increasing within the
/// process, so "the newest operation of an instance" is never a tie (a delete that halts a
/// provision in the same millisecond must still be the newer one, D-13).
fn operation_clock() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_millis();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(0);
    now.max(previous + 1)
}

/// The plugin-facing kind of a stored operation kind.
pub fn plugin_kind(kind: OperationKind) -> PluginKind {
    match kind {
        OperationKind::Provision => PluginKind::Provision,
        OperationKind::Update => PluginKind::Update,
        OperationKind::Deprovision => PluginKind::Deprovision,
        OperationKind::Bind => PluginKind::Bind,
        OperationKind::Unbind => PluginKind::Unbind,
    }
}

impl Core {
    /// The offering, plan and plugin for ids, if the catalog has them together.
    pub fn plan(&self, service_id: &str, plan_id: &str) -> Option<PlanRef<'_>> {
        let offering = self.config.offering(service_id)?;
        let plan = offering.plan(plan_id)?;
        let broker = self.brokers.get(service_id)?;
        Some(PlanRef {
            offering,
            plan,
            broker,
        })
    }

    /// A new in-progress operation, with its deadline: the plan's
    /// `maximum_polling_duration`, else the engine's default; a synchronous one gets the
    /// synchronous timeout.
    pub fn new_operation(
        &self,
        kind: OperationKind,
        instance_id: &str,
        binding_id: Option<&str>,
        plan: &Plan,
        sync: bool,
        requested_by: Option<String>,
    ) -> Operation {
        let engine = &self.config.engine;
        let now = operation_clock();
        let deadline_secs = if sync {
            engine.sync_timeout_secs
        } else {
            plan.maximum_polling_duration
                .unwrap_or(engine.operation_timeout_secs)
        };
        Operation {
            // D-16: short, URL-safe; the kind prefix helps people reading logs.
            id: format!("{}-{}", kind.name(), uuid::Uuid::new_v4().simple()),
            kind,
            instance_id: instance_id.to_owned(),
            binding_id: binding_id.map(str::to_owned),
            state: OperationState::InProgress,
            sync,
            description: None,
            failure: None,
            reference: None,
            halted_reference: None,
            halted: false,
            update: None,
            attempts: 0,
            requested_by,
            created_at: now,
            deadline: now + deadline_secs * 1000,
            finished_at: None,
        }
    }

    /// Persists an admitted operation with its changes, releases the instance lock, and
    /// launches it: the one way a request starts work.
    pub async fn admit(
        &self,
        guard: tokio::sync::MutexGuard<'_, ()>,
        changes: Vec<Change>,
        operation: Operation,
    ) -> Result<Launched, ApiError> {
        let admitted = Admitted::of(&changes);
        self.state.commit(changes).await?;
        drop(guard);
        self.metrics.record_admitted(admitted);
        log::info!(
            "operation {} ({} of {}) accepted",
            operation.id,
            operation.kind.name(),
            operation
                .binding_id
                .as_deref()
                .unwrap_or(&operation.instance_id)
        );
        self.launch(operation).await
    }

    /// Hands a committed operation to the engine. Asynchronous operations return at once;
    /// synchronous ones wait for their outcome (call this *after* releasing the instance
    /// lock: the engine needs it to apply the outcome).
    pub async fn launch(&self, operation: Operation) -> Result<Launched, ApiError> {
        if !operation.sync {
            self.engine.schedule_now(&operation.id);
            return Ok(Launched::Async(operation.id));
        }
        let waiter = self.engine.register_waiter(&operation.id);
        self.engine.schedule_now(&operation.id);
        let timeout = Duration::from_secs(self.config.engine.sync_timeout_secs);
        match tokio::time::timeout(timeout, waiter).await {
            Ok(Ok(SyncOutcome::Finished(finished))) => Ok(Launched::Finished(finished)),
            Ok(Ok(SyncOutcome::QueueFull)) => Err(ApiError::QueueFull),
            // The engine dropped the waiter: it is shutting down; the operation is persisted
            // and resumes at the next start.
            Ok(Err(_)) => Err(ApiError::StoreUnavailable),
            Err(_) => {
                self.engine.forget_waiter(&operation.id);
                Err(ApiError::Internal(format!(
                    "synchronous {} {} did not finish in {timeout:?}; it continues in the background",
                    operation.kind.name(),
                    operation.id
                )))
            }
        }
    }
}
