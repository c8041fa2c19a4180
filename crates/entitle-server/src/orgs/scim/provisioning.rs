//! SCIM Users, write side: create (invited by email like any added person), replace,
//! patch and delete, under the same rules as the portal and with If-Match checked
//! against the resource's version.

use axum::http::StatusCode;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::{
    bad, check_schemas, field, query, text,
    users::{self, USER_SCHEMA},
    ScimClient, ScimError,
};
use crate::{
    app::{AppState, Client},
    audit::Actor,
    db::{now_ms, Tx},
    execute,
    identity::{
        flows::{self, Fields},
        person::{Email, PersonName},
        store as accounts,
    },
    mail::Email as Message,
    orgs::{access::OrgAccess, members, roles::Role, store},
};

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What a SCIM client sets on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFields {
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub active: bool,
    pub external_id: Option<String>,
    /// The primary email address.
    pub email: String,
}

/// The primary (else the first) address of an `emails` value.
fn primary_email(value: &Json) -> Result<Option<String>, ScimError> {
    match value {
        Json::Null => Ok(None),
        Json::Array(emails) => {
            let primary = emails
                .iter()
                .find(|e| field(e, "primary") == &Json::Bool(true))
                .or_else(|| emails.first());
            match primary {
                Some(e) => text(field(e, "value"), "emails.value"),
                None => Ok(None),
            }
        }
        _ => Err(bad("invalidValue", "emails must be a list.")),
    }
}

/// The fields of a full User resource (POST, PUT), and the email address it names.
pub fn fields_of(body: &Json) -> Result<(UserFields, Option<String>), ScimError> {
    check_schemas(body, USER_SCHEMA)?;
    let user_name = text(field(body, "userName"), "userName")?
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| bad("invalidValue", "userName is required."))?;
    let name = field(body, "name");
    let given_name = text(field(name, "givenName"), "name.givenName")?.unwrap_or_default();
    let family_name = text(field(name, "familyName"), "name.familyName")?.unwrap_or_default();
    let active = match field(body, "active") {
        Json::Null => true,
        Json::Bool(b) => *b,
        _ => return Err(bad("invalidValue", "active must be true or false.")),
    };
    let external_id = text(field(body, "externalId"), "externalId")?;
    let email = primary_email(field(body, "emails"))?;
    Ok((
        UserFields {
            user_name: user_name.trim().to_owned(),
            given_name,
            family_name,
            active,
            external_id,
            email: email.clone().unwrap_or_default(),
        },
        email,
    ))
}

fn checked_names(fields: &UserFields) -> Result<(PersonName, PersonName), ScimError> {
    let parse = |raw: &str, name: &str| {
        PersonName::parse(raw).map_err(|e| bad("invalidValue", format!("{name}: {}", e.message)))
    };
    Ok((
        parse(&fields.given_name, "name.givenName")?,
        parse(&fields.family_name, "name.familyName")?,
    ))
}

pub(super) fn actor(client: &ScimClient, from: &Client) -> Actor {
    Actor {
        id: None,
        label: Some(format!("scim token {}", client.token_id)),
        ip: Some(from.ip.clone()),
    }
}

/// The country new people get: that of the organization's first Fulfillment Contact.
async fn org_country(tx: &mut Tx, org_id: Uuid) -> Result<String, ScimError> {
    let contacts = store::members_with_role(tx, org_id, Role::FulfillmentContact.as_str()).await?;
    for id in contacts {
        if let Some(account) = accounts::account_by_id(tx, id).await? {
            return Ok(account.country);
        }
    }
    Ok("US".to_owned())
}

/// Writes userName and externalId; a userName taken in the organization is a conflict.
async fn set_scim_attributes(
    tx: &mut Tx,
    org_id: Uuid,
    account_id: Uuid,
    fields: &UserFields,
) -> Result<(), ScimError> {
    let updated = execute!(
        tx,
        "UPDATE org_members SET user_name = $1, user_name_key = $2, external_id = $3 \
         WHERE org_id = $4 AND account_id = $5",
        &fields.user_name,
        fields.user_name.to_lowercase(),
        &fields.external_id,
        org_id,
        account_id
    );
    match updated {
        Err(error) if error.is_unique_violation() => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!(
                "userName {} is taken in this organization.",
                fields.user_name
            ),
        )),
        other => other.map(|_| ()).map_err(ScimError::from),
    }
}

