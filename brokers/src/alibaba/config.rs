//! The Alibaba Cloud provider's settings: typed, checked once at start, from
//! `[providers.<name>]` or built in code.
//!
//! Why a builder: the configuration file, tests and embedding applications describe an
//! account the same way, and every check (a region is named, the key pair is complete, the
//! name prefix makes valid bucket, user and database names, endpoints are URLs) happens in
//! [`AlibabaBuilder::build`] before anything is sent, so `skybroker check-config` reports it.
//!
//! The AccessKey pair never comes from the file itself: the id is a setting or
//! `ALIBABA_CLOUD_ACCESS_KEY_ID`, the secret comes from `password_env`/`password_file` like
//! every provider secret, else from `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (the variables
//! Alibaba Cloud's own tools read).
//!
//! Where the signing credentials come from (`credential_source`, see [`auth`](super::auth)):
//!
//! | `credential_source` | needs | also takes |
//! |---|---|---|
//! | `access_key` | the AccessKey pair | |
//! | `assume_role` | the AccessKey pair (it only needs `sts:AssumeRole`), `role_arn` | `role_session_name`, `role_session_duration_secs`, `external_id`, `sts_endpoint` |
//! | `oidc` (ACK RRSA) | `role_arn`, `oidc_provider_arn`, `oidc_token_file`, each else from `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`, `ALIBABA_CLOUD_OIDC_TOKEN_FILE` | `role_session_name`, `role_session_duration_secs`, `sts_endpoint` |
//! | `ecs_ram_role` | nothing (the attached role is asked for) | `ecs_ram_role`, `ecs_metadata_endpoint` |
//!
//! An `access_key` whose secret comes from `password_file` (and whose id may come from
//! `access_key_id_file`: a mounted Kubernetes secret holds both) is read again every
//! `key_reload_secs` (60), and at once when Alibaba refuses it, so a rotated key is used
//! without a restart. (The base key of `assume_role` is read at start: it signs one call per
//! session.)
//!
//! Without `credential_source` the settings say it: `oidc_*` means `oidc`, `ecs_ram_role`
//! means `ecs_ram_role`, `role_arn` means `assume_role`, an AccessKey pair means
//! `access_key`, and with none of these the three RRSA variables mean `oidc`. A setting that
//! the source does not use is refused rather than ignored, and so is an AccessKey set in the
//! configuration for a source that uses none (one from the environment is ignored).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use skybroker_config::{ProviderConfig, Secret};

use super::auth::{
    check_ecs_role_name, check_external_id, check_oidc_provider_arn, check_role_arn,
    check_session_duration, check_session_name, CredentialSource, KeyFiles, RoleSession,
    DEFAULT_METADATA_ENDPOINT, DEFAULT_ROLE_SESSION_NAME, DEFAULT_SESSION_DURATION,
    OIDC_PROVIDER_ARN_ENV, OIDC_TOKEN_FILE_ENV, ROLE_ARN_ENV,
};
use super::client::ClientConfig;
use super::credential::AccessKey;
use crate::names::check_cloud_prefix;
use crate::SettingsError;

/// How often an AccessKey from files is read again when `key_reload_secs` is not set.
pub const DEFAULT_KEY_RELOAD: Duration = Duration::from_secs(60);

/// The environment variable Alibaba Cloud's tools read the AccessKey id from.
pub const ACCESS_KEY_ID_ENV: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
/// The environment variable Alibaba Cloud's tools read the AccessKey secret from.
pub const ACCESS_KEY_SECRET_ENV: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";

/// Everything the provider needs to know about its account, checked.
#[derive(Debug, Clone)]
pub struct AlibabaSettings {
    /// The HTTP client's settings: key, region, endpoints, retries, timeouts.
    pub client: ClientConfig,
    /// First part of every resource name (`<prefix>-<hash>`; `<prefix>_<hash>` in databases).
    pub name_prefix: String,
    /// Whether `oss_endpoint` was set (then it serves every region a plan names; else each
    /// region gets Alibaba's `https://oss-<region>.aliyuncs.com`).
    pub oss_endpoint_overridden: bool,
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No region: resources must be created somewhere known.
    #[error("region is required (e.g. region = \"cn-hangzhou\")")]
    MissingRegion,
    /// No key id or no secret, where one is needed.
    #[error(
        "an AccessKey pair is required: access_key_id (or {ACCESS_KEY_ID_ENV}) and its secret \
         from password_env/password_file (or {ACCESS_KEY_SECRET_ENV}); without a key, set \
         credential_source = \"oidc\" (ACK RRSA) or \"ecs_ram_role\""
    )]
    MissingAccessKey,
    /// A setting has a value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a region id such as `cn-hangzhou` (it becomes part of host names and signatures).
