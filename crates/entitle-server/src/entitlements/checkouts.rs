//! Reserved checkouts: an organization checks a product out for a person, a machine and a
//! version until an expiry; the checkout holds a seat until then or until it is checked
//! in, and yields a signed license file. Checking in frees the seat at once and puts the
//! file on the signed revocation list.

use entitle_license::{Claims, Kind, RevocationClaims};
use entitle_proto::{Checkout, CheckoutCreated, CheckoutRequest};
use serde_json::json;
use uuid::Uuid;

use super::seats::{self, Taken};
use crate::{
    app::AppState,
    app::Client,
    audit::{self, Entry},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{
        flows::{actor_of, Fields},
        person::Email,
        store::AccountRow,
    },
    on_db,
    orgs::{access::OrgAccess, roles::Action},
};

/// A checkout runs at most a year.
pub const MAX_TERM_MS: i64 = 366 * 86_400_000;
/// Expired checkouts leave the default list after three months; they stay queryable.
pub const SHOWN_AFTER_EXPIRY_MS: i64 = 92 * 86_400_000;

/// The seat key of a reserved machine: its name, in any case, apart from leases' ids.
pub(super) fn machine_key(machine_name: &str) -> String {
    format!("reserved:{}", machine_name.trim().to_lowercase())
}

/// `reserved`, `checked_in` or `expired` at `now`.
pub fn status(expires_at: i64, checked_in_at: Option<i64>, now: i64) -> &'static str {
    match checked_in_at {
        Some(_) => "checked_in",
        None if expires_at <= now => "expired",
        None => "reserved",
    }
}

/// The request, checked field by field; the normalized address.
pub(super) fn check_request(request: &CheckoutRequest, now: i64) -> ApiResult<Email> {
    let mut fields = Fields::default();
    let email = match Email::parse(&request.email) {
        Ok(email) => Some(email),
        Err(invalid) => {
            fields.add("email", invalid.code, invalid.message);
            None
        }
    };
    if super::catalog::check_code(&request.product).is_err() {
        fields.add("product", "invalid", "Give a product's code.");
    }
    let version = request.version.trim();
    if version.is_empty() || version.chars().count() > 50 || version.chars().any(char::is_control) {
        fields.add(
            "version",
            "invalid",
            "Give the version: 1 to 50 characters (24.2, 24.* or *).",
        );
    }
    let machine = request.machine_name.trim();
    if machine.is_empty() || machine.chars().count() > 200 || machine.chars().any(char::is_control)
    {
        fields.add(
            "machine_name",
            "invalid",
            "Give the machine's name: 1 to 200 characters.",
        );
    }
    if request.expires_at <= now {
        fields.add("expires_at", "invalid", "The expiry must be in the future.");
    } else if request.expires_at > now + MAX_TERM_MS {
        fields.add("expires_at", "invalid", "A checkout runs at most a year.");
    }
    fields.finish()?;
    email.ok_or_else(|| anyhow::anyhow!("checked").into())
}

#[derive(sqlx::FromRow)]
struct CheckoutRow {
    id: Uuid,
    org_id: Uuid,
    org_name: String,
    product: String,
    version: String,
    email: String,
    account_id: Option<Uuid>,
    machine_name: String,
    overage: bool,
    created_at: i64,
    expires_at: i64,
    checked_in_at: Option<i64>,
    hold_id: Option<Uuid>,
}

impl CheckoutRow {
    /// Whether `account` holds it: it names their account, or their address when it was
    /// checked out before they had one.
    fn held_by(&self, account: &AccountRow) -> bool {
        match self.account_id {
            Some(id) => id == account.id,
            None => self.email == account.email,
        }
    }

    fn to_proto(&self, now: i64) -> Checkout {
        Checkout {
            id: self.id,
            org_id: self.org_id,
            org_name: self.org_name.clone(),
            product: self.product.clone(),
            version: self.version.clone(),
            email: self.email.clone(),
            account_id: self.account_id,
            machine_name: self.machine_name.clone(),
            overage: self.overage,
            created_at: self.created_at,
            expires_at: self.expires_at,
            checked_in_at: self.checked_in_at,
            status: status(self.expires_at, self.checked_in_at, now).to_owned(),
        }
    }
}

const CHECKOUT_SELECT: &str = "SELECT c.id, c.org_id, o.name AS org_name, p.code AS product, \
     c.version, c.email, c.account_id, c.machine_name, c.overage, c.created_at, c.expires_at, \
     c.checked_in_at, c.hold_id \
     FROM checkouts c JOIN orgs o ON o.id = c.org_id JOIN products p ON p.id = c.product_id";

async fn checkout_row(ex: &mut impl Executor, id: Uuid) -> Result<Option<CheckoutRow>, DbError> {
    let sql = format!("{CHECKOUT_SELECT} WHERE c.id = $1");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(c)
        .await)?)
}

