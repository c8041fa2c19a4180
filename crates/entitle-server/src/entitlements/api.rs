//! `/api/v1/products`, `/api/v1/subscriptions`, `/api/v1/me/entitlements` and the
//! published license keys: thin handlers over `catalog` and `keys`.

use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use entitle_proto::{
    Checkout, CheckoutCreated, CheckoutRequest, Entitlement, HeartbeatRequest, Lease, LeaseRequest,
    NewProduct, NewSubscription, Problem, Product, ProductChange, Subscription, SubscriptionChange,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{catalog, checkouts, lease_writer::Caller, leases};
use crate::{
    app::{AppState, Client},
    db::now_ms,
    error::{ApiError, ApiResult, Json, Path, Query},
    identity::{
        flows::actor_of,
        session::{Operator, SignedIn},
        store::AccountRow,
    },
};

/// Who calls a licensing endpoint: a person signed in with a session token, or an
/// application (the `entitle` client, a data-source server) presenting an RFC 9068
/// access token this server issued for a person — signature, issuer, audience (this
/// server), expiry and type checked, its grant live and its client enabled, the person's
/// account active. A revoked grant or a disabled account is refused at once, not at the
/// token's expiry, because both are looked up on every request.
pub struct LicensingCaller(pub AccountRow);

/// The access token in an `Authorization: Bearer` header, if it holds a JWT: three
/// dot-separated parts, which session tokens do not have.
fn bearer_jwt(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.split('.').count() == 3)
}

impl FromRequestParts<AppState> for LicensingCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer_jwt(parts) else {
            let SignedIn(current) = SignedIn::from_request_parts(parts, state).await?;
            return Ok(LicensingCaller(current.account));
        };
        let account = crate::oidc::grants::person_of_access_token(state, token)
            .await
            .map_err(|e| anyhow::anyhow!("reading an access token: {}", e.description))?
            .ok_or(ApiError::Unauthenticated)?;
        crate::error::note_request_account(account.id);
        Ok(LicensingCaller(account))
    }
}

/// [`LicensingCaller`] for the lease endpoints, whose writes are batched: an access
/// token's signature is checked here, and whether it is still good (grant, revocation,
/// account) is looked up with the batch, in its transaction, by the same rule.
pub struct LeaseCaller(pub Caller);

impl FromRequestParts<AppState> for LeaseCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer_jwt(parts) else {
            let SignedIn(current) = SignedIn::from_request_parts(parts, state).await?;
            return Ok(LeaseCaller(Caller::Account(current.account)));
        };
        let token = crate::oidc::grants::person_token(state, token)
            .await
            .map_err(|e| anyhow::anyhow!("reading an access token: {}", e.description))?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(LeaseCaller(Caller::Token(token)))
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, add_product))
        .routes(routes!(change_product))
        .routes(routes!(list_subscriptions, add_subscription))
        .routes(routes!(get_subscription, change_subscription))
        .routes(routes!(end_subscription))
        .routes(routes!(my_entitlements))
        .routes(routes!(acquire_lease))
        .routes(routes!(release_lease))
        .routes(routes!(heartbeat))
        .routes(routes!(list_checkouts, check_out))
        .routes(routes!(checkout_license))
        .routes(routes!(check_in))
        .routes(routes!(check_in_mine))
        .routes(routes!(my_checkouts))
        .routes(routes!(my_checkout_license))
        .routes(routes!(revocations))
}

/// Routes outside the API's `/api/v1` documents: the published license keys.
pub fn public_router() -> Router<AppState> {
    Router::new().route("/.well-known/entitle/license-keys", get(license_keys))
}

/// The license keys as a JWKS: what license files, leases and revocation lists are
/// verified against (docs/license-format.md). Cacheable for five minutes.
async fn license_keys(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.licensing.current().jwks.clone(),
    )
        .into_response()
}

/// Every product, by code (operators).
#[utoipa::path(get, path = "/api/v1/products", tag = "entitlements",
    responses((status = 200, body = Vec<Product>), (status = 403, body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    _operator: Operator,
) -> ApiResult<Json<Vec<Product>>> {
    let mut conn = state.db.reader().await?;
    Ok(Json(catalog::products(&mut conn).await?))
}

/// Add a product (operators).
#[utoipa::path(post, path = "/api/v1/products", tag = "entitlements", request_body = NewProduct,
    responses((status = 201, body = Product), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "The code is taken"), (status = 422, body = Problem)))]
