//! SQL for organizations, memberships and member roles.

use entitle_proto::Membership;
use uuid::Uuid;

use super::roles::Role;

use crate::{
    db::{DbError, Executor},
    execute,
    identity::store::AccountRow,
    insert_many, on_db,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub auto_approval: bool,
}

pub async fn insert_org(
    ex: &mut impl Executor,
    org: &OrgRow,
    created_by: Uuid,
) -> Result<(), DbError> {
    on_db!(ex, |c| sqlx::query(
        "INSERT INTO orgs (id, name, created_at, created_by, name_key) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(org.id)
    .bind(&org.name)
    .bind(org.created_at)
    .bind(created_by)
    .bind(org.name.to_lowercase())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn org_by_id(ex: &mut impl Executor, id: Uuid) -> Result<Option<OrgRow>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT id, name, created_at, auto_approval FROM orgs WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await)?)
}

/// The search and sort keys of a member, from their account: see migration 0003.
#[derive(Debug, PartialEq, Eq)]
pub struct MemberKeys {
    pub email: String,
    pub email_domain: String,
    pub given_key: String,
    pub family_key: String,
}

impl MemberKeys {
    pub fn of(account: &AccountRow) -> MemberKeys {
        let (first, last) = (
            account.first_name.to_lowercase(),
            account.last_name.to_lowercase(),
        );
        MemberKeys {
            email: account.email.clone(),
            email_domain: account.email_domain().to_owned(),
            given_key: format!("{first} {last}"),
            family_key: format!("{last} {first}"),
        }
    }
}

pub async fn add_member(
    ex: &mut impl Executor,
    org_id: Uuid,
    account: &AccountRow,
    roles: &[&str],
    now: i64,
) -> Result<(), DbError> {
    add_members(ex, org_id, &[(account, roles)], now).await
}

/// Adds each account with its roles; accounts already in the organization keep their
/// membership and gain the roles.
pub async fn add_members(
    ex: &mut impl Executor,
    org_id: Uuid,
    members: &[(&AccountRow, &[&str])],
    now: i64,
) -> Result<(), DbError> {
    let keyed: Vec<(Uuid, MemberKeys)> = members
        .iter()
        .map(|(account, _)| (account.id, MemberKeys::of(account)))
        .collect();
    insert_many!(
        ex,
        "INSERT INTO org_members (org_id, account_id, created_at, email, email_domain, given_key, family_key, \
         user_name, user_name_key)",
        "ON CONFLICT (org_id, account_id) DO NOTHING",
        keyed,
        9,
        |q, member| q
            .bind(org_id)
            .bind(member.0)
            .bind(now)
            .bind(&member.1.email)
            .bind(&member.1.email_domain)
            .bind(&member.1.given_key)
            .bind(&member.1.family_key)
            .bind(&member.1.email)
            .bind(&member.1.email)
    )?;
    let roles: Vec<(Uuid, &str)> = members
        .iter()
        .flat_map(|(account, roles)| roles.iter().map(|role| (account.id, *role)))
        .collect();
    insert_many!(
        ex,
        "INSERT INTO org_member_roles (org_id, account_id, role)",
        "ON CONFLICT DO NOTHING",
        roles,
        3,
        |q, role| q.bind(org_id).bind(role.0).bind(role.1)
    )?;
    Ok(())
}

/// Brings a member's keys up to date after their account's name or email changed.
pub async fn rekey_member(ex: &mut impl Executor, account: &AccountRow) -> Result<(), DbError> {
    let keys = MemberKeys::of(account);
    execute!(
        ex,
        "UPDATE org_members SET email = $1, email_domain = $2, given_key = $3, family_key = $4 \
         WHERE account_id = $5",
        &keys.email,
        &keys.email_domain,
        &keys.given_key,
        &keys.family_key,
        account.id
    )?;
    Ok(())
}

pub async fn members_with_role(
    ex: &mut impl Executor,
    org_id: Uuid,
    role: &str,
) -> Result<Vec<Uuid>, DbError> {
    let rows: Vec<(Uuid,)> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT account_id FROM org_member_roles WHERE org_id = $1 AND role = $2 ORDER BY account_id"
    )
    .bind(org_id)
    .bind(role)
    .fetch_all(c)
    .await
    })?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Whether an account is a member (enabled or not) of an organization.
pub async fn is_member(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<bool, DbError> {
    Ok(membership(ex, org_id, account_id).await?.is_some())
}

pub async fn memberships_of(
    ex: &mut impl Executor,
    account_id: Uuid,
) -> Result<Vec<Membership>, DbError> {
    let rows: Vec<(Uuid, String, Option<String>)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT o.id, o.name, r.role FROM org_members m \
         JOIN orgs o ON o.id = m.org_id \
         LEFT JOIN org_member_roles r ON r.org_id = m.org_id AND r.account_id = m.account_id \
         WHERE m.account_id = $1 ORDER BY o.id, r.role"
    )
    .bind(account_id)
    .fetch_all(c)
    .await)?;
    let mut memberships: Vec<Membership> = Vec::new();
    for (org_id, org_name, role) in rows {
        if memberships.last().map(|m| m.org_id) != Some(org_id) {
            memberships.push(Membership {
                org_id,
                org_name,
                roles: Vec::new(),
            });
        }
        if let (Some(role), Some(last)) = (role, memberships.last_mut()) {
            last.roles.push(role);
        }
    }
    Ok(memberships)
}

