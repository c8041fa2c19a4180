//! `/api/v1/orgs/{org_id}/domains`: claim, verify and give up domains.

use axum::{extract::State, http::StatusCode};
use entitle_proto::{ClaimDomainRequest, OrgDomain, Problem};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::domains;
use crate::{
    app::{AppState, Client},
    error::{ApiResult, Json, Path},
    identity::session::SignedIn,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, claim))
        .routes(routes!(remove))
        .routes(routes!(verify))
}

/// The organization's domains, verified or not, with the record each one needs.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/domains", tag = "domains",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<OrgDomain>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<OrgDomain>>> {
    Ok(Json(domains::list(&state, &current.account, org_id).await?))
}

/// Claim a domain (Fulfillment Contacts and Administrators): publish the returned TXT
/// record, then verify.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/domains", tag = "domains",
    params(("org_id" = Uuid, Path)), request_body = ClaimDomainRequest,
    responses((status = 201, body = OrgDomain), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Claimed already here, or verified by another organization"),
        (status = 422, body = Problem, description = "Not a domain name, or a public mail domain")))]
async fn claim(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<ClaimDomainRequest>,
) -> ApiResult<(StatusCode, Json<OrgDomain>)> {
    let domain = domains::claim(&state, &current.account, org_id, &request.domain, &client).await?;
    Ok((StatusCode::CREATED, Json(domain)))
}

/// Look the TXT record up in DNS now; verified when it holds the challenge.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/domains/{domain_id}/verify", tag = "domains",
    params(("org_id" = Uuid, Path), ("domain_id" = Uuid, Path)),
    responses((status = 200, body = OrgDomain), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Verified by another organization, or DNS did not answer"),
        (status = 422, body = Problem, description = "The record is missing or holds another value")))]
async fn verify(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, domain_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<OrgDomain>> {
    Ok(Json(
        domains::verify(&state, &current.account, org_id, domain_id, &client).await?,
    ))
}

/// Give a domain up.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/domains/{domain_id}", tag = "domains",
    params(("org_id" = Uuid, Path), ("domain_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, domain_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    domains::remove(&state, &current.account, org_id, domain_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
