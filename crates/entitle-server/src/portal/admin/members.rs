//! The member list with its filters and bulk actions, one member's page, and adding a
//! person. Every action calls the same rule functions as the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use entitle_proto::{
    AddMemberRequest, AuditEvent, BulkMemberAction, BulkMemberOutcome, BulkMemberRequest,
    MemberCounts, MemberDetail, OrgMember, UpdateMemberRequest,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{date, see_other, Done, OrgPage, PageResult};
use crate::{
    app::{AppState, Client},
    audit::{self, AuditQuery},
    error::{ApiError, Path, Query},
    orgs::{
        access::OrgAccess,
        member_actions, members,
        roles::{self, Action, Role},
        store,
    },
    portal::{
        confirmed, fields_to_resend, flash::Flash, form_problem, plural, CheckedForm, Chrome,
        Confirmation, FormError, Page,
    },
    words::name_list,
};

pub async fn org_home(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}"));
    Ok(if org.access.may(Action::ListUsers) {
        see_other(format!("/orgs/{org_id}/members"))
    } else {
        see_other(format!("/orgs/{org_id}/administrators"))
    })
}

/// A member's status as a word and the badge that shows it.
fn status_of(member: &OrgMember) -> (&'static str, &'static str) {
    match (member.disabled, member.registered) {
        (true, _) => ("Disabled", "disabled"),
        (false, true) => ("Active", "active"),
        (false, false) => ("Invited", "invited"),
    }
}

fn name_of(member: &OrgMember) -> String {
    format!("{} {}", member.first_name, member.last_name)
}

/// A role checkbox.
struct RoleChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
    assignable: bool,
}

fn role_choices(access: &OrgAccess, held: &[String]) -> Vec<RoleChoice> {
    Role::ALL
        .into_iter()
        .filter(|r| *r != Role::User)
        .map(|role| RoleChoice {
            value: role.as_str(),
            label: role.label(),
            checked: held.iter().any(|h| h == role.as_str()),
            assignable: access.may(Action::AssignRole(role)),
        })
        .collect()
}

/// Ticked `role_<name>` checkboxes.
fn ticked_roles(form: &HashMap<String, String>) -> Vec<String> {
    Role::ALL
        .into_iter()
        .filter(|r| form.contains_key(&format!("role_{}", r.as_str())))
        .map(|r| r.as_str().to_owned())
        .collect()
}

#[derive(Default)]
pub(in crate::portal) struct PersonForm {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
}

impl PersonForm {
    pub(in crate::portal) fn from_form(form: &HashMap<String, String>) -> PersonForm {
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        PersonForm {
            email: field("email"),
            first_name: field("first_name"),
            last_name: field("last_name"),
            country: field("country"),
        }
    }
}

// ---- The member list -----------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
pub struct MembersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    done: Option<String>,
}

const PAGE_SIZES: [i64; 4] = [25, 50, 100, 200];
const DEFAULT_PAGE_SIZE: i64 = 50;

impl MembersQuery {
    fn limit(&self) -> i64 {
        self.limit
            .filter(|l| PAGE_SIZES.contains(l))
            .unwrap_or(DEFAULT_PAGE_SIZE)
    }

    fn sort(&self) -> &str {
        self.sort.as_deref().unwrap_or("email")
    }

    fn order(&self) -> &str {
        self.order.as_deref().unwrap_or("asc")
    }

    /// The list's address with this query, changed by `change`; the offset starts over
    /// unless `change` sets it.
    fn href(&self, org_id: Uuid, change: impl FnOnce(&mut MembersQuery)) -> String {
        let mut query = MembersQuery {
            offset: None,
            done: None,
            ..self.clone()
        };
        change(&mut query);
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", query.q.as_str()),
            ("status", &query.status),
            ("role", &query.role),
            ("domain", &query.domain),
        ] {
            if !value.is_empty() {
                params.append_pair(name, value);
            }
        }
        if query.sort() != "email" || query.order() != "asc" {
            params.append_pair("sort", query.sort());
            params.append_pair("order", query.order());
        }
        if query.limit() != DEFAULT_PAGE_SIZE {
            params.append_pair("limit", &query.limit().to_string());
        }
        if let Some(offset) = query.offset.filter(|o| *o > 0) {
            params.append_pair("offset", &offset.to_string());
        }
        let params = params.finish();
        if params.is_empty() {
            format!("/orgs/{org_id}/members")
        } else {
            format!("/orgs/{org_id}/members?{params}")
        }
    }

    fn listing(&self) -> members::MemberQuery {
        let given = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        members::MemberQuery {
            q: self.q.clone(),
            sort: self.sort.clone(),
            order: self.order.clone(),
            offset: self.offset,
            limit: Some(self.limit()),
            status: given(&self.status),
            role: given(&self.role),
            domain: given(&self.domain),
        }
    }
}

