//! The stored form of the map's records, kept in one place because it outlives any one
//! build: a store written by this version is read by the next. A record is stored in one of
//! two forms, each carrying a schema version, so a later version can migrate old records
//! instead of failing on them; a record newer than this build is refused as corrupt rather
//! than misread:
//! - JSON inside an envelope (`{"v":1,"record":{...}}`), for stores that operators read with
//!   their own tools and that replicas of different builds share (etcd), and for the
//!   registry's records everywhere (they are few);
//! - packed ([`crate::RecordFormat::Packed`]: the embedded store): the byte `0xc1` (which
//!   MessagePack never uses, and JSON cannot start with), the version byte, then the record
//!   without its id (the id is the key's) as MessagePack, fields by position, exactly as the
//!   map holds it in memory. Loading it is one MessagePack decode instead of a JSON parse and
//!   a second encoding (issue #20: start-up with a million instances). Fields are only ever
//!   added, at the end and with `#[serde(default)]`, so a record an earlier build wrote
//!   decodes; one with more fields than this build knows is refused as corrupt.
//!
//! Either form is read whatever the store's own format, so a store written before it
//! changed form loads, and each record takes the new form when it is next written.
//!
//! Each kind of record has its own key prefix
//! (`instances/<id>`, `bindings/<id>`, `operations/<id>`, and the registry's
//! `service_brokers/<id>`, `platforms/<id>`, `visibilities/<id>`); a key with another prefix is
//! skipped with a warning, so that a store shared with a newer build still loads.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Change, Packing};
use crate::packed::Keyed;
use crate::registry::{RegistryKind, RegistryRecord};
use crate::store::{Entry, StoreError};

/// The version of the record envelope written today.
const RECORD_VERSION: u32 = 1;

/// The first byte of a packed record (MessagePack's "never used").
const PACKED: u8 = 0xc1;
/// The version of the packed form written today.
const PACKED_VERSION: u8 = 1;

/// Stored form of every record: a schema version around the record, so later versions can
/// migrate old data instead of failing on it.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    record: T,
}

pub(super) fn instance_key(id: &str) -> String {
    format!("instances/{id}")
}
pub(super) fn binding_key(id: &str) -> String {
    format!("bindings/{id}")
}
pub(super) fn operation_key(id: &str) -> String {
    format!("operations/{id}")
}

/// The value a change writes in JSON (`None` for a delete).
pub(super) fn json_value(change: &Change) -> Option<Vec<u8>> {
    match change {
        Change::PutInstance(i) | Change::CreateInstance(i) => Some(encode(i)),
        Change::PutBinding(b) | Change::CreateBinding(b) => Some(encode(b)),
        Change::PutOperation(o) => Some(encode(o)),
        Change::PutRegistry(record) => Some(encode_registry(record)),
        Change::DeleteInstance(_)
        | Change::DeleteBinding(_)
        | Change::DeleteOperation(_)
        | Change::DeleteRegistry(..) => None,
    }
}

/// The value a change writes in the packed form (`None` for a delete), from the record the
/// map packed already: no second encoding. Registry records stay JSON.
pub(super) fn packed_value(packing: &Packing) -> Option<Vec<u8>> {
    if let Packing::Registry(record) = packing {
        return Some(encode_registry(record));
    }
    let body = packing.packed()?.body();
    let mut value = Vec::with_capacity(2 + body.len());
    value.extend_from_slice(&[PACKED, PACKED_VERSION]);
    value.extend_from_slice(body);
    Some(value)
}

pub(super) fn encode_registry(record: &RegistryRecord) -> Vec<u8> {
    match record {
        RegistryRecord::Broker(broker) => encode(broker),
        RegistryRecord::Platform(platform) => encode(platform),
        RegistryRecord::Visibility(visibility) => encode(visibility),
        RegistryRecord::Operation(operation) => encode(operation),
        RegistryRecord::Name(name) => encode(name),
    }
}

pub(super) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let envelope = Envelope {
        v: RECORD_VERSION,
        record,
    };
    serde_json::to_vec(&envelope).expect("records serialize to JSON")
}

fn corrupt(key: &str, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: message.to_string(),
    }
}

/// A record in its JSON envelope.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let newer = |v: u32| corrupt(key, format!("record version {v} is newer than this build"));
    let envelope: Envelope<T> = serde_json::from_slice(bytes).map_err(|err| {
        // A later version's record may not fit this build's type: say that, not which field.
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        match serde_json::from_slice::<Version>(bytes) {
            Ok(Version { v }) if v > RECORD_VERSION => newer(v),
            _ => corrupt(key, err),
        }
    })?;
    if envelope.v > RECORD_VERSION {
        return Err(newer(envelope.v));
    }
    Ok(envelope.record)
}

/// An instance, binding or operation in either form (a packed one takes its id from `key`).
fn decode_keyed<T: Keyed>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let [PACKED, version, body @ ..] = bytes else {
        return decode(key, bytes);
    };
    match *version {
        1..=PACKED_VERSION => {}
        0 => return Err(corrupt(key, "packed record version 0 was never written")),
        newer => {
            let message = format!("packed record version {newer} is newer than this build");
            return Err(corrupt(key, message));
        }
    }
    let mut record: T = rmp_serde::from_slice(body).map_err(|err| corrupt(key, err))?;
    let id = key.split_once('/').map_or("", |(_, id)| id);
    record.set_id(id.to_owned());
    Ok(record)
}

