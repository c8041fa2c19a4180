//! Seats: one machine using one product for one paying organization. Leases (and, later,
//! reserved checkouts) hold seats; two from the same machine for the same product share
//! one. How many an organization may hold comes from its active subscriptions; the
//! database enforces it: a seat is taken by a conditional update of the pool's count
//! (`held < limit`) in the transaction that records the hold, never by reading the count
//! and writing in Rust.

use std::collections::{HashMap, HashSet};

use entitle_proto::OveragePolicy;
use uuid::Uuid;

use crate::{
    db::{DbError, Exec, Executor, Tx},
    execute, on_db,
};

/// How many seats an organization may hold of a product, from its active subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The seats owned: the sum over the active subscriptions covering the product.
    pub seats: i64,
    /// How many may be held with overage: `seats` under `deny`, a factor of them under
    /// `allow_up_to`, no limit (`None`) under `allow`.
    pub cap: Option<i64>,
}

/// One active subscription's part: its seats, policy and factor in thousandths.
pub struct Part {
    pub seats: i64,
    pub overage: OveragePolicy,
    pub factor_permille: Option<i64>,
}

/// The limits of several active subscriptions together: their seats add up; the most
/// generous overage policy among them applies (any `allow` lifts the cap; otherwise the
/// largest `allow_up_to` factor scales the summed seats, rounded down).
pub fn limits(parts: &[Part]) -> Limits {
    let seats: i64 = parts.iter().map(|p| p.seats).sum();
    let cap = if parts.iter().any(|p| p.overage == OveragePolicy::Allow) {
        None
    } else {
        let factor = parts
            .iter()
            .filter(|p| p.overage == OveragePolicy::AllowUpTo)
            .filter_map(|p| p.factor_permille)
            .max()
            .unwrap_or(1000);
        Some(seats.saturating_mul(factor) / 1000)
    };
    Limits { seats, cap }
}

/// What taking a seat gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// One of the seats owned.
    Seat,
    /// Above the seats owned, as the overage policy allows: billed as overage.
    Overage,
    /// None: every seat (and every overage the policy allows) is held.
    Refused,
}

/// The limits of `org_id` for `product_id` at `now`, read in the transaction.
pub async fn limits_of(
    tx: &mut impl Executor,
    org_id: Uuid,
    product_id: Uuid,
    now: i64,
) -> Result<Limits, DbError> {
    let rows: Vec<(i64, String, Option<i64>)> = on_db!(tx, |c| sqlx::query_as(
        "SELECT s.seats, s.overage, s.overage_factor_permille FROM subscriptions s \
         JOIN subscription_products sp ON sp.subscription_id = s.id \
         WHERE s.org_id = $1 AND sp.product_id = $2 AND s.ended_at IS NULL \
           AND s.starts_at <= $3 AND s.ends_at > $3"
    )
    .bind(org_id)
    .bind(product_id)
    .bind(now)
    .fetch_all(c)
    .await)?;
    let parts: Vec<Part> = rows
        .into_iter()
        .map(|(seats, overage, factor_permille)| Part {
            seats,
            overage: match overage.as_str() {
                "allow" => OveragePolicy::Allow,
                "allow_up_to" => OveragePolicy::AllowUpTo,
                _ => OveragePolicy::Deny,
            },
            factor_permille,
        })
        .collect();
    Ok(limits(&parts))
}

/// Gives back the seats of `org_id`'s expired holds of `product_id`.
async fn reclaim_pool(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    now: i64,
) -> Result<(), DbError> {
    let sql = format!(
        "DELETE FROM seat_holds {} WHERE org_id = $1 AND product_id = $2 AND {}",
        lapsed_index(tx),
        due_and_lapsed()
    );
    lock_leases_of_lapsed(tx, org_id, product_id, None, now).await?;
    let freed = execute!(tx, &sql, org_id, product_id, now)?;
    give_back(tx, org_id, product_id, freed).await
}

