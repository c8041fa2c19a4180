//! What listing any SCIM resource shares (RFC 7644 §3.4.2): filters translated to SQL
//! with bound values, paging, sort order, `attributes`/`excludedAttributes`, search
//! bodies, and the version and timestamps of a resource.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    filter::{self, AttrPath, CompareOp, Filter, Value},
    ScimError,
};
use crate::{
    db::{DbError, Executor},
    on_db,
};

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The most resources one page returns.
pub const MAX_COUNT: i64 = 1000;

pub fn timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Sets `meta.version` to a hash of what the resource says, so any change changes it.
pub fn with_version(mut resource: Json) -> Json {
    let version = format!(
        "W/\"{}\"",
        hex::encode(&Sha256::digest(resource.to_string().as_bytes())[..12])
    );
    resource["meta"]["version"] = json!(version);
    resource
}

/// Whether an If-Match header allows a change to a resource at `version`.
pub fn matches_version(if_match: Option<&str>, version: &str) -> bool {
    match if_match.map(str::trim) {
        None | Some("*") => true,
        Some(wanted) => wanted.split(',').any(|v| v.trim() == version),
    }
}

pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
}

/// A value bound into the SQL a filter becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Id(Uuid),
}

/// A filter as SQL over a resource's tables, with its values.
#[derive(Debug, Default)]
pub struct SqlFilter {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl SqlFilter {
    pub fn bind(&mut self, value: Bind, first: usize) -> String {
        self.binds.push(value);
        format!("${}", first + self.binds.len() - 1)
    }
}

/// Binds a filter's values, in order, to a query.
macro_rules! bind_filter {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(n) => query.bind(*n),
                Bind::Id(id) => query.bind(*id),
            };
        }
        query
    }};
}

