//! RAM: one user per binding, with one AccessKey and one custom policy of its own.
//!
//! Why a user per binding (D-19): unbinding one application must revoke exactly its key, and
//! a policy per user scopes the key to the one bucket it was made for. The user, its policy
//! and the attachment are named from the binding id, so a bind repeated after a crash adopts
//! what the first try made; only the AccessKey cannot be adopted (its secret is shown once),
//! so a repeat deletes any key the user holds and makes a new one.

use serde::Deserialize;
use serde_json::Value;
use skybroker_config::Secret;

use super::client::{AlibabaClient, Product};
use super::error::AlibabaError;
use crate::BrokerError;

/// RAM calls for binding users.
#[derive(Debug)]
pub struct Ram<'a> {
    /// The account's client.
    pub client: &'a AlibabaClient,
}

/// A new AccessKey: the id, and the secret shown only once.
#[derive(Debug)]
pub struct NewKey {
    /// The AccessKey id.
    pub id: String,
    /// The AccessKey secret (`Debug` prints `******`).
    pub secret: Secret,
}

/// `CreateAccessKey`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedKey {
    access_key: KeyFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyFields {
    access_key_id: String,
    access_key_secret: String,
}

/// `ListAccessKeys`' answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedKeys {
    access_keys: KeyList,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyList {
    #[serde(default)]
    access_key: Vec<ListedKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedKey {
    access_key_id: String,
}

/// An answer's body read as `T`, or a decode failure naming the call.
fn decode<T: serde::de::DeserializeOwned>(action: &str, body: Value) -> Result<T, BrokerError> {
    serde_json::from_value(body)
        .map_err(|err| BrokerError::Failed(format!("RAM {action}: unexpected answer: {err}")))
}

/// Ok for "already exists" (the adopting repeat of a create).
fn adopt(result: Result<Value, AlibabaError>) -> Result<(), BrokerError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.is_already_exists() => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Ok for "not found" (the repeat of a delete).
fn gone(result: Result<Value, AlibabaError>) -> Result<(), BrokerError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err.into()),
    }
}

impl Ram<'_> {
    /// Makes (or adopts) `user` with the custom policy `document` attached, and gives it a
    /// fresh AccessKey (deleting any key an earlier try made).
    pub async fn user_with_key(
        &self,
        user: &str,
        description: &str,
        document: &Value,
    ) -> Result<NewKey, BrokerError> {
        let rpc = |action: &'static str, params: Vec<(&'static str, String)>| async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.client.rpc(Product::Ram, action, &params).await
        };
        adopt(
            rpc(
                "CreateUser",
                vec![("UserName", user.into()), ("Comments", description.into())],
            )
            .await,
        )?;
        adopt(
            rpc(
                "CreatePolicy",
                vec![
                    ("PolicyName", user.into()),
                    ("PolicyDocument", document.to_string()),
                    ("Description", description.into()),
                ],
            )
            .await,
        )?;
        adopt(
            rpc(
                "AttachPolicyToUser",
                vec![
                    ("PolicyType", "Custom".into()),
                    ("PolicyName", user.into()),
                    ("UserName", user.into()),
                ],
            )
            .await,
        )?;
        self.delete_keys(user).await?;
        let created = rpc("CreateAccessKey", vec![("UserName", user.into())]).await?;
        let created: CreatedKey = decode("CreateAccessKey", created)?;
        Ok(NewKey {
            id: created.access_key.access_key_id,
            secret: Secret::new(created.access_key.access_key_secret),
        })
    }

    /// Deletes every AccessKey of `user` (none when the user does not exist).
    async fn delete_keys(&self, user: &str) -> Result<(), BrokerError> {
        let listed = match self
            .client
            .rpc(Product::Ram, "ListAccessKeys", &[("UserName", user)])
            .await
        {
            Ok(listed) => listed,
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let listed: ListedKeys = decode("ListAccessKeys", listed)?;
        for key in listed.access_keys.access_key {
            let params = [("UserName", user), ("UserAccessKeyId", &key.access_key_id)];
            gone(
                self.client
                    .rpc(Product::Ram, "DeleteAccessKey", &params)
                    .await,
            )?;
        }
        Ok(())
    }

    /// Deletes `user` with its keys and its policy; what is gone already is skipped.
    pub async fn delete_user(&self, user: &str) -> Result<(), BrokerError> {
        self.delete_keys(user).await?;
        let detach = [
            ("PolicyType", "Custom"),
            ("PolicyName", user),
            ("UserName", user),
        ];
        gone(
            self.client
                .rpc(Product::Ram, "DetachPolicyFromUser", &detach)
                .await,
        )?;
        gone(
            self.client
                .rpc(Product::Ram, "DeletePolicy", &[("PolicyName", user)])
                .await,
        )?;
        gone(
            self.client
                .rpc(Product::Ram, "DeleteUser", &[("UserName", user)])
                .await,
        )
    }
}
