//! The local database providers against real servers: PostgreSQL and MySQL/MariaDB (issue 4).
//!
//! Each test needs its server: `SKYBROKER_TEST_POSTGRES` / `SKYBROKER_TEST_MYSQL` hold
//! `host:port` of a server whose administrator (`postgres`, `root`) needs no password; the
//! README test command starts the servers and sets both. Without them a test says loudly that
//! it is skipped — and fails under CI, where nothing may be skipped.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skybroker_brokers::names::resource_name;
use skybroker_brokers::registry::build_broker;
use skybroker_brokers::testing as contract;
use skybroker_config::{Config, ProviderConfig, ServiceOffering};

use crate::harness::*;
use crate::servers::*;

const PG_SERVICE: &str = "local-pg-service";
const MY_SERVICE: &str = "local-mysql-service";

/// An offering served by provider `provider` with plans `rw`, `ro` and `limited`.
fn offering(id: &str, provider: &str, extensions: Value) -> ServiceOffering {
    let toml = format!(
        r#"
        id = "{id}"
        name = "{id}"
        description = "databases"
        bindable = true
        instances_retrievable = true
        bindings_retrievable = true
        plan_updateable = true
        broker = "{provider}"
        [[plans]]
        id = "{id}-rw"
        name = "rw"
        description = "read-write"
        settings = {{ extensions = {extensions} }}
        [[plans]]
        id = "{id}-ro"
        name = "ro"
        description = "read-only"
        settings = {{ access = "read_only" }}
        [[plans]]
        id = "{id}-limited"
        name = "limited"
        description = "connection limit from a parameter"
        settings = {{ connection_limit = 5, extensions = {extensions} }}
        [plans.schemas.service_instance.create.parameters]
        "$schema" = "http://json-schema.org/draft-04/schema#"
        type = "object"
        properties = {{ connection_limit = {{ type = "integer", minimum = 1, maximum = 100 }} }}
        [plans.schemas.service_instance.update.parameters]
        "$schema" = "http://json-schema.org/draft-04/schema#"
        type = "object"
        properties = {{ connection_limit = {{ type = "integer", minimum = 1, maximum = 100 }} }}
        "#
    );
    toml::from_str(&toml).expect("test offering parses")
}

fn provider(kind: &str, address: &str, admin: &str) -> ProviderConfig {
    let (host, port) = split(address);
    serde_json::from_value(json!({"kind": kind, "host": host, "port": port, "admin_user": admin}))
        .unwrap()
}

/// The fast test configuration plus the local providers that have a server.
fn config(pg: Option<&str>, mysql: Option<&str>) -> Config {
    let mut config = fast_config(100);
    if let Some(address) = pg {
        config
            .providers
            .insert("pg".into(), provider("postgres", address, "postgres"));
        config
            .services
            .push(offering(PG_SERVICE, "pg", json!(["pgcrypto"])));
    }
    if let Some(address) = mysql {
        config
            .providers
            .insert("mysql".into(), provider("mysql", address, "root"));
        config
            .services
            .push(offering(MY_SERVICE, "mysql", json!([])));
    }
    config
}

fn provision(service: &str, plan: &str) -> Value {
    json!({
        "service_id": service,
        "plan_id": format!("{service}-{plan}"),
        "organization_guid": "org", "space_guid": "space",
    })
}

fn bind(service: &str, plan: &str) -> Value {
    json!({"service_id": service, "plan_id": format!("{service}-{plan}")})
}

async fn put_sync(broker: &Broker, id: &str, body: &Value) {
    let (status, response) = broker.put_instance(id, body, false).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
}

async fn bind_sync(broker: &Broker, instance: &str, binding: &str, body: &Value) -> Value {
    let (status, response) = broker.put_binding(instance, binding, body, false).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    response["credentials"].clone()
}

// ===== PostgreSQL =====

