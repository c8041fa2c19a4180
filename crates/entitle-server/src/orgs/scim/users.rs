//! SCIM Users: an organization's members as the User resource (RFC 7643 §4.1), listed
//! with filters translated to SQL over the same indexed keys as the member list.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    filter::{self, AttrPath, CompareOp, Filter, Value},
    ScimError,
};
use crate::{
    app::AppState,
    db::{DbError, Executor},
    on_db,
    orgs::{roles::Role, store},
};
use axum::http::StatusCode;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The most resources one page returns.
pub const MAX_COUNT: i64 = 1000;

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

pub const USER_SELECT: &str = "SELECT m.account_id AS id, m.user_name, m.external_id, m.email, \
     a.first_name, a.last_name, m.disabled_at IS NOT NULL AS disabled, m.created_at, a.updated_at \
     FROM org_members m JOIN accounts a ON a.id = m.account_id";

fn timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The User resource; its ETag is a hash of what it says, so any change changes it.
pub fn resource(row: &UserRow, roles: &[String], base: &str) -> Json {
    let location = format!("{base}/scim/v2/Users/{}", row.id);
    let groups: Vec<Json> = roles
        .iter()
        .map(|role| {
            json!({
                "value": role,
                "display": Role::parse(role).map(Role::label).unwrap_or(role),
                "$ref": format!("{base}/scim/v2/Groups/{role}"),
                "type": "direct",
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
        "meta": {
            "resourceType": "User",
            "created": timestamp(row.created_at),
            "lastModified": timestamp(row.updated_at.max(row.created_at)),
            "location": location,
        },
    });
    if let Some(external_id) = &row.external_id {
        user["externalId"] = json!(external_id);
    }
    let version = format!(
        "W/\"{}\"",
        hex::encode(&Sha256::digest(user.to_string().as_bytes())[..12])
    );
    user["meta"]["version"] = json!(version);
    user
}

/// Attribute names of an `attributes` / `excludedAttributes` list, lowercase and without
/// the User schema prefix.
fn attribute_names(list: &str) -> Vec<String> {
    let prefix = format!("{}:", USER_SCHEMA.to_ascii_lowercase());
    list.split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .map(|name| {
            name.strip_prefix(&prefix)
                .map(str::to_owned)
                .unwrap_or(name)
        })
        .collect()
}

/// Always returned, whatever the client asks (RFC 7643 §7: `returned: always`).
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// `attributes` keeps only the named attributes (and sub-attributes);
/// `excludedAttributes` drops them. `attributes` wins when both are given.
pub fn project(mut resource: Json, attributes: Option<&str>, excluded: Option<&str>) -> Json {
    let Some(object) = resource.as_object_mut() else {
        return resource;
    };
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let wanted = attribute_names(list);
        object.retain(|key, value| {
            let key = key.to_ascii_lowercase();
            if ALWAYS.contains(&key.as_str()) || wanted.contains(&key) {
                return true;
            }
            let subs: Vec<&str> = wanted
                .iter()
                .filter_map(|w| w.strip_prefix(&format!("{key}.")))
                .collect();
            if subs.is_empty() {
                return false;
            }
            let keep = |item: &mut Json| {
                if let Some(inner) = item.as_object_mut() {
                    inner.retain(|sub, _| subs.contains(&sub.to_ascii_lowercase().as_str()));
                }
            };
            match value {
                Json::Array(items) => items.iter_mut().for_each(keep),
                other => keep(other),
            }
            true
        });
    } else if let Some(list) = excluded {
        for name in attribute_names(list) {
            if ALWAYS.contains(&name.as_str()) {
                continue;
            }
            match name.split_once('.') {
                None => {
                    let key = object
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case(&name))
                        .cloned();
                    if let Some(key) = key {
                        object.remove(&key);
                    }
                }
                Some((parent, sub)) => {
                    let drop_sub = |item: &mut Json| {
                        if let Some(inner) = item.as_object_mut() {
                            inner.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        }
                    };
                    if let Some((_, value)) = object
                        .iter_mut()
                        .find(|(k, _)| k.eq_ignore_ascii_case(parent))
                    {
                        match value {
                            Json::Array(items) => items.iter_mut().for_each(drop_sub),
                            other => drop_sub(other),
                        }
                    }
                }
            }
        }
    }
    resource
}

