//! OSS: a bucket per instance, a RAM user per binding whose policy allows that bucket only.
//!
//! - **Provision** creates the bucket, named from the instance id (so a repeat after a crash
//!   finds it: OSS answers `BucketAlreadyExists`, and `GetBucketInfo` succeeding with our key
//!   means it is ours to adopt), with the plan's storage class and ACL.
//! - **Update** applies a plan's ACL; a bucket cannot change its storage class, so a plan
//!   that would is refused (422).
//! - **Bind** makes the binding's RAM user, policy and AccessKey ([`super::ram`]); read-only
//!   plans get read actions only. **Unbind** deletes them.
//! - **Deprovision** does what the plan says about data: `on_deprovision = "refuse"` (the
//!   default) answers synchronously, with 422 and what to do, while objects remain;
//!   `"empty"` deletes the objects a thousand at a time, one batch per engine poll, then the
//!   bucket.

use quick_xml::escape::escape;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{AlibabaClient, OssRequest};
use super::ram::Ram;
use crate::names::cloud_name;
use crate::SettingsError;
use crate::{BindingResult, BrokerError, Completion, OperationRequest, Progress};

/// A bucket's storage class (fixed at creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum StorageClass {
    /// Frequent access.
    #[default]
    Standard,
    /// Infrequent access.
    IA,
    /// Archive.
    Archive,
    /// Cold archive.
    ColdArchive,
}

/// A bucket's ACL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acl {
    /// Only authorized keys read and write.
    #[default]
    Private,
    /// Anyone reads; authorized keys write.
    PublicRead,
}

impl Acl {
    fn header(self) -> &'static str {
        match self {
            Acl::Private => "private",
            Acl::PublicRead => "public-read",
        }
    }
}

/// What deprovision does with objects still in the bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeprovision {
    /// Refuse (422) while objects remain: data is never deleted by the broker.
    #[default]
    Refuse,
    /// Delete every object, then the bucket.
    Empty,
}

/// An OSS plan's `settings` (besides `service = "oss"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssPlan {
    /// The bucket's storage class.
    #[serde(default)]
    pub storage_class: StorageClass,
    /// The bucket's ACL.
    #[serde(default)]
    pub acl: Acl,
    /// Bindings may only read.
    #[serde(default)]
    pub read_only: bool,
    /// What deprovision does with remaining objects.
    #[serde(default)]
    pub on_deprovision: OnDeprovision,
    /// The region buckets of this plan live in (else the provider's).
    #[serde(default)]
    pub region: Option<String>,
}

impl OssPlan {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), SettingsError> {
        self.region
            .as_deref()
            .map_or(Ok(()), super::config::check_region)
    }

    /// Whether `kind` answers only asynchronously: a deprovision that refuses answers at
    /// once, so the platform sees the 422.
    pub fn deprovision_is_async(&self) -> bool {
        self.on_deprovision == OnDeprovision::Empty
    }
}

/// The RAM actions a binding's key gets on its bucket and objects.
fn policy(bucket: &str, read_only: bool) -> Value {
    let mut actions = vec![
        "oss:GetObject",
        "oss:HeadObject",
        "oss:ListObjects",
        "oss:GetBucketInfo",
    ];
    if !read_only {
        actions.extend([
            "oss:PutObject",
            "oss:DeleteObject",
            "oss:AbortMultipartUpload",
            "oss:ListParts",
        ]);
    }
    json!({
        "Version": "1",
        "Statement": [{
            "Effect": "Allow",
            "Action": actions,
            "Resource": [format!("acs:oss:*:*:{bucket}"), format!("acs:oss:*:*:{bucket}/*")],
        }],
    })
}

/// OSS plans take no parameters (the plan sets storage class, ACL and access): whatever a
/// request sends is refused (400) before any bucket is touched, never silently ignored.
pub fn refuse_parameters(parameters: &Value) -> Result<(), BrokerError> {
    match parameters.as_object().and_then(|p| p.keys().next()) {
        Some(name) => Err(BrokerError::InvalidParameters(format!(
            "unknown parameter {name:?} (OSS plans take no parameters; the plan sets the \
             storage class, ACL and access)"
        ))),
        None => Ok(()),
    }
}

/// `ListObjectsV2`'s answer, the parts used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default)]
    contents: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    key: String,
}

/// The OSS product of one account.
#[derive(Debug)]
pub struct AlibabaOss<'a> {
    /// The account's client.
    pub client: &'a AlibabaClient,
    /// The resource name prefix.
    pub name_prefix: &'a str,
}

