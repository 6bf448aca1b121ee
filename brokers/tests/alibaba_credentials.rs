//! The Alibaba Cloud provider with temporary credentials, against the fake Alibaba Cloud
//! (issue #21): the provider provisions, binds, unbinds and deprovisions an OSS bucket with
//! the permissions of a RAM role it assumes, never with its own.
//!
//! - `assume_role_*`: the broker's AccessKey belongs to a RAM user whose only permission is
//!   `sts:AssumeRole` (`deploy/policies/alibaba/assume-role.json`); the role trusts that user
//!   (`trust-ram-user.json`) and holds `deploy/policies/alibaba/oss.json`. Without
//!   `role_arn` the same key is denied; with it, everything works and one session serves
//!   every call. When the fake ends the session, the next call is refused, the provider
//!   fetches a new session and carries on. A role whose trust policy does not name the
//!   user is refused as a credentials problem.
//! - `ecs_ram_role_*`: no key at all; the fake's instance metadata service hands out the
//!   credentials of the role attached to the "instance" (named, or asked for); the role
//!   trusts ECS (`trust-ecs.json`).
//! - `oidc_*`: no key at all; a service account token file (as ACK's RRSA mounts it) is
//!   exchanged with AssumeRoleWithOIDC for a role trusting the cluster's service account
//!   (`trust-rrsa.json`); the file is read again at every fetch, so a token the role's trust
//!   policy refuses stops the provider and a good one brings it back.
//!
//! The policies and trust policies are the ones `deploy/policies/alibaba/` ships (their
//! `<placeholders>` filled in), so a permission they lack fails here.
//!
//! The fake checks ACS3/OSS4 signatures, security tokens and RAM policies as the real
//! service does, so a call that succeeds here was really made under the role's policy.
//! Every test also checks the log for the secrets it knows.

#![cfg(feature = "alibaba")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use serde_json::{json, Value};
use skybroker_alibaba_fake::ram::ACCOUNT_ID;
use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};
use skybroker_brokers::alibaba::client::{AlibabaClient, ClientConfig, Product};
use skybroker_brokers::alibaba::credential::AccessKey;
use skybroker_brokers::alibaba::Alibaba;
use skybroker_brokers::{Broker, BrokerError, OperationKind, OperationRequest, Progress};
use skybroker_config::{ProviderConfig, Secret};

/// The role the broker assumes.
const ROLE: &str = "skybroker-provisioner";
/// The RAM user whose key the broker holds, when it has one.
const BASE_USER: &str = "skybroker-base";

// ===== the log =====

/// Every log line of this test binary.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

fn capture_log() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if log::set_logger(&Capture).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// None of `secrets` is in any log line.
fn assert_not_logged(secrets: &[&str]) {
    let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
    for secret in secrets {
        assert!(secret.len() >= 8, "a real secret: {secret:?}");
        if let Some(line) = log.iter().find(|line| line.contains(secret)) {
            panic!("a secret was logged: {line}");
        }
    }
}

fn logged(needle: &str) -> bool {
    let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
    log.iter().any(|line| line.contains(needle))
}

// ===== the fake and its account =====

fn new_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fake with a root key of its own, and a client signing with that key to set it up.
struct Cloud {
    fake: FakeAlibaba,
    config: FakeConfig,
    root: AlibabaClient,
}

impl Cloud {
    async fn start(tweak: impl FnOnce(&mut FakeConfig)) -> Cloud {
        capture_log();
        let mut config = FakeConfig {
            access_key_id: format!("LTAI5t{}", &new_hex()[..18]),
            access_key_secret: format!("RootSecret{}", new_hex()),
            ..FakeConfig::default()
        };
        tweak(&mut config);
        let fake = FakeAlibaba::start(config.clone())
            .await
            .expect("the fake listens");
        let root = client(
            &fake,
            &config,
            AccessKey {
                id: config.access_key_id.clone(),
                secret: Secret::new(config.access_key_secret.clone()),
            },
        );
        Cloud { fake, config, root }
    }

    async fn ram(&self, action: &str, params: &[(&str, &str)]) -> Value {
        self.root
            .rpc(Product::Ram, action, params)
            .await
            .unwrap_or_else(|err| panic!("RAM {action}: {err}"))
    }

