//! Products and subscriptions: what the vendor sells and which organization may use what,
//! how many machines at once and until when. Operators manage them (the API and the
//! `entitled products` / `entitled subscriptions` commands call these functions, already
//! authorized); everyone's entitlements are read from them.

use entitle_proto::{
    Entitlement, NewProduct, NewSubscription, OveragePolicy, Product, ProductChange, ProductSeats,
    Subscription, SubscriptionChange,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    app::AppState,
    audit::{self, Actor, Entry},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{flows::Fields, store::AccountRow},
    on_db,
    orgs::{access::OrgAccess, roles::Action},
};

pub const MAX_SEATS: i64 = 1_000_000;
const MAX_VERSIONS: usize = 100;
/// The longest a subscription may run: twenty years.
const MAX_TERM_MS: i64 = 20 * 366 * 86_400_000;

// ---- Rules ---------------------------------------------------------------------------

/// A product code: 2 to 64 lowercase ASCII letters, digits and dashes, starting with a
/// letter or digit. Codes are what applications send and files name, so they are plain.
pub fn check_code(code: &str) -> Result<(), String> {
    let ok = (2..=64).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !code.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err("Use 2 to 64 lowercase letters, digits and dashes (such as civil-designer).".to_owned())
    }
}

fn check_text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("Give a name.".to_owned());
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(format!("Use at most {max} characters of plain text."));
    }
    Ok(value.to_owned())
}

/// Versions: each 1 to 50 characters without `;` or control characters, at most 100,
/// duplicates dropped, in the order given.
pub fn check_versions(versions: &[String]) -> Result<Vec<String>, String> {
    if versions.len() > MAX_VERSIONS {
        return Err(format!("Give at most {MAX_VERSIONS} versions."));
    }
    let mut checked: Vec<String> = Vec::with_capacity(versions.len());
    for version in versions {
        let version = version.trim();
        if version.is_empty()
            || version.chars().count() > 50
            || version.chars().any(|c| c.is_control() || c == ';')
        {
            return Err(format!(
                "\"{}\" is not a version: use 1 to 50 characters, without \";\".",
                version.chars().take(60).collect::<String>()
            ));
        }
        if !checked.iter().any(|v| v == version) {
            checked.push(version.to_owned());
        }
    }
    Ok(checked)
}

/// The overage policy as stored: the factor in thousandths, only for `allow_up_to`.
pub fn check_overage(policy: OveragePolicy, factor: Option<f64>) -> Result<Option<i64>, String> {
    match (policy, factor) {
        (OveragePolicy::AllowUpTo, Some(f)) if f.is_finite() && f > 1.0 && f <= 10.0 => {
            Ok(Some((f * 1000.0).round() as i64))
        }
        (OveragePolicy::AllowUpTo, _) => Err(
            "allow_up_to needs an overage_factor above 1 and at most 10 (such as 1.25).".to_owned(),
        ),
        (_, Some(_)) => Err("Only allow_up_to takes an overage_factor.".to_owned()),
        (_, None) => Ok(None),
    }
}

/// Seats and dates, checked together: 0 to a million seats, an end after the start,
/// a term of at most twenty years.
fn check_term(fields: &mut Fields, seats: i64, starts_at: i64, ends_at: i64) {
    if !(0..=MAX_SEATS).contains(&seats) {
        fields.add("seats", "invalid", format!("Seats are 0 to {MAX_SEATS}."));
    }
    if ends_at <= starts_at {
        fields.add("ends_at", "invalid", "The end must come after the start.");
    } else if ends_at - starts_at > MAX_TERM_MS {
        fields.add(
            "ends_at",
            "invalid",
            "A subscription runs at most twenty years.",
        );
    }
}

/// `scheduled`, `active` or `ended` at `now`.
pub fn status(starts_at: i64, ends_at: i64, ended_at: Option<i64>, now: i64) -> &'static str {
    if ended_at.is_some() || ends_at <= now {
        "ended"
    } else if starts_at > now {
        "scheduled"
    } else {
        "active"
    }
}