/// The license file of a checkout, signed now with the current license key.
fn license_file(state: &AppState, row: &CheckoutRow, now: i64) -> String {
    let keys = state.licensing.current();
    let secs = |ms: i64| u64::try_from(ms / 1000).unwrap_or(0);
    let claims = Claims {
        iss: state.config.public_base(),
        sub: row
            .account_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| row.email.clone()),
        jti: row.id.to_string(),
        iat: secs(now),
        nbf: Some(secs(row.created_at)),
        exp: secs(row.expires_at),
        kind: Kind::Reserved,
        email: row.email.clone(),
        org: row.org_id.to_string(),
        org_name: row.org_name.clone(),
        product: row.product.clone(),
        version: row.version.clone(),
        machine: row.machine_name.clone(),
        machine_name: row.machine_name.clone(),
        server_time: secs(now),
        heartbeat_secs: None,
        nonce: None,
    };
    entitle_license::sign_license(&claims, &keys.kid, &keys.signing)
}

/// The latest end among `org_id`'s active subscriptions covering `product_id`.
pub(super) async fn subscribed_until(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    now: i64,
) -> Result<Option<i64>, DbError> {
    let (until,): (Option<i64>,) = on_db!(tx, |c| sqlx::query_as(
        "SELECT MAX(s.ends_at) FROM subscriptions s \
         JOIN subscription_products sp ON sp.subscription_id = s.id \
         WHERE s.org_id = $1 AND sp.product_id = $2 AND s.ended_at IS NULL \
           AND s.starts_at <= $3 AND s.ends_at > $3"
    )
    .bind(org_id)
    .bind(product_id)
    .bind(now)
    .fetch_one(c)
    .await)?;
    Ok(until)
}

/// The refusal when the seats run out.
pub fn no_seat_available() -> ApiError {
    ApiError::conflict(
        "no_seat_available",
        "Every seat of this product is in use: check a license in, or ask for more seats.",
    )
}

/// A checkout about to be written (values checked and trimmed).
pub(super) struct NewCheckout<'a> {
    pub email: &'a str,
    pub version: &'a str,
    pub machine: &'a str,
    pub expires_at: i64,
}

/// Writes checkouts of one product for `org_id`, each holding its machine's seat (shared
/// by the checkouts of one machine, and by a live checkout there already): all of them,
/// or none when the seats run out (`None`). Answers their ids, in order.
pub(super) async fn write_checkouts(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    created_by: Uuid,
    batch_id: Option<Uuid>,
    checkouts: &[NewCheckout<'_>],
    now: i64,
) -> Result<Option<Vec<Uuid>>, DbError> {
    // Each machine once, in order, held until its latest checkout's expiry; `seat_of`
    // finds a checkout's machine among them (a bulk file has a thousand).
    let mut machines: Vec<(String, i64)> = Vec::new();
    let mut seat_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for checkout in checkouts {
        let key = machine_key(checkout.machine);
        match seat_of.get(&key) {
            Some(&at) => machines[at].1 = machines[at].1.max(checkout.expires_at),
            None => {
                seat_of.insert(key.clone(), machines.len());
                machines.push((key, checkout.expires_at));
            }
        }
    }
    let Some(holds) = seats::take_many(tx, org_id, product_id, &machines, now).await? else {
        return Ok(None);
    };
    let emails: Vec<&str> = checkouts.iter().map(|c| c.email).collect();
    let accounts: Vec<(String, Uuid)> = crate::fetch_in_chunks!(
        tx,
        "SELECT email, id FROM accounts WHERE email IN {values}",
        emails,
        1,
        |query| query
    )?;
    let accounts: std::collections::HashMap<String, Uuid> = accounts.into_iter().collect();
    let rows: Vec<(Uuid, &NewCheckout, Uuid, bool)> = checkouts
        .iter()
        .map(|checkout| {
            let at = seat_of[&machine_key(checkout.machine)];
            let (hold_id, taken) = holds[at];
            (Uuid::now_v7(), checkout, hold_id, taken == Taken::Overage)
        })
        .collect();
    crate::insert_many!(
        tx,
        "INSERT INTO checkouts (id, org_id, product_id, email, account_id, version, machine_name, \
         hold_id, overage, created_by, created_at, expires_at, batch_id)",
        "",
        rows,
        13,
        |q, row| q
            .bind(row.0)
            .bind(org_id)
            .bind(product_id)
            .bind(row.1.email)
            .bind(accounts.get(row.1.email).copied())
            .bind(row.1.version)
            .bind(row.1.machine)
            .bind(row.2)
            .bind(row.3)
            .bind(created_by)
            .bind(now)
            .bind(row.1.expires_at)
            .bind(batch_id)
    )?;
    Ok(Some(rows.into_iter().map(|r| r.0).collect()))
}

/// An expiry as typed: a date (`2027-03-31`: the license runs through that day, UTC) or an
/// RFC 3339 time; Unix milliseconds.
pub fn parse_expiry(raw: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let raw = raw.trim();
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let at = match time::Date::parse(raw, &day) {
        Ok(date) => date
            .next_day()
            .map(|d| d.midnight().assume_utc())
            .ok_or_else(|| "The date is out of range.".to_owned())?,
        Err(_) => time::OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
            "Give the expiry as a date (2027-03-31) or an RFC 3339 time.".to_owned()
        })?,
    };
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| "The date is out of range.".to_owned())
}