struct MemberRow {
    account_id: Uuid,
    name: String,
    email: String,
    roles: String,
    status: &'static str,
    badge: &'static str,
    joined: String,
    invited: bool,
}

/// A filter to click, with how many it shows.
struct FilterLink {
    label: String,
    href: String,
    current: bool,
}

/// An option of a filter's select.
struct FilterOption {
    value: String,
    label: String,
    selected: bool,
}

/// A column heading that sorts by its column.
struct SortHeader {
    label: &'static str,
    href: String,
    /// `ascending` or `descending` on the column the list is sorted by.
    sorted: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "pages/org_members.html")]
struct MembersPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    query: MembersQuery,
    list_href: String,
    status_links: Vec<FilterLink>,
    role_options: Vec<FilterOption>,
    domain_options: Vec<FilterOption>,
    page_sizes: Vec<FilterOption>,
    headers: Vec<SortHeader>,
    members: Vec<MemberRow>,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<String>,
    next: Option<String>,
    export_href: String,
    /// Why a search found nobody, when that may be how search works.
    hint: Option<String>,
    manages: bool,
    bulk_roles: Vec<FilterOption>,
    notice: Option<String>,
    warning: Option<String>,
    form_error: Option<FormError>,
}

fn status_links(org_id: Uuid, query: &MembersQuery, counts: &MemberCounts) -> Vec<FilterLink> {
    let count = |status: &str| counts.statuses.get(status).copied().unwrap_or(0);
    [
        ("", "All", counts.total),
        ("active", "Active", count("active")),
        ("invited", "Invited", count("invited")),
        ("disabled", "Disabled", count("disabled")),
    ]
    .into_iter()
    .map(|(status, label, n)| FilterLink {
        label: format!("{label} ({n})"),
        href: query.href(org_id, |q| q.status = status.to_owned()),
        current: query.status == status,
    })
    .collect()
}

fn role_options(query: &MembersQuery, counts: &MemberCounts) -> Vec<FilterOption> {
    let mut options = vec![FilterOption {
        value: String::new(),
        label: "Any role".to_owned(),
        selected: query.role.is_empty(),
    }];
    options.extend(Role::ALL.into_iter().map(|role| FilterOption {
        value: role.as_str().to_owned(),
        label: format!(
            "{} ({})",
            role.label(),
            counts.roles.get(role.as_str()).copied().unwrap_or(0)
        ),
        selected: query.role == role.as_str(),
    }));
    options
}

fn domain_options(query: &MembersQuery, counts: &MemberCounts) -> Vec<FilterOption> {
    let mut options = vec![FilterOption {
        value: String::new(),
        label: "Any domain".to_owned(),
        selected: query.domain.is_empty(),
    }];
    options.extend(counts.domains.iter().map(|d| FilterOption {
        value: d.domain.clone(),
        label: format!("{} ({})", d.domain, d.members),
        selected: query.domain.eq_ignore_ascii_case(&d.domain),
    }));
    if !query.domain.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(FilterOption {
            value: query.domain.clone(),
            label: query.domain.clone(),
            selected: true,
        });
    }
    options
}

fn sort_headers(org_id: Uuid, query: &MembersQuery) -> Vec<SortHeader> {
    [
        ("last_name", "Name"),
        ("email", "Email address"),
        ("joined", "Joined"),
    ]
    .into_iter()
    .map(|(column, label)| {
        let current = query.sort() == column;
        let descending = query.order() == "desc";
        SortHeader {
            label,
            href: query.href(org_id, |q| {
                q.sort = Some(column.to_owned());
                q.order = Some(
                    if current && !descending {
                        "desc"
                    } else {
                        "asc"
                    }
                    .to_owned(),
                );
            }),
            sorted: current.then_some(if descending {
                "descending"
            } else {
                "ascending"
            }),
        }
    })
    .collect()
}

