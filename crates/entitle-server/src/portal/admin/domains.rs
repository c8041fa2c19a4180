//! The organization's domains and Auto Approval, its queue of access requests, and the
//! page where a person asks to join an organization.

use std::collections::HashMap;

use askama::Template;
use axum::{extract::State, response::IntoResponse};
use entitle_proto::{AccessDecision, AccessRequest, JoinableOrg, NewAccessRequest, OrgDomain};
use serde::Deserialize;
use uuid::Uuid;

use super::{date, see_other, Done, OrgPage, PageResult};
use crate::{
    app::{AppState, Client},
    error::{ApiError, Path, Query},
    orgs::{
        approval, domains,
        roles::{Action, Role},
    },
    portal::{confirmed, form_problem, render, CheckedForm, Chrome, Confirmation, FormError, Page},
};

struct DomainRow {
    domain: OrgDomain,
    checked: String,
    remove: Confirmation,
}

fn remove_confirmation(org_id: Uuid, domain: &OrgDomain) -> Confirmation {
    Confirmation {
        title: format!("Remove the domain {}?", domain.domain),
        detail: "People of this domain are no longer recognized as yours: they cannot join through it, and Auto Approval stops for them. Members stay members.".to_owned(),
        button: "Remove",
        action: format!("/orgs/{org_id}/domains/{}/remove", domain.id),
        fields: Vec::new(),
        back: format!("/orgs/{org_id}/domains"),
    }
}

#[derive(Template)]
#[template(path = "pages/org_domains.html")]
struct DomainsPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    domains: Vec<DomainRow>,
    any_verified: bool,
    auto_approval: bool,
    manages_domains: bool,
    claimed: String,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn domains_page(
    state: &AppState,
    org: OrgPage,
    done: Option<&str>,
    claimed: String,
    error: Option<ApiError>,
) -> PageResult {
    let found = domains::list(state, &org.current.account, org.org_id()).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = DomainsPage {
        chrome: org.chrome(state, "domains").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        any_verified: found.iter().any(|d| d.verified_at.is_some()),
        auto_approval: org.access.org.auto_approval,
        manages_domains: org.access.may(Action::ManageDomains),
        domains: found
            .into_iter()
            .map(|domain| DomainRow {
                checked: domain.checked_at.map(date).unwrap_or_default(),
                remove: remove_confirmation(org.org_id(), &domain),
                domain,
            })
            .collect(),
        claimed,
        notice: org.notice(done),
        errors,
        form_error,
    };
    Ok(org.respond(&template))
}

pub async fn list(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/domains"));
    domains_page(&state, org, done.done.as_deref(), String::new(), None).await
}

#[derive(Deserialize)]
pub struct ClaimForm {
    #[serde(default)]
    domain: String,
}

pub async fn claim(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<ClaimForm>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/domains"));
    match domains::claim(&state, &org.current.account, org_id, &form.domain, &client).await {
        Ok(_) => Ok(see_other(format!("/orgs/{org_id}/domains?done=claimed"))),
        Err(error) => domains_page(&state, org, None, form.domain, Some(error)).await,
    }
}

pub async fn verify(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, domain_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/domains"));
    match domains::verify(&state, &org.current.account, org_id, domain_id, &client).await {
        Ok(_) => Ok(see_other(format!("/orgs/{org_id}/domains?done=verified"))),
        // What the lookup found is shown next to the domain.
        Err(ApiError::Validation(_)) => Ok(see_other(format!("/orgs/{org_id}/domains"))),
        Err(error) => domains_page(&state, org, None, String::new(), Some(error)).await,
    }
}

pub async fn remove(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, domain_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/domains");
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    let domain = domains::list(&state, &account, org_id)
        .await?
        .into_iter()
        .find(|d| d.id == domain_id)
        .ok_or(ApiError::NotFound)?;
    if !confirmed(form.iter()) {
        let confirmation = remove_confirmation(org_id, &domain);
        return org.ask(&state, "domains", confirmation).await;
    }
    match domains::remove(&state, &account, org_id, domain_id, &client).await {
        Ok(()) => {
            let notice = format!("Removed the domain {}.", domain.domain);
            Ok(org.redirect(&state, &here, &notice))
        }
        Err(error) => domains_page(&state, org, None, String::new(), Some(error)).await,
    }
}

#[derive(Deserialize)]
pub struct AutoApprovalForm {
    enabled: bool,
}

pub async fn auto_approval(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<AutoApprovalForm>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/domains"));
    let result =
        approval::set_auto_approval(&state, &org.current.account, org_id, form.enabled, &client)
            .await;
    match result {
        Ok(_) => Ok(see_other(format!("/orgs/{org_id}/domains?done=saved"))),
        Err(error) => domains_page(&state, org, None, String::new(), Some(error)).await,
    }
}

struct RequestRow {
    request: AccessRequest,
    asked: String,
    /// How the request came, in words.
    came: String,
    decided: String,
    roles: String,
}

/// A role the approver may give, as a checkbox.
struct RoleOption {
    value: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "pages/org_access_requests.html")]
struct RequestsPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    requests: Vec<RequestRow>,
    history: Vec<RequestRow>,
    roles: Vec<RoleOption>,
    pending_count: String,
    notice: Option<String>,
    form_error: Option<FormError>,
}