/// Checks a license out: the caller must be an Administrator (or Fulfillment Contact) of
/// the organization or hold the License Checkout role there.
pub async fn check_out(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    request: &CheckoutRequest,
    from: &Client,
) -> ApiResult<CheckoutCreated> {
    let now = now_ms();
    let email = check_request(request, now)?;
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::CheckOutLicenses)?;
    let product_id = super::catalog::product_id(&mut tx, &request.product).await?;
    let Some(until) = subscribed_until(&mut tx, org_id, product_id, now).await? else {
        return Err(ApiError::forbidden(
            "not_entitled",
            "This organization has no active subscription for this product.",
        ));
    };
    if request.expires_at > until {
        return Err(ApiError::field(
            "expires_at",
            "past_subscription_end",
            "The expiry is past the end of the subscription.",
        ));
    }
    let machine = request.machine_name.trim();
    let wanted = [NewCheckout {
        email: email.as_str(),
        version: request.version.trim(),
        machine,
        expires_at: request.expires_at,
    }];
    let Some(ids) =
        write_checkouts(&mut tx, org_id, product_id, caller.id, None, &wanted, now).await?
    else {
        return Err(no_seat_available());
    };
    let id = ids[0];
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "license.checked_out",
            target_type: "checkout",
            target_id: Some(id),
            target_label: Some(email.as_str()),
            org_id: Some(org_id),
            details: json!({
                "product": request.product, "version": request.version.trim(),
                "machine": machine, "expires_at": request.expires_at,
            }),
        },
    )
    .await?;
    let row = checkout_row(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the checkout just written is gone"))?;
    tx.commit().await?;
    Ok(CheckoutCreated {
        checkout: row.to_proto(now),
        license: license_file(state, &row, now),
    })
}

/// The organization's checkouts, newest first; those expired more than three months ago
/// only with `all`.
pub async fn list(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    all: bool,
) -> ApiResult<Vec<Checkout>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let now = now_ms();
    let shown_from = if all {
        i64::MIN
    } else {
        now - SHOWN_AFTER_EXPIRY_MS
    };
    let sql = format!(
        "{CHECKOUT_SELECT} WHERE c.org_id = $1 AND c.expires_at > $2 ORDER BY c.created_at DESC LIMIT 1000"
    );
    let rows: Vec<CheckoutRow> = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(shown_from)
        .fetch_all(c)
        .await)
    .map_err(DbError::from)?;
    Ok(rows.iter().map(|r| r.to_proto(now)).collect())
}

/// The checkouts `account` holds, newest first; those expired more than three months
/// ago are left out.
pub async fn of_holder(state: &AppState, account: &AccountRow) -> ApiResult<Vec<Checkout>> {
    let now = now_ms();
    let mut conn = state.db.reader().await?;
    let sql = format!(
        "{CHECKOUT_SELECT} WHERE (c.account_id = $1 OR (c.account_id IS NULL AND c.email = $2)) \
         AND c.expires_at > $3 ORDER BY c.created_at DESC LIMIT 1000"
    );
    let rows: Vec<CheckoutRow> = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(account.id)
        .bind(&account.email)
        .bind(now - SHOWN_AFTER_EXPIRY_MS)
        .fetch_all(c)
        .await)
    .map_err(DbError::from)?;
    Ok(rows.iter().map(|r| r.to_proto(now)).collect())
}

/// The license file of a checkout `account` holds, signed again.
pub async fn license_of_holder(
    state: &AppState,
    account: &AccountRow,
    id: Uuid,
) -> ApiResult<(Checkout, String)> {
    let mut conn = state.db.reader().await?;
    let row = checkout_row(&mut conn, id)
        .await?
        .filter(|r| r.held_by(account))
        .ok_or(ApiError::NotFound)?;
    let now = now_ms();
    Ok((row.to_proto(now), license_file(state, &row, now)))
}

