//! Records as the map keeps them in memory: packed, each in one allocation with its id.
//!
//! Why: the map holds every instance, binding and operation of the broker, so its size per
//! record is the broker's memory per instance (issue #5: under 1 KiB). A decoded
//! `ServiceInstance` with its `context` and `plugin_state` JSON maps is a dozen allocations
//! and about 1.3 KiB; packed it is one allocation of a few hundred bytes. A [`Table`] finds
//! records by the id inside that allocation, so no key is stored beside it either.
//!
//! Readers get a decoded copy, as they got a clone before. MessagePack (fields in declaration
//! order, no names) rather than a schema-bound format, because records carry free-form JSON.

use std::hash::BuildHasher;
use std::marker::PhantomData;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::{de::DeserializeOwned, Serialize};

use crate::model::{Operation, ServiceBinding, ServiceInstance};

/// A record the map holds, keyed by its id.
pub(crate) trait Keyed: Serialize + DeserializeOwned {
    /// Takes the record's id out (it is packed apart from the record).
    fn take_id(&mut self) -> String;
    /// Puts the id back.
    fn set_id(&mut self, id: String);
}

impl Keyed for ServiceInstance {
    fn take_id(&mut self) -> String {
        std::mem::take(&mut self.id).into_string()
    }

    fn set_id(&mut self, id: String) {
        self.id = id.into();
    }
}

impl Keyed for ServiceBinding {
    fn take_id(&mut self) -> String {
        std::mem::take(&mut self.id).into_string()
    }

    fn set_id(&mut self, id: String) {
        self.id = id.into();
    }
}

impl Keyed for Operation {
    fn take_id(&mut self) -> String {
        std::mem::take(&mut self.id).into_string()
    }

    fn set_id(&mut self, id: String) {
        self.id = id.into();
    }
}

/// MessagePack's nil, as `None` packs.
const NIL: u8 = 0xc0;

/// Bytes of the id's length at the front of a [`Packed`].
const LEN: usize = std::mem::size_of::<u32>();

/// One record: the id's length (`u32`, little-endian), the id, then the record without its id
/// as MessagePack.
#[derive(Debug)]
pub(crate) struct Packed(Box<[u8]>);

impl Packed {
    /// Packs `record`.
    pub(crate) fn pack<T: Keyed>(mut record: T) -> Packed {
        let id = record.take_id();
        let id_len = u32::try_from(id.len()).expect("ids are far shorter than 4 GiB");
        // Serializing a record into a Vec cannot fail: every field is a plain value or JSON.
        let body = rmp_serde::to_vec(&record).expect("records serialize to MessagePack");
        // Allocated at its exact size: shrinking a larger buffer would leave a fragment
        // behind every record.
        let mut bytes = Vec::with_capacity(LEN + id.len() + body.len());
        bytes.extend_from_slice(&id_len.to_le_bytes());
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(&body);
        Packed(bytes.into_boxed_slice())
    }

    /// The record without its id, as MessagePack: what a store that keeps records packed
    /// stores (the id is in the key).
    pub(crate) fn body(&self) -> &[u8] {
        &self.0[LEN + self.id_len()..]
    }

    fn id_len(&self) -> usize {
        let mut len = [0; LEN];
        len.copy_from_slice(&self.0[..LEN]);
        u32::from_le_bytes(len) as usize
    }

    fn id_bytes(&self) -> &[u8] {
        &self.0[LEN..LEN + self.id_len()]
    }

    /// The record's id.
    pub(crate) fn id(&self) -> &str {
        // Packed from a `String` by `pack`.
        std::str::from_utf8(self.id_bytes()).expect("a packed id is the UTF-8 it was packed from")
    }

    /// The record, decoded.
    pub(crate) fn unpack<T: Keyed>(&self) -> T {
        // The bytes were packed from a `T` by this process: a failure is a bug, not data.
        let mut record: T =
            rmp_serde::from_slice(self.body()).expect("a record the map packed unpacks");
        record.set_id(self.id().to_owned());
        record
    }

