//! The ECS instance metadata service (`http://100.100.100.200` on a real instance), the part
//! that hands an instance its RAM role's temporary credentials, in hardened mode:
//!
//! - `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds` (1 to 21600)
//!   answers a session token (text);
//! - `GET /latest/meta-data/ram/security-credentials/` answers the attached role's name;
//! - `GET /latest/meta-data/ram/security-credentials/<role>` answers the credentials
//!   document: `AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`,
//!   `LastUpdated`, `Code: "Success"`.
//!
//! Both reads need a live token in `X-aliyun-ecs-metadata-token` (401 without one); the
//! normal mode (reads without a token) is refused, as on instances where hardened mode is
//! enforced. A missing or malformed TTL header is 400.
//!
//! The role is [`FakeConfig::ecs_ram_role`](crate::FakeConfig); it must exist in the fake's
//! RAM and trust `ecs.aliyuncs.com` (404 otherwise, as for a name that is not the attached
//! role). The credentials are an STS session of that role lasting
//! [`FakeConfig::ecs_credentials_lifetime`](crate::FakeConfig), served again until half of
//! that has passed and then replaced, as the real service rotates them before they expire.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::json;
use time::OffsetDateTime;

use crate::ram::{Issued, Truster};
use crate::{api, lock, Shared};

/// The longest session token the service grants, in seconds.
const MAX_TOKEN_TTL: u64 = 21_600;
/// The session name of the instance's role sessions (a real instance uses its id).
const SESSION_NAME: &str = "i-fakeinstance0001";

/// What the metadata service keeps: its session tokens and the role's current credentials.
#[derive(Debug, Default)]
pub struct MetadataState {
    /// Session tokens and when they expire.
    tokens: HashMap<String, Instant>,
    /// The credentials served now, and when they were issued.
    current: Option<(Issued, OffsetDateTime)>,
}

/// The metadata endpoint.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/latest/api/token", put(handle_token))
        .route(
            "/latest/meta-data/ram/security-credentials/",
            get(handle_role_name),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(handle_credentials),
        )
        .with_state(shared)
}

/// `PUT /latest/api/token`.
async fn handle_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ttl = headers
        .get("x-aliyun-ecs-metadata-token-ttl-seconds")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TOKEN_TTL).contains(ttl));
    let Some(ttl) = ttl else {
        return (
            StatusCode::BAD_REQUEST,
            "X-aliyun-ecs-metadata-token-ttl-seconds must be 1 to 21600",
        )
            .into_response();
    };
    let token = api::random_string(api::ALNUM, 44);
    let now = Instant::now();
    let mut state = lock(&shared.metadata);
    state.tokens.retain(|_, expires| *expires > now);
    state
        .tokens
        .insert(token.clone(), now + Duration::from_secs(ttl));
    token.into_response()
}

/// Whether the request carries a live session token.
fn has_token(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get("x-aliyun-ecs-metadata-token")
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    lock(&shared.metadata)
        .tokens
        .get(token)
        .is_some_and(|expires| *expires > Instant::now())
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

/// `GET /latest/meta-data/ram/security-credentials/`.
async fn handle_role_name(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !has_token(&shared, &headers) {
        return unauthorized();
    }
    match &shared.config.ecs_ram_role {
        Some(role) => role.clone().into_response(),
        None => not_found(),
    }
}

/// `GET /latest/meta-data/ram/security-credentials/<role>`.
async fn handle_credentials(
    State(shared): State<Arc<Shared>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !has_token(&shared, &headers) {
        return unauthorized();
    }
    if shared.config.ecs_ram_role.as_deref() != Some(role.as_str()) {
        return not_found();
    }
    let now = OffsetDateTime::now_utc();
    let lifetime = shared.config.ecs_credentials_lifetime;
    let mut metadata = lock(&shared.metadata);
    let reusable = metadata
        .current
        .as_ref()
        .filter(|(_, issued_at)| now < *issued_at + lifetime / 2)
        .cloned();
    let (issued, issued_at) = match reusable {
        Some(current) => current,
        None => {
            let mut ram = lock(&shared.ram);
            let ecs = Truster::Service("ecs.aliyuncs.com".to_owned());
            let trusted = ram
                .assumable(&role, &ecs, &BTreeMap::new())
                .is_some_and(|role| role.trusted);
            if !trusted {
                log::info!("metadata: role {role} does not exist or does not trust ECS");
                return not_found();
            }
            let issued = ram.issue_session(&role, SESSION_NAME, lifetime, None, now);
            metadata.current = Some((issued.clone(), now));
            (issued, now)
        }
    };
    let document = json!({
        "AccessKeyId": issued.access_key_id,
        "AccessKeySecret": issued.access_key_secret,
        "SecurityToken": issued.security_token,
        "Expiration": api::iso8601(issued.expiration),
        "LastUpdated": api::iso8601(issued_at),
        "Code": "Success",
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain")],
        document.to_string(),
    )
        .into_response()
}