/// Counts `freed` seats of the pool as held no more.
async fn give_back(tx: &mut Tx, org_id: Uuid, product_id: Uuid, freed: u64) -> Result<(), DbError> {
    if freed > 0 {
        execute!(
            tx,
            "UPDATE seat_pools SET held = held - $1 WHERE org_id = $2 AND product_id = $3",
            freed as i64,
            org_id,
            product_id
        )?;
    }
    Ok(())
}

/// Takes a seat for `machine` until `until`, or shares the machine's live one: the hold's
/// id and what it is (no id when refused).
pub async fn take(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    machine: &str,
    now: i64,
    until: i64,
) -> Result<(Option<Uuid>, Taken), DbError> {
    let wanted = [(machine.to_owned(), until)];
    Ok(
        match take_upto(tx, org_id, product_id, &wanted, now).await?[0] {
            Some((id, taken)) => (Some(id), taken),
            None => (None, Taken::Refused),
        },
    )
}

/// [`take_upto`] for all of `wanted` or none: `None` when the seats do not reach, and
/// then the caller rolls the transaction back (some may have been counted).
pub async fn take_many(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    wanted: &[(String, i64)],
    now: i64,
) -> Result<Option<Vec<(Uuid, Taken)>>, DbError> {
    Ok(take_upto(tx, org_id, product_id, wanted, now)
        .await?
        .into_iter()
        .collect())
}

/// Takes a seat for each of `wanted`'s machines (distinct keys), in order, each until its
/// own time, sharing the live hold of a machine that has one, while the seats (and the
/// overage the policy allows) last: each machine's hold and what it is, `None` for those
/// past the limit. Every count is a conditional update of the pool's row that the
/// database applies only within the limit: all the new machines at once when they fit
/// in the seats owned, else one by one.
pub async fn take_upto(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    wanted: &[(String, i64)],
    now: i64,
) -> Result<Vec<Option<(Uuid, Taken)>>, DbError> {
    ensure_pool(tx, org_id, product_id).await?;
    let (holds, new) = take_from_pool(tx, org_id, product_id, wanted, now).await?;
    write_holds(tx, &new).await?;
    Ok(holds)
}

/// Makes the pool's row if it is missing.
pub async fn ensure_pool(tx: &mut Tx, org_id: Uuid, product_id: Uuid) -> Result<(), DbError> {
    execute!(
        tx,
        "INSERT INTO seat_pools (org_id, product_id, held) VALUES ($1, $2, 0) \
         ON CONFLICT (org_id, product_id) DO NOTHING",
        org_id,
        product_id
    )?;
    Ok(())
}

/// [`take_upto`] from a pool whose row exists, but with the new holds returned to be
/// written by the caller ([`write_holds`]) before it commits.
pub async fn take_from_pool(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    wanted: &[(String, i64)],
    now: i64,
) -> Result<(Vec<Option<(Uuid, Taken)>>, Vec<NewHold>), DbError> {
    let machines: Vec<&str> = wanted.iter().map(|(m, _)| m.as_str()).collect();
    let found = holds_of_machines(tx, org_id, product_id, &machines, now).await?;
    // A machine's lapsed hold, not yet reclaimed, gives its seat back first: the machine
    // takes one again like any other.
    let (live, lapsed): (Vec<_>, Vec<_>) = found.into_iter().partition(|(.., live)| *live);
    if !lapsed.is_empty() {
        let ids: Vec<Uuid> = lapsed.iter().map(|(_, id, _, _)| *id).collect();
        free_lapsed(tx, org_id, product_id, &ids, now).await?;
    }
    let live: HashMap<String, (Uuid, bool)> = live
        .into_iter()
        .map(|(machine, id, overage, _)| (machine, (id, overage)))
        .collect();
    let new = wanted.iter().filter(|(m, _)| !live.contains_key(m)).count();
    let granted = grant_in_order(tx, org_id, product_id, new, now).await?;
    let mut granted = granted.into_iter();
    let mut holds = Vec::with_capacity(wanted.len());
    let mut fresh = Vec::new();
    for (machine, until) in wanted {
        if let Some(&(id, overage)) = live.get(machine) {
            extend(&mut *tx, id, *until).await?;
            holds.push(Some((
                id,
                if overage { Taken::Overage } else { Taken::Seat },
            )));
            continue;
        }
        match granted.next() {
            Some(taken) => {
                let id = Uuid::now_v7();
                fresh.push(NewHold {
                    id,
                    org_id,
                    product_id,
                    machine: machine.clone(),
                    overage: taken == Taken::Overage,
                    created_at: now,
                    expires_at: *until,
                });
                holds.push(Some((id, taken)));
            }
            None => holds.push(None),
        }
    }
    Ok((holds, fresh))
}

