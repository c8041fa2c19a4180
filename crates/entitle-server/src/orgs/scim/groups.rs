//! SCIM Groups (RFC 7643 §4.2): the identity provider's own groups of the organization's
//! members. Roles are fixed, so a group is not a role; an administrator maps a group to
//! a role (a group named after one is mapped when it is created), and its members then
//! hold that role. Leaving the last group mapped to a role takes back a role that groups
//! gave, never one an administrator gave. The SCIM token acts with an Administrator's
//! rights: no group gives Fulfillment Contact, and Fulfillment Contacts' roles are left
//! alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use entitle_proto::ScimGroupSummary;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::{
    bad, check_schemas, field,
    filter::{CompareOp, Filter, Value},
    provisioning::{actor, PATCH_SCHEMA},
    query::{
        self, compare, invalid_filter, list_response, project, Column, Filterable, ListQuery,
        SqlFilter,
    },
    text, ScimClient, ScimError,
};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::{now_ms, placeholders, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute, fetch_in_chunks,
    identity::{flows::actor_of, store::AccountRow},
    on_db,
    orgs::{
        access::OrgAccess,
        roles::{may_change, Action, Role},
    },
};

pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The longest displayName.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    pub role: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

const GROUP_SELECT: &str = "SELECT g.id, g.display_name, g.external_id, g.role, g.created_at, \
     g.updated_at, g.revision FROM scim_groups g";

/// The Group resource; `members` is `None` when the client left them out. Its version
/// counts changes, so it is known without reading the members.
pub fn resource(row: &GroupRow, members: Option<&[Uuid]>, base: &str) -> Json {
    let mut group = json!({
        "schemas": [GROUP_SCHEMA],
        "id": row.id,
        "displayName": row.display_name,
        "meta": {
            "resourceType": "Group",
            "created": query::timestamp(row.created_at),
            "lastModified": query::timestamp(row.updated_at),
            "location": format!("{base}/scim/v2/Groups/{}", row.id),
            "version": version(row),
        },
    });
    if let Some(members) = members {
        group["members"] = members
            .iter()
            .map(|id| {
                json!({
                    "value": id,
                    "$ref": format!("{base}/scim/v2/Users/{id}"),
                    "type": "User",
                })
            })
            .collect();
    }
    if let Some(external_id) = &row.external_id {
        group["externalId"] = json!(external_id);
    }
    group
}

fn version(row: &GroupRow) -> String {
    format!("W/\"{}-{}\"", row.id.simple(), row.revision)
}

/// Who is in a group, as SQL correlated with `g`.
const MEMBER_ROWS: &str = "SELECT 1 FROM scim_group_members gm WHERE gm.group_id = g.id";
const MEMBERS: Column = Column::Contains {
    rows: MEMBER_ROWS,
    column: "gm.account_id",
};

/// The groups' attributes as SQL over `g` (scim_groups).
pub struct Groups;

impl Filterable for Groups {
    const SCHEMA: &'static str = GROUP_SCHEMA;
    const NAME: &'static str = "Groups";
    const VALUE_PATH: &'static str = "members";

    fn column_of(dotted: &str) -> Option<Column> {
        Some(match dotted {
            "displayname" => Column::Folded("g.display_key"),
            "externalid" => Column::Exact("g.external_id"),
            "id" => Column::Id("g.id"),
            "members" | "members.value" => MEMBERS,
            "meta.created" => Column::Time("g.created_at"),
            "meta.lastmodified" => Column::Time("g.updated_at"),
            _ => return None,
        })
    }

    fn sort_column_of(dotted: &str) -> Option<&'static str> {
        Some(match dotted {
            "displayname" => "g.display_key",
            "externalid" => "g.external_id",
            "meta.created" => "g.created_at",
            "meta.lastmodified" => "g.updated_at",
            "id" => "g.id",
            _ => return None,
        })
    }

    const DEFAULT_SORT: &'static str = "g.created_at";

    /// `members[…]`: every member is a User.
    fn value_compare(
        out: &mut SqlFilter,
        first: usize,
        sub: &str,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, ScimError> {
        Ok(match (sub, op, value) {
            ("value", _, _) => compare(out, first, MEMBERS, "members.value", op, value)?,
            ("type", CompareOp::Eq, Value::Str(t)) => {
                let not = if t.eq_ignore_ascii_case("user") {
                    ""
                } else {
                    "NOT "
                };
                format!("{not}EXISTS ({MEMBER_ROWS})")
            }
            _ => {
                return Err(invalid_filter(
                    "Filter members by value eq \"…\" or type eq \"User\".",
                ))
            }
        })
    }

    fn value_present() -> String {
        format!("EXISTS ({MEMBER_ROWS})")
    }
}

