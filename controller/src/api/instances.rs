//! Service instances over HTTP: provision (E2), fetch (E3), update (E4), deprovision (E5).
//!
//! Each handler parses the request into admission's typed request, lets
//! [`crate::admission::instances`] decide, and renders the answer for the client's version.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use skybroker_storage::ServiceInstance;

use crate::admission::instances::{self, ProvisionRequest, UpdateRequest};
use crate::admission::DeleteRequest;
use crate::api::request::{caller, json, path, render, JsonBody, Query};
use crate::api::{ApiVersion, Who};
use crate::core::Core;
use crate::error::ApiError;

/// The body of a finished provision or update (and of an identical repeat).
fn instance_body(instance: &ServiceInstance, version: ApiVersion) -> Value {
    let mut body = Map::new();
    if let Some(url) = &instance.dashboard_url {
        body.insert("dashboard_url".into(), json!(url));
    }
    if let (Some(metadata), true) = (&instance.metadata, version.at_least(16)) {
        body.insert("metadata".into(), metadata.clone());
    }
    Value::Object(body)
}

/// `PUT /v2/service_instances/:instance_id` (OSB-PROV).
pub async fn put_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    who: Who,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let caller = caller(
        &Query::parse(raw.as_deref()),
        who.originator.0,
        who.principal.platform(),
    )?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let service_id = body.required_str("service_id")?;
    let plan_id = body.required_str("plan_id")?;
    let context = body.optional_object("context")?;
    let organization_guid = body.optional_str("organization_guid")?;
    let space_guid = body.optional_str("space_guid")?;
    // D-09: the deprecated CF fields are required unless a context says where it comes from.
    if context.is_none() {
        if organization_guid.is_none() {
            return Err(ApiError::BadRequest(
                "organization_guid is required".to_owned(),
            ));
        }
        if space_guid.is_none() {
            return Err(ApiError::BadRequest("space_guid is required".to_owned()));
        }
    }
    let request = ProvisionRequest {
        instance_id,
        service_id,
        plan_id,
        parameters: body.optional_object("parameters")?.unwrap_or_default(),
        context,
        organization_guid,
        space_guid,
        maintenance_version: body.maintenance_version()?,
        caller,
    };
    let answer = instances::provision(&core, request).await?;
    Ok(render(answer, StatusCode::CREATED, |instance| {
        instance_body(instance, version)
    }))
}

/// `GET /v2/service_instances/:instance_id` (OSB-GETI).
pub async fn get_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    who: Who,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let query = Query::parse(raw.as_deref());
    // Hints only (OSB-GETI-02): checked for form, never required.
    query.hint("service_id")?;
    query.hint("plan_id")?;
    let instance = instances::fetch(&core, &instance_id, who.principal.platform()).await?;
    let mut body = instance_body(&instance, version);
    body["service_id"] = json!(instance.service_id);
    body["plan_id"] = json!(instance.plan_id);
    body["parameters"] = instance.parameters.clone();
    if let (Some(v), true) = (&instance.maintenance_version, version.at_least(15)) {
        body["maintenance_info"] = json!({ "version": v });
    }
    Ok(json(StatusCode::OK, body))
}

/// `PATCH /v2/service_instances/:instance_id` (OSB-UPD).
pub async fn patch_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Extension(version): Extension<ApiVersion>,
    who: Who,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let caller = caller(
        &Query::parse(raw.as_deref()),
        who.originator.0,
        who.principal.platform(),
    )?;
    let body = JsonBody::read(&headers, bytes, core.config.server.max_body_bytes)?;
    let service_id = body.required_str("service_id")?;
    let plan_id = body.optional_str("plan_id")?;
    let parameters = body.optional_object("parameters")?;
    let context = body.optional_object("context")?;
    // Checked for form only: the broker keeps the previous values itself.
    body.optional_object("previous_values")?;
    let request = UpdateRequest {
        instance_id,
        service_id,
        plan_id,
        parameters,
        context,
        maintenance_version: body.maintenance_version()?,
        caller,
    };
    let answer = instances::update(&core, request).await?;
    Ok(render(answer, StatusCode::OK, |instance| {
        instance_body(instance, version)
    }))
}

/// `DELETE /v2/service_instances/:instance_id` (OSB-DEPROV).
pub async fn delete_instance(
    State(core): State<Arc<Core>>,
    instance_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    who: Who,
) -> Result<Response, ApiError> {
    let instance_id = path(instance_id)?;
    let query = Query::parse(raw.as_deref());
    let request = DeleteRequest {
        instance_id,
        service_id: query.required("service_id")?,
        plan_id: query.required("plan_id")?,
        caller: caller(&query, who.originator.0, who.principal.platform())?,
    };
    let answer = instances::deprovision(&core, request).await?;
    Ok(render(answer, StatusCode::OK, |()| json!({})))
}
