//! Bulk checkout: a CSV file of checkouts (person, product, version, machine, expiry),
//! staged with a status for every row, trimmed by the administrator, then committed
//! all-or-nothing — the way bulk registration works.

use std::collections::{BTreeMap, HashMap, HashSet};

use entitle_proto::{CheckoutBatch, CheckoutBatchRow, CheckoutRequest};
use serde_json::json;
use uuid::Uuid;

use super::checkouts::{self, NewCheckout};
use crate::{
    app::{AppState, Client},
    audit::{self, Entry},
    csv_file::{self, Layout},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{flows::actor_of, store::AccountRow},
    insert_many, on_db,
    orgs::{access::OrgAccess, roles::Action},
    staged,
};

/// The columns of a bulk checkout file.
pub static CHECKOUTS: Layout = Layout {
    columns: &["Email", "Product", "Version", "Machine", "Expires"],
    optional: &[],
    row: ("checkout", "checkouts"),
};

/// The template offered for download.
pub const TEMPLATE: &str = "Email,Product,Version,Machine,Expires\r\n";

/// The example file offered beside it.
pub const EXAMPLE: &str = "Email,Product,Version,Machine,Expires\r\n\
ana.silva@example.com,civil-designer,24.*,ANA-LAPTOP,2027-03-31\r\n\
ana.silva@example.com,bridge-analyst,*,ANA-LAPTOP,2027-03-31\r\n\
site.supplier@partner.example,civil-designer,24.2,SITE-PC-07,2027-01-15T18:00:00Z\r\n";

/// A row as written in the file (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub number: usize,
    pub line: u64,
    pub email: String,
    pub product: String,
    pub version: String,
    pub machine: String,
    pub expires: String,
}

/// Reads a bulk checkout file (see [`csv_file::read`]).
pub fn read(bytes: &[u8]) -> Result<(Vec<FileRow>, csv_file::Encoding), csv_file::FileError> {
    let (records, encoding) = csv_file::read(bytes, &CHECKOUTS)?;
    let rows = records
        .into_iter()
        .map(|record| {
            let [email, product, version, machine, expires]: [String; 5] =
                record.values.try_into().unwrap_or_default();
            FileRow {
                number: record.number,
                line: record.line,
                email,
                product,
                version,
                machine,
                expires,
            }
        })
        .collect();
    Ok((rows, encoding))
}

/// What the organization has of a product when the file is staged or committed.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    pub product_id: Uuid,
    /// The end of its latest active subscription covering the product; none without one.
    pub subscribed_until: Option<i64>,
    /// Seats that may still be taken (overage included); none when there is no limit.
    pub free: Option<i64>,
    /// Reserved machines (by seat key) holding a seat already: a checkout there shares it.
    pub held: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Valid,
    /// Problems, each "Column: message".
    Invalid(Vec<String>),
    /// The same person, product and machine as an earlier row, on line `of_line`.
    Duplicate {
        of_line: u64,
    },
    /// The organization has no active subscription for the product.
    NotEntitled,
    /// The seats ran out at this row.
    NoSeat {
        free: i64,
    },
}

impl Status {
    pub fn code(&self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid(_) => "invalid",
            Status::Duplicate { .. } => "duplicate",
            Status::NotEntitled => "not_entitled",
            Status::NoSeat { .. } => "no_seat",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Status::Valid => String::new(),
            Status::Invalid(problems) => problems.join(" "),
            Status::Duplicate { of_line } => format!(
                "Same person, product and machine as line {of_line}; only that line is checked out."
            ),
            Status::NotEntitled => {
                "This organization has no active subscription for this product.".to_owned()
            }
            Status::NoSeat { free } => format!(
                "No seat is left for this row: the rows above take the {} free. Check licenses in, or ask for more seats.",
                crate::words::plural(*free, "seat", "seats")
            ),
        }
    }
}