async fn resource_of(
    tx: &mut Tx,
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
) -> Result<Json, ScimError> {
    users::load(&mut *tx, org_id, id, &state.config.public_base())
        .await?
        .ok_or_else(|| users::not_found(&id.to_string()))
}

/// POST /Users: a new person is created without a password and invited by email; an
/// existing account without an organization joins.
pub async fn create(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    body: &Json,
) -> Result<Json, ScimError> {
    let (fields, email) = fields_of(body)?;
    let email = email.unwrap_or_else(|| fields.user_name.clone());
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    let org_id = access.org.id;
    let country = org_country(&mut tx, org_id).await?;
    let mut checked = Fields::default();
    let person = flows::parse_person(
        &mut checked,
        &email,
        &fields.given_name,
        &fields.family_name,
        &country,
    );
    checked.finish()?;
    let person = person.ok_or_else(|| bad("invalidValue", "The user is incomplete."))?;
    let actor = actor(client, from);
    let (account, invitation) =
        members::add_member(&mut tx, state, &access, &actor, &person, &[Role::User]).await?;
    set_scim_attributes(&mut tx, org_id, account.id, &fields).await?;
    if !fields.active {
        members::set_disabled(&mut tx, state, org_id, &account, true, now_ms()).await?;
    }
    let created = resource_of(&mut tx, state, org_id, account.id).await?;
    tx.commit().await?;
    if let Some(message) = invitation {
        state.mailer.send_in_background(message);
    }
    Ok(created)
}

