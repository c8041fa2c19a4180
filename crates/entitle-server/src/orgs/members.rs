//! The members of an organization: listing with search, sort and pages, and who its
//! administrators are.

use entitle_proto::{MemberPage, OrgAdministrator, OrgMember};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    access::OrgAccess,
    roles::{Action, Role},
};
use crate::{
    app::AppState,
    db::{DbError, Executor},
    error::{ApiError, ApiResult},
    identity::store::AccountRow,
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
    pattern: String,
    order_by: &'static str,
    offset: i64,
    limit: i64,
}

fn check_query(query: &MemberQuery) -> ApiResult<Listing> {
    let column = match query.sort.as_deref().unwrap_or("email") {
        "email" => "a.email",
        "first_name" => "lower(a.first_name)",
        "last_name" => "lower(a.last_name)",
        "joined" => "m.created_at",
        _ => {
            return Err(ApiError::field(
                "sort",
                "invalid",
                "Sort by email, first_name, last_name or joined.",
            ))
        }
    };
    let direction = match query.order.as_deref().unwrap_or("asc") {
        "asc" => "ASC",
        "desc" => "DESC",
        _ => return Err(ApiError::field("order", "invalid", "Order is asc or desc.")),
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
    let escaped: String = query
        .q
        .trim()
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Ok(Listing {
        pattern: format!("%{escaped}%"),
        order_by: match (column, direction) {
            ("a.email", "ASC") => "a.email ASC, a.id",
            ("a.email", _) => "a.email DESC, a.id",
            ("lower(a.first_name)", "ASC") => "lower(a.first_name) ASC, a.id",
            ("lower(a.first_name)", _) => "lower(a.first_name) DESC, a.id",
            ("lower(a.last_name)", "ASC") => "lower(a.last_name) ASC, a.id",
            ("lower(a.last_name)", _) => "lower(a.last_name) DESC, a.id",
            (_, "ASC") => "m.created_at ASC, a.id",
            _ => "m.created_at DESC, a.id",
        },
        offset,
        limit,
    })
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    country: String,
    registered: bool,
    joined_at: i64,
}

const MATCHES: &str = "m.org_id = $1 AND (a.email LIKE $2 ESCAPE '\\' \
    OR lower(a.first_name) LIKE $2 ESCAPE '\\' OR lower(a.last_name) LIKE $2 ESCAPE '\\')";

async fn page_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    listing: &Listing,
) -> Result<MemberPage, DbError> {
    let sql = format!(
        "SELECT a.id, a.email, a.first_name, a.last_name, a.country, \
         a.password_hash IS NOT NULL AS registered, m.created_at AS joined_at \
         FROM org_members m JOIN accounts a ON a.id = m.account_id \
         WHERE {MATCHES} ORDER BY {} LIMIT $3 OFFSET $4",
        listing.order_by
    );
    let rows: Vec<MemberRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(&listing.pattern)
        .bind(listing.limit)
        .bind(listing.offset)
        .fetch_all(c)
        .await)?;
    let count_sql = format!(
        "SELECT COUNT(*) FROM org_members m JOIN accounts a ON a.id = m.account_id WHERE {MATCHES}"
    );
    let (total,): (i64,) = on_db!(ex, |c| sqlx::query_as(&count_sql)
        .bind(org_id)
        .bind(&listing.pattern)
        .fetch_one(c)
        .await)?;
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        members.push(OrgMember {
            roles: super::store::roles_of(ex, org_id, row.id).await?,
            account_id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            country: row.country,
            registered: row.registered,
            joined_at: row.joined_at,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_before_they_reach_sql() {
        let ok = check_query(&MemberQuery {
            q: " 50%_Off\\ ".into(),
            sort: Some("last_name".into()),
            order: Some("desc".into()),
            ..MemberQuery::default()
        })
        .expect("valid");
        assert_eq!(ok.pattern, "%50\\%\\_off\\\\%");
        assert_eq!(ok.order_by, "lower(a.last_name) DESC, a.id");
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
