//! The OSB HTTP API: routes, the cross-cutting layers, and request parsing.
//!
//! # Layers, outermost first
//! 1. request identity and access log: echo `X-Broker-API-Request-Identity` on every response,
//!    errors included (D-18), and log one line per request (never a body or a secret);
//! 2. authentication: basic auth or a configured bearer token, compared in constant time
//!    (OSB-AUTH-03/04);
//! 3. API version and originating identity (D-01, D-02, OSB-HDR-04);
//! 4. the handlers, one module per resource, each shaped parse → admit → persist → launch →
//!    respond.

pub mod bindings;
pub mod catalog;
pub mod instances;
pub mod last_operation;
pub mod openapi;
pub mod request;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;

use crate::core::Core;
use crate::credentials::{basic_credentials_match, bearer_matches};
use crate::error::ApiError;

/// The request identity header (OSB-HDR-08/09).
pub const REQUEST_IDENTITY: &str = "x-broker-api-request-identity";
/// The API version header.
pub const API_VERSION: &str = "x-broker-api-version";
/// The originating identity header.
pub const ORIGINATING_IDENTITY: &str = "x-broker-api-originating-identity";
/// The oldest minor version of 2.x served (D-01).
const MIN_MINOR: u32 = 13;

/// The catalog route.
pub const ROUTE_CATALOG: &str = "/v2/catalog";
/// The instance route.
pub const ROUTE_INSTANCE: &str = "/v2/service_instances/{instance_id}";
/// The instance last-operation route.
pub const ROUTE_INSTANCE_LAST_OPERATION: &str =
    "/v2/service_instances/{instance_id}/last_operation";
/// The binding route.
pub const ROUTE_BINDING: &str = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}";
/// The binding last-operation route.
pub const ROUTE_BINDING_LAST_OPERATION: &str =
    "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation";
/// Every route template: the `route` metric label is one of these or `unmatched`, never a
/// raw path (which holds instance ids).
pub const ROUTES: [&str; 5] = [
    ROUTE_CATALOG,
    ROUTE_INSTANCE,
    ROUTE_INSTANCE_LAST_OPERATION,
    ROUTE_BINDING,
    ROUTE_BINDING_LAST_OPERATION,
];

/// The `X-Broker-API-Version` of a request: 2.`minor`. Responses leave out fields introduced
/// after it (D-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    /// The minor version.
    pub minor: u32,
}

impl ApiVersion {
    /// Whether the client speaks at least 2.`minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self.minor >= minor
    }
}

/// Who asked, from `X-Broker-API-Originating-Identity`: `platform user`, for audit (D-02).
#[derive(Debug, Clone, Default)]
pub struct Originator(pub Option<String>);

/// Builds the router over `core`.
pub fn router(core: Arc<Core>) -> Router {
    let body_limit = core.config.server.max_body_bytes;
    // Rendered once per catalog version and caller (the platforms see their visible plans).
    let rendered = Arc::new(catalog::RenderedCatalogs::default());
    let catalogs = Arc::clone(&core);
    let get_catalog = move |version, request: Request| {
        let rendered = Arc::clone(&rendered);
        let catalogs = Arc::clone(&catalogs);
        async move {
            let platform = Principal::platform_of(&request);
            let catalog = catalogs.catalog.current();
            let rendered = rendered.for_caller(&catalog, platform.as_deref());
            catalog::get_catalog(&rendered, version, request)
        }
    };
    Router::new()
        .route(ROUTE_CATALOG, get(get_catalog))
        .route(
            ROUTE_INSTANCE,
            get(instances::get_instance)
                .put(instances::put_instance)
                .patch(instances::patch_instance)
                .delete(instances::delete_instance),
        )
        .route(
            ROUTE_INSTANCE_LAST_OPERATION,
            get(last_operation::get_instance_last_operation),
        )
        .route(
            ROUTE_BINDING,
            get(bindings::get_binding)
                .put(bindings::put_binding)
                .delete(bindings::delete_binding),
        )
        .route(
            ROUTE_BINDING_LAST_OPERATION,
            get(last_operation::get_binding_last_operation),
        )
        .fallback(|| async { ApiError::NotFound("no such OSB route".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        // The three layers run as one middleware: each `from_fn` layer costs a boxed future
        // and a boxed clone of the inner service per request, and these run on every request.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&core),
            osb_layers,
        ))
        .with_state(core)
}

/// The `route` label of a request: the template it matched, or `unmatched`.
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|matched| ROUTES.into_iter().find(|route| *route == matched.as_str()))
        .unwrap_or("unmatched")
}

