//! The OSB API as Skybroker serves it, as an OpenAPI 3.1 document: `skybroker openapi osb`.
//!
//! It describes our endpoint, with our decisions where the spec leaves a choice (412 without
//! `X-Broker-API-Version`, D-01; 403 for a plan a platform does not see; 502 when a provider
//! cannot be reached), and with the catalog's own offering and plan ids as the only values of
//! `service_id` and `plan_id`, so that a generated client (schemathesis, in `./test.sh`)
//! reaches the broker's logic instead of stopping at "unknown plan". It is not the
//! specification's own document: the OSB repository's `openapi.yaml` is the reference, this
//! one is what a test can hold this server to.
//!
//! The operations are declared on the documentation functions below, one per route and
//! method, beside the bodies' types.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use skybroker_config::ServiceOffering;

/// An OSB error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OsbError {
    /// `AsyncRequired`, `ConcurrencyError`, `RequiresApp`, `MaintenanceInfoConflict`.
    pub error: Option<String>,
    /// What went wrong.
    pub description: String,
    /// After a failed update or deprovision.
    pub instance_usable: Option<bool>,
    /// After a failed update.
    pub update_repeatable: Option<bool>,
}

/// `maintenance_info` of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceInfo {
    /// SemVer 2.0.
    pub version: String,
}

/// The catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogAnswer {
    /// The offerings (OSB's service offering object).
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<Value>,
}

/// A provision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvisionRequest {
    /// The offering.
    pub service_id: String,
    /// The plan.
    pub plan_id: String,
    /// The platform's context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// Deprecated by `context`; required without it (D-09).
    pub organization_guid: Option<String>,
    /// Deprecated by `context`; required without it (D-09).
    pub space_guid: Option<String>,
    /// Configuration parameters.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// The plan's maintenance version.
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// An update.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateRequest {
    /// The offering.
    pub service_id: String,
    /// The new plan.
    pub plan_id: Option<String>,
    /// The platform's context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// Parameters to change.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// What the platform knew before.
    #[schema(value_type = Option<Object>)]
    pub previous_values: Option<Value>,
    /// The maintenance version to move to.
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// A bind.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindRequest {
    /// The offering.
    pub service_id: String,
    /// The plan.
    pub plan_id: String,
    /// The platform's context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// What the binding is for.
    #[schema(value_type = Option<Object>)]
    pub bind_resource: Option<Value>,
    /// Deprecated by `bind_resource`.
    pub app_guid: Option<String>,
    /// Configuration parameters.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// The binding this one replaces (rotation, 2.17).
    pub predecessor_binding_id: Option<String>,
}

/// An instance's answer: provision, update, fetch.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceAnswer {
    /// The dashboard.
    pub dashboard_url: Option<String>,
    /// `labels` and `attributes` (2.16).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// A fetch: the offering.
    pub service_id: Option<String>,
    /// A fetch: the plan.
    pub plan_id: Option<String>,
    /// A fetch: the parameters.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// A fetch: the maintenance version.
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// An operation accepted: poll `last_operation` with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The operation (D-16: letters, digits, `-`, `_`).
    pub operation: Option<String>,
    /// The dashboard, when known already.
    pub dashboard_url: Option<String>,
}

/// A binding's answer: bind, fetch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingAnswer {
    /// Credentials.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Value>,
    /// Network endpoints (2.15).
    #[schema(value_type = Option<Vec<Object>>)]
    pub endpoints: Option<Value>,
    /// `syslog_drain` offerings.
    pub syslog_drain_url: Option<String>,
    /// `route_forwarding` offerings.
    pub route_service_url: Option<String>,
    /// `volume_mount` offerings.
    #[schema(value_type = Option<Vec<Object>>)]
    pub volume_mounts: Option<Value>,
    /// `expires_at`, `renew_before` (2.16).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// A fetch: the parameters.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// The state of an operation.
#[derive(Debug, Serialize, ToSchema)]
pub enum OperationState {
    /// Running.
    #[serde(rename = "in progress")]
    InProgress,
    /// Done.
    #[serde(rename = "succeeded")]
    Succeeded,
    /// Done badly.
    #[serde(rename = "failed")]
    Failed,
}

/// `last_operation`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastOperation {
    /// Where it is.
    pub state: OperationState,
    /// For people.
    pub description: Option<String>,
    /// After a failed update or deprovision.
    pub instance_usable: Option<bool>,
    /// After a failed update.
    pub update_repeatable: Option<bool>,
}

/// An empty object.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

/// `GET /v2/catalog`.
#[utoipa::path(get, path = "/v2/catalog", tag = "catalog",
    params(Version),
    responses(
        (status = 200, description = "The offerings the caller sees", body = CatalogAnswer),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version (D-01)", body = OsbError),
    ))]
