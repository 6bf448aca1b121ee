//! Black-box tests of the real `skybroker` binary, run as a child process.
//!
//! Where in-process tests drive the library, these start the executable Cargo built, talk to it
//! over a real socket and kill or signal it, so they cover what only a process shows: durability across `kill -9` and clean restarts, the shutdown order, the generated
//! password, `check-config` and `serve` refusing a bad configuration, and what reaches the
//! console.
//!
//! Every child is owned by a [`Process`] guard that kills it when dropped, so a failing test
//! leaves nothing running, and every wait is bounded by a deadline.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The built-in sandbox offering.
const SERVICE_ID: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f0001";
/// Plan `sync`: everything completes in the request.
const SYNC_PLAN: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1001";
/// Plan `async`: everything is long-running.
const ASYNC_PLAN: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1002";
/// Plan `nobind`: synchronous (the tests make its calls slow).
const NOBIND_PLAN: &str = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1005";
/// The user the tests configure (the built-in one is `skybroker`).
const USERNAME: &str = "platform";
/// The password the tests configure through `SKYBROKER_PASSWORD`.
const PASSWORD: &str = "pw-process-test-8c1f0a";
/// The built-in configuration, which the tests edit into their own.
const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");
/// The line `serve` prints on stdout once it listens.
const LISTENING: &str = "skybroker listening on http://";
/// How long a broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The lines a child printed on one stream, appended as they arrive.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn push(&self, line: String) {
        self.0.lock().expect("lines lock").push(line);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines lock").clone()
    }

    fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Waits until a line containing `needle` has been printed.
    async fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.all().iter().any(|line| line.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {within:?}:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads `stream` to its end on a thread, so the child never blocks on a full pipe. On stdout,
/// the port of the listening line is sent to `port`.
fn drain(
    stream: impl Read + Send + 'static,
    lines: Lines,
    port: Option<Sender<u16>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buffer)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            if let (Some(sender), Some(address)) = (&port, line.strip_prefix(LISTENING)) {
                if let Some(number) = address.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    let _ = sender.send(number);
                }
            }
            lines.push(line);
        }
    })
}

/// A running `skybroker` child, killed (SIGKILL) when dropped.
struct Process {
    /// The child itself.
    child: Child,
    /// What it printed on stdout.
    stdout: Lines,
    /// What it printed on stderr (the log, and the generated password).
    stderr: Lines,
    /// The threads draining stdout and stderr.
    readers: Vec<JoinHandle<()>>,
    /// The port of the listening line, once printed.
    port: Receiver<u16>,
}

impl Process {
    /// Starts the binary with `args`. The environment is the test's, without any
    /// `SKYBROKER_*` variable, with `RUST_LOG=info` and the metrics listener on an ephemeral
    /// port (brokers run side by side), then `env` on top.
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skybroker"));
        command.args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SKYBROKER_") {
                command.env_remove(name);
            }
        }
        command.env("RUST_LOG", "info");
        command.env("SKYBROKER_METRICS_LISTEN", "127.0.0.1:0");
        command.envs(env.iter().copied());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the skybroker binary starts");
        let (stdout, stderr) = (Lines::default(), Lines::default());
        let (sender, port) = mpsc::channel();
        let readers = vec![
            drain(
                child.stdout.take().expect("piped stdout"),
                stdout.clone(),
                Some(sender),
            ),
            drain(
                child.stderr.take().expect("piped stderr"),
                stderr.clone(),
                None,
            ),
        ];
        Process {
            child,
            stdout,
            stderr,
            readers,
            port,
        }
    }

    /// Everything printed so far, for failure messages.
    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// The port from the listening line.
    async fn listening_port(&mut self) -> u16 {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.port.try_recv() {
                Ok(port) => return port,
                Err(TryRecvError::Disconnected) => {
                    // stdout closed without the line: the child has exited or is exiting.
                    let status = self.wait_exit(Duration::from_secs(5)).await;
                    panic!(
                        "skybroker exited ({status}) before listening\n{}",
                        self.output()
                    );
                }
                Err(TryRecvError::Empty) => {}
            }
            assert!(
                Instant::now() < deadline,
                "no listening line within {START_TIMEOUT:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits until the child exits and its output is read to the end.
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "skybroker still running after {within:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pipes close with the process; the readers then finish.
        while !self.readers.iter().all(JoinHandle::is_finished) {
            assert!(
                Instant::now() < deadline + Duration::from_secs(5),
                "output of the exited skybroker not closed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        status
    }

    /// `kill -9`: no chance to flush or shut down.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the killed broker");
    }

    /// Sends SIGTERM with the `kill` command (no `libc` needed).
    fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid())
            .status()
            .expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion (bounded): its exit status, stdout and stderr.
async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut process = Process::spawn(args, env);
    let status = process.wait_exit(Duration::from_secs(30)).await;
    (status, process.stdout.text(), process.stderr.text())
}

/// An OSB client for one broker address.
#[derive(Clone)]
struct Api {
    /// One connection pool per broker.
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Basic-auth user and password; `None` sends no `Authorization`.
    auth: Option<(String, String)>,
}