/// The name of an organization whose only Fulfillment Contact is this account, if any.
pub async fn org_where_last_fulfillment_contact(
    ex: &mut impl Executor,
    account_id: Uuid,
) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT o.name FROM org_member_roles r JOIN orgs o ON o.id = r.org_id \
         WHERE r.account_id = $1 AND r.role = $2 \
           AND (SELECT COUNT(*) FROM org_member_roles r2 WHERE r2.org_id = r.org_id AND r2.role = $2) = 1 \
         LIMIT 1"
    )
    .bind(account_id)
    .bind(Role::FulfillmentContact.as_str())
    .fetch_optional(c)
    .await
    })?;
    Ok(row.map(|(name,)| name))
}

/// The roles an account holds in an organization.
pub async fn roles_of(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT role FROM org_member_roles WHERE org_id = $1 AND account_id = $2 ORDER BY role"
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// The email addresses of an organization's enabled Fulfillment Contacts and
/// Administrators: who is told about the organization's domains and access requests.
pub async fn administrator_emails(
    ex: &mut impl Executor,
    org_id: Uuid,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT DISTINCT a.email FROM org_member_roles r \
         JOIN org_members m ON m.org_id = r.org_id AND m.account_id = r.account_id \
         JOIN accounts a ON a.id = r.account_id \
         WHERE r.org_id = $1 AND r.role IN ($2, $3) AND m.disabled_at IS NULL ORDER BY a.email"
    )
    .bind(org_id)
    .bind(Role::FulfillmentContact.as_str())
    .bind(Role::Administrator.as_str())
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().map(|(email,)| email).collect())
}

/// The roles of each of `account_ids` in an organization, in one query.
pub async fn roles_of_members(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, DbError> {
    let rows: Vec<(Uuid, String)> = crate::fetch_in_chunks!(
        ex,
        "SELECT account_id, role FROM org_member_roles WHERE org_id = $1 AND account_id IN {values} ORDER BY role",
        account_ids,
        2,
        |query| query.bind(org_id)
    )?;
    let mut roles: std::collections::HashMap<Uuid, Vec<String>> = Default::default();
    for (id, role) in rows {
        roles.entry(id).or_default().push(role);
    }
    Ok(roles)
}

/// Whether `admin` manages users in an organization `member` belongs to.
pub async fn administers(
    ex: &mut impl Executor,
    admin_id: Uuid,
    member_id: Uuid,
) -> Result<bool, DbError> {
    let row: Option<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT m.org_id FROM org_members m \
         JOIN org_member_roles r ON r.org_id = m.org_id AND r.account_id = $1 \
         WHERE m.account_id = $2 AND r.role IN ($3, $4, $5) LIMIT 1"
    )
    .bind(admin_id)
    .bind(member_id)
    .bind(Role::FulfillmentContact.as_str())
    .bind(Role::Administrator.as_str())
    .bind(Role::CoAdministrator.as_str())
    .fetch_optional(c)
    .await)?;
    Ok(row.is_some())
}

/// Replaces a member's roles.
pub async fn set_roles(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
    roles: &[&str],
) -> Result<(), DbError> {
    execute!(
        ex,
        "DELETE FROM org_member_roles WHERE org_id = $1 AND account_id = $2",
        org_id,
        account_id
    )?;
    for role in roles {
        execute!(
            ex,
            "INSERT INTO org_member_roles (org_id, account_id, role) VALUES ($1, $2, $3)",
            org_id,
            account_id,
            *role
        )?;
    }
    Ok(())
}

/// Takes a member out of an organization, with their roles; it stops being their home.
pub async fn remove_member(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
    now: i64,
) -> Result<bool, DbError> {
    execute!(
        ex,
        "DELETE FROM org_member_roles WHERE org_id = $1 AND account_id = $2",
        org_id,
        account_id
    )?;
    let removed = execute!(
        ex,
        "DELETE FROM org_members WHERE org_id = $1 AND account_id = $2",
        org_id,
        account_id
    )?;
    execute!(
        ex,
        "UPDATE accounts SET home_org_id = NULL, updated_at = $1 WHERE id = $2 AND home_org_id = $3",
        now,
        account_id,
        org_id
    )?;
    Ok(removed == 1)
}

/// Whether an account is a member of an organization: `Some(disabled)`, or `None`.
pub async fn membership(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<Option<bool>, DbError> {
    let row: Option<(Option<i64>,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT disabled_at FROM org_members WHERE org_id = $1 AND account_id = $2"
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_optional(c)
    .await)?;
    Ok(row.map(|(disabled_at,)| disabled_at.is_some()))
}

pub async fn set_member_disabled(
    ex: &mut impl Executor,
    org_id: Uuid,
    account_id: Uuid,
    disabled_at: Option<i64>,
) -> Result<(), DbError> {
    execute!(
        ex,
        "UPDATE org_members SET disabled_at = $1 WHERE org_id = $2 AND account_id = $3",
        disabled_at,
        org_id,
        account_id
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_fold_case_in_every_script() {
        let account = AccountRow {
            id: Uuid::now_v7(),
            email: "jose@corp.example".into(),
            first_name: "JOSÉ".into(),
            last_name: "Ölçer-Παππάς".into(),
            country: "ES".into(),
            password_hash: None,
            status: "active".into(),
            email_verified: false,
            is_operator: false,
            home_org_id: None,
            tos_accepted_version: None,
            tos_accepted_at: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(
            MemberKeys::of(&account),
            MemberKeys {
                email: "jose@corp.example".into(),
                email_domain: "corp.example".into(),
                given_key: "josé ölçer-παππάς".into(),
                family_key: "ölçer-παππάς josé".into(),
            }
        );
    }
}