/// A seat counted in its pool whose hold is still to be written, in the same transaction.
pub struct NewHold {
    pub id: Uuid,
    pub org_id: Uuid,
    pub product_id: Uuid,
    pub machine: String,
    pub overage: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The insert of [`NewHold`]s, whose values [`bind_hold!`] binds: due for review at their
/// end.
pub const HOLD_INSERT: &str = "INSERT INTO seat_holds \
     (id, org_id, product_id, machine, overage, created_at, expires_at, review_at)";
pub const HOLD_COLUMNS: usize = 8;

/// Binds a [`NewHold`]'s values to a query, in [`HOLD_INSERT`]'s order.
macro_rules! bind_hold {
    ($query:expr, $hold:expr) => {
        $query
            .bind($hold.id)
            .bind($hold.org_id)
            .bind($hold.product_id)
            .bind(&$hold.machine)
            .bind($hold.overage)
            .bind($hold.created_at)
            .bind($hold.expires_at)
            .bind($hold.expires_at)
    };
}
pub(crate) use bind_hold;

/// Writes the holds [`take_from_pool`] counted.
pub async fn write_holds(tx: &mut Tx, holds: &[NewHold]) -> Result<(), DbError> {
    crate::insert_many!(
        tx,
        HOLD_INSERT,
        "",
        holds,
        HOLD_COLUMNS,
        |q, hold| bind_hold!(q, hold)
    )?;
    Ok(())
}

/// The holds of `machines` in the pool, lapsed or not: machine, id, overage, and whether
/// it is live at `now`. One probe of the machine index per machine on PostgreSQL, whatever
/// its statistics say: with statistics older than a quick growth of the table, its
/// planner would rather walk the pool's holds and filter them (the `LIMIT` keeps the
/// probe from being flattened into a join it could choose to do that way).
async fn holds_of_machines(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    machines: &[&str],
    now: i64,
) -> Result<Vec<(String, Uuid, bool, bool)>, DbError> {
    if let Exec::Postgres(c) = tx.exec() {
        let sql = format!(
            "SELECT h.machine, h.id, h.overage, NOT ({}) FROM unnest($3::text[]) AS m (machine) \
             CROSS JOIN LATERAL (SELECT machine, id, overage, expires_at FROM seat_holds \
               WHERE org_id = $1 AND product_id = $2 AND machine = m.machine LIMIT 1) h",
            lapsed("h", "$4")
        );
        return Ok(sqlx::query_as(&sql)
            .bind(org_id)
            .bind(product_id)
            .bind(machines)
            .bind(now)
            .fetch_all(c)
            .await?);
    }
    crate::fetch_in_chunks!(
        tx,
        format!(
            "SELECT machine, id, overage, NOT ({}) FROM seat_holds \
             WHERE org_id = $1 AND product_id = $2 AND machine IN {{values}}",
            lapsed("seat_holds", "$3")
        ),
        machines,
        4,
        |query| query.bind(org_id).bind(product_id).bind(now)
    )
}

/// Which of `machines` hold a live seat in the pool, and how many seats the pool holds
/// live: its count less its lapsed holds not yet reclaimed (found through the review
/// index, [`due_and_lapsed`]).
pub async fn live_in_pool(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    machines: &[&str],
    now: i64,
) -> Result<(HashSet<String>, i64), DbError> {
    let live: HashSet<String> = holds_of_machines(tx, org_id, product_id, machines, now)
        .await?
        .into_iter()
        .filter(|(.., live)| *live)
        .map(|(machine, ..)| machine)
        .collect();
    let sql = format!(
        "SELECT CAST(COALESCE((SELECT held FROM seat_pools WHERE org_id = $1 AND product_id = $2), 0) \
           - (SELECT COUNT(*) FROM seat_holds {} WHERE org_id = $1 AND product_id = $2 AND {}) AS BIGINT)",
        lapsed_index(tx),
        due_and_lapsed()
    );
    let (held,): (i64,) = on_db!(tx, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(product_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
    Ok((live, held))
}

/// A hold's end: its own `expires_at` (set when its seat was taken, by a reserved
/// checkout, or when the reclaim last reviewed it) or its latest lease's, whichever is
/// later. A heartbeat renews its lease alone; the hold is written again only when the
/// reclaim reviews it, so each renewal writes one row, not two.
pub fn hold_end(hold: &str) -> String {
    format!(
        "COALESCE((SELECT MAX(leases.expires_at) FROM leases WHERE leases.hold_id = {hold}.id \
           AND leases.expires_at > {hold}.expires_at), {hold}.expires_at)"
    )
}

/// Whether the hold `hold` had ended by `now` ([`hold_end`]): neither it nor a lease of it
/// lasts beyond.
///
/// The leases are asked by a scalar subquery, which runs once a hold through `leases_hold`.
/// Written as `NOT EXISTS`, PostgreSQL flattened it into an anti-join, and as leases'
/// ends only grow, statistics taken a minute earlier put every live lease's end beyond
/// their histogram and estimated one row: the reclaim scanned all leases for each hold it
/// looked at, 2–3 s a chunk of 500 holds with 75,000 leases.
pub(super) fn lapsed(hold: &str, now: &str) -> String {
    format!(
        "{hold}.expires_at <= {now} AND COALESCE((SELECT MAX(leases.expires_at) FROM leases \
           WHERE leases.hold_id = {hold}.id), {now}) <= {now}"
    )
}

/// On PostgreSQL, locks the leases of the holds about to be freed: those of `ids`, or when
/// none are given the pool's holds lapsed by `now`. Heartbeats write leases alone, so
/// without it a heartbeat racing the free (a few milliseconds late, on another server's
/// clock) could renew a lease whose hold is deleted under it; now it either lands first,
/// and the hold is no longer lapsed when the delete looks, or waits and finds its lease
/// gone. SQLite has one writer.
async fn lock_leases_of_lapsed(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    ids: Option<&[Uuid]>,
    now: i64,
) -> Result<(), DbError> {
    if tx.is_sqlite() {
        return Ok(());
    }
    let lock = |holds: &str| {
        format!("SELECT id FROM leases WHERE hold_id IN {holds} ORDER BY id FOR UPDATE")
    };
    let _: Vec<(Uuid,)> = match ids {
        None => {
            let holds = format!(
                "(SELECT id FROM seat_holds WHERE org_id = $1 AND product_id = $2 AND {})",
                due_and_lapsed()
            );
            on_db!(tx, |c| sqlx::query_as(&lock(&holds))
                .bind(org_id)
                .bind(product_id)
                .bind(now)
                .fetch_all(c)
                .await)?
        }
        // The holds' own ids: one probe of the leases' hold index each, where a condition
        // on the holds too would let the planner walk the leases instead.
        Some(ids) => crate::fetch_in_chunks!(tx, lock("{values}"), ids, 1, |query| query)?,
    };
    Ok(())
}

/// Holds of `seat_holds` lapsed by `$3`, found through the review index: a lapsed hold is
/// due for review (`review_at` is never later than `expires_at`).
fn due_and_lapsed() -> String {
    format!("review_at <= $3 AND {}", lapsed("seat_holds", "$3"))
}

/// SQLite, without statistics, would find a pool's lapsed holds by walking its holds in
/// the machine index; it is told to use the review index, which holds only the few holds
/// the background reclaim has not looked at yet. PostgreSQL chooses it itself.
fn lapsed_index(tx: &mut Tx) -> &'static str {
    if tx.is_sqlite() {
        "INDEXED BY seat_holds_review"
    } else {
        ""
    }
}

/// Counts up to `n` new seats held in the pool, in order: what each is, as many as the
/// limits allow. The pool's expired holds are given back first when the seats owned do
/// not reach, so that a seat whose holder stopped renewing is free on time (and not
/// billed as overage) even between runs of the background reclaim.
async fn grant_in_order(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    n: usize,
    now: i64,
) -> Result<Vec<Taken>, DbError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let all = n as i64;
    if grant_within_seats(tx, org_id, product_id, all, now).await? {
        return Ok(vec![Taken::Seat; n]);
    }
    let limits = limits_of(tx, org_id, product_id, now).await?;
    reclaim_pool(tx, org_id, product_id, now).await?;
    if grant(tx, org_id, product_id, all, Some(limits.seats))
        .await?
        .is_some()
    {
        return Ok(vec![Taken::Seat; n]);
    }
    let mut granted = Vec::with_capacity(n);
    while granted.len() < n {
        if grant(tx, org_id, product_id, 1, Some(limits.seats))
            .await?
            .is_some()
        {
            granted.push(Taken::Seat);
            continue;
        }
        let overage = match limits.cap {
            None => grant(tx, org_id, product_id, 1, None).await?,
            Some(cap) if cap > limits.seats => grant(tx, org_id, product_id, 1, Some(cap)).await?,
            Some(_) => None,
        };
        if overage.is_none() {
            break;
        }
        granted.push(Taken::Overage);
    }
    Ok(granted)
}

/// Counts `n` more seats held if the count stays within the seats the active
/// subscriptions own, summed by the same statement: the common case in one round trip.
async fn grant_within_seats(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    n: i64,
    now: i64,
) -> Result<bool, DbError> {
    let granted = execute!(
        tx,
        &format!(
            "UPDATE seat_pools SET held = held + $1 \
             WHERE org_id = $2 AND product_id = $3 AND held + $1 <= {}",
            owned_seats("$2", "$3", "$4")
        ),
        n,
        org_id,
        product_id,
        now
    )?;
    Ok(granted == 1)
}

/// The seats the active subscriptions of the pool (`org`, `product`) own at `now`.
fn owned_seats(org: &str, product: &str, now: &str) -> String {
    format!(
        "(SELECT COALESCE(SUM(s.seats), 0) FROM subscriptions s \
          JOIN subscription_products sp ON sp.subscription_id = s.id \
          WHERE s.org_id = {org} AND sp.product_id = {product} AND s.ended_at IS NULL \
            AND s.starts_at <= {now} AND s.ends_at > {now})"
    )
}

/// The common acquire decided inside the statement that writes it (PostgreSQL): an
/// `UPDATE` of the pools of `asked` (`org_id`, `product_id`, `n`) that counts `n` more seats
/// held in each, returning the pools it counted them in: only those where the count stays
/// within the seats their active subscriptions own at `now`, none of the machines of
/// `machines` (`org_id`, `product_id`, `machine`) holds a seat in the pool (live or
/// lapsed), and `also` holds of the pool `a`. For the others, [`take_from_pool`] decides,
/// which also frees lapsed holds, shares live ones and grants overage. A machine's hold
/// written by another server at the same moment makes the statement fail on
/// `seat_holds_machine`, so a machine never holds two seats.
pub fn grant_to_new_machines(asked: &str, machines: &str, now: &str, also: &str) -> String {
    format!(
        "UPDATE seat_pools SET held = held + a.n FROM {asked} a \
         WHERE seat_pools.org_id = a.org_id AND seat_pools.product_id = a.product_id \
           AND seat_pools.held + a.n <= {} \
           AND NOT EXISTS (SELECT 1 FROM {machines} m CROSS JOIN LATERAL (SELECT 1 \
             FROM seat_holds h WHERE h.org_id = m.org_id AND h.product_id = m.product_id \
               AND h.machine = m.machine LIMIT 1) held \
             WHERE m.org_id = a.org_id AND m.product_id = a.product_id) \
           AND {also} \
         RETURNING seat_pools.org_id, seat_pools.product_id",
        owned_seats("a.org_id", "a.product_id", now)
    )
}

/// Counts `n` more seats held, if the count stays within `limit` (no limit: always): the
/// database decides, under the row's lock, so concurrent takers never pass it together.
/// Answers the count after, or `None` when refused.
async fn grant(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    n: i64,
    limit: Option<i64>,
) -> Result<Option<i64>, DbError> {
    Ok(on_db!(tx, |c| sqlx::query_as::<_, (i64,)>(
        "UPDATE seat_pools SET held = held + $1 \
         WHERE org_id = $2 AND product_id = $3 AND held <= $4 - $1 RETURNING held"
    )
    .bind(n)
    .bind(org_id)
    .bind(product_id)
    .bind(limit.unwrap_or(i64::MAX))
    .fetch_optional(c)
    .await)?
    .map(|(held,)| held))
}

/// Keeps a hold at least until `until`.
pub async fn extend(ex: &mut impl Executor, hold_id: Uuid, until: i64) -> Result<(), DbError> {
    execute!(
        ex,
        &format!("{} id = $2", extend_holds_sql("$1")),
        until,
        hold_id
    )?;
    Ok(())
}

/// The update that keeps holds until `until`, of those that would end sooner, up to the
/// condition that names them. A hold is never shortened, and one that lasts longer
/// already (a reserved checkout's) is not written at all.
fn extend_holds_sql(until: &str) -> String {
    format!("UPDATE seat_holds SET expires_at = {until} WHERE expires_at < {until} AND")
}

/// Frees a hold that nothing holds any more: its seat goes back to the pool.
pub async fn free_if_unheld(tx: &mut Tx, hold_id: Uuid) -> Result<bool, DbError> {
    let freed: Option<(Uuid, Uuid)> = on_db!(tx, |c| sqlx::query_as(
        "DELETE FROM seat_holds WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM leases WHERE hold_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM checkouts WHERE hold_id = $1 AND checked_in_at IS NULL) \
         RETURNING org_id, product_id"
    )
    .bind(hold_id)
    .fetch_optional(c)
    .await)?;
    if let Some((org_id, product_id)) = freed {
        execute!(
            tx,
            "UPDATE seat_pools SET held = held - 1 WHERE org_id = $1 AND product_id = $2",
            org_id,
            product_id
        )?;
    }
    Ok(freed.is_some())
}

/// Frees those of the pool's holds `ids` that lapsed before `now` (one renewed meanwhile
/// stays): their seats go back to the pool. Locked in id order, like every multi-row
/// change of holds. Returns how many were freed.
async fn free_lapsed(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    ids: &[Uuid],
    now: i64,
) -> Result<u64, DbError> {
    lock_leases_of_lapsed(tx, org_id, product_id, Some(ids), now).await?;
    let freed = crate::execute_in_chunks!(
        tx,
        format!(
            "DELETE FROM seat_holds WHERE {}",
            crate::db::in_id_order(
                tx,
                "seat_holds",
                &format!("{} AND id IN {{values}}", lapsed("seat_holds", "$1"))
            )
        ),
        ids,
        2,
        |query| query.bind(now)
    )?;
    give_back(tx, org_id, product_id, freed).await?;
    Ok(freed)
}

/// What one pass of the background reclaim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Seats given back: their holds had lapsed.
    pub freed: u64,
    /// Holds renewed since they were last looked at, now due for review at their end.
    pub deferred: u64,
    /// Whether `batch` holds were due (there may be more).
    pub full: bool,
}