/// A value bound into the SQL a filter becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Id(Uuid),
}

/// A filter as SQL over `m` (org_members) and `a` (accounts), with its values.
#[derive(Debug, Default)]
pub struct SqlFilter {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl SqlFilter {
    fn bind(&mut self, value: Bind, first: usize) -> String {
        self.binds.push(value);
        format!("${}", first + self.binds.len() - 1)
    }
}

/// How an attribute is stored, for filtering.
#[derive(Clone, Copy)]
enum Column {
    /// Stored lowercase; compared in lowercase.
    Folded(&'static str),
    /// Compared in lowercase on both sides.
    Text(&'static str),
    /// Compared exactly.
    Exact(&'static str),
    Time(&'static str),
    Active,
    Id,
}

fn column(path: &AttrPath) -> Result<Column, ScimError> {
    if let Some(schema) = &path.schema {
        if !schema.eq_ignore_ascii_case(USER_SCHEMA) {
            return Err(invalid_filter(format!(
                "Users have no attributes of {schema}."
            )));
        }
    }
    Ok(match path.dotted().as_str() {
        "username" => Column::Folded("m.user_name_key"),
        "emails" | "emails.value" => Column::Folded("m.email"),
        "externalid" => Column::Exact("m.external_id"),
        "name.givenname" => Column::Text("a.first_name"),
        "name.familyname" => Column::Text("a.last_name"),
        "displayname" => Column::Text("a.first_name || ' ' || a.last_name"),
        "active" => Column::Active,
        "id" => Column::Id,
        "meta.created" => Column::Time("m.created_at"),
        "meta.lastmodified" => Column::Time("a.updated_at"),
        other => {
            return Err(invalid_filter(format!(
                "Users cannot be filtered by \"{other}\"."
            )))
        }
    })
}

pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
}

fn like_pattern(text: &str, op: CompareOp) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    match op {
        CompareOp::Co => format!("%{escaped}%"),
        CompareOp::Sw => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

fn compare(
    out: &mut SqlFilter,
    first: usize,
    path: &AttrPath,
    op: CompareOp,
    value: &Value,
) -> Result<String, ScimError> {
    let column = column(path)?;
    let name = path.dotted();
    let text = || match value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(invalid_filter(format!("Compare {name} with a \"string\"."))),
    };
    let sql_op = match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "LIKE",
    };
    let like = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    Ok(match column {
        Column::Folded(col) | Column::Text(col) | Column::Exact(col) => {
            let (col, text) = match column {
                Column::Folded(_) => (col.to_owned(), text()?.to_lowercase()),
                Column::Text(_) => (format!("lower({col})"), text()?.to_lowercase()),
                _ => (col.to_owned(), text()?),
            };
            let operand = if like { like_pattern(&text, op) } else { text };
            let placeholder = out.bind(Bind::Text(operand), first);
            let escape = if like { " ESCAPE '\\'" } else { "" };
            if op == CompareOp::Ne {
                format!("({col} IS NULL OR {col} <> {placeholder})")
            } else {
                format!("{col} {sql_op} {placeholder}{escape}")
            }
        }
        Column::Time(col) => {
            if like {
                return Err(invalid_filter(format!(
                    "{name} is a date: use eq, ne, gt, ge, lt or le."
                )));
            }
            let raw = text()?;
            let at =
                time::OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                    invalid_filter(format!(
                        "\"{raw}\" is not a date such as 2026-11-23T10:00:00Z."
                    ))
                })?;
            let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            let placeholder = out.bind(Bind::Int(ms), first);
            format!("{col} {sql_op} {placeholder}")
        }
        Column::Active => match (op, value) {
            (CompareOp::Eq, Value::Bool(true)) | (CompareOp::Ne, Value::Bool(false)) => {
                "m.disabled_at IS NULL".to_owned()
            }
            (CompareOp::Eq, Value::Bool(false)) | (CompareOp::Ne, Value::Bool(true)) => {
                "m.disabled_at IS NOT NULL".to_owned()
            }
            _ => {
                return Err(invalid_filter(
                    "Compare active with eq or ne and true or false.",
                ))
            }
        },
        Column::Id => {
            let raw = text()?;
            let wanted = match op {
                CompareOp::Eq => true,
                CompareOp::Ne => false,
                _ => return Err(invalid_filter("Compare id with eq or ne.")),
            };
            match Uuid::parse_str(&raw) {
                Ok(id) => {
                    let placeholder = out.bind(Bind::Id(id), first);
                    format!(
                        "m.account_id {} {placeholder}",
                        if wanted { "=" } else { "<>" }
                    )
                }
                // No user has an id that is not a UUID.
                Err(_) => if wanted { "1 = 0" } else { "1 = 1" }.to_owned(),
            }
        }
    })
}

fn present(path: &AttrPath) -> Result<String, ScimError> {
    Ok(match column(path)? {
        Column::Folded(col) | Column::Text(col) | Column::Exact(col) => {
            format!("({col} IS NOT NULL AND {col} <> '')")
        }
        // Every user has these.
        Column::Time(_) | Column::Active | Column::Id => "1 = 1".to_owned(),
    })
}

fn translate(out: &mut SqlFilter, first: usize, filter: &Filter) -> Result<String, ScimError> {
    Ok(match filter {
        Filter::Compare { path, op, value } => compare(out, first, path, *op, value)?,
        Filter::Present(path) => present(path)?,
        Filter::And(left, right) => format!(
            "({} AND {})",
            translate(out, first, left)?,
            translate(out, first, right)?
        ),
        Filter::Or(left, right) => format!(
            "({} OR {})",
            translate(out, first, left)?,
            translate(out, first, right)?
        ),
        Filter::Not(inner) => format!("NOT ({})", translate(out, first, inner)?),
        Filter::ValuePath { path, filter } => {
            if path.dotted() != "emails" {
                return Err(invalid_filter(format!(
                    "Only emails[…] can be filtered by value; not {}.",
                    path.dotted()
                )));
            }
            email_value_filter(out, first, filter)?
        }
    })
}

/// `emails[…]`: every user has one work address, the primary one.
fn email_value_filter(
    out: &mut SqlFilter,
    first: usize,
    filter: &Filter,
) -> Result<String, ScimError> {
    Ok(match filter {
        Filter::Compare { path, op, value } => match (path.attribute.as_str(), op, value) {
            ("value", _, _) => {
                let value_path = AttrPath {
                    schema: None,
                    attribute: "emails".to_owned(),
                    sub_attribute: Some("value".to_owned()),
                };
                compare(out, first, &value_path, *op, value)?
            }
            ("type", CompareOp::Eq, Value::Str(t)) => if t.eq_ignore_ascii_case("work") {
                "1 = 1"
            } else {
                "1 = 0"
            }
            .to_owned(),
            ("primary", CompareOp::Eq, Value::Bool(b)) => {
                if *b { "1 = 1" } else { "1 = 0" }.to_owned()
            }
            _ => {
                return Err(invalid_filter(
                    "Filter emails by value, type eq \"…\" or primary eq true/false.",
                ))
            }
        },
        Filter::Present(_) => "1 = 1".to_owned(),
        Filter::And(left, right) => format!(
            "({} AND {})",
            email_value_filter(out, first, left)?,
            email_value_filter(out, first, right)?
        ),
        Filter::Or(left, right) => format!(
            "({} OR {})",
            email_value_filter(out, first, left)?,
            email_value_filter(out, first, right)?
        ),
        Filter::Not(inner) => format!("NOT ({})", email_value_filter(out, first, inner)?),
        Filter::ValuePath { .. } => return Err(invalid_filter("Value filters do not nest.")),
    })
}

/// The SQL for a filter string, its placeholders numbered from `first`.
pub fn to_sql(raw: &str, first: usize) -> Result<SqlFilter, ScimError> {
    let parsed = filter::parse(raw).map_err(|e| invalid_filter(e.0))?;
    let mut out = SqlFilter::default();
    out.sql = translate(&mut out, first, &parsed)?;
    Ok(out)
}

/// `?filter=&startIndex=&count=&sortBy=&sortOrder=&attributes=&excludedAttributes=`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub start_index: Option<String>,
    #[serde(default)]
    pub count: Option<String>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
    #[serde(default)]
    pub attributes: Option<String>,
    #[serde(default)]
    pub excluded_attributes: Option<String>,
}

