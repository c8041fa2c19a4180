//! An organization's licenses: its subscriptions with the seats in use, its reserved
//! checkouts (create, download, check in), and bulk checkout from a CSV file with its
//! staged preview. Every page calls the functions the JSON API calls.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, State};
use entitle_proto::{Checkout, CheckoutBatch, CheckoutBatchRow, CheckoutRequest};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    date,
    imports::{missing_file, uploaded_file, BatchRow},
    see_other, OrgPage, PageResult,
};
use crate::{
    app::{AppState, Client},
    entitlements::{bulk_checkouts, catalog, checkouts},
    error::{ApiError, Path, Query},
    orgs::roles::Action,
    portal::{confirmed, form_problem, plural, CheckedForm, Chrome, Confirmation, FormError, Page},
};

struct SubscriptionRow {
    products: String,
    seats: i64,
    period: String,
    status: String,
    overage: String,
}

struct SeatsRow {
    product: String,
    product_name: String,
    seats: i64,
    leased: i64,
    reserved: i64,
    overage: i64,
    in_use: i64,
    /// Of the seats owned, in percent (capped at 100) for the meter.
    percent: i64,
    limit: String,
}

struct CheckoutRow {
    checkout: Checkout,
    expires: String,
    status: &'static str,
    check_in: Option<Confirmation>,
}

/// The checkout form as typed.
#[derive(Deserialize, Default, Clone)]
pub struct CheckoutForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    machine_name: String,
    #[serde(default)]
    expires: String,
}

