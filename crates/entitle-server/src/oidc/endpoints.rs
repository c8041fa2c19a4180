//! The provider's HTTP endpoints and its two pages (device code entry, logout
//! confirmation). Handlers parse, call the rules in `authorize` and `grants`, answer.

use std::collections::HashMap;

use askama::Template;
use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde_json::{json, Value};

use super::{
    authorize::{self, Needs, Refusal},
    clients,
    grants::{self, load_subject, PersonClaims},
    no_store_json, scope_has, store, OAuthError, Params,
};
use crate::{
    app::{AppState, Client},
    db::now_ms,
    error::ApiError,
    identity::{flows, store as identity_store, throttle},
    portal::{render, CheckedForm, Chrome, FormError, MessagePage, Page, PageError},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/jwks", get(jwks))
        .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
        .route("/oauth2/token", post(token))
        .route("/oauth2/device_authorization", post(device_authorization))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/logout", get(logout_get).post(logout_post))
        .route("/oauth2/logout/confirm", post(logout_confirm))
        .route("/device", get(device_form).post(device_decide))
}

pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "device_authorization_endpoint": format!("{issuer}/oauth2/device_authorization"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "scopes_supported": clients::SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": clients::GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp", "at_hash",
            "email", "email_verified", "given_name", "family_name", "name", "country", "org", "roles"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

fn public_json(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    public_json(state.oidc.discovery().to_owned())
}

async fn jwks(State(state): State<AppState>) -> Response {
    public_json(state.oidc.keys.current().jwks().to_owned())
}

/// Token-endpoint style requests must be form-encoded (RFC 6749 §3.2).
fn form_params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request(
            "Send the parameters as application/x-www-form-urlencoded.",
        ));
    }
    Ok(Params::parse(body))
}

async fn token(
    State(state): State<AppState>,
    from: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        grants::token(&state, &headers, &params, &from).await
    }
    .await;
    match result {
        Ok(tokens) => {
            no_store_json(serde_json::to_string(&tokens).unwrap_or_default()).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        grants::device_authorization(&state, &headers, &params).await
    }
    .await;
    match result {
        Ok(answer) => {
            no_store_json(serde_json::to_string(&answer).unwrap_or_default()).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = grants::authenticate_client(&state, &headers, &params).await?;
        grants::revoke(&state, &client, &params).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = grants::authenticate_client(&state, &headers, &params).await?;
        grants::introspect(&state, &client, &params).await
    }
    .await;
    match result {
        Ok(answer) => no_store_json(answer.to_string()).into_response(),
        Err(error) => error.into_response(),
    }
}

/// A bearer-token failure at the userinfo endpoint (RFC 6750 §3).
fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut response = (
        status,
        no_store_json(json!({ "error": error, "error_description": description }).to_string()),
    )
        .into_response();
    if let Ok(value) = challenge.parse() {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let from_body = Params::parse(&body)
        .get("access_token")
        .ok()
        .flatten()
        .map(str::to_owned);
    let Some(token) = from_header.or(from_body) else {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "An access token is required.",
        );
    };
    let result: Result<Response, OAuthError> = async {
        let Some(claims) = grants::read_access_token(&state, &token).await? else {
            return Ok(bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is invalid, expired or revoked.",
            ));
        };
        if !scope_has(&claims.scope, "openid") || claims.sid.is_none() {
            return Ok(bearer_error(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "The access token lacks the openid scope.",
            ));
        }
        let subject = match uuid::Uuid::parse_str(&claims.sub) {
            Ok(id) => {
                let mut conn = state.db.reader().await?;
                load_subject(&mut conn, id).await?
            }
            Err(_) => None,
        };
        let Some(subject) = subject else {
            return Ok(bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The account is no longer active.",
            ));
        };
        #[derive(serde::Serialize)]
        struct UserInfo<'a> {
            sub: &'a str,
            #[serde(flatten)]
            person: PersonClaims<'a>,
        }
        let answer = UserInfo {
            sub: &claims.sub,
            person: PersonClaims::of(&subject, &claims.scope),
        };
        Ok(
            no_store_json(serde_json::to_string(&answer).map_err(anyhow::Error::from)?)
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn authorize_get(
    State(state): State<AppState>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&state, page, params).await
}

