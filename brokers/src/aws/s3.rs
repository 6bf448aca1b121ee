//! S3 buckets (`service = "s3"` plans): a bucket per instance, an IAM user per binding.
//!
//! - **Provision** creates the bucket `<prefix>-<hash of the instance id>` in the provider's
//!   region (an existing bucket of ours is adopted: the call may be a repeat after a crash),
//!   tags it, and applies the plan: versioning, default encryption, public-access block.
//! - **Update** applies the new plan's versioning, encryption and public-access block
//!   (versioning, once enabled, can only be suspended: S3's rule).
//! - **Bind** creates the IAM user `<prefix>-<hash of the binding id>` under the provider's
//!   IAM path, an inline policy allowing that bucket only (read-write or read-only per plan),
//!   and an access key; the credentials carry the bucket, region, endpoint and the key. A
//!   repeated bind replaces the user's keys, since an earlier secret cannot be read back.
//! - **Unbind** deletes the keys, the inline policies and the user.
//! - **Deprovision** deletes the bucket. A bucket that still holds objects is emptied first
//!   (`on_deprovision = "empty"`, in batches across polls, so a large bucket never holds a
//!   worker for long) or the deprovision fails with a description and the data is kept
//!   (`"refuse_if_not_empty"`, the default).

use std::time::{Duration, Instant};

use aws_sdk_s3::error::{BuildError, ProvideErrorMetadata};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::AwsClients;
use super::error::{broker_error, classify, Kind};
use super::{reference_field, AwsSettings};
use crate::names::cloud_name;
use crate::sql::Access;
use crate::SettingsError;
use crate::{BindingResult, BrokerError, Completion, OperationRequest, Progress};

/// Name of the inline policy a binding's user gets.
const POLICY_NAME: &str = "skybroker-bucket-access";
/// How long one deprovision call empties a bucket before it reports progress and lets the
/// worker go (the engine polls again).
const EMPTYING_BUDGET: Duration = Duration::from_secs(20);

/// Default encryption of new objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Encryption {
    /// SSE-S3 (S3-managed keys; the default).
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS with `kms_key_id`, or the account's AWS-managed key.
    #[serde(rename = "aws:kms")]
    Kms,
}

/// What deprovision does with a bucket that still holds objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeprovision {
    /// Fail the deprovision and keep the data (the default).
    #[default]
    RefuseIfNotEmpty,
    /// Delete every object and version, then the bucket.
    Empty,
}

/// A `service = "s3"` plan's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Plan {
    /// Keep every version of every object.
    #[serde(default)]
    pub versioning: bool,
    /// Default encryption.
    #[serde(default)]
    pub encryption: Encryption,
    /// The KMS key for `encryption = "aws:kms"` (else the AWS-managed key).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Block every form of public access (the default).
    #[serde(default = "yes")]
    pub block_public_access: bool,
    /// What bindings may do.
    #[serde(default)]
    pub access: Access,
    /// What deprovision does with objects left in the bucket.
    #[serde(default)]
    pub on_deprovision: OnDeprovision,
}

fn yes() -> bool {
    true
}

impl S3Plan {
    /// Checks what cannot be expressed in types.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.kms_key_id.is_some() && self.encryption != Encryption::Kms {
            return Err(SettingsError::invalid(
                "kms_key_id needs encryption = \"aws:kms\"",
            ));
        }
        Ok(())
    }
}

