//! The members of an organization: listing with search, sort and pages, and who its
//! administrators are.

use entitle_proto::{
    AddMemberRequest, DomainCount, MemberCounts, MemberPage, OrgAdministrator, OrgMember,
    UpdateMemberRequest,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    access::OrgAccess,
    roles::{Action, Role},
    store,
};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    identity::{
        email_change::{self, EmailChange},
        flows::{self, actor_of, Fields},
        person::{CountryCode, Email, PersonName},
        store::{self as accounts, AccountRow},
    },
    mail::Email as Message,
    on_db,
};

pub const MAX_PAGE: i64 = 200;

/// `?q=&sort=&order=&offset=&limit=` of the member list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MemberQuery {
    /// Part of an email address or name, in any case.
    #[serde(default)]
    pub q: String,
    /// `email` (default), `first_name`, `last_name` or `joined`.
    #[serde(default)]
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// 1 to 200, default 50.
    #[serde(default)]
    pub limit: Option<i64>,
    /// `active`, `invited` (no password set yet) or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Members holding this role (`user`, `administrator`, …).
    #[serde(default)]
    pub role: Option<String>,
    /// Members whose email address is in this domain, exactly.
    #[serde(default)]
    pub domain: Option<String>,
}

/// What the query means, checked: only known columns reach the SQL.
struct Listing {
    /// The range `[from, to)` of keys starting with the search text.
    prefix: Option<(String, String)>,
    order_by: &'static str,
    offset: i64,
    limit: i64,
    /// A condition on `m` from the status filter, written here from known words.
    status: Option<&'static str>,
    role: Option<Role>,
    domain: Option<String>,
}

impl Listing {
    fn narrowed(&self) -> bool {
        self.status.is_some() || self.role.is_some() || self.domain.is_some()
    }
}

/// The SQL condition of a member status. "Invited" and "disabled" are written as the
/// partial indexes `org_members_invited` and `org_members_disabled` are, so that both
/// databases count them from those indexes.
fn status_condition(status: &str) -> Option<&'static str> {
    match status {
        "active" => Some("m.registered AND m.disabled_at IS NULL"),
        "invited" => Some("NOT m.registered AND m.disabled_at IS NULL"),
        "disabled" => Some("m.disabled_at IS NOT NULL"),
        _ => None,
    }
}

/// A filter's value, with blank meaning none (as forms send it).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn check_query(query: &MemberQuery) -> ApiResult<Listing> {
    let ascending = match query.order.as_deref().unwrap_or("asc") {
        "asc" => true,
        "desc" => false,
        _ => return Err(ApiError::field("order", "invalid", "Order is asc or desc.")),
    };
    // Every order ends with the account id, so pages never overlap or skip a member,
    // and each matches an index of org_members.
    let order_by = match (query.sort.as_deref().unwrap_or("email"), ascending) {
        ("email", true) => "m.email ASC, m.account_id ASC",
        ("email", false) => "m.email DESC, m.account_id DESC",
        ("first_name", true) => "m.given_key ASC, m.account_id ASC",
        ("first_name", false) => "m.given_key DESC, m.account_id DESC",
        ("last_name", true) => "m.family_key ASC, m.account_id ASC",
        ("last_name", false) => "m.family_key DESC, m.account_id DESC",
        ("joined", true) => "m.created_at ASC, m.account_id ASC",
        ("joined", false) => "m.created_at DESC, m.account_id DESC",
        _ => {
            return Err(ApiError::field(
                "sort",
                "invalid",
                "Sort by email, first_name, last_name or joined.",
            ))
        }
    };
    let (offset, limit) = check_page(query.offset, query.limit, &query.q)?;
    let status = match given(&query.status) {
        None => None,
        Some(status) => Some(status_condition(status).ok_or_else(|| {
            ApiError::field(
                "status",
                "invalid",
                "Status is active, invited or disabled.",
            )
        })?),
    };
    let role = match given(&query.role) {
        None => None,
        Some(name) => Some(Role::parse(name).ok_or_else(|| {
            ApiError::field("role", "unknown_role", super::roles::unknown_role(name))
        })?),
    };
    let domain = given(&query.domain).map(str::to_lowercase);
    if domain.as_ref().is_some_and(|d| d.chars().count() > 253) {
        return Err(ApiError::field(
            "domain",
            "too_long",
            "A domain has at most 253 characters.",
        ));
    }
    Ok(Listing {
        prefix: search_range(&query.q),
        order_by,
        offset,
        limit,
        status,
        role,
        domain,
    })
}

