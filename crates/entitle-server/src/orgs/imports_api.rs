//! `/api/v1/orgs/{org_id}/imports`: staged bulk registration. Files are sent as the raw
//! request body (`text/csv`) or in a `multipart/form-data` form, up to 1 MiB.

use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request, State},
    http::{header, StatusCode},
    response::IntoResponse,
};
use entitle_proto::{ImportBatch, Problem};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{csv_import, imports};
use crate::{
    app::{AppState, Client},
    error::{ApiError, ApiResult, Json, Path, Query},
    identity::session::SignedIn,
};

/// A file of 1,000 users with long names and several roles stays well under this.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stage, list))
        .routes(routes!(get, discard))
        .routes(routes!(remove_row))
        .routes(routes!(remove_rows_that_cannot_be_added))
        .routes(routes!(commit))
        .routes(routes!(report))
        .routes(routes!(template))
        .routes(routes!(example))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FILE_BYTES))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageQuery {
    /// The uploaded file's name, shown in the list of imports.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// Stage a CSV file (`Email,First Name,Last Name,Country,Roles`, at most 1,000 users):
/// every row gets a status; nobody is added until the batch is committed. Send the file
/// as the body (`text/csv`) or as the `file` part of a `multipart/form-data` form (what
/// `curl -F file=@staff.csv` sends).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/imports", tag = "organizations",
    params(("org_id" = Uuid, Path), StageQuery),
    request_body(content(
        (String = "text/csv"),
        (UploadForm = "multipart/form-data"),
    )),
    responses((status = 201, body = ImportBatch), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem, description = "Neither text/csv nor multipart/form-data"),
        (status = 422, body = Problem, description = "The file cannot be read, or holds more than 1,000 users")))]
async fn stage(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path(org_id): Path<Uuid>,
    Query(query): Query<StageQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<ImportBatch>)> {
    let (file_name, body) = uploaded_file(request, &state).await?;
    let name = query
        .file_name
        .or(file_name)
        .unwrap_or_else(|| "upload.csv".to_owned());
    let batch = imports::stage(&state, &current.account, org_id, &name, &body, &client).await?;
    Ok((StatusCode::CREATED, Json(batch)))
}

/// A `multipart/form-data` upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form for the OpenAPI document
pub(crate) struct UploadForm {
    /// The CSV file.
    #[schema(format = Binary, content_media_type = "text/csv")]
    file: String,
}

/// The file of an upload and its name, if the form gave one: the raw body of a `text/csv`
/// request, or the `file` part of a multipart form. Any other type is 415.
pub(crate) async fn uploaded_file(
    request: Request,
    state: &AppState,
) -> ApiResult<(Option<String>, Bytes)> {
    let media_type = crate::error::media_type(request.headers());
    let unsupported = || {
        ApiError::UnsupportedMediaType(
            "Send the CSV file as the body with Content-Type: text/csv, or as the \"file\" part of a multipart/form-data form.".to_owned(),
        )
    };
    let too_large = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("invalid_body", text)
        }
    };
    match media_type.as_deref() {
        Some("text/csv" | "application/csv") => {
            let body = Bytes::from_request(request, state)
                .await
                .map_err(|e| too_large(e.status(), e.body_text()))?;
            Ok((None, body))
        }
        Some("multipart/form-data") => {
            let mut form = Multipart::from_request(request, state)
                .await
                .map_err(|e| too_large(e.status(), e.body_text()))?;
            while let Some(part) = form
                .next_field()
                .await
                .map_err(|e| too_large(e.status(), e.body_text()))?
            {
                if part.name() == Some("file") {
                    let name = part.file_name().map(str::to_owned);
                    let bytes = part
                        .bytes()
                        .await
                        .map_err(|e| too_large(e.status(), e.body_text()))?;
                    return Ok((name, bytes));
                }
            }
            Err(ApiError::field(
                "file",
                "missing_file",
                "The form has no part named \"file\" holding the CSV file.",
            ))
        }
        _ => Err(unsupported()),
    }
}

/// The organization's imports, newest first (without rows).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/imports", tag = "organizations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ImportBatch>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path(org_id): Path<Uuid>,
) -> ApiResult<Json<Vec<ImportBatch>>> {
    Ok(Json(imports::list(&state, &current.account, org_id).await?))
}

/// One import with its rows and their statuses.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/imports/{import_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, body = ImportBatch), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, import_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<ImportBatch>> {
    Ok(Json(
        imports::get(&state, &current.account, org_id, import_id).await?,
    ))
}

/// Take a row out of an import before committing it (the "x").
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/imports/{import_id}/rows/{number}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path), ("number" = i64, Path)),
    responses((status = 200, body = ImportBatch), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn remove_row(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, import_id, number)): Path<(Uuid, Uuid, i64)>,
) -> ApiResult<Json<ImportBatch>> {
    Ok(Json(
        imports::remove_row(&state, &current.account, org_id, import_id, number).await?,
    ))
}

/// Take out every row that cannot be added, keeping the valid ones.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/imports/{import_id}/remove-invalid", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, body = ImportBatch), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn remove_rows_that_cannot_be_added(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, import_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<ImportBatch>> {
    let (batch, _) =
        imports::remove_rows_that_cannot_be_added(&state, &current.account, org_id, import_id)
            .await?;
    Ok(Json(batch))
}

/// Discard a staged file that is not committed: nobody from it is added, and it is gone.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/imports/{import_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already committed")))]
async fn discard(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, import_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    imports::discard(&state, &current.account, org_id, import_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add every remaining valid row, all or nothing; committing again changes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/imports/{import_id}/commit", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, body = ImportBatch), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Rows became invalid since staging; nothing was added")))]
async fn commit(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Path((org_id, import_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<ImportBatch>> {
    Ok(Json(
        imports::commit(&state, &current.account, org_id, import_id, &client).await?,
    ))
}

/// A CSV file to download.
pub fn csv_download(name: &str, body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
}

/// The result report of an import, as CSV.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/imports/{import_id}/report", tag = "organizations",
    params(("org_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = Problem)))]
async fn report(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    Path((org_id, import_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<impl IntoResponse> {
    let report = imports::report(&state, &current.account, org_id, import_id).await?;
    Ok(csv_download(
        &format!("import-{import_id}-report.csv"),
        report,
    ))
}

/// The CSV template for bulk registration.
#[utoipa::path(get, path = "/api/v1/imports/template", tag = "organizations", security(()),
    responses((status = 200, content_type = "text/csv", body = String)))]
async fn template() -> impl IntoResponse {
    csv_download("users-template.csv", csv_import::TEMPLATE.to_owned())
}

/// An example file for bulk registration.
#[utoipa::path(get, path = "/api/v1/imports/example", tag = "organizations", security(()),
    responses((status = 200, content_type = "text/csv", body = String)))]
async fn example() -> impl IntoResponse {
    csv_download("users-example.csv", csv_import::EXAMPLE.to_owned())
}
