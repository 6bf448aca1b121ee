//! Where the provider's signing credentials come from: a long-lived AccessKey, or temporary
//! credentials from STS (AssumeRole with a base key; AssumeRoleWithOIDC with a Kubernetes
//! service account token, as ACK's RRSA provides) or from an ECS instance's RAM role.
//!
//! Why temporary credentials: a long-lived key that can create databases is the most
//! valuable secret a broker holds. With AssumeRole the stored key can do one thing (assume
//! one role) and every permission lives on the role, where it can be audited and revoked;
//! with RRSA or an ECS RAM role no key is stored at all.
//!
//! How they are used, in the order a call meets them:
//! - [`CredentialSource`] is configuration: built and checked by the builder
//!   ([`config`](super::config)), nothing is fetched then.
//! - `Signer` is what the client asks before signing each attempt. For a long-lived key it
//!   answers at once; otherwise it keeps the current temporary credentials and fetches new
//!   ones when less than [`refresh_margin`] of their life remains (a fifth of it, at least
//!   five minutes), one fetch at a time. While a fetch is running, other calls keep using the
//!   still-valid credentials; when a fetch fails and the old credentials are still valid,
//!   they stay in use, a warning is logged and the next fetch waits [`RETRY_PAUSE`].
//! - When the service refuses temporary credentials anyway (a clock that drifted, a token
//!   revoked), the client drops them (`Signer::invalidate`) and signs its next attempt
//!   with new ones.
//!
//! The token file of OIDC is read again at every fetch: the kubelet rotates it. The ECS
//! metadata service is asked in its hardened mode only (IMDSv2: a session token from `PUT
//! /latest/api/token` on every read), which also works where the normal mode is disabled.
//!
//! No secret reaches a log: AccessKey secrets and security tokens are
//! [`Secret`]s, the OIDC token is read into one, and messages name key ids, role ARNs and
//! expiry times only.
//!
//! References: STS `AssumeRole` and `AssumeRoleWithOIDC` (API version 2015-04-01,
//! <https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole>),
//! ACK RRSA (<https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/user-guide/use-rrsa-to-authorize-pods-to-access-different-cloud-services>),
//! ECS instance RAM roles and the metadata service in hardened mode
//! (<https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata>).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use skybroker_config::Secret;
use time::OffsetDateTime;

use super::client::{Auth, Product, Protocol, Transport};
use super::credential::{acs3_date, percent_encode, AccessKey, Credentials};
use super::error::AlibabaError;

/// The environment variable ACK's RRSA sets to the RAM role a pod may assume.
pub const ROLE_ARN_ENV: &str = "ALIBABA_CLOUD_ROLE_ARN";
/// The environment variable ACK's RRSA sets to the cluster's OIDC provider in RAM.
pub const OIDC_PROVIDER_ARN_ENV: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
/// The environment variable ACK's RRSA sets to the projected service account token's path.
pub const OIDC_TOKEN_FILE_ENV: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";

/// The role session name when none is set: it shows in ActionTrail as who acted.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "skybroker";
/// How long temporary credentials from STS are asked to last when nothing is set.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(3600);
/// The shortest session STS grants.
pub const MIN_SESSION_DURATION: Duration = Duration::from_secs(900);
/// The longest session STS grants (a role's `MaxSessionDuration` may allow less).
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(43_200);
/// The ECS instance metadata service, reachable from every ECS instance.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";

/// How long a metadata session token is asked to last (the service's maximum, 6 hours).
const METADATA_TOKEN_TTL_SECS: u32 = 21_600;
/// How long one request to the metadata service may take: it is on the host, so anything
/// slower means it is not there (not on ECS).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Credentials this close to their expiry are not used to sign: the request could arrive
/// after they expired.
const VALIDITY_MARGIN: Duration = Duration::from_secs(15);
/// After a failed fetch while the old credentials are still valid, the next fetch waits this
/// long, so that an STS outage does not add a failing call to every request.
pub const RETRY_PAUSE: Duration = Duration::from_secs(30);

/// STS's endpoint for `region`: the regional one, as Alibaba's SDKs pick it
/// (`sts.<region>.aliyuncs.com`; `sts.aliyuncs.com` is the central one).
pub fn default_sts_endpoint(region: &str) -> String {
    format!("https://sts.{region}.aliyuncs.com")
}

/// The role to assume and the session to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// `acs:ram::<account id>:role/<role name>`.
    pub role_arn: String,
    /// Names the session in ActionTrail and in the assumed role's ARN.
    pub session_name: String,
    /// How long the credentials are asked to last (900 s to the role's maximum).
    pub duration: Duration,
}