impl AlibabaOss<'_> {
    fn bucket(&self, request: &OperationRequest) -> String {
        cloud_name(self.name_prefix, &request.instance_id)
    }

    fn state(&self, bucket: &str, class: StorageClass) -> Value {
        json!({
            "service": "oss",
            "bucket": bucket,
            "storage_class": format!("{class:?}"),
            "region": self.client.config().region,
            "endpoint": self.client.config().oss_endpoint,
        })
    }

    /// Creates (or adopts) the bucket.
    pub async fn provision(
        &self,
        request: &OperationRequest,
        plan: &OssPlan,
    ) -> Result<Progress, BrokerError> {
        refuse_parameters(&request.parameters)?;
        let bucket = self.bucket(request);
        let configuration = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <CreateBucketConfiguration><StorageClass>{:?}</StorageClass></CreateBucketConfiguration>",
            plan.storage_class
        );
        let create = OssRequest::new(Method::PUT, Some(&bucket))
            .header("x-oss-acl", plan.acl.header())
            .header("content-type", "application/xml")
            .body(configuration.into_bytes());
        match self.client.oss(create).await {
            Ok(_) => {}
            // OSS answers this for our own bucket too: ours (made by an earlier try) if our
            // key may read its info; else the name belongs to someone else.
            Err(err) if err.code() == Some("BucketAlreadyExists") => {
                let info = OssRequest::new(Method::GET, Some(&bucket)).query("bucketInfo", None);
                if let Err(info_err) = self.client.oss(info).await {
                    log::warn!("bucket {bucket} exists but is not ours: {info_err}");
                    return Err(BrokerError::Failed(format!(
                        "the bucket name {bucket} is taken by another account ({err})"
                    )));
                }
                log::info!("adopting the bucket {bucket} an earlier try created");
            }
            Err(err) => return Err(err.into()),
        }
        Ok(Progress::Done(Completion {
            state: Some(self.state(&bucket, plan.storage_class)),
            ..Completion::default()
        }))
    }

    /// Applies the plan's ACL; refuses a storage class change.
    pub async fn update(
        &self,
        request: &OperationRequest,
        plan: &OssPlan,
    ) -> Result<Progress, BrokerError> {
        refuse_parameters(&request.parameters)?;
        let previous = request.instance_state["storage_class"].as_str();
        let class = format!("{:?}", plan.storage_class);
        if previous.is_some_and(|previous| previous != class) {
            return Err(BrokerError::Unprocessable(format!(
                "a bucket keeps its storage class ({}); this plan's is {class}",
                previous.unwrap_or_default()
            )));
        }
        let bucket = self.bucket(request);
        let acl = OssRequest::new(Method::PUT, Some(&bucket))
            .query("acl", None)
            .header("x-oss-acl", plan.acl.header());
        self.client.oss(acl).await?;
        let state = self.state(&bucket, plan.storage_class);
        Ok(Progress::Done(Completion {
            state: Some(state),
            ..Completion::default()
        }))
    }

    /// Up to 1,000 keys of the bucket.
    async fn list(&self, bucket: &str, max: u32) -> Result<Vec<String>, BrokerError> {
        let max = max.to_string();
        let list = OssRequest::new(Method::GET, Some(bucket))
            .query("list-type", Some("2"))
            .query("max-keys", Some(&max));
        let answer = self.client.oss(list).await?;
        let listing: Listing = quick_xml::de::from_reader(answer.body.as_slice())
            .map_err(|err| BrokerError::Failed(format!("OSS ListObjectsV2 {bucket}: {err}")))?;
        Ok(listing.contents.into_iter().map(|o| o.key).collect())
    }

    /// Deletes the bucket as the plan says: refuses while objects remain, or empties it.
    pub async fn deprovision(
        &self,
        request: &OperationRequest,
        plan: &OssPlan,
    ) -> Result<Progress, BrokerError> {
        let bucket = self.bucket(request);
        let keys = match self.list(&bucket, 1000).await {
            Ok(keys) => keys,
            // Gone already: a repeat after it was deleted (done), or never made (the
            // controller decides, see force_delete_unknown_instances).
            Err(BrokerError::NotFound(what)) if request.reference.is_some() => {
                log::debug!("bucket {bucket} already gone: {what}");
                return Ok(Progress::Done(Completion::default()));
            }
            Err(err) => return Err(err),
        };
        if !keys.is_empty() {
            if plan.on_deprovision == OnDeprovision::Refuse {
                return Err(BrokerError::Unprocessable(format!(
                    "the bucket {bucket} still holds objects and this plan never deletes data \
                     (on_deprovision = \"refuse\"): empty the bucket, then delete the instance \
                     again"
                )));
            }
            let mut body = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>",
            );
            for key in &keys {
                body.push_str(&format!(
                    "<Object><Key>{}</Key></Object>",
                    escape(key.as_str())
                ));
            }
            body.push_str("</Delete>");
            let delete = OssRequest::new(Method::POST, Some(&bucket))
                .query("delete", None)
                .header("content-type", "application/xml")
                .body(body.into_bytes());
            self.client.oss(delete).await?;
            let before = request
                .reference
                .as_ref()
                .and_then(|r| r.get("deleted"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let deleted = before + keys.len() as u64;
            return Ok(Progress::InProgress {
                reference: json!({"step": "emptying", "deleted": deleted}),
                description: Some(format!(
                    "emptying the bucket {bucket}: {deleted} objects deleted so far"
                )),
                state: None,
            });
        }
        match self
            .client
            .oss(OssRequest::new(Method::DELETE, Some(&bucket)))
            .await
        {
            Ok(_) => {}
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err.into()),
        }
        if plan.on_deprovision == OnDeprovision::Refuse && request.reference.is_none() {
            // The controller unbinds only now (see `unbinds_before_deprovision`), then
            // polls, which finds the bucket gone.
            return Ok(Progress::InProgress {
                reference: json!({"step": "deleted"}),
                description: Some(format!("the bucket {bucket} is deleted; revoking bindings")),
                state: None,
            });
        }
        Ok(Progress::Done(Completion::default()))
    }

    /// A RAM user for the binding, allowed on this bucket only.
    pub async fn bind(
        &self,
        request: &OperationRequest,
        plan: &OssPlan,
    ) -> Result<Progress, BrokerError> {
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let bucket = self.bucket(request);
        let user = cloud_name(self.name_prefix, binding_id);
        let description = format!("skybroker binding of bucket {bucket}");
        let ram = Ram {
            client: self.client,
        };
        let key = ram
            .user_with_key(&user, &description, &policy(&bucket, plan.read_only))
            .await?;
        let config = self.client.config();
        let credentials = json!({
            "bucket": bucket,
            "region": config.region,
            "endpoint": config.oss_endpoint,
            "bucket_url": self.client.oss_bucket_url(&bucket),
            "access_key_id": key.id,
            "access_key_secret": key.secret.expose(),
            "read_only": plan.read_only,
        });
        Ok(Progress::Done(Completion {
            state: Some(json!({"ram_user": user})),
            binding: Some(BindingResult {
                credentials: Some(credentials),
                ..BindingResult::default()
            }),
            ..Completion::default()
        }))
    }

    /// Deletes the binding's RAM user, key and policy.
    pub async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = cloud_name(self.name_prefix, binding_id);
        Ram {
            client: self.client,
        }
        .delete_user(&user)
        .await?;
        Ok(Progress::Done(Completion::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_policy_names_its_bucket_only_and_read_only_cannot_write() {
        let rw = policy("skybroker-abc", false);
        let resources = &rw["Statement"][0]["Resource"];
        assert_eq!(
            resources,
            &json!(["acs:oss:*:*:skybroker-abc", "acs:oss:*:*:skybroker-abc/*"])
        );
        let ro = policy("skybroker-abc", true).to_string();
        assert!(ro.contains("oss:GetObject") && !ro.contains("oss:PutObject"));
        assert!(rw.to_string().contains("oss:PutObject"));
    }

    #[test]
    fn plans_parse_with_defaults() {
        let plan: OssPlan = serde_json::from_value(json!({})).unwrap();
        assert_eq!(plan, OssPlan::default());
        assert!(!plan.deprovision_is_async());
        let plan: OssPlan = serde_json::from_value(
            json!({"storage_class": "IA", "acl": "public-read", "on_deprovision": "empty"}),
        )
        .unwrap();
        assert_eq!(plan.storage_class, StorageClass::IA);
        assert!(plan.deprovision_is_async());
        assert!(serde_json::from_value::<OssPlan>(json!({"acl": "public"})).is_err());
        let plan: OssPlan = serde_json::from_value(json!({"region": "cn-shanghai"})).unwrap();
        assert!(plan.check().is_ok());
        let plan: OssPlan = serde_json::from_value(json!({"region": "Shanghai"})).unwrap();
        assert!(plan.check().is_err());
    }
}
