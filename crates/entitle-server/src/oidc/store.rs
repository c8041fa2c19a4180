//! Rows of the provider: authorization codes, grants, device authorizations and
//! revoked access tokens.

use uuid::Uuid;

use crate::{
    db::{DbError, Executor},
    execute, on_db,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub client_id: String,
    pub account_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: Option<Uuid>,
}

pub struct NewCode<'a> {
    pub code_hash: &'a [u8],
    pub client_id: &'a str,
    pub account_id: Uuid,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_code(ex: &mut impl Executor, code: &NewCode<'_>) -> Result<(), DbError> {
    execute!(
        ex,
        "INSERT INTO oauth_codes (code_hash, client_id, account_id, redirect_uri, scope, nonce, \
         code_challenge, auth_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        code.code_hash,
        code.client_id,
        code.account_id,
        code.redirect_uri,
        code.scope,
        code.nonce,
        code.code_challenge,
        code.auth_time,
        code.created_at,
        code.expires_at
    )?;
    Ok(())
}

pub async fn code_by_hash(ex: &mut impl Executor, hash: &[u8]) -> Result<Option<CodeRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(
        "SELECT client_id, account_id, redirect_uri, scope, nonce, code_challenge, auth_time, \
         expires_at, used_at, grant_id FROM oauth_codes WHERE code_hash = $1"
    )
    .bind(hash)
    .fetch_optional(c)
    .await)
    .map_err(Into::into)
}

/// Marks a code used by `grant_id`; false when it already was (a replay).
pub async fn use_code(
    ex: &mut impl Executor,
    hash: &[u8],
    grant_id: Uuid,
    now: i64,
) -> Result<bool, DbError> {
    let changed = execute!(ex, "UPDATE oauth_codes SET used_at = $1, grant_id = $2 WHERE code_hash = $3 AND used_at IS NULL", now, grant_id, hash)?;
    Ok(changed == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub generation: i64,
    pub offline: bool,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl GrantRow {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

pub async fn insert_grant(ex: &mut impl Executor, g: &GrantRow) -> Result<(), DbError> {
    execute!(ex, "INSERT INTO oauth_grants (id, account_id, client_id, scope, auth_time, generation, offline, \
         created_at, last_used_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", g.id, g.account_id, &g.client_id, &g.scope, g.auth_time, g.generation, g.offline, g.created_at, g.last_used_at, g.expires_at, &g.ip, &g.user_agent)?;
    Ok(())
}

const GRANT_COLUMNS: &str = "id, account_id, client_id, scope, auth_time, generation, offline, \
    created_at, last_used_at, expires_at, revoked_at, ip, user_agent";

pub async fn grant_by_id(ex: &mut impl Executor, id: Uuid) -> Result<Option<GrantRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(&format!(
        "SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(c)
    .await)
    .map_err(Into::into)
}

pub async fn revoke_grant(ex: &mut impl Executor, id: Uuid, now: i64) -> Result<bool, DbError> {
    let changed = execute!(
        ex,
        "UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        now,
        id
    )?;
    Ok(changed == 1)
}

pub async fn revoke_grants_of(
    ex: &mut impl Executor,
    account_id: Uuid,
    now: i64,
) -> Result<u64, DbError> {
    execute!(
        ex,
        "UPDATE oauth_grants SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL",
        now,
        account_id
    )
}

/// The live grants of a person, newest first: their signed-in devices and applications.
pub async fn live_grants_of(
    ex: &mut impl Executor,
    account_id: Uuid,
    now: i64,
) -> Result<Vec<(GrantRow, String)>, DbError> {
    #[derive(sqlx::FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        grant: GrantRow,
        client_name: String,
    }
    let rows: Vec<Joined> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT g.id, g.account_id, g.client_id, g.scope, g.auth_time, g.generation, g.offline, \
         g.created_at, g.last_used_at, g.expires_at, g.revoked_at, g.ip, g.user_agent, \
         c.name AS client_name \
         FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id \
         WHERE g.account_id = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 \
         ORDER BY g.created_at DESC"
    )
    .bind(account_id)
    .bind(now)
    .fetch_all(c)
    .await
    })?;
    Ok(rows.into_iter().map(|j| (j.grant, j.client_name)).collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub device_code_hash: Vec<u8>,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
    pub interval_secs: i64,
    pub last_polled_at: Option<i64>,
    pub account_id: Option<Uuid>,
    pub auth_time: Option<i64>,
    pub approved: Option<bool>,
    pub consumed_at: Option<i64>,
}

