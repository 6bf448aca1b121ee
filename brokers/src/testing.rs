//! The contract every provider plugin keeps, as one test suite each provider's tests run
//! (feature `test-util`), the way `skybroker_storage::testing` checks every `Store`.
//!
//! The controller relies on these promises and nothing else; a new provider that passes the
//! suite against its real (or emulated) cloud works behind the engine:
//! - its plan settings check passes for the plan under test;
//! - a plan the plugin calls synchronous never answers "in progress";
//! - provision, bind, unbind and deprovision finish (polled until done within `patience`);
//! - every call may be repeated (after a crash the engine calls again with the same request):
//!   a repeated provision adopts what the first created (the same plugin state), a repeated
//!   bind, unbind or deprovision succeeds again (or says the resource is gone);
//! - a binding's credentials are a non-empty object;
//! - deleting what the provider never had answers done or `NotFound`, never another error
//!   (the engine's `force_delete_unknown_*` settings decide what `NotFound` means);
//! - parameters the plan refuses are the client's error (400 or 422), refused before or by
//!   the provision call, never a provider failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress};

/// One plan of one provider, under contract.
#[derive(Clone)]
pub struct Subject {
    /// The plugin, built as the registry builds it.
    pub broker: Arc<dyn Broker>,
    /// The offering id requests carry.
    pub service_id: String,
    /// The plan id requests carry.
    pub plan_id: String,
    /// The plan's settings.
    pub plan_settings: Arc<Value>,
    /// Provision parameters the plan accepts.
    pub parameters: Value,
    /// Provision parameters the plan must refuse as the client's mistake, if it has any.
    pub bad_parameters: Option<Value>,
    /// Whether the plan is bindable (bind and unbind are checked).
    pub bindable: bool,
    /// How long one operation may take before the suite fails it.
    pub patience: Duration,
    /// A prefix for the instance and binding ids (unique per run, for shared clouds).
    pub prefix: String,
}

/// What one run saw, for the test's own assertions (the suite asserts the contract itself).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The instance provisioned (and deprovisioned again).
    pub instance_id: String,
    /// The plugin state provision returned.
    pub instance_state: Value,
    /// The credentials the bind returned (`Null` when the plan is not bindable).
    pub credentials: Value,
    /// How many polls the operations took, all together.
    pub polls: u32,
}

impl Subject {
    fn request(&self, kind: OperationKind, instance_id: &str) -> OperationRequest {
        OperationRequest {
            kind,
            operation_id: format!("{}-{}", kind.name(), uuid::Uuid::new_v4().simple()).into(),
            instance_id: instance_id.into(),
            binding_id: None,
            service_id: self.service_id.as_str().into(),
            plan_id: self.plan_id.as_str().into(),
            previous_plan_id: None,
            plan_settings: Arc::clone(&self.plan_settings),
            parameters: self.parameters.clone(),
            context: json!({"platform": "contract"}),
            maintenance_version: None,
            instance_state: Value::Null,
            binding_state: Value::Null,
            reference: None,
            accepts_incomplete: true,
            originating_identity: None,
        }
    }

    /// Calls the plugin for `request` (a start, or a poll when it has a reference).
    async fn call(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let broker = &self.broker;
        if request.reference.is_some() {
            return broker.poll(request).await;
        }
        match request.kind {
            OperationKind::Provision => broker.provision(request).await,
            OperationKind::Update => broker.update(request).await,
            OperationKind::Deprovision => broker.deprovision(request).await,
            OperationKind::Bind => broker.bind(request).await,
            OperationKind::Unbind => broker.unbind(request).await,
        }
    }

