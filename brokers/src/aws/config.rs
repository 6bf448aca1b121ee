//! The AWS provider's settings: typed, checked once at start, from `[providers.<name>]` or
//! built in code.
//!
//! Why a builder: the configuration file, tests and embedding applications all describe an
//! AWS account the same way, and every check (a region is named, the name prefix makes valid
//! bucket names, a secret has its key id) happens in [`AwsBuilder::build`] before anything
//! talks to AWS, so `skybroker check-config` reports it.
//!
//! Credentials are deliberately *not* settings: without `access_key_id`, the SDK's standard
//! chain finds them (environment `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the shared
//! profile files, web identity / IRSA on Kubernetes through `AWS_WEB_IDENTITY_TOKEN_FILE` and
//! `AWS_ROLE_ARN`, ECS and EC2 instance roles). Static keys are an option for a second account;
//! their secret comes from `password_env`/`password_file` like every provider secret, never
//! from the file itself. From `password_file` (and the id from `access_key_id_file`: a mounted
//! Kubernetes secret holds both), the keys are read again every `key_reload_secs`, so a
//! rotated key takes effect without a restart.
//!
//! On top of whichever of those, `role_arn` makes the broker *assume* a role (STS
//! AssumeRole, with `external_id` and `role_session_name`) and act as it: the usual way to let
//! one broker serve several accounts, each trusting the broker's own identity. A plan may
//! name a role (and a region) of its own; see [`AssumeRole`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use skybroker_config::{ProviderConfig, Secret};

use crate::names::check_cloud_prefix;
use crate::sql::TlsMode;
use crate::SettingsError;

/// Everything the AWS provider needs to know about its account, checked.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The region every resource is created in, e.g. `eu-west-1`.
    pub region: String,
    /// A named profile of the shared configuration files (else the chain's default).
    pub profile: Option<String>,
    /// One endpoint for every service instead of AWS's (moto, LocalStack, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// Static keys, when not taken from the standard chain.
    pub static_credentials: Option<StaticCredentials>,
    /// The role every call is made as (plans may name their own), if any.
    pub assume_role: Option<AssumeRole>,
    /// The session name of every assumed role: it appears in the account's CloudTrail as
    /// `assumed-role/<role>/<session name>`.
    pub role_session_name: String,
    /// How long assumed-role credentials last; the SDK renews them before they expire.
    pub role_session_duration: Duration,
    /// First part of every resource name (`<prefix>-<hash>`); the IAM policy matches it.
    pub name_prefix: String,
    /// IAM path of the users bindings create, e.g. `/skybroker/`.
    pub iam_path: String,
    /// Attempts per AWS call, the first included (the SDK's standard retry mode: exponential
    /// back-off with jitter on throttling, timeouts and 5xx).
    pub max_attempts: u32,
    /// How long connecting to AWS (and to a database instance) may take.
    pub connect_timeout: Duration,
    /// How long one AWS call may take, retries included.
    pub operation_timeout: Duration,
    /// Transport security of the broker's connections to RDS instances (bind, unbind).
    pub database_tls: TlsMode,
    /// PEM of the CA RDS certificates are checked against (`database_tls = "verify_full"`;
    /// the RDS global bundle).
    pub database_ca_pem: Option<Vec<u8>>,
    /// **Tests only**: connect to this `host:port` instead of every RDS instance's endpoint,
    /// and hand it out in credentials (a local database server standing in for the instance).
    pub database_endpoint_override: Option<(String, u16)>,
}

/// An access key given explicitly.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key (`Debug` prints `******`).
    pub secret_access_key: Secret,
    /// The files both were read from, read again as they may be rotated.
    pub files: Option<KeyFiles>,
}

/// Where a rotated access key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The file of the key id (else the id is fixed: `access_key_id`).
    pub access_key_id: Option<std::path::PathBuf>,
    /// The file of the secret (`password_file`).
    pub secret_access_key: std::path::PathBuf,
    /// How often they are read again.
    pub reload: Duration,
}

/// The key id in `path` (surrounding white space dropped).
fn read_key_id(path: &std::path::Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|source| SettingsError::File {
            setting: "access_key_id_file",
            path: path.to_owned(),
            source,
        })
}