/// The offset and limit of a list's page (50 by default, at most `MAX_PAGE`), with its
/// search text of at most 200 characters, checked.
pub(crate) fn check_page(
    offset: Option<i64>,
    limit: Option<i64>,
    q: &str,
) -> ApiResult<(i64, i64)> {
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(50);
    if offset < 0 {
        return Err(ApiError::field(
            "offset",
            "invalid",
            "The offset cannot be negative.",
        ));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            "invalid",
            format!("The limit is 1 to {MAX_PAGE}."),
        ));
    }
    if q.chars().count() > 200 {
        return Err(ApiError::field(
            "q",
            "too_long",
            "Search for at most 200 characters.",
        ));
    }
    Ok((offset, limit))
}

/// The search text as a range of keys: everything that starts with it, in any case.
/// Keys compare bytewise, and no key holds U+10FFFF, so `text + U+10FFFF` bounds them.
pub(crate) fn search_range(q: &str) -> Option<(String, String)> {
    let text = q
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if text.is_empty() {
        return None;
    }
    let to = format!("{text}{}", char::MAX);
    Some((text, to))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    country: String,
    registered: bool,
    disabled: bool,
    joined_at: i64,
}

/// The member's email address, its domain, "first last" or "last first" starts with
/// the search text. Each alternative names the organization, so that both databases
/// answer with one index range scan per key.
const MATCHES: &str = "(m.org_id = $1 AND m.email >= $2 AND m.email < $3) \
    OR (m.org_id = $1 AND m.email_domain >= $2 AND m.email_domain < $3) \
    OR (m.org_id = $1 AND m.given_key >= $2 AND m.given_key < $3) \
    OR (m.org_id = $1 AND m.family_key >= $2 AND m.family_key < $3)";

/// The WHERE clause of a listing over `org_members m`, with its binds: $1 the
/// organization, $2 and $3 the search range, $4 the domain and $5 the role (unused binds
/// keep the placeholders the same in every form of the query).
fn listing_filter(listing: &Listing) -> String {
    let mut filter = match &listing.prefix {
        Some(_) => format!("({MATCHES})"),
        None => "m.org_id = $1 AND $2 = $3".to_owned(),
    };
    if let Some(status) = listing.status {
        filter.push_str(&format!(" AND {status}"));
    }
    if listing.domain.is_some() {
        filter.push_str(" AND m.email_domain = $4");
    } else {
        filter.push_str(" AND $4 = ''");
    }
    if listing.role.is_some() {
        // The role's holders as a set, read once from the index that starts with the
        // role: probing each member's roles instead costs a lookup per member.
        filter.push_str(
            " AND m.account_id IN (SELECT r.account_id FROM org_member_roles r \
             WHERE r.role = $5 AND r.org_id = $1)",
        );
    } else {
        filter.push_str(" AND $5 = ''");
    }
    filter
}

async fn page_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    listing: &Listing,
) -> Result<MemberPage, DbError> {
    let (from, to) = match &listing.prefix {
        Some((from, to)) => (from.as_str(), to.as_str()),
        None => ("", ""),
    };
    let domain = listing.domain.as_deref().unwrap_or("");
    let role = listing.role.map(Role::as_str).unwrap_or("");
    let filter = listing_filter(listing);
    // The page is picked from an index alone; only its rows are then joined, so a deep
    // offset skips index entries, not joined rows. CROSS JOIN keeps SQLite from
    // scanning every member to join the page (PostgreSQL plans it freely).
    let sql = format!(
        "SELECT a.id, a.email, a.first_name, a.last_name, a.country, \
         a.password_hash IS NOT NULL AS registered, m.disabled_at IS NOT NULL AS disabled, \
         m.created_at AS joined_at \
         FROM (SELECT m.account_id FROM org_members m WHERE {filter} ORDER BY {order} LIMIT $6 OFFSET $7) p \
         CROSS JOIN org_members m CROSS JOIN accounts a \
         WHERE m.org_id = $1 AND m.account_id = p.account_id AND a.id = p.account_id ORDER BY {order}",
        order = listing.order_by
    );
    let rows: Vec<MemberRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(from)
        .bind(to)
        .bind(domain)
        .bind(role)
        .bind(listing.limit)
        .bind(listing.offset)
        .fetch_all(c)
        .await)?;
    let count_sql = if listing.prefix.is_some() || listing.narrowed() {
        format!("SELECT COUNT(*) FROM org_members m WHERE {filter}")
    } else {
        "SELECT member_count FROM orgs WHERE id = $1 AND $2 = $3 AND $4 = $5".to_owned()
    };
    let (total,): (i64,) = on_db!(ex, |c| sqlx::query_as(&count_sql)
        .bind(org_id)
        .bind(from)
        .bind(to)
        .bind(domain)
        .bind(role)
        .fetch_one(c)
        .await)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut roles = store::roles_of_members(ex, org_id, &ids).await?;
    let members = rows
        .into_iter()
        .map(|row| OrgMember {
            roles: roles.remove(&row.id).unwrap_or_default(),
            account_id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            country: row.country,
            registered: row.registered,
            disabled: row.disabled,
            joined_at: row.joined_at,
            pending_email: None,
        })
        .collect();
    Ok(MemberPage {
        members,
        total,
        offset: listing.offset,
        limit: listing.limit,
    })
}