fn sort_column(sort_by: &str) -> Result<&'static str, ScimError> {
    Ok(match sort_by.to_ascii_lowercase().as_str() {
        "username" => "m.user_name_key",
        "emails" | "emails.value" => "m.email",
        "name.givenname" => "m.given_key",
        "name.familyname" => "m.family_key",
        "displayname" => "m.given_key",
        "meta.created" => "m.created_at",
        "meta.lastmodified" => "a.updated_at",
        "externalid" => "m.external_id",
        "id" => "m.account_id",
        other => {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("Users cannot be sorted by \"{other}\"."),
            ))
        }
    })
}

/// SCIM's startIndex and count: lenient as RFC 7644 §3.4.2.4 asks (below 1 means 1,
/// negative counts mean 0), but not numbers at all are refused.
fn paging(query: &ListQuery) -> Result<(i64, i64), ScimError> {
    let number = |name: &str, raw: &Option<String>, default: i64| match raw {
        None => Ok(default),
        Some(raw) => raw.trim().parse::<i64>().map_err(|_| {
            ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{name} must be a whole number."),
            )
        }),
    };
    let start = number("startIndex", &query.start_index, 1)?.max(1);
    let count = number("count", &query.count, 100)?.clamp(0, MAX_COUNT);
    Ok((start, count))
}

