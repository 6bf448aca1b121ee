//! Grants made real: with `SKYBROKER_TEST_MYSQL` / `SKYBROKER_TEST_POSTGRES` set to a
//! server's `host:port` (MySQL/MariaDB user root without password; PostgreSQL user postgres
//! with trust authentication), accounts the fake creates can log in and do exactly what
//! their privilege allows. Skipped with a message when the variable is unset, unless
//! `CI=true`, where a skip would hide a gap.

use mysql_async::prelude::Queryable;
use skybroker_alibaba_fake::FakeConfig;

use crate::client::{Client, RDS};
use crate::{start_with, wait_for_status};

/// The server named by `variable`, or `None` after saying loudly that the test is skipped.
fn server(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(address) if !address.is_empty() => Some(address),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{variable} must name a server when CI=true")
        }
        _ => {
            eprintln!("SKIPPED: {variable} is not set (host:port of a test server)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Creates a `Running` instance; returns its id, host and port.
async fn running_instance(client: &Client, params: &[(&str, &str)]) -> (String, String, u16) {
    let created = client.ok(RDS, "CreateDBInstance", params).await;
    let id = created["DBInstanceId"].as_str().unwrap().to_owned();
    let host = created["ConnectionString"].as_str().unwrap().to_owned();
    let port = created["Port"].as_str().unwrap().parse().unwrap();
    wait_for_status(client, &id, "Running").await;
    (id, host, port)
}

async fn mysql_login(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some(db))
        .prefer_socket(false);
    mysql_async::Conn::new(options).await
}

#[tokio::test]
async fn mysql_grants_are_enforced_by_the_server() {
    let Some(address) = server("SKYBROKER_TEST_MYSQL") else {
        return;
    };
    let (_fake, client) = start_with(FakeConfig {
        mysql: Some(address),
        creating: std::time::Duration::from_millis(100),
        ..FakeConfig::default()
    })
    .await;
    let (id, host, port) = running_instance(&client, &crate::mysql_instance("db-test")).await;
    let db = unique("sbt_");
    let (writer, reader) = (unique("w"), unique("r"));
    let password = "Passw0rd_fake";
    client
        .ok(
            RDS,
            "CreateDatabase",
            &[
                ("DBInstanceId", &id),
                ("DBName", &db),
                ("CharacterSetName", "utf8mb4"),
            ],
        )
        .await;
    for (account, privilege) in [(&writer, "ReadWrite"), (&reader, "ReadOnly")] {
        client
            .ok(
                RDS,
                "CreateAccount",
                &[
                    ("DBInstanceId", &id),
                    ("AccountName", account),
                    ("AccountPassword", password),
                ],
            )
            .await;
        client
            .ok(
                RDS,
                "GrantAccountPrivilege",
                &[
                    ("DBInstanceId", &id),
                    ("AccountName", account),
                    ("DBName", &db),
                    ("AccountPrivilege", privilege),
                ],
            )
            .await;
    }

    let mut writing = mysql_login(&host, port, &writer, password, &db)
        .await
        .unwrap();
    writing
        .query_drop("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    writing
        .query_drop("INSERT INTO notes VALUES (1, 'hello')")
        .await
        .unwrap();

    let mut reading = mysql_login(&host, port, &reader, password, &db)
        .await
        .unwrap();
    let body: Option<String> = reading
        .query_first("SELECT body FROM notes WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(body.as_deref(), Some("hello"));
    assert!(reading
        .query_drop("INSERT INTO notes VALUES (2, 'nope')")
        .await
        .is_err());
    assert!(reading
        .query_drop("CREATE TABLE mine (id INT)")
        .await
        .is_err());

    // Deleting the account ends its session and its logins.
    client
        .ok(
            RDS,
            "DeleteAccount",
            &[("DBInstanceId", &id), ("AccountName", &reader)],
        )
        .await;
    assert!(
        reading.query_drop("SELECT 1").await.is_err(),
        "the session should be gone"
    );
    assert!(mysql_login(&host, port, &reader, password, &db)
        .await
        .is_err());

    // Deleting the instance drops what it held.
    drop(writing);
    client
        .ok(RDS, "DeleteDBInstance", &[("DBInstanceId", &id)])
        .await;
    assert!(mysql_login(&host, port, &writer, password, &db)
        .await
        .is_err());
    let mut admin = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(host.clone())
            .tcp_port(port)
            .user(Some("root"))
            .prefer_socket(false),
    )
    .await
    .unwrap();
    let left: Option<String> = admin
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(left, None);
}

async fn pg_login(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(db)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
async fn postgres_db_owners_share_the_database() {
    let Some(address) = server("SKYBROKER_TEST_POSTGRES") else {
        return;
    };
    let (_fake, client) = start_with(FakeConfig {
        postgres: Some(address),
        creating: std::time::Duration::from_millis(100),
        ..FakeConfig::default()
    })
    .await;
    let (id, host, port) = running_instance(
        &client,
        &[
            ("RegionId", "cn-hangzhou"),
            ("Engine", "PostgreSQL"),
            ("EngineVersion", "15.0"),
            ("DBInstanceClass", "pg.n2.small.2c"),
            ("DBInstanceStorage", "20"),
            ("DBInstanceNetType", "Intranet"),
            ("SecurityIPList", "0.0.0.0/0"),
            ("PayType", "Postpaid"),
        ],
    )
    .await;
    let db = unique("sbt_");
    let (first, second) = (unique("o"), unique("o"));
    let password = "Passw0rd_fake";
    client
        .ok(
            RDS,
            "CreateDatabase",
            &[
                ("DBInstanceId", &id),
                ("DBName", &db),
                ("CharacterSetName", "UTF8"),
            ],
        )
        .await;
    for account in [&first, &second] {
        client
            .ok(
                RDS,
                "CreateAccount",
                &[
                    ("DBInstanceId", &id),
                    ("AccountName", account),
                    ("AccountPassword", password),
                ],
            )
            .await;
    }
    // PostgreSQL grants are DBOwner only, as on the real service.
    let (status, code) = client
        .err(
            RDS,
            "GrantAccountPrivilege",
            &[
                ("DBInstanceId", &id),
                ("AccountName", &first),
                ("DBName", &db),
                ("AccountPrivilege", "ReadOnly"),
            ],
        )
        .await;
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidAccountPrivilege.Malformed")
    );
    for account in [&first, &second] {
        client
            .ok(
                RDS,
                "GrantAccountPrivilege",
                &[
                    ("DBInstanceId", &id),
                    ("AccountName", account),
                    ("DBName", &db),
                    ("AccountPrivilege", "DBOwner"),
                ],
            )
            .await;
    }
    // Before the grant an account could not even connect; a stranger still cannot.
    let stranger = unique("s");
    client
        .ok(
            RDS,
            "CreateAccount",
            &[
                ("DBInstanceId", &id),
                ("AccountName", &stranger),
                ("AccountPassword", password),
            ],
        )
        .await;
    assert!(pg_login(&host, port, &stranger, password, &db)
        .await
        .is_err());

    let one = pg_login(&host, port, &first, password, &db).await.unwrap();
    one.batch_execute(
        "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'hello')",
    )
    .await
    .unwrap();
    let two = pg_login(&host, port, &second, password, &db).await.unwrap();
    let row = two
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "hello");
    two.batch_execute(
        "INSERT INTO notes VALUES (2, 'too'); ALTER TABLE notes ADD COLUMN extra int",
    )
    .await
    .unwrap();

    // Deleting an account ends its session and its logins; what it made stays.
    client
        .ok(
            RDS,
            "DeleteAccount",
            &[("DBInstanceId", &id), ("AccountName", &first)],
        )
        .await;
    assert!(
        one.simple_query("SELECT 1").await.is_err(),
        "the session should be gone"
    );
    assert!(pg_login(&host, port, &first, password, &db).await.is_err());
    let count = two
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 2);

    drop(two);
    client
        .ok(RDS, "DeleteDBInstance", &[("DBInstanceId", &id)])
        .await;
    let admin = pg_login(&host, port, "postgres", "", "postgres")
        .await
        .unwrap();
    let left = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap();
    assert!(left.is_none());
    let roles = admin
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![second.clone(), stranger.clone()]],
        )
        .await
        .unwrap();
    assert!(roles.is_none());
}
