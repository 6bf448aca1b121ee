//! The stored form of the map's records, kept in one place because it outlives any one
//! build: a store written by this version is read by the next. Every record is JSON inside
//! an envelope that carries a schema version (`{"v":1,"record":{...}}`), so a later version
//! can migrate old records instead of failing on them; a record newer than this build is
//! refused as corrupt rather than misread. Each kind of record has its own key prefix
//! (`instances/<id>`, `bindings/<id>`, `operations/<id>`, and the registry's
//! `service_brokers/<id>`, `platforms/<id>`, `visibilities/<id>`); a key with another prefix is
//! skipped with a warning, so that a store shared with a newer build still loads.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::Change;
use crate::registry::{RegistryKind, RegistryRecord};
use crate::store::{Entry, StoreError};

/// The version of the record envelope written today.
const RECORD_VERSION: u32 = 1;

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

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let envelope: Envelope<T> =
        serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
            key: key.to_owned(),
            message: err.to_string(),
        })?;
    if envelope.v > RECORD_VERSION {
        return Err(StoreError::Corrupt {
            key: key.to_owned(),
            message: format!("record version {} is newer than this build", envelope.v),
        });
    }
    Ok(envelope.record)
}

/// The change a stored entry makes (none for a key this build does not know).
pub(super) fn decode_entry(entry: &Entry) -> Result<Option<Change>, StoreError> {
    let (kind, _) = entry
        .key
        .split_once('/')
        .unwrap_or((entry.key.as_str(), ""));
    Ok(Some(match kind {
        "instances" => Change::PutInstance(decode(&entry.key, &entry.value)?),
        "bindings" => Change::PutBinding(decode(&entry.key, &entry.value)?),
        "operations" => Change::PutOperation(decode(&entry.key, &entry.value)?),
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