fn request_row(request: AccessRequest) -> RequestRow {
    let came = match &request.named_administrator {
        Some(admin) => format!("They named {admin} as an administrator of yours."),
        None => format!(
            "Their address is in your verified domain {}.",
            request.email.rsplit('@').next().unwrap_or_default()
        ),
    };
    RequestRow {
        asked: date(request.created_at),
        came,
        decided: request.decided_at.map(date).unwrap_or_default(),
        roles: crate::orgs::roles::labels(&request.roles),
        request,
    }
}

async fn requests_page(
    state: &AppState,
    org: OrgPage,
    done: Option<&str>,
    error: Option<ApiError>,
) -> PageResult {
    let account = &org.current.account;
    let pending = approval::list_requests(state, account, org.org_id(), None).await?;
    let mut history =
        approval::list_requests(state, account, org.org_id(), Some("approved")).await?;
    history.extend(approval::list_requests(state, account, org.org_id(), Some("rejected")).await?);
    history.sort_by_key(|r| std::cmp::Reverse(r.decided_at));
    history.truncate(50);
    let form_error = match error {
        Some(error) => form_problem(error)?.1,
        None => None,
    };
    let template = RequestsPage {
        chrome: org.chrome(state, "access-requests").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        pending_count: crate::words::plural(pending.len() as i64, "request is", "requests are"),
        requests: pending.into_iter().map(request_row).collect(),
        history: history.into_iter().map(request_row).collect(),
        roles: Role::ALL
            .into_iter()
            .filter(|r| *r != Role::User && org.access.may(Action::AssignRole(*r)))
            .map(|r| RoleOption {
                value: r.as_str(),
                label: r.label(),
            })
            .collect(),
        notice: org.notice(done),
        form_error,
    };
    Ok(org.respond(&template))
}

pub async fn requests(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/access-requests");
    let org = org_page!(&state, page, org_id, &here);
    requests_page(&state, org, done.done.as_deref(), None).await
}

async fn decide(
    state: &AppState,
    page: Page,
    client: &Client,
    org_id: Uuid,
    request_id: Uuid,
    approve: bool,
    form: &[(String, String)],
) -> PageResult {
    let here = format!("/orgs/{org_id}/access-requests");
    let org = org_page!(state, page, org_id, &here);
    let decision = AccessDecision {
        reason: form
            .iter()
            .find(|(name, _)| name == "reason")
            .map(|(_, value)| value.clone()),
        roles: form
            .iter()
            .filter(|(name, _)| name == "role")
            .map(|(_, value)| value.clone())
            .collect(),
    };
    let account = org.current.account.clone();
    let result = approval::decide(
        state, &account, org_id, request_id, approve, &decision, client,
    )
    .await;
    match result {
        Ok(request) => {
            let who = format!(
                "{} {} ({})",
                request.first_name, request.last_name, request.email
            );
            let notice = if approve {
                let roles = if request.roles.is_empty() {
                    "a User".to_owned()
                } else {
                    format!("a User and {}", crate::orgs::roles::labels(&request.roles))
                };
                format!("Approved {who}: they are {roles} now and have been told.")
            } else {
                format!("Rejected {who}; they have been told.")
            };
            Ok(org.redirect(state, &here, &notice))
        }
        Err(error) => requests_page(state, org, None, Some(error)).await,
    }
}

pub async fn approve(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, request_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<Vec<(String, String)>>,
) -> PageResult {
    decide(&state, page, &client, org_id, request_id, true, &form).await
}

pub async fn reject(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, request_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<Vec<(String, String)>>,
) -> PageResult {
    decide(&state, page, &client, org_id, request_id, false, &form).await
}

#[derive(Template)]
#[template(path = "pages/join.html")]
struct JoinPage {
    chrome: Chrome,
    joinable: Vec<JoinableOrg>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn join_page(
    state: &AppState,
    page: Page,
    notice: Option<String>,
    error: Option<ApiError>,
) -> PageResult {
    let Some(current) = page.current.clone() else {
        return Ok(see_other("/sign-in?next=%2Fjoin".to_owned()));
    };
    let joinable = approval::joinable(state, &current.account).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = JoinPage {
        chrome: page.chrome(),
        joinable,
        notice,
        errors,
        form_error,
    };
    Ok((page.jar, render(&template)).into_response())
}

pub async fn join(State(state): State<AppState>, page: Page) -> PageResult {
    join_page(&state, page, None, None).await
}

#[derive(Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    org_id: Option<Uuid>,
    #[serde(default)]
    administrator_email: Option<String>,
    #[serde(default)]
    message: String,
}

pub async fn ask_to_join(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<JoinForm>,
) -> PageResult {
    let Some(current) = page.current.clone() else {
        return Ok(see_other("/sign-in?next=%2Fjoin".to_owned()));
    };
    let request = NewAccessRequest {
        org_id: form.org_id,
        administrator_email: form.administrator_email.filter(|e| !e.trim().is_empty()),
        message: form.message,
    };
    match approval::request_access(&state, &current.account, &request, &client).await {
        Ok(()) => {
            let sent = "Sent. If that organization exists, its administrators have your request; you will hear from them by email.";
            join_page(&state, page, Some(sent.to_owned()), None).await
        }
        Err(error) => join_page(&state, page, None, Some(error)).await,
    }
}
