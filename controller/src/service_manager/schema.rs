//! The Service Manager API's bodies as types, and the OpenAPI document derived from them and
//! from the handlers' `#[utoipa::path]` annotations (`GET /v1/openapi.json`).
//!
//! The handlers answer with these types, so the document describes what is served; a test
//! validates real answers against the document's schemas. Request bodies are described here
//! too, but parsed field by field (`JsonBody`), which names the field a 400 is about.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Labels: each key holds a set of values.
pub type LabelMap = BTreeMap<String, Vec<String>>;

/// How a label changes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelOp {
    /// Add the values to the key.
    Add,
    /// Take the values away (the whole key without values).
    Remove,
}

/// One label change.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelChange {
    /// Add or remove.
    pub op: LabelOp,
    /// The label.
    pub key: String,
    /// The values.
    pub values: Option<Vec<String>>,
}

/// A PATCH's `labels`: changes, or an object replacing them all.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LabelsPatch {
    /// Changes, in order.
    Changes(Vec<LabelChange>),
    /// Every label, replacing the old ones.
    Replace(LabelMap),
}

/// An error: OSB-style, as on `/v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, where one applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong, for people.
    pub description: String,
}

/// A registered broker (the configured offerings appear as the built-in one, `skybroker`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Broker {
    /// Its id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Base URL; none for the built-in broker.
    pub broker_url: Option<String>,
    /// `basic` or `bearer`: how Skybroker authenticates to it (never the secret).
    pub credentials_kind: Option<String>,
    /// Labels.
    pub labels: LabelMap,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
    /// Always true: a broker is stored only once its catalog was fetched and checked.
    pub ready: bool,
}

/// Basic credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct BasicCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct BearerCredentials {
    /// The token.
    pub token: String,
}

/// TLS towards an external broker (PEM).
#[derive(Debug, Serialize, ToSchema)]
pub struct TlsCredentials {
    /// A client certificate (chain) to present: mutual TLS.
    pub client_certificate: Option<String>,
    /// Its private key.
    pub client_key: Option<String>,
    /// The CA its server certificate chains to, when not one the system trusts.
    pub ca_certificate: Option<String>,
}

/// Credentials for an external broker: exactly one of `basic` and `bearer`, and `tls`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokerCredentialsInput {
    /// HTTP basic authentication.
    pub basic: Option<BasicCredentials>,
    /// A bearer token.
    pub bearer: Option<BearerCredentials>,
    /// Mutual TLS, a private CA.
    pub tls: Option<TlsCredentials>,
}

/// `POST /v1/service_brokers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokerRegistration {
    /// Unique name.
    pub name: String,
    /// Base URL (http or https, no credentials in it).
    pub broker_url: String,
    /// How to authenticate to it.
    pub credentials: BrokerCredentialsInput,
    /// Free text.
    pub description: Option<String>,
    /// Labels.
    pub labels: Option<LabelMap>,
}

/// `PATCH /v1/service_brokers/{id}`: what changes; the catalog is fetched again in any case.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokerUpdate {
    /// New name.
    pub name: Option<String>,
    /// New base URL.
    pub broker_url: Option<String>,
    /// New credentials.
    pub credentials: Option<BrokerCredentialsInput>,
    /// New description.
    pub description: Option<String>,
    /// Label changes.
    pub labels: Option<LabelsPatch>,
}

/// Basic credentials a platform calls `/v2` with.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformCredentials {
    /// The generated user name and password, shown once.
    pub basic: BasicCredentials,
}

/// A platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct Platform {
    /// Its id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `cloudfoundry`, `kubernetes`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: LabelMap,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Only in the answer that made them (registration, regeneration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PlatformCredentials>,
}

/// `POST /v1/platforms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformRegistration {
    /// Unique name.
    pub name: String,
    /// `cloudfoundry`, `kubernetes`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    pub description: Option<String>,
    /// Labels.
    pub labels: Option<LabelMap>,
}

/// `PATCH /v1/platforms/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Label changes.
    pub labels: Option<LabelsPatch>,
}

