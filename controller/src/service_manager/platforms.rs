//! `/v1/platforms`: the platforms that call Skybroker's OSB endpoint with credentials of
//! their own.
//!
//! Registering a platform generates its basic-auth credentials and answers them once; the
//! store keeps only the password's argon2 hash (see `credentials`). An operator who lost
//! them asks for new ones (`PATCH …?regenerate_credentials=true`): the old password stops
//! working at once, on every replica (the record changes, and with it what a login is
//! checked against).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use skybroker_storage::{now_millis, Change, Platform, RegistryKind, RegistryRecord};

use super::query::apply_label_changes;
use super::schema::{
    self, BasicCredentials, Empty, ErrorBody, PlatformCredentials, PlatformPage,
    PlatformRegistration, PlatformUpdate,
};
use super::{answer, body, commit_named, id_of, labels, list_all, renaming, timestamp};
use crate::api::request::Query;
use crate::core::Core;
use crate::credentials::{generate_secret, hash_password};
use crate::error::ApiError;

/// A platform as the API shows it: never the password or its hash.
fn shown(platform: &Platform) -> schema::Platform {
    schema::Platform {
        id: platform.id.clone(),
        name: platform.name.clone(),
        kind: platform.kind.clone(),
        description: platform.description.clone(),
        labels: platform.labels.clone(),
        created_at: timestamp(platform.created_at),
        updated_at: timestamp(platform.updated_at),
        credentials: None,
    }
}

/// A platform with credentials freshly made: the only answer that shows the password.
fn shown_with(platform: &Platform, password: &str) -> schema::Platform {
    schema::Platform {
        credentials: Some(PlatformCredentials {
            basic: BasicCredentials {
                username: platform.username.clone(),
                password: password.to_owned(),
            },
        }),
        ..shown(platform)
    }
}

/// A new password and its hash; hashing runs off the async runtime (argon2 is slow).
async fn new_password() -> Result<(String, String), ApiError> {
    tokio::task::spawn_blocking(|| {
        let password = generate_secret();
        let hash = hash_password(&password).map_err(ApiError::Internal)?;
        Ok((password, hash))
    })
    .await
    .map_err(|err| ApiError::Internal(format!("hashing task: {err}")))?
}

fn check_name_free(core: &Core, name: &str, except: Option<&str>) -> Result<(), ApiError> {
    if core
        .state
        .platforms()
        .iter()
        .any(|p| p.name == name && Some(p.id.as_str()) != except)
    {
        return Err(ApiError::Conflict(format!(
            "a platform named {name:?} is registered already"
        )));
    }
    Ok(())
}

/// `POST /v1/platforms`: answers the generated credentials, once.
#[utoipa::path(post, path = "/v1/platforms", tag = "platforms",
    request_body = PlatformRegistration,
    responses(
        (status = 201, description = "Registered; `credentials` are shown this once", body = schema::Platform),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
pub async fn register(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&headers, &bytes)?;
    let name = body.required_str("name")?;
    let kind = body.required_str("type")?;
    check_name_free(&core, &name, None)?;
    let (password, password_hash) = new_password().await?;
    let now = now_millis();
    let id = uuid::Uuid::new_v4().to_string();
    let platform = Platform {
        username: format!("platform-{}", uuid::Uuid::new_v4().simple()),
        id,
        name,
        kind,
        description: body.optional_str("description")?.unwrap_or_default(),
        password_hash,
        labels: labels(&body)?,
        created_at: now,
        updated_at: now,
    };
    let mut changes = renaming("platforms", &platform.id, None, Some(&platform.name));
    changes.push(Change::PutRegistry(RegistryRecord::Platform(
        platform.clone(),
    )));
    commit_named(&core, changes, &platform.name).await?;
    log::info!("platform {} ({}) registered", platform.name, platform.id);
    Ok(answer(
        StatusCode::CREATED,
        &shown_with(&platform, &password),
    ))
}

/// `GET /v1/platforms`.
#[utoipa::path(get, path = "/v1/platforms", tag = "platforms",
    params(super::PageQuery),
    responses(
        (status = 200, description = "A page of platforms", body = PlatformPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
    ))]