/// How many members have each status and role, and the largest email domains, for
/// those who may list members.
pub async fn counts(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<MemberCounts> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ListUsers)?;
    // Each count comes from an index alone: the member count kept by triggers, the
    // partial indexes of invited and disabled members, the index that starts with the role.
    let (total, invited, disabled): (i64, i64, i64) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT o.member_count, \
         (SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND NOT registered AND disabled_at IS NULL), \
         (SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND disabled_at IS NOT NULL) \
         FROM orgs o WHERE o.id = $1"
    )
    .bind(org_id)
    .fetch_one(c)
    .await)
    .map_err(DbError::from)?;
    let statuses = [
        ("active".to_owned(), total - invited - disabled),
        ("invited".to_owned(), invited),
        ("disabled".to_owned(), disabled),
    ];
    let mut roles = Vec::with_capacity(Role::ALL.len());
    for role in Role::ALL {
        let (n,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT COUNT(*) FROM org_member_roles WHERE role = $1 AND org_id = $2"
        )
        .bind(role.as_str())
        .bind(org_id)
        .fetch_one(c)
        .await)
        .map_err(DbError::from)?;
        roles.push((role.as_str().to_owned(), n));
    }
    let domains: Vec<(String, i64)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT email_domain, COUNT(*) FROM org_members WHERE org_id = $1 \
         GROUP BY email_domain ORDER BY 2 DESC, 1 LIMIT 20"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    Ok(MemberCounts {
        total,
        statuses: statuses.into_iter().collect(),
        roles: roles.into_iter().collect(),
        domains: domains
            .into_iter()
            .map(|(domain, members)| DomainCount { domain, members })
            .collect(),
    })
}

/// Every member the query matches (all pages), as CSV, for those who may list members.
pub async fn export_csv(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    query: &MemberQuery,
) -> ApiResult<String> {
    let mut listing = check_query(&MemberQuery {
        offset: None,
        limit: None,
        ..query.clone()
    })?;
    // One page holding everyone: the ids are picked from the index in one pass (an
    // offset walk would skip ever more index entries per page).
    listing.limit = i64::from(u32::MAX);
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ListUsers)?;
    let page = page_of(&mut conn, org_id, &listing).await?;
    Ok(crate::csv_file::write(
        &[
            "Email",
            "First Name",
            "Last Name",
            "Country",
            "Roles",
            "Status",
            "Joined",
        ],
        page.members.iter().map(|m| {
            let status = match (m.disabled, m.registered) {
                (true, _) => "disabled",
                (false, true) => "active",
                (false, false) => "invited",
            };
            vec![
                m.email.clone(),
                m.first_name.clone(),
                m.last_name.clone(),
                m.country.clone(),
                super::roles::labels(&m.roles).replace(", ", ";"),
                status.to_owned(),
                crate::audit::rfc3339(m.joined_at),
            ]
        }),
    ))
}

/// A page of an organization's members, for those who may list them.
pub async fn list(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    query: &MemberQuery,
) -> ApiResult<MemberPage> {
    let listing = check_query(query)?;
    let mut conn = state.db.reader().await?;
    let access = OrgAccess::of(&mut conn, caller, org_id).await?;
    access.require(Action::ListUsers)?;
    Ok(page_of(&mut conn, org_id, &listing).await?)
}

