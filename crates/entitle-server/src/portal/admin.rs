//! The organization pages of the admin portal: members, one member, bulk registration
//! and its preview, the audit log and who the administrators are. Every page calls the
//! same rules as the JSON API; these handlers only read forms and render.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{Multipart, State},
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use entitle_proto::{AddMemberRequest, ImportBatch, OrgMember, UpdateMemberRequest};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    csrf, form_problem, render, CheckedForm, Chrome, FormError, OrgChrome, Page, PageError,
};
use crate::{
    app::{AppState, Client},
    audit::{self, AuditQuery},
    error::{ApiError, Path, Query},
    identity::session::CurrentSession,
    orgs::{
        access::OrgAccess,
        approval, imports, members,
        roles::{Action, Role},
    },
};

type PageResult = Result<Response, PageError>;

/// A signed-in person on one of an organization's pages.
struct OrgPage {
    page: Page,
    current: CurrentSession,
    access: OrgAccess,
}

impl OrgPage {
    /// Signs in (coming back here) and accepts the terms first; 404 for outsiders.
    async fn open(
        state: &AppState,
        page: Page,
        org_id: Uuid,
        here: &str,
    ) -> Result<Result<OrgPage, Response>, PageError> {
        let current = match super::signed_in_with_terms(state, &page, here).await? {
            Ok(current) => current,
            Err(detour) => return Ok(Err(detour)),
        };
        let mut conn = state.db.reader().await?;
        let access = OrgAccess::of(&mut conn, &current.account, org_id).await?;
        Ok(Ok(OrgPage {
            page,
            current,
            access,
        }))
    }

    /// The layout of a page about to render, with the header's required actions as they
    /// stand now: form posts that only redirect never compute them.
    async fn chrome(&self, state: &AppState, section: &'static str) -> Result<Chrome, PageError> {
        let required = if self.access.may(Action::ListUsers) {
            let mut conn = state.db.reader().await?;
            approval::required_actions_of(&mut conn, &self.access).await?
        } else {
            Vec::new()
        };
        let role = if self.access.operator {
            "Operator".to_owned()
        } else {
            self.access
                .roles
                .iter()
                .min()
                .map(|r| r.label().to_owned())
                .unwrap_or_else(|| Role::User.label().to_owned())
        };
        Ok(Chrome {
            org: Some(OrgChrome {
                id: self.access.org.id,
                name: self.access.org.name.clone(),
                role,
                manages: self.access.may(Action::ManageUsers),
                section,
                required,
            }),
            ..self.page.chrome()
        })
    }

    fn org_id(&self) -> Uuid {
        self.access.org.id
    }

    fn respond(self, template: &impl Template) -> Response {
        (self.page.jar, render(template)).into_response()
    }
}

/// Opens the organization page or answers with where to go first.
macro_rules! org_page {
    ($state:expr, $page:expr, $org_id:expr, $here:expr) => {
        match OrgPage::open($state, $page, $org_id, $here).await? {
            Ok(org) => org,
            Err(response) => return Ok(response),
        }
    };
}

pub mod domains;
pub mod provisioning;

pub(super) fn see_other(path: String) -> Response {
    Redirect::to(&path).into_response()
}

pub(super) fn date(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// What a finished action says on the page it returns to; a fixed list, so a link
/// cannot put words on the page.
pub(super) fn notice_text(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "added" => "Added. They have been emailed a link to set their password.",
            "saved" => "Saved.",
            "email_pending" => "Saved. The new address must be confirmed from the message sent to it; until then they sign in with the old one, which has been told.",
            "removed" => "Removed from the organization.",
            "disabled" => "Disabled and signed out everywhere.",
            "enabled" => "Enabled.",
            "committed" => "Committed: everyone valid was added and invited.",
            "claimed" => "Claimed. Publish the TXT record, then verify.",
            "verified" => "Verified.",
            "approved" => "Approved: they are a User now and have been told.",
            "rejected" => "Rejected; they have been told.",
            "revoked" => "Revoked: requests with that token are refused from now on.",
            "created" => "Created. Its first Fulfillment Contact has been emailed.",
            "disabled_client" => "Disabled: its tokens are revoked and it gets no more.",
            "rotated" => "Rotated: new tokens are signed with the new keys.",
            _ => return None,
        }
        .to_owned(),
    )
}

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    pub(super) done: Option<String>,
}

// ---- Members -------------------------------------------------------------------------

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

struct MemberRow {
    account_id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    roles: String,
    status: &'static str,
    joined: String,
}