async fn add_product(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Json(new): Json<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let product = catalog::add_product(&state, &actor_of(&current.account, &from), &new).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Rename a product or change its versions (operators).
#[utoipa::path(patch, path = "/api/v1/products/{code}", tag = "entitlements",
    params(("code" = String, Path)), request_body = ProductChange,
    responses((status = 200, body = Product), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn change_product(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Path(code): Path<String>,
    Json(change): Json<ProductChange>,
) -> ApiResult<Json<Product>> {
    let actor = actor_of(&current.account, &from);
    Ok(Json(
        catalog::change_product(&state, &actor, &code, &change).await?,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct SubscriptionQuery {
    /// One organization's subscriptions.
    #[serde(default)]
    org_id: Option<Uuid>,
}

/// Subscriptions, newest first (operators).
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "entitlements",
    params(SubscriptionQuery),
    responses((status = 200, body = Vec<Subscription>), (status = 403, body = Problem)))]
async fn list_subscriptions(
    State(state): State<AppState>,
    _operator: Operator,
    Query(query): Query<SubscriptionQuery>,
) -> ApiResult<Json<Vec<Subscription>>> {
    let mut conn = state.db.reader().await?;
    Ok(Json(catalog::subscriptions(&mut conn, query.org_id).await?))
}

/// Add a subscription for an organization (operators).
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "entitlements", request_body = NewSubscription,
    responses((status = 201, body = Subscription), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn add_subscription(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Json(new): Json<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let actor = actor_of(&current.account, &from);
    let created = catalog::add_subscription(&state, &actor, &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One subscription (operators).
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "entitlements",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Subscription), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_subscription(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Subscription>> {
    Ok(Json(catalog::get_subscription(&state, id).await?))
}

/// Change the seats, dates or products of a subscription (operators).
#[utoipa::path(patch, path = "/api/v1/subscriptions/{id}", tag = "entitlements",
    params(("id" = Uuid, Path)), request_body = SubscriptionChange,
    responses((status = 200, body = Subscription), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Ended"), (status = 422, body = Problem)))]
async fn change_subscription(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Path(id): Path<Uuid>,
    Json(change): Json<SubscriptionChange>,
) -> ApiResult<Json<Subscription>> {
    let actor = actor_of(&current.account, &from);
    Ok(Json(
        catalog::change_subscription(&state, &actor, id, &change).await?,
    ))
}

/// End a subscription now: it grants no new leases or checkouts from this moment
/// (operators). Ending it again changes nothing.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/end", tag = "entitlements",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Subscription), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn end_subscription(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Subscription>> {
    let actor = actor_of(&current.account, &from);
    Ok(Json(catalog::end_subscription(&state, &actor, id).await?))
}

/// What the signed-in person may use now: each product of each active subscription of
/// their organizations.
#[utoipa::path(get, path = "/api/v1/me/entitlements", tag = "entitlements",
    responses((status = 200, body = Vec<Entitlement>), (status = 401, body = Problem)))]
async fn my_entitlements(
    State(state): State<AppState>,
    LicensingCaller(account): LicensingCaller,
) -> ApiResult<Json<Vec<Entitlement>>> {
    let mut conn = state.db.reader().await?;
    Ok(Json(
        catalog::entitlements_of(&mut conn, account.id, now_ms()).await?,
    ))
}

/// Take an online lease for a product on a machine: who pays is decided, a seat is taken
/// (or shared with this machine's other leases) under the overage policy, and the signed
/// lease is answered. An `Idempotency-Key` header makes a retried request answer the
/// same lease instead of taking a second seat.
#[utoipa::path(post, path = "/api/v1/leases", tag = "entitlements", request_body = LeaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request answer the same lease")),
    responses((status = 201, body = Lease), (status = 200, body = Lease, description = "The lease an earlier request with this Idempotency-Key took"),
        (status = 401, body = Problem), (status = 403, body = Problem, description = "No active subscription for this product"),
        (status = 409, body = Problem, description = "no_seat_available: every seat is in use"), (status = 422, body = Problem)))]
async fn acquire_lease(
    State(state): State<AppState>,
    LeaseCaller(caller): LeaseCaller,
    headers: axum::http::HeaderMap,
    Json(request): Json<LeaseRequest>,
) -> ApiResult<(StatusCode, Json<Lease>)> {
    let key = match headers.get("idempotency-key") {
        Some(value) => Some(value.to_str().map_err(|_| {
            crate::error::ApiError::field(
                "Idempotency-Key",
                "invalid",
                "An Idempotency-Key is 1 to 200 printable characters.",
            )
        })?),
        None => None,
    };
    let (lease, new) = leases::acquire(&state, caller, &request, key).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(lease)))
}