/// The members of each group, oldest first.
async fn members_of_groups(
    ex: &mut impl Executor,
    group_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Uuid>>, DbError> {
    let rows: Vec<(Uuid, Uuid)> = fetch_in_chunks!(
        ex,
        "SELECT group_id, account_id FROM scim_group_members WHERE group_id IN {values} \
         ORDER BY group_id, added_at, account_id",
        group_ids,
        1,
        |query| query
    )?;
    let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (group, account) in rows {
        members.entry(group).or_default().push(account);
    }
    Ok(members)
}

/// The groups (id, displayName) each of `account_ids` is in.
pub async fn groups_of_members(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, String)>>, DbError> {
    let rows: Vec<(Uuid, Uuid, String)> = fetch_in_chunks!(
        ex,
        "SELECT gm.account_id, g.id, g.display_name FROM scim_group_members gm \
         JOIN scim_groups g ON g.id = gm.group_id \
         WHERE gm.org_id = $1 AND gm.account_id IN {values} ORDER BY g.display_key",
        account_ids,
        2,
        |query| query.bind(org_id)
    )?;
    let mut groups: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    for (account, group, name) in rows {
        groups.entry(account).or_default().push((group, name));
    }
    Ok(groups)
}

/// A page of the organization's groups matching the query.
pub async fn list(state: &AppState, org_id: Uuid, query: &ListQuery) -> Result<Json, ScimError> {
    let plan = query::ListPlan::of::<Groups>(query)?;
    let (condition, binds) = plan.condition();
    let (order, direction) = (plan.order, plan.direction);
    let next = plan.next_placeholder();
    let page_sql = format!(
        "{GROUP_SELECT} WHERE g.org_id = $1 AND {condition} \
         ORDER BY {order} {direction}, g.id {direction} LIMIT ${next} OFFSET ${}",
        next + 1
    );
    let count_sql =
        format!("SELECT COUNT(*) FROM scim_groups g WHERE g.org_id = $1 AND {condition}");
    let mut conn = state.db.reader().await?;
    let (rows, total): (Vec<GroupRow>, i64) = query::page_and_total(
        &mut conn,
        &page_sql,
        &count_sql,
        org_id,
        binds,
        (plan.start, plan.count),
    )
    .await?;
    let with_members = !query::leaves_out(query, GROUP_SCHEMA, "members");
    let mut members = if with_members {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        members_of_groups(&mut conn, &ids).await?
    } else {
        HashMap::new()
    };
    let base = state.config.public_base();
    let resources = rows
        .iter()
        .map(|row| {
            let members = with_members.then(|| members.remove(&row.id).unwrap_or_default());
            project(
                resource(row, members.as_deref(), &base),
                GROUP_SCHEMA,
                query,
            )
        })
        .collect();
    Ok(list_response(total, plan.start, resources))
}

async fn row_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<GroupRow>, DbError> {
    let sql = format!("{GROUP_SELECT} WHERE g.org_id = $1 AND g.id = $2");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)?)
}

fn not_found(id: &str) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, format!("No group {id}."))
}

/// The group as the query asks for it.
async fn shown(
    ex: &mut impl Executor,
    state: &AppState,
    row: &GroupRow,
    query: &ListQuery,
) -> Result<Json, ScimError> {
    let members = if query::leaves_out(query, GROUP_SCHEMA, "members") {
        None
    } else {
        Some(
            members_of_groups(ex, &[row.id])
                .await?
                .remove(&row.id)
                .unwrap_or_default(),
        )
    };
    Ok(project(
        resource(row, members.as_deref(), &state.config.public_base()),
        GROUP_SCHEMA,
        query,
    ))
}

/// The group as it is now, within the transaction that changed it.
async fn reread(
    tx: &mut Tx,
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    query: &ListQuery,
) -> Result<Json, ScimError> {
    let row = row_of(&mut *tx, org_id, id)
        .await?
        .ok_or_else(|| not_found(&id.to_string()))?;
    shown(&mut *tx, state, &row, query).await
}

/// One group of the organization; 404 for anyone else's.
pub async fn get(
    state: &AppState,
    org_id: Uuid,
    id: &str,
    query: &ListQuery,
) -> Result<Json, ScimError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    let mut conn = state.db.reader().await?;
    let row = row_of(&mut conn, org_id, uuid)
        .await?
        .ok_or_else(|| not_found(id))?;
    shown(&mut conn, state, &row, query).await
}

/// A change to a group's members, in the order the request gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
}

/// What a request changes in a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupChanges {
    pub display_name: Option<String>,
    pub external_id: Option<Option<String>>,
    pub members: Vec<MemberChange>,
}

fn display_name(value: &Json) -> Result<String, ScimError> {
    let name = text(value, "displayName")?.unwrap_or_default();
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(bad(
            "invalidValue",
            format!("displayName is 1 to {MAX_NAME_CHARS} characters without control characters."),
        ));
    }
    Ok(name.to_owned())
}

