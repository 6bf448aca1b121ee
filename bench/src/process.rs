//! The servers under test, each a child process: the real `skybroker` binary (release build),
//! and the minimal hyper server that is the limit every figure is compared with.
//!
//! A child process, not a task in the benchmark's own runtime, so that its CPU time and
//! memory are its own (`/proc/<pid>`), and so that the broker runs exactly as operators run
//! it: `skybroker serve --config FILE` with the environment overrides.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::{PASSWORD, USER};
use crate::procfs;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A server running as a child process.
#[derive(Debug)]
pub struct Server {
    /// What it is, for messages.
    name: String,
    /// The process (killed on drop if still running).
    child: Child,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// The broker's metrics listener, when it has one.
    pub metrics_addr: Option<SocketAddr>,
    /// From spawning the process to reading its address: its start-up time.
    pub started_in: Duration,
    /// Its stderr, kept for when it fails.
    log: Option<PathBuf>,
}

/// A snapshot of a server's resource use, to subtract from a later one.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// CPU time so far.
    pub cpu: Duration,
    /// When it was taken.
    pub at: Instant,
}

impl Server {
    /// Starts the broker binary `bin` on the configuration `config` (TOML text), storing its
    /// data in `data_dir` and its stderr in `log`; waits until it listens.
    pub fn broker(
        bin: &Path,
        config: &str,
        work_dir: &Path,
        data_dir: &Path,
        log_level: &str,
        name: &str,
    ) -> anyhow::Result<Server> {
        let config_path = work_dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log = work_dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log)?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("SKYBROKER_LISTEN", "127.0.0.1:0")
            .env("SKYBROKER_METRICS_LISTEN", "127.0.0.1:0")
            .env("SKYBROKER_USERNAME", USER)
            .env("SKYBROKER_PASSWORD", PASSWORD)
            .env("SKYBROKER_DATA_DIR", data_dir)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stderr(stderr);
        Server::spawn(name, command, Some(log))
    }

    /// Starts the minimal hyper server (this same executable, `limit-server`) answering
    /// `body` to every request.
    pub fn limit(body_file: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("locating the benchmark executable")?;
        let mut command = Command::new(exe);
        command
            .arg("limit-server")
            .arg(body_file)
            // The server exits when this pipe closes, even if the benchmark dies.
            .stdin(Stdio::piped())
            .stderr(Stdio::inherit());
        Server::spawn("hyper limit server", command, None)
    }

    fn spawn(name: &str, mut command: Command, log: Option<PathBuf>) -> anyhow::Result<Server> {
        let started = Instant::now();
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (lines, found) = mpsc::channel();
        // Reads the announced addresses, then drains stdout until the process ends.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let mut addr = None;
        let mut metrics_addr = None;
        let deadline = started + START_TIMEOUT;
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = found.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the {name} did not announce its address{}",
                    log.as_deref().map(tail).unwrap_or_default()
                );
            };
            if let Some(rest) = line.strip_prefix("skybroker listening on http://") {
                addr = Some(rest.trim().parse()?);
            } else if let Some(rest) = line.strip_prefix("limit server listening on ") {
                addr = Some(rest.trim().parse()?);
            }
        }
        let started_in = started.elapsed();
        // The broker prints its metrics address right after; it is not needed to start.
        if let Ok(line) = found.recv_timeout(Duration::from_secs(2)) {
            if let Some(rest) = line.strip_prefix("skybroker metrics and probes on http://") {
                metrics_addr = rest.trim().parse().ok();
            }
        }
        Ok(Server {
            name: name.to_owned(),
            child,
            addr: addr.expect("the loop ends with an address"),
            metrics_addr,
            started_in,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time so far, now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Ok(Usage {
            cpu: procfs::cpu_time(self.pid())?,
            at: Instant::now(),
        })
    }

    /// `(VmRSS, VmHWM)` now.
    pub fn memory(&self) -> anyhow::Result<(u64, u64)> {
        procfs::memory(self.pid())
    }

    /// Resets the peak RSS, so the next [`Server::memory`] peak covers only what follows.
    pub fn reset_peak(&self) -> bool {
        procfs::reset_peak(self.pid())
    }

    /// Stops it with SIGTERM (the broker's orderly shutdown), or kills it if it hangs.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // Closing stdin stops the limit server; SIGTERM stops the broker.
        drop(self.child.stdin.take());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!(
            "the {} did not stop within {STOP_TIMEOUT:?}{}",
            self.name,
            self.log.as_deref().map(tail).unwrap_or_default()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind, even when a scenario fails half-way.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private etcd for the etcd-store scenario, when no `--etcd-endpoint` is given: a child
/// process on free loopback ports with its data under the work directory, fsyncing as in
/// production (no `--unsafe-no-fsync`), removed when dropped.
#[derive(Debug)]
pub struct Etcd {
    /// The process.
    child: Child,
    /// Its client URL.
    pub endpoint: String,
    /// Its data directory.
    data_dir: PathBuf,
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Etcd {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `etcd` (from PATH) and waits until it answers.
    pub async fn start(work_dir: &Path) -> anyhow::Result<Etcd> {
        let (client, peer) = (free_port()?, free_port()?);
        let data_dir = work_dir.join("etcd-data");
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(work_dir.join("etcd.log"))?;
        let child = Command::new("etcd")
            .arg("--name=bench")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd (is it installed? apt-get install etcd-server)")?;
        let etcd = Etcd {
            child,
            endpoint,
            data_dir,
        };
        let addr: std::net::SocketAddr = format!("127.0.0.1:{client}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = hyper::Request::builder()
                .uri("/health")
                .header(hyper::header::HOST, addr.to_string())
                .body(http_body_util::Full::new(bytes::Bytes::new()))?;
            if let Ok((status, _)) = crate::load::one(addr, request).await {
                if status.is_success() {
                    return Ok(etcd);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "etcd did not become healthy in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The last lines of a log file, to show why a server failed.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    format!(
        "; its log ({}):\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

/// The `skybroker` binary to run: `explicit` if given, else the release build next to this
/// executable, built (or brought up to date) with the cargo that runs this benchmark.
pub fn broker_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the executable has no directory")?;
    let bin = dir.join("skybroker");
    // `cargo run` sets CARGO; building here keeps the broker as fresh as the benchmark.
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.file_name().is_some_and(|name| name == "release");
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "-p", "skybroker", "--bin", "skybroker"]);
        if release {
            command.arg("--release");
        }
        if let Some(target) = dir.parent() {
            command.env("CARGO_TARGET_DIR", target);
        }
        let status = command.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build of the skybroker binary failed");
        }
    }
    if !bin.exists() {
        bail!(
            "{} does not exist: build it (`cargo build --release -p skybroker`) or pass --broker-bin",
            bin.display()
        );
    }
    Ok(bin)
}
