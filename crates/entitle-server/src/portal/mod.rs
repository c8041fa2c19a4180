//! Server-rendered pages for the identity flows. Each page calls the same functions as
//! the JSON API; forms carry CSRF tokens and work without JavaScript.

mod admin;
pub mod assets;
mod csrf;
pub mod flash;
mod operator;
mod pages;

pub use crate::words::plural;

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{request::Parts, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;

use crate::{
    app::AppState,
    error::{current_request_id, ApiError},
    identity::{
        session::{self, CurrentSession},
        store::AccountRow,
    },
};

fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/sign-up", get(pages::sign_up_form).post(pages::sign_up))
        .route(
            "/verify-email",
            get(pages::verify_email_form).post(pages::verify_email),
        )
        .route(
            "/confirm-email-change",
            get(pages::confirm_email_change_form).post(pages::confirm_email_change),
        )
        .route(
            "/cancel-email-change",
            get(pages::cancel_email_change_form).post(pages::cancel_email_change),
        )
        .route(
            "/forgot-password",
            get(pages::forgot_password_form).post(pages::forgot_password),
        )
        .route(
            "/reset-password",
            get(pages::reset_password_form).post(pages::reset_password),
        )
        .route("/terms", get(pages::terms_form).post(pages::accept_terms))
        .route("/account", get(pages::account))
        .route("/account/password", post(pages::change_password))
        .route("/account/email", post(pages::change_email))
        .route(
            "/account/devices/{id}/sign-out",
            post(pages::sign_out_device),
        )
        .route("/account/export", get(pages::export))
        .route(
            "/account/checkouts/{checkout_id}/check-in",
            post(pages::check_in_checkout),
        )
        .route("/account/erase", post(pages::erase))
        .route("/static/{file}", get(assets::serve))
        .route("/operator", get(operator::console))
        .route(
            "/operator/orgs",
            get(operator::orgs).post(operator::create_org),
        )
        .route(
            "/operator/clients",
            get(operator::clients).post(operator::register_client),
        )
        .route(
            "/operator/clients/{client_id}/disable",
            post(operator::disable_client),
        )
        .route(
            "/operator/products",
            get(operator::products).post(operator::add_product),
        )
        .route("/operator/products/{code}", post(operator::change_product))
        .route(
            "/operator/subscriptions",
            get(operator::subscriptions).post(operator::add_subscription),
        )
        .route(
            "/operator/subscriptions/{subscription_id}",
            post(operator::change_subscription),
        )
        .route(
            "/operator/subscriptions/{subscription_id}/end",
            post(operator::end_subscription),
        )
        .route("/operator/keys", get(operator::keys))
        .route("/operator/keys/rotate", post(operator::rotate_keys))
        .route("/orgs/{org_id}", get(admin::members::org_home))
        .route(
            "/orgs/{org_id}/members",
            get(admin::members::members).post(admin::members::add_member),
        )
        .route(
            "/orgs/{org_id}/members/{account_id}",
            get(admin::members::member).post(admin::members::edit_member),
        )
        .route(
            "/orgs/{org_id}/members/new",
            get(admin::members::add_person_form).post(admin::members::add_member),
        )
        .route("/orgs/{org_id}/members/bulk", post(admin::members::bulk))
        .route(
            "/orgs/{org_id}/members/{account_id}/{action}",
            post(admin::members::member_action),
        )
        .route(
            "/orgs/{org_id}/members/{account_id}/roles",
            post(admin::members::set_member_roles),
        )
        .route(
            "/orgs/{org_id}/members/{account_id}/access",
            post(admin::members::set_member_access),
        )
        .route(
            "/orgs/{org_id}/members/{account_id}/remove",
            post(admin::members::remove_member),
        )
        .route(
            "/orgs/{org_id}/imports",
            get(admin::imports::imports)
                .post(admin::imports::upload)
                .layer(
                    // The file and the form around it.
                    axum::extract::DefaultBodyLimit::max(
                        crate::orgs::imports_api::MAX_FILE_BYTES + 16 * 1024,
                    ),
                ),
        )
        .route(
            "/orgs/{org_id}/imports/{batch_id}",
            get(admin::imports::import),
        )
        .route(
            "/orgs/{org_id}/imports/{batch_id}/rows/{number}/remove",
            post(admin::imports::remove_import_row),
        )
        .route(
            "/orgs/{org_id}/imports/{batch_id}/commit",
            post(admin::imports::commit_import),
        )
        .route(
            "/orgs/{org_id}/imports/{batch_id}/remove-invalid",
            post(admin::imports::remove_invalid_import_rows),
        )
        .route(
            "/orgs/{org_id}/imports/{batch_id}/discard",
            post(admin::imports::discard_import),
        )
        .route("/orgs/{org_id}/audit", get(admin::audit::audit_log))
        .route(
            "/orgs/{org_id}/domains",
            get(admin::domains::list).post(admin::domains::claim),
        )
        .route(
            "/orgs/{org_id}/domains/{domain_id}/verify",
            post(admin::domains::verify),
        )
        .route(
            "/orgs/{org_id}/domains/{domain_id}/remove",
            post(admin::domains::remove),
        )
        .route(
            "/orgs/{org_id}/auto-approval",
            post(admin::domains::auto_approval),
        )
        .route(
            "/orgs/{org_id}/access-requests",
            get(admin::domains::requests),
        )
        .route(
            "/orgs/{org_id}/access-requests/{request_id}/approve",
            post(admin::domains::approve),
        )
        .route(
            "/orgs/{org_id}/access-requests/{request_id}/reject",
            post(admin::domains::reject),
        )
        .route(
            "/join",
            get(admin::domains::join).post(admin::domains::ask_to_join),
        )
        .route(
            "/orgs/{org_id}/provisioning",
            get(admin::provisioning::show),
        )
        .route(
            "/orgs/{org_id}/provisioning/tokens",
            post(admin::provisioning::create_token),
        )
        .route(
            "/orgs/{org_id}/provisioning/tokens/{token_id}/revoke",
            post(admin::provisioning::revoke_token),
        )
        .route(
            "/orgs/{org_id}/provisioning/groups/{group_id}/role",
            post(admin::provisioning::map_group),
        )
        .route("/orgs/{org_id}/administrators", get(admin::administrators))
        .route("/orgs/{org_id}/licenses", get(admin::licenses::licenses))
        .route(
            "/orgs/{org_id}/licenses/checkouts",
            post(admin::licenses::check_out),
        )
        .route(
            "/orgs/{org_id}/licenses/checkouts/{checkout_id}/check-in",
            post(admin::licenses::check_in),
        )
        .route(
            "/orgs/{org_id}/licenses/batches",
            post(admin::licenses::upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::orgs::imports_api::MAX_FILE_BYTES + 16 * 1024,
            )),
        )
        .route(
            "/orgs/{org_id}/licenses/batches/{batch_id}",
            get(admin::licenses::batch),
        )
        .route(
            "/orgs/{org_id}/licenses/batches/{batch_id}/rows/{number}/remove",
            post(admin::licenses::remove_row),
        )
        .route(
            "/orgs/{org_id}/licenses/batches/{batch_id}/remove-invalid",
            post(admin::licenses::remove_invalid),
        )
        .route(
            "/orgs/{org_id}/licenses/batches/{batch_id}/discard",
            post(admin::licenses::discard),
        )
        .route(
            "/orgs/{org_id}/licenses/batches/{batch_id}/commit",
            post(admin::licenses::commit),
        )
}

