//! A stand-in for Alibaba Cloud's RDS, RAM, STS and OSS APIs and an ECS instance's metadata
//! service, started by tests on loopback ports.
//!
//! There is no Alibaba Cloud to test against here, so this fake checks what the real
//! service checks, from its own code (it shares nothing with the broker's signer, so one
//! bug cannot hide in both):
//! - RPC calls (RDS, RAM, STS) signed with ACS3-HMAC-SHA256: the signature, the timestamp
//!   window and single use of each nonce, answered with the real error codes;
//! - temporary credentials from STS (AssumeRole, AssumeRoleWithOIDC) and from the ECS
//!   metadata service, accepted only with their security token and until they expire, and
//!   authorized with their role's policies;
//! - OSS calls signed with OSS4-HMAC-SHA256, and RAM policies of the calling key evaluated
//!   against the bucket and object they touch;
//! - state machines that take time (an RDS instance stays `Creating`, then `Running`),
//!   ClientToken idempotency, and injected throttling.
//!
//! # Layout
//! - [`FakeConfig`], [`FakeAlibaba`]: configure, start, inspect, inject faults;
//! - [`rpc`]: the RPC endpoint: ACS3 verification, dispatch by product version;
//! - [`api`]: parameters, the error answer and id/date formats the RPC products share;
//! - [`rds`]: DB instances, databases, accounts (optionally real, on a PostgreSQL/MySQL server);
//! - [`dbserver`]: the SQL that makes RDS databases and accounts real on such a server;
//! - [`ram`]: users, access keys, policies, roles and their sessions, and the policy
//!   evaluation every endpoint uses;
//! - [`sts`]: AssumeRole, AssumeRoleWithOIDC, GetCallerIdentity;
//! - [`metadata`]: the ECS instance metadata service's RAM role credentials;
//! - [`oss`]: buckets and objects behind OSS4 verification.
//!
//! The binary (`src/main.rs`) runs the same fake as a process for tests in other languages
//! (the official Python SDKs are run against it), with the unsigned control routes
//! `GET /__fake/state`, `POST /__fake/throttle?calls=N` and `POST /__fake/expire-sessions`
//! on the RPC port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod api;
pub mod dbserver;
pub mod metadata;
pub mod oss;
pub mod ram;
pub mod rds;
pub mod rpc;
pub mod sts;

pub use ram::Principal;

/// How the fake behaves: the account's key, the region, and how long RDS takes.
#[derive(Clone)]
pub struct FakeConfig {
    /// The account's own (root) AccessKey ID: it may do everything.
    pub access_key_id: String,
    /// The root key's secret.
    pub access_key_secret: String,
    /// The one region this fake serves, e.g. `cn-hangzhou`.
    pub region: String,
    /// How long a new RDS instance stays `Creating`.
    pub creating: Duration,
    /// How long a deleted RDS instance stays `Deleting` before it is gone.
    pub deleting: Duration,
    /// How long a spec change keeps an instance `DBInstanceClassChanging`.
    pub changing: Duration,
    /// How far `x-acs-date` may be from the fake's clock (15 minutes on the real service).
    pub max_clock_skew: Duration,
    /// `host:port` of a real PostgreSQL server (user `postgres`, trust auth) that
    /// PostgreSQL-engine instances live on; `None` records accounts only.
    pub postgres: Option<String>,
    /// `host:port` of a real MySQL/MariaDB server (user `root`, no password) that
    /// MySQL-engine instances live on; `None` records accounts only.
    pub mysql: Option<String>,
    /// How many live RDS instances the account may have.
    pub instance_quota: usize,
    /// The RAM role attached to the fake ECS instance whose metadata service
    /// [`FakeAlibaba::metadata_url`] serves (the role itself is made in RAM by the test).
    pub ecs_ram_role: Option<String>,
    /// How long the metadata service's role credentials last (6 hours on ECS).
    pub ecs_credentials_lifetime: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            access_key_id: "LTAI5tFakeRootKey0000000".to_owned(),
            access_key_secret: "FakeRootSecret0000000000000000".to_owned(),
            region: "cn-hangzhou".to_owned(),
            creating: Duration::from_secs(2),
            deleting: Duration::from_secs(1),
            changing: Duration::from_secs(1),
            max_clock_skew: Duration::from_secs(15 * 60),
            postgres: None,
            mysql: None,
            instance_quota: 100,
            ecs_ram_role: None,
            ecs_credentials_lifetime: Duration::from_secs(6 * 3600),
        }
    }
}

/// Hand-written so that the secret never reaches a log line.
impl std::fmt::Debug for FakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConfig")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("region", &self.region)
            .field("creating", &self.creating)
            .field("deleting", &self.deleting)
            .field("changing", &self.changing)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("postgres", &self.postgres)
            .field("mysql", &self.mysql)
            .field("instance_quota", &self.instance_quota)
            .field("ecs_ram_role", &self.ecs_ram_role)
            .field("ecs_credentials_lifetime", &self.ecs_credentials_lifetime)
            .finish()
    }
}

/// Faults a test asks for; every endpoint consults them before doing any work.
#[derive(Debug, Default)]
pub struct Faults {
    /// How many of the next calls answer throttling.
    throttle: AtomicU32,
}

