//! RAM roles: what STS lets a caller become. A role has a trust policy (who may assume it)
//! and attached policies (what a session of it may do), and the actions on them
//! (Create/Get/DeleteRole, AttachPolicyToRole, DetachPolicyFromRole, ListPoliciesForRole).
//! OIDC providers (what `AssumeRoleWithOIDC` trusts) live here too, registered by tests.
//!
//! A trust policy (`AssumeRolePolicyDocument`) is a policy document whose statements name a
//! `Principal` instead of a `Resource`:
//!
//! ```json
//! {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
//!   "Principal": {"RAM": ["acs:ram::<account>:root"]}}]}
//! ```
//!
//! `RAM` names accounts (`acs:ram::<account>:root`: any of its users and roles that a policy
//! allows `sts:AssumeRole`), users (`…:user/<name>`) and roles (`…:role/<name>`, for role
//! chaining); `Service` names cloud services (`ecs.aliyuncs.com` for instance roles);
//! `Federated` names identity providers (`…:oidc-provider/<name>`). Unlike identity policies,
//! trust conditions are evaluated, for the keys STS documents for them: `sts:ExternalId`,
//! `oidc:iss`, `oidc:aud` and `oidc:sub`, with `StringEquals`, `StringEqualsIgnoreCase` and
//! `StringLike`; any other key or operator fails the statement (closed, as elsewhere).
//!
//! Codes follow RAM's error list: `EntityAlreadyExists.Role`, `EntityNotExist.Role`,
//! `EntityAlreadyExists.Role.Policy`, `EntityNotExist.Role.Policy`, `DeleteConflict.Role.Policy`,
//! `MalformedPolicyDocument`, `InvalidParameter.RoleName.*`, `InvalidParameter.MaxSessionDuration`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::document::{check_condition, parse_statements, string_list, Effect};
use super::error::length_error;
use super::evaluate::wildcard_match;
use super::policy::{PolicyType, MAX_POLICY_DOCUMENT};
use super::state::Ram;
use super::ACCOUNT_ID;
use crate::api::{self, ApiError, Params};

/// The longest session a role allows unless created with `MaxSessionDuration`.
pub const DEFAULT_MAX_SESSION_DURATION: u64 = 3600;
/// The range `MaxSessionDuration` may take.
const MAX_SESSION_DURATION_RANGE: std::ops::RangeInclusive<u64> = 3600..=43_200;

/// A RAM role.
#[derive(Debug, Clone)]
pub(super) struct Role {
    /// The numeric id RAM gives it (`AssumedRoleId` starts with it).
    pub(super) role_id: String,
    /// `Description`.
    pub(super) description: String,
    /// The trust policy as given.
    pub(super) trust_document: String,
    /// The trust policy, validated.
    pub(super) trust: Vec<TrustStatement>,
    /// The longest session, in seconds.
    pub(super) max_session_duration: u64,
    /// When it was created.
    pub(super) create_date: String,
    /// Attached policies and when each was attached.
    pub(super) policies: BTreeMap<(PolicyType, String), String>,
}

/// An OIDC identity provider registered in RAM.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// The issuer URL a token's `iss` must equal.
    pub issuer: String,
    /// The client ids a token's `aud` must name one of.
    pub client_ids: Vec<String>,
}

/// What STS needs to know about a role someone asks to assume.
#[derive(Debug, Clone)]
pub struct Assumable {
    /// The role's id (`AssumedRoleId` is `<role id>:<session name>`).
    pub role_id: String,
    /// The longest session it allows, in seconds.
    pub max_session_duration: u64,
    /// Whether its trust policy lets the asker in.
    pub trusted: bool,
}

/// One statement of a trust policy.
#[derive(Debug, Clone)]
pub(super) struct TrustStatement {
    effect: Effect,
    actions: Vec<String>,
    /// `Principal.RAM`: accounts, users, roles.
    ram: Vec<String>,
    /// `Principal.Service`: cloud services.
    services: Vec<String>,
    /// `Principal.Federated`: identity providers.
    federated: Vec<String>,
    /// `Condition`: (operator, key, accepted values).
    conditions: Vec<(String, String, Vec<String>)>,
}

