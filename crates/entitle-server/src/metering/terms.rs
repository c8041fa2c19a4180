//! The subscriptions' recorded terms, from which a report counts each day's seats
//! ([`super::rules::seat_steps`]).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::rules::Terms;
use crate::{
    db::{DbError, Executor},
    on_db,
};

/// Every recorded term of the organization's subscriptions, with their products.
pub async fn terms_of(ex: &mut impl Executor, org: Uuid) -> Result<Vec<Terms>, DbError> {
    let rows: Vec<(Uuid, i64, i64, i64, i64, Option<Uuid>)> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT t.subscription_id, t.recorded_at, t.seats, t.starts_at, t.ends_at, p.product_id \
         FROM subscription_terms t LEFT JOIN subscription_term_products p \
         ON p.subscription_id = t.subscription_id AND p.recorded_at = t.recorded_at \
         WHERE t.org_id = $1 ORDER BY t.subscription_id, t.recorded_at"
    )
    .bind(org)
    .fetch_all(c)
    .await
    })?;
    let mut terms: BTreeMap<(Uuid, i64), Terms> = BTreeMap::new();
    for (subscription, recorded_at, seats, starts_at, ends_at, product) in rows {
        let entry = terms
            .entry((subscription, recorded_at))
            .or_insert_with(|| Terms {
                subscription,
                recorded_at,
                seats,
                starts_at,
                ends_at,
                products: Vec::new(),
            });
        entry.products.extend(product);
    }
    Ok(terms.into_values().collect())
}