async fn authorize_post(State(state): State<AppState>, page: Page, body: Bytes) -> Response {
    authorize(&state, page, Params::parse(&body)).await
}

fn to_sign_in(next: &str, email: Option<&str>) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", next);
    if let Some(email) = email {
        query.append_pair("email", email);
    }
    Redirect::to(&format!("/sign-in?{}", query.finish())).into_response()
}

fn to_terms(next: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/terms?{query}")).into_response()
}

async fn authorize(state: &AppState, page: Page, params: Params) -> Response {
    let request = match authorize::parse(state, &params).await {
        Ok(request) => request,
        Err(Refusal::Page(error)) => return PageError(error).into_response(),
        Err(Refusal::Redirect {
            redirect_uri,
            state: client_state,
            error,
        }) => {
            return Redirect::to(&authorize::error_redirect(
                state,
                &redirect_uri,
                client_state.as_deref(),
                &error,
            ))
            .into_response()
        }
    };
    let refuse = |error: &'static str, description: &str| {
        Redirect::to(&authorize::error_redirect(
            state,
            &request.redirect_uri,
            request.state.as_deref(),
            &OAuthError::new(error, description),
        ))
        .into_response()
    };
    let needs = match authorize::needs(state, &request, page.current.as_ref()).await {
        Ok(needs) => needs,
        Err(error) => return PageError(error).into_response(),
    };
    match (needs, request.prompt_none) {
        (Needs::SignIn { .. }, true) => refuse("login_required", "The person is not signed in."),
        (Needs::AcceptTerms, true) => refuse(
            "interaction_required",
            "The person must accept the current Terms of Service first.",
        ),
        (Needs::SignIn { fresh }, false) => to_sign_in(
            &authorize::return_url(&params, fresh),
            request.login_hint.as_deref(),
        ),
        (Needs::AcceptTerms, false) => to_terms(&authorize::return_url(&params, false)),
        (Needs::Nothing, _) => {
            let Some(current) = page.current.as_ref() else {
                return to_sign_in(&authorize::return_url(&params, false), None);
            };
            match authorize::issue_code(state, &request, current).await {
                Ok(location) => Redirect::to(&location).into_response(),
                Err(error) => PageError(error).into_response(),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "pages/device.html")]
struct DevicePage {
    chrome: Chrome,
    user_code: String,
    client_name: Option<String>,
    form_error: Option<FormError>,
}

#[derive(serde::Deserialize, Default)]
struct DeviceQuery {
    #[serde(default)]
    user_code: String,
}

fn device_page(
    page: Page,
    user_code: &str,
    client_name: Option<String>,
    problem: Option<&str>,
) -> Response {
    let body = render(&DevicePage {
        chrome: page.chrome(),
        user_code: grants::display_user_code(user_code),
        client_name,
        form_error: problem.map(|message| FormError {
            message: message.to_owned(),
            request_id: None,
        }),
    });
    (page.jar, body).into_response()
}

/// Counts a person's attempt at a user code before it is looked up (a wrong code stays
/// counted; [`user_code_was_right`] clears them); `Err` holds the seconds to wait.
async fn take_user_code_attempt(
    state: &AppState,
    account_id: uuid::Uuid,
) -> Result<Result<(), i64>, PageError> {
    let limits = &state.config.throttle;
    let now = now_ms();
    let mut conn = state.db.writer().await?;
    let taken =
        identity_store::update_throttle(&mut conn, &throttle::user_code_key(account_id), |row| {
            throttle::take_attempt(
                row,
                now,
                limits.account_free_failures,
                limits.max_delay_secs,
            )
        })
        .await?;
    Ok(taken.map(|_| ()))
}

async fn user_code_was_right(state: &AppState, account_id: uuid::Uuid) -> Result<(), PageError> {
    let mut conn = state.db.writer().await?;
    identity_store::clear_throttle(&mut conn, &throttle::user_code_key(account_id)).await?;
    Ok(())
}

fn too_many_codes(page: Page, wait: i64) -> Response {
    let message = format!("Too many wrong codes. Try again in {wait} seconds.");
    let mut response = device_page(page, "", None, Some(&message));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
}

const UNKNOWN_USER_CODE: &str =
    "That code is not valid or has expired. Check the code your device shows, or start again on the device.";

/// The person's way in to a device flow: signed in and bound by the terms first.
async fn signed_in_for(
    state: &AppState,
    page: &Page,
    next: &str,
) -> Result<Option<Response>, PageError> {
    let Some(current) = &page.current else {
        return Ok(Some(to_sign_in(next, None)));
    };
    if flows::terms_required(state, &current.account)
        .await?
        .is_some()
    {
        return Ok(Some(to_terms(next)));
    }
    Ok(None)
}

async fn device_form(
    State(state): State<AppState>,
    page: Page,
    crate::error::Query(query): crate::error::Query<DeviceQuery>,
) -> Result<Response, PageError> {
    let code = grants::normalize_user_code(&query.user_code);
    let next = if code.is_empty() {
        "/device".to_owned()
    } else {
        format!("/device?user_code={code}")
    };
    if let Some(detour) = signed_in_for(&state, &page, &next).await? {
        return Ok(detour);
    }
    if code.is_empty() {
        return Ok(device_page(page, "", None, None));
    }
    let account_id = page
        .current
        .as_ref()
        .map(|c| c.account.id)
        .unwrap_or_default();
    if let Err(wait) = take_user_code_attempt(&state, account_id).await? {
        return Ok(too_many_codes(page, wait));
    }
    let mut conn = state.db.reader().await?;
    let pending = store::device_by_user_code(&mut conn, &code)
        .await?
        .filter(|d| d.approved.is_none() && d.expires_at > now_ms());
    let Some(pending) = pending else {
        return Ok(device_page(page, "", None, Some(UNKNOWN_USER_CODE)));
    };
    user_code_was_right(&state, account_id).await?;
    let client_name = clients::by_client_id(&mut conn, &pending.client_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_else(|| pending.client_id.clone());
    Ok(device_page(page, &code, Some(client_name), None))
}

#[derive(serde::Deserialize)]
struct DeviceDecision {
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    decision: String,
}

async fn device_decide(
    State(state): State<AppState>,
    page: Page,
    CheckedForm(form): CheckedForm<DeviceDecision>,
) -> Result<Response, PageError> {
    let code = grants::normalize_user_code(&form.user_code);
    if let Some(detour) = signed_in_for(&state, &page, &format!("/device?user_code={code}")).await?
    {
        return Ok(detour);
    }
    let Some(current) = page.current.clone() else {
        return Ok(to_sign_in("/device", None));
    };
    let approved = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(ApiError::bad_request("invalid_form", "Choose Allow or Deny.").into()),
    };
    if let Err(wait) = take_user_code_attempt(&state, current.account.id).await? {
        return Ok(too_many_codes(page, wait));
    }
    let decided = {
        let mut conn = state.db.writer().await?;
        store::decide_device(
            &mut conn,
            &code,
            current.account.id,
            current.session.created_at,
            approved,
            now_ms(),
        )
        .await?
    };
    if !decided {
        return Ok(device_page(page, "", None, Some(UNKNOWN_USER_CODE)));
    }
    user_code_was_right(&state, current.account.id).await?;
    let (title, paragraph) = if approved {
        (
            "Device signed in",
            "You can return to your device; it will continue by itself.",
        )
    } else {
        ("Request denied", "The device was not signed in.")
    };
    let body = render(&MessagePage {
        chrome: page.chrome(),
        title: title.to_owned(),
        paragraphs: vec![paragraph.to_owned()],
        link: None,
        request_id: None,
    });
    Ok((page.jar, body).into_response())
}

#[derive(Template)]
#[template(path = "pages/logout.html")]
struct LogoutPage {
    chrome: Chrome,
    fields: Vec<(String, String)>,
}

/// A validated logout request (OpenID Connect RP-Initiated Logout 1.0).
struct LogoutRequest {
    hint: Option<Value>,
    redirect: Option<String>,
    client_state: Option<String>,
}

async fn parse_logout(state: &AppState, params: &Params) -> Result<LogoutRequest, ApiError> {
    let bad = |detail: &str| ApiError::bad_request("invalid_logout_request", detail);
    let get = |name: &str| params.get(name).map_err(|e| bad(&e.description));
    let hint = match get("id_token_hint")? {
        Some(token) => {
            let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
            let keys = state.oidc.keys.for_kid(&state.db, kid.as_deref()).await;
            // An expired ID token is still a fine hint of who is signing out.
            Some(
                keys.verify::<Value>(token, &state.oidc.issuer, None, false)
                    .map_err(|_| bad("The id_token_hint was not issued by this server."))?,
            )
        }
        None => None,
    };
    let hinted_client = hint
        .as_ref()
        .and_then(|h| h["aud"].as_str().map(str::to_owned));
    let client_id = match (get("client_id")?, hinted_client) {
        (Some(given), Some(hinted)) if given != hinted => {
            return Err(bad("client_id differs from the audience of id_token_hint."))
        }
        (Some(given), _) => Some(given.to_owned()),
        (None, hinted) => hinted,
    };
    let redirect = match get("post_logout_redirect_uri")? {
        Some(uri) => {
            let client = match &client_id {
                Some(id) => {
                    let mut conn = state.db.reader().await?;
                    clients::by_client_id(&mut conn, id).await?
                }
                None => None,
            }
            .ok_or_else(|| bad("post_logout_redirect_uri needs id_token_hint or client_id."))?;
            if !client.post_logout_redirect_uris().iter().any(|r| r == uri) {
                return Err(bad(
                    "post_logout_redirect_uri is not registered for this client.",
                ));
            }
            Some(uri.to_owned())
        }
        None => None,
    };
    Ok(LogoutRequest {
        hint,
        redirect,
        client_state: get("state")?.map(str::to_owned),
    })
}

async fn logout_get(
    State(state): State<AppState>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    end_session(&state, page, params, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn logout_post(State(state): State<AppState>, page: Page, body: Bytes) -> Response {
    end_session(&state, page, Params::parse(&body), false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn logout_confirm(
    State(state): State<AppState>,
    page: Page,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> Response {
    let params = Params(
        form.into_iter()
            .filter(|(k, _)| k != "csrf_token")
            .collect(),
    );
    end_session(&state, page, params, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Signs the browser out (asking first unless the request proves it comes from the
/// person's own client) and revokes the grant the ID token belongs to.
async fn end_session(
    state: &AppState,
    page: Page,
    params: Params,
    confirmed: bool,
) -> Result<Response, PageError> {
    let request = parse_logout(state, &params).await?;
    if let Some(current) = &page.current {
        let hinted_self = request
            .hint
            .as_ref()
            .is_some_and(|h| h["sub"].as_str() == Some(current.account.id.to_string().as_str()));
        if !confirmed && !hinted_self {
            let body = render(&LogoutPage {
                chrome: page.chrome(),
                fields: params.pairs().to_vec(),
            });
            return Ok((page.jar, body).into_response());
        }
        flows::sign_out(state, current.session.id).await?;
    }
    if let Some(grant) = request.hint.as_ref().and_then(authorize::grant_of_id_token) {
        let mut conn = state.db.writer().await?;
        store::revoke_grant(&mut conn, grant, now_ms()).await?;
    }
    let jar = page.jar.remove(crate::identity::session::removal_cookie());
    Ok(match request.redirect {
        Some(uri) => {
            let mut url = url::Url::parse(&uri)
                .map_err(|_| ApiError::bad_request("invalid_logout_request", "bad URI"))?;
            if let Some(client_state) = &request.client_state {
                url.query_pairs_mut().append_pair("state", client_state);
            }
            (jar, Redirect::to(url.as_str())).into_response()
        }
        None => {
            let body = render(&MessagePage {
                chrome: Chrome::default(),
                title: "Signed out".to_owned(),
                paragraphs: vec!["You are signed out.".to_owned()],
                link: Some(("Sign in again".to_owned(), "/sign-in".to_owned())),
                request_id: None,
            });
            (jar, body).into_response()
        }
    })
}
