//! `/api/v1/orgs/{org_id}/scim-tokens`: the organization's SCIM bearer tokens
//! (Fulfillment Contacts and Administrators), and `/api/v1/orgs/{org_id}/scim-groups`:
//! the identity provider's groups and the roles they map to.

use axum::{extract::State, http::StatusCode};
use entitle_proto::{MapGroupRequest, NewScimToken, Problem, ScimGroupSummary, ScimToken};
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
        .routes(routes!(list_groups))
        .routes(routes!(map_group))
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

/// The groups the organization's identity provider keeps through SCIM, with their roles.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/scim-groups", tag = "scim",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ScimGroupSummary>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_groups(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<ScimGroupSummary>>> {
    Ok(Json(
        super::groups::list_for_admins(&state, &current.account, org_id).await?,
    ))
}

/// Map a group to a role (its members hold it while they are in the group), or unmap it
/// with `null`. Never Fulfillment Contact; the caller must be allowed to give the role.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/scim-groups/{group_id}/role", tag = "scim",
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)), request_body = MapGroupRequest,
    responses((status = 200, body = ScimGroupSummary), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn map_group(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, group_id)): Path<(Uuid, Uuid)>,
    Json(request): Json<MapGroupRequest>,
) -> ApiResult<Json<ScimGroupSummary>> {
    Ok(Json(
        super::groups::map_to_role(
            &state,
            &current.account,
            org_id,
            group_id,
            request.role.as_deref(),
            &client,
        )
        .await?,
    ))
}