/// Checks a region name such as `eu-west-1` (it becomes part of host names and signatures).
pub fn check_region(region: &str) -> Result<(), BuildError> {
    if crate::names::is_region_id(region) {
        Ok(())
    } else {
        Err(BuildError::Invalid(format!(
            "region {region:?} is not a region name"
        )))
    }
}

/// A role to act as, assumed with the provider's own credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    /// `arn:aws:iam::<account>:role/<name>`.
    pub arn: String,
    /// The external id the role's trust policy asks for (`sts:ExternalId`), if it does. Not a
    /// secret by AWS's design, but it is not logged either.
    pub external_id: Option<String>,
}

impl AssumeRole {
    /// A role, checked: the ARN names an IAM role; the external id has the length and
    /// characters STS accepts.
    pub fn new(arn: impl Into<String>, external_id: Option<String>) -> Result<Self, BuildError> {
        let arn = arn.into();
        let role = arn
            .strip_prefix("arn:")
            .and_then(|rest| rest.split_once(":iam::"))
            .and_then(|(partition, rest)| {
                partition.starts_with("aws").then_some(())?;
                rest.split_once(":role/")
            });
        let valid = role.is_some_and(|(account, name)| {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
                && name.len() <= 512
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+=,.@-".contains(&b))
        });
        if !valid {
            return Err(BuildError::Invalid(format!(
                "role_arn {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
            )));
        }
        if let Some(id) = &external_id {
            let valid = (2..=1224).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
            if !valid {
                return Err(BuildError::Invalid(
                    "external_id must be 2 to 1224 letters, digits or _+=,.@:/-".to_owned(),
                ));
            }
        }
        Ok(AssumeRole { arn, external_id })
    }
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No region: resources must be created somewhere known.
    #[error("region is required (e.g. region = \"eu-west-1\")")]
    MissingRegion,
    /// A secret without its key id, or the other way round.
    #[error("{0}")]
    IncompleteCredentials(&'static str),
    /// A setting has a value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// The keys `[providers.<name>]` accepts for `kind = "aws"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
    access_key_id: Option<String>,
    access_key_id_file: Option<std::path::PathBuf>,
    key_reload_secs: Option<u64>,
    role_arn: Option<String>,
    external_id: Option<String>,
    role_session_name: Option<String>,
    role_session_duration_secs: Option<u64>,
    name_prefix: Option<String>,
    iam_path: Option<String>,
    max_attempts: Option<u32>,
    connect_timeout_secs: Option<u64>,
    operation_timeout_secs: Option<u64>,
    database_tls: Option<TlsMode>,
    database_ca_file: Option<std::path::PathBuf>,
    database_endpoint_override: Option<String>,
}

/// Builds [`AwsSettings`]: `with_*` for each setting, then [`AwsBuilder::build`].
#[derive(Debug, Default, Clone)]
pub struct AwsBuilder {
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    access_key_id_file: Option<std::path::PathBuf>,
    secret_access_key_file: Option<std::path::PathBuf>,
    key_reload: Option<Duration>,
    role_arn: Option<String>,
    external_id: Option<String>,
    role_session_name: Option<String>,
    role_session_duration: Option<Duration>,
    name_prefix: Option<String>,
    iam_path: Option<String>,
    max_attempts: Option<u32>,
    connect_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    database_tls: Option<TlsMode>,
    database_ca_pem: Option<Vec<u8>>,
    database_endpoint_override: Option<String>,
}

impl AwsBuilder {
    /// An empty builder (a region is still required).
    pub fn new() -> Self {
        AwsBuilder::default()
    }