async fn pg_connect(credentials: &Value) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(credentials["host"].as_str().unwrap())
        .port(credentials["port"].as_u64().unwrap() as u16)
        .user(credentials["username"].as_str().unwrap())
        .password(credentials["password"].as_str().unwrap())
        .dbname(credentials["database"].as_str().unwrap());
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn pg_databases(address: &str) -> Vec<String> {
    let admin = pg_admin(address, "postgres").await;
    admin
        .query("SELECT datname FROM pg_database ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Issue 4, OSB-BIND-13/17/19, OSB-UNB-01, OSB-DEPROV-01, D-03, D-19: the full PostgreSQL
/// lifecycle through the HTTP API, with the returned credentials really used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lifecycle() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let broker = Broker::with_config(config(Some(&address), None)).await;
    put_sync(&broker, "pg-life-1", &provision(PG_SERVICE, "rw")).await;
    let (status, instance) = broker.get_instance("pg-life-1").await;
    assert_eq!(status, StatusCode::OK, "{instance}");

    let first = bind_sync(&broker, "pg-life-1", "pg-b1", &bind(PG_SERVICE, "rw")).await;
    for key in [
        "uri", "jdbcUrl", "host", "port", "database", "username", "password",
    ] {
        assert!(!first[key].is_null(), "credentials carry {key}: {first}");
    }
    let database = first["database"].as_str().unwrap().to_owned();
    assert!(pg_databases(&address).await.contains(&database));
    let client = pg_connect(&first).await.expect("the binding connects");
    client
        .batch_execute("CREATE TABLE notes (id int primary key, body text); INSERT INTO notes VALUES (1, 'hello')")
        .await
        .expect("read-write binding writes");
    let row = client
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "hello");
    let extension = client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto'", &[])
        .await
        .unwrap();
    assert!(extension.is_some(), "the plan's extension exists");

    // A second binding has its own user and password, and sees the instance's tables.
    let second = bind_sync(&broker, "pg-life-1", "pg-b2", &bind(PG_SERVICE, "rw")).await;
    assert_ne!(second["username"], first["username"]);
    assert_ne!(second["password"], first["password"]);
    let other = pg_connect(&second).await.expect("second binding connects");
    other
        .batch_execute("INSERT INTO notes VALUES (2, 'from b2')")
        .await
        .expect("shared tables");

    // Another instance's binding cannot reach this database.
    put_sync(&broker, "pg-life-2", &provision(PG_SERVICE, "rw")).await;
    let stranger = bind_sync(&broker, "pg-life-2", "pg-b3", &bind(PG_SERVICE, "rw")).await;
    let mut trespass = stranger.clone();
    trespass["database"] = json!(database);
    assert!(
        pg_connect(&trespass).await.is_err(),
        "CONNECT is revoked from PUBLIC"
    );

    // Unbind: the session is ended and the credentials stop working.
    assert_eq!(
        broker
            .delete_binding_of(
                "pg-life-1",
                "pg-b1",
                PG_SERVICE,
                &format!("{PG_SERVICE}-rw")
            )
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        client.query_one("SELECT 1", &[]).await.is_err(),
        "the open session was ended"
    );
    assert!(
        pg_connect(&first).await.is_err(),
        "unbound credentials no longer connect"
    );
    assert!(
        pg_connect(&second).await.is_ok(),
        "the other binding still works"
    );
    drop(other);

    // Deprovision cascades to the remaining binding and removes the database and roles.
    let (status, body) = broker
        .delete_instance_of("pg-life-1", PG_SERVICE, &format!("{PG_SERVICE}-rw"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !pg_databases(&address).await.contains(&database),
        "the database is gone"
    );
    assert!(pg_connect(&second).await.is_err());
    let admin = pg_admin(&address, "postgres").await;
    let roles = admin
        .query(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![
                first["username"].as_str().unwrap(),
                second["username"].as_str().unwrap(),
                &format!("{database}_owner"),
            ]],
        )
        .await
        .unwrap();
    assert!(roles.is_empty(), "roles are dropped");
    broker
        .delete_instance_of("pg-life-2", PG_SERVICE, &format!("{PG_SERVICE}-rw"))
        .await;
    broker.stop().await;
}