/// Who asks to assume a role, as its trust policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truster {
    /// A RAM identity of this account, by ARN (`acs:ram::<account>:user/<name>` or
    /// `…:role/<name>`).
    Ram(String),
    /// A cloud service, e.g. `ecs.aliyuncs.com`.
    Service(String),
    /// An identity provider, by ARN.
    Federated(String),
}

/// Parses a trust policy (see the module docs).
fn parse_trust_policy(document: &str) -> Result<Vec<TrustStatement>, String> {
    parse_statements(document, parse_trust_statement)
}

fn parse_trust_statement(statement: &Value) -> Result<TrustStatement, String> {
    let object = statement
        .as_object()
        .ok_or("Each Statement must be a JSON object.")?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "Effect" | "Action" | "Principal" | "Condition"
        ) {
            return Err(format!("Unknown element \"{key}\" in a trust Statement."));
        }
    }
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("A Statement's Effect must be \"Allow\" or \"Deny\".".to_owned()),
    };
    let actions = string_list(object.get("Action"), "Action")?;
    if let Some(action) = actions
        .iter()
        .find(|action| !action.to_ascii_lowercase().starts_with("sts:"))
    {
        return Err(format!(
            "The Action \"{action}\" of a trust policy must be sts:*."
        ));
    }
    let principal = object
        .get("Principal")
        .and_then(Value::as_object)
        .filter(|principal| !principal.is_empty())
        .ok_or("A trust Statement needs a Principal with RAM, Service or Federated.")?;
    let mut lists: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (kind, value) in principal {
        if !matches!(kind.as_str(), "RAM" | "Service" | "Federated") {
            return Err(format!("Unknown principal type \"{kind}\"."));
        }
        lists.insert(kind, string_list(Some(value), "Principal")?);
    }
    let mut conditions = Vec::new();
    if let Some(condition) = object.get("Condition") {
        check_condition(condition)?;
        for (operator, keys) in condition.as_object().into_iter().flatten() {
            for (key, values) in keys.as_object().into_iter().flatten() {
                let values = match values {
                    Value::Array(values) => values.iter().map(scalar_text).collect(),
                    value => vec![scalar_text(value)],
                };
                conditions.push((operator.clone(), key.clone(), values));
            }
        }
    }
    Ok(TrustStatement {
        effect,
        actions,
        ram: lists.remove("RAM").unwrap_or_default(),
        services: lists.remove("Service").unwrap_or_default(),
        federated: lists.remove("Federated").unwrap_or_default(),
        conditions,
    })
}

/// A condition value as text (`true`, `42`, `"x"` → `x`).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl TrustStatement {
    /// Whether the statement names `truster` as a principal.
    fn names(&self, truster: &Truster) -> bool {
        match truster {
            Truster::Ram(arn) => self.ram.iter().any(|entry| {
                let account_root = format!("acs:ram::{ACCOUNT_ID}:root");
                // The account itself (by ARN or bare id) trusts all its identities.
                *entry == account_root || *entry == ACCOUNT_ID || wildcard_match(entry, arn)
            }),
            Truster::Service(service) => self.services.iter().any(|s| s == service),
            Truster::Federated(arn) => self.federated.iter().any(|f| f == arn),
        }
    }

    /// Whether every condition holds for `context` (key → the request's values).
    fn conditions_hold(&self, context: &BTreeMap<&str, Vec<String>>) -> bool {
        self.conditions.iter().all(|(operator, key, accepted)| {
            let Some(values) = context.get(key.as_str()) else {
                return false;
            };
            let matches = |value: &String| {
                accepted.iter().any(|accepted| match operator.as_str() {
                    "StringEquals" => accepted == value,
                    "StringEqualsIgnoreCase" => accepted.eq_ignore_ascii_case(value),
                    "StringLike" => wildcard_match(accepted, value),
                    // Not evaluated here: fail closed.
                    _ => false,
                })
            };
            values.iter().any(matches)
        })
    }
}

/// Whether `trust` lets `truster` do `action` (e.g. `sts:AssumeRole`) given `context`: an
/// `Allow` names it and its conditions hold, and no `Deny` names it.
pub(super) fn trust_allows(
    trust: &[TrustStatement],
    truster: &Truster,
    action: &str,
    context: &BTreeMap<&str, Vec<String>>,
) -> bool {
    let covers = |statement: &TrustStatement| {
        statement.actions.iter().any(|pattern| {
            wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
        }) && statement.names(truster)
    };
    let mut allowed = false;
    for statement in trust.iter().filter(|statement| covers(statement)) {
        match statement.effect {
            // A Deny applies unless its conditions are known not to hold.
            Effect::Deny
                if statement.conditions.is_empty() || statement.conditions_hold(context) =>
            {
                return false
            }
            Effect::Deny => {}
            Effect::Allow => allowed |= statement.conditions_hold(context),
        }
    }
    allowed
}

