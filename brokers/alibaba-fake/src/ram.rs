//! RAM (API version 2015-05-01): users, access keys, custom policies, attachments, and the
//! policy evaluation every endpoint of the fake uses to authorize a call.
//!
//! The broker creates one RAM user per binding, gives it a key and a policy naming the
//! bucket (or instance) it may touch, and deletes all three on unbind. So the fake keeps
//! what the real service enforces on that path:
//! - names are checked (`InvalidParameter.UserName.*`, `InvalidParameter.PolicyName.*`);
//! - a user has at most two keys (`LimitExceeded.User.AccessKey`, 409);
//! - nothing is deleted while something depends on it (`DeleteConflict.User.AccessKey`,
//!   `DeleteConflict.User.Policy`, `DeleteConflict.Policy.User`, all 409);
//! - policy documents are validated (`MalformedPolicyDocument`, 400) and evaluated with
//!   `*`/`?` wildcards, an explicit `Deny` winning over any `Allow`;
//! - a deleted key stops working at once ([`Ram::lookup_key`] no longer finds it).
//!
//! Codes, statuses and messages are those of RAM's published error list ("Error messages"
//! in the RAM API reference: 400 `InvalidParameter.*`, 404 `EntityNotExist.*`, 409
//! `EntityAlreadyExists.*`/`DeleteConflict.*`/`LimitExceeded.*`).
//!
//! Simplified, and documented here rather than hidden: policy versions (every policy has
//! only `v1`), groups, roles and login profiles do not exist; a statement with a
//! `Condition` is validated but never grants anything and always denies (the fake does not
//! evaluate conditions, and failing closed keeps a test from passing by accident); only a
//! handful of system policies exist ([`SYSTEM_POLICIES`]); actions match case-insensitively
//! and resources case-sensitively.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api::{self, ApiError, Params};

/// The account id the fake pretends to be (it appears in resource names and user ids).
pub const ACCOUNT_ID: &str = "1234567890123456";

/// How many access keys a RAM user may have.
pub const MAX_KEYS_PER_USER: usize = 2;

/// The longest policy document RAM accepts, in characters.
const MAX_POLICY_DOCUMENT: usize = 6144;

/// The RAM actions this fake answers.
pub const ACTIONS: &[&str] = &[
    "CreateUser",
    "GetUser",
    "DeleteUser",
    "CreateAccessKey",
    "ListAccessKeys",
    "DeleteAccessKey",
    "CreatePolicy",
    "GetPolicy",
    "DeletePolicy",
    "AttachPolicyToUser",
    "DetachPolicyFromUser",
    "ListPoliciesForUser",
];

/// The system policies the fake knows: name, description, document. Real accounts have
/// hundreds; these are the ones a broker is likely to attach.
pub const SYSTEM_POLICIES: &[(&str, &str, &str)] = &[
    (
        "AdministratorAccess",
        "Full access to all resources of the account.",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "AliyunOSSFullAccess",
        "Full access to Object Storage Service (OSS).",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"oss:*","Resource":"*"}]}"#,
    ),
    (
        "AliyunOSSReadOnlyAccess",
        "Read-only access to Object Storage Service (OSS).",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["oss:Get*","oss:List*"],"Resource":"*"}]}"#,
    ),
    (
        "AliyunRDSFullAccess",
        "Full access to ApsaraDB RDS.",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*","Resource":"*"}]}"#,
    ),
    (
        "AliyunRDSReadOnlyAccess",
        "Read-only access to ApsaraDB RDS.",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:Describe*","Resource":"*"}]}"#,
    ),
    (
        "AliyunRAMFullAccess",
        "Full access to Resource Access Management (RAM).",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"ram:*","Resource":"*"}]}"#,
    ),
    (
        "AliyunRAMReadOnlyAccess",
        "Read-only access to Resource Access Management (RAM).",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["ram:Get*","ram:List*"],"Resource":"*"}]}"#,
    ),
];

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account itself (its own AccessKey): allowed everything.
    Root,
    /// A RAM user, by name: allowed what its attached policies allow.
    User(String),
}

/// The outcome of evaluating a principal's policies for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows it and none denies it.
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A statement denies it.
    ExplicitDeny,
}

