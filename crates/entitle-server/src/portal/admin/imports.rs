//! Bulk registration: uploading a CSV file, its staged preview, and committing it.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, State};
use entitle_proto::ImportBatch;
use serde::Deserialize;
use uuid::Uuid;

use super::{date, see_other, OrgPage, PageResult};
use crate::{
    app::{AppState, Client},
    error::{ApiError, Path, Query},
    orgs::imports,
    portal::{
        confirmed, csrf, form_problem, plural, CheckedForm, Chrome, Confirmation, FormError, Page,
        PageError,
    },
};

/// An uploaded file in a list of them.
pub(super) struct BatchRow {
    pub id: Uuid,
    pub file_name: String,
    pub uploaded: String,
    pub summary: String,
    pub state: String,
}

impl BatchRow {
    pub fn new(
        id: Uuid,
        file_name: &str,
        created_at: i64,
        committed_at: Option<i64>,
        counts: &std::collections::BTreeMap<String, i64>,
    ) -> BatchRow {
        BatchRow {
            id,
            file_name: file_name.to_owned(),
            uploaded: date(created_at),
            summary: counts_summary(counts),
            state: match committed_at {
                Some(at) => format!("Committed {}", date(at)),
                None => "Waiting for review".to_owned(),
            },
        }
    }
}

/// "998 valid, 2 duplicate, 1 removed".
fn counts_summary(counts: &std::collections::BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(status, n)| format!("{n} {}", status.replace('_', " ")))
        .collect();
    if parts.is_empty() {
        "no rows".to_owned()
    } else {
        parts.join(", ")
    }
}

#[derive(Template)]
#[template(path = "pages/org_imports.html")]
struct ImportsPage {
    chrome: Chrome,
    org_id: Uuid,
    batches: Vec<BatchRow>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn imports_page(state: &AppState, org: OrgPage, error: Option<ApiError>) -> PageResult {
    let batches = imports::list(state, &org.current.account, org.org_id()).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = ImportsPage {
        chrome: org.chrome(state, "imports").await?,
        org_id: org.org_id(),
        batches: batches
            .iter()
            .map(|b| BatchRow::new(b.id, &b.file_name, b.created_at, b.committed_at, &b.counts))
            .collect(),
        notice: org.notice(None),
        errors,
        form_error,
    };
    Ok(org.respond(&template))
}

pub async fn imports(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/imports"));
    imports_page(&state, org, None).await
}

/// The file of an upload form (multipart, the CSRF token first, then `file`): its name
/// and bytes; none when no file was chosen. The token is checked before the file is read.
pub(super) async fn uploaded_file(
    state: &AppState,
    org: &OrgPage,
    mut multipart: Multipart,
) -> Result<Option<(String, Vec<u8>)>, PageError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        PageError(if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request(
                "invalid_form",
                format!("The upload is malformed: {}", e.body_text()),
            )
        })
    };
    let mut token_checked = false;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf_token") => {
                let token = field.text().await.map_err(malformed)?;
                if !csrf::verify(state, &org.page.jar, &token) {
                    return Err(crate::portal::csrf_failed().into());
                }
                token_checked = true;
            }
            Some("file") if token_checked => {
                let name = field
                    .file_name()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or("upload.csv")
                    .to_owned();
                let bytes = field.bytes().await.map_err(malformed)?;
                file = Some((name, bytes.to_vec()));
            }
            _ => return Err(crate::portal::csrf_failed().into()),
        }
    }
    Ok(file.filter(|(_, bytes)| !bytes.is_empty()))
}

/// The refusal of an upload form sent without a file.
pub(super) fn missing_file() -> ApiError {
    ApiError::field("file", "missing_file", "Choose a CSV file to upload.")
}

/// The upload: stages the file and opens its preview.
pub async fn upload(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    multipart: Multipart,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/imports"));
    let Some((name, bytes)) = uploaded_file(&state, &org, multipart).await? else {
        return imports_page(&state, org, Some(missing_file())).await;
    };
    match imports::stage(&state, &org.current.account, org_id, &name, &bytes, &client).await {
        Ok(batch) => Ok(see_other(format!("/orgs/{org_id}/imports/{}", batch.id))),
        Err(error) => imports_page(&state, org, Some(error)).await,
    }
}