/// A row with its values checked; `expires_at` when the expiry reads as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow {
    pub file: FileRow,
    pub expires_at: Option<i64>,
    pub status: Status,
}

impl StagedRow {
    fn request(&self) -> CheckoutRequest {
        CheckoutRequest {
            email: self.file.email.clone(),
            product: self.file.product.clone(),
            version: self.file.version.clone(),
            machine_name: self.file.machine.clone(),
            expires_at: self.expires_at.unwrap_or(i64::MIN),
        }
    }
}

fn column_of(field: &str) -> &'static str {
    match field {
        "email" => "Email",
        "product" => "Product",
        "version" => "Version",
        "machine_name" => "Machine",
        _ => "Expires",
    }
}

/// Gives every row its status at `now`: the same checks as one checkout, then against
/// what the organization has (`terms` by product code; none for an unknown product),
/// counting the seats the rows above take.
pub fn classify(
    rows: Vec<FileRow>,
    now: i64,
    terms: impl Fn(&str) -> Option<Terms>,
) -> Vec<StagedRow> {
    let mut first_line_of: HashMap<(String, String, String), u64> = HashMap::new();
    // Per product: seats the rows above take, and the machines they take them for.
    let mut taken: HashMap<String, (i64, HashSet<String>)> = HashMap::new();
    let mut terms_of: HashMap<String, Option<Terms>> = HashMap::new();
    rows.into_iter()
        .map(|file| {
            let mut problems = Vec::new();
            let expires_at = match checkouts::parse_expiry(&file.expires) {
                Ok(at) => Some(at),
                Err(message) => {
                    problems.push(format!("Expires: {message}"));
                    None
                }
            };
            let mut staged = StagedRow {
                file,
                expires_at,
                status: Status::Valid,
            };
            let email = match checkouts::check_request(&staged.request(), now) {
                Ok(email) => Some(email),
                Err(ApiError::Validation(errors)) => {
                    for error in errors {
                        let column = column_of(&error.field);
                        if column != "Expires" || expires_at.is_some() {
                            problems.push(format!("{column}: {}", error.message));
                        }
                    }
                    None
                }
                Err(_) => None,
            };
            let product = staged.file.product.trim().to_owned();
            let terms = terms_of
                .entry(product.clone())
                .or_insert_with(|| terms(&product))
                .clone();
            if email.is_some() && terms.is_none() {
                problems.push(format!("Product: no product has the code {product}."));
            }
            let (Some(email), Some(terms)) = (email, terms) else {
                staged.status = Status::Invalid(problems);
                return staged;
            };
            let Some(until) = terms.subscribed_until else {
                staged.status = Status::NotEntitled;
                return staged;
            };
            if staged.expires_at > Some(until) {
                staged.status = Status::Invalid(vec![format!(
                    "Expires: past the end of the subscription ({}).",
                    crate::audit::rfc3339(until)
                )]);
                return staged;
            }
            let machine = staged.file.machine.trim().to_lowercase();
            let key = (email.as_str().to_owned(), product.clone(), machine.clone());
            if let Some(first) = first_line_of.get(&key) {
                staged.status = Status::Duplicate { of_line: *first };
                return staged;
            }
            let (count, machines) = taken.entry(product).or_default();
            let seat = checkouts::machine_key(&machine);
            if !terms.held.contains(&seat) && !machines.contains(&seat) {
                if let Some(free) = terms.free.filter(|free| *count >= *free) {
                    staged.status = Status::NoSeat { free: free.max(0) };
                    return staged;
                }
                *count += 1;
                machines.insert(seat);
            }
            first_line_of.insert(key, staged.file.line);
            staged
        })
        .collect()
}

