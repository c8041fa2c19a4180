//! SCIM Users: an organization's members as the User resource (RFC 7643 §4.1), listed
//! with filters translated to SQL over the same indexed keys as the member list.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::{
    filter::{CompareOp, Value},
    groups,
    query::{
        self, compare, invalid_filter, list_response, project, Column, Filterable, ListQuery,
        SqlFilter,
    },
    ScimError,
};
use crate::{
    app::AppState,
    db::{DbError, Executor},
    on_db,
    orgs::{roles::Role, store},
};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// A member as SCIM sees them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub user_name: String,
    pub external_id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const USER_COLUMNS: &str = "m.account_id AS id, m.user_name, m.external_id, m.email, \
     a.first_name, a.last_name, m.disabled_at IS NOT NULL AS disabled, m.created_at, a.updated_at";

const USER_SELECT: &str = "SELECT m.account_id AS id, m.user_name, m.external_id, m.email, \
     a.first_name, a.last_name, m.disabled_at IS NOT NULL AS disabled, m.created_at, a.updated_at \
     FROM org_members m JOIN accounts a ON a.id = m.account_id";

/// What a user belongs to in the organization: their roles, and the identity
/// provider's groups they are in (id and displayName).
#[derive(Debug, Default, Clone)]
pub struct Memberships {
    pub roles: Vec<String>,
    pub groups: Vec<(Uuid, String)>,
}

/// The memberships of each of `ids`, in two queries.
pub async fn memberships_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Memberships>, DbError> {
    let mut out: HashMap<Uuid, Memberships> = HashMap::new();
    for (id, roles) in store::roles_of_members(ex, org_id, ids).await? {
        out.entry(id).or_default().roles = roles;
    }
    for (id, groups) in groups::groups_of_members(ex, org_id, ids).await? {
        out.entry(id).or_default().groups = groups;
    }
    Ok(out)
}

/// The User resource; its ETag is a hash of what it says, so any change changes it.
pub fn resource(row: &UserRow, memberships: &Memberships, base: &str) -> Json {
    let location = format!("{base}/scim/v2/Users/{}", row.id);
    let groups: Vec<Json> = memberships
        .groups
        .iter()
        .map(|(id, name)| {
            json!({
                "value": id,
                "display": name,
                "$ref": format!("{base}/scim/v2/Groups/{id}"),
                "type": "direct",
            })
        })
        .collect();
    let roles: Vec<Json> = memberships
        .roles
        .iter()
        .map(|role| {
            json!({
                "value": role,
                "display": Role::parse(role).map(Role::label).unwrap_or(role),
            })
        })
        .collect();
    let mut user = json!({
        "schemas": [USER_SCHEMA],
        "id": row.id,
        "userName": row.user_name,
        "name": {
            "givenName": row.first_name,
            "familyName": row.last_name,
        },
        "displayName": format!("{} {}", row.first_name, row.last_name),
        // One address per person: type and primary say nothing more, so they are left out.
        "emails": [{ "value": row.email }],
        "active": !row.disabled,
        "groups": groups,
        "roles": roles,
        "meta": {
            "resourceType": "User",
            "created": query::timestamp(row.created_at),
            "lastModified": query::timestamp(row.updated_at.max(row.created_at)),
            "location": location,
        },
    });
    if let Some(external_id) = &row.external_id {
        user["externalId"] = json!(external_id);
    }
    query::with_version(user)
}

/// The users' attributes as SQL over `m` (org_members) and `a` (accounts).
pub struct Users;

impl Filterable for Users {
    const SCHEMA: &'static str = USER_SCHEMA;
    const NAME: &'static str = "Users";
    const VALUE_PATH: &'static str = "emails";

    fn column_of(dotted: &str) -> Option<Column> {
        Some(match dotted {
            "username" => Column::Folded("m.user_name_key"),
            "emails" | "emails.value" => Column::Folded("m.email"),
            "externalid" => Column::Exact("m.external_id"),
            "name.givenname" => Column::Text("a.first_name"),
            "name.familyname" => Column::Text("a.last_name"),
            "displayname" => Column::Text("a.first_name || ' ' || a.last_name"),
            "active" => Column::Flag {
                when_true: "m.disabled_at IS NULL",
                when_false: "m.disabled_at IS NOT NULL",
            },
            "id" => Column::Id("m.account_id"),
            "meta.created" => Column::Time("m.created_at"),
            "meta.lastmodified" => Column::Time("a.updated_at"),
            _ => return None,
        })
    }

    fn sort_column_of(dotted: &str) -> Option<&'static str> {
        Some(match dotted {
            "username" => "m.user_name_key",
            "emails" | "emails.value" => "m.email",
            "name.givenname" => "m.given_key",
            "name.familyname" => "m.family_key",
            "displayname" => "m.given_key",
            "meta.created" => "m.created_at",
            "meta.lastmodified" => "a.updated_at",
            "externalid" => "m.external_id",
            "id" => "m.account_id",
            _ => return None,
        })
    }

    const DEFAULT_SORT: &'static str = "m.created_at";

    /// `emails[…]`: every user has one work address, the primary one.
    fn value_compare(
        out: &mut SqlFilter,
        first: usize,
        sub: &str,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, ScimError> {
        let always = |holds: bool| if holds { "1 = 1" } else { "1 = 0" }.to_owned();
        Ok(match (sub, op, value) {
            ("value", _, _) => compare(
                out,
                first,
                Column::Folded("m.email"),
                "emails.value",
                op,
                value,
            )?,
            ("type", CompareOp::Eq, Value::Str(t)) => always(t.eq_ignore_ascii_case("work")),
            ("primary", CompareOp::Eq, Value::Bool(b)) => always(*b),
            _ => {
                return Err(invalid_filter(
                    "Filter emails by value, type eq \"…\" or primary eq true/false.",
                ))
            }
        })
    }

    fn value_present() -> String {
        "1 = 1".to_owned()
    }
}

