//! `/v1/service_brokers`: external OSB brokers registered at run time.
//!
//! Registering one fetches its catalog (with `X-Broker-API-Version: 2.17` and the
//! credentials given), checks it with the catalog rules the configured catalog passes, joined
//! with every other broker's offerings (platforms see them side by side, so ids and names
//! must stay unique), and only then stores the broker: a failure at any step stores nothing.
//! `PATCH` fetches the catalog again (what `cf update-service-broker` does); `DELETE` is
//! refused while instances of its offerings exist. The configured offerings appear as one
//! built-in broker, which can be read but not changed here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use skybroker_storage::{
    now_millis, BrokerCredentials, BrokerTls, Change, RegistryKind, RegistryRecord, ServiceBroker,
};

use super::operations;
use super::query::apply_label_changes;
use super::schema::{self, BrokerPage, BrokerRegistration, BrokerUpdate, Empty, ErrorBody};
use super::{answer, body, commit_named, id_of, labels, list_all, renaming, timestamp};
use crate::api::request::JsonBody;
use crate::catalog::{offerings_of, sm_id, BUILTIN_BROKER_ID};
use crate::core::Core;
use crate::error::ApiError;
use skybroker_brokers::osb::RemoteError;

/// The built-in broker as the API shows it.
fn builtin() -> schema::Broker {
    schema::Broker {
        id: BUILTIN_BROKER_ID.to_owned(),
        name: BUILTIN_BROKER_ID.to_owned(),
        description: "the offerings of Skybroker's configured providers".to_owned(),
        broker_url: None,
        credentials_kind: None,
        labels: Default::default(),
        created_at: None,
        updated_at: None,
        ready: true,
    }
}

/// A broker as the API shows it: never its credentials.
pub(crate) fn shown(broker: &ServiceBroker) -> schema::Broker {
    schema::Broker {
        id: broker.id.clone(),
        name: broker.name.clone(),
        description: broker.description.clone(),
        broker_url: Some(broker.broker_url.clone()),
        credentials_kind: Some(
            match broker.credentials {
                BrokerCredentials::Basic { .. } => "basic",
                BrokerCredentials::Bearer { .. } => "bearer",
            }
            .to_owned(),
        ),
        labels: broker.labels.clone(),
        created_at: Some(timestamp(broker.created_at)),
        updated_at: Some(timestamp(broker.updated_at)),
        ready: true,
    }
}

/// `credentials`: `{"basic": {"username", "password"}}` or `{"bearer": {"token"}}`.
/// `credentials`: `basic` or `bearer`, and `tls` {client_certificate, client_key,
/// ca_certificate} (PEM) besides either.
fn credentials(
    body: &JsonBody,
) -> Result<Option<(BrokerCredentials, Option<BrokerTls>)>, ApiError> {
    let Some(credentials) = body.optional_object("credentials")? else {
        return Ok(None);
    };
    let text = |object: &Value, field: &str, kind: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "credentials.{kind}.{field} must be a non-empty string"
                ))
            })
    };
    let auth =
        match (credentials.get("basic"), credentials.get("bearer")) {
            (Some(basic), None) => BrokerCredentials::Basic {
                username: text(basic, "username", "basic")?,
                password: text(basic, "password", "basic")?,
            },
            (None, Some(bearer)) => BrokerCredentials::Bearer {
                token: text(bearer, "token", "bearer")?,
            },
            _ => return Err(ApiError::BadRequest(
                "credentials must hold exactly one of basic {username, password} or bearer {token}"
                    .to_owned(),
            )),
        };
    let tls = match credentials.get("tls") {
        None | Some(Value::Null) => None,
        Some(tls @ Value::Object(_)) => {
            let optional = |field: &str| match tls.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => text(tls, field, "tls").map(Some),
            };
            let tls = BrokerTls {
                client_certificate: optional("client_certificate")?,
                client_key: optional("client_key")?,
                ca_certificate: optional("ca_certificate")?,
            };
            if tls.client_certificate.is_some() != tls.client_key.is_some() {
                return Err(ApiError::BadRequest(
                    "credentials.tls: client_certificate and client_key go together".to_owned(),
                ));
            }
            Some(tls)
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "credentials.tls must be an object".to_owned(),
            ))
        }
    };
    Ok(Some((auth, tls)))
}