/// What the organization has of each product the rows name, read in the transaction.
async fn terms(
    tx: &mut Tx,
    org_id: Uuid,
    rows: &[FileRow],
    now: i64,
) -> Result<HashMap<String, Terms>, DbError> {
    let mut codes: Vec<String> = rows.iter().map(|r| r.product.trim().to_owned()).collect();
    codes.sort();
    codes.dedup();
    let products: Vec<(String, Uuid)> = crate::fetch_in_chunks!(
        tx,
        "SELECT code, id FROM products WHERE code IN {values}",
        codes,
        1,
        |query| query
    )?;
    let mut all = HashMap::new();
    for (code, product_id) in products {
        let subscribed_until = checkouts::subscribed_until(tx, org_id, product_id, now).await?;
        let limits = super::seats::limits_of(tx, org_id, product_id, now).await?;
        let keys: Vec<String> = rows
            .iter()
            .filter(|r| r.product.trim() == code)
            .map(|r| checkouts::machine_key(&r.machine.trim().to_lowercase()))
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (held, live) = super::seats::live_in_pool(tx, org_id, product_id, &keys, now).await?;
        all.insert(
            code,
            Terms {
                product_id,
                subscribed_until,
                free: limits.cap.map(|cap| cap - live),
                held,
            },
        );
    }
    Ok(all)
}

async fn classify_in(
    tx: &mut Tx,
    org_id: Uuid,
    rows: Vec<FileRow>,
    now: i64,
) -> Result<(Vec<StagedRow>, HashMap<String, Terms>), DbError> {
    let terms = terms(tx, org_id, &rows, now).await?;
    let staged = classify(rows, now, |code| terms.get(code).cloned());
    Ok((staged, terms))
}

/// One audit entry about a batch, in the organization's log.
#[allow(clippy::too_many_arguments)] // one audit entry, spelled out
async fn record(
    tx: &mut Tx,
    caller: &AccountRow,
    from: &Client,
    org_id: Uuid,
    id: Uuid,
    file_name: &str,
    action: &'static str,
    details: serde_json::Value,
) -> ApiResult<()> {
    audit::record(
        tx,
        &actor_of(caller, from),
        Entry {
            action,
            target_type: "checkout_batch",
            target_id: Some(id),
            target_label: Some(file_name),
            org_id: Some(org_id),
            details,
        },
    )
    .await?;
    Ok(())
}

