//! SQL for accounts, sessions, one-time tokens, terms and throttles.

use uuid::Uuid;

use crate::{
    db::{DbError, Executor},
    execute, insert_many, on_db,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
    pub password_hash: Option<String>,
    pub status: String,
    pub email_verified: bool,
    pub is_operator: bool,
    pub home_org_id: Option<Uuid>,
    pub tos_accepted_version: Option<String>,
    pub tos_accepted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AccountRow {
    /// The part of the email address after the `@`.
    pub fn email_domain(&self) -> &str {
        self.email
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .unwrap_or_default()
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// [`AccountRow::is_active`] as an SQL condition on the accounts table named `alias`.
    pub fn is_active_sql(alias: &str) -> String {
        format!("{alias}.status = 'active'")
    }

    pub fn to_proto(&self) -> entitle_proto::Account {
        entitle_proto::Account {
            id: self.id,
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            country: self.country.clone(),
            status: if self.is_active() {
                entitle_proto::AccountStatus::Active
            } else {
                entitle_proto::AccountStatus::Disabled
            },
            email_verified: self.email_verified,
            has_password: self.password_hash.is_some(),
            is_operator: self.is_operator,
            home_org_id: self.home_org_id,
            tos_accepted_version: self.tos_accepted_version.clone(),
            created_at: self.created_at,
        }
    }
}

pub const ACCOUNT_COLUMNS: &str = "id, email, first_name, last_name, country, password_hash, status, \
     email_verified, is_operator, home_org_id, tos_accepted_version, tos_accepted_at, created_at, updated_at";

/// [`ACCOUNT_COLUMNS`] of the table named `alias` in a query that joins others.
pub fn account_columns_of(alias: &str) -> String {
    ACCOUNT_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn insert_account(ex: &mut impl Executor, a: &AccountRow) -> Result<(), DbError> {
    insert_accounts(ex, std::slice::from_ref(a)).await
}

pub async fn insert_accounts(ex: &mut impl Executor, rows: &[AccountRow]) -> Result<(), DbError> {
    insert_many!(
        ex,
        format!("INSERT INTO accounts ({ACCOUNT_COLUMNS})"),
        "",
        rows,
        14,
        |q, a| q
            .bind(a.id)
            .bind(&a.email)
            .bind(&a.first_name)
            .bind(&a.last_name)
            .bind(&a.country)
            .bind(&a.password_hash)
            .bind(&a.status)
            .bind(a.email_verified)
            .bind(a.is_operator)
            .bind(a.home_org_id)
            .bind(&a.tos_accepted_version)
            .bind(a.tos_accepted_at)
            .bind(a.created_at)
            .bind(a.updated_at)
    )?;
    Ok(())
}

/// The accounts of any of `emails` (normalized), found in as few queries as possible.
pub async fn accounts_by_emails(
    ex: &mut impl Executor,
    emails: &[&str],
) -> Result<Vec<AccountRow>, DbError> {
    crate::fetch_in_chunks!(
        ex,
        format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email IN {{values}}"),
        emails,
        1,
        |query| query
    )
}

pub async fn account_by_email(
    ex: &mut impl Executor,
    email: &str,
) -> Result<Option<AccountRow>, DbError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(email)
        .fetch_optional(c)
        .await)?)
}

pub async fn account_by_id(
    ex: &mut impl Executor,
    id: Uuid,
) -> Result<Option<AccountRow>, DbError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(c)
        .await)?)
}

pub async fn update_person(
    ex: &mut impl Executor,
    id: Uuid,
    first_name: &str,
    last_name: &str,
    country: &str,
    now: i64,
) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE accounts SET first_name = $1, last_name = $2, country = $3, updated_at = $4 WHERE id = $5",
        first_name,
        last_name,
        country,
        now,
        id
    )?;
    Ok(())
}

/// A new email address; `verified` when its owner confirmed it.
pub async fn set_email(
    ex: &mut impl Executor,
    id: Uuid,
    email: &str,
    verified: bool,
    now: i64,
) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE accounts SET email = $1, email_verified = $2, updated_at = $3 WHERE id = $4",
        email,
        verified,
        now,
        id
    )?;
    Ok(())
}

/// `active` or `disabled`: a disabled account cannot sign in.
pub async fn set_account_status(
    ex: &mut impl Executor,
    id: Uuid,
    status: &str,
    now: i64,
) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3",
        status,
        now,
        id
    )?;
    Ok(())
}

pub async fn any_operator(ex: &mut impl Executor) -> Result<bool, DbError> {
    let found: Option<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT id FROM accounts WHERE is_operator = $1 LIMIT 1"
    )
    .bind(true)
    .fetch_optional(c)
    .await)?;
    Ok(found.is_some())
}