/// The change a stored entry makes (none for a key this build does not know).
pub(super) fn decode_entry(entry: &Entry) -> Result<Option<Change>, StoreError> {
    let (kind, _) = entry
        .key
        .split_once('/')
        .unwrap_or((entry.key.as_str(), ""));
    Ok(Some(match kind {
        "instances" => Change::PutInstance(decode_keyed(&entry.key, &entry.value)?),
        "bindings" => Change::PutBinding(decode_keyed(&entry.key, &entry.value)?),
        "operations" => Change::PutOperation(decode_keyed(&entry.key, &entry.value)?),
        _ => match RegistryKind::of_key(&entry.key) {
            Some(RegistryKind::Broker) => {
                Change::PutRegistry(RegistryRecord::Broker(decode(&entry.key, &entry.value)?))
            }
            Some(RegistryKind::Platform) => {
                Change::PutRegistry(RegistryRecord::Platform(decode(&entry.key, &entry.value)?))
            }
            Some(RegistryKind::Visibility) => Change::PutRegistry(RegistryRecord::Visibility(
                decode(&entry.key, &entry.value)?,
            )),
            Some(RegistryKind::Operation) => {
                Change::PutRegistry(RegistryRecord::Operation(decode(&entry.key, &entry.value)?))
            }
            Some(RegistryKind::Name) => {
                Change::PutRegistry(RegistryRecord::Name(decode(&entry.key, &entry.value)?))
            }
            None => {
                log::warn!("ignoring unknown store key {:?}", entry.key);
                return Ok(None);
            }
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::tests::instance;
    use crate::model::{Operation, ServiceInstance};
    use crate::store::Entry;
    use serde_json::json;

    fn entry(key: &str, value: Vec<u8>) -> Entry {
        Entry {
            key: key.to_owned(),
            value,
            revision: 7,
        }
    }

    fn decoded_instance(key: &str, value: Vec<u8>) -> Result<ServiceInstance, StoreError> {
        match decode_entry(&entry(key, value))? {
            Some(Change::PutInstance(instance)) => Ok(instance),
            other => panic!("not an instance: {other:?}"),
        }
    }

    /// The record's MessagePack array with its last `drop` fields cut off and `extra` nils
    /// added: what a build with fewer or more fields would have written.
    fn reshaped(value: &[u8], drop: u32, extra: u32) -> Vec<u8> {
        let (header, mut body) = value.split_at(2);
        let fields = rmp::decode::read_array_len(&mut body).unwrap();
        let mut rest = body;
        let mut kept = Vec::new();
        for _ in 0..fields - drop {
            let before = rest;
            let _: serde::de::IgnoredAny = rmp_serde::from_read(&mut rest).unwrap();
            kept.extend_from_slice(&before[..before.len() - rest.len()]);
        }
        let mut out = header.to_vec();
        rmp::encode::write_array_len(&mut out, fields - drop + extra).unwrap();
        out.extend_from_slice(&kept);
        out.extend(std::iter::repeat_n(0xc0, extra as usize));
        out
    }

    #[test]
    fn both_forms_read_back_what_was_written() {
        let mut record = instance("i1");
        record.context = json!({"platform": "kubernetes", "namespace": "ünï ✓", "n": [1, 2.5]});
        record.labels.insert("team".into(), vec!["a".into()]);
        let change = Change::PutInstance(record.clone());
        let json = json_value(&change).unwrap();
        assert_eq!(json.first(), Some(&b'{'));
        let packed = packed_value(&Packing::from(change)).unwrap();
        assert_eq!(&packed[..2], &[PACKED, PACKED_VERSION]);
        assert!(
            packed.len() < json.len(),
            "{} vs {}",
            packed.len(),
            json.len()
        );
        for value in [json, packed] {
            assert_eq!(decoded_instance("instances/i1", value).unwrap(), record);
        }
        // A packed operation takes its id from its key as well.
        let operation: Operation = serde_json::from_value(json!({
            "id": "o1", "kind": "provision", "instance_id": "i1",
            "state": "in_progress", "sync": false, "created_at": 1, "deadline": 2,
        }))
        .unwrap();
        let packed = packed_value(&Packing::from(Change::PutOperation(operation.clone())));
        match decode_entry(&entry("operations/o1", packed.unwrap())).unwrap() {
            Some(Change::PutOperation(read)) => assert_eq!(read, operation),
            other => panic!("not an operation: {other:?}"),
        }
    }

    #[test]
    fn a_packed_record_from_an_earlier_build_takes_the_defaults_of_newer_fields() {
        let mut record = instance("i1");
        record.shared = true;
        record.labels.insert("team".into(), vec!["a".into()]);
        let packed = packed_value(&Packing::from(Change::PutInstance(record.clone()))).unwrap();
        // Without its last two fields (`shared` and `labels`, added by later issues).
        let older = decoded_instance("instances/i1", reshaped(&packed, 2, 0)).unwrap();
        assert!(!older.shared && older.labels.is_empty());
        assert_eq!(
            ServiceInstance {
                shared: true,
                labels: record.labels.clone(),
                ..older
            },
            record
        );
    }

    #[test]
    fn a_record_from_a_later_build_is_refused_not_misread() {
        let packed = packed_value(&Packing::from(Change::PutInstance(instance("i1")))).unwrap();
        // A field this build does not know.
        let err = decoded_instance("instances/i1", reshaped(&packed, 0, 1)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        // A later version of the packed form.
        let mut later = packed.clone();
        later[1] = PACKED_VERSION + 1;
        let err = decoded_instance("instances/i1", later.clone()).unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
        later[1] = 0;
        let err = decoded_instance("instances/i1", later).unwrap_err();
        assert!(err.to_string().contains("version 0"), "{err}");
        // A later version of the JSON envelope.
        let json = br#"{"v":2,"record":{}}"#.to_vec();
        let err = decoded_instance("instances/i1", json).unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
        // Bytes that are neither.
        let err = decoded_instance("instances/i1", vec![PACKED, 1, 0xff, 0x00]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}
