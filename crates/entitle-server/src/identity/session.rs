//! Who is making a request: the session cookie (browsers) or a bearer session token
//! (programs), checked against the database on every request.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, Method},
};
use axum_extra::extract::CookieJar;

use crate::{
    app::AppState,
    db::now_ms,
    error::ApiError,
    identity::{
        flows,
        store::{self, AccountRow, SessionRow},
        tokens,
    },
};

pub const SESSION_COOKIE: &str = "entitle_session";

/// Sessions are extended when used, but the row is rewritten at most this often.
const TOUCH_EVERY_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session: SessionRow,
    pub account: AccountRow,
    pub via_cookie: bool,
}

/// The session of a request, or `None` when it has no valid one.
pub async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<CurrentSession>, ApiError> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let (secret, via_cookie) = match bearer {
        Some(token) => (token, false),
        None => match CookieJar::from_headers(&parts.headers).get(SESSION_COOKIE) {
            Some(cookie) => (cookie.value().to_owned(), true),
            None => return Ok(None),
        },
    };
    if !tokens::looks_valid(&secret) {
        return Ok(None);
    }
    let now = now_ms();
    let mut conn = state.db.reader().await?;
    let Some(session) =
        store::live_session_by_token_hash(&mut conn, &tokens::hash(&secret), now).await?
    else {
        return Ok(None);
    };
    let Some(account) = store::account_by_id(&mut conn, session.account_id).await? else {
        return Ok(None);
    };
    drop(conn);
    if !account.is_active() {
        return Ok(None);
    }
    crate::error::note_request_account(account.id);
    let mut session = session;
    if now - session.last_seen_at > TOUCH_EVERY_MS {
        let expires_at = now + state.config.tokens.session_ttl_secs * 1000;
        let mut conn = state.db.writer().await?;
        store::touch_session(&mut conn, session.id, now, expires_at).await?;
        session.last_seen_at = now;
        session.expires_at = expires_at;
    }
    Ok(Some(CurrentSession {
        session,
        account,
        via_cookie,
    }))
}

/// A cookie-authenticated API call that changes something must be JSON: browsers cannot
/// send cross-site JSON without a CORS preflight, which this server never grants.
fn check_api_csrf(parts: &Parts, current: &CurrentSession) -> Result<(), ApiError> {
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if current.via_cookie && !safe && !json {
        return Err(ApiError::forbidden(
            "csrf_failed",
            "Requests authenticated by cookie must send Content-Type: application/json.",
        ));
    }
    Ok(())
}

/// A signed-in API caller who may still owe acceptance of the Terms of Service.
pub struct SignedInBeforeTerms(pub CurrentSession);

/// A signed-in API caller who has accepted the current Terms of Service.
pub struct SignedIn(pub CurrentSession);

/// A signed-in operator (the vendor's staff) who has accepted the current terms.
pub struct Operator(pub CurrentSession);

impl FromRequestParts<AppState> for SignedInBeforeTerms {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let current = resolve(parts, state)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        check_api_csrf(parts, &current)?;
        Ok(SignedInBeforeTerms(current))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let SignedInBeforeTerms(current) =
            SignedInBeforeTerms::from_request_parts(parts, state).await?;
        if let Some(terms) = flows::terms_required(state, &current.account).await? {
            return Err(ApiError::forbidden(
                "tos_required",
                format!(
                    "Accept the Terms of Service (version {}) before anything else.",
                    terms.version
                ),
            ));
        }
        Ok(SignedIn(current))
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let SignedIn(current) = SignedIn::from_request_parts(parts, state).await?;
        require_operator(&current.account)?;
        Ok(Operator(current))
    }
}

/// 403 unless the account is one of the vendor's operators: the one check of the API's
/// operator endpoints and the operator's console.
pub fn require_operator(account: &AccountRow) -> Result<(), ApiError> {
    if account.is_operator {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "operator_only",
            "Only the vendor's operators can do this.",
        ))
    }
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when served over TLS.
pub fn session_cookie(
    state: &AppState,
    token: String,
) -> axum_extra::extract::cookie::Cookie<'static> {
    axum_extra::extract::cookie::Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(axum_extra::extract::cookie::SameSite::Lax)
        .max_age(time::Duration::seconds(
            state.config.tokens.session_ttl_secs,
        ))
        .build()
}

pub fn removal_cookie() -> axum_extra::extract::cookie::Cookie<'static> {
    axum_extra::extract::cookie::Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .build()
}