/// Reviews at most `batch` holds due for review by `now`, found through the review index:
/// gives back the seats of those whose holders stopped renewing (one transaction per seat
/// pool) and moves the others' own end and next review to their end ([`hold_end`]).
pub async fn reclaim_expired(
    db: &crate::db::Db,
    now: i64,
    batch: i64,
) -> Result<Reclaimed, DbError> {
    let due: Vec<(Uuid, Uuid, Uuid, i64)> = {
        let mut conn = db.reader().await?;
        let sql = format!(
            "SELECT org_id, product_id, id, {} FROM seat_holds WHERE review_at <= $1 \
             ORDER BY review_at LIMIT $2",
            hold_end("seat_holds")
        );
        on_db!(&mut conn, |c| sqlx::query_as(&sql)
            .bind(now)
            .bind(batch)
            .fetch_all(c)
            .await)?
    };
    let full = due.len() as i64 == batch;
    let mut pools: std::collections::BTreeMap<(Uuid, Uuid), Vec<Uuid>> = Default::default();
    let mut renewed = Vec::new();
    for (org_id, product_id, id, ends_at) in due {
        if ends_at <= now {
            pools.entry((org_id, product_id)).or_default().push(id);
        } else {
            renewed.push(id);
        }
    }
    let mut freed = 0;
    for ((org_id, product_id), ids) in pools {
        let mut tx = db.begin().await?;
        freed += free_lapsed(&mut tx, org_id, product_id, &ids, now).await?;
        tx.commit().await?;
    }
    renewed.sort_unstable();
    let deferred = if renewed.is_empty() {
        0
    } else {
        let mut conn = db.writer().await?;
        crate::execute_in_chunks!(
            &mut conn,
            format!(
                "UPDATE seat_holds SET expires_at = {end}, review_at = {end} WHERE {}",
                crate::db::in_id_order(&mut conn, "seat_holds", "id IN {values}"),
                end = hold_end("seat_holds")
            ),
            renewed,
            1,
            |query| query
        )?
    };
    Ok(Reclaimed {
        freed,
        deferred,
        full,
    })
}