/// A checkout's license file, signed again (for downloading it later).
pub async fn license(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<(Checkout, String)> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::CheckOutLicenses)?;
    let row = checkout_row(&mut conn, id)
        .await?
        .filter(|r| r.org_id == org_id)
        .ok_or(ApiError::NotFound)?;
    let now = now_ms();
    Ok((row.to_proto(now), license_file(state, &row, now)))
}

/// Checks a license in: by the organization's administrators (`org_id` given), or by its
/// holder. The seat is free at once (unless a lease of the machine shares it) and the
/// file goes on the revocation list. Checking in again changes nothing.
pub async fn check_in(
    state: &AppState,
    caller: &AccountRow,
    org_id: Option<Uuid>,
    id: Uuid,
    from: &Client,
) -> ApiResult<Checkout> {
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let row = checkout_row(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    match org_id {
        Some(org_id) => {
            if row.org_id != org_id {
                return Err(ApiError::NotFound);
            }
            OrgAccess::of(&mut tx, caller, org_id)
                .await?
                .require(Action::CheckOutLicenses)?;
        }
        None if row.held_by(caller) => {}
        None => return Err(ApiError::NotFound),
    }
    if row.checked_in_at.is_some() || row.expires_at <= now {
        return Ok(row.to_proto(now));
    }
    execute!(
        &mut tx,
        "UPDATE checkouts SET checked_in_at = $1, checked_in_by = $2 WHERE id = $3",
        now,
        caller.id,
        id
    )?;
    if let Some(hold_id) = row.hold_id {
        seats::free_if_unheld(&mut tx, hold_id).await?;
    }
    let (seq,): (i64,) = on_db!(&mut tx, |c| sqlx::query_as(
        "UPDATE revocation_sequence SET seq = seq + 1 WHERE id = 1 RETURNING seq"
    )
    .fetch_one(c)
    .await)
    .map_err(DbError::from)?;
    execute!(
        &mut tx,
        "INSERT INTO license_revocations (seq, jti, revoked_at, expires_at) VALUES ($1, $2, $3, $4)",
        seq,
        id.to_string(),
        now,
        row.expires_at
    )?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "license.checked_in",
            target_type: "checkout",
            target_id: Some(id),
            target_label: Some(&row.email),
            org_id: Some(row.org_id),
            details: json!({ "product": row.product, "machine": row.machine_name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CheckoutRow {
        checked_in_at: Some(now),
        ..row
    }
    .to_proto(now))
}

/// The signed revocation list: every checked-in license that has not expired, and the
/// list's sequence number (docs/license-format.md).
pub async fn revocation_list(state: &AppState) -> ApiResult<String> {
    let now = now_ms();
    let mut conn = state.db.reader().await?;
    let (seq,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT seq FROM revocation_sequence WHERE id = 1"
    )
    .fetch_one(c)
    .await)
    .map_err(DbError::from)?;
    let revoked: Vec<(String,)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT jti FROM license_revocations WHERE expires_at > $1 ORDER BY jti"
    )
    .bind(now)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    let keys = state.licensing.current();
    Ok(entitle_license::sign_revocations(
        &RevocationClaims {
            iss: state.config.public_base(),
            seq: u64::try_from(seq).unwrap_or(0),
            iat: u64::try_from(now / 1000).unwrap_or(0),
            revoked: revoked.into_iter().map(|(jti,)| jti).collect(),
        },
        &keys.kid,
        &keys.signing,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_is_reserved_then_checked_in_or_expired() {
        assert_eq!(status(20, None, 10), "reserved");
        assert_eq!(status(20, None, 20), "expired");
        assert_eq!(status(20, Some(15), 16), "checked_in");
        assert_eq!(machine_key(" ANN-PC "), "reserved:ann-pc");
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let now = 1_000_000;
        let good = CheckoutRequest {
            email: "ann@supplier.example".into(),
            product: "civil-designer".into(),
            version: "24.*".into(),
            machine_name: "ANN-PC".into(),
            expires_at: now + 86_400_000,
        };
        assert!(check_request(&good, now).is_ok());
        for (bad, field) in [
            (
                CheckoutRequest {
                    email: "nobody".into(),
                    ..good.clone()
                },
                "email",
            ),
            (
                CheckoutRequest {
                    product: "Civil".into(),
                    ..good.clone()
                },
                "product",
            ),
            (
                CheckoutRequest {
                    version: " ".into(),
                    ..good.clone()
                },
                "version",
            ),
            (
                CheckoutRequest {
                    machine_name: "".into(),
                    ..good.clone()
                },
                "machine_name",
            ),
            (
                CheckoutRequest {
                    expires_at: now,
                    ..good.clone()
                },
                "expires_at",
            ),
            (
                CheckoutRequest {
                    expires_at: now + MAX_TERM_MS + 1,
                    ..good.clone()
                },
                "expires_at",
            ),
        ] {
            match check_request(&bad, now) {
                Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
