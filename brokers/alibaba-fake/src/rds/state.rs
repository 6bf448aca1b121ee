//! What the fake RDS holds: instances, the databases and accounts inside them, and the
//! answers kept for `ClientToken` repeats. Instances move through their states lazily,
//! whenever the state is next looked at (`Rds::advance`), so no task runs per instance.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{json, Value};

use super::engine::{Engine, Privilege};
use super::error::incorrect_state;
use crate::api::ApiError;

/// Where an instance is in its life.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Phase {
    /// Being created until `until`; then `Running`, or gone when `fails`.
    Creating { until: Instant, fails: bool },
    /// In service.
    Running,
    /// Changing to `class`/`storage` until `until`.
    Changing {
        until: Instant,
        class: String,
        storage: i64,
    },
    /// Being released until `until`; then gone.
    Deleting { until: Instant },
}

/// One database of an instance.
#[derive(Debug, Clone)]
pub(super) struct Database {
    /// `CharacterSetName` as given.
    pub(super) charset: String,
    /// `DBDescription`.
    pub(super) description: String,
}

/// One account of an instance.
#[derive(Debug, Clone)]
pub(super) struct Account {
    /// `Normal` or `Super`.
    pub(super) account_type: String,
    /// `AccountDescription`.
    pub(super) description: String,
    /// Its privilege per database.
    pub(super) privileges: BTreeMap<String, Privilege>,
}

/// One DB instance.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    /// Creation order, for stable listings.
    pub(super) seq: u64,
    pub(super) engine: Engine,
    pub(super) engine_version: String,
    pub(super) class: String,
    pub(super) storage: i64,
    pub(super) storage_type: String,
    pub(super) net_type: String,
    pub(super) security_ips: String,
    pub(super) description: String,
    pub(super) pay_type: String,
    pub(super) zone_id: String,
    pub(super) vpc_id: String,
    pub(super) vswitch_id: String,
    pub(super) client_token: Option<String>,
    /// `CreationTime`.
    pub(super) created: String,
    /// `ConnectionString` and `Port`.
    pub(super) endpoint: (String, u16),
    pub(super) phase: Phase,
    pub(super) databases: BTreeMap<String, Database>,
    pub(super) accounts: BTreeMap<String, Account>,
}

impl Instance {
    /// `DBInstanceStatus`.
    pub(super) fn status(&self) -> &'static str {
        match self.phase {
            Phase::Creating { .. } => "Creating",
            Phase::Running => "Running",
            Phase::Changing { .. } => "DBInstanceClassChanging",
            Phase::Deleting { .. } => "Deleting",
        }
    }

    /// Refuses unless the instance is `Running` (403, the code most actions list).
    pub(super) fn require_running(&self) -> Result<(), ApiError> {
        if self.phase == Phase::Running {
            Ok(())
        } else {
            Err(incorrect_state(403))
        }
    }

    /// Refuses listing accounts or databases before the instance exists.
    pub(super) fn require_created(&self) -> Result<(), ApiError> {
        match self.phase {
            Phase::Creating { .. } => Err(ApiError::new(
                400,
                "InvalidDBInstanceStatus.NotSupport",
                "The Specified instance status is not supported to query account list.",
            )),
            _ => Ok(()),
        }
    }
}

/// The answer `CreateDBInstance` gave, kept for repeats of its `ClientToken`.
#[derive(Debug, Clone)]
pub(super) struct Created {
    pub(super) id: String,
    pub(super) order_id: String,
    pub(super) endpoint: (String, u16),
}

/// All RDS state.
#[derive(Debug, Default)]
pub struct Rds {
    /// Instances by id.
    pub(super) instances: BTreeMap<String, Instance>,
    /// `ClientToken` → what its `CreateDBInstance` answered.
    pub(super) client_tokens: HashMap<String, Created>,
    /// The next instance's creation order.
    pub(super) next_seq: u64,
}

impl Rds {
    /// Moves every instance whose timer ran out to its next state.
    pub(super) fn advance(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (id, instance) in &mut self.instances {
            match &instance.phase {
                Phase::Creating { until, fails } if now >= *until => {
                    if *fails {
                        log::info!("fake RDS: {id} could not be delivered; released");
                        gone.push(id.clone());
                    } else {
                        instance.phase = Phase::Running;
                    }
                }
                Phase::Changing {
                    until,
                    class,
                    storage,
                } if now >= *until => {
                    instance.class = class.clone();
                    instance.storage = *storage;
                    instance.phase = Phase::Running;
                }
                Phase::Deleting { until } if now >= *until => gone.push(id.clone()),
                _ => {}
            }
        }
        for id in gone {
            self.instances.remove(&id);
        }
    }

    /// The instance `id`, its state brought up to date.
    pub(super) fn instance(&mut self, id: &str) -> Result<&mut Instance, ApiError> {
        self.advance(Instant::now());
        self.instances.get_mut(id).ok_or_else(|| {
            ApiError::new(
                404,
                "InvalidDBInstanceId.NotFound",
                "The DBInstanceId provided does not exist in our records.",
            )
        })
    }

    /// Instances, databases and accounts with their privileges, for tests (no passwords).
    pub fn snapshot(&mut self) -> Value {
        self.advance(Instant::now());
        let instances: Vec<Value> = self
            .instances
            .iter()
            .map(|(id, instance)| {
                json!({
                    "id": id,
                    "status": instance.status(),
                    "engine": instance.engine.name(),
                    "engine_version": instance.engine_version,
                    "class": instance.class,
                    "storage": instance.storage,
                    "storage_type": instance.storage_type,
                    "net_type": instance.net_type,
                    "client_token": instance.client_token,
                    "connection_string": instance.endpoint.0,
                    "port": instance.endpoint.1,
                    "databases": instance.databases.iter().map(|(name, db)| json!({
                        "name": name,
                        "charset": db.charset,
                    })).collect::<Vec<_>>(),
                    "accounts": instance.accounts.iter().map(|(name, account)| json!({
                        "name": name,
                        "type": account.account_type,
                        "privileges": account.privileges.iter().map(|(db, privilege)| json!({
                            "db": db,
                            "privilege": privilege.name(),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "instances": instances })
    }
}
