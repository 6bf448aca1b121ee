//! The Service Manager's records: the external OSB brokers Skybroker fronts, the platforms
//! that call it, and which plans each platform sees.
//!
//! They live in the same map and store as instances and bindings, so they load at start,
//! replicate to every replica through etcd's watch, and survive restarts with no second
//! system to run. They are few (tens to hundreds), so the map keeps them decoded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::UnixMillis;

/// Labels on a registry record: each key holds a set of values (Service Manager's model).
pub type Labels = BTreeMap<String, Vec<String>>;

/// How Skybroker authenticates to an external broker.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BrokerCredentials {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password (secret).
        password: String,
    },
    /// An opaque bearer token (secret).
    Bearer {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for BrokerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        match self {
            BrokerCredentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            BrokerCredentials::Bearer { .. } => f.write_str("Bearer { .. }"),
        }
    }
}

/// TLS towards an external broker: a client certificate to present (mutual TLS) and the CA
/// its own certificate chains to, when not one the system trusts. PEM text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerTls {
    /// The client certificate (chain).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// Its private key (secret).
    #[serde(default)]
    pub client_key: Option<String>,
    /// The CA to trust instead of the system's.
    #[serde(default)]
    pub ca_certificate: Option<String>,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("BrokerTls")
            .field("client_certificate", &self.client_certificate.is_some())
            .field("ca_certificate", &self.ca_certificate.is_some())
            .finish_non_exhaustive()
    }
}

/// An external OSB broker registered at run time (`POST /v1/service_brokers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceBroker {
    /// Skybroker's id for it.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Base URL: `<broker_url>/v2/catalog` is its catalog.
    pub broker_url: String,
    /// What Skybroker sends it.
    pub credentials: BrokerCredentials,
    /// Mutual TLS and a CA of its own, if any.
    #[serde(default)]
    pub tls: Option<BrokerTls>,
    /// The `services` of its catalog as last fetched, with the broker's own ids.
    pub services: Vec<Value>,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
    /// When it was registered.
    pub created_at: UnixMillis,
    /// When it was last changed or its catalog fetched.
    pub updated_at: UnixMillis,
}

/// A platform (a Cloud Foundry foundation, a Kubernetes cluster) that calls Skybroker's OSB
/// endpoint with credentials of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    /// Skybroker's id for it.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `cloudfoundry`, `kubernetes`, or anything else.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The basic-auth user name it calls with.
    pub username: String,
    /// A slow hash (argon2, PHC string) of its password; the password itself is shown once.
    pub password_hash: String,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
    /// When it was registered.
    pub created_at: UnixMillis,
    /// When it was last changed.
    pub updated_at: UnixMillis,
}

/// A plan made visible to one platform, or to all (`platform_id` absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visibility {
    /// Skybroker's id for it.
    pub id: String,
    /// The plan's Service Manager id.
    pub service_plan_id: String,
    /// The platform; `None`: every platform.
    #[serde(default)]
    pub platform_id: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When it was last changed.
    pub updated_at: UnixMillis,
}

/// Where an asynchronous Service Manager operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryOperationState {
    /// Accepted, not finished.
    InProgress,
    /// Done.
    Succeeded,
    /// Done badly; `description` says why.
    Failed,
}

/// A Service Manager request run in the background (`?async=true`): stored before it is
/// acknowledged with 202, so a process that dies while running it leaves it to be run again
/// at the next start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryOperation {
    /// Its id (the `Location` names it).
    pub id: String,
    /// `create`, `update` or `delete`.
    pub kind: String,
    /// `service_brokers`, …
    pub resource_type: String,
    /// The resource it works on.
    pub resource_id: String,
    /// Where it is.
    pub state: RegistryOperationState,
    /// Why it failed, or what it did.
    #[serde(default)]
    pub description: Option<String>,
    /// The HTTP status a synchronous request would have answered with, once it finished.
    #[serde(default)]
    pub status: Option<u16>,
    /// What to do: the record to store (its secrets included, like the record's own).
    #[serde(default)]
    pub request: Value,
    /// When it was accepted.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

/// A name taken: `service_brokers/<name>` or `platforms/<name>`, and whose it is. Written in
/// the same commit as the record that takes the name, on the condition that it does not exist
/// yet, so two replicas registering one name at the same moment cannot both succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryName {
    /// `<resource type>/<name>`.
    pub id: String,
    /// The id of the record that holds it.
    pub owner: String,
}

impl RegistryName {
    /// The name `name` of a resource of `resource_type`, held by `owner`.
    pub fn new(resource_type: &str, name: &str, owner: &str) -> RegistryName {
        RegistryName {
            id: format!("{resource_type}/{name}"),
            owner: owner.to_owned(),
        }
    }
}

/// One registry record.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryRecord {
    /// An external broker.
    Broker(ServiceBroker),
    /// A platform.
    Platform(Platform),
    /// A visibility.
    Visibility(Visibility),
    /// An asynchronous operation.
    Operation(RegistryOperation),
    /// A name taken.
    Name(RegistryName),
}

impl RegistryRecord {
    /// Its store key.
    pub fn key(&self) -> String {
        match self {
            RegistryRecord::Broker(broker) => RegistryKind::Broker.key(&broker.id),
            RegistryRecord::Platform(platform) => RegistryKind::Platform.key(&platform.id),
            RegistryRecord::Visibility(visibility) => RegistryKind::Visibility.key(&visibility.id),
            RegistryRecord::Operation(operation) => RegistryKind::Operation.key(&operation.id),
            RegistryRecord::Name(name) => RegistryKind::Name.key(&name.id),
        }
    }
}

/// The kinds of registry record, each under its own key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// `service_brokers/<id>`.
    Broker,
    /// `platforms/<id>`.
    Platform,
    /// `visibilities/<id>`.
    Visibility,
    /// `sm_operations/<id>`.
    Operation,
    /// `registry_names/<resource type>/<name>`.
    Name,
}

impl RegistryKind {
    /// The key prefix, with its slash.
    pub fn prefix(self) -> &'static str {
        match self {
            RegistryKind::Broker => "service_brokers/",
            RegistryKind::Platform => "platforms/",
            RegistryKind::Visibility => "visibilities/",
            RegistryKind::Operation => "sm_operations/",
            RegistryKind::Name => "registry_names/",
        }
    }

    /// The store key of the record `id` of this kind.
    pub fn key(self, id: &str) -> String {
        format!("{}{id}", self.prefix())
    }

    /// The kind whose prefix `key` has.
    pub fn of_key(key: &str) -> Option<RegistryKind> {
        [
            RegistryKind::Broker,
            RegistryKind::Platform,
            RegistryKind::Visibility,
            RegistryKind::Operation,
            RegistryKind::Name,
        ]
        .into_iter()
        .find(|kind| key.starts_with(kind.prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_their_secrets() {
        let basic = BrokerCredentials::Basic {
            username: "admin".into(),
            password: "hunter2-secret".into(),
        };
        let bearer = BrokerCredentials::Bearer {
            token: "tok-secret".into(),
        };
        let shown = format!("{basic:?} {bearer:?}");
        assert!(shown.contains("admin"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn keys_name_their_kind() {
        let key = RegistryKind::Platform.key("p-1");
        assert_eq!(key, "platforms/p-1");
        assert_eq!(RegistryKind::of_key(&key), Some(RegistryKind::Platform));
        assert_eq!(RegistryKind::of_key("instances/p-1"), None);
    }
}
