//! AWS credentials as operators run them (issue 21): a role assumed on top of the broker's own
//! key (with the external id its trust policy asks for), a plan with a region and a role of
//! its own, web identity from the environment exactly as EKS sets it for IRSA, and a key in
//! a mounted secret rotated under a running broker.
//!
//! The moto of `./test.sh` enforces IAM: it checks that the caller may `sts:AssumeRole`, that
//! the role's trust policy names the caller and its `sts:ExternalId` condition holds, and it
//! evaluates the assumed role's own policies on every later call. So a broker whose key can
//! do nothing but assume roles provisions only if the role really is assumed. moto cannot
//! take the unsigned `AssumeRoleWithWebIdentity` call while enforcing IAM, so the IRSA test
//! starts a moto of its own without enforcement and checks, in moto's record of assumed
//! roles, that the token file's role and session were assumed. (The shared moto's record
//! cannot be read back once other tests have deleted users: moto fails to serialise it.)

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skybroker_brokers::aws::AwsClients;

use crate::aws::*;
use crate::harness::*;
use crate::servers::*;

/// A user that may only assume roles; its ARN and key.
async fn assume_only_user(admin: &AwsClients) -> (String, (String, String)) {
    let name = format!("skybroker-assumer-{}", uuid::Uuid::new_v4().simple());
    let user = admin
        .iam
        .create_user()
        .user_name(&name)
        .send()
        .await
        .unwrap();
    let arn = user.user().unwrap().arn().to_owned();
    let only_assume = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]});
    admin
        .iam
        .put_user_policy()
        .user_name(&name)
        .policy_name("assume")
        .policy_document(only_assume.to_string())
        .send()
        .await
        .unwrap();
    (arn, new_key(admin, &name).await)
}

/// A role that `trusted` may assume (with `external_id`, if given), holding the broker's
/// policies; its ARN.
async fn broker_role(admin: &AwsClients, trusted: &str, external_id: Option<&str>) -> String {
    let name = format!("skybroker-role-{}", uuid::Uuid::new_v4().simple());
    let mut statement = json!({"Effect": "Allow", "Principal": {"AWS": trusted},
                               "Action": "sts:AssumeRole"});
    if let Some(id) = external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": id}});
    }
    let trust = json!({"Version": "2012-10-17", "Statement": [statement]});
    let role = admin
        .iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    for (policy, document) in broker_policies() {
        admin
            .iam
            .put_role_policy()
            .role_name(&name)
            .policy_name(policy)
            .policy_document(document.to_string())
            .send()
            .await
            .unwrap();
    }
    role.role().unwrap().arn().to_owned()
}