pub async fn set_password_hash(
    ex: &mut impl Executor,
    id: Uuid,
    hash: &str,
    now: i64,
) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3"
    )
    .bind(hash)
    .bind(now)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn mark_email_verified(
    ex: &mut impl Executor,
    id: Uuid,
    now: i64,
) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "UPDATE accounts SET email_verified = $1, updated_at = $2 WHERE id = $3"
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn set_terms_accepted(
    ex: &mut impl Executor,
    id: Uuid,
    version: &str,
    now: i64,
) -> Result<(), DbError> {
    on_db!(ex, |c| {
        sqlx::query(
        "UPDATE accounts SET tos_accepted_version = $1, tos_accepted_at = $2, updated_at = $2 WHERE id = $3"
    )
    .bind(version)
    .bind(now)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub async fn set_operator(ex: &mut impl Executor, id: Uuid, now: i64) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "UPDATE accounts SET is_operator = $1, updated_at = $2 WHERE id = $3"
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn set_home_org_if_none(
    ex: &mut impl Executor,
    ids: &[Uuid],
    org_id: Uuid,
    now: i64,
) -> Result<(), DbError> {
    crate::execute_in_chunks!(
        ex,
        "UPDATE accounts SET home_org_id = $1, updated_at = $2 WHERE home_org_id IS NULL AND id IN {values}",
        ids,
        3,
        |query| query.bind(org_id).bind(now)
    )?;
    Ok(())
}

pub async fn delete_account(ex: &mut impl Executor, id: Uuid) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn insert_session(
    ex: &mut impl Executor,
    s: &SessionRow,
    token_hash: &[u8],
) -> Result<(), DbError> {
    on_db!(ex, |c| {
        sqlx::query(
        "INSERT INTO sessions (id, token_hash, account_id, created_at, last_seen_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(s.id)
    .bind(token_hash)
    .bind(s.account_id)
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(s.expires_at)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

const SESSION_COLUMNS: &str =
    "id, account_id, created_at, last_seen_at, expires_at, ip, user_agent";

pub async fn live_session_by_token_hash(
    ex: &mut impl Executor,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<SessionRow>, DbError> {
    let sql =
        format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 AND expires_at > $2");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(c)
        .await)?)
}

pub async fn sessions_of(
    ex: &mut impl Executor,
    account_id: Uuid,
) -> Result<Vec<SessionRow>, DbError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = $1 ORDER BY id");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(account_id)
        .fetch_all(c)
        .await)?)
}

pub async fn touch_session(
    ex: &mut impl Executor,
    id: Uuid,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id = $3"
    )
    .bind(now)
    .bind(expires_at)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete_session(ex: &mut impl Executor, id: Uuid) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete_sessions_of(ex: &mut impl Executor, account_id: Uuid) -> Result<u64, DbError> {
    let done = on_db!(ex, |c| sqlx::query(
        "DELETE FROM sessions WHERE account_id = $1"
    )
    .bind(account_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done)
}

/// Ends every session of the account but `keep`; yields how many ended.
pub async fn delete_sessions_of_except(
    ex: &mut impl Executor,
    account_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, DbError> {
    execute!(
        ex,
        "DELETE FROM sessions WHERE account_id = $1 AND ($2 IS NULL OR id <> $2)",
        account_id,
        keep
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    SetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::SetPassword => "set_password",
        }
    }
}

pub async fn insert_token(
    ex: &mut impl Executor,
    token_hash: &[u8],
    purpose: TokenPurpose,
    account_id: Uuid,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    insert_tokens(ex, &[(token_hash, account_id)], purpose, now, expires_at).await
}

/// One token of `purpose` for each `(hash, account)`.
pub async fn insert_tokens(
    ex: &mut impl Executor,
    tokens: &[(&[u8], Uuid)],
    purpose: TokenPurpose,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    insert_many!(
        ex,
        "INSERT INTO account_tokens (token_hash, purpose, account_id, created_at, expires_at)",
        "",
        tokens,
        5,
        |q, token| q
            .bind(token.0)
            .bind(purpose.as_str())
            .bind(token.1)
            .bind(now)
            .bind(expires_at)
    )?;
    Ok(())
}

/// The account a live (unused, unexpired) token belongs to, without using it up.
pub async fn live_token_account(
    ex: &mut impl Executor,
    token_hash: &[u8],
    purpose: TokenPurpose,
    now: i64,
) -> Result<Option<Uuid>, DbError> {
    let row: Option<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT account_id FROM account_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3"
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(c)
    .await)?;
    Ok(row.map(|(id,)| id))
}

/// Uses a token up; `None` when it is unknown, used, expired or for another purpose.
/// One conditional update, so two racing uses cannot both succeed.
pub async fn consume_token(
    ex: &mut impl Executor,
    token_hash: &[u8],
    purpose: TokenPurpose,
    now: i64,
) -> Result<Option<Uuid>, DbError> {
    let row: Option<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(
        "UPDATE account_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
         RETURNING account_id"
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(c)
    .await)?;
    Ok(row.map(|(id,)| id))
}

/// Retires every other live token of the account for the purpose.
pub async fn retire_tokens(
    ex: &mut impl Executor,
    account_id: Uuid,
    purpose: TokenPurpose,
    now: i64,
) -> Result<(), DbError> {
    on_db!(ex, |c| {
        sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE account_id = $2 AND purpose = $3 AND used_at IS NULL"
    )
    .bind(now)
    .bind(account_id)
    .bind(purpose.as_str())
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TermsRow {
    pub version: String,
    pub title: String,
    pub body: String,
    pub published_at: i64,
}

impl TermsRow {
    pub fn to_proto(&self) -> entitle_proto::Terms {
        entitle_proto::Terms {
            version: self.version.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            published_at: self.published_at,
        }
    }
}

pub async fn current_terms(ex: &mut impl Executor) -> Result<Option<TermsRow>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT version, title, body, published_at FROM terms_versions \
         ORDER BY published_at DESC, version DESC LIMIT 1"
    )
    .fetch_optional(c)
    .await)?)
}

pub async fn insert_terms(
    ex: &mut impl Executor,
    t: &TermsRow,
    published_by: Uuid,
) -> Result<(), DbError> {
    on_db!(ex, |c| {
        sqlx::query(
        "INSERT INTO terms_versions (version, title, body, published_at, published_by) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(&t.version)
    .bind(&t.title)
    .bind(&t.body)
    .bind(t.published_at)
    .bind(published_by)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ThrottleRow {
    pub failures: i64,
    pub window_started_at: i64,
    pub blocked_until: i64,
}

pub async fn throttle(ex: &mut impl Executor, key: &str) -> Result<Option<ThrottleRow>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT failures, window_started_at, blocked_until FROM throttles WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(c)
    .await)?)
}

/// How often [`update_throttle`] tries before giving up on a contended row.
const THROTTLE_TRIES: usize = 64;

/// Changes a throttle row atomically: `next` gets the row as it is (if any) and gives the
/// row to write, or `Err` to leave it as it is. A compare-and-swap, tried again when
/// another request changed the row meanwhile, so concurrent requests never lose an
/// update or pass a check together, on either database.
pub async fn update_throttle<E>(
    ex: &mut impl Executor,
    key: &str,
    mut next: impl FnMut(Option<ThrottleRow>) -> Result<ThrottleRow, E>,
) -> Result<Result<ThrottleRow, E>, DbError> {
    for _ in 0..THROTTLE_TRIES {
        let previous = throttle(ex, key).await?;
        let row = match next(previous) {
            Ok(row) => row,
            Err(refused) => return Ok(Err(refused)),
        };
        let written = match previous {
            None => execute!(
                ex,
                "INSERT INTO throttles (key, failures, window_started_at, blocked_until) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                key,
                row.failures,
                row.window_started_at,
                row.blocked_until
            )?,
            Some(old) => execute!(
                ex,
                "UPDATE throttles SET failures = $1, window_started_at = $2, blocked_until = $3 \
                 WHERE key = $4 AND failures = $5 AND window_started_at = $6 AND blocked_until = $7",
                row.failures,
                row.window_started_at,
                row.blocked_until,
                key,
                old.failures,
                old.window_started_at,
                old.blocked_until
            )?,
        };
        if written == 1 {
            return Ok(Ok(row));
        }
    }
    Err(DbError::Contended("throttle"))
}

/// Notes when the account last signed in, for its administrators to see.
pub async fn record_sign_in(ex: &mut impl Executor, id: Uuid, now: i64) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE accounts SET last_sign_in_at = $1 WHERE id = $2",
        now,
        id
    )?;
    Ok(())
}

pub async fn last_sign_in(ex: &mut impl Executor, id: Uuid) -> Result<Option<i64>, DbError> {
    let row: Option<(Option<i64>,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT last_sign_in_at FROM accounts WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await)?;
    Ok(row.and_then(|(at,)| at))
}

/// The last set-password link sent to the account (an invitation, or a recovery link)
/// that is not used: when it was sent and until when it works.
pub async fn last_set_password_link(
    ex: &mut impl Executor,
    id: Uuid,
) -> Result<Option<(i64, i64)>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT created_at, expires_at FROM account_tokens \
         WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL \
         ORDER BY created_at DESC LIMIT 1"
    )
    .bind(id)
    .bind(TokenPurpose::SetPassword.as_str())
    .fetch_optional(c)
    .await)?)
}

pub async fn clear_throttle(ex: &mut impl Executor, key: &str) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query("DELETE FROM throttles WHERE key = $1")
        .bind(key)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
