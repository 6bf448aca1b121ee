//! The catalog as the controller uses it: which offering and plan a request names, which plugin
//! serves them, which platform may see them, and the checks a request's parameters must pass
//! before anything is decided.
//!
//! # Versions, swapped rather than locked
//! The configured offerings are fixed at start, but external brokers and visibilities
//! registered through the Service Manager API (`/v1`) change while the process runs, on any
//! replica. A [`Catalog`] is one immutable version: offerings, plugins, compiled schemas and
//! visibilities. [`Catalogs`] hands out the current one (an atomic load and a generation
//! compare per call) and builds the next when the state map's registry generation has moved,
//! whichever replica changed the registry. A [`PlanRef`] holds its version, so a request
//! decides on one version from start to end even if the registry changes meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde_json::Value;
use skybroker_brokers::osb::{RemoteAuth, RemoteBroker};
use skybroker_brokers::{Broker, BrokerRegistry, OperationKind as PluginKind};
use skybroker_config::{Config, MaintenanceInfo, Plan, Problem, SchemaKind, ServiceOffering};
use skybroker_storage::{BrokerCredentials, OperationKind, ServiceBroker, StateMap};

use crate::error::ApiError;
use crate::schemas::SchemaCache;

/// The id of the broker the configured offerings belong to, in the Service Manager API.
pub const BUILTIN_BROKER_ID: &str = "skybroker";