/// Whether a policy is the account's own or one of Alibaba Cloud's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyType {
    /// A predefined policy ([`SYSTEM_POLICIES`]).
    System,
    /// A policy made with `CreatePolicy`.
    Custom,
}

impl PolicyType {
    /// Parses the `PolicyType` parameter.
    fn parse(value: &str) -> Result<PolicyType, ApiError> {
        match value {
            "System" => Ok(PolicyType::System),
            "Custom" => Ok(PolicyType::Custom),
            _ => Err(ApiError::new(
                400,
                "InvalidParameter.PolicyType",
                "The parameter - \"PolicyType\" is incorrect.",
            )),
        }
    }

    /// The wire name.
    fn as_str(self) -> &'static str {
        match self {
            PolicyType::System => "System",
            PolicyType::Custom => "Custom",
        }
    }
}

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// One validated statement of a policy document.
#[derive(Debug, Clone)]
struct Statement {
    /// Allow or Deny.
    effect: Effect,
    /// Action patterns, e.g. `oss:Get*`.
    actions: Vec<String>,
    /// Resource patterns, e.g. `acs:oss:*:*:mybucket/*`.
    resources: Vec<String>,
    /// Whether the statement carries a `Condition` (which the fake does not evaluate).
    conditional: bool,
}

impl Statement {
    /// Whether the statement covers `action` on `resource` (ignoring its condition).
    fn covers(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.actions
            .iter()
            .any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &action))
            && self
                .resources
                .iter()
                .any(|pattern| wildcard_match(pattern, resource))
    }
}

/// A RAM user.
#[derive(Debug, Clone)]
struct User {
    /// The user's name, unique in the account.
    name: String,
    /// The numeric id RAM gives it.
    user_id: String,
    /// `DisplayName`.
    display_name: String,
    /// `Comments`.
    comments: String,
    /// When it was created.
    create_date: String,
    /// Attached policies and when each was attached.
    policies: BTreeMap<(PolicyType, String), String>,
}

/// An access key of a RAM user.
#[derive(Debug, Clone)]
struct AccessKey {
    /// The owning user.
    user: String,
    /// The secret the signatures are made with.
    secret: String,
    /// When it was created.
    create_date: String,
}

/// A custom policy.
#[derive(Debug, Clone)]
struct CustomPolicy {
    /// `Description`.
    description: String,
    /// The document as given (returned by `GetPolicy`).
    document: String,
    /// The document, validated.
    statements: Vec<Statement>,
    /// When it was created.
    create_date: String,
}

