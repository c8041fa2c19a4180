//! Folding recorded usage events into the stored aggregates, with the rules' own
//! [`widen`]: each session's span (`usage_sessions`), the (interval, user) pairs its span
//! touches (`usage_presence`), and each touched interval's count of machines
//! (`usage_intervals`), recounted from the pairs. One fold runs at a time (on
//! PostgreSQL, under an advisory lock, whichever process runs it), so two never count
//! the same interval from different halves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::rules::{widen, Event, Kind, Source, Span, User};
use crate::{
    db::{Db, DbError, Exec, Executor, Tx},
    on_db,
};

/// The advisory lock folds take on PostgreSQL ("usage" in ASCII).
const FOLD_LOCK: i64 = 0x0075_7361_6765;

#[derive(sqlx::FromRow)]
struct EventRow {
    kind: String,
    session: String,
    at: i64,
    until_at: i64,
    account_id: Uuid,
    home_org_id: Option<Uuid>,
    billed_org_id: Option<Uuid>,
    source: String,
    product_id: Uuid,
    machine: String,
}

impl EventRow {
    fn event(self) -> Result<Event, DbError> {
        let (Some(kind), Some(source)) = (Kind::parse(&self.kind), Source::parse(&self.source))
        else {
            return Err(DbError::Corrupt(format!(
                "usage event of kind {:?} and source {:?}",
                self.kind, self.source
            )));
        };
        Ok(Event {
            kind,
            session: self.session,
            at: self.at,
            until: self.until_at,
            account: self.account_id,
            home_org: self.home_org_id,
            billed_org: self.billed_org_id,
            source,
            product: self.product_id,
            machine: self.machine,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session: String,
    billed_org_id: Uuid,
    product_id: Uuid,
    machine: String,
    account_id: Uuid,
    home_org_id: Uuid,
    source: String,
    first_at: i64,
    last_at: i64,
}

const EVENT_COLUMNS: &str = "kind, session, at, until_at, account_id, home_org_id, \
     billed_org_id, source, product_id, machine";

/// Folds up to `limit` queued events. Returns how many it folded (0: none waiting).
pub async fn fold_pending(db: &Db, limit: i64) -> Result<usize, DbError> {
    // Every process asks each second: with nothing queued it takes no write lock.
    let waiting: Option<(Uuid,)> = {
        let mut conn = db.reader().await?;
        on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT event_id FROM usage_unfolded LIMIT 1"
        )
        .fetch_optional(c)
        .await)?
    };
    if waiting.is_none() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    if let Exec::Postgres(c) = tx.exec() {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FOLD_LOCK)
            .execute(c)
            .await?;
    }
    let taken: Vec<(Uuid,)> = on_db!(&mut tx, |c| sqlx::query_as(
        "DELETE FROM usage_unfolded WHERE event_id IN \
         (SELECT event_id FROM usage_unfolded ORDER BY event_id LIMIT $1) RETURNING event_id"
    )
    .bind(limit)
    .fetch_all(c)
    .await)?;
    if taken.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = taken.into_iter().map(|(id,)| id).collect();
    let rows: Vec<EventRow> = crate::fetch_in_chunks!(
        &mut tx,
        format!("SELECT {EVENT_COLUMNS} FROM usage_events WHERE id IN {{values}}"),
        ids,
        1,
        |query| query
    )?;
    let events = rows
        .into_iter()
        .map(EventRow::event)
        .collect::<Result<Vec<_>, _>>()?;
    fold(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Folds `events` into the stored sessions, pairs and counts.
async fn fold(tx: &mut Tx, events: &[Event]) -> Result<(), DbError> {
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e.is_use())
        .map(|e| e.session.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known: Vec<SessionRow> = crate::fetch_in_chunks!(
        tx,
        "SELECT session, billed_org_id, product_id, machine, account_id, home_org_id, source, \
         first_at, last_at FROM usage_sessions WHERE session IN {values}",
        names,
        1,
        |query| query
    )?;
    let mut sessions: HashMap<String, (User, Span)> = HashMap::new();
    for row in known {
        let source = Source::parse(&row.source)
            .ok_or_else(|| DbError::Corrupt(format!("usage session source {:?}", row.source)))?;
        let user = User {
            billed_org: row.billed_org_id,
            product: row.product_id,
            machine: row.machine,
            account: row.account_id,
            home_org: Some(row.home_org_id).filter(|id| !id.is_nil()),
            source,
        };
        let span = Span {
            from: row.first_at,
            to: row.last_at,
        };
        sessions.insert(row.session, (user, span));
    }
    let mut changed = BTreeSet::new();
    let mut pairs: BTreeSet<(i64, User)> = BTreeSet::new();
    for event in events {
        if let Some(widened) = widen(sessions.get(&event.session), event) {
            pairs.extend(
                widened
                    .new_intervals
                    .iter()
                    .map(|&interval| (interval, widened.user.clone())),
            );
            sessions.insert(event.session.clone(), (widened.user, widened.span));
            changed.insert(event.session.as_str());
        }
    }
    let changed: Vec<(&str, &(User, Span))> = changed
        .into_iter()
        .filter_map(|name| sessions.get(name).map(|s| (name, s)))
        .collect();
    crate::insert_many!(
        tx,
        "INSERT INTO usage_sessions (session, billed_org_id, product_id, machine, account_id, \
         home_org_id, source, first_at, last_at)",
        "ON CONFLICT (session) DO UPDATE SET first_at = excluded.first_at, \
         last_at = excluded.last_at",
        changed,
        9,
        |query, row| query
            .bind(row.0)
            .bind(row.1 .0.billed_org)
            .bind(row.1 .0.product)
            .bind(&row.1 .0.machine)
            .bind(row.1 .0.account)
            .bind(row.1 .0.home_org.unwrap_or_default())
            .bind(row.1 .0.source.as_str())
            .bind(row.1 .1.from)
            .bind(row.1 .1.to)
    )?;
    let pairs: Vec<(i64, User)> = pairs.into_iter().collect();
    crate::insert_many!(
        tx,
        "INSERT INTO usage_presence (billed_org_id, product_id, interval_at, machine, \
         account_id, home_org_id, source)",
        "ON CONFLICT DO NOTHING",
        pairs,
        7,
        |query, pair| query
            .bind(pair.1.billed_org)
            .bind(pair.1.product)
            .bind(pair.0)
            .bind(&pair.1.machine)
            .bind(pair.1.account)
            .bind(pair.1.home_org.unwrap_or_default())
            .bind(pair.1.source.as_str())
    )?;
    let mut touched: BTreeMap<(Uuid, Uuid), BTreeSet<i64>> = BTreeMap::new();
    for (interval, user) in &pairs {
        touched
            .entry((user.billed_org, user.product))
            .or_default()
            .insert(*interval);
    }
    for ((org, product), intervals) in touched {
        recount(tx, org, product, &intervals.into_iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

/// Counts again the machines in use in `intervals` of a product for an organization.
async fn recount(tx: &mut Tx, org: Uuid, product: Uuid, intervals: &[i64]) -> Result<(), DbError> {
    crate::execute_in_chunks!(
        tx,
        "INSERT INTO usage_intervals (billed_org_id, product_id, interval_at, machines) \
         SELECT billed_org_id, product_id, interval_at, COUNT(DISTINCT machine) \
         FROM usage_presence WHERE billed_org_id = $1 AND product_id = $2 \
         AND interval_at IN {values} GROUP BY billed_org_id, product_id, interval_at \
         ON CONFLICT (billed_org_id, product_id, interval_at) \
         DO UPDATE SET machines = excluded.machines",
        intervals,
        3,
        |query| query.bind(org).bind(product)
    )?;
    Ok(())
}

/// The stored usage of a product for an organization from `from` to `to` (interval
/// starts): what reports read.
pub async fn stored_usage(
    ex: &mut impl Executor,
    org: Uuid,
    product: Uuid,
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, i64>, DbError> {
    let rows: Vec<(i64, i64)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT interval_at, machines FROM usage_intervals WHERE billed_org_id = $1 \
         AND product_id = $2 AND interval_at >= $3 AND interval_at < $4 ORDER BY interval_at"
    )
    .bind(org)
    .bind(product)
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// Raw events deleted per statement by [`purge_raw`].
const PURGE_CHUNK: i64 = 10_000;

/// Deletes the raw events that happened before `cutoff` and are folded already, and the
/// spans of sessions that ended before it; the per-interval aggregates stay. Returns
/// how many events went.
pub async fn purge_raw(db: &Db, cutoff: i64) -> Result<u64, DbError> {
    let mut purged = 0;
    loop {
        let mut conn = db.writer().await?;
        let deleted = crate::execute!(
            &mut conn,
            "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE at < $1 \
             AND NOT EXISTS (SELECT 1 FROM usage_unfolded u WHERE u.event_id = usage_events.id) \
             LIMIT $2)",
            cutoff,
            PURGE_CHUNK
        )?;
        purged += deleted;
        if deleted < PURGE_CHUNK as u64 {
            break;
        }
    }
    let mut conn = db.writer().await?;
    crate::execute!(
        &mut conn,
        "DELETE FROM usage_sessions WHERE last_at < $1",
        cutoff
    )?;
    Ok(purged)
}