async fn roles_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, DbError> {
    store::roles_of_members(ex, org_id, ids).await
}

/// A page of the organization's users matching the query.
pub async fn list(state: &AppState, org_id: Uuid, query: &ListQuery) -> Result<Json, ScimError> {
    let (start, count) = paging(query)?;
    let filter = match query.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(raw) => to_sql(raw, 2)?,
        None => SqlFilter {
            sql: "1 = 1".to_owned(),
            binds: Vec::new(),
        },
    };
    let order = match &query.sort_by {
        Some(sort_by) => sort_column(sort_by)?,
        None => "m.created_at",
    };
    let direction = match query
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ascending") => "ASC",
        Some("descending") => "DESC",
        Some(_) => {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                "sortOrder is ascending or descending.",
            ))
        }
    };
    let next = filter.binds.len() + 2;
    let ordering = format!("{order} {direction}, m.account_id {direction}");
    // Filters and sorts on org_members alone pick the page from an index before joining
    // accounts (as the member list does), and count without joining.
    let members_only = !filter.sql.contains("a.") && !order.starts_with("a.");
    let page_sql = if members_only {
        format!(
            "SELECT {USER_COLUMNS} FROM (SELECT m.account_id FROM org_members m \
             WHERE m.org_id = $1 AND {} ORDER BY {ordering} LIMIT ${next} OFFSET ${}) p \
             CROSS JOIN org_members m CROSS JOIN accounts a \
             WHERE m.org_id = $1 AND m.account_id = p.account_id AND a.id = p.account_id \
             ORDER BY {ordering}",
            filter.sql,
            next + 1
        )
    } else {
        format!(
            "{USER_SELECT} WHERE m.org_id = $1 AND {} ORDER BY {ordering} LIMIT ${next} OFFSET ${}",
            filter.sql,
            next + 1
        )
    };
    let count_sql = match (query.filter.as_deref().map(str::trim), members_only) {
        (None | Some(""), _) => "SELECT member_count FROM orgs WHERE id = $1".to_owned(),
        (_, true) => format!(
            "SELECT COUNT(*) FROM org_members m WHERE m.org_id = $1 AND {}",
            filter.sql
        ),
        (_, false) => format!(
            "SELECT COUNT(*) FROM org_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.org_id = $1 AND {}",
            filter.sql
        ),
    };
    let mut conn = state.db.reader().await?;
    let rows: Vec<UserRow> = if count == 0 {
        Vec::new()
    } else {
        on_db!(&mut conn, |c| {
            let mut query = sqlx::query_as(&page_sql).bind(org_id);
            for bind in &filter.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.clone()),
                    Bind::Int(n) => query.bind(*n),
                    Bind::Id(id) => query.bind(*id),
                };
            }
            query.bind(count).bind(start - 1).fetch_all(c).await
        })
        .map_err(DbError::from)?
    };
    let total: i64 = on_db!(&mut conn, |c| {
        let mut query = sqlx::query_scalar(&count_sql).bind(org_id);
        for bind in &filter.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(n) => query.bind(*n),
                Bind::Id(id) => query.bind(*id),
            };
        }
        query.fetch_one(c).await
    })
    .map_err(DbError::from)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut roles = roles_of(&mut conn, org_id, &ids).await?;
    let base = state.config.public_base();
    let resources: Vec<Json> = rows
        .iter()
        .map(|row| {
            let roles = roles.remove(&row.id).unwrap_or_default();
            project(
                resource(row, &roles, &base),
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    }))
}