    /// Optional string field `index` of the record, read in place as [`Packed::leading_str`]
    /// reads a string (every field before it a string).
    pub(crate) fn leading_opt_str(&self, index: usize) -> Option<&str> {
        let mut body = self.body();
        let fields = rmp::decode::read_array_len(&mut body).expect("a packed record is an array");
        assert!(index < fields as usize, "a packed record has field {index}");
        for _ in 0..index {
            (_, body) = rmp::decode::read_str_from_slice(body)
                .expect("the leading fields of a packed record are strings");
        }
        if body.first() == Some(&NIL) {
            return None;
        }
        let (field, _) = rmp::decode::read_str_from_slice(body)
            .expect("an optional leading field is a string or nil");
        Some(field)
    }

    /// String field `index` of the record (fields in declaration order, the id being field 0,
    /// packed empty), read in place: every field before it must be a string too (a unit enum
    /// variant packs as its name). For callers that need one field, not the record: no
    /// decoding, no allocation.
    pub(crate) fn leading_str(&self, index: usize) -> &str {
        // As for `unpack`: the bytes were packed by this process from a record shaped so.
        let mut body = self.body();
        let fields = rmp::decode::read_array_len(&mut body).expect("a packed record is an array");
        assert!(index < fields as usize, "a packed record has field {index}");
        let mut field = "";
        for _ in 0..=index {
            (field, body) = rmp::decode::read_str_from_slice(body)
                .expect("the leading fields of a packed record are strings");
        }
        field
    }
}

/// A record copied out of the map still packed (one copy of one allocation), to be decoded
/// later and elsewhere: the engine's scanner hands instances and bindings to the workers
/// this way, so that the one scanner task does not spend its time decoding what many
/// workers can.
#[derive(Debug)]
pub struct Sealed<T> {
    packed: Packed,
    record: PhantomData<fn() -> T>,
}

impl<T> Sealed<T> {
    pub(crate) fn of(packed: &Packed) -> Self {
        Sealed {
            packed: Packed(packed.0.clone()),
            record: PhantomData,
        }
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        self.packed.id()
    }
}

// Positions of the fields read on their own (declaration order; tested below). Every field
// before them is a string, as `Packed::leading_str` needs.
pub(crate) const INSTANCE_SERVICE_ID: usize = 1;
const INSTANCE_PLAN_ID: usize = 2;
const BINDING_PLAN_ID: usize = 3;
pub(crate) const OPERATION_INSTANCE_ID: usize = 2;

impl Sealed<ServiceInstance> {
    /// The instance's offering, read without decoding the rest.
    pub fn service_id(&self) -> &str {
        self.packed.leading_str(INSTANCE_SERVICE_ID)
    }

    /// The instance's plan, read without decoding the rest.
    pub fn plan_id(&self) -> &str {
        self.packed.leading_str(INSTANCE_PLAN_ID)
    }

    /// The instance, decoded.
    pub fn open(self) -> ServiceInstance {
        self.packed.unpack()
    }
}

const OPERATION_BINDING_ID: usize = 3;

impl Sealed<Operation> {
    /// The operation's instance, read without decoding the rest.
    pub fn instance_id(&self) -> &str {
        self.packed.leading_str(OPERATION_INSTANCE_ID)
    }

    /// The operation's binding, read without decoding the rest.
    pub fn binding_id(&self) -> Option<&str> {
        self.packed.leading_opt_str(OPERATION_BINDING_ID)
    }

    /// The operation, decoded.
    pub fn open(&self) -> Operation {
        self.packed.unpack()
    }
}

impl Sealed<ServiceBinding> {
    /// The binding's plan, read without decoding the rest.
    pub fn plan_id(&self) -> &str {
        self.packed.leading_str(BINDING_PLAN_ID)
    }

    /// The binding, decoded.
    pub fn open(self) -> ServiceBinding {
        self.packed.unpack()
    }
}

/// What a [`Table`] holds: something with a packed record in it.
pub(crate) trait Slot {
    /// The packed record.
    fn packed(&self) -> &Packed;
}

