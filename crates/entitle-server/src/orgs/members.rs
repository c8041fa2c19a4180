//! The members of an organization: listing with search, sort and pages, and who its
//! administrators are.

use entitle_proto::{
    AddMemberRequest, MemberPage, OrgAdministrator, OrgMember, UpdateMemberRequest,
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
        flows::{self, actor_of, Fields},
        person::{CountryCode, PersonName},
        store::{self as accounts, AccountRow},
    },
    on_db,
};

pub const MAX_PAGE: i64 = 200;

/// `?q=&sort=&order=&offset=&limit=` of the member list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
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
}

/// What the query means, checked: only known columns reach the SQL.
struct Listing {
    /// The range `[from, to)` of keys starting with the search text.
    prefix: Option<(String, String)>,
    order_by: &'static str,
    offset: i64,
    limit: i64,
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
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50);
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
    if query.q.chars().count() > 200 {
        return Err(ApiError::field(
            "q",
            "too_long",
            "Search for at most 200 characters.",
        ));
    }
    Ok(Listing {
        prefix: search_range(&query.q),
        order_by,
        offset,
        limit,
    })
}

/// The search text as a range of keys: everything that starts with it, in any case.
/// Keys compare bytewise, and no key holds U+10FFFF, so `text + U+10FFFF` bounds them.
fn search_range(q: &str) -> Option<(String, String)> {
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

async fn page_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    listing: &Listing,
) -> Result<MemberPage, DbError> {
    let (filter, from, to) = match &listing.prefix {
        Some((from, to)) => (MATCHES, from.as_str(), to.as_str()),
        // Unused binds keep the placeholders the same in both queries.
        None => ("m.org_id = $1 AND $2 = $3", "", ""),
    };
    // The page is picked from an index alone; only its rows are then joined, so a deep
    // offset skips index entries, not joined rows. CROSS JOIN keeps SQLite from
    // scanning every member to join the page (PostgreSQL plans it freely).
    let sql = format!(
        "SELECT a.id, a.email, a.first_name, a.last_name, a.country, \
         a.password_hash IS NOT NULL AS registered, m.disabled_at IS NOT NULL AS disabled, \
         m.created_at AS joined_at \
         FROM (SELECT m.account_id FROM org_members m WHERE {filter} ORDER BY {order} LIMIT $4 OFFSET $5) p \
         CROSS JOIN org_members m CROSS JOIN accounts a \
         WHERE m.org_id = $1 AND m.account_id = p.account_id AND a.id = p.account_id ORDER BY {order}",
        order = listing.order_by
    );
    let rows: Vec<MemberRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(from)
        .bind(to)
        .bind(listing.limit)
        .bind(listing.offset)
        .fetch_all(c)
        .await)?;
    let count_sql = match listing.prefix {
        Some(_) => format!("SELECT COUNT(*) FROM org_members m WHERE {filter}"),
        None => "SELECT member_count FROM orgs WHERE id = $1 AND $2 = $3".to_owned(),
    };
    let (total,): (i64,) = on_db!(ex, |c| sqlx::query_as(&count_sql)
        .bind(org_id)
        .bind(from)
        .bind(to)
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
        })
        .collect();
    Ok(MemberPage {
        members,
        total,
        offset: listing.offset,
        limit: listing.limit,
    })
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
    Ok((
        member_of(&account, &roles, disabled_at.is_some(), joined_at),
        home,
    ))
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
            ApiError::field(
                "roles",
                "unknown_role",
                format!(
                    "\"{name}\" is not a role. Use {}.",
                    Role::ALL.map(Role::as_str).join(", ")
                ),
            )
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
    access.require(Action::ManageUsers)?;
    for role in &roles {
        access.require(Action::AssignRole(*role))?;
    }
    if let Some(existing) = accounts::account_by_email(&mut tx, person.email.as_str()).await? {
        if store::is_member(&mut tx, org_id, existing.id).await? {
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
    let (account, invitation) = super::add_person(
        &mut tx,
        state,
        &access.org,
        &person,
        &roles,
        &actor_of(caller, from),
    )
    .await?;
    tx.commit().await?;
    if let Some(message) = invitation {
        state.mailer.send_in_background(message);
    }
    Ok(member_of(&account, &roles, false, now_ms()))
}

/// A member of `org_id` and their roles, as the caller may change them: 404 when not a
/// member, 403 when their role is above the caller's.
async fn changeable_member(
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

/// Edits a member's name or country (only in their home organization, which owns their
/// account) or disables and enables them. Disabling a member of their home organization
/// disables their account and signs them out everywhere.
pub async fn update(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    request: &UpdateMemberRequest,
    from: &Client,
) -> ApiResult<OrgMember> {
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    let (account, roles, was_disabled) = changeable_member(&mut tx, &access, account_id).await?;
    let home = account.home_org_id == Some(org_id);
    let now = now_ms();
    let mut fields = Fields::default();
    let edits_person =
        request.first_name.is_some() || request.last_name.is_some() || request.country.is_some();
    if edits_person && !home {
        return Err(ApiError::forbidden(
            "not_home_organization",
            "This person's details belong to their own organization; only it can change them.",
        ));
    }
    let first = fields.check(
        "first_name",
        PersonName::parse(request.first_name.as_deref().unwrap_or(&account.first_name)),
    );
    let last = fields.check(
        "last_name",
        PersonName::parse(request.last_name.as_deref().unwrap_or(&account.last_name)),
    );
    let country = fields.check(
        "country",
        CountryCode::parse(request.country.as_deref().unwrap_or(&account.country)),
    );
    fields.finish()?;
    let (Some(first), Some(last), Some(country)) = (first, last, country) else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    if caller.id == account.id && request.disabled == Some(true) {
        return Err(ApiError::conflict(
            "cannot_disable_self",
            "You cannot disable yourself.",
        ));
    }
    if edits_person {
        accounts::update_person(
            &mut tx,
            account.id,
            first.as_str(),
            last.as_str(),
            country.as_str(),
            now,
        )
        .await?;
        let renamed = AccountRow {
            first_name: first.as_str().to_owned(),
            last_name: last.as_str().to_owned(),
            ..account.clone()
        };
        store::rekey_member(&mut tx, &renamed).await?;
    }
    let disabled = request.disabled.unwrap_or(was_disabled);
    if disabled != was_disabled {
        set_disabled(&mut tx, org_id, &account, disabled, now).await?;
    }
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.member_updated",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org_id),
            details: json!({
                "before": {"first_name": account.first_name, "last_name": account.last_name,
                           "country": account.country, "disabled": was_disabled},
                "after": {"first_name": first.as_str(), "last_name": last.as_str(),
                          "country": country.as_str(), "disabled": disabled},
            }),
        },
    )
    .await?;
    let updated = accounts::account_by_id(&mut tx, account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(member_of(&updated, &roles, disabled, now))
}

/// Disables or enables a member. In their home organization this is their account:
/// disabled, it cannot sign in and its sessions end. Either way their grants to
/// clients end, since their tokens name the organization.
pub async fn set_disabled(
    tx: &mut Tx,
    org_id: Uuid,
    account: &AccountRow,
    disabled: bool,
    now: i64,
) -> ApiResult<()> {
    let home = account.home_org_id == Some(org_id);
    store::set_member_disabled(tx, org_id, account.id, disabled.then_some(now)).await?;
    if home {
        let status = if disabled { "disabled" } else { "active" };
        accounts::set_account_status(tx, account.id, status, now).await?;
    }
    if disabled {
        crate::oidc::store::revoke_grants_of(tx, account.id, now).await?;
        if home {
            accounts::delete_sessions_of(tx, account.id).await?;
        }
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
