//! The organization's provisioning page: the SCIM endpoint, the identity provider's
//! tokens (made and revoked by Fulfillment Contacts and Administrators) and its groups,
//! which administrators map to roles.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use entitle_proto::{ScimGroupSummary, ScimToken};
use serde::Deserialize;
use uuid::Uuid;

use super::{date, see_other, Done, OrgPage, PageResult};
use crate::{
    app::{AppState, Client},
    error::{ApiError, Path, Query},
    orgs::{
        roles::{Action, Role},
        scim::{self, groups},
    },
    portal::{form_problem, CheckedForm, Chrome, FormError, Page},
};

struct TokenRow {
    token: ScimToken,
    created: String,
    last_used: String,
    revoke: crate::portal::Confirmation,
}

struct GroupRow {
    group: ScimGroupSummary,
    /// The roles this viewer may map the group to: (stored name, label, selected).
    choices: Vec<(&'static str, &'static str, bool)>,
    /// Whether the viewer may change the group's current mapping at all.
    changeable: bool,
}

#[derive(Template)]
#[template(path = "pages/org_provisioning.html")]
struct ProvisioningPage {
    chrome: Chrome,
    org_id: Uuid,
    endpoint: String,
    manages_tokens: bool,
    tokens: Vec<TokenRow>,
    /// A token just made: its secret, shown this once.
    new_secret: Option<String>,
    token_name: String,
    groups: Vec<GroupRow>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn provisioning_page(
    state: &AppState,
    org: OrgPage,
    done: Option<&str>,
    new_secret: Option<String>,
    token_name: String,
    error: Option<ApiError>,
) -> PageResult {
    let account = &org.current.account;
    let manages_tokens = org.access.may(Action::ManageScimTokens);
    let tokens = if manages_tokens {
        scim::list_tokens(state, account, org.org_id()).await?
    } else {
        Vec::new()
    };
    let found = groups::list_for_admins(state, account, org.org_id()).await?;
    let mappable: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::FulfillmentContact && org.access.may(Action::AssignRole(*r)))
        .collect();
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = ProvisioningPage {
        chrome: org.chrome(state, "provisioning").await?,
        org_id: org.org_id(),
        endpoint: format!("{}/scim/v2", state.config.public_base()),
        manages_tokens,
        tokens: tokens
            .into_iter()
            .map(|token| TokenRow {
                created: date(token.created_at),
                last_used: token.last_used_at.map(date).unwrap_or_default(),
                revoke: revoke_confirmation(org.org_id(), token.id, &token.name),
                token,
            })
            .collect(),
        new_secret,
        token_name,
        groups: found
            .into_iter()
            .map(|group| {
                let current = group.role.as_deref().and_then(Role::parse);
                GroupRow {
                    changeable: current.is_none_or(|r| mappable.contains(&r)),
                    choices: mappable
                        .iter()
                        .map(|r| (r.as_str(), r.label(), Some(*r) == current))
                        .collect(),
                    group,
                }
            })
            .collect(),
        notice: org.notice(done),
        errors,
        form_error,
    };
    Ok(org.respond(&template))
}

fn revoke_confirmation(org_id: Uuid, token_id: Uuid, name: &str) -> crate::portal::Confirmation {
    crate::portal::Confirmation {
        title: format!("Revoke the SCIM token “{name}”?"),
        detail: "Your identity provider's requests with it are refused at once; give it a new token to keep provisioning.".to_owned(),
        button: "Revoke",
        action: format!("/orgs/{org_id}/provisioning/tokens/{token_id}/revoke"),
        fields: Vec::new(),
        back: here(org_id),
    }
}

fn here(org_id: Uuid) -> String {
    format!("/orgs/{org_id}/provisioning")
}

pub async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &here(org_id));
    org.access.require(Action::ListUsers)?;
    provisioning_page(&state, org, done.done.as_deref(), None, String::new(), None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
}

/// Makes a token and shows its secret on the page it answers with, never in a URL.
pub async fn create_token(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<TokenForm>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &here(org_id));
    match scim::create_token(&state, &org.current.account, org_id, &form.name, &client).await {
        Ok(token) => provisioning_page(&state, org, None, token.token, String::new(), None).await,
        Err(error) => provisioning_page(&state, org, None, None, form.name, Some(error)).await,
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, token_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &here(org_id));
    let account = org.current.account.clone();
    let name = scim::list_tokens(&state, &account, org_id)
        .await?
        .into_iter()
        .find(|t| t.id == token_id)
        .map(|t| t.name)
        .ok_or(ApiError::NotFound)?;
    if !crate::portal::confirmed(form.iter()) {
        let confirmation = revoke_confirmation(org_id, token_id, &name);
        return org.ask(&state, "provisioning", confirmation).await;
    }
    match scim::revoke_token(&state, &account, org_id, token_id, &client).await {
        Ok(()) => {
            let notice = format!(
                "Revoked the SCIM token “{name}”: requests with it are refused from now on."
            );
            Ok(org.redirect(&state, &here(org_id), &notice))
        }
        Err(error) => provisioning_page(&state, org, None, None, String::new(), Some(error)).await,
    }
}

#[derive(Deserialize)]
pub struct MapForm {
    #[serde(default)]
    role: String,
}

pub async fn map_group(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, group_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<MapForm>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &here(org_id));
    let role = Some(form.role.as_str()).filter(|r| !r.is_empty());
    let mapped = groups::map_to_role(
        &state,
        &org.current.account,
        org_id,
        group_id,
        role,
        &client,
    )
    .await;
    match mapped {
        Ok(_) => Ok(see_other(format!("{}?done=saved", here(org_id)))),
        Err(error) => provisioning_page(&state, org, None, None, String::new(), Some(error)).await,
    }
}
