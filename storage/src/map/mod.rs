//! The state map: every instance, binding and operation in memory, written through to a
//! [`Store`] before any change is visible.
//!
//! The map is the read path (catalog, fetch and last_operation never touch the store); the
//! store is the durability path. [`StateMap::commit`] writes a batch to the store with
//! compare-and-swap on the revisions the map holds, and only then updates the map, so what a
//! reader sees has always been persisted.
//!
//! Callers serialize mutations of one instance (and its bindings) themselves; the controller
//! holds a per-instance lock around read-decide-commit. The CAS still guards against another
//! process writing the same keys.
//!
//! Several replicas share an etcd store: each map follows the others' commits through the
//! store's watch, a moment after they are made. A reader that does not find a record another
//! replica may just have created asks [`StateMap::catch_up`] before answering that it does not
//! exist (a platform may poll replica B for an operation replica A accepted a millisecond ago).
//!
//! Records are held packed (see `packed`): every reader gets its own decoded copy, and the map
//! costs under 1 KiB per instance with its latest operation (issue #5).
//!
//! # Layout
//! - here: [`StateMap`] and its public API (reads, [`StateMap::commit`], following other
//!   replicas with [`StateMap::apply_remote`]), the [`Change`]s a commit is made of, and
//!   the tables the map holds;
//! - `codec`: the stored forms of a record (a versioned JSON envelope, or the packed form the
//!   map holds in memory, as the store asks) and the store key of each kind of record;
//! - `load`: reading the whole store into the tables, on every core;
//! - `catch_up`: [`StateMap::catch_up`] and [`StateMap::catch_up_unless`], which wait for
//!   the watch to deliver a sync marker before a miss is answered.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::model::{
    BindingId, InstanceId, Operation, OperationId, OperationKind, OperationState, ServiceBinding,
    ServiceInstance, UnixMillis,
};
use crate::packed::{
    Keyed, Packed, Sealed, Slot, Table, INSTANCE_SERVICE_ID, OPERATION_INSTANCE_ID,
};
use crate::registry::{
    Platform, RegistryKind, RegistryOperation, RegistryRecord, ServiceBroker, Visibility,
};
use crate::store::{
    Claims, Entry, Expect, RecordFormat, Revision, Store, StoreError, WatchEvent, Write,
};

mod catch_up;
mod codec;
mod load;

use catch_up::Markers;
use codec::{binding_key, decode_entry, instance_key, json_value, operation_key, packed_value};
use hashbrown::HashMap;

/// What an operation record reports on: an instance or a binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An instance id.
    Instance(InstanceId),
    /// A binding id.
    Binding(BindingId),
}

impl Target {
    /// The target of an operation.
    pub fn of(operation: &Operation) -> Target {
        match (&operation.binding_id, operation.kind.is_binding()) {
            (Some(binding_id), true) => Target::Binding(binding_id.clone()),
            _ => Target::Instance(operation.instance_id.clone()),
        }
    }
}

/// One change in a commit.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace an instance.
    PutInstance(ServiceInstance),
    /// Create an instance the store must not hold yet, whatever the map holds when the change
    /// is committed: a request that decided to create on not finding it must not overwrite one
    /// another replica created meanwhile (the map follows other replicas without the instance
    /// lock, so it may hold that one by the time of the commit).
    CreateInstance(ServiceInstance),
    /// Remove an instance.
    DeleteInstance(InstanceId),
    /// Create or replace a binding.
    PutBinding(ServiceBinding),
    /// Create a binding the store must not hold yet (as [`Change::CreateInstance`]).
    CreateBinding(ServiceBinding),
    /// Remove a binding.
    DeleteBinding(BindingId),
    /// Create or replace an operation.
    PutOperation(Operation),
    /// Remove an operation record.
    DeleteOperation(OperationId),
    /// Create or replace a registry record (a broker, platform or visibility).
    PutRegistry(RegistryRecord),
    /// Remove a registry record.
    DeleteRegistry(RegistryKind, String),
}

/// Counts of what the map holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instances.
    pub instances: usize,
    /// Bindings.
    pub bindings: usize,
    /// Operation records.
    pub operations: usize,
}

/// Operation records by state (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationCounts {
    /// Still running.
    pub in_progress: usize,
    /// Finished well (kept until the retention passes).
    pub succeeded: usize,
    /// Finished badly (kept until the retention passes).
    pub failed: usize,
}

/// An instance or binding record with the store revision it was written at.
#[derive(Debug)]
struct Held {
    revision: Revision,
    packed: Packed,
}

impl Slot for Held {
    fn packed(&self) -> &Packed {
        &self.packed
    }
}

/// The fields of an operation the map answers about without unpacking it (metrics, the
/// clean-up's query, which operation of a target is the latest, what the engine decides a
/// dispatch on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OperationStatus {
    state: OperationState,
    brief: OperationBrief,
    /// `None` while running (8 bytes: no record finishes at the epoch).
    finished_at: Option<NonZeroU64>,
}

impl OperationStatus {
    fn of(operation: &Operation) -> OperationStatus {
        OperationStatus {
            state: operation.state,
            brief: OperationBrief {
                kind: operation.kind,
                sync: operation.sync,
                started: operation.reference.is_some(),
                updates: operation.update.is_some(),
                created_at: operation.created_at,
                deadline: operation.deadline,
            },
            finished_at: operation.finished_at.and_then(NonZeroU64::new),
        }
    }
}

/// An operation in progress as the engine dispatches it (see [`StateMap::to_dispatch`]).
#[derive(Debug)]
pub struct Dispatchable {
    /// The revisions of the operation and its instance, for a commit that writes either.
    pub basis: Basis,
    /// What the engine decides on.
    pub brief: OperationBrief,
    /// The operation, packed.
    pub operation: Sealed<Operation>,
    /// Its instance, packed (`None`: gone).
    pub instance: Option<Sealed<ServiceInstance>>,
}

/// What the engine decides an operation's next step on, read without decoding the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationBrief {
    /// Which operation.
    pub kind: OperationKind,
    /// Whether a request waits for it.
    pub sync: bool,
    /// Whether the plugin accepted the work (the record holds its reference): the next call
    /// is a poll.
    pub started: bool,
    /// Whether it carries an update's target (plan, parameters).
    pub updates: bool,
    /// When it was accepted.
    pub created_at: UnixMillis,
    /// When it fails if it has not finished.
    pub deadline: UnixMillis,
}

/// An operation record, its revision, and what is looked at often.
#[derive(Debug)]
struct HeldOperation {
    revision: Revision,
    status: OperationStatus,
    packed: Packed,
}

impl Slot for HeldOperation {
    fn packed(&self) -> &Packed {
        &self.packed
    }
}

#[derive(Debug, Default)]
struct Maps {
    // Records are packed with their ids (see `packed`).
    instances: Table<Held>,
    bindings: Table<Held>,
    /// Binding ids of each instance, sorted (an instance has few).
    bindings_by_instance: HashMap<Box<str>, Vec<Box<str>>>,
    operations: Table<HeldOperation>,
    /// The newest operation of each target.
    latest: HashMap<Target, Box<str>>,
    /// Registry records by store key, decoded (they are few).
    registry: BTreeMap<String, (Revision, RegistryRecord)>,
    /// Counts changes to `registry`, so its readers know when to rebuild what they derive.
    registry_generation: u64,
    /// The newest revision the store's watch has delivered (0 for a store nobody else
    /// writes): a commit of this process at or below it has come back through the watch
    /// already, with every change after it (see [`StateMap::commit_claiming`]).
    delivered: Revision,
}