/// How an attribute is stored, for filtering.
#[derive(Clone, Copy)]
pub enum Column {
    /// Stored lowercase; compared in lowercase.
    Folded(&'static str),
    /// Compared in lowercase on both sides.
    Text(&'static str),
    /// Compared exactly.
    Exact(&'static str),
    /// Milliseconds since the epoch, compared with RFC 3339 dates.
    Time(&'static str),
    /// A boolean, as the SQL that holds when it is true and when it is false.
    Flag {
        when_true: &'static str,
        when_false: &'static str,
    },
    /// A UUID.
    Id(&'static str),
    /// A list of UUIDs: the correlated subquery of its `rows`, and the `column` in them
    /// that holds the UUID. Equal means "one of them is".
    Contains {
        rows: &'static str,
        column: &'static str,
    },
}

/// How one resource type's attributes become SQL.
pub trait Filterable {
    /// The resource's schema, whose URN may prefix attribute paths.
    const SCHEMA: &'static str;
    /// Its name in messages, such as "Users".
    const NAME: &'static str;
    /// The multi-valued attribute that takes value filters, such as `emails`.
    const VALUE_PATH: &'static str;

    /// The column of a lowercase dotted attribute path, if it can be filtered.
    fn column_of(dotted: &str) -> Option<Column>;

    /// The column a lowercase dotted attribute path sorts by, if it can be sorted.
    fn sort_column_of(dotted: &str) -> Option<&'static str>;

    /// The order without sortBy.
    const DEFAULT_SORT: &'static str;

    /// One comparison of a sub-attribute inside `VALUE_PATH[…]`.
    fn value_compare(
        out: &mut SqlFilter,
        first: usize,
        sub: &str,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, ScimError>;

    /// `VALUE_PATH[… pr]`.
    fn value_present() -> String;

    fn column(path: &AttrPath) -> Result<Column, ScimError> {
        if let Some(schema) = &path.schema {
            if !schema.eq_ignore_ascii_case(Self::SCHEMA) {
                return Err(invalid_filter(format!(
                    "{} have no attributes of {schema}.",
                    Self::NAME
                )));
            }
        }
        let dotted = path.dotted();
        Self::column_of(&dotted).ok_or_else(|| {
            invalid_filter(format!(
                "{} cannot be filtered by \"{dotted}\".",
                Self::NAME
            ))
        })
    }

    /// A value filter such as `emails[type eq "work"]`.
    fn value_filter(
        out: &mut SqlFilter,
        first: usize,
        path: &AttrPath,
        filter: &Filter,
    ) -> Result<String, ScimError> {
        if path.dotted() != Self::VALUE_PATH {
            return Err(invalid_filter(format!(
                "Only {}[…] can be filtered by value; not {}.",
                Self::VALUE_PATH,
                path.dotted()
            )));
        }
        Ok(match filter {
            Filter::Compare {
                path: sub,
                op,
                value,
            } => Self::value_compare(out, first, &sub.attribute, *op, value)?,
            Filter::Present(_) => Self::value_present(),
            Filter::And(left, right) => format!(
                "({} AND {})",
                Self::value_filter(out, first, path, left)?,
                Self::value_filter(out, first, path, right)?
            ),
            Filter::Or(left, right) => format!(
                "({} OR {})",
                Self::value_filter(out, first, path, left)?,
                Self::value_filter(out, first, path, right)?
            ),
            Filter::Not(inner) => {
                format!("NOT ({})", Self::value_filter(out, first, path, inner)?)
            }
            Filter::ValuePath { .. } => return Err(invalid_filter("Value filters do not nest.")),
        })
    }
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

/// `column op value` with the value bound.
pub fn compare(
    out: &mut SqlFilter,
    first: usize,
    column: Column,
    name: &str,
    op: CompareOp,
    value: &Value,
) -> Result<String, ScimError> {
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
        Column::Flag {
            when_true,
            when_false,
        } => match (op, value) {
            (CompareOp::Eq, Value::Bool(true)) | (CompareOp::Ne, Value::Bool(false)) => {
                when_true.to_owned()
            }
            (CompareOp::Eq, Value::Bool(false)) | (CompareOp::Ne, Value::Bool(true)) => {
                when_false.to_owned()
            }
            _ => {
                return Err(invalid_filter(format!(
                    "Compare {name} with eq or ne and true or false."
                )))
            }
        },
        Column::Id(_) | Column::Contains { .. } => {
            let raw = text()?;
            let wanted = match op {
                CompareOp::Eq => true,
                CompareOp::Ne => false,
                _ => return Err(invalid_filter(format!("Compare {name} with eq or ne."))),
            };
            match (Uuid::parse_str(&raw), column) {
                (Ok(id), Column::Id(col)) => {
                    let placeholder = out.bind(Bind::Id(id), first);
                    format!("{col} {} {placeholder}", if wanted { "=" } else { "<>" })
                }
                (Ok(id), Column::Contains { rows, column }) => {
                    let placeholder = out.bind(Bind::Id(id), first);
                    let not = if wanted { "" } else { "NOT " };
                    format!("{not}EXISTS ({rows} AND {column} = {placeholder})")
                }
                // No resource has an id that is not a UUID.
                _ => if wanted { "1 = 0" } else { "1 = 1" }.to_owned(),
            }
        }
    })
}

fn present(column: Column) -> String {
    match column {
        Column::Folded(col) | Column::Text(col) | Column::Exact(col) => {
            format!("({col} IS NOT NULL AND {col} <> '')")
        }
        Column::Contains { rows, .. } => format!("EXISTS ({rows})"),
        // Every resource has these.
        Column::Time(_) | Column::Flag { .. } | Column::Id(_) => "1 = 1".to_owned(),
    }
}

/// The SQL of a parsed filter, its placeholders numbered from `first`.
pub fn translate<R: Filterable>(
    out: &mut SqlFilter,
    first: usize,
    filter: &Filter,
) -> Result<String, ScimError> {
    Ok(match filter {
        Filter::Compare { path, op, value } => {
            compare(out, first, R::column(path)?, &path.dotted(), *op, value)?
        }
        Filter::Present(path) => present(R::column(path)?),
        Filter::And(left, right) => format!(
            "({} AND {})",
            translate::<R>(out, first, left)?,
            translate::<R>(out, first, right)?
        ),
        Filter::Or(left, right) => format!(
            "({} OR {})",
            translate::<R>(out, first, left)?,
            translate::<R>(out, first, right)?
        ),
        Filter::Not(inner) => format!("NOT ({})", translate::<R>(out, first, inner)?),
        Filter::ValuePath { path, filter } => R::value_filter(out, first, path, filter)?,
    })
}

/// The SQL for a filter string, its placeholders numbered from `first`.
pub fn to_sql<R: Filterable>(raw: &str, first: usize) -> Result<SqlFilter, ScimError> {
    let parsed = filter::parse(raw).map_err(|e| invalid_filter(e.0))?;
    let mut out = SqlFilter::default();
    out.sql = translate::<R>(&mut out, first, &parsed)?;
    Ok(out)
}

/// What a list request asks for, as SQL.
pub struct ListPlan {
    pub start: i64,
    pub count: i64,
    /// The filter numbered from `$2` (`$1` is the organization), if there is one.
    pub filter: Option<SqlFilter>,
    pub order: &'static str,
    pub direction: &'static str,
}

impl ListPlan {
    pub fn of<R: Filterable>(query: &ListQuery) -> Result<ListPlan, ScimError> {
        let (start, count) = paging(query)?;
        let filter = query
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|raw| to_sql::<R>(raw, 2))
            .transpose()?;
        let order = match &query.sort_by {
            Some(sort_by) => R::sort_column_of(&sort_by.to_ascii_lowercase()).ok_or_else(|| {
                invalid_value(format!("{} cannot be sorted by \"{sort_by}\".", R::NAME))
            })?,
            None => R::DEFAULT_SORT,
        };
        Ok(ListPlan {
            start,
            count,
            filter,
            order,
            direction: direction(query)?,
        })
    }

    /// The filter's condition ("1 = 1" without one) and its values.
    pub fn condition(&self) -> (&str, &[Bind]) {
        match &self.filter {
            Some(filter) => (filter.sql.as_str(), filter.binds.as_slice()),
            None => ("1 = 1", &[]),
        }
    }

    /// The placeholder number after the filter's values.
    pub fn next_placeholder(&self) -> usize {
        self.condition().1.len() + 2
    }
}

/// `?filter=&startIndex=&count=&sortBy=&sortOrder=&attributes=&excludedAttributes=`
#[derive(Debug, Clone, Default, Deserialize)]
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

/// SCIM's startIndex and count: lenient as RFC 7644 §3.4.2.4 asks (below 1 means 1,
/// negative counts mean 0), but not numbers at all are refused.
pub fn paging(query: &ListQuery) -> Result<(i64, i64), ScimError> {
    let number = |name: &str, raw: &Option<String>, default: i64| match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid_value(format!("{name} must be a whole number."))),
    };
    let start = number("startIndex", &query.start_index, 1)?.max(1);
    let count = number("count", &query.count, 100)?.clamp(0, MAX_COUNT);
    Ok((start, count))
}

/// `ASC` or `DESC` from sortOrder (ascending unless told).
pub fn direction(query: &ListQuery) -> Result<&'static str, ScimError> {
    match query
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ascending") => Ok("ASC"),
        Some("descending") => Ok("DESC"),
        Some(_) => Err(invalid_value("sortOrder is ascending or descending.")),
    }
}

