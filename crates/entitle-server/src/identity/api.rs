//! `/api/v1` identity endpoints: thin handlers over [`super::flows`].

use axum::{extract::State, http::StatusCode};
use axum_extra::extract::CookieJar;
use entitle_proto::{
    AcceptTermsRequest, Accepted, Account, AuditPage, ChangeEmailRequest, ChangePasswordRequest,
    DataExport, EmailRequest, EraseAccountRequest, Problem, PublishTermsRequest,
    ResetPasswordRequest, SignInRequest, SignInResponse, SignUpRequest, Terms, VerifyEmailRequest,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    email_change::{self, EmailChange},
    flows,
    session::{self, Operator, SignedIn, SignedInBeforeTerms},
    store,
};
use crate::{
    app::{AppState, Client},
    audit,
    error::{ApiError, ApiResult, Json, Query},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(verify_email))
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email_change))
        .routes(routes!(cancel_email_change))
        .routes(routes!(export))
        .routes(routes!(erase))
        .routes(routes!(current_terms))
        .routes(routes!(publish_terms))
        .routes(routes!(accept_terms))
        .routes(routes!(audit_events))
}

fn accepted() -> (StatusCode, Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: flows::CHECK_YOUR_EMAIL.to_owned(),
        }),
    )
}

/// Sign up (the individual user process). Answers 202 whether or not the address has an account.
#[utoipa::path(post, path = "/api/v1/signup", tag = "identity", security(()), request_body = SignUpRequest,
    responses((status = 202, body = Accepted), (status = 422, body = Problem)))]
async fn sign_up(
    State(state): State<AppState>,
    client: Client,
    Json(req): Json<SignUpRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    flows::sign_up(&state, req, &client).await?;
    Ok(accepted())
}

/// Confirm an email address with the token from the verification email.
#[utoipa::path(post, path = "/api/v1/verify-email", tag = "identity", security(()), request_body = VerifyEmailRequest,
    responses((status = 200, body = Account), (status = 400, body = Problem, description = "Invalid, expired or used token")))]
async fn verify_email(
    State(state): State<AppState>,
    client: Client,
    Json(req): Json<VerifyEmailRequest>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        flows::verify_email(&state, &req.token, &client)
            .await?
            .to_proto(),
    ))
}

/// Sign in with email and password; sets the session cookie and returns a bearer token.
#[utoipa::path(post, path = "/api/v1/session", tag = "identity", security(()), request_body = SignInRequest,
    responses((status = 200, body = SignInResponse), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 429, body = Problem, description = "Throttled; see Retry-After")))]
async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Json(req): Json<SignInRequest>,
) -> ApiResult<(CookieJar, Json<SignInResponse>)> {
    let signed_in = flows::sign_in(&state, &req.email, &req.password, &client).await?;
    let tos_required = flows::terms_required(&state, &signed_in.account)
        .await?
        .is_some();
    let jar = jar.add(session::session_cookie(&state, signed_in.token.clone()));
    Ok((
        jar,
        Json(SignInResponse {
            account: signed_in.account.to_proto(),
            session_token: signed_in.token,
            expires_at: signed_in.session.expires_at,
            tos_required,
        }),
    ))
}

/// Sign out: ends this session.
#[utoipa::path(delete, path = "/api/v1/session", tag = "identity",
    responses((status = 204), (status = 401, body = Problem)))]
async fn sign_out(
    State(state): State<AppState>,
    SignedInBeforeTerms(current): SignedInBeforeTerms,
    jar: CookieJar,
) -> ApiResult<(CookieJar, StatusCode)> {
    flows::sign_out(&state, current.session.id).await?;
    Ok((
        jar.remove(session::removal_cookie()),
        StatusCode::NO_CONTENT,
    ))
}

/// "Forgot password?": emails a single-use link. Answers 202 whatever the address.
#[utoipa::path(post, path = "/api/v1/forgot-password", tag = "identity", security(()), request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = 422, body = Problem)))]
async fn forgot_password(
    State(state): State<AppState>,
    Json(req): Json<EmailRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    flows::forgot_password(&state, &req.email).await?;
    Ok(accepted())
}

/// Set a password with the emailed link's token, confirming the email address.
#[utoipa::path(post, path = "/api/v1/reset-password", tag = "identity", security(()), request_body = ResetPasswordRequest,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn reset_password(
    State(state): State<AppState>,
    client: Client,
    Json(req): Json<ResetPasswordRequest>,
) -> ApiResult<Json<Accepted>> {
    flows::reset_password(&state, &req.token, &req.email, &req.password, &client).await?;
    Ok(Json(Accepted {
        message: "Your password is set. Sign in with it.".to_owned(),
    }))
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = Account), (status = 401, body = Problem), (status = 403, body = Problem, description = "tos_required")))]
async fn me(SignedIn(current): SignedIn) -> Json<Account> {
    Json(current.account.to_proto())
}