/// Where the credentials every request is signed with come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// A long-lived AccessKey pair, used as it is.
    AccessKey(AccessKey),
    /// A long-lived AccessKey pair read from files (a mounted Kubernetes secret), read again
    /// every `reload` so that a rotated key is used without a restart.
    AccessKeyFiles(KeyFiles),
    /// STS `AssumeRole`, signed with a base AccessKey that needs only `sts:AssumeRole`.
    AssumeRole {
        /// The key that signs the AssumeRole call (and nothing else).
        base: AccessKey,
        /// The role and session.
        role: RoleSession,
        /// The `ExternalId` the role's trust policy may require.
        external_id: Option<String>,
    },
    /// STS `AssumeRoleWithOIDC` with a service account token (ACK RRSA); no key at all.
    Oidc {
        /// The role and session.
        role: RoleSession,
        /// `acs:ram::<account id>:oidc-provider/<name>`: the cluster's issuer in RAM.
        provider_arn: String,
        /// The token's file, read at every fetch (it is rotated).
        token_file: PathBuf,
    },
    /// The RAM role attached to the ECS instance, from the instance metadata service.
    EcsRamRole {
        /// The role's name; `None` asks the metadata service which role is attached.
        role_name: Option<String>,
        /// The metadata service's base URL (default [`DEFAULT_METADATA_ENDPOINT`]).
        metadata_endpoint: String,
    },
}

impl CredentialSource {
    /// The name used in settings (`credential_source`) and messages.
    pub fn name(&self) -> &'static str {
        match self {
            CredentialSource::AccessKey(_) | CredentialSource::AccessKeyFiles(_) => "access_key",
            CredentialSource::AssumeRole { .. } => "assume_role",
            CredentialSource::Oidc { .. } => "oidc",
            CredentialSource::EcsRamRole { .. } => "ecs_ram_role",
        }
    }

    /// Whether credentials are fetched at all (else the AccessKey is used as it is).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, CredentialSource::AccessKey(_))
    }
}

/// Where a rotated AccessKey is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The file of the AccessKey id; `None`: the id is `id`, fixed.
    pub id_file: Option<PathBuf>,
    /// The id when there is no id file.
    pub id: String,
    /// The file of the AccessKey secret (`password_file`).
    pub secret_file: PathBuf,
    /// How often both are read again.
    pub reload: Duration,
}

// ===== checks the builder makes =====

/// Characters of RAM role names (and ECS role names): letters, digits, `.`, `-`, `_`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// `acs:ram::<account id>:<kind>/<name>`, the account id all digits and the name 1 to 64
/// characters of [`is_name_char`].
fn check_ram_arn(setting: &str, value: &str, kind: &str) -> Result<(), String> {
    let valid = value
        .strip_prefix("acs:ram::")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(account, rest)| {
            let name = rest.strip_prefix(kind)?.strip_prefix('/')?;
            Some(
                !account.is_empty() && account.bytes().all(|b| b.is_ascii_digit()) && {
                    (1..=64).contains(&name.len()) && name.chars().all(is_name_char)
                },
            )
        })
        .unwrap_or(false);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{setting} {value:?} is not a RAM {kind} ARN like acs:ram::1234567890123456:{kind}/<name>"
        ))
    }
}

/// A role ARN: `acs:ram::<account id>:role/<role name>`.
pub fn check_role_arn(value: &str) -> Result<(), String> {
    check_ram_arn("role_arn", value, "role")
}

/// An OIDC provider ARN: `acs:ram::<account id>:oidc-provider/<name>`.
pub fn check_oidc_provider_arn(value: &str) -> Result<(), String> {
    check_ram_arn("oidc_provider_arn", value, "oidc-provider")
}

/// A role session name: 2 to 64 letters, digits, `.`, `@`, `-`, `_` (STS refuses others).
pub fn check_session_name(value: &str) -> Result<(), String> {
    let valid = (2..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "role_session_name {value:?} must be 2 to 64 letters, digits or . @ - _"
        ))
    }
}

/// A session duration: 900 to 43200 seconds.
pub fn check_session_duration(duration: Duration) -> Result<(), String> {
    if (MIN_SESSION_DURATION..=MAX_SESSION_DURATION).contains(&duration) {
        Ok(())
    } else {
        Err(format!(
            "role_session_duration_secs {} must be between {} and {} (the role's \
             MaxSessionDuration may allow less)",
            duration.as_secs(),
            MIN_SESSION_DURATION.as_secs(),
            MAX_SESSION_DURATION.as_secs()
        ))
    }
}