/// The cross-cutting layers, outermost first (see the module doc): request identity and
/// access log, then authentication, then version and originating identity, then the handler.
/// Everything logged while the request is handled carries its identity (JSON logs).
async fn osb_layers(State(core): State<Arc<Core>>, request: Request, next: Next) -> Response {
    let identity = request.headers().get(REQUEST_IDENTITY).cloned();
    let scoped = identity
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    crate::logging::with_request_identity(scoped, serve_and_log(core, identity, request, next))
        .await
}

/// Echoes the request identity, records the request's metrics and writes the access log line
/// around [`authenticate_and_serve`].
async fn serve_and_log(
    core: Arc<Core>,
    identity: Option<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Only when the access log is on; a `Uri` clone shares the request's bytes (no copy).
    let uri = log::log_enabled!(log::Level::Info).then(|| request.uri().clone());
    let route = route_label(request.extensions().get::<MatchedPath>());
    let mut response = authenticate_and_serve(&core, request, next).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    core.metrics
        .observe_request(method.as_str(), route, status, elapsed);
    if let Some(identity) = &identity {
        response
            .headers_mut()
            .insert(REQUEST_IDENTITY, identity.clone());
    }
    if let Some(uri) = uri {
        let path = uri.path();
        let identity = IdentitySuffix(identity.as_ref().and_then(|v| v.to_str().ok()));
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        // The key-values are for structured (JSON) logs; the human format shows the message.
        log::info!(
            method = method.as_str(), route = route, status = status, duration_ms = duration_ms;
            "{method} {path} {status} {duration_ms:.1}ms{identity}"
        );
    }
    response
}

/// ` request_identity=…` in the access log line when the request has one; formatted in
/// place, without an intermediate string.
struct IdentitySuffix<'a>(Option<&'a str>);

impl std::fmt::Display for IdentitySuffix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(identity) => write!(f, " request_identity={identity}"),
            None => Ok(()),
        }
    }
}

/// Who calls: the broker's own credentials (configured basic auth or bearer token: every
/// plan), or a platform registered through the Service Manager API (the plans visible to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The configured credentials.
    Broker,
    /// A registered platform, by id.
    Platform(Arc<str>),
}

impl Principal {
    /// The platform id, when a platform calls.
    pub fn platform(&self) -> Option<&str> {
        match self {
            Principal::Broker => None,
            Principal::Platform(id) => Some(id),
        }
    }

    /// The platform id of an authenticated request's caller.
    pub fn platform_of(request: &Request) -> Option<Arc<str>> {
        match request.extensions().get::<Principal>() {
            Some(Principal::Platform(id)) => Some(Arc::clone(id)),
            _ => None,
        }
    }
}

/// Who asks, as a changing request records it: the originating identity and the caller.
#[derive(Debug, Clone)]
pub struct Who {
    /// `X-Broker-API-Originating-Identity`, as kept (D-02).
    pub originator: Originator,
    /// The credentials' owner.
    pub principal: Principal,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Both are set by the layers before any handler runs.
        let originator = parts
            .extensions
            .get::<Originator>()
            .cloned()
            .unwrap_or_default();
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        Ok(Who {
            originator,
            principal,
        })
    }
}

