//! Catalog and configuration rules applied before anything serves (checklist OSB-CAT-33).
//!
//! `skybroker check-config` prints every [`Problem`] and `serve` refuses to start on any
//! error, so each problem names where it is (`services[sandbox].plans[sized].maintenance_info`)
//! and what is wrong. Warnings (CLI-unfriendly names, long strings) never stop a start.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::catalog::{Plan, SchemaKind, ServiceOffering};
use crate::Config;

/// Values `requires` may hold (OSB-CAT-10).
const ALLOWED_REQUIRES: [&str; 3] = ["syslog_drain", "route_forwarding", "volume_mount"];
/// OSB-CAT-31: a schema is at most 64 kB.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// OSB-GEN-09: recommended maximum string length.
const MAX_RECOMMENDED_LEN: usize = 255;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be served.
    Error,
    /// Allowed, but against the spec's recommendations.
    Warning,
}

/// One finding about a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the configuration, e.g. `services[sandbox].plans[sync].id`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.location, self.message)
    }
}

/// Collects problems with their locations.
#[derive(Default)]
struct Findings(Vec<Problem>);

impl Findings {
    fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, location.into(), message.into());
    }

    fn warning(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, location.into(), message.into());
    }

    fn push(&mut self, severity: Severity, location: String, message: String) {
        self.0.push(Problem {
            severity,
            location,
            message,
        });
    }

    /// Non-empty, and not longer than recommended.
    fn text(&mut self, location: &str, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(format!("{location}.{field}"), "must be a non-empty string");
        } else if value.chars().count() > MAX_RECOMMENDED_LEN {
            self.warning(
                format!("{location}.{field}"),
                format!("is longer than the recommended {MAX_RECOMMENDED_LEN} characters"),
            );
        }
    }

    fn cli_name(&mut self, location: &str, name: &str) {
        let friendly = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
        if !name.is_empty() && (!friendly || name == "-") {
            self.warning(
                format!("{location}.name"),
                format!("{name:?} is not CLI-friendly (use letters, digits, '.', '-' or '_')"),
            );
        }
    }
}

/// Every problem of `config`, errors and warnings, in file order.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut findings = Findings::default();
    for (field, secs) in [
        (
            "header_read_timeout_secs",
            config.server.header_read_timeout_secs,
        ),
        (
            "body_read_timeout_secs",
            config.server.body_read_timeout_secs,
        ),
    ] {
        if secs == 0 {
            findings.error(
                format!("server.{field}"),
                "must be a positive number of seconds",
            );
        }
    }
    if config.services.is_empty() {
        findings.warning("services", "the catalog has no service offerings");
    }
    check_services(&mut findings, &config.services);
    findings.0
}

/// The catalog rules of a list of offerings, on their own: the configured catalog, or the
/// one a platform is served (the configured offerings with those of every registered
/// broker), where ids and names must be unique across all of them.
pub fn validate_services(services: &[ServiceOffering]) -> Vec<Problem> {
    let mut findings = Findings::default();
    check_services(&mut findings, services);
    findings.0
}

fn check_services(findings: &mut Findings, services: &[ServiceOffering]) {
    let findings = &mut *findings;
    let mut offering_ids = HashMap::new();
    let mut offering_names = HashMap::new();
    let mut plan_ids: HashMap<&str, String> = HashMap::new();
    for (index, offering) in services.iter().enumerate() {
        let location = offering_location(index, offering);
        check_offering(findings, &location, offering);
        if let Some(first) = offering_ids.insert(offering.id.as_str(), location.clone()) {
            findings.error(
                format!("{location}.id"),
                format!(
                    "duplicate service id {:?} (also used by {first})",
                    offering.id
                ),
            );
        }
        if let Some(first) = offering_names.insert(offering.name.as_str(), location.clone()) {
            findings.error(
                format!("{location}.name"),
                format!(
                    "duplicate service name {:?} (also used by {first})",
                    offering.name
                ),
            );
        }
        let mut plan_names = HashSet::new();
        for (plan_index, plan) in offering.plans.iter().enumerate() {
            let plan_location = format!("{location}.{}", plan_location(plan_index, plan));
            check_plan(findings, &plan_location, offering, plan);
            if let Some(first) = plan_ids.insert(plan.id.as_str(), plan_location.clone()) {
                findings.error(
                    format!("{plan_location}.id"),
                    format!("duplicate plan id {:?} (also used by {first})", plan.id),
                );
            }
            if !plan_names.insert(plan.name.as_str()) {
                findings.error(
                    format!("{plan_location}.name"),
                    format!("duplicate plan name {:?} within the offering", plan.name),
                );
            }
        }
    }
}

