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

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use skybroker_config::{ProviderConfig, Secret};

use super::client::ClientConfig;
use super::credential::AccessKey;
use crate::names::check_cloud_prefix;
use crate::SettingsError;

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
    /// No key id or no secret.
    #[error(
        "an AccessKey pair is required: access_key_id (or {ACCESS_KEY_ID_ENV}) and its secret \
         from password_env/password_file (or {ACCESS_KEY_SECRET_ENV})"
    )]
    MissingAccessKey,
    /// A setting has a value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a region id such as `cn-hangzhou` (it becomes part of host names and signatures).
pub fn check_region(region: &str) -> Result<(), SettingsError> {
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(SettingsError::invalid(format!(
            "region {region:?} is not a region id like cn-hangzhou"
        )))
    }
}

/// The keys `[providers.<name>]` accepts for `kind = "alibaba"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    region: Option<String>,
    access_key_id: Option<String>,
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
        let raw: RawSettings = serde_json::from_value(Value::Object(config.settings.clone()))?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(AlibabaBuilder {
            region: raw.region,
            access_key_id: raw.access_key_id.or_else(|| env(ACCESS_KEY_ID_ENV)),
            access_key_secret: config
                .password
                .clone()
                .or_else(|| env(ACCESS_KEY_SECRET_ENV).map(Secret::new)),
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
        let region = self.region.ok_or(BuildError::MissingRegion)?;
        check_region(&region).map_err(|err| BuildError::Invalid(err.to_string()))?;
        let (Some(id), Some(secret)) = (self.access_key_id, self.access_key_secret) else {
            return Err(BuildError::MissingAccessKey);
        };
        let name_prefix = self.name_prefix.unwrap_or_else(|| "skybroker".to_owned());
        check_cloud_prefix(&name_prefix).map_err(|err| BuildError::Invalid(err.to_string()))?;
        let oss_endpoint_overridden = self.oss_endpoint.is_some();
        let mut client = ClientConfig::new(AccessKey { id, secret }, region);
        for (name, value, slot) in [
            ("rds_endpoint", self.rds_endpoint, &mut client.rds_endpoint),
            ("ram_endpoint", self.ram_endpoint, &mut client.ram_endpoint),
            ("oss_endpoint", self.oss_endpoint, &mut client.oss_endpoint),
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
}
