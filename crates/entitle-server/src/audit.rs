//! Audit events: who changed what, when and from where; written in the same
//! transaction as the change they record.

use entitle_proto::AuditEvent;
use uuid::Uuid;

use crate::{
    db::{now_ms, DbError, Executor},
    on_db,
};

/// Who did something: an account (with its email as a label) or the system.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: Option<Uuid>,
    pub label: Option<String>,
    pub ip: Option<String>,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            id: None,
            label: Some("system".to_owned()),
            ip: None,
        }
    }
}

pub struct Entry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub target_label: Option<&'a str>,
    pub org_id: Option<Uuid>,
    pub details: serde_json::Value,
}

pub async fn record(
    ex: &mut impl Executor,
    actor: &Actor,
    entry: Entry<'_>,
) -> Result<(), DbError> {
    on_db!(ex, |c| {
        sqlx::query(
        "INSERT INTO audit_events (id, at, actor_id, actor_label, ip, action, target_type, target_id, target_label, org_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )
    .bind(Uuid::now_v7())
    .bind(now_ms())
    .bind(actor.id)
    .bind(&actor.label)
    .bind(&actor.ip)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.target_label)
    .bind(entry.org_id)
    .bind(entry.details.to_string())
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    at: i64,
    actor_id: Option<Uuid>,
    actor_label: Option<String>,
    ip: Option<String>,
    action: String,
    target_type: String,
    target_id: Option<Uuid>,
    target_label: Option<String>,
    org_id: Option<Uuid>,
    details: String,
}

impl From<EventRow> for AuditEvent {
    fn from(r: EventRow) -> Self {
        AuditEvent {
            id: r.id,
            at: r.at,
            actor_id: r.actor_id,
            actor: r.actor_label,
            ip: r.ip,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            target: r.target_label,
            org_id: r.org_id,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub action: Option<String>,
    /// Only events older than this one (ids are time-ordered UUIDv7).
    pub before: Option<Uuid>,
    pub limit: i64,
}

const EVENT_COLUMNS: &str =
    "id, at, actor_id, actor_label, ip, action, target_type, target_id, target_label, org_id, details";

/// Newest first. Unset filters match everything.
pub async fn list(ex: &mut impl Executor, filter: &Filter) -> Result<Vec<AuditEvent>, DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR target_id = $2) \
           AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5"
    );
    let rows: Vec<EventRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(filter.actor_id)
        .bind(filter.target_id)
        .bind(&filter.action)
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(c)
        .await)?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}

/// Events the account did or that were done to it.
pub async fn of_account(
    ex: &mut impl Executor,
    account_id: Uuid,
) -> Result<Vec<AuditEvent>, DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE actor_id = $1 OR target_id = $1 ORDER BY id"
    );
    let rows: Vec<EventRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(account_id)
        .fetch_all(c)
        .await)?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}

/// Removes an erased person's email from the events that name them; the ids stay so the
/// trail still reads whole.
pub async fn forget_labels_of(ex: &mut impl Executor, account_id: Uuid) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "UPDATE audit_events SET actor_label = $1 WHERE actor_id = $2"
    )
    .bind("erased account")
    .bind(account_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    on_db!(ex, |c| sqlx::query(
        "UPDATE audit_events SET target_label = $1 WHERE target_id = $2"
    )
    .bind("erased account")
    .bind(account_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