/// A plan made visible to a platform, or to all.
#[derive(Debug, Serialize, ToSchema)]
pub struct Visibility {
    /// Its id.
    pub id: String,
    /// The plan's Service Manager id.
    pub service_plan_id: String,
    /// The platform; none: every platform.
    pub platform_id: Option<String>,
    /// Labels.
    pub labels: LabelMap,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `POST /v1/visibilities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisibilityCreation {
    /// The plan's Service Manager id.
    pub service_plan_id: String,
    /// The platform; absent: every platform.
    pub platform_id: Option<String>,
    /// Labels.
    pub labels: Option<LabelMap>,
}

/// A service offering of some broker.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceOffering {
    /// Its Service Manager id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The broker's id for it.
    pub catalog_id: String,
    /// The broker's name for it.
    pub catalog_name: String,
    /// The broker it belongs to.
    pub broker_id: String,
    /// Whether its plans bind by default.
    pub bindable: bool,
    /// Whether instances can be fetched.
    pub instances_retrievable: bool,
    /// Whether bindings can be fetched.
    pub bindings_retrievable: bool,
    /// Whether plans can be changed.
    pub plan_updateable: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Opaque metadata.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A service plan of some broker.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServicePlan {
    /// Its Service Manager id (what visibilities name).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The broker's id for it.
    pub catalog_id: String,
    /// The broker's name for it.
    pub catalog_name: String,
    /// Its offering's Service Manager id.
    pub service_offering_id: String,
    /// The broker it belongs to.
    pub broker_id: String,
    /// Free of charge.
    pub free: bool,
    /// Bindable.
    pub bindable: bool,
    /// Its maintenance version, if any.
    #[schema(value_type = Option<Object>)]
    pub maintenance_info: Option<serde_json::Value>,
}

/// A tracked service instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceInstance {
    /// The platform's id for it.
    pub id: String,
    /// Its plan's Service Manager id.
    pub service_plan_id: String,
    /// Its offering's Service Manager id.
    pub service_offering_id: String,
    /// The broker it lives on.
    pub broker_id: String,
    /// The broker's offering id.
    pub catalog_service_id: String,
    /// The broker's plan id.
    pub catalog_plan_id: String,
    /// `provisioning`, `ready`, `updating`, `deprovisioning`, `provisionfailed`.
    pub state: String,
    /// The platform context of its last provision or update.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// Dashboard URL, if the broker gave one.
    pub dashboard_url: Option<String>,
    /// The operation that last changed it.
    pub last_operation: Option<String>,
    /// The platform that created it; none: the broker's own credentials.
    pub platform_id: Option<String>,
    /// Whether other platforms may bind to it.
    pub shared: bool,
    /// Labels.
    pub labels: LabelMap,
    /// RFC 3339.
    pub created_at: String,
}

/// `PATCH /v1/service_instances/{id}`: at least one of the two.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstancePatch {
    /// Share with every platform that sees the plan (they may bind), or stop sharing.
    pub shared: Option<bool>,
    /// Label changes.
    pub labels: Option<LabelsPatch>,
}

/// A tracked service binding (its credentials are the platform's, not shown here).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceBinding {
    /// The platform's id for it.
    pub id: String,
    /// The instance it binds.
    pub service_instance_id: String,
    /// Its plan's Service Manager id.
    pub service_plan_id: String,
    /// The broker it lives on.
    pub broker_id: String,
    /// `binding`, `bound`, `bindfailed`, `unbinding`.
    pub state: String,
    /// The application bound, if the platform said.
    pub app_guid: Option<String>,
    /// `bind_resource` as the platform sent it.
    #[schema(value_type = Object)]
    pub bind_resource: serde_json::Value,
    /// The platform context of the bind.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// The operation that last changed it.
    pub last_operation: Option<String>,
    /// The platform that bound; none: the broker's own credentials.
    pub platform_id: Option<String>,
    /// Labels.
    pub labels: LabelMap,
    /// RFC 3339.
    pub created_at: String,
}

/// `PATCH /v1/service_bindings/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingPatch {
    /// Label changes.
    pub labels: LabelsPatch,
}

/// An operation: a broker's registration or update with `?async=true`, or a provision,
/// update, deprovision, bind or unbind a platform asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    /// Its id.
    pub id: String,
    /// `create`, `update` or `delete`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `in progress`, `succeeded` or `failed`.
    pub state: String,
    /// `service_brokers`, `service_instances` or `service_bindings`.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// Why it failed, or what it did.
    pub description: Option<String>,
    /// The status the request would have answered without `async=true` (broker operations).
    pub status: Option<u16>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An empty object: what a delete answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

macro_rules! page {
    ($name:ident, $item:ty) => {
        /// One page of a list, in id order.
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            /// Items on this page.
            pub num_items: usize,
            /// Where the next page starts (`token`), when there is one.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub token: Option<String>,
            /// The items.
            pub items: Vec<$item>,
        }
    };
}
page!(BrokerPage, Broker);
page!(PlatformPage, Platform);
page!(VisibilityPage, Visibility);
page!(OfferingPage, ServiceOffering);
page!(PlanPage, ServicePlan);
page!(InstancePage, ServiceInstance);
page!(BindingPage, ServiceBinding);

/// Declares the admin token scheme every operation requires.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skybroker Service Manager API",
        description = "External brokers, platforms, visibilities, and what they offer and hold."
    ),
    paths(
        super::brokers::register,
        super::brokers::list,
        super::brokers::get_one,
        super::brokers::update,
        super::brokers::delete,
        super::platforms::register,
        super::platforms::list,
        super::platforms::get_one,
        super::platforms::update,
        super::platforms::delete,
        super::visibilities::create,
        super::visibilities::list,
        super::visibilities::get_one,
        super::visibilities::delete,
        super::offerings::list_offerings,
        super::offerings::get_offering,
        super::offerings::list_plans,
        super::offerings::get_plan,
        super::instances::list_instances,
        super::instances::get_instance,
        super::instances::update_instance,
        super::instances::instance_operation,
        super::instances::list_bindings,
        super::instances::get_binding,
        super::instances::update_binding,
        super::instances::binding_operation,
        super::operations::get_one,
    ),
    components(schemas(ErrorBody, Empty)),
    modifiers(&AdminToken),
    security(("admin_token" = []))
)]
pub struct ServiceManagerApi;

/// The document as served, rendered once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ServiceManagerApi::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}