/// One member, for those who may list members; with whether this organization is their
/// home (only the home organization edits their details).
pub async fn get(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
) -> ApiResult<(OrgMember, bool)> {
    let mut conn = state.db.reader().await?;
    let access = OrgAccess::of(&mut conn, caller, org_id).await?;
    access.require(Action::ListUsers)?;
    let (joined_at, disabled_at): (i64, Option<i64>) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT created_at, disabled_at FROM org_members WHERE org_id = $1 AND account_id = $2"
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_optional(c)
    .await)
    .map_err(DbError::from)?
    .ok_or(ApiError::NotFound)?;
    let account = accounts::account_by_id(&mut conn, account_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut roles: Vec<Role> = store::roles_of(&mut conn, org_id, account_id)
        .await?
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect();
    roles.sort();
    let home = account.home_org_id == Some(org_id);
    let mut member = member_of(&account, &roles, disabled_at.is_some(), joined_at);
    member.pending_email = email_change::pending(&mut conn, account.id, now_ms()).await?;
    Ok((member, home))
}

/// The organization's Fulfillment Contacts, Administrators and Co-Administrators, for
/// any member.
pub async fn administrators(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<OrgAdministrator>> {
    let mut conn = state.db.reader().await?;
    let access = OrgAccess::of(&mut conn, caller, org_id).await?;
    access.require(Action::ViewOrg)?;
    let rows: Vec<(String, String, String, String)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT a.first_name, a.last_name, a.email, r.role FROM org_member_roles r \
         JOIN accounts a ON a.id = r.account_id \
         WHERE r.org_id = $1 AND r.role IN ($2, $3, $4) ORDER BY a.last_name, a.first_name, a.email, r.role"
    )
    .bind(org_id)
    .bind(Role::FulfillmentContact.as_str())
    .bind(Role::Administrator.as_str())
    .bind(Role::CoAdministrator.as_str())
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    let mut administrators: Vec<OrgAdministrator> = Vec::new();
    for (first_name, last_name, email, role) in rows {
        match administrators.last_mut() {
            Some(last) if last.email == email => last.roles.push(role),
            _ => administrators.push(OrgAdministrator {
                first_name,
                last_name,
                email,
                roles: vec![role],
            }),
        }
    }
    Ok(administrators)
}