fn policy_name(policy: OveragePolicy) -> &'static str {
    match policy {
        OveragePolicy::Deny => "deny",
        OveragePolicy::Allow => "allow",
        OveragePolicy::AllowUpTo => "allow_up_to",
    }
}

fn policy_of(name: &str) -> OveragePolicy {
    match name {
        "allow" => OveragePolicy::Allow,
        "allow_up_to" => OveragePolicy::AllowUpTo,
        _ => OveragePolicy::Deny,
    }
}

// ---- Products ------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    code: String,
    name: String,
    versions: String,
    created_at: i64,
    updated_at: i64,
}

/// The versions as stored: separated by `;`.
fn versions_of(stored: &str) -> Vec<String> {
    stored
        .split(';')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The id of the product with `code`; a field error on `product` when there is none.
pub async fn product_id(ex: &mut impl Executor, code: &str) -> ApiResult<Uuid> {
    let found: Option<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT id FROM products WHERE code = $1"
    )
    .bind(code)
    .fetch_optional(c)
    .await)
    .map_err(DbError::from)?;
    found
        .map(|(id,)| id)
        .ok_or_else(|| ApiError::field("product", "unknown_product", "No product has this code."))
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id,
            code: r.code,
            name: r.name,
            versions: versions_of(&r.versions),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const PRODUCT_COLUMNS: &str = "id, code, name, versions, created_at, updated_at";

pub async fn products(ex: &mut impl Executor) -> Result<Vec<Product>, DbError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products ORDER BY code");
    let rows: Vec<ProductRow> = on_db!(ex, |c| sqlx::query_as(&sql).fetch_all(c).await)?;
    Ok(rows.into_iter().map(Product::from).collect())
}

async fn product_by_code(ex: &mut impl Executor, code: &str) -> Result<Option<Product>, DbError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE code = $1");
    let row: Option<ProductRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(code)
        .fetch_optional(c)
        .await)?;
    Ok(row.map(Product::from))
}