/// An external id: 2 to 1224 letters, digits or `= , . @ : / - _`.
pub fn check_external_id(value: &str) -> Result<(), String> {
    let valid = (2..=1224).contains(&value.len())
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '=' | ',' | '.' | '@' | ':' | '/' | '-' | '_')
        });
    if valid {
        Ok(())
    } else {
        Err("external_id must be 2 to 1224 letters, digits or = , . @ : / - _".to_owned())
    }
}

/// An ECS RAM role name: 1 to 64 letters, digits, `.`, `-`, `_` (it becomes a URL path).
pub fn check_ecs_role_name(value: &str) -> Result<(), String> {
    if (1..=64).contains(&value.len()) && value.chars().all(is_name_char) {
        Ok(())
    } else {
        Err(format!(
            "ecs_ram_role {value:?} is not a RAM role name (1 to 64 letters, digits, . - _)"
        ))
    }
}

// ===== temporary credentials, cached and refreshed =====

/// The time, injected so that tests can move it.
pub(crate) trait Clock: std::fmt::Debug + Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Temporary credentials as a fetch returns them.
#[derive(Debug, Clone)]
pub(crate) struct Temporary {
    /// The key and token.
    pub(crate) credentials: Credentials,
    /// When the service stops accepting them.
    pub(crate) expiration: OffsetDateTime,
}

/// One way to get temporary credentials (a call to STS or to the metadata service).
#[async_trait]
pub(crate) trait Fetch: std::fmt::Debug + Send + Sync {
    /// Where they come from, for messages: `STS AssumeRole`...
    fn from(&self) -> &'static str;
    /// What they are for, for messages: the role.
    fn role(&self) -> &str;
    /// Fetches new credentials.
    async fn fetch(&self) -> Result<Temporary, AlibabaError>;
}

/// How long before expiry credentials with this lifetime are refreshed: a fifth of their
/// life, at least five minutes, and at most half of it (so very short lives, which only
/// tests use, are not refreshed on every call).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5)
        .max(Duration::from_secs(300))
        .min(lifetime / 2)
}

/// The credentials in use.
#[derive(Debug)]
struct Cached {
    credentials: Arc<Credentials>,
    /// From now on, fetch new ones.
    refresh_at: OffsetDateTime,
    /// From now on, do not sign with these (their expiry less [`VALIDITY_MARGIN`]).
    usable_until: OffsetDateTime,
}

/// What [`Refreshing`] holds between calls.
#[derive(Debug, Default)]
struct State {
    current: Option<Cached>,
    /// After a failed fetch: no new fetch before this time while `current` is usable.
    paused_until: Option<OffsetDateTime>,
}

/// Temporary credentials kept and refreshed before they expire (see the module docs).
#[derive(Debug)]
pub(crate) struct Refreshing {
    fetch: Box<dyn Fetch>,
    clock: Arc<dyn Clock>,
    /// Held only to read or replace the state, never across an `.await`.
    state: Mutex<State>,
    /// Held for the length of one fetch: one fetch at a time.
    refresh: tokio::sync::Mutex<()>,
}

