//! Audit events: who changed what, when and from where; written in the same
//! transaction as the change they record.

use entitle_proto::AuditEvent;
use uuid::Uuid;

use crate::{
    db::{now_ms, DbError, Executor},
    insert_many, on_db,
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
    record_many(ex, actor, &[entry]).await
}

/// Several events by one actor at once, such as one per person of a committed import.
pub async fn record_many(
    ex: &mut impl Executor,
    actor: &Actor,
    entries: &[Entry<'_>],
) -> Result<(), DbError> {
    let at = now_ms();
    insert_many!(
        ex,
        "INSERT INTO audit_events (id, at, actor_id, actor_label, ip, action, target_type, target_id, target_label, org_id, details)",
        "",
        entries,
        11,
        |q, entry| q
            .bind(Uuid::now_v7())
            .bind(at)
            .bind(actor.id)
            .bind(&actor.label)
            .bind(&actor.ip)
            .bind(entry.action)
            .bind(entry.target_type)
            .bind(entry.target_id)
            .bind(entry.target_label)
            .bind(entry.org_id)
            .bind(entry.details.to_string())
    )?;
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

const EVENT_COLUMNS: &str =
    "id, at, actor_id, actor_label, ip, action, target_type, target_id, target_label, org_id, details";

/// Newest first, at most `limit`; unset filters match everything. `org_id` overrides
/// the query's, so an organization's administrators see only their own events.
pub async fn list(
    ex: &mut impl Executor,
    query: &AuditQuery,
    org_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEvent>, DbError> {
    let actor = query.actor.as_ref().map(|a| a.trim().to_lowercase());
    // LIKE with its wildcards escaped: the text is matched as typed.
    let contains = query
        .actor_contains
        .as_ref()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .map(|a| {
            let escaped = a
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR target_id = $2) \
           AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR id < $4) \
           AND ($6 IS NULL OR org_id = $6) AND ($7 IS NULL OR at >= $7) \
           AND ($8 IS NULL OR at < $8) AND ($9 IS NULL OR actor_label = $9) \
           AND ($10 IS NULL OR LOWER(actor_label) LIKE $10 ESCAPE '\\') \
         ORDER BY id DESC LIMIT $5"
    );
    let rows: Vec<EventRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(query.actor_id)
        .bind(query.target_id)
        .bind(&query.action)
        .bind(query.before)
        .bind(limit)
        .bind(org_id)
        .bind(query.from)
        .bind(query.until)
        .bind(&actor)
        .bind(&contains)
        .fetch_all(c)
        .await)?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}

/// Events the account did or that were done to it.
/// `?actor_id=&actor=&target_id=&action=&org_id=&from=&until=&before=&limit=`
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    /// The actor's email address (or `system`).
    pub actor: Option<String>,
    /// Part of the actor's label, in any case: `acme.example` finds everyone of Acme.
    pub actor_contains: Option<String>,
    pub target_id: Option<Uuid>,
    pub action: Option<String>,
    /// Operators only: one organization's events.
    pub org_id: Option<Uuid>,
    /// Events at or after this time (Unix milliseconds).
    pub from: Option<i64>,
    /// Events before this time (Unix milliseconds).
    pub until: Option<i64>,
    /// Return events older than this event id.
    pub before: Option<Uuid>,
    /// 1 to 500; default 100.
    pub limit: Option<i64>,
}

impl AuditQuery {
    /// 422 for filters longer than any actor or action can be.
    pub fn check(&self) -> crate::error::ApiResult<()> {
        for (field, value, max) in [
            ("actor", &self.actor, 254),
            ("actor_contains", &self.actor_contains, 254),
            ("action", &self.action, 64),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                return Err(crate::error::ApiError::field(
                    field,
                    "too_long",
                    format!("{field} is at most {max} characters."),
                ));
            }
        }
        Ok(())
    }
}

/// A page of events matching `query` (within `org_id` when given), newest first.
pub async fn page(
    ex: &mut impl Executor,
    query: &AuditQuery,
    org_id: Option<Uuid>,
) -> crate::error::ApiResult<entitle_proto::AuditPage> {
    query.check()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(crate::error::ApiError::field(
            "limit",
            "out_of_range",
            "limit must be between 1 and 500.",
        ));
    }
    let mut events = list(ex, query, org_id, limit + 1).await?;
    let next_before = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(entitle_proto::AuditPage {
        events,
        next_before,
    })
}

const MAX_PAGE: i64 = 500;

/// Every event matching `query` within `org_id` (at most `EXPORT_LIMIT`), as CSV.
pub async fn export_csv(
    ex: &mut impl Executor,
    query: &AuditQuery,
    org_id: Uuid,
) -> Result<String, DbError> {
    let events = list(ex, query, Some(org_id), EXPORT_LIMIT).await?;
    Ok(crate::csv_file::write(
        &["Time", "Actor", "IP address", "Action", "Target", "Details"],
        events.into_iter().map(|event| {
            vec![
                rfc3339(event.at),
                event.actor.unwrap_or_default(),
                event.ip.unwrap_or_default(),
                event.action,
                event.target.unwrap_or_default(),
                event.details.to_string(),
            ]
        }),
    ))
}

/// The most events one export holds.
pub const EXPORT_LIMIT: i64 = 100_000;

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

/// Unix milliseconds as RFC 3339 ("2026-12-05T16:04:14.123Z"), for exports.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
