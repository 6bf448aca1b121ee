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
//! Roles exist for STS (`crate::sts`): `CreateRole` with a trust policy, policies attached
//! to them, and the sessions STS issues, whose temporary keys act with the role's policies.
//!
//! Simplified, and documented here rather than hidden: policy versions (every policy has
//! only `v1`), groups and login profiles do not exist; a statement of an identity policy
//! with a `Condition` is validated but never grants anything and always denies (the fake
//! does not evaluate those conditions, and failing closed keeps a test from passing by
//! accident; trust policies are the exception, see `role`); only a handful of system
//! policies exist ([`SYSTEM_POLICIES`]); actions match case-insensitively and resources
//! case-sensitively. OIDC providers are registered with [`Ram::add_oidc_provider`] (real
//! RAM manages them through another API product).
//!
//! # Layout
//! - here: [`ACCOUNT_ID`], [`ACTIONS`], [`handle`] (the dispatch by action) and
//!   [`resource_of`] (what a RAM call is authorized against);
//! - `user`: [`Principal`], users and their access keys, and their actions;
//! - `policy`: [`PolicyType`], system and custom policies, attachments, and their actions;
//! - `role`: roles, trust policies and OIDC providers, and the role actions;
//! - `session`: the temporary keys STS issues, and checking their tokens;
//! - `document`: the policy document grammar, validated into statements;
//! - `evaluate`: [`Decision`], [`Ram::allows`]/[`Ram::decide`], and [`wildcard_match`];
//! - `state`: [`Ram`], what the account holds;
//! - `error`: the error answers more than one action gives.

use serde_json::Value;

use crate::api::{ApiError, Params};

mod document;
mod error;
mod evaluate;
mod policy;
mod role;
mod session;
mod state;
mod user;

pub use evaluate::{wildcard_match, Decision};
pub use policy::{PolicyType, SYSTEM_POLICIES};
pub use role::{
    oidc_provider_arn, role_arn, Assumable, OidcProvider, Truster, DEFAULT_MAX_SESSION_DURATION,
};
pub use session::{Issued, KeyHolder, SessionPolicy, TokenProblem};
pub use state::Ram;
pub use user::{Principal, MAX_KEYS_PER_USER};

/// The account id the fake pretends to be (it appears in resource names and user ids).
pub const ACCOUNT_ID: &str = "1234567890123456";

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
    "CreateRole",
    "GetRole",
    "DeleteRole",
    "AttachPolicyToRole",
    "DetachPolicyFromRole",
    "ListPoliciesForRole",
];

// ===== The RAM actions =====

/// Answers one RAM action (already authenticated and authorized) for `caller`.
pub fn handle(
    ram: &mut Ram,
    action: &str,
    params: &Params,
    caller: &Principal,
) -> Result<Value, ApiError> {
    match action {
        "CreateUser" => user::create_user(ram, params),
        "GetUser" => user::get_user(ram, params, caller),
        "DeleteUser" => user::delete_user(ram, params),
        "CreateAccessKey" => user::create_access_key(ram, params, caller),
        "ListAccessKeys" => user::list_access_keys(ram, params, caller),
        "DeleteAccessKey" => user::delete_access_key(ram, params, caller),
        "CreatePolicy" => policy::create_policy(ram, params),
        "GetPolicy" => policy::get_policy(ram, params),
        "DeletePolicy" => policy::delete_policy(ram, params),
        "AttachPolicyToUser" => policy::attach_policy_to_user(ram, params),
        "DetachPolicyFromUser" => policy::detach_policy_from_user(ram, params),
        "ListPoliciesForUser" => policy::list_policies_for_user(ram, params),
        "CreateRole" => role::create_role(ram, params),
        "GetRole" => role::get_role(ram, params),
        "DeleteRole" => role::delete_role(ram, params),
        "AttachPolicyToRole" => role::attach_policy_to_role(ram, params),
        "DetachPolicyFromRole" => role::detach_policy_from_role(ram, params),
        "ListPoliciesForRole" => role::list_policies_for_role(ram, params),
        // The endpoint only dispatches names from ACTIONS.
        other => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api is not found, please check your url and method: {other}"),
        )),
    }
}

/// The authorization resource of a RAM call: the user, role or policy it names.
pub fn resource_of(params: &Params) -> String {
    if let Some(user) = params.get("UserName") {
        format!("acs:ram:*:{ACCOUNT_ID}:user/{user}")
    } else if let Some(role) = params.get("RoleName") {
        format!("acs:ram:*:{ACCOUNT_ID}:role/{role}")
    } else if let Some(policy) = params.get("PolicyName") {
        format!("acs:ram:*:{ACCOUNT_ID}:policy/{policy}")
    } else {
        format!("acs:ram:*:{ACCOUNT_ID}:*")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
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
        assert_eq!(
            ram.snapshot(),
            json!({"users": [], "policies": [], "roles": [], "sessions": []})
        );
    }
}