    /// The role, with the trust policy `trust`, holding the broker's OSS policy from
    /// `deploy/policies/alibaba/oss.json`.
    async fn provisioner_role(&self, name: &str, trust: &str) {
        let policy = shipped("oss.json", &[]);
        let policy_name = format!("{name}-oss");
        self.ram(
            "CreatePolicy",
            &[("PolicyName", &policy_name), ("PolicyDocument", &policy)],
        )
        .await;
        self.ram(
            "CreateRole",
            &[("RoleName", name), ("AssumeRolePolicyDocument", trust)],
        )
        .await;
        self.ram(
            "AttachPolicyToRole",
            &[
                ("PolicyType", "Custom"),
                ("PolicyName", &policy_name),
                ("RoleName", name),
            ],
        )
        .await;
    }

    /// The RAM user whose key the broker holds, allowed only to assume `skybroker-*` roles
    /// (`deploy/policies/alibaba/assume-role.json`); its AccessKey.
    async fn base_user(&self) -> AccessKey {
        self.ram("CreateUser", &[("UserName", BASE_USER)]).await;
        let key = self
            .ram("CreateAccessKey", &[("UserName", BASE_USER)])
            .await;
        let policy = shipped("assume-role.json", &[]);
        self.ram(
            "CreatePolicy",
            &[
                ("PolicyName", "skybroker-assume"),
                ("PolicyDocument", &policy),
            ],
        )
        .await;
        self.ram(
            "AttachPolicyToUser",
            &[
                ("PolicyType", "Custom"),
                ("PolicyName", "skybroker-assume"),
                ("UserName", BASE_USER),
            ],
        )
        .await;
        AccessKey {
            id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: Secret::new(key["AccessKey"]["AccessKeySecret"].as_str().unwrap()),
        }
    }

    /// `[providers.alibaba]` reaching the fake, with `settings` added.
    fn provider(&self, settings: Value, secret: Option<&Secret>) -> Alibaba {
        self.provider_with(settings, |config| config.password = secret.cloned())
    }

    /// [`Cloud::provider`], with the section then changed by `tweak`.
    fn provider_with(&self, settings: Value, tweak: impl FnOnce(&mut ProviderConfig)) -> Alibaba {
        let mut section = json!({
            "kind": "alibaba",
            "region": self.config.region,
            "rds_endpoint": self.fake.rpc_url(),
            "ram_endpoint": self.fake.rpc_url(),
            "oss_endpoint": self.fake.oss_url(),
            "oss_path_style": true,
            "max_attempts": 3,
        });
        for (name, value) in settings.as_object().unwrap() {
            section[name] = value.clone();
        }
        let mut config: ProviderConfig = serde_json::from_value(section).unwrap();
        tweak(&mut config);
        Alibaba::from_config(&config).expect("the provider builds")
    }

