//! The operator dashboard: one page on the metrics listener (`/dashboard`) that shows what
//! the broker is doing: the store, the dispatcher's queue and workers, operations in flight
//! and the last failures, instances a page at a time, registered brokers and platforms.
//!
//! Everything is rendered on the server ([`view`], maud templates checked at compile time);
//! the page's script only fetches `/dashboard/live` every two seconds and swaps in the
//! fragment it gets, so the page refreshes without a reload and without a client-side
//! templating layer. The script and the style sheet are compiled into the binary: no CDN, no
//! node toolchain.
//!
//! # Access
//! The metrics listener has no authentication of its own (scrapers, probes); the dashboard
//! does: the broker's configured basic credentials, or an admin token (`Authorization:
//! Bearer`, or as the password of basic auth with any user name, which browsers can send). A
//! browser gets `WWW-Authenticate: Basic` and asks.

mod view;

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;

use crate::core::Core;
use crate::credentials::{basic_credentials_match, bearer_matches};

/// Instances per page.
const PAGE: usize = 50;
/// Operations in flight shown.
const IN_FLIGHT_SHOWN: usize = 100;
/// Failed operations shown.
const FAILURES_SHOWN: usize = 20;
/// How long the store's health check may take (as for the readiness probe).
const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The dashboard's routes, for the metrics listener.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/live", get(live))
        .route("/dashboard/dashboard.js", get(script))
        .route("/dashboard/dashboard.css", get(style))
        .layer(middleware::from_fn_with_state(Arc::clone(&core), guard))
        .with_state(core)
}

/// Broker credentials or an admin token; 401 asking for basic auth otherwise.
async fn guard(State(core): State<Arc<Core>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if allowed(&core, authorization) {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"skybroker dashboard\""),
    );
    response
}

fn allowed(core: &Core, authorization: &str) -> bool {
    let server = &core.config.server;
    let admin_tokens = core.secrets.admin_tokens();
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return bearer_matches(token, &admin_tokens);
    }
    let Some(encoded) = authorization.strip_prefix("Basic ") else {
        return false;
    };
    if let Some(password) = core.secrets.password().as_ref() {
        if basic_credentials_match(encoded, &server.username, password.expose()) {
            return true;
        }
    }
    // An admin token as the password, whatever the user name.
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|decoded| {
            let split = decoded.iter().position(|&b| b == b':')?;
            String::from_utf8(decoded[split + 1..].to_vec()).ok()
        })
        .is_some_and(|token| bearer_matches(&token, &admin_tokens))
}

/// What the page shows, read once per request.
#[derive(Debug)]
pub struct Snapshot {
    /// The store: its kind, health and description.
    pub store: StoreCard,
    /// The engine's sample: queue, workers, counts.
    pub sample: crate::metrics::Sample,
    /// Operations in flight, oldest first, with when each is polled next.
    pub in_flight: Vec<(skybroker_storage::Operation, Option<u64>)>,
    /// How many are in flight in all.
    pub in_flight_total: usize,
    /// The last failures.
    pub failures: Vec<skybroker_storage::Operation>,
    /// A page of instances and whether more follow.
    pub instances: (Vec<skybroker_storage::ServiceInstance>, bool),
    /// Where the page starts.
    pub after: Option<String>,
    /// The instance filter of the page's query.
    pub filter: InstanceFilter,
    /// The registered brokers.
    pub brokers: Vec<skybroker_storage::ServiceBroker>,
    /// The registered platforms.
    pub platforms: Vec<skybroker_storage::Platform>,
    /// The last hour, a minute at a time.
    pub history: Vec<crate::metrics::Minute>,
    /// Offering and plan names by plan id, to show names rather than ids.
    pub names: std::collections::HashMap<String, (String, String)>,
    /// Now, for ages.
    pub now: u64,
}

/// What the page says about the store.
#[derive(Debug)]
pub struct StoreCard {
    /// `embedded`, `etcd`, `memory`.
    pub kind: &'static str,
    /// Whether it answers (the readiness probe's check).
    pub health: Result<(), String>,
    /// Its description (location, size, cluster members), when it gave one in time.
    pub status: Option<skybroker_storage::StoreStatus>,
    /// How long the last commit took.
    pub last_commit: Option<std::time::Duration>,
}

/// Which instances the page lists: `q` (part of the id), `service` and `plan` (names or ids),
/// `state` (`ready`, `provisioning`, …). Empty fields filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Part of the instance id.
    pub q: String,
    /// The offering's name or id.
    pub service: String,
    /// The plan's name or id.
    pub plan: String,
    /// The state.
    pub state: String,
}

