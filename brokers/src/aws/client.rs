//! The SDK clients of one AWS account: S3, IAM and RDS over one HTTP client.
//!
//! Why one place: the SDK's loader resolves the region, credentials (the standard chain, or
//! static keys), endpoint override, retry and timeout configuration once; the three service
//! clients share the result and one connection pool. The HTTP client is hyper with rustls on
//! *ring* (the TLS stack the rest of the workspace already builds), chosen here explicitly so
//! the SDK's default features, and their second crypto library, stay off.
//!
//! An [`Account`] is where calls go and as whom: a region, and the role assumed (if any) on
//! top of the provider's own credentials. The SDK's assume-role provider calls STS (at the
//! same endpoint override as the other services), and the clients' identity cache renews the
//! temporary credentials before they expire, so nothing here schedules a refresh.

use std::time::SystemTime;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::config::{AssumeRole, AwsSettings, KeyFiles};

/// Where calls go and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    /// The region of the resources.
    pub region: String,
    /// The role assumed for the calls, if any.
    pub role: Option<AssumeRole>,
}

impl Account {
    /// The provider's own: its region and role.
    pub fn of(settings: &AwsSettings) -> Account {
        Account {
            region: settings.region.clone(),
            role: settings.assume_role.clone(),
        }
    }
}

/// The SDK behaviour the broker was written and tested against. Pinned, so that a dependency
/// update cannot change defaults (retries, checksums) silently.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// An HTTPS client (hyper, rustls on ring, the platform's trusted roots).
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Loads the SDK configuration for `settings` in `account`: the region, the endpoint
/// override, the credentials (static keys, else the standard chain with `profile` if set;
/// then the account's role assumed with them), the retry and timeout configuration.
pub async fn sdk_config(settings: &AwsSettings, account: &Account) -> SdkConfig {
    let mut loader = aws_config::defaults(behavior_version())
        .region(Region::new(account.region.clone()))
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        );
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(keys) = &settings.static_credentials {
        loader = match &keys.files {
            Some(files) => loader.credentials_provider(RereadKeys {
                files: files.clone(),
                fixed_id: keys.access_key_id.clone(),
            }),
            None => loader.credentials_provider(Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.expose().to_owned(),
                None,
                None,
                "skybroker-provider-config",
            )),
        };
    }
    let base = loader.load().await;
    let Some(role) = &account.role else {
        return base;
    };
    let mut assume = AssumeRoleProvider::builder(role.arn.clone())
        .session_name(settings.role_session_name.clone())
        .session_length(settings.role_session_duration)
        .configure(&base);
    if let Some(external_id) = &role.external_id {
        assume = assume.external_id(external_id.clone());
    }
    let assumed = assume.build().await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(assumed))
        .build()
}

/// Static keys read from their files whenever the SDK asks, which it does again once the
/// credentials it was given expire: they are handed out as lasting `files.reload`, so a key
/// rotated in a mounted secret is used from the next read on, without a restart.
#[derive(Debug)]
struct RereadKeys {
    files: KeyFiles,
    /// The id when there is no id file.
    fixed_id: String,
}

impl RereadKeys {
    fn read(&self) -> Result<Credentials, CredentialsError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|err| {
                CredentialsError::provider_error(format!(
                    "cannot read the key file {}: {err}",
                    path.display()
                ))
            })
        };
        let secret = read(&self.files.secret_access_key)?;
        let id = match &self.files.access_key_id {
            Some(path) => read(path)?.trim().to_owned(),
            None => self.fixed_id.clone(),
        };
        Ok(Credentials::new(
            id,
            secret.trim_end_matches(['\r', '\n']).to_owned(),
            None,
            Some(SystemTime::now() + self.files.reload),
            "skybroker-key-files",
        ))
    }
}

impl ProvideCredentials for RereadKeys {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.read())
    }
}

/// The clients of one account.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3 (path-style addressing when an endpoint override is set, as moto and most S3
    /// look-alikes need).
    pub s3: aws_sdk_s3::Client,
    /// IAM (global; the SDK picks its endpoint from the region's partition).
    pub iam: aws_sdk_iam::Client,
    /// RDS.
    pub rds: aws_sdk_rds::Client,
    /// The region, as written into credentials.
    pub region: String,
    /// The S3 endpoint applications use, as written into credentials.
    pub s3_endpoint: String,
}

impl AwsClients {
    /// The clients of the provider's own account. Nothing is sent to AWS yet: credentials
    /// are resolved on first use.
    pub async fn connect(settings: &AwsSettings) -> AwsClients {
        AwsClients::connect_to(settings, &Account::of(settings)).await
    }

    /// The clients of `account` (a plan's region or role).
    pub async fn connect_to(settings: &AwsSettings, account: &Account) -> AwsClients {
        let sdk = sdk_config(settings, account).await;
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: aws_sdk_iam::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            region: account.region.clone(),
            s3_endpoint: settings
                .endpoint_url
                .clone()
                .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", account.region)),
        }
    }
}
