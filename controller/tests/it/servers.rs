//! The real servers some tests use besides the broker (PostgreSQL, MySQL/MariaDB, moto, the
//! fake Alibaba Cloud's database servers): where they are, and an administrator's session on
//! each. One copy for every test module that needs them.

/// `host:port` (or URL) of a test server from `variable`, or `None`: the test is skipped
/// (and says so) outside CI; under CI a missing server fails it, as the README's test
/// command must start every server the tests need.
pub fn server(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(address) if !address.is_empty() => Some(address),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{variable} is not set under CI: the README test command must start the server")
        }
        _ => {
            eprintln!("SKIPPED: set {variable}=host:port to run this test (./test.sh does)");
            None
        }
    }
}

/// `host:port` as its parts.
pub fn split(address: &str) -> (String, u16) {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("port"))
}

/// The PostgreSQL administrator's session on `database` (trust authentication, as the
/// test servers are set up).
pub async fn pg_admin(address: &str, database: &str) -> tokio_postgres::Client {
    let (host, port) = split(address);
    let (client, connection) = tokio_postgres::Config::new()
        .host(&host)
        .port(port)
        .user("postgres")
        .dbname(database)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("the PostgreSQL admin connects");
    tokio::spawn(connection);
    client
}

/// The MySQL/MariaDB administrator's session (root without a password, on TCP).
pub async fn mysql_admin(address: &str) -> mysql_async::Conn {
    let (host, port) = split(address);
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false);
    mysql_async::Conn::new(options)
        .await
        .expect("the MySQL admin connects")
}

/// A MySQL/MariaDB session with a binding's credentials (`host`, `port`, `username`,
/// `password`, `database`), on TCP.
pub async fn mysql_login(
    credentials: &serde_json::Value,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    let text = |field: &str| credentials[field].as_str().map(str::to_owned);
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(text("host").expect("credentials name a host"))
        .tcp_port(
            credentials["port"]
                .as_u64()
                .expect("credentials name a port") as u16,
        )
        .user(text("username"))
        .pass(text("password"))
        .db_name(text("database"))
        .prefer_socket(false);
    mysql_async::Conn::new(options).await
}
