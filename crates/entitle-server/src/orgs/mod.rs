//! Organizations. For now the operator creates them with their first Fulfillment
//! Contact; user management builds on this.

pub mod access;
pub mod api;
pub mod approval;
pub mod approval_api;
pub mod csv_import;
pub mod directory;
pub mod domains;
pub mod domains_api;
pub mod imports;
pub mod imports_api;
pub mod member_actions;
pub mod members;
pub mod roles;
pub mod scim;
pub mod store;

use std::collections::HashMap;

use entitle_proto::{CreateOrgRequest, Org};
use serde_json::json;
use uuid::Uuid;

use roles::Role;

use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::{now_ms, Tx},
    error::{ApiError, ApiResult},
    identity::{
        flows::{self, Fields},
        store::{self as accounts, AccountRow, TokenPurpose},
        tokens::{self, IssuedToken},
    },
    mail::Email as Message,
};

/// Creates an organization and its first Fulfillment Contact, who is created without a
/// password and invited to set one (or, if they already have an account, added).
pub async fn create_with_contact(
    state: &AppState,
    operator: &AccountRow,
    req: CreateOrgRequest,
    client: &Client,
) -> ApiResult<Org> {
    let mut fields = Fields::default();
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        fields.check::<()>(
            "name",
            Err(crate::identity::person::Invalid {
                code: "invalid_name",
                message: "Organization names are 1 to 200 characters.".to_owned(),
            }),
        );
    }
    let contact = &req.fulfillment_contact;
    let person = flows::parse_person(
        &mut fields,
        &contact.email,
        &contact.first_name,
        &contact.last_name,
        &contact.country,
    );
    fields.finish()?;
    let person = person.ok_or_else(|| anyhow::anyhow!("validated person missing"))?;
    let now = now_ms();
    let org = store::OrgRow {
        id: Uuid::now_v7(),
        name,
        created_at: now,
        auto_approval: false,
    };
    let actor = flows::actor_of(operator, client);
    let mut tx = state.db.begin().await?;
    store::insert_org(&mut tx, &org, operator.id).await?;
    let (contact, invitation) = add_person(
        &mut tx,
        state,
        &org,
        &person,
        &[Role::FulfillmentContact],
        &actor,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        Entry {
            action: "org.created",
            target_type: "org",
            target_id: Some(org.id),
            target_label: Some(&org.name),
            org_id: Some(org.id),
            details: json!({"name": org.name, "fulfillment_contact": contact.id}),
        },
    )
    .await?;
    tx.commit().await?;
    if let Some(message) = invitation {
        state.mailer.send_in_background(message);
    }
    Ok(Org {
        id: org.id,
        name: org.name,
        created_at: org.created_at,
        fulfillment_contacts: vec![contact.id],
        auto_approval: org.auto_approval,
    })
}

/// Adds a person to an organization with `roles`: their existing account, or a new one
/// without a password. Returns the account and, when they have no password yet, the
/// invitation to send once the transaction commits.
pub async fn add_person(
    tx: &mut Tx,
    state: &AppState,
    org: &store::OrgRow,
    person: &flows::Person,
    roles: &[Role],
    actor: &Actor,
) -> ApiResult<(AccountRow, Option<Message>)> {
    let mut added = add_people(tx, state, org, &[(person.clone(), roles.to_vec())], actor).await?;
    added
        .pop()
        .ok_or_else(|| anyhow::anyhow!("add_people returned nobody").into())
}

/// [`add_person`] for many people at once, in a handful of statements however many
/// there are (a committed import adds 1,000). Results are in the order of `people`.
pub async fn add_people(
    tx: &mut Tx,
    state: &AppState,
    org: &store::OrgRow,
    people: &[(flows::Person, Vec<Role>)],
    actor: &Actor,
) -> ApiResult<Vec<(AccountRow, Option<Message>)>> {
    let now = now_ms();
    let emails: Vec<&str> = people.iter().map(|(p, _)| p.email.as_str()).collect();
    let mut existing: HashMap<String, AccountRow> = accounts::accounts_by_emails(tx, &emails)
        .await?
        .into_iter()
        .map(|a| (a.email.clone(), a))
        .collect();
    let mut added = Vec::with_capacity(people.len());
    let mut created = Vec::new();
    for (person, _) in people {
        match existing.remove(person.email.as_str()) {
            Some(account) => added.push((account, false)),
            None => {
                let mut account = flows::new_account_row(person, None, now);
                account.home_org_id = Some(org.id);
                created.push(account.clone());
                added.push((account, true));
            }
        }
    }
    accounts::insert_accounts(tx, &created).await?;
    let joined: Vec<Uuid> = added
        .iter()
        .filter(|(_, new)| !new)
        .map(|(a, _)| a.id)
        .collect();
    accounts::set_home_org_if_none(tx, &joined, org.id, now).await?;
    let role_names: Vec<Vec<&str>> = people
        .iter()
        .map(|(_, roles)| roles.iter().map(|r| r.as_str()).collect())
        .collect();
    let members: Vec<(&AccountRow, &[&str])> = added
        .iter()
        .zip(&role_names)
        .map(|((account, _), names)| (account, names.as_slice()))
        .collect();
    store::add_members(tx, org.id, &members, now).await?;
    let entries: Vec<Entry> = added
        .iter()
        .zip(&role_names)
        .map(|((account, new), names)| Entry {
            action: if *new {
                "account.created"
            } else {
                "org.member_added"
            },
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org.id),
            details: json!({ "roles": names }),
        })
        .collect();
    audit::record_many(tx, actor, &entries).await?;
    let invited: Vec<(&AccountRow, IssuedToken)> = added
        .iter()
        .filter(|(account, _)| account.password_hash.is_none())
        .map(|(account, _)| (account, tokens::issue()))
        .collect();
    let ttl_ms = state.config.tokens.invitation_ttl_secs * 1000;
    let hashes: Vec<(&[u8], Uuid)> = invited
        .iter()
        .map(|(account, token)| (token.hash.as_slice(), account.id))
        .collect();
    accounts::insert_tokens(tx, &hashes, TokenPurpose::SetPassword, now, now + ttl_ms).await?;
    let mut invitations: HashMap<Uuid, Message> = invited
        .iter()
        .map(|(account, token)| {
            (
                account.id,
                flows::set_password_message(state, account, &token.secret, Some(&org.name)),
            )
        })
        .collect();
    Ok(added
        .into_iter()
        .map(|(account, _)| {
            let invitation = invitations.remove(&account.id);
            (account, invitation)
        })
        .collect())
}

/// An organization as its members and the operators see it; 404 for anyone else.
pub async fn visible_org(state: &AppState, viewer: &AccountRow, org_id: Uuid) -> ApiResult<Org> {
    let mut conn = state.db.reader().await?;
    let org = store::org_by_id(&mut conn, org_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !viewer.is_operator && !store::is_member(&mut conn, org_id, viewer.id).await? {
        return Err(ApiError::NotFound);
    }
    let fulfillment_contacts =
        store::members_with_role(&mut conn, org_id, Role::FulfillmentContact.as_str()).await?;
    Ok(Org {
        id: org.id,
        name: org.name,
        created_at: org.created_at,
        fulfillment_contacts,
        auto_approval: org.auto_approval,
    })
}
