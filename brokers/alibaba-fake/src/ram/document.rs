//! Policy documents: RAM's grammar (`{"Version":"1","Statement":[...]}`), validated when
//! a policy is created into the statements evaluation uses; what is wrong becomes the
//! `MalformedPolicyDocument` message.

use serde_json::{json, Value};

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// One validated statement of a policy document.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    /// Allow or Deny.
    pub(super) effect: Effect,
    /// Action patterns, e.g. `oss:Get*`.
    pub(super) actions: Vec<String>,
    /// Resource patterns, e.g. `acs:oss:*:*:mybucket/*`.
    pub(super) resources: Vec<String>,
    /// Whether the statement carries a `Condition` (which the fake does not evaluate).
    pub(super) conditional: bool,
}

/// The condition operators RAM documents.
const CONDITION_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
];

/// Validates a policy document by RAM's grammar: `{"Version":"1","Statement":[...]}`, each
/// statement with `Effect` (`Allow`|`Deny`), `Action` and `Resource` (a string or a
/// non-empty list of strings) and an optional `Condition`. The error is the detail that
/// becomes the `MalformedPolicyDocument` message.
pub(super) fn parse_policy(document: &str) -> Result<Vec<Statement>, String> {
    parse_statements(document, parse_statement)
}

/// The statements of a policy document (`{"Version":"1","Statement":[...]}`: nothing else,
/// at least one statement), each read by `parse`: the envelope permission and trust policies
/// share.
pub(super) fn parse_statements<T>(
    document: &str,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let value: Value = serde_json::from_str(document)
        .map_err(|err| format!("The policy document is not valid JSON: {err}"))?;
    let object = value
        .as_object()
        .ok_or("The policy document must be a JSON object.")?;
    for key in object.keys() {
        if key != "Version" && key != "Statement" {
            return Err(format!("Unknown element \"{key}\" in the policy document."));
        }
    }
    if object.get("Version") != Some(&json!("1")) {
        return Err("The policy document's Version must be \"1\".".to_owned());
    }
    let statements = object
        .get("Statement")
        .and_then(Value::as_array)
        .filter(|statements| !statements.is_empty())
        .ok_or("The policy document must have a non-empty Statement list.")?;
    statements.iter().map(parse).collect()
}

fn parse_statement(statement: &Value) -> Result<Statement, String> {
    let object = statement
        .as_object()
        .ok_or("Each Statement must be a JSON object.")?;
    for key in object.keys() {
        if !matches!(key.as_str(), "Effect" | "Action" | "Resource" | "Condition") {
            return Err(format!("Unknown element \"{key}\" in a Statement."));
        }
    }
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("A Statement's Effect must be \"Allow\" or \"Deny\".".to_owned()),
    };
    let actions = string_list(object.get("Action"), "Action")?;
    for action in &actions {
        let valid = action == "*"
            || action
                .split_once(':')
                .is_some_and(|(service, name)| !service.is_empty() && !name.is_empty());
        if !valid {
            return Err(format!(
                "The Action \"{action}\" is not of the form <service>:<action>."
            ));
        }
    }
    let resources = string_list(object.get("Resource"), "Resource")?;
    for resource in &resources {
        if resource != "*" && !resource.starts_with("acs:") {
            return Err(format!(
                "The Resource \"{resource}\" is not \"*\" or an ARN starting with \"acs:\"."
            ));
        }
    }
    let conditional = match object.get("Condition") {
        None => false,
        Some(condition) => {
            check_condition(condition)?;
            true
        }
    };
    Ok(Statement {
        effect,
        actions,
        resources,
        conditional,
    })
}

/// A string, or a non-empty list of strings.
pub(super) fn string_list(value: Option<&Value>, element: &str) -> Result<Vec<String>, String> {
    let invalid =
        || format!("A Statement's {element} must be a string or a non-empty list of strings.");
    match value {
        Some(Value::String(one)) if !one.is_empty() => Ok(vec![one.clone()]),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(invalid)
            })
            .collect(),
        _ => Err(invalid()),
    }
}

/// `{"<Operator>": {"<key>": <value or list of values>}}`.
pub(super) fn check_condition(condition: &Value) -> Result<(), String> {
    let operators = condition
        .as_object()
        .filter(|operators| !operators.is_empty())
        .ok_or("A Condition must be a non-empty JSON object.")?;
    for (operator, keys) in operators {
        if !CONDITION_OPERATORS.contains(&operator.as_str()) {
            return Err(format!("Unknown condition operator \"{operator}\"."));
        }
        let keys = keys
            .as_object()
            .filter(|keys| !keys.is_empty())
            .ok_or_else(|| format!("The condition \"{operator}\" must map keys to values."))?;
        for (key, value) in keys {
            let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
            let valid = match value {
                Value::Array(values) => !values.is_empty() && values.iter().all(scalar),
                other => scalar(other),
            };
            if !valid {
                return Err(format!("The condition value for \"{key}\" is not valid."));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ram::Ram;

    #[test]
    fn malformed_documents_are_refused() {
        let mut ram = Ram::new("root", "secret");
        for document in [
            "not json",
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Version":"2","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Version":"1","Statement":[]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"GetObject","Resource":"*"}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"oss:*","Resource":"bucket"}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"oss:*","Resource":"*","Condition":{"Sometimes":{"a":"b"}}}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
        ] {
            let err = ram.create_policy("p", document, "").unwrap_err();
            assert_eq!(err.code, "MalformedPolicyDocument", "{document}");
            assert_eq!(err.status.as_u16(), 400);
        }
    }
}