impl InstanceFilter {
    fn of(query: Option<&str>) -> InstanceFilter {
        let mut filter = InstanceFilter::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.trim().to_owned();
            match &*key {
                "q" => filter.q = value,
                "service" => filter.service = value,
                "plan" => filter.plan = value,
                "state" => filter.state = value.to_lowercase(),
                _ => {}
            }
        }
        filter
    }

    /// Whether it filters nothing.
    pub fn is_empty(&self) -> bool {
        self == &InstanceFilter::default()
    }

    /// The query string that keeps it (for paging links), starting with `&` when not empty.
    pub fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("q", &self.q),
            ("service", &self.service),
            ("plan", &self.plan),
            ("state", &self.state),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        let query = query.finish();
        if query.is_empty() {
            query
        } else {
            format!("&{query}")
        }
    }

    fn accepts(
        &self,
        instance: &skybroker_storage::ServiceInstance,
        names: &std::collections::HashMap<String, (String, String)>,
    ) -> bool {
        let (service, plan) = names
            .get(instance.plan_id.as_str())
            .map_or(("", ""), |(s, p)| (s.as_str(), p.as_str()));
        let either = |wanted: &str, name: &str, id: &str| {
            wanted.is_empty() || wanted == name || wanted == id
        };
        (self.q.is_empty() || instance.id.contains(self.q.as_str()))
            && either(&self.service, service, &instance.service_id)
            && either(&self.plan, plan, &instance.plan_id)
            && (self.state.is_empty()
                || format!("{:?}", instance.state).to_lowercase() == self.state)
    }
}

/// A page of instances after `after` that pass `filter`, in id order (a filter few pass
/// decodes every instance once).
fn instances(
    core: &Core,
    after: Option<String>,
    filter: &InstanceFilter,
    names: &std::collections::HashMap<String, (String, String)>,
) -> (Vec<skybroker_storage::ServiceInstance>, bool) {
    if filter.is_empty() {
        return core.state.instances_page(after.as_deref(), PAGE, |_| true);
    }
    core.state
        .instances_matching(after.as_deref(), PAGE, |i| filter.accepts(i, names))
}

async fn snapshot(core: &Core, query: Option<&str>) -> Snapshot {
    use crate::metrics::Live as _;
    let after = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "after")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty());
    let filter = InstanceFilter::of(query);
    let names: std::collections::HashMap<String, (String, String)> = core
        .catalog
        .current()
        .plans()
        .map(|(offering, plan, _)| (plan.id.clone(), (offering.name.clone(), plan.name.clone())))
        .collect();
    let store = core.state.store();
    let (health, status) = tokio::join!(
        tokio::time::timeout(STORE_CHECK_TIMEOUT, store.check()),
        tokio::time::timeout(STORE_CHECK_TIMEOUT, store.status()),
    );
    let health = match health {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(_) => Err("no answer in time".to_owned()),
    };
    let status = match status {
        Ok(Ok(status)) => Some(status),
        Ok(Err(err)) => {
            log::debug!("the store did not describe itself: {err}");
            None
        }
        Err(_) => None,
    };
    let (in_flight, in_flight_total) = core.state.oldest_in_progress(IN_FLIGHT_SHOWN);
    let in_flight = in_flight
        .into_iter()
        .map(|operation| {
            let due = core.engine.next_due(&operation.id);
            (operation, due)
        })
        .collect();
    Snapshot {
        store: StoreCard {
            kind: store.name(),
            health,
            status,
            last_commit: core.metrics.last_store_write(),
        },
        sample: core.engine.sample(),
        in_flight,
        in_flight_total,
        failures: core.state.recent_failures(FAILURES_SHOWN),
        instances: instances(core, after.clone(), &filter, &names),
        after,
        filter,
        brokers: core.state.service_brokers(),
        platforms: core.state.platforms(),
        history: core.metrics.last_hour(),
        names,
        now: skybroker_storage::now_millis(),
    }
}

/// `GET /dashboard`: the page.
async fn page(State(core): State<Arc<Core>>, RawQuery(query): RawQuery) -> Html<String> {
    let snapshot = snapshot(&core, query.as_deref()).await;
    Html(view::page(&snapshot).into_string())
}

/// `GET /dashboard/live`: the part that refreshes.
async fn live(State(core): State<Arc<Core>>, RawQuery(query): RawQuery) -> Html<String> {
    let snapshot = snapshot(&core, query.as_deref()).await;
    Html(view::live(&snapshot).into_string())
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard.css"),
    )
        .into_response()
}