/// The Service Manager id of an offering or plan: stable (derived from its broker and its
/// catalog id, so a re-fetched catalog keeps it) and distinct from the catalog id.
pub fn sm_id(broker_id: &str, catalog_id: &str) -> String {
    let name = format!("skybroker:{broker_id}:{catalog_id}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// Which platforms see a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Visible {
    /// Every platform.
    All,
    /// These platforms.
    To(HashSet<String>),
}

/// One version of the catalog: offerings, their plugins, compiled parameter schemas, and
/// which platform sees which plan.
#[derive(Debug)]
pub struct Catalog {
    /// The offerings: the configured ones first, then each registered broker's.
    services: Vec<ServiceOffering>,
    /// Offering → plugin.
    brokers: BrokerRegistry,
    /// Offering id → the id of the broker it belongs to.
    owners: HashMap<String, String>,
    /// Compiled parameter schemas.
    schemas: SchemaCache,
    /// Plan id → the platforms that see it (none: no platform, only the broker's own
    /// credentials).
    visible: HashMap<String, Visible>,
    /// The registry generation it was built at.
    generation: u64,
}

/// An offering, one of its plans, and the plugin serving them, in one catalog version.
#[derive(Debug, Clone)]
pub struct PlanRef {
    catalog: Arc<Catalog>,
    offering: usize,
    plan: usize,
    broker: Arc<dyn Broker>,
}

impl PlanRef {
    /// The offering.
    pub fn offering(&self) -> &ServiceOffering {
        &self.catalog.services[self.offering]
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.offering().plans[self.plan]
    }

    /// The plugin.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Whether `platform` sees this plan (see [`Catalog::visible_to`]).
    pub fn visible_to(&self, platform: Option<&str>) -> bool {
        self.catalog.visible_to(&self.plan().id, platform)
    }

    /// Whether the plugin runs `kind` on this plan synchronously (the request waits for it),
    /// for work the controller starts on its own (a cascade's unbinds).
    pub fn is_sync(&self, kind: OperationKind) -> bool {
        !self.broker.async_when_accepted()
            && !self
                .broker
                .is_async(&self.plan().settings, plugin_kind(kind))
    }

    /// Whether `kind` runs synchronously for a platform that does or does not accept an
    /// asynchronous answer: the plan decides, unless its plugin takes the platform's word.
    pub fn is_sync_for(&self, kind: OperationKind, accepts_incomplete: bool) -> bool {
        if self.broker.async_when_accepted() {
            return !accepts_incomplete;
        }
        self.is_sync(kind)
    }
}

/// An offering in one catalog version; dereferences to it.
#[derive(Debug, Clone)]
pub struct OfferingRef {
    catalog: Arc<Catalog>,
    index: usize,
}

impl std::ops::Deref for OfferingRef {
    type Target = ServiceOffering;

    fn deref(&self) -> &ServiceOffering {
        &self.catalog.services[self.index]
    }
}

/// The plugin-facing kind of a stored operation kind.
pub fn plugin_kind(kind: OperationKind) -> PluginKind {
    match kind {
        OperationKind::Provision => PluginKind::Provision,
        OperationKind::Update => PluginKind::Update,
        OperationKind::Deprovision => PluginKind::Deprovision,
        OperationKind::Bind => PluginKind::Bind,
        OperationKind::Unbind => PluginKind::Unbind,
    }
}

/// The offerings of a registered broker's stored catalog, each served by the plugin named
/// after the broker.
///
/// # Errors
/// An offering that is not a valid OSB offering, named.
pub fn offerings_of(broker: &ServiceBroker) -> Result<Vec<ServiceOffering>, String> {
    broker
        .services
        .iter()
        .map(|offering| ServiceOffering::from_broker_catalog(offering, &broker.id))
        .collect()
}

impl Catalog {
    /// The offerings.
    pub fn services(&self) -> &[ServiceOffering] {
        &self.services
    }

    /// The registry generation this version was built at.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id of the broker an offering belongs to ([`BUILTIN_BROKER_ID`] for configured ones).
    pub fn owner(&self, service_id: &str) -> Option<&str> {
        self.owners.get(service_id).map(String::as_str)
    }

    /// Every plan with its offering and the id of the broker they belong to.
    pub fn plans(&self) -> impl Iterator<Item = (&ServiceOffering, &Plan, &str)> {
        self.services.iter().flat_map(move |offering| {
            let owner = self.owner(&offering.id).unwrap_or(BUILTIN_BROKER_ID);
            offering
                .plans
                .iter()
                .map(move |plan| (offering, plan, owner))
        })
    }

    /// The plan with a Service Manager id, its offering and broker.
    pub fn plan_by_sm_id(&self, id: &str) -> Option<(&ServiceOffering, &Plan, &str)> {
        self.plans()
            .find(|(_, plan, owner)| sm_id(owner, &plan.id) == id)
    }

    /// Whether `platform` sees the plan; `None` (the broker's own credentials) sees every plan.
    pub fn visible_to(&self, plan_id: &str, platform: Option<&str>) -> bool {
        let Some(platform) = platform else {
            return true;
        };
        match self.visible.get(plan_id) {
            Some(Visible::All) => true,
            Some(Visible::To(platforms)) => platforms.contains(platform),
            None => false,
        }
    }

    /// What the catalog rules say of these offerings joining the others, without those of
    /// `replacing` (a broker whose catalog is fetched again): ids and names must stay unique
    /// across every broker, since platforms see them side by side.
    pub fn problems_with(
        &self,
        replacing: Option<&str>,
        offerings: &[ServiceOffering],
    ) -> Vec<Problem> {
        let mut all: Vec<ServiceOffering> = self
            .services
            .iter()
            .filter(|o| replacing.is_none_or(|broker| self.owner(&o.id) != Some(broker)))
            .cloned()
            .collect();
        all.extend(offerings.iter().cloned());
        let mut problems = errors_of(&all);
        if let Err(message) = SchemaCache::compile(offerings) {
            problems.push(Problem {
                severity: skybroker_config::Severity::Error,
                location: "services".to_owned(),
                message,
            });
        }
        problems
    }
}

/// The catalog rules' errors (not warnings) of offerings that are served side by side.
fn errors_of(services: &[ServiceOffering]) -> Vec<Problem> {
    let mut problems = skybroker_config::validate_services(services);
    problems.retain(|p| p.severity == skybroker_config::Severity::Error);
    problems
}

/// The configured part of every catalog version.
#[derive(Debug)]
struct Builtin {
    services: Vec<ServiceOffering>,
    brokers: BrokerRegistry,
}

/// The current catalog version, rebuilt when the registry changes.
pub struct Catalogs {
    builtin: Builtin,
    state: Arc<StateMap>,
    /// The HTTP clients of external brokers' plugins.
    clients: Clients,
    current: ArcSwap<Catalog>,
    /// One rebuild at a time.
    rebuilding: Mutex<()>,
}

impl std::fmt::Debug for Catalogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogs")
            .field("generation", &self.current.load().generation)
            .finish_non_exhaustive()
    }
}