/// Where a bucket is, as S3 says.
async fn bucket_region(admin: &AwsClients, bucket: &str) -> String {
    let location = admin
        .s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    location
        .location_constraint()
        .map(|c| c.as_str().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// The roles moto has handed credentials for: `(role ARN, session name)`.
async fn assumed_roles(endpoint: &str) -> Vec<(String, String)> {
    let data: Value = http_client()
        .get(format!("{endpoint}/moto-api/data.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["sts"]["AssumedRole"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|role| {
            (
                role["role_arn"].as_str().unwrap_or_default().to_owned(),
                role["session_name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Issue 21, assume-role: the provider's role (with its external id) and a plan's own role
/// and region. The broker's key may only assume roles, so a bucket exists only if a role
/// made it; a plan's role and external id override the provider's (the wrong one is refused
/// by the role's trust policy); a plan's region is where its bucket is and what its bindings
/// are told; an update that would move an instance to another region fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_roles_are_assumed_per_provider_and_per_plan() {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let (user_arn, key) = assume_only_user(&admin).await;
    let external_id = format!("tenant-{}", uuid::Uuid::new_v4().simple());
    let provider_role = broker_role(&admin, &user_arn, Some(&external_id)).await;
    let plan_role = broker_role(&admin, &user_arn, None).await;
    let west = "us-west-2";
    let plans = [
        ("home", json!({"service": "s3", "on_deprovision": "empty"})),
        (
            "west",
            json!({"service": "s3", "on_deprovision": "empty", "region": west,
                   "role_arn": plan_role}),
        ),
        (
            "impostor",
            json!({"service": "s3", "role_arn": provider_role, "external_id": "not-the-one"}),
        ),
    ];
    let iam_path = format!("/skybroker/{}/", uuid::Uuid::new_v4().simple());
    let config = config_with(
        provider(
            &moto.endpoint,
            &key,
            json!({"iam_path": iam_path, "role_arn": provider_role,
                   "external_id": external_id}),
        ),
        vec![offering(S3_SERVICE, &plans)],
    );
    let broker = Broker::with_config(config).await;

    // The provider's role, in the provider's region.
    let home = new_id("role-home");
    let last = provision_async(&broker, &home, &provision(S3_SERVICE, "home", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let bucket = |id: &str| {
        broker.core().state.instance(id).unwrap().plugin_state["bucket"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(bucket_region(&admin, &bucket(&home)).await, REGION);

    // The plan's role, in the plan's region; a binding made there is told so and works.
    let far = new_id("role-west");
    let last = provision_async(&broker, &far, &provision(S3_SERVICE, "west", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(bucket_region(&admin, &bucket(&far)).await, west);
    let credentials = bind(&broker, &far, &new_id("role-west-b"), S3_SERVICE, "west").await;
    assert_eq!(credentials["region"], west, "{credentials}");
    put(&s3_of(&credentials).await, &bucket(&far), "hello.txt")
        .await
        .expect("the binding made under the plan's role writes its bucket");

    // A plan's own role and external id are the ones used: the provider's role with the
    // wrong external id is refused by its trust policy (moto answers 403 AccessDenied, in an
    // error envelope the SDK does not parse, so the code is not in the text), and the
    // provision fails at once, saying the credentials were the trouble.
    let impostor = new_id("role-impostor");
    let last = provision_async(
        &broker,
        &impostor,
        &provision(S3_SERVICE, "impostor", json!({})),
    )
    .await;
    assert_eq!(last["state"], "failed", "{last}");
    let said = last["description"].as_str().unwrap_or_default();
    assert!(
        said.contains("rejected the credentials") && said.contains("loading credentials"),
        "{last}"
    );
    assert!(
        !said.contains("not-the-one"),
        "the external id is not echoed: {said}"
    );

    // An instance stays in its region: the update fails, saying where it is.
    let last = run_async(
        &broker,
        Method::PATCH,
        &format!("/v2/service_instances/{far}"),
        Some(&json!({"service_id": S3_SERVICE, "plan_id": format!("{S3_SERVICE}-home")})),
    )
    .await;
    assert_eq!(last["state"], "failed", "{last}");
    let said = last["description"].as_str().unwrap_or_default();
    assert!(said.contains(west) && said.contains(REGION), "{last}");
    assert_eq!(
        broker.core().state.instance(&far).unwrap().plan_id,
        format!("{S3_SERVICE}-west"),
        "the instance keeps its plan"
    );

    for (id, plan) in [(&home, "home"), (&far, "west")] {
        let last = deprovision_async(&broker, id, S3_SERVICE, plan).await;
        assert_eq!(last["state"], "succeeded", "{last}");
    }
    broker.stop().await;

    // Without the role, the same key provisions nothing: it was the role that did.
    let config = config_with(
        provider(&moto.endpoint, &key, json!({"iam_path": iam_path})),
        vec![offering(S3_SERVICE, &plans[..1])],
    );
    let bare = Broker::with_config(config).await;
    let id = new_id("role-none");
    let last = provision_async(&bare, &id, &provision(S3_SERVICE, "home", json!({}))).await;
    assert_eq!(last["state"], "failed", "{last}");
    bare.stop().await;
}

/// Issue 21, secrets from files: the broker's key comes from a mounted secret (id and secret
/// in two files). The key is rotated under the running broker (a new key written, the old one
/// deleted at AWS) and the next provision works with the new one: without the files being
/// read again it would fail, as the old key no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_rotated_key_file_is_used_without_a_restart() {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let (user, old) = moto.broker_user().await;
    let dir = tempfile::tempdir().unwrap();
    let (id_file, secret_file) = (dir.path().join("id"), dir.path().join("secret"));
    let write = |key: &(String, String)| {
        // As Kubernetes updates a secret volume: new files renamed into place.
        for (path, text) in [(&id_file, &key.0), (&secret_file, &key.1)] {
            let next = path.with_extension("next");
            std::fs::write(&next, format!("{text}\n")).unwrap();
            std::fs::rename(&next, path).unwrap();
        }
    };
    write(&old);
    let mut provider = provider(
        &moto.endpoint,
        &old,
        json!({"access_key_id_file": id_file, "key_reload_secs": 1}),
    );
    provider.settings.remove("access_key_id");
    provider.password_file = Some(secret_file.clone());
    let plans = [(
        "bucket",
        json!({"service": "s3", "on_deprovision": "empty"}),
    )];
    let broker =
        Broker::with_config(config_with(provider, vec![offering(S3_SERVICE, &plans)])).await;
    let first = new_id("rotated-1");
    let last = provision_async(&broker, &first, &provision(S3_SERVICE, "bucket", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");

    let new = new_key(&admin, &user).await;
    write(&new);
    admin
        .iam
        .delete_access_key()
        .user_name(&user)
        .access_key_id(&old.0)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = new_id("rotated-2");
    let last = provision_async(
        &broker,
        &second,
        &provision(S3_SERVICE, "bucket", json!({})),
    )
    .await;
    assert_eq!(last["state"], "succeeded", "the new key is used: {last}");
    for id in [&first, &second] {
        let last = deprovision_async(&broker, id, S3_SERVICE, "bucket").await;
        assert_eq!(last["state"], "succeeded", "{last}");
    }
    broker.stop().await;
}

/// A moto server of this test's own, without IAM enforcement; killed when dropped.
struct OwnMoto {
    child: std::process::Child,
    endpoint: String,
}

impl OwnMoto {
    async fn start() -> OwnMoto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m moto.server starts (./test.sh installs moto)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_client()
            .get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "moto did not start on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        OwnMoto { child, endpoint }
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An async provision of the IRSA test's plan on the real binary; the final last_operation.
async fn provision_irsa(serve: &Serve, id: &str) -> Value {
    let body = json!({"service_id": "irsa-s3", "plan_id": "irsa-s3-bucket",
                      "organization_guid": "org", "space_guid": "space"});
    let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
    let (status, accepted) = serve.call(Method::PUT, &path, Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    serve
        .wait(id, accepted["operation"].as_str().unwrap())
        .await
}

/// Issue 21, web identity (IRSA on EKS): the real binary with no key at all, only the
/// variables EKS injects (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
/// `AWS_ROLE_SESSION_NAME`; `AWS_ENDPOINT_URL_STS` points STS at moto), provisions a bucket;
/// moto recorded the token's role and session as assumed. Without the token file the same
/// binary has no credentials and the provision fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_web_identity_from_the_environment_as_on_eks() {
    if moto().is_none() {
        return;
    }
    let moto = OwnMoto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // A service account token's shape; this moto does not verify it.
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2t5YnJva2VyOmJyb2tlciJ9.c2ln",
    )
    .unwrap();
    let config = dir.path().join("skybroker.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
scan_interval_ms = 20
poll_interval_ms = 100

[providers.aws]
kind = "aws"
region = "{REGION}"
endpoint_url = "{endpoint}"

[[services]]
id = "irsa-s3"
name = "irsa-s3"
description = "S3"
bindable = true
broker = "aws"

[[services.plans]]
id = "irsa-s3-bucket"
name = "bucket"
description = "bucket"
settings = {{ service = "s3", on_deprovision = "empty" }}
"#,
            endpoint = moto.endpoint,
        ),
    )
    .unwrap();
    let role = "arn:aws:iam::123456789012:role/skybroker-irsa";
    let session = format!("irsa-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let token_path = token.to_str().unwrap();
    let isolated = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/skybroker-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/skybroker-test"),
        ("AWS_ENDPOINT_URL_STS", moto.endpoint.as_str()),
    ];
    let mut env = isolated.to_vec();
    env.extend([
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path),
        ("AWS_ROLE_ARN", role),
        ("AWS_ROLE_SESSION_NAME", session.as_str()),
    ]);
    let serve = Serve::start(&config, &dir.path().join("data"), &env).await;
    let last = provision_irsa(&serve, &new_id("irsa")).await;
    assert_eq!(last["state"], "succeeded", "{last}\n{}", serve.output());
    let assumed = assumed_roles(&moto.endpoint).await;
    assert!(
        assumed
            .iter()
            .any(|(arn, name)| arn == role && *name == session),
        "{assumed:?}"
    );
    assert!(
        !serve.output().contains("eyJhbGciOiJSUzI1NiJ9"),
        "the token never reaches a log"
    );
    drop(serve);

    let serve = Serve::start(&config, &dir.path().join("data-bare"), &isolated).await;
    let last = provision_irsa(&serve, &new_id("irsa-none")).await;
    assert_eq!(last["state"], "failed", "{last}");
}
