//! `fieldQuery` and `labelQuery`: the Service Manager's list filters, and label changes.
//!
//! A query is criteria joined by ` and `; each is `<key> <operator> <value>`, the value a
//! quoted string (`'cf-eu'`, a quote doubled inside) or, for `in` and `notin`, a list of them
//! (`('a', 'b')`). Operators: `eq`, `ne`, `in`, `notin`.
//!
//! - `fieldQuery` compares a field of the answer (`name eq 'cf-eu'`, `type in ('kubernetes',
//!   'cloudfoundry')`, `platform_id eq '…'`); numbers and booleans compare as written
//!   (`shared eq 'true'`), a missing or null field equals nothing.
//! - `labelQuery` looks at a label's values: `eq` and `in` hold when the label has the value
//!   (one of them), `ne` and `notin` when it has none of them (or no such label).
//!
//! Labels change with `PATCH` and `{"labels": [{"op": "add" | "remove", "key", "values"?}]}`:
//! `add` adds the values to the key, `remove` takes the values away (the key with them when
//! none are left, or the whole key when no values are given). An object instead of the list
//! replaces every label.

use serde_json::Value;
use skybroker_storage::Labels;

use crate::error::ApiError;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Ne,
    In,
    NotIn,
}

/// One criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Criterion {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A parsed query: every criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    fields: Vec<Criterion>,
    labels: Vec<Criterion>,
}

impl Filter {
    /// The filter of a list request's `fieldQuery` and `labelQuery` (either may be absent).
    ///
    /// # Errors
    /// 400 naming what cannot be parsed.
    pub fn parse(field_query: Option<&str>, label_query: Option<&str>) -> Result<Filter, ApiError> {
        Ok(Filter {
            fields: field_query.map(criteria).transpose()?.unwrap_or_default(),
            labels: label_query.map(criteria).transpose()?.unwrap_or_default(),
        })
    }

    /// Whether it filters nothing.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.labels.is_empty()
    }

    /// Whether an answer item (a JSON object with its `labels`) passes.
    pub fn accepts(&self, item: &Value) -> bool {
        let field_ok = self.fields.iter().all(|criterion| {
            let text = match item.get(&criterion.key) {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text.clone()),
                Some(other) => Some(other.to_string()),
            };
            let hit = text.is_some_and(|text| criterion.values.contains(&text));
            match criterion.operator {
                Operator::Eq | Operator::In => hit,
                Operator::Ne | Operator::NotIn => !hit,
            }
        });
        let label_ok = self.labels.iter().all(|criterion| {
            let values = item["labels"][&criterion.key].as_array();
            let hit = values.is_some_and(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|v| criterion.values.iter().any(|wanted| wanted == v))
            });
            match criterion.operator {
                Operator::Eq | Operator::In => hit,
                Operator::Ne | Operator::NotIn => !hit,
            }
        });
        field_ok && label_ok
    }
}

/// `key op value [and key op value]…`.
fn criteria(query: &str) -> Result<Vec<Criterion>, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("query {query:?}: {why}"));
    let mut rest = query.trim();
    let mut found = Vec::new();
    loop {
        let (key, after) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `<key> <operator> <value>`".to_owned()))?;
        let after = after.trim_start();
        let (word, after) = after
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("no value after {key:?}")))?;
        let operator = match word {
            "eq" => Operator::Eq,
            "ne" => Operator::Ne,
            "in" => Operator::In,
            "notin" => Operator::NotIn,
            other => {
                return Err(bad(format!(
                    "unknown operator {other:?} (eq, ne, in, notin)"
                )))
            }
        };
        let after = after.trim_start();
        let (values, after) = if matches!(operator, Operator::In | Operator::NotIn) {
            list(after).ok_or_else(|| bad(format!("{word} takes a list: ('a', 'b')")))?
        } else {
            let (value, after) =
                quoted(after).ok_or_else(|| bad("expected a 'quoted' value".to_owned()))?;
            (vec![value], after)
        };
        found.push(Criterion {
            key: key.to_owned(),
            operator,
            values,
        });
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(found);
        }
        rest = after
            .strip_prefix("and")
            .filter(|r| r.starts_with(char::is_whitespace))
            .ok_or_else(|| bad(format!("expected `and` before {after:?}")))?
            .trim_start();
    }
}

/// A `'quoted'` string (a doubled quote is one quote) and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('\'')?.char_indices().peekable();
    let mut value = String::new();
    let body = &text[1..];
    while let Some((at, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Some((value, &body[at + 1..]));
        }
        value.push(c);
    }
    None
}

/// `('a', 'b')` and what follows it.
fn list(text: &str) -> Option<(Vec<String>, &str)> {
    let mut rest = text.strip_prefix('(')?.trim_start();
    let mut values = Vec::new();
    loop {
        let (value, after) = quoted(rest)?;
        values.push(value);
        let after = after.trim_start();
        if let Some(after) = after.strip_prefix(')') {
            return Some((values, after));
        }
        rest = after.strip_prefix(',')?.trim_start();
    }
}