/// The portal's routes with error pages that keep the header.
pub fn router_with(state: AppState) -> Router<AppState> {
    router().layer(axum::middleware::from_fn_with_state(
        state,
        keep_header_on_errors,
    ))
}

/// What the layout needs on every page.
#[derive(Default)]
pub struct Chrome {
    pub csrf: String,
    pub email: Option<String>,
    /// On an organization's pages: which organization, and what the header links to.
    pub org: Option<OrgChrome>,
    /// The signed-in person is an operator: the header links to their console.
    pub operator: bool,
    /// On the operator's console: the header link of the current page.
    pub console: Option<&'static str>,
}

pub struct OrgChrome {
    pub id: uuid::Uuid,
    pub name: String,
    /// The signed-in person's standing: their highest role, or Operator.
    pub role: String,
    pub manages: bool,
    /// May see the subscriptions and seats: the header links to Licenses.
    pub licenses: bool,
    /// The header link of the current page.
    pub section: &'static str,
    /// What the administrators should do next (empty for Users).
    pub required: Vec<entitle_proto::RequiredAction>,
}

/// A page request: cookies, the CSRF token for forms, the session, if any, and the
/// notice an action that redirected here left.
pub struct Page {
    pub jar: CookieJar,
    pub csrf: String,
    pub current: Option<CurrentSession>,
    pub flash: Option<flash::Flash>,
}

