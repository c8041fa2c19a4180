//! `/scim/v2`: the SCIM endpoints, authenticated by an organization's SCIM token and
//! confined to that organization.

use axum::{
    extract::{Query, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde_json::Value;

use super::{users, ScimClient, ScimError};
use crate::{app::AppState, error::Path};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/scim/v2/Users", get(list_users))
        .route("/scim/v2/Users/{id}", get(get_user))
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
    query: Result<Query<users::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(scim(users::list(&state, client.org_id, &query).await?))
}

async fn get_user(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    Ok(scim(users::get(&state, client.org_id, &id).await?))
}
