//! The AWS provider against moto (issue 8): S3 + IAM and RDS lifecycles through the OSB API,
//! with the returned credentials really used, a kill -9 of the real binary mid RDS provision,
//! and an AWS outage.
//!
//! moto runs in server mode with IAM policy enforcement on (`./test.sh` starts it and sets
//! `SKYBROKER_TEST_AWS` to its URL and `SKYBROKER_TEST_AWS_ACCESS_KEY_ID`/`…_SECRET_ACCESS_KEY`
//! to an administrator's key). Every test gives its broker a key of its own whose policies are
//! the ones `deploy/policies/aws/` documents, so a missing permission fails here; moto can only
//! match IAM and RDS actions against `*` and evaluates no conditions, so for it those two are
//! widened (see [`moto_policy`]). Without the variables a test says loudly that it is skipped,
//! and fails under CI, where nothing may be skipped.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skybroker_brokers::aws::sdk::s3::primitives::ByteStream;
use skybroker_brokers::aws::{AwsBuilder, AwsClients};
use skybroker_config::{Config, ProviderConfig, Secret, ServiceOffering};

use crate::harness::*;
use crate::servers::*;

pub(crate) const S3_SERVICE: &str = "aws-s3-service";
const RDS_SERVICE: &str = "aws-rds-service";
pub(crate) const REGION: &str = "eu-west-1";

/// moto's address and the administrator's key.
pub(crate) struct Moto {
    pub(crate) endpoint: String,
    key_id: String,
    secret: String,
}

/// The moto of `./test.sh`, or `None` (test skipped, or failed under CI).
pub(crate) fn moto() -> Option<Moto> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("SKYBROKER_TEST_AWS"),
        var("SKYBROKER_TEST_AWS_ACCESS_KEY_ID"),
        var("SKYBROKER_TEST_AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(endpoint), Some(key_id), Some(secret)) => Some(Moto {
            endpoint,
            key_id,
            secret,
        }),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "SKYBROKER_TEST_AWS(_ACCESS_KEY_ID, _SECRET_ACCESS_KEY) are not set under CI: the \
             README test command must start moto"
        ),
        _ => {
            eprintln!(
                "SKIPPED: set SKYBROKER_TEST_AWS=http://127.0.0.1:PORT (moto) and an \
                 administrator's SKYBROKER_TEST_AWS_ACCESS_KEY_ID/_SECRET_ACCESS_KEY to run \
                 this test (./test.sh does)"
            );
            None
        }
    }
}

/// SDK clients for `endpoint` with a key.
pub(crate) async fn clients(endpoint: &str, key_id: &str, secret: &str) -> AwsClients {
    let settings = AwsBuilder::new()
        .with_region(REGION)
        .with_endpoint_url(endpoint)
        .with_static_credentials(key_id, Secret::new(secret))
        .with_max_attempts(1)
        .build()
        .expect("test settings");
    AwsClients::connect(&settings).await
}

impl Moto {
    pub(crate) async fn admin(&self) -> AwsClients {
        clients(&self.endpoint, &self.key_id, &self.secret).await
    }

    /// A new IAM user holding the broker's policies (`deploy/policies/aws/`, as moto can
    /// evaluate them); its key.
    async fn broker_key(&self) -> (String, String) {
        self.broker_user().await.1
    }

    /// A new IAM user holding the broker's policies; its name and a key.
    pub(crate) async fn broker_user(&self) -> (String, (String, String)) {
        let admin = self.admin().await;
        let user = format!("skybroker-it-{}", uuid::Uuid::new_v4().simple());
        admin
            .iam
            .create_user()
            .user_name(&user)
            .send()
            .await
            .unwrap();
        for (name, policy) in broker_policies() {
            admin
                .iam
                .put_user_policy()
                .user_name(&user)
                .policy_name(name)
                .policy_document(policy.to_string())
                .send()
                .await
                .unwrap();
        }
        let key = new_key(&admin, &user).await;
        (user, key)
    }
}

/// The broker policies of `deploy/policies/aws/`, as moto enforces them.
pub(crate) fn broker_policies() -> Vec<(&'static str, Value)> {
    [
        ("s3", include_str!("../../../deploy/policies/aws/s3.json")),
        ("rds", include_str!("../../../deploy/policies/aws/rds.json")),
    ]
    .into_iter()
    .map(|(name, text)| {
        let policy: Value = serde_json::from_str(text).expect("the policy is JSON");
        (name, moto_policy(&policy))
    })
    .collect()
}