impl Refreshing {
    pub(crate) fn new(fetch: Box<dyn Fetch>, clock: Arc<dyn Clock>) -> Refreshing {
        Refreshing {
            fetch,
            clock,
            state: Mutex::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one assignment, so a panic elsewhere leaves the state whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current credentials if they need no refresh now (fresh, or a failed fetch was
    /// just made and they are still usable).
    fn fresh(&self, now: OffsetDateTime) -> Option<Arc<Credentials>> {
        let state = self.state();
        let current = state.current.as_ref()?;
        let paused = state.paused_until.is_some_and(|until| now < until);
        let fresh = now < current.refresh_at || (paused && now < current.usable_until);
        fresh.then(|| current.credentials.clone())
    }

    /// The current credentials if they may still sign.
    fn usable(&self, now: OffsetDateTime) -> Option<Arc<Credentials>> {
        let state = self.state();
        let current = state.current.as_ref()?;
        (now < current.usable_until).then(|| current.credentials.clone())
    }

    /// Credentials to sign with now, fetched if needed.
    ///
    /// # Errors
    /// The fetch failed and there are no usable credentials to fall back on.
    pub(crate) async fn credentials(&self) -> Result<Arc<Credentials>, AlibabaError> {
        if let Some(fresh) = self.fresh(self.clock.now()) {
            return Ok(fresh);
        }
        // One fetch at a time. Whoever finds one running uses the old credentials if they
        // are still usable, and otherwise waits for it.
        let _fetching = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.usable(self.clock.now()) {
                Some(usable) => return Ok(usable),
                None => self.refresh.lock().await,
            },
        };
        // The fetch we waited for may have brought new ones.
        if let Some(fresh) = self.fresh(self.clock.now()) {
            return Ok(fresh);
        }
        match self.fetch.fetch().await {
            Ok(temporary) => Ok(self.store(temporary)),
            Err(err) => {
                let now = self.clock.now();
                let Some(usable) = self.usable(now) else {
                    return Err(err);
                };
                self.state().paused_until = Some(now + RETRY_PAUSE);
                log::warn!(
                    "Alibaba Cloud credentials for {}: refreshing from {} failed, the current \
                     ones ({}) stay in use until they expire; next try in {RETRY_PAUSE:?}: {err}",
                    self.fetch.role(),
                    self.fetch.from(),
                    usable.key.id,
                );
                Ok(usable)
            }
        }
    }

    /// Keeps new credentials and says so in the log (key id and expiry only).
    fn store(&self, temporary: Temporary) -> Arc<Credentials> {
        let now = self.clock.now();
        let lifetime = (temporary.expiration - now)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let credentials = Arc::new(temporary.credentials);
        let cached = Cached {
            credentials: credentials.clone(),
            refresh_at: temporary.expiration - refresh_margin(lifetime),
            usable_until: temporary.expiration - VALIDITY_MARGIN,
        };
        log::info!(
            "Alibaba Cloud credentials for {} from {}: {} until {} (refreshed from {})",
            self.fetch.role(),
            self.fetch.from(),
            credentials.key.id,
            acs3_date(temporary.expiration),
            acs3_date(cached.refresh_at),
        );
        *self.state() = State {
            current: Some(cached),
            paused_until: None,
        };
        credentials
    }

    /// Forgets `used` if it is still the current credentials: the service refused them.
    pub(crate) fn invalidate(&self, used: &Arc<Credentials>) {
        let mut state = self.state();
        if state
            .current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.credentials, used))
        {
            log::warn!(
                "Alibaba Cloud refused the temporary credentials {} for {}; fetching new ones",
                used.key.id,
                self.fetch.role()
            );
            *state = State::default();
        }
    }
}

/// What signs the client's requests: fixed credentials, or temporary ones kept fresh.
/// Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub(crate) enum Signer {
    /// A long-lived AccessKey.
    Static(Arc<Credentials>),
    /// Temporary credentials.
    Refreshing(Arc<Refreshing>),
}

impl Signer {
    /// The signer for `source`; `sts` is the STS endpoint. Nothing is fetched yet.
    pub(crate) fn new(source: &CredentialSource, transport: &Transport, sts: &Url) -> Signer {
        let fetch: Box<dyn Fetch> = match source {
            CredentialSource::AccessKey(key) => {
                return Signer::Static(Arc::new(key.clone().into()))
            }
            CredentialSource::AccessKeyFiles(files) => Box::new(ReadKeyFiles {
                files: files.clone(),
                what: files.secret_file.display().to_string(),
            }),
            CredentialSource::AssumeRole {
                base,
                role,
                external_id,
            } => Box::new(AssumeRole {
                transport: transport.clone(),
                endpoint: sts.clone(),
                base: Arc::new(base.clone().into()),
                role: role.clone(),
                external_id: external_id.clone(),
            }),
            CredentialSource::Oidc {
                role,
                provider_arn,
                token_file,
            } => Box::new(Oidc {
                transport: transport.clone(),
                endpoint: sts.clone(),
                role: role.clone(),
                provider_arn: provider_arn.clone(),
                token_file: token_file.clone(),
            }),
            CredentialSource::EcsRamRole {
                role_name,
                metadata_endpoint,
            } => Box::new(EcsRamRole {
                transport: transport.clone(),
                endpoint: metadata_endpoint.trim_end_matches('/').to_owned(),
                role_name: role_name.clone(),
            }),
        };
        Signer::Refreshing(Arc::new(Refreshing::new(fetch, Arc::new(SystemClock))))
    }

    /// Credentials to sign the next attempt with.
    ///
    /// # Errors
    /// [`AlibabaError::Credentials`] when temporary credentials could not be had.
    pub(crate) async fn credentials(&self) -> Result<Arc<Credentials>, AlibabaError> {
        match self {
            Signer::Static(credentials) => Ok(credentials.clone()),
            Signer::Refreshing(refreshing) => refreshing.credentials().await,
        }
    }