/// A broker URL: absolute http(s), without credentials, query or fragment.
fn broker_url(text: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("broker_url {text:?}: {why}"));
    let url = reqwest::Url::parse(text).map_err(|err| bad(&err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials go in `credentials`, not in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Fetches the broker's catalog and checks it joins the others; returns its `services`.
async fn fetch_and_check(core: &Core, broker: &ServiceBroker) -> Result<Vec<Value>, ApiError> {
    let plugin = core
        .catalog
        .remote_broker(broker)
        .map_err(|err| ApiError::BadRequest(format!("credentials.tls: {err}")))?;
    let services = plugin.fetch_catalog().await.map_err(|err| match err {
        RemoteError::Refused { .. } => ApiError::BadRequest(err.to_string()),
        _ => ApiError::BadGateway(err.to_string()),
    })?;
    let candidate = ServiceBroker {
        services: services.clone(),
        ..broker.clone()
    };
    let offerings = offerings_of(&candidate).map_err(|err| {
        ApiError::BadRequest(format!(
            "the catalog of {} is not valid: {err}",
            broker.broker_url
        ))
    })?;
    let problems = core
        .catalog
        .current()
        .problems_with(Some(&broker.id), &offerings);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ApiError::BadRequest(format!(
            "the catalog of {} breaks the catalog rules: {}",
            broker.broker_url,
            problems.join("; ")
        )));
    }
    Ok(services)
}

/// Refuses a name another broker has (409).
fn check_name_free(core: &Core, name: &str, except: Option<&str>) -> Result<(), ApiError> {
    let taken = name == BUILTIN_BROKER_ID
        || core
            .state
            .service_brokers()
            .iter()
            .any(|b| b.name == name && Some(b.id.as_str()) != except);
    if taken {
        return Err(ApiError::Conflict(format!(
            "a broker named {name:?} is registered already"
        )));
    }
    Ok(())
}

/// `POST /v1/service_brokers`.
#[utoipa::path(post, path = "/v1/service_brokers", tag = "service_brokers",
    params(super::AsyncQuery),
    request_body = BrokerRegistration,
    responses(
        (status = 201, description = "Registered; its catalog was fetched", body = schema::Broker),
        (status = 202, description = "Accepted (`async=true`): follow the Location", body = schema::Operation),
        (status = 400, description = "Malformed, refused credentials, or a catalog that breaks a rule", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 502, description = "The broker cannot be reached or answers garbage", body = ErrorBody),
    ))]
pub async fn register(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let run_async = operations::requested(query.as_deref())?;
    let body = body(&headers, &bytes)?;
    let name = body.required_str("name")?;
    let url = broker_url(&body.required_str("broker_url")?)?;
    let (credentials, tls) = credentials(&body)?
        .ok_or_else(|| ApiError::BadRequest("credentials are required".to_owned()))?;
    check_name_free(&core, &name, None)?;
    let now = now_millis();
    let broker = ServiceBroker {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        description: body.optional_str("description")?.unwrap_or_default(),
        broker_url: url,
        credentials,
        tls,
        services: Vec::new(),
        labels: labels(&body)?,
        created_at: now,
        updated_at: now,
    };
    if run_async {
        return operations::accept(&core, "create", broker).await;
    }
    let broker = store_fetched(&core, broker).await?;
    Ok(answer(StatusCode::CREATED, &shown(&broker)))
}

/// Fetches the broker's catalog, checks it and stores the broker with it: the slow part of a
/// registration or an update, run by the request or, with `?async=true`, by its operation.
pub(crate) async fn store_fetched(
    core: &Core,
    mut broker: ServiceBroker,
) -> Result<ServiceBroker, ApiError> {
    broker.services = fetch_and_check(core, &broker).await?;
    let known = core.state.service_broker(&broker.id);
    if let Some(known) = &known {
        // Strictly later than what it replaces.
        broker.updated_at = now_millis().max(known.updated_at + 1);
    }
    let mut changes = renaming(
        "service_brokers",
        &broker.id,
        known.as_ref().map(|known| known.name.as_str()),
        Some(&broker.name),
    );
    changes.push(Change::PutRegistry(RegistryRecord::Broker(broker.clone())));
    commit_named(core, changes, &broker.name).await?;
    log::info!(
        "broker {} ({}) {} at {} with {} offering(s)",
        broker.name,
        broker.id,
        if known.is_some() {
            "updated"
        } else {
            "registered"
        },
        broker.broker_url,
        broker.services.len()
    );
    Ok(broker)
}

/// `GET /v1/service_brokers`.
#[utoipa::path(get, path = "/v1/service_brokers", tag = "service_brokers",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of brokers, the built-in one included", body = BrokerPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut items = vec![builtin()];
    items.extend(core.state.service_brokers().iter().map(shown));
    list_all("/service_brokers", query.as_deref(), &items)
}

fn find(core: &Core, id: &str) -> Result<ServiceBroker, ApiError> {
    core.state
        .service_broker(id_of(id)?)
        .ok_or_else(|| ApiError::NotFound(format!("no broker {id:?}")))
}