impl Faults {
    /// Whether this call should answer throttling (consumes one injected fault).
    pub fn take_throttle(&self) -> bool {
        // A compare-and-swap loop, so that two concurrent calls never both take the last fault.
        self.throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Make the next `calls` calls (on any endpoint) answer throttling.
    pub fn throttle_next(&self, calls: u32) {
        self.throttle.store(calls, Ordering::SeqCst);
    }
}

/// Everything the endpoints share. Each part has its own lock, held only for short,
/// synchronous sections and never across an `.await`.
pub struct Shared {
    /// The configuration the fake started with.
    pub config: FakeConfig,
    /// RAM users, keys and policies (also consulted by OSS for authorization).
    pub ram: Mutex<ram::Ram>,
    /// Buckets and objects.
    pub oss: oss::OssState,
    /// Injected faults.
    pub faults: Faults,
    /// RDS instances, databases and accounts.
    pub rds: Mutex<rds::Rds>,
    /// Signature nonces seen within the clock-skew window.
    pub nonces: Mutex<rpc::NonceCache>,
    /// The metadata service's session tokens and current credentials.
    pub metadata: Mutex<metadata::MetadataState>,
}

impl Shared {
    /// Fresh state for `config`.
    pub fn new(config: FakeConfig) -> Shared {
        Shared {
            ram: Mutex::new(ram::Ram::new(
                &config.access_key_id,
                &config.access_key_secret,
            )),
            oss: oss::OssState::default(),
            faults: Faults::default(),
            rds: Mutex::new(rds::Rds::default()),
            nonces: Mutex::new(rpc::NonceCache::default()),
            metadata: Mutex::new(metadata::MetadataState::default()),
            config,
        }
    }

    /// Everything held, for tests: no passwords, secrets or object contents.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut snapshot = lock(&self.rds).snapshot();
        snapshot["ram"] = lock(&self.ram).snapshot();
        snapshot["oss"] = self.oss.snapshot();
        snapshot
    }
}

/// Locks a mutex, ignoring poisoning: a panicking handler leaves the fake's maps in a
/// consistent state (every update is a single insert or remove), and a test fake that
/// stops answering after one bug would hide the next one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running fake: three HTTP listeners on loopback, served until this is dropped.
pub struct FakeAlibaba {
    /// The state the listeners serve.
    shared: Arc<Shared>,
    /// Where the RPC endpoint (RDS, RAM, STS) listens.
    rpc_addr: SocketAddr,
    /// Where the OSS endpoint listens.
    oss_addr: SocketAddr,
    /// Where the ECS metadata service listens.
    metadata_addr: SocketAddr,
    /// The server tasks, aborted on drop so a test's fake does not outlive it.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeAlibaba {
    /// Binds the RPC, OSS and metadata listeners on `127.0.0.1:0` and serves them on the
    /// current runtime.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeAlibaba> {
        let shared = Arc::new(Shared::new(config));
        let rpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let oss_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let metadata_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let rpc_addr = rpc_listener.local_addr()?;
        let oss_addr = oss_listener.local_addr()?;
        let metadata_addr = metadata_listener.local_addr()?;
        let rpc_app = rpc::router(shared.clone());
        let oss_app = oss::router(shared.clone());
        let metadata_app = metadata::router(shared.clone());
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(err) = axum::serve(rpc_listener, rpc_app).await {
                    log::error!("fake RPC endpoint stopped: {err}");
                }
            }),
            tokio::spawn(async move {
                if let Err(err) = axum::serve(oss_listener, oss_app).await {
                    log::error!("fake OSS endpoint stopped: {err}");
                }
            }),
            tokio::spawn(async move {
                if let Err(err) = axum::serve(metadata_listener, metadata_app).await {
                    log::error!("fake metadata service stopped: {err}");
                }
            }),
        ];
        log::info!(
            "fake Alibaba Cloud: RPC on {rpc_addr}, OSS on {oss_addr}, metadata on {metadata_addr}"
        );
        Ok(FakeAlibaba {
            shared,
            rpc_addr,
            oss_addr,
            metadata_addr,
            tasks,
        })
    }

    /// The RPC endpoint (RDS and RAM), e.g. `http://127.0.0.1:40123`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    /// The OSS endpoint, e.g. `http://127.0.0.1:40124`.
    pub fn oss_url(&self) -> String {
        format!("http://{}", self.oss_addr)
    }

    /// The ECS metadata service, e.g. `http://127.0.0.1:40125` (`http://100.100.100.200` on
    /// a real instance).
    pub fn metadata_url(&self) -> String {
        format!("http://{}", self.metadata_addr)
    }

    /// Registers an OIDC identity provider in RAM (as ACK does for a cluster with RRSA);
    /// returns its ARN.
    pub fn add_oidc_provider(&self, name: &str, issuer: &str, client_ids: &[&str]) -> String {
        lock(&self.shared.ram).add_oidc_provider(name, issuer, client_ids)
    }

    /// Ends every STS session now: their keys are refused as expired from then on.
    pub fn expire_sessions(&self) {
        lock(&self.shared.ram).expire_sessions(time::OffsetDateTime::now_utc());
    }

    /// Make the next `calls` calls (on either endpoint) answer throttling.
    pub fn throttle_next(&self, calls: u32) {
        self.shared.faults.throttle_next(calls);
    }

    /// Everything the fake holds, for assertions: RDS instances, databases and accounts
    /// (privileges, no passwords), RAM users, key ids, policies and attachments, and OSS.
    pub fn snapshot(&self) -> serde_json::Value {
        self.shared.snapshot()
    }

    /// The shared state, for tests that reach in (e.g. to add a RAM user directly).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Drop for FakeAlibaba {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