fn status_of(member: &OrgMember) -> &'static str {
    match (member.disabled, member.registered) {
        (true, _) => "Disabled",
        (false, true) => "Active",
        (false, false) => "Invited",
    }
}

fn role_labels(names: &[String]) -> String {
    crate::orgs::roles::labels(names)
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
pub(super) struct PersonForm {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
}

impl PersonForm {
    pub(super) fn from_form(form: &HashMap<String, String>) -> PersonForm {
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        PersonForm {
            email: field("email"),
            first_name: field("first_name"),
            last_name: field("last_name"),
            country: field("country"),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/org_members.html")]
struct MembersPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    q: String,
    sort: String,
    order: String,
    sorts: [(&'static str, &'static str); 4],
    members: Vec<MemberRow>,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<String>,
    next: Option<String>,
    manages: bool,
    with_email: bool,
    person: PersonForm,
    roles: Vec<RoleChoice>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

#[derive(Deserialize, Default)]
pub struct MembersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    done: Option<String>,
}

const PAGE_SIZE: i64 = 50;

async fn members_page(
    state: &AppState,
    org: OrgPage,
    query: MembersQuery,
    person: PersonForm,
    error: Option<ApiError>,
) -> PageResult {
    let listing = members::MemberQuery {
        q: query.q.clone(),
        sort: query.sort.clone(),
        order: query.order.clone(),
        offset: query.offset,
        limit: Some(PAGE_SIZE),
    };
    let page = members::list(state, &org.current.account, org.org_id(), &listing).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let sort = query.sort.clone().unwrap_or_else(|| "email".to_owned());
    let order = query.order.clone().unwrap_or_else(|| "asc".to_owned());
    let link = |offset: i64| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &query.q)
            .append_pair("sort", &sort)
            .append_pair("order", &order)
            .append_pair("offset", &offset.to_string())
            .finish();
        format!("/orgs/{}/members?{query}", org.org_id())
    };
    let shown = page.members.len() as i64;
    let template = MembersPage {
        chrome: org.chrome(state, "members").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        q: query.q.clone(),
        sorts: [
            ("email", "Email address"),
            ("first_name", "First name"),
            ("last_name", "Last name"),
            ("joined", "Joined"),
        ],
        members: page
            .members
            .iter()
            .map(|m| MemberRow {
                account_id: m.account_id,
                email: m.email.clone(),
                first_name: m.first_name.clone(),
                last_name: m.last_name.clone(),
                roles: role_labels(&m.roles),
                status: status_of(m),
                joined: date(m.joined_at),
            })
            .collect(),
        total: page.total,
        first: page.offset + 1,
        last: page.offset + shown,
        previous: (page.offset > 0).then(|| link((page.offset - PAGE_SIZE).max(0))),
        next: (page.offset + shown < page.total).then(|| link(page.offset + PAGE_SIZE)),
        manages: org.access.may(Action::ManageUsers),
        with_email: true,
        person,
        roles: role_choices(&org.access, &[]),
        notice: notice_text(query.done.as_deref()),
        errors,
        form_error,
        sort,
        order,
    };
    Ok(org.respond(&template))
}

pub async fn members(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(query): Query<MembersQuery>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/members"));
    members_page(&state, org, query, PersonForm::default(), None).await
}

pub async fn add_member(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/members"));
    let person = PersonForm::from_form(&form);
    let request = AddMemberRequest {
        email: person.email.clone(),
        first_name: person.first_name.clone(),
        last_name: person.last_name.clone(),
        country: person.country.clone(),
        roles: ticked_roles(&form),
    };
    match members::add(&state, &org.current.account, org_id, &request, &client).await {
        Ok(_) => Ok(see_other(format!("/orgs/{org_id}/members?done=added"))),
        Err(error) => members_page(&state, org, MembersQuery::default(), person, Some(error)).await,
    }
}

// ---- One member ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "pages/org_member.html")]
struct MemberPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    member: OrgMember,
    role_labels: String,
    status: &'static str,
    /// "United Kingdom (GB)".
    country: String,
    joined: String,
    home: bool,
    manages: bool,
    with_email: bool,
    person: PersonForm,
    roles: Vec<RoleChoice>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn member_page(
    state: &AppState,
    org: OrgPage,
    account_id: Uuid,
    done: Option<&str>,
    edited: Option<PersonForm>,
    error: Option<ApiError>,
) -> PageResult {
    let (member, home) =
        members::get(state, &org.current.account, org.org_id(), account_id).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let person = edited.unwrap_or_else(|| PersonForm {
        email: member.email.clone(),
        first_name: member.first_name.clone(),
        last_name: member.last_name.clone(),
        country: member.country.clone(),
    });
    let template = MemberPage {
        chrome: org.chrome(state, "members").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        role_labels: if member.roles.is_empty() {
            Role::User.label().to_owned()
        } else {
            role_labels(&member.roles)
        },
        status: status_of(&member),
        country: crate::identity::person::CountryCode::describe(&member.country),
        joined: date(member.joined_at),
        home,
        manages: org.access.may(Action::ManageUsers),
        with_email: home,
        person,
        roles: role_choices(&org.access, &member.roles),
        notice: notice_text(done),
        errors,
        form_error,
        member,
    };
    Ok(org.respond(&template))
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
    let result = members::update(
        &state,
        &org.current.account,
        org_id,
        account_id,
        &request,
        &client,
    )
    .await;
    match result {
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
    let result = members::set_roles(
        &state,
        &org.current.account,
        org_id,
        account_id,
        &roles,
        &client,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(format!("{here}?done=saved"))),
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

#[derive(Deserialize)]
pub struct AccessForm {
    disabled: bool,
}

pub async fn set_member_access(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(form): CheckedForm<AccessForm>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    let request = UpdateMemberRequest {
        disabled: Some(form.disabled),
        ..UpdateMemberRequest::default()
    };
    let result = members::update(
        &state,
        &org.current.account,
        org_id,
        account_id,
        &request,
        &client,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(format!(
            "{here}?done={}",
            if form.disabled { "disabled" } else { "enabled" }
        ))),
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, account_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/members/{account_id}");
    let org = org_page!(&state, page, org_id, &here);
    match members::remove(&state, &org.current.account, org_id, account_id, &client).await {
        Ok(()) => Ok(see_other(format!("/orgs/{org_id}/members?done=removed"))),
        Err(error) => member_page(&state, org, account_id, None, None, Some(error)).await,
    }
}

// ---- Bulk registration ---------------------------------------------------------------

struct BatchRow {
    id: Uuid,
    file_name: String,
    uploaded: String,
    summary: String,
    state: String,
}

/// "998 valid, 2 duplicate, 1 removed".
fn counts_summary(batch: &ImportBatch) -> String {
    let parts: Vec<String> = batch
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(status, n)| format!("{n} {}", status.replace('_', " ")))
        .collect();
    if parts.is_empty() {
        "no rows".to_owned()
    } else {
        parts.join(", ")
    }
}

#[derive(Template)]
#[template(path = "pages/org_imports.html")]
struct ImportsPage {
    chrome: Chrome,
    org_id: Uuid,
    batches: Vec<BatchRow>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn imports_page(state: &AppState, org: OrgPage, error: Option<ApiError>) -> PageResult {
    let batches = imports::list(state, &org.current.account, org.org_id()).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = ImportsPage {
        chrome: org.chrome(state, "imports").await?,
        org_id: org.org_id(),
        batches: batches
            .iter()
            .map(|b| BatchRow {
                id: b.id,
                file_name: b.file_name.clone(),
                uploaded: date(b.created_at),
                summary: counts_summary(b),
                state: match b.committed_at {
                    Some(at) => format!("Committed {}", date(at)),
                    None => "Waiting for review".to_owned(),
                },
            })
            .collect(),
        notice: None,
        errors,
        form_error,
    };
    Ok(org.respond(&template))
}

pub async fn imports(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/imports"));
    imports_page(&state, org, None).await
}

/// The upload: a multipart form with the CSRF token and the file. The token is checked
/// before the file is read.
pub async fn upload(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(org_id): Path<Uuid>,
    mut multipart: Multipart,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/imports"));
    let malformed = |e: axum::extract::multipart::MultipartError| {
        PageError(if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request(
                "invalid_form",
                format!("The upload is malformed: {}", e.body_text()),
            )
        })
    };
    let mut token_checked = false;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf_token") => {
                let token = field.text().await.map_err(malformed)?;
                if !csrf::verify(&state, &org.page.jar, &token) {
                    return Err(super::csrf_failed().into());
                }
                token_checked = true;
            }
            Some("file") if token_checked => {
                let name = field
                    .file_name()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or("upload.csv")
                    .to_owned();
                let bytes = field.bytes().await.map_err(malformed)?;
                file = Some((name, bytes.to_vec()));
            }
            _ => return Err(super::csrf_failed().into()),
        }
    }
    let Some((name, bytes)) = file.filter(|(_, bytes)| !bytes.is_empty()) else {
        let error = ApiError::field("file", "missing_file", "Choose a CSV file to upload.");
        return imports_page(&state, org, Some(error)).await;
    };
    match imports::stage(&state, &org.current.account, org_id, &name, &bytes, &client).await {
        Ok(batch) => Ok(see_other(format!("/orgs/{org_id}/imports/{}", batch.id))),
        Err(error) => imports_page(&state, org, Some(error)).await,
    }
}