/// One user of the organization; 404 for anyone else's.
pub async fn get(
    state: &AppState,
    org_id: Uuid,
    id: &str,
    query: &ListQuery,
) -> Result<Json, ScimError> {
    let not_found = || ScimError::new(StatusCode::NOT_FOUND, None, format!("No user {id}."));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let mut conn = state.db.reader().await?;
    let sql = format!("{USER_SELECT} WHERE m.org_id = $1 AND m.account_id = $2");
    let row: UserRow = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
    .map_err(DbError::from)?
    .ok_or_else(not_found)?;
    let roles = roles_of(&mut conn, org_id, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(project(
        resource(&row, &roles, &state.config.public_base()),
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    ))
}

/// POST /Users/.search: the query in a body (RFC 7644 §3.4.3).
pub fn search_query(body: &Json) -> Result<ListQuery, ScimError> {
    const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let listed = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(SEARCH_SCHEMA)));
    if !listed {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("The body's schemas must include {SEARCH_SCHEMA}."),
        ));
    }
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match &body[name] {
            Json::Null => Ok(None),
            Json::String(s) => Ok(Some(s.clone())),
            Json::Number(n) => Ok(Some(n.to_string())),
            Json::Array(items) => Ok(Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            _ => Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{name} has the wrong type."),
            )),
        }
    };
    Ok(ListQuery {
        filter: text("filter")?,
        start_index: text("startIndex")?,
        count: text("count")?,
        sort_by: text("sortBy")?,
        sort_order: text("sortOrder")?,
        attributes: text("attributes")?,
        excluded_attributes: text("excludedAttributes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_sql_with_bound_values() {
        let sql = to_sql(r#"userName eq "Anna@Acme.test""#, 2).expect("sql");
        assert_eq!(sql.sql, "m.user_name_key = $2");
        assert_eq!(sql.binds, vec![Bind::Text("anna@acme.test".to_owned())]);

        let sql = to_sql(
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
                Bind::Text("%50\\%%".to_owned()),
                Bind::Int(1_767_225_600_000)
            ]
        );

        let sql = to_sql(r#"emails[type eq "work" and value ew "@acme.test"]"#, 5).expect("sql");
        assert_eq!(sql.sql, "(1 = 1 AND m.email LIKE $5 ESCAPE '\\')");
        let sql = to_sql(r#"externalId ne "x""#, 2).expect("sql");
        assert_eq!(sql.sql, "(m.external_id IS NULL OR m.external_id <> $2)");
        assert_eq!(
            to_sql(r#"id eq "not-a-uuid""#, 2).expect("sql").sql,
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
            let error = to_sql(bad, 2).expect_err(bad);
            assert_eq!(error.scim_type, Some("invalidFilter"), "{bad}");
        }
    }

    #[test]
    fn paging_follows_the_rfc() {
        let query = |start: &str, count: &str| ListQuery {
            start_index: Some(start.to_owned()),
            count: Some(count.to_owned()),
            ..ListQuery::default()
        };
        assert_eq!(paging(&ListQuery::default()).ok(), Some((1, 100)));
        assert_eq!(paging(&query("0", "-5")).ok(), Some((1, 0)));
        assert_eq!(paging(&query("7", "5000")).ok(), Some((7, MAX_COUNT)));
        assert!(paging(&query("one", "5")).is_err());
    }
}
