//! Import batches: a CSV file staged row by row, trimmed by the administrator, then
//! committed all-or-nothing.

use std::collections::HashMap;

use entitle_proto::{ImportBatch, ImportRow};
use serde_json::json;
use uuid::Uuid;

use super::{
    access::OrgAccess,
    csv_import::{self, FileRow, Known, StagedRow, Status},
    roles::Action,
};
use crate::{
    app::{AppState, Client},
    audit::{self, Entry},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{
        flows::{self, actor_of, Fields},
        person::CountryCode,
        store::AccountRow,
    },
    insert_many, on_db, staged,
};

/// What exists for each of `emails` (normalized): an account, a member here, elsewhere.
async fn known_emails(
    ex: &mut impl Executor,
    org_id: Uuid,
    emails: &[String],
) -> Result<HashMap<String, Known>, DbError> {
    let rows: Vec<(String, Option<Uuid>, bool)> = crate::fetch_in_chunks!(
        ex,
        "SELECT a.email, a.home_org_id, \
         EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = $1 AND m.account_id = a.id) AS here \
         FROM accounts a WHERE a.email IN {values}",
        emails,
        2,
        |query| query.bind(org_id)
    )?;
    let mut known = HashMap::new();
    for (email, home, here) in rows {
        let status = match (here, home) {
            (true, _) => Known::MemberHere,
            (false, Some(_)) => Known::MemberElsewhere,
            (false, None) => Known::Unaffiliated,
        };
        known.insert(email, status);
    }
    Ok(known)
}

async fn classify(
    ex: &mut impl Executor,
    access: &OrgAccess,
    rows: Vec<FileRow>,
) -> Result<Vec<StagedRow>, DbError> {
    let emails: Vec<String> = rows.iter().map(|r| r.email.trim().to_lowercase()).collect();
    let known = known_emails(ex, access.org.id, &emails).await?;
    Ok(csv_import::classify(
        rows,
        |email| known.get(email).copied().unwrap_or(Known::Nobody),
        |role| access.may(Action::AssignRole(role)),
    ))
}

async fn insert_rows(
    ex: &mut impl Executor,
    batch_id: Uuid,
    rows: &[StagedRow],
) -> Result<(), DbError> {
    insert_many!(
        ex,
        "INSERT INTO import_rows (batch_id, number, line, email, first_name, last_name, country, roles, \
         status, details, removed)",
        "",
        rows,
        11,
        |q, row| q
            .bind(batch_id)
            .bind(row.file.number as i64)
            .bind(row.file.line as i64)
            .bind(&row.file.email)
            .bind(&row.file.first_name)
            .bind(&row.file.last_name)
            .bind(&row.file.country)
            .bind(&row.file.roles)
            .bind(row.status.code())
            .bind(row.status.describe())
            .bind(false)
    )?;
    Ok(())
}

/// A file that cannot be staged, as the answer's problem with its `file` field.
pub fn unreadable(error: crate::csv_file::FileError) -> ApiError {
    ApiError::field("file", error.code(), error.to_string())
}

/// Reads and stages a file: every row gets its status; nothing is added yet.
pub async fn stage(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    file_name: &str,
    bytes: &[u8],
    from: &Client,
) -> ApiResult<ImportBatch> {
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::ManageUsers)?;
    let (rows, encoding) = csv_import::read(bytes).map_err(unreadable)?;
    let staged = classify(&mut tx, &access, rows).await?;
    let id = Uuid::now_v7();
    let file_name = staged::file_name(file_name);
    execute!(
        &mut tx,
        "INSERT INTO import_batches (id, org_id, file_name, created_by, created_at, encoding) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        org_id,
        &file_name,
        caller.id,
        now_ms(),
        encoding.as_str()
    )?;
    insert_rows(&mut tx, id, &staged).await?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.import_staged",
            target_type: "import",
            target_id: Some(id),
            target_label: Some(&file_name),
            org_id: Some(org_id),
            details: json!({ "rows": staged.len() }),
        },
    )
    .await?;
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok(batch)
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: Uuid,
    org_id: Uuid,
    file_name: String,
    created_at: i64,
    committed_at: Option<i64>,
    encoding: String,
}

#[derive(sqlx::FromRow)]
struct RowRow {
    number: i64,
    line: i64,
    email: String,
    first_name: String,
    last_name: String,
    country: String,
    roles: String,
    status: String,
    details: String,
    removed: bool,
    result: Option<String>,
}