/// The user as fields, loaded for a change, after checking If-Match.
async fn current(
    tx: &mut Tx,
    state: &AppState,
    org_id: Uuid,
    id: &str,
    if_match: Option<&str>,
) -> Result<(Uuid, UserFields, Json), ScimError> {
    let id = Uuid::parse_str(id).map_err(|_| users::not_found(id))?;
    let resource = resource_of(tx, state, org_id, id).await?;
    let version = resource["meta"]["version"].as_str().unwrap_or_default();
    if !query::matches_version(if_match, version) {
        return Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "The user has changed since that version: read it again.",
        ));
    }
    let fields = UserFields {
        user_name: resource["userName"].as_str().unwrap_or_default().to_owned(),
        given_name: resource["name"]["givenName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        family_name: resource["name"]["familyName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        active: resource["active"].as_bool().unwrap_or(true),
        external_id: resource["externalId"].as_str().map(str::to_owned),
        email: resource["emails"][0]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    Ok((id, fields, resource))
}

/// Applies `after` to a user that was `before` through the rules every entry point
/// shares, with one audit event. Returns the messages to send after committing.
async fn save(
    tx: &mut Tx,
    state: &AppState,
    access: &OrgAccess,
    id: Uuid,
    before: &UserFields,
    after: &UserFields,
    actor: &Actor,
) -> Result<Vec<Message>, ScimError> {
    let renamed = (before.given_name.as_str(), before.family_name.as_str())
        != (after.given_name.as_str(), after.family_name.as_str());
    let (first_name, last_name) = if renamed {
        let (given, family) = checked_names(after)?;
        (Some(given), Some(family))
    } else {
        (None, None)
    };
    let email = Email::parse(&after.email)
        .map_err(|e| bad("invalidValue", format!("emails.value: {}", e.message)))?;
    let change = members::MemberEdit {
        first_name,
        last_name,
        country: None,
        email: (email.as_str() != before.email).then_some(email),
        disabled: (before.active != after.active).then_some(!after.active),
    };
    let scim_attributes =
        |f: &UserFields| json!({"user_name": f.user_name, "external_id": f.external_id});
    let (_, messages) = members::edit(
        tx,
        state,
        access,
        actor,
        id,
        &change,
        Some((scim_attributes(before), scim_attributes(after))),
    )
    .await?;
    set_scim_attributes(tx, access.org.id, id, after).await?;
    Ok(messages)
}

/// PUT /Users/{id}: replaces what may change; the email address only in the person's
/// home organization.
pub async fn replace(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    body: &Json,
) -> Result<Json, ScimError> {
    let (mut after, email) = fields_of(body)?;
    change_user(state, client, from, id, if_match, |before| {
        if email.is_none() {
            after.email = before.email.clone();
        }
        Ok(after)
    })
    .await
}

/// Makes a user what `change` makes of it (after checking If-Match), through the rules
/// every entry point shares; answers with the user as it is then.
async fn change_user(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    change: impl FnOnce(&UserFields) -> Result<UserFields, ScimError>,
) -> Result<Json, ScimError> {
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    let org_id = access.org.id;
    let (id, before, _) = current(&mut tx, state, org_id, id, if_match).await?;
    let after = change(&before)?;
    let mut messages = Vec::new();
    if after != before {
        let actor = actor(client, from);
        messages = save(&mut tx, state, &access, id, &before, &after, &actor).await?;
    }
    let updated = resource_of(&mut tx, state, org_id, id).await?;
    tx.commit().await?;
    for message in messages {
        state.mailer.send_in_background(message);
    }
    Ok(updated)
}

/// Applies one PATCH operation's value at `path` (or, without a path, its members).
fn patch_value(
    fields: &mut UserFields,
    path: &str,
    value: &Json,
    remove: bool,
) -> Result<(), ScimError> {
    let path = path
        .strip_prefix(&format!("{USER_SCHEMA}:"))
        .unwrap_or(path)
        .to_ascii_lowercase();
    let required = |name: &str| {
        bad(
            "mutability",
            format!("{name} is required and cannot be removed."),
        )
    };
    match path.as_str() {
        "username" if remove => return Err(required("userName")),
        "username" => {
            fields.user_name = text(value, "userName")?
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| bad("invalidValue", "userName cannot be empty."))?
        }
        "name.givenname" if remove => return Err(required("name.givenName")),
        "name.givenname" => fields.given_name = text(value, "name.givenName")?.unwrap_or_default(),
        "name.familyname" if remove => return Err(required("name.familyName")),
        "name.familyname" => {
            fields.family_name = text(value, "name.familyName")?.unwrap_or_default()
        }
        "name" if remove => return Err(required("name")),
        "name" => {
            for (key, inner) in value
                .as_object()
                .ok_or_else(|| bad("invalidValue", "name is an object."))?
            {
                patch_value(fields, &format!("name.{key}"), inner, false)?;
            }
        }
        "active" if remove => fields.active = true,
        "active" => {
            fields.active = match value {
                Json::Bool(b) => *b,
                // Some identity providers send "False"/"True" as strings.
                Json::String(s) if s.eq_ignore_ascii_case("true") => true,
                Json::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(bad("invalidValue", "active must be true or false.")),
            }
        }
        "externalid" if remove => fields.external_id = None,
        "externalid" => fields.external_id = text(value, "externalId")?,
        "" => {
            for (key, inner) in value.as_object().ok_or_else(|| {
                bad(
                    "invalidValue",
                    "Without a path, the value is an object of attributes.",
                )
            })? {
                if !key.eq_ignore_ascii_case("schemas") {
                    patch_value(fields, key, inner, remove)?;
                }
            }
        }
        "emails" if remove => return Err(required("emails")),
        "emails" => {
            fields.email = primary_email(value)?
                .ok_or_else(|| bad("invalidValue", "emails needs an address."))?
        }
        "displayname" | "groups" | "roles" | "id" | "meta" => {
            return Err(bad(
                "mutability",
                format!("{path} cannot be changed through Users."),
            ))
        }
        other => {
            return Err(bad(
                "invalidPath",
                format!("Users have no attribute \"{other}\"."),
            ))
        }
    }
    Ok(())
}