/// Reads and stages a file: every row gets its status; nothing is checked out yet.
pub async fn stage(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    file_name: &str,
    bytes: &[u8],
    from: &Client,
) -> ApiResult<CheckoutBatch> {
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let (rows, encoding) = read(bytes).map_err(crate::orgs::imports::unreadable)?;
    let (staged, _) = classify_in(&mut tx, org_id, rows, now).await?;
    let id = Uuid::now_v7();
    let file_name = staged::file_name(file_name);
    execute!(
        &mut tx,
        "INSERT INTO checkout_batches (id, org_id, file_name, encoding, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        org_id,
        &file_name,
        encoding.as_str(),
        caller.id,
        now
    )?;
    insert_many!(
        &mut tx,
        "INSERT INTO checkout_rows (batch_id, number, line, email, product, version, machine, \
         expires, status, details, removed)",
        "",
        staged,
        11,
        |q, row| q
            .bind(id)
            .bind(row.file.number as i64)
            .bind(row.file.line as i64)
            .bind(&row.file.email)
            .bind(&row.file.product)
            .bind(&row.file.version)
            .bind(&row.file.machine)
            .bind(&row.file.expires)
            .bind(row.status.code())
            .bind(row.status.describe())
            .bind(false)
    )?;
    record(
        &mut tx,
        caller,
        from,
        org_id,
        id,
        &file_name,
        "license.bulk_checkout_staged",
        json!({ "rows": staged.len() }),
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
    product: String,
    version: String,
    machine: String,
    expires: String,
    status: String,
    details: String,
    removed: bool,
    result: Option<String>,
    checkout_id: Option<Uuid>,
}

fn file_row(row: &CheckoutBatchRow) -> FileRow {
    FileRow {
        number: usize::try_from(row.number).unwrap_or(0),
        line: u64::try_from(row.line).unwrap_or(0),
        email: row.email.clone(),
        product: row.product.clone(),
        version: row.version.clone(),
        machine: row.machine.clone(),
        expires: row.expires.clone(),
    }
}

fn formula_warnings(row: &FileRow) -> Vec<String> {
    csv_file::formula_warnings(CHECKOUTS.columns.iter().copied().zip([
        row.email.as_str(),
        &row.product,
        &row.version,
        &row.machine,
        &row.expires,
    ]))
}

/// A batch of `org_id` with its rows; 404 for a batch of another organization.
async fn load(ex: &mut impl Executor, org_id: Uuid, id: Uuid) -> ApiResult<CheckoutBatch> {
    let batch: BatchRow = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT id, org_id, file_name, created_at, committed_at, encoding FROM checkout_batches \
         WHERE id = $1 AND org_id = $2"
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(c)
    .await
    })
    .map_err(DbError::from)?
    .ok_or(ApiError::NotFound)?;
    let rows: Vec<RowRow> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT number, line, email, product, version, machine, expires, status, details, removed, \
         result, checkout_id FROM checkout_rows WHERE batch_id = $1 ORDER BY number"
    )
    .bind(id)
    .fetch_all(c)
    .await
    })
    .map_err(DbError::from)?;
    let counts = staged::counts(rows.iter().map(|r| (r.removed, r.status.as_str())));
    Ok(CheckoutBatch {
        id: batch.id,
        org_id: batch.org_id,
        file_name: batch.file_name,
        created_at: batch.created_at,
        committed_at: batch.committed_at,
        encoding: batch.encoding,
        counts,
        rows: rows
            .into_iter()
            .map(|r| {
                let mut row = CheckoutBatchRow {
                    warnings: Vec::new(),
                    expires_at: checkouts::parse_expiry(&r.expires).ok(),
                    number: r.number,
                    line: r.line,
                    email: r.email,
                    product: r.product,
                    version: r.version,
                    machine: r.machine,
                    expires: r.expires,
                    status: r.status,
                    details: r.details,
                    removed: r.removed,
                    result: r.result,
                    checkout_id: r.checkout_id,
                };
                row.warnings = formula_warnings(&file_row(&row));
                row
            })
            .collect(),
    })
}

/// A batch, for those who may check licenses out.
pub async fn get(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<CheckoutBatch> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    load(&mut conn, org_id, id).await
}

/// The organization's batches, newest first, without their rows.
pub async fn list(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<CheckoutBatch>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let ids = staged::batch_ids(&mut conn, staged::Kind::Checkouts, org_id).await?;
    let mut batches = Vec::with_capacity(ids.len());
    for id in ids {
        let mut batch = load(&mut conn, org_id, id).await?;
        batch.rows.clear();
        batches.push(batch);
    }
    Ok(batches)
}