    /// The service refused `used`: drop them if they are temporary. Whether a new attempt
    /// may bring others.
    pub(crate) fn invalidate(&self, used: &Arc<Credentials>) -> bool {
        match self {
            Signer::Static(_) => false,
            Signer::Refreshing(refreshing) => {
                refreshing.invalidate(used);
                true
            }
        }
    }
}

// ===== the fetches =====

/// The AccessKey in its files, handed to the refreshing cache as lasting `reload`: read
/// again after half of that, and at once when the service refuses the key (rotated, the old
/// one deleted).
#[derive(Debug)]
struct ReadKeyFiles {
    files: KeyFiles,
    /// The secret file's path, for messages.
    what: String,
}

#[async_trait]
impl Fetch for ReadKeyFiles {
    fn from(&self) -> &'static str {
        "the AccessKey files"
    }

    fn role(&self) -> &str {
        &self.what
    }

    async fn fetch(&self) -> Result<Temporary, AlibabaError> {
        let read = |path: PathBuf| async move {
            tokio::fs::read_to_string(&path)
                .await
                .map_err(|err| AlibabaError::Credentials {
                    from: "the AccessKey files",
                    detail: format!("cannot read {}: {err}", path.display()),
                    // A secret volume being updated may be missing for a moment.
                    transient: true,
                })
        };
        let secret = read(self.files.secret_file.clone()).await?;
        let id = match &self.files.id_file {
            Some(path) => read(path.clone()).await?.trim().to_owned(),
            None => self.files.id.clone(),
        };
        Ok(Temporary {
            credentials: AccessKey {
                id,
                secret: Secret::new(secret.trim_end_matches(['\r', '\n'])),
            }
            .into(),
            expiration: OffsetDateTime::now_utc() + self.files.reload,
        })
    }
}

/// The `Credentials` object of STS answers (AssumeRole, AssumeRoleWithOIDC) and the
/// document of the ECS metadata service: the same field names.
#[derive(Deserialize)]
struct TemporaryFields {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Secret,
    #[serde(rename = "SecurityToken")]
    security_token: Secret,
    /// `2015-04-09T11:52:19Z`.
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl TemporaryFields {
    fn into_temporary(self) -> Result<Temporary, String> {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let expiration = time::PrimitiveDateTime::parse(&self.expiration, format)
            .map_err(|err| format!("Expiration {:?}: {err}", self.expiration))?
            .assume_utc();
        if self.access_key_id.is_empty() || self.access_key_secret.expose().is_empty() {
            return Err("no AccessKey in the answer".to_owned());
        }
        Ok(Temporary {
            credentials: Credentials {
                key: AccessKey {
                    id: self.access_key_id,
                    secret: self.access_key_secret,
                },
                security_token: Some(self.security_token),
            },
            expiration,
        })
    }
}

/// An STS answer: `{"Credentials": {...}, "AssumedRoleUser": {...}, "RequestId": ...}`.
#[derive(Deserialize)]
struct StsAnswer {
    #[serde(rename = "Credentials")]
    credentials: TemporaryFields,
}

/// Reads the credentials out of an STS answer.
fn sts_credentials(
    from: &'static str,
    answer: serde_json::Value,
) -> Result<Temporary, AlibabaError> {
    let request_id = answer["RequestId"].as_str().unwrap_or_default().to_owned();
    serde_json::from_value::<StsAnswer>(answer)
        .map_err(|err| err.to_string())
        .and_then(|answer| answer.credentials.into_temporary())
        .map_err(|detail| AlibabaError::Credentials {
            from,
            detail: format!("unreadable answer (request id {request_id}): {detail}"),
            transient: true,
        })
}

/// STS `AssumeRole`, signed with the base key.
#[derive(Debug)]
struct AssumeRole {
    transport: Transport,
    endpoint: Url,
    base: Arc<Credentials>,
    role: RoleSession,
    external_id: Option<String>,
}

#[async_trait]
impl Fetch for AssumeRole {
    fn from(&self) -> &'static str {
        "STS AssumeRole"
    }

    fn role(&self) -> &str {
        &self.role.role_arn
    }