fn refuse_builtin(id: &str) -> Result<(), ApiError> {
    if id == BUILTIN_BROKER_ID {
        return Err(ApiError::BadRequest(
            "the built-in broker's offerings come from the configuration file".to_owned(),
        ));
    }
    Ok(())
}

/// `GET /v1/service_brokers/{id}`.
#[utoipa::path(get, path = "/v1/service_brokers/{id}", tag = "service_brokers",
    params(("id" = String, Path, description = "The broker's id")),
    responses(
        (status = 200, description = "The broker", body = schema::Broker),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody),
    ))]
pub async fn get_one(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id == BUILTIN_BROKER_ID {
        return Ok(answer(StatusCode::OK, &builtin()));
    }
    Ok(answer(StatusCode::OK, &shown(&find(&core, &id)?)))
}

/// `PATCH /v1/service_brokers/{id}`: changes what is sent, and fetches the catalog again.
#[utoipa::path(patch, path = "/v1/service_brokers/{id}", tag = "service_brokers",
    params(("id" = String, Path, description = "The broker's id"), super::AsyncQuery),
    request_body = BrokerUpdate,
    responses(
        (status = 200, description = "Updated; its catalog was fetched again", body = schema::Broker),
        (status = 202, description = "Accepted (`async=true`): follow the Location", body = schema::Operation),
        (status = 400, description = "Malformed, the built-in broker, or a catalog that breaks a rule", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 502, description = "The broker cannot be reached or answers garbage", body = ErrorBody),
    ))]
pub async fn update(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    refuse_builtin(&id)?;
    let run_async = operations::requested(query.as_deref())?;
    let body = body(&headers, &bytes)?;
    let mut broker = find(&core, &id)?;
    if let Some(name) = body.optional_str("name")? {
        check_name_free(&core, &name, Some(&broker.id))?;
        broker.name = name;
    }
    if let Some(description) = body.optional_str("description")? {
        broker.description = description;
    }
    if let Some(url) = body.optional_str("broker_url")? {
        broker.broker_url = broker_url(&url)?;
    }
    if let Some((credentials, tls)) = credentials(&body)? {
        broker.credentials = credentials;
        broker.tls = tls;
    }
    if let Some(changes) = body.get("labels") {
        apply_label_changes(&mut broker.labels, changes)?;
    }
    if run_async {
        return operations::accept(&core, "update", broker).await;
    }
    let broker = store_fetched(&core, broker).await?;
    Ok(answer(StatusCode::OK, &shown(&broker)))
}

/// `DELETE /v1/service_brokers/{id}`: refused while instances of its offerings exist; its
/// plans' visibilities go with it.
#[utoipa::path(delete, path = "/v1/service_brokers/{id}", tag = "service_brokers",
    params(("id" = String, Path, description = "The broker's id")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = 400, description = "The built-in broker", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody),
        (status = 409, description = "Instances of its offerings exist", body = ErrorBody),
    ))]
pub async fn delete(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    refuse_builtin(&id)?;
    let broker = find(&core, &id)?;
    let catalog = core.catalog.current();
    if core
        .state
        .any_instance_of(|service_id| catalog.owner(service_id) == Some(broker.id.as_str()))
    {
        return Err(ApiError::Conflict(format!(
            "broker {} still has service instances; deprovision them first",
            broker.name
        )));
    }
    let plan_ids: Vec<String> = broker
        .services
        .iter()
        .filter_map(|offering| offering["plans"].as_array())
        .flatten()
        .filter_map(|plan| plan["id"].as_str())
        .map(|plan_id| sm_id(&broker.id, plan_id))
        .collect();
    let mut changes = renaming("service_brokers", &broker.id, Some(&broker.name), None);
    changes.push(Change::DeleteRegistry(
        RegistryKind::Broker,
        broker.id.clone(),
    ));
    changes.extend(
        core.state
            .visibilities()
            .into_iter()
            .filter(|v| plan_ids.contains(&v.service_plan_id))
            .map(|v| Change::DeleteRegistry(RegistryKind::Visibility, v.id)),
    );
    core.state.commit(changes).await?;
    log::info!("broker {} ({}) deleted", broker.name, broker.id);
    Ok(answer(StatusCode::OK, &Empty {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_plain_http_locations() {
        assert_eq!(
            broker_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            broker_url("https://b.example.com/osb").unwrap(),
            "https://b.example.com/osb"
        );
        for bad in [
            "ftp://x",
            "http://user:pw@host",
            "not a url",
            "http://h/?q=1",
        ] {
            assert!(broker_url(bad).is_err(), "{bad}");
        }
    }
}