/// Adds a product; its code is unique.
pub async fn add_product(state: &AppState, actor: &Actor, new: &NewProduct) -> ApiResult<Product> {
    let mut fields = Fields::default();
    if let Err(message) = check_code(&new.code) {
        fields.add("code", "invalid", message);
    }
    let name = check_text(&new.name, 200)
        .map_err(|message| fields.add("name", "invalid", message))
        .ok();
    let versions = check_versions(&new.versions)
        .map_err(|message| fields.add("versions", "invalid", message))
        .ok();
    fields.finish()?;
    let (name, versions) = name
        .zip(versions)
        .ok_or_else(|| anyhow::anyhow!("checked"))?;
    let now = now_ms();
    let product = Product {
        id: Uuid::now_v7(),
        code: new.code.clone(),
        name,
        versions,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.db.begin().await?;
    let inserted = execute!(
        &mut tx,
        "INSERT INTO products (id, code, name, versions, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (code) DO NOTHING",
        product.id,
        &product.code,
        &product.name,
        product.versions.join(";"),
        now,
        now
    )?;
    if inserted == 0 {
        return Err(ApiError::conflict(
            "product_exists",
            format!("A product with the code {} exists already.", product.code),
        ));
    }
    record(
        &mut tx,
        actor,
        "product.created",
        "product",
        product.id,
        &product.code,
        None,
        json!({
            "name": product.name, "versions": product.versions,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(product)
}

/// Renames a product or changes its versions.
pub async fn change_product(
    state: &AppState,
    actor: &Actor,
    code: &str,
    change: &ProductChange,
) -> ApiResult<Product> {
    let mut fields = Fields::default();
    let name = match &change.name {
        Some(name) => check_text(name, 200)
            .map_err(|message| fields.add("name", "invalid", message))
            .ok(),
        None => None,
    };
    let versions = match &change.versions {
        Some(versions) => check_versions(versions)
            .map_err(|message| fields.add("versions", "invalid", message))
            .ok(),
        None => None,
    };
    fields.finish()?;
    let mut tx = state.db.begin().await?;
    let before = product_by_code(&mut tx, code)
        .await?
        .ok_or(ApiError::NotFound)?;
    let after = Product {
        name: name.unwrap_or_else(|| before.name.clone()),
        versions: versions.unwrap_or_else(|| before.versions.clone()),
        updated_at: now_ms(),
        ..before.clone()
    };
    execute!(
        &mut tx,
        "UPDATE products SET name = $1, versions = $2, updated_at = $3 WHERE id = $4",
        &after.name,
        after.versions.join(";"),
        after.updated_at,
        after.id
    )?;
    record(
        &mut tx,
        actor,
        "product.updated",
        "product",
        after.id,
        &after.code,
        None,
        json!({
            "before": {"name": before.name, "versions": before.versions},
            "after": {"name": after.name, "versions": after.versions},
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

// ---- Subscriptions -------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: Uuid,
    org_id: Uuid,
    org_name: String,
    seats: i64,
    starts_at: i64,
    ends_at: i64,
    ended_at: Option<i64>,
    overage: String,
    overage_factor_permille: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "s.id, s.org_id, \
     (SELECT o.name FROM orgs o WHERE o.id = s.org_id) AS org_name, s.seats, s.starts_at, s.ends_at, s.ended_at, \
     s.overage, s.overage_factor_permille, s.created_at, s.updated_at";

async fn with_products(
    ex: &mut impl Executor,
    rows: Vec<SubscriptionRow>,
) -> Result<Vec<Subscription>, DbError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let pairs: Vec<(Uuid, String)> = crate::fetch_in_chunks!(
        ex,
        "SELECT sp.subscription_id, p.code FROM subscription_products sp \
         JOIN products p ON p.id = sp.product_id WHERE sp.subscription_id IN {values} ORDER BY p.code",
        ids,
        1,
        |query| query
    )?;
    let now = now_ms();
    Ok(rows
        .into_iter()
        .map(|r| Subscription {
            products: pairs
                .iter()
                .filter(|(id, _)| *id == r.id)
                .map(|(_, code)| code.clone())
                .collect(),
            status: status(r.starts_at, r.ends_at, r.ended_at, now).to_owned(),
            id: r.id,
            org_id: r.org_id,
            org_name: r.org_name.clone(),
            seats: r.seats,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            ended_at: r.ended_at,
            overage: policy_of(&r.overage),
            overage_factor: r.overage_factor_permille.map(|p| p as f64 / 1000.0),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

/// Subscriptions, newest first: one organization's, or everyone's.
pub async fn subscriptions(
    ex: &mut impl Executor,
    org_id: Option<Uuid>,
) -> Result<Vec<Subscription>, DbError> {
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s \
         WHERE ($1 IS NULL OR s.org_id = $1) ORDER BY s.created_at DESC LIMIT 1000"
    );
    let rows: Vec<SubscriptionRow> =
        on_db!(ex, |c| sqlx::query_as(&sql).bind(org_id).fetch_all(c).await)?;
    with_products(ex, rows).await
}

async fn subscription(ex: &mut impl Executor, id: Uuid) -> ApiResult<Subscription> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.id = $1");
    let row: Option<SubscriptionRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(c)
        .await)
    .map_err(DbError::from)?;
    let row = row.ok_or(ApiError::NotFound)?;
    with_products(ex, vec![row])
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// The ids of `codes`, each a known product; unknown codes are a field error naming them.
async fn product_ids(tx: &mut Tx, codes: &[String]) -> ApiResult<Vec<Uuid>> {
    if codes.is_empty() || codes.len() > 100 {
        return Err(ApiError::field(
            "products",
            "invalid",
            "Name 1 to 100 products by their codes.",
        ));
    }
    let mut ids = Vec::with_capacity(codes.len());
    let mut unknown = Vec::new();
    for code in codes {
        match product_by_code(&mut *tx, code).await? {
            Some(product) if !ids.contains(&product.id) => ids.push(product.id),
            Some(_) => {}
            None => unknown.push(code.chars().take(64).collect::<String>()),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::field(
            "products",
            "unknown_product",
            format!("No product has the code {}.", unknown.join(", ")),
        ));
    }
    Ok(ids)
}

async fn set_products(tx: &mut Tx, id: Uuid, product_ids: &[Uuid]) -> Result<(), DbError> {
    execute!(
        tx,
        "DELETE FROM subscription_products WHERE subscription_id = $1",
        id
    )?;
    for product_id in product_ids {
        execute!(
            tx,
            "INSERT INTO subscription_products (subscription_id, product_id) VALUES ($1, $2)",
            id,
            *product_id
        )?;
    }
    Ok(())
}

/// Records subscription `id`'s terms as they stand now, in effect from `now`: the
/// history usage reports count seats from (`subscription_terms`).
async fn record_terms(tx: &mut Tx, id: Uuid, now: i64) -> Result<(), DbError> {
    execute!(
        tx,
        "INSERT INTO subscription_terms (subscription_id, recorded_at, org_id, seats, starts_at, ends_at) \
         SELECT id, $2, org_id, seats, starts_at, \
         CASE WHEN ended_at IS NOT NULL AND ended_at < ends_at THEN ended_at ELSE ends_at END \
         FROM subscriptions WHERE id = $1 \
         ON CONFLICT (subscription_id, recorded_at) DO UPDATE SET seats = excluded.seats, \
         starts_at = excluded.starts_at, ends_at = excluded.ends_at",
        id,
        now
    )?;
    execute!(
        tx,
        "DELETE FROM subscription_term_products WHERE subscription_id = $1 AND recorded_at = $2",
        id,
        now
    )?;
    execute!(
        tx,
        "INSERT INTO subscription_term_products (subscription_id, recorded_at, product_id) \
         SELECT subscription_id, $2, product_id FROM subscription_products WHERE subscription_id = $1",
        id,
        now
    )?;
    Ok(())
}

/// Adds a subscription for an organization.
pub async fn add_subscription(
    state: &AppState,
    actor: &Actor,
    new: &NewSubscription,
) -> ApiResult<Subscription> {
    let now = now_ms();
    let starts_at = new.starts_at.unwrap_or(now);
    let mut fields = Fields::default();
    check_term(&mut fields, new.seats, starts_at, new.ends_at);
    let factor = check_overage(new.overage, new.overage_factor)
        .map_err(|message| fields.add("overage_factor", "invalid", message))
        .ok();
    fields.finish()?;
    let mut tx = state.db.begin().await?;
    let org = crate::orgs::store::org_by_id(&mut tx, new.org_id)
        .await?
        .ok_or_else(|| ApiError::field("org_id", "unknown_org", "No organization has this id."))?;
    let product_ids = product_ids(&mut tx, &new.products).await?;
    let id = Uuid::now_v7();
    execute!(
        &mut tx,
        "INSERT INTO subscriptions (id, org_id, seats, starts_at, ends_at, overage, \
         overage_factor_permille, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        org.id,
        new.seats,
        starts_at,
        new.ends_at,
        policy_name(new.overage),
        factor.flatten(),
        now,
        now
    )?;
    set_products(&mut tx, id, &product_ids).await?;
    record_terms(&mut tx, id, now).await?;
    let created = subscription(&mut tx, id).await?;
    record(
        &mut tx,
        actor,
        "subscription.created",
        "subscription",
        id,
        &org.name,
        Some(org.id),
        json!({
            "products": created.products, "seats": created.seats, "starts_at": created.starts_at,
            "ends_at": created.ends_at, "overage": policy_name(created.overage),
            "overage_factor": created.overage_factor,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Changes seats, dates or products of a subscription that has not ended.
pub async fn change_subscription(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    change: &SubscriptionChange,
) -> ApiResult<Subscription> {
    let mut tx = state.db.begin().await?;
    let before = subscription(&mut tx, id).await?;
    if before.ended_at.is_some() {
        return Err(ApiError::conflict(
            "subscription_ended",
            "This subscription has ended; add a new one instead.",
        ));
    }
    let seats = change.seats.unwrap_or(before.seats);
    let starts_at = change.starts_at.unwrap_or(before.starts_at);
    let ends_at = change.ends_at.unwrap_or(before.ends_at);
    let mut fields = Fields::default();
    check_term(&mut fields, seats, starts_at, ends_at);
    fields.finish()?;
    if let Some(codes) = &change.products {
        let ids = product_ids(&mut tx, codes).await?;
        set_products(&mut tx, id, &ids).await?;
    }
    let now = now_ms();
    execute!(
        &mut tx,
        "UPDATE subscriptions SET seats = $1, starts_at = $2, ends_at = $3, updated_at = $4 WHERE id = $5",
        seats,
        starts_at,
        ends_at,
        now,
        id
    )?;
    record_terms(&mut tx, id, now).await?;
    let after = subscription(&mut tx, id).await?;
    record(&mut tx, actor, "subscription.updated", "subscription", id, "", Some(after.org_id), json!({
        "before": {"seats": before.seats, "starts_at": before.starts_at, "ends_at": before.ends_at, "products": before.products},
        "after": {"seats": after.seats, "starts_at": after.starts_at, "ends_at": after.ends_at, "products": after.products},
    }))
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Ends a subscription now: it grants no new leases or checkouts from this moment.
pub async fn end_subscription(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
) -> ApiResult<Subscription> {
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let ended = execute!(
        &mut tx,
        "UPDATE subscriptions SET ended_at = $1, updated_at = $1 WHERE id = $2 AND ended_at IS NULL",
        now,
        id
    )?;
    let after = subscription(&mut tx, id).await?;
    if ended == 1 {
        record_terms(&mut tx, id, now).await?;
        record(
            &mut tx,
            actor,
            "subscription.ended",
            "subscription",
            id,
            "",
            Some(after.org_id),
            json!({
                "ends_at": after.ends_at, "ended_at": now,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// One subscription, for operators.
pub async fn get_subscription(state: &AppState, id: Uuid) -> ApiResult<Subscription> {
    let mut conn = state.db.reader().await?;
    subscription(&mut conn, id).await
}

// ---- What an organization has -------------------------------------------------------

/// An organization's subscriptions, newest first, for those who may see them.
pub async fn org_subscriptions(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<Subscription>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ViewSubscriptions)?;
    Ok(subscriptions(&mut conn, Some(org_id)).await?)
}

/// An organization's seats of each product it subscribes to (or still holds seats of):
/// owned, and in use by leases and checkouts now.
pub async fn org_seats(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<ProductSeats>> {
    let now = now_ms();
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ViewSubscriptions)?;
    let subscribed: Vec<(Uuid, String, String, i64)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT p.id, p.code, p.name, MAX(s.ends_at) FROM subscriptions s \
         JOIN subscription_products sp ON sp.subscription_id = s.id \
         JOIN products p ON p.id = sp.product_id \
         WHERE s.org_id = $1 AND s.ended_at IS NULL AND s.starts_at <= $2 AND s.ends_at > $2 \
         GROUP BY p.id, p.code, p.name"
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    let sql = format!(
        "SELECT p.id, p.code, p.name, h.machine, h.overage FROM seat_holds h \
         JOIN products p ON p.id = h.product_id WHERE h.org_id = $1 AND NOT ({})",
        super::seats::lapsed("h", "$2")
    );
    let holds: Vec<(Uuid, String, String, String, bool)> =
        on_db!(&mut conn, |c| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(now)
            .fetch_all(c)
            .await)
        .map_err(DbError::from)?;
    let mut products: Vec<(Uuid, String, String, i64)> = subscribed;
    for (id, code, name, _, _) in &holds {
        if !products.iter().any(|p| p.0 == *id) {
            products.push((*id, code.clone(), name.clone(), 0));
        }
    }
    products.sort_by(|a, b| a.1.cmp(&b.1));
    let mut all = Vec::with_capacity(products.len());
    for (product_id, code, name, ends_at) in products {
        let limits = super::seats::limits_of(&mut conn, org_id, product_id, now).await?;
        let mine = holds.iter().filter(|h| h.0 == product_id);
        let reserved = mine
            .clone()
            .filter(|h| h.3.starts_with("reserved:"))
            .count() as i64;
        all.push(ProductSeats {
            product: code,
            product_name: name,
            seats: limits.seats,
            cap: limits.cap,
            leased: mine.clone().count() as i64 - reserved,
            reserved,
            overage: mine.filter(|h| h.4).count() as i64,
            ends_at,
        });
    }
    Ok(all)
}

// ---- Entitlements --------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct EntitlementRow {
    code: String,
    name: String,
    versions: String,
    org_id: Uuid,
    org_name: String,
    subscription_id: Uuid,
    seats: i64,
    ends_at: i64,
}

/// What `account_id` may use now: each product of each active subscription of each
/// organization where they are an enabled member.
pub async fn entitlements_of(
    ex: &mut impl Executor,
    account_id: Uuid,
    now: i64,
) -> Result<Vec<Entitlement>, DbError> {
    let rows: Vec<EntitlementRow> = on_db!(ex, |c| sqlx::query_as(
        "SELECT p.code, p.name, p.versions, o.id AS org_id, o.name AS org_name, \
         s.id AS subscription_id, s.seats, s.ends_at \
         FROM org_members m \
         JOIN orgs o ON o.id = m.org_id \
         JOIN subscriptions s ON s.org_id = m.org_id \
         JOIN subscription_products sp ON sp.subscription_id = s.id \
         JOIN products p ON p.id = sp.product_id \
         WHERE m.account_id = $1 AND m.disabled_at IS NULL \
           AND s.ended_at IS NULL AND s.starts_at <= $2 AND s.ends_at > $2 \
         ORDER BY p.code, o.name, s.ends_at"
    )
    .bind(account_id)
    .bind(now)
    .fetch_all(c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|r| Entitlement {
            product: r.code,
            product_name: r.name,
            versions: versions_of(&r.versions),
            org_id: r.org_id,
            org_name: r.org_name,
            subscription_id: r.subscription_id,
            seats: r.seats,
            ends_at: r.ends_at,
        })
        .collect())
}

#[allow(clippy::too_many_arguments)] // one audit entry, spelled out
async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: &'static str,
    target_type: &'static str,
    target_id: Uuid,
    label: &str,
    org_id: Option<Uuid>,
    details: serde_json::Value,
) -> ApiResult<()> {
    audit::record(
        tx,
        actor,
        Entry {
            action,
            target_type,
            target_id: Some(target_id),
            target_label: (!label.is_empty()).then_some(label),
            org_id,
            details,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_plain_and_versions_are_listed_once() {
        assert!(check_code("civil-designer").is_ok());
        assert!(check_code("v8").is_ok());
        for bad in [
            "C",
            "Civil",
            "civil designer",
            "-civil",
            "civil_designer",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(check_code(bad).is_err(), "{bad}");
        }
        let versions = ["24.1", " 24.2 ", "24.1"].map(String::from);
        assert_eq!(
            check_versions(&versions),
            Ok(vec!["24.1".to_owned(), "24.2".to_owned()])
        );
        assert!(check_versions(&["a;b".to_owned()]).is_err());
        assert!(check_versions(&[String::new()]).is_err());
        assert!(check_versions(&vec!["1".to_owned(); 101]).is_err());
    }

    #[test]
    fn overage_factors_belong_to_allow_up_to_alone() {
        assert_eq!(check_overage(OveragePolicy::Deny, None), Ok(None));
        assert_eq!(
            check_overage(OveragePolicy::AllowUpTo, Some(1.25)),
            Ok(Some(1250))
        );
        for (policy, factor) in [
            (OveragePolicy::AllowUpTo, None),
            (OveragePolicy::AllowUpTo, Some(1.0)),
            (OveragePolicy::AllowUpTo, Some(10.5)),
            (OveragePolicy::AllowUpTo, Some(f64::NAN)),
            (OveragePolicy::Allow, Some(1.5)),
        ] {
            assert!(
                check_overage(policy, factor).is_err(),
                "{policy:?} {factor:?}"
            );
        }
    }

    #[test]
    fn a_subscription_is_scheduled_then_active_then_ended() {
        assert_eq!(status(10, 20, None, 5), "scheduled");
        assert_eq!(status(10, 20, None, 10), "active");
        assert_eq!(status(10, 20, None, 20), "ended");
        assert_eq!(status(10, 20, Some(12), 15), "ended");
        let mut fields = Fields::default();
        check_term(&mut fields, -1, 10, 10);
        assert!(fields.finish().is_err());
    }
}
