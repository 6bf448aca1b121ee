//! The words every crate shares: the kinds of OSB operation.
//!
//! They live in this crate because it is the one every other crate already depends on:
//! plugins (`skybroker-brokers`), the state map (`skybroker-storage`) and the controller all
//! name operations with this one type, so no crate translates between look-alike enums.

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
}