/// A staged row with how the preview shows its status.
struct PreviewRow {
    row: entitle_proto::ImportRow,
    css: &'static str,
    status: &'static str,
}

fn preview_row(row: &entitle_proto::ImportRow) -> PreviewRow {
    let (css, status) = if row.removed {
        ("removed", "Removed")
    } else {
        match row.status.as_str() {
            "valid" => ("valid", "Valid"),
            "duplicate" => ("duplicate", "Duplicate in this file"),
            "already_member" => ("already_member", "Already a member"),
            "other_organization" => ("other_organization", "Belongs to another organization"),
            _ => ("invalid", "Cannot be added"),
        }
    };
    PreviewRow {
        row: row.clone(),
        css,
        status,
    }
}

#[derive(Template)]
#[template(path = "pages/org_import.html")]
struct ImportPage {
    chrome: Chrome,
    org_id: Uuid,
    org_name: String,
    batch: ImportBatch,
    summary: String,
    committed: Option<String>,
    rows: Vec<PreviewRow>,
    valid: i64,
    notice: Option<String>,
    form_error: Option<FormError>,
}

async fn import_page(
    state: &AppState,
    org: OrgPage,
    batch_id: Uuid,
    done: Option<&str>,
    error: Option<ApiError>,
) -> PageResult {
    let batch = imports::get(state, &org.current.account, org.org_id(), batch_id).await?;
    let form_error = match error {
        Some(error) => form_problem(error)?.1,
        None => None,
    };
    let template = ImportPage {
        chrome: org.chrome(state, "imports").await?,
        org_id: org.org_id(),
        org_name: org.access.org.name.clone(),
        summary: format!("{} rows: {}.", batch.rows.len(), counts_summary(&batch)),
        committed: batch.committed_at.map(date),
        rows: batch.rows.iter().map(preview_row).collect(),
        valid: batch.counts.get("valid").copied().unwrap_or(0),
        notice: notice_text(done),
        form_error,
        batch,
    };
    Ok(org.respond(&template))
}

