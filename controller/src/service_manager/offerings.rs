//! `/v1/service_offerings`, `/v1/service_plans`, `/v1/service_instances`: what the
//! landscape offers and holds, read only.
//!
//! Offerings and plans carry Service Manager ids of their own (stable: derived from the
//! broker and the catalog id) beside the broker's `catalog_id`, as Peripli's do; visibilities
//! name plans by those ids. Instances are every instance the state map tracks, created
//! through `/v2` on any broker, built-in or external, paged in id order.
//!
//! # Instance sharing
//! An instance belongs to the platform that created it: another platform neither sees nor
//! changes it. `PATCH /v1/service_instances/<id>` with `{"shared": true}` shares it: every
//! platform that sees its plan may then bind to it (and read, poll and delete its own
//! bindings); only the creating platform updates or deprovisions it. `{"shared": false}`
//! stops new bindings; existing ones stay until unbound.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use skybroker_config::{Plan, ServiceOffering};
use skybroker_storage::{Change, Read, ServiceInstance};

use super::schema::{self, ErrorBody, InstancePage, InstanceSharing, OfferingPage, PlanPage};
use super::{answer, id_of, list as list_reply, list_all, timestamp, values, Paging};
use crate::api::request::Query;
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

fn instance_shown(catalog: &Catalog, instance: &ServiceInstance) -> schema::ServiceInstance {
    let owner = catalog.owner(&instance.service_id).unwrap_or("");
    schema::ServiceInstance {
        id: instance.id.to_string(),
        service_plan_id: sm_id(owner, &instance.plan_id),
        service_offering_id: sm_id(owner, &instance.service_id),
        broker_id: owner.to_owned(),
        catalog_service_id: instance.service_id.to_string(),
        catalog_plan_id: instance.plan_id.to_string(),
        state: format!("{:?}", instance.state).to_lowercase(),
        context: instance.context.clone(),
        dashboard_url: instance.dashboard_url.clone(),
        last_operation: instance.last_operation.as_ref().map(|id| id.to_string()),
        platform_id: instance.platform_id.clone(),
        shared: instance.shared,
        created_at: timestamp(instance.created_at),
    }
}

/// `GET /v1/service_instances`: every tracked instance, a page at a time.
#[utoipa::path(get, path = "/v1/service_instances", tag = "service_instances",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of instances of every broker", body = InstancePage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list_instances(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let paging = Paging::of(&Query::parse(query.as_deref()))?;
    let catalog = core.catalog.current();
    if paging.filter.is_empty() {
        let (instances, more) =
            core.state
                .instances_page(paging.after.as_deref(), paging.max_items, |_| true);
        let items: Vec<schema::ServiceInstance> = instances
            .iter()
            .map(|instance| instance_shown(&catalog, instance))
            .collect();
        return Ok(list_reply(
            "/service_instances",
            &paging,
            values(&items),
            more,
        ));
    }
    // Filtered: the instances in id order, each shown and tested, until the page is full.
    let (instances, more) =
        core.state
            .instances_matching(paging.after.as_deref(), paging.max_items, |instance| {
                paging
                    .filter
                    .accepts(&values(&[instance_shown(&catalog, instance)]).remove(0))
            });
    let items: Vec<schema::ServiceInstance> = instances
        .iter()
        .map(|instance| instance_shown(&catalog, instance))
        .collect();
    let items = values(&items);
    Ok(list_reply("/service_instances", &paging, items, more))
}

/// `GET /v1/service_instances/{id}`.
#[utoipa::path(get, path = "/v1/service_instances/{id}", tag = "service_instances",
    params(("id" = String, Path, description = "The instance's id")),
    responses(
        (status = 200, description = "The instance", body = schema::ServiceInstance),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ))]
pub async fn get_instance(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let instance = core
        .state
        .instance(id)
        .ok_or_else(|| ApiError::NotFound(format!("no service instance {id:?}")))?;
    Ok(answer(
        StatusCode::OK,
        &instance_shown(&core.catalog.current(), &instance),
    ))
}

/// `PATCH /v1/service_instances/{id}`: `{"shared": true|false}`.
#[utoipa::path(patch, path = "/v1/service_instances/{id}", tag = "service_instances",
    params(("id" = String, Path, description = "The instance's id")),
    request_body = InstanceSharing,
    responses(
        (status = 200, description = "The instance, shared or not", body = schema::ServiceInstance),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 422, description = "Changed meanwhile: try again", body = ErrorBody),
    ))]
pub async fn share_instance(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?.to_owned();
    let body = super::body(&headers, &bytes)?;
    let shared = match body.get("shared") {
        Some(Value::Bool(shared)) => *shared,
        _ => {
            return Err(ApiError::BadRequest(
                "shared (true or false) is required".to_owned(),
            ))
        }
    };
    // Under the instance's lock and on what was read, like every change to an instance.
    let guard = core.locks.lock(&id).await;
    let basis = core.state.basis(&[Read::Instance(&id)]);
    let mut instance = core
        .state
        .instance(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no service instance {id:?}")))?;
    if instance.shared != shared {
        instance.shared = shared;
        core.state
            .commit_on(&basis, vec![Change::PutInstance(instance.clone())])
            .await?;
    }
    drop(guard);
    log::info!("instance {id} shared: {shared}");
    Ok(answer(
        StatusCode::OK,
        &instance_shown(&core.catalog.current(), &instance),
    ))
}
