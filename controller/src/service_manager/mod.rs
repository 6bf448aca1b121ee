//! The Service Manager API (`/v1`): external brokers, platforms, visibilities, and what they
//! offer and hold, for operators who run Skybroker as the central broker of several
//! platforms (Cloud Foundry foundations, Kubernetes clusters), in the shape of Peripli's
//! Service Manager.
//!
//! Everything registered here is a record in the state map (see `skybroker_storage::registry`),
//! so it is persisted before it is acknowledged, replicated to every replica and kept across
//! restarts like instances are. An external broker's offerings join the catalog (the
//! `osb` plugin forwards every call to it); a platform calls the ordinary OSB endpoint (`/v2`)
//! with its own credentials and sees the plans made visible to it.
//!
//! # Conventions
//! - `Authorization: Bearer <admin token>` (`server.admin_tokens`, `SKYBROKER_ADMIN_TOKEN`) on
//!   every request; platforms' credentials are valid only on `/v2`.
//! - Errors are OSB-style JSON (`{"error"?, "description"}`), from the one mapping in
//!   `error.rs`.
//! - Lists are `{"num_items", "items", "token"?}`; `max_items` (default 100, at most 1,000)
//!   and `token` page them, and a page with more after it carries a `Link: <…>; rel="next"`.
//!   `fieldQuery` and `labelQuery` filter them ([`query`]); labels change by PATCH.
//!
//! # Layout
//! - here: the router and its layer (admin token, body deadline, access log), paging;
//! - [`brokers`]: `/service_brokers` (registration fetches and checks the catalog);
//! - [`platforms`]: `/platforms` (credentials generated and shown once);
//! - [`visibilities`] holds `/visibilities`;
//! - [`operations`]: `?async=true` and `/service_brokers/{id}/operations/{op}`;
//! - [`offerings`]: `/service_offerings`, `/service_plans` (read only);
//! - [`instances`]: `/service_instances` and `/service_bindings` (read, labels, their
//!   operations, and `PATCH {"shared": true}` to share an instance between platforms).

pub mod brokers;
pub mod instances;
pub mod offerings;
pub mod operations;
pub mod platforms;
pub mod query;
pub mod schema;
pub mod visibilities;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use skybroker_storage::{Change, Labels, RegistryKind, RegistryName, RegistryRecord, StoreError};

use crate::api::request::{read_body, JsonBody, Query};
use crate::core::Core;
use crate::credentials::bearer_matches;
use crate::error::ApiError;

/// The default page size of a list.
const DEFAULT_PAGE: usize = 100;
/// The largest page size a list accepts.
const MAX_PAGE: usize = 1000;

/// The `/v1` routes (nested under `/v1` by the server).
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route(
            "/service_brokers",
            get(brokers::list).post(brokers::register),
        )
        .route(
            "/service_brokers/{id}",
            get(brokers::get_one)
                .patch(brokers::update)
                .delete(brokers::delete),
        )
        .route(
            "/service_brokers/{id}/operations/{operation_id}",
            get(operations::get_one),
        )
        .route("/platforms", get(platforms::list).post(platforms::register))
        .route(
            "/platforms/{id}",
            get(platforms::get_one)
                .patch(platforms::update)
                .delete(platforms::delete),
        )
        .route(
            "/visibilities",
            get(visibilities::list).post(visibilities::create),
        )
        .route(
            "/visibilities/{id}",
            get(visibilities::get_one).delete(visibilities::delete),
        )
        .route("/service_offerings", get(offerings::list_offerings))
        .route("/service_offerings/{id}", get(offerings::get_offering))
        .route("/service_plans", get(offerings::list_plans))
        .route("/service_plans/{id}", get(offerings::get_plan))
        .route("/service_instances", get(instances::list_instances))
        .route(
            "/service_instances/{id}",
            get(instances::get_instance).patch(instances::update_instance),
        )
        .route(
            "/service_instances/{id}/operations/{operation_id}",
            get(instances::instance_operation),
        )
        .route("/service_bindings", get(instances::list_bindings))
        .route(
            "/service_bindings/{id}",
            get(instances::get_binding).patch(instances::update_binding),
        )
        .route(
            "/service_bindings/{id}/operations/{operation_id}",
            get(instances::binding_operation),
        )
        .fallback(|| async { ApiError::NotFound("no such Service Manager route".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(Arc::clone(&core), layer))
        .with_state(core)
}

/// `GET /v1/openapi.json`: the OpenAPI document of this API (no token needed: it holds no
/// data).
async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        schema::document(),
    )
        .into_response()
}