/// A page of the organization's users matching the query.
pub async fn list(state: &AppState, org_id: Uuid, query: &ListQuery) -> Result<Json, ScimError> {
    let plan = query::ListPlan::of::<Users>(query)?;
    let (condition, binds) = plan.condition();
    let (order, direction) = (plan.order, plan.direction);
    let next = plan.next_placeholder();
    let ordering = format!("{order} {direction}, m.account_id {direction}");
    // Filters and sorts on org_members alone pick the page from an index before joining
    // accounts (as the member list does), and count without joining.
    let members_only = !condition.contains("a.") && !order.starts_with("a.");
    let page_sql = if members_only {
        format!(
            "SELECT {USER_COLUMNS} FROM (SELECT m.account_id FROM org_members m \
             WHERE m.org_id = $1 AND {condition} ORDER BY {ordering} LIMIT ${next} OFFSET ${}) p \
             CROSS JOIN org_members m CROSS JOIN accounts a \
             WHERE m.org_id = $1 AND m.account_id = p.account_id AND a.id = p.account_id \
             ORDER BY {ordering}",
            next + 1
        )
    } else {
        format!(
            "{USER_SELECT} WHERE m.org_id = $1 AND {condition} ORDER BY {ordering} LIMIT ${next} OFFSET ${}",
            next + 1
        )
    };
    let count_sql = match (&plan.filter, members_only) {
        (None, _) => "SELECT member_count FROM orgs WHERE id = $1".to_owned(),
        (_, true) => {
            format!("SELECT COUNT(*) FROM org_members m WHERE m.org_id = $1 AND {condition}")
        }
        (_, false) => format!(
            "SELECT COUNT(*) FROM org_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.org_id = $1 AND {condition}"
        ),
    };
    let mut conn = state.db.reader().await?;
    let (rows, total): (Vec<UserRow>, i64) = query::page_and_total(
        &mut conn,
        &page_sql,
        &count_sql,
        org_id,
        binds,
        (plan.start, plan.count),
    )
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut memberships = memberships_of(&mut conn, org_id, &ids).await?;
    let base = state.config.public_base();
    let resources: Vec<Json> = rows
        .iter()
        .map(|row| {
            let memberships = memberships.remove(&row.id).unwrap_or_default();
            project(resource(row, &memberships, &base), USER_SCHEMA, query)
        })
        .collect();
    Ok(list_response(total, plan.start, resources))
}

/// One user of the organization as SCIM shows it, or `None`.
pub async fn load(
    ex: &mut impl Executor,
    org_id: Uuid,
    id: Uuid,
    base: &str,
) -> Result<Option<Json>, DbError> {
    let sql = format!("{USER_SELECT} WHERE m.org_id = $1 AND m.account_id = $2");
    let row: Option<UserRow> = on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let memberships = memberships_of(ex, org_id, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(resource(&row, &memberships, base)))
}

pub fn not_found(id: &str) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, format!("No user {id}."))
}

/// One user of the organization; 404 for anyone else's.
pub async fn get(
    state: &AppState,
    org_id: Uuid,
    id: &str,
    query: &ListQuery,
) -> Result<Json, ScimError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    let mut conn = state.db.reader().await?;
    let user = load(&mut conn, org_id, uuid, &state.config.public_base())
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(project(user, USER_SCHEMA, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_sql_with_bound_values() {
        let sql = query::to_sql::<Users>(r#"userName eq "Anna@Acme.test""#, 2).expect("sql");
        assert_eq!(sql.sql, "m.user_name_key = $2");
        assert_eq!(
            sql.binds,
            vec![query::Bind::Text("anna@acme.test".to_owned())]
        );

        let sql = query::to_sql::<Users>(
            r#"name.familyName co "50%" and not (active eq false) or meta.created gt "2026-01-01T00:00:00Z""#,
            2,
        )
        .expect("sql");
        assert_eq!(
            sql.sql,
            "((lower(a.last_name) LIKE $2 ESCAPE '\\' AND NOT (m.disabled_at IS NOT NULL)) OR m.created_at > $3)"
        );
        assert_eq!(
            sql.binds,
            vec![
                query::Bind::Text("%50\\%%".to_owned()),
                query::Bind::Int(1_767_225_600_000)
            ]
        );

        let sql = query::to_sql::<Users>(r#"emails[type eq "work" and value ew "@acme.test"]"#, 5)
            .expect("sql");
        assert_eq!(sql.sql, "(1 = 1 AND m.email LIKE $5 ESCAPE '\\')");
        let sql = query::to_sql::<Users>(r#"externalId ne "x""#, 2).expect("sql");
        assert_eq!(sql.sql, "(m.external_id IS NULL OR m.external_id <> $2)");
        assert_eq!(
            query::to_sql::<Users>(r#"id eq "not-a-uuid""#, 2)
                .expect("sql")
                .sql,
            "1 = 0"
        );
    }

    #[test]
    fn filters_on_unknown_or_mistyped_attributes_are_invalid() {
        for bad in [
            r#"password eq "x""#,
            r#"active eq "yes""#,
            r#"meta.created gt "yesterday""#,
            r#"meta.created co "2026""#,
            r#"userName eq 3"#,
            r#"phoneNumbers[type eq "work"]"#,
            r#"emails[display eq "x"]"#,
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#,
        ] {
            let error = query::to_sql::<Users>(bad, 2).expect_err(bad);
            assert_eq!(error.scim_type, Some("invalidFilter"), "{bad}");
        }
    }
}