/// Role names from a request; none means User. Unknown names are a field error.
fn parse_roles(names: &[String]) -> ApiResult<Vec<Role>> {
    let mut roles = Vec::new();
    for name in names {
        let role = Role::parse(name).ok_or_else(|| {
            ApiError::field("roles", "unknown_role", super::roles::unknown_role(name))
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        roles.push(Role::User);
    }
    roles.sort();
    Ok(roles)
}

fn member_of(account: &AccountRow, roles: &[Role], disabled: bool, joined_at: i64) -> OrgMember {
    OrgMember {
        account_id: account.id,
        email: account.email.clone(),
        first_name: account.first_name.clone(),
        last_name: account.last_name.clone(),
        country: account.country.clone(),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        registered: account.password_hash.is_some(),
        disabled,
        joined_at,
        pending_email: None,
    }
}

/// Adds one person (invited by email when they have no password yet).
pub async fn add(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    request: &AddMemberRequest,
    from: &Client,
) -> ApiResult<OrgMember> {
    let mut fields = Fields::default();
    let person = flows::parse_person(
        &mut fields,
        &request.email,
        &request.first_name,
        &request.last_name,
        &request.country,
    );
    fields.finish()?;
    let person = person.ok_or_else(|| anyhow::anyhow!("validated person missing"))?;
    let roles = parse_roles(&request.roles)?;
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    let (account, invitation) = add_member(
        &mut tx,
        state,
        &access,
        &actor_of(caller, from),
        &person,
        &roles,
    )
    .await?;
    tx.commit().await?;
    if let Some(message) = invitation {
        state.mailer.send_in_background(message);
    }
    Ok(member_of(&account, &roles, false, now_ms()))
}

/// Adds a person with `roles` as every entry point does: the caller must manage members
/// and be allowed to give each role; someone already in an organization is refused.
pub async fn add_member(
    tx: &mut Tx,
    state: &AppState,
    access: &OrgAccess,
    actor: &Actor,
    person: &flows::Person,
    roles: &[Role],
) -> ApiResult<(AccountRow, Option<Message>)> {
    access.require(Action::ManageUsers)?;
    for role in roles {
        access.require(Action::AssignRole(*role))?;
    }
    let org_id = access.org.id;
    if let Some(existing) = accounts::account_by_email(&mut *tx, person.email.as_str()).await? {
        if store::is_member(&mut *tx, org_id, existing.id).await? {
            return Err(ApiError::conflict(
                "already_member",
                "This person is already a member of the organization.",
            ));
        }
        if existing.home_org_id.is_some() {
            return Err(ApiError::conflict(
                "member_of_other_org",
                "This person belongs to another organization.",
            ));
        }
    }
    super::add_person(tx, state, &access.org, person, roles, actor).await
}

/// A member of `org_id` and their roles, as the caller may change them: 404 when not a
/// member, 403 when their role is above the caller's. Every entry point that changes a
/// member starts here.
pub async fn changeable_member(
    tx: &mut crate::db::Tx,
    access: &OrgAccess,
    account_id: Uuid,
) -> ApiResult<(AccountRow, Vec<Role>, bool)> {
    access.require(Action::ManageUsers)?;
    let disabled = store::membership(tx, access.org.id, account_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let account = accounts::account_by_id(tx, account_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut roles: Vec<Role> = store::roles_of(tx, access.org.id, account_id)
        .await?
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect();
    roles.sort();
    access.require_over(&roles)?;
    Ok((account, roles, disabled))
}

async fn refuse_losing_last_contact(
    tx: &mut crate::db::Tx,
    org_id: Uuid,
    had: &[Role],
    keeps: bool,
) -> ApiResult<()> {
    if had.contains(&Role::FulfillmentContact) && !keeps {
        let contacts =
            store::members_with_role(tx, org_id, Role::FulfillmentContact.as_str()).await?;
        if contacts.len() <= 1 {
            return Err(ApiError::conflict(
                "last_fulfillment_contact",
                "An organization keeps at least one Fulfillment Contact: make someone else one first.",
            ));
        }
    }
    Ok(())
}

/// Replaces a member's roles; every role given or taken away must be the caller's to give.
pub async fn set_roles(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    names: &[String],
    from: &Client,
) -> ApiResult<OrgMember> {
    let wanted = parse_roles(names)?;
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    let (account, had, disabled) = changeable_member(&mut tx, &access, account_id).await?;
    for role in had
        .iter()
        .filter(|r| !wanted.contains(r))
        .chain(wanted.iter().filter(|r| !had.contains(r)))
    {
        access.require(Action::AssignRole(*role))?;
    }
    refuse_losing_last_contact(
        &mut tx,
        org_id,
        &had,
        wanted.contains(&Role::FulfillmentContact),
    )
    .await?;
    let names: Vec<&str> = wanted.iter().map(|r| r.as_str()).collect();
    store::set_roles(&mut tx, org_id, account_id, &names).await?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.roles_changed",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org_id),
            details: json!({
                "before": had.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "after": names,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(member_of(&account, &wanted, disabled, now_ms()))
}

/// Edits a member's details (only in their home organization, which owns their account)
/// or disables and enables them.
pub async fn update(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    request: &UpdateMemberRequest,
    from: &Client,
) -> ApiResult<OrgMember> {
    let mut fields = Fields::default();
    let change = MemberEdit {
        first_name: request
            .first_name
            .as_deref()
            .and_then(|raw| fields.check("first_name", PersonName::parse(raw))),
        last_name: request
            .last_name
            .as_deref()
            .and_then(|raw| fields.check("last_name", PersonName::parse(raw))),
        country: request
            .country
            .as_deref()
            .and_then(|raw| fields.check("country", CountryCode::parse(raw))),
        email: request
            .email
            .as_deref()
            .and_then(|raw| fields.check("email", Email::parse(raw))),
        disabled: request.disabled,
    };
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::ManageUsers)?;
    fields.finish()?;
    let (edited, messages) = edit(
        &mut tx,
        state,
        &access,
        &actor_of(caller, from),
        account_id,
        &change,
        None,
    )
    .await?;
    tx.commit().await?;
    for message in messages {
        state.mailer.send_in_background(message);
    }
    let mut member = member_of(&edited.account, &edited.roles, edited.disabled, now_ms());
    member.pending_email = edited.pending_email;
    Ok(member)
}

/// A change to a member; `None` leaves a detail as it is.
#[derive(Debug, Default, Clone)]
pub struct MemberEdit {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub country: Option<CountryCode>,
    /// A new sign-in address: a registered person must confirm it from the new address.
    pub email: Option<Email>,
    pub disabled: Option<bool>,
}

/// A member after an edit.
pub struct Edited {
    pub account: AccountRow,
    pub roles: Vec<Role>,
    pub disabled: bool,
    /// The address waiting for its owner's confirmation.
    pub pending_email: Option<String>,
}

/// Applies `change` to a member under the rules every entry point (API, pages, SCIM)
/// shares: the caller may change this member, details only in their home organization,
/// nobody disables themselves, and a new address of a registered person waits for its
/// owner's confirmation. `also` adds the caller's own attributes to the audit event's
/// before and after. Returns the member and the messages to send after committing.
pub async fn edit(
    tx: &mut Tx,
    state: &AppState,
    access: &OrgAccess,
    actor: &Actor,
    account_id: Uuid,
    change: &MemberEdit,
    also: Option<(serde_json::Value, serde_json::Value)>,
) -> ApiResult<(Edited, Vec<Message>)> {
    let org_id = access.org.id;
    let (account, roles, was_disabled) = changeable_member(tx, access, account_id).await?;
    let first = change
        .first_name
        .as_ref()
        .map_or(account.first_name.as_str(), PersonName::as_str);
    let last = change
        .last_name
        .as_ref()
        .map_or(account.last_name.as_str(), PersonName::as_str);
    let country = change
        .country
        .as_ref()
        .map_or(account.country.as_str(), CountryCode::as_str);
    let edits_person = (first, last, country)
        != (
            account.first_name.as_str(),
            account.last_name.as_str(),
            account.country.as_str(),
        );
    let edits_email = change
        .email
        .as_ref()
        .is_some_and(|e| e.as_str() != account.email);
    if (edits_person || edits_email) && account.home_org_id != Some(org_id) {
        return Err(ApiError::forbidden(
            "not_home_organization",
            "This person's details belong to their own organization; only it can change them.",
        ));
    }
    let disabled = change.disabled.unwrap_or(was_disabled);
    if actor.id == Some(account.id) && disabled && !was_disabled {
        return Err(ApiError::conflict(
            "cannot_disable_self",
            "You cannot disable yourself.",
        ));
    }
    let now = now_ms();
    let mut current = account.clone();
    if edits_person {
        accounts::update_person(&mut *tx, account.id, first, last, country, now).await?;
        current = AccountRow {
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            country: country.to_owned(),
            ..current
        };
        store::rekey_member(&mut *tx, &current).await?;
    }
    let mut messages = Vec::new();
    let mut pending_email = None;
    if let Some(email) = change.email.as_ref().filter(|_| edits_email) {
        let requested_by = match actor.id {
            Some(id) if id == account.id => "You".to_owned(),
            _ => format!("An administrator of {}", access.org.name),
        };
        let (outcome, sent) = email_change::request(
            tx,
            state,
            &current,
            email,
            actor,
            &requested_by,
            Some(&access.org.name),
        )
        .await?;
        messages = sent;
        match outcome {
            EmailChange::Pending(new) => pending_email = Some(new),
            EmailChange::Applied => current.email = email.as_str().to_owned(),
            EmailChange::Unchanged => {}
        }
    }
    if disabled != was_disabled {
        set_disabled(tx, state, org_id, &current, disabled, now).await?;
    }
    let (mut before, mut after) = (
        json!({"first_name": account.first_name, "last_name": account.last_name,
               "country": account.country, "email": account.email, "disabled": was_disabled}),
        json!({"first_name": first, "last_name": last, "country": country,
               "email": current.email, "disabled": disabled}),
    );
    if let Some(email) = &pending_email {
        after["pending_email"] = json!(email);
    }
    if let Some((extra_before, extra_after)) = also {
        merge(&mut before, extra_before);
        merge(&mut after, extra_after);
    }
    audit::record(
        &mut *tx,
        actor,
        Entry {
            action: "org.member_updated",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org_id),
            details: json!({ "before": before, "after": after }),
        },
    )
    .await?;
    Ok((
        Edited {
            account: current,
            roles,
            disabled,
            pending_email,
        },
        messages,
    ))
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Disables or enables a member. In their home organization this is their account:
/// disabled, it cannot sign in and its sessions end. Either way their grants to
/// clients end, since their tokens name the organization.
pub async fn set_disabled(
    tx: &mut Tx,
    state: &AppState,
    org_id: Uuid,
    account: &AccountRow,
    disabled: bool,
    now: i64,
) -> ApiResult<()> {
    let home = account.home_org_id == Some(org_id);
    store::set_member_disabled(&mut *tx, org_id, account.id, disabled.then_some(now)).await?;
    if home {
        let status = if disabled { "disabled" } else { "active" };
        accounts::set_account_status(&mut *tx, account.id, status, now).await?;
    }
    if disabled && home {
        flows::end_sign_ins(tx, state, account, None, now).await?;
    } else if disabled {
        crate::oidc::store::revoke_grants_of(&mut *tx, account.id, now).await?;
    }
    Ok(())
}

/// Takes a member holding `had` out of the organization (never its last Fulfillment
/// Contact), ending their grants to clients, with an audit event by `actor`.
pub async fn remove_member(
    tx: &mut Tx,
    org_id: Uuid,
    account: &AccountRow,
    had: &[Role],
    actor: &Actor,
) -> ApiResult<()> {
    refuse_losing_last_contact(tx, org_id, had, false).await?;
    let now = now_ms();
    store::remove_member(tx, org_id, account.id, now).await?;
    crate::oidc::store::revoke_grants_of(tx, account.id, now).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "org.member_removed",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org_id),
            details: json!({ "roles": had.iter().map(|r| r.as_str()).collect::<Vec<_>>() }),
        },
    )
    .await?;
    Ok(())
}

/// Takes a member out of the organization. Their sign-ins to clients end, since their
/// tokens name the organization.
pub async fn remove(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    from: &Client,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    let (account, had, _) = changeable_member(&mut tx, &access, account_id).await?;
    remove_member(&mut tx, org_id, &account, &had, &actor_of(caller, from)).await?;
    tx.commit().await?;
    Ok(())
}

/// Signs a person out everywhere (browser sessions, devices, automatic sign-in): the
/// person themselves, an operator, or whoever may change them in their home organization.
/// Anyone else is told there is no such person.
pub async fn sign_out_everywhere(
    state: &AppState,
    caller: &AccountRow,
    account_id: Uuid,
    from: &Client,
) -> ApiResult<u64> {
    let mut tx = state.db.begin().await?;
    let target = accounts::account_by_id(&mut tx, account_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !caller.is_operator && caller.id != target.id {
        let home = target.home_org_id.ok_or(ApiError::NotFound)?;
        let access = OrgAccess::of(&mut tx, caller, home).await?;
        changeable_member(&mut tx, &access, target.id).await?;
    }
    let now = now_ms();
    let sessions = flows::end_sign_ins(&mut tx, state, &target, None, now).await?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "account.sessions_revoked",
            target_type: "account",
            target_id: Some(target.id),
            target_label: Some(&target.email),
            org_id: target.home_org_id,
            details: json!({ "sessions": sessions }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_before_they_reach_sql() {
        let ok = check_query(&MemberQuery {
            q: "  50%_Off\\   Müller ".into(),
            sort: Some("last_name".into()),
            order: Some("desc".into()),
            ..MemberQuery::default()
        })
        .expect("valid");
        // Wildcards are plain text in a range; spaces collapse; case folds, umlauts too.
        let (from, to) = ok.prefix.expect("a search");
        assert_eq!(from, "50%_off\\ müller");
        assert_eq!(to, format!("50%_off\\ müller{}", char::MAX));
        assert!(from.as_str() < to.as_str() && "50%_off\\ müllerin" < to.as_str());
        assert_eq!(ok.order_by, "m.family_key DESC, m.account_id DESC");
        assert!(search_range(" \t ").is_none(), "blank means everyone");
        assert_eq!((ok.offset, ok.limit), (0, 50));
        for bad in [
            MemberQuery {
                sort: Some("password_hash".into()),
                ..MemberQuery::default()
            },
            MemberQuery {
                order: Some("sideways".into()),
                ..MemberQuery::default()
            },
            MemberQuery {
                offset: Some(-1),
                ..MemberQuery::default()
            },
            MemberQuery {
                limit: Some(0),
                ..MemberQuery::default()
            },
            MemberQuery {
                limit: Some(201),
                ..MemberQuery::default()
            },
            MemberQuery {
                q: "x".repeat(201),
                ..MemberQuery::default()
            },
        ] {
            assert!(check_query(&bad).is_err(), "{bad:?}");
        }
    }
}