/// The `value`s of a `members` list.
fn member_values(value: &Json) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Json::Null => return Ok(Vec::new()),
        Json::Array(items) => items.as_slice(),
        // Some identity providers send one member as an object.
        Json::Object(_) => std::slice::from_ref(value),
        _ => return Err(bad("invalidValue", "members must be a list.")),
    };
    items
        .iter()
        .map(|item| {
            if let Some(kind) = field(item, "type").as_str() {
                if !kind.eq_ignore_ascii_case("user") {
                    return Err(bad(
                        "invalidValue",
                        "A group's members are users; groups do not nest.",
                    ));
                }
            }
            text(field(item, "value"), "members.value")?
                .ok_or_else(|| bad("invalidValue", "Each member needs a value (a user id)."))
        })
        .collect()
}

/// A full Group resource (POST, PUT): its changes from nothing.
pub fn fields_of(body: &Json) -> Result<GroupChanges, ScimError> {
    check_schemas(body, GROUP_SCHEMA)?;
    Ok(GroupChanges {
        display_name: Some(display_name(field(body, "displayName"))?),
        external_id: Some(text(field(body, "externalId"), "externalId")?),
        members: vec![
            MemberChange::RemoveAll,
            MemberChange::Add(member_values(field(body, "members"))?),
        ],
    })
}

/// The member ids a `members[value eq "…" or …]` path names.
fn member_path_values(filter: &str) -> Result<Vec<String>, ScimError> {
    fn collect(filter: &Filter, out: &mut Vec<String>) -> Result<(), ScimError> {
        match filter {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::Str(id),
            } if path.attribute.eq_ignore_ascii_case("value") => {
                out.push(id.clone());
                Ok(())
            }
            Filter::Or(left, right) => {
                collect(left, out)?;
                collect(right, out)
            }
            _ => Err(bad(
                "invalidFilter",
                "Name members to remove with value eq \"…\", joined by or.",
            )),
        }
    }
    let parsed = super::filter::parse(filter).map_err(|e| bad("invalidFilter", e.0))?;
    let mut values = Vec::new();
    collect(&parsed, &mut values)?;
    Ok(values)
}

/// Applies one PATCH operation at `path` (lowercase, without the Group schema).
fn patch_operation(
    changes: &mut GroupChanges,
    op: &str,
    path: &str,
    value: &Json,
) -> Result<(), ScimError> {
    let members_filter = path
        .strip_prefix("members[")
        .and_then(|rest| rest.strip_suffix(']'));
    match (op, path) {
        (_, "") if op != "remove" => {
            let object = value.as_object().ok_or_else(|| {
                bad(
                    "invalidValue",
                    "Without a path, the value is an object of attributes.",
                )
            })?;
            for (key, inner) in object {
                if !key.eq_ignore_ascii_case("schemas") {
                    patch_operation(changes, op, &key.to_ascii_lowercase(), inner)?;
                }
            }
        }
        ("remove", "") => return Err(bad("noTarget", "remove needs a path.")),
        ("remove", "displayname") => {
            return Err(bad(
                "mutability",
                "displayName is required and cannot be removed.",
            ))
        }
        (_, "displayname") => changes.display_name = Some(display_name(value)?),
        ("remove", "externalid") => changes.external_id = Some(None),
        (_, "externalid") => changes.external_id = Some(text(value, "externalId")?),
        ("add", "members") => changes
            .members
            .push(MemberChange::Add(member_values(value)?)),
        ("replace", "members") => {
            changes.members.push(MemberChange::RemoveAll);
            changes
                .members
                .push(MemberChange::Add(member_values(value)?));
        }
        // Azure AD names the members to remove in the value rather than the path.
        ("remove", "members") if !value.is_null() => changes
            .members
            .push(MemberChange::Remove(member_values(value)?)),
        ("remove", "members") => changes.members.push(MemberChange::RemoveAll),
        ("remove", _) if members_filter.is_some() => {
            changes
                .members
                .push(MemberChange::Remove(member_path_values(
                    members_filter.unwrap_or_default(),
                )?))
        }
        (_, "id" | "meta" | "schemas") => {
            return Err(bad("mutability", format!("{path} cannot be changed.")))
        }
        (_, other) => {
            return Err(bad(
                "invalidPath",
                format!("Groups cannot change \"{other}\" that way."),
            ))
        }
    }
    Ok(())
}

