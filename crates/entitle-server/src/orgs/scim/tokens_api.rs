//! `/api/v1/orgs/{org_id}/scim-tokens`: the organization's SCIM bearer tokens
//! (Fulfillment Contacts and Administrators).

use axum::{extract::State, http::StatusCode};
use entitle_proto::{NewScimToken, Problem, ScimToken};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    app::{AppState, Client},
    error::{ApiResult, Json, Path},
    identity::session::SignedIn,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// The organization's SCIM tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/scim-tokens", tag = "scim",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ScimToken>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<ScimToken>>> {
    Ok(Json(
        super::list_tokens(&state, &current.account, org_id).await?,
    ))
}

/// Create a SCIM token: the answer holds the bearer token, shown this once.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/scim-tokens", tag = "scim",
    params(("org_id" = Uuid, Path)), request_body = NewScimToken,
    responses((status = 201, body = ScimToken), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<NewScimToken>,
) -> ApiResult<(StatusCode, Json<ScimToken>)> {
    let token =
        super::create_token(&state, &current.account, org_id, &request.name, &client).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// Revoke a SCIM token; requests with it are refused from now on.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/scim-tokens/{token_id}", tag = "scim",
    params(("org_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, token_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    super::revoke_token(&state, &current.account, org_id, token_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