/// A new access key of `user`.
pub(crate) async fn new_key(admin: &AwsClients, user: &str) -> (String, String) {
    let key = admin
        .iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}

/// A documented policy as moto can enforce it: moto authorizes IAM and RDS actions against
/// the resource `*` only and evaluates no condition keys, so those statements lose their
/// resources and conditions (S3 statements keep their bucket ARNs: moto checks those); it
/// names two S3 actions its own way (`HeadBucket`, `PutPublicAccessBlock`); and it checks
/// `DeleteObjects` against the bucket rather than each object.
pub(crate) fn moto_policy(policy: &Value) -> Value {
    let mut policy = policy.clone();
    for statement in policy["Statement"].as_array_mut().expect("statements") {
        let mut actions: Vec<String> = match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            other => serde_json::from_value(other.clone()).expect("actions"),
        };
        let s3_only = actions.iter().all(|a| a.starts_with("s3:"));
        for (real, moto) in [
            ("s3:ListBucket", "s3:HeadBucket"),
            ("s3:PutBucketPublicAccessBlock", "s3:PutPublicAccessBlock"),
        ] {
            if actions.iter().any(|a| a == real) {
                actions.push(moto.to_owned());
            }
        }
        let object = statement.as_object_mut().unwrap();
        object.insert("Action".into(), json!(actions));
        object.remove("Condition");
        if !s3_only {
            object.insert("Resource".into(), json!("*"));
        } else {
            // moto checks DeleteObjects (s3:DeleteObject) against the bucket, AWS against
            // each object: the bucket joins the object statements.
            let mut resources: Vec<String> = match &object["Resource"] {
                Value::String(resource) => vec![resource.clone()],
                other => serde_json::from_value(other.clone()).expect("resources"),
            };
            let buckets: Vec<String> = resources
                .iter()
                .filter_map(|r| r.strip_suffix("/*").map(str::to_owned))
                .collect();
            resources.extend(buckets);
            object.insert("Resource".into(), json!(resources));
        }
    }
    policy
}

/// The `[providers.aws]` section of a broker that signs with `key` and reaches `endpoint`.
pub(crate) fn provider(endpoint: &str, key: &(String, String), extra: Value) -> ProviderConfig {
    let mut settings = json!({
        "kind": "aws",
        "region": REGION,
        "endpoint_url": endpoint,
        "access_key_id": key.0,
        "max_attempts": 2,
    });
    for (name, value) in extra.as_object().unwrap() {
        settings[name] = value.clone();
    }
    let mut provider: ProviderConfig = serde_json::from_value(settings).unwrap();
    provider.password = Some(Secret::new(key.1.clone()));
    provider
}

/// An offering of the `aws` provider with `plans`: `(name, settings)`; every plan may be
/// `maximum_polling_duration` seconds long.
pub(crate) fn offering(id: &str, plans: &[(&str, Value)]) -> ServiceOffering {
    provider_offering(id, "aws", "AWS", plans)
}

pub(crate) fn config_with(provider: ProviderConfig, offerings: Vec<ServiceOffering>) -> Config {
    let mut config = fast_config(100);
    config.providers.insert("aws".into(), provider);
    config.services.extend(offerings);
    config
}

pub(crate) fn provision(service: &str, plan: &str, parameters: Value) -> Value {
    provider_provision_body(service, plan, parameters)
}