/// Admin token (401 otherwise), the body read under its deadline, one access log line.
async fn layer(State(core): State<Arc<Core>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = match admit(&core, request).await {
        Ok(request) => next.run(request).await,
        Err(err) => err.into_response(),
    };
    log::info!("{method} /v1{path} {}", response.status().as_u16());
    response
}

async fn admit(core: &Core, request: Request) -> Result<Request, ApiError> {
    if request.uri().path() == "/openapi.json" {
        return Ok(request);
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bearer_matches(token, &core.secrets.admin_tokens()) {
        return Err(ApiError::Unauthorized);
    }
    let server = &core.config.server;
    read_body(
        request,
        server.max_body_bytes,
        Duration::from_secs(server.body_read_timeout_secs),
    )
    .await
}

/// The changes that move a record's name from `old` to `new`: the new one claimed (the
/// commit fails if another replica took it meanwhile, see `RegistryName`), the old released.
pub(crate) fn renaming(
    resource_type: &str,
    owner: &str,
    old: Option<&str>,
    new: Option<&str>,
) -> Vec<Change> {
    if old == new {
        return Vec::new();
    }
    let mut changes = Vec::new();
    if let Some(old) = old {
        changes.push(Change::DeleteRegistry(
            RegistryKind::Name,
            format!("{resource_type}/{old}"),
        ));
    }
    if let Some(new) = new {
        changes.push(Change::PutRegistry(RegistryRecord::Name(
            RegistryName::new(resource_type, new, owner),
        )));
    }
    changes
}

/// Commits `changes`; a name claimed among them that another replica took first is 409.
pub(crate) async fn commit_named(
    core: &Core,
    changes: Vec<Change>,
    name: &str,
) -> Result<(), ApiError> {
    match core.state.commit(changes).await {
        Err(StoreError::Conflict { key }) if key.starts_with(RegistryKind::Name.prefix()) => {
            Err(ApiError::Conflict(format!("the name {name:?} is taken")))
        }
        other => Ok(other?),
    }
}

/// The JSON object body of a request (400 otherwise).
pub(crate) fn body(request: &axum::http::HeaderMap, bytes: &[u8]) -> Result<JsonBody, ApiError> {
    JsonBody::parse(request, bytes)
}

/// A JSON response.
pub(crate) fn reply(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

/// A typed body (see [`schema`]) as a JSON response.
pub(crate) fn answer<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Typed items as JSON values, to be paged.
pub(crate) fn values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|item| serde_json::to_value(item).expect("bodies serialize"))
        .collect()
}

/// `async=true`: run in the background, answer 202 with the operation's `Location`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsyncQuery {
    /// Run in the background (the requests that call an external broker).
    #[serde(rename = "async")]
    #[param(rename = "async")]
    pub run_async: Option<bool>,
}

/// The paging parameters of every list (documented once).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 1,000 (100 when absent).
    pub max_items: Option<usize>,
    /// The `token` of the previous page: the next page starts after it.
    pub token: Option<String>,
    /// Criteria on the items' fields, e.g. `name eq 'cf-eu' and type in ('kubernetes')`.
    #[serde(rename = "fieldQuery")]
    #[param(rename = "fieldQuery")]
    pub field_query: Option<String>,
    /// Criteria on the items' labels, e.g. `env eq 'dev'`.
    #[serde(rename = "labelQuery")]
    #[param(rename = "labelQuery")]
    pub label_query: Option<String>,
}

/// Milliseconds since the epoch as RFC 3339, as the Service Manager API writes times.
pub(crate) fn timestamp(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `labels` of a create request: an object of string arrays.
pub(crate) fn labels(body: &JsonBody) -> Result<Labels, ApiError> {
    let Some(object) = body.optional_object("labels")? else {
        return Ok(Labels::new());
    };
    object
        .into_iter()
        .map(|(key, values)| {
            let values = values
                .as_array()
                .filter(|values| values.iter().all(Value::is_string))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("labels.{key} must be an array of strings"))
                })?;
            if key.is_empty() {
                return Err(ApiError::BadRequest("a label key must not be empty".into()));
            }
            let values = values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Ok((key, values))
        })
        .collect()
}

/// One page of a list: `max_items` and `token` from the query.
#[derive(Debug, Clone)]
pub(crate) struct Paging {
    /// Items on the page.
    pub max_items: usize,
    /// The id the page starts after.
    pub after: Option<String>,
    /// Which items are listed.
    pub filter: query::Filter,
}

