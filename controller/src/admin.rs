//! The metrics listener: `/metrics` for Prometheus, `/healthz` and `/readyz` for Kubernetes
//! probes (or any load balancer).
//!
//! It is a second port, apart from the OSB API, because it has no authentication (scrapers
//! and kubelets carry no broker credentials) and should stay on loopback or a
//! cluster-internal address (`[metrics] listen`), and because an OSB request that waits must
//! never delay a probe.
//!
//! # Probes
//! - `/healthz`: the process is up and its runtime answers: always 200 (liveness; restarting a
//!   broker whose store is down would not bring the store back).
//! - `/readyz`: 200 when the broker can serve: the store answers its health check within
//!   [`STORE_CHECK_TIMEOUT`], the catalog is loaded and the dispatcher runs; 503 otherwise, and
//!   from the moment shutdown begins, so traffic moves away while requests drain. The body
//!   is one short line per check; details of a failure go to the log, once per change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::core::Core;

/// How long the readiness probe waits for the store's health check.
pub const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener's handlers share.
#[derive(Clone)]
struct AdminState {
    /// The broker.
    core: Arc<Core>,
    /// The metrics to expose.
    registry: Arc<Registry>,
    /// Turns true when shutdown begins.
    stopping: watch::Receiver<bool>,
    /// The last readiness answer, to log only changes.
    was_ready: Arc<AtomicBool>,
}

/// Builds the listener's router. `stopping` turns true when shutdown begins.
pub fn router(core: Arc<Core>, registry: Registry, stopping: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            core: Arc::clone(&core),
            registry: Arc::new(registry),
            stopping,
            was_ready: Arc::new(AtomicBool::new(true)),
        })
        .merge(crate::dashboard::router(core))
}

/// The exposition: OpenMetrics when the scraper asks for it (Prometheus does), else the
/// Prometheus text format 0.0.4 (curl, older scrapers).
async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::with_capacity(16 * 1024);
    let (encoded, content_type) = if openmetrics {
        let encoded = prometheus_client::encoding::text::encode(&mut body, &state.registry);
        (encoded, OPENMETRICS)
    } else {
        use prometheus_client::encoding::prometheus_text;
        let encoded = prometheus_text::encode(&mut body, &state.registry);
        (encoded, prometheus_text::CONTENT_TYPE)
    };
    match encoded {
        Ok(()) => ([(CONTENT_TYPE, content_type)], body).into_response(),
        // Writing into a String does not fail; answer honestly if it ever does.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let stopping = *state.stopping.borrow();
    let readiness = readiness(&state.core, stopping).await;
    let ready = readiness.is_ready();
    if state.was_ready.swap(ready, Ordering::Relaxed) != ready {
        if ready {
            log::info!("ready again");
        } else {
            log::warn!("not ready: {}", readiness.problems().join("; "));
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, readiness.body()).into_response()
}

/// One readiness check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// It passed.
    Ok,
    /// It failed; the reason is for the log, not the probe's body.
    Failed(String),
}

/// The answer of the readiness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Shutdown has begun.
    pub stopping: bool,
    /// The store answered its health check in time.
    pub store: Check,
    /// The catalog holds at least one offering.
    pub catalog: Check,
    /// The worker pool runs.
    pub dispatcher: Check,
}

impl Readiness {
    /// Whether every check passed and the broker is not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.stopping
            && [&self.store, &self.catalog, &self.dispatcher]
                .iter()
                .all(|check| **check == Check::Ok)
    }

    fn checks(&self) -> [(&'static str, &Check); 3] {
        [
            ("store", &self.store),
            ("catalog", &self.catalog),
            ("dispatcher", &self.dispatcher),
        ]
    }

    /// What failed, with the reasons.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .checks()
            .into_iter()
            .filter_map(|(name, check)| match check {
                Check::Ok => None,
                Check::Failed(why) => Some(format!("{name}: {why}")),
            })
            .collect();
        if self.stopping {
            problems.push("shutting down".to_owned());
        }
        problems
    }

    /// The probe's body: a verdict and one short line per check, no error details.
    pub fn body(&self) -> String {
        let mut body = String::from(if self.is_ready() {
            "ready\n"
        } else {
            "not ready\n"
        });
        for (name, check) in self.checks() {
            let verdict = if *check == Check::Ok { "ok" } else { "failed" };
            body.push_str(&format!("{name}: {verdict}\n"));
        }
        if self.stopping {
            body.push_str("shutting down\n");
        }
        body
    }
}

/// Runs the readiness checks against `core`.
pub async fn readiness(core: &Core, stopping: bool) -> Readiness {
    let store = match tokio::time::timeout(STORE_CHECK_TIMEOUT, core.state.store().check()).await {
        Ok(Ok(())) => Check::Ok,
        Ok(Err(err)) => Check::Failed(err.to_string()),
        Err(_) => Check::Failed(format!("no answer within {STORE_CHECK_TIMEOUT:?}")),
    };
    let catalog = if core.catalog.current().services().is_empty() {
        Check::Failed("the catalog has no offering".to_owned())
    } else {
        Check::Ok
    };
    let dispatcher = if core.engine.dispatcher().is_running() {
        Check::Ok
    } else {
        Check::Failed("the worker pool is stopped".to_owned())
    };
    Readiness {
        stopping,
        store,
        catalog,
        dispatcher,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_check_and_no_shutdown() {
        let mut readiness = Readiness {
            stopping: false,
            store: Check::Ok,
            catalog: Check::Ok,
            dispatcher: Check::Ok,
        };
        assert!(readiness.is_ready());
        assert_eq!(
            readiness.body(),
            "ready\nstore: ok\ncatalog: ok\ndispatcher: ok\n"
        );
        readiness.store = Check::Failed("store unavailable: /secret/path".into());
        assert!(!readiness.is_ready());
        assert!(readiness.body().contains("store: failed"));
        assert!(
            !readiness.body().contains("/secret/path"),
            "details stay in the log"
        );
        assert_eq!(
            readiness.problems(),
            ["store: store unavailable: /secret/path"]
        );
        readiness.store = Check::Ok;
        readiness.stopping = true;
        assert!(!readiness.is_ready());
        assert!(readiness.body().ends_with("shutting down\n"));
    }
}