pub async fn insert_device(ex: &mut impl Executor, d: &DeviceRow, now: i64) -> Result<(), DbError> {
    execute!(ex, "INSERT INTO oauth_device_codes (device_code_hash, user_code, client_id, scope, created_at, \
         expires_at, interval_secs) VALUES ($1, $2, $3, $4, $5, $6, $7)", &d.device_code_hash, &d.user_code, &d.client_id, &d.scope, now, d.expires_at, d.interval_secs)?;
    Ok(())
}

const DEVICE_COLUMNS: &str = "device_code_hash, user_code, client_id, scope, expires_at, \
    interval_secs, last_polled_at, account_id, auth_time, approved, consumed_at";

pub async fn device_by_hash(
    ex: &mut impl Executor,
    hash: &[u8],
) -> Result<Option<DeviceRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM oauth_device_codes WHERE device_code_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(c)
    .await)
    .map_err(Into::into)
}

pub async fn device_by_user_code(
    ex: &mut impl Executor,
    user_code: &str,
) -> Result<Option<DeviceRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM oauth_device_codes WHERE user_code = $1"
    ))
    .bind(user_code)
    .fetch_optional(c)
    .await)
    .map_err(Into::into)
}

/// Records the person's decision on a pending device authorization; false when it was
/// already decided or has expired.
pub async fn decide_device(
    ex: &mut impl Executor,
    user_code: &str,
    account_id: Uuid,
    auth_time: i64,
    approved: bool,
    now: i64,
) -> Result<bool, DbError> {
    let changed = execute!(ex, "UPDATE oauth_device_codes SET account_id = $1, auth_time = $2, approved = $3, decided_at = $4 \
         WHERE user_code = $5 AND approved IS NULL AND expires_at > $4", account_id, auth_time, approved, now, user_code)?;
    Ok(changed == 1)
}

pub async fn record_poll(
    ex: &mut impl Executor,
    hash: &[u8],
    now: i64,
    interval_secs: i64,
) -> Result<(), DbError> {
    execute!(ex, "UPDATE oauth_device_codes SET last_polled_at = $1, interval_secs = $2 WHERE device_code_hash = $3", now, interval_secs, hash)?;
    Ok(())
}

pub async fn consume_device(
    ex: &mut impl Executor,
    hash: &[u8],
    now: i64,
) -> Result<bool, DbError> {
    let changed = execute!(ex, "UPDATE oauth_device_codes SET consumed_at = $1 WHERE device_code_hash = $2 AND consumed_at IS NULL", now, hash)?;
    Ok(changed == 1)
}

pub async fn revoke_access_token(
    ex: &mut impl Executor,
    jti: Uuid,
    expires_at: i64,
) -> Result<(), DbError> {
    execute!(ex, "INSERT INTO oauth_revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING", jti, expires_at)?;
    Ok(())
}

pub async fn access_token_revoked(ex: &mut impl Executor, jti: Uuid) -> Result<bool, DbError> {
    let row: Option<(i64,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT expires_at FROM oauth_revoked_tokens WHERE jti = $1"
    )
    .bind(jti)
    .fetch_optional(c)
    .await)?;
    Ok(row.is_some())
}

/// Deletes what can no longer be used: expired codes, device codes, grants and revocations.
pub async fn purge_expired(ex: &mut impl Executor, now: i64) -> Result<u64, DbError> {
    let mut removed = 0;
    for statement in [
        "DELETE FROM oauth_codes WHERE expires_at < $1 - 600000",
        "DELETE FROM oauth_device_codes WHERE expires_at < $1",
        "DELETE FROM oauth_revoked_tokens WHERE expires_at < $1",
        // Kept a day after they end so a replayed code or token still finds its family.
        "DELETE FROM oauth_grants WHERE expires_at < $1 - 86400000",
    ] {
        removed += execute!(ex, statement, now)?;
    }
    Ok(removed)
}