/// Change the password; other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "identity", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 422, body = Problem)))]
async fn change_password(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    flows::change_password(
        &state,
        &current.account,
        current.session.id,
        &req.current_password,
        &req.new_password,
        &client,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the sign-in address. The old address is told and keeps working until the new
/// one is confirmed from the link sent there; then every session and grant ends.
#[utoipa::path(post, path = "/api/v1/me/email", tag = "identity", request_body = ChangeEmailRequest,
    responses((status = 202, body = Accepted), (status = 409, body = Problem, description = "Another account uses the address"),
        (status = 422, body = Problem)))]
async fn change_email(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    client: Client,
    Json(req): Json<ChangeEmailRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let change =
        email_change::request_own(&state, &current.account, &req.email, &req.password, &client)
            .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: email_change_message(&change),
        }),
    ))
}

/// What a person is told after asking to change their address.
pub fn email_change_message(change: &EmailChange) -> String {
    match change {
        EmailChange::Pending(new) => format!("We sent a link to {new}. Until you follow it, you keep signing in with your current address."),
        EmailChange::Applied => "Your address is changed.".to_owned(),
        EmailChange::Unchanged => "That is already your address; nothing changed.".to_owned(),
    }
}

/// Confirm a new sign-in address with the token sent to it.
#[utoipa::path(post, path = "/api/v1/email-change/confirm", tag = "identity", security(()), request_body = VerifyEmailRequest,
    responses((status = 200, body = Account), (status = 400, body = Problem, description = "Invalid, expired or used token"),
        (status = 409, body = Problem, description = "Another account took the address meanwhile")))]
async fn confirm_email_change(
    State(state): State<AppState>,
    client: Client,
    Json(req): Json<VerifyEmailRequest>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        email_change::confirm(&state, &req.token, &client)
            .await?
            .to_proto(),
    ))
}

/// Cancel a pending change of address with the token sent to the old address.
#[utoipa::path(post, path = "/api/v1/email-change/cancel", tag = "identity", security(()), request_body = VerifyEmailRequest,
    responses((status = 204), (status = 400, body = Problem, description = "Invalid or used token")))]
async fn cancel_email_change(
    State(state): State<AppState>,
    client: Client,
    Json(req): Json<VerifyEmailRequest>,
) -> ApiResult<StatusCode> {
    email_change::cancel(&state, &req.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything entitle holds about the signed-in person, as JSON.
#[utoipa::path(get, path = "/api/v1/me/export", tag = "identity",
    responses((status = 200, body = DataExport), (status = 401, body = Problem)))]
async fn export(
    State(state): State<AppState>,
    SignedInBeforeTerms(current): SignedInBeforeTerms,
) -> ApiResult<Json<DataExport>> {
    Ok(Json(flows::export(&state, &current.account).await?))
}

/// Erase the signed-in account and its personal data (password required).
#[utoipa::path(post, path = "/api/v1/me/erase", tag = "identity", request_body = EraseAccountRequest,
    responses((status = 204), (status = 409, body = Problem, description = "Last Fulfillment Contact"), (status = 422, body = Problem)))]
async fn erase(
    State(state): State<AppState>,
    SignedInBeforeTerms(current): SignedInBeforeTerms,
    client: Client,
    jar: CookieJar,
    Json(req): Json<EraseAccountRequest>,
) -> ApiResult<(CookieJar, StatusCode)> {
    flows::erase(&state, &current.account, &req.password, &client).await?;
    Ok((
        jar.remove(session::removal_cookie()),
        StatusCode::NO_CONTENT,
    ))
}

/// The current Terms of Service.
#[utoipa::path(get, path = "/api/v1/terms/current", tag = "terms", security(()),
    responses((status = 200, body = Terms), (status = 404, body = Problem, description = "None published")))]
async fn current_terms(State(state): State<AppState>) -> ApiResult<Json<Terms>> {
    let mut conn = state.db.reader().await?;
    let terms = store::current_terms(&mut conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(terms.to_proto()))
}

/// Publish a new version of the Terms of Service (operators only). Everyone must accept it.
#[utoipa::path(post, path = "/api/v1/terms", tag = "terms", request_body = PublishTermsRequest,
    responses((status = 201, body = Terms), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn publish_terms(
    State(state): State<AppState>,
    Operator(current): Operator,
    client: Client,
    Json(req): Json<PublishTermsRequest>,
) -> ApiResult<(StatusCode, Json<Terms>)> {
    let terms = flows::publish_terms(&state, &current.account, req, &client).await?;
    Ok((StatusCode::CREATED, Json(terms.to_proto())))
}

/// Accept the current Terms of Service.
#[utoipa::path(post, path = "/api/v1/terms/accept", tag = "terms", request_body = AcceptTermsRequest,
    responses((status = 204), (status = 409, body = Problem, description = "Not the current version")))]
async fn accept_terms(
    State(state): State<AppState>,
    SignedInBeforeTerms(current): SignedInBeforeTerms,
    client: Client,
    Json(req): Json<AcceptTermsRequest>,
) -> ApiResult<StatusCode> {
    flows::accept_terms(&state, &current.account, &req.version, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail, newest first (operators only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(audit::AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
async fn audit_events(
    State(state): State<AppState>,
    Operator(_operator): Operator,
    Query(q): Query<audit::AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let mut conn = state.db.reader().await?;
    let org = q.org_id;
    Ok(Json(audit::page(&mut conn, &q, org).await?))
}