    /// The settings of a `[providers.<name>]` section with `kind = "aws"`.
    ///
    /// # Errors
    /// Unknown keys, values of the wrong type, an unreadable `database_ca_file`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, SettingsError> {
        let raw: RawSettings = serde_json::from_value(Value::Object(config.settings.clone()))?;
        let database_ca_pem = match &raw.database_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| SettingsError::File {
                setting: "database_ca_file",
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        if raw.access_key_id.is_some() && raw.access_key_id_file.is_some() {
            return Err(SettingsError::invalid(
                "access_key_id and access_key_id_file: name one",
            ));
        }
        let access_key_id = match &raw.access_key_id_file {
            Some(path) => Some(read_key_id(path)?),
            None => raw.access_key_id,
        };
        Ok(AwsBuilder {
            region: raw.region,
            profile: raw.profile,
            endpoint_url: raw.endpoint_url,
            access_key_id,
            secret_access_key: config.password.clone(),
            access_key_id_file: raw.access_key_id_file,
            secret_access_key_file: config.password_file.clone(),
            key_reload: raw.key_reload_secs.map(Duration::from_secs),
            role_arn: raw.role_arn,
            external_id: raw.external_id,
            role_session_name: raw.role_session_name,
            role_session_duration: raw.role_session_duration_secs.map(Duration::from_secs),
            name_prefix: raw.name_prefix,
            iam_path: raw.iam_path,
            max_attempts: raw.max_attempts,
            connect_timeout: raw.connect_timeout_secs.map(Duration::from_secs),
            operation_timeout: raw.operation_timeout_secs.map(Duration::from_secs),
            database_tls: raw.database_tls,
            database_ca_pem,
            database_endpoint_override: raw.database_endpoint_override,
        })
    }