/// Basic auth or bearer token (401 otherwise), then the version check, then the handler.
async fn authenticate_and_serve(core: &Arc<Core>, mut request: Request, next: Next) -> Response {
    let Some(principal) = authenticate(core, request.headers()).await else {
        return ApiError::Unauthorized.into_response();
    };
    request.extensions_mut().insert(principal);
    if let Err(err) = check_version(core, &mut request) {
        return err.into_response();
    }
    let server = &core.config.server;
    let deadline = std::time::Duration::from_secs(server.body_read_timeout_secs);
    match request::read_body(request, server.max_body_bytes, deadline).await {
        Ok(request) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn authenticate(core: &Arc<Core>, headers: &HeaderMap) -> Option<Principal> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let server = &core.config.server;
    if let Some(encoded) = value.strip_prefix("Basic ") {
        let password = core.secrets.password();
        let password = password.as_ref().as_ref()?;
        if basic_credentials_match(encoded, &server.username, password.expose()) {
            return Some(Principal::Broker);
        }
        return platform_login(core, encoded)
            .await
            .map(|id| Principal::Platform(id.into()));
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        return bearer_matches(token, &server.bearer_tokens).then_some(Principal::Broker);
    }
    None
}

/// The platform whose credentials `encoded` (the base64 of a `Basic` header) holds.
async fn platform_login(core: &Arc<Core>, encoded: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let split = decoded.iter().position(|&b| b == b':')?;
    let username = std::str::from_utf8(&decoded[..split]).ok()?.to_owned();
    let password = decoded[split + 1..].to_vec();
    if let Some(id) = core.logins.remembered(&core.state, &username, &password) {
        return Some(id);
    }
    if !core
        .state
        .platforms()
        .iter()
        .any(|p| p.username == username)
    {
        return None;
    }
    // argon2 takes tens of milliseconds: not on the runtime's threads.
    let core = Arc::clone(core);
    tokio::task::spawn_blocking(move || core.logins.verify(&core.state, &username, &password))
        .await
        .ok()
        .flatten()
}

/// Checks the API version and parses the originating identity, both left in the request's
/// extensions for the handlers.
fn check_version(core: &Core, request: &mut Request) -> Result<(), ApiError> {
    let version = parse_version(
        request.headers().get(API_VERSION),
        core.config.server.missing_version_is_bad_request,
    )?;
    let originator = parse_originating_identity(request.headers().get(ORIGINATING_IDENTITY))?;
    if let Some(who) = &originator.0 {
        log::debug!(
            "{} {} on behalf of {who}",
            request.method(),
            request.uri().path()
        );
    }
    request.extensions_mut().insert(version);
    request.extensions_mut().insert(originator);
    Ok(())
}

/// D-01: any 2.x with x ≥ 13; missing or empty is 412 (or 400 when configured).
fn parse_version(
    value: Option<&HeaderValue>,
    as_bad_request: bool,
) -> Result<ApiVersion, ApiError> {
    let text = value
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if text.is_empty() {
        return Err(ApiError::VersionMissing { as_bad_request });
    }
    let unsupported = || ApiError::VersionUnsupported(text.to_owned());
    let (major, minor) = text.split_once('.').ok_or_else(unsupported)?;
    let minor: u32 = minor.parse().map_err(|_| unsupported())?;
    if major != "2" || minor < MIN_MINOR {
        return Err(unsupported());
    }
    Ok(ApiVersion { minor })
}

/// D-02: `platform base64(json object)`; anything else is 400.
fn parse_originating_identity(value: Option<&HeaderValue>) -> Result<Originator, ApiError> {
    let Some(value) = value else {
        return Ok(Originator(None));
    };
    let bad = |why: &str| ApiError::OriginatingIdentity(why.to_owned());
    let text = value.to_str().map_err(|_| bad("not ASCII"))?.trim();
    let (platform, encoded) = text
        .split_once(char::is_whitespace)
        .ok_or_else(|| bad("expected `platform base64(json)`"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad("the value is not base64"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|_| bad("the value is not JSON"))?;
    let object = json
        .as_object()
        .ok_or_else(|| bad("the value is not a JSON object"))?;
    // Only the platform and a user id are kept: never more (D-02).
    let user = ["user_id", "username"]
        .iter()
        .find_map(|key| object.get(*key).and_then(|v| v.as_str()))
        .unwrap_or("unknown");
    Ok(Originator(Some(format!("{platform} {user}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Result<ApiVersion, ApiError> {
        parse_version(Some(&HeaderValue::from_str(text).unwrap()), false)
    }

    // OSB-AUTH-03: short credentials decode on the stack, long ones on the heap; both match.
    #[test]
    fn basic_credentials_match_at_every_length() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let long = "p".repeat(1000);
        for password in ["s3cret", long.as_str()] {
            let header = encode(&format!("platform:{password}"));
            assert!(basic_credentials_match(&header, "platform", password));
            assert!(basic_credentials_match(
                &format!(" {header} "),
                "platform",
                password
            ));
            assert!(!basic_credentials_match(&header, "platform", "other"));
            assert!(!basic_credentials_match(&header, "other", password));
        }
        assert!(!basic_credentials_match("!!!", "platform", "s3cret"));
        assert!(!basic_credentials_match(
            &encode("no-colon"),
            "no-colon",
            ""
        ));
    }

    // D-01, OSB-HDR-04.
    #[test]
    fn versions_from_2_13_up_are_accepted() {
        assert_eq!(version("2.17").unwrap().minor, 17);
        assert_eq!(version("2.13").unwrap().minor, 13);
        assert_eq!(version("2.18").unwrap().minor, 18);
        for bad in ["2.12", "1.17", "3.0", "2", "two", "2.x"] {
            assert!(
                matches!(version(bad), Err(ApiError::VersionUnsupported(_))),
                "{bad}"
            );
        }
        assert!(matches!(version(" "), Err(ApiError::VersionMissing { .. })));
    }

    // D-02.
    #[test]
    fn originating_identity_is_parsed_or_rejected() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let header = |s: String| HeaderValue::from_str(&s).unwrap();
        let ok = parse_originating_identity(Some(&header(format!(
            "cloudfoundry {}",
            encode(r#"{"user_id":"u-1","secret":"x"}"#)
        ))))
        .unwrap();
        assert_eq!(ok.0.as_deref(), Some("cloudfoundry u-1"));
        for bad in [
            "cloudfoundry".to_owned(),
            "cloudfoundry !!!".to_owned(),
            format!("k8s {}", encode("not json")),
            format!("k8s {}", encode("[1]")),
        ] {
            assert!(
                parse_originating_identity(Some(&header(bad.clone()))).is_err(),
                "{bad}"
            );
        }
    }
}

/// Hostile input (issue #16): whatever a client puts in the headers and the query, parsing
/// answers a value or a 4xx; it never panics and never accepts what it should refuse.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn versions_parse_or_are_refused(text in ".{0,40}") {
            let Ok(header) = HeaderValue::from_str(&text) else { return Ok(()); };
            match parse_version(Some(&header), false) {
                Ok(version) => {
                    prop_assert!(text.trim().starts_with("2."));
                    prop_assert!(version.minor >= MIN_MINOR);
                }
                Err(err) => prop_assert!(err.status().is_client_error(), "{err:?}"),
            }
        }

        #[test]
        fn originating_identities_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let Ok(header) = HeaderValue::from_bytes(&bytes) else { return Ok(()); };
            match parse_originating_identity(Some(&header)) {
                Ok(Originator(Some(who))) => prop_assert!(who.contains(' ')),
                Ok(Originator(None)) => prop_assert!(false, "a header present names someone"),
                Err(err) => prop_assert!(err.status().is_client_error(), "{err:?}"),
            }
        }

        #[test]
        fn basic_credentials_never_match_by_accident(encoded in ".{0,100}") {
            prop_assert!(!basic_credentials_match(&encoded, "platform", "s3cret-password-x"));
        }
    }
}