impl Catalogs {
    /// The catalogs of a validated configuration over `state` (whose registry adds the
    /// external brokers and the visibilities).
    ///
    /// # Errors
    /// Every problem of a plugin's settings, or a schema that does not compile (the
    /// configuration check reports the same), or an HTTP client that cannot be built.
    pub fn new(config: &Config, state: Arc<StateMap>) -> Result<Self, String> {
        let brokers = BrokerRegistry::from_config(&config.providers, &config.services)
            .map_err(|problems| format!("{problems:?}"))?;
        let timeout = std::time::Duration::from_secs(config.engine.sync_timeout_secs.max(1));
        let clients = Clients {
            shared: skybroker_brokers::osb::http_client(timeout).map_err(|err| err.to_string())?,
            timeout,
        };
        let builtin = Builtin {
            services: config.services.clone(),
            brokers,
        };
        let first = build(&builtin, &state, &clients)?;
        Ok(Catalogs {
            builtin,
            state,
            clients,
            current: ArcSwap::from_pointee(first),
            rebuilding: Mutex::new(()),
        })
    }

    /// The current version.
    pub fn current(&self) -> Arc<Catalog> {
        let current = self.current.load_full();
        if current.generation == self.state.registry_generation() {
            return current;
        }
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load_full();
        if current.generation == self.state.registry_generation() {
            return current;
        }
        match build(&self.builtin, &self.state, &self.clients) {
            Ok(next) => {
                let next = Arc::new(next);
                self.current.store(Arc::clone(&next));
                next
            }
            Err(err) => {
                log::error!("the catalog cannot be rebuilt: {err}; keeping the last one");
                current
            }
        }
    }

    /// The plugin of a registered broker.
    ///
    /// # Errors
    /// Its TLS material cannot be used.
    pub fn remote_broker(&self, broker: &ServiceBroker) -> Result<RemoteBroker, String> {
        self.clients.remote_broker(broker)
    }

    /// The offering with `service_id`.
    pub fn offering(&self, service_id: &str) -> Option<OfferingRef> {
        let catalog = self.current();
        let index = catalog.services.iter().position(|o| o.id == service_id)?;
        Some(OfferingRef { catalog, index })
    }

    /// The offering, plan and plugin for ids, if the catalog has them together.
    pub fn plan(&self, service_id: &str, plan_id: &str) -> Option<PlanRef> {
        let catalog = self.current();
        let offering = catalog.services.iter().position(|o| o.id == service_id)?;
        let plan = catalog.services[offering]
            .plans
            .iter()
            .position(|p| p.id == plan_id)?;
        let broker = Arc::clone(catalog.brokers.get(service_id)?);
        Some(PlanRef {
            catalog,
            offering,
            plan,
            broker,
        })
    }

    /// The offering of `service_id`, or the 400 that says it is unknown (OSB-ERR-06).
    pub fn requested_offering(&self, service_id: &str) -> Result<OfferingRef, ApiError> {
        self.offering(service_id)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown service_id {service_id:?}")))
    }

    /// The offering and plan named by a request, or the 400 that says which is unknown
    /// (OSB-ERR-06).
    pub fn requested_plan(&self, service_id: &str, plan_id: &str) -> Result<PlanRef, ApiError> {
        self.requested_offering(service_id)?;
        self.plan(service_id, plan_id).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "plan_id {plan_id:?} is not a plan of service {service_id:?}"
            ))
        })
    }

    /// Checks parameters against the plan's schema for `schema` (OSB-PROV-04, OSB-UPD-05,
    /// OSB-BIND-06) and, when `plugin` names an operation, against the plugin's own rules.
    pub fn check_parameters(
        &self,
        plan: &PlanRef,
        schema: Option<SchemaKind>,
        plugin: Option<OperationKind>,
        parameters: &Value,
    ) -> Result<(), ApiError> {
        if let Some(schema) = schema {
            plan.catalog
                .schemas
                .check(plan.plan(), schema, parameters)?;
        }
        if let Some(kind) = plugin {
            plan.broker
                .check_parameters(&plan.plan().settings, plugin_kind(kind), parameters)
                .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        }
        Ok(())
    }
}

/// The HTTP clients external brokers are called with: one shared (one connection pool), and
/// one of its own for a broker with TLS material (a client certificate, a CA).
#[derive(Debug)]
struct Clients {
    shared: reqwest::Client,
    timeout: std::time::Duration,
}

