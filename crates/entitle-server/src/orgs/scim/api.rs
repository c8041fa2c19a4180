//! `/scim/v2`: the SCIM endpoints, authenticated by an organization's SCIM token and
//! confined to that organization.

use axum::{
    body::Bytes,
    extract::{FromRequest, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde_json::Value;

use super::{discovery, groups, provisioning, query, users, ScimClient, ScimError};
use crate::{
    app::{AppState, Client},
    error::Path,
};

/// A SCIM request body: bulk requests aside, one resource or patch is small.
const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", axum::routing::post(search_users))
        .route("/scim/v2/.search", axum::routing::post(search_everything))
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route(
            "/scim/v2/Groups/.search",
            axum::routing::post(search_groups),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(
            "/scim/v2/Bulk",
            axum::routing::post(run_bulk).layer(axum::extract::DefaultBodyLimit::max(
                super::bulk::MAX_PAYLOAD_BYTES,
            )),
        )
        .route("/scim/v2/{*rest}", axum::routing::any(unknown))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn service_provider_config(State(state): State<AppState>, _client: ScimClient) -> Response {
    scim(discovery::service_provider_config(
        &state.config.public_base(),
    ))
}

async fn resource_types(State(state): State<AppState>, _client: ScimClient) -> Response {
    scim(discovery::list(discovery::resource_types(
        &state.config.public_base(),
    )))
}

/// One item of a discovery list by its id, or 404.
fn one_of(items: Vec<Value>, id: &str) -> Result<Response, ScimError> {
    items
        .into_iter()
        .find(|item| item["id"].as_str() == Some(id))
        .map(scim)
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("No {id} here.")))
}

async fn resource_type(
    State(state): State<AppState>,
    _client: ScimClient,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    one_of(discovery::resource_types(&state.config.public_base()), &id)
}

async fn schemas(State(state): State<AppState>, _client: ScimClient) -> Response {
    scim(discovery::list(discovery::schemas(
        &state.config.public_base(),
    )))
}

async fn schema(
    State(state): State<AppState>,
    _client: ScimClient,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    one_of(discovery::schemas(&state.config.public_base()), &id)
}

/// A SCIM request body: a JSON object, whatever its content type says (clients send
/// application/scim+json). Anything else, a body over the size limit included, is a SCIM
/// error document.
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ScimError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!(
                        "The body is larger than allowed: {} KiB, or {} MiB for /Bulk.",
                        MAX_BODY_BYTES / 1024,
                        super::bulk::MAX_PAYLOAD_BYTES / (1024 * 1024)
                    ),
                )
            } else {
                ScimError::new(
                    StatusCode::BAD_REQUEST,
                    Some("invalidSyntax"),
                    rejection.body_text(),
                )
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("The body is not JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                "The body must be a JSON object.",
            ));
        }
        Ok(ScimBody(value))
    }
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn created(body: Value) -> Response {
    let location = body["meta"]["location"].as_str().map(str::to_owned);
    let mut response = scim(body);
    *response.status_mut() = StatusCode::CREATED;
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn create_user(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    Ok(created(
        provisioning::create(&state, &client, &from, &body).await?,
    ))
}

async fn replace_user(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let if_match = if_match(&headers);
    Ok(scim(
        provisioning::replace(&state, &client, &from, &id, if_match.as_deref(), &body).await?,
    ))
}

async fn patch_user(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let if_match = if_match(&headers);
    Ok(scim(
        provisioning::patch(&state, &client, &from, &id, if_match.as_deref(), &body).await?,
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ScimError> {
    let if_match = if_match(&headers);
    provisioning::delete(&state, &client, &from, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A SCIM document, with its ETag when it is one resource.
fn scim(body: Value) -> Response {
    let version = body["meta"]["version"].as_str().map(str::to_owned);
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    if let Some(version) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::ETAG, version);
    }
    response
}

fn bad_query(error: axum::extract::rejection::QueryRejection) -> ScimError {
    ScimError::new(
        axum::http::StatusCode::BAD_REQUEST,
        Some("invalidValue"),
        format!("The query string is malformed: {}", error.body_text()),
    )
}

async fn list_users(
    State(state): State<AppState>,
    client: ScimClient,
    query: Result<Query<query::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(scim(users::list(&state, client.org_id, &query).await?))
}

async fn get_user(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    query: Result<Query<query::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(scim(users::get(&state, client.org_id, &id, &query).await?))
}

async fn search_users(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let query = query::search_query(&body)?;
    Ok(scim(users::list(&state, client.org_id, &query).await?))
}

async fn run_bulk(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    Ok(scim(super::bulk::run(&state, &client, &from, &body).await?))
}

/// Anything else under /scim/v2: 404 in SCIM's words.
async fn unknown() -> ScimError {
    ScimError::new(
        StatusCode::NOT_FOUND,
        None,
        "There is no such SCIM endpoint.",
    )
}

type ListParams = Result<Query<query::ListQuery>, axum::extract::rejection::QueryRejection>;

async fn list_groups(
    State(state): State<AppState>,
    client: ScimClient,
    params: ListParams,
) -> Result<Response, ScimError> {
    let Query(params) = params.map_err(bad_query)?;
    Ok(scim(groups::list(&state, client.org_id, &params).await?))
}

async fn search_groups(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let params = query::search_query(&body)?;
    Ok(scim(groups::list(&state, client.org_id, &params).await?))
}

async fn get_group(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    params: ListParams,
) -> Result<Response, ScimError> {
    let Query(params) = params.map_err(bad_query)?;
    Ok(scim(
        groups::get(&state, client.org_id, &id, &params).await?,
    ))
}

async fn create_group(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    Ok(created(
        groups::create(&state, &client, &from, &body).await?,
    ))
}

async fn replace_group(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let if_match = if_match(&headers);
    Ok(scim(
        groups::replace(&state, &client, &from, &id, if_match.as_deref(), &body).await?,
    ))
}

async fn patch_group(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: ListParams,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let Query(params) = params.map_err(bad_query)?;
    let if_match = if_match(&headers);
    let patched = groups::patch(
        &state,
        &client,
        &from,
        &id,
        if_match.as_deref(),
        &body,
        &params,
    )
    .await?;
    Ok(match patched {
        Some(group) => scim(group),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn delete_group(
    State(state): State<AppState>,
    client: ScimClient,
    from: Client,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ScimError> {
    let if_match = if_match(&headers);
    groups::delete(&state, &client, &from, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn search_everything(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let params = query::search_query(&body)?;
    Ok(scim(
        super::search_everything(&state, client.org_id, &params).await?,
    ))
}