impl Page {
    pub fn chrome(&self) -> Chrome {
        Chrome {
            csrf: self.csrf.clone(),
            email: self.current.as_ref().map(|c| c.account.email.clone()),
            operator: self.current.as_ref().is_some_and(|c| c.account.is_operator),
            ..Chrome::default()
        }
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let current = session::resolve(parts, state).await?;
        let (jar, csrf) = csrf::token(state, jar, None);
        let flash = flash::waiting(state, &jar);
        Ok(Page {
            jar,
            csrf,
            current,
            flash,
        })
    }
}

/// Form bodies: the CSRF token is checked before the handler sees anything.
pub struct CheckedForm<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf_token: String,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CheckedForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let jar = CookieJar::from_headers(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("invalid_form", e.body_text())
                }
            })?;
        let token: CsrfField = serde_urlencoded_from(&bytes)?;
        if !csrf::verify(state, &jar, &token.csrf_token) {
            return Err(csrf_failed().into());
        }
        Ok(CheckedForm(serde_urlencoded_from(&bytes)?))
    }
}

pub fn csrf_failed() -> ApiError {
    ApiError::forbidden(
        "csrf_failed",
        "This form has expired or did not come from this site. Go back, reload the page and try again.",
    )
}

fn serde_urlencoded_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        PageError(ApiError::bad_request(
            "invalid_form",
            format!("The form is malformed: {e}"),
        ))
    })
}

/// Any failure on a page: rendered as a page that says what happened, with the request id.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError(error)
    }
}

impl From<crate::db::DbError> for PageError {
    fn from(error: crate::db::DbError) -> Self {
        PageError(error.into())
    }
}

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub paragraphs: Vec<String>,
    pub link: Option<(String, String)>,
    pub request_id: Option<String>,
}

/// What an error page said, kept on its response so that [`keep_header_on_errors`] can
/// render it again inside the signed-in person's header.
#[derive(Clone)]
struct ErrorPage {
    title: String,
    detail: String,
    request_id: Option<String>,
}

impl ErrorPage {
    fn render(&self, chrome: Chrome) -> Response {
        render(&MessagePage {
            chrome,
            title: self.title.clone(),
            paragraphs: vec![self.detail.clone()],
            link: Some(("Go to the start page".to_owned(), "/".to_owned())),
            request_id: self.request_id.clone(),
        })
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let ApiError::Internal(error) = &self.0 {
            tracing::error!(request_id = ?current_request_id(), error = format!("{error:#}"), "internal error on a page");
        }
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: self.0.detail(),
            request_id: current_request_id(),
        };
        let mut response = (status, page.render(Chrome::default())).into_response();
        response.extensions_mut().insert(page);
        response
    }
}

/// Error pages (403, 404, …) keep the header of the person who met them: who is signed
/// in, and on an organization's pages its sections, so that they can go on from there.
pub async fn keep_header_on_errors(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let (uri, headers) = (parts.uri.clone(), parts.headers.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    let Some(error) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let mut seen = Request::new(());
    *seen.uri_mut() = uri;
    *seen.headers_mut() = headers;
    let (mut seen, ()) = seen.into_parts();
    let Ok(page) = Page::from_request_parts(&mut seen, &state).await else {
        return response;
    };
    let Some(current) = page.current.as_ref() else {
        return response;
    };
    let path = seen.uri.path();
    let org_id = path
        .strip_prefix("/orgs/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| uuid::Uuid::parse_str(id).ok());
    let mut chrome = page.chrome();
    if let Some(org_id) = org_id {
        let access = match state.db.reader().await {
            Ok(mut conn) => crate::orgs::access::OrgAccess::of(&mut conn, &current.account, org_id)
                .await
                .ok(),
            Err(_) => None,
        };
        if let Some(access) = access {
            let section = admin::section_of(path);
            if let Ok(org) = admin::org_chrome(&state, &page, &access, section).await {
                chrome = org;
            }
        }
    }
    let mut dressed = (page.jar, error.render(chrome)).into_response();
    *dressed.status_mut() = response.status();
    for (name, value) in response.headers() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            dressed.headers_mut().append(name, value.clone());
        }
    }
    dressed
}

pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub fn not_found_page() -> Response {
    PageError(ApiError::NotFound).into_response()
}