/// A batch of `org_id` not committed yet, for one who may check licenses out.
async fn uncommitted(
    tx: &mut Tx,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<CheckoutBatch> {
    OrgAccess::of(&mut *tx, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let batch = load(&mut *tx, org_id, id).await?;
    if batch.committed_at.is_some() {
        return Err(ApiError::conflict(
            "batch_committed",
            "This file is committed; its rows cannot change.",
        ));
    }
    Ok(batch)
}

/// Takes one row (`number`), or every row that cannot be checked out (`None`), out of a
/// batch not committed yet; answers the batch and how many rows went.
pub async fn remove_rows(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    number: Option<i64>,
) -> ApiResult<(CheckoutBatch, u64)> {
    let mut tx = state.db.begin().await?;
    uncommitted(&mut tx, caller, org_id, id).await?;
    let removed = staged::remove_rows(&mut tx, staged::Kind::Checkouts, id, number).await?;
    if number.is_some() && removed == 0 {
        return Err(ApiError::NotFound);
    }
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok((batch, removed))
}

/// Throws a staged file away; committed batches stay as the record of what was done.
pub async fn discard(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<CheckoutBatch> {
    let mut tx = state.db.begin().await?;
    let batch = uncommitted(&mut tx, caller, org_id, id).await?;
    staged::delete(&mut tx, staged::Kind::Checkouts, id).await?;
    record(
        &mut tx,
        caller,
        from,
        org_id,
        id,
        &batch.file_name,
        "license.bulk_checkout_discarded",
        json!({ "rows": batch.rows.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(batch)
}

/// Checks out every remaining valid row: all or nothing. When the organization changed
/// since staging so that a row is no longer valid (a subscription ended, seats were
/// taken), nothing is checked out and the rows show their new status. Committing again
/// does nothing.
pub async fn commit(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<CheckoutBatch> {
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let batch = load(&mut tx, org_id, id).await?;
    if batch.committed_at.is_some() {
        return Ok(batch);
    }
    let kept: Vec<FileRow> = batch
        .rows
        .iter()
        .filter(|r| !r.removed && r.status == "valid")
        .map(file_row)
        .collect();
    let (restaged, terms) = classify_in(&mut tx, org_id, kept, now).await?;
    let changed: Vec<&StagedRow> = restaged
        .iter()
        .filter(|r| r.status != Status::Valid)
        .collect();
    if !changed.is_empty() {
        for row in &changed {
            execute!(
                &mut tx,
                "UPDATE checkout_rows SET status = $1, details = $2 WHERE batch_id = $3 AND number = $4",
                row.status.code(),
                row.status.describe(),
                id,
                row.file.number as i64
            )?;
        }
        tx.commit().await?;
        return Err(ApiError::conflict(
            "batch_changed",
            format!(
                "{} no longer valid (the organization's subscriptions or seats changed since the file was staged); nothing was checked out. Review them and commit again.",
                crate::words::plural(changed.len() as i64, "row is", "rows are")
            ),
        ));
    }
    let mut by_product: BTreeMap<&str, Vec<&StagedRow>> = BTreeMap::new();
    for row in &restaged {
        by_product
            .entry(row.file.product.trim())
            .or_default()
            .push(row);
    }
    let mut written: Vec<(i64, Uuid)> = Vec::with_capacity(restaged.len());
    for (code, rows) in by_product {
        let product_id = terms
            .get(code)
            .map(|t| t.product_id)
            .ok_or_else(|| anyhow::anyhow!("a valid row's product has no terms"))?;
        let emails: Vec<String> = rows
            .iter()
            .map(|r| r.file.email.trim().to_lowercase())
            .collect();
        let wanted: Vec<NewCheckout> = rows
            .iter()
            .zip(&emails)
            .map(|(row, email)| NewCheckout {
                email,
                version: row.file.version.trim(),
                machine: row.file.machine.trim(),
                expires_at: row.expires_at.unwrap_or(now),
            })
            .collect();
        let ids = checkouts::write_checkouts(
            &mut tx,
            org_id,
            product_id,
            caller.id,
            Some(id),
            &wanted,
            now,
        )
        .await?
        // Seats taken between the count above and the grant: nothing is written.
        .ok_or_else(checkouts::no_seat_available)?;
        written.extend(rows.iter().map(|r| r.file.number as i64).zip(ids));
    }
    for (number, checkout_id) in &written {
        execute!(
            &mut tx,
            "UPDATE checkout_rows SET result = $1, checkout_id = $2 WHERE batch_id = $3 AND number = $4",
            "checked_out",
            *checkout_id,
            id,
            *number
        )?;
    }
    execute!(
        &mut tx,
        "UPDATE checkout_rows SET result = CASE WHEN removed = $1 THEN 'removed' ELSE 'not_checked_out' END \
         WHERE batch_id = $2 AND result IS NULL",
        true,
        id
    )?;
    execute!(
        &mut tx,
        "UPDATE checkout_batches SET committed_at = $1, committed_by = $2 WHERE id = $3",
        now,
        caller.id,
        id
    )?;
    record(
        &mut tx,
        caller,
        from,
        org_id,
        id,
        &batch.file_name,
        "license.bulk_checked_out",
        json!({ "checked_out": written.len() }),
    )
    .await?;
    let batch = load(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    fn rows(text: &str) -> Vec<FileRow> {
        read(text.as_bytes()).expect("reads").0
    }

    fn terms(free: Option<i64>) -> impl Fn(&str) -> Option<Terms> {
        move |code| match code {
            "civil" => Some(Terms {
                product_id: Uuid::nil(),
                subscribed_until: Some(NOW + 400 * DAY),
                free,
                held: HashSet::from(["reserved:held-pc".to_owned()]),
            }),
            "lapsed" => Some(Terms::default()),
            _ => None,
        }
    }

    fn statuses(staged: &[StagedRow]) -> Vec<&'static str> {
        staged.iter().map(|r| r.status.code()).collect()
    }

    #[test]
    fn every_row_gets_its_status() {
        let staged = classify(
            rows(
                "Email,Product,Version,Machine,Expires\n\
                 ann@example.com,civil,24.*,ANN-PC,2027-01-31\n\
                 not-an-email,civil,,ANN-PC,someday\n\
                 ann@example.com,nothing,1,ANN-PC,2027-01-31\n\
                 ann@example.com,lapsed,1,ANN-PC,2027-01-31\n\
                 ANN@example.com,civil,24.1,ann-pc,2027-01-31\n\
                 ann@example.com,civil,1,ANN-PC,2030-01-31\n",
            ),
            NOW,
            terms(None),
        );
        assert_eq!(
            statuses(&staged),
            vec![
                "valid",
                "invalid",
                "invalid",
                "not_entitled",
                "duplicate",
                "invalid"
            ]
        );
        let bad = staged[1].status.describe();
        for column in ["Email:", "Version:", "Expires:"] {
            assert!(bad.contains(column), "{bad}");
        }
        assert!(staged[2]
            .status
            .describe()
            .contains("no product has the code nothing"));
        assert!(staged[4].status.describe().contains("line 2"));
        assert!(
            staged[5].status.describe().contains("at most a year"),
            "{:?}",
            staged[5].status
        );
        assert_eq!(
            staged[0].expires_at,
            checkouts::parse_expiry("2027-02-01T00:00:00Z").ok(),
            "a date runs through that day"
        );
    }

    #[test]
    fn seats_run_out_in_file_order_and_shared_machines_take_none() {
        let staged = classify(
            rows(
                "Email,Product,Version,Machine,Expires\n\
                 a@example.com,civil,1,PC-1,2027-01-31\n\
                 b@example.com,civil,1,pc-1,2027-01-31\n\
                 c@example.com,civil,1,HELD-PC,2027-01-31\n\
                 d@example.com,civil,1,PC-2,2027-01-31\n\
                 e@example.com,civil,1,PC-3,2027-01-31\n",
            ),
            NOW,
            terms(Some(2)),
        );
        assert_eq!(
            statuses(&staged),
            vec!["valid", "valid", "valid", "valid", "no_seat"]
        );
        assert!(staged[4].status.describe().contains("the 2 seats free"));
        let unlimited = classify(rows(EXAMPLE).into_iter().take(1).collect(), NOW, |_| {
            terms(None)("civil")
        });
        assert_eq!(statuses(&unlimited), vec!["valid"]);
    }

    #[test]
    fn the_template_and_example_read() {
        assert!(read(TEMPLATE.as_bytes()).is_err());
        assert_eq!(rows(EXAMPLE).len(), 3);
        let refused = read(b"Email,Product,Machine\n").expect_err("refused");
        assert!(refused
            .to_string()
            .contains("lacks the columns Version, Expires"));
    }
}
