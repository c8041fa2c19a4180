//! Finding organizations: the operator's console lists every organization, searched by
//! name; anyone else lists the organizations they belong to.

use entitle_proto::{OrgList, OrgSummary};
use serde::Deserialize;
use uuid::Uuid;

use super::members::{check_page, search_range};
use crate::{app::AppState, db::DbError, error::ApiResult, identity::store::AccountRow, on_db};

/// `?q=&offset=&limit=` of the organization list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrgQuery {
    /// The start of a name, in any case, or an organization's id.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub offset: Option<i64>,
    /// 1 to 200, default 50.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// What a query asks for, checked before it reaches SQL.
#[derive(Debug, PartialEq)]
struct Listing {
    filter: Filter,
    offset: i64,
    limit: i64,
}

#[derive(Debug, PartialEq)]
enum Filter {
    Everything,
    /// Names starting with the text: the range `[from, to)` of name keys.
    NamePrefix(String, String),
    Id(Uuid),
}

fn check_query(query: &OrgQuery) -> ApiResult<Listing> {
    let (offset, limit) = check_page(query.offset, query.limit, &query.q)?;
    let filter = match Uuid::parse_str(query.q.trim()) {
        Ok(id) => Filter::Id(id),
        Err(_) => match search_range(&query.q) {
            Some((from, to)) => Filter::NamePrefix(from, to),
            None => Filter::Everything,
        },
    };
    Ok(Listing {
        filter,
        offset,
        limit,
    })
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    created_at: i64,
    member_count: i64,
}

/// A page of organizations by name: every one for an operator, the caller's own (where
/// they are an enabled member) for anyone else.
pub async fn list(state: &AppState, caller: &AccountRow, query: &OrgQuery) -> ApiResult<OrgList> {
    let listing = check_query(query)?;
    let scope = if caller.is_operator {
        "$1 = $1"
    } else {
        "EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = o.id AND m.account_id = $1 \
         AND m.disabled_at IS NULL)"
    };
    let mut conn = state.db.reader().await?;
    if let Filter::Id(id) = listing.filter {
        let sql = format!(
            "SELECT o.id, o.name, o.created_at, o.member_count FROM orgs o WHERE o.id = $2 AND {scope}"
        );
        let found: Option<Row> = on_db!(&mut conn, |c| sqlx::query_as(&sql)
            .bind(caller.id)
            .bind(id)
            .fetch_optional(c)
            .await)
        .map_err(DbError::from)?;
        let total = i64::from(found.is_some());
        return Ok(page_of(found.into_iter().collect(), total, &listing));
    }
    // Every query binds the caller, two filter values and the page, in that order;
    // unused binds keep the placeholders the same.
    let (filter, from, to) = match &listing.filter {
        Filter::NamePrefix(from, to) => (
            "o.name_key >= $2 AND o.name_key < $3",
            from.as_str(),
            to.as_str(),
        ),
        _ => ("$2 = $3", "", ""),
    };
    let page_sql = format!(
        "SELECT o.id, o.name, o.created_at, o.member_count FROM orgs o \
         WHERE {filter} AND {scope} ORDER BY o.name_key, o.id LIMIT $4 OFFSET $5"
    );
    let count_sql = format!("SELECT COUNT(*) FROM orgs o WHERE {filter} AND {scope}");
    let rows: Vec<Row> = on_db!(&mut conn, |c| sqlx::query_as(&page_sql)
        .bind(caller.id)
        .bind(from)
        .bind(to)
        .bind(listing.limit)
        .bind(listing.offset)
        .fetch_all(c)
        .await)
    .map_err(DbError::from)?;
    let total: i64 = on_db!(&mut conn, |c| sqlx::query_scalar(&count_sql)
        .bind(caller.id)
        .bind(from)
        .bind(to)
        .fetch_one(c)
        .await)
    .map_err(DbError::from)?;
    Ok(page_of(rows, total, &listing))
}

fn page_of(rows: Vec<Row>, total: i64, listing: &Listing) -> OrgList {
    OrgList {
        orgs: rows
            .into_iter()
            .map(|r| OrgSummary {
                id: r.id,
                name: r.name,
                created_at: r.created_at,
                member_count: r.member_count,
            })
            .collect(),
        total,
        offset: listing.offset,
        limit: listing.limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_before_they_reach_sql() {
        let listing = check_query(&OrgQuery {
            q: "  Acme  Corp ".into(),
            ..OrgQuery::default()
        })
        .expect("valid");
        assert_eq!(
            listing.filter,
            Filter::NamePrefix("acme corp".into(), format!("acme corp{}", char::MAX))
        );
        let id = Uuid::now_v7();
        assert_eq!(
            check_query(&OrgQuery {
                q: id.to_string(),
                ..OrgQuery::default()
            })
            .expect("valid")
            .filter,
            Filter::Id(id)
        );
        assert_eq!(
            check_query(&OrgQuery::default()).expect("valid").filter,
            Filter::Everything
        );
        for bad in [
            OrgQuery {
                offset: Some(-1),
                ..OrgQuery::default()
            },
            OrgQuery {
                limit: Some(0),
                ..OrgQuery::default()
            },
            OrgQuery {
                limit: Some(201),
                ..OrgQuery::default()
            },
            OrgQuery {
                q: "x".repeat(201),
                ..OrgQuery::default()
            },
        ] {
            assert!(check_query(&bad).is_err(), "{bad:?}");
        }
    }
}
