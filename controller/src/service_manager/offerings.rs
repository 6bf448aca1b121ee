//! `/v1/service_offerings`, `/v1/service_plans`: what the landscape offers, read only.
//!
//! Offerings and plans carry Service Manager ids of their own (stable: derived from the
//! broker and the catalog id) beside the broker's `catalog_id`, as Peripli's do; visibilities
//! name plans by those ids.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use skybroker_config::{Plan, ServiceOffering};

use super::schema::{self, ErrorBody, OfferingPage, PlanPage};
use super::{answer, id_of, list_all};
use crate::catalog::{sm_id, Catalog};
use crate::core::Core;
use crate::error::ApiError;

fn offering_shown(offering: &ServiceOffering, owner: &str) -> schema::ServiceOffering {
    schema::ServiceOffering {
        id: sm_id(owner, &offering.id),
        name: offering.name.clone(),
        description: offering.description.clone(),
        catalog_id: offering.id.clone(),
        catalog_name: offering.name.clone(),
        broker_id: owner.to_owned(),
        bindable: offering.bindable,
        instances_retrievable: offering.instances_retrievable,
        bindings_retrievable: offering.bindings_retrievable,
        plan_updateable: offering.plan_updateable,
        tags: offering.tags.clone(),
        metadata: offering.metadata.clone(),
    }
}

fn plan_shown(offering: &ServiceOffering, plan: &Plan, owner: &str) -> schema::ServicePlan {
    schema::ServicePlan {
        id: sm_id(owner, &plan.id),
        name: plan.name.clone(),
        description: plan.description.clone(),
        catalog_id: plan.id.clone(),
        catalog_name: plan.name.clone(),
        service_offering_id: sm_id(owner, &offering.id),
        broker_id: owner.to_owned(),
        free: plan.free,
        bindable: plan.is_bindable(offering),
        maintenance_info: plan
            .maintenance_info
            .as_ref()
            .map(|info| serde_json::to_value(info).expect("maintenance info serializes")),
    }
}

fn offerings(catalog: &Catalog) -> Vec<schema::ServiceOffering> {
    catalog
        .services()
        .iter()
        .map(|offering| offering_shown(offering, catalog.owner(&offering.id).unwrap_or("")))
        .collect()
}

/// `GET /v1/service_offerings`.
#[utoipa::path(get, path = "/v1/service_offerings", tag = "service_offerings",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of offerings of every broker", body = OfferingPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list_offerings(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let items = offerings(&core.catalog.current());
    list_all("/service_offerings", query.as_deref(), &items)
}

/// `GET /v1/service_offerings/{id}`.
#[utoipa::path(get, path = "/v1/service_offerings/{id}", tag = "service_offerings",
    params(("id" = String, Path, description = "The offering's Service Manager id")),
    responses(
        (status = 200, description = "The offering", body = schema::ServiceOffering),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such offering", body = ErrorBody),
    ))]
pub async fn get_offering(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    offerings(&core.catalog.current())
        .into_iter()
        .find(|offering| offering.id == id)
        .map(|offering| answer(StatusCode::OK, &offering))
        .ok_or_else(|| ApiError::NotFound(format!("no service offering {id:?}")))
}

/// `GET /v1/service_plans`.
#[utoipa::path(get, path = "/v1/service_plans", tag = "service_plans",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of plans of every broker", body = PlanPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list_plans(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let catalog = core.catalog.current();
    let items: Vec<schema::ServicePlan> = catalog
        .plans()
        .map(|(offering, plan, owner)| plan_shown(offering, plan, owner))
        .collect();
    list_all("/service_plans", query.as_deref(), &items)
}

/// `GET /v1/service_plans/{id}`.
#[utoipa::path(get, path = "/v1/service_plans/{id}", tag = "service_plans",
    params(("id" = String, Path, description = "The plan's Service Manager id")),
    responses(
        (status = 200, description = "The plan", body = schema::ServicePlan),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    ))]
pub async fn get_plan(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let catalog = core.catalog.current();
    catalog
        .plan_by_sm_id(id)
        .map(|(offering, plan, owner)| answer(StatusCode::OK, &plan_shown(offering, plan, owner)))
        .ok_or_else(|| ApiError::NotFound(format!("no service plan {id:?}")))
}
