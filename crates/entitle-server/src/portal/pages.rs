//! The page handlers: parse the form, call the flow, render or redirect.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use entitle_proto::{Membership, SignUpRequest};
use serde::Deserialize;

use super::{
    after_sign_in, csrf, form_problem, render, safe_next, CheckedForm, Chrome, FormError,
    MessagePage, Page, PageError,
};
use crate::{
    app::{AppState, Client},
    error::{ApiError, Query},
    identity::{
        email_change, flows,
        session::{self, CurrentSession},
        store::{AccountRow, TermsRow},
    },
};

type PageResult = Result<Response, PageError>;

fn message(
    page: &Page,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> MessagePage {
    MessagePage {
        chrome: page.chrome(),
        title: title.to_owned(),
        paragraphs: paragraphs.iter().map(|p| (*p).to_owned()).collect(),
        link: link.map(|(l, h)| (l.to_owned(), h.to_owned())),
        request_id: None,
    }
}

/// The page as it is once the session cookie is removed in this response.
fn signed_out(state: &AppState, page: Page) -> Page {
    let (jar, csrf) = csrf::token(state, page.jar.remove(session::removal_cookie()), Some(""));
    Page {
        jar,
        csrf,
        current: None,
        flash: None,
    }
}

#[allow(clippy::result_large_err)] // the Err is the redirect we answer with
fn signed_in(page: &Page) -> Result<&CurrentSession, Response> {
    page.current
        .as_ref()
        .ok_or_else(|| Redirect::to("/sign-in").into_response())
}

pub async fn home(page: Page) -> Redirect {
    match &page.current {
        Some(current) if current.account.is_operator => Redirect::to("/operator"),
        Some(_) => Redirect::to("/account"),
        None => Redirect::to("/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "pages/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    email: String,
    next: String,
    notice: Option<String>,
    form_error: Option<FormError>,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
}

pub async fn sign_in_form(page: Page, Query(query): Query<NextQuery>) -> Response {
    let body = render(&SignInPage {
        chrome: page.chrome(),
        email: query.email,
        next: safe_next(&query.next).unwrap_or_default().to_owned(),
        notice: None,
        form_error: None,
    });
    (page.jar, body).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<SignInForm>,
) -> PageResult {
    match flows::sign_in(&state, &form.email, &form.password, &client).await {
        Ok(signed_in) => {
            let next = after_sign_in(&state, &signed_in.account, safe_next(&form.next)).await?;
            let jar = page
                .jar
                .add(session::session_cookie(&state, signed_in.token));
            Ok((jar, next).into_response())
        }
        Err(error) => {
            let (_, form_error) = form_problem(error)?;
            let body = render(&SignInPage {
                chrome: page.chrome(),
                email: form.email,
                next: safe_next(&form.next).unwrap_or_default().to_owned(),
                notice: None,
                form_error,
            });
            Ok((page.jar, body).into_response())
        }
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    page: Page,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    if let Some(current) = &page.current {
        flows::sign_out(&state, current.session.id).await?;
    }
    Ok((
        page.jar.remove(session::removal_cookie()),
        Redirect::to("/sign-in"),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "pages/sign_up.html")]
struct SignUpPage {
    chrome: Chrome,
    form: SignUpForm,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

pub async fn sign_up_form(page: Page) -> Response {
    let body = render(&SignUpPage {
        chrome: page.chrome(),
        form: SignUpForm::default(),
        errors: HashMap::new(),
        form_error: None,
    });
    (page.jar, body).into_response()
}

pub async fn sign_up(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<SignUpForm>,
) -> PageResult {
    let req = SignUpRequest {
        email: form.email.clone(),
        password: form.password.clone(),
        first_name: form.first_name.clone(),
        last_name: form.last_name.clone(),
        country: form.country.clone(),
    };
    match flows::sign_up(&state, req, &client).await {
        Ok(()) => Ok((
            page.jar.clone(),
            render(&message(
                &page,
                "Check your email",
                &[flows::CHECK_YOUR_EMAIL],
                None,
            )),
        )
            .into_response()),
        Err(error) => {
            let (errors, form_error) = form_problem(error)?;
            let body = render(&SignUpPage {
                chrome: page.chrome(),
                form: SignUpForm {
                    password: String::new(),
                    ..form
                },
                errors,
                form_error,
            });
            Ok((page.jar, body).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// A page that uses a link's token only when its button is pressed, so mail scanners
/// that open links do not use it up.
#[derive(Template)]
#[template(path = "pages/link_action.html")]
struct LinkActionPage {
    chrome: Chrome,
    title: &'static str,
    text: &'static str,
    action: &'static str,
    button: &'static str,
    danger: bool,
    token: String,
}

impl LinkActionPage {
    fn respond(self, page: Page) -> Response {
        (page.jar, render(&self)).into_response()
    }
}

pub async fn verify_email_form(page: Page, Query(q): Query<TokenQuery>) -> Response {
    LinkActionPage {
        chrome: page.chrome(),
        title: "Confirm your email address",
        text: "Press the button to confirm this email address and finish creating your account.",
        action: "/verify-email",
        button: "Confirm email address",
        danger: false,
        token: q.token,
    }
    .respond(page)
}

pub async fn verify_email(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<TokenQuery>,
) -> PageResult {
    flows::verify_email(&state, &form.token, &client).await?;
    let body = render(&message(
        &page,
        "Email address confirmed",
        &["Your email address is confirmed. You can sign in now."],
        Some(("Sign in", "/sign-in")),
    ));
    Ok((page.jar, body).into_response())
}

pub async fn confirm_email_change_form(page: Page, Query(q): Query<TokenQuery>) -> Response {
    LinkActionPage {
        chrome: page.chrome(),
        title: "Confirm your new sign-in address",
        text: "Press the button to make this the address you sign in with. You will be signed out everywhere and sign in again with it.",
        action: "/confirm-email-change",
        button: "Confirm new address",
        danger: false,
        token: q.token,
    }
    .respond(page)
}

pub async fn confirm_email_change(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<TokenQuery>,
) -> PageResult {
    let account = email_change::confirm(&state, &form.token, &client).await?;
    let page = signed_out(&state, page);
    let body = render(&SignInPage {
        chrome: page.chrome(),
        email: account.email,
        next: String::new(),
        notice: Some("Your sign-in address is changed. Sign in with it.".to_owned()),
        form_error: None,
    });
    Ok((page.jar, body).into_response())
}

pub async fn cancel_email_change_form(page: Page, Query(q): Query<TokenQuery>) -> Response {
    LinkActionPage {
        chrome: page.chrome(),
        title: "Cancel the change of address",
        text: "Press the button to keep signing in with this address and stop the change.",
        action: "/cancel-email-change",
        button: "Cancel the change",
        danger: true,
        token: q.token,
    }
    .respond(page)
}

pub async fn cancel_email_change(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<TokenQuery>,
) -> PageResult {
    email_change::cancel(&state, &form.token, &client).await?;
    let body = render(&message(
        &page,
        "Change cancelled",
        &["Your sign-in address stays as it was. If you did not expect the change, tell your organization's administrator, and change your password if you think someone else knows it."],
        Some(("Sign in", "/sign-in")),
    ));
    Ok((page.jar, body).into_response())
}

#[derive(Template)]
#[template(path = "pages/forgot_password.html")]
struct ForgotPasswordPage {
    chrome: Chrome,
    email: String,
    form_error: Option<FormError>,
}

pub async fn forgot_password_form(page: Page) -> Response {
    let body = render(&ForgotPasswordPage {
        chrome: page.chrome(),
        email: String::new(),
        form_error: None,
    });
    (page.jar, body).into_response()
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

pub async fn forgot_password(
    State(state): State<AppState>,
    page: Page,
    CheckedForm(form): CheckedForm<EmailForm>,
) -> PageResult {
    match flows::forgot_password(&state, &form.email).await {
        Ok(()) => Ok((
            page.jar.clone(),
            render(&message(
                &page,
                "Check your email",
                &[flows::CHECK_YOUR_EMAIL],
                Some(("Back to sign in", "/sign-in")),
            )),
        )
            .into_response()),
        Err(error) => {
            let (errors, form_error) = form_problem(error)?;
            let form_error = errors
                .get("email")
                .map(|m| FormError {
                    message: m.clone(),
                    request_id: None,
                })
                .or(form_error);
            let body = render(&ForgotPasswordPage {
                chrome: page.chrome(),
                email: form.email,
                form_error,
            });
            Ok((page.jar, body).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPasswordPage {
    chrome: Chrome,
    token: String,
    email: String,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

pub async fn reset_password_form(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    // Check the link first, so a dead link says so before the person types anything.
    flows::peek_set_password(&state, &q.token).await?;
    let body = render(&ResetPasswordPage {
        chrome: page.chrome(),
        token: q.token,
        email: String::new(),
        errors: HashMap::new(),
        form_error: None,
    });
    Ok((page.jar, body).into_response())
}

#[derive(Deserialize)]
pub struct ResetPasswordForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirmation: String,
}

pub async fn reset_password(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<ResetPasswordForm>,
) -> PageResult {
    let result = if form.password != form.password_confirmation {
        Err(ApiError::field(
            "password_confirmation",
            "mismatch",
            "The two passwords are not the same.",
        ))
    } else {
        flows::reset_password(&state, &form.token, &form.email, &form.password, &client).await
    };
    match result {
        Ok(_) => {
            let page = signed_out(&state, page);
            let body = render(&SignInPage {
                chrome: page.chrome(),
                email: form.email,
                next: String::new(),
                notice: Some("Your password is set. Sign in with it.".to_owned()),
                form_error: None,
            });
            Ok((page.jar, body).into_response())
        }
        Err(
            error @ ApiError::BadRequest {
                code: "invalid_token",
                ..
            },
        ) => Err(error.into()),
        Err(error) => {
            let (errors, form_error) = form_problem(error)?;
            let body = render(&ResetPasswordPage {
                chrome: page.chrome(),
                token: form.token,
                email: form.email,
                errors,
                form_error,
            });
            Ok((page.jar, body).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "pages/terms.html")]
struct TermsPage {
    chrome: Chrome,
    terms: TermsRow,
    next: String,
    form_error: Option<FormError>,
}

pub async fn terms_form(
    State(state): State<AppState>,
    page: Page,
    Query(query): Query<NextQuery>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current,
        Err(redirect) => return Ok(redirect),
    };
    match flows::terms_required(&state, &current.account).await? {
        Some(terms) => {
            // The accept form is the page's first and main form: the header's sign-out
            // moves below it, as "Decline and sign out".
            let chrome = Chrome {
                email: None,
                operator: false,
                ..page.chrome()
            };
            let body = render(&TermsPage {
                chrome,
                terms,
                next: safe_next(&query.next).unwrap_or_default().to_owned(),
                form_error: None,
            });
            Ok((page.jar, body).into_response())
        }
        None => Ok(Redirect::to(safe_next(&query.next).unwrap_or("/account")).into_response()),
    }
}

#[derive(Deserialize)]
pub struct AcceptTermsForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    next: String,
}

pub async fn accept_terms(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<AcceptTermsForm>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current,
        Err(redirect) => return Ok(redirect),
    };
    match flows::accept_terms(&state, &current.account, &form.version, &client).await {
        Ok(()) => Ok(Redirect::to(safe_next(&form.next).unwrap_or("/account")).into_response()),
        // Newer terms were published meanwhile: show them.
        Err(ApiError::Conflict {
            code: "terms_outdated",
            ..
        }) => Ok(Redirect::to("/terms").into_response()),
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    chrome: Chrome,
    account: AccountRow,
    /// "United Kingdom (GB)".
    country: String,
    pending_email: Option<String>,
    /// Each organization with its roles as people read them.
    memberships: Vec<(Membership, String)>,
    devices: Vec<DeviceView>,
    /// What the person may use now: product, who pays, until when.
    entitlements: Vec<(entitle_proto::Entitlement, String)>,
    /// Their reserved licenses, and when each expires.
    checkouts: Vec<(entitle_proto::Checkout, String)>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn account_page(
    state: &AppState,
    page: Page,
    notice: Option<&str>,
    error: Option<ApiError>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current,
        Err(redirect) => return Ok(redirect),
    };
    if flows::terms_required(state, &current.account)
        .await?
        .is_some()
    {
        return Ok(Redirect::to("/terms").into_response());
    }
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let mut conn = state.db.reader().await?;
    let memberships = crate::orgs::store::memberships_of(&mut conn, current.account.id).await?;
    let pending_email =
        email_change::pending(&mut conn, current.account.id, crate::db::now_ms()).await?;
    let entitlements = crate::entitlements::catalog::entitlements_of(
        &mut conn,
        current.account.id,
        crate::db::now_ms(),
    )
    .await?
    .into_iter()
    .map(|e| {
        let until = minutes(e.ends_at);
        (e, until)
    })
    .collect();
    drop(conn);
    let checkouts = crate::entitlements::checkouts::of_holder(state, &current.account)
        .await?
        .into_iter()
        .map(|c| {
            let expires = super::admin::licenses::through(c.expires_at);
            (c, expires)
        })
        .collect();
    let devices = crate::oidc::api::devices_of(state, current.account.id)
        .await?
        .into_iter()
        .map(|d| DeviceView {
            id: d.id,
            client_name: d.client_name,
            automatic_sign_in: d.automatic_sign_in,
            signed_in: minutes(d.created_at),
            last_used: minutes(d.last_used_at),
            ip: d.ip,
            user_agent: d.user_agent,
        })
        .collect();
    let country = crate::identity::person::CountryCode::describe(&current.account.country);
    let memberships = memberships
        .into_iter()
        .map(|m| {
            let roles = crate::orgs::roles::labels(&m.roles);
            (m, roles)
        })
        .collect();
    let body = render(&AccountPage {
        chrome: page.chrome(),
        account: current.account.clone(),
        country,
        pending_email,
        memberships,
        devices,
        entitlements,
        checkouts,
        notice: notice.map(str::to_owned),
        errors,
        form_error,
    });
    Ok((page.jar, body).into_response())
}

/// A signed-in device as the account page lists it.
struct DeviceView {
    id: uuid::Uuid,
    client_name: String,
    automatic_sign_in: bool,
    signed_in: String,
    last_used: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

/// `2026-11-23 16:42 UTC`
fn minutes(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

pub async fn sign_out_device(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    crate::error::Path(id): crate::error::Path<uuid::Uuid>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current.clone(),
        Err(redirect) => return Ok(redirect),
    };
    match crate::oidc::api::revoke_device(&state, &current.account, id, &client).await {
        Ok(()) => account_page(&state, page, Some("The device is signed out."), None).await,
        Err(error) => account_page(&state, page, None, Some(error)).await,
    }
}

/// The holder returns a reserved license early.
pub async fn check_in_checkout(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    crate::error::Path(id): crate::error::Path<uuid::Uuid>,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current.clone(),
        Err(redirect) => return Ok(redirect),
    };
    match crate::entitlements::checkouts::check_in(&state, &current.account, None, id, &client)
        .await
    {
        Ok(_) => {
            let notice = "The license is checked in: it no longer works on that machine.";
            account_page(&state, page, Some(notice), None).await
        }
        Err(error) => account_page(&state, page, None, Some(error)).await,
    }
}

pub async fn account(State(state): State<AppState>, page: Page) -> PageResult {
    account_page(&state, page, None, None).await
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<ChangePasswordForm>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current.clone(),
        Err(redirect) => return Ok(redirect),
    };
    match flows::change_password(
        &state,
        &current.account,
        current.session.id,
        &form.current_password,
        &form.new_password,
        &client,
    )
    .await
    {
        Ok(()) => {
            account_page(
                &state,
                page,
                Some("Your password is changed; your other sessions were signed out."),
                None,
            )
            .await
        }
        Err(error) => account_page(&state, page, None, Some(error)).await,
    }
}

#[derive(Deserialize)]
pub struct ChangeEmailForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    email_password: String,
}

pub async fn change_email(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<ChangeEmailForm>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current.clone(),
        Err(redirect) => return Ok(redirect),
    };
    let requested = email_change::request_own(
        &state,
        &current.account,
        &form.new_email,
        &form.email_password,
        &client,
    )
    .await;
    match requested {
        Ok(change) => {
            let notice = crate::identity::api::email_change_message(&change);
            account_page(&state, page, Some(&notice), None).await
        }
        // The form's fields are named apart from the erase form's password.
        Err(ApiError::Validation(mut errors)) => {
            for error in &mut errors {
                error.field = format!(
                    "{}_{}",
                    if error.field == "email" {
                        "new"
                    } else {
                        "email"
                    },
                    error.field
                );
            }
            account_page(&state, page, None, Some(ApiError::Validation(errors))).await
        }
        Err(error) => account_page(&state, page, None, Some(error)).await,
    }
}

pub async fn export(State(state): State<AppState>, page: Page) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current,
        Err(redirect) => return Ok(redirect),
    };
    let data = flows::export(&state, &current.account).await?;
    let json = serde_json::to_vec_pretty(&data).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"entitle-data.json\"",
            ),
        ],
        json,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    password: String,
}

pub async fn erase(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<EraseForm>,
) -> PageResult {
    let current = match signed_in(&page) {
        Ok(current) => current.clone(),
        Err(redirect) => return Ok(redirect),
    };
    match flows::erase(&state, &current.account, &form.password, &client).await {
        Ok(()) => {
            let page = signed_out(&state, page);
            let body = render(&message(
                &page,
                "Account erased",
                &["Your account and personal data are erased."],
                None,
            ));
            Ok((page.jar, body).into_response())
        }
        Err(error) => account_page(&state, page, None, Some(error)).await,
    }
}
