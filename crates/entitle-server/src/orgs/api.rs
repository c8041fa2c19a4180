//! `/api/v1/orgs`: thin handlers over the organization rules.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use entitle_proto::{
    AddMemberRequest, AuditPage, BulkMemberOutcome, BulkMemberRequest, CreateOrgRequest,
    MemberCounts, MemberDetail, MemberPage, Org, OrgAdministrator, OrgList, OrgMember, Problem,
    SetRolesRequest, UpdateMemberRequest,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{access::OrgAccess, roles::Action};
use crate::{
    app::{AppState, Client},
    audit,
    error::{ApiResult, Json, Path, Query},
    identity::session::{Operator, SignedIn},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org))
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, remove_member, update_member))
        .routes(routes!(set_member_roles))
        .routes(routes!(member_counts))
        .routes(routes!(export_members))
        .routes(routes!(bulk_members))
        .routes(routes!(resend_invitation))
        .routes(routes!(send_password_reset))
        .routes(routes!(list_administrators))
        .routes(routes!(org_audit))
        .routes(routes!(org_audit_csv))
        .routes(routes!(revoke_sessions))
}

/// The organization's audit log, newest first, filtered by actor, action and time.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/audit", tag = "audit",
    params(("org_id" = Uuid, Path), audit::AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 404, body = Problem))
)]
async fn org_audit(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<audit::AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, &current.account, org_id)
        .await?
        .require(Action::ViewAudit)?;
    Ok(Json(audit::page(&mut conn, &query, Some(org_id)).await?))
}

/// The organization's audit log as CSV, with the same filters.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/audit.csv", tag = "audit",
    params(("org_id" = Uuid, Path), audit::AuditQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = Problem), (status = 404, body = Problem))
)]
async fn org_audit_csv(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<audit::AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, &current.account, org_id)
        .await?
        .require(Action::ViewAudit)?;
    query.check()?;
    let csv = audit::export_csv(&mut conn, &query, org_id).await?;
    Ok(super::imports_api::csv_download(
        &format!("audit-{org_id}.csv"),
        csv,
    ))
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

/// Add one person: an existing account joins, anyone else is created and invited by
/// email to set a password.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/members", tag = "organizations",
    params(("org_id" = Uuid, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = OrgMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Already a member, or a member of another organization"),
        (status = 422, body = Problem))
)]
async fn add_member(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<OrgMember>)> {
    let member = super::members::add(&state, &current.account, org_id, &request, &client).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// One member, with their roles, last sign-in, invitation and SCIM groups.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/members/{account_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 200, body = MemberDetail), (status = 403, body = Problem), (status = 404, body = Problem))
)]
async fn get_member(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<MemberDetail>> {
    Ok(Json(
        super::member_actions::detail(&state, &current.account, org_id, account_id).await?,
    ))
}

/// How many members have each status and role, and the largest email domains: the
/// member list's filters.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/members/counts", tag = "organizations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = MemberCounts), (status = 403, body = Problem), (status = 404, body = Problem))
)]
async fn member_counts(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<MemberCounts>> {
    Ok(Json(
        super::members::counts(&state, &current.account, org_id).await?,
    ))
}

/// Every member the filters match, on all pages, as CSV.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/members.csv", tag = "organizations",
    params(("org_id" = Uuid, Path), super::members::MemberQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem))
)]
async fn export_members(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<super::members::MemberQuery>,
) -> ApiResult<impl IntoResponse> {
    let csv = super::members::export_csv(&state, &current.account, org_id, &query).await?;
    Ok(super::imports_api::csv_download(
        &format!("members-{org_id}.csv"),
        csv,
    ))
}

/// One action on up to 200 members: each is done or refused under the rules of doing it
/// to that member alone, and the answer says which and why.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/members/bulk", tag = "organizations",
    params(("org_id" = Uuid, Path)), request_body = BulkMemberRequest,
    responses((status = 200, body = BulkMemberOutcome), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "No member, more than 200, or a missing or unknown role"))
)]
async fn bulk_members(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<BulkMemberRequest>,
) -> ApiResult<Json<BulkMemberOutcome>> {
    Ok(Json(
        super::member_actions::bulk(&state, &current.account, org_id, &request, &client).await?,
    ))
}

/// Send a member who has not set a password a new invitation.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/members/{account_id}/invitation", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Registered already, or disabled"),
        (status = 429, body = Problem, description = "Too many messages to this address this hour"))
)]
async fn resend_invitation(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    super::member_actions::resend_invitation(&state, &current.account, org_id, account_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a registered member of this, their home, organization a link to set a new password.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/members/{account_id}/password-reset", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not registered yet, or disabled"),
        (status = 429, body = Problem, description = "Too many messages to this address this hour"))
)]
async fn send_password_reset(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    super::member_actions::send_password_reset(
        &state,
        &current.account,
        org_id,
        account_id,
        &client,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a member out of the organization.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/members/{account_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The last Fulfillment Contact"))
)]
async fn remove_member(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    super::members::remove(&state, &current.account, org_id, account_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edit a member (name and country, in their home organization) or disable and enable them.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{org_id}/members/{account_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)), request_body = UpdateMemberRequest,
    responses((status = 200, body = OrgMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Disabling yourself"), (status = 422, body = Problem))
)]
async fn update_member(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    Json(request): Json<UpdateMemberRequest>,
) -> ApiResult<Json<OrgMember>> {
    Ok(Json(
        super::members::update(
            &state,
            &current.account,
            org_id,
            account_id,
            &request,
            &client,
        )
        .await?,
    ))
}

/// Replace a member's roles.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org_id}/members/{account_id}/roles", tag = "organizations",
    params(("org_id" = Uuid, Path), ("account_id" = Uuid, Path)), request_body = SetRolesRequest,
    responses((status = 200, body = OrgMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The last Fulfillment Contact"), (status = 422, body = Problem))
)]
async fn set_member_roles(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    Json(request): Json<SetRolesRequest>,
) -> ApiResult<Json<OrgMember>> {
    Ok(Json(
        super::members::set_roles(
            &state,
            &current.account,
            org_id,
            account_id,
            &request.roles,
            &client,
        )
        .await?,
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

/// Organizations by name: every one for an operator, one's own for anyone else.
#[utoipa::path(
    get, path = "/api/v1/orgs", tag = "organizations",
    params(super::directory::OrgQuery),
    responses((status = 200, body = OrgList), (status = 401, body = Problem), (status = 422, body = Problem))
)]
async fn list_orgs(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Query(query): Query<super::directory::OrgQuery>,
) -> ApiResult<Json<OrgList>> {
    Ok(Json(
        super::directory::list(&state, &current.account, &query).await?,
    ))
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

/// Sign a person out everywhere: browser sessions, devices, automatic sign-in.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/revoke-sessions", tag = "organizations",
    responses((status = 204), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "The person's role is above the caller's"),
        (status = 404, body = Problem, description = "Unknown, or not administered by the caller")))]
async fn revoke_sessions(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    from: Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    super::members::sign_out_everywhere(&state, &current.account, id, &from).await?;
    Ok(StatusCode::NO_CONTENT)
}