pub fn check_region(region: &str) -> Result<(), SettingsError> {
    if crate::names::is_region_id(region) {
        Ok(())
    } else {
        Err(SettingsError::invalid(format!(
            "region {region:?} is not a region id like cn-hangzhou"
        )))
    }
}

/// Where the signing credentials come from (`credential_source`; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A long-lived AccessKey pair.
    AccessKey,
    /// STS AssumeRole with a base AccessKey.
    AssumeRole,
    /// STS AssumeRoleWithOIDC with a token file (ACK RRSA).
    Oidc,
    /// The ECS instance's RAM role.
    EcsRamRole,
}

impl CredentialKind {
    fn name(self) -> &'static str {
        match self {
            CredentialKind::AccessKey => "access_key",
            CredentialKind::AssumeRole => "assume_role",
            CredentialKind::Oidc => "oidc",
            CredentialKind::EcsRamRole => "ecs_ram_role",
        }
    }
}

/// The values of ACK RRSA's environment variables, used by `oidc` where settings lack them.
#[derive(Debug, Default, Clone)]
struct RrsaEnv {
    role_arn: Option<String>,
    provider_arn: Option<String>,
    token_file: Option<PathBuf>,
}

impl RrsaEnv {
    fn complete(&self) -> bool {
        self.role_arn.is_some() && self.provider_arn.is_some() && self.token_file.is_some()
    }
}

/// The keys `[providers.<name>]` accepts for `kind = "alibaba"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    region: Option<String>,
    access_key_id: Option<String>,
    access_key_id_file: Option<PathBuf>,
    key_reload_secs: Option<u64>,
    credential_source: Option<CredentialKind>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    role_session_duration_secs: Option<u64>,
    external_id: Option<String>,
    sts_endpoint: Option<String>,
    oidc_provider_arn: Option<String>,
    oidc_token_file: Option<PathBuf>,
    ecs_ram_role: Option<String>,
    ecs_metadata_endpoint: Option<String>,
    rds_endpoint: Option<String>,
    ram_endpoint: Option<String>,
    oss_endpoint: Option<String>,
    oss_path_style: Option<bool>,
    name_prefix: Option<String>,
    max_attempts: Option<u32>,
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
}

/// Builds [`AlibabaSettings`]: `with_*` for each setting, then [`AlibabaBuilder::build`].
#[derive(Debug, Default, Clone)]
pub struct AlibabaBuilder {
    region: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<Secret>,
    /// Whether the key was configured (settings, password, code) rather than found in the
    /// environment: only a configured key is an error where no key is used.
    access_key_configured: bool,
    /// The files of a rotated key: the id's (else the id is fixed) and the secret's.
    access_key_id_file: Option<PathBuf>,
    access_key_secret_file: Option<PathBuf>,
    key_reload: Option<Duration>,
    credential_kind: Option<CredentialKind>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    role_session_duration: Option<Duration>,
    external_id: Option<String>,
    sts_endpoint: Option<String>,
    oidc_provider_arn: Option<String>,
    oidc_token_file: Option<PathBuf>,
    ecs_ram_role: Option<String>,
    ecs_metadata_endpoint: Option<String>,
    rrsa_env: RrsaEnv,
    rds_endpoint: Option<String>,
    ram_endpoint: Option<String>,
    oss_endpoint: Option<String>,
    oss_path_style: Option<bool>,
    name_prefix: Option<String>,
    max_attempts: Option<u32>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    initial_backoff: Option<Duration>,
}

impl AlibabaBuilder {
    /// An empty builder (a region and a key pair are still required).
    pub fn new() -> Self {
        AlibabaBuilder::default()
    }