/// Up to `limit` records of `table` in id order after `after` that `keep` accepts, and
/// whether more follow: the ids sorted, then decoded in order until the page is full.
fn matching<T: Keyed>(
    table: &Table<Held>,
    after: Option<&str>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> (Vec<T>, bool) {
    let mut held: Vec<&Held> = table
        .iter()
        .filter(|held| after.is_none_or(|after| held.packed.id() > after))
        .collect();
    held.sort_unstable_by(|a, b| a.packed.id().cmp(b.packed.id()));
    let mut found = Vec::new();
    for held in held {
        let record: T = held.packed.unpack();
        if keep(&record) {
            if found.len() == limit {
                return (found, true);
            }
            found.push(record);
        }
    }
    (found, false)
}

/// The in-memory map over a store.
#[derive(Debug)]
pub struct StateMap {
    store: Arc<dyn Store>,
    maps: RwLock<Maps>,
    /// The store revision up to which the map holds every change (the sync markers the watch
    /// delivered, see [`StateMap::catch_up`]).
    watched: tokio::sync::watch::Sender<Revision>,
    /// The sync markers this map has written, shared by concurrent catch-ups; one written at a
    /// time.
    markers: tokio::sync::Mutex<Markers>,
    /// `Maps::registry_generation`, readable without the lock.
    registry_generation: AtomicU64,
}

/// A [`Change`] with its record packed: commits pack before they take the map's write lock,
/// so readers wait only for the table updates.
enum Packing {
    Instance(Packed),
    Binding {
        instance_id: String,
        packed: Packed,
    },
    Operation {
        target: Target,
        status: OperationStatus,
        packed: Packed,
    },
    DeleteInstance(String),
    DeleteBinding(String),
    DeleteOperation(String),
    Registry(RegistryRecord),
    DeleteRegistry(String),
}

impl Packing {
    /// The packed record of a put of an instance, binding or operation.
    fn packed(&self) -> Option<&Packed> {
        match self {
            Packing::Instance(packed)
            | Packing::Binding { packed, .. }
            | Packing::Operation { packed, .. } => Some(packed),
            _ => None,
        }
    }
}

impl From<Change> for Packing {
    fn from(change: Change) -> Packing {
        match change {
            Change::PutInstance(instance) | Change::CreateInstance(instance) => {
                Packing::Instance(Packed::pack(instance))
            }
            Change::PutBinding(binding) | Change::CreateBinding(binding) => Packing::Binding {
                instance_id: binding.instance_id.to_string(),
                packed: Packed::pack(binding),
            },
            Change::PutOperation(operation) => Packing::Operation {
                target: Target::of(&operation),
                status: OperationStatus::of(&operation),
                packed: Packed::pack(operation),
            },
            Change::DeleteInstance(id) => Packing::DeleteInstance(id.into_string()),
            Change::DeleteBinding(id) => Packing::DeleteBinding(id.into_string()),
            Change::DeleteOperation(id) => Packing::DeleteOperation(id.into_string()),
            Change::PutRegistry(record) => Packing::Registry(record),
            Change::DeleteRegistry(kind, id) => Packing::DeleteRegistry(kind.key(&id)),
        }
    }
}

impl Maps {
    /// Applies one packed change written at `revision`.
    fn apply(&mut self, revision: Revision, change: Packing) {
        match change {
            Packing::Instance(packed) => self.instances.insert(Held { revision, packed }),
            Packing::Binding {
                instance_id,
                packed,
            } => self.put_binding(revision, &instance_id, packed),
            Packing::Operation {
                target,
                status,
                packed,
            } => self.put_operation(revision, target, status, packed),
            Packing::DeleteInstance(id) => {
                self.instances.remove(&id);
            }
            Packing::DeleteBinding(id) => self.delete_binding(&id),
            Packing::DeleteOperation(id) => self.delete_operation(&id),
            Packing::Registry(record) => {
                self.registry.insert(record.key(), (revision, record));
                self.registry_generation += 1;
            }
            Packing::DeleteRegistry(key) => {
                if self.registry.remove(&key).is_some() {
                    self.registry_generation += 1;
                }
            }
        }
    }

    fn put_binding(&mut self, revision: Revision, instance_id: &str, packed: Packed) {
        let ids = self
            .bindings_by_instance
            .entry(instance_id.into())
            .or_default();
        if let Err(at) = ids.binary_search_by(|id| (**id).cmp(packed.id())) {
            ids.insert(at, packed.id().into());
        }
        self.bindings.insert(Held { revision, packed });
    }

    fn delete_binding(&mut self, id: &str) {
        let Some(held) = self.bindings.remove(id) else {
            return;
        };
        let binding: ServiceBinding = held.packed.unpack();
        if let Some(ids) = self
            .bindings_by_instance
            .get_mut(binding.instance_id.as_str())
        {
            ids.retain(|bound| **bound != *id);
            if ids.is_empty() {
                self.bindings_by_instance
                    .remove(binding.instance_id.as_str());
            }
        }
    }

    fn put_operation(
        &mut self,
        revision: Revision,
        target: Target,
        status: OperationStatus,
        packed: Packed,
    ) {
        let id = packed.id();
        let newer = match self.latest.get(&target) {
            Some(current_id) => match self.operations.get(current_id) {
                Some(current) => {
                    **current_id == *id
                        || (status.brief.created_at, id)
                            >= (current.status.brief.created_at, &**current_id)
                }
                None => true,
            },
            None => true,
        };
        if newer {
            self.latest.insert(target, id.into());
        }
        self.operations.insert(HeldOperation {
            revision,
            status,
            packed,
        });
    }

    fn delete_operation(&mut self, id: &str) {
        if let Some(held) = self.operations.remove(id) {
            let target = Target::of(&held.packed.unpack());
            if self.latest.get(&target).map(|latest| &**latest) == Some(id) {
                self.latest.remove(&target);
            }
        }
    }

    /// The revision the maps hold for a store key.
    fn revision_of(&self, key: &str) -> Option<Revision> {
        let (kind, id) = key.split_once('/')?;
        match kind {
            "instances" => self.instances.get(id).map(|held| held.revision),
            "bindings" => self.bindings.get(id).map(|held| held.revision),
            "operations" => self.operations.get(id).map(|held| held.revision),
            _ => self.registry.get(key).map(|(revision, _)| *revision),
        }
    }

    /// Removes the record of a store key.
    fn remove_key(&mut self, key: &str) {
        match key.split_once('/') {
            Some(("instances", id)) => {
                self.instances.remove(id);
            }
            Some(("bindings", id)) => self.delete_binding(id),
            Some(("operations", id)) => self.delete_operation(id),
            _ => {
                if self.registry.remove(key).is_some() {
                    self.registry_generation += 1;
                }
            }
        }
    }

    fn expect(&self, change: &Change) -> (String, Expect) {
        let (key, found) = match change {
            Change::CreateInstance(ServiceInstance { id, .. }) => {
                return (instance_key(id), Expect::Absent)
            }
            Change::CreateBinding(ServiceBinding { id, .. }) => {
                return (binding_key(id), Expect::Absent)
            }
            Change::PutInstance(ServiceInstance { id, .. }) | Change::DeleteInstance(id) => (
                instance_key(id),
                self.instances.get(id.as_str()).map(|held| held.revision),
            ),
            Change::PutBinding(ServiceBinding { id, .. }) | Change::DeleteBinding(id) => (
                binding_key(id),
                self.bindings.get(id.as_str()).map(|held| held.revision),
            ),
            Change::PutOperation(Operation { id, .. }) | Change::DeleteOperation(id) => (
                operation_key(id),
                self.operations.get(id.as_str()).map(|held| held.revision),
            ),
            Change::PutRegistry(record) => {
                let key = record.key();
                let found = self.registry.get(&key).map(|(revision, _)| *revision);
                (key, found)
            }
            Change::DeleteRegistry(kind, id) => {
                let key = kind.key(id);
                let found = self.registry.get(&key).map(|(revision, _)| *revision);
                (key, found)
            }
        };
        (key, found.map_or(Expect::Absent, Expect::Revision))
    }
}

impl StateMap {
    /// Loads everything from `store` into a new map.
    ///
    /// # Errors
    /// The store cannot be read, or holds a record this build cannot decode.
    pub async fn open(store: Arc<dyn Store>) -> Result<StateMap, StoreError> {
        let maps = load::load(store.as_ref()).await?;
        Ok(StateMap {
            store,
            registry_generation: AtomicU64::new(maps.registry_generation),
            maps: RwLock::new(maps),
            watched: tokio::sync::watch::Sender::new(0),
            markers: tokio::sync::Mutex::new(Markers::default()),
        })
    }

    /// Replaces everything with what the store holds now (after a watch reset).
    ///
    /// # Errors
    /// The store cannot be read; the map is then unchanged.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mut maps = load::load(self.store.as_ref()).await?;
        let mut held = self.maps.write().unwrap_or_else(|e| e.into_inner());
        maps.registry_generation += held.registry_generation + 1;
        *held = maps;
        self.registry_generation
            .store(held.registry_generation, Ordering::Release);
        Ok(())
    }

    /// Applies changes other processes made (from [`Store::watch`]); returns the operations
    /// they wrote: those in progress this process must be ready to drive if their owner
    /// dies, finished ones may have a local request waiting. A change no newer than what the
    /// map holds (this process's own commits come back through the watch) is skipped.
    pub fn apply_remote(&self, events: Vec<WatchEvent>) -> Vec<Operation> {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let mut operations = Vec::new();
        let mut progress = None;
        for event in events {
            if let WatchEvent::Put(Entry { revision, .. })
            | WatchEvent::Delete { revision, .. }
            | WatchEvent::Progress(revision) = &event
            {
                maps.delivered = maps.delivered.max(*revision);
            }
            match event {
                WatchEvent::Put(entry) => {
                    if maps
                        .revision_of(&entry.key)
                        .is_some_and(|r| r >= entry.revision)
                    {
                        continue;
                    }
                    match decode_entry(&entry) {
                        Ok(Some(change)) => {
                            if let Change::PutOperation(operation) = &change {
                                operations.push(operation.clone());
                            }
                            maps.apply(entry.revision, change.into());
                        }
                        Ok(None) => {}
                        Err(err) => log::warn!("ignoring a remote change: {err}"),
                    }
                }
                WatchEvent::Delete { key, revision } => {
                    if maps.revision_of(&key).is_some_and(|r| r < revision) {
                        maps.remove_key(&key);
                    }
                }
                WatchEvent::Progress(revision) => progress = Some(revision),
                WatchEvent::Reset => {}
            }
        }
        self.registry_generation
            .store(maps.registry_generation, Ordering::Release);
        drop(maps);
        if let Some(revision) = progress {
            self.watched.send_if_modified(|watched| {
                let newer = revision > *watched;
                *watched = (*watched).max(revision);
                newer
            });
        }
        operations
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated (updates are
        // plain inserts after the store commit), so a poisoned lock is still consistent.
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance.
    pub fn instance(&self, id: &str) -> Option<ServiceInstance> {
        self.read()
            .instances
            .get(id)
            .map(|held| held.packed.unpack())
    }

    /// Up to `limit` instances in id order after `after`, of the offerings `service` accepts
    /// (read without decoding the others), and whether more follow: a page of a listing
    /// (the Service Manager's `/v1/service_instances`). Costs one pass over the instances'
    /// ids, not a sort of them all.
    pub fn instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        service: impl Fn(&str) -> bool,
    ) -> (Vec<ServiceInstance>, bool) {
        let maps = self.read();
        let mut ids: Vec<&Held> = maps
            .instances
            .iter()
            .filter(|held| after.is_none_or(|after| held.packed.id() > after))
            .filter(|held| service(held.packed.leading_str(INSTANCE_SERVICE_ID)))
            .collect();
        let more = ids.len() > limit;
        if more {
            ids.select_nth_unstable_by(limit, |a, b| a.packed.id().cmp(b.packed.id()));
            ids.truncate(limit);
        }
        ids.sort_unstable_by(|a, b| a.packed.id().cmp(b.packed.id()));
        (
            ids.into_iter().map(|held| held.packed.unpack()).collect(),
            more,
        )
    }

    /// Up to `limit` instances in id order after `after` that `keep` accepts, and whether
    /// more follow: one pass that sorts the ids and decodes in order until the page is full
    /// (a filter few instances pass decodes them all, once).
    pub fn instances_matching(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&ServiceInstance) -> bool,
    ) -> (Vec<ServiceInstance>, bool) {
        matching(&self.read().instances, after, limit, keep)
    }

    /// Up to `limit` bindings in id order after `after` that `keep` accepts, and whether more
    /// follow (as [`StateMap::instances_matching`]).
    pub fn bindings_matching(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&ServiceBinding) -> bool,
    ) -> (Vec<ServiceBinding>, bool) {
        matching(&self.read().bindings, after, limit, keep)
    }

    /// Whether any instance is of an offering `service` accepts (nothing decoded).
    pub fn any_instance_of(&self, service: impl Fn(&str) -> bool) -> bool {
        self.read()
            .instances
            .iter()
            .any(|held| service(held.packed.leading_str(INSTANCE_SERVICE_ID)))
    }

    /// Whether the map holds an instance (nothing decoded).
    pub fn has_instance(&self, id: &str) -> bool {
        self.read().instances.get(id).is_some()
    }

    /// Whether the map holds a binding (nothing decoded).
    pub fn has_binding(&self, id: &str) -> bool {
        self.read().bindings.get(id).is_some()
    }

    /// A binding.
    pub fn binding(&self, id: &str) -> Option<ServiceBinding> {
        self.read()
            .bindings
            .get(id)
            .map(|held| held.packed.unpack())
    }

    /// An operation record.
    pub fn operation(&self, id: &str) -> Option<Operation> {
        self.read()
            .operations
            .get(id)
            .map(|held| held.packed.unpack())
    }

    /// A binding, still packed: one copy, decoded later by whoever needs its fields.
    pub fn sealed_binding(&self, id: &str) -> Option<Sealed<ServiceBinding>> {
        self.read()
            .bindings
            .get(id)
            .map(|held| Sealed::of(&held.packed))
    }

    /// An operation in progress, for the engine to dispatch, read under one lock with its
    /// instance: what the step rests on (the basis of both records, conditioning only what
    /// it writes), what the engine decides on, and both records still packed (the worker
    /// decodes them). One look-up of each record, as the scanner makes this read for every
    /// due operation (issue #20: a scan pass with 10,000 due).
    pub fn to_dispatch(&self, operation_id: &str, instance_id: &str) -> Option<Dispatchable> {
        let maps = self.read();
        let operation = maps
            .operations
            .get(operation_id)
            .filter(|held| held.status.state == OperationState::InProgress)?;
        let instance = maps.instances.get(instance_id);
        Some(Dispatchable {
            basis: Basis {
                read: vec![
                    Read::Operation(operation_id).at(Some(operation.revision)),
                    Read::Instance(instance_id).at(instance.map(|held| held.revision)),
                ],
                written_only: true,
            },
            brief: operation.status.brief,
            operation: Sealed::of(&operation.packed),
            instance: instance.map(|held| Sealed::of(&held.packed)),
        })
    }

    /// The instance of an operation in progress, read without decoding the rest of the
    /// record (the engine takes the instance's lock before reading the operation itself).
    pub fn instance_of_operation_in_progress(&self, id: &str) -> Option<String> {
        let maps = self.read();
        let held = maps
            .operations
            .get(id)
            .filter(|held| held.status.state == OperationState::InProgress)?;
        Some(held.packed.leading_str(OPERATION_INSTANCE_ID).to_owned())
    }

    /// The bindings of an instance, in id order.
    pub fn bindings_of(&self, instance_id: &str) -> Vec<ServiceBinding> {
        let maps = self.read();
        maps.bindings_by_instance
            .get(instance_id)
            .into_iter()
            .flatten()
            .filter_map(|id| maps.bindings.get(id).map(|held| held.packed.unpack()))
            .collect()
    }

    /// The newest operation record of a target, if one is retained.
    pub fn latest_operation(&self, target: &Target) -> Option<Operation> {
        let maps = self.read();
        let id = maps.latest.get(target)?;
        maps.operations.get(id).map(|held| held.packed.unpack())
    }

    /// The `limit` operations in progress that were accepted first, oldest first, and how
    /// many are in progress: an overview that decodes only what it shows (issue #20: the
    /// dashboard's in-flight table stays flat however many run).
    pub fn oldest_in_progress(&self, limit: usize) -> (Vec<Operation>, usize) {
        let maps = self.read();
        let mut running: Vec<&HeldOperation> = maps
            .operations
            .iter()
            .filter(|held| held.status.state == OperationState::InProgress)
            .collect();
        let total = running.len();
        let accepted = |held: &&HeldOperation| held.status.brief.created_at;
        if running.len() > limit {
            running.select_nth_unstable_by_key(limit, accepted);
            running.truncate(limit);
        }
        running.sort_by_key(accepted);
        let shown = running
            .into_iter()
            .map(|held| held.packed.unpack())
            .collect();
        (shown, total)
    }

    /// Every operation still in progress (the engine resumes them at start).
    pub fn operations_in_progress(&self) -> Vec<Operation> {
        let maps = self.read();
        maps.operations
            .iter()
            .filter(|held| held.status.state == OperationState::InProgress)
            .map(|held| held.packed.unpack())
            .collect()
    }

    /// The `limit` operations that failed last, newest first (what an operator looks at).
    /// Walks the statuses without unpacking; unpacks only those returned.
    pub fn recent_failures(&self, limit: usize) -> Vec<Operation> {
        let maps = self.read();
        let mut failed: Vec<&HeldOperation> = maps
            .operations
            .iter()
            .filter(|held| held.status.state == OperationState::Failed)
            .collect();
        failed.sort_unstable_by_key(|held| std::cmp::Reverse(held.status.finished_at));
        failed
            .into_iter()
            .take(limit)
            .map(|held| held.packed.unpack())
            .collect()
    }

    /// Ids of the operations that finished at or before `cutoff` (the clean-up's query). Walks
    /// every operation's status under the read lock, without unpacking: about a millisecond
    /// for 100,000 records, and the clean-up asks once per interval.
    pub fn finished_by(&self, cutoff: UnixMillis) -> Vec<String> {
        let maps = self.read();
        maps.operations
            .iter()
            .filter(|held| held.status.finished_at.is_some_and(|at| at.get() <= cutoff))
            .map(|held| held.packed.id().to_owned())
            .collect()
    }

    /// How much the map holds.
    pub fn counts(&self) -> Counts {
        let maps = self.read();
        Counts {
            instances: maps.instances.len(),
            bindings: maps.bindings.len(),
            operations: maps.operations.len(),
        }
    }

    /// Operation records by state. Walks every record's status under the read lock: meant
    /// for a metrics scrape every few seconds, not for the request path.
    pub fn operation_counts(&self) -> OperationCounts {
        let maps = self.read();
        let mut counts = OperationCounts::default();
        for held in maps.operations.iter() {
            match held.status.state {
                OperationState::InProgress => counts.in_progress += 1,
                OperationState::Succeeded => counts.succeeded += 1,
                OperationState::Failed => counts.failed += 1,
            }
        }
        counts
    }

    /// Replaces an operation's record in the map only, keeping the revision it was stored
    /// with: for progress that need not survive a restart (a poll that learnt nothing but
    /// counted an attempt), so the store is not written for it. The operation's next commit
    /// persists the record as it then is, conditioned on that revision as usual. Changes
    /// nothing and answers false when the map holds no such operation.
    pub fn update_unpersisted(&self, operation: Operation) -> bool {
        let status = OperationStatus::of(&operation);
        let packed = Packed::pack(operation);
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        match maps.operations.get_mut(packed.id()) {
            Some(held) => {
                held.status = status;
                held.packed = packed;
                true
            }
            None => false,
        }
    }

    /// The revisions the map holds now for `records`: what a decision rests on. Taken under
    /// the instance lock *before* the records are read, and handed to
    /// [`StateMap::commit_on`] with the decision: the commit then holds only if none of them
    /// changed in the store since (another replica's write the follower applied between the
    /// read and the commit included), so two replicas that decided on the same state never
    /// both succeed (issue #16).
    pub fn basis(&self, records: &[Read<'_>]) -> Basis {
        let maps = self.read();
        let read = records
            .iter()
            .map(|record| {
                let revision = match record {
                    Read::Instance(id) => maps.instances.get(id).map(|held| held.revision),
                    Read::Binding(id) => maps.bindings.get(id).map(|held| held.revision),
                    Read::Operation(id) => maps.operations.get(id).map(|held| held.revision),
                };
                record.at(revision)
            })
            .collect();
        Basis {
            read,
            written_only: false,
        }
    }

    /// Persists `changes` atomically, then applies them to the map.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another writer changed one of the keys (nothing is
    /// applied), or the store's failure; in every error case the map is unchanged.
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_on(&Basis::default(), changes).await
    }

    /// Persists `changes` on `basis` (see [`StateMap::basis`]): each write to a record the
    /// decision read expects the revision it was read at, and each record it read but does
    /// not change is written again as it is with that expectation, so that a change to it
    /// since the read fails the commit too. Other writes expect what the map holds.
    ///
    /// # Errors
    /// As [`StateMap::commit`]; [`StoreError::Conflict`] also when a record of the basis
    /// changed since it was taken.
    pub async fn commit_on(&self, basis: &Basis, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_claiming(basis, changes, &Claims::none()).await
    }

    /// [`StateMap::commit_on`], taking and giving up `claims` with the changes (see
    /// [`Claims`]): what the engine commits as it accepts or ends an operation.
    ///
    /// # Errors
    /// As [`StateMap::commit_on`].
    pub async fn commit_claiming(
        &self,
        basis: &Basis,
        changes: Vec<Change>,
        claims: &Claims,
    ) -> Result<(), StoreError> {
        let mut changes = changes;
        if changes.is_empty() {
            return Ok(());
        }
        let mut writes: Vec<Write> = {
            let maps = self.read();
            let mut writes: Vec<Write> = changes
                .iter()
                .map(|change| {
                    let (key, mut expect) = maps.expect(change);
                    let created =
                        matches!(change, Change::CreateInstance(_) | Change::CreateBinding(_));
                    if let (Some(read), false) = (basis.revision_of(&key), created) {
                        expect = read.map_or(Expect::Absent, Expect::Revision);
                    }
                    // The value is filled in below, once the record is packed.
                    Write {
                        key,
                        value: None,
                        expect,
                    }
                })
                .collect();
            // Records read and left as they are: written again, conditioned on the read.
            for (key, revision, record) in &basis.read {
                let (Some(revision), false) = (revision, writes.iter().any(|w| w.key == *key))
                else {
                    continue;
                };
                if basis.written_only {
                    continue;
                }
                let again = match record {
                    Record::Instance(id) => maps
                        .instances
                        .get(id.as_str())
                        .map(|held| Change::PutInstance(held.packed.unpack())),
                    Record::Binding(id) => maps
                        .bindings
                        .get(id.as_str())
                        .map(|held| Change::PutBinding(held.packed.unpack())),
                    Record::Operation(id) => maps
                        .operations
                        .get(id.as_str())
                        .map(|held| Change::PutOperation(held.packed.unpack())),
                };
                let Some(again) = again else {
                    // Gone from the map since the read: the store moved on.
                    return Err(StoreError::Conflict { key: key.clone() });
                };
                writes.push(Write {
                    key: key.clone(),
                    value: None,
                    expect: Expect::Revision(*revision),
                });
                changes.push(again);
            }
            writes
        };
        // Each record is packed once, for the map and (in that form) for the store.
        let format = self.store.record_format();
        let mut packed = Vec::with_capacity(changes.len());
        for (write, change) in writes.iter_mut().zip(changes) {
            if format == RecordFormat::Json {
                write.value = json_value(&change);
            }
            let packing = Packing::from(change);
            if format == RecordFormat::Packed {
                write.value = packed_value(&packing);
            }
            packed.push(packing);
        }
        // The keys, to find what the map holds of each once the store has answered.
        let keys: Vec<String> = writes.iter().map(|write| write.key.clone()).collect();
        let revision = self.store.commit_claiming(writes, claims).await?;
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        // Between the store's answer and this lock, the watch may have delivered this commit
        // and other processes' changes after it: applied now, this commit would put their
        // records back to what it wrote, and the map would hold a stale revision until the
        // record changed again (every commit conditioned on it refused meanwhile: issue #16's
        // race of binds and deprovisions saw an unbind retried for a minute). So a commit the
        // watch has passed is left as the watch applied it; one it has reached (a part of its
        // events delivered) or not yet reached is applied, except to records held newer.
        if revision >= maps.delivered {
            for (key, change) in keys.iter().zip(packed) {
                if maps.revision_of(key).is_none_or(|held| held <= revision) {
                    maps.apply(revision, change);
                }
            }
        }
        self.registry_generation
            .store(maps.registry_generation, Ordering::Release);
        Ok(())
    }

    /// A number that changes whenever a registry record does (here or on another replica,
    /// or in a reload): what is derived from the registry (the catalog) is rebuilt when it
    /// moves. One atomic read.
    pub fn registry_generation(&self) -> u64 {
        self.registry_generation.load(Ordering::Acquire)
    }

    /// The registry records of `kind`, in key order.
    fn registry_of(&self, kind: RegistryKind) -> Vec<RegistryRecord> {
        let maps = self.read();
        let prefix = kind.prefix();
        maps.registry
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, (_, record))| record.clone())
            .collect()
    }

    /// The registry record of `kind` with `id`.
    fn registry_record(&self, kind: RegistryKind, id: &str) -> Option<RegistryRecord> {
        let maps = self.read();
        maps.registry
            .get(&kind.key(id))
            .map(|(_, record)| record.clone())
    }

    /// Every registered external broker.
    pub fn service_brokers(&self) -> Vec<ServiceBroker> {
        self.registry_of(RegistryKind::Broker)
            .into_iter()
            .filter_map(|record| match record {
                RegistryRecord::Broker(broker) => Some(broker),
                _ => None,
            })
            .collect()
    }

    /// A registered external broker.
    pub fn service_broker(&self, id: &str) -> Option<ServiceBroker> {
        match self.registry_record(RegistryKind::Broker, id)? {
            RegistryRecord::Broker(broker) => Some(broker),
            _ => None,
        }
    }

    /// Every registered platform.
    pub fn platforms(&self) -> Vec<Platform> {
        self.registry_of(RegistryKind::Platform)
            .into_iter()
            .filter_map(|record| match record {
                RegistryRecord::Platform(platform) => Some(platform),
                _ => None,
            })
            .collect()
    }

    /// A registered platform.
    pub fn platform(&self, id: &str) -> Option<Platform> {
        match self.registry_record(RegistryKind::Platform, id)? {
            RegistryRecord::Platform(platform) => Some(platform),
            _ => None,
        }
    }

    /// Every visibility.
    pub fn visibilities(&self) -> Vec<Visibility> {
        self.registry_of(RegistryKind::Visibility)
            .into_iter()
            .filter_map(|record| match record {
                RegistryRecord::Visibility(visibility) => Some(visibility),
                _ => None,
            })
            .collect()
    }

    /// Every asynchronous Service Manager operation still kept.
    pub fn registry_operations(&self) -> Vec<RegistryOperation> {
        self.registry_of(RegistryKind::Operation)
            .into_iter()
            .filter_map(|record| match record {
                RegistryRecord::Operation(operation) => Some(operation),
                _ => None,
            })
            .collect()
    }

    /// An asynchronous Service Manager operation.
    pub fn registry_operation(&self, id: &str) -> Option<RegistryOperation> {
        match self.registry_record(RegistryKind::Operation, id)? {
            RegistryRecord::Operation(operation) => Some(operation),
            _ => None,
        }
    }

    /// A visibility.
    pub fn visibility(&self, id: &str) -> Option<Visibility> {
        match self.registry_record(RegistryKind::Visibility, id)? {
            RegistryRecord::Visibility(visibility) => Some(visibility),
            _ => None,
        }
    }
}