impl Ram {
    /// Creates a role (what `CreateRole` does), for tests that set up RAM directly.
    ///
    /// # Errors
    /// `InvalidParameter.RoleName.*`, `MalformedPolicyDocument`,
    /// `InvalidParameter.MaxSessionDuration`, or `EntityAlreadyExists.Role`.
    pub fn create_role(
        &mut self,
        name: &str,
        trust_document: &str,
        description: &str,
        max_session_duration: Option<u64>,
    ) -> Result<Value, ApiError> {
        check_role_name(name)?;
        if description.chars().count() > 1024 {
            return Err(length_error("Description"));
        }
        if trust_document.chars().count() > MAX_POLICY_DOCUMENT {
            return Err(length_error("AssumeRolePolicyDocument"));
        }
        let trust = parse_trust_policy(trust_document)
            .map_err(|detail| ApiError::new(400, "MalformedPolicyDocument", detail))?;
        let max_session_duration = max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        if !MAX_SESSION_DURATION_RANGE.contains(&max_session_duration) {
            return Err(ApiError::new(
                400,
                "InvalidParameter.MaxSessionDuration",
                "The parameter - \"MaxSessionDuration\" must be between 3600 and 43200.",
            ));
        }
        if self.roles.contains_key(name) {
            return Err(ApiError::new(
                409,
                "EntityAlreadyExists.Role",
                "The role does already EXIST.",
            ));
        }
        let role = Role {
            role_id: format!("3{}", api::random_string(api::DIGITS, 17)),
            description: description.to_owned(),
            trust_document: trust_document.to_owned(),
            trust,
            max_session_duration,
            create_date: api::now_iso8601(),
            policies: BTreeMap::new(),
        };
        let answer = role_json(name, &role);
        self.roles.insert(name.to_owned(), role);
        Ok(answer)
    }

    /// Attaches a policy to a role (what `AttachPolicyToRole` does).
    ///
    /// # Errors
    /// `EntityNotExist.Role`, `EntityNotExist.Policy`, or `EntityAlreadyExists.Role.Policy`.
    pub fn attach_policy_to_role(
        &mut self,
        role: &str,
        policy_type: PolicyType,
        policy: &str,
    ) -> Result<(), ApiError> {
        self.role(role)?;
        self.policy_exists(policy_type, policy)?;
        let role = self.roles.get_mut(role).ok_or_else(role_not_found)?;
        let key = (policy_type, policy.to_owned());
        if role.policies.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "EntityAlreadyExists.Role.Policy",
                "The role has already been attached this policy.",
            ));
        }
        role.policies.insert(key, api::now_iso8601());
        Ok(())
    }

    /// Registers an OIDC identity provider (the fake's stand-in for RAM's console and the
    /// `CreateOIDCProvider` API of another product); returns its ARN.
    pub fn add_oidc_provider(&mut self, name: &str, issuer: &str, client_ids: &[&str]) -> String {
        self.oidc_providers.insert(
            name.to_owned(),
            OidcProvider {
                issuer: issuer.to_owned(),
                client_ids: client_ids.iter().map(|id| (*id).to_owned()).collect(),
            },
        );
        oidc_provider_arn(name)
    }

    /// The role `name` as STS sees it when `truster` asks to assume it with `context` (the
    /// condition keys of the request); `None` when there is no such role.
    pub fn assumable(
        &self,
        name: &str,
        truster: &Truster,
        context: &BTreeMap<&str, Vec<String>>,
    ) -> Option<Assumable> {
        let role = self.roles.get(name)?;
        Some(Assumable {
            role_id: role.role_id.clone(),
            max_session_duration: role.max_session_duration,
            trusted: trust_allows(&role.trust, truster, "sts:AssumeRole", context),
        })
    }

    /// The id of role `name`, if it exists.
    pub fn role_id(&self, name: &str) -> Option<String> {
        self.roles.get(name).map(|role| role.role_id.clone())
    }

    /// The OIDC provider `name`, if registered.
    pub fn oidc_provider(&self, name: &str) -> Option<&OidcProvider> {
        self.oidc_providers.get(name)
    }

    pub(super) fn role(&self, name: &str) -> Result<&Role, ApiError> {
        check_role_name(name)?;
        self.roles.get(name).ok_or_else(role_not_found)
    }
}