pub async fn list(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let items: Vec<schema::Platform> = core.state.platforms().iter().map(shown).collect();
    list_all("/platforms", query.as_deref(), &items)
}

fn find(core: &Core, id: &str) -> Result<Platform, ApiError> {
    core.state
        .platform(id_of(id)?)
        .ok_or_else(|| ApiError::NotFound(format!("no platform {id:?}")))
}

/// `GET /v1/platforms/{id}`.
#[utoipa::path(get, path = "/v1/platforms/{id}", tag = "platforms",
    params(("id" = String, Path, description = "The platform's id")),
    responses(
        (status = 200, description = "The platform", body = schema::Platform),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such platform", body = ErrorBody),
    ))]
pub async fn get_one(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(answer(StatusCode::OK, &shown(&find(&core, &id)?)))
}

/// `PATCH /v1/platforms/{id}`: name, description, labels; `?regenerate_credentials=true`
/// issues a new password (answered once) and the old one stops working.
#[utoipa::path(patch, path = "/v1/platforms/{id}", tag = "platforms",
    params(
        ("id" = String, Path, description = "The platform's id"),
        ("regenerate_credentials" = Option<bool>, Query, description = "Issue new credentials"),
    ),
    request_body(content = Option<PlatformUpdate>, description = "What changes (may be empty)"),
    responses(
        (status = 200, description = "Updated; new `credentials` shown this once", body = schema::Platform),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such platform", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
pub async fn update(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let regenerate = match query.hint("regenerate_credentials")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "regenerate_credentials must be true or false, not {other:?}"
            )))
        }
    };
    let mut platform = find(&core, &id)?;
    let old_name = platform.name.clone();
    if !bytes.is_empty() {
        let body = body(&headers, &bytes)?;
        if let Some(name) = body.optional_str("name")? {
            check_name_free(&core, &name, Some(&platform.id))?;
            platform.name = name;
        }
        if let Some(description) = body.optional_str("description")? {
            platform.description = description;
        }
        if let Some(changes) = body.get("labels") {
            apply_label_changes(&mut platform.labels, changes)?;
        }
    }
    let password = if regenerate {
        let (password, hash) = new_password().await?;
        platform.password_hash = hash;
        Some(password)
    } else {
        None
    };
    // Strictly later: a login remembered for the old record must no longer match.
    platform.updated_at = now_millis().max(platform.updated_at + 1);
    let mut changes = renaming(
        "platforms",
        &platform.id,
        Some(&old_name),
        Some(&platform.name),
    );
    changes.push(Change::PutRegistry(RegistryRecord::Platform(
        platform.clone(),
    )));
    commit_named(&core, changes, &platform.name).await?;
    let shown = match &password {
        Some(password) => {
            log::info!(
                "platform {} ({}): new credentials issued",
                platform.name,
                platform.id
            );
            shown_with(&platform, password)
        }
        None => shown(&platform),
    };
    Ok(answer(StatusCode::OK, &shown))
}

/// `DELETE /v1/platforms/{id}`: the platform and its visibilities.
#[utoipa::path(delete, path = "/v1/platforms/{id}", tag = "platforms",
    params(("id" = String, Path, description = "The platform's id")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No such platform", body = ErrorBody),
    ))]
pub async fn delete(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let platform = find(&core, &id)?;
    let mut changes = renaming("platforms", &platform.id, Some(&platform.name), None);
    changes.push(Change::DeleteRegistry(
        RegistryKind::Platform,
        platform.id.clone(),
    ));
    changes.extend(
        core.state
            .visibilities()
            .into_iter()
            .filter(|v| v.platform_id.as_deref() == Some(platform.id.as_str()))
            .map(|v| Change::DeleteRegistry(RegistryKind::Visibility, v.id)),
    );
    core.state.commit(changes).await?;
    log::info!("platform {} ({}) deleted", platform.name, platform.id);
    Ok(answer(StatusCode::OK, &Empty {}))
}