/// A PATCH request's operations as changes, in order.
pub fn changes_of_patch(body: &Json) -> Result<GroupChanges, ScimError> {
    check_schemas(body, PATCH_SCHEMA)?;
    let operations = field(body, "Operations")
        .as_array()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("invalidSyntax", "Operations must be a non-empty list."))?;
    let mut changes = GroupChanges::default();
    let prefix = format!("{}:", GROUP_SCHEMA.to_ascii_lowercase());
    for operation in operations {
        let op = field(operation, "op")
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(op.as_str(), "add" | "replace" | "remove") {
            return Err(bad(
                "invalidSyntax",
                format!("\"{op}\" is not an operation: use add, replace or remove."),
            ));
        }
        let path = text(field(operation, "path"), "path")?
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let path = path.strip_prefix(&prefix).unwrap_or(&path);
        patch_operation(&mut changes, &op, path, field(operation, "value"))?;
    }
    Ok(changes)
}

/// The roles groups gave or took back in one change: (account, role).
#[derive(Debug, Default)]
pub struct RoleChanges {
    pub granted: Vec<(Uuid, String)>,
    pub revoked: Vec<(Uuid, String)>,
}

/// The most people or role changes one audit event lists; beyond it, it gives counts.
const MAX_AUDITED_CHANGES: usize = 1000;

impl RoleChanges {
    fn details(&self) -> Json {
        let list = |changes: &[(Uuid, String)]| {
            changes
                .iter()
                .take(MAX_AUDITED_CHANGES)
                .map(|(account, role)| json!({"account_id": account, "role": role}))
                .collect::<Vec<_>>()
        };
        json!({
            "granted": list(&self.granted),
            "granted_count": self.granted.len(),
            "revoked": list(&self.revoked),
            "revoked_count": self.revoked.len(),
        })
    }
}

/// Whose roles to bring in line with their groups.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Accounts(&'a [Uuid]),
    /// Everyone in a group, without reading them out: a group may hold 100,000 people.
    MembersOf(Uuid),
}

/// The roles whose holders someone holding `actor` may not change: always Fulfillment
/// Contact, whose roles groups never touch.
fn outranking(actor: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| *r == Role::FulfillmentContact || !may_change(actor, &[*r]))
        .collect()
}

/// Gives the listed members the roles of the mapped groups they are in, and takes back
/// the roles groups gave that no group of theirs gives any more. Members whose roles
/// `actor` may not change (Fulfillment Contacts always) are left alone, and a member
/// left without a role is a User.
pub async fn sync_roles(
    tx: &mut Tx,
    org_id: Uuid,
    scope: Scope<'_>,
    actor: &[Role],
) -> Result<RoleChanges, DbError> {
    let protected = outranking(actor)
        .iter()
        .map(|r| format!("'{}'", r.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let user = Role::User.as_str();
    // Batches of (the members as SQL, their ids to bind from $2).
    let batches: Vec<(String, &[Uuid])> = match scope {
        Scope::Accounts(ids) => ids
            .chunks(crate::db::IN_LIST_CHUNK)
            .map(|chunk| (placeholders(1, chunk.len(), 2), chunk))
            .collect(),
        Scope::MembersOf(_) => vec![(
            "(SELECT account_id FROM scim_group_members WHERE group_id = $2)".to_owned(),
            &[][..],
        )],
    };
    let mut changes = RoleChanges::default();
    for (ids, chunk) in batches {
        let not_contact = format!(
            "NOT EXISTS (SELECT 1 FROM org_member_roles f WHERE f.org_id = $1 \
             AND f.account_id = {{account}} AND f.role IN ({protected}))"
        );
        let grant = format!(
            "INSERT INTO org_member_roles (org_id, account_id, role, from_group) \
             SELECT DISTINCT gm.org_id, gm.account_id, g.role, TRUE FROM scim_group_members gm \
             JOIN scim_groups g ON g.id = gm.group_id \
             WHERE gm.org_id = $1 AND gm.account_id IN {ids} AND g.role IS NOT NULL AND {} \
             ON CONFLICT (org_id, account_id, role) DO NOTHING RETURNING account_id, role",
            not_contact.replace("{account}", "gm.account_id")
        );
        let revoke = format!(
            "DELETE FROM org_member_roles WHERE org_id = $1 AND account_id IN {ids} \
             AND from_group = TRUE AND {} AND NOT EXISTS (SELECT 1 FROM scim_group_members gm \
             JOIN scim_groups g ON g.id = gm.group_id WHERE gm.org_id = $1 \
             AND gm.account_id = org_member_roles.account_id AND g.role = org_member_roles.role) \
             RETURNING account_id, role",
            not_contact.replace("{account}", "org_member_roles.account_id")
        );
        let fallback = format!(
            "INSERT INTO org_member_roles (org_id, account_id, role, from_group) \
             SELECT m.org_id, m.account_id, '{user}', FALSE FROM org_members m \
             WHERE m.org_id = $1 AND m.account_id IN {ids} AND NOT EXISTS \
             (SELECT 1 FROM org_member_roles r WHERE r.org_id = $1 AND r.account_id = m.account_id) \
             RETURNING account_id, role"
        );
        let mut run = async |sql: &str| -> Result<Vec<(Uuid, String)>, DbError> {
            Ok(on_db!(&mut *tx, |c| {
                let mut query = sqlx::query_as(sql).bind(org_id);
                if let Scope::MembersOf(group_id) = scope {
                    query = query.bind(group_id);
                }
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(c).await
            })?)
        };
        changes.granted.extend(run(&grant).await?);
        let revoked = run(&revoke).await?;
        let kept: HashSet<(Uuid, String)> = run(&fallback).await?.into_iter().collect();
        changes
            .revoked
            .extend(revoked.into_iter().filter(|change| !kept.contains(change)));
    }
    Ok(changes)
}

/// The organization's members among `values`; anything else is refused by name.
async fn members_named(
    tx: &mut Tx,
    org_id: Uuid,
    values: &[String],
) -> Result<Vec<Uuid>, ScimError> {
    let unknown = |value: &str| {
        bad(
            "invalidValue",
            format!("members: {value} is not a user of this organization."),
        )
    };
    let mut ids = Vec::with_capacity(values.len());
    let mut seen = HashSet::new();
    for value in values {
        let id = Uuid::parse_str(value.trim()).map_err(|_| unknown(value))?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    let found: Vec<(Uuid,)> = fetch_in_chunks!(
        &mut *tx,
        "SELECT account_id FROM org_members WHERE org_id = $1 AND account_id IN {values}",
        ids,
        2,
        |query| query.bind(org_id)
    )?;
    let found: HashSet<Uuid> = found.into_iter().map(|(id,)| id).collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(unknown(&missing.to_string()));
    }
    Ok(ids)
}

async fn member_count(tx: &mut Tx, group_id: Uuid) -> Result<i64, DbError> {
    Ok(on_db!(&mut *tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM scim_group_members WHERE group_id = $1"
    )
    .bind(group_id)
    .fetch_one(c)
    .await)?)
}

/// How a request moved one person.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Moved {
    Joined,
    Left,
}