/// Why a search may have found nobody: it matches the start of words.
fn search_hint(query: &MembersQuery, total: i64) -> Option<String> {
    let q = query.q.trim();
    (total == 0 && !q.is_empty()).then(|| {
        format!(
            "Search matches the start of an email address, its domain, a first name or a last name: “{q}” finds “{q}…” but not “…{q}”. Try the first letters of a name or address."
        )
    })
}

async fn members_page(
    state: &AppState,
    org: OrgPage,
    query: MembersQuery,
    with_counts: bool,
) -> PageResult {
    let org_id = org.org_id();
    let account = &org.current.account;
    let (page, form_error) = match members::list(state, account, org_id, &query.listing()).await {
        Ok(page) => (page, None),
        // A hand-edited address with a bad filter: show everyone, and say why.
        Err(error @ ApiError::Validation(_)) => {
            let everyone = members::MemberQuery {
                limit: Some(DEFAULT_PAGE_SIZE),
                ..members::MemberQuery::default()
            };
            let page = members::list(state, account, org_id, &everyone).await?;
            let problem = FormError {
                message: error.detail(),
                request_id: None,
            };
            (page, Some(problem))
        }
        Err(error) => return Err(error.into()),
    };
    // Searching as one types swaps the list alone (htmx): the filters' counts around it
    // stay as they are, so they are not counted again.
    let counts = if with_counts {
        members::counts(state, account, org_id).await?
    } else {
        MemberCounts::default()
    };
    let limit = query.limit();
    let shown = page.members.len() as i64;
    let manages = org.access.may(Action::ManageUsers);
    let template = MembersPage {
        chrome: org.chrome(state, "members").await?,
        org_id,
        org_name: org.access.org.name.clone(),
        list_href: query.href(org_id, |_| {}),
        status_links: status_links(org_id, &query, &counts),
        role_options: role_options(&query, &counts),
        domain_options: domain_options(&query, &counts),
        page_sizes: PAGE_SIZES
            .iter()
            .map(|size| FilterOption {
                value: size.to_string(),
                label: format!("{size} per page"),
                selected: *size == limit,
            })
            .collect(),
        headers: sort_headers(org_id, &query),
        members: page
            .members
            .iter()
            .map(|m| {
                let (status, badge) = status_of(m);
                MemberRow {
                    account_id: m.account_id,
                    name: name_of(m),
                    email: m.email.clone(),
                    roles: roles::labels(&m.roles),
                    status,
                    badge,
                    joined: date(m.joined_at),
                    invited: !m.registered && !m.disabled,
                }
            })
            .collect(),
        total: page.total,
        first: page.offset + 1,
        last: page.offset + shown,
        previous: (page.offset > 0)
            .then(|| query.href(org_id, |q| q.offset = Some((page.offset - limit).max(0)))),
        next: (page.offset + shown < page.total)
            .then(|| query.href(org_id, |q| q.offset = Some(page.offset + limit))),
        export_href: query.href(org_id, |q| q.limit = None).replacen(
            &format!("/orgs/{org_id}/members"),
            &format!("/api/v1/orgs/{org_id}/members.csv"),
            1,
        ),
        hint: search_hint(&query, page.total),
        manages,
        bulk_roles: Role::ALL
            .into_iter()
            .filter(|r| org.access.may(Action::AssignRole(*r)))
            .map(|r| FilterOption {
                value: r.as_str().to_owned(),
                label: r.label().to_owned(),
                selected: false,
            })
            .collect(),
        notice: org.notice(query.done.as_deref()),
        warning: org.warning(),
        form_error,
        query,
    };
    Ok(org.respond(&template))
}

pub async fn members(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(query): Query<MembersQuery>,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let here = query.href(org_id, |_| {});
    let org = org_page!(&state, page, org_id, &here);
    let swaps_the_list_alone = headers.contains_key("hx-request");
    members_page(&state, org, query, !swaps_the_list_alone).await
}