fn offering_location(index: usize, offering: &ServiceOffering) -> String {
    if offering.name.is_empty() {
        format!("services[{index}]")
    } else {
        format!("services[{}]", offering.name)
    }
}

fn plan_location(index: usize, plan: &Plan) -> String {
    if plan.name.is_empty() {
        format!("plans[{index}]")
    } else {
        format!("plans[{}]", plan.name)
    }
}

fn check_offering(findings: &mut Findings, location: &str, offering: &ServiceOffering) {
    findings.text(location, "id", &offering.id);
    findings.text(location, "name", &offering.name);
    findings.text(location, "description", &offering.description);
    findings.cli_name(location, &offering.name);
    if offering.broker.trim().is_empty() {
        findings.error(format!("{location}.broker"), "names no broker plugin");
    }
    if offering.plans.is_empty() {
        findings.error(
            format!("{location}.plans"),
            "an offering needs at least one plan",
        );
    }
    for (index, requirement) in offering.requires.iter().enumerate() {
        if !ALLOWED_REQUIRES.contains(&requirement.as_str()) {
            findings.error(
                format!("{location}.requires[{index}]"),
                format!(
                    "{requirement:?} is not allowed (options are: {})",
                    ALLOWED_REQUIRES.join(", ")
                ),
            );
        }
    }
    if let Some(Value::Object(client)) = &offering.dashboard_client {
        for field in ["id", "secret"] {
            if !matches!(client.get(field), Some(Value::String(s)) if !s.is_empty()) {
                findings.error(
                    format!("{location}.dashboard_client.{field}"),
                    "must be a non-empty string",
                );
            }
        }
    } else if offering.dashboard_client.is_some() {
        findings.error(format!("{location}.dashboard_client"), "must be an object");
    }
}

fn check_plan(findings: &mut Findings, location: &str, offering: &ServiceOffering, plan: &Plan) {
    findings.text(location, "id", &plan.id);
    findings.text(location, "name", &plan.name);
    findings.text(location, "description", &plan.description);
    findings.cli_name(location, &plan.name);
    if let Some(info) = &plan.maintenance_info {
        if let Err(err) = semver::Version::parse(&info.version) {
            findings.error(
                format!("{location}.maintenance_info.version"),
                format!("{:?} is not a SemVer 2.0 version: {err}", info.version),
            );
        }
    }
    if plan.maximum_polling_duration == Some(0) {
        findings.error(
            format!("{location}.maximum_polling_duration"),
            "must be a positive number of seconds",
        );
    }
    let schemas = [
        (
            SchemaKind::InstanceCreate,
            "schemas.service_instance.create.parameters",
        ),
        (
            SchemaKind::InstanceUpdate,
            "schemas.service_instance.update.parameters",
        ),
        (
            SchemaKind::BindingCreate,
            "schemas.service_binding.create.parameters",
        ),
    ];
    for (kind, path) in schemas {
        if let Some(schema) = plan.schema(kind) {
            check_schema(findings, &format!("{location}.{path}"), schema);
        }
    }
    if plan.schema(SchemaKind::BindingCreate).is_some() && !plan.is_bindable(offering) {
        findings.warning(
            format!("{location}.schemas.service_binding"),
            "a binding schema on a plan that is not bindable is never used",
        );
    }
}

/// OSB-CAT-29..31: `$schema` present, no remote `$ref`, at most 64 kB, and a schema the
/// validator can compile.
fn check_schema(findings: &mut Findings, location: &str, schema: &Value) {
    let Value::Object(object) = schema else {
        findings.error(location, "a schema must be a JSON object");
        return;
    };
    if !matches!(object.get("$schema"), Some(Value::String(s)) if !s.is_empty()) {
        findings.error(
            location,
            "the schema has no \"$schema\" key declaring its draft",
        );
    }
    let size = serde_json::to_vec(schema).map_or(0, |bytes| bytes.len());
    if size > MAX_SCHEMA_BYTES {
        findings.error(
            location,
            format!("the schema is {size} bytes, more than the 64 kB the spec allows"),
        );
    }
    let mut remote = Vec::new();
    remote_refs(schema, "", &mut remote);
    for (path, target) in &remote {
        findings.error(
            format!("{location}{path}"),
            format!("external $ref {target:?} is not allowed; schemas must be self-contained"),
        );
    }
    if remote.is_empty() {
        if let Err(err) = jsonschema::validator_for(schema) {
            findings.error(location, format!("not a valid JSON schema: {err}"));
        }
    }
}

/// Every `$ref` that does not point inside the same document.
fn remote_refs(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) if !target.starts_with('#') => {
                        out.push((child_path, target.clone()))
                    }
                    _ => remote_refs(child, &child_path, out),
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                remote_refs(child, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}