/// Users, keys and policies of the one account the fake serves.
#[derive(Debug)]
pub struct Ram {
    /// The account's own key id.
    root_key_id: String,
    /// The account's own key secret.
    root_secret: String,
    /// Users by name.
    users: BTreeMap<String, User>,
    /// Access keys by id.
    keys: BTreeMap<String, AccessKey>,
    /// Custom policies by name.
    policies: BTreeMap<String, CustomPolicy>,
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
        }
    }

    /// The principal an access key belongs to and its secret (the root key included);
    /// `None` for unknown or deleted keys.
    pub fn lookup_key(&self, access_key_id: &str) -> Option<(Principal, String)> {
        if access_key_id == self.root_key_id {
            return Some((Principal::Root, self.root_secret.clone()));
        }
        let key = self.keys.get(access_key_id)?;
        Some((Principal::User(key.user.clone()), key.secret.clone()))
    }

    /// Whether the principal may do `action` (e.g. `oss:GetObject`) on `resource` (e.g.
    /// `acs:oss:*:*:mybucket/obj`): the root always; a user when an attached policy has a
    /// matching `Allow` and none has a matching `Deny`.
    pub fn allows(&self, principal: &Principal, action: &str, resource: &str) -> bool {
        self.decide(principal, action, resource) == Decision::Allow
    }

    /// Like [`Ram::allows`], but tells an explicit `Deny` from the absence of an `Allow`
    /// (the RPC endpoint reports which in `AccessDeniedDetail.NoPermissionType`).
    pub fn decide(&self, principal: &Principal, action: &str, resource: &str) -> Decision {
        let name = match principal {
            Principal::Root => return Decision::Allow,
            Principal::User(name) => name,
        };
        let Some(user) = self.users.get(name) else {
            return Decision::ImplicitDeny;
        };
        let mut decision = Decision::ImplicitDeny;
        for (policy_type, policy_name) in user.policies.keys() {
            for statement in self.statements(*policy_type, policy_name) {
                if !statement.covers(action, resource) {
                    continue;
                }
                match statement.effect {
                    // A conditional Deny is applied as if its condition held: fail closed.
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow if !statement.conditional => decision = Decision::Allow,
                    Effect::Allow => {}
                }
            }
        }
        decision
    }

    /// The statements of a policy (none for a policy that no longer exists).
    fn statements(&self, policy_type: PolicyType, name: &str) -> Vec<Statement> {
        match policy_type {
            PolicyType::Custom => self
                .policies
                .get(name)
                .map(|policy| policy.statements.clone())
                .unwrap_or_default(),
            PolicyType::System => system_policy(name)
                .and_then(|(_, document)| parse_policy(document).ok())
                .unwrap_or_default(),
        }
    }

    /// Creates a user (what `CreateUser` does), for tests that set up RAM directly.
    ///
    /// # Errors
    /// `InvalidParameter.UserName.*` for a bad name, `EntityAlreadyExists.User` for a taken one.
    pub fn create_user(
        &mut self,
        name: &str,
        display_name: &str,
        comments: &str,
    ) -> Result<Value, ApiError> {
        check_user_name(name)?;
        if display_name.chars().count() > 128 {
            return Err(length_error("DisplayName"));
        }
        if comments.chars().count() > 128 {
            return Err(length_error("Comments"));
        }
        if self.users.contains_key(name) {
            return Err(ApiError::new(
                409,
                "EntityAlreadyExists.User",
                "The user does already EXIST.",
            ));
        }
        let user = User {
            name: name.to_owned(),
            user_id: format!("2{}", api::random_string(api::DIGITS, 15)),
            display_name: display_name.to_owned(),
            comments: comments.to_owned(),
            create_date: api::now_iso8601(),
            policies: BTreeMap::new(),
        };
        let answer = user_json(&user);
        self.users.insert(name.to_owned(), user);
        Ok(answer)
    }

    /// Creates an access key for a user (what `CreateAccessKey` does): returns the id and
    /// the secret.
    ///
    /// # Errors
    /// `EntityNotExist.User`, or `LimitExceeded.User.AccessKey` when it has two already.
    pub fn create_access_key(&mut self, user: &str) -> Result<(String, String), ApiError> {
        self.user(user)?;
        let count = self.keys.values().filter(|key| key.user == user).count();
        if count >= MAX_KEYS_PER_USER {
            return Err(ApiError::new(
                409,
                "LimitExceeded.User.AccessKey",
                "The access key count of the user access keys beyond the current limits.",
            ));
        }
        let id = format!("LTAI5t{}", api::random_string(api::ALNUM, 18));
        let secret = api::random_string(api::ALNUM, 30);
        self.keys.insert(
            id.clone(),
            AccessKey {
                user: user.to_owned(),
                secret: secret.clone(),
                create_date: api::now_iso8601(),
            },
        );
        Ok((id, secret))
    }

    /// Creates a custom policy (what `CreatePolicy` does).
    ///
    /// # Errors
    /// `InvalidParameter.PolicyName.*`, `MalformedPolicyDocument`, or
    /// `EntityAlreadyExists.Policy`.
    pub fn create_policy(
        &mut self,
        name: &str,
        document: &str,
        description: &str,
    ) -> Result<Value, ApiError> {
        check_policy_name(name)?;
        if description.chars().count() > 1024 {
            return Err(length_error("Description"));
        }
        if document.chars().count() > MAX_POLICY_DOCUMENT {
            return Err(length_error("PolicyDocument"));
        }
        let statements = parse_policy(document)
            .map_err(|detail| ApiError::new(400, "MalformedPolicyDocument", detail))?;
        if self.policies.contains_key(name) || system_policy(name).is_some() {
            return Err(ApiError::new(
                409,
                "EntityAlreadyExists.Policy",
                "The policy does already EXIST.",
            ));
        }
        let policy = CustomPolicy {
            description: description.to_owned(),
            document: document.to_owned(),
            statements,
            create_date: api::now_iso8601(),
        };
        let answer = json!({
            "PolicyName": name,
            "PolicyType": "Custom",
            "Description": policy.description,
            "DefaultVersion": "v1",
            "CreateDate": policy.create_date,
        });
        self.policies.insert(name.to_owned(), policy);
        Ok(answer)
    }

    /// Attaches a policy to a user (what `AttachPolicyToUser` does).
    ///
    /// # Errors
    /// `EntityNotExist.User`, `EntityNotExist.Policy`, or `EntityAlreadyExists.User.Policy`.
    pub fn attach_policy(
        &mut self,
        user: &str,
        policy_type: PolicyType,
        policy: &str,
    ) -> Result<(), ApiError> {
        self.user(user)?;
        self.policy_exists(policy_type, policy)?;
        let user = self.users.get_mut(user).ok_or_else(user_not_found)?;
        let key = (policy_type, policy.to_owned());
        if user.policies.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "EntityAlreadyExists.User.Policy",
                "The user has already been attached this policy.",
            ));
        }
        user.policies.insert(key, api::now_iso8601());
        Ok(())
    }

    /// Users, key ids, policies and attachments, for tests (no secrets).
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
        json!({ "users": users, "policies": policies })
    }

    fn key_ids(&self, user: &str) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|(_, key)| key.user == user)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn attachment_count(&self, policy_type: PolicyType, name: &str) -> usize {
        let key = (policy_type, name.to_owned());
        self.users
            .values()
            .filter(|user| user.policies.contains_key(&key))
            .count()
    }

    fn user(&self, name: &str) -> Result<&User, ApiError> {
        check_user_name(name)?;
        self.users.get(name).ok_or_else(user_not_found)
    }

    fn policy_exists(&self, policy_type: PolicyType, name: &str) -> Result<(), ApiError> {
        check_policy_name(name)?;
        let exists = match policy_type {
            PolicyType::Custom => self.policies.contains_key(name),
            PolicyType::System => system_policy(name).is_some(),
        };
        if exists {
            Ok(())
        } else {
            Err(ApiError::new(
                404,
                "EntityNotExist.Policy",
                "The policy does not exist.",
            ))
        }
    }
}