// ---- Bulk actions --------------------------------------------------------------------

/// How a bulk action reads: its verb for the question, and for what was done.
fn bulk_words(action: BulkMemberAction, role: Option<Role>, org: &str) -> (String, String) {
    let role = role.map(Role::label).unwrap_or("a role");
    match action {
        BulkMemberAction::Disable => ("Disable".into(), "Disabled".into()),
        BulkMemberAction::Enable => ("Enable".into(), "Enabled".into()),
        BulkMemberAction::Remove => (format!("Remove from {org}"), format!("Removed from {org}")),
        BulkMemberAction::AddRole => (format!("Give {role} to"), format!("Gave {role} to")),
        BulkMemberAction::RemoveRole => (format!("Take {role} from"), format!("Took {role} from")),
        BulkMemberAction::ResendInvitation => (
            "Send a new invitation to".into(),
            "Sent a new invitation to".into(),
        ),
    }
}

fn bulk_action(raw: &str) -> Option<BulkMemberAction> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
}

/// The summary of a bulk action: what was done to whom, and what was refused and why.
fn bulk_summary(outcome: &BulkMemberOutcome, done_words: &str) -> Flash {
    let done: Vec<String> = outcome.done.iter().map(|d| d.name.clone()).collect();
    let mut text = if done.is_empty() {
        "Nobody was changed.".to_owned()
    } else {
        format!(
            "{done_words} {}: {}.",
            plural(done.len() as i64, "person", "people"),
            name_list(&done, 10)
        )
    };
    if outcome.refused.is_empty() {
        return Flash::Notice(text);
    }
    let refused: Vec<String> = outcome
        .refused
        .iter()
        .take(10)
        .map(|r| {
            let who = r.name.clone().unwrap_or_else(|| "Someone".to_owned());
            format!("{who}: {}", r.reason.trim_end_matches('.'))
        })
        .collect();
    text.push_str(&format!(
        " Not changed ({}): {}.",
        outcome.refused.len(),
        refused.join("; ")
    ));
    if outcome.refused.len() > refused.len() {
        text.push_str(" …");
    }
    Flash::Warning(text)
}

/// The bulk form: `action`, `role`, a `member` per ticked row, and the list to go back
/// to. Removing and disabling ask first, naming everyone.
pub async fn bulk(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<Vec<(String, String)>>,
) -> PageResult {
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let back = match super::super::safe_next(field("back")) {
        Some(back) if back.starts_with(&format!("/orgs/{org_id}/members")) => back.to_owned(),
        _ => format!("/orgs/{org_id}/members"),
    };
    let org = org_page!(&state, page, org_id, &back);
    let ids: Vec<Uuid> = form
        .iter()
        .filter(|(n, _)| n == "member")
        .filter_map(|(_, v)| Uuid::parse_str(v).ok())
        .collect();
    let action = bulk_action(field("action"));
    let role = Some(field("role"))
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let Some(action) = action.filter(|_| !ids.is_empty()) else {
        let text = "Tick the people to act on, then choose what to do.";
        return Ok(org.redirect_with(&state, &back, &Flash::Warning(text.to_owned())));
    };
    let (ask, did) = bulk_words(
        action,
        role.as_deref().and_then(Role::parse),
        &org.access.org.name,
    );
    let destructive = matches!(action, BulkMemberAction::Disable | BulkMemberAction::Remove);
    if destructive && !confirmed(form.iter().map(|(n, v)| (n, v))) {
        let names = member_names(&state, org_id, &ids).await?;
        let confirmation = Confirmation {
            title: format!("{ask} {}?", plural(ids.len() as i64, "person", "people")),
            detail: name_list(&names, 50),
            button: if action == BulkMemberAction::Remove {
                "Remove"
            } else {
                "Disable"
            },
            action: format!("/orgs/{org_id}/members/bulk"),
            fields: fields_to_resend(form.iter().map(|(n, v)| (n, v))),
            back,
        };
        return org.ask(&state, "members", confirmation).await;
    }
    let request = BulkMemberRequest {
        action,
        role,
        account_ids: ids,
    };
    let account = org.current.account.clone();
    match member_actions::bulk(&state, &account, org_id, &request, &client).await {
        Ok(outcome) => Ok(org.redirect_with(&state, &back, &bulk_summary(&outcome, &did))),
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable)) => Err(error.into()),
        Err(error) => Ok(org.redirect_with(&state, &back, &Flash::Warning(error.detail()))),
    }
}