/// A destructive action's question, naming who or what it touches. Its form carries the
/// words for the script's dialog; without the script, or when the form arrives without
/// `confirmed=yes`, the server answers with a page that asks.
#[derive(Clone)]
pub struct Confirmation {
    /// "Remove Bob Birch (bob@acme.example) from Acme?"
    pub title: String,
    /// What happens, in a sentence.
    pub detail: String,
    /// The button's word: "Remove".
    pub button: &'static str,
    /// Where the confirmed form posts.
    pub action: String,
    /// The form's fields to send again, the CSRF token aside.
    pub fields: Vec<(String, String)>,
    /// Where Cancel goes.
    pub back: String,
}

#[derive(Template)]
#[template(path = "pages/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub confirmation: Confirmation,
}

/// Whether a form came with the question answered.
pub fn confirmed<'a>(mut fields: impl Iterator<Item = (&'a String, &'a String)>) -> bool {
    fields.any(|(name, value)| name == "confirmed" && value == "yes")
}

/// The fields of a form to send again from a confirmation page.
pub fn fields_to_resend<'a>(
    fields: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    fields
        .filter(|(name, _)| !matches!(name.as_str(), "csrf_token" | "confirmed"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The problem shown above a form.
pub struct FormError {
    pub message: String,
    pub request_id: Option<String>,
}

/// Splits an error into per-field messages and a general message for the form.
pub fn form_problem(
    error: ApiError,
) -> Result<(HashMap<String, String>, Option<FormError>), PageError> {
    match error {
        ApiError::Validation(fields) => Ok((
            fields.into_iter().map(|f| (f.field, f.message)).collect(),
            Some(FormError {
                message: "Please correct the fields marked below.".to_owned(),
                request_id: None,
            }),
        )),
        ApiError::Internal(_) | ApiError::Unavailable => Err(PageError(error)),
        other => Ok((
            HashMap::new(),
            Some(FormError {
                message: other.detail(),
                request_id: current_request_id(),
            }),
        )),
    }
}

/// Where a signed-in person goes next: the terms if they owe them, then `next` (where
/// they were going, such as an application's sign-in request), else their account.
/// The signed-in person of a page who has accepted the current terms; otherwise where to
/// send them first: to sign in (coming back to `here`), or to the terms.
pub async fn signed_in_with_terms(
    state: &AppState,
    page: &Page,
    here: &str,
) -> Result<Result<CurrentSession, Response>, PageError> {
    let Some(current) = page.current.clone() else {
        let next = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", here)
            .finish();
        return Ok(Err(
            Redirect::to(&format!("/sign-in?{next}")).into_response()
        ));
    };
    if crate::identity::flows::terms_required(state, &current.account)
        .await?
        .is_some()
    {
        return Ok(Err(Redirect::to("/terms").into_response()));
    }
    Ok(Ok(current))
}

pub async fn after_sign_in(
    state: &AppState,
    account: &AccountRow,
    next: Option<&str>,
) -> Result<Redirect, PageError> {
    let owes_terms = crate::identity::flows::terms_required(state, account)
        .await?
        .is_some();
    Ok(match (owes_terms, next) {
        (true, Some(next)) => Redirect::to(&format!(
            "/terms?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish()
        )),
        (true, None) => Redirect::to("/terms"),
        (false, Some(next)) => Redirect::to(next),
        (false, None) if account.is_operator => Redirect::to("/operator"),
        (false, None) => match administered_home(state, account).await? {
            Some(org_id) => Redirect::to(&format!("/orgs/{org_id}/members")),
            None => Redirect::to("/account"),
        },
    })
}

/// The person's home organization, when they administer it: where they land after
/// signing in.
async fn administered_home(
    state: &AppState,
    account: &AccountRow,
) -> Result<Option<uuid::Uuid>, PageError> {
    let Some(home) = account.home_org_id else {
        return Ok(None);
    };
    let mut conn = state.db.reader().await?;
    Ok(
        match crate::orgs::access::OrgAccess::of(&mut conn, account, home).await {
            Ok(access) => access
                .may(crate::orgs::roles::Action::ListUsers)
                .then_some(home),
            Err(_) => None,
        },
    )
}

/// A place on this site to continue to; anything else (other sites, `//host`) is dropped.
pub fn safe_next(raw: &str) -> Option<&str> {
    let local = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && !raw.chars().any(|c| c.is_control() || c == '\\');
    (local && raw.len() <= 4096).then_some(raw)
}
