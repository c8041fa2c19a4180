//! The organization pages of the admin portal: members, one member, bulk registration
//! and its preview, the audit log and who the administrators are. Every page calls the
//! same rules as the JSON API; these handlers only read forms and render.

use askama::Template;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{flash, render, Chrome, ConfirmPage, Confirmation, OrgChrome, Page, PageError};
use crate::{
    app::AppState,
    error::Path,
    identity::session::CurrentSession,
    orgs::{
        access::OrgAccess,
        approval,
        roles::{Action, Role},
    },
};

type PageResult<T = Response> = Result<T, PageError>;

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
        org_chrome(state, &self.page, &self.access, section).await
    }

    fn org_id(&self) -> Uuid {
        self.access.org.id
    }

    /// What the page says about the last action: the notice it left, else a fixed one.
    fn notice(&self, done: Option<&str>) -> Option<String> {
        match &self.page.flash {
            Some(flash::Flash::Notice(text)) => Some(text.clone()),
            _ => notice_text(done),
        }
    }

    /// What the last action could not do.
    fn warning(&self) -> Option<String> {
        match &self.page.flash {
            Some(flash::Flash::Warning(text)) => Some(text.clone()),
            _ => None,
        }
    }

    fn respond(self, template: &impl Template) -> Response {
        (flash::shown(self.page.jar), render(template)).into_response()
    }

    /// Goes to `path`, which shows `notice`.
    fn redirect(self, state: &AppState, path: &str, notice: &str) -> Response {
        self.redirect_with(state, path, &flash::Flash::Notice(notice.to_owned()))
    }

    fn redirect_with(self, state: &AppState, path: &str, flash: &flash::Flash) -> Response {
        (
            flash::with_flash(state, self.page.jar, flash),
            Redirect::to(path),
        )
            .into_response()
    }

    /// Asks before a destructive action, on a page of its own.
    async fn ask(
        self,
        state: &AppState,
        section: &'static str,
        confirmation: Confirmation,
    ) -> PageResult {
        let template = ConfirmPage {
            chrome: self.chrome(state, section).await?,
            confirmation,
        };
        Ok(self.respond(&template))
    }
}

/// The layout of an organization's page: its sections, the viewer's standing, and the
/// required actions as they stand now.
pub(super) async fn org_chrome(
    state: &AppState,
    page: &Page,
    access: &OrgAccess,
    section: &'static str,
) -> Result<Chrome, PageError> {
    let required = if access.may(Action::ListUsers) {
        let mut conn = state.db.reader().await?;
        approval::required_actions_of(&mut conn, access).await?
    } else {
        Vec::new()
    };
    let role = if access.operator {
        "Operator".to_owned()
    } else {
        access
            .roles
            .iter()
            .min()
            .map(|r| r.label().to_owned())
            .unwrap_or_else(|| Role::User.label().to_owned())
    };
    Ok(Chrome {
        org: Some(OrgChrome {
            id: access.org.id,
            name: access.org.name.clone(),
            role,
            manages: access.may(Action::ManageUsers),
            licenses: access.may(Action::ViewSubscriptions),
            section,
            required,
        }),
        ..page.chrome()
    })
}

/// The header section of an organization page's path (`/orgs/{id}/members/…` → members).
pub(super) fn section_of(path: &str) -> &'static str {
    const SECTIONS: [&str; 8] = [
        "members",
        "licenses",
        "imports",
        "audit",
        "domains",
        "access-requests",
        "provisioning",
        "administrators",
    ];
    let segment = path.split('/').nth(3).unwrap_or("");
    SECTIONS.into_iter().find(|s| *s == segment).unwrap_or("")
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

pub mod audit;
pub mod domains;
pub mod imports;
pub mod licenses;
pub mod members;
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
            "saved" => "Saved.",
            "email_pending" => "Saved. The new address must be confirmed from the message sent to it; until then they sign in with the old one, which has been told.",
            "claimed" => "Claimed. Publish the TXT record, then verify.",
            "verified" => "Verified.",
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
    let found = crate::orgs::members::administrators(&state, &org.current.account, org_id).await?;
    let template = AdministratorsPage {
        chrome: org.chrome(&state, "administrators").await?,
        org_name: org.access.org.name.clone(),
        administrators: found
            .into_iter()
            .map(|a| AdministratorRow {
                name: format!("{} {}", a.first_name, a.last_name),
                roles: crate::orgs::roles::labels(&a.roles),
                email: a.email,
            })
            .collect(),
    };
    Ok(org.respond(&template))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_notices_reach_the_page() {
        assert!(notice_text(Some("saved")).is_some());
        assert_eq!(notice_text(Some("<script>")), None);
        assert_eq!(notice_text(None), None);
    }
}