/// The ARN of a role of the account.
pub fn role_arn(name: &str) -> String {
    format!("acs:ram::{ACCOUNT_ID}:role/{name}")
}

/// The ARN of an OIDC provider of the account.
pub fn oidc_provider_arn(name: &str) -> String {
    format!("acs:ram::{ACCOUNT_ID}:oidc-provider/{name}")
}

pub(super) fn role_not_found() -> ApiError {
    ApiError::new(404, "EntityNotExist.Role", "The role does not exist.")
}

fn role_json(name: &str, role: &Role) -> Value {
    json!({
        "RoleId": role.role_id,
        "RoleName": name,
        "Arn": role_arn(name),
        "Description": role.description,
        "AssumeRolePolicyDocument": role.trust_document,
        "MaxSessionDuration": role.max_session_duration,
        "CreateDate": role.create_date,
    })
}

/// Role names: 1 to 64 letters, digits, `.`, `-`, `_`.
fn check_role_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(length_error("RoleName"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ApiError::new(
            400,
            "InvalidParameter.RoleName.InvalidChars",
            "The parameter - \"RoleName\" contains invalid chars.",
        ));
    }
    Ok(())
}

/// `CreateRole`.
pub(super) fn create_role(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("RoleName")?;
    let document = params.required("AssumeRolePolicyDocument")?;
    let max = params
        .integer("MaxSessionDuration")?
        .map(|max| u64::try_from(max).map_err(|_| ApiError::invalid("MaxSessionDuration")))
        .transpose()?;
    let role = ram.create_role(
        name,
        document,
        params.get("Description").unwrap_or_default(),
        max,
    )?;
    Ok(json!({ "Role": role }))
}

/// `GetRole`.
pub(super) fn get_role(ram: &Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("RoleName")?;
    let role = ram.role(name)?;
    let mut answer = role_json(name, role);
    answer["UpdateDate"] = json!(role.create_date);
    Ok(json!({ "Role": answer }))
}

/// `DeleteRole`.
pub(super) fn delete_role(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("RoleName")?;
    if !ram.role(name)?.policies.is_empty() {
        return Err(ApiError::new(
            409,
            "DeleteConflict.Role.Policy",
            "The role CAN NOT has any attached policy while deleting the role.",
        ));
    }
    ram.roles.remove(name);
    // Its sessions end with it: their keys no longer authenticate.
    ram.sessions.retain(|_, session| session.role != name);
    Ok(json!({}))
}

/// `AttachPolicyToRole`.
pub(super) fn attach_policy_to_role(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
    let policy = params.required("PolicyName")?;
    let role = params.required("RoleName")?;
    ram.attach_policy_to_role(role, policy_type, policy)?;
    Ok(json!({}))
}

/// `DetachPolicyFromRole`.
pub(super) fn detach_policy_from_role(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
    let policy = params.required("PolicyName")?;
    let name = params.required("RoleName")?;
    ram.role(name)?;
    ram.policy_exists(policy_type, policy)?;
    let role = ram.roles.get_mut(name).ok_or_else(role_not_found)?;
    if role
        .policies
        .remove(&(policy_type, policy.to_owned()))
        .is_none()
    {
        return Err(ApiError::new(
            404,
            "EntityNotExist.Role.Policy",
            "The policy of the role does not exist.",
        ));
    }
    Ok(json!({}))
}