/// One page of rows (`page_sql` binds `$1` the organization, then the filter's values,
/// then the page's size and offset) and the total `count_sql` counts with the same
/// values.
pub async fn page_and_total<T>(
    conn: &mut impl Executor,
    page_sql: &str,
    count_sql: &str,
    org_id: Uuid,
    binds: &[Bind],
    (start, count): (i64, i64),
) -> Result<(Vec<T>, i64), DbError>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let rows: Vec<T> = if count == 0 {
        Vec::new()
    } else {
        on_db!(&mut *conn, |c| bind_filter!(
            sqlx::query_as(page_sql).bind(org_id),
            binds
        )
        .bind(count)
        .bind(start - 1)
        .fetch_all(c)
        .await)?
    };
    let total: i64 = on_db!(&mut *conn, |c| bind_filter!(
        sqlx::query_scalar(count_sql).bind(org_id),
        binds
    )
    .fetch_one(c)
    .await)?;
    Ok((rows, total))
}

pub fn list_response(total: i64, start: i64, resources: Vec<Json>) -> Json {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Attribute names of an `attributes` / `excludedAttributes` list, lowercase and without
/// the resource's schema prefix.
fn attribute_names(list: &str, schema: &str) -> Vec<String> {
    let prefix = format!("{}:", schema.to_ascii_lowercase());
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

/// Whether the query asks to leave an attribute out of the resources it returns.
pub fn leaves_out(query: &ListQuery, schema: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    match (&query.attributes, &query.excluded_attributes) {
        (Some(list), _) if !list.trim().is_empty() => !attribute_names(list, schema)
            .iter()
            .any(|a| a == &name || a.starts_with(&format!("{name}."))),
        (_, Some(list)) => attribute_names(list, schema).contains(&name),
        _ => false,
    }
}

/// Always returned, whatever the client asks (RFC 7643 §7: `returned: always`).
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// `attributes` keeps only the named attributes (and sub-attributes);
/// `excludedAttributes` drops them. `attributes` wins when both are given.
pub fn project(mut resource: Json, schema: &str, query: &ListQuery) -> Json {
    let Some(object) = resource.as_object_mut() else {
        return resource;
    };
    if let Some(list) = query.attributes.as_deref().filter(|l| !l.trim().is_empty()) {
        let wanted = attribute_names(list, schema);
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
    } else if let Some(list) = query.excluded_attributes.as_deref() {
        for name in attribute_names(list, schema) {
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

/// POST `.search`: the query in a body (RFC 7644 §3.4.3).
pub fn search_query(body: &Json) -> Result<ListQuery, ScimError> {
    const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    super::check_schemas(body, SEARCH_SCHEMA)?;
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
            _ => Err(invalid_value(format!("{name} has the wrong type."))),
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

    #[test]
    fn if_match_names_one_of_the_versions_or_any() {
        assert!(matches_version(None, "W/\"a\""));
        assert!(matches_version(Some(" * "), "W/\"a\""));
        assert!(matches_version(Some("W/\"b\", W/\"a\""), "W/\"a\""));
        assert!(!matches_version(Some("W/\"b\""), "W/\"a\""));
    }

    #[test]
    fn members_are_left_out_only_when_asked() {
        let query = |attributes: Option<&str>, excluded: Option<&str>| ListQuery {
            attributes: attributes.map(str::to_owned),
            excluded_attributes: excluded.map(str::to_owned),
            ..ListQuery::default()
        };
        let schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
        assert!(!leaves_out(&query(None, None), schema, "members"));
        assert!(leaves_out(&query(None, Some("members")), schema, "members"));
        assert!(leaves_out(
            &query(Some("displayName"), None),
            schema,
            "members"
        ));
        assert!(!leaves_out(
            &query(Some("members.value"), None),
            schema,
            "members"
        ));
        assert!(!leaves_out(
            &query(Some(&format!("{schema}:members")), None),
            schema,
            "members"
        ));
    }
}