/// Notes a move the database reports; a move back cancels it out.
fn record(moved: &mut BTreeMap<Uuid, Moved>, id: Uuid, now: Moved) {
    if moved.get(&id).is_some_and(|before| *before != now) {
        moved.remove(&id);
    } else {
        moved.insert(id, now);
    }
}

/// Applies member changes; returns who joined and who left. Only the rows that change
/// are touched, so adding one person to a large group reads none of the others.
async fn change_members(
    tx: &mut Tx,
    org_id: Uuid,
    group_id: Uuid,
    changes: &[MemberChange],
) -> Result<(Vec<Uuid>, Vec<Uuid>), ScimError> {
    let mut moved = BTreeMap::new();
    let now = now_ms();
    for change in changes {
        let (changed, direction): (Vec<(Uuid,)>, _) = match change {
            MemberChange::Add(values) => {
                let ids = members_named(tx, org_id, values).await?;
                let joined = fetch_in_chunks!(
                    &mut *tx,
                    "INSERT INTO scim_group_members (group_id, org_id, account_id, added_at) \
                     SELECT $1, m.org_id, m.account_id, $3 FROM org_members m \
                     WHERE m.org_id = $2 AND m.account_id IN {values} \
                     ON CONFLICT (group_id, account_id) DO NOTHING RETURNING account_id",
                    ids,
                    4,
                    |query| query.bind(group_id).bind(org_id).bind(now)
                )?;
                (joined, Moved::Joined)
            }
            MemberChange::Remove(values) => {
                let ids: Vec<Uuid> = values
                    .iter()
                    .filter_map(|v| Uuid::parse_str(v.trim()).ok())
                    .collect();
                let left = fetch_in_chunks!(
                    &mut *tx,
                    "DELETE FROM scim_group_members WHERE group_id = $1 AND org_id = $2 \
                     AND account_id IN {values} RETURNING account_id",
                    ids,
                    3,
                    |query| query.bind(group_id).bind(org_id)
                )?;
                (left, Moved::Left)
            }
            MemberChange::RemoveAll => {
                let left = on_db!(&mut *tx, |c| sqlx::query_as(
                    "DELETE FROM scim_group_members WHERE group_id = $1 RETURNING account_id"
                )
                .bind(group_id)
                .fetch_all(c)
                .await)
                .map_err(DbError::from)?;
                (left, Moved::Left)
            }
        };
        for (id,) in changed {
            record(&mut moved, id, direction);
        }
    }
    let (joined, left): (Vec<_>, Vec<_>) = moved
        .into_iter()
        .partition(|(_, direction)| *direction == Moved::Joined);
    Ok((
        joined.into_iter().map(|(id, _)| id).collect(),
        left.into_iter().map(|(id, _)| id).collect(),
    ))
}

