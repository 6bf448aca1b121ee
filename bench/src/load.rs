//! The load generator: N keep-alive HTTP/1.1 connections, each sending its next request as
//! soon as the previous answer is read (a closed loop, like a platform's worker pool).
//!
//! It is built on hyper's connection-level client so that the generator itself costs as little
//! as possible: one task per connection, no pool, no per-request routing. It shares the
//! machine's two cores with the server it measures, which is why every server is measured
//! with this same generator and the figures are read as ratios to the minimal hyper server.
//!
//! Every run is bounded twice: by time and by a request count per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// The broker's user name in every benchmark.
pub const USER: &str = "bench";
/// The broker's password in every benchmark.
pub const PASSWORD: &str = "bench-password-0123456789";

/// What one connection sends next, and what it expects back.
pub trait Workload: Send + Sync + 'static {
    /// Request number `seq` of connection `conn`, and the status that counts as success.
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, StatusCode);

    /// Sees every successful response body (most workloads ignore them).
    fn observe(&self, _conn: usize, _seq: u64, _body: &Bytes) {}
}

/// Headers every OSB request carries, built once.
#[derive(Debug, Clone)]
pub struct OsbHeaders {
    host: HeaderValue,
    authorization: HeaderValue,
    version: HeaderValue,
    json: HeaderValue,
}

impl OsbHeaders {
    /// Headers for a server at `addr`, with the benchmark's basic-auth credentials.
    pub fn new(addr: SocketAddr) -> OsbHeaders {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        OsbHeaders {
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header"),
            authorization: HeaderValue::from_str(&format!("Basic {credentials}"))
                .expect("base64 is a header"),
            version: HeaderValue::from_static("2.17"),
            json: HeaderValue::from_static("application/json"),
        }
    }

    /// An OSB request: auth, version, and a JSON body when there is one.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header("x-broker-api-version", self.version.clone());
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, self.json.clone());
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .expect("a valid request")
    }
}

/// How long and how hard to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Stop after this many requests in total (split over the connections).
    pub max_requests: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise, or lost with their connection.
    pub errors: u64,
    /// One example of what went wrong, for the report.
    pub first_error: Option<String>,
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// Latency of every request, sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    /// Answered requests per second (errors included: they were served too).
    pub fn per_second(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0.0–1.0).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index]
    }

    /// The slowest request.
    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

/// What one connection measured.
#[derive(Default)]
struct ConnectionResult {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

/// Runs `workload` against `addr` as `plan` says and returns what it measured.
pub async fn run(addr: SocketAddr, plan: Plan, workload: Arc<dyn Workload>) -> Measured {
    let connections = plan.connections.max(1);
    let deadline = Instant::now() + plan.duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|conn| {
            // Connection `conn` sends its share of the request budget.
            let share = plan.max_requests / connections as u64
                + u64::from((conn as u64) < plan.max_requests % connections as u64);
            let workload = Arc::clone(&workload);
            tokio::spawn(connection(addr, conn, share, deadline, workload))
        })
        .collect();
    let mut measured = Measured::default();
    let mut latencies_us = Vec::new();
    for task in tasks {
        let result = task.await.unwrap_or_else(|err| ConnectionResult {
            errors: 1,
            first_error: Some(format!("connection task failed: {err}")),
            ..ConnectionResult::default()
        });
        measured.ok += result.ok;
        measured.errors += result.errors;
        if measured.first_error.is_none() {
            measured.first_error = result.first_error;
        }
        latencies_us.extend(result.latencies_us);
    }
    measured.elapsed = started.elapsed();
    latencies_us.sort_unstable();
    measured.latencies = latencies_us
        .into_iter()
        .map(|us| Duration::from_micros(u64::from(us)))
        .collect();
    measured
}

/// One connection's closed loop.
async fn connection(
    addr: SocketAddr,
    conn: usize,
    share: u64,
    deadline: Instant,
    workload: Arc<dyn Workload>,
) -> ConnectionResult {
    let mut result = ConnectionResult {
        latencies_us: Vec::with_capacity(share.min(1 << 20) as usize),
        ..ConnectionResult::default()
    };
    let mut sender = match connect(addr).await {
        Ok(sender) => sender,
        Err(err) => {
            result.errors += 1;
            result.first_error = Some(format!("{err:#}"));
            return result;
        }
    };
    for seq in 0..share {
        if Instant::now() >= deadline {
            break;
        }
        let (request, expected) = workload.request(conn, seq);
        let sent = Instant::now();
        let answer = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let latency = sent.elapsed();
        match answer {
            Ok((status, body)) if status == expected => {
                result.ok += 1;
                workload.observe(conn, seq, &body);
            }
            Ok((status, body)) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(format!(
                        "{status} (expected {expected}): {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
            }
            Err(err) => {
                // The connection is gone: count it and stop this loop.
                result.errors += 1;
                result.first_error.get_or_insert_with(|| err.to_string());
                break;
            }
        }
        result
            .latencies_us
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
        if sender.ready().await.is_err() {
            result.errors += 1;
            result
                .first_error
                .get_or_insert_with(|| "connection closed by the server".to_owned());
            break;
        }
    }
    result
}

/// Opens one keep-alive HTTP/1.1 connection.
async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either is fine.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request over a fresh connection (set-up steps, scrapes): status and body.
pub async fn one(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .context("no answer within 30 s")??;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