/// The fields after a PATCH request's operations, in order.
pub fn apply_patch(mut fields: UserFields, body: &Json) -> Result<UserFields, ScimError> {
    check_schemas(body, PATCH_SCHEMA)?;
    let operations = field(body, "Operations")
        .as_array()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("invalidSyntax", "Operations must be a non-empty list."))?;
    for operation in operations {
        let op = field(operation, "op")
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = text(field(operation, "path"), "path")?.unwrap_or_default();
        let value = field(operation, "value");
        match op.as_str() {
            "add" | "replace" => patch_value(&mut fields, &path, value, false)?,
            "remove" if path.is_empty() => return Err(bad("noTarget", "remove needs a path.")),
            "remove" => patch_value(&mut fields, &path, value, true)?,
            other => {
                return Err(bad(
                    "invalidSyntax",
                    format!("\"{other}\" is not an operation: use add, replace or remove."),
                ))
            }
        }
    }
    Ok(fields)
}

/// PATCH /Users/{id}.
pub async fn patch(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
    body: &Json,
) -> Result<Json, ScimError> {
    change_user(state, client, from, id, if_match, |before| {
        apply_patch(before.clone(), body)
    })
    .await
}

/// DELETE /Users/{id}: the person leaves the organization (their account stays).
pub async fn delete(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ScimError> {
    let mut tx = state.db.begin().await?;
    let access = client.access(&mut tx).await?;
    let (id, _, _) = current(&mut tx, state, access.org.id, id, if_match).await?;
    let (account, had, _) = members::changeable_member(&mut tx, &access, id).await?;
    members::remove_member(&mut tx, access.org.id, &account, &had, &actor(client, from)).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> UserFields {
        UserFields {
            user_name: "ana@acme.test".to_owned(),
            given_name: "Ana".to_owned(),
            family_name: "Silva".to_owned(),
            active: true,
            external_id: Some("00u1".to_owned()),
            email: "ana@acme.test".to_owned(),
        }
    }

    fn ops(operations: Json) -> Json {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
    }

    #[test]
    fn patch_operations_apply_in_order_with_paths_or_without() {
        let patched = apply_patch(
            ana(),
            &ops(json!([
                {"op": "Replace", "path": "name.givenName", "value": "Anna"},
                {"op": "replace", "value": {"active": "False", "name": {"familyName": "Souza"}}},
                {"op": "remove", "path": "externalId"},
                {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName", "value": "anna@acme.test"},
            ])),
        )
        .expect("patched");
        assert_eq!(
            patched,
            UserFields {
                user_name: "anna@acme.test".to_owned(),
                given_name: "Anna".to_owned(),
                family_name: "Souza".to_owned(),
                active: false,
                external_id: None,
                email: "ana@acme.test".to_owned(),
            }
        );
    }

    #[test]
    fn patches_that_cannot_apply_say_why() {
        for (operations, scim_type) in [
            (json!([{"op": "remove", "path": "userName"}]), "mutability"),
            (
                json!([{"op": "replace", "path": "emails", "value": []}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "groups", "value": []}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "nickName", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "maybe"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "move", "path": "active", "value": true}]),
                "invalidSyntax",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([]), "invalidSyntax"),
        ] {
            let error = apply_patch(ana(), &ops(operations.clone())).expect_err("refused");
            assert_eq!(error.scim_type, Some(scim_type), "{operations}");
        }
        let wrong_schema = json!({"schemas": [USER_SCHEMA], "Operations": []});
        assert_eq!(
            apply_patch(ana(), &wrong_schema)
                .expect_err("refused")
                .scim_type,
            Some("invalidSyntax")
        );
    }

    #[test]
    fn full_resources_need_a_user_name_and_take_the_primary_email() {
        let (fields, email) = fields_of(&json!({
            "schemas": [USER_SCHEMA],
            "USERNAME": "okta-123",
            "name": {"givenName": "Ana", "familyName": "Silva"},
            "emails": [{"value": "home@x.test"}, {"value": "ana@acme.test", "primary": true}],
        }))
        .expect("fields");
        assert_eq!(fields.user_name, "okta-123");
        assert_eq!(email.as_deref(), Some("ana@acme.test"));
        assert!(fields.active);
        for bad in [
            json!({"schemas": [USER_SCHEMA]}),
            json!({"schemas": [USER_SCHEMA], "userName": " "}),
            json!({"schemas": [USER_SCHEMA], "userName": 7}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "yes"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": {"value": "a@b.test"}}),
            json!({"userName": "a"}),
        ] {
            assert!(fields_of(&bad).is_err(), "{bad}");
        }
    }
}