/// A batch of `org_id` with its rows; 404 for a batch of another organization.
async fn load(ex: &mut impl Executor, org_id: Uuid, id: Uuid) -> ApiResult<ImportBatch> {
    let batch: BatchRow = on_db!(ex, |c| sqlx::query_as(
        "SELECT id, org_id, file_name, created_at, committed_at, encoding FROM import_batches WHERE id = $1 AND org_id = $2"
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(c)
    .await)
    .map_err(DbError::from)?
    .ok_or(ApiError::NotFound)?;
    let rows: Vec<RowRow> = on_db!(ex, |c| sqlx::query_as(
        "SELECT number, line, email, first_name, last_name, country, roles, status, details, removed, result \
         FROM import_rows WHERE batch_id = $1 ORDER BY number"
    )
    .bind(id)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    let counts = staged::counts(rows.iter().map(|r| (r.removed, r.status.as_str())));
    Ok(ImportBatch {
        id: batch.id,
        org_id: batch.org_id,
        file_name: batch.file_name,
        created_at: batch.created_at,
        committed_at: batch.committed_at,
        encoding: batch.encoding,
        counts,
        rows: rows
            .into_iter()
            .map(|r| ImportRow {
                warnings: Vec::new(),
                number: r.number,
                line: r.line,
                email: r.email,
                first_name: r.first_name,
                last_name: r.last_name,
                country_code: CountryCode::parse(&r.country)
                    .ok()
                    .map(|c| c.as_str().to_owned()),
                country: r.country,
                roles: r.roles,
                status: r.status,
                details: r.details,
                removed: r.removed,
                result: r.result,
            })
            .map(|mut row| {
                row.warnings = csv_import::formula_warnings(&file_row(&row));
                row
            })
            .collect(),
    })
}

/// A batch, for those who may manage users.
pub async fn get(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<ImportBatch> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ManageUsers)?;
    load(&mut conn, org_id, id).await
}

/// The organization's batches, newest first, without their rows.
pub async fn list(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<ImportBatch>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ManageUsers)?;
    let ids = staged::batch_ids(&mut conn, staged::Kind::Imports, org_id).await?;
    let mut batches = Vec::with_capacity(ids.len());
    for id in ids {
        let mut batch = load(&mut conn, org_id, id).await?;
        batch.rows.clear();
        batches.push(batch);
    }
    Ok(batches)
}