fn taken(name: &str) -> ScimError {
    ScimError::new(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        format!("A group named {name} exists in this organization."),
    )
}

/// Applies changes to a group, with its members' roles and one audit event.
async fn apply(
    tx: &mut Tx,
    access: &OrgAccess,
    before: &GroupRow,
    changes: &GroupChanges,
    actor: &Actor,
    action: &'static str,
) -> Result<(), ScimError> {
    let org_id = access.org.id;
    let name = changes
        .display_name
        .clone()
        .unwrap_or_else(|| before.display_name.clone());
    let external_id = changes
        .external_id
        .clone()
        .unwrap_or_else(|| before.external_id.clone());
    let renamed = execute!(
        &mut *tx,
        "UPDATE scim_groups SET display_name = $1, display_key = $2, external_id = $3, \
         updated_at = $4, revision = revision + 1 WHERE id = $5",
        &name,
        name.to_lowercase(),
        &external_id,
        now_ms(),
        before.id
    );
    match renamed {
        Err(error) if error.is_unique_violation() => return Err(taken(&name)),
        other => other?,
    };
    let (joined, left) = change_members(tx, org_id, before.id, &changes.members).await?;
    let affected: Vec<Uuid> = joined.iter().chain(&left).copied().collect();
    let roles = sync_roles(tx, org_id, Scope::Accounts(&affected), access.rights()).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action,
            target_type: "scim_group",
            target_id: Some(before.id),
            target_label: Some(&name),
            org_id: Some(org_id),
            details: json!({
                "before": {"display_name": before.display_name, "external_id": before.external_id},
                "after": {"display_name": name, "external_id": external_id},
                "joined": &joined[..joined.len().min(MAX_AUDITED_CHANGES)],
                "joined_count": joined.len(),
                "left": &left[..left.len().min(MAX_AUDITED_CHANGES)],
                "left_count": left.len(),
                "roles": roles.details(),
            }),
        },
    )
    .await?;
    Ok(())
}

/// The group a change is for, after checking If-Match.
async fn current(
    tx: &mut Tx,
    org_id: Uuid,
    id: &str,
    if_match: Option<&str>,
) -> Result<GroupRow, ScimError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    let row = row_of(&mut *tx, org_id, uuid)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !query::matches_version(if_match, &version(&row)) {
        return Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "The group has changed since that version: read it again.",
        ));
    }
    Ok(row)
}

/// POST /Groups. A group named after a role (other than Fulfillment Contact) is mapped
/// to it.
pub async fn create(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    body: &Json,
) -> Result<Json, ScimError> {
    let changes = fields_of(body)?;
    let name = changes.display_name.clone().unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    access.require(Action::ManageUsers)?;
    let role = Role::parse(&name)
        .filter(|r| *r != Role::FulfillmentContact && access.may(Action::AssignRole(*r)))
        .map(Role::as_str);
    let id = Uuid::now_v7();
    let now = now_ms();
    let inserted = execute!(
        &mut tx,
        "INSERT INTO scim_groups (id, org_id, display_name, display_key, role, created_at, \
         updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $6, 0)",
        id,
        client.org_id,
        &name,
        name.to_lowercase(),
        role,
        now
    );
    match inserted {
        Err(error) if error.is_unique_violation() => return Err(taken(&name)),
        other => other?,
    };
    let created = row_of(&mut tx, client.org_id, id)
        .await?
        .ok_or_else(|| not_found("new"))?;
    apply(
        &mut tx,
        &access,
        &created,
        &changes,
        &actor(client, from),
        "org.group_created",
    )
    .await?;
    let shown = reread(&mut tx, state, client.org_id, id, &ListQuery::default()).await?;
    tx.commit().await?;
    Ok(shown)
}