impl Paging {
    pub(crate) fn of(query: &Query) -> Result<Paging, ApiError> {
        let max_items = match query.hint("max_items")? {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "max_items must be a number from 1 to {MAX_PAGE}, not {text:?}"
                    ))
                })?,
        };
        Ok(Paging {
            max_items,
            after: query.hint("token")?,
            filter: query::Filter::parse(
                query.hint("fieldQuery")?.as_deref(),
                query.hint("labelQuery")?.as_deref(),
            )?,
        })
    }

    /// The page of `items` (each with a string `id`) that pass the filter, in id order.
    pub(crate) fn cut(&self, mut items: Vec<Value>) -> (Vec<Value>, bool) {
        let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
        items.retain(|item| self.filter.accepts(item));
        items.sort_by_key(id);
        if let Some(after) = &self.after {
            items.retain(|item| id(item).as_str() > after.as_str());
        }
        let more = items.len() > self.max_items;
        items.truncate(self.max_items);
        (items, more)
    }
}

/// The answer to a list request (`query`: its raw query string) over every item of a list
/// held in memory: filtered, paged, in id order.
pub(crate) fn list_all<T: serde::Serialize>(
    path: &str,
    query: Option<&str>,
    items: &[T],
) -> Result<Response, ApiError> {
    let paging = Paging::of(&Query::parse(query))?;
    let (items, more) = paging.cut(values(items));
    Ok(list(path, &paging, items, more))
}

/// A list answer: the page, and when more follow, their token and a `Link` to them.
pub(crate) fn list(path: &str, paging: &Paging, items: Vec<Value>, more: bool) -> Response {
    let next = more
        .then(|| {
            items
                .last()
                .and_then(|v| v["id"].as_str())
                .map(str::to_owned)
        })
        .flatten();
    let mut body = Map::new();
    body.insert("num_items".into(), json!(items.len()));
    if let Some(token) = &next {
        body.insert("token".into(), json!(token));
    }
    body.insert("items".into(), Value::Array(items));
    let mut response = reply(StatusCode::OK, Value::Object(body));
    if let Some(token) = next {
        let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let link = format!(
            "</v1{path}?max_items={}&token={encoded}>; rel=\"next\"",
            paging.max_items
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

/// A path id: non-empty, at most 255 characters, no control characters.
pub(crate) fn id_of(id: &str) -> Result<&str, ApiError> {
    if id.is_empty() || id.chars().count() > 255 || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("malformed id in the path".to_owned()));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_in_id_order() {
        let items: Vec<Value> = ["c", "a", "d", "b"]
            .iter()
            .map(|id| json!({ "id": id }))
            .collect();
        let first = Paging {
            max_items: 3,
            after: None,
            filter: Default::default(),
        };
        let (page, more) = first.cut(items.clone());
        assert_eq!(
            page,
            vec![json!({"id": "a"}), json!({"id": "b"}), json!({"id": "c"})]
        );
        assert!(more);
        let second = Paging {
            max_items: 3,
            after: Some("c".into()),
            filter: Default::default(),
        };
        let (page, more) = second.cut(items);
        assert_eq!(page, vec![json!({"id": "d"})]);
        assert!(!more);
    }

    #[tokio::test]
    async fn two_replicas_cannot_both_take_a_name() {
        use skybroker_storage::{MemoryStore, StateMap, Store};
        // Two maps on one store, neither seeing the other's commits: two replicas at the same
        // moment, before either's watch delivered the other's change.
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        let first = StateMap::open(std::sync::Arc::clone(&store)).await.unwrap();
        let second = StateMap::open(store).await.unwrap();
        first
            .commit(renaming("platforms", "p-1", None, Some("cf-eu")))
            .await
            .unwrap();
        let err = second
            .commit(renaming("platforms", "p-2", None, Some("cf-eu")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key } if key.starts_with(RegistryKind::Name.prefix())),
            "{err:?}"
        );
        // A released name can be taken again.
        first
            .commit(renaming("platforms", "p-1", Some("cf-eu"), Some("cf-us")))
            .await
            .unwrap();
        let third = StateMap::open(first.store().clone()).await.unwrap();
        third
            .commit(renaming("platforms", "p-3", None, Some("cf-eu")))
            .await
            .unwrap();
    }

    #[test]
    fn times_are_rfc_3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_500), "1970-01-01T00:00:01.5Z");
    }
}