// ===== The RAM actions =====

/// Answers one RAM action (already authenticated and authorized) for `caller`.
pub fn handle(
    ram: &mut Ram,
    action: &str,
    params: &Params,
    caller: &Principal,
) -> Result<Value, ApiError> {
    match action {
        "CreateUser" => {
            let name = params.required("UserName")?;
            let user = ram.create_user(
                name,
                params.get("DisplayName").unwrap_or_default(),
                params.get("Comments").unwrap_or_default(),
            )?;
            Ok(json!({ "User": user }))
        }
        "GetUser" => {
            let name = user_param(params, caller)?;
            let user = ram.user(&name)?;
            let mut answer = user_json(user);
            answer["UpdateDate"] = json!(user.create_date);
            Ok(json!({ "User": answer }))
        }
        "DeleteUser" => {
            let name = params.required("UserName")?;
            ram.user(name)?;
            if !ram.key_ids(name).is_empty() {
                return Err(ApiError::new(
                    409,
                    "DeleteConflict.User.AccessKey",
                    "The user CAN NOT has any access key while deleting the user.",
                ));
            }
            if ram
                .users
                .get(name)
                .is_some_and(|user| !user.policies.is_empty())
            {
                return Err(ApiError::new(
                    409,
                    "DeleteConflict.User.Policy",
                    "The user CAN NOT has any attached policy while deleting the user.",
                ));
            }
            ram.users.remove(name);
            Ok(json!({}))
        }
        "CreateAccessKey" => {
            let name = user_param(params, caller)?;
            let (id, secret) = ram.create_access_key(&name)?;
            let create_date = ram.keys.get(&id).map(|key| key.create_date.clone());
            Ok(json!({ "AccessKey": {
                "AccessKeyId": id,
                "AccessKeySecret": secret,
                "Status": "Active",
                "CreateDate": create_date,
            }}))
        }
        "ListAccessKeys" => {
            let name = user_param(params, caller)?;
            ram.user(&name)?;
            let keys: Vec<Value> = ram
                .keys
                .iter()
                .filter(|(_, key)| key.user == name)
                .map(|(id, key)| {
                    json!({ "AccessKeyId": id, "Status": "Active", "CreateDate": key.create_date })
                })
                .collect();
            Ok(json!({ "AccessKeys": { "AccessKey": keys } }))
        }
        "DeleteAccessKey" => {
            let name = user_param(params, caller)?;
            let key_id = params.required("UserAccessKeyId")?;
            ram.user(&name)?;
            match ram.keys.get(key_id) {
                Some(key) if key.user == name => {
                    ram.keys.remove(key_id);
                    Ok(json!({}))
                }
                _ => Err(ApiError::new(
                    404,
                    "EntityNotExist.User.AccessKey",
                    "The user access key does not exist.",
                )),
            }
        }
        "CreatePolicy" => {
            let name = params.required("PolicyName")?;
            let document = params.required("PolicyDocument")?;
            let policy = ram.create_policy(
                name,
                document,
                params.get("Description").unwrap_or_default(),
            )?;
            Ok(json!({ "Policy": policy }))
        }
        "GetPolicy" => {
            let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
            let name = params.required("PolicyName")?;
            ram.policy_exists(policy_type, name)?;
            let (description, document, create_date) = match policy_type {
                PolicyType::Custom => {
                    let policy = &ram.policies[name];
                    (
                        policy.description.clone(),
                        policy.document.clone(),
                        policy.create_date.clone(),
                    )
                }
                PolicyType::System => {
                    // policy_exists just found it.
                    let (description, document) = system_policy(name).unwrap_or_default();
                    (
                        description.to_owned(),
                        document.to_owned(),
                        "2015-01-01T00:00:00Z".to_owned(),
                    )
                }
            };
            Ok(json!({
                "Policy": {
                    "PolicyName": name,
                    "PolicyType": policy_type.as_str(),
                    "Description": description,
                    "DefaultVersion": "v1",
                    "PolicyDocument": document,
                    "CreateDate": create_date,
                    "UpdateDate": create_date,
                    "AttachmentCount": ram.attachment_count(policy_type, name),
                },
                "DefaultPolicyVersion": {
                    "VersionId": "v1",
                    "IsDefaultVersion": true,
                    "PolicyDocument": document,
                    "CreateDate": create_date,
                },
            }))
        }
        "DeletePolicy" => {
            let name = params.required("PolicyName")?;
            ram.policy_exists(PolicyType::Custom, name)?;
            if ram.attachment_count(PolicyType::Custom, name) > 0 {
                return Err(ApiError::new(
                    409,
                    "DeleteConflict.Policy.User",
                    "The policy CAN NOT been attached to any user while deleting the policy.",
                ));
            }
            ram.policies.remove(name);
            Ok(json!({}))
        }
        "AttachPolicyToUser" => {
            let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
            let policy = params.required("PolicyName")?;
            let user = params.required("UserName")?;
            ram.attach_policy(user, policy_type, policy)?;
            Ok(json!({}))
        }
        "DetachPolicyFromUser" => {
            let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
            let policy = params.required("PolicyName")?;
            let name = params.required("UserName")?;
            ram.user(name)?;
            ram.policy_exists(policy_type, policy)?;
            let user = ram.users.get_mut(name).ok_or_else(user_not_found)?;
            if user
                .policies
                .remove(&(policy_type, policy.to_owned()))
                .is_none()
            {
                return Err(ApiError::new(
                    404,
                    "EntityNotExist.User.Policy",
                    "The indicate policy of the user does not exist.",
                ));
            }
            Ok(json!({}))
        }
        "ListPoliciesForUser" => {
            let name = params.required("UserName")?;
            let user = ram.user(name)?;
            let policies: Vec<Value> = user
                .policies
                .iter()
                .map(|((policy_type, policy), attached)| {
                    let description = match policy_type {
                        PolicyType::Custom => ram
                            .policies
                            .get(policy)
                            .map(|p| p.description.clone())
                            .unwrap_or_default(),
                        PolicyType::System => system_policy(policy)
                            .map(|(description, _)| description.to_owned())
                            .unwrap_or_default(),
                    };
                    json!({
                        "PolicyName": policy,
                        "PolicyType": policy_type.as_str(),
                        "Description": description,
                        "DefaultVersion": "v1",
                        "AttachDate": attached,
                    })
                })
                .collect();
            Ok(json!({ "Policies": { "Policy": policies } }))
        }
        // The endpoint only dispatches names from ACTIONS.
        other => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api is not found, please check your url and method: {other}"),
        )),
    }
}