/// Issue 4: a read-only plan's bindings read the instance's tables and cannot write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_plan() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let broker = Broker::with_config(config(Some(&address), None)).await;
    put_sync(&broker, "pg-ro-1", &provision(PG_SERVICE, "ro")).await;
    let reader = bind_sync(&broker, "pg-ro-1", "pg-ro-b1", &bind(PG_SERVICE, "ro")).await;
    let database = reader["database"].as_str().unwrap();
    // Data made by the owner role (as a read-write app would).
    let admin = pg_admin(&address, database).await;
    admin
        .batch_execute(&format!(
            "SET ROLE \"{database}_owner\"; CREATE TABLE facts (n int); INSERT INTO facts VALUES (42)"
        ))
        .await
        .unwrap();
    let client = pg_connect(&reader)
        .await
        .expect("read-only binding connects");
    let row = client
        .query_one("SELECT n FROM facts", &[])
        .await
        .expect("reads");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert!(
        client
            .batch_execute("INSERT INTO facts VALUES (1)")
            .await
            .is_err(),
        "cannot write"
    );
    assert!(
        client
            .batch_execute("CREATE TABLE mine (n int)")
            .await
            .is_err(),
        "cannot create"
    );
    drop(client);
    drop(admin);
    broker
        .delete_instance_of("pg-ro-1", PG_SERVICE, &format!("{PG_SERVICE}-ro"))
        .await;
    assert!(!pg_databases(&address).await.contains(&database.to_owned()));
    broker.stop().await;
}

/// Issue 4: update changes the connection limit; an unsupported change is 422 and changes
/// nothing; parameters outside the schema are 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_update() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let mut config = config(Some(&address), None);
    let pg = config
        .services
        .iter_mut()
        .find(|s| s.id == PG_SERVICE)
        .unwrap();
    pg.plans[1].settings = json!({"access": "read_only", "encoding": "LATIN1"}).into();
    let broker = Broker::with_config(config).await;
    let mut body = provision(PG_SERVICE, "limited");
    body["parameters"] = json!({"connection_limit": 7});
    put_sync(&broker, "pg-up-1", &body).await;
    let admin = pg_admin(&address, "postgres").await;
    let database = broker
        .core()
        .state
        .instance("pg-up-1")
        .unwrap()
        .plugin_state["database"]
        .as_str()
        .unwrap()
        .to_owned();
    async fn limit(admin: &tokio_postgres::Client, database: &str) -> i32 {
        admin
            .query_one(
                "SELECT datconnlimit FROM pg_database WHERE datname = $1",
                &[&database],
            )
            .await
            .unwrap()
            .get::<_, i32>(0)
    }
    assert_eq!(limit(&admin, &database).await, 7);
    let update = json!({"service_id": PG_SERVICE, "parameters": {"connection_limit": 9}});
    assert_eq!(
        broker.patch_instance("pg-up-1", &update, false).await.0,
        StatusCode::OK
    );
    assert_eq!(limit(&admin, &database).await, 9);
    let too_many = json!({"service_id": PG_SERVICE, "parameters": {"connection_limit": 1000}});
    assert_eq!(
        broker.patch_instance("pg-up-1", &too_many, false).await.0,
        StatusCode::BAD_REQUEST
    );
    // The ro plan has another encoding: an existing database cannot change it.
    let change = json!({"service_id": PG_SERVICE, "plan_id": format!("{PG_SERVICE}-ro")});
    let (status, error) = broker.patch_instance("pg-up-1", &change, false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["description"].as_str().unwrap().contains("encoding"));
    assert_eq!(
        broker.get_instance("pg-up-1").await.1["plan_id"],
        format!("{PG_SERVICE}-limited")
    );
    broker
        .delete_instance_of("pg-up-1", PG_SERVICE, &format!("{PG_SERVICE}-limited"))
        .await;
    broker.stop().await;
}

/// Issue 4: hostile ids and parameters never reach SQL: names are hashes, values are typed or
/// allow-listed, oversized bodies are refused; the server's databases are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hostile_input_is_harmless() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let broker = Broker::with_config(config(Some(&address), None)).await;
    let before = pg_databases(&address).await;
    let hostile_id = "x'; DROP DATABASE postgres; -- \"ünïcødé\" `;";
    let encoded: String = hostile_id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    put_sync(&broker, &encoded, &provision(PG_SERVICE, "rw")).await;
    let credentials = bind_sync(&broker, &encoded, &encoded, &bind(PG_SERVICE, "rw")).await;
    let name = credentials["database"].as_str().unwrap();
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{name}"
    );
    pg_connect(&credentials)
        .await
        .expect("the hostile id's binding works");
    for parameters in [
        json!({"connection_limit": "1; DROP DATABASE postgres"}),
        json!({"connection_limit": 1.5}),
    ] {
        let mut body = provision(PG_SERVICE, "limited");
        body["parameters"] = parameters.clone();
        let (status, _) = broker.put_instance("pg-hostile-2", &body, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{parameters}");
    }
    let mut huge = provision(PG_SERVICE, "rw");
    huge["parameters"] = json!({"blob": "x".repeat(1024 * 1024)});
    let (status, error) = broker.put_instance("pg-hostile-3", &huge, false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert!(error["description"].is_string());
    // Other tests create instance databases concurrently: compare everything else.
    let foreign = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|d| !d.starts_with("sbi_"))
            .collect()
    };
    let after = pg_databases(&address).await;
    assert!(
        after.iter().any(|d| d == name),
        "the instance's database exists"
    );
    assert_eq!(
        foreign(after),
        foreign(before),
        "no other database was dropped or created"
    );
    broker
        .delete_instance_of(&encoded, PG_SERVICE, &format!("{PG_SERVICE}-rw"))
        .await;
    broker.stop().await;
}