    async fn fetch(&self) -> Result<Temporary, AlibabaError> {
        let duration = self.role.duration.as_secs().to_string();
        let mut params = vec![
            ("RoleArn", self.role.role_arn.as_str()),
            ("RoleSessionName", self.role.session_name.as_str()),
            ("DurationSeconds", duration.as_str()),
        ];
        if let Some(external_id) = &self.external_id {
            params.push(("ExternalId", external_id));
        }
        let answer = self
            .transport
            .rpc(
                &self.endpoint,
                Product::Sts,
                "AssumeRole",
                &params,
                Auth::Key(&self.base),
            )
            .await
            .map_err(|err| AlibabaError::credentials(self.from(), err))?;
        sts_credentials(self.from(), answer)
    }
}

/// STS `AssumeRoleWithOIDC`: an anonymous call that the token authenticates.
#[derive(Debug)]
struct Oidc {
    transport: Transport,
    endpoint: Url,
    role: RoleSession,
    provider_arn: String,
    token_file: PathBuf,
}

#[async_trait]
impl Fetch for Oidc {
    fn from(&self) -> &'static str {
        "STS AssumeRoleWithOIDC"
    }

    fn role(&self) -> &str {
        &self.role.role_arn
    }

    async fn fetch(&self) -> Result<Temporary, AlibabaError> {
        // Read at every fetch: the kubelet replaces the token before it expires.
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|err| AlibabaError::Credentials {
                from: self.from(),
                detail: format!(
                    "cannot read the OIDC token file {}: {err}",
                    self.token_file.display()
                ),
                transient: false,
            })?;
        let token = Secret::new(token.trim());
        if token.expose().is_empty() {
            return Err(AlibabaError::Credentials {
                from: self.from(),
                detail: format!("the OIDC token file {} is empty", self.token_file.display()),
                transient: false,
            });
        }
        let duration = self.role.duration.as_secs().to_string();
        // As Alibaba's credential tools send it: the common parameters in the query, the
        // call's (the token among them) in a form body, so that no URL carries the token.
        let form = [
            ("RoleArn", self.role.role_arn.as_str()),
            ("OIDCProviderArn", self.provider_arn.as_str()),
            ("OIDCToken", token.expose()),
            ("RoleSessionName", self.role.session_name.as_str()),
            ("DurationSeconds", duration.as_str()),
        ]
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        let build = |_: Option<&Credentials>| {
            let mut url = self.endpoint.clone();
            url.query_pairs_mut()
                .append_pair("Action", "AssumeRoleWithOIDC")
                .append_pair("Version", Product::Sts.version())
                .append_pair("Format", "JSON")
                .append_pair("Timestamp", &acs3_date(OffsetDateTime::now_utc()));
            Ok(self
                .transport
                .http()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(form.clone()))
        };
        let answer = self
            .transport
            .call(
                "STS",
                "AssumeRoleWithOIDC",
                Protocol::Rpc,
                &[token.expose()],
                None,
                build,
            )
            .await
            .map_err(|err| AlibabaError::credentials(self.from(), err))?;
        let answer: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|err| AlibabaError::Credentials {
                from: self.from(),
                detail: format!("not JSON: {err}"),
                transient: true,
            })?;
        sts_credentials(self.from(), answer)
    }
}

/// The ECS instance metadata service, in hardened mode.
#[derive(Debug)]
struct EcsRamRole {
    transport: Transport,
    /// Base URL without a trailing slash.
    endpoint: String,
    role_name: Option<String>,
}

/// The document the metadata service serves for a role.
#[derive(Deserialize)]
struct MetadataDocument {
    #[serde(rename = "Code")]
    code: String,
    #[serde(flatten)]
    fields: TemporaryFields,
}

impl EcsRamRole {
    fn error(&self, detail: String, transient: bool) -> AlibabaError {
        AlibabaError::Credentials {
            from: self.from(),
            detail,
            transient,
        }
    }

    /// One request to the metadata service; the body of a 200 answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        header: (&str, &str),
    ) -> Result<String, AlibabaError> {
        let url = format!("{}{path}", self.endpoint);
        let response = self
            .transport
            .http()
            .request(method.clone(), &url)
            .header(header.0, header.1)
            .timeout(METADATA_TIMEOUT)
            .send()
            .await
            .map_err(|err| {
                self.error(
                    format!("{method} {url}: no answer (not on ECS?): {err}"),
                    true,
                )
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|err| self.error(format!("{method} {url}: unreadable answer: {err}"), true))?;
        if !status.is_success() {
            // The body of an error is a short text; a credentials document is only ever in
            // a 200 answer, so it is safe to show.
            let body: String = body.chars().take(200).collect();
            return Err(self.error(
                format!("{method} {url}: HTTP {}: {body}", status.as_u16()),
                status.is_server_error(),
            ));
        }
        Ok(body)
    }
}