/// Slots by the id of their record.
#[derive(Debug)]
pub(crate) struct Table<S> {
    slots: HashTable<S>,
    hasher: DefaultHashBuilder,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Table {
            slots: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<S: Slot> Table<S> {
    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The slot of `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&S> {
        let id = id.as_bytes();
        self.slots
            .find(self.hash(id), |slot| slot.packed().id_bytes() == id)
    }

    /// The slot of `id`, to change it in place (its record keeps its id).
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut S> {
        let id = id.as_bytes();
        let hash = self.hash(id);
        self.slots
            .find_mut(hash, |slot| slot.packed().id_bytes() == id)
    }

    /// Puts `slot` in, replacing the slot of the same id.
    pub(crate) fn insert(&mut self, slot: S) {
        let hash = self.hash(slot.packed().id_bytes());
        let hasher = |s: &S| self.hasher.hash_one(s.packed().id_bytes());
        match self.slots.entry(
            hash,
            |held| held.packed().id_bytes() == slot.packed().id_bytes(),
            hasher,
        ) {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => *occupied.get_mut() = slot,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(slot);
            }
        }
    }

    /// Takes the slot of `id` out.
    pub(crate) fn remove(&mut self, id: &str) -> Option<S> {
        let id = id.as_bytes();
        let hash = self.hash(id);
        let found = self
            .slots
            .find_entry(hash, |slot| slot.packed().id_bytes() == id)
            .ok()?;
        Some(found.remove().0)
    }

    /// Every slot, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &S> {
        self.slots.iter()
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceState, ServiceInstance};
    use serde_json::json;

    #[derive(Debug)]
    struct Plain(Packed);

    impl Slot for Plain {
        fn packed(&self) -> &Packed {
            &self.0
        }
    }

    fn instance(id: &str, plan_id: &str) -> ServiceInstance {
        ServiceInstance {
            id: id.into(),
            service_id: "service".into(),
            plan_id: plan_id.into(),
            parameters: json!({"size": 5, "nested": {"list": [1, -2, 3.5, null, true]}}),
            context: json!({"platform": "cloudfoundry", "space_guid": "ünïcode ✓"}),
            organization_guid: Some("org".into()),
            space_guid: None,
            maintenance_version: None,
            dashboard_url: None,
            metadata: Some(json!({"labels": {"big": u64::MAX, "neg": i64::MIN}})),
            state: InstanceState::Ready,
            plugin_state: json!({"resource": id}),
            last_operation: Some("op".into()),
            created_at: 1_764_000_000_000,
            platform_id: None,
            shared: false,
            labels: Default::default(),
        }
    }

    #[test]
    fn a_record_unpacks_to_what_was_packed() {
        let original = instance("instance-ü-1", "plan");
        let packed = Packed::pack(original.clone());
        assert_eq!(packed.id(), "instance-ü-1");
        assert_eq!(packed.unpack::<ServiceInstance>(), original);
        // Smaller than its JSON, which names every field.
        let json = serde_json::to_vec(&original).unwrap();
        assert!(
            packed.0.len() < json.len() * 3 / 4,
            "{} vs {}",
            packed.0.len(),
            json.len()
        );
    }

    #[test]
    fn a_null_reference_stays_a_reference() {
        use crate::model::{Operation, OperationKind, OperationState};
        let operation = |reference: Option<serde_json::Value>| Operation {
            id: "op".into(),
            kind: OperationKind::Deprovision,
            instance_id: "i".into(),
            binding_id: None,
            state: OperationState::InProgress,
            sync: false,
            description: None,
            failure: None,
            reference: reference.clone(),
            // D-17: "halted a create that had no reference yet".
            halted_reference: reference,
            halted: true,
            update: None,
            attempts: 1,
            requested_by: None,
            created_at: 1,
            deadline: 2,
            finished_at: None,
        };
        for reference in [
            None,
            Some(json!(null)),
            Some(json!({"id": 1})),
            Some(json!([])),
        ] {
            let original = operation(reference);
            assert_eq!(
                Packed::pack(original.clone()).unpack::<Operation>(),
                original
            );
        }
        // The stored JSON is what it always was.
        let stored = serde_json::to_value(operation(Some(json!({"id": 1})))).unwrap();
        assert_eq!(stored["reference"], json!({"id": 1}));
        let stored = serde_json::to_value(operation(None)).unwrap();
        assert_eq!(stored["halted_reference"], json!(null));
    }

    #[test]
    fn fields_read_alone_are_the_records_fields() {
        use crate::model::{
            BindingState, Operation, OperationKind, OperationState, ServiceBinding,
        };
        let sealed = Sealed::<ServiceInstance>::of(&Packed::pack(instance("i-1", "plan-a")));
        assert_eq!(
            (sealed.id(), sealed.service_id(), sealed.plan_id()),
            ("i-1", "service", "plan-a")
        );
        assert_eq!(sealed.open(), instance("i-1", "plan-a"));

        let binding = ServiceBinding {
            id: "b-1".into(),
            instance_id: "i-1".into(),
            service_id: "service".into(),
            plan_id: "plan-b".into(),
            parameters: json!({"role": "reader"}),
            bind_resource: json!(null),
            app_guid: Some("app".into()),
            ..serde_json::from_value(json!({
                "id": "", "instance_id": "", "service_id": "", "plan_id": "",
                "state": "bound", "created_at": 0
            }))
            .unwrap()
        };
        assert_eq!(binding.state, BindingState::Bound);
        let sealed = Sealed::<ServiceBinding>::of(&Packed::pack(binding.clone()));
        assert_eq!(sealed.plan_id(), "plan-b");
        assert_eq!(sealed.open(), binding);

        let operation = Operation {
            id: "op".into(),
            kind: OperationKind::Bind,
            instance_id: "instance-ü".into(),
            binding_id: Some("b-1".into()),
            state: OperationState::InProgress,
            sync: true,
            description: None,
            failure: None,
            reference: Some(json!({"big": u64::MAX})),
            halted_reference: None,
            halted: false,
            update: None,
            attempts: 0,
            requested_by: None,
            created_at: 1,
            deadline: 2,
            finished_at: None,
        };
        let packed = Packed::pack(operation.clone());
        let sealed = Sealed::<Operation>::of(&packed);
        assert_eq!(
            (sealed.id(), sealed.instance_id(), sealed.binding_id()),
            ("op", "instance-ü", Some("b-1"))
        );
        assert_eq!(sealed.open(), operation);
        let unbound = Packed::pack(Operation {
            binding_id: None,
            ..operation
        });
        assert_eq!(Sealed::<Operation>::of(&unbound).binding_id(), None);
        assert_eq!(packed.leading_str(OPERATION_INSTANCE_ID), "instance-ü");
        assert_eq!(packed.leading_str(1), "bind", "the kind, by name");
        assert_eq!(packed.leading_str(0), "", "the id is packed apart");
    }

    #[test]
    fn a_table_finds_replaces_and_removes_by_id() {
        let mut table = Table::default();
        for n in 0..100 {
            table.insert(Plain(Packed::pack(instance(&format!("i{n}"), "a"))));
        }
        table.insert(Plain(Packed::pack(instance("i7", "b"))));
        assert_eq!(table.len(), 100);
        let found: ServiceInstance = table.get("i7").unwrap().0.unpack();
        assert_eq!(found.plan_id, "b");
        assert!(table.get("i100").is_none());
        // An id that is a prefix of another is a different id.
        assert!(table.get("i1").is_some() && table.get("i").is_none());
        assert_eq!(table.remove("i7").unwrap().0.id(), "i7");
        assert!(table.get("i7").is_none() && table.remove("i7").is_none());
        assert_eq!(table.iter().count(), 99);
        table.get_mut("i8").unwrap().0 = Packed::pack(instance("i8", "c"));
        assert_eq!(
            table
                .get("i8")
                .unwrap()
                .0
                .unpack::<ServiceInstance>()
                .plan_id,
            "c"
        );
    }
}