/// The authorization resource of a RAM call: the user or policy it names.
pub fn resource_of(params: &Params) -> String {
    if let Some(user) = params.get("UserName") {
        format!("acs:ram:*:{ACCOUNT_ID}:user/{user}")
    } else if let Some(policy) = params.get("PolicyName") {
        format!("acs:ram:*:{ACCOUNT_ID}:policy/{policy}")
    } else {
        format!("acs:ram:*:{ACCOUNT_ID}:*")
    }
}

/// `UserName`, or for a RAM user calling about itself, its own name.
fn user_param(params: &Params, caller: &Principal) -> Result<String, ApiError> {
    match (params.get("UserName"), caller) {
        (Some(name), _) => Ok(name.to_owned()),
        (None, Principal::User(name)) => Ok(name.clone()),
        // The root account's own keys are not managed through this fake.
        (None, Principal::Root) => Err(ApiError::missing("UserName")),
    }
}

fn user_json(user: &User) -> Value {
    json!({
        "UserId": user.user_id,
        "UserName": user.name,
        "DisplayName": user.display_name,
        "Comments": user.comments,
        "CreateDate": user.create_date,
    })
}

fn user_not_found() -> ApiError {
    ApiError::new(404, "EntityNotExist.User", "The user does not exist.")
}

fn length_error(parameter: &str) -> ApiError {
    ApiError::new(
        400,
        &format!("InvalidParameter.{parameter}.Length"),
        format!("The parameter - \"{parameter}\" beyond the length limit."),
    )
}

