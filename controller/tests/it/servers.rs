//! The real servers some tests use besides the broker (PostgreSQL, MySQL/MariaDB, moto, the
//! fake Alibaba Cloud's database servers): where they are, and an administrator's session on
//! each, and the real `skybroker` binary as a child process. One copy for every test module
//! that needs them.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{http_client, PASSWORD, USER};

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

// ===== the real binary =====

/// A `skybroker serve` child, killed when dropped; what it prints is collected.
pub struct Serve {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its OSB base URL.
    pub api: String,
}

impl Serve {
    /// Starts the binary on `config` and `data_dir` with `env` (no `SKYBROKER_*` of the test's
    /// environment), and waits until it listens.
    pub async fn start(
        config: &std::path::Path,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Serve {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_skybroker"));
        command.args(["serve", "--config", config.to_str().unwrap()]);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().to_string();
            if name.starts_with("SKYBROKER_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("SKYBROKER_LISTEN", "127.0.0.1:0")
            .env("SKYBROKER_METRICS_LISTEN", "127.0.0.1:0")
            .env("SKYBROKER_USERNAME", USER)
            .env("SKYBROKER_PASSWORD", PASSWORD)
            .env("SKYBROKER_DATA_DIR", data_dir)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the skybroker binary starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    output.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let api = loop {
            let listening = output.lock().unwrap().iter().find_map(|line| {
                line.strip_prefix("skybroker listening on ")
                    .map(str::to_owned)
            });
            if let Some(url) = listening {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "skybroker did not listen:\n{}",
                output.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Serve { child, output, api }
    }

    /// Everything it printed.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// One OSB call with the test credentials.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = http_client()
            .request(method, format!("{}{path}", self.api))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the broker answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls an operation until it is no longer in progress.
    pub async fn wait(&self, instance: &str, operation: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let path =
                format!("/v2/service_instances/{instance}/last_operation?operation={operation}");
            let (status, body) = self.call(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{body}\n{}", self.output());
            if body["state"] != "in progress" {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{operation} never finished\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
