//! `/v1/visibilities`: which platform sees which plan (`cf enable-service-access` for a
//! landscape). A visibility names a plan by its Service Manager id and a platform, or no
//! platform for all of them. A platform sees only the plans made visible to it: in its
//! catalog, and when it provisions, updates to or binds a plan. The broker's own configured
//! credentials see every plan, as before the Service Manager existed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use skybroker_storage::{now_millis, Change, RegistryKind, RegistryRecord, Visibility};

use super::schema::{self, Empty, ErrorBody, VisibilityCreation, VisibilityPage};
use super::{answer, body, id_of, labels, list_all, timestamp};
use crate::core::Core;
use crate::error::ApiError;

fn shown(visibility: &Visibility) -> schema::Visibility {
    schema::Visibility {
        id: visibility.id.clone(),
        service_plan_id: visibility.service_plan_id.clone(),
        platform_id: visibility.platform_id.clone(),
        labels: visibility.labels.clone(),
        created_at: timestamp(visibility.created_at),
        updated_at: timestamp(visibility.updated_at),
    }
}

/// `POST /v1/visibilities`: `{service_plan_id, platform_id?}`.
#[utoipa::path(post, path = "/v1/visibilities", tag = "visibilities",
    request_body = VisibilityCreation,
    responses(
        (status = 201, description = "Created", body = schema::Visibility),
        (status = 400, description = "Malformed, or no such plan or platform", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 409, description = "The plan is visible to the platform already", body = ErrorBody),
    ))]
pub async fn create(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&headers, &bytes)?;
    let plan_id = body.required_str("service_plan_id")?;
    let platform_id = body.optional_str("platform_id")?;
    if core.catalog.current().plan_by_sm_id(&plan_id).is_none() {
        return Err(ApiError::BadRequest(format!(
            "no service plan {plan_id:?} (see /v1/service_plans)"
        )));
    }
    if let Some(platform) = &platform_id {
        if core.state.platform(platform).is_none() {
            return Err(ApiError::BadRequest(format!("no platform {platform:?}")));
        }
    }
    if core
        .state
        .visibilities()
        .iter()
        .any(|v| v.service_plan_id == plan_id && v.platform_id == platform_id)
    {
        return Err(ApiError::Conflict(
            "this plan is visible to this platform already".to_owned(),
        ));
    }
    let now = now_millis();
    let visibility = Visibility {
        id: uuid::Uuid::new_v4().to_string(),
        service_plan_id: plan_id,
        platform_id,
        labels: labels(&body)?,
        created_at: now,
        updated_at: now,
    };
    core.state
        .commit(vec![Change::PutRegistry(RegistryRecord::Visibility(
            visibility.clone(),
        ))])
        .await?;
    Ok(answer(StatusCode::CREATED, &shown(&visibility)))
}

/// `GET /v1/visibilities`.
#[utoipa::path(get, path = "/v1/visibilities", tag = "visibilities",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of visibilities", body = VisibilityPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let items: Vec<schema::Visibility> = core.state.visibilities().iter().map(shown).collect();
    list_all("/visibilities", query.as_deref(), &items)
}

fn find(core: &Core, id: &str) -> Result<Visibility, ApiError> {
    core.state
        .visibility(id_of(id)?)
        .ok_or_else(|| ApiError::NotFound(format!("no visibility {id:?}")))
}

/// `GET /v1/visibilities/{id}`.
#[utoipa::path(get, path = "/v1/visibilities/{id}", tag = "visibilities",
    params(("id" = String, Path, description = "The visibility's id")),
    responses(
        (status = 200, description = "The visibility", body = schema::Visibility),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such visibility", body = ErrorBody),
    ))]
pub async fn get_one(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(answer(StatusCode::OK, &shown(&find(&core, &id)?)))
}

/// `DELETE /v1/visibilities/{id}`.
#[utoipa::path(delete, path = "/v1/visibilities/{id}", tag = "visibilities",
    params(("id" = String, Path, description = "The visibility's id")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such visibility", body = ErrorBody),
    ))]
pub async fn delete(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let visibility = find(&core, &id)?;
    core.state
        .commit(vec![Change::DeleteRegistry(
            RegistryKind::Visibility,
            visibility.id,
        )])
        .await?;
    Ok(answer(StatusCode::OK, &Empty {}))
}
