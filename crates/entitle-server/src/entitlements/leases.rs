//! Online leases: an application asks for a product on a machine; the server decides who
//! pays (the person's home organization, for now), takes or shares a seat under the
//! overage policy, and answers a signed lease that works offline for the grace period.
//! Heartbeats renew it; a release frees the seat at once; a lease whose heartbeats stop
//! gives its seat back one interval after the last (plus a little network slack).

use entitle_license::{Claims, Kind};
use entitle_proto::{Lease, LeaseRequest};
use uuid::Uuid;

use super::{
    lease_writer::{Caller, NewLease, Op, Outcome},
    seats,
};
use crate::{
    app::AppState,
    db::{now_ms, DbError, Executor},
    error::{ApiError, ApiResult},
    execute,
    identity::{flows::Fields, store::AccountRow},
    on_db,
};

/// How long after its interval a heartbeat may arrive and still keep the seat: a tenth of
/// the interval, at most 30 seconds of network delay.
pub fn seat_until(now: i64, heartbeat_secs: i64) -> i64 {
    let interval = heartbeat_secs * 1000;
    now + interval + (interval / 10).min(30_000)
}

/// An id of a machine or a nonce: `min` to 128 characters of letters, digits and `-_.:`.
fn check_token(value: &str, min: usize) -> bool {
    (min..=128).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn check_label(value: &str, max: usize) -> bool {
    let value = value.trim();
    !value.is_empty() && value.chars().count() <= max && !value.chars().any(char::is_control)
}

/// The request, checked field by field.
pub fn check_request(request: &LeaseRequest, idempotency_key: Option<&str>) -> ApiResult<()> {
    let mut fields = Fields::default();
    if super::catalog::check_code(&request.product).is_err() {
        fields.add("product", "invalid", "Give a product's code.");
    }
    if !check_label(&request.version, 50) || request.version.contains(';') {
        fields.add(
            "version",
            "invalid",
            "Give the version running: 1 to 50 characters.",
        );
    }
    if !check_token(&request.machine_id, 8) {
        fields.add(
            "machine_id",
            "invalid",
            "Give a stable machine id: 8 to 128 letters, digits, '-', '_', '.' or ':'.",
        );
    }
    if !check_label(&request.machine_name, 200) {
        fields.add(
            "machine_name",
            "invalid",
            "Give the machine's name: 1 to 200 characters.",
        );
    }
    if !check_token(&request.nonce, 8) {
        fields.add(
            "nonce",
            "invalid",
            "Send a fresh nonce: 8 to 128 letters, digits, '-', '_', '.' or ':'.",
        );
    }
    if idempotency_key.is_some_and(|key| !check_label(key, 200)) {
        fields.add(
            "Idempotency-Key",
            "invalid",
            "An Idempotency-Key is 1 to 200 printable characters.",
        );
    }
    fields.finish()
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct LeaseRow {
    #[sqlx(rename = "lease_id")]
    pub id: Uuid,
    pub org_id: Uuid,
    pub org_name: String,
    pub product: String,
    pub version: String,
    pub machine: String,
    pub machine_name: String,
    pub overage: bool,
    pub expires_at: i64,
    pub grace_until: i64,
    pub hold_id: Uuid,
}

/// A [`LeaseRow`]'s columns, of the `leases` table: for a `SELECT` and for the `RETURNING`
/// of an update (hence subqueries, not joins). The id is `lease_id`, so that a lease's
/// columns and its person's can be one row.
pub(super) const LEASE_COLUMNS: &str =
    "id AS lease_id, org_id, (SELECT name FROM orgs WHERE orgs.id = leases.org_id) AS org_name, \
     (SELECT code FROM products WHERE products.id = leases.product_id) AS product, \
     version, machine, machine_name, overage, expires_at, grace_until, hold_id";

async fn lease_of(
    ex: &mut impl Executor,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<LeaseRow>, DbError> {
    let sql = format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = $1 AND account_id = $2");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(id)
        .bind(account_id)
        .fetch_optional(c)
        .await)?)
}

/// The signed answer: the lease's claims, signed with the current license key.
fn signed(state: &AppState, account: &AccountRow, row: &LeaseRow, nonce: &str, now: i64) -> Lease {
    let keys = state.licensing.current();
    let secs = |ms: i64| u64::try_from(ms / 1000).unwrap_or(0);
    let claims = Claims {
        iss: state.config.public_base(),
        sub: account.id.to_string(),
        jti: row.id.to_string(),
        iat: secs(now),
        nbf: None,
        exp: secs(row.grace_until),
        kind: Kind::Lease,
        email: account.email.clone(),
        org: row.org_id.to_string(),
        org_name: row.org_name.clone(),
        product: row.product.clone(),
        version: row.version.clone(),
        machine: row.machine.clone(),
        machine_name: row.machine_name.clone(),
        server_time: secs(now),
        heartbeat_secs: u64::try_from(state.config.licensing.heartbeat_secs).ok(),
        nonce: Some(nonce.to_owned()),
    };
    Lease {
        id: row.id,
        product: row.product.clone(),
        version: row.version.clone(),
        machine_id: row.machine.clone(),
        machine_name: row.machine_name.clone(),
        org_id: row.org_id,
        org_name: row.org_name.clone(),
        overage: row.overage,
        heartbeat_secs: state.config.licensing.heartbeat_secs,
        expires_at: row.expires_at,
        grace_until: row.grace_until,
        license: entitle_license::sign_license(&claims, &keys.kid, &keys.signing),
    }
}

/// Takes a lease for the caller. A request with an `Idempotency-Key` already used by this
/// person answers the same lease (re-signed with this request's nonce) and takes nothing.
pub async fn acquire(
    state: &AppState,
    caller: Caller,
    request: &LeaseRequest,
    idempotency_key: Option<&str>,
) -> ApiResult<(Lease, bool)> {
    check_request(request, idempotency_key)?;
    let now = now_ms();
    let op = Op::Acquire(NewLease {
        product: request.product.clone(),
        version: request.version.trim().to_owned(),
        machine: request.machine_id.clone(),
        machine_name: request.machine_name.trim().to_owned(),
        idempotency_key: idempotency_key.map(str::to_owned),
    });
    let (account, outcome) = state
        .leases
        .submit(caller, op)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    crate::error::note_request_account(account.id);
    match outcome {
        Outcome::Acquired(row) => Ok((signed(state, &account, &row, &request.nonce, now), true)),
        Outcome::Replayed(row) => {
            if row.product != request.product || row.machine != request.machine_id {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for another product or machine.",
                ));
            }
            Ok((signed(state, &account, &row, &request.nonce, now), false))
        }
        Outcome::UnknownProduct => Err(ApiError::field(
            "product",
            "unknown_product",
            "No product has this code.",
        )),
        Outcome::NotEntitled => Err(ApiError::forbidden(
            "not_entitled",
            "Your organization has no active subscription for this product. Ask its administrators.",
        )),
        _ => Err(ApiError::conflict(
            "no_seat_available",
            "Every seat of this product is in use. Try again later, or ask your administrators for more seats.",
        )),
    }
}