impl Api {
    fn new(port: u16, auth: Option<(&str, &str)>) -> Api {
        Api {
            client: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
            }
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client"),
            base: format!("http://127.0.0.1:{port}"),
            auth: auth.map(|(user, password)| (user.to_owned(), password.to_owned())),
        }
    }

    /// One request with the version header, the credentials and an optional JSON body; the
    /// status and the JSON body (`Null` when empty, a string when not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self.exchange(method, path, query, headers, body).await;
        (status, value)
    }

    /// [`Api::call`], with the response's headers.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-Broker-API-Version", "2.17");
        if !query.is_empty() {
            request = request.query(query);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a response body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    async fn catalog(&self) -> StatusCode {
        self.call(Method::GET, "/v2/catalog", &[], &[], None)
            .await
            .0
    }

    /// PUT an instance of the sandbox offering; `accepts_incomplete` for async plans.
    async fn provision(
        &self,
        instance_id: &str,
        plan_id: &str,
        parameters: Option<Value>,
        accepts_incomplete: bool,
    ) -> (StatusCode, Value) {
        let mut body = json!({
            "service_id": SERVICE_ID,
            "plan_id": plan_id,
            "organization_guid": "org",
            "space_guid": "space",
        });
        if let Some(parameters) = parameters {
            body["parameters"] = parameters;
        }
        let query: &[(&str, &str)] = if accepts_incomplete {
            &[("accepts_incomplete", "true")]
        } else {
            &[]
        };
        let path = format!("/v2/service_instances/{instance_id}");
        self.call(Method::PUT, &path, query, &[], Some(&body)).await
    }

    /// A synchronous PUT of a binding.
    async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        plan_id: &str,
        parameters: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut body = json!({ "service_id": SERVICE_ID, "plan_id": plan_id });
        if let Some(parameters) = parameters {
            body["parameters"] = parameters;
        }
        let path = format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}");
        self.call(Method::PUT, &path, &[], headers, Some(&body))
            .await
    }

    async fn get_instance(&self, instance_id: &str) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{instance_id}");
        self.call(Method::GET, &path, &[], &[], None).await
    }

    async fn get_binding(&self, instance_id: &str, binding_id: &str) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}");
        self.call(Method::GET, &path, &[], &[], None).await
    }

    async fn last_operation(&self, instance_id: &str, operation: &str) -> (StatusCode, Value) {
        let path = format!("/v2/service_instances/{instance_id}/last_operation");
        self.call(Method::GET, &path, &[("operation", operation)], &[], None)
            .await
    }

    /// Polls the operation until it is `succeeded` or `failed`; returns that state.
    async fn await_operation(
        &self,
        instance_id: &str,
        operation: &str,
        within: Duration,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.last_operation(instance_id, operation).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "last_operation of {instance_id}: {body}"
            );
            let state = body["state"].as_str().expect("a state").to_owned();
            if state != "in progress" {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "operation {operation} of {instance_id} still in progress after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A `serve` child and a client for it.
struct Broker {
    /// The `serve` child.
    process: Process,
    /// A client with the test credentials.
    api: Api,
}

/// Starts `skybroker serve` on an ephemeral port with the test credentials, the store in
/// `data_dir`, and `config` (else the built-in configuration).
async fn serve(data_dir: &Path, config: Option<&Path>, extra_env: &[(&str, &str)]) -> Broker {
    let mut args = vec!["serve"];
    let config_arg;
    if let Some(config) = config {
        config_arg = config.display().to_string();
        args.extend(["--config", config_arg.as_str()]);
    }
    let data_dir = data_dir.display().to_string();
    let mut env = vec![
        ("SKYBROKER_LISTEN", "127.0.0.1:0"),
        ("SKYBROKER_USERNAME", USERNAME),
        ("SKYBROKER_PASSWORD", PASSWORD),
        ("SKYBROKER_DATA_DIR", data_dir.as_str()),
    ];
    env.extend_from_slice(extra_env);
    let mut process = Process::spawn(&args, &env);
    let port = process.listening_port().await;
    Broker {
        process,
        api: Api::new(port, Some((USERNAME, PASSWORD))),
    }
}

/// Writes a configuration: the built-in one with the async plan running `async_delay_ms`, the
/// `nobind` plan's (synchronous) calls taking `slow_sync_ms` on their worker, and a fast engine
/// (scans every 20 ms, polls from 100 ms, at most every 300 ms).
fn write_config(dir: &Path, async_delay_ms: u64, slow_sync_ms: u64) -> PathBuf {
    let edits = [
        (
            r#"settings = { mode = "async", delay_ms = 1000 }"#.to_owned(),
            format!(r#"settings = {{ mode = "async", delay_ms = {async_delay_ms} }}"#),
        ),
        (
            "bindable = false\nsettings = { mode = \"sync\" }".to_owned(),
            format!(
                "bindable = false\nsettings = {{ mode = \"sync\", delay_ms = {slow_sync_ms} }}"
            ),
        ),
    ];
    let mut text = DEFAULT_CONFIG.to_owned();
    for (from, to) in &edits {
        assert!(
            text.contains(from.as_str()),
            "the built-in configuration has {from}"
        );
        text = text.replacen(from.as_str(), to, 1);
    }
    text.push_str(
        "\n[engine]\nscan_interval_ms = 20\npoll_interval_ms = 100\nmax_poll_interval_ms = 300\n",
    );
    let path = dir.join("skybroker.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn operation_of(body: &Value) -> String {
    body["operation"]
        .as_str()
        .unwrap_or_else(|| panic!("a 202 names its operation: {body}"))
        .to_owned()
}

/// Durability across `kill -9` (DESIGN "durable before acknowledged", OSB-PROV-05/07/08,
/// OSB-PROV-06, OSB-LOI via last_operation, OSB-GETI-01, OSB-BIND-08, OSB-GETB-01/03, D-13):
/// async provisions acknowledged with 202 and killed mid-operation resume after a restart on
/// the same store and succeed with the operation ids first issued; a sync instance and its
/// binding survive with the same credentials; a repeated identical PUT then answers 200
/// instead of creating a second instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_kill_9() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), 3000, 0);
    let mut broker = serve(&data, Some(&config), &[]).await;

    let sync_id = new_id("sync");
    let binding_id = new_id("binding");
    let (status, body) = broker.api.provision(&sync_id, SYNC_PLAN, None, false).await;
    assert_eq!(status, StatusCode::CREATED, "sync provision: {body}");
    let (status, bound) = broker
        .api
        .bind(&sync_id, &binding_id, SYNC_PLAN, None, &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "sync bind: {bound}");
    let password = bound["credentials"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("the bind returns a password: {bound}"))
        .to_owned();

    let mut pending = Vec::new();
    for n in 0..5 {
        let id = new_id(&format!("async{n}"));
        let (status, body) = broker.api.provision(&id, ASYNC_PLAN, None, true).await;
        assert_eq!(status, StatusCode::ACCEPTED, "async provision {id}: {body}");
        pending.push((id, operation_of(&body)));
    }
    // OSB-PROV-08 before the crash: still running, and a repeat names the same operation.
    let (first_id, first_op) = &pending[0];
    let (status, body) = broker.api.last_operation(first_id, first_op).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("in progress")),
        "the kill must come mid-operation: {body}"
    );
    let (status, body) = broker.api.provision(first_id, ASYNC_PLAN, None, true).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(&operation_of(&body), first_op);
    // OSB-GETI-01: not retrievable before the provision succeeded.
    let (status, body) = broker.api.get_instance(first_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    broker.process.kill9();
    let killed_output = broker.process.output();
    assert!(
        !killed_output.contains("shut down cleanly"),
        "SIGKILL allows no clean shutdown\n{killed_output}"
    );
    drop(broker);

    let broker = serve(&data, Some(&config), &[]).await;
    for (id, operation) in &pending {
        let state = broker
            .api
            .await_operation(id, operation, Duration::from_secs(20))
            .await;
        assert_eq!(
            state,
            "succeeded",
            "operation {operation} of {id}\n{}",
            broker.process.output()
        );
    }
    for (id, _) in &pending {
        let (status, body) = broker.api.get_instance(id).await;
        assert_eq!(status, StatusCode::OK, "GET {id}: {body}");
        assert_eq!(body["plan_id"], ASYNC_PLAN);
        // OSB-PROV-06: identical and provisioned is 200, never a second instance.
        let (status, body) = broker.api.provision(id, ASYNC_PLAN, None, true).await;
        assert_eq!(status, StatusCode::OK, "repeat PUT of {id}: {body}");
    }
    // A different PUT on a surviving id is still a conflict (OSB-PROV-10).
    let (status, body) = broker.api.provision(first_id, SYNC_PLAN, None, true).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = broker.api.get_instance(&sync_id).await;
    assert_eq!(status, StatusCode::OK, "the sync instance survived: {body}");
    assert_eq!(body["plan_id"], SYNC_PLAN);
    let (status, body) = broker.api.get_binding(&sync_id, &binding_id).await;
    assert_eq!(status, StatusCode::OK, "the binding survived: {body}");
    assert_eq!(
        body["credentials"]["password"].as_str(),
        Some(password.as_str()),
        "the binding keeps the credentials it was created with"
    );
    // OSB-BIND-07: the identical bind repeats the same credentials.
    let (status, body) = broker
        .api
        .bind(&sync_id, &binding_id, SYNC_PLAN, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["credentials"]["password"].as_str(),
        Some(password.as_str())
    );
    let stderr = broker.process.stderr.text();
    assert!(
        stderr.contains("resuming 5 operation(s) in flight"),
        "{stderr}"
    );
}

/// Clean shutdown on SIGTERM (server.rs "Shutdown order", D-11 "nothing acknowledged is ever
/// dropped", OSB-PROV-05, OSB-GETI-01, OSB-PROV-06): a synchronous request in flight at the
/// signal still gets its 201; the broker exits 0 within 10 s saying it shut down cleanly; after
/// a restart every instance is there, the one whose async provision was running at the signal
/// included, and identical repeats answer 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_restart_keeps_everything() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), 2000, 1500);
    let mut broker = serve(&data, Some(&config), &[]).await;

    let mut ready = Vec::new();
    for n in 0..3 {
        let id = new_id(&format!("sync{n}"));
        let (status, body) = broker.api.provision(&id, SYNC_PLAN, None, false).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ready.push((id, SYNC_PLAN));
    }
    let running_id = new_id("async");
    let (status, body) = broker
        .api
        .provision(&running_id, ASYNC_PLAN, None, true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let running_op = operation_of(&body);
    // A synchronous provision whose plugin call takes 1.5 s, under way when the signal comes.
    let slow_id = new_id("slow");
    let slow = tokio::spawn({
        let (api, id) = (broker.api.clone(), slow_id.clone());
        async move { api.provision(&id, NOBIND_PLAN, None, false).await }
    });
    let accepted = format!("(provision of {slow_id}) accepted");
    broker
        .process
        .stderr
        .wait_for(&accepted, Duration::from_secs(10))
        .await;

    broker.process.terminate();
    let (status, body) = slow.await.expect("the slow request's task");
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the in-flight request finishes: {body}\n{}",
        broker.process.output()
    );
    ready.push((slow_id, NOBIND_PLAN));
    let status = broker.process.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        broker.process.output()
    );
    let stderr = broker.process.stderr.text();
    assert!(stderr.contains("shut down cleanly"), "{stderr}");
    drop(broker);

    let broker = serve(&data, Some(&config), &[]).await;
    for (id, plan) in &ready {
        let (status, body) = broker.api.get_instance(id).await;
        assert_eq!(status, StatusCode::OK, "GET {id} after restart: {body}");
        assert_eq!(body["plan_id"], *plan);
        let (status, body) = broker.api.provision(id, plan, None, false).await;
        assert_eq!(status, StatusCode::OK, "repeat PUT of {id}: {body}");
    }
    let state = broker
        .api
        .await_operation(&running_id, &running_op, Duration::from_secs(20))
        .await;
    assert_eq!(state, "succeeded", "{}", broker.process.output());
    let (status, body) = broker.api.get_instance(&running_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Issue #18: what the Service Manager API registered survives a restart (embedded store; on
/// etcd with `SKYBROKER_TEST_ETCD`, a second broker on the same prefix sees it too): the
/// platform's credentials keep working on `/v2`, its visibility still filters its catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let token = ("SKYBROKER_ADMIN_TOKEN", "restart-admin-token");
    let etcd_config = test_etcd().map(|endpoint| {
        let prefix = format!("/skybroker-registry/{}/", uuid::Uuid::new_v4().simple());
        write_etcd_config(dir.path(), &[endpoint], &prefix, 300)
    });
    let mut configs: Vec<Option<PathBuf>> = vec![None];
    configs.extend(etcd_config.map(Some));
    for config in configs {
        let mut broker = serve(&data, config.as_deref(), &[token]).await;
        let admin = |method: Method, path: &str, body: Option<Value>| {
            let request = broker
                .api
                .client
                .request(method, format!("{}/v1{path}", broker.api.base))
                .bearer_auth(token.1);
            async move {
                let request = match body {
                    Some(body) => request.json(&body),
                    None => request,
                };
                let response = request.send().await.expect("an answer");
                let status = response.status();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let (status, platform) = admin(
            Method::POST,
            "/platforms",
            Some(json!({"name": "cf-restart", "type": "cloudfoundry"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{platform}");
        let (status, plans) = admin(Method::GET, "/service_plans", None).await;
        assert_eq!(status, StatusCode::OK);
        let plan = plans["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["catalog_id"] == SYNC_PLAN)
            .expect("the sync plan")["id"]
            .clone();
        let (status, body) = admin(
            Method::POST,
            "/visibilities",
            Some(json!({"service_plan_id": plan, "platform_id": platform["id"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let basic = &platform["credentials"]["basic"];
        let login = (
            basic["username"].as_str().unwrap().to_owned(),
            basic["password"].as_str().unwrap().to_owned(),
        );

        broker.process.terminate();
        let status = broker.process.wait_exit(Duration::from_secs(10)).await;
        assert!(status.success(), "{}", broker.process.output());
        drop(broker);
        let broker = serve(&data, config.as_deref(), &[token]).await;
        let port: u16 = broker.api.base.rsplit(':').next().unwrap().parse().unwrap();
        let as_platform = Api::new(port, Some((&login.0, &login.1)));
        let (status, catalog) = as_platform
            .call(Method::GET, "/v2/catalog", &[], &[], None)
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the platform still logs in: {catalog}"
        );
        let plans = catalog["services"][0]["plans"].as_array().expect("plans");
        assert_eq!(plans.len(), 1, "only the visible plan: {catalog}");
        assert_eq!(plans[0]["id"], SYNC_PLAN);
        drop(broker);
        let _ = std::fs::remove_dir_all(&data);
    }
}

/// The generated password (OSB-AUTH-03/04; config "no password here on purpose"): without a
/// configured password, or with an empty `SKYBROKER_PASSWORD`, `serve` never runs open: it
/// prints a generated password once on stderr, outside the log; that password authenticates
/// (200 on the catalog), while no, wrong or empty credentials get 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_password_is_shown_once_and_never_logged() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut generated = Vec::new();
    for (n, password_env) in [None, Some("")].into_iter().enumerate() {
        let data = dir.path().join(format!("data{n}")).display().to_string();
        let mut env = vec![
            ("SKYBROKER_LISTEN", "127.0.0.1:0"),
            ("SKYBROKER_DATA_DIR", data.as_str()),
        ];
        if let Some(value) = password_env {
            env.push(("SKYBROKER_PASSWORD", value));
        }
        let mut process = Process::spawn(&["serve"], &env);
        let port = process.listening_port().await;
        // Printed before the runtime starts, but read by another thread than stdout.
        process
            .stderr
            .wait_for("generated one for user", Duration::from_secs(5))
            .await;
        let announcement = process
            .stderr
            .all()
            .into_iter()
            .find(|line| line.contains("generated one for user"))
            .expect("the announcement");
        assert!(announcement.contains("\"skybroker\""), "{announcement}");
        let password = announcement
            .rsplit(": ")
            .next()
            .expect("the password after the last colon")
            .trim()
            .to_owned();
        assert!(
            password.len() >= 16 && password.chars().all(|c| c.is_ascii_alphanumeric()),
            "{announcement}"
        );

        let authorized = Api::new(port, Some(("skybroker", &password)));
        assert_eq!(authorized.catalog().await, StatusCode::OK);
        let rejected = [
            None,
            Some(("skybroker", "not-the-password")),
            Some(("skybroker", "")),
            Some(("admin", password.as_str())),
        ];
        for auth in rejected {
            let status = Api::new(port, auth).catalog().await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        }

        process.terminate();
        let status = process.wait_exit(Duration::from_secs(10)).await;
        assert!(status.success(), "{status}\n{}", process.output());
        let stderr = process.stderr.all();
        let log_lines: Vec<_> = stderr
            .iter()
            .filter(|line| line.contains(" INFO ") || line.contains(" WARN "))
            .collect();
        assert!(
            log_lines.iter().any(|line| line.contains("/v2/catalog")),
            "the requests were logged: {log_lines:?}"
        );
        for line in &log_lines {
            assert!(
                !line.contains(&password),
                "the password is in the log: {line}"
            );
        }
        let shown = stderr
            .iter()
            .filter(|line| line.contains(&password))
            .count();
        assert_eq!(shown, 1, "shown exactly once\n{}", process.output());
        assert!(!process.stdout.text().contains(&password));
        generated.push(password);
    }
    assert_ne!(generated[0], generated[1], "every start generates its own");
}

/// `check-config` and `serve` apply the catalog rules (OSB-CAT-17/33 duplicate plan ids,
/// OSB-CAT-27 / OSB-MI-01 SemVer `maintenance_info.version`, OSB-CAT-29 `$schema`): each
/// problem is printed with its location and the exit status is non-zero; `serve` refuses to
/// start on the same file; the built-in configuration passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_every_location() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let edits = [
        (
            r#"id = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1002""#,
            r#"id = "5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f1001""#,
        ),
        (r#"version = "1.0.0""#, r#"version = "1.0""#),
        (
            r#""$schema" = "http://json-schema.org/draft-04/schema#""#,
            "",
        ),
    ];
    let mut text = DEFAULT_CONFIG.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "the built-in configuration has {from}");
        text = text.replacen(from, to, 1);
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text).expect("write the bad configuration");
    let bad = bad.display().to_string();
    let expected = [
        "services[sandbox].plans[async].id",
        "services[sandbox].plans[sized].maintenance_info.version",
        "services[sandbox].plans[sized].schemas.service_instance.create.parameters",
    ];

    let (status, stdout, stderr) = run_to_exit(&["check-config", &bad], &[]).await;
    assert!(
        !status.success(),
        "check-config accepted it\n{stdout}\n{stderr}"
    );
    let printed = format!("{stdout}\n{stderr}");
    for location in expected {
        assert!(
            printed.contains(location),
            "{location} not reported:\n{printed}"
        );
    }
    assert!(
        printed.contains("plans[sync]"),
        "the duplicate names the first plan:\n{printed}"
    );
    assert!(printed.contains("$schema"), "{printed}");
    let errors: usize = stdout
        .lines()
        .find_map(|line| {
            line.split_once(" error(s)")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("a summary on stdout: {stdout}"));
    assert_eq!(errors, 3, "exactly the three problems: {printed}");

    let data = dir.path().join("data").display().to_string();
    let env = [
        ("SKYBROKER_LISTEN", "127.0.0.1:0"),
        ("SKYBROKER_PASSWORD", PASSWORD),
        ("SKYBROKER_DATA_DIR", data.as_str()),
    ];
    let (status, stdout, stderr) = run_to_exit(&["serve", "--config", &bad], &env).await;
    assert!(
        !status.success(),
        "serve started on a bad configuration\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(LISTENING), "{stdout}");
    for location in expected {
        assert!(
            stderr.contains(location),
            "{location} not reported by serve:\n{stderr}"
        );
    }
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(
        !Path::new(&data).exists(),
        "serve must not open the store first"
    );

    let builtin = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/default.toml");
    let (status, stdout, stderr) = run_to_exit(&["check-config", builtin], &[]).await;
    assert!(
        status.success(),
        "the built-in configuration fails:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("0 error(s)"), "{stdout}");
}

/// Secrets never reach the console (DESIGN/config "secrets", D-02 "never more", OSB-BIND-13,
/// OSB-BIND-19): with `RUST_LOG=debug`, a provision whose parameters carry a secret, a bind and
/// a fetch of the binding, with an originating identity that carries one too, print neither
/// those secrets, nor the credentials the bind returned, nor the broker password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_logged_even_at_debug() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let mut broker = serve(&data, None, &[("RUST_LOG", "debug")]).await;

    let marker = format!("marker{}", uuid::Uuid::new_v4().simple());
    let binding_marker = format!("bindmarker{}", uuid::Uuid::new_v4().simple());
    let identity_marker = format!("idmarker{}", uuid::Uuid::new_v4().simple());
    let instance_id = new_id("secret");
    let binding_id = new_id("binding");
    let parameters = json!({ "db_password": marker, "nested": { "token": marker } });
    let (status, body) = broker
        .api
        .provision(&instance_id, SYNC_PLAN, Some(parameters), false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let identity = json!({ "user_id": "u-1", "secret": identity_marker }).to_string();
    let identity = format!(
        "cloudfoundry {}",
        base64::engine::general_purpose::STANDARD.encode(identity)
    );
    let (status, bound) = broker
        .api
        .bind(
            &instance_id,
            &binding_id,
            SYNC_PLAN,
            Some(json!({ "api_key": binding_marker })),
            &[("X-Broker-API-Originating-Identity", identity.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let credentials = bound["credentials"].clone();
    let secret = credentials["password"]
        .as_str()
        .unwrap_or_else(|| panic!("credentials with a password: {bound}"))
        .to_owned();
    let uri = credentials["uri"].as_str().expect("a uri").to_owned();
    let (status, body) = broker.api.get_binding(&instance_id, &binding_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A rejected request logs its reason at debug: still no secret in it.
    let (status, body) = broker
        .api
        .provision(
            &instance_id,
            SYNC_PLAN,
            Some(json!({ "db_password": "other" })),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    broker.process.terminate();
    let status = broker.process.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}\n{}", broker.process.output());
    let output = broker.process.output();
    assert!(output.contains("DEBUG"), "debug logging is on:\n{output}");
    assert!(
        output.contains(&binding_id),
        "the bind was logged:\n{output}"
    );
    for (what, needle) in [
        ("the credentials password", secret.as_str()),
        ("the credentials uri", uri.as_str()),
        ("the provision parameter", marker.as_str()),
        ("the binding parameter", binding_marker.as_str()),
        (
            "the originating identity's extra field",
            identity_marker.as_str(),
        ),
        ("the broker password", PASSWORD),
    ] {
        assert!(!output.contains(needle), "{what} was printed:\n{output}");
    }
}

/// Issue 4 (crash during provision): the broker is killed with SIGKILL right after a local
/// PostgreSQL provision created its database and before the answer; after a restart the
/// operation completes, exactly one database exists for the instance, and it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_provision_survives_kill_9_mid_operation() {
    use sha2::Digest;
    let address = match std::env::var("SKYBROKER_TEST_POSTGRES") {
        Ok(address) if !address.is_empty() => address,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("SKYBROKER_TEST_POSTGRES is not set under CI")
        }
        _ => {
            eprintln!("SKIPPED: set SKYBROKER_TEST_POSTGRES=host:port to run this test");
            return;
        }
    };
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("skybroker.toml");
    let text = format!(
        r#"{DEFAULT_CONFIG}
[engine]
scan_interval_ms = 20
poll_interval_ms = 100

[providers.pg]
kind = "postgres"
host = "{host}"
port = {port}
admin_user = "postgres"

[[services]]
id = "crash-pg"
name = "crash-pg"
description = "PostgreSQL databases"
bindable = true
instances_retrievable = true
broker = "pg"

[[services.plans]]
id = "crash-pg-rw"
name = "rw"
description = "read-write, with extensions (a longer provision)"
settings = {{ extensions = ["pgcrypto", "hstore", "citext"] }}
"#
    );
    std::fs::write(&config, text).expect("write the configuration");

    let instance_id = new_id("crash");
    let digest = sha2::Sha256::digest(instance_id.as_bytes());
    let database: String = format!(
        "sbi_{}",
        digest
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let (admin, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("the admin connects");
    tokio::spawn(connection);
    async fn count(admin: &tokio_postgres::Client, database: String) -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&database],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
    }

    let mut broker = serve(&data, Some(&config), &[]).await;
    let body = json!({
        "service_id": "crash-pg", "plan_id": "crash-pg-rw",
        "organization_guid": "org", "space_guid": "space",
    });
    let api = broker.api.clone();
    let path = format!("/v2/service_instances/{instance_id}");
    let request = {
        let body = body.clone();
        let path = path.clone();
        tokio::spawn(async move { api.call(Method::PUT, &path, &[], &[], Some(&body)).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&admin, database.clone()).await == 0 {
        assert!(Instant::now() < deadline, "the database never appeared");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    broker.process.kill9();
    let _ = request.await;
    drop(broker);

    let broker = serve(&data, Some(&config), &[]).await;
    let resumed = broker
        .process
        .output()
        .contains("resuming 1 operation(s) in flight");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = broker.api.call(Method::GET, &path, &[], &[], None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the provision never completed\n{}",
            broker.process.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        resumed,
        "the kill came mid-operation, so the restart resumed it\n{}",
        broker.process.output()
    );
    assert_eq!(
        count(&admin, database.clone()).await,
        1,
        "exactly one database"
    );
    let (status, repeat) = broker
        .api
        .call(Method::PUT, &path, &[], &[], Some(&body))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an identical repeat is not a second instance: {repeat}"
    );
    let binding = format!("{path}/service_bindings/{}", new_id("b"));
    let bind = json!({"service_id": "crash-pg", "plan_id": "crash-pg-rw"});
    let (status, bound) = broker
        .api
        .call(Method::PUT, &binding, &[], &[], Some(&bind))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    assert_eq!(bound["credentials"]["database"], database.as_str());
    let query = [("service_id", "crash-pg"), ("plan_id", "crash-pg-rw")];
    let (status, _) = broker
        .api
        .call(Method::DELETE, &path, &query, &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count(&admin, database).await, 0, "deprovision dropped it");
}

/// Operating (issue 9): with `SKYBROKER_LOG_FORMAT=json` every line on stderr is one JSON
/// object, and the access line of a request carries its `X-Broker-API-Request-Identity`, the
/// route template and the status; the metrics listener whose address `serve` prints answers
/// `/healthz`, `/readyz` and `/metrics`; the password is printed nowhere. An unknown format
/// refuses to start, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_identity_and_probes_answer() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let (status, _, stderr) = run_to_exit(
        &["check-config", "/dev/null"],
        &[("SKYBROKER_LOG_FORMAT", "yaml")],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("SKYBROKER_LOG_FORMAT"), "{stderr}");

    let mut broker = serve(&data, None, &[("SKYBROKER_LOG_FORMAT", "json")]).await;
    let identity = new_id("request");
    let (status, _) = broker
        .api
        .call(
            Method::GET,
            "/v2/catalog",
            &[],
            &[("X-Broker-API-Request-Identity", identity.as_str())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    const METRICS_LINE: &str = "skybroker metrics and probes on http://";
    broker
        .process
        .stdout
        .wait_for(METRICS_LINE, START_TIMEOUT)
        .await;
    let address = broker
        .process
        .stdout
        .all()
        .iter()
        .find_map(|line| line.strip_prefix(METRICS_LINE).map(str::to_owned))
        .expect("the metrics line");
    let client = http_client();
    for (path, needle) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        (
            "/metrics",
            r#"skybroker_http_request_duration_seconds_count{method="GET",route="/v2/catalog",status="200"} 1"#,
        ),
    ] {
        let response = client
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{path}: {body}");
    }

    broker.process.terminate();
    let status = broker.process.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}\n{}", broker.process.output());
    let lines = broker.process.stderr.all();
    assert!(lines.len() >= 3, "{}", broker.process.output());
    let records: Vec<Value> = lines
        .iter()
        .map(|line| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
            for field in ["timestamp", "level", "target", "message"] {
                assert!(record[field].is_string(), "no {field}: {line}");
            }
            record
        })
        .collect();
    let access = records
        .iter()
        .find(|record| record["route"] == "/v2/catalog")
        .unwrap_or_else(|| panic!("no access line:\n{}", lines.join("\n")));
    assert_eq!(access["request_identity"], identity.as_str());
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert!(
        records.iter().any(|r| r["message"] == "shut down cleanly"),
        "{}",
        lines.join("\n")
    );
    assert!(
        !broker.process.output().contains(PASSWORD),
        "the password was printed"
    );
}

// ===== several replicas on etcd (issue 3) =====

/// The shared test etcd, or `None` (skipped; a failure under CI).
fn test_etcd() -> Option<String> {
    match std::env::var("SKYBROKER_TEST_ETCD") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("SKYBROKER_TEST_ETCD is not set under CI")
        }
        _ => {
            eprintln!("SKIPPED: set SKYBROKER_TEST_ETCD=http://host:port to run this test");
            None
        }
    }
}

/// A configuration on etcd: the built-in catalog with async operations of `delay_ms`, a
/// fast engine, a two-second lease, and all keys under `prefix`.
fn write_etcd_config(dir: &Path, endpoints: &[String], prefix: &str, delay_ms: u64) -> PathBuf {
    let from = r#"settings = { mode = "async", delay_ms = 1000 }"#;
    let mut text = DEFAULT_CONFIG.replacen(
        from,
        &format!(r#"settings = {{ mode = "async", delay_ms = {delay_ms} }}"#),
        1,
    );
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    text = text.replacen("backend = \"embedded\"", "backend = \"etcd\"", 1);
    text.push_str(&format!(
        "\n[storage.etcd]\nendpoints = [{}]\nprefix = {prefix:?}\nlease_ttl_secs = 2\nrequest_timeout_secs = 5\n",
        endpoints.join(", ")
    ));
    text.push_str(
        "\n[engine]\nscan_interval_ms = 20\npoll_interval_ms = 100\nmax_poll_interval_ms = 300\n",
    );
    let path = dir.join(format!("etcd-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// A free loopback port (bound and released; good enough for a test's own servers).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An etcd cluster member of the test's own, killed when dropped.
struct EtcdMember {
    child: Child,
    name: String,
    data: PathBuf,
    client_url: String,
    peer_url: String,
    cluster: String,
}

impl EtcdMember {
    /// The members of a new cluster of `size`, not started yet.
    fn cluster(dir: &Path, size: usize) -> Vec<(String, String, String, PathBuf)> {
        (0..size)
            .map(|n| {
                (
                    format!("m{n}"),
                    format!("http://127.0.0.1:{}", free_port()),
                    format!("http://127.0.0.1:{}", free_port()),
                    dir.join(format!("etcd-m{n}")),
                )
            })
            .collect()
    }

    fn start(name: &str, client_url: &str, peer_url: &str, data: &Path, cluster: &str) -> Self {
        let log = std::fs::File::create(data.with_extension("log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", name, "--data-dir"])
            .arg(data)
            .args([
                "--listen-client-urls",
                client_url,
                "--advertise-client-urls",
                client_url,
            ])
            .args([
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
            ])
            .args([
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--initial-cluster-token", "skybroker-test"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts (install etcd-server)");
        EtcdMember {
            child,
            name: name.to_owned(),
            data: data.to_owned(),
            client_url: client_url.to_owned(),
            peer_url: peer_url.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    /// Starts every member of a new cluster and waits until it answers.
    async fn start_cluster(dir: &Path, size: usize) -> Vec<EtcdMember> {
        let plan = Self::cluster(dir, size);
        let cluster: Vec<String> = plan.iter().map(|(n, _, p, _)| format!("{n}={p}")).collect();
        let cluster = cluster.join(",");
        let members: Vec<EtcdMember> = plan
            .iter()
            .map(|(name, client, peer, data)| Self::start(name, client, peer, data, &cluster))
            .collect();
        for member in &members {
            member.wait_healthy().await;
        }
        members
    }

    async fn wait_healthy(&self) {
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let healthy = client
                .get(format!("{}/health", self.client_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} never became healthy",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts this member again on its data directory.
    fn restart(&mut self) {
        self.kill();
        let again = Self::start(
            &self.name,
            &self.client_url,
            &self.peer_url,
            &self.data,
            &self.cluster,
        );
        *self = again;
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Issue 3: kill -9 one of two replicas during 200 concurrent async provisions spread over
/// both: the survivor completes every one, each instance exists exactly once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_nothing_of_200_provisions() {
    let Some(endpoint) = test_etcd() else { return };
    let dir = tempfile::tempdir().expect("a temp dir");
    let prefix = format!("/skybroker-kill/{}/", uuid::Uuid::new_v4().simple());
    let config = write_etcd_config(dir.path(), std::slice::from_ref(&endpoint), &prefix, 1_500);
    let mut a = serve(&dir.path().join("a"), Some(&config), &[]).await;
    let b = serve(&dir.path().join("b"), Some(&config), &[]).await;
    let requests: Vec<_> = (0..200)
        .map(|n| {
            let api = if n % 2 == 0 {
                a.api.clone()
            } else {
                b.api.clone()
            };
            tokio::spawn(async move {
                let id = format!("kill-{n}");
                let (status, body) = api.provision(&id, ASYNC_PLAN, None, true).await;
                (id, status, body)
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for request in requests {
        let (id, status, body) = request.await.expect("request task");
        assert_eq!(status, StatusCode::ACCEPTED, "{id}: {body}");
        accepted.push((id, operation_of(&body)));
    }
    a.process.kill9();
    for (id, operation) in &accepted {
        let state = b
            .api
            .await_operation(id, operation, Duration::from_secs(40))
            .await;
        assert_eq!(
            state,
            "succeeded",
            "{id} {operation}\n{}",
            b.process.output()
        );
    }
    // Exactly the 200 instances and their 200 provisions are stored.
    let client_store = skybroker_storage::EtcdStore::connect(skybroker_storage::EtcdOptions {
        endpoints: vec![endpoint],
        prefix,
        user: None,
        ca_pem: None,
        identity_pem: None,
        lease_ttl: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    })
    .await
    .expect("etcd");
    use skybroker_storage::Store;
    let keys: Vec<String> = client_store
        .load()
        .await
        .expect("load")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("instances/")).count(),
        200
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("operations/")).count(),
        200
    );
}

/// Issues 3 and 16: etcd stopped for 10 s under a steady stream of provisions: writes answer
/// 503 with Retry-After and an OSB body, reads keep answering from the map (a miss is 503), and
/// the broker recovers by itself when etcd returns; nothing acknowledged before, during or
/// after the outage is lost. Also: one member of a three-member cluster killed under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outages_are_survived() {
    if test_etcd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut members = EtcdMember::start_cluster(dir.path(), 3).await;
    let endpoints: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    let config = write_etcd_config(dir.path(), &endpoints, "/skybroker-outage/", 300);
    let broker = serve(
        &dir.path().join("data"),
        Some(&config),
        &[("RUST_LOG", "info,skybroker_storage=debug")],
    )
    .await;

    // One member down under load: every request still succeeds.
    let load: Vec<_> = (0..40)
        .map(|n| {
            let api = broker.api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20 * n)).await;
                api.provision(&format!("member-{n}"), SYNC_PLAN, None, false)
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    members[0].kill();
    for request in load {
        let (status, body) = request.await.expect("request");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{body}\n{}",
            broker.process.output()
        );
    }

    // An async provision acknowledged before the outage.
    let (status, body) = broker
        .api
        .provision("before-outage", ASYNC_PLAN, None, true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let operation = operation_of(&body);

    // Writes keep coming through the outage and after it, from eight clients.
    let stop = Arc::new(AtomicBool::new(false));
    let steady: Vec<_> = (0..8)
        .map(|client| steady_writes(broker.api.clone(), Arc::clone(&stop), client))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The whole cluster down.
    for member in members.iter_mut() {
        member.kill();
    }
    let outage = Instant::now();
    let (status, body) = broker
        .api
        .provision("during-outage", SYNC_PLAN, None, false)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["description"].is_string(), "an OSB error body: {body}");
    let (status, _) = broker.api.get_instance("member-1").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reads answer from the map during the outage"
    );
    let (status, _) = broker.api.last_operation("before-outage", &operation).await;
    assert_eq!(status, StatusCode::OK);
    // A miss may be another replica's fresh record: without etcd the broker cannot vouch for
    // an absence, so it says 503 rather than 404.
    let (status, body) = broker.api.get_instance("never-created").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["description"].is_string(), "an OSB error body: {body}");
    let remaining = Duration::from_secs(10).saturating_sub(outage.elapsed());
    tokio::time::sleep(remaining).await;

    // etcd returns: the broker recovers without a restart.
    for member in members.iter_mut() {
        member.restart();
    }
    for member in &members {
        member.wait_healthy().await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = broker
            .api
            .provision("after-outage", SYNC_PLAN, None, false)
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {status}\n{}",
            broker.process.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    for client in steady {
        let seen = client.await.expect("the steady writes");
        acknowledged.extend(seen.acknowledged);
        refused += seen.refused;
    }
    assert!(refused > 0, "the steady writes never met the outage");
    let state = broker
        .api
        .await_operation("before-outage", &operation, Duration::from_secs(30))
        .await;
    assert_eq!(state, "succeeded");
    // Nothing acknowledged before, during or after the outage is lost.
    for (id, operation) in &acknowledged {
        match operation {
            Some(operation) => {
                let state = broker
                    .api
                    .await_operation(id, operation, Duration::from_secs(30))
                    .await;
                assert_eq!(state, "succeeded", "{id}");
            }
            None => assert_eq!(broker.api.get_instance(id).await.0, StatusCode::OK, "{id}"),
        }
    }
    eprintln!(
        "steady writes through a 10 s etcd outage: {} acknowledged and kept, {refused} refused with 503 + Retry-After",
        acknowledged.len()
    );
    for n in 0..40 {
        let (status, _) = broker.api.get_instance(&format!("member-{n}")).await;
        assert_eq!(status, StatusCode::OK, "member-{n} survived");
    }
}

/// A provision every 50 ms through `api` (synchronous and asynchronous in turn) until `stop`,
/// ids `steady-<client>-<n>`:
/// each answer must be an acknowledgement (201, or 202 with its operation) or a refusal the
/// platform can retry (503 with `Retry-After` and an OSB error body).
fn steady_writes(
    api: Api,
    stop: Arc<AtomicBool>,
    client: usize,
) -> tokio::task::JoinHandle<SteadyWrites> {
    tokio::spawn(async move {
        let (mut acknowledged, mut refused) = (Vec::new(), 0);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = format!("steady-{client}-{n}");
            let asynchronous = n % 2 == 1;
            let body = json!({
                "service_id": SERVICE_ID,
                "plan_id": if asynchronous { ASYNC_PLAN } else { SYNC_PLAN },
                "organization_guid": "org",
                "space_guid": "space",
            });
            let query: &[(&str, &str)] = if asynchronous {
                &[("accepts_incomplete", "true")]
            } else {
                &[]
            };
            let path = format!("/v2/service_instances/{id}");
            let (status, headers, body) = api
                .exchange(Method::PUT, &path, query, &[], Some(&body))
                .await;
            match status {
                StatusCode::CREATED => acknowledged.push((id, None)),
                StatusCode::ACCEPTED => acknowledged.push((id, Some(operation_of(&body)))),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert!(
                        headers.contains_key(reqwest::header::RETRY_AFTER),
                        "{id}: 503 without Retry-After"
                    );
                    assert!(body["description"].is_string(), "{id}: {body}");
                    refused += 1;
                }
                other => panic!("{id}: {other} {body}"),
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SteadyWrites {
            acknowledged,
            refused,
        }
    })
}

/// What [`steady_writes`] saw.
struct SteadyWrites {
    /// The ids acknowledged, with the operation of the asynchronous ones.
    acknowledged: Vec<(String, Option<String>)>,
    /// How many were refused with 503.
    refused: usize,
}

/// Issue 16 item 2: etcd restored from a file backup taken earlier (its revisions go back).
/// A running replica notices, reloads what the store now holds, and follows the changes
/// others make from then on; without the check its watch waited for revisions the restored
/// store handed out again to other changes, and it never saw them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_a_backup_is_noticed_and_followed_again() {
    if test_etcd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut members = EtcdMember::start_cluster(dir.path(), 1).await;
    let endpoints = vec![members[0].client_url.clone()];
    let config = write_etcd_config(dir.path(), &endpoints, "/skybroker-restore/", 300);
    let first = serve(&dir.path().join("first"), Some(&config), &[]).await;
    let (status, body) = first
        .api
        .provision("before-backup", SYNC_PLAN, None, false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A file backup of the stopped member, then more changes the backup lacks.
    members[0].kill();
    let backup = dir.path().join("backup");
    copy_dir(&members[0].data, &backup);
    members[0].restart();
    members[0].wait_healthy().await;
    for n in 0..5 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = first
                .api
                .provision(&format!("after-backup-{n}"), SYNC_PLAN, None, false)
                .await;
            if status == StatusCode::CREATED {
                break;
            }
            assert!(Instant::now() < deadline, "{status} {body}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // Restore: the member comes back on the backup, at a lower revision.
    members[0].kill();
    std::fs::remove_dir_all(&members[0].data).expect("remove the member's data");
    copy_dir(&backup, &members[0].data);
    members[0].restart();
    members[0].wait_healthy().await;

    // A replica started now writes at revisions the first one has seen before.
    let second = serve(&dir.path().join("second"), Some(&config), &[]).await;
    let (status, body) = second
        .api
        .provision("after-restore", SYNC_PLAN, None, false)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = first.api.get_instance("after-restore").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first replica never saw the change made after the restore: {status}\n{}",
            first.process.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The first replica now holds what the store holds: the backup's record, not the ones the
    // restore undid (the operator's restore decides; see the README's reliability section).
    assert_eq!(
        first.api.get_instance("before-backup").await.0,
        StatusCode::OK
    );
    assert_eq!(
        first.api.get_instance("after-backup-0").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        first.process.output().contains("restored from a backup"),
        "the restore is logged as such:\n{}",
        first.process.output()
    );
}

/// Copies a directory tree (an etcd member's data) as `cp -a` does.
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// An HTTP client for tests. The workspace's reqwest is built with rustls but no default
/// crypto provider (the Alibaba provider brings its own, on ring), so the process default is
/// installed here first.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

// ===== Alibaba Cloud (issue 7) =====

/// Issue 7 (crash during an RDS provision), DESIGN "durable before acknowledged", D-12,
/// OSB-PROV-06/08, OSB-BIND-13, OSB-DEPROV-01: the real binary provisions two instances on the
/// fake Alibaba Cloud (running in this test's process; RDS instances stay `Creating` for 3 s)
/// and is killed with SIGKILL while both are being created at Alibaba:
/// - the first after the broker recorded the RDS instance it made;
/// - the second after the fake made it but before its answer reached the broker (a forwarder
///   withholds the answers), so the broker knows nothing of it.
///
/// After a restart on the same data directory both operations resume and succeed: the first
/// by polling its instance, the second by repeating `CreateDBInstance` with the same
/// `ClientToken`, which adopts the instance already made. Exactly one RDS instance exists per
/// OSB instance; an identical PUT answers 200 and creates nothing; bind and deprovision work.
/// The broker's output, at debug level, holds neither the account's root secret nor the
/// binding's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_rds_provision_survives_kill_9() {
    use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};
    use skybroker_brokers::names::cloud_name;

    let root_secret = format!("RootSecret{}", uuid::Uuid::new_v4().simple());
    let fake_config = FakeConfig {
        access_key_secret: root_secret.clone(),
        creating: Duration::from_secs(3),
        deleting: Duration::from_secs(1),
        ..FakeConfig::default()
    };
    let fake = FakeAlibaba::start(fake_config.clone())
        .await
        .expect("the fake listens");
    let instances = || {
        fake.snapshot()["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let rpc = Withholder::start(fake.rpc_url().trim_start_matches("http://")).await;

    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("skybroker.toml");
    let text = format!(
        r#"{DEFAULT_CONFIG}
[engine]
scan_interval_ms = 20
poll_interval_ms = 100
max_poll_interval_ms = 300

# The secret comes from ALIBABA_CLOUD_ACCESS_KEY_SECRET.
[providers.alibaba]
kind = "alibaba"
region = "{region}"
access_key_id = "{key_id}"
rds_endpoint = "{rpc}"
ram_endpoint = "{rpc}"
oss_endpoint = "{oss}"
oss_path_style = true
max_attempts = 3

[[services]]
id = "crash-ali"
name = "crash-ali"
description = "Alibaba Cloud RDS"
bindable = true
instances_retrievable = true
broker = "alibaba"

[[services.plans]]
id = "crash-ali-small"
name = "small"
description = "MySQL 8.0, small"
settings = {{ service = "rds", engine = "mysql", engine_version = "8.0", instance_class = "mysql.n2.small.1", storage_gb = 20 }}
"#,
        region = fake_config.region,
        key_id = fake_config.access_key_id,
        rpc = rpc.url(),
        oss = fake.oss_url(),
    );
    std::fs::write(&config, text).expect("write the configuration");
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", root_secret.as_str()),
        ("RUST_LOG", "debug"),
    ];
    let body = json!({
        "service_id": "crash-ali", "plan_id": "crash-ali-small",
        "organization_guid": "org", "space_guid": "space",
    });
    let incomplete = [("accepts_incomplete", "true")];
    let path = |id: &str| format!("/v2/service_instances/{id}");
    let mut broker = serve(&data, Some(&config), &env).await;

    // The first: killed once the broker has recorded its RDS instance.
    let recorded = new_id("ali-crash-recorded");
    let (status, accepted) = broker
        .api
        .call(Method::PUT, &path(&recorded), &incomplete, &[], Some(&body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let recorded_op = operation_of(&accepted);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, last) = broker.api.last_operation(&recorded, &recorded_op).await;
        if last["description"]
            .as_str()
            .is_some_and(|d| d.contains("creating the RDS instance"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{last}\n{}",
            broker.process.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The second: killed once the fake has made its instance, whose id never reached us.
    rpc.hold(true);
    let unrecorded = new_id("ali-crash-unrecorded");
    let (status, accepted) = broker
        .api
        .call(
            Method::PUT,
            &path(&unrecorded),
            &incomplete,
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let unrecorded_op = operation_of(&accepted);
    while instances().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second RDS instance never appeared\n{}",
            broker.process.output()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, last) = broker.api.last_operation(&unrecorded, &unrecorded_op).await;
    assert_eq!(last["state"], "in progress", "{last}");
    assert!(
        last.get("description").is_none(),
        "the broker has not learnt of the second instance: {last}"
    );
    broker.process.kill9();
    let statuses: Vec<Value> = instances().iter().map(|i| i["status"].clone()).collect();
    assert_eq!(statuses, ["Creating", "Creating"], "killed mid-creation");
    let mut output = broker.process.output();
    assert!(!output.contains("shut down cleanly"), "{output}");
    assert_eq!(
        output.matches("RDS CreateDBInstance: HTTP 200").count(),
        1,
        "only the first answer reached the broker before the kill\n{output}"
    );
    drop(broker);

    rpc.hold(false);
    let mut broker = serve(&data, Some(&config), &env).await;
    for (id, operation) in [(&recorded, &recorded_op), (&unrecorded, &unrecorded_op)] {
        let state = broker
            .api
            .await_operation(id, operation, Duration::from_secs(30))
            .await;
        assert_eq!(state, "succeeded", "{id}\n{}", broker.process.output());
    }
    let restarted = broker.process.output();
    assert!(
        restarted.contains("resuming 2 operation(s) in flight"),
        "the kill came mid-operation, so the restart resumed both\n{restarted}"
    );
    assert_eq!(
        restarted.matches("RDS CreateDBInstance: HTTP 200").count(),
        1,
        "the unrecorded creation was repeated (once)\n{restarted}"
    );
    let all = instances();
    assert_eq!(
        all.len(),
        2,
        "exactly one RDS instance per OSB instance: {all:?}"
    );
    let token =
        |id: &str, operation: &str| json!(cloud_name("skybroker", &format!("{id}/{operation}")));
    let mut tokens: Vec<Value> = all.iter().map(|i| i["client_token"].clone()).collect();
    tokens.sort_by_key(Value::to_string);
    let mut expected = vec![
        token(&recorded, &recorded_op),
        token(&unrecorded, &unrecorded_op),
    ];
    expected.sort_by_key(Value::to_string);
    assert_eq!(
        tokens, expected,
        "each made with its operation's ClientToken"
    );
    assert!(all.iter().all(|i| i["status"] == "Running"), "{all:?}");
    for id in [&recorded, &unrecorded] {
        let (status, repeat) = broker
            .api
            .call(Method::PUT, &path(id), &incomplete, &[], Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "an identical repeat is not a second instance: {repeat}"
        );
    }
    assert_eq!(instances().len(), 2);

    // The adopted instance serves bindings.
    let binding = format!("{}/service_bindings/{}", path(&unrecorded), new_id("b"));
    let bind = json!({"service_id": "crash-ali", "plan_id": "crash-ali-small"});
    let (status, bound) = broker
        .api
        .call(Method::PUT, &binding, &[], &[], Some(&bind))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let password = bound["credentials"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("the bind returns a password: {bound}"))
        .to_owned();
    let adopted = instances()
        .into_iter()
        .find(|i| i["client_token"] == token(&unrecorded, &unrecorded_op))
        .unwrap();
    assert_eq!(
        adopted["accounts"][0]["name"],
        bound["credentials"]["username"]
    );

    let query = [
        ("service_id", "crash-ali"),
        ("plan_id", "crash-ali-small"),
        ("accepts_incomplete", "true"),
    ];
    for id in [&recorded, &unrecorded] {
        let (status, accepted) = broker
            .api
            .call(Method::DELETE, &path(id), &query, &[], None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let state = broker
            .api
            .await_operation(id, &operation_of(&accepted), Duration::from_secs(30))
            .await;
        assert_eq!(state, "succeeded", "{}", broker.process.output());
    }
    assert!(instances().is_empty(), "deprovision deleted both");

    broker.process.terminate();
    broker.process.wait_exit(Duration::from_secs(10)).await;
    output.push_str(&broker.process.output());
    assert!(
        output.contains("DEBUG") && output.contains("RDS CreateAccount"),
        "the provider's calls were logged at debug:\n{output}"
    );
    for (what, secret) in [
        ("the root AccessKey secret", root_secret.as_str()),
        ("the binding's password", password.as_str()),
    ] {
        assert!(!output.contains(secret), "{what} was printed:\n{output}");
    }
}

/// A TCP forwarder in front of the fake's RPC endpoint that can withhold the answers: a call
/// then takes effect at the fake while the broker never hears back.
struct Withholder {
    port: u16,
    hold: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Withholder {
    async fn start(target: &str) -> Withholder {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target: std::net::SocketAddr = target.parse().expect("the fake's address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the forwarder listens");
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = Arc::clone(&hold);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let held = Arc::clone(&held);
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let requests = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    });
                    let mut buffer = vec![0; 16 * 1024];
                    while let Ok(n) = from_server.read(&mut buffer).await {
                        if n == 0 || held.load(Ordering::SeqCst) {
                            // Withheld: the client waits until it gives up or dies.
                            break;
                        }
                        if to_client.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = requests.await;
                });
            }
        });
        Withholder { port, hold, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn hold(&self, on: bool) {
        self.hold.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Withholder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Issue #16, crash durability on the embedded store: 200 async provisions sent at once,
/// `kill -9` while they are still arriving and running, a restart on the same data
/// directory: every provision that was acknowledged (202) succeeds with the operation it was
/// given, and is fetchable once; the ones the kill cut off either never happened (404) or,
/// when the commit landed before the answer was lost, finish as well. Nothing acknowledged is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_provisions_survive_kill_9_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), 2_000, 0);
    let mut broker = serve(&data, Some(&config), &[]).await;
    // Requests the kill cuts off fail to send or lose their answer: no status.
    let requests: Vec<_> = (0..200)
        .map(|n| {
            let api = broker.api.clone();
            tokio::spawn(async move {
                let id = format!("crash-{n:03}");
                let body = json!({
                    "service_id": SERVICE_ID, "plan_id": ASYNC_PLAN,
                    "organization_guid": "org", "space_guid": "space",
                });
                let response = api
                    .client
                    .put(format!("{}/v2/service_instances/{id}", api.base))
                    .query(&[("accepts_incomplete", "true")])
                    .header("X-Broker-API-Version", "2.17")
                    .basic_auth(USERNAME, Some(PASSWORD))
                    .json(&body)
                    .send()
                    .await;
                let answer = match response {
                    Ok(response) => {
                        let status = response.status();
                        match response.json::<Value>().await {
                            Ok(body) => Some((status, body)),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                (id, answer)
            })
        })
        .collect();
    // Kill once a quarter have been answered, while the rest are in flight or just answered
    // and every operation runs.
    let mut answered = Vec::new();
    let mut requests = requests.into_iter();
    for task in requests.by_ref().take(50) {
        answered.push(task.await.unwrap());
    }
    broker.process.kill9();
    drop(broker);
    for task in requests {
        answered.push(task.await.unwrap());
    }
    let acknowledged: Vec<(String, String)> = answered
        .iter()
        .filter_map(|(id, answer)| match answer {
            Some((StatusCode::ACCEPTED, body)) => Some((id.clone(), operation_of(body))),
            _ => None,
        })
        .collect();
    assert!(
        acknowledged.len() >= 50,
        "at least those answered before the kill: {}",
        acknowledged.len()
    );

    let broker = serve(&data, Some(&config), &[]).await;
    for (id, operation) in &acknowledged {
        let state = broker
            .api
            .await_operation(id, operation, Duration::from_secs(60))
            .await;
        assert_eq!(state, "succeeded", "{id} ({operation})");
        let (status, body) = broker.api.get_instance(id).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }
    // The unanswered ones: gone, or carried through.
    let cut_off = answered
        .iter()
        .filter(|(_, answer)| answer.is_none())
        .count();
    for (id, answer) in &answered {
        if matches!(answer, Some((StatusCode::ACCEPTED, _))) {
            continue;
        }
        let (fetched, body) = broker.api.get_instance(id).await;
        assert!(
            fetched == StatusCode::NOT_FOUND || fetched == StatusCode::OK,
            "{id}: {fetched} {body}"
        );
    }
    eprintln!(
        "kill -9 during 200 provisions: {} acknowledged, all succeeded after the restart; {cut_off} cut off",
        acknowledged.len()
    );
}