#[allow(dead_code)]
fn catalog() {}

/// `PUT /v2/service_instances/{instance_id}`.
#[utoipa::path(put, path = "/v2/service_instances/{instance_id}", tag = "instances",
    params(Version, Identity, InstanceId, ("accepts_incomplete" = Option<bool>, Query)),
    request_body = ProvisionRequest,
    responses(
        (status = 200, description = "Exists already, identical", body = InstanceAnswer),
        (status = 201, description = "Provisioned", body = InstanceAnswer),
        (status = 202, description = "Provisioning", body = Accepted),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 403, description = "The plan is not visible to this platform", body = OsbError),
        (status = 409, description = "Exists with other attributes", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 413, description = "The body is too large", body = OsbError),
        (status = 422, description = "AsyncRequired, ConcurrencyError, MaintenanceInfoConflict", body = OsbError),
    ))]
#[allow(dead_code)]
fn provision() {}

/// `PATCH /v2/service_instances/{instance_id}`.
#[utoipa::path(patch, path = "/v2/service_instances/{instance_id}", tag = "instances",
    params(Version, Identity, InstanceId, ("accepts_incomplete" = Option<bool>, Query)),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "Updated", body = InstanceAnswer),
        (status = 202, description = "Updating", body = Accepted),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 403, description = "The plan is not visible to this platform", body = OsbError),
        (status = 404, description = "No such instance", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 413, description = "The body is too large", body = OsbError),
        (status = 422, description = "AsyncRequired, ConcurrencyError, MaintenanceInfoConflict, a plan that cannot change", body = OsbError),
    ))]
#[allow(dead_code)]
fn update() {}

/// `GET /v2/service_instances/{instance_id}`.
#[utoipa::path(get, path = "/v2/service_instances/{instance_id}", tag = "instances",
    params(Version, InstanceId, ("service_id" = Option<String>, Query), ("plan_id" = Option<String>, Query)),
    responses(
        (status = 200, description = "The instance", body = InstanceAnswer),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 404, description = "No such instance, or not retrievable (D-06)", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 422, description = "Being updated", body = OsbError),
    ))]
#[allow(dead_code)]
fn fetch_instance() {}

/// `DELETE /v2/service_instances/{instance_id}`.
#[utoipa::path(delete, path = "/v2/service_instances/{instance_id}", tag = "instances",
    params(Version, Identity, InstanceId, ("service_id" = String, Query), ("plan_id" = String, Query),
        ("accepts_incomplete" = Option<bool>, Query)),
    responses(
        (status = 200, description = "Deprovisioned", body = Empty),
        (status = 202, description = "Deprovisioning", body = Accepted),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 410, description = "No such instance", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 422, description = "AsyncRequired, ConcurrencyError", body = OsbError),
    ))]
#[allow(dead_code)]
fn deprovision() {}

/// `GET /v2/service_instances/{instance_id}/last_operation`.
#[utoipa::path(get, path = "/v2/service_instances/{instance_id}/last_operation", tag = "instances",
    params(Version, InstanceId, ("operation" = Option<String>, Query), ("service_id" = Option<String>, Query),
        ("plan_id" = Option<String>, Query)),
    responses(
        (status = 200, description = "The operation's state", body = LastOperation),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 404, description = "No such instance", body = OsbError),
        (status = 410, description = "Deleted (D-08)", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
    ))]
#[allow(dead_code)]
fn instance_last_operation() {}

/// `PUT /v2/service_instances/{instance_id}/service_bindings/{binding_id}`.
#[utoipa::path(put, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "bindings",
    params(Version, Identity, InstanceId, BindingId, ("accepts_incomplete" = Option<bool>, Query)),
    request_body = BindRequest,
    responses(
        (status = 200, description = "Exists already, identical", body = BindingAnswer),
        (status = 201, description = "Bound", body = BindingAnswer),
        (status = 202, description = "Binding", body = Accepted),
        (status = 400, description = "Malformed, or the plan is not bindable", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 403, description = "The plan is not visible to this platform", body = OsbError),
        (status = 404, description = "No such instance (D-04)", body = OsbError),
        (status = 409, description = "Exists with other attributes", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 413, description = "The body is too large", body = OsbError),
        (status = 422, description = "AsyncRequired, ConcurrencyError, RequiresApp", body = OsbError),
    ))]
#[allow(dead_code)]
fn bind() {}

/// `GET /v2/service_instances/{instance_id}/service_bindings/{binding_id}`.
#[utoipa::path(get, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "bindings",
    params(Version, InstanceId, BindingId, ("service_id" = Option<String>, Query), ("plan_id" = Option<String>, Query)),
    responses(
        (status = 200, description = "The binding", body = BindingAnswer),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 404, description = "No such binding, or not retrievable (D-06)", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 422, description = "Being changed", body = OsbError),
    ))]