/// Turns an SDK builder's error (a required field missing: a bug here) into a provider error.
fn built<T>(result: Result<T, BuildError>) -> Result<T, BrokerError> {
    result.map_err(|err| BrokerError::Provider {
        broker: super::BROKER,
        source: Box::new(err),
    })
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The inline policy of a binding's user: this bucket and its objects, nothing else.
pub fn binding_policy(region: &str, bucket: &str, access: Access) -> Value {
    let arn = format!("arn:{}:s3:::{bucket}", partition(region));
    let (bucket_actions, object_actions): (&[&str], &[&str]) = match access {
        Access::ReadWrite => (
            &[
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:ListBucketMultipartUploads",
                "s3:GetBucketLocation",
            ],
            &[
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
        ),
        Access::ReadOnly => (
            &["s3:ListBucket", "s3:GetBucketLocation"],
            &["s3:GetObject", "s3:GetObjectVersion"],
        ),
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Bucket", "Effect": "Allow", "Action": bucket_actions, "Resource": arn},
            {"Sid": "Objects", "Effect": "Allow", "Action": object_actions, "Resource": format!("{arn}/*")},
        ],
    })
}

/// The S3 half of the AWS provider.
#[derive(Debug)]
pub struct AwsS3<'a> {
    /// The provider's settings.
    pub settings: &'a AwsSettings,
    /// The clients of the instance's account.
    pub clients: AwsClients,
}