/// "Ann Alder (ann@acme.example)" for each id that is a member of the organization.
async fn member_names(state: &AppState, org_id: Uuid, ids: &[Uuid]) -> PageResult<Vec<String>> {
    let mut conn = state.db.reader().await?;
    let mut names = Vec::with_capacity(ids.len());
    for id in ids {
        if store::membership(&mut conn, org_id, *id).await?.is_none() {
            continue;
        }
        if let Some(a) = crate::identity::store::account_by_id(&mut conn, *id).await? {
            names.push(format!("{} {} ({})", a.first_name, a.last_name, a.email));
        }
    }
    Ok(names)
}

// ---- Adding a person -----------------------------------------------------------------

#[derive(Template)]
#[template(path = "pages/org_member_new.html")]
struct AddPersonPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    with_email: bool,
    person: PersonForm,
    roles: Vec<RoleChoice>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
    notice: Option<String>,
}

async fn add_person_page(
    state: &AppState,
    org: OrgPage,
    person: PersonForm,
    held: &[String],
    error: Option<ApiError>,
) -> PageResult {
    org.access.require(Action::ManageUsers)?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = AddPersonPage {
        chrome: org.chrome(state, "members").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        with_email: true,
        person,
        roles: role_choices(&org.access, held),
        errors,
        form_error,
        notice: org.notice(None),
    };
    Ok(org.respond(&template))
}

pub async fn add_person_form(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/members/new"));
    add_person_page(&state, org, PersonForm::default(), &[], None).await
}

pub async fn add_member(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/members/new"));
    let person = PersonForm::from_form(&form);
    let request = AddMemberRequest {
        email: person.email.clone(),
        first_name: person.first_name.clone(),
        last_name: person.last_name.clone(),
        country: person.country.clone(),
        roles: ticked_roles(&form),
    };
    let account = org.current.account.clone();
    match members::add(&state, &account, org_id, &request, &client).await {
        Ok(member) => {
            let told = if member.registered {
                "They have been told by email."
            } else {
                "They have been emailed an invitation to set their password."
            };
            let notice = format!(
                "Added {} ({}) to {}. {told}",
                name_of(&member),
                member.email,
                org.access.org.name
            );
            let path = format!("/orgs/{org_id}/members/{}", member.account_id);
            Ok(org.redirect(&state, &path, &notice))
        }
        Err(error) => add_person_page(&state, org, person, &request.roles, Some(error)).await,
    }
}

// ---- One member ----------------------------------------------------------------------

/// A recent event about the member, as the page lists it.
struct EventLine {
    at: String,
    actor: String,
    action: String,
}

/// What the viewer may do to this member: each is offered only when the rules allow it.
#[derive(Default)]
struct Offers {
    edit: bool,
    resend_invitation: bool,
    password_reset: bool,
    sign_out_everywhere: bool,
    disable: bool,
    remove: bool,
}