/// PUT, PATCH or DELETE of an instance with `accepts_incomplete=true`, then waits for its
/// operation; the final last_operation.
pub(crate) async fn run_async(
    broker: &Broker,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut request = broker.request(
        method.clone(),
        &format!("{path}{separator}accepts_incomplete=true"),
    );
    if let Some(body) = body {
        request = request.json(body);
    }
    let (status, accepted) = broker.send(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{method} {path}: {accepted}");
    let instance = path
        .trim_start_matches("/v2/service_instances/")
        .split(['?', '/'])
        .next()
        .unwrap();
    broker
        .wait_instance(instance, accepted["operation"].as_str().unwrap())
        .await
}

pub(crate) async fn provision_async(broker: &Broker, id: &str, body: &Value) -> Value {
    run_async(
        broker,
        Method::PUT,
        &format!("/v2/service_instances/{id}"),
        Some(body),
    )
    .await
}

pub(crate) async fn deprovision_async(
    broker: &Broker,
    id: &str,
    service: &str,
    plan: &str,
) -> Value {
    let path = format!("/v2/service_instances/{id}?service_id={service}&plan_id={service}-{plan}");
    run_async(broker, Method::DELETE, &path, None).await
}

pub(crate) async fn bind(
    broker: &Broker,
    instance: &str,
    binding: &str,
    service: &str,
    plan: &str,
) -> Value {
    let body = json!({"service_id": service, "plan_id": format!("{service}-{plan}")});
    let (status, response) = broker.put_binding(instance, binding, &body, false).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    response["credentials"].clone()
}

/// Whether the IAM user of a binding (of a broker with the default name prefix) exists.
async fn user_exists(admin: &AwsClients, binding_id: &str) -> bool {
    let user = skybroker_brokers::names::cloud_name("skybroker", binding_id);
    match admin.iam.get_user().user_name(&user).send().await {
        Ok(_) => true,
        Err(err) if format!("{err:?}").contains("NoSuchEntity") => false,
        Err(err) => panic!("IAM GetUser {user}: {err:?}"),
    }
}

/// An S3 client signing with a binding's key.
pub(crate) async fn s3_of(credentials: &Value) -> skybroker_brokers::aws::sdk::s3::Client {
    clients(
        credentials["endpoint"].as_str().unwrap(),
        credentials["access_key_id"].as_str().unwrap(),
        credentials["secret_access_key"].as_str().unwrap(),
    )
    .await
    .s3
}

pub(crate) async fn put(
    s3: &skybroker_brokers::aws::sdk::s3::Client,
    bucket: &str,
    key: &str,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"hello from a binding"))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| skybroker_brokers::aws::sdk::s3::error::DisplayErrorContext(err).to_string())
}

async fn get(
    s3: &skybroker_brokers::aws::sdk::s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|err| {
            skybroker_brokers::aws::sdk::s3::error::DisplayErrorContext(err).to_string()
        })?;
    Ok(object.body.collect().await.unwrap().into_bytes().to_vec())
}