impl AwsS3<'_> {
    fn bucket(&self, request: &OperationRequest) -> String {
        cloud_name(&self.settings.name_prefix, &request.instance_id)
    }

    fn tags(&self) -> Result<Tagging, BrokerError> {
        let managed = built(
            Tag::builder()
                .key("skybroker:managed")
                .value("true")
                .build(),
        )?;
        built(Tagging::builder().tag_set(managed).build())
    }

    /// Creates (or adopts) the bucket and applies the plan.
    pub async fn provision(
        &self,
        request: &OperationRequest,
        plan: &S3Plan,
    ) -> Result<Progress, BrokerError> {
        let bucket = self.bucket(request);
        let s3 = &self.clients.s3;
        let mut create = s3.create_bucket().bucket(&bucket);
        // us-east-1 is the one region that must not be named as a location constraint.
        if self.clients.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(
                        self.clients.region.as_str(),
                    ))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => log::info!("created S3 bucket {bucket}"),
            // A repeat after a crash: the bucket is ours already.
            Err(err) if classify(&err) == Kind::AlreadyExists => {
                log::info!("adopting S3 bucket {bucket}");
            }
            Err(err) if err.code() == Some("BucketAlreadyExists") => {
                return Err(BrokerError::Failed(format!(
                    "the bucket name {bucket} belongs to another AWS account; give the provider \
                     another name_prefix"
                )))
            }
            Err(err) => return Err(broker_error(&format!("S3 CreateBucket {bucket}"), err)),
        }
        s3.put_bucket_tagging()
            .bucket(&bucket)
            .tagging(self.tags()?)
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 PutBucketTagging {bucket}"), err))?;
        self.configure(&bucket, plan, false).await?;
        Ok(Progress::Done(Completion {
            state: Some(self.state(&bucket, plan.versioning)),
            ..Completion::default()
        }))
    }

    /// The instance state: the bucket, and whether versioning was ever on (then it can only
    /// be suspended, never turned off).
    fn state(&self, bucket: &str, versioned_once: bool) -> Value {
        json!({
            "service": "s3",
            "bucket": bucket,
            "region": self.clients.region,
            "versioned_once": versioned_once,
        })
    }

    /// Applies versioning, encryption and the public-access block of `plan`.
    async fn configure(
        &self,
        bucket: &str,
        plan: &S3Plan,
        was_versioned: bool,
    ) -> Result<(), BrokerError> {
        let s3 = &self.clients.s3;
        if plan.versioning || was_versioned {
            let status = if plan.versioning {
                BucketVersioningStatus::Enabled
            } else {
                BucketVersioningStatus::Suspended
            };
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .map_err(|err| broker_error(&format!("S3 PutBucketVersioning {bucket}"), err))?;
        }
        let algorithm = match plan.encryption {
            Encryption::Aes256 => ServerSideEncryption::Aes256,
            Encryption::Kms => ServerSideEncryption::AwsKms,
        };
        let default = built(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(algorithm)
                .set_kms_master_key_id(plan.kms_key_id.clone())
                .build(),
        )?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .bucket_key_enabled(plan.encryption == Encryption::Kms)
            .build();
        s3.put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(built(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 PutBucketEncryption {bucket}"), err))?;
        let block = plan.block_public_access;
        s3.put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(block)
                    .ignore_public_acls(block)
                    .block_public_policy(block)
                    .restrict_public_buckets(block)
                    .build(),
            )
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 PutPublicAccessBlock {bucket}"), err))?;
        Ok(())
    }

    /// Applies a new plan to the bucket.
    pub async fn update(
        &self,
        request: &OperationRequest,
        plan: &S3Plan,
    ) -> Result<Progress, BrokerError> {
        let bucket = self.bucket(request);
        let versioned_once = request.instance_state["versioned_once"]
            .as_bool()
            .unwrap_or(true);
        self.configure(&bucket, plan, versioned_once).await?;
        Ok(Progress::Done(Completion {
            state: Some(self.state(&bucket, versioned_once || plan.versioning)),
            ..Completion::default()
        }))
    }

    /// Deletes the bucket, emptying it first if the plan says so.
    pub async fn deprovision(
        &self,
        request: &OperationRequest,
        plan: &S3Plan,
    ) -> Result<Progress, BrokerError> {
        let bucket = self.bucket(request);
        let s3 = &self.clients.s3;
        match s3.head_bucket().bucket(&bucket).send().await {
            Ok(_) => {}
            // Deleted by an earlier call of this operation (see below).
            Err(err)
                if classify(&err) == Kind::NotFound
                    && reference_field(request, "step").is_some_and(|s| s == "deleted") =>
            {
                return Ok(Progress::Done(Completion::default()))
            }
            Err(err) if classify(&err) == Kind::NotFound => {
                return Err(BrokerError::NotFound(format!(
                    "the bucket {bucket} does not exist"
                )))
            }
            Err(err) => return Err(broker_error(&format!("S3 HeadBucket {bucket}"), err)),
        }
        match plan.on_deprovision {
            OnDeprovision::RefuseIfNotEmpty => {
                if self.holds_objects(&bucket).await? {
                    return Ok(Progress::Failed {
                        description: format!(
                            "the bucket {bucket} still holds objects and the plan keeps data \
                             (on_deprovision = \"refuse_if_not_empty\"): empty it, then delete \
                             the instance again"
                        ),
                        instance_usable: Some(true),
                        update_repeatable: None,
                    });
                }
            }
            OnDeprovision::Empty => {
                let deleted = self.empty(&bucket).await?;
                if self.holds_objects(&bucket).await? {
                    let done_before = reference_field(request, "deleted")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let total = done_before + deleted;
                    return Ok(Progress::InProgress {
                        reference: json!({"step": "emptying", "deleted": total}),
                        description: Some(format!(
                            "emptying the bucket {bucket}: {total} objects deleted so far"
                        )),
                        state: None,
                    });
                }
            }
        }
        match s3.delete_bucket().bucket(&bucket).send().await {
            Ok(_) => {}
            Err(err) if classify(&err) == Kind::NotFound => {}
            // Written to meanwhile: the next poll looks again.
            Err(err) if err.code() == Some("BucketNotEmpty") => {
                return Err(BrokerError::Transient(format!(
                    "the bucket {bucket} received objects while being deleted"
                )))
            }
            Err(err) => return Err(broker_error(&format!("S3 DeleteBucket {bucket}"), err)),
        }
        log::info!("deleted S3 bucket {bucket}");
        if plan.on_deprovision == OnDeprovision::RefuseIfNotEmpty {
            // The controller revokes the bindings only now (see
            // `Broker::unbinds_before_deprovision`), then polls, which finds the bucket gone.
            return Ok(Progress::InProgress {
                reference: json!({"step": "deleted"}),
                description: Some(format!("the bucket {bucket} is deleted; revoking bindings")),
                state: None,
            });
        }
        Ok(Progress::Done(Completion::default()))
    }

    /// Whether any object version, delete marker or unfinished upload is left.
    async fn holds_objects(&self, bucket: &str) -> Result<bool, BrokerError> {
        let s3 = &self.clients.s3;
        let listed = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1)
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 ListObjectVersions {bucket}"), err))?;
        if !listed.versions().is_empty() || !listed.delete_markers().is_empty() {
            return Ok(true);
        }
        let uploads = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .max_uploads(1)
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 ListMultipartUploads {bucket}"), err))?;
        Ok(!uploads.uploads().is_empty())
    }

    /// Deletes object versions, delete markers and unfinished uploads, 1,000 at a time, for at
    /// most [`EMPTYING_BUDGET`]; returns how many were deleted.
    async fn empty(&self, bucket: &str) -> Result<u64, BrokerError> {
        let s3 = &self.clients.s3;
        let started = Instant::now();
        let mut deleted = 0;
        let uploads = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .map_err(|err| broker_error(&format!("S3 ListMultipartUploads {bucket}"), err))?;
        for upload in uploads.uploads() {
            s3.abort_multipart_upload()
                .bucket(bucket)
                .key(upload.key().unwrap_or_default())
                .upload_id(upload.upload_id().unwrap_or_default())
                .send()
                .await
                .map_err(|err| broker_error(&format!("S3 AbortMultipartUpload {bucket}"), err))?;
        }
        while started.elapsed() < EMPTYING_BUDGET {
            let listed = s3
                .list_object_versions()
                .bucket(bucket)
                .max_keys(1000)
                .send()
                .await
                .map_err(|err| broker_error(&format!("S3 ListObjectVersions {bucket}"), err))?;
            let mut objects = Vec::new();
            let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
            let markers = listed
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id()));
            for (key, version) in versions.chain(markers) {
                let Some(key) = key else { continue };
                objects.push(built(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.map(str::to_owned))
                        .build(),
                )?);
            }
            if objects.is_empty() {
                break;
            }
            let count = objects.len() as u64;
            let result = s3
                .delete_objects()
                .bucket(bucket)
                .delete(built(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build(),
                )?)
                .send()
                .await
                .map_err(|err| broker_error(&format!("S3 DeleteObjects {bucket}"), err))?;
            if let Some(error) = result.errors().first() {
                return Err(BrokerError::Failed(format!(
                    "S3 DeleteObjects {bucket}: {} objects not deleted, e.g. {}: {}",
                    result.errors().len(),
                    error.code().unwrap_or("?"),
                    error.message().unwrap_or("?")
                )));
            }
            deleted += count;
        }
        Ok(deleted)
    }

    /// Creates the binding's IAM user, policy and access key.
    pub async fn bind(
        &self,
        request: &OperationRequest,
        plan: &S3Plan,
    ) -> Result<Progress, BrokerError> {
        let bucket = self.bucket(request);
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = cloud_name(&self.settings.name_prefix, binding_id);
        let iam = &self.clients.iam;
        let tag = built(
            aws_sdk_iam::types::Tag::builder()
                .key("skybroker:managed")
                .value("true")
                .build(),
        )?;
        match iam
            .create_user()
            .user_name(&user)
            .path(&self.settings.iam_path)
            .tags(tag)
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if classify(&err) == Kind::AlreadyExists => {
                log::info!("adopting IAM user {user}");
            }
            Err(err) => return Err(broker_error(&format!("IAM CreateUser {user}"), err)),
        }
        let policy = binding_policy(&self.clients.region, &bucket, plan.access);
        iam.put_user_policy()
            .user_name(&user)
            .policy_name(POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|err| broker_error(&format!("IAM PutUserPolicy {user}"), err))?;
        // A repeat after a crash: the earlier key's secret is lost, so it goes.
        self.delete_keys(&user).await?;
        let created = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .map_err(|err| broker_error(&format!("IAM CreateAccessKey {user}"), err))?;
        let key = created.access_key().ok_or_else(|| {
            BrokerError::Failed(format!("IAM CreateAccessKey {user} returned no key"))
        })?;
        log::info!(
            "bound IAM user {user} to S3 bucket {bucket} ({:?})",
            plan.access
        );
        Ok(Progress::Done(Completion {
            state: Some(json!({ "user": user })),
            binding: Some(BindingResult {
                credentials: Some(json!({
                    "bucket": bucket,
                    "region": self.clients.region,
                    "endpoint": self.clients.s3_endpoint,
                    "access_key_id": key.access_key_id(),
                    "secret_access_key": key.secret_access_key(),
                    "uri": format!("s3://{bucket}"),
                })),
                ..BindingResult::default()
            }),
            ..Completion::default()
        }))
    }

    /// Deletes every access key of `user`; `NotFound` when the user does not exist.
    async fn delete_keys(&self, user: &str) -> Result<(), BrokerError> {
        let iam = &self.clients.iam;
        let keys = iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|err| broker_error(&format!("IAM ListAccessKeys {user}"), err))?;
        for key in keys.access_key_metadata() {
            let Some(id) = key.access_key_id() else {
                continue;
            };
            match iam
                .delete_access_key()
                .user_name(user)
                .access_key_id(id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(err) if classify(&err) == Kind::NotFound => {}
                Err(err) => return Err(broker_error(&format!("IAM DeleteAccessKey {user}"), err)),
            }
        }
        Ok(())
    }

    /// Deletes the binding's keys, policies and user.
    pub async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = cloud_name(&self.settings.name_prefix, binding_id);
        let iam = &self.clients.iam;
        match self.delete_keys(&user).await {
            Err(BrokerError::NotFound(_)) => {
                return Err(BrokerError::NotFound(format!(
                    "the IAM user {user} does not exist"
                )))
            }
            other => other?,
        }
        let policies = iam
            .list_user_policies()
            .user_name(&user)
            .send()
            .await
            .map_err(|err| broker_error(&format!("IAM ListUserPolicies {user}"), err))?;
        for name in policies.policy_names() {
            match iam
                .delete_user_policy()
                .user_name(&user)
                .policy_name(name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(err) if classify(&err) == Kind::NotFound => {}
                Err(err) => return Err(broker_error(&format!("IAM DeleteUserPolicy {user}"), err)),
            }
        }
        match iam.delete_user().user_name(&user).send().await {
            Ok(_) => {}
            Err(err) if classify(&err) == Kind::NotFound => {}
            Err(err) => return Err(broker_error(&format!("IAM DeleteUser {user}"), err)),
        }
        log::info!("deleted IAM user {user}");
        Ok(Progress::Done(Completion::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_policies_name_one_bucket() {
        let policy = binding_policy("eu-west-1", "skybroker-abc", Access::ReadOnly);
        let text = policy.to_string();
        assert!(text.contains("\"arn:aws:s3:::skybroker-abc\""), "{text}");
        assert!(text.contains("\"arn:aws:s3:::skybroker-abc/*\""), "{text}");
        assert!(!text.contains("PutObject"), "read-only: {text}");
        let policy = binding_policy("cn-north-1", "b", Access::ReadWrite).to_string();
        assert!(policy.contains("arn:aws-cn:s3:::b/*") && policy.contains("s3:PutObject"));
    }

    #[test]
    fn plans_parse_with_defaults_and_refuse_unknown_keys() {
        let plan: S3Plan = serde_json::from_value(json!({})).unwrap();
        assert!(plan.block_public_access && !plan.versioning);
        assert_eq!(plan.on_deprovision, OnDeprovision::RefuseIfNotEmpty);
        assert!(serde_json::from_value::<S3Plan>(json!({"versoning": true})).is_err());
        let plan: S3Plan =
            serde_json::from_value(json!({"encryption": "AES256", "kms_key_id": "k"})).unwrap();
        assert!(plan.check().is_err());
    }
}
