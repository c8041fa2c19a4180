//! Seats: one machine using one product for one paying organization. Leases (and, later,
//! reserved checkouts) hold seats; two from the same machine for the same product share
//! one. How many an organization may hold comes from its active subscriptions; the
//! database enforces it: a seat is taken by a conditional update of the pool's count
//! (`held < limit`) in the transaction that records the hold, never by reading the count
//! and writing in Rust.

use entitle_proto::OveragePolicy;
use uuid::Uuid;

use crate::{
    db::{DbError, Executor, Tx},
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
    tx: &mut Tx,
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

/// Gives back the seats of `org_id`'s expired holds of `product_id`: called before taking
/// one, so that a seat whose holder stopped renewing is free on time even between runs
/// of the background reclaim.
async fn reclaim_pool(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    now: i64,
) -> Result<(), DbError> {
    let freed = execute!(
        tx,
        "DELETE FROM seat_holds WHERE org_id = $1 AND product_id = $2 AND expires_at <= $3",
        org_id,
        product_id,
        now
    )?;
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

/// The live hold of this machine, if it has one: its seat is shared.
pub async fn live_hold(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    machine: &str,
    now: i64,
) -> Result<Option<(Uuid, bool)>, DbError> {
    Ok(on_db!(tx, |c| sqlx::query_as(
        "SELECT id, overage FROM seat_holds \
         WHERE org_id = $1 AND product_id = $2 AND machine = $3 AND expires_at > $4"
    )
    .bind(org_id)
    .bind(product_id)
    .bind(machine)
    .bind(now)
    .fetch_optional(c)
    .await)?)
}

/// Takes a seat for `machine` until `until`, or shares the machine's live one: the hold's
/// id and what it is. The count only grows where the database finds it below the limit.
pub async fn take(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    machine: &str,
    now: i64,
    until: i64,
) -> Result<(Option<Uuid>, Taken), DbError> {
    execute!(
        tx,
        "INSERT INTO seat_pools (org_id, product_id, held) VALUES ($1, $2, 0) \
         ON CONFLICT (org_id, product_id) DO NOTHING",
        org_id,
        product_id
    )?;
    reclaim_pool(tx, org_id, product_id, now).await?;
    if let Some((id, overage)) = live_hold(tx, org_id, product_id, machine, now).await? {
        extend(tx, id, until).await?;
        let taken = if overage { Taken::Overage } else { Taken::Seat };
        return Ok((Some(id), taken));
    }
    let limits = limits_of(tx, org_id, product_id, now).await?;
    let taken = if grant(tx, org_id, product_id, Some(limits.seats)).await? {
        Taken::Seat
    } else {
        let overage = match limits.cap {
            None => grant(tx, org_id, product_id, None).await?,
            Some(cap) if cap > limits.seats => grant(tx, org_id, product_id, Some(cap)).await?,
            Some(_) => false,
        };
        if overage {
            Taken::Overage
        } else {
            Taken::Refused
        }
    };
    if taken == Taken::Refused {
        return Ok((None, Taken::Refused));
    }
    let id = Uuid::now_v7();
    execute!(
        tx,
        "INSERT INTO seat_holds (id, org_id, product_id, machine, overage, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        org_id,
        product_id,
        machine,
        taken == Taken::Overage,
        now,
        until
    )?;
    Ok((Some(id), taken))
}

/// Counts one more seat held, if the count is below `limit` (no limit: always): the
/// database decides, under the row's lock, so concurrent takers never pass it together.
async fn grant(
    tx: &mut Tx,
    org_id: Uuid,
    product_id: Uuid,
    limit: Option<i64>,
) -> Result<bool, DbError> {
    let granted = execute!(
        tx,
        "UPDATE seat_pools SET held = held + 1 \
         WHERE org_id = $1 AND product_id = $2 AND held < $3",
        org_id,
        product_id,
        limit.unwrap_or(i64::MAX)
    )?;
    Ok(granted == 1)
}

/// Keeps a hold at least until `until`.
pub async fn extend(ex: &mut impl Executor, hold_id: Uuid, until: i64) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE seat_holds SET expires_at = CASE WHEN expires_at < $1 THEN $1 ELSE expires_at END \
         WHERE id = $2",
        until,
        hold_id
    )?;
    Ok(())
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

/// Gives back the seats whose holders stopped renewing before `now`, at most `batch`, found
/// through the expiry index. Returns how many were freed.
pub async fn reclaim_expired(db: &crate::db::Db, now: i64, batch: i64) -> Result<u64, DbError> {
    let expired: Vec<(Uuid, Uuid, Uuid)> = {
        let mut conn = db.reader().await?;
        on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT id, org_id, product_id FROM seat_holds WHERE expires_at <= $1 \
             ORDER BY expires_at LIMIT $2"
        )
        .bind(now)
        .bind(batch)
        .fetch_all(c)
        .await)?
    };
    let mut freed = 0;
    for (id, org_id, product_id) in expired {
        let mut tx = db.begin().await?;
        // Renewed meanwhile? Then it is not expired any more and stays.
        let deleted = execute!(
            &mut tx,
            "DELETE FROM seat_holds WHERE id = $1 AND expires_at <= $2",
            id,
            now
        )?;
        if deleted == 1 {
            execute!(
                &mut tx,
                "UPDATE seat_pools SET held = held - 1 WHERE org_id = $1 AND product_id = $2",
                org_id,
                product_id
            )?;
            freed += 1;
        }
        tx.commit().await?;
    }
    Ok(freed)
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