#[allow(dead_code)]
fn fetch_binding() {}

/// `DELETE /v2/service_instances/{instance_id}/service_bindings/{binding_id}`.
#[utoipa::path(delete, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "bindings",
    params(Version, Identity, InstanceId, BindingId, ("service_id" = String, Query), ("plan_id" = String, Query),
        ("accepts_incomplete" = Option<bool>, Query)),
    responses(
        (status = 200, description = "Unbound", body = Empty),
        (status = 202, description = "Unbinding", body = Accepted),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 410, description = "No such binding", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
        (status = 422, description = "AsyncRequired, ConcurrencyError, the instance is being deleted", body = OsbError),
    ))]
#[allow(dead_code)]
fn unbind() {}

/// `GET /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation`.
#[utoipa::path(get, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation", tag = "bindings",
    params(Version, InstanceId, BindingId, ("operation" = Option<String>, Query),
        ("service_id" = Option<String>, Query), ("plan_id" = Option<String>, Query)),
    responses(
        (status = 200, description = "The operation's state", body = LastOperation),
        (status = 400, description = "Malformed", body = OsbError),
        (status = 401, description = "Bad credentials", body = OsbError),
        (status = 404, description = "No such binding (D-10)", body = OsbError),
        (status = 410, description = "Deleted (D-08)", body = OsbError),
        (status = 412, description = "No or an unsupported X-Broker-API-Version", body = OsbError),
    ))]
#[allow(dead_code)]
fn binding_last_operation() {}

/// `X-Broker-API-Version`, which every request carries.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Version {
    /// `2.13` to `2.17`.
    #[param(rename = "X-Broker-API-Version", example = "2.17")]
    version: String,
}

/// The identity headers of a changing request.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Identity {
    /// `platform base64(json)` (D-02).
    #[param(rename = "X-Broker-API-Originating-Identity")]
    originating_identity: Option<String>,
    /// Echoed on the answer (D-18).
    #[param(rename = "X-Broker-API-Request-Identity")]
    request_identity: Option<String>,
}

/// The instance id of the path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct InstanceId {
    /// Chosen by the platform: at most 255 characters, no control characters.
    instance_id: String,
}

/// The binding id of the path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct BindingId {
    /// Chosen by the platform: at most 255 characters, no control characters.
    binding_id: String,
}

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "broker_credentials",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Skybroker OSB API", description = "Open Service Broker API v2.17, as Skybroker serves it."),
    paths(catalog, provision, update, fetch_instance, deprovision, instance_last_operation,
        bind, fetch_binding, unbind, binding_last_operation),
    components(schemas(Empty, OsbError)),
    modifiers(&BasicAuth),
    security(("broker_credentials" = []))
)]
struct OsbApi;

/// The document for a catalog of `services`: `service_id` and `plan_id`, in bodies and
/// queries, limited to the catalog's ids.
pub fn document(services: &[ServiceOffering]) -> Value {
    let mut document =
        serde_json::to_value(OsbApi::openapi()).expect("the OpenAPI document serializes");
    let service_ids: Vec<Value> = services.iter().map(|o| json!(o.id)).collect();
    let plan_ids: Vec<Value> = services
        .iter()
        .flat_map(|o| o.plans.iter())
        .map(|p| json!(p.id))
        .collect();
    let one_of = |ids: &[Value], nullable: bool| {
        let mut ids = ids.to_vec();
        if nullable {
            ids.push(Value::Null);
            json!({"type": ["string", "null"], "enum": ids})
        } else {
            json!({"type": "string", "enum": ids})
        }
    };
    for body in ["ProvisionRequest", "UpdateRequest", "BindRequest"] {
        let properties = &mut document["components"]["schemas"][body]["properties"];
        if properties.is_object() {
            properties["service_id"] = one_of(&service_ids, false);
            properties["plan_id"] = one_of(&plan_ids, body == "UpdateRequest");
        }
    }
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|p| p.values_mut())
        {
            for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
                let ids = match parameter["name"].as_str() {
                    Some("service_id") => &service_ids,
                    Some("plan_id") => &plan_ids,
                    _ => continue,
                };
                if parameter["in"] == "query" {
                    parameter["schema"] = one_of(ids, false);
                }
            }
        }
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_the_catalog_ids() {
        let config = skybroker_config::Config::builtin();
        let document = document(&config.services);
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        for route in crate::api::ROUTES {
            assert!(document["paths"][route].is_object(), "{route}");
        }
        let ids =
            &document["components"]["schemas"]["ProvisionRequest"]["properties"]["plan_id"]["enum"];
        assert_eq!(
            ids.as_array().unwrap().len(),
            config.services[0].plans.len()
        );
    }
}