/// `ListPoliciesForRole`.
pub(super) fn list_policies_for_role(ram: &Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("RoleName")?;
    let role = ram.role(name)?;
    let policies: Vec<Value> = role
        .policies
        .iter()
        .map(|((policy_type, policy), attached)| {
            json!({
                "PolicyName": policy,
                "PolicyType": policy_type.as_str(),
                "DefaultVersion": "v1",
                "AttachDate": attached,
            })
        })
        .collect();
    Ok(json!({ "Policies": { "Policy": policies } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, Vec<String>> {
        pairs
            .iter()
            .map(|(key, value)| (*key, vec![(*value).to_owned()]))
            .collect()
    }

    #[test]
    fn trust_names_accounts_users_services_and_providers() {
        let trust = parse_trust_policy(&format!(
            r#"{{"Version":"1","Statement":[
                {{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"RAM":["acs:ram::{ACCOUNT_ID}:user/deployer"]}}}},
                {{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"Service":["ecs.aliyuncs.com"]}}}},
                {{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"Federated":["acs:ram::{ACCOUNT_ID}:oidc-provider/ack"]}},
                  "Condition":{{"StringEquals":{{"oidc:iss":"https://oidc.example","oidc:aud":"sts.aliyuncs.com"}},
                               "StringLike":{{"oidc:sub":"system:serviceaccount:broker:*"}}}}}}
            ]}}"#
        ))
        .unwrap();
        let user = |name: &str| Truster::Ram(format!("acs:ram::{ACCOUNT_ID}:user/{name}"));
        let none = BTreeMap::new();
        assert!(trust_allows(
            &trust,
            &user("deployer"),
            "sts:AssumeRole",
            &none
        ));
        assert!(!trust_allows(
            &trust,
            &user("intruder"),
            "sts:AssumeRole",
            &none
        ));
        let ecs = Truster::Service("ecs.aliyuncs.com".to_owned());
        assert!(trust_allows(&trust, &ecs, "sts:AssumeRole", &none));
        let provider = Truster::Federated(oidc_provider_arn("ack"));
        let good = context(&[
            ("oidc:iss", "https://oidc.example"),
            ("oidc:aud", "sts.aliyuncs.com"),
            ("oidc:sub", "system:serviceaccount:broker:skybroker"),
        ]);
        assert!(trust_allows(&trust, &provider, "sts:AssumeRole", &good));
        let other_namespace = context(&[
            ("oidc:iss", "https://oidc.example"),
            ("oidc:aud", "sts.aliyuncs.com"),
            ("oidc:sub", "system:serviceaccount:default:app"),
        ]);
        assert!(!trust_allows(
            &trust,
            &provider,
            "sts:AssumeRole",
            &other_namespace
        ));
        // A condition on a key the request does not have fails.
        assert!(!trust_allows(&trust, &provider, "sts:AssumeRole", &none));
    }

    #[test]
    fn the_account_root_trusts_its_identities_and_external_ids_are_checked() {
        let trust = parse_trust_policy(&format!(
            r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole",
                "Principal":{{"RAM":["acs:ram::{ACCOUNT_ID}:root"]}},
                "Condition":{{"StringEquals":{{"sts:ExternalId":"abcd-1234"}}}}}}]}}"#
        ))
        .unwrap();
        let user = Truster::Ram(format!("acs:ram::{ACCOUNT_ID}:user/anyone"));
        assert!(trust_allows(
            &trust,
            &user,
            "sts:AssumeRole",
            &context(&[("sts:ExternalId", "abcd-1234")])
        ));
        assert!(!trust_allows(
            &trust,
            &user,
            "sts:AssumeRole",
            &context(&[("sts:ExternalId", "wrong")])
        ));
        assert!(!trust_allows(
            &trust,
            &user,
            "sts:AssumeRole",
            &BTreeMap::new()
        ));
    }

    #[test]
    fn malformed_trust_policies_are_refused() {
        let mut ram = Ram::new("root", "secret");
        for document in [
            "{}",
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"oss:*","Principal":{"RAM":"x"}}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":"x"}}]}"#,
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*","Principal":{"RAM":"x"}}]}"#,
        ] {
            let err = ram.create_role("r", document, "", None).unwrap_err();
            assert_eq!(err.code, "MalformedPolicyDocument", "{document}");
        }
        let trust = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"Service":"ecs.aliyuncs.com"}}]}"#;
        let err = ram.create_role("r", trust, "", Some(100)).unwrap_err();
        assert_eq!(err.code, "InvalidParameter.MaxSessionDuration");
        let created = ram.create_role("r", trust, "", None).unwrap();
        assert_eq!(created["Arn"], role_arn("r"));
        assert_eq!(created["MaxSessionDuration"], 3600);
        let err = ram.create_role("r", trust, "", None).unwrap_err();
        assert_eq!(err.code, "EntityAlreadyExists.Role");
    }
}