/// Issue 8, OSB-PROV (async), OSB-BIND-13/19, OSB-UNB-01, OSB-DEPROV-01, D-19: the S3
/// lifecycle through the HTTP API on a least-privilege broker key; a binding's key reaches its
/// own bucket and is denied another; read-only plans read and cannot write; unbound keys stop
/// working; deprovision empties (or, as the plan says, refuses) and the bucket is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_lifecycle() {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let key = moto.broker_key().await;
    let plans = [
        (
            "versioned",
            json!({"service": "s3", "versioning": true, "on_deprovision": "empty"}),
        ),
        ("ro", json!({"service": "s3", "access": "read_only"})),
        ("keep", json!({"service": "s3"})),
    ];
    // Binding users under a path of this test's own: other tests share moto.
    let iam_path = format!("/skybroker/{}/", uuid::Uuid::new_v4().simple());
    let config = config_with(
        provider(&moto.endpoint, &key, json!({"iam_path": iam_path})),
        vec![offering(S3_SERVICE, &plans)],
    );
    let broker = Broker::with_config(config).await;

    // Provision (async, engine-driven) and fetch.
    let first = new_id("s3-life");
    let last = provision_async(
        &broker,
        &first,
        &provision(S3_SERVICE, "versioned", json!({})),
    )
    .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let (status, instance) = broker.get_instance(&first).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let bucket = broker.core().state.instance(&first).unwrap().plugin_state["bucket"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bucket.starts_with("skybroker-"), "{bucket}");
    // Versioning on (seen in behaviour: moto's GetBucketVersioning answer is malformed).
    for _ in 0..2 {
        admin
            .s3
            .put_object()
            .bucket(&bucket)
            .key("versioned.txt")
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .unwrap();
    }
    let versions = admin
        .s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("versioned.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "both versions are kept");
    let block = admin
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));
    let encryption = admin
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );

    // Bind: the credentials carry everything, and the key works on its bucket.
    let first_binding = new_id("s3-b1");
    let credentials = bind(&broker, &first, &first_binding, S3_SERVICE, "versioned").await;
    for field in [
        "bucket",
        "region",
        "endpoint",
        "access_key_id",
        "secret_access_key",
    ] {
        assert!(
            credentials[field].is_string(),
            "credentials carry {field}: {credentials}"
        );
    }
    assert_eq!(credentials["bucket"], bucket.as_str());
    assert_eq!(credentials["region"], REGION);
    let s3 = s3_of(&credentials).await;
    put(&s3, &bucket, "notes/hello.txt")
        .await
        .expect("the binding writes its bucket");
    assert_eq!(
        get(&s3, &bucket, "notes/hello.txt")
            .await
            .expect("and reads it"),
        b"hello from a binding"
    );

    // A second instance, read-only: the first binding is denied its bucket; its own
    // read-only binding reads and cannot write.
    let second = new_id("s3-ro");
    let last = provision_async(&broker, &second, &provision(S3_SERVICE, "ro", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let other = broker.core().state.instance(&second).unwrap().plugin_state["bucket"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = put(&s3, &other, "trespass.txt").await.unwrap_err();
    assert!(
        denied.contains("AccessDenied"),
        "another bucket is denied: {denied}"
    );
    assert!(get(&s3, &other, "anything")
        .await
        .unwrap_err()
        .contains("AccessDenied"));
    admin
        .s3
        .put_object()
        .bucket(&other)
        .key("fact.txt")
        .body(ByteStream::from_static(b"42"))
        .send()
        .await
        .unwrap();
    let reader_binding = new_id("s3-b2");
    let reader = bind(&broker, &second, &reader_binding, S3_SERVICE, "ro").await;
    let reader_s3 = s3_of(&reader).await;
    assert_eq!(get(&reader_s3, &other, "fact.txt").await.unwrap(), b"42");
    let refused = put(&reader_s3, &other, "mine.txt").await.unwrap_err();
    assert!(
        refused.contains("AccessDenied"),
        "read-only cannot write: {refused}"
    );

    // Unbind: the key stops working and the IAM user is gone.
    let (status, body) = broker
        .delete_binding_of(
            &first,
            &first_binding,
            S3_SERVICE,
            &format!("{S3_SERVICE}-versioned"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked = get(&s3, &bucket, "notes/hello.txt").await.unwrap_err();
    assert!(
        revoked.contains("InvalidAccessKeyId") || revoked.contains("AccessDenied"),
        "an unbound key no longer works: {revoked}"
    );
    assert!(
        !user_exists(&admin, &first_binding).await,
        "the binding's IAM user is gone"
    );
    assert!(
        user_exists(&admin, &reader_binding).await,
        "the other binding's user stays"
    );

    // Deprovision a versioned bucket with objects: the plan empties it, then it is gone.
    let last = deprovision_async(&broker, &first, S3_SERVICE, "versioned").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(
        admin.s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "the bucket is gone"
    );
    assert_eq!(broker.get_instance(&first).await.0, StatusCode::NOT_FOUND);

    // A plan that keeps data refuses while objects are left, with a description and with
    // nothing revoked; once the bucket is empty the deprovision (cascading to the binding)
    // succeeds.
    let last = deprovision_async(&broker, &second, S3_SERVICE, "ro").await;
    assert_eq!(last["state"], "failed", "{last}");
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .contains("still holds objects"),
        "{last}"
    );
    assert_eq!(
        broker.get_instance(&second).await.0,
        StatusCode::OK,
        "the instance stays"
    );
    // The plugin saw the deprovision before the D-03 cascade: the binding's key still reads.
    assert_eq!(
        get(&reader_s3, &other, "fact.txt").await.unwrap(),
        b"42",
        "a refused deprovision revokes nothing"
    );
    assert_eq!(
        get(&admin.s3, &other, "fact.txt").await.unwrap(),
        b"42",
        "the data stays"
    );
    admin
        .s3
        .delete_object()
        .bucket(&other)
        .key("fact.txt")
        .send()
        .await
        .unwrap();
    let last = deprovision_async(&broker, &second, S3_SERVICE, "ro").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(admin.s3.head_bucket().bucket(&other).send().await.is_err());
    assert!(
        !user_exists(&admin, &reader_binding).await,
        "no binding user is left"
    );
    broker.stop().await;
}

// ===== RDS =====

/// The local database server standing in for every RDS instance of a test: it plays the
/// instance's part by having the master user RDS would have created.
enum StandIn {
    Postgres(String),
    Mysql(String),
}

impl StandIn {
    fn engine(&self) -> &'static str {
        match self {
            StandIn::Postgres(_) => "postgres",
            StandIn::Mysql(_) => "mariadb",
        }
    }

    fn address(&self) -> &str {
        match self {
            StandIn::Postgres(address) | StandIn::Mysql(address) => address,
        }
    }

    /// Runs an administrator's statement (names and passwords here are generated hex).
    async fn admin(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        match self {
            StandIn::Postgres(address) => pg_admin(address, "postgres")
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err:?}")),
            StandIn::Mysql(address) => mysql_admin(address)
                .await
                .query_drop(sql)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}")),
        }
    }

    /// What RDS does at creation: the master user with the instance's password.
    async fn create_master(&self, user: &str, password: &str) {
        match self {
            StandIn::Postgres(_) => {
                self.admin(&format!(
                    "CREATE ROLE \"{user}\" LOGIN SUPERUSER PASSWORD '{password}'"
                ))
                .await
            }
            StandIn::Mysql(_) => {
                self.admin(&format!(
                    "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
                ))
                .await;
                self.admin(&format!(
                    "GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION"
                ))
                .await
            }
        }
    }

    /// Removes what the test left on the stand-in: the instance's database and roles, and
    /// the master user.
    async fn clean(&self, master: &str, database: &str) {
        match self {
            StandIn::Postgres(_) => {
                // One statement at a time: DROP DATABASE refuses to run in a transaction.
                for sql in [
                    format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS \"{database}_owner\""),
                    format!("DROP ROLE IF EXISTS \"{database}_ro\""),
                    format!("DROP OWNED BY \"{master}\""),
                    format!("DROP ROLE IF EXISTS \"{master}\""),
                ] {
                    self.admin(&sql).await;
                }
            }
            StandIn::Mysql(_) => {
                self.admin(&format!("DROP DATABASE IF EXISTS `{database}`"))
                    .await;
                self.admin(&format!("DROP USER IF EXISTS '{master}'@'%'"))
                    .await;
            }
        }
    }

    /// Connects with a binding's credentials, writes a row and reads it back.
    async fn use_credentials(&self, credentials: &Value) -> Result<String, String> {
        use mysql_async::prelude::Queryable;
        let host = credentials["host"].as_str().unwrap().to_owned();
        let port = credentials["port"].as_u64().unwrap() as u16;
        let user = credentials["username"].as_str().unwrap().to_owned();
        let password = credentials["password"].as_str().unwrap().to_owned();
        let database = credentials["database"].as_str().unwrap().to_owned();
        match self {
            StandIn::Postgres(_) => {
                let (client, connection) = tokio_postgres::Config::new()
                    .host(&host)
                    .port(port)
                    .user(&user)
                    .password(&password)
                    .dbname(&database)
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|err| err.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(
                        "CREATE TABLE IF NOT EXISTS notes (body text); \
                         INSERT INTO notes VALUES ('hello from RDS')",
                    )
                    .await
                    .map_err(|err| err.to_string())?;
                let row = client
                    .query_one("SELECT body FROM notes LIMIT 1", &[])
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(row.get(0))
            }
            StandIn::Mysql(_) => {
                let options = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(host)
                    .tcp_port(port)
                    .user(Some(user))
                    .pass(Some(password))
                    .db_name(Some(database))
                    .prefer_socket(false);
                let mut conn = mysql_async::Conn::new(options)
                    .await
                    .map_err(|err| err.to_string())?;
                conn.query_drop("CREATE TABLE IF NOT EXISTS notes (body TEXT)")
                    .await
                    .map_err(|err| err.to_string())?;
                conn.query_drop("INSERT INTO notes VALUES ('hello from RDS')")
                    .await
                    .map_err(|err| err.to_string())?;
                let body: Option<String> = conn
                    .query_first("SELECT body FROM notes LIMIT 1")
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(body.unwrap_or_default())
            }
        }
    }
}