// ===== MySQL / MariaDB =====

async fn my_databases(address: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_admin(address).await;
    conn.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        .await
        .unwrap()
}

/// Issue 4: the full MySQL/MariaDB lifecycle through the HTTP API, read-only plan included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_lifecycle() {
    use mysql_async::prelude::Queryable;
    let Some(address) = server("SKYBROKER_TEST_MYSQL") else {
        return;
    };
    let broker = Broker::with_config(config(None, Some(&address))).await;
    put_sync(&broker, "my-life-1", &provision(MY_SERVICE, "rw")).await;
    let first = bind_sync(&broker, "my-life-1", "my-b1", &bind(MY_SERVICE, "rw")).await;
    assert!(first["uri"].as_str().unwrap().starts_with("mysql://"));
    assert!(first["jdbcUrl"]
        .as_str()
        .unwrap()
        .starts_with("jdbc:mysql://"));
    let database = first["database"].as_str().unwrap().to_owned();
    assert!(my_databases(&address).await.contains(&database));
    let mut conn = mysql_login(&first).await.expect("the binding connects");
    conn.query_drop("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        .await
        .expect("writes");
    conn.query_drop("INSERT INTO notes VALUES (1, 'hello')")
        .await
        .unwrap();
    let body: Option<String> = conn
        .query_first("SELECT body FROM notes WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(body.as_deref(), Some("hello"));

    // Another instance's binding cannot reach this database.
    put_sync(&broker, "my-life-2", &provision(MY_SERVICE, "rw")).await;
    let stranger = bind_sync(&broker, "my-life-2", "my-b2", &bind(MY_SERVICE, "rw")).await;
    let mut trespass = stranger.clone();
    trespass["database"] = json!(database);
    assert!(
        mysql_login(&trespass).await.is_err(),
        "grants are per database"
    );

    // Unbind: session ended, credentials refused.
    assert_eq!(
        broker
            .delete_binding_of(
                "my-life-1",
                "my-b1",
                MY_SERVICE,
                &format!("{MY_SERVICE}-rw")
            )
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        conn.query_drop("SELECT 1").await.is_err(),
        "the open session was ended"
    );
    assert!(
        mysql_login(&first).await.is_err(),
        "unbound credentials no longer connect"
    );

    // Read-only plan.
    put_sync(&broker, "my-ro-1", &provision(MY_SERVICE, "ro")).await;
    let reader = bind_sync(&broker, "my-ro-1", "my-b3", &bind(MY_SERVICE, "ro")).await;
    let mut ro = mysql_login(&reader)
        .await
        .expect("read-only binding connects");
    assert!(
        ro.query_drop("CREATE TABLE t (n INT)").await.is_err(),
        "cannot create"
    );
    let _: Vec<u8> = ro.query("SELECT 1").await.expect("can read");
    drop(ro);

    for (id, plan) in [("my-life-1", "rw"), ("my-life-2", "rw"), ("my-ro-1", "ro")] {
        let (status, body) = broker
            .delete_instance_of(id, MY_SERVICE, &format!("{MY_SERVICE}-{plan}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(
        !my_databases(&address).await.contains(&database),
        "the database is gone"
    );
    assert!(
        mysql_login(&stranger).await.is_err(),
        "cascaded unbind dropped the user"
    );
    broker.stop().await;
}

/// Issue 4: a provider whose server is down fails the operation with a description a user
/// can act on, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_cleanly() {
    let mut config = fast_config(100);
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    config
        .providers
        .insert("pg".into(), provider("postgres", &address, "postgres"));
    config.services.push(offering(PG_SERVICE, "pg", json!([])));
    let broker = Broker::with_config(config).await;
    let (status, error) = broker
        .put_instance("pg-down-1", &provision(PG_SERVICE, "rw"), false)
        .await;
    // The server never answered: the provider is unreachable, a gateway's failure.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert!(
        error["description"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{error}"
    );
    assert_eq!(
        broker.get_instance("pg-down-1").await.0,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

/// Issue 4 (TLS mode): with `tls = "require"` the broker talks to PostgreSQL over TLS; with
/// `verify_full` and a CA that did not sign the server's certificate for this host name, it
/// refuses to talk (proving the certificate is checked) and the provision fails with a
/// description. Needs a server with TLS on (the machine's Debian server has it); otherwise
/// skipped, loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let admin = pg_admin(&address, "postgres").await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let snakeoil = std::path::Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    if ssl != "on" || !snakeoil.exists() {
        eprintln!("SKIPPED: the PostgreSQL at {address} has no TLS (ssl = {ssl})");
        return;
    }
    let mut encrypted = config(Some(&address), None);
    let pg = encrypted.providers.get_mut("pg").unwrap();
    pg.settings.insert("tls".into(), json!("require"));
    let broker = Broker::with_config(encrypted).await;
    put_sync(&broker, "pg-tls-1", &provision(PG_SERVICE, "rw")).await;
    let credentials = bind_sync(&broker, "pg-tls-1", "pg-tls-b1", &bind(PG_SERVICE, "rw")).await;
    assert!(pg_databases(&address)
        .await
        .contains(&credentials["database"].as_str().unwrap().to_owned()));
    broker
        .delete_instance_of("pg-tls-1", PG_SERVICE, &format!("{PG_SERVICE}-rw"))
        .await;
    broker.stop().await;

    let mut verified = config(Some(&address), None);
    let pg = verified.providers.get_mut("pg").unwrap();
    pg.settings.insert("tls".into(), json!("verify_full"));
    pg.settings.insert("ca_file".into(), json!(snakeoil));
    let broker = Broker::with_config(verified).await;
    let (status, error) = broker
        .put_instance("pg-tls-2", &provision(PG_SERVICE, "rw"), false)
        .await;
    // No TLS session with the server: unreachable as far as the broker can tell.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    let description = error["description"].as_str().unwrap().to_lowercase();
    assert!(
        description.contains("certificate") || description.contains("tls"),
        "{description}"
    );
    broker.stop().await;
}

/// The local providers on the real servers, for the provider contract.
fn contract_subject(kind: &str, address: &str, admin: &str) -> contract::Subject {
    let broker =
        build_broker(kind, Some(&provider(kind, address, admin))).expect("the provider builds");
    contract::Subject {
        broker,
        service_id: format!("contract-{kind}"),
        plan_id: format!("contract-{kind}-rw"),
        plan_settings: Arc::new(json!({"access": "read_write"})),
        parameters: json!({"connection_limit": 3}),
        bad_parameters: Some(json!({"connection_limit": "many"})),
        bindable: true,
        patience: Duration::from_secs(30),
        prefix: format!("contract-{kind}"),
    }
}

// Issue #17: both local providers keep the contract every provider keeps
// (`skybroker_brokers::testing`), and leave nothing behind on their servers.
#[tokio::test]
async fn local_databases_keep_the_provider_contract() {
    let (Some(pg), Some(my)) = (
        server("SKYBROKER_TEST_POSTGRES"),
        server("SKYBROKER_TEST_MYSQL"),
    ) else {
        return;
    };
    let report = contract::run(&contract_subject("postgres", &pg, "postgres")).await;
    let database = resource_name("sbi", &report.instance_id);
    assert!(
        !pg_databases(&pg).await.contains(&database),
        "{database} was left behind"
    );
    let report = contract::run(&contract_subject("mysql", &my, "root")).await;
    let database = resource_name("sbi", &report.instance_id);
    let mut admin = mysql_admin(&my).await;
    let left: Option<String> = {
        use mysql_async::prelude::Queryable;
        admin
            .exec_first(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
                (database.clone(),),
            )
            .await
            .expect("the schemata are readable")
    };
    assert_eq!(left, None, "{database} was left behind");
}