pub async fn import(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    Query(done): Query<Done>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/imports/{batch_id}");
    let org = org_page!(&state, page, org_id, &here);
    import_page(&state, org, batch_id, done.done.as_deref(), None).await
}

pub async fn remove_import_row(
    State(state): State<AppState>,
    page: Page,
    Path((org_id, batch_id, number)): Path<(Uuid, Uuid, i64)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/imports/{batch_id}");
    let org = org_page!(&state, page, org_id, &here);
    match imports::remove_row(&state, &org.current.account, org_id, batch_id, number).await {
        Ok(_) => Ok(see_other(here)),
        Err(error) => import_page(&state, org, batch_id, None, Some(error)).await,
    }
}

pub async fn commit_import(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path((org_id, batch_id)): Path<(Uuid, Uuid)>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/imports/{batch_id}");
    let org = org_page!(&state, page, org_id, &here);
    match imports::commit(&state, &org.current.account, org_id, batch_id, &client).await {
        Ok(_) => Ok(see_other(format!("{here}?done=committed"))),
        Err(error) => import_page(&state, org, batch_id, None, Some(error)).await,
    }
}

// ---- Audit log -----------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DD`, UTC.
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<Uuid>,
}

/// Midnight UTC at the start of `YYYY-MM-DD`, in Unix milliseconds; `None` when empty.
fn day_start(field: &str, raw: &str) -> Result<Option<i64>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw.trim(), &format)
        .map(|d| Some(d.midnight().assume_utc().unix_timestamp() * 1000))
        .map_err(|_| ApiError::field(field, "invalid_date", "Give a date as YYYY-MM-DD."))
}

struct EventRow {
    at: String,
    actor: String,
    ip: String,
    action: String,
    target: String,
    details: String,
}

#[derive(Template)]
#[template(path = "pages/org_audit.html")]
struct AuditLogPage {
    chrome: Chrome,
    org_id: Uuid,
    actor: String,
    action: String,
    from: String,
    until: String,
    actions: &'static [&'static str],
    events: Vec<EventRow>,
    csv_href: String,
    older: Option<String>,
    notice: Option<String>,
    errors: Vec<(String, String)>,
    form_error: Option<FormError>,
}