    /// Starts `request` and polls it until it is done; the completion, with the state an
    /// in-progress answer already reported when the completion has none.
    async fn settle(
        &self,
        mut request: OperationRequest,
        report: &mut Report,
    ) -> Result<Completion, BrokerError> {
        let what = format!("{} of {}", request.kind.name(), request.instance_id);
        let sync = !self.broker.is_async(&self.plan_settings, request.kind);
        let deadline = Instant::now() + self.patience;
        let mut learnt = None;
        loop {
            match self.call(&request).await? {
                Progress::Done(mut completion) => {
                    if completion.state.is_none() {
                        completion.state = learnt;
                    }
                    return Ok(completion);
                }
                Progress::Failed { description, .. } => {
                    panic!("contract: {what} failed at the provider: {description}")
                }
                Progress::InProgress {
                    reference, state, ..
                } => {
                    assert!(
                        !sync,
                        "contract: {what} answered in progress, but the plugin calls the plan \
                         synchronous (is_async is false)"
                    );
                    assert!(
                        Instant::now() < deadline,
                        "contract: {what} still in progress after {:?}",
                        self.patience
                    );
                    if state.is_some() {
                        learnt = state;
                    }
                    request.reference = Some(reference);
                    report.polls += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// A delete that must end: done, or `NotFound` (the resource is already gone).
    async fn delete(&self, request: OperationRequest, report: &mut Report) {
        let what = format!("{} of {}", request.kind.name(), request.instance_id);
        match self.settle(request, report).await {
            Ok(_) | Err(BrokerError::NotFound(_)) => {}
            Err(err) => panic!("contract: {what}: {err}"),
        }
    }
}

/// Runs the contract against `subject` (see the module doc); panics on the first broken
/// promise, naming it.
pub async fn run(subject: &Subject) -> Report {
    let broker = &subject.broker;
    if let Err(problem) = broker.check_plan_settings(&subject.plan_settings) {
        panic!("contract: the plan's settings are refused: {problem}");
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let instance_id = format!("{}-i-{}", subject.prefix, &suffix[..12]);
    let mut report = Report {
        instance_id: instance_id.clone(),
        ..Report::default()
    };

    // Parameters the plan refuses are the client's mistake.
    if let Some(bad) = &subject.bad_parameters {
        let refused_early = broker
            .check_parameters(&subject.plan_settings, OperationKind::Provision, bad)
            .is_err();
        if !refused_early {
            let mut request =
                subject.request(OperationKind::Provision, &format!("{instance_id}-bad"));
            request.parameters = bad.clone();
            match subject.settle(request, &mut report).await {
                Err(err) => assert!(
                    err.is_client_error(),
                    "contract: bad parameters {bad} failed as a provider error: {err}"
                ),
                Ok(_) => panic!("contract: bad parameters {bad} were provisioned"),
            }
        }
    }

    // Provision, then the same provision again: the repeat adopts what the first created.
    let provision = subject.request(OperationKind::Provision, &instance_id);
    let first = subject
        .settle(provision.clone(), &mut report)
        .await
        .unwrap_or_else(|err| panic!("contract: provision of {instance_id}: {err}"));
    let instance_state = first.state.clone().unwrap_or(Value::Null);
    let again = subject
        .settle(provision, &mut report)
        .await
        .unwrap_or_else(|err| panic!("contract: repeated provision of {instance_id}: {err}"));
    assert_eq!(
        again.state.unwrap_or(Value::Null),
        instance_state,
        "contract: a repeated provision must adopt the resource the first one created"
    );
    report.instance_state = instance_state.clone();

    if subject.bindable {
        let binding_id = format!("{}-b-{}", subject.prefix, &suffix[..12]);
        let mut bind = subject.request(OperationKind::Bind, &instance_id);
        bind.binding_id = Some(binding_id.as_str().into());
        bind.parameters = json!({});
        bind.instance_state = instance_state.clone();
        let bound = subject
            .settle(bind.clone(), &mut report)
            .await
            .unwrap_or_else(|err| panic!("contract: bind {binding_id}: {err}"));
        let credentials = bound
            .binding
            .and_then(|binding| binding.credentials)
            .unwrap_or(Value::Null);
        assert!(
            credentials.as_object().is_some_and(|c| !c.is_empty()),
            "contract: bind {binding_id} returned no credentials"
        );
        report.credentials = credentials;
        // A repeated bind (the engine lost the first answer) binds again.
        let rebound = subject
            .settle(bind, &mut report)
            .await
            .unwrap_or_else(|err| panic!("contract: repeated bind {binding_id}: {err}"));
        let binding_state = rebound.state.or(bound.state).unwrap_or(Value::Null);
        let mut unbind = subject.request(OperationKind::Unbind, &instance_id);
        unbind.binding_id = Some(binding_id.as_str().into());
        unbind.instance_state = instance_state.clone();
        unbind.binding_state = binding_state;
        subject
            .settle(unbind.clone(), &mut report)
            .await
            .unwrap_or_else(|err| panic!("contract: unbind {binding_id}: {err}"));
        subject.delete(unbind, &mut report).await;
    }

    let mut deprovision = subject.request(OperationKind::Deprovision, &instance_id);
    deprovision.instance_state = instance_state;
    subject
        .settle(deprovision.clone(), &mut report)
        .await
        .unwrap_or_else(|err| panic!("contract: deprovision of {instance_id}: {err}"));
    subject.delete(deprovision, &mut report).await;

    // What the provider never had.
    let unknown = format!("{}-unknown-{}", subject.prefix, &suffix[..12]);
    subject
        .delete(
            subject.request(OperationKind::Deprovision, &unknown),
            &mut report,
        )
        .await;
    if subject.bindable {
        let mut unbind = subject.request(OperationKind::Unbind, &unknown);
        unbind.binding_id = Some(format!("{unknown}-b").into());
        subject.delete(unbind, &mut report).await;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Sandbox;

    fn sandbox(settings: Value) -> Subject {
        Subject {
            broker: Arc::new(Sandbox::new()),
            service_id: "sandbox-service".into(),
            plan_id: "sandbox-plan".into(),
            plan_settings: Arc::new(settings),
            parameters: json!({"size": 2}),
            bad_parameters: None,
            bindable: true,
            patience: Duration::from_secs(10),
            prefix: "contract".into(),
        }
    }

    #[tokio::test]
    async fn the_sandbox_keeps_the_contract_synchronously_and_asynchronously() {
        let report = run(&sandbox(json!({"mode": "sync"}))).await;
        assert_eq!(report.polls, 0, "a synchronous plan is never polled");
        assert_eq!(report.instance_state["size"], json!(2));
        assert!(report.credentials["password"].is_string());
        let report = run(&sandbox(json!({"mode": "async", "delay_ms": 100}))).await;
        assert!(
            report.polls > 0,
            "an asynchronous plan is polled: {report:?}"
        );
    }

    // The suite catches a provider that breaks a promise.
    #[tokio::test]
    #[should_panic(expected = "failed at the provider")]
    async fn a_provider_that_fails_breaks_the_contract() {
        run(&sandbox(json!({"mode": "sync", "failure_rate": 1.0}))).await;
    }
}