    fn buckets(&self) -> Vec<String> {
        self.fake.snapshot()["oss"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bucket| bucket["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The STS sessions the fake issued: `(role, session name)`.
    fn sessions(&self) -> Vec<(String, String)> {
        self.fake.snapshot()["ram"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|session| {
                (
                    session["role"].as_str().unwrap().to_owned(),
                    session["session_name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// A policy of `deploy/policies/alibaba/` with its `<placeholders>` replaced.
fn shipped(file: &str, fill: &[(&str, &str)]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/policies/alibaba")
        .join(file);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    for (placeholder, value) in fill.iter().chain(&[("<account-id>", ACCOUNT_ID)]) {
        text = text.replace(placeholder, value);
    }
    assert!(!text.contains('<'), "{file}: a placeholder is left: {text}");
    text
}

/// A client of the fake signing with `key`, one attempt per call.
fn client(fake: &FakeAlibaba, config: &FakeConfig, key: AccessKey) -> AlibabaClient {
    let mut client = ClientConfig::new(key, config.region.clone());
    client.rds_endpoint = fake.rpc_url();
    client.ram_endpoint = fake.rpc_url();
    client.oss_endpoint = fake.oss_url();
    client.sts_endpoint = fake.rpc_url();
    client.oss_path_style = true;
    client.max_attempts = 1;
    AlibabaClient::new(client).expect("a client")
}

// ===== OSB operations on an OSS plan =====

fn request(kind: OperationKind, instance: &str) -> OperationRequest {
    OperationRequest {
        kind,
        operation_id: format!("{}-{}", kind.name(), new_hex()).into(),
        instance_id: instance.into(),
        binding_id: (matches!(kind, OperationKind::Bind | OperationKind::Unbind))
            .then(|| format!("{instance}-binding").into()),
        service_id: "ali-oss".into(),
        plan_id: "ali-oss-private".into(),
        previous_plan_id: None,
        plan_settings: Arc::new(json!({"service": "oss"})),
        parameters: json!({}),
        context: json!({"platform": "test"}),
        maintenance_version: None,
        instance_state: Value::Null,
        binding_state: Value::Null,
        reference: None,
        accepts_incomplete: true,
        originating_identity: None,
    }
}

/// Starts `request` and polls it until it is done; its completion.
async fn settle(broker: &Alibaba, mut request: OperationRequest) -> skybroker_brokers::Completion {
    let what = format!("{} of {}", request.kind.name(), request.instance_id);
    for _ in 0..50 {
        let progress = if request.reference.is_some() {
            broker.poll(&request).await
        } else {
            match request.kind {
                OperationKind::Provision => broker.provision(&request).await,
                OperationKind::Deprovision => broker.deprovision(&request).await,
                OperationKind::Bind => broker.bind(&request).await,
                OperationKind::Unbind => broker.unbind(&request).await,
                OperationKind::Update => broker.update(&request).await,
            }
        };
        match progress {
            Ok(Progress::Done(completion)) => return completion,
            Ok(Progress::InProgress { reference, .. }) => {
                request.reference = Some(reference);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    panic!("{what}: still in progress");
}

/// Provisions, binds, unbinds and deprovisions a bucket for `instance`; the bucket's name.
async fn lifecycle(cloud: &Cloud, broker: &Alibaba, instance: &str) -> String {
    let provisioned = settle(broker, request(OperationKind::Provision, instance)).await;
    let state = provisioned.state.expect("the bucket is in the state");
    let bucket = state["bucket"].as_str().expect("a bucket name").to_owned();
    assert!(cloud.buckets().contains(&bucket), "{:?}", cloud.buckets());

    let mut bind = request(OperationKind::Bind, instance);
    bind.instance_state = state.clone();
    let bound = settle(broker, bind).await;
    let binding = bound.binding.expect("credentials");
    assert!(binding.credentials.expect("credentials")["access_key_id"].is_string());
    let mut unbind = request(OperationKind::Unbind, instance);
    unbind.instance_state = state.clone();
    unbind.binding_state = bound.state.unwrap_or(Value::Null);
    settle(broker, unbind).await;

    let mut deprovision = request(OperationKind::Deprovision, instance);
    deprovision.instance_state = state;
    settle(broker, deprovision).await;
    assert!(!cloud.buckets().contains(&bucket), "{:?}", cloud.buckets());
    bucket
}

fn role_arn(role: &str) -> String {
    format!("acs:ram::{ACCOUNT_ID}:role/{role}")
}

// ===== AssumeRole =====

#[tokio::test]
async fn assume_role_provisions_with_the_roles_permissions_and_the_key_alone_is_denied() {
    let cloud = Cloud::start(|_| {}).await;
    cloud
        .provisioner_role(ROLE, &shipped("trust-ram-user.json", &[]))
        .await;
    let base = cloud.base_user().await;
    let key_settings = json!({"access_key_id": base.id});

    // The key alone may only assume the role: creating a bucket with it is denied.
    let key_only = cloud.provider(key_settings.clone(), Some(&base.secret));
    let err = key_only
        .provision(&request(OperationKind::Provision, "sts-denied"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Failed(text) if text.contains("AccessDenied")),
        "{err:?}"
    );
    assert_eq!(cloud.buckets(), Vec::<String>::new());
    assert_eq!(cloud.sessions(), vec![]);

    // With the role, everything works, with one session for every call.
    let mut settings = key_settings.clone();
    settings["role_arn"] = role_arn(ROLE).into();
    settings["sts_endpoint"] = cloud.fake.rpc_url().into();
    let assuming = cloud.provider(settings, Some(&base.secret));
    lifecycle(&cloud, &assuming, "sts-allowed").await;
    assert_eq!(
        cloud.sessions(),
        vec![(ROLE.to_owned(), "skybroker".to_owned())]
    );

    // The session ends early (revoked, or the clocks disagree): the next call is refused
    // once, and the provider fetches a new session and carries on.
    cloud.fake.expire_sessions();
    lifecycle(&cloud, &assuming, "sts-renewed").await;
    assert_eq!(cloud.sessions().len(), 2);
    assert!(logged("refused the temporary credentials"));

    assert_not_logged(&[base.secret.expose(), &cloud.config.access_key_secret]);
}

#[tokio::test]
async fn assume_role_of_a_role_that_does_not_trust_the_key_is_a_credentials_error() {
    let cloud = Cloud::start(|_| {}).await;
    // Trusts another user only.
    let trust = shipped("trust-ram-user.json", &[]).replace(BASE_USER, "someone-else");
    cloud.provisioner_role(ROLE, &trust).await;
    let base = cloud.base_user().await;
    let broker = cloud.provider(
        json!({"access_key_id": base.id, "role_arn": role_arn(ROLE),
               "sts_endpoint": cloud.fake.rpc_url()}),
        Some(&base.secret),
    );
    let err = broker
        .provision(&request(OperationKind::Provision, "sts-untrusted"))
        .await
        .unwrap_err();
    match &err {
        BrokerError::Unauthenticated(text) => {
            assert!(text.contains("STS AssumeRole"), "{text}");
            assert!(text.contains("NoPermission"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // A role that does not exist is a credentials problem too, not a missing resource (a
    // deprovision must not take it for a bucket that is gone).
    let missing = cloud.provider(
        json!({"access_key_id": base.id, "role_arn": role_arn("no-such-role"),
               "sts_endpoint": cloud.fake.rpc_url()}),
        Some(&base.secret),
    );
    let mut deprovision = request(OperationKind::Deprovision, "sts-missing-role");
    deprovision.instance_state = json!({"service": "oss", "bucket": "skybroker-x"});
    let err = missing.deprovision(&deprovision).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unauthenticated(_)), "{err:?}");
    assert_eq!(cloud.buckets(), Vec::<String>::new());
    assert_not_logged(&[base.secret.expose()]);
}

// ===== ECS instance RAM role =====

#[tokio::test]
async fn ecs_ram_role_named_or_discovered_provisions_without_a_key() {
    let cloud = Cloud::start(|config| config.ecs_ram_role = Some("skybroker-ecs".to_owned())).await;
    cloud
        .provisioner_role("skybroker-ecs", &shipped("trust-ecs.json", &[]))
        .await;

    let named = cloud.provider(
        json!({"ecs_ram_role": "skybroker-ecs", "ecs_metadata_endpoint": cloud.fake.metadata_url()}),
        None,
    );
    lifecycle(&cloud, &named, "ecs-named").await;
    let discovered = cloud.provider(
        json!({"credential_source": "ecs_ram_role",
               "ecs_metadata_endpoint": cloud.fake.metadata_url()}),
        None,
    );
    lifecycle(&cloud, &discovered, "ecs-discovered").await;
    // The metadata service hands both the same session.
    assert_eq!(cloud.sessions().len(), 1);
    assert_eq!(cloud.sessions()[0].0, "skybroker-ecs");

    // A role that is not the instance's: the metadata service has none by that name.
    let wrong = cloud.provider(
        json!({"ecs_ram_role": "other-role", "ecs_metadata_endpoint": cloud.fake.metadata_url()}),
        None,
    );
    let err = wrong
        .provision(&request(OperationKind::Provision, "ecs-wrong"))
        .await
        .unwrap_err();
    match &err {
        BrokerError::Unauthenticated(text) => {
            assert!(text.contains("ECS instance metadata"), "{text}");
            assert!(text.contains("404"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_not_logged(&[&cloud.config.access_key_secret]);
}

// ===== OIDC (ACK RRSA) =====

/// An OIDC token as ACK's RRSA mounts one (the fake does not check signatures, so this
/// one is not signed).
fn oidc_token(issuer: &str, subject: &str, valid_for: i64) -> String {
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!(
        "{}.{}.{}",
        encode(json!({"alg": "RS256", "kid": "rrsa-test"})),
        encode(
            json!({"iss": issuer, "aud": ["sts.aliyuncs.com"], "sub": subject,
                      "iat": now, "exp": now + valid_for})
        ),
        new_hex()
    )
}

#[tokio::test]
async fn oidc_token_file_is_exchanged_and_read_again_at_every_fetch() {
    let cloud = Cloud::start(|_| {}).await;
    let issuer = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c0123456789";
    let provider_arn =
        cloud
            .fake
            .add_oidc_provider("ack-rrsa-c0123", issuer, &["sts.aliyuncs.com"]);
    let trust = shipped(
        "trust-rrsa.json",
        &[
            ("<cluster-id>", "c0123"),
            ("<cluster OIDC issuer URL>", issuer),
            ("<namespace>", "skybroker"),
            ("<service account>", "skybroker"),
        ],
    );
    cloud.provisioner_role("skybroker-rrsa", &trust).await;
    let token_file = std::env::temp_dir().join(format!("skybroker-rrsa-{}", new_hex()));
    let good = oidc_token(issuer, "system:serviceaccount:skybroker:skybroker", 3600);
    std::fs::write(&token_file, &good).unwrap();

    let broker = cloud.provider(
        json!({"role_arn": role_arn("skybroker-rrsa"), "oidc_provider_arn": provider_arn,
               "oidc_token_file": token_file, "sts_endpoint": cloud.fake.rpc_url(),
               "role_session_name": "skybroker-pod"}),
        None,
    );
    lifecycle(&cloud, &broker, "rrsa-first").await;
    assert_eq!(
        cloud.sessions(),
        vec![("skybroker-rrsa".to_owned(), "skybroker-pod".to_owned())]
    );

    // The kubelet replaced the token with one of another service account: once the session
    // ends, the new token is read and the role's trust policy refuses it.
    let intruder = oidc_token(issuer, "system:serviceaccount:default:intruder", 3600);
    std::fs::write(&token_file, &intruder).unwrap();
    cloud.fake.expire_sessions();
    let err = broker
        .provision(&request(OperationKind::Provision, "rrsa-refused"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Unauthenticated(text) if text.contains("AssumeRoleWithOIDC")),
        "{err:?}"
    );
    // An expired token is refused too.
    std::fs::write(
        &token_file,
        oidc_token(issuer, "system:serviceaccount:skybroker:skybroker", -60),
    )
    .unwrap();
    let err = broker
        .provision(&request(OperationKind::Provision, "rrsa-expired"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Unauthenticated(text) if text.contains("AuthenticationFail.OIDCToken.Expired")),
        "{err:?}"
    );

    // A good token again: back to work.
    let renewed = oidc_token(issuer, "system:serviceaccount:skybroker:skybroker", 3600);
    std::fs::write(&token_file, &renewed).unwrap();
    lifecycle(&cloud, &broker, "rrsa-again").await;
    assert_eq!(cloud.sessions().len(), 2);

    std::fs::remove_file(&token_file).ok();
    assert_not_logged(&[&good, &intruder, &renewed, &cloud.config.access_key_secret]);
}

/// Issue #21, secrets from files: the AccessKey comes from a mounted secret (an id file and a
/// secret file). It is rotated under the running provider (a new key written as Kubernetes
/// writes a secret volume, the old key deleted in RAM) and the next lifecycle works with the
/// new key; had the files not been read again, it would fail, the old key being gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_key_files_rotated_under_a_running_provider() {
    let cloud = Cloud::start(|_| {}).await;
    let user = "skybroker-rotated";
    cloud.ram("CreateUser", &[("UserName", user)]).await;
    let policy = shipped("oss.json", &[]);
    cloud
        .ram(
            "CreatePolicy",
            &[
                ("PolicyName", "skybroker-oss-rotated"),
                ("PolicyDocument", &policy),
            ],
        )
        .await;
    cloud
        .ram(
            "AttachPolicyToUser",
            &[
                ("PolicyType", "Custom"),
                ("PolicyName", "skybroker-oss-rotated"),
                ("UserName", user),
            ],
        )
        .await;
    let new_key = || async {
        let key = cloud.ram("CreateAccessKey", &[("UserName", user)]).await;
        (
            key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            key["AccessKey"]["AccessKeySecret"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let dir = std::env::temp_dir().join(format!("skybroker-alibaba-keys-{}", new_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let (id_file, secret_file) = (dir.join("id"), dir.join("secret"));
    let write = |key: &(String, String)| {
        for (path, text) in [(&id_file, &key.0), (&secret_file, &key.1)] {
            let next = path.with_extension("next");
            std::fs::write(&next, format!("{text}\n")).unwrap();
            std::fs::rename(&next, path).unwrap();
        }
    };
    let old = new_key().await;
    write(&old);
    let broker = cloud.provider_with(
        json!({"access_key_id_file": id_file, "key_reload_secs": 1}),
        |config| {
            config.password = Some(Secret::new(old.1.clone()));
            config.password_file = Some(secret_file.clone());
        },
    );
    lifecycle(&cloud, &broker, &format!("rotated-{}", new_hex())).await;
    // The same key, not from files: it is read once.
    let fixed = cloud.provider(
        json!({"access_key_id": old.0}),
        Some(&Secret::new(old.1.clone())),
    );

    let new = new_key().await;
    write(&new);
    cloud
        .ram(
            "DeleteAccessKey",
            &[("UserName", user), ("UserAccessKeyId", old.0.as_str())],
        )
        .await;
    lifecycle(&cloud, &broker, &format!("rotated-{}", new_hex())).await;
    let refused = fixed
        .provision(&request(
            OperationKind::Provision,
            &format!("fixed-{}", new_hex()),
        ))
        .await;
    assert!(
        matches!(refused, Err(BrokerError::Unauthenticated(_))),
        "the deleted key, read once, is refused: {refused:?}"
    );
    assert_not_logged(&[&old.1, &new.1]);
    std::fs::remove_dir_all(&dir).unwrap();
}