    /// The region, e.g. `eu-west-1`.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A named profile of the shared configuration files.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// One endpoint for every service (moto, LocalStack).
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Static keys instead of the standard chain.
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
    ) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret_access_key);
        self
    }

    /// A role to assume for every call (with the external id its trust policy asks for).
    pub fn with_role(mut self, arn: impl Into<String>, external_id: Option<String>) -> Self {
        self.role_arn = Some(arn.into());
        self.external_id = external_id;
        self
    }

    /// The session name of assumed roles (default `skybroker`).
    pub fn with_role_session_name(mut self, name: impl Into<String>) -> Self {
        self.role_session_name = Some(name.into());
        self
    }

    /// The resource name prefix (default `skybroker`).
    pub fn with_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Attempts per AWS call (default 4).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// **Tests only**: the database server standing in for every RDS instance.
    pub fn with_database_endpoint_override(mut self, host_port: impl Into<String>) -> Self {
        self.database_endpoint_override = Some(host_port.into());
        self
    }

    /// Transport security of connections to RDS instances (default `require`).
    pub fn with_database_tls(mut self, tls: TlsMode) -> Self {
        self.database_tls = Some(tls);
        self
    }

    /// Checks everything and builds the settings.
    ///
    /// # Errors
    /// A missing region, half of a static key, an invalid prefix, path, endpoint or bound.
    pub fn build(self) -> Result<AwsSettings, BuildError> {
        let region = self
            .region
            .filter(|r| !r.is_empty())
            .ok_or(BuildError::MissingRegion)?;
        check_region(&region)?;
        let key_reload = self.key_reload.unwrap_or(Duration::from_secs(60));
        if key_reload.is_zero() {
            return Err(BuildError::Invalid(
                "key_reload_secs must be at least 1".to_owned(),
            ));
        }
        if self.access_key_id_file.is_some() && self.secret_access_key_file.is_none() {
            return Err(BuildError::IncompleteCredentials(
                "access_key_id_file needs the secret from password_file: a rotated key \
                 changes both",
            ));
        }
        let files = self.secret_access_key_file.map(|secret| KeyFiles {
            access_key_id: self.access_key_id_file,
            secret_access_key: secret,
            reload: key_reload,
        });
        let static_credentials = match (self.access_key_id, self.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key,
                files,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(BuildError::IncompleteCredentials(
                    "access_key_id needs its secret through password_env or password_file",
                ))
            }
            (None, Some(_)) => {
                return Err(BuildError::IncompleteCredentials(
                    "a secret (password_env/password_file) needs access_key_id; without both, \
                     the standard AWS credential chain is used",
                ))
            }
        };
        let assume_role = match (self.role_arn, self.external_id) {
            (Some(arn), external_id) => Some(AssumeRole::new(arn, external_id)?),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(BuildError::Invalid(
                    "external_id is the role's: it needs role_arn".to_owned(),
                ))
            }
        };
        let role_session_name = self
            .role_session_name
            .unwrap_or_else(|| "skybroker".to_owned());
        let session_name_ok = (2..=64).contains(&role_session_name.len())
            && role_session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if !session_name_ok {
            return Err(BuildError::Invalid(format!(
                "role_session_name {role_session_name:?} must be 2 to 64 letters, digits or _+=,.@-"
            )));
        }
        let role_session_duration = self
            .role_session_duration
            .unwrap_or(Duration::from_secs(3600));
        if !(900..=43_200).contains(&role_session_duration.as_secs()) {
            return Err(BuildError::Invalid(
                "role_session_duration_secs must be between 900 and 43200 (and within the \
                 role's maximum session duration)"
                    .to_owned(),
            ));
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(BuildError::Invalid(format!(
                    "endpoint_url {url:?} must be an http:// or https:// URL"
                )));
            }
        }
        let name_prefix = self.name_prefix.unwrap_or_else(|| "skybroker".to_owned());
        check_cloud_prefix(&name_prefix).map_err(|err| BuildError::Invalid(err.to_string()))?;
        let iam_path = self.iam_path.unwrap_or_else(|| "/skybroker/".to_owned());
        let path_ok = iam_path.starts_with('/')
            && iam_path.ends_with('/')
            && iam_path.len() <= 512
            && iam_path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=,.@-".contains(&b));
        if !path_ok {
            return Err(BuildError::Invalid(format!(
                "iam_path {iam_path:?} must start and end with / (e.g. \"/skybroker/\")"
            )));
        }
        let max_attempts = self.max_attempts.unwrap_or(4);
        if !(1..=10).contains(&max_attempts) {
            return Err(BuildError::Invalid(
                "max_attempts must be between 1 and 10".to_owned(),
            ));
        }
        let database_endpoint_override = match self.database_endpoint_override {
            None => None,
            Some(text) => {
                let parsed = text
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)));
                Some(parsed.ok_or_else(|| {
                    BuildError::Invalid(format!(
                        "database_endpoint_override {text:?} must be host:port"
                    ))
                })?)
            }
        };
        let database_tls = self.database_tls.unwrap_or(TlsMode::Require);
        if database_tls == TlsMode::VerifyFull && self.database_ca_pem.is_none() {
            return Err(BuildError::Invalid(
                "database_tls = \"verify_full\" needs database_ca_file (the RDS CA bundle)"
                    .to_owned(),
            ));
        }
        Ok(AwsSettings {
            region,
            profile: self.profile,
            endpoint_url: self.endpoint_url,
            static_credentials,
            assume_role,
            role_session_name,
            role_session_duration,
            name_prefix,
            iam_path,
            max_attempts,
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
            operation_timeout: self.operation_timeout.unwrap_or(Duration::from_secs(120)),
            database_tls,
            database_ca_pem: self.database_ca_pem,
            database_endpoint_override,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(settings: Value) -> ProviderConfig {
        let mut value = settings;
        value["kind"] = json!("aws");
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_region_is_enough_and_defaults_are_sane() {
        let settings = AwsBuilder::from_config(&provider(json!({"region": "eu-west-1"})))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(settings.name_prefix, "skybroker");
        assert_eq!(settings.iam_path, "/skybroker/");
        assert!(settings.static_credentials.is_none());
        assert!(settings.assume_role.is_none());
        assert_eq!(settings.role_session_name, "skybroker");
        assert_eq!(settings.database_tls, TlsMode::Require);
    }

    #[test]
    fn key_files_are_remembered_to_be_read_again() {
        let dir = std::env::temp_dir().join(format!("skybroker-key-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = dir.join("id");
        std::fs::write(&id, "AKIAROTATED\n").unwrap();
        let mut config = provider(json!({"region": "us-east-1", "access_key_id_file": id}));
        config.password = Some(Secret::new("secret"));
        config.password_file = Some(dir.join("secret"));
        let settings = AwsBuilder::from_config(&config).unwrap().build().unwrap();
        let keys = settings.static_credentials.unwrap();
        assert_eq!(keys.access_key_id, "AKIAROTATED");
        let files = keys.files.unwrap();
        assert_eq!(files.access_key_id, Some(id));
        assert_eq!(files.secret_access_key, dir.join("secret"));
        assert_eq!(files.reload, Duration::from_secs(60));
        // The id from a file needs the secret from a file: they rotate together.
        let mut config = provider(json!({"region": "us-east-1",
            "access_key_id_file": dir.join("id")}));
        config.password = Some(Secret::new("secret"));
        let err = AwsBuilder::from_config(&config)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("password_file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_role_is_assumed_with_its_external_id() {
        let settings = AwsBuilder::from_config(&provider(json!({
            "region": "eu-west-1",
            "role_arn": "arn:aws-cn:iam::123456789012:role/path/skybroker-broker",
            "external_id": "tenant-42",
            "role_session_name": "broker@eu",
            "role_session_duration_secs": 900,
        })))
        .unwrap()
        .build()
        .unwrap();
        let role = settings.assume_role.unwrap();
        assert_eq!(
            role.arn,
            "arn:aws-cn:iam::123456789012:role/path/skybroker-broker"
        );
        assert_eq!(role.external_id.as_deref(), Some("tenant-42"));
        assert_eq!(settings.role_session_name, "broker@eu");
        assert_eq!(settings.role_session_duration, Duration::from_secs(900));
    }

    #[test]
    fn mistakes_are_named() {
        for (settings, needle) in [
            (json!({}), "region is required"),
            (
                json!({"region": "eu-west-1", "regoin": "x"}),
                "unknown field",
            ),
            (
                json!({"region": "eu-west-1", "access_key_id": "AKIA1"}),
                "secret",
            ),
            (
                json!({"region": "eu-west-1", "name_prefix": "Sky_Broker"}),
                "name prefix",
            ),
            (
                json!({"region": "eu-west-1", "iam_path": "skybroker"}),
                "iam_path",
            ),
            (
                json!({"region": "eu-west-1", "endpoint_url": "localhost:5000"}),
                "endpoint_url",
            ),
            (
                json!({"region": "eu-west-1", "database_endpoint_override": "db"}),
                "host:port",
            ),
            (
                json!({"region": "eu-west-1", "database_tls": "verify_full"}),
                "database_ca_file",
            ),
            (
                json!({"region": "eu-west-1", "role_arn": "arn:aws:iam::12345:role/x"}),
                "not an IAM role ARN",
            ),
            (
                json!({"region": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:user/x"}),
                "not an IAM role ARN",
            ),
            (
                json!({"region": "eu-west-1", "external_id": "abc"}),
                "needs role_arn",
            ),
            (
                json!({"region": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:role/x",
                       "external_id": "a b"}),
                "external_id",
            ),
            (
                json!({"region": "eu-west-1", "role_session_name": "has space"}),
                "role_session_name",
            ),
            (
                json!({"region": "eu-west-1", "role_session_duration_secs": 60}),
                "between 900 and 43200",
            ),
            (
                json!({"region": "eu-west-1", "access_key_id": "AKIA1",
                       "access_key_id_file": "/run/secrets/id"}),
                "name one",
            ),
            (
                json!({"region": "eu-west-1", "access_key_id_file": "/nonexistent/skybroker"}),
                "access_key_id_file",
            ),
        ] {
            let err = match AwsBuilder::from_config(&provider(settings.clone())) {
                Ok(builder) => builder.build().unwrap_err().to_string(),
                Err(err) => err.to_string(),
            };
            assert!(err.contains(needle), "{settings}: {err}");
        }
    }

    #[test]
    fn static_keys_need_both_halves_and_never_show_the_secret() {
        let mut config = provider(json!({"region": "us-east-1", "access_key_id": "AKIAEXAMPLE"}));
        config.password = Some(Secret::new("wJalrXUtnFEMI/K7MDENG"));
        let settings = AwsBuilder::from_config(&config).unwrap().build().unwrap();
        let shown = format!("{settings:?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }
}
