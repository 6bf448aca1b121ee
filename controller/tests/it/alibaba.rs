//! The Alibaba Cloud provider against the fake Alibaba Cloud (issue 7): RDS (MySQL and
//! PostgreSQL) and OSS + RAM lifecycles through the OSB API, with the returned credentials
//! really used, bad parameters, throttling, a creation Alibaba cannot complete, idempotent
//! creation and a delete that halts a creation.
//!
//! Every test starts its own fake (`skybroker-alibaba-fake`, in this process, on loopback
//! ports) with a root key of its own and short RDS timings, and a broker whose
//! `[providers.alibaba]` points at it. The fake checks ACS3/OSS4 signatures and RAM policies as
//! the real service does, so a binding key that works here was really scoped by its policy.
//! The RDS tests need real database servers for the fake's instances to live on
//! (`SKYBROKER_TEST_MYSQL`, `SKYBROKER_TEST_POSTGRES`: `host:port`, root/postgres without
//! password, as `./test.sh` provides); without them they say loudly that they are skipped,
//! and fail under CI, where nothing may be skipped. The other tests need nothing else.
//!
//! Every test also checks the broker's log (captured at debug in this process) for the fake's
//! root secret and every binding secret it handed out.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};
use skybroker_brokers::alibaba::client::{AlibabaClient, ClientConfig, OssRequest, Product};
use skybroker_brokers::alibaba::credential::AccessKey;
use skybroker_brokers::alibaba::error::AlibabaError;
use skybroker_brokers::names::{cloud_name, resource_name};
use skybroker_config::{Config, ProviderConfig, Secret, ServiceOffering};

use crate::harness::*;
use crate::servers::*;

const MYSQL_SERVICE: &str = "ali-rds-mysql";
const PG_SERVICE: &str = "ali-rds-pg";
const OSS_SERVICE: &str = "ali-oss";
/// The broker's default name prefix.
const PREFIX: &str = "skybroker";

// ===== the log =====

/// Every log line of this process except the fake's own, captured at debug level.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Log targets that are the fake's, not the broker's: the fake itself, and the database
/// clients it makes accounts with (their debug lines show the SQL, passwords included). The
/// broker's Alibaba provider never opens a database connection: it only calls RDS.
const FAKE_TARGETS: &[&str] = &["skybroker_alibaba_fake", "tokio_postgres", "mysql_async"];

/// The most lines kept; a test that logs more cannot be checked.
const MAX_LOG_LINES: usize = 1_000_000;

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
            && !FAKE_TARGETS
                .iter()
                .any(|target| metadata.target().starts_with(target))
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            if record.level() <= log::Level::Info {
                eprintln!("{line}");
            }
            let mut log = LOG.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: under `cargo test` every test of the binary logs here.
            if log.len() < MAX_LOG_LINES {
                log.push(line);
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the capturing logger (before any broker starts, which would install its own);
/// whether the log is captured. nextest runs each test in a process of its own, so there it
/// always is; under `cargo test` another test's logger may have come first.
fn capture_log() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        log::set_logger(&Capture)
            .map(|()| log::set_max_level(log::LevelFilter::Debug))
            .is_ok()
    });
    if !installed {
        assert!(
            std::env::var_os("NEXTEST").is_none(),
            "under nextest the test's process has no logger yet"
        );
        eprintln!("NOTE: another logger was installed first; the log is not checked for secrets");
    }
    installed
}