/// The DB instance of `identifier` at moto, if any.
async fn db_instance(
    admin: &AwsClients,
    identifier: &str,
) -> Option<skybroker_brokers::aws::sdk::rds::types::DbInstance> {
    match admin
        .rds
        .describe_db_instances()
        .db_instance_identifier(identifier)
        .send()
        .await
    {
        Ok(output) => output.db_instances().first().cloned(),
        Err(err) if format!("{err:?}").contains("DBInstanceNotFound") => None,
        Err(err) => panic!("DescribeDBInstances {identifier}: {err:?}"),
    }
}

/// Issue 8: an RDS lifecycle through the HTTP API: provision creates the DB instance from the
/// plan and parameters and is polled until available; bind creates a database user with the
/// local provider's code on the instance (a local server standing in for it, configured
/// through the test-only `database_endpoint_override`), and the credentials work; update
/// modifies class and storage and refuses to shrink; unbind revokes; deprovision deletes and
/// polls until gone.
async fn rds_lifecycle(stand_in: StandIn) {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let key = moto.broker_key().await;
    let master = format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let plan = json!({
        "service": "rds", "engine": stand_in.engine(),
        // moto knows no default version for mariadb.
        "engine_version": if stand_in.engine() == "mariadb" { "10.11.8" } else { "16.3" },
        "instance_class": "db.t3.micro", "allowed_instance_classes": ["db.t3.small"],
        "allocated_storage_gb": 20, "max_allocated_storage_gb": 100,
        "backup_retention_days": 3, "final_snapshot": false, "master_username": master,
    });
    let config = config_with(
        provider(
            &moto.endpoint,
            &key,
            json!({"database_endpoint_override": stand_in.address(), "database_tls": "disable"}),
        ),
        vec![offering(RDS_SERVICE, &[("small", plan)])],
    );
    let broker = Broker::with_config(config).await;

    let id = new_id("rds-life");
    let last = provision_async(
        &broker,
        &id,
        &provision(RDS_SERVICE, "small", json!({"multi_az": true})),
    )
    .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let state = broker.core().state.instance(&id).unwrap().plugin_state;
    let identifier = state["identifier"].as_str().unwrap().to_owned();
    let instance = db_instance(&admin, &identifier)
        .await
        .expect("the DB instance exists");
    assert_eq!(instance.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(instance.allocated_storage(), Some(20));
    assert_eq!(instance.multi_az(), Some(true), "a parameter applied");
    assert_eq!(instance.backup_retention_period(), Some(3));
    assert_eq!(instance.engine(), Some(stand_in.engine()));
    assert!(
        instance
            .tag_list()
            .iter()
            .any(|t| t.key() == Some("skybroker:managed")),
        "tagged for the IAM policy"
    );
    // The master password stays in the stored state; the platform never sees it.
    let password = state["master_password"].as_str().unwrap().to_owned();
    let (_, fetched) = broker.get_instance(&id).await;
    assert!(!fetched.to_string().contains(&password));
    stand_in.create_master(&master, &password).await;

    // Bind: a user of its own, made by the local provider's code on the instance.
    let binding = new_id("rds-b1");
    let credentials = bind(&broker, &id, &binding, RDS_SERVICE, "small").await;
    assert_ne!(credentials["username"], master.as_str());
    assert!(
        !credentials.to_string().contains(&password),
        "the master password is not handed out"
    );
    let database = credentials["database"].as_str().unwrap().to_owned();
    assert_eq!(
        stand_in
            .use_credentials(&credentials)
            .await
            .expect("the binding's user works"),
        "hello from RDS"
    );

    // Update: class and storage change and are polled until applied; shrinking is refused.
    let update = json!({"service_id": RDS_SERVICE,
                        "parameters": {"instance_class": "db.t3.small", "allocated_storage_gb": 30}});
    let path = format!("/v2/service_instances/{id}");
    let last = run_async(&broker, Method::PATCH, &path, Some(&update)).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let instance = db_instance(&admin, &identifier).await.unwrap();
    assert_eq!(instance.db_instance_class(), Some("db.t3.small"));
    assert_eq!(instance.allocated_storage(), Some(30));
    let shrink = json!({"service_id": RDS_SERVICE, "parameters": {"allocated_storage_gb": 25}});
    let last = run_async(&broker, Method::PATCH, &path, Some(&shrink)).await;
    assert_eq!(last["state"], "failed", "{last}");
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .contains("cannot shrink"),
        "{last}"
    );
    assert_eq!(
        db_instance(&admin, &identifier)
            .await
            .unwrap()
            .allocated_storage(),
        Some(30)
    );

    // Unbind: the user is dropped.
    let (status, body) = broker
        .delete_binding_of(&id, &binding, RDS_SERVICE, &format!("{RDS_SERVICE}-small"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        stand_in.use_credentials(&credentials).await.is_err(),
        "unbound credentials no longer work"
    );

    // Deprovision: deleted at AWS and polled until gone.
    let last = deprovision_async(&broker, &id, RDS_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(
        db_instance(&admin, &identifier).await.is_none(),
        "the DB instance is gone"
    );
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);
    stand_in.clean(&master, &database).await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_rds_postgres_lifecycle() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    rds_lifecycle(StandIn::Postgres(address)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_rds_mariadb_lifecycle() {
    let Some(address) = server("SKYBROKER_TEST_MYSQL") else {
        return;
    };
    rds_lifecycle(StandIn::Mysql(address)).await;
}

// ===== the real binary =====

/// Issue 8 (crash during an RDS provision), DESIGN "durable before acknowledged": the real
/// binary, with credentials from the standard AWS chain (environment), is killed with SIGKILL
/// right after the DB instance appeared at moto and before the provision finished; after a
/// restart on the same store the operation is resumed and completes, and exactly one DB
/// instance exists for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_rds_provision_survives_kill_9() {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let (key_id, secret) = moto.broker_key().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    // A prefix of this test's own: every instance it could ever create carries it.
    let prefix = format!("crash{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let config = dir.path().join("skybroker.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
scan_interval_ms = 20
# The DB instance is available at once at moto: the next poll comes 1.5 s after it was
# created, which leaves the kill a window mid-operation.
poll_interval_ms = 1500
max_poll_interval_ms = 1500

[providers.aws]
kind = "aws"
region = "{REGION}"
endpoint_url = "{endpoint}"
name_prefix = "{prefix}"

[[services]]
id = "crash-rds"
name = "crash-rds"
description = "RDS"
bindable = true
instances_retrievable = true
broker = "aws"

[[services.plans]]
id = "crash-rds-small"
name = "small"
description = "small"
settings = {{ service = "rds", engine = "postgres", engine_version = "16.3", instance_class = "db.t3.micro", allocated_storage_gb = 20, final_snapshot = false }}
"#,
            endpoint = moto.endpoint,
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("AWS_ACCESS_KEY_ID", key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        // Never the instance metadata service, whatever the chain would try next.
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/skybroker-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/skybroker-test"),
    ];
    let mut broker = Serve::start(&config, &data, &env).await;
    let instance_id = new_id("crash");
    let identifier = skybroker_brokers::names::cloud_name(&prefix, &instance_id);
    let path = format!("/v2/service_instances/{instance_id}");
    let body = json!({"service_id": "crash-rds", "plan_id": "crash-rds-small",
                      "organization_guid": "org", "space_guid": "space"});
    let (status, accepted) = broker
        .call(
            Method::PUT,
            &format!("{path}?accepts_incomplete=true"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let operation = accepted["operation"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while db_instance(&admin, &identifier).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the DB instance never appeared\n{}",
            broker.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.kill9();
    drop(broker);

    let broker = Serve::start(&config, &data, &env).await;
    let last = broker.wait(&instance_id, &operation).await;
    assert_eq!(last["state"], "succeeded", "{last}\n{}", broker.output());
    assert!(
        broker
            .output()
            .contains("resuming 1 operation(s) in flight"),
        "the kill came mid-operation, so the restart resumed it\n{}",
        broker.output()
    );
    let all = admin.rds.describe_db_instances().send().await.unwrap();
    let ours: Vec<_> = all
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier())
        .filter(|id| id.starts_with(&prefix))
        .collect();
    assert_eq!(ours, [identifier.as_str()], "exactly one DB instance");
    let (status, repeat) = broker
        .call(
            Method::PUT,
            &format!("{path}?accepts_incomplete=true"),
            Some(&body),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an identical repeat is no second instance: {repeat}"
    );

    let (status, accepted) = broker
        .call(
            Method::DELETE,
            &format!("{path}?service_id=crash-rds&plan_id=crash-rds-small&accepts_incomplete=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let last = broker
        .wait(&instance_id, accepted["operation"].as_str().unwrap())
        .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(
        db_instance(&admin, &identifier).await.is_none(),
        "deprovision deleted it"
    );
    assert!(
        !broker.output().contains(&secret),
        "the secret access key is never printed"
    );
}

// ===== outage =====

/// A TCP forwarder standing between the broker and moto: stopping it is an AWS outage as the
/// broker sees it (connections refused), without stopping the moto other tests share.
struct Outage {
    port: u16,
    target: std::net::SocketAddr,
    tasks: Option<tokio::task::JoinSet<()>>,
}

impl Outage {
    fn new(target: &str) -> Outage {
        let target = target
            .trim_start_matches("http://")
            .parse()
            .expect("moto's address");
        Outage {
            port: 0,
            target,
            tasks: None,
        }
    }

    /// Forwards connections (on the same port as before, after a stop).
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the forwarder listens");
        self.port = listener.local_addr().unwrap().port();
        let target = self.target;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Refuses every connection and cuts the open ones.
    async fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Issue 8 (provider outage): with AWS unreachable, a synchronous bind fails after its retries
/// with a description that says so and leaves no binding; an asynchronous provision keeps
/// retrying (still in progress) and completes once AWS answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_outage_fails_or_retries_cleanly() {
    let Some(moto) = moto() else { return };
    let admin = moto.admin().await;
    let key = moto.broker_key().await;
    let mut outage = Outage::new(&moto.endpoint);
    outage.up().await;
    let config = config_with(
        provider(&outage.url(), &key, json!({"connect_timeout_secs": 2})),
        vec![offering(S3_SERVICE, &[("plain", json!({"service": "s3"}))])],
    );
    let broker = Broker::with_config(config).await;
    let first = new_id("s3-outage");
    let last = provision_async(&broker, &first, &provision(S3_SERVICE, "plain", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");

    outage.down().await;
    let binding = new_id("s3-outage-b");
    let body = json!({"service_id": S3_SERVICE, "plan_id": format!("{S3_SERVICE}-plain")});
    let (status, error) = broker.put_binding(&first, &binding, &body, false).await;
    assert!(status.is_server_error(), "{status}: {error}");
    let description = error["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("AWS unavailable"),
        "the description names the cause: {error}"
    );
    assert_eq!(
        broker.get_binding(&first, &binding).await.0,
        StatusCode::NOT_FOUND
    );

    let second = new_id("s3-outage");
    let (status, accepted) = broker
        .put_instance(&second, &provision(S3_SERVICE, "plain", json!({})), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let operation = accepted["operation"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, during) = broker.last_operation(&second, Some(&operation)).await;
    assert_eq!(
        during["state"], "in progress",
        "retrying while AWS is down: {during}"
    );

    outage.up().await;
    let last = broker.wait_instance(&second, &operation).await;
    assert_eq!(
        last["state"], "succeeded",
        "completes once AWS answers: {last}"
    );
    for id in [&first, &second] {
        let last = deprovision_async(&broker, id, S3_SERVICE, "plain").await;
        assert_eq!(last["state"], "succeeded", "{last}");
    }
    let bucket = skybroker_brokers::names::cloud_name("skybroker", &second);
    assert!(admin.s3.head_bucket().bucket(&bucket).send().await.is_err());
    outage.down().await;
    broker.stop().await;
}

// Issue #17: the AWS provider's S3 plans keep the contract every provider keeps
// (`skybroker_brokers::testing`), signing with a key that holds only the documented
// policies, and leave no bucket behind.
#[tokio::test]
async fn aws_s3_keeps_the_provider_contract() {
    let Some(moto) = moto() else {
        return;
    };
    let key = moto.broker_key().await;
    let plugin = skybroker_brokers::registry::build_broker(
        "aws",
        Some(&provider(&moto.endpoint, &key, json!({}))),
    )
    .expect("the provider builds");
    let subject = skybroker_brokers::testing::Subject {
        broker: plugin,
        service_id: S3_SERVICE.into(),
        plan_id: format!("{S3_SERVICE}-contract"),
        plan_settings: std::sync::Arc::new(json!({"service": "s3", "on_deprovision": "empty"})),
        parameters: json!({}),
        bad_parameters: None,
        bindable: true,
        patience: Duration::from_secs(60),
        prefix: "contract-s3".into(),
    };
    let report = skybroker_brokers::testing::run(&subject).await;
    let bucket = report.instance_state["bucket"]
        .as_str()
        .expect("the bucket is in the instance state")
        .to_owned();
    let admin = moto.admin().await;
    assert!(
        admin.s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "{bucket} was left behind"
    );
}