#[derive(Template)]
#[template(path = "pages/org_member.html")]
struct MemberPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    detail: MemberDetail,
    name: String,
    role_lines: Vec<(String, &'static str)>,
    status: &'static str,
    badge: &'static str,
    /// "United Kingdom (GB)".
    country: String,
    joined: String,
    last_sign_in: String,
    invitation: Option<(String, String, bool)>,
    events: Vec<EventLine>,
    events_href: String,
    offers: Offers,
    /// Why some actions are not offered, when it is not obvious.
    not_offered: Option<&'static str>,
    with_email: bool,
    person: PersonForm,
    roles: Vec<RoleChoice>,
    remove: Confirmation,
    disable: Confirmation,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn offers(
    state: &AppState,
    org: &OrgPage,
    detail: &MemberDetail,
) -> PageResult<(Offers, Option<&'static str>)> {
    let member = &detail.member;
    if !org.access.may(Action::ManageUsers) {
        return Ok((Offers::default(), None));
    }
    if member.account_id == org.current.account.id {
        return Ok((
            Offers::default(),
            Some("You cannot change your own membership here: ask another administrator, or use your account page."),
        ));
    }
    let held: Vec<Role> = member.roles.iter().filter_map(|r| Role::parse(r)).collect();
    if org.access.require_over(&held).is_err() {
        return Ok((
            Offers::default(),
            Some(
                "Their role is above yours: only someone of their rank or higher can change them.",
            ),
        ));
    }
    let last_contact = if held.contains(&Role::FulfillmentContact) {
        let mut conn = state.db.reader().await?;
        store::members_with_role(&mut conn, org.org_id(), Role::FulfillmentContact.as_str())
            .await?
            .len()
            <= 1
    } else {
        false
    };
    let active = !member.disabled;
    Ok((
        Offers {
            edit: true,
            resend_invitation: !member.registered && active,
            password_reset: member.registered && active && detail.home,
            sign_out_everywhere: detail.home && member.registered,
            disable: !last_contact,
            remove: !last_contact,
        },
        last_contact.then_some(
            "They are the organization's only Fulfillment Contact: make someone else one before disabling or removing them.",
        ),
    ))
}

fn remove_confirmation(org: &OrgPage, member: &OrgMember) -> Confirmation {
    Confirmation {
        title: format!(
            "Remove {} ({}) from {}?",
            name_of(member),
            member.email,
            org.access.org.name
        ),
        detail: "Their account stays, but they lose their roles here and are signed out of this organization's applications.".to_owned(),
        button: "Remove",
        action: format!("/orgs/{}/members/{}/remove", org.org_id(), member.account_id),
        fields: Vec::new(),
        back: format!("/orgs/{}/members/{}", org.org_id(), member.account_id),
    }
}

fn disable_confirmation(org: &OrgPage, member: &OrgMember) -> Confirmation {
    Confirmation {
        title: format!("Disable {} ({})?", name_of(member), member.email),
        detail: "They are signed out everywhere and their applications stop; they cannot sign in until enabled again.".to_owned(),
        button: "Disable",
        action: format!("/orgs/{}/members/{}/access", org.org_id(), member.account_id),
        fields: vec![("disabled".to_owned(), "true".to_owned())],
        back: format!("/orgs/{}/members/{}", org.org_id(), member.account_id),
    }
}

/// A readable name for an audit action ("org.roles_changed" → "Roles changed").
pub(super) fn action_words(action: &str) -> String {
    super::audit::ACTION_NAMES
        .iter()
        .find(|(code, _)| *code == action)
        .map(|(_, words)| (*words).to_owned())
        .unwrap_or_else(|| action.to_owned())
}

async fn member_page(
    state: &AppState,
    org: OrgPage,
    account_id: Uuid,
    done: Option<&str>,
    edited: Option<PersonForm>,
    error: Option<ApiError>,
) -> PageResult {
    let detail =
        member_actions::detail(state, &org.current.account, org.org_id(), account_id).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let member = &detail.member;
    let events = if org.access.may(Action::ViewAudit) {
        let query = AuditQuery {
            target_id: Some(account_id),
            limit: Some(10),
            ..AuditQuery::default()
        };
        let mut conn = state.db.reader().await?;
        audit::page(&mut conn, &query, Some(org.org_id()))
            .await?
            .events
    } else {
        Vec::new()
    };
    let (offers, not_offered) = offers(state, &org, &detail).await?;
    let person = edited.unwrap_or_else(|| PersonForm {
        email: member.email.clone(),
        first_name: member.first_name.clone(),
        last_name: member.last_name.clone(),
        country: member.country.clone(),
    });
    let (status, badge) = status_of(member);
    let now = crate::db::now_ms();
    let template = MemberPage {
        chrome: org.chrome(state, "members").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        name: name_of(member),
        role_lines: role_lines(&detail),
        status,
        badge,
        country: crate::identity::person::CountryCode::describe(&member.country),
        joined: date(member.joined_at),
        last_sign_in: detail
            .last_sign_in_at
            .map(date)
            .unwrap_or_else(|| "Never".to_owned()),
        invitation: detail
            .invitation
            .as_ref()
            .map(|i| (date(i.sent_at), date(i.expires_at), i.expires_at <= now)),
        events: events.iter().map(event_line).collect(),
        events_href: format!("/orgs/{}/audit?target={account_id}", org.org_id()),
        offers,
        not_offered,
        with_email: detail.home,
        person,
        roles: role_choices(&org.access, &member.roles),
        remove: remove_confirmation(&org, member),
        disable: disable_confirmation(&org, member),
        notice: org.notice(done),
        errors,
        form_error,
        detail,
    };
    Ok(org.respond(&template))
}

/// Each role with where it came from.
fn role_lines(detail: &MemberDetail) -> Vec<(String, &'static str)> {
    let roles = if detail.member.roles.is_empty() {
        vec![Role::User.as_str().to_owned()]
    } else {
        detail.member.roles.clone()
    };
    roles
        .iter()
        .map(|name| {
            let label = Role::parse(name)
                .map(Role::label)
                .unwrap_or(name)
                .to_owned();
            let source = if detail.roles_from_groups.contains(name) {
                "from a SCIM group"
            } else {
                "given by hand"
            };
            (label, source)
        })
        .collect()
}

fn event_line(event: &AuditEvent) -> EventLine {
    EventLine {
        at: date(event.at),
        actor: event.actor.clone().unwrap_or_else(|| "system".to_owned()),
        action: action_words(&event.action),
    }
}

pub async fn member(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    Query(done): Query<Done>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    member_page(&state, org, account_id, done.done.as_deref(), None, None).await
}

pub async fn edit_member(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    let person = PersonForm::from_form(&form);
    let request = UpdateMemberRequest {
        first_name: Some(person.first_name.clone()),
        last_name: Some(person.last_name.clone()),
        country: Some(person.country.clone()),
        email: form.get("email").cloned(),
        disabled: None,
    };
    let account = org.current.account.clone();
    match members::update(&state, &account, org_id, account_id, &request, &client).await {
        Ok(member) if member.pending_email.is_some() => {
            Ok(see_other(format!("{here}?done=email_pending")))
        }
        Ok(_) => Ok(see_other(format!("{here}?done=saved"))),
        Err(error) => member_page(&state, org, account_id, None, Some(person), Some(error)).await,
    }
}

pub async fn set_member_roles(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    let roles = ticked_roles(&form);
    let account = org.current.account.clone();
    match members::set_roles(&state, &account, org_id, account_id, &roles, &client).await {
        Ok(_) => Ok(see_other(format!("{here}?done=saved"))),
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

pub async fn set_member_access(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    let disabled = match form.get("disabled").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_form",
                "The form is malformed: disabled is true or false.",
            )
            .into())
        }
    };
    let account = org.current.account.clone();
    if disabled && !confirmed(form.iter()) {
        let (member, _) = members::get(&state, &account, org_id, account_id).await?;
        let confirmation = disable_confirmation(&org, &member);
        return org.ask(&state, "members", confirmation).await;
    }
    let request = UpdateMemberRequest {
        disabled: Some(disabled),
        ..UpdateMemberRequest::default()
    };
    match members::update(&state, &account, org_id, account_id, &request, &client).await {
        Ok(member) => {
            let notice = if disabled {
                format!(
                    "Disabled {} ({}) and signed them out everywhere.",
                    name_of(&member),
                    member.email
                )
            } else {
                format!("Enabled {} ({}).", name_of(&member), member.email)
            };
            Ok(org.redirect(&state, &here, &notice))
        }
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    let (member, _) = members::get(&state, &account, org_id, account_id).await?;
    if !confirmed(form.iter()) {
        let confirmation = remove_confirmation(&org, &member);
        return org.ask(&state, "members", confirmation).await;
    }
    match members::remove(&state, &account, org_id, account_id, &client).await {
        Ok(()) => {
            let notice = format!(
                "Removed {} ({}) from {}.",
                name_of(&member),
                member.email,
                org.access.org.name
            );
            Ok(org.redirect(&state, &format!("/orgs/{org_id}/members"), &notice))
        }
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

/// The one-click actions that send mail or end sessions (`invitation`,
/// `password-reset`, `sign-out-everywhere`): after each, back to where the form came
/// from (the member's page, or the list).
pub async fn member_action(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id, which)): Path<(Uuid, Uuid, String)>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let back = form
        .get("back")
        .and_then(|b| super::super::safe_next(b))
        .filter(|b| b.starts_with(&format!("/orgs/{org_id}/")))
        .map(str::to_owned)
        .unwrap_or_else(|| here.clone());
    let org = org_page!(&state, page, org_id, &here);
    let account = org.current.account.clone();
    let named = |a: crate::identity::store::AccountRow| {
        format!("{} {} ({})", a.first_name, a.last_name, a.email)
    };
    let result = match which.as_str() {
        "invitation" => {
            member_actions::resend_invitation(&state, &account, org_id, account_id, &client)
                .await
                .map(|a| format!("Sent a new invitation to {}.", named(a)))
        }
        "password-reset" => {
            member_actions::send_password_reset(&state, &account, org_id, account_id, &client)
                .await
                .map(|a| format!("Sent {} a link to set a new password.", named(a)))
        }
        "sign-out-everywhere" => {
            members::sign_out_everywhere(&state, &account, account_id, &client)
                .await
                .map(|sessions| {
                    format!(
                        "Signed them out everywhere ({}).",
                        plural(sessions as i64, "session ended", "sessions ended")
                    )
                })
        }
        _ => return Err(ApiError::NotFound.into()),
    };
    match result {
        Ok(notice) => Ok(org.redirect(&state, &back, &notice)),
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable)) => Err(error.into()),
        Err(ApiError::TooManyRequests { .. }) => {
            let text = "Too many messages went to this address in the last hour; try again later.";
            Ok(org.redirect_with(&state, &back, &Flash::Warning(text.to_owned())))
        }
        Err(error) => Ok(org.redirect_with(&state, &back, &Flash::Warning(error.detail()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticked_roles_are_known_roles_only() {
        let form: HashMap<String, String> = [
            ("role_administrator", "on"),
            ("role_root", "on"),
            ("email", "x@y.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(ticked_roles(&form), vec!["administrator".to_owned()]);
    }

    #[test]
    fn list_addresses_keep_filters_and_drop_defaults() {
        let org = Uuid::nil();
        let query = MembersQuery {
            q: "mül".into(),
            status: "invited".into(),
            offset: Some(50),
            ..MembersQuery::default()
        };
        assert_eq!(
            query.href(org, |_| {}),
            format!("/orgs/{org}/members?q=m%C3%BCl&status=invited")
        );
        let sorted = query.href(org, |q| {
            q.sort = Some("joined".into());
            q.order = Some("desc".into());
            q.limit = Some(100);
        });
        assert!(sorted.ends_with("status=invited&sort=joined&order=desc&limit=100"));
        assert_eq!(
            bulk_action("resend_invitation"),
            Some(BulkMemberAction::ResendInvitation)
        );
        assert_eq!(bulk_action("drop_table"), None);
    }

    #[test]
    fn bulk_summaries_say_what_was_done_and_what_was_not() {
        let outcome = BulkMemberOutcome {
            done: vec![entitle_proto::BulkMemberDone {
                account_id: Uuid::nil(),
                email: "ann@acme.example".into(),
                name: "Ann Alder".into(),
            }],
            refused: vec![entitle_proto::BulkMemberRefusal {
                account_id: Uuid::nil(),
                email: None,
                name: None,
                code: "not_found".into(),
                reason: "Not a member of this organization.".into(),
            }],
        };
        assert_eq!(
            bulk_summary(&outcome, "Disabled"),
            Flash::Warning(
                "Disabled 1 person: Ann Alder. Not changed (1): Someone: Not a member of this organization."
                    .into()
            )
        );
        let clean = BulkMemberOutcome {
            refused: Vec::new(),
            ..outcome
        };
        assert_eq!(
            bulk_summary(&clean, "Disabled"),
            Flash::Notice("Disabled 1 person: Ann Alder.".into())
        );
    }
}