/// Actions an organization's log holds, offered as suggestions in the filter.
const ORG_ACTIONS: &[&str] = &[
    "account.created",
    "org.created",
    "org.member_added",
    "org.member_removed",
    "org.member_updated",
    "org.roles_changed",
    "org.import_staged",
    "org.import_committed",
];

pub async fn audit_log(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(filter): Query<AuditFilter>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/audit"));
    org.access.require(Action::ViewAudit)?;
    let mut errors = Vec::new();
    let from = day_start("from", &filter.from).unwrap_or_else(|e| {
        errors.push(("from".to_owned(), e.detail()));
        None
    });
    let until = day_start("until", &filter.until).unwrap_or_else(|e| {
        errors.push(("until".to_owned(), e.detail()));
        None
    });
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let query = AuditQuery {
        actor: text(&filter.actor),
        action: text(&filter.action),
        from,
        // The whole of the "until" day.
        until: until.map(|ms| ms + 86_400_000),
        before: filter.before,
        limit: Some(100),
        ..AuditQuery::default()
    };
    let mut conn = state.db.reader().await?;
    let found = audit::page(&mut conn, &query, Some(org_id)).await?;
    drop(conn);
    let chrome = org.chrome(&state, "audit").await?;
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("actor", &query.actor), ("action", &query.action)] {
        if let Some(value) = value {
            params.append_pair(name, value);
        }
    }
    for (name, value) in [("from", query.from), ("until", query.until)] {
        if let Some(value) = value {
            params.append_pair(name, &value.to_string());
        }
    }
    let csv_href = format!("/api/v1/orgs/{org_id}/audit.csv?{}", params.finish());
    let older = found.next_before.map(|before| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", &filter.actor)
            .append_pair("action", &filter.action)
            .append_pair("from", &filter.from)
            .append_pair("until", &filter.until)
            .append_pair("before", &before.to_string())
            .finish();
        format!("/orgs/{org_id}/audit?{query}")
    });
    let template = AuditLogPage {
        chrome,
        org_id,
        actions: ORG_ACTIONS,
        events: found
            .events
            .into_iter()
            .map(|e| EventRow {
                at: date(e.at),
                actor: e.actor.unwrap_or_default(),
                ip: e.ip.unwrap_or_default(),
                action: e.action,
                target: e.target.unwrap_or(e.target_type),
                details: e.details.to_string(),
            })
            .collect(),
        csv_href,
        older,
        notice: None,
        errors,
        form_error: None,
        actor: filter.actor,
        action: filter.action,
        from: filter.from,
        until: filter.until,
    };
    Ok(org.respond(&template))
}

// ---- Administrators ------------------------------------------------------------------

struct AdministratorRow {
    name: String,
    email: String,
    roles: String,
}

#[derive(Template)]
#[template(path = "pages/org_administrators.html")]
struct AdministratorsPage {
    chrome: Chrome,
    org_name: String,
    administrators: Vec<AdministratorRow>,
}

pub async fn administrators(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
) -> PageResult {
    let here = format!("/orgs/{org_id}/administrators");
    let org = org_page!(&state, page, org_id, &here);
    let found = members::administrators(&state, &org.current.account, org_id).await?;
    let template = AdministratorsPage {
        chrome: org.chrome(&state, "administrators").await?,
        org_name: org.access.org.name.clone(),
        administrators: found
            .into_iter()
            .map(|a| AdministratorRow {
                name: format!("{} {}", a.first_name, a.last_name),
                roles: role_labels(&a.roles),
                email: a.email,
            })
            .collect(),
    };
    Ok(org.respond(&template))
}

/// htmx, served from the binary so the portal needs nothing from other sites.
pub async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        include_str!("../../static/htmx-2.0.11.min.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_notices_reach_the_page() {
        assert!(notice_text(Some("added")).is_some());
        assert_eq!(notice_text(Some("<script>")), None);
        assert_eq!(notice_text(None), None);
    }

    #[test]
    fn dates_are_whole_utc_days() {
        assert!(matches!(day_start("from", " "), Ok(None)));
        assert_eq!(day_start("from", "1970-01-02").ok(), Some(Some(86_400_000)));
        assert!(day_start("from", "02/01/1970").is_err());
        assert!(day_start("from", "2026-02-30").is_err());
    }

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
}
