//! `GET /v2/catalog` (E1, OSB-CAT): the configured offerings, serialized once at start per
//! API-version tier (D-14 leaves out fields a 2.13/2.14 client does not know), with an ETag
//! so platforms can revalidate cheaply (OSB-HDR-11).

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use skybroker_config::ServiceOffering;

use crate::catalog::Catalog;

use crate::api::ApiVersion;

/// The catalog body for each version tier.
#[derive(Debug, Clone)]
pub struct CatalogCache {
    /// For 2.17 and later.
    current: Rendered,
    /// For 2.15 and 2.16 (no `binding_rotatable`).
    v15: Rendered,
    /// For 2.13 and 2.14 (no maintenance info, polling duration, plan-level updateability,
    /// context updates).
    v13: Rendered,
}

#[derive(Debug, Clone)]
struct Rendered {
    /// Shared, so answering hands out a reference instead of copying the body.
    body: Bytes,
    etag: HeaderValue,
}

impl Rendered {
    fn new(value: &Value) -> Self {
        let body = Bytes::from(serde_json::to_vec(value).expect("catalog serializes"));
        // FNV-1a over the body: stable across restarts with the same catalog.
        let hash = body.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
        let etag = HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a header");
        Rendered { body, etag }
    }
}

/// Removes `fields` from every plan (and, for `offering_fields`, every offering).
fn strip(catalog: &Value, offering_fields: &[&str], plan_fields: &[&str]) -> Value {
    let mut catalog = catalog.clone();
    if let Some(services) = catalog.get_mut("services").and_then(Value::as_array_mut) {
        for service in services {
            if let Some(service) = service.as_object_mut() {
                for field in offering_fields {
                    service.remove(*field);
                }
                if let Some(plans) = service.get_mut("plans").and_then(Value::as_array_mut) {
                    for plan in plans.iter_mut().filter_map(Value::as_object_mut) {
                        for field in plan_fields {
                            plan.remove(*field);
                        }
                    }
                }
            }
        }
    }
    catalog
}

impl CatalogCache {
    /// Renders the catalog of `core`'s configuration.
    pub fn new(services: &[skybroker_config::ServiceOffering]) -> Self {
        let full = serde_json::to_value(skybroker_config::catalog::Catalog { services })
            .expect("catalog serializes");
        let v15 = strip(&full, &[], &["binding_rotatable"]);
        let v13 = strip(
            &v15,
            &["allow_context_updates"],
            &[
                "maintenance_info",
                "maximum_polling_duration",
                "plan_updateable",
            ],
        );
        CatalogCache {
            current: Rendered::new(&full),
            v15: Rendered::new(&v15),
            v13: Rendered::new(&v13),
        }
    }

    fn for_version(&self, version: ApiVersion) -> &Rendered {
        if version.at_least(17) {
            &self.current
        } else if version.at_least(15) {
            &self.v15
        } else {
            &self.v13
        }
    }
}

/// The rendered catalog for each caller of the current catalog version: the broker's own
/// credentials see every plan, a platform the plans visible to it. Rendered on a caller's
/// first request and dropped when the catalog version changes.
#[derive(Debug, Default)]
pub struct RenderedCatalogs {
    /// The version rendered, and the renderings by platform id ("" for the broker's own).
    cached: Mutex<(u64, HashMap<String, Arc<CatalogCache>>)>,
}

impl RenderedCatalogs {
    /// The rendering of `catalog` for `platform`.
    pub fn for_caller(&self, catalog: &Catalog, platform: Option<&str>) -> Arc<CatalogCache> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0 != catalog.generation() {
            *cached = (catalog.generation(), HashMap::new());
        }
        let key = platform.unwrap_or("");
        if let Some(rendered) = cached.1.get(key) {
            return Arc::clone(rendered);
        }
        let rendered = Arc::new(CatalogCache::new(&visible_services(catalog, platform)));
        cached.1.insert(key.to_owned(), Arc::clone(&rendered));
        rendered
    }
}

/// The offerings with only the plans `platform` sees; an offering without any is left out.
fn visible_services(catalog: &Catalog, platform: Option<&str>) -> Vec<ServiceOffering> {
    catalog
        .services()
        .iter()
        .filter_map(|offering| {
            let plans: Vec<_> = offering
                .plans
                .iter()
                .filter(|plan| catalog.visible_to(&plan.id, platform))
                .cloned()
                .collect();
            (!plans.is_empty()).then(|| ServiceOffering {
                plans,
                ..offering.clone()
            })
        })
        .collect()
}

/// `GET /v2/catalog`. Takes the request itself rather than a `HeaderMap`, which the
/// extractor would copy, to read one header.
pub fn get_catalog(
    catalog: &CatalogCache,
    Extension(version): Extension<ApiVersion>,
    request: Request,
) -> Response {
    let rendered = catalog.for_version(version);
    let etag = rendered.etag.clone();
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag.to_str().unwrap_or("") || tag.trim() == "*")
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
        ],
        Body::from(rendered.body.clone()),
    )
        .into_response()
}