#[async_trait]
impl Fetch for EcsRamRole {
    fn from(&self) -> &'static str {
        "ECS instance metadata"
    }

    fn role(&self) -> &str {
        self.role_name
            .as_deref()
            .unwrap_or("the instance's RAM role")
    }

    async fn fetch(&self) -> Result<Temporary, AlibabaError> {
        let ttl = METADATA_TOKEN_TTL_SECS.to_string();
        let token = self
            .request(
                Method::PUT,
                "/latest/api/token",
                ("X-aliyun-ecs-metadata-token-ttl-seconds", &ttl),
            )
            .await?;
        let token = Secret::new(token.trim());
        let with_token = ("X-aliyun-ecs-metadata-token", token.expose());
        let role = match &self.role_name {
            Some(role) => role.clone(),
            None => {
                let listed = self
                    .request(
                        Method::GET,
                        "/latest/meta-data/ram/security-credentials/",
                        with_token,
                    )
                    .await?;
                let role = listed.lines().next().unwrap_or_default().trim().to_owned();
                check_ecs_role_name(&role).map_err(|_| {
                    self.error("no RAM role is attached to this instance".to_owned(), false)
                })?;
                role
            }
        };
        let document = self
            .request(
                Method::GET,
                &format!("/latest/meta-data/ram/security-credentials/{role}"),
                with_token,
            )
            .await?;
        let document: MetadataDocument = serde_json::from_str(&document)
            .map_err(|err| self.error(format!("role {role}: unreadable document: {err}"), true))?;
        if document.code != "Success" {
            return Err(self.error(
                format!("role {role}: the service answered Code {:?}", document.code),
                true,
            ));
        }
        document
            .fields
            .into_temporary()
            .map_err(|detail| self.error(format!("role {role}: {detail}"), true))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A clock the test moves.
    #[derive(Debug)]
    struct TestClock(Mutex<OffsetDateTime>);

    impl TestClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }

    /// Hands out `STS.<n>` keys valid for an hour from the clock's now, or fails when told.
    #[derive(Debug)]
    struct Counting {
        clock: Arc<TestClock>,
        fetches: Arc<AtomicU32>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        lifetime: Duration,
        delay: Duration,
    }

    #[async_trait]
    impl Fetch for Counting {
        fn from(&self) -> &'static str {
            "a test"
        }

        fn role(&self) -> &str {
            "acs:ram::1:role/test"
        }

        async fn fetch(&self) -> Result<Temporary, AlibabaError> {
            tokio::time::sleep(self.delay).await;
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if self.failing.load(Ordering::SeqCst) {
                return Err(AlibabaError::Credentials {
                    from: "a test",
                    detail: "STS is down".into(),
                    transient: true,
                });
            }
            Ok(Temporary {
                credentials: Credentials {
                    key: AccessKey {
                        id: format!("STS.{n}"),
                        secret: Secret::new("s"),
                    },
                    security_token: Some(Secret::new(format!("token-{n}"))),
                },
                expiration: self.clock.now() + self.lifetime,
            })
        }
    }

    struct Setup {
        clock: Arc<TestClock>,
        fetches: Arc<AtomicU32>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        refreshing: Arc<Refreshing>,
    }

    fn setup(lifetime: Duration, delay: Duration) -> Setup {
        let clock = Arc::new(TestClock(Mutex::new(
            time::macros::datetime!(2024-05-01 12:00:00 UTC),
        )));
        let fetches = Arc::new(AtomicU32::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fetch = Counting {
            clock: clock.clone(),
            fetches: fetches.clone(),
            failing: failing.clone(),
            lifetime,
            delay,
        };
        let refreshing = Arc::new(Refreshing::new(Box::new(fetch), clock.clone()));
        Setup {
            clock,
            fetches,
            failing,
            refreshing,
        }
    }

    async fn key_id(refreshing: &Refreshing) -> String {
        refreshing.credentials().await.unwrap().key.id.clone()
    }

    #[test]
    fn the_refresh_margin_is_a_fifth_at_least_five_minutes() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(720)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(900)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(21_600)),
            Duration::from_secs(4320)
        );
        // Lives shorter than ten minutes (tests only) refresh at half-life.
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }

    #[tokio::test]
    async fn credentials_are_kept_until_a_fifth_of_their_life_remains() {
        let setup = setup(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        // 47 minutes in, 13 remain (more than 12, a fifth): kept.
        setup.clock.advance(Duration::from_secs(47 * 60));
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 1);
        // 49 minutes in, 11 remain: refreshed.
        setup.clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(key_id(&setup.refreshing).await, "STS.2");
        let credentials = setup.refreshing.credentials().await.unwrap();
        assert_eq!(
            credentials.security_token.as_ref().unwrap().expose(),
            "token-2"
        );
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_valid_credentials_and_pauses() {
        let setup = setup(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        setup.failing.store(true, Ordering::SeqCst);
        setup.clock.advance(Duration::from_secs(50 * 60));
        // Due for a refresh, which fails: the old ones stay in use.
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 2);
        // No new try within the pause.
        setup.clock.advance(RETRY_PAUSE - Duration::from_secs(1));
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 2);
        // After it, a new try (failing again: still the old ones).
        setup.clock.advance(Duration::from_secs(2));
        assert_eq!(key_id(&setup.refreshing).await, "STS.1");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 3);
        // Once they expire, the failure is the caller's.
        setup.clock.advance(Duration::from_secs(10 * 60));
        let err = setup.refreshing.credentials().await.unwrap_err();
        assert!(matches!(err, AlibabaError::Credentials { .. }), "{err}");
        assert!(err.is_transient());
        // And when STS is back, new ones.
        setup.failing.store(false, Ordering::SeqCst);
        assert_eq!(key_id(&setup.refreshing).await, "STS.5");
    }

    #[tokio::test]
    async fn one_fetch_at_a_time() {
        let setup = setup(Duration::from_secs(3600), Duration::from_millis(50));
        // Nothing yet: everyone waits for the one fetch.
        let (a, b, c) = tokio::join!(
            setup.refreshing.credentials(),
            setup.refreshing.credentials(),
            setup.refreshing.credentials()
        );
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 1);
        assert!([a, b, c]
            .iter()
            .all(|c| c.as_ref().unwrap().key.id == "STS.1"));

        // Due for a refresh: one caller fetches, the others sign with the still-valid ones.
        setup.clock.advance(Duration::from_secs(50 * 60));
        let (a, b) = tokio::join!(setup.refreshing.credentials(), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            setup.refreshing.credentials().await
        });
        assert_eq!(a.unwrap().key.id, "STS.2");
        assert_eq!(b.unwrap().key.id, "STS.1");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refused_credentials_are_dropped() {
        let setup = setup(Duration::from_secs(3600), Duration::ZERO);
        let first = setup.refreshing.credentials().await.unwrap();
        let signer = Signer::Refreshing(setup.refreshing.clone());
        assert!(signer.invalidate(&first));
        assert_eq!(key_id(&setup.refreshing).await, "STS.2");
        // Dropping credentials no longer current does nothing.
        assert!(signer.invalidate(&first));
        assert_eq!(key_id(&setup.refreshing).await, "STS.2");
        assert_eq!(setup.fetches.load(Ordering::SeqCst), 2);
        // A long-lived key is never dropped.
        let fixed = Signer::Static(Arc::new(first.key.clone().into()));
        assert!(!fixed.invalidate(&first));
    }

    #[test]
    fn names_and_arns() {
        assert!(check_role_arn("acs:ram::1234567890123456:role/skybroker-provisioner").is_ok());
        for bad in [
            "",
            "acs:ram::1234567890123456:role/",
            "acs:ram::12345x:role/a",
            "acs:ram:cn-hangzhou:1234567890123456:role/a",
            "acs:ram::1234567890123456:user/a",
            "acs:ram::1234567890123456:role/a b",
            "arn:aws:iam::123456789012:role/a",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
        assert!(
            check_oidc_provider_arn("acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1").is_ok()
        );
        assert!(check_oidc_provider_arn("acs:ram::1234567890123456:role/ack").is_err());
        for good in ["ab", "skybroker", "user@example.com", "a.b-c_d"] {
            assert!(check_session_name(good).is_ok(), "{good}");
        }
        for bad in ["a", "has space", "ninja*", &"x".repeat(65)] {
            assert!(check_session_name(bad).is_err(), "{bad}");
        }
        assert!(check_session_duration(Duration::from_secs(900)).is_ok());
        assert!(check_session_duration(Duration::from_secs(43_200)).is_ok());
        assert!(check_session_duration(Duration::from_secs(899)).is_err());
        assert!(check_session_duration(Duration::from_secs(43_201)).is_err());
        assert!(check_external_id("abcd-1234").is_ok());
        assert!(check_external_id("a").is_err());
        assert!(check_external_id("a b").is_err());
        assert!(check_ecs_role_name("EcsRole").is_ok());
        assert!(check_ecs_role_name("../x").is_err());
    }
}