impl Clients {
    /// The plugin of a registered broker.
    fn remote_broker(&self, broker: &ServiceBroker) -> Result<RemoteBroker, String> {
        let http = match &broker.tls {
            None => self.shared.clone(),
            Some(tls) => {
                let identity = match (&tls.client_certificate, &tls.client_key) {
                    (Some(cert), Some(key)) => Some((cert.as_str(), key.as_str())),
                    (None, None) => None,
                    _ => return Err("a client certificate goes with its key".to_owned()),
                };
                skybroker_brokers::osb::http_client_for(
                    self.timeout,
                    tls.ca_certificate.as_deref(),
                    identity,
                )
                .map_err(|err| err.to_string())?
            }
        };
        Ok(remote_broker(broker, http))
    }
}

/// The plugin of a registered broker, calling it with `http`.
fn remote_broker(broker: &ServiceBroker, http: reqwest::Client) -> RemoteBroker {
    let auth = match &broker.credentials {
        BrokerCredentials::Basic { username, password } => RemoteAuth::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        BrokerCredentials::Bearer { token } => RemoteAuth::Bearer(token.clone()),
    };
    RemoteBroker::new(&broker.name, &broker.broker_url, auth, http)
}

/// Builds the catalog version of the registry as `state` holds it now. A registered broker
/// whose stored catalog no longer fits (another replica registered a clashing one at the same
/// moment) is left out with an error in the log rather than failing every request.
fn build(builtin: &Builtin, state: &StateMap, clients: &Clients) -> Result<Catalog, String> {
    let generation = state.registry_generation();
    let mut services = builtin.services.clone();
    let mut brokers = builtin.brokers.clone();
    let mut owners: HashMap<String, String> = services
        .iter()
        .map(|o| (o.id.clone(), BUILTIN_BROKER_ID.to_owned()))
        .collect();
    let mut sm_plans: HashMap<String, String> = services
        .iter()
        .flat_map(|o| o.plans.iter())
        .map(|p| (sm_id(BUILTIN_BROKER_ID, &p.id), p.id.clone()))
        .collect();
    for broker in state.service_brokers() {
        // Its offerings, joined to the others, and its plugin; or why it is left out.
        let admitted = offerings_of(&broker).and_then(|offerings| {
            let mut joined = services.clone();
            joined.extend(offerings.iter().cloned());
            let clashes: Vec<String> = errors_of(&joined).iter().map(|p| p.to_string()).collect();
            if !clashes.is_empty() {
                return Err(clashes.join("; "));
            }
            let plugin: Arc<dyn Broker> = Arc::new(clients.remote_broker(&broker)?);
            Ok((offerings, joined, plugin))
        });
        let (offerings, joined, plugin) = match admitted {
            Ok(admitted) => admitted,
            Err(err) => {
                log::error!(
                    "broker {} ({}) left out of the catalog: {err}",
                    broker.name,
                    broker.id
                );
                continue;
            }
        };
        for offering in &offerings {
            brokers.register(offering.id.clone(), Arc::clone(&plugin));
            owners.insert(offering.id.clone(), broker.id.clone());
            for plan in &offering.plans {
                sm_plans.insert(sm_id(&broker.id, &plan.id), plan.id.clone());
            }
        }
        services = joined;
    }
    let schemas = SchemaCache::compile(&services)?;
    let mut visible: HashMap<String, Visible> = HashMap::new();
    for visibility in state.visibilities() {
        let Some(plan_id) = sm_plans.get(&visibility.service_plan_id) else {
            continue; // a plan no longer offered
        };
        let entry = visible
            .entry(plan_id.clone())
            .or_insert_with(|| Visible::To(HashSet::new()));
        match (&visibility.platform_id, &mut *entry) {
            (None, _) => *entry = Visible::All,
            (Some(platform), Visible::To(platforms)) => {
                platforms.insert(platform.clone());
            }
            (Some(_), Visible::All) => {}
        }
    }
    Ok(Catalog {
        services,
        brokers,
        owners,
        schemas,
        visible,
        generation,
    })
}

/// OSB-PROV-12, OSB-MI-03, D-05: a requested maintenance version must equal the plan's.
pub fn check_maintenance(plan: &Plan, requested: Option<&str>) -> Result<(), ApiError> {
    match (requested, &plan.maintenance_info) {
        (None, _) => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) if v == version => Ok(()),
        (Some(v), Some(MaintenanceInfo { version, .. })) => Err(ApiError::MaintenanceInfoConflict(
            format!("maintenance_info.version {v} does not match the plan's version {version}"),
        )),
        (Some(v), None) => Err(ApiError::MaintenanceInfoConflict(format!(
            "maintenance_info.version {v} was sent, but the plan has no maintenance_info"
        ))),
    }
}