/// Applies a PATCH's `labels`: a list of `{op, key, values}` changes, or an object that
/// replaces them all.
///
/// # Errors
/// 400 naming the change that is malformed.
pub fn apply_label_changes(labels: &mut Labels, changes: &Value) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("labels: {why}"));
    match changes {
        Value::Object(_) => {
            let replaced: Labels = serde_json::from_value(changes.clone())
                .map_err(|_| bad("an object of string arrays, or a list of changes"))?;
            if replaced.contains_key("") {
                return Err(bad("a label key must not be empty"));
            }
            *labels = replaced;
            Ok(())
        }
        Value::Array(changes) => {
            for change in changes {
                let key = change["key"]
                    .as_str()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| bad("every change needs a non-empty key"))?;
                let values: Vec<String> = match &change["values"] {
                    Value::Null => Vec::new(),
                    Value::Array(values) => values
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("values must be strings"))?,
                    _ => return Err(bad("values must be a list of strings")),
                };
                match change["op"].as_str() {
                    // Adding no values adds nothing (no key with an empty list).
                    Some("add" | "add_values") if values.is_empty() => {}
                    Some("add" | "add_values") => {
                        let held = labels.entry(key.to_owned()).or_default();
                        for value in values {
                            if !held.contains(&value) {
                                held.push(value);
                            }
                        }
                    }
                    Some("remove" | "remove_values") => {
                        if values.is_empty() {
                            labels.remove(key);
                        } else if let Some(held) = labels.get_mut(key) {
                            held.retain(|v| !values.contains(v));
                            if held.is_empty() {
                                labels.remove(key);
                            }
                        }
                    }
                    _ => return Err(bad("op must be add or remove")),
                }
            }
            Ok(())
        }
        _ => Err(bad("an object of string arrays, or a list of changes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Value {
        json!({"name": "cf-eu", "type": "cloudfoundry", "shared": true, "platform_id": null,
               "labels": {"env": ["dev", "test"], "team": ["db"]}})
    }

    fn accepts(fields: Option<&str>, labels: Option<&str>) -> bool {
        Filter::parse(fields, labels).unwrap().accepts(&item())
    }

    #[test]
    fn field_queries_compare_fields() {
        assert!(accepts(Some("name eq 'cf-eu'"), None));
        assert!(!accepts(Some("name ne 'cf-eu'"), None));
        assert!(accepts(
            Some("type in ('kubernetes', 'cloudfoundry')"),
            None
        ));
        assert!(accepts(Some("type notin ('kubernetes')"), None));
        assert!(accepts(Some("shared eq 'true' and name eq 'cf-eu'"), None));
        assert!(!accepts(Some("shared eq 'true' and name eq 'other'"), None));
        assert!(
            !accepts(Some("platform_id eq 'p'"), None),
            "null equals nothing"
        );
        assert!(accepts(Some("platform_id ne 'p'"), None));
    }

    #[test]
    fn label_queries_look_at_the_values() {
        assert!(accepts(None, Some("env eq 'dev'")));
        assert!(accepts(None, Some("env in ('prod', 'test')")));
        assert!(!accepts(None, Some("env notin ('prod', 'test')")));
        assert!(accepts(None, Some("region ne 'eu'")), "no such label");
        assert!(!accepts(None, Some("team eq 'db' and env eq 'prod'")));
    }

    #[test]
    fn quotes_inside_values_are_doubled() {
        let filter = Filter::parse(Some("name eq 'o''brien'"), None).unwrap();
        assert!(filter.accepts(&json!({"name": "o'brien"})));
    }

    #[test]
    fn malformed_queries_are_400_naming_the_query() {
        for bad in [
            "name",
            "name eq",
            "name like 'x'",
            "name eq x",
            "name eq 'x' or type eq 'y'",
            "type in 'x'",
            "type in ('x'",
            "name eq 'unterminated",
        ] {
            let err = Filter::parse(Some(bad), None).unwrap_err();
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.contains(bad)),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn label_changes_add_and_remove() {
        let mut labels = Labels::new();
        apply_label_changes(
            &mut labels,
            &json!([{"op": "add", "key": "env", "values": ["dev", "test"]},
                    {"op": "add", "key": "team", "values": ["db"]}]),
        )
        .unwrap();
        apply_label_changes(
            &mut labels,
            &json!([{"op": "remove", "key": "env", "values": ["dev"]},
                    {"op": "remove", "key": "team"}]),
        )
        .unwrap();
        assert_eq!(
            labels,
            Labels::from([("env".to_owned(), vec!["test".to_owned()])])
        );
        assert!(apply_label_changes(&mut labels, &json!([{"op": "rename", "key": "x"}])).is_err());
        // Adding no values adds no key; an empty key is refused in either form.
        apply_label_changes(&mut labels, &json!([{"op": "add", "key": "none"}])).unwrap();
        assert!(!labels.contains_key("none"));
        assert!(apply_label_changes(&mut labels, &json!({"": ["x"]})).is_err());
        apply_label_changes(&mut labels, &json!({"a": ["b"]})).unwrap();
        assert_eq!(
            labels,
            Labels::from([("a".to_owned(), vec!["b".to_owned()])])
        );
    }
}
