//! Users and their access keys: who signed a call ([`Principal`], found by its key), the
//! user and key the broker makes per binding, and the actions on them (Create/Get/DeleteUser,
//! Create/List/DeleteAccessKey). A user has at most [`MAX_KEYS_PER_USER`] keys and is not
//! deleted while it has a key or an attached policy.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::{length_error, user_not_found};
use super::state::{AccessKey, Ram, User};
use crate::api::{self, ApiError, Params};

/// How many access keys a RAM user may have.
pub const MAX_KEYS_PER_USER: usize = 2;

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account itself (its own AccessKey): allowed everything.
    Root,
    /// A RAM user, by name: allowed what its attached policies allow.
    User(String),
    /// A session of a RAM role (a temporary `STS.…` key): allowed what the role's attached
    /// policies allow, narrowed by the session policy.
    AssumedRole {
        /// The role's name.
        role: String,
        /// The session's name.
        session: String,
        /// The session's temporary key.
        access_key_id: String,
    },
}

impl Principal {
    /// The principal's ARN, as trust policies and `GetCallerIdentity` name it.
    pub fn arn(&self) -> String {
        let account = super::ACCOUNT_ID;
        match self {
            Principal::Root => format!("acs:ram::{account}:root"),
            Principal::User(name) => format!("acs:ram::{account}:user/{name}"),
            Principal::AssumedRole { role, session, .. } => {
                format!("acs:ram::{account}:assumed-role/{role}/{session}")
            }
        }
    }
}

impl Ram {
    /// The principal an access key belongs to and its secret (the root key included);
    /// `None` for unknown or deleted keys.
    pub fn lookup_key(&self, access_key_id: &str) -> Option<(Principal, String)> {
        if access_key_id == self.root_key_id {
            return Some((Principal::Root, self.root_secret.clone()));
        }
        let key = self.keys.get(access_key_id)?;
        Some((Principal::User(key.user.clone()), key.secret.clone()))
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

    /// The numeric id of user `name`, if it exists.
    pub fn user_id(&self, name: &str) -> Option<String> {
        self.users.get(name).map(|user| user.user_id.clone())
    }

    pub(super) fn user(&self, name: &str) -> Result<&User, ApiError> {
        check_user_name(name)?;
        self.users.get(name).ok_or_else(user_not_found)
    }
}

/// `CreateUser`.
pub(super) fn create_user(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
    let name = params.required("UserName")?;
    let user = ram.create_user(
        name,
        params.get("DisplayName").unwrap_or_default(),
        params.get("Comments").unwrap_or_default(),
    )?;
    Ok(json!({ "User": user }))
}

/// `GetUser`.
pub(super) fn get_user(ram: &Ram, params: &Params, caller: &Principal) -> Result<Value, ApiError> {
    let name = user_param(params, caller)?;
    let user = ram.user(&name)?;
    let mut answer = user_json(user);
    answer["UpdateDate"] = json!(user.create_date);
    Ok(json!({ "User": answer }))
}

/// `DeleteUser`.
pub(super) fn delete_user(ram: &mut Ram, params: &Params) -> Result<Value, ApiError> {
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

/// `CreateAccessKey`.
pub(super) fn create_access_key(
    ram: &mut Ram,
    params: &Params,
    caller: &Principal,
) -> Result<Value, ApiError> {
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

/// `ListAccessKeys`.
pub(super) fn list_access_keys(
    ram: &Ram,
    params: &Params,
    caller: &Principal,
) -> Result<Value, ApiError> {
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

/// `DeleteAccessKey`.
pub(super) fn delete_access_key(
    ram: &mut Ram,
    params: &Params,
    caller: &Principal,
) -> Result<Value, ApiError> {
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

/// `UserName`, or for a RAM user calling about itself, its own name.
fn user_param(params: &Params, caller: &Principal) -> Result<String, ApiError> {
    match (params.get("UserName"), caller) {
        (Some(name), _) => Ok(name.to_owned()),
        (None, Principal::User(name)) => Ok(name.clone()),
        // The root account's own keys are not managed through this fake, and a role
        // session has no keys of its own.
        (None, Principal::Root | Principal::AssumedRole { .. }) => {
            Err(ApiError::missing("UserName"))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ram::handle;

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