/// A staged row with how the preview shows its status (or, once committed, its result).
struct PreviewRow {
    row: entitle_proto::ImportRow,
    /// The roles as written, one after another: "Usage Reports, License Checkout".
    roles: String,
    css: &'static str,
    badge: &'static str,
    status: &'static str,
}

fn preview_row(row: &entitle_proto::ImportRow) -> PreviewRow {
    let (css, status) = if row.removed {
        ("removed", "Removed")
    } else {
        match row.status.as_str() {
            "valid" => ("valid", "Valid"),
            "duplicate" => ("duplicate", "Duplicate"),
            "already_member" => ("already_member", "Already a member"),
            "other_organization" => ("other_organization", "In another organization"),
            _ => ("invalid", "Cannot be added"),
        }
    };
    let (badge, status) = match row.result.as_deref() {
        None => (css, status),
        Some("added_and_invited") => ("added", "Added and invited"),
        Some("added") => ("added", "Added"),
        Some("removed") => ("removed", "Removed"),
        Some(_) => ("not_added", "Not added"),
    };
    PreviewRow {
        roles: row
            .roles
            .split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        row: row.clone(),
        css,
        badge,
        status,
    }
}

/// A row worth a look before committing: one that cannot be added, or holds a value
/// that starts like a formula.
fn flagged(row: &entitle_proto::ImportRow) -> bool {
    !row.removed && (row.status != "valid" || !row.warnings.is_empty())
}

/// What the preview says above the rows: what committing will do, or what it did.
fn batch_summary(batch: &ImportBatch) -> String {
    let rows = batch.rows.len() as i64;
    let count = |status: &str| batch.counts.get(status).copied().unwrap_or(0);
    if batch.committed_at.is_none() {
        let valid = count("valid");
        let removed = count("removed");
        let mut parts = vec![format!(
            "{} will be added",
            plural(valid, "person", "people")
        )];
        let skipped = rows - valid - removed;
        if skipped > 0 {
            parts.push(format!(
                "{} cannot be added",
                plural(skipped, "row", "rows")
            ));
        }
        if removed > 0 {
            parts.push(format!("{removed} removed"));
        }
        return format!("{}: {}.", plural(rows, "row", "rows"), parts.join(", "));
    }
    let result = |code: &str| {
        batch
            .rows
            .iter()
            .filter(|r| r.result.as_deref() == Some(code))
            .count() as i64
    };
    let (invited, had_accounts) = (result("added_and_invited"), result("added"));
    let mut summary = format!(
        "{} added",
        plural(invited + had_accounts, "person was", "people were")
    );
    if invited > 0 && had_accounts > 0 {
        summary.push_str(&format!(
            " ({invited} invited by email, {had_accounts} had an account already)"
        ));
    } else if invited > 0 {
        summary.push_str(" and invited by email");
    }
    let not_added = result("not_added");
    if not_added > 0 {
        summary.push_str(&format!(
            "; {} not added",
            plural(not_added, "row was", "rows were")
        ));
    }
    let removed = result("removed");
    if removed > 0 {
        summary.push_str(&format!(
            "; {} removed before committing",
            plural(removed, "row was", "rows were")
        ));
    }
    summary.push('.');
    summary
}

#[derive(Template)]
#[template(path = "pages/org_import.html")]
struct ImportPage {
    chrome: Chrome,
    org_id: Uuid,
    batch: ImportBatch,
    summary: String,
    committed: Option<String>,
    rows: Vec<PreviewRow>,
    only_problems: bool,
    /// Rows worth a look (the "only problems" filter).
    flagged: usize,
    valid: i64,
    /// "3 people".
    valid_people: String,
    /// Rows that cannot be added and are not removed yet.
    problems: i64,
    /// "2 rows".
    problem_rows: String,
    discard: Confirmation,
    notice: Option<String>,
    form_error: Option<FormError>,
}

#[derive(Deserialize, Default)]
pub struct PreviewQuery {
    #[serde(default)]
    show: Option<String>,
}

fn discard_confirmation(org_id: Uuid, batch: &ImportBatch) -> Confirmation {
    Confirmation {
        title: format!("Discard {}?", batch.file_name),
        detail: format!(
            "Nobody from it has been added. Its {} are deleted; upload the file again to start over.",
            plural(batch.rows.len() as i64, "row", "rows")
        ),
        button: "Discard",
        action: format!("/orgs/{org_id}/imports/{}/discard", batch.id),
        fields: Vec::new(),
        back: format!("/orgs/{org_id}/imports/{}", batch.id),
    }
}