/// A record a decision reads (see [`StateMap::basis`]).
#[derive(Debug, Clone, Copy)]
pub enum Read<'a> {
    /// An instance.
    Instance(&'a str),
    /// A binding.
    Binding(&'a str),
    /// An operation.
    Operation(&'a str),
}

impl Read<'_> {
    /// This read as a basis holds it: store key, the revision it was read at, the record.
    fn at(&self, revision: Option<Revision>) -> (String, Option<Revision>, Record) {
        match self {
            Read::Instance(id) => (instance_key(id), revision, Record::Instance((*id).into())),
            Read::Binding(id) => (binding_key(id), revision, Record::Binding((*id).into())),
            Read::Operation(id) => (operation_key(id), revision, Record::Operation((*id).into())),
        }
    }
}

/// A record of a basis, owned.
#[derive(Debug, Clone)]
enum Record {
    Instance(String),
    Binding(String),
    Operation(String),
}

/// The store revisions of the records a decision read, `None` for a record that did not
/// exist (see [`StateMap::basis`]). The default is empty: a commit on it expects what the
/// map holds at commit time.
#[derive(Debug, Clone, Default)]
pub struct Basis {
    read: Vec<(String, Option<Revision>, Record)>,
    /// Only the records written are conditioned (none is written again).
    written_only: bool,
}

impl Basis {
    /// Adds what `more` read (taken later, for records found through the first ones).
    pub fn extend(&mut self, more: Basis) {
        self.read.extend(more.read);
    }

    /// This basis for a commit that conditions only the records it writes: a step that does
    /// not rest on the others (the engine's progress of an operation it owns) and should not
    /// write them again.
    pub fn written_only(mut self) -> Basis {
        self.written_only = true;
        self
    }

    /// The revision `key` was read at, if the basis holds it (`Some(None)`: read absent).
    fn revision_of(&self, key: &str) -> Option<Option<Revision>> {
        self.read
            .iter()
            .find(|(read, _, _)| read == key)
            .map(|(_, revision, _)| *revision)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::*;
    use serde_json::json;

    pub(crate) fn instance(id: &str) -> ServiceInstance {
        ServiceInstance {
            id: id.into(),
            service_id: "s".into(),
            plan_id: "p".into(),
            parameters: json!({}),
            context: json!(null),
            organization_guid: None,
            space_guid: None,
            maintenance_version: None,
            dashboard_url: None,
            metadata: None,
            state: InstanceState::Ready,
            plugin_state: json!({"resource": id}),
            last_operation: None,
            created_at: 1,
            platform_id: None,
            shared: false,
            labels: Default::default(),
        }
    }

    fn platform(id: &str, name: &str) -> Platform {
        Platform {
            id: id.into(),
            name: name.into(),
            kind: "kubernetes".into(),
            description: String::new(),
            username: format!("user-{id}"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            labels: Default::default(),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[tokio::test]
    async fn registry_records_persist_replicate_and_move_the_generation() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let before = map.registry_generation();
        map.commit(vec![
            Change::PutRegistry(RegistryRecord::Platform(platform("p-1", "cf-eu"))),
            Change::PutRegistry(RegistryRecord::Platform(platform("p-2", "k8s-us"))),
        ])
        .await
        .unwrap();
        assert!(map.registry_generation() > before);
        let names: Vec<String> = map.platforms().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["cf-eu", "k8s-us"]);
        assert!(map.service_brokers().is_empty(), "kinds are kept apart");

        // Another process's map loads them, and follows a deletion made here.
        let other = StateMap::open(Arc::clone(&store)).await.unwrap();
        assert_eq!(other.platform("p-2"), Some(platform("p-2", "k8s-us")));
        map.commit(vec![Change::DeleteRegistry(
            RegistryKind::Platform,
            "p-2".into(),
        )])
        .await
        .unwrap();
        assert_eq!(map.platform("p-2"), None);
        let generation = other.registry_generation();
        let deleted_at = store
            .load()
            .await
            .unwrap()
            .iter()
            .map(|e| e.revision)
            .max()
            .unwrap()
            + 1;
        other.apply_remote(vec![WatchEvent::Delete {
            key: RegistryKind::Platform.key("p-2"),
            revision: deleted_at,
        }]);
        assert_eq!(other.platform("p-2"), None);
        assert!(other.registry_generation() > generation);

        // Stale writes conflict like any other record's.
        let stale = StateMap::open(Arc::clone(&store)).await.unwrap();
        map.commit(vec![Change::PutRegistry(RegistryRecord::Platform(
            platform("p-1", "renamed"),
        ))])
        .await
        .unwrap();
        let err = stale
            .commit(vec![Change::PutRegistry(RegistryRecord::Platform(
                platform("p-1", "lost"),
            ))])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    }

    /// A provision in progress, as stored (fields left out take their defaults).
    fn operation(id: &str, instance_id: &str, created_at: u64) -> Operation {
        serde_json::from_value(json!({
            "id": id, "kind": "provision", "instance_id": instance_id,
            "state": "in_progress", "sync": false,
            "created_at": created_at, "deadline": u64::MAX,
        }))
        .expect("an operation record")
    }

    #[tokio::test]
    async fn commits_are_visible_and_reload_from_the_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        map.commit(vec![
            Change::PutInstance(instance("i1")),
            Change::PutOperation(operation("o1", "i1", 10)),
            Change::PutOperation(operation("o2", "i1", 20)),
        ])
        .await
        .unwrap();
        let target = Target::Instance("i1".into());
        assert_eq!(map.latest_operation(&target).unwrap().id, "o2");
        let reloaded = StateMap::open(store).await.unwrap();
        assert_eq!(reloaded.instance("i1"), map.instance("i1"));
        assert_eq!(reloaded.latest_operation(&target).unwrap().id, "o2");
        assert_eq!(reloaded.operations_in_progress().len(), 2);
        assert_eq!(
            reloaded.counts(),
            Counts {
                instances: 1,
                bindings: 0,
                operations: 2
            }
        );
    }

    #[tokio::test]
    async fn a_store_written_as_json_loads_and_its_records_take_the_packed_form_when_written() {
        // As an embedded store that an earlier build filled: every record in JSON.
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        assert_eq!(store.record_format(), RecordFormat::Packed);
        let json = |change: Change| Write {
            key: Maps::default().expect(&change).0,
            value: json_value(&change),
            expect: Expect::Any,
        };
        store
            .commit(vec![
                json(Change::PutInstance(instance("i1"))),
                json(Change::PutInstance(instance("i2"))),
                json(Change::PutOperation(operation("o1", "i1", 10))),
            ])
            .await
            .unwrap();
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        assert_eq!(map.instance("i2"), Some(instance("i2")));
        assert_eq!(map.operation("o1"), Some(operation("o1", "i1", 10)));

        let mut changed = instance("i1");
        changed.plan_id = "p2".into();
        map.commit(vec![Change::PutInstance(changed.clone())])
            .await
            .unwrap();
        let first_bytes: Vec<(String, u8)> = (store.load().await.unwrap().into_iter())
            .map(|entry| (entry.key, entry.value[0]))
            .collect();
        assert_eq!(
            first_bytes,
            [
                ("instances/i1".to_owned(), 0xc1),
                ("instances/i2".to_owned(), b'{'),
                ("operations/o1".to_owned(), b'{'),
            ]
        );
        let reloaded = StateMap::open(store).await.unwrap();
        assert_eq!(reloaded.instance("i1"), Some(changed));
        assert_eq!(reloaded.instance("i2"), Some(instance("i2")));
        assert_eq!(
            reloaded.latest_operation(&Target::Instance("i1".into())),
            Some(operation("o1", "i1", 10))
        );
    }

    #[tokio::test]
    async fn the_oldest_operations_in_progress_come_first_and_all_are_counted() {
        let map = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        let mut changes: Vec<Change> = [50, 10, 40, 30, 20]
            .iter()
            .map(|&at| Change::PutOperation(operation(&format!("o{at}"), "i1", at)))
            .collect();
        let mut done = operation("o5", "i1", 5);
        done.state = OperationState::Succeeded;
        changes.push(Change::PutOperation(done));
        map.commit(changes).await.unwrap();
        let (shown, total) = map.oldest_in_progress(3);
        let ids: Vec<&str> = shown.iter().map(|op| op.id.as_str()).collect();
        assert_eq!((ids, total), (vec!["o10", "o20", "o30"], 5));
        let (shown, total) = map.oldest_in_progress(10);
        assert_eq!((shown.len(), total), (5, 5));
    }

    #[tokio::test]
    async fn unpersisted_updates_stay_in_the_map_until_the_next_commit() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        map.commit(vec![Change::PutOperation(operation("o1", "i1", 10))])
            .await
            .unwrap();
        let mut polled = map.operation("o1").unwrap();
        polled.attempts = 7;
        assert!(map.update_unpersisted(polled.clone()));
        assert_eq!(map.operation("o1").unwrap().attempts, 7);
        // The store was not written: a reload sees the committed record.
        let reloaded = StateMap::open(Arc::clone(&store)).await.unwrap();
        assert_eq!(reloaded.operation("o1").unwrap().attempts, 0);
        // The next commit is still conditioned on the stored revision, and persists it all.
        polled.description = Some("halfway".into());
        map.commit(vec![Change::PutOperation(polled)])
            .await
            .unwrap();
        let reloaded = StateMap::open(store).await.unwrap();
        let stored = reloaded.operation("o1").unwrap();
        assert_eq!(
            (stored.attempts, stored.description.as_deref()),
            (7, Some("halfway"))
        );
        assert!(!map.update_unpersisted(operation("unknown", "i1", 1)));
    }

    #[tokio::test]
    async fn the_clean_up_query_finds_what_finished_by_the_cutoff() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let finished = |id: &str, at: u64| {
            let mut operation = operation(id, "i1", 1);
            operation.state = OperationState::Succeeded;
            operation.finished_at = Some(at);
            operation
        };
        map.commit(vec![
            Change::PutOperation(finished("early", 100)),
            Change::PutOperation(finished("cutoff", 200)),
            Change::PutOperation(finished("late", 300)),
            Change::PutOperation(operation("running", "i2", 1)),
        ])
        .await
        .unwrap();
        let mut due = map.finished_by(200);
        due.sort();
        assert_eq!(due, ["cutoff", "early"]);
        // A running operation that finishes later is found once it has.
        let mut done = map.operation("running").unwrap();
        done.state = OperationState::Failed;
        done.finished_at = Some(150);
        map.commit(vec![Change::PutOperation(done)]).await.unwrap();
        assert_eq!(map.finished_by(150).len(), 2);
        // The same after a reload from the store.
        let reloaded = StateMap::open(store).await.unwrap();
        assert_eq!(reloaded.finished_by(150).len(), 2);
        assert_eq!(
            reloaded.operation("running").unwrap().finished_at,
            Some(150)
        );
    }

    /// D-17: a delete that halted a create with no reference yet is still known as such after
    /// a restart (the stored JSON writes a `null` reference and none alike).
    #[tokio::test]
    async fn a_halting_delete_is_known_after_a_reload() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let mut delete = operation("d1", "i1", 10);
        delete.kind = OperationKind::Deprovision;
        delete.halted = true;
        delete.halted_reference = Some(json!(null));
        let plain = operation("d2", "i2", 10);
        map.commit(vec![
            Change::PutOperation(delete),
            Change::PutOperation(plain),
        ])
        .await
        .unwrap();
        assert!(map.operation("d1").unwrap().halted_a_create());
        let reloaded = StateMap::open(store).await.unwrap();
        assert!(reloaded.operation("d1").unwrap().halted_a_create());
        assert!(!reloaded.operation("d2").unwrap().halted_a_create());
    }

    #[tokio::test]
    async fn operations_are_counted_by_state() {
        let map = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        let mut done = operation("o2", "i1", 20);
        done.state = OperationState::Succeeded;
        let mut failed = operation("o3", "i2", 30);
        failed.state = OperationState::Failed;
        map.commit(vec![
            Change::PutOperation(operation("o1", "i1", 10)),
            Change::PutOperation(done),
            Change::PutOperation(failed),
        ])
        .await
        .unwrap();
        assert_eq!(
            map.operation_counts(),
            OperationCounts {
                in_progress: 1,
                succeeded: 1,
                failed: 1
            }
        );
    }

    #[tokio::test]
    async fn a_write_by_another_process_is_a_conflict_and_leaves_the_map_alone() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        map.commit(vec![Change::PutInstance(instance("i1"))])
            .await
            .unwrap();
        // Another replica updates the same key behind this map's back.
        let other = StateMap::open(Arc::clone(&store)).await.unwrap();
        let mut changed = instance("i1");
        changed.plan_id = "other".into();
        other
            .commit(vec![Change::PutInstance(changed)])
            .await
            .unwrap();
        let mut mine = instance("i1");
        mine.plan_id = "mine".into();
        let res = map.commit(vec![Change::PutInstance(mine)]).await;
        assert!(matches!(res, Err(StoreError::Conflict { .. })));
        assert_eq!(map.instance("i1").unwrap().plan_id, "p");
    }

    /// A create decided on a map without the instance fails if the instance appears before
    /// the commit (another replica's, applied by the follower meanwhile), instead of
    /// overwriting it as a put would.
    #[tokio::test]
    async fn a_create_never_overwrites_an_instance_that_appeared_meanwhile() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let other = StateMap::open(Arc::clone(&store)).await.unwrap();
        assert!(map.instance("i1").is_none(), "decided to create");
        other
            .commit(vec![Change::PutInstance(instance("i1"))])
            .await
            .unwrap();
        // The follower applies the other replica's create to this map.
        let stored = store.load().await.unwrap();
        map.apply_remote(stored.into_iter().map(WatchEvent::Put).collect());
        let mut mine = instance("i1");
        mine.plan_id = "mine".into();
        let result = map.commit(vec![Change::CreateInstance(mine)]).await;
        assert!(
            matches!(result, Err(StoreError::Conflict { .. })),
            "{result:?}"
        );
        assert_eq!(
            map.instance("i1").unwrap().plan_id,
            "p",
            "the other create stands"
        );
        // A put decided on the same read would have overwritten it (what a create prevents).
        let mut put = instance("i1");
        put.plan_id = "mine".into();
        map.commit(vec![Change::PutInstance(put)]).await.unwrap();
        assert_eq!(map.instance("i1").unwrap().plan_id, "mine");
    }

    /// Issue #16: a decision on an existing record, committed on the basis it was read at,
    /// fails when another replica's change to that record was applied between the read and
    /// the commit, whether the decision writes the record (update vs update) or only read it
    /// (a bind reads the instance a deprovision changes).
    #[tokio::test]
    async fn a_decision_on_a_record_that_changed_since_it_was_read_fails() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = StateMap::open(Arc::clone(&store)).await.unwrap();
        let other = StateMap::open(Arc::clone(&store)).await.unwrap();
        map.commit(vec![Change::PutInstance(instance("i1"))])
            .await
            .unwrap();
        other.reload().await.unwrap();
        async fn follow(map: &StateMap, store: &Arc<dyn Store>) {
            let stored = store.load().await.unwrap();
            map.apply_remote(stored.into_iter().map(WatchEvent::Put).collect());
        }

        // Update vs update: both read plan p; the other commits first.
        let basis = map.basis(&[Read::Instance("i1")]);
        let read = map.instance("i1").unwrap();
        let mut theirs = other.instance("i1").unwrap();
        theirs.plan_id = "theirs".into();
        other
            .commit(vec![Change::PutInstance(theirs)])
            .await
            .unwrap();
        follow(&map, &store).await;
        let mut mine = read.clone();
        mine.plan_id = "mine".into();
        let result = map
            .commit_on(&basis, vec![Change::PutInstance(mine.clone())])
            .await;
        assert!(
            matches!(result, Err(StoreError::Conflict { .. })),
            "{result:?}"
        );
        assert_eq!(map.instance("i1").unwrap().plan_id, "theirs");
        // Without the basis the map's revision at commit time would have let it through.
        let fresh = map.basis(&[Read::Instance("i1")]);
        map.commit_on(&fresh, vec![Change::PutInstance(mine)])
            .await
            .unwrap();
        assert_eq!(map.instance("i1").unwrap().plan_id, "mine");

        // A record only read: a bind's decision rests on the instance, which the other
        // replica changes; the bind writes only its binding, and still fails.
        other.reload().await.unwrap();
        let basis = map.basis(&[Read::Instance("i1"), Read::Binding("b1")]);
        let mut deleting = other.instance("i1").unwrap();
        deleting.state = InstanceState::Deprovisioning;
        other
            .commit(vec![Change::PutInstance(deleting)])
            .await
            .unwrap();
        follow(&map, &store).await;
        let binding: ServiceBinding = serde_json::from_value(json!({
            "id": "b1", "instance_id": "i1", "service_id": "s", "plan_id": "p",
            "parameters": {}, "context": null, "state": "binding", "plugin_state": null,
            "created_at": 1
        }))
        .unwrap();
        let result = map
            .commit_on(&basis, vec![Change::CreateBinding(binding.clone())])
            .await;
        assert!(
            matches!(result, Err(StoreError::Conflict { .. })),
            "{result:?}"
        );
        assert!(map.binding("b1").is_none(), "nothing applied");
        // On an unchanged basis the read record is written again as it is.
        let basis = map.basis(&[Read::Instance("i1"), Read::Binding("b1")]);
        map.commit_on(&basis, vec![Change::CreateBinding(binding)])
            .await
            .unwrap();
        assert_eq!(
            map.instance("i1").unwrap().state,
            InstanceState::Deprovisioning
        );
        assert!(map.binding("b1").is_some());
    }

    /// A memory store that, when armed, holds back its next commit's answer (the commit is
    /// applied) until the test lets it go: an answer from etcd that comes after the watch has
    /// delivered the commit and changes made after it.
    #[derive(Debug, Default)]
    struct SlowAnswer {
        inner: MemoryStore,
        gate: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    }

    impl SlowAnswer {
        fn arm(&self) -> tokio::sync::oneshot::Sender<()> {
            let (open, gate) = tokio::sync::oneshot::channel();
            *self.gate.lock().unwrap() = Some(gate);
            open
        }
    }

    #[async_trait::async_trait]
    impl Store for SlowAnswer {
        async fn load_pages(
            &self,
            visit: &mut crate::store::PageVisitor<'_>,
        ) -> Result<(), StoreError> {
            self.inner.load_pages(visit).await
        }

        async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
            let revision = self.inner.commit(writes).await;
            let gate = self.gate.lock().unwrap().take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            revision
        }

        async fn commit_claiming(
            &self,
            writes: Vec<Write>,
            _claims: &Claims,
        ) -> Result<Revision, StoreError> {
            self.commit(writes).await
        }

        async fn check(&self) -> Result<(), StoreError> {
            Ok(())
        }

        fn name(&self) -> &'static str {
            "slow answer"
        }

        fn record_format(&self) -> RecordFormat {
            RecordFormat::Json
        }

        fn loaded_revision(&self) -> Revision {
            0
        }
    }

    // Issue #16 (found racing binds and deprovisions over three replicas): a commit whose
    // answer arrives after the watch has delivered it and another process's change after it
    // must not put the map back to what it wrote. The map held the stale revision, and every
    // commit conditioned on that record was refused until the record changed again.
    #[tokio::test]
    async fn a_late_answer_never_puts_back_what_the_watch_delivered_since() {
        let store = Arc::new(SlowAnswer::default());
        let map = Arc::new(
            StateMap::open(Arc::clone(&store) as Arc<dyn Store>)
                .await
                .unwrap(),
        );
        let other = StateMap::open(Arc::clone(&store) as Arc<dyn Store>)
            .await
            .unwrap();
        let follow = |map: &StateMap, stored: Vec<Entry>, from: Revision| {
            let events = stored.into_iter().filter(|entry| entry.revision >= from);
            map.apply_remote(events.map(WatchEvent::Put).collect());
        };
        map.commit(vec![Change::PutInstance(instance("i1"))])
            .await
            .unwrap();
        let planned = |plan: &str| {
            let mut instance = instance("i1");
            instance.plan_id = plan.into();
            Change::PutInstance(instance)
        };
        // Commits `change` here with its answer held back until `open` is sent.
        let held_back = |change: Change| {
            let open = store.arm();
            let map = Arc::clone(&map);
            let mine = tokio::spawn(async move { map.commit(vec![change]).await });
            (open, mine)
        };

        // Updated here (answer held back), then by the other process.
        let (open, mine) = held_back(planned("mine"));
        while store.inner.load().await.unwrap()[0].revision < 2 {
            tokio::task::yield_now().await;
        }
        other.reload().await.unwrap();
        other.commit(vec![planned("theirs")]).await.unwrap();
        follow(&map, store.load().await.unwrap(), 2);
        open.send(()).unwrap();
        mine.await.unwrap().unwrap();
        assert_eq!(map.instance("i1").unwrap().plan_id, "theirs");
        let basis = map.basis(&[Read::Instance("i1")]);
        map.commit_on(&basis, vec![planned("again")])
            .await
            .expect("the map holds the stored revision");

        // Updated here (answer held back), then deleted by the other process.
        let (open, mine) = held_back(planned("mine"));
        while store.inner.load().await.unwrap()[0].revision < 5 {
            tokio::task::yield_now().await;
        }
        other.reload().await.unwrap();
        other
            .commit(vec![Change::DeleteInstance("i1".into())])
            .await
            .unwrap();
        map.apply_remote(vec![WatchEvent::Delete {
            key: "instances/i1".into(),
            revision: 6,
        }]);
        open.send(()).unwrap();
        mine.await.unwrap().unwrap();
        assert!(map.instance("i1").is_none(), "deleted after this commit");
    }

    #[tokio::test]
    async fn bindings_are_indexed_by_instance() {
        let map = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        let binding = |id: &str, instance_id: &str| ServiceBinding {
            id: id.into(),
            instance_id: instance_id.into(),
            service_id: "s".into(),
            plan_id: "p".into(),
            parameters: json!({}),
            bind_resource: json!(null),
            app_guid: None,
            context: json!(null),
            predecessor_binding_id: None,
            state: BindingState::Bound,
            result: json!({}),
            plugin_state: json!(null),
            last_operation: None,
            created_at: 1,
            platform_id: None,
            labels: Default::default(),
        };
        map.commit(vec![
            Change::PutBinding(binding("b2", "i1")),
            Change::PutBinding(binding("b1", "i1")),
            Change::PutBinding(binding("b3", "i2")),
        ])
        .await
        .unwrap();
        let ids: Vec<_> = map.bindings_of("i1").into_iter().map(|b| b.id).collect();
        assert_eq!(ids, ["b1", "b2"]);
        map.commit(vec![Change::DeleteBinding("b1".into())])
            .await
            .unwrap();
        assert_eq!(map.bindings_of("i1").len(), 1);
        assert!(map.binding("b1").is_none());
    }
}
