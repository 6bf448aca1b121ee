//! The words every crate shares: the kinds of OSB operation and the ids of what they work on.
//!
//! They live in this crate because it is the one every other crate already depends on:
//! plugins (`skybroker-brokers`), the state map (`skybroker-storage`) and the controller all
//! name operations and ids with these types, so no crate translates between look-alikes and
//! no id of one kind is passed where another is meant.

use serde::{Deserialize, Serialize};

/// The kind of an operation: what a request asks for and what a plugin is called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Create an instance.
    Provision,
    /// Change an instance.
    Update,
    /// Delete an instance.
    Deprovision,
    /// Create a binding.
    Bind,
    /// Delete a binding.
    Unbind,
}

impl OperationKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [OperationKind; 5] = [
        OperationKind::Provision,
        OperationKind::Update,
        OperationKind::Deprovision,
        OperationKind::Bind,
        OperationKind::Unbind,
    ];

    /// Whether the operation acts on a binding.
    pub fn is_binding(self) -> bool {
        matches!(self, OperationKind::Bind | OperationKind::Unbind)
    }

    /// The lowercase name, for logs, metric labels and operation ids; the same as its JSON
    /// form.
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Provision => "provision",
            OperationKind::Update => "update",
            OperationKind::Deprovision => "deprovision",
            OperationKind::Bind => "bind",
            OperationKind::Unbind => "unbind",
        }
    }

    /// The kind named `name` (see [`OperationKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Defines a string newtype for one kind of id: the platform's (instance, binding ids), the
/// catalog's (service, plan ids) or ours (operation ids). Each kind is its own type, so an
/// instance id cannot be passed where a binding id is meant; each reads as a `&str`
/// (`Deref`, `Borrow<str>` for map look-ups, `Display`) and serializes as the plain string,
/// so stored records and wire formats are unchanged.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id `id`.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name(id.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id!(
    /// A service instance's id, chosen by the platform (`/v2/service_instances/:instance_id`).
    InstanceId
);
id!(
    /// A service binding's id, chosen by the platform.
    BindingId
);
id!(
    /// An operation's id, issued by this broker (`provision-<32 hex>`, D-16).
    OperationId
);
id!(
    /// A service offering's id, from the catalog.
    ServiceId
);
id!(
    /// A plan's id, from the catalog.
    PlanId
);

#[cfg(test)]
mod tests {
    use super::OperationKind;

    #[test]
    fn names_are_the_json_form_and_read_back() {
        for kind in OperationKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.name())
            );
            assert_eq!(OperationKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(OperationKind::from_name("delete"), None);
    }

    #[test]
    fn ids_read_as_text_and_store_as_plain_strings() {
        use super::{BindingId, InstanceId};
        let id = InstanceId::new("i-1");
        assert_eq!(id, "i-1");
        assert_eq!(id.len(), 3, "derefs to str");
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!("i-1"));
        let back: InstanceId = serde_json::from_str("\"i-1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(format!("{id} {id:?}"), "i-1 \"i-1\"");
        let mut map = std::collections::HashMap::new();
        map.insert(BindingId::from("b-1"), 1);
        assert_eq!(map.get("b-1"), Some(&1), "looked up by &str");
    }
}