/// Renew a lease: the seat is kept another interval, the offline grace starts again, and
/// a freshly signed lease echoes the new nonce. 404 once the seat has lapsed.
#[utoipa::path(post, path = "/api/v1/leases/{id}/heartbeat", tag = "entitlements",
    params(("id" = Uuid, Path)), request_body = HeartbeatRequest,
    responses((status = 200, body = Lease), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn heartbeat(
    State(state): State<AppState>,
    LeaseCaller(caller): LeaseCaller,
    Path(id): Path<Uuid>,
    Json(request): Json<HeartbeatRequest>,
) -> ApiResult<Json<Lease>> {
    Ok(Json(
        leases::heartbeat(&state, caller, id, &request.nonce).await?,
    ))
}

/// Release a lease: its seat is free at once (unless this machine's other leases share it).
#[utoipa::path(delete, path = "/api/v1/leases/{id}", tag = "entitlements",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn release_lease(
    State(state): State<AppState>,
    LicensingCaller(account): LicensingCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    leases::release(&state, &account, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct CheckoutQuery {
    /// Also those expired more than three months ago.
    #[serde(default)]
    all: bool,
}

/// The organization's checkouts, newest first (Administrators and License Checkout).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/checkouts", tag = "entitlements",
    params(("org_id" = Uuid, Path), CheckoutQuery),
    responses((status = 200, body = Vec<Checkout>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_checkouts(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
    Query(query): Query<CheckoutQuery>,
) -> ApiResult<Json<Vec<Checkout>>> {
    Ok(Json(
        checkouts::list(&state, &current.account, org_id, query.all).await?,
    ))
}

/// Check a license out for a person, a machine and a version: it holds a seat until it
/// expires or is checked in, and the answer carries its license file.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/checkouts", tag = "entitlements",
    params(("org_id" = Uuid, Path)), request_body = CheckoutRequest,
    responses((status = 201, body = CheckoutCreated), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "no_seat_available"), (status = 422, body = Problem)))]
async fn check_out(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    from: Client,
    Path(org_id): Path<Uuid>,
    Json(request): Json<CheckoutRequest>,
) -> ApiResult<(StatusCode, Json<CheckoutCreated>)> {
    let created = checkouts::check_out(&state, &current.account, org_id, &request, &from).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A checkout's license file, to download.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/checkouts/{id}/license", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("id" = Uuid, Path)),
    responses((status = 200, content_type = "application/x-entitle-license", body = String), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn checkout_license(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let (checkout, file) = checkouts::license(&state, &current.account, org_id, id).await?;
    Ok(license_download(&checkout, file))
}

/// A license file as a download named after its product and checkout.
fn license_download(checkout: &Checkout, file: String) -> Response {
    let name = format!("{}-{}.lic", checkout.product, checkout.id);
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-entitle-license".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        file,
    )
        .into_response()
}

/// The reserved licenses one holds, newest first (those expired more than three months
/// ago left out).
#[utoipa::path(get, path = "/api/v1/me/checkouts", tag = "entitlements",
    responses((status = 200, body = Vec<Checkout>), (status = 401, body = Problem)))]
async fn my_checkouts(
    State(state): State<AppState>,
    LicensingCaller(account): LicensingCaller,
) -> ApiResult<Json<Vec<Checkout>>> {
    Ok(Json(checkouts::of_holder(&state, &account).await?))
}

/// The license file of a reserved license one holds (what the License Tool imports).
#[utoipa::path(get, path = "/api/v1/me/checkouts/{id}/license", tag = "entitlements",
    params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "application/x-entitle-license", body = String), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn my_checkout_license(
    State(state): State<AppState>,
    LicensingCaller(account): LicensingCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (checkout, file) = checkouts::license_of_holder(&state, &account, id).await?;
    Ok(license_download(&checkout, file))
}

/// Check a license in (the organization's administrators): its seat is free at once and
/// it goes on the revocation list. Checking in again changes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/checkouts/{id}/check-in", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("id" = Uuid, Path)),
    responses((status = 200, body = Checkout), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn check_in(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    from: Client,
    Path((org_id, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<Checkout>> {
    Ok(Json(
        checkouts::check_in(&state, &current.account, Some(org_id), id, &from).await?,
    ))
}

/// Check in a license one holds (the `entitle` client returning a file early).
#[utoipa::path(post, path = "/api/v1/me/checkouts/{id}/check-in", tag = "entitlements",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Checkout), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn check_in_mine(
    State(state): State<AppState>,
    LicensingCaller(account): LicensingCaller,
    from: Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Checkout>> {
    Ok(Json(
        checkouts::check_in(&state, &account, None, id, &from).await?,
    ))
}

/// The signed revocation list: every checked-in license not yet expired, with a sequence
/// number that only grows (a compact JWS, docs/license-format.md).
#[utoipa::path(get, path = "/api/v1/revocations", tag = "entitlements", security(()),
    responses((status = 200, content_type = "application/jwt", body = String)))]
async fn revocations(State(state): State<AppState>) -> ApiResult<Response> {
    let list = checkouts::revocation_list(&state).await?;
    Ok(([(header::CONTENT_TYPE, "application/jwt")], list).into_response())
}