/// User names: 1 to 64 letters, digits, `.`, `-`, `_`.
fn check_user_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(length_error("UserName"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ApiError::new(
            400,
            "InvalidParameter.UserName.InvalidChars",
            "The parameter - \"UserName\" contains invalid chars.",
        ));
    }
    Ok(())
}

/// Policy names: 1 to 128 letters, digits, `-`.
fn check_policy_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(length_error("PolicyName"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::new(
            400,
            "InvalidParameter.PolicyName.InvalidChars",
            "The parameter - \"PolicyName\" contains invalid chars.",
        ));
    }
    Ok(())
}

fn system_policy(name: &str) -> Option<(&'static str, &'static str)> {
    SYSTEM_POLICIES
        .iter()
        .find(|(policy, _, _)| *policy == name)
        .map(|(_, description, document)| (*description, *document))
}

// ===== Policy documents =====

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
fn parse_policy(document: &str) -> Result<Vec<Statement>, String> {
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
    statements.iter().map(parse_statement).collect()
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
fn string_list(value: Option<&Value>, element: &str) -> Result<Vec<String>, String> {
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
fn check_condition(condition: &Value) -> Result<(), String> {
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

/// Matches `text` against `pattern`, where `*` stands for any run of characters (none
/// included) and `?` for exactly one.
///
/// Greedy with backtracking to the last `*`: linear in practice, and never worse than
/// quadratic.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands in for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` swallow one more character and retry.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn ram_with_user(user: &str, document: &str) -> Ram {
        let mut ram = Ram::new("root", "secret");
        ram.create_user(user, "", "").unwrap();
        ram.create_policy("p", document, "").unwrap();
        ram.attach_policy(user, PolicyType::Custom, "p").unwrap();
        ram
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("oss:Get*", "oss:GetObject"));
        assert!(!wildcard_match("oss:Get*", "oss:PutObject"));
        assert!(wildcard_match("acs:oss:*:*:b/*", "acs:oss:*:*:b/dir/obj"));
        assert!(!wildcard_match("acs:oss:*:*:b/*", "acs:oss:*:*:bb/obj"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("*a*b", "xxaxxbxxc"));
    }

    #[test]
    fn root_may_do_everything_and_users_what_policies_allow() {
        let ram = ram_with_user(
            "u1",
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["oss:Get*","oss:PutObject"],"Resource":["acs:oss:*:*:bucket/*"]}]}"#,
        );
        assert!(ram.allows(&Principal::Root, "oss:DeleteBucket", "acs:oss:*:*:x"));
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(&user, "oss:GetObject", "acs:oss:*:*:bucket/a/b"));
        assert!(ram.allows(&user, "oss:getobject", "acs:oss:*:*:bucket/a"));
        assert!(ram.allows(&user, "oss:PutObject", "acs:oss:*:*:bucket/a"));
        assert!(!ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/a"));
        assert!(!ram.allows(&user, "oss:GetObject", "acs:oss:*:*:other/a"));
        assert!(!ram.allows(&Principal::User("nobody".to_owned()), "oss:GetObject", "*"));
    }

    #[test]
    fn deny_wins_and_conditions_fail_closed() {
        let ram = ram_with_user(
            "u1",
            r#"{"Version":"1","Statement":[
                {"Effect":"Allow","Action":"oss:*","Resource":"*"},
                {"Effect":"Deny","Action":"oss:DeleteObject","Resource":"acs:oss:*:*:bucket/keep/*"},
                {"Effect":"Allow","Action":"rds:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.1"}}},
                {"Effect":"Deny","Action":"oss:PutObject","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"false"}}}
            ]}"#,
        );
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/tmp/x"));
        assert!(!ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/keep/x"));
        assert!(!ram.allows(&user, "rds:DescribeDBInstances", "*"));
        assert!(!ram.allows(&user, "oss:PutObject", "acs:oss:*:*:bucket/x"));
    }

    #[test]
    fn system_policies_grant() {
        let mut ram = Ram::new("root", "secret");
        ram.create_user("u1", "", "").unwrap();
        ram.attach_policy("u1", PolicyType::System, "AliyunRDSReadOnlyAccess")
            .unwrap();
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(
            &user,
            "rds:DescribeDBInstances",
            "acs:rds:cn-hangzhou:1:dbinstance/x"
        ));
        assert!(!ram.allows(
            &user,
            "rds:DeleteDBInstance",
            "acs:rds:cn-hangzhou:1:dbinstance/x"
        ));
        let err = ram
            .attach_policy("u1", PolicyType::System, "NoSuchPolicy")
            .unwrap_err();
        assert_eq!(err.code, "EntityNotExist.Policy");
    }

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

    #[test]
    fn user_key_policy_lifecycle() {
        let mut ram = Ram::new("root", "secret");
        let root = Principal::Root;
        let call = |ram: &mut Ram, action: &str, pairs: &[(&str, &str)]| {
            handle(ram, action, &params(pairs), &root)
        };
        call(&mut ram, "CreateUser", &[("UserName", "binding-1")]).unwrap();
        let err = call(&mut ram, "CreateUser", &[("UserName", "binding-1")]).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (409, "EntityAlreadyExists.User")
        );
        let err = call(&mut ram, "CreateUser", &[("UserName", "bad name")]).unwrap_err();
        assert_eq!(err.code, "InvalidParameter.UserName.InvalidChars");

        let key = call(&mut ram, "CreateAccessKey", &[("UserName", "binding-1")]).unwrap();
        let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
        let secret = key["AccessKey"]["AccessKeySecret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(key["AccessKey"]["Status"], "Active");
        assert_eq!(
            ram.lookup_key(&key_id),
            Some((Principal::User("binding-1".to_owned()), secret))
        );
        call(&mut ram, "CreateAccessKey", &[("UserName", "binding-1")]).unwrap();
        let err = call(&mut ram, "CreateAccessKey", &[("UserName", "binding-1")]).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (409, "LimitExceeded.User.AccessKey")
        );

        let document = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"oss:*","Resource":"acs:oss:*:*:b/*"}]}"#;
        call(
            &mut ram,
            "CreatePolicy",
            &[
                ("PolicyName", "binding-1-policy"),
                ("PolicyDocument", document),
            ],
        )
        .unwrap();
        let err = call(
            &mut ram,
            "CreatePolicy",
            &[
                ("PolicyName", "binding-1-policy"),
                ("PolicyDocument", document),
            ],
        )
        .unwrap_err();
        assert_eq!(err.code, "EntityAlreadyExists.Policy");
        let attach = [
            ("PolicyType", "Custom"),
            ("PolicyName", "binding-1-policy"),
            ("UserName", "binding-1"),
        ];
        call(&mut ram, "AttachPolicyToUser", &attach).unwrap();
        let err = call(&mut ram, "AttachPolicyToUser", &attach).unwrap_err();
        assert_eq!(err.code, "EntityAlreadyExists.User.Policy");
        let listed = call(
            &mut ram,
            "ListPoliciesForUser",
            &[("UserName", "binding-1")],
        )
        .unwrap();
        assert_eq!(
            listed["Policies"]["Policy"][0]["PolicyName"],
            "binding-1-policy"
        );
        let got = call(
            &mut ram,
            "GetPolicy",
            &[("PolicyType", "Custom"), ("PolicyName", "binding-1-policy")],
        )
        .unwrap();
        assert_eq!(got["DefaultPolicyVersion"]["PolicyDocument"], document);
        assert_eq!(got["Policy"]["AttachmentCount"], 1);

        // Nothing goes while something depends on it.
        let err = call(&mut ram, "DeleteUser", &[("UserName", "binding-1")]).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (409, "DeleteConflict.User.AccessKey")
        );
        let err = call(
            &mut ram,
            "DeletePolicy",
            &[("PolicyName", "binding-1-policy")],
        )
        .unwrap_err();
        assert_eq!(err.code, "DeleteConflict.Policy.User");

        let keys = call(&mut ram, "ListAccessKeys", &[("UserName", "binding-1")]).unwrap();
        for key in keys["AccessKeys"]["AccessKey"].as_array().unwrap() {
            let id = key["AccessKeyId"].as_str().unwrap();
            call(
                &mut ram,
                "DeleteAccessKey",
                &[("UserName", "binding-1"), ("UserAccessKeyId", id)],
            )
            .unwrap();
        }
        assert_eq!(ram.lookup_key(&key_id), None);
        let err = call(
            &mut ram,
            "DeleteAccessKey",
            &[("UserName", "binding-1"), ("UserAccessKeyId", &key_id)],
        )
        .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (404, "EntityNotExist.User.AccessKey")
        );
        let err = call(&mut ram, "DeleteUser", &[("UserName", "binding-1")]).unwrap_err();
        assert_eq!(err.code, "DeleteConflict.User.Policy");
        call(&mut ram, "DetachPolicyFromUser", &attach).unwrap();
        let err = call(&mut ram, "DetachPolicyFromUser", &attach).unwrap_err();
        assert_eq!(err.code, "EntityNotExist.User.Policy");
        call(
            &mut ram,
            "DeletePolicy",
            &[("PolicyName", "binding-1-policy")],
        )
        .unwrap();
        call(&mut ram, "DeleteUser", &[("UserName", "binding-1")]).unwrap();
        let err = call(&mut ram, "GetUser", &[("UserName", "binding-1")]).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code.as_str()),
            (404, "EntityNotExist.User")
        );
        assert_eq!(ram.snapshot(), json!({"users": [], "policies": []}));
    }

    #[test]
    fn a_user_lists_its_own_keys() {
        let mut ram = Ram::new("root", "secret");
        ram.create_user("u1", "", "").unwrap();
        let (id, _) = ram.create_access_key("u1").unwrap();
        let listed = handle(
            &mut ram,
            "ListAccessKeys",
            &Params::default(),
            &Principal::User("u1".to_owned()),
        )
        .unwrap();
        assert_eq!(
            listed["AccessKeys"]["AccessKey"][0]["AccessKeyId"],
            id.as_str()
        );
    }
}
