//! `/api/v1/orgs`: thin handlers over the organization rules.

use axum::{extract::State, http::StatusCode};
use entitle_proto::{CreateOrgRequest, MemberPage, Org, OrgAdministrator, Problem};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    app::{AppState, Client},
    error::{ApiResult, Json, Path, Query},
    identity::session::{Operator, SignedIn},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org))
        .routes(routes!(get_org))
        .routes(routes!(list_members))
        .routes(routes!(list_administrators))
}

/// The members of an organization, with search, sort and pages (administrators).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/members", tag = "organizations",
    params(("org_id" = Uuid, Path), super::members::MemberQuery),
    responses((status = 200, body = MemberPage), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Bad sort, order, offset, limit or search"))
)]
async fn list_members(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<super::members::MemberQuery>,
) -> ApiResult<Json<MemberPage>> {
    Ok(Json(
        super::members::list(&state, &current.account, org_id, &query).await?,
    ))
}

/// Who to ask: the organization's Fulfillment Contacts, Administrators and
/// Co-Administrators (any member).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/administrators", tag = "organizations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<OrgAdministrator>), (status = 404, body = Problem))
)]
async fn list_administrators(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<OrgAdministrator>>> {
    Ok(Json(
        super::members::administrators(&state, &current.account, org_id).await?,
    ))
}

/// Create an organization with its first Fulfillment Contact (operators only).
#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "organizations",
    request_body = CreateOrgRequest,
    responses(
        (status = 201, body = Org, description = "Created; a new Fulfillment Contact is emailed a set-password link"),
        (status = 401, body = Problem), (status = 403, body = Problem, description = "Not an operator"),
        (status = 422, body = Problem, description = "Invalid fields"),
    )
)]
async fn create_org(
    State(state): State<AppState>,
    Operator(current): Operator,
    client: Client,
    Json(req): Json<CreateOrgRequest>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    let org = super::create_with_contact(&state, &current.account, req, &client).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// An organization, for its members and operators.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}", tag = "organizations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Org), (status = 404, body = Problem))
)]
async fn get_org(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Org>> {
    Ok(Json(
        super::visible_org(&state, &current.account, org_id).await?,
    ))
}