/// Applies a request's changes to a group, checking If-Match; answers with the group as
/// `answer` asks, or nothing.
async fn change(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    changes: &GroupChanges,
    answer: Option<&ListQuery>,
) -> Result<Option<Json>, ScimError> {
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    access.require(Action::ManageUsers)?;
    let before = current(&mut tx, client.org_id, id, if_match).await?;
    apply(
        &mut tx,
        &access,
        &before,
        changes,
        &actor(client, from),
        "org.group_updated",
    )
    .await?;
    let shown = match answer {
        Some(query) => Some(reread(&mut tx, state, client.org_id, before.id, query).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(shown)
}

/// PUT /Groups/{id}: replaces the name, externalId and members; the role mapping stays.
pub async fn replace(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    body: &Json,
) -> Result<Json, ScimError> {
    let changes = fields_of(body)?;
    let everything = ListQuery::default();
    change(
        state,
        client,
        from,
        id,
        if_match,
        &changes,
        Some(&everything),
    )
    .await?
    .ok_or_else(|| not_found(id))
}

/// PATCH /Groups/{id}. Groups can be large, so the answer is 204 without a body unless
/// the request asks for attributes (RFC 7644 §3.5.2 allows either).
pub async fn patch(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    body: &Json,
    query: &ListQuery,
) -> Result<Option<Json>, ScimError> {
    let changes = changes_of_patch(body)?;
    let asked = query.attributes.is_some() || query.excluded_attributes.is_some();
    change(
        state,
        client,
        from,
        id,
        if_match,
        &changes,
        asked.then_some(query),
    )
    .await
}

/// DELETE /Groups/{id}: its members lose the roles it alone gave them.
pub async fn delete(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ScimError> {
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    access.require(Action::ManageUsers)?;
    let group = current(&mut tx, client.org_id, id, if_match).await?;
    // Unmapped first, so its members' roles are brought in line while it still holds them.
    execute!(
        &mut tx,
        "UPDATE scim_groups SET role = NULL WHERE id = $1",
        group.id
    )?;
    let roles = sync_roles(
        &mut tx,
        client.org_id,
        Scope::MembersOf(group.id),
        access.rights(),
    )
    .await?;
    let members = member_count(&mut tx, group.id).await?;
    execute!(&mut tx, "DELETE FROM scim_groups WHERE id = $1", group.id)?;
    audit::record(
        &mut tx,
        &actor(client, from),
        Entry {
            action: "org.group_deleted",
            target_type: "scim_group",
            target_id: Some(group.id),
            target_label: Some(&group.display_name),
            org_id: Some(client.org_id),
            details: json!({"members": members, "roles": roles.details()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    display_name: String,
    external_id: Option<String>,
    role: Option<String>,
    member_count: i64,
}

impl From<SummaryRow> for ScimGroupSummary {
    fn from(r: SummaryRow) -> Self {
        ScimGroupSummary {
            id: r.id,
            display_name: r.display_name,
            external_id: r.external_id,
            role: r.role,
            member_count: r.member_count,
        }
    }
}

async fn summaries(
    ex: &mut impl Executor,
    org_id: Uuid,
    group_id: Option<Uuid>,
) -> Result<Vec<ScimGroupSummary>, DbError> {
    let rows: Vec<SummaryRow> = on_db!(ex, |c| sqlx::query_as(
        "SELECT g.id, g.display_name, g.external_id, g.role, \
         (SELECT COUNT(*) FROM scim_group_members gm WHERE gm.group_id = g.id) AS member_count \
         FROM scim_groups g WHERE g.org_id = $1 AND ($2 IS NULL OR g.id = $2) \
         ORDER BY g.display_key"
    )
    .bind(org_id)
    .bind(group_id)
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().map(ScimGroupSummary::from).collect())
}

/// The identity provider's groups, for the organization's administrators.
pub async fn list_for_admins(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<ScimGroupSummary>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ListUsers)?;
    Ok(summaries(&mut conn, org_id, None).await?)
}

/// The role a group may be mapped to: any the caller may give, but not Fulfillment
/// Contact, which the SCIM token could not give.
pub fn mappable_role(name: &str) -> ApiResult<Role> {
    let role = Role::parse(name).ok_or_else(|| {
        ApiError::field(
            "role",
            "unknown_role",
            crate::orgs::roles::unknown_role(name),
        )
    })?;
    if role == Role::FulfillmentContact {
        return Err(ApiError::field(
            "role",
            "not_mappable",
            "Fulfillment Contact is given by hand, never through a group.",
        ));
    }
    Ok(role)
}

/// Maps a group to a role (or unmaps it, with `None`); its members gain or lose the
/// role at once. The caller must be allowed to give both the old and the new role.
pub async fn map_to_role(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    group_id: Uuid,
    role: Option<&str>,
    from: &Client,
) -> ApiResult<ScimGroupSummary> {
    let role = role.map(mappable_role).transpose()?;
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::ManageUsers)?;
    let group = row_of(&mut tx, org_id, group_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let old = group.role.as_deref().and_then(Role::parse);
    for changed in [old, role].into_iter().flatten() {
        access.require(Action::AssignRole(changed))?;
    }
    let name = role.map(Role::as_str);
    execute!(
        &mut tx,
        "UPDATE scim_groups SET role = $1 WHERE id = $2",
        name,
        group_id
    )?;
    let roles = sync_roles(&mut tx, org_id, Scope::MembersOf(group_id), access.rights()).await?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.group_mapped",
            target_type: "scim_group",
            target_id: Some(group_id),
            target_label: Some(&group.display_name),
            org_id: Some(org_id),
            details: json!({"before": group.role, "after": name, "roles": roles.details()}),
        },
    )
    .await?;
    let summary = summaries(&mut tx, org_id, Some(group_id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(operations: Json) -> Json {
        json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
    }

    #[test]
    fn patches_become_member_changes_in_order() {
        let changes = changes_of_patch(&ops(json!([
            {"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b", "type": "User"}]},
            {"op": "remove", "path": "members[value eq \"a\" or value eq \"c\"]"},
            // Azure AD's form: the members to remove in the value.
            {"op": "Remove", "path": "members", "value": [{"value": "b"}]},
            {"op": "replace", "value": {"displayName": " Engineers ", "externalId": "g-1"}},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "d"}]},
            {"op": "remove", "path": "externalId"},
        ])))
        .expect("changes");
        assert_eq!(
            changes,
            GroupChanges {
                display_name: Some("Engineers".to_owned()),
                external_id: Some(None),
                members: vec![
                    MemberChange::Add(vec!["a".to_owned(), "b".to_owned()]),
                    MemberChange::Remove(vec!["a".to_owned(), "c".to_owned()]),
                    MemberChange::Remove(vec!["b".to_owned()]),
                    MemberChange::RemoveAll,
                    MemberChange::Add(vec!["d".to_owned()]),
                ],
            }
        );
        assert_eq!(
            changes_of_patch(&ops(json!([{"op": "remove", "path": "members"}])))
                .expect("changes")
                .members,
            vec![MemberChange::RemoveAll]
        );
    }

    #[test]
    fn a_move_back_within_a_request_is_no_move() {
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut moved = BTreeMap::new();
        record(&mut moved, ann, Moved::Left);
        record(&mut moved, ann, Moved::Joined);
        record(&mut moved, bob, Moved::Joined);
        record(&mut moved, bob, Moved::Left);
        record(&mut moved, bob, Moved::Joined);
        assert_eq!(
            moved.into_iter().collect::<Vec<_>>(),
            [(bob, Moved::Joined)]
        );
    }

    #[test]
    fn group_patches_that_cannot_apply_say_why() {
        for (operations, scim_type) in [
            (
                json!([{"op": "remove", "path": "displayName"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "displayName", "value": ""}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "displayName", "value": "x".repeat(201)}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "members", "value": [{"value": "g", "type": "Group"}]}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "members", "value": [{"display": "no value"}]}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "members", "value": "a"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
                "invalidFilter",
            ),
            (
                json!([{"op": "remove", "path": "members[value eq \"x\""}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "add", "path": "owner", "value": "x"}]),
                "invalidPath",
            ),
            (json!([{"op": "replace", "value": "x"}]), "invalidValue"),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([{"op": "copy", "path": "members"}]), "invalidSyntax"),
            (json!([]), "invalidSyntax"),
        ] {
            let error = changes_of_patch(&ops(operations.clone())).expect_err("refused");
            assert_eq!(error.scim_type, Some(scim_type), "{operations}");
        }
    }

    #[test]
    fn full_groups_replace_every_member() {
        let changes = fields_of(&json!({
            "schemas": [GROUP_SCHEMA],
            "DISPLAYNAME": "Sales",
            "members": [{"value": "a"}],
        }))
        .expect("fields");
        assert_eq!(changes.display_name.as_deref(), Some("Sales"));
        assert_eq!(changes.external_id, Some(None));
        assert_eq!(
            changes.members,
            vec![
                MemberChange::RemoveAll,
                MemberChange::Add(vec!["a".to_owned()])
            ]
        );
        for bad in [
            json!({"schemas": [GROUP_SCHEMA]}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": 7}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "a", "members": 3}),
            json!({"displayName": "a"}),
        ] {
            assert!(fields_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_filters_become_sql() {
        let sql = query::to_sql::<Groups>(r#"displayName eq "Sales""#, 2).expect("sql");
        assert_eq!(sql.sql, "g.display_key = $2");
        let member = "0190a5a0-0000-7000-8000-000000000001";
        let sql = query::to_sql::<Groups>(&format!(r#"id pr and members[value eq "{member}"]"#), 2)
            .expect("sql");
        assert_eq!(
            sql.sql,
            "(1 = 1 AND EXISTS (SELECT 1 FROM scim_group_members gm WHERE gm.group_id = g.id AND gm.account_id = $2))"
        );
        for bad in [
            r#"role eq "user""#,
            r#"members[display eq "x"]"#,
            r#"emails[value eq "x"]"#,
            r#"displayName gt 3"#,
        ] {
            assert!(query::to_sql::<Groups>(bad, 2).is_err(), "{bad}");
        }
        assert_eq!(
            mappable_role("Fulfillment Contact")
                .expect_err("refused")
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            mappable_role("co-administrator").ok(),
            Some(Role::CoAdministrator)
        );
    }
}
