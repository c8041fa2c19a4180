//! `/api/v1/orgs/{org_id}/checkout-batches`: staged bulk checkout, uploaded the way bulk
//! registration files are (raw `text/csv` body or a multipart form, up to 1 MiB); and what
//! an organization has: its subscriptions and seats in use.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use entitle_proto::{CheckoutBatch, Problem, ProductSeats, Subscription};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{bulk_checkouts, catalog};
use crate::{
    app::{AppState, Client},
    error::{ApiResult, Json, Path, Query},
    identity::session::SignedIn,
    orgs::imports_api::{csv_download, uploaded_file, StageQuery, MAX_FILE_BYTES},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stage, list))
        .routes(routes!(get, discard))
        .routes(routes!(remove_row))
        .routes(routes!(remove_rows_that_cannot_be_checked_out))
        .routes(routes!(commit))
        .routes(routes!(template))
        .routes(routes!(example))
        .routes(routes!(subscriptions))
        .routes(routes!(seats))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FILE_BYTES))
}

/// Stage a bulk checkout file (`Email,Product,Version,Machine,Expires`, at most 1,000
/// rows): every row gets a status (`valid`, `invalid`, `duplicate`, `not_entitled`,
/// `no_seat`); nothing is checked out until the batch is committed.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/checkout-batches", tag = "entitlements",
    params(("org_id" = Uuid, Path), StageQuery),
    request_body(content((String = "text/csv"), (crate::orgs::imports_api::UploadForm = "multipart/form-data"))),
    responses((status = 201, body = CheckoutBatch), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "The file cannot be read, or holds more than 1,000 rows")))]
async fn stage(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Query(query): Query<StageQuery>,
    request: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<CheckoutBatch>)> {
    let (file_name, body) = uploaded_file(request, &state).await?;
    let name = query
        .file_name
        .or(file_name)
        .unwrap_or_else(|| "checkouts.csv".to_owned());
    let batch =
        bulk_checkouts::stage(&state, &current.account, org_id, &name, &body, &client).await?;
    Ok((StatusCode::CREATED, Json(batch)))
}

/// The organization's bulk checkout files, newest first (without rows).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/checkout-batches", tag = "entitlements",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<CheckoutBatch>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<CheckoutBatch>>> {
    Ok(Json(
        bulk_checkouts::list(&state, &current.account, org_id).await?,
    ))
}

/// One bulk checkout file with its rows and their statuses (and, once committed, the
/// checkout each row made).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/checkout-batches/{batch_id}", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("batch_id" = Uuid, Path)),
    responses((status = 200, body = CheckoutBatch), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<CheckoutBatch>> {
    Ok(Json(
        bulk_checkouts::get(&state, &current.account, org_id, batch_id).await?,
    ))
}

/// Take a row out before committing (the "x").
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/checkout-batches/{batch_id}/rows/{number}", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("batch_id" = Uuid, Path), ("number" = i64, Path)),
    responses((status = 200, body = CheckoutBatch), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn remove_row(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, batch_id, number)): Path<(Uuid, Uuid, i64)>,
) -> ApiResult<Json<CheckoutBatch>> {
    let account = &current.account;
    let (batch, _) =
        bulk_checkouts::remove_rows(&state, account, org_id, batch_id, Some(number)).await?;
    Ok(Json(batch))
}

/// Take out every row that cannot be checked out, keeping the valid ones.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/checkout-batches/{batch_id}/remove-invalid", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("batch_id" = Uuid, Path)),
    responses((status = 200, body = CheckoutBatch), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn remove_rows_that_cannot_be_checked_out(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<CheckoutBatch>> {
    let account = &current.account;
    let (batch, _) = bulk_checkouts::remove_rows(&state, account, org_id, batch_id, None).await?;
    Ok(Json(batch))
}

/// Discard a staged file that is not committed: nothing from it is checked out.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/checkout-batches/{batch_id}", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("batch_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn discard(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    bulk_checkouts::discard(&state, &current.account, org_id, batch_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check out every remaining valid row, all or nothing; committing again changes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/checkout-batches/{batch_id}/commit", tag = "entitlements",
    params(("org_id" = Uuid, Path), ("batch_id" = Uuid, Path)),
    responses((status = 200, body = CheckoutBatch), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Rows became invalid since staging (`batch_changed`) or the seats ran out (`no_seat_available`); nothing was checked out")))]
async fn commit(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<CheckoutBatch>> {
    Ok(Json(
        bulk_checkouts::commit(&state, &current.account, org_id, batch_id, &client).await?,
    ))
}

/// The CSV template for bulk checkout.
#[utoipa::path(get, path = "/api/v1/checkout-batches/template", tag = "entitlements", security(()),
    responses((status = 200, content_type = "text/csv", body = String)))]
async fn template() -> impl IntoResponse {
    csv_download(
        "checkouts-template.csv",
        bulk_checkouts::TEMPLATE.to_owned(),
    )
}

/// An example file for bulk checkout.
#[utoipa::path(get, path = "/api/v1/checkout-batches/example", tag = "entitlements", security(()),
    responses((status = 200, content_type = "text/csv", body = String)))]
async fn example() -> impl IntoResponse {
    csv_download("checkouts-example.csv", bulk_checkouts::EXAMPLE.to_owned())
}

/// The organization's subscriptions, newest first (Administrators, Co-Administrators,
/// and members holding License Checkout or Usage Reports).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/subscriptions", tag = "entitlements",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<Subscription>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn subscriptions(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<Subscription>>> {
    Ok(Json(
        catalog::org_subscriptions(&state, &current.account, org_id).await?,
    ))
}

/// The organization's seats of each product now: owned, leased, reserved, overage.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/seats", tag = "entitlements",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ProductSeats>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn seats(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<ProductSeats>>> {
    Ok(Json(
        catalog::org_seats(&state, &current.account, org_id).await?,
    ))
}