#[derive(Template)]
#[template(path = "pages/org_licenses.html")]
struct LicensesPage {
    chrome: Chrome,
    org_id: Uuid,
    subscriptions: Vec<SubscriptionRow>,
    seats: Vec<SeatsRow>,
    may_check_out: bool,
    checkouts: Vec<CheckoutRow>,
    show_all: bool,
    /// A checkout just made, and when it expires: its file's download link is offered
    /// at the top.
    created: Option<(Checkout, String)>,
    form: CheckoutForm,
    products: Vec<String>,
    batches: Vec<BatchRow>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

#[derive(Deserialize, Default)]
pub struct LicensesQuery {
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    created: Option<Uuid>,
}

/// The last moment an expiry covers, as people read it: the day a license runs through
/// when it ends at a UTC midnight (as a date typed in a form or file does), else the
/// minute.
pub(crate) fn through(expires_at: i64) -> String {
    if expires_at.rem_euclid(86_400_000) == 0 {
        date(expires_at - 1).chars().take(10).collect()
    } else {
        date(expires_at)
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "reserved" => "Reserved",
        "checked_in" => "Checked in",
        _ => "Expired",
    }
}

fn check_in_confirmation(org_id: Uuid, checkout: &Checkout) -> Confirmation {
    Confirmation {
        title: format!(
            "Check in {}'s {} license on {}?",
            checkout.email, checkout.product, checkout.machine_name
        ),
        detail: "Its seat is free at once, and the file stops working wherever it is installed once the machine fetches the revocation list.".to_owned(),
        button: "Check in",
        action: format!("/orgs/{org_id}/licenses/checkouts/{}/check-in", checkout.id),
        fields: Vec::new(),
        back: format!("/orgs/{org_id}/licenses"),
    }
}

async fn licenses_page(
    state: &AppState,
    org: OrgPage,
    query: &LicensesQuery,
    form: CheckoutForm,
    error: Option<ApiError>,
) -> PageResult {
    let account = &org.current.account;
    let org_id = org.org_id();
    let subscriptions = catalog::org_subscriptions(state, account, org_id).await?;
    let seats = catalog::org_seats(state, account, org_id).await?;
    let may_check_out = org.access.may(Action::CheckOutLicenses);
    let show_all = query.all.is_some();
    let (checkouts, batches) = if may_check_out {
        (
            checkouts::list(state, account, org_id, show_all).await?,
            bulk_checkouts::list(state, account, org_id).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let mut products: Vec<String> = seats.iter().map(|s| s.product.clone()).collect();
    products.sort();
    let template = LicensesPage {
        chrome: org.chrome(state, "licenses").await?,
        org_id,
        subscriptions: subscriptions
            .iter()
            .map(|s| SubscriptionRow {
                products: s.products.join(", "),
                seats: s.seats,
                period: format!("{} → {}", date(s.starts_at), date(s.ends_at)),
                status: s.status.clone(),
                overage: match (s.overage, s.overage_factor) {
                    (entitle_proto::OveragePolicy::Allow, _) => "allowed".to_owned(),
                    (entitle_proto::OveragePolicy::AllowUpTo, Some(f)) => {
                        format!("up to {f}× the seats")
                    }
                    _ => "refused".to_owned(),
                },
            })
            .collect(),
        seats: seats
            .iter()
            .map(|s| {
                let in_use = s.leased + s.reserved;
                SeatsRow {
                    product: s.product.clone(),
                    product_name: s.product_name.clone(),
                    seats: s.seats,
                    leased: s.leased,
                    reserved: s.reserved,
                    overage: s.overage,
                    in_use,
                    percent: if s.seats > 0 {
                        (in_use * 100 / s.seats).min(100)
                    } else {
                        100
                    },
                    limit: match s.cap {
                        None => "no limit on overage".to_owned(),
                        Some(cap) if cap > s.seats => format!("up to {cap} with overage"),
                        Some(_) => "no overage".to_owned(),
                    },
                }
            })
            .collect(),
        may_check_out,
        created: query
            .created
            .and_then(|id| checkouts.iter().find(|c| c.id == id))
            .map(|c| (c.clone(), through(c.expires_at))),
        checkouts: checkouts
            .iter()
            .map(|c| CheckoutRow {
                expires: through(c.expires_at),
                status: status_label(&c.status),
                check_in: (c.status == "reserved").then(|| check_in_confirmation(org_id, c)),
                checkout: c.clone(),
            })
            .collect(),
        show_all,
        form,
        products,
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

pub async fn licenses(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(query): Query<LicensesQuery>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/licenses"));
    let form = CheckoutForm {
        version: "*".to_owned(),
        expires: date(crate::db::now_ms() + 30 * 86_400_000)
            .chars()
            .take(10)
            .collect(),
        ..CheckoutForm::default()
    };
    licenses_page(&state, org, &query, form, None).await
}

pub async fn check_out(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<CheckoutForm>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/licenses"));
    let expires_at = match checkouts::parse_expiry(&form.expires) {
        Ok(at) => at,
        Err(message) => {
            let error = ApiError::field("expires", "invalid", message);
            return licenses_page(&state, org, &LicensesQuery::default(), form, Some(error)).await;
        }
    };
    let request = CheckoutRequest {
        email: form.email.clone(),
        product: form.product.clone(),
        version: form.version.clone(),
        machine_name: form.machine_name.clone(),
        expires_at,
    };
    let account = org.current.account.clone();
    match checkouts::check_out(&state, &account, org_id, &request, &client).await {
        Ok(created) => {
            let notice = format!(
                "Checked out {} for {} on {}.",
                created.checkout.product, created.checkout.email, created.checkout.machine_name
            );
            let path = format!(
                "/orgs/{org_id}/licenses?created={}#checkouts",
                created.checkout.id
            );
            Ok(org.redirect(&state, &path, &notice))
        }
        Err(ApiError::Validation(mut errors)) => {
            for error in &mut errors {
                if error.field == "expires_at" {
                    error.field = "expires".to_owned();
                }
            }
            let error = ApiError::Validation(errors);
            licenses_page(&state, org, &LicensesQuery::default(), form, Some(error)).await
        }
        Err(error) => {
            licenses_page(&state, org, &LicensesQuery::default(), form, Some(error)).await
        }
    }
}

pub async fn check_in(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, checkout_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/licenses");
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    if !confirmed(form.iter()) {
        let (checkout, _) = checkouts::license(&state, &account, org_id, checkout_id).await?;
        let confirmation = check_in_confirmation(org_id, &checkout);
        return org.ask(&state, "licenses", confirmation).await;
    }
    let checkout =
        checkouts::check_in(&state, &account, Some(org_id), checkout_id, &client).await?;
    let notice = format!(
        "Checked in {}'s {} license on {}: its seat is free.",
        checkout.email, checkout.product, checkout.machine_name
    );
    Ok(org.redirect(&state, &format!("{here}#checkouts"), &notice))
}

// ---- Bulk checkout -------------------------------------------------------------------

pub async fn upload(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    multipart: Multipart,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/licenses"));
    let query = LicensesQuery::default();
    let Some((name, bytes)) = uploaded_file(&state, &org, multipart).await? else {
        let form = CheckoutForm::default();
        return licenses_page(&state, org, &query, form, Some(missing_file())).await;
    };
    let account = org.current.account.clone();
    match bulk_checkouts::stage(&state, &account, org_id, &name, &bytes, &client).await {
        Ok(batch) => Ok(see_other(batch_path(org_id, batch.id, false))),
        Err(error) => {
            licenses_page(&state, org, &query, CheckoutForm::default(), Some(error)).await
        }
    }
}

fn batch_path(org_id: Uuid, batch_id: Uuid, only_problems: bool) -> String {
    let show = if only_problems { "?show=problems" } else { "" };
    format!("/orgs/{org_id}/licenses/batches/{batch_id}{show}")
}

/// A row with how the preview shows its status (or, once committed, its result).
struct PreviewRow {
    row: CheckoutBatchRow,
    expires: String,
    badge: &'static str,
    status: &'static str,
}

fn preview_row(row: &CheckoutBatchRow) -> PreviewRow {
    let (badge, status) = match (row.result.as_deref(), row.removed, row.status.as_str()) {
        (Some("checked_out"), _, _) => ("added", "Checked out"),
        (Some("removed"), _, _) | (None, true, _) => ("removed", "Removed"),
        (Some(_), _, _) => ("not_added", "Not checked out"),
        (None, false, "valid") => ("valid", "Valid"),
        (None, false, "duplicate") => ("duplicate", "Duplicate"),
        (None, false, "not_entitled") => ("invalid", "Not subscribed"),
        (None, false, "no_seat") => ("invalid", "No seat left"),
        (None, false, _) => ("invalid", "Invalid"),
    };
    PreviewRow {
        expires: row.expires_at.map(through).unwrap_or_default(),
        row: row.clone(),
        badge,
        status,
    }
}

fn flagged(row: &CheckoutBatchRow) -> bool {
    !row.removed && (row.status != "valid" || !row.warnings.is_empty())
}

/// What the preview says above the rows: what committing will do, or what it did.
fn batch_summary(batch: &CheckoutBatch) -> String {
    let rows = batch.rows.len() as i64;
    let count = |status: &str| batch.counts.get(status).copied().unwrap_or(0);
    if batch.committed_at.is_none() {
        let (valid, removed) = (count("valid"), count("removed"));
        let mut parts = vec![format!(
            "{} will be checked out",
            plural(valid, "license", "licenses")
        )];
        let skipped = rows - valid - removed;
        if skipped > 0 {
            parts.push(format!(
                "{} cannot be checked out",
                plural(skipped, "row", "rows")
            ));
        }
        if removed > 0 {
            parts.push(format!("{removed} removed"));
        }
        return format!("{}: {}.", plural(rows, "row", "rows"), parts.join(", "));
    }
    let done = batch
        .rows
        .iter()
        .filter(|r| r.result.as_deref() == Some("checked_out"))
        .count() as i64;
    format!(
        "{} checked out; {} not.",
        plural(done, "license was", "licenses were"),
        plural(rows - done, "row was", "rows were")
    )
}

fn discard_confirmation(org_id: Uuid, batch: &CheckoutBatch) -> Confirmation {
    Confirmation {
        title: format!("Discard {}?", batch.file_name),
        detail: format!(
            "Nothing from it has been checked out. Its {} are deleted; upload the file again to start over.",
            plural(batch.rows.len() as i64, "row", "rows")
        ),
        button: "Discard",
        action: format!("/orgs/{org_id}/licenses/batches/{}/discard", batch.id),
        fields: Vec::new(),
        back: batch_path(org_id, batch.id, false),
    }
}

#[derive(Template)]
#[template(path = "pages/org_checkout_batch.html")]
struct BatchPage {
    chrome: Chrome,
    org_id: Uuid,
    batch: CheckoutBatch,
    summary: String,
    committed: bool,
    rows: Vec<PreviewRow>,
    only_problems: bool,
    flagged: usize,
    valid: i64,
    valid_licenses: String,
    problems: i64,
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

async fn batch_page(
    state: &AppState,
    org: OrgPage,
    batch_id: Uuid,
    only_problems: bool,
    error: Option<ApiError>,
) -> PageResult {
    let batch = bulk_checkouts::get(state, &org.current.account, org.org_id(), batch_id).await?;
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
    let template = BatchPage {
        chrome: org.chrome(state, "licenses").await?,
        org_id: org.org_id(),
        summary: batch_summary(&batch),
        committed: batch.committed_at.is_some(),
        rows: batch
            .rows
            .iter()
            .filter(|r| !only_problems || flagged(r))
            .map(preview_row)
            .collect(),
        only_problems,
        flagged: batch.rows.iter().filter(|r| flagged(r)).count(),
        valid,
        valid_licenses: plural(valid, "license", "licenses"),
        problems,
        problem_rows: plural(problems, "row", "rows"),
        discard: discard_confirmation(org.org_id(), &batch),
        notice: org.notice(None),
        form_error,
        batch,
    };
    Ok(org.respond(&template))
}

pub async fn batch(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    Query(query): Query<PreviewQuery>,
) -> PageResult {
    let only_problems = query.show.as_deref() == Some("problems");
    let here = batch_path(org_id, batch_id, only_problems);
    let org = org_page!(&state, page, org_id, &here);
    batch_page(&state, org, batch_id, only_problems, None).await
}

/// The ✕ of one row (`number`), or "remove the rows that cannot be checked out".
async fn remove(
    state: AppState,
    page: Page,
    org_id: Uuid,
    batch_id: Uuid,
    number: Option<i64>,
    form: HashMap<String, String>,
) -> PageResult {
    let only_problems = form.get("show").map(String::as_str) == Some("problems");
    let here = batch_path(org_id, batch_id, only_problems);
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    match bulk_checkouts::remove_rows(&state, &account, org_id, batch_id, number).await {
        Ok((_, removed)) if number.is_none() => {
            let notice = format!(
                "Removed {} that could not be checked out.",
                plural(removed as i64, "row", "rows")
            );
            Ok(org.redirect(&state, &here, &notice))
        }
        Ok(_) => Ok(see_other(here)),
        Err(error) => batch_page(&state, org, batch_id, only_problems, Some(error)).await,
    }
}

pub async fn remove_row(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id, number)): Path<(Uuid, Uuid, i64)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    remove(state, page, org_id, batch_id, Some(number), form).await
}

pub async fn remove_invalid(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    remove(state, page, org_id, batch_id, None, form).await
}

pub async fn discard(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &batch_path(org_id, batch_id, false));
    let account = org.current.account.clone();
    if !confirmed(form.iter()) {
        let batch = bulk_checkouts::get(&state, &account, org_id, batch_id).await?;
        let confirmation = discard_confirmation(org_id, &batch);
        return org.ask(&state, "licenses", confirmation).await;
    }
    match bulk_checkouts::discard(&state, &account, org_id, batch_id, &client).await {
        Ok(batch) => {
            let notice = format!(
                "Discarded {}: nothing from it was checked out.",
                batch.file_name
            );
            Ok(org.redirect(&state, &format!("/orgs/{org_id}/licenses"), &notice))
        }
        Err(error) => batch_page(&state, org, batch_id, false, Some(error)).await,
    }
}

pub async fn commit(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = batch_path(org_id, batch_id, false);
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    match bulk_checkouts::commit(&state, &account, org_id, batch_id, &client).await {
        Ok(batch) => {
            let notice = format!("Committed {}. {}", batch.file_name, batch_summary(&batch));
            Ok(org.redirect(&state, &here, &notice))
        }
        Err(error) => batch_page(&state, org, batch_id, false, Some(error)).await,
    }
}