    /// The settings of a `[providers.<name>]` section with `kind = "alibaba"`; a key pair
    /// missing there is taken from the environment.
    ///
    /// # Errors
    /// Unknown keys, values of the wrong type.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, SettingsError> {
        AlibabaBuilder::from_config_and_env(config, |name| std::env::var(name).ok())
    }

    /// [`AlibabaBuilder::from_config`] with the environment read through `env`.
    fn from_config_and_env(
        config: &ProviderConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let raw: RawSettings = serde_json::from_value(Value::Object(config.settings.clone()))?;
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        if raw.access_key_id.is_some() && raw.access_key_id_file.is_some() {
            return Err(SettingsError::invalid(
                "access_key_id and access_key_id_file: name one",
            ));
        }
        let access_key_id = match &raw.access_key_id_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| SettingsError::File {
                        setting: "access_key_id_file",
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => raw.access_key_id,
        };
        Ok(AlibabaBuilder {
            region: raw.region,
            access_key_configured: access_key_id.is_some() || config.password.is_some(),
            access_key_id: access_key_id.or_else(|| env(ACCESS_KEY_ID_ENV)),
            access_key_id_file: raw.access_key_id_file,
            access_key_secret_file: config.password_file.clone(),
            key_reload: raw.key_reload_secs.map(Duration::from_secs),
            access_key_secret: config
                .password
                .clone()
                .or_else(|| env(ACCESS_KEY_SECRET_ENV).map(Secret::new)),
            credential_kind: raw.credential_source,
            role_arn: raw.role_arn,
            role_session_name: raw.role_session_name,
            role_session_duration: raw.role_session_duration_secs.map(Duration::from_secs),
            external_id: raw.external_id,
            sts_endpoint: raw.sts_endpoint,
            oidc_provider_arn: raw.oidc_provider_arn,
            oidc_token_file: raw.oidc_token_file,
            ecs_ram_role: raw.ecs_ram_role,
            ecs_metadata_endpoint: raw.ecs_metadata_endpoint,
            rrsa_env: RrsaEnv {
                role_arn: env(ROLE_ARN_ENV),
                provider_arn: env(OIDC_PROVIDER_ARN_ENV),
                token_file: env(OIDC_TOKEN_FILE_ENV).map(PathBuf::from),
            },
            rds_endpoint: raw.rds_endpoint,
            ram_endpoint: raw.ram_endpoint,
            oss_endpoint: raw.oss_endpoint,
            oss_path_style: raw.oss_path_style,
            name_prefix: raw.name_prefix,
            max_attempts: raw.max_attempts,
            connect_timeout: raw.connect_timeout_secs.map(Duration::from_secs),
            request_timeout: raw.request_timeout_secs.map(Duration::from_secs),
            initial_backoff: None,
        })
    }

    /// The region, e.g. `cn-hangzhou`.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The AccessKey pair.
    pub fn with_access_key(mut self, id: impl Into<String>, secret: Secret) -> Self {
        self.access_key_id = Some(id.into());
        self.access_key_secret = Some(secret);
        self.access_key_configured = true;
        self
    }

    /// Where the signing credentials come from (else inferred, see the module docs).
    pub fn with_credential_source(mut self, kind: CredentialKind) -> Self {
        self.credential_kind = Some(kind);
        self
    }

    /// The RAM role to assume (`acs:ram::<account>:role/<name>`): with an AccessKey, the key
    /// signs only the AssumeRole call; with OIDC settings, the role RRSA maps the pod to.
    pub fn with_role_arn(mut self, role_arn: impl Into<String>) -> Self {
        self.role_arn = Some(role_arn.into());
        self
    }

    /// The role session's name (default `skybroker`) and length (default one hour).
    pub fn with_role_session(mut self, name: impl Into<String>, duration: Duration) -> Self {
        self.role_session_name = Some(name.into());
        self.role_session_duration = Some(duration);
        self
    }

    /// The `ExternalId` the role's trust policy requires (AssumeRole only).
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// STS's base URL instead of `https://sts.<region>.aliyuncs.com`.
    pub fn with_sts_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.sts_endpoint = Some(endpoint.into());
        self
    }

    /// OIDC (ACK RRSA): the cluster's OIDC provider in RAM and the service account token's
    /// file; the role comes from [`AlibabaBuilder::with_role_arn`].
    pub fn with_oidc(
        mut self,
        provider_arn: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> Self {
        self.oidc_provider_arn = Some(provider_arn.into());
        self.oidc_token_file = Some(token_file.into());
        self
    }

    /// The ECS instance's RAM role: `Some(name)`, or `None` to ask the metadata service.
    pub fn with_ecs_ram_role(mut self, role_name: Option<String>) -> Self {
        self.credential_kind = Some(CredentialKind::EcsRamRole);
        self.ecs_ram_role = role_name;
        self
    }

    /// The ECS metadata service's base URL instead of `http://100.100.100.200`.
    pub fn with_ecs_metadata_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.ecs_metadata_endpoint = Some(endpoint.into());
        self
    }

    /// Endpoints instead of Alibaba Cloud's public ones (a VPC endpoint, a test double):
    /// RDS and RAM RPC base URLs and the OSS base URL, addressed path-style.
    pub fn with_endpoints(
        mut self,
        rds: impl Into<String>,
        ram: impl Into<String>,
        oss: impl Into<String>,
    ) -> Self {
        self.rds_endpoint = Some(rds.into());
        self.ram_endpoint = Some(ram.into());
        self.oss_endpoint = Some(oss.into());
        self.oss_path_style = Some(true);
        self
    }

    /// The resource name prefix (default `skybroker`).
    pub fn with_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Attempts per call (default 4) and the first pause between them (default 200 ms).
    pub fn with_retries(mut self, attempts: u32, initial_backoff: Duration) -> Self {
        self.max_attempts = Some(attempts);
        self.initial_backoff = Some(initial_backoff);
        self
    }

    /// Checks everything and builds the settings. Nothing is sent to Alibaba Cloud.
    ///
    /// # Errors
    /// A missing region or key pair, an invalid prefix, endpoint or count.
    pub fn build(self) -> Result<AlibabaSettings, BuildError> {
        let region = self.region.clone().ok_or(BuildError::MissingRegion)?;
        check_region(&region).map_err(|err| BuildError::Invalid(err.to_string()))?;
        let source = self.credential_source()?;
        let name_prefix = self.name_prefix.unwrap_or_else(|| "skybroker".to_owned());
        check_cloud_prefix(&name_prefix).map_err(|err| BuildError::Invalid(err.to_string()))?;
        let oss_endpoint_overridden = self.oss_endpoint.is_some();
        let mut client = ClientConfig::with_credentials(source, region);
        for (name, value, slot) in [
            ("rds_endpoint", self.rds_endpoint, &mut client.rds_endpoint),
            ("ram_endpoint", self.ram_endpoint, &mut client.ram_endpoint),
            ("oss_endpoint", self.oss_endpoint, &mut client.oss_endpoint),
            ("sts_endpoint", self.sts_endpoint, &mut client.sts_endpoint),
        ] {
            if let Some(url) = value {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(BuildError::Invalid(format!(
                        "{name} {url:?} must be a URL (https://...)"
                    )));
                }
                *slot = url.trim_end_matches('/').to_owned();
            }
        }
        if let Some(path_style) = self.oss_path_style {
            client.oss_path_style = path_style;
        }
        if let Some(attempts) = self.max_attempts {
            if attempts == 0 {
                return Err(BuildError::Invalid(
                    "max_attempts must be at least 1".into(),
                ));
            }
            client.max_attempts = attempts;
        }
        if let Some(timeout) = self.connect_timeout {
            client.connect_timeout = timeout;
        }
        if let Some(timeout) = self.request_timeout {
            client.request_timeout = timeout;
        }
        if let Some(backoff) = self.initial_backoff {
            client.initial_backoff = backoff;
        }
        Ok(AlibabaSettings {
            client,
            name_prefix,
            oss_endpoint_overridden,
        })
    }

    /// Which source the settings ask for (see the module docs).
    fn credential_kind(&self) -> Result<CredentialKind, BuildError> {
        let has_key = self.access_key_id.is_some() && self.access_key_secret.is_some();
        Ok(match self.credential_kind {
            Some(kind) => kind,
            None if self.oidc_provider_arn.is_some() || self.oidc_token_file.is_some() => {
                CredentialKind::Oidc
            }
            None if self.ecs_ram_role.is_some() || self.ecs_metadata_endpoint.is_some() => {
                CredentialKind::EcsRamRole
            }
            None if self.role_arn.is_some() => CredentialKind::AssumeRole,
            None if has_key => CredentialKind::AccessKey,
            None if self.rrsa_env.complete() => CredentialKind::Oidc,
            None => return Err(BuildError::MissingAccessKey),
        })
    }

    /// The credential source, checked: what it needs is there and valid, and nothing it
    /// does not use is set.
    fn credential_source(&self) -> Result<CredentialSource, BuildError> {
        use CredentialKind::{AccessKey as Key, AssumeRole, EcsRamRole, Oidc};
        let kind = self.credential_kind()?;
        let invalid = |message: String| Err(BuildError::Invalid(message));
        // Each setting and the sources that use it.
        let settings: [(&str, bool, &[CredentialKind]); 11] = [
            (
                "access_key_id_file",
                self.access_key_id_file.is_some(),
                &[Key],
            ),
            ("key_reload_secs", self.key_reload.is_some(), &[Key]),
            ("role_arn", self.role_arn.is_some(), &[AssumeRole, Oidc]),
            (
                "role_session_name",
                self.role_session_name.is_some(),
                &[AssumeRole, Oidc],
            ),
            (
                "role_session_duration_secs",
                self.role_session_duration.is_some(),
                &[AssumeRole, Oidc],
            ),
            ("external_id", self.external_id.is_some(), &[AssumeRole]),
            (
                "sts_endpoint",
                self.sts_endpoint.is_some(),
                &[AssumeRole, Oidc],
            ),
            (
                "oidc_provider_arn",
                self.oidc_provider_arn.is_some(),
                &[Oidc],
            ),
            ("oidc_token_file", self.oidc_token_file.is_some(), &[Oidc]),
            ("ecs_ram_role", self.ecs_ram_role.is_some(), &[EcsRamRole]),
            (
                "ecs_metadata_endpoint",
                self.ecs_metadata_endpoint.is_some(),
                &[EcsRamRole],
            ),
        ];
        for (setting, set, used_by) in settings {
            if set && !used_by.contains(&kind) {
                let used_by: Vec<String> = used_by
                    .iter()
                    .map(|kind| format!("\"{}\"", kind.name()))
                    .collect();
                return invalid(format!(
                    "{setting} is not used with credential_source = \"{}\" (only with {})",
                    kind.name(),
                    used_by.join(" or ")
                ));
            }
        }
        let key = match (&self.access_key_id, &self.access_key_secret) {
            (Some(id), Some(secret)) => Some(AccessKey {
                id: id.clone(),
                secret: secret.clone(),
            }),
            _ => None,
        };
        if matches!(kind, Oidc | EcsRamRole) && self.access_key_configured {
            return invalid(format!(
                "credential_source = \"{}\" signs without an AccessKey: remove access_key_id \
                 and the password setting",
                kind.name()
            ));
        }
        let role = |role_arn: Option<&String>| -> Result<RoleSession, BuildError> {
            let role_arn = role_arn.ok_or_else(|| {
                BuildError::Invalid(format!(
                    "credential_source = \"{}\" needs role_arn{}",
                    kind.name(),
                    if kind == Oidc {
                        format!(" (or {ROLE_ARN_ENV})")
                    } else {
                        String::new()
                    }
                ))
            })?;
            check_role_arn(role_arn).map_err(BuildError::Invalid)?;
            let session_name = self
                .role_session_name
                .clone()
                .unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_owned());
            check_session_name(&session_name).map_err(BuildError::Invalid)?;
            let duration = self
                .role_session_duration
                .unwrap_or(DEFAULT_SESSION_DURATION);
            check_session_duration(duration).map_err(BuildError::Invalid)?;
            Ok(RoleSession {
                role_arn: role_arn.clone(),
                session_name,
                duration,
            })
        };
        match kind {
            Key => {
                let key = key.ok_or(BuildError::MissingAccessKey)?;
                let reload = self.key_reload.unwrap_or(DEFAULT_KEY_RELOAD);
                if reload.is_zero() {
                    return invalid("key_reload_secs must be at least 1".to_owned());
                }
                match &self.access_key_secret_file {
                    Some(secret_file) => Ok(CredentialSource::AccessKeyFiles(KeyFiles {
                        id_file: self.access_key_id_file.clone(),
                        id: key.id,
                        secret_file: secret_file.clone(),
                        reload,
                    })),
                    None if self.access_key_id_file.is_some() => invalid(
                        "access_key_id_file needs the secret from password_file: a rotated key \
                         changes both"
                            .to_owned(),
                    ),
                    None => Ok(CredentialSource::AccessKey(key)),
                }
            }
            AssumeRole => {
                let base = key.ok_or(BuildError::MissingAccessKey)?;
                if let Some(external_id) = &self.external_id {
                    check_external_id(external_id).map_err(BuildError::Invalid)?;
                }
                Ok(CredentialSource::AssumeRole {
                    base,
                    role: role(self.role_arn.as_ref())?,
                    external_id: self.external_id.clone(),
                })
            }
            Oidc => {
                let role = role(self.role_arn.as_ref().or(self.rrsa_env.role_arn.as_ref()))?;
                let Some(provider_arn) = self
                    .oidc_provider_arn
                    .as_ref()
                    .or(self.rrsa_env.provider_arn.as_ref())
                else {
                    return invalid(format!(
                        "credential_source = \"oidc\" needs oidc_provider_arn (or {OIDC_PROVIDER_ARN_ENV})"
                    ));
                };
                check_oidc_provider_arn(provider_arn).map_err(BuildError::Invalid)?;
                let Some(token_file) = self
                    .oidc_token_file
                    .as_ref()
                    .or(self.rrsa_env.token_file.as_ref())
                else {
                    return invalid(format!(
                        "credential_source = \"oidc\" needs oidc_token_file (or {OIDC_TOKEN_FILE_ENV})"
                    ));
                };
                Ok(CredentialSource::Oidc {
                    role,
                    provider_arn: provider_arn.clone(),
                    token_file: token_file.clone(),
                })
            }
            EcsRamRole => {
                if let Some(role_name) = &self.ecs_ram_role {
                    check_ecs_role_name(role_name).map_err(BuildError::Invalid)?;
                }
                let metadata_endpoint = match &self.ecs_metadata_endpoint {
                    Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                        return invalid(format!(
                            "ecs_metadata_endpoint {url:?} must be a URL (http://...)"
                        ));
                    }
                    Some(url) => url.trim_end_matches('/').to_owned(),
                    None => DEFAULT_METADATA_ENDPOINT.to_owned(),
                };
                Ok(CredentialSource::EcsRamRole {
                    role_name: self.ecs_ram_role.clone(),
                    metadata_endpoint,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(settings: Value, secret: Option<&str>) -> ProviderConfig {
        let mut config: ProviderConfig = serde_json::from_value(settings).unwrap();
        config.password = secret.map(Secret::new);
        config
    }

    #[test]
    fn a_config_section_builds_with_its_endpoints() {
        let config = provider(
            serde_json::json!({"kind": "alibaba", "region": "cn-shanghai",
                "access_key_id": "LTAI5tExample", "oss_endpoint": "http://127.0.0.1:9/",
                "oss_path_style": true, "max_attempts": 2}),
            Some("s3cr3t"),
        );
        let settings = AlibabaBuilder::from_config(&config)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(settings.client.region, "cn-shanghai");
        assert_eq!(settings.client.oss_endpoint, "http://127.0.0.1:9");
        assert!(settings.client.oss_path_style);
        assert_eq!(settings.client.max_attempts, 2);
        assert_eq!(settings.name_prefix, "skybroker");
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }

    #[test]
    fn what_cannot_work_is_refused_before_any_call() {
        let key = |b: AlibabaBuilder| b.with_access_key("LTAI5tExample", Secret::new("x"));
        assert_eq!(
            key(AlibabaBuilder::new()).build().unwrap_err(),
            BuildError::MissingRegion
        );
        assert_eq!(
            AlibabaBuilder::new()
                .with_region("cn-hangzhou")
                .build()
                .unwrap_err(),
            BuildError::MissingAccessKey
        );
        for builder in [
            key(AlibabaBuilder::new().with_region("CN Hangzhou")),
            key(AlibabaBuilder::new().with_region("cn-hangzhou")).with_name_prefix("Bad_Prefix"),
            key(AlibabaBuilder::new().with_region("cn-hangzhou"))
                .with_endpoints("rds", "ram", "oss"),
            key(AlibabaBuilder::new().with_region("cn-hangzhou")).with_retries(0, Duration::ZERO),
        ] {
            assert!(matches!(builder.build(), Err(BuildError::Invalid(_))));
        }
        let unknown = provider(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou", "secret": "x"}),
            None,
        );
        assert!(AlibabaBuilder::from_config(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }

    const ROLE: &str = "acs:ram::1234567890123456:role/skybroker-provisioner";
    const OIDC_PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1";

    /// The builder of a config section, with `env` as the whole environment.
    fn from_env(
        settings: serde_json::Value,
        secret: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<AlibabaSettings, String> {
        let config = provider(settings, secret);
        let builder = AlibabaBuilder::from_config_and_env(&config, |name| {
            env.iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .map_err(|err| err.to_string())?;
        builder.build().map_err(|err| err.to_string())
    }

    #[test]
    fn assume_role_with_defaults_and_settings() {
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-shanghai",
                "access_key_id": "LTAI5tBase", "role_arn": ROLE}),
            Some("base-secret"),
            &[],
        )
        .unwrap();
        let client = &settings.client;
        assert_eq!(client.sts_endpoint, "https://sts.cn-shanghai.aliyuncs.com");
        match &client.credentials {
            CredentialSource::AssumeRole {
                base,
                role,
                external_id,
            } => {
                assert_eq!(base.id, "LTAI5tBase");
                assert_eq!(role.role_arn, ROLE);
                assert_eq!(role.session_name, "skybroker");
                assert_eq!(role.duration, Duration::from_secs(3600));
                assert_eq!(*external_id, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{settings:?}").contains("base-secret"));

        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-shanghai",
                "credential_source": "assume_role", "role_arn": ROLE,
                "role_session_name": "broker@prod", "role_session_duration_secs": 900,
                "external_id": "abcd-1234", "sts_endpoint": "http://127.0.0.1:9/"}),
            None,
            &[
                (ACCESS_KEY_ID_ENV, "LTAI5tEnv"),
                (ACCESS_KEY_SECRET_ENV, "env-secret"),
            ],
        )
        .unwrap();
        assert_eq!(settings.client.sts_endpoint, "http://127.0.0.1:9");
        match &settings.client.credentials {
            CredentialSource::AssumeRole {
                base,
                role,
                external_id,
            } => {
                assert_eq!(base.id, "LTAI5tEnv");
                assert_eq!(role.session_name, "broker@prod");
                assert_eq!(role.duration, Duration::from_secs(900));
                assert_eq!(external_id.as_deref(), Some("abcd-1234"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oidc_from_settings_or_from_rrsa_variables() {
        let rrsa = [
            (ROLE_ARN_ENV, ROLE),
            (OIDC_PROVIDER_ARN_ENV, OIDC_PROVIDER),
            (
                OIDC_TOKEN_FILE_ENV,
                "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
            ),
        ];
        // Nothing but the region: RRSA's variables say it all.
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou"}),
            None,
            &rrsa,
        )
        .unwrap();
        match &settings.client.credentials {
            CredentialSource::Oidc {
                role,
                provider_arn,
                token_file,
            } => {
                assert_eq!(role.role_arn, ROLE);
                assert_eq!(provider_arn, OIDC_PROVIDER);
                assert!(token_file.ends_with("rrsa-tokens/token"));
            }
            other => panic!("{other:?}"),
        }
        // An AccessKey in the environment wins over RRSA's variables, as in Alibaba's tools.
        let mut with_key = rrsa.to_vec();
        with_key.extend([
            (ACCESS_KEY_ID_ENV, "LTAI5tEnv"),
            (ACCESS_KEY_SECRET_ENV, "s"),
        ]);
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou"}),
            None,
            &with_key,
        )
        .unwrap();
        assert_eq!(settings.client.credentials.name(), "access_key");
        // Settings win over the variables, and the key of the environment is ignored.
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou",
                "oidc_provider_arn": OIDC_PROVIDER, "oidc_token_file": "/tmp/token",
                "role_arn": "acs:ram::1234567890123456:role/other"}),
            None,
            &with_key,
        )
        .unwrap();
        match &settings.client.credentials {
            CredentialSource::Oidc {
                role, token_file, ..
            } => {
                assert!(role.role_arn.ends_with("role/other"));
                assert_eq!(token_file, &PathBuf::from("/tmp/token"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ecs_ram_role_named_or_discovered() {
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou",
                "credential_source": "ecs_ram_role"}),
            None,
            &[],
        )
        .unwrap();
        match &settings.client.credentials {
            CredentialSource::EcsRamRole {
                role_name,
                metadata_endpoint,
            } => {
                assert_eq!(*role_name, None);
                assert_eq!(metadata_endpoint, "http://100.100.100.200");
            }
            other => panic!("{other:?}"),
        }
        let settings = from_env(
            serde_json::json!({"kind": "alibaba", "region": "cn-hangzhou",
                "ecs_ram_role": "BrokerRole", "ecs_metadata_endpoint": "http://127.0.0.1:9/"}),
            None,
            &[],
        )
        .unwrap();
        match &settings.client.credentials {
            CredentialSource::EcsRamRole {
                role_name,
                metadata_endpoint,
            } => {
                assert_eq!(role_name.as_deref(), Some("BrokerRole"));
                assert_eq!(metadata_endpoint, "http://127.0.0.1:9");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn credential_settings_that_cannot_work_are_refused() {
        let key = (Some("secret"), "LTAI5tBase");
        for (settings, secret, needle) in [
            // Formats.
            (
                serde_json::json!({"role_arn": "acs:ram::123:user/alice"}),
                key.0,
                "not a RAM role ARN",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "role_session_name": "a"}),
                key.0,
                "role_session_name",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "role_session_name": "with space"}),
                key.0,
                "role_session_name",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "role_session_duration_secs": 600}),
                key.0,
                "between 900 and 43200",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "role_session_duration_secs": 86400}),
                key.0,
                "between 900 and 43200",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "external_id": "x"}),
                key.0,
                "external_id",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "sts_endpoint": "sts.aliyuncs.com"}),
                key.0,
                "must be a URL",
            ),
            (
                serde_json::json!({"oidc_provider_arn": "acs:ram::1:role/x",
                    "oidc_token_file": "/t", "role_arn": ROLE}),
                None,
                "not a RAM oidc-provider ARN",
            ),
            (
                serde_json::json!({"ecs_ram_role": "../admin"}),
                None,
                "not a RAM role name",
            ),
            // Combinations.
            (
                serde_json::json!({"credential_source": "assume_role"}),
                key.0,
                "needs role_arn",
            ),
            (
                serde_json::json!({"credential_source": "assume_role", "role_arn": ROLE}),
                None,
                "AccessKey pair is required",
            ),
            (
                serde_json::json!({"credential_source": "access_key", "role_arn": ROLE}),
                key.0,
                "role_arn is not used with credential_source = \"access_key\"",
            ),
            (
                serde_json::json!({"role_session_name": "broker"}),
                key.0,
                "role_session_name is not used with credential_source = \"access_key\"",
            ),
            (
                serde_json::json!({"oidc_provider_arn": OIDC_PROVIDER, "oidc_token_file": "/t",
                    "role_arn": ROLE, "external_id": "abcd"}),
                None,
                "external_id is not used with credential_source = \"oidc\"",
            ),
            (
                serde_json::json!({"oidc_provider_arn": OIDC_PROVIDER, "role_arn": ROLE}),
                None,
                "needs oidc_token_file",
            ),
            (
                serde_json::json!({"oidc_provider_arn": OIDC_PROVIDER, "oidc_token_file": "/t"}),
                None,
                "needs role_arn (or ALIBABA_CLOUD_ROLE_ARN)",
            ),
            (
                serde_json::json!({"oidc_provider_arn": OIDC_PROVIDER, "oidc_token_file": "/t",
                    "role_arn": ROLE}),
                key.0,
                "signs without an AccessKey",
            ),
            (
                serde_json::json!({"credential_source": "ecs_ram_role", "role_arn": ROLE}),
                None,
                "role_arn is not used with credential_source = \"ecs_ram_role\"",
            ),
            (
                serde_json::json!({"ecs_ram_role": "BrokerRole", "oidc_token_file": "/t"}),
                None,
                "ecs_ram_role is not used with credential_source = \"oidc\"",
            ),
            (
                serde_json::json!({"credential_source": "sts"}),
                key.0,
                "unknown variant",
            ),
            (
                serde_json::json!({"role_arn": ROLE, "key_reload_secs": 5}),
                key.0,
                "key_reload_secs is not used with credential_source = \"assume_role\"",
            ),
        ] {
            let mut settings = settings;
            settings["kind"] = "alibaba".into();
            settings["region"] = "cn-hangzhou".into();
            if secret.is_some() {
                settings["access_key_id"] = key.1.into();
            }
            let err = from_env(settings.clone(), secret, &[]).unwrap_err();
            assert!(err.contains(needle), "{settings}: {err}");
        }
    }
}
