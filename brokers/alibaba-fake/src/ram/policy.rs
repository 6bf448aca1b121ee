//! Policies: the system policies the fake knows, custom policies made with
//! `CreatePolicy`, their attachment to users, and the actions on them (Create/Get/DeletePolicy,
//! AttachPolicyToUser, DetachPolicyFromUser, ListPoliciesForUser). A policy is not deleted
//! while it is attached.

use serde_json::{json, Value};

use super::document::parse_policy;
use super::error::{length_error, user_not_found};
use super::state::{CustomPolicy, Ram};
use crate::api::{self, ApiError, Params};

/// The longest policy document RAM accepts, in characters.
pub(super) const MAX_POLICY_DOCUMENT: usize = 6144;

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
        "AliyunSTSAssumeRoleAccess",
        "Permission to assume RAM roles through STS.",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
    ),
    (
        "AliyunRAMReadOnlyAccess",
        "Read-only access to Resource Access Management (RAM).",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["ram:Get*","ram:List*"],"Resource":"*"}]}"#,
    ),
];

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
    pub(super) fn parse(value: &str) -> Result<PolicyType, ApiError> {
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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PolicyType::System => "System",
            PolicyType::Custom => "Custom",
        }
    }
}

impl Ram {
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

    pub(super) fn policy_exists(
        &self,
        policy_type: PolicyType,
        name: &str,
    ) -> Result<(), ApiError> {
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

/// `CreatePolicy`.
pub(super) fn create_policy(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("PolicyName")?;
    let document = params.required("PolicyDocument")?;
    let policy = ram.create_policy(
        name,
        document,
        params.get("Description").unwrap_or_default(),
    )?;
    Ok(json!({ "Policy": policy }))
}

/// `GetPolicy`.
pub(super) fn get_policy(ram: &Ram, params: &Params) -> Result<Value, ApiError> {
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

/// `DeletePolicy`.
pub(super) fn delete_policy(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("PolicyName")?;
    ram.policy_exists(PolicyType::Custom, name)?;
    let key = (PolicyType::Custom, name.to_owned());
    if ram
        .users
        .values()
        .any(|user| user.policies.contains_key(&key))
    {
        return Err(ApiError::new(
            409,
            "DeleteConflict.Policy.User",
            "The policy CAN NOT been attached to any user while deleting the policy.",
        ));
    }
    if ram
        .roles
        .values()
        .any(|role| role.policies.contains_key(&key))
    {
        return Err(ApiError::new(
            409,
            "DeleteConflict.Policy.Role",
            "The policy CAN NOT been attached to any role while deleting the policy.",
        ));
    }
    ram.policies.remove(name);
    Ok(json!({}))
}

/// `AttachPolicyToUser`.
pub(super) fn attach_policy_to_user(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let policy_type = PolicyType::parse(params.required("PolicyType")?)?;
    let policy = params.required("PolicyName")?;
    let user = params.required("UserName")?;
    ram.attach_policy(user, policy_type, policy)?;
    Ok(json!({}))
}

/// `DetachPolicyFromUser`.
pub(super) fn detach_policy_from_user(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
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

/// `ListPoliciesForUser`.
pub(super) fn list_policies_for_user(ram: &Ram, params: &Params) -> Result<Value, ApiError> {
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

pub(super) fn system_policy(name: &str) -> Option<(&'static str, &'static str)> {
    SYSTEM_POLICIES
        .iter()
        .find(|(policy, _, _)| *policy == name)
        .map(|(_, description, document)| (*description, *document))
}