/// Renews a lease: its seat is kept another interval and its offline grace starts again.
/// A lease whose seat lapsed is gone (404): the application takes a new one.
pub async fn heartbeat(
    state: &AppState,
    caller: Caller,
    id: Uuid,
    nonce: &str,
) -> ApiResult<Lease> {
    if !check_token(nonce, 8) {
        return Err(ApiError::field(
            "nonce",
            "invalid",
            "Send a fresh nonce: 8 to 128 letters, digits, '-', '_', '.' or ':'.",
        ));
    }
    let now = now_ms();
    let (account, outcome) = state
        .leases
        .submit(caller, Op::Heartbeat(id))
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    crate::error::note_request_account(account.id);
    match outcome {
        Outcome::Renewed(row) => Ok(signed(state, &account, &row, nonce, now)),
        _ => Err(lease_gone()),
    }
}

fn lease_gone() -> ApiError {
    ApiError::NotFound
}

/// Releases a lease: its seat is free at once, unless another lease of the same machine
/// shares it. Releasing again is not found.
pub async fn release(state: &AppState, account: &AccountRow, id: Uuid) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    let row = lease_of(&mut tx, account.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    execute!(&mut tx, "DELETE FROM leases WHERE id = $1", id)?;
    seats::free_if_unheld(&mut tx, row.hold_id).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LeaseRequest {
        LeaseRequest {
            product: "civil-designer".into(),
            version: "24.2".into(),
            machine_id: "5d41402abc4b2a76".into(),
            machine_name: "ANN-PC".into(),
            nonce: "n-12345678".into(),
        }
    }

    #[test]
    fn every_field_of_a_lease_request_is_checked() {
        assert!(check_request(&request(), Some("retry-1")).is_ok());
        for (bad, field) in [
            (
                LeaseRequest {
                    product: "Civil".into(),
                    ..request()
                },
                "product",
            ),
            (
                LeaseRequest {
                    version: "".into(),
                    ..request()
                },
                "version",
            ),
            (
                LeaseRequest {
                    machine_id: "short".into(),
                    ..request()
                },
                "machine_id",
            ),
            (
                LeaseRequest {
                    machine_id: "has spaces in it".into(),
                    ..request()
                },
                "machine_id",
            ),
            (
                LeaseRequest {
                    machine_name: "\u{7}".into(),
                    ..request()
                },
                "machine_name",
            ),
            (
                LeaseRequest {
                    nonce: "x".repeat(129),
                    ..request()
                },
                "nonce",
            ),
        ] {
            match check_request(&bad, None) {
                Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(check_request(&request(), Some("")).is_err());
    }
}