/// Seats held of each product by an organization now (leases and, later, checkouts).
pub async fn held(ex: &mut impl Executor, org_id: Uuid) -> Result<Vec<(Uuid, i64)>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT product_id, held FROM seat_pools WHERE org_id = $1"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seats: i64, overage: OveragePolicy, factor_permille: Option<i64>) -> Part {
        Part {
            seats,
            overage,
            factor_permille,
        }
    }

    #[test]
    fn seats_add_up_and_the_most_generous_policy_applies() {
        assert_eq!(
            limits(&[]),
            Limits {
                seats: 0,
                cap: Some(0)
            }
        );
        let deny = limits(&[
            part(10, OveragePolicy::Deny, None),
            part(5, OveragePolicy::Deny, None),
        ]);
        assert_eq!(
            deny,
            Limits {
                seats: 15,
                cap: Some(15)
            }
        );
        let up_to = limits(&[
            part(10, OveragePolicy::AllowUpTo, Some(1250)),
            part(5, OveragePolicy::Deny, None),
        ]);
        assert_eq!(
            up_to,
            Limits {
                seats: 15,
                cap: Some(18)
            },
            "15 × 1.25, rounded down"
        );
        let allow = limits(&[
            part(1, OveragePolicy::Allow, None),
            part(9, OveragePolicy::AllowUpTo, Some(2000)),
        ]);
        assert_eq!(
            allow,
            Limits {
                seats: 10,
                cap: None
            }
        );
    }
}
