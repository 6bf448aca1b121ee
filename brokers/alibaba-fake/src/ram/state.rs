//! What the fake RAM holds for its one account: the root key, users, their access keys,
//! custom policies, the policies each user has attached, roles, the sessions STS issued
//! for them, and the OIDC providers roles may trust.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::document::Statement;
use super::policy::PolicyType;
use super::role::{OidcProvider, Role};
use super::session::Session;

/// A RAM user.
#[derive(Debug, Clone)]
pub(super) struct User {
    /// The user's name, unique in the account.
    pub(super) name: String,
    /// The numeric id RAM gives it.
    pub(super) user_id: String,
    /// `DisplayName`.
    pub(super) display_name: String,
    /// `Comments`.
    pub(super) comments: String,
    /// When it was created.
    pub(super) create_date: String,
    /// Attached policies and when each was attached.
    pub(super) policies: BTreeMap<(PolicyType, String), String>,
}

/// An access key of a RAM user.
#[derive(Debug, Clone)]
pub(super) struct AccessKey {
    /// The owning user.
    pub(super) user: String,
    /// The secret the signatures are made with.
    pub(super) secret: String,
    /// When it was created.
    pub(super) create_date: String,
}

/// A custom policy.
#[derive(Debug, Clone)]
pub(super) struct CustomPolicy {
    /// `Description`.
    pub(super) description: String,
    /// The document as given (returned by `GetPolicy`).
    pub(super) document: String,
    /// The document, validated.
    pub(super) statements: Vec<Statement>,
    /// When it was created.
    pub(super) create_date: String,
}

/// Users, keys and policies of the one account the fake serves.
#[derive(Debug)]
pub struct Ram {
    /// The account's own key id.
    pub(super) root_key_id: String,
    /// The account's own key secret.
    pub(super) root_secret: String,
    /// Users by name.
    pub(super) users: BTreeMap<String, User>,
    /// Access keys by id.
    pub(super) keys: BTreeMap<String, AccessKey>,
    /// Custom policies by name.
    pub(super) policies: BTreeMap<String, CustomPolicy>,
    /// Roles by name.
    pub(super) roles: BTreeMap<String, Role>,
    /// Role sessions by their temporary access key id.
    pub(super) sessions: BTreeMap<String, Session>,
    /// OIDC identity providers by name.
    pub(super) oidc_providers: BTreeMap<String, OidcProvider>,
}

impl Ram {
    /// An account with only its root key.
    pub fn new(root_key_id: &str, root_secret: &str) -> Ram {
        Ram {
            root_key_id: root_key_id.to_owned(),
            root_secret: root_secret.to_owned(),
            users: BTreeMap::new(),
            keys: BTreeMap::new(),
            policies: BTreeMap::new(),
            roles: BTreeMap::new(),
            sessions: BTreeMap::new(),
            oidc_providers: BTreeMap::new(),
        }
    }

    /// Users, key ids, policies and attachments, roles and their sessions, for tests (no
    /// secrets, no tokens).
    pub fn snapshot(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|user| {
                json!({
                    "name": user.name,
                    "user_id": user.user_id,
                    "display_name": user.display_name,
                    "access_keys": self.key_ids(&user.name),
                    "policies": user.policies.keys().map(|(policy_type, name)| json!({
                        "type": policy_type.as_str(),
                        "name": name,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let policies: Vec<Value> = self
            .policies
            .iter()
            .map(|(name, policy)| {
                json!({
                    "name": name,
                    "description": policy.description,
                    "document": serde_json::from_str::<Value>(&policy.document).unwrap_or(Value::Null),
                    "attachment_count": self.attachment_count(PolicyType::Custom, name),
                })
            })
            .collect();
        let roles: Vec<Value> = self
            .roles
            .iter()
            .map(|(name, role)| {
                json!({
                    "name": name,
                    "max_session_duration": role.max_session_duration,
                    "trust": serde_json::from_str::<Value>(&role.trust_document).unwrap_or(Value::Null),
                    "policies": role.policies.keys().map(|(policy_type, name)| json!({
                        "type": policy_type.as_str(),
                        "name": name,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "users": users,
            "policies": policies,
            "roles": roles,
            "sessions": self.sessions_snapshot(),
        })
    }

    pub(super) fn key_ids(&self, user: &str) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|(_, key)| key.user == user)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    pub(super) fn attachment_count(&self, policy_type: PolicyType, name: &str) -> usize {
        let key = (policy_type, name.to_owned());
        let users = self
            .users
            .values()
            .filter(|user| user.policies.contains_key(&key))
            .count();
        let roles = self
            .roles
            .values()
            .filter(|role| role.policies.contains_key(&key))
            .count();
        users + roles
    }
}
