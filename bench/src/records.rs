//! Records shaped like the ones the broker writes for the sandbox catalog, for the scenarios
//! that fill a store or a map directly instead of over HTTP (100,000 provisions over HTTP
//! would measure the HTTP path again, and take long).

use serde_json::{json, Value};
use skybroker_storage::{
    Change, InstanceState, Operation, OperationKind, OperationState, ServiceInstance, UnixMillis,
};

/// The sandbox offering of the built-in catalog.
pub const SERVICE: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f0001";
/// Its `sync` plan.
pub const SYNC_PLAN: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1001";
/// Its `async` plan.
pub const ASYNC_PLAN: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1002";
/// How long the benchmark's async sandbox operations run: long enough to stay in flight for
/// the whole run.
pub const ASYNC_DELAY_MS: u64 = 3_600_000;

/// The platform context a Cloud Foundry provision carries.
fn context(index: usize) -> Value {
    json!({
        "platform": "cloudfoundry",
        "organization_guid": format!("org-{:08}", index % 1000),
        "space_guid": format!("space-{:08}", index % 10_000),
        "instance_name": format!("db-{index}"),
    })
}

/// The instance and operation ids of record `index`.
pub fn ids(index: usize) -> (String, String) {
    (
        format!("bench-instance-{index:08}"),
        format!("provision-{:032x}", index as u128 + (1 << 100)),
    )
}

/// How long ago the in-flight operations of an aged map were accepted.
const AGE_MS: u64 = 600_000;

/// Instance `index` with its provision operation, as the broker stores an async sandbox
/// provision: still running (`in_flight`, the plugin has accepted it and been called
/// `attempts` times), or finished well.
pub fn provisioned(index: usize, in_flight: bool, attempts: u32, now: UnixMillis) -> [Change; 2] {
    let (instance_id, operation_id) = ids(index);
    // Operations polled many times were accepted a while ago.
    let created_at = if attempts > 1 {
        now.saturating_sub(AGE_MS)
    } else {
        now
    };
    let instance = ServiceInstance {
        id: instance_id.clone().into(),
        service_id: SERVICE.to_owned().into(),
        plan_id: ASYNC_PLAN.to_owned().into(),
        parameters: json!({}),
        context: context(index),
        organization_guid: Some(format!("org-{:08}", index % 1000)),
        space_guid: Some(format!("space-{:08}", index % 10_000)),
        maintenance_version: None,
        dashboard_url: None,
        metadata: None,
        state: if in_flight {
            InstanceState::Provisioning
        } else {
            InstanceState::Ready
        },
        // What the sandbox returns from provision.
        plugin_state: json!({
            "resource": format!("sandbox-{instance_id}"),
            "plan_id": ASYNC_PLAN,
        }),
        last_operation: Some(operation_id.clone().into()),
        created_at,
        platform_id: None,
        shared: false,
        labels: Default::default(),
    };
    let operation = Operation {
        id: operation_id.into(),
        kind: OperationKind::Provision,
        instance_id: instance_id.into(),
        binding_id: None,
        state: if in_flight {
            OperationState::InProgress
        } else {
            OperationState::Succeeded
        },
        sync: false,
        description: in_flight.then(|| "sandbox provision running".to_owned()),
        failure: None,
        // The sandbox's reference: when the simulated work completes.
        reference: Some(json!({ "ready_at": now + ASYNC_DELAY_MS })),
        halted_reference: None,
        halted: false,
        update: None,
        attempts,
        requested_by: Some("cloudfoundry bench-user".to_owned()),
        created_at,
        deadline: created_at + ASYNC_DELAY_MS,
        finished_at: (!in_flight).then_some(now),
    };
    [
        Change::PutInstance(instance),
        Change::PutOperation(operation),
    ]
}

/// Fills `state` with `total` instances, the first `in_flight` of them still provisioning
/// after `attempts` plugin calls (1: just accepted; 12 or more: running for minutes, polled at
/// the engine's longest interval), in commits of `per_commit` instances (etcd takes at most
/// 128 keys in one transaction).
pub async fn fill(
    state: &skybroker_storage::StateMap,
    total: usize,
    in_flight: usize,
    attempts: u32,
    per_commit: usize,
) -> anyhow::Result<()> {
    let now = skybroker_storage::now_millis();
    let mut changes = Vec::with_capacity(2 * per_commit);
    for index in 0..total {
        changes.extend(provisioned(index, index < in_flight, attempts, now));
        if changes.len() >= 2 * per_commit {
            state.commit(std::mem::take(&mut changes)).await?;
        }
    }
    state.commit(changes).await?;
    Ok(())
}