async fn import_page(
    state: &AppState,
    org: OrgPage,
    batch_id: Uuid,
    only_problems: bool,
    error: Option<ApiError>,
) -> PageResult {
    let batch = imports::get(state, &org.current.account, org.org_id(), batch_id).await?;
    let form_error = match error {
        Some(error) => form_problem(error)?.1,
        None => None,
    };
    let valid = batch.counts.get("valid").copied().unwrap_or(0);
    let problems = batch
        .rows
        .iter()
        .filter(|r| !r.removed && r.status != "valid")
        .count() as i64;
    let template = ImportPage {
        chrome: org.chrome(state, "imports").await?,
        org_id: org.org_id(),
        summary: batch_summary(&batch),
        committed: batch.committed_at.map(date),
        rows: batch
            .rows
            .iter()
            .filter(|r| !only_problems || flagged(r))
            .map(preview_row)
            .collect(),
        only_problems,
        flagged: batch.rows.iter().filter(|r| flagged(r)).count(),
        valid,
        valid_people: plural(valid, "person", "people"),
        problems,
        problem_rows: plural(problems, "row", "rows"),
        discard: discard_confirmation(org.org_id(), &batch),
        notice: org.notice(None),
        form_error,
        batch,
    };
    Ok(org.respond(&template))
}

fn preview_path(org_id: Uuid, batch_id: Uuid, only_problems: bool) -> String {
    let show = if only_problems { "?show=problems" } else { "" };
    format!("/orgs/{org_id}/imports/{batch_id}{show}")
}

pub async fn import(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    Query(query): Query<PreviewQuery>,
) -> PageResult {
    let only_problems = query.show.as_deref() == Some("problems");
    let here = preview_path(org_id, batch_id, only_problems);
    let org = org_page!(&state, page, org_id, &here);
    import_page(&state, org, batch_id, only_problems, None).await
}

pub async fn remove_import_row(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id, number)): Path<(Uuid, Uuid, i64)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let only_problems = form.get("show").map(String::as_str) == Some("problems");
    let here = preview_path(org_id, batch_id, only_problems);
    let org = org_page!(&state, page, org_id, &here);
    match imports::remove_row(&state, &org.current.account, org_id, batch_id, number).await {
        Ok(_) => Ok(see_other(here)),
        Err(error) => import_page(&state, org, batch_id, only_problems, Some(error)).await,
    }
}

pub async fn remove_invalid_import_rows(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = preview_path(org_id, batch_id, false);
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    match imports::remove_rows_that_cannot_be_added(&state, &account, org_id, batch_id).await {
        Ok((_, removed)) => {
            let notice = format!(
                "Removed {} that could not be added.",
                plural(removed as i64, "row", "rows")
            );
            Ok(org.redirect(&state, &here, &notice))
        }
        Err(error) => import_page(&state, org, batch_id, false, Some(error)).await,
    }
}

pub async fn discard_import(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = preview_path(org_id, batch_id, false);
    let org = org_page!(&state, page, org_id, &here);
    if !confirmed(form.iter()) {
        let batch = imports::get(&state, &org.current.account, org_id, batch_id).await?;
        return org
            .ask(&state, "imports", discard_confirmation(org_id, &batch))
            .await;
    }
    let account = org.current.account.clone();
    match imports::discard(&state, &account, org_id, batch_id, &client).await {
        Ok(batch) => {
            let notice = format!("Discarded {}: nobody from it was added.", batch.file_name);
            Ok(org.redirect(&state, &format!("/orgs/{org_id}/imports"), &notice))
        }
        Err(error) => import_page(&state, org, batch_id, false, Some(error)).await,
    }
}

pub async fn commit_import(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = preview_path(org_id, batch_id, false);
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    match imports::commit(&state, &account, org_id, batch_id, &client).await {
        Ok(batch) => {
            let notice = format!("Committed {}. {}", batch.file_name, batch_summary(&batch));
            Ok(org.redirect(&state, &here, &notice))
        }
        Err(error) => import_page(&state, org, batch_id, false, Some(error)).await,
    }
}