/// A batch of `org_id` that is not committed yet, for one who may manage users.
async fn uncommitted(
    tx: &mut Tx,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<ImportBatch> {
    OrgAccess::of(&mut *tx, caller, org_id)
        .await?
        .require(Action::ManageUsers)?;
    let batch = load(&mut *tx, org_id, id).await?;
    if batch.committed_at.is_some() {
        return Err(ApiError::conflict(
            "import_committed",
            "This import is committed; its rows cannot change.",
        ));
    }
    Ok(batch)
}

/// The "x": takes a row out of a batch that is not committed yet.
pub async fn remove_row(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    number: i64,
) -> ApiResult<ImportBatch> {
    let mut tx = state.db.begin().await?;
    uncommitted(&mut tx, caller, org_id, id).await?;
    let changed = staged::remove_rows(&mut tx, staged::Kind::Imports, id, Some(number)).await?;
    if changed == 0 {
        return Err(ApiError::NotFound);
    }
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok(batch)
}

/// Takes out every row that cannot be added (invalid, duplicate, already a member, in
/// another organization), leaving the valid ones; answers the batch and how many went.
pub async fn remove_rows_that_cannot_be_added(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<(ImportBatch, u64)> {
    let mut tx = state.db.begin().await?;
    uncommitted(&mut tx, caller, org_id, id).await?;
    let removed = staged::remove_rows(&mut tx, staged::Kind::Imports, id, None).await?;
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok((batch, removed))
}

/// Throws a staged file away: nobody from it was added, and its rows go. Committed
/// imports stay, as the record of who was added.
pub async fn discard(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<ImportBatch> {
    let mut tx = state.db.begin().await?;
    let batch = uncommitted(&mut tx, caller, org_id, id).await?;
    staged::delete(&mut tx, staged::Kind::Imports, id).await?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.import_discarded",
            target_type: "import",
            target_id: Some(id),
            target_label: Some(&batch.file_name),
            org_id: Some(org_id),
            details: json!({ "rows": batch.rows.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(batch)
}

fn file_row(row: &ImportRow) -> FileRow {
    FileRow {
        number: usize::try_from(row.number).unwrap_or(0),
        line: u64::try_from(row.line).unwrap_or(0),
        email: row.email.clone(),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        country: row.country.clone(),
        roles: row.roles.clone(),
    }
}

/// Adds every remaining valid row, with its roles, and invites them: all or nothing.
/// When the organization changed since staging so that a row is no longer valid,
/// nothing is added and the rows show their new status. Committing again does nothing.
pub async fn commit(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<ImportBatch> {
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::ManageUsers)?;
    let batch = load(&mut tx, org_id, id).await?;
    if batch.committed_at.is_some() {
        return Ok(batch);
    }
    let kept: Vec<&ImportRow> = batch
        .rows
        .iter()
        .filter(|r| !r.removed && r.status == "valid")
        .collect();
    let restaged = classify(&mut tx, &access, kept.iter().map(|r| file_row(r)).collect()).await?;
    let changed: Vec<&StagedRow> = restaged
        .iter()
        .filter(|r| r.status != Status::Valid)
        .collect();
    if !changed.is_empty() {
        for row in &changed {
            restatus(&mut tx, id, row).await?;
        }
        tx.commit().await?;
        return Err(ApiError::conflict(
            "import_changed",
            format!(
                "{} no longer valid (the organization changed since the file was staged); nothing was added. Review them and commit again.",
                match changed.len() {
                    1 => "1 row is".to_owned(),
                    n => format!("{n} rows are"),
                }
            ),
        ));
    }
    let actor = actor_of(caller, from);
    let mut people = Vec::with_capacity(restaged.len());
    for row in &restaged {
        let mut fields = Fields::default();
        let person = flows::parse_person(
            &mut fields,
            &row.email,
            &row.file.first_name,
            &row.file.last_name,
            &row.country,
        )
        .ok_or_else(|| anyhow::anyhow!("a valid row no longer parses"))?;
        people.push((person, row.roles.clone()));
    }
    let added = super::add_people(&mut tx, state, &access.org, &people, &actor).await?;
    let invited: Vec<i64> = restaged
        .iter()
        .zip(&added)
        .filter(|(_, (_, invitation))| invitation.is_some())
        .map(|(row, _)| row.file.number as i64)
        .collect();
    execute!(
        &mut tx,
        "UPDATE import_rows SET result = $1 WHERE batch_id = $2 AND removed = $3 AND status = $4",
        "added",
        id,
        false,
        Status::Valid.code()
    )?;
    crate::execute_in_chunks!(
        &mut tx,
        "UPDATE import_rows SET result = $1 WHERE batch_id = $2 AND number IN {values}",
        invited,
        3,
        |query| query.bind("added_and_invited").bind(id)
    )?;
    let invitations: Vec<_> = added.into_iter().filter_map(|(_, m)| m).collect();
    let now = now_ms();
    execute!(
        &mut tx,
        "UPDATE import_rows SET result = $1 WHERE batch_id = $2 AND result IS NULL AND removed = $3",
        "removed",
        id,
        true
    )?;
    execute!(
        &mut tx,
        "UPDATE import_rows SET result = $1 WHERE batch_id = $2 AND result IS NULL",
        "not_added",
        id
    )?;
    execute!(
        &mut tx,
        "UPDATE import_batches SET committed_at = $1, committed_by = $2 WHERE id = $3",
        now,
        caller.id,
        id
    )?;
    audit::record(
        &mut tx,
        &actor,
        Entry {
            action: "org.import_committed",
            target_type: "import",
            target_id: Some(id),
            target_label: Some(&batch.file_name),
            org_id: Some(org_id),
            details: json!({ "added": restaged.len() }),
        },
    )
    .await?;
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    for message in invitations {
        state.mailer.send_in_background(message);
    }
    Ok(batch)
}

async fn restatus(tx: &mut Tx, id: Uuid, row: &StagedRow) -> Result<(), DbError> {
    execute!(
        tx,
        "UPDATE import_rows SET status = $1, details = $2 WHERE batch_id = $3 AND number = $4",
        row.status.code(),
        row.status.describe(),
        id,
        row.file.number as i64
    )?;
    Ok(())
}

/// The result report as CSV: every row, its status and what the commit did.
pub async fn report(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<String> {
    let batch = get(state, caller, org_id, id).await?;
    let rows: Vec<(csv_import::ReportRow, String)> = batch
        .rows
        .iter()
        .map(|r| {
            let result = match (&r.result, r.removed) {
                (Some(code), _) => csv_import::result_words(code).to_owned(),
                (None, true) => csv_import::result_words("removed").to_owned(),
                (None, false) => "not committed yet".to_owned(),
            };
            (
                csv_import::ReportRow {
                    file: file_row(r),
                    status: r.status.clone(),
                    details: r.details.clone(),
                },
                result,
            )
        })
        .collect();
    Ok(csv_import::report(&rows))
}
