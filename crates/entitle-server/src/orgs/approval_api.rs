//! Auto Approval, requests to join, and required actions, over HTTP.

use axum::{extract::State, http::StatusCode};
use entitle_proto::{
    Accepted, AccessDecision, AccessRequest, AutoApprovalRequest, JoinableOrg, NewAccessRequest,
    Org, Problem, RequiredAction,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::approval;
use crate::{
    app::{AppState, Client},
    error::{ApiResult, Json, Path, Query},
    identity::session::SignedIn,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_auto_approval))
        .routes(routes!(joinable))
        .routes(routes!(request_access))
        .routes(routes!(list_requests))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(required_actions))
}

/// Switch Auto Approval on (only with a verified domain) or off.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/auto-approval", tag = "domains",
    params(("org_id" = Uuid, Path)), request_body = AutoApprovalRequest,
    responses((status = 200, body = Org), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "No verified domain")))]
async fn set_auto_approval(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<AutoApprovalRequest>,
) -> ApiResult<Json<Org>> {
    Ok(Json(
        approval::set_auto_approval(&state, &current.account, org_id, request.enabled, &client)
            .await?,
    ))
}

/// Organizations the signed-in person may ask to join: those with a verified domain of
/// their email address.
#[utoipa::path(get, path = "/api/v1/access-requests/organizations", tag = "access requests",
    responses((status = 200, body = Vec<JoinableOrg>), (status = 401, body = Problem)))]
async fn joinable(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
) -> ApiResult<Json<Vec<JoinableOrg>>> {
    Ok(Json(approval::joinable(&state, &current.account).await?))
}

/// Ask to join an organization, named by id or by an administrator's email address.
/// The answer is the same whether or not that address administers an organization.
#[utoipa::path(post, path = "/api/v1/access-requests", tag = "access requests",
    request_body = NewAccessRequest,
    responses((status = 202, body = Accepted), (status = 403, body = Problem, description = "Email not verified"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "Already in an organization"),
        (status = 422, body = Problem)))]
async fn request_access(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Json(request): Json<NewAccessRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    approval::request_access(&state, &current.account, &request, &client).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If that organization exists, its administrators have your request and you will hear from them by email.".to_owned(),
        }),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    /// `pending` (default), `approved` or `rejected`.
    #[serde(default)]
    status: Option<String>,
}

/// The organization's requests to join (Fulfillment Contacts, Administrators and
/// Co-Administrators).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/access-requests", tag = "access requests",
    params(("org_id" = Uuid, Path), StatusQuery),
    responses((status = 200, body = Vec<AccessRequest>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_requests(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<StatusQuery>,
) -> ApiResult<Json<Vec<AccessRequest>>> {
    Ok(Json(
        approval::list_requests(&state, &current.account, org_id, query.status.as_deref()).await?,
    ))
}

/// Approve a request: the person becomes a User, with any `roles` given besides (each one
/// the approver may give), and is told by email. The body may be left out.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/access-requests/{request_id}/approve", tag = "access requests",
    params(("org_id" = Uuid, Path), ("request_id" = Uuid, Path)), request_body(content = Option<AccessDecision>),
    responses((status = 200, body = AccessRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Decided already, or the person joined another organization")))]
async fn approve(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, request_id)): Path<(Uuid, Uuid)>,
    decision: Option<Json<AccessDecision>>,
) -> ApiResult<Json<AccessRequest>> {
    let decision = decision.map(|Json(d)| d).unwrap_or_default();
    Ok(Json(
        approval::decide(
            &state,
            &current.account,
            org_id,
            request_id,
            true,
            &decision,
            &client,
        )
        .await?,
    ))
}

/// Reject a request; the person is told by email, with the reason when one is given.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/access-requests/{request_id}/reject", tag = "access requests",
    params(("org_id" = Uuid, Path), ("request_id" = Uuid, Path)), request_body = AccessDecision,
    responses((status = 200, body = AccessRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Decided already")))]
async fn reject(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, request_id)): Path<(Uuid, Uuid)>,
    Json(decision): Json<AccessDecision>,
) -> ApiResult<Json<AccessRequest>> {
    Ok(Json(
        approval::decide(
            &state,
            &current.account,
            org_id,
            request_id,
            false,
            &decision,
            &client,
        )
        .await?,
    ))
}

/// What the organization's administrators should do next, each with where to do it.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/required-actions", tag = "organizations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<RequiredAction>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn required_actions(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<RequiredAction>>> {
    Ok(Json(
        approval::required_actions(&state, &current.account, org_id).await?,
    ))
}