/// The captured log, if it is captured.
fn log_lines() -> Option<Vec<String>> {
    capture_log().then(|| LOG.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Whether a captured line contains every one of `needles` (true when nothing is captured).
fn logged(needles: &[&str]) -> bool {
    log_lines().is_none_or(|log| {
        log.iter()
            .any(|line| needles.iter().all(|needle| line.contains(needle)))
    })
}

/// DESIGN "no secret in a log", OSB-BIND-13: none of `secrets` was logged by the broker.
fn assert_not_logged(secrets: &[&str]) {
    let Some(log) = log_lines() else { return };
    assert!(log.len() < MAX_LOG_LINES, "the log overflowed the capture");
    assert!(
        log.iter()
            .any(|line| line.starts_with("DEBUG skybroker_brokers::alibaba")),
        "the provider's debug lines are captured"
    );
    for secret in secrets {
        assert!(secret.len() >= 8, "a real secret: {secret:?}");
        if let Some(line) = log.iter().find(|line| line.contains(secret)) {
            panic!("a secret was logged: {line}");
        }
    }
}

// ===== the fake and the broker =====

/// The fake Alibaba Cloud of one test and its root key.
struct Cloud {
    fake: FakeAlibaba,
    config: FakeConfig,
}

impl Cloud {
    /// A fake with a root key of its own and quick RDS timings, changed by `tweak`.
    async fn start(tweak: impl FnOnce(&mut FakeConfig)) -> Cloud {
        capture_log();
        let mut config = FakeConfig {
            access_key_id: format!("LTAI5t{}", &new_hex()[..18]),
            access_key_secret: format!("RootSecret{}", new_hex()),
            creating: Duration::from_millis(1500),
            deleting: Duration::from_secs(1),
            changing: Duration::from_secs(1),
            ..FakeConfig::default()
        };
        tweak(&mut config);
        let fake = FakeAlibaba::start(config.clone())
            .await
            .expect("the fake listens");
        Cloud { fake, config }
    }

    /// The `[providers.alibaba]` section of a broker signing with the root key.
    fn provider(&self) -> ProviderConfig {
        let mut provider: ProviderConfig = serde_json::from_value(json!({
            "kind": "alibaba",
            "region": self.config.region,
            "access_key_id": self.config.access_key_id,
            "rds_endpoint": self.fake.rpc_url(),
            "ram_endpoint": self.fake.rpc_url(),
            "oss_endpoint": self.fake.oss_url(),
            "oss_path_style": true,
            "max_attempts": 3,
        }))
        .unwrap();
        provider.password = Some(Secret::new(self.config.access_key_secret.clone()));
        provider
    }

    /// A client of the fake signing with a key (one attempt per call: the tests want to
    /// see each answer).
    fn client(&self, id: &str, secret: &str) -> AlibabaClient {
        let key = AccessKey {
            id: id.to_owned(),
            secret: Secret::new(secret),
        };
        let mut config = ClientConfig::new(key, self.config.region.clone());
        config.rds_endpoint = self.fake.rpc_url();
        config.ram_endpoint = self.fake.rpc_url();
        config.oss_endpoint = self.fake.oss_url();
        config.oss_path_style = true;
        config.max_attempts = 1;
        AlibabaClient::new(config).expect("a client")
    }

    /// A client with the account's root key.
    fn root(&self) -> AlibabaClient {
        self.client(&self.config.access_key_id, &self.config.access_key_secret)
    }

    /// A client with an OSS binding's key.
    fn binding_client(&self, credentials: &Value) -> AlibabaClient {
        self.client(
            credentials["access_key_id"].as_str().unwrap(),
            credentials["access_key_secret"].as_str().unwrap(),
        )
    }

    /// The fake's RDS instances.
    fn instances(&self) -> Vec<Value> {
        self.fake.snapshot()["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The fake's RDS instance `id`.
    fn instance(&self, id: &str) -> Option<Value> {
        self.instances().into_iter().find(|i| i["id"] == id)
    }

    /// The fake's buckets.
    fn buckets(&self) -> Vec<Value> {
        self.fake.snapshot()["oss"]["buckets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn bucket(&self, name: &str) -> Option<Value> {
        self.buckets().into_iter().find(|b| b["name"] == name)
    }

    /// The fake's RAM user `name`.
    fn ram_user(&self, name: &str) -> Option<Value> {
        self.fake.snapshot()["ram"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
    }

    fn ram_policy(&self, name: &str) -> Option<Value> {
        self.fake.snapshot()["ram"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }
}

fn new_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An offering of the `alibaba` provider with `plans`: `(name, settings)`.
fn offering(id: &str, plans: &[(&str, Value)]) -> ServiceOffering {
    provider_offering(id, "alibaba", "Alibaba Cloud", plans)
}

fn config_with(cloud: &Cloud, offerings: Vec<ServiceOffering>) -> Config {
    let mut config = fast_config(100);
    config.providers.insert("alibaba".into(), cloud.provider());
    config.services.extend(offerings);
    config
}

fn rds_plan(engine: &str, class: &str, storage_gb: u32, read_only: bool) -> Value {
    json!({
        "service": "rds", "engine": engine,
        "engine_version": if engine == "mysql" { "8.0" } else { "16.0" },
        "instance_class": class, "storage_gb": storage_gb, "read_only": read_only,
    })
}

fn oss_plan(read_only: bool, on_deprovision: &str) -> Value {
    json!({
        "service": "oss", "storage_class": "Standard", "acl": "private",
        "read_only": read_only, "on_deprovision": on_deprovision,
    })
}

fn provision(service: &str, plan: &str, parameters: Value) -> Value {
    provider_provision_body(service, plan, parameters)
}

/// A synchronous provision answered 201.
async fn provision_sync(broker: &Broker, id: &str, body: &Value) {
    let (status, answer) = broker.put_instance(id, body, false).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// PUT, PATCH or DELETE of an instance with `accepts_incomplete=true`, answered 202; its
/// operation.
async fn start_async(broker: &Broker, method: Method, path: &str, body: Option<&Value>) -> String {
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
    accepted["operation"].as_str().unwrap().to_owned()
}

/// [`start_async`], then waits for the operation; the operation and the final last_operation.
async fn run_async(
    broker: &Broker,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (String, Value) {
    let operation = start_async(broker, method, path, body).await;
    let instance = path
        .trim_start_matches("/v2/service_instances/")
        .split(['?', '/'])
        .next()
        .unwrap();
    let last = broker.wait_instance(instance, &operation).await;
    (operation, last)
}

async fn provision_async(broker: &Broker, id: &str, body: &Value) -> (String, Value) {
    run_async(
        broker,
        Method::PUT,
        &format!("/v2/service_instances/{id}"),
        Some(body),
    )
    .await
}

fn instance_path(id: &str, service: &str, plan: &str) -> String {
    format!("/v2/service_instances/{id}?service_id={service}&plan_id={service}-{plan}")
}

async fn deprovision_async(broker: &Broker, id: &str, service: &str, plan: &str) -> Value {
    let path = instance_path(id, service, plan);
    run_async(broker, Method::DELETE, &path, None).await.1
}

async fn update_async(broker: &Broker, id: &str, service: &str, plan: &str) -> Value {
    let body = json!({"service_id": service, "plan_id": format!("{service}-{plan}")});
    let path = format!("/v2/service_instances/{id}");
    run_async(broker, Method::PATCH, &path, Some(&body)).await.1
}

/// A synchronous bind answered 201; the whole answer.
async fn bind(broker: &Broker, instance: &str, binding: &str, service: &str, plan: &str) -> Value {
    let body = json!({"service_id": service, "plan_id": format!("{service}-{plan}")});
    let (status, response) = broker.put_binding(instance, binding, &body, false).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    response
}

async fn unbind(broker: &Broker, instance: &str, binding: &str, service: &str, plan: &str) {
    let (status, body) = broker
        .delete_binding_of(instance, binding, service, &format!("{service}-{plan}"))
        .await;
    assert_eq!(status, StatusCode::OK, "unbind {binding}: {body}");
}

/// The DB instance id the broker recorded for an OSB instance.
fn db_instance_id(broker: &Broker, instance: &str) -> String {
    broker.core().state.instance(instance).unwrap().plugin_state["db_instance_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the fake holds no RDS instance (deletions finish in `deleting`).
async fn wait_no_instances(cloud: &Cloud) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cloud.instances().is_empty() {
        assert!(
            Instant::now() < deadline,
            "RDS instances left: {:?}",
            cloud.instances()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ===== databases =====

async fn mysql_count(admin: &mut mysql_async::Conn, sql: &str, name: &str) -> u64 {
    use mysql_async::prelude::Queryable;
    admin
        .exec_first::<u64, _, _>(sql, (name,))
        .await
        .unwrap()
        .unwrap()
}

async fn mysql_databases(admin: &mut mysql_async::Conn, database: &str) -> u64 {
    let sql = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?";
    mysql_count(admin, sql, database).await
}

async fn mysql_users(admin: &mut mysql_async::Conn, user: &str) -> u64 {
    mysql_count(
        admin,
        "SELECT COUNT(*) FROM mysql.user WHERE User = ?",
        user,
    )
    .await
}

/// Logs in with a binding's credentials, creates a table, writes a row and reads it back.
async fn mysql_write_and_read(credentials: &Value) -> Result<String, String> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_login(credentials)
        .await
        .map_err(|err| err.to_string())?;
    conn.query_drop("CREATE TABLE IF NOT EXISTS notes (body TEXT)")
        .await
        .map_err(|err| err.to_string())?;
    conn.query_drop("INSERT INTO notes VALUES ('hello from Alibaba RDS')")
        .await
        .map_err(|err| err.to_string())?;
    let body: Option<String> = conn
        .query_first("SELECT body FROM notes LIMIT 1")
        .await
        .map_err(|err| err.to_string())?;
    Ok(body.unwrap_or_default())
}

/// A PostgreSQL session with a binding's credentials.
async fn pg_login(credentials: &Value) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(credentials["host"].as_str().unwrap())
        .port(credentials["port"].as_u64().unwrap() as u16)
        .user(credentials["username"].as_str().unwrap())
        .password(credentials["password"].as_str().unwrap())
        .dbname(credentials["database"].as_str().unwrap())
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|err| match err.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => err.to_string(),
        })?;
    tokio::spawn(connection);
    Ok(client)
}

async fn pg_count(admin: &tokio_postgres::Client, sql: &str, name: &str) -> i64 {
    admin.query_one(sql, &[&name]).await.unwrap().get(0)
}

/// Checks the credentials an RDS bind returned: every field, consistent with each other and
/// with the instance.
fn check_database_credentials(
    response: &Value,
    scheme: &str,
    instance: &str,
    binding: &str,
    address: &str,
) {
    let credentials = &response["credentials"];
    for field in ["uri", "jdbcUrl", "host", "database", "username", "password"] {
        assert!(
            credentials[field].as_str().is_some_and(|v| !v.is_empty()),
            "credentials carry {field}: {credentials}"
        );
    }
    let (host, port) = split(address);
    assert_eq!(credentials["host"], host.as_str(), "the instance's host");
    assert_eq!(credentials["port"], port, "the instance's port");
    assert_eq!(credentials["database"], resource_name("sb", instance));
    assert_eq!(credentials["username"], resource_name("sb", binding));
    let password = credentials["password"].as_str().unwrap();
    assert!(password.len() >= 16, "a strong password");
    let user = credentials["username"].as_str().unwrap();
    let database = credentials["database"].as_str().unwrap();
    assert_eq!(
        credentials["uri"],
        format!("{scheme}://{user}:{password}@{host}:{port}/{database}")
    );
    assert_eq!(
        credentials["jdbcUrl"],
        format!("jdbc:{scheme}://{host}:{port}/{database}?user={user}&password={password}")
    );
    // OSB-BIND-17: the endpoint the application connects to.
    assert_eq!(
        response["endpoints"],
        json!([{"host": host, "ports": [port.to_string()], "protocol": "tcp"}])
    );
}

// ===== OSS =====

async fn oss_put(
    client: &AlibabaClient,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<(), AlibabaError> {
    let request = OssRequest::new(Method::PUT, Some(bucket))
        .key(key)
        .body(body.to_vec());
    client.oss(request).await.map(|_| ())
}

async fn oss_get(client: &AlibabaClient, bucket: &str, key: &str) -> Result<Vec<u8>, AlibabaError> {
    let request = OssRequest::new(Method::GET, Some(bucket)).key(key);
    client.oss(request).await.map(|answer| answer.body)
}

async fn oss_delete(client: &AlibabaClient, bucket: &str, key: &str) -> Result<(), AlibabaError> {
    let request = OssRequest::new(Method::DELETE, Some(bucket)).key(key);
    client.oss(request).await.map(|_| ())
}

/// The keys `ListObjectsV2` names.
async fn oss_list(client: &AlibabaClient, bucket: &str) -> Result<Vec<String>, AlibabaError> {
    let request = OssRequest::new(Method::GET, Some(bucket)).query("list-type", Some("2"));
    let body = String::from_utf8(client.oss(request).await?.body).unwrap();
    Ok(body
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .map(str::to_owned)
        .collect())
}

/// The error code of a refused call, for assertions.
fn code<T: std::fmt::Debug>(result: Result<T, AlibabaError>) -> String {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(err) => err.code().unwrap_or("<none>").to_owned(),
    }
}

// ===== RDS MySQL =====

/// Issue 7, OSB-PROV (async, 202 then polled), OSB-GETI-01, OSB-BIND-08/13/17/19, OSB-UPD-07,
/// OSB-UPD-12, OSB-UNB-01, OSB-DEPROV-01, D-19: an RDS MySQL instance through the HTTP API.
/// The instance is created from the plan and polled until Running with its database; each
/// binding gets an account of its own whose credentials (uri, jdbcUrl, host, port, database,
/// username, password) log in to the real server and create, write and read a table; a
/// read-only plan's binding reads and cannot write; a plan change to a bigger class and disk
/// is applied and polled, a smaller disk is refused and changes nothing; unbinding drops the
/// account (its login fails, the other binding keeps working); deprovision deletes the
/// instance and its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_mysql_lifecycle() {
    let Some(address) = server("SKYBROKER_TEST_MYSQL") else {
        return;
    };
    let cloud = Cloud::start(|config| config.mysql = Some(address.clone())).await;
    let plans = [
        ("small", rds_plan("mysql", "mysql.n2.small.1", 20, false)),
        ("large", rds_plan("mysql", "mysql.n2.medium.1", 40, false)),
        ("ro", rds_plan("mysql", "mysql.n2.small.1", 20, true)),
    ];
    let broker =
        Broker::with_config(config_with(&cloud, vec![offering(MYSQL_SERVICE, &plans)])).await;
    let mut admin = mysql_admin(&address).await;

    // Provision: 202, polled until Running; one instance at the fake, as the plan says.
    let id = new_id("ali-my");
    let (operation, last) =
        provision_async(&broker, &id, &provision(MYSQL_SERVICE, "small", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let db_id = db_instance_id(&broker, &id);
    assert!(db_id.starts_with("rm-"), "a MySQL instance id: {db_id}");
    assert_eq!(cloud.instances().len(), 1, "{:?}", cloud.instances());
    let instance = cloud.instance(&db_id).expect("the instance exists");
    assert_eq!(instance["status"], "Running");
    assert_eq!(instance["engine"], "MySQL");
    assert_eq!(instance["engine_version"], "8.0");
    assert_eq!(instance["class"], "mysql.n2.small.1");
    assert_eq!(instance["storage"], 20);
    assert_eq!(
        instance["client_token"],
        cloud_name(PREFIX, &format!("{id}/{operation}")),
        "created with a ClientToken of the operation"
    );
    let database = resource_name("sb", &id);
    assert_eq!(
        instance["databases"],
        json!([{"name": database, "charset": "utf8mb4"}])
    );
    assert_eq!(mysql_databases(&mut admin, &database).await, 1);
    let (status, fetched) = broker.get_instance(&id).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["plan_id"], format!("{MYSQL_SERVICE}-small"));

    // Bind: an account of its own, read-write; the credentials work on the real server.
    let first = new_id("ali-my-b1");
    let response = bind(&broker, &id, &first, MYSQL_SERVICE, "small").await;
    check_database_credentials(&response, "mysql", &id, &first, &address);
    let credentials = response["credentials"].clone();
    assert_eq!(
        mysql_write_and_read(&credentials)
            .await
            .expect("the binding's account works"),
        "hello from Alibaba RDS"
    );
    let accounts = &cloud.instance(&db_id).unwrap()["accounts"];
    assert_eq!(
        accounts,
        &json!([{"name": resource_name("sb", &first), "type": "Normal",
                 "privileges": [{"db": database, "privilege": "ReadWrite"}]}])
    );
    // D-19: a second binding has an account and a password of its own.
    let second = new_id("ali-my-b2");
    let other = bind(&broker, &id, &second, MYSQL_SERVICE, "small").await["credentials"].clone();
    assert_ne!(other["username"], credentials["username"]);
    assert_ne!(other["password"], credentials["password"]);
    assert!(mysql_write_and_read(&other).await.is_ok());

    // A read-only plan's binding (on an instance of its own) reads and cannot write.
    let ro = new_id("ali-my-ro");
    let (_, last) = provision_async(&broker, &ro, &provision(MYSQL_SERVICE, "ro", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let ro_database = resource_name("sb", &ro);
    {
        use mysql_async::prelude::Queryable;
        admin
            .query_drop(format!(
                "CREATE TABLE `{ro_database}`.facts (n INT); INSERT INTO `{ro_database}`.facts VALUES (42)"
            ))
            .await
            .unwrap();
    }
    let reader_binding = new_id("ali-my-rob");
    let reader =
        bind(&broker, &ro, &reader_binding, MYSQL_SERVICE, "ro").await["credentials"].clone();
    assert_eq!(
        cloud.instance(&db_instance_id(&broker, &ro)).unwrap()["accounts"][0]["privileges"],
        json!([{"db": ro_database, "privilege": "ReadOnly"}])
    );
    {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_login(&reader).await.expect("the reader logs in");
        let n: Option<i32> = conn.query_first("SELECT n FROM facts").await.unwrap();
        assert_eq!(n, Some(42), "read-only reads");
        let refused = conn
            .query_drop("INSERT INTO facts VALUES (43)")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("denied"),
            "read-only cannot write: {refused}"
        );
        let refused = conn
            .query_drop("CREATE TABLE mine (n INT)")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("denied"), "nor create tables: {refused}");
    }
    // Nor may a binding of one instance reach another instance's database.
    let mut foreign = credentials.clone();
    foreign["database"] = json!(ro_database);
    assert!(
        mysql_login(&foreign).await.is_err(),
        "a binding reaches its own instance's database only"
    );

    // Update to a bigger class and disk: 202, polled until the fake runs with them.
    let last = update_async(&broker, &id, MYSQL_SERVICE, "large").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let instance = cloud.instance(&db_id).unwrap();
    assert_eq!(instance["status"], "Running");
    assert_eq!(instance["class"], "mysql.n2.medium.1");
    assert_eq!(instance["storage"], 40);
    assert_eq!(cloud.instances().len(), 2, "a change creates nothing");
    assert_eq!(
        broker.get_instance(&id).await.1["plan_id"],
        format!("{MYSQL_SERVICE}-large")
    );
    assert_eq!(
        mysql_write_and_read(&credentials).await.as_deref(),
        Ok("hello from Alibaba RDS"),
        "the data and the binding survive the change"
    );
    // Back to the small plan would shrink the disk: refused, nothing changed (OSB-UPD-12).
    let last = update_async(&broker, &id, MYSQL_SERVICE, "small").await;
    assert_eq!(last["state"], "failed", "{last}");
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .contains("storage cannot shrink"),
        "{last}"
    );
    let instance = cloud.instance(&db_id).unwrap();
    assert_eq!(
        (instance["class"].as_str(), instance["storage"].as_u64()),
        (Some("mysql.n2.medium.1"), Some(40))
    );
    assert_eq!(
        broker.get_instance(&id).await.1["plan_id"],
        format!("{MYSQL_SERVICE}-large")
    );

    // Unbind: the account is dropped, its login fails; the other binding still works.
    unbind(&broker, &id, &first, MYSQL_SERVICE, "large").await;
    let refused = mysql_login(&credentials)
        .await
        .map(|_| ())
        .map_err(|err| err.to_string())
        .unwrap_err();
    assert!(
        refused.contains("Access denied"),
        "an unbound account cannot log in: {refused}"
    );
    assert_eq!(
        mysql_users(&mut admin, credentials["username"].as_str().unwrap()).await,
        0
    );
    assert_eq!(
        cloud.instance(&db_id).unwrap()["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        mysql_write_and_read(&other).await.is_ok(),
        "D-19: only one revoked"
    );

    // Deprovision (cascading to the remaining bindings, D-03): deleted and polled until gone.
    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "large").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instance(&db_id).is_none(), "the instance is gone");
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(mysql_databases(&mut admin, &database).await, 0);
    assert!(mysql_login(&other).await.is_err(), "the cascade dropped it");
    let last = deprovision_async(&broker, &ro, MYSQL_SERVICE, "ro").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instances().is_empty(), "{:?}", cloud.instances());
    assert_eq!(mysql_databases(&mut admin, &ro_database).await, 0);
    assert!(mysql_login(&reader).await.is_err());

    let mut secrets = vec![cloud.config.access_key_secret.as_str()];
    let passwords: Vec<String> = [&credentials, &other, &reader]
        .iter()
        .map(|c| c["password"].as_str().unwrap().to_owned())
        .collect();
    secrets.extend(passwords.iter().map(String::as_str));
    assert_not_logged(&secrets);
    broker.stop().await;
}

// ===== RDS PostgreSQL =====

/// Issue 7, OSB-PROV, OSB-BIND-13/19, OSB-UNB-01, OSB-DEPROV-01, D-03, D-19: an RDS PostgreSQL
/// instance: provisioned and polled; each binding's account owns the database (RDS PostgreSQL
/// grants only `DBOwner`), so it creates, writes and reads, and a second binding reads what the
/// first created; unbinding drops the account (its login fails) while the tables stay for the
/// other binding; deprovision deletes the instance and its database.
///
/// (The test server trusts every login from 127.0.0.1, so here a login proves the account
/// exists rather than that the password is right; the MySQL test checks passwords.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_postgres_lifecycle() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let cloud = Cloud::start(|config| config.postgres = Some(address.clone())).await;
    let plans = [("small", rds_plan("postgresql", "pg.n2.small.1", 20, false))];
    let broker = Broker::with_config(config_with(&cloud, vec![offering(PG_SERVICE, &plans)])).await;
    let admin = pg_admin(&address, "postgres").await;

    let id = new_id("ali-pg");
    let (_, last) = provision_async(&broker, &id, &provision(PG_SERVICE, "small", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let db_id = db_instance_id(&broker, &id);
    assert!(db_id.starts_with("pgm-"), "{db_id}");
    let instance = cloud.instance(&db_id).expect("the instance exists");
    assert_eq!(instance["status"], "Running");
    assert_eq!(instance["engine"], "PostgreSQL");
    assert_eq!(instance["class"], "pg.n2.small.1");
    let database = resource_name("sb", &id);
    assert_eq!(instance["databases"][0]["name"], database.as_str());
    let databases = "SELECT count(*) FROM pg_database WHERE datname = $1";
    assert_eq!(pg_count(&admin, databases, &database).await, 1);
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::OK);

    let first = new_id("ali-pg-b1");
    let response = bind(&broker, &id, &first, PG_SERVICE, "small").await;
    check_database_credentials(&response, "postgresql", &id, &first, &address);
    let credentials = response["credentials"].clone();
    assert_eq!(
        cloud.instance(&db_id).unwrap()["accounts"][0]["privileges"],
        json!([{"db": database, "privilege": "DBOwner"}])
    );
    let client = pg_login(&credentials).await.expect("the binding logs in");
    client
        .batch_execute(
            "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hello from Alibaba RDS')",
        )
        .await
        .expect("the binding creates and writes");
    let body: String = client
        .query_one("SELECT body FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, "hello from Alibaba RDS");
    drop(client);

    let second = new_id("ali-pg-b2");
    let other = bind(&broker, &id, &second, PG_SERVICE, "small").await["credentials"].clone();
    assert_ne!(other["username"], credentials["username"]);
    assert_ne!(other["password"], credentials["password"]);
    let other_client = pg_login(&other).await.expect("the second binding logs in");
    other_client
        .batch_execute("INSERT INTO notes VALUES ('and from the second binding')")
        .await
        .expect("a co-owner writes the first binding's table");

    // Unbind the first: its role is gone, its tables stay with the database.
    unbind(&broker, &id, &first, PG_SERVICE, "small").await;
    let refused = pg_login(&credentials).await.map(|_| ()).unwrap_err();
    assert!(
        refused.contains(credentials["username"].as_str().unwrap()),
        "an unbound account cannot log in: {refused}"
    );
    let roles = "SELECT count(*) FROM pg_roles WHERE rolname = $1";
    assert_eq!(
        pg_count(&admin, roles, credentials["username"].as_str().unwrap()).await,
        0
    );
    let rows: i64 = other_client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("the table survives its creator's account")
        .get(0);
    assert_eq!(rows, 2);
    drop(other_client);

    let last = deprovision_async(&broker, &id, PG_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instances().is_empty(), "{:?}", cloud.instances());
    assert_eq!(pg_count(&admin, databases, &database).await, 0);
    assert_eq!(
        pg_count(&admin, roles, other["username"].as_str().unwrap()).await,
        0,
        "the cascade dropped the second account"
    );
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);

    assert_not_logged(&[
        &cloud.config.access_key_secret,
        credentials["password"].as_str().unwrap(),
        other["password"].as_str().unwrap(),
    ]);
    broker.stop().await;
}

// ===== OSS =====

/// Issue 7, OSB-PROV (sync), OSB-GETI-01, OSB-BIND-13/19, OSB-UNB-01, OSB-DEPROV-01/09,
/// D-03, D-19: OSS buckets with RAM users per binding. A binding's key puts, gets and lists on
/// its own bucket and is denied another bucket; a read-only plan's key reads and cannot write;
/// an unbound key stops working (InvalidAccessKeyId) and its RAM user and policy are gone; a
/// `refuse` plan answers 422 naming the bucket while objects remain (and deletes once it is
/// empty); an `empty` plan deletes the objects (asynchronously) and then the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_oss_lifecycle() {
    let cloud = Cloud::start(|_| {}).await;
    let plans = [
        ("keep", oss_plan(false, "refuse")),
        ("ro", oss_plan(true, "refuse")),
        ("empty", oss_plan(false, "empty")),
    ];
    let broker =
        Broker::with_config(config_with(&cloud, vec![offering(OSS_SERVICE, &plans)])).await;
    let root = cloud.root();

    // Provision: synchronous (201), the bucket made as the plan says.
    let first = new_id("ali-oss");
    let (status, body) = broker
        .put_instance(&first, &provision(OSS_SERVICE, "keep", json!({})), false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bucket = cloud_name(PREFIX, &first);
    let made = cloud.bucket(&bucket).expect("the bucket exists");
    assert_eq!(made["storage_class"], "Standard");
    assert_eq!(made["acl"], "private");
    assert_eq!(broker.get_instance(&first).await.0, StatusCode::OK);

    // Bind: a RAM user with a key and a policy naming this bucket only.
    let binding = new_id("ali-oss-b1");
    let response = bind(&broker, &first, &binding, OSS_SERVICE, "keep").await;
    let credentials = response["credentials"].clone();
    assert_eq!(credentials["bucket"], bucket.as_str());
    assert_eq!(credentials["region"], cloud.config.region.as_str());
    assert_eq!(credentials["endpoint"], cloud.fake.oss_url());
    assert_eq!(
        credentials["bucket_url"],
        format!("{}/{bucket}", cloud.fake.oss_url())
    );
    assert_eq!(credentials["read_only"], false);
    let user = cloud_name(PREFIX, &binding);
    let ram_user = cloud.ram_user(&user).expect("the binding's RAM user");
    assert_eq!(
        ram_user["access_keys"],
        json!([credentials["access_key_id"]])
    );
    assert_eq!(
        ram_user["policies"],
        json!([{"type": "Custom", "name": user}])
    );
    let policy = cloud.ram_policy(&user).expect("the binding's policy");
    assert_eq!(
        policy["document"]["Statement"][0]["Resource"],
        json!([
            format!("acs:oss:*:*:{bucket}"),
            format!("acs:oss:*:*:{bucket}/*")
        ])
    );

    let own = cloud.binding_client(&credentials);
    oss_put(&own, &bucket, "notes/hello.txt", b"hello from a binding")
        .await
        .expect("the binding writes its bucket");
    assert_eq!(
        oss_get(&own, &bucket, "notes/hello.txt").await.unwrap(),
        b"hello from a binding"
    );
    assert_eq!(
        oss_list(&own, &bucket).await.unwrap(),
        ["notes/hello.txt"],
        "and lists it"
    );
    // Another bucket of the account: denied.
    let foreign = format!("sb-other-{}", &new_hex()[..12]);
    root.oss(OssRequest::new(Method::PUT, Some(&foreign)))
        .await
        .expect("the root key makes a bucket");
    oss_put(&root, &foreign, "secret.txt", b"not yours")
        .await
        .unwrap();
    assert_eq!(
        code(oss_put(&own, &foreign, "x.txt", b"x").await),
        "AccessDenied"
    );
    assert_eq!(
        code(oss_get(&own, &foreign, "secret.txt").await),
        "AccessDenied"
    );
    assert_eq!(code(oss_list(&own, &foreign).await), "AccessDenied");

    // A read-only plan: its binding reads and cannot write or delete.
    let second = new_id("ali-oss-ro");
    let (status, body) = broker
        .put_instance(&second, &provision(OSS_SERVICE, "ro", json!({})), true)
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "synchronous even when async is accepted: {body}"
    );
    let ro_bucket = cloud_name(PREFIX, &second);
    oss_put(&root, &ro_bucket, "fact.txt", b"42").await.unwrap();
    let reader_binding = new_id("ali-oss-b2");
    let reader =
        bind(&broker, &second, &reader_binding, OSS_SERVICE, "ro").await["credentials"].clone();
    assert_eq!(reader["read_only"], true);
    let reader_client = cloud.binding_client(&reader);
    assert_eq!(
        oss_get(&reader_client, &ro_bucket, "fact.txt")
            .await
            .unwrap(),
        b"42"
    );
    assert_eq!(
        oss_list(&reader_client, &ro_bucket).await.unwrap(),
        ["fact.txt"]
    );
    assert_eq!(
        code(oss_put(&reader_client, &ro_bucket, "mine.txt", b"x").await),
        "AccessDenied"
    );
    assert_eq!(
        code(oss_delete(&reader_client, &ro_bucket, "fact.txt").await),
        "AccessDenied"
    );
    assert_eq!(
        code(oss_get(&own, &ro_bucket, "fact.txt").await),
        "AccessDenied",
        "D-19: one binding's key never reaches another instance"
    );

    // Unbind: the key stops working at once; the user and its policy are gone.
    unbind(&broker, &first, &binding, OSS_SERVICE, "keep").await;
    assert_eq!(
        code(oss_get(&own, &bucket, "notes/hello.txt").await),
        "InvalidAccessKeyId"
    );
    assert!(cloud.ram_user(&user).is_none(), "the RAM user is gone");
    assert!(cloud.ram_policy(&user).is_none(), "its policy too");
    assert_eq!(
        oss_get(&reader_client, &ro_bucket, "fact.txt")
            .await
            .unwrap(),
        b"42",
        "the other binding's key still works"
    );

    // Deprovision of a `refuse` plan while objects remain: 422 naming the bucket, data kept.
    let (status, error) = broker
        .delete_instance_of(&first, OSS_SERVICE, &format!("{OSS_SERVICE}-keep"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let description = error["description"].as_str().unwrap();
    assert!(
        description.contains(&bucket) && description.contains("still holds objects"),
        "{error}"
    );
    assert_eq!(
        broker.get_instance(&first).await.0,
        StatusCode::OK,
        "the instance stays"
    );
    assert_eq!(
        cloud.bucket(&bucket).unwrap()["objects"],
        1,
        "the data stays"
    );
    // Once emptied, the same deprovision deletes it.
    oss_delete(&root, &bucket, "notes/hello.txt").await.unwrap();
    let (status, body) = broker
        .delete_instance_of(&first, OSS_SERVICE, &format!("{OSS_SERVICE}-keep"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cloud.bucket(&bucket).is_none(), "the bucket is gone");
    assert_eq!(broker.get_instance(&first).await.0, StatusCode::NOT_FOUND);

    // The read-only instance with a binding and an object: the deprovision is refused for
    // the object before anything is revoked (the plugin sees it before the D-03 cascade).
    let (status, error) = broker
        .delete_instance_of(&second, OSS_SERVICE, &format!("{OSS_SERVICE}-ro"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["description"].as_str().unwrap().contains(&ro_bucket),
        "{error}"
    );
    assert_eq!(cloud.bucket(&ro_bucket).unwrap()["objects"], 1);
    assert_eq!(
        oss_get(&reader_client, &ro_bucket, "fact.txt")
            .await
            .unwrap(),
        b"42",
        "a refused deprovision revokes nothing: the binding's key still reads"
    );
    oss_delete(&root, &ro_bucket, "fact.txt").await.unwrap();
    let (status, body) = broker
        .delete_instance_of(&second, OSS_SERVICE, &format!("{OSS_SERVICE}-ro"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cloud.bucket(&ro_bucket).is_none());
    // The accepted deprovision still took the binding with it (D-03).
    assert_eq!(
        code(oss_get(&reader_client, &ro_bucket, "fact.txt").await),
        "InvalidAccessKeyId",
        "the cascade revoked the binding's key"
    );

    // An `empty` plan: deprovision is asynchronous (422 AsyncRequired without
    // accepts_incomplete), deletes every object, then the bucket, and the binding's user.
    let third = new_id("ali-oss-empty");
    provision_sync(&broker, &third, &provision(OSS_SERVICE, "empty", json!({}))).await;
    let empty_bucket = cloud_name(PREFIX, &third);
    let writer_binding = new_id("ali-oss-b3");
    let writer =
        bind(&broker, &third, &writer_binding, OSS_SERVICE, "empty").await["credentials"].clone();
    let writer_client = cloud.binding_client(&writer);
    for key in ["a.txt", "b/c.txt", "d e.txt"] {
        oss_put(&writer_client, &empty_bucket, key, key.as_bytes())
            .await
            .unwrap();
    }
    assert_eq!(cloud.bucket(&empty_bucket).unwrap()["objects"], 3);
    let (status, error) = broker
        .delete_instance_of(&third, OSS_SERVICE, &format!("{OSS_SERVICE}-empty"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"], "AsyncRequired");
    let last = deprovision_async(&broker, &third, OSS_SERVICE, "empty").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.bucket(&empty_bucket).is_none(), "emptied and deleted");
    assert!(
        cloud
            .ram_user(&cloud_name(PREFIX, &writer_binding))
            .is_none(),
        "the cascade deleted the binding's user"
    );

    // What is left: the root key's bucket, and no RAM user or policy.
    let names: Vec<Value> = cloud.buckets().iter().map(|b| b["name"].clone()).collect();
    assert_eq!(names, [json!(foreign)]);
    let snapshot = cloud.fake.snapshot();
    assert_eq!(snapshot["ram"]["users"], json!([]));
    assert_eq!(snapshot["ram"]["policies"], json!([]));

    assert_not_logged(&[
        &cloud.config.access_key_secret,
        credentials["access_key_secret"].as_str().unwrap(),
        reader["access_key_secret"].as_str().unwrap(),
        writer["access_key_secret"].as_str().unwrap(),
    ]);
    broker.stop().await;
}

// ===== failures =====

/// Issue 7 ("bad parameters → 400 before anything is created"), OSB-PROV-04, OSB-UPD: the
/// provider checks parameters at admission (`Broker::check_parameters`), so an RDS provision,
/// although asynchronous, answers 400 naming the problem and nothing is recorded or created;
/// OSS plans take no parameters at all. A well-formed allow-list reaches the instance, an
/// update with a bad one is 400 and a good one is applied (`ModifySecurityIps`). A PostgreSQL
/// plan with `read_only` cannot be configured (RDS PostgreSQL has no read-only privilege).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_bad_parameters_create_nothing() {
    let cloud = Cloud::start(|_| {}).await;
    let broker = Broker::with_config(config_with(
        &cloud,
        vec![
            offering(
                MYSQL_SERVICE,
                &[("small", rds_plan("mysql", "mysql.n2.small.1", 20, false))],
            ),
            offering(OSS_SERVICE, &[("keep", oss_plan(false, "refuse"))]),
        ],
    ))
    .await;

    for (parameters, needle) in [
        (json!({"security_ips": ["not-an-ip"]}), "not-an-ip"),
        (json!({"security_ips": ["10.0.0.0/33"]}), "10.0.0.0/33"),
        (json!({"security_ips": ["10.0.0.1", "10.0.0.1"]}), "twice"),
        (
            json!({"security_ips": "10.0.0.1"}),
            "security_ips must be an array",
        ),
        (json!({"engine": "oracle"}), "unknown parameter \"engine\""),
    ] {
        let id = new_id("ali-bad");
        let (status, error) = broker
            .put_instance(
                &id,
                &provision(MYSQL_SERVICE, "small", parameters.clone()),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{parameters}: {error}");
        let description = error["description"].as_str().unwrap();
        assert!(description.contains(needle), "{parameters}: {error}");
        assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);
        assert!(
            cloud.instances().is_empty(),
            "{parameters}: {:?}",
            cloud.instances()
        );
    }

    let id = new_id("ali-bad-oss");
    let (status, error) = broker
        .put_instance(
            &id,
            &provision(OSS_SERVICE, "keep", json!({"acl": "public-read"})),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["description"].as_str().unwrap().contains("acl"),
        "{error}"
    );
    assert!(cloud.buckets().is_empty(), "{:?}", cloud.buckets());
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);

    // A good allow-list is what the instance gets.
    let id = new_id("ali-ips");
    let (_, last) = provision_async(
        &broker,
        &id,
        &provision(
            MYSQL_SERVICE,
            "small",
            json!({"security_ips": ["10.0.0.0/8", "192.168.1.7"]}),
        ),
    )
    .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let db_id = db_instance_id(&broker, &id);
    let attribute = cloud
        .root()
        .rpc(
            Product::Rds,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", &db_id)],
        )
        .await
        .unwrap();
    assert_eq!(
        attribute["Items"]["DBInstanceAttribute"][0]["SecurityIPList"],
        "10.0.0.0/8,192.168.1.7"
    );
    // Updates: a bad allow-list is refused at once, a good one is applied.
    let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
    let update =
        |ips: Value| json!({"service_id": MYSQL_SERVICE, "parameters": {"security_ips": ips}});
    let (status, error) = broker
        .send(
            broker
                .request(Method::PATCH, &path)
                .json(&update(json!(["300.1.1.1"]))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, accepted) = broker
        .send(
            broker
                .request(Method::PATCH, &path)
                .json(&update(json!(["172.16.0.0/12"]))),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let last = broker
        .wait_instance(&id, accepted["operation"].as_str().unwrap())
        .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let attribute = cloud
        .root()
        .rpc(
            Product::Rds,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", &db_id)],
        )
        .await
        .unwrap();
    let instance = &attribute["Items"]["DBInstanceAttribute"][0];
    assert_eq!(instance["SecurityIPList"], "172.16.0.0/12");
    assert_eq!(instance["DBInstanceClass"], "mysql.n2.small.1");
    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instances().is_empty());
    broker.stop().await;

    // Configuration: refused at start, naming the setting.
    let mut config = config_with(
        &cloud,
        vec![offering(
            PG_SERVICE,
            &[("ro", rds_plan("postgresql", "pg.n2.small.1", 20, true))],
        )],
    );
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let refused = match skybroker::start(config).await {
        Ok(_) => panic!("a read_only PostgreSQL plan must be refused"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        refused.contains(
            "read_only is not available for PostgreSQL: RDS grants PostgreSQL accounts only \
             DBOwner on a database"
        ),
        "{refused}"
    );
    assert_not_logged(&[&cloud.config.access_key_secret]);
}

/// Issue 7 (throttling), OSB-PROV, OSB-BIND-08: throttled calls are retried by the client
/// with back-off: with fewer throttled answers in a row than `max_attempts`, an RDS
/// provision, an OSS provision, binds and an unbind succeed as if nothing happened, and
/// every injected throttle was met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_throttling_is_retried() {
    let cloud = Cloud::start(|_| {}).await;
    let broker = Broker::with_config(config_with(
        &cloud,
        vec![
            offering(
                MYSQL_SERVICE,
                &[("small", rds_plan("mysql", "mysql.n2.small.1", 20, false))],
            ),
            offering(OSS_SERVICE, &[("keep", oss_plan(false, "refuse"))]),
        ],
    ))
    .await;
    let faults = cloud.fake.shared();
    let all_met = || !faults.faults.take_throttle();

    cloud.fake.throttle_next(2);
    let id = new_id("ali-throttle");
    let (operation, last) =
        provision_async(&broker, &id, &provision(MYSQL_SERVICE, "small", json!({}))).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(all_met(), "the throttled answers were met");
    assert_eq!(cloud.instances().len(), 1, "retries create nothing twice");
    // Within the one call, by the client (the engine never saw a failure).
    assert!(logged(&[
        "RDS CreateDBInstance: attempt 2 of 3 failed, retrying",
        "Throttling.User"
    ]));
    assert!(logged(&["RDS CreateDBInstance: HTTP 200", "attempt 3"]));
    assert!(!logged(&[&format!("operation {operation}"), "retrying"]));

    cloud.fake.throttle_next(2);
    let binding = new_id("ali-throttle-b");
    let credentials =
        bind(&broker, &id, &binding, MYSQL_SERVICE, "small").await["credentials"].clone();
    assert!(all_met());
    assert!(logged(&["RDS CreateAccount: HTTP 200", "attempt 3"]));
    assert_eq!(
        cloud.instance(&db_instance_id(&broker, &id)).unwrap()["accounts"][0]["name"],
        credentials["username"]
    );

    cloud.fake.throttle_next(2);
    let bucket_instance = new_id("ali-throttle-oss");
    provision_sync(
        &broker,
        &bucket_instance,
        &provision(OSS_SERVICE, "keep", json!({})),
    )
    .await;
    assert!(all_met());
    assert!(logged(&[
        &format!(
            "OSS PUT {}: attempt 2 of 3 failed",
            cloud_name(PREFIX, &bucket_instance)
        ),
        "MetaOperationQpsLimitExceeded"
    ]));
    assert!(cloud
        .bucket(&cloud_name(PREFIX, &bucket_instance))
        .is_some());
    cloud.fake.throttle_next(2);
    let key_binding = new_id("ali-throttle-ob");
    let key = bind(&broker, &bucket_instance, &key_binding, OSS_SERVICE, "keep").await
        ["credentials"]
        .clone();
    assert!(all_met());
    let client = cloud.binding_client(&key);
    oss_put(&client, &cloud_name(PREFIX, &bucket_instance), "k", b"v")
        .await
        .unwrap();
    oss_delete(&client, &cloud_name(PREFIX, &bucket_instance), "k")
        .await
        .unwrap();

    cloud.fake.throttle_next(2);
    unbind(&broker, &bucket_instance, &key_binding, OSS_SERVICE, "keep").await;
    assert!(all_met());
    assert!(cloud.ram_user(&cloud_name(PREFIX, &key_binding)).is_none());

    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let (status, body) = broker
        .delete_instance_of(
            &bucket_instance,
            OSS_SERVICE,
            &format!("{OSS_SERVICE}-keep"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cloud.instances().is_empty() && cloud.buckets().is_empty());
    assert_not_logged(&[
        &cloud.config.access_key_secret,
        credentials["password"].as_str().unwrap(),
        key["access_key_secret"].as_str().unwrap(),
    ]);
    broker.stop().await;
}

/// Issue 7, OSB-LOI (failed with a description), OSB-DEPROV-12 (orphan mitigation): an
/// instance class Alibaba accepts but cannot deliver (the fake's `.fail` classes: `Creating`,
/// then released) ends the provision `failed`, saying the instance disappeared while it was
/// being created and what to check; nothing is left at the fake, and the platform's delete of
/// the failed instance succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_creation_failure_is_reported() {
    let cloud = Cloud::start(|_| {}).await;
    let broker = Broker::with_config(config_with(
        &cloud,
        vec![offering(
            MYSQL_SERVICE,
            &[(
                "doomed",
                rds_plan("mysql", "mysql.n2.small.fail", 20, false),
            )],
        )],
    ))
    .await;
    let id = new_id("ali-doomed");
    let operation = start_async(
        &broker,
        Method::PUT,
        &format!("/v2/service_instances/{id}"),
        Some(&provision(MYSQL_SERVICE, "doomed", json!({}))),
    )
    .await;
    // While Alibaba works on it, last_operation says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let creating = loop {
        let (_, during) = broker.last_operation(&id, Some(&operation)).await;
        if during["description"]
            .as_str()
            .is_some_and(|d| d.contains("Creating"))
        {
            break during;
        }
        assert!(Instant::now() < deadline, "{during}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(creating["state"], "in progress", "{creating}");
    assert_eq!(cloud.instances().len(), 1);
    let db_id = cloud.instances()[0]["id"].as_str().unwrap().to_owned();

    let last = broker.wait_instance(&id, &operation).await;
    assert_eq!(last["state"], "failed", "{last}");
    let description = last["description"].as_str().unwrap();
    assert!(
        description.contains(&format!(
            "the RDS instance {db_id} disappeared while it was being created"
        )) && description.contains("Alibaba Cloud could not create it"),
        "{last}"
    );
    assert!(cloud.instances().is_empty());
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);

    // Orphan mitigation: the platform deletes the failed instance; nothing is left to do.
    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "doomed").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let (status, _) = broker
        .delete_instance_of(&id, MYSQL_SERVICE, &format!("{MYSQL_SERVICE}-doomed"))
        .await;
    assert_eq!(status, StatusCode::GONE, "OSB-DEPROV-08");
    assert_not_logged(&[&cloud.config.access_key_secret]);
    broker.stop().await;
}

// ===== idempotency and concurrency =====

/// Issue 7, D-12, OSB-PROV-06/08, D-07: concurrent identical provisions of one id make
/// exactly one RDS instance (one ClientToken, one operation); a repeat after success answers
/// 200 and creates nothing; after a deprovision the id may be reused and gets a new instance
/// (a new operation, a new ClientToken), still one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_one_instance_per_osb_instance() {
    let cloud = Cloud::start(|_| {}).await;
    let broker = Arc::new(
        Broker::with_config(config_with(
            &cloud,
            vec![offering(
                MYSQL_SERVICE,
                &[("small", rds_plan("mysql", "mysql.n2.small.1", 20, false))],
            )],
        ))
        .await,
    );
    let id = new_id("ali-once");
    let body = provision(MYSQL_SERVICE, "small", json!({}));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let broker = Arc::clone(&broker);
            let (id, body) = (id.clone(), body.clone());
            tokio::spawn(async move { broker.put_instance(&id, &body, true).await })
        })
        .collect();
    let mut operations = std::collections::HashSet::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        operations.insert(answer["operation"].as_str().unwrap().to_owned());
    }
    assert_eq!(operations.len(), 1, "one operation: {operations:?}");
    let operation = operations.into_iter().next().unwrap();
    let last = broker.wait_instance(&id, &operation).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let instances = cloud.instances();
    assert_eq!(
        instances.len(),
        1,
        "exactly one RDS instance: {instances:?}"
    );
    let first_db = instances[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(first_db, db_instance_id(&broker, &id));
    assert_eq!(
        instances[0]["client_token"],
        cloud_name(PREFIX, &format!("{id}/{operation}"))
    );

    let (status, answer) = broker.put_instance(&id, &body, true).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(cloud.instances().len(), 1);

    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instances().is_empty());
    // D-07: the id again, a new instance.
    let (again, last) = provision_async(&broker, &id, &body).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_ne!(again, operation);
    let instances = cloud.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_ne!(instances[0]["id"], first_db.as_str(), "a new instance");
    assert_eq!(
        instances[0]["client_token"],
        cloud_name(PREFIX, &format!("{id}/{again}"))
    );
    let last = deprovision_async(&broker, &id, MYSQL_SERVICE, "small").await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(cloud.instances().is_empty());
    assert_not_logged(&[&cloud.config.access_key_secret]);
}

/// Issue 7, D-17, OSB-DEPROV-03: a DELETE while the RDS instance is still `Creating` is
/// accepted; the provision ends `failed` (cancelled), the delete waits until Alibaba lets the
/// instance be deleted, deletes it and succeeds; no instance is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_delete_during_provision_halts_it() {
    let cloud = Cloud::start(|config| config.creating = Duration::from_secs(2)).await;
    let broker = Broker::with_config(config_with(
        &cloud,
        vec![offering(
            MYSQL_SERVICE,
            &[("small", rds_plan("mysql", "mysql.n2.small.1", 20, false))],
        )],
    ))
    .await;
    let id = new_id("ali-halt");
    let provision_op = start_async(
        &broker,
        Method::PUT,
        &format!("/v2/service_instances/{id}"),
        Some(&provision(MYSQL_SERVICE, "small", json!({}))),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while cloud.instances().is_empty() {
        assert!(Instant::now() < deadline, "the instance never appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cloud.instances()[0]["status"], "Creating");
    let delete_op = start_async(
        &broker,
        Method::DELETE,
        &instance_path(&id, MYSQL_SERVICE, "small"),
        None,
    )
    .await;
    assert_ne!(delete_op, provision_op);
    let halted = broker.wait_instance(&id, &provision_op).await;
    assert_eq!(halted["state"], "failed", "{halted}");
    assert!(
        halted["description"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{halted}"
    );
    let last = broker.wait_instance(&id, &delete_op).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    wait_no_instances(&cloud).await;
    assert_eq!(broker.get_instance(&id).await.0, StatusCode::NOT_FOUND);
    assert_not_logged(&[&cloud.config.access_key_secret]);
    broker.stop().await;
}

/// Issue 7 ("storage class, ACL, region from the plan"): an OSS plan that names a region
/// creates its buckets there (the client signs for that region; the fake, like OSS, refuses a
/// signature scoped to another), and its bindings are told that region, while a plan without
/// one uses the provider's region: here a region the fake does not serve, so its provision is
/// refused (400, naming the region) and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_oss_plan_region() {
    let cloud = Cloud::start(|_| {}).await;
    let here = cloud.config.region.clone();
    let elsewhere = if here == "cn-shanghai" {
        "cn-beijing"
    } else {
        "cn-shanghai"
    };
    let mut provider = cloud.provider();
    provider.settings.insert("region".into(), json!(elsewhere));
    let mut plan_here = oss_plan(false, "refuse");
    plan_here["region"] = json!(here);
    let mut config = fast_config(100);
    config.providers.insert("alibaba".into(), provider);
    config.services.push(offering(
        OSS_SERVICE,
        &[("here", plan_here), ("default", oss_plan(false, "refuse"))],
    ));
    let broker = Broker::with_config(config).await;

    let id = new_id("ali-region");
    provision_sync(&broker, &id, &provision(OSS_SERVICE, "here", json!({}))).await;
    let bucket = cloud_name("skybroker", &id);
    assert!(cloud.bucket(&bucket).is_some(), "{:?}", cloud.buckets());
    let binding = new_id("ali-region-b");
    let answer = bind(&broker, &id, &binding, OSS_SERVICE, "here").await;
    assert_eq!(answer["credentials"]["region"], here.as_str(), "{answer}");
    unbind(&broker, &id, &binding, OSS_SERVICE, "here").await;

    let other = new_id("ali-region-default");
    let (status, error) = broker
        .put_instance(&other, &provision(OSS_SERVICE, "default", json!({})), false)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["description"].as_str().unwrap().contains("region"),
        "{error}"
    );
    assert!(cloud.bucket(&cloud_name("skybroker", &other)).is_none());
    broker.stop().await;
}

// Issue #17: the Alibaba Cloud provider's OSS plans keep the contract every provider keeps
// (`skybroker_brokers::testing`), against the fake that checks signatures and RAM policies,
// and leave no bucket behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_oss_keeps_the_provider_contract() {
    let cloud = Cloud::start(|_| {}).await;
    let plugin = skybroker_brokers::registry::build_broker("alibaba", Some(&cloud.provider()))
        .expect("the provider builds");
    let subject = skybroker_brokers::testing::Subject {
        broker: plugin,
        service_id: "alibaba-oss-contract".into(),
        plan_id: "alibaba-oss-contract-rw".into(),
        plan_settings: std::sync::Arc::new(oss_plan(false, "empty")),
        parameters: json!({}),
        bad_parameters: None,
        bindable: true,
        patience: Duration::from_secs(30),
        prefix: "contract-oss".into(),
    };
    let report = skybroker_brokers::testing::run(&subject).await;
    let bucket = report.instance_state["bucket"]
        .as_str()
        .expect("the bucket is in the instance state");
    assert_eq!(cloud.bucket(bucket), None, "{bucket} was left behind");
    assert!(report.credentials["access_key_id"].is_string());
}
