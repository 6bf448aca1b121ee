//! Service bindings over HTTP: bind (E7), fetch (E8), unbind (E9).
//!
//! Each handler parses the request into admission's typed request, lets
//! [`crate::admission::bindings`] decide, and renders the answer for the client's version.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};
use skybroker_storage::ServiceBinding;

use crate::admission::bindings::{self, BindRequest};
use crate::admission::DeleteRequest;
use crate::api::request::{caller, json, path, render, JsonBody, Query};
use crate::api::{ApiVersion, Who};
use crate::core::Core;
use crate::error::ApiError;

/// What the platform receives for a binding, trimmed to the client's version (D-14:
/// `endpoints` from 2.15, `metadata` from 2.16).
fn binding_body(binding: &ServiceBinding, version: ApiVersion) -> Value {
    let mut body = match &binding.result {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if !version.at_least(15) {
        body.remove("endpoints");
    }
    if !version.at_least(16) {
        body.remove("metadata");
    }
    Value::Object(body)
}

/// `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-BIND, OSB-ROT).
pub async fn put_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    who: Who,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let caller = caller(
        &Query::parse(raw.as_deref()),
        who.originator.0,
        who.principal.platform(),
    )?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let predecessor_id = body.optional_str("predecessor_binding_id")?;
    // OSB-ROT-02: a rotation request may carry nothing but the predecessor.
    let (service_id, plan_id) = if predecessor_id.is_some() {
        (
            body.optional_str("service_id")?,
            body.optional_str("plan_id")?,
        )
    } else {
        (
            Some(body.required_str("service_id")?),
            Some(body.required_str("plan_id")?),
        )
    };
    let request = BindRequest {
        instance_id,
        binding_id,
        service_id,
        plan_id,
        predecessor_id: predecessor_id.map(Into::into),
        app_guid: body.optional_str("app_guid")?,
        bind_resource: body.optional_object("bind_resource")?,
        context: body.optional_object("context")?,
        parameters: body.optional_object("parameters")?,
        caller,
    };
    let answer = bindings::bind(&core, request).await?;
    Ok(render(answer, StatusCode::CREATED, |binding| {
        binding_body(binding, version)
    }))
}

/// `GET /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-GETB).
pub async fn get_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    who: Who,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let query = Query::parse(raw.as_deref());
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let platform = who.principal.platform();
    let binding = bindings::fetch(&core, &instance_id, &binding_id, platform).await?;
    let mut body = binding_body(&binding, version);
    body["parameters"] = binding.parameters.clone();
    Ok(json(StatusCode::OK, body))
}

/// `DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id` (OSB-UNB).
pub async fn delete_binding(
    State(core): State<Arc<Core>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    who: Who,
) -> Result<Response, ApiError> {
    let (instance_id, binding_id) = path(ids)?;
    let query = Query::parse(raw.as_deref());
    let request = DeleteRequest {
        instance_id,
        service_id: query.required("service_id")?,
        plan_id: query.required("plan_id")?,
        caller: caller(&query, who.originator.0, who.principal.platform())?,
    };
    let answer = bindings::unbind(&core, &binding_id, request).await?;
    Ok(render(answer, StatusCode::OK, |()| json!({})))
}
