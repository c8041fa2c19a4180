//! The authorization endpoint's rules: which requests are acceptable, what the person
//! must do first (sign in, accept the terms), and the code issued at the end.

use uuid::Uuid;

use super::{
    clients::{ClientRow, AUTHORIZATION_CODE},
    grants::grantable_scope,
    store::{self, NewCode},
    OAuthError, Params,
};
use crate::{
    app::AppState,
    db::now_ms,
    error::ApiError,
    identity::{session::CurrentSession, tokens},
};

/// The internal parameter that marks a request as coming back from a forced sign-in.
pub const LOGIN_AFTER: &str = "login_after";

/// An authorization request that may be answered by redirecting to the client.
#[derive(Debug)]
pub struct AuthorizeRequest {
    pub client: std::sync::Arc<ClientRow>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub login_after: Option<i64>,
}

/// Why a request failed: before the redirect URI is trusted the person is shown a page;
/// after, the client is told through its redirect URI.
#[derive(Debug)]
pub enum Refusal {
    Page(ApiError),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl Refusal {
    fn page(detail: &str) -> Refusal {
        Refusal::Page(ApiError::bad_request(
            "invalid_authorization_request",
            detail,
        ))
    }
}

pub async fn parse(state: &AppState, params: &Params) -> Result<AuthorizeRequest, Refusal> {
    let page_error = |e: OAuthError| Refusal::page(&e.description);
    let client_id = params
        .get("client_id")
        .map_err(page_error)?
        .ok_or_else(|| {
            Refusal::page("The application did not say who it is (client_id is missing).")
        })?;
    let client = state
        .oidc
        .clients
        .get(&state.db, client_id)
        .await
        .map_err(|e| Refusal::Page(e.into()))?
        .ok_or_else(|| Refusal::page("The application that sent you here is not registered."))?;
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(page_error)?
        .ok_or_else(|| {
            Refusal::page("The application did not say where to return (redirect_uri is missing).")
        })?
        .to_owned();
    if !client.redirect_uri_allowed(&redirect_uri) {
        return Err(Refusal::page(
            "The application asked to return to an address it has not registered.",
        ));
    }
    let client_state = params.get("state").map_err(page_error)?.map(str::to_owned);
    let redirect = |error: OAuthError| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
        error,
    };
    let get = |name: &str| {
        params
            .get(name)
            .map(|v| v.map(str::to_owned))
            .map_err(redirect)
    };
    if get("request")?.is_some() || get("request_uri")?.is_some() {
        return Err(redirect(OAuthError::new(
            "request_not_supported",
            "Request objects are not supported.",
        )));
    }
    match get("response_type")?.as_deref() {
        Some("code") => {}
        Some(_) => {
            return Err(redirect(OAuthError::new(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            )))
        }
        None => {
            return Err(redirect(OAuthError::invalid_request(
                "response_type is missing.",
            )))
        }
    }
    if let Some(mode) = get("response_mode")? {
        if mode != "query" {
            return Err(redirect(OAuthError::invalid_request(
                "Only response_mode=query is supported.",
            )));
        }
    }
    if !client.allows_grant(AUTHORIZATION_CODE) {
        return Err(redirect(OAuthError::unauthorized_client(
            AUTHORIZATION_CODE,
        )));
    }
    let scope = grantable_scope(&client, &get("scope")?.unwrap_or_default()).map_err(redirect)?;
    let code_challenge = get("code_challenge")?;
    let method = get("code_challenge_method")?;
    match (&code_challenge, method.as_deref()) {
        (None, _) if !client.confidential => {
            return Err(redirect(OAuthError::invalid_request(
                "Public clients must use PKCE (code_challenge with S256).",
            )))
        }
        (None, None) => {}
        (None, Some(_)) => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge is missing.",
            )))
        }
        (Some(challenge), Some("S256")) => {
            let well_formed = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(redirect(OAuthError::invalid_request(
                    "code_challenge must be a base64url SHA-256 (43 characters).",
                )));
            }
        }
        (Some(_), _) => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge_method must be S256.",
            )))
        }
    }
    let prompts: Vec<String> = get("prompt")?
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    for prompt in &prompts {
        if !["none", "login", "consent", "select_account"].contains(&prompt.as_str()) {
            return Err(redirect(OAuthError::invalid_request(format!(
                "Unknown prompt {prompt:?}."
            ))));
        }
    }
    let prompt_none = prompts.iter().any(|p| p == "none");
    if prompt_none && prompts.len() > 1 {
        return Err(redirect(OAuthError::invalid_request(
            "prompt=none cannot be combined.",
        )));
    }
    let number = |name: &str| -> Result<Option<i64>, Refusal> {
        match get(name)? {
            None => Ok(None),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| {
                    redirect(OAuthError::invalid_request(format!(
                        "{name} must be a number of seconds."
                    )))
                }),
        }
    };
    Ok(AuthorizeRequest {
        max_age: number("max_age")?,
        login_after: number(LOGIN_AFTER)?,
        nonce: get("nonce")?,
        login_hint: get("login_hint")?,
        prompt_login: prompts.iter().any(|p| p == "login"),
        prompt_none,
        code_challenge,
        scope,
        state: client_state.clone(),
        redirect_uri,
        client,
    })
}

/// What the person has to do before a code can be issued.
#[derive(Debug, PartialEq, Eq)]
pub enum Needs {
    /// Sign in (again, when `fresh`: prompt=login or max_age exceeded).
    SignIn {
        fresh: bool,
    },
    AcceptTerms,
    Nothing,
}

pub async fn needs(
    state: &AppState,
    request: &AuthorizeRequest,
    current: Option<&CurrentSession>,
) -> Result<Needs, ApiError> {
    let Some(current) = current else {
        return Ok(Needs::SignIn { fresh: false });
    };
    let now = now_ms();
    let signed_in_at = current.session.created_at;
    if let Some(after) = request.login_after {
        // Back from a forced sign-in: the session must be at least that recent.
        if signed_in_at < after {
            return Ok(Needs::SignIn { fresh: true });
        }
    } else if request.prompt_login {
        return Ok(Needs::SignIn { fresh: true });
    }
    if let Some(max_age) = request.max_age {
        if now - signed_in_at > max_age * 1000 && request.login_after.is_none() {
            return Ok(Needs::SignIn { fresh: true });
        }
    }
    if crate::identity::flows::terms_required(state, &current.account)
        .await?
        .is_some()
    {
        return Ok(Needs::AcceptTerms);
    }
    Ok(Needs::Nothing)
}

/// The URL to come back to after signing in: the same request, with `prompt=login`
/// replaced by the time from which a sign-in counts.
pub fn return_url(params: &Params, fresh: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.pairs() {
        if name == LOGIN_AFTER || (fresh && name == "prompt") {
            continue;
        }
        query.append_pair(name, value);
    }
    if fresh {
        query.append_pair(LOGIN_AFTER, &now_ms().to_string());
    }
    format!("/oauth2/authorize?{}", query.finish())
}

/// Issues a single-use code and answers with the client's redirect URI carrying it.
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizeRequest,
    current: &CurrentSession,
) -> Result<String, ApiError> {
    let code = tokens::issue();
    let now = now_ms();
    let mut conn = state.db.writer().await?;
    store::insert_code(
        &mut conn,
        &NewCode {
            code_hash: &code.hash,
            client_id: &request.client.client_id,
            account_id: current.account.id,
            redirect_uri: &request.redirect_uri,
            scope: &request.scope,
            nonce: request.nonce.as_deref(),
            code_challenge: request.code_challenge.as_deref(),
            auth_time: current.session.created_at,
            created_at: now,
            expires_at: now + state.config.oidc.authorization_code_ttl_secs * 1000,
        },
    )
    .await?;
    Ok(redirect_to(
        state,
        &request.redirect_uri,
        &[("code", code.secret.as_str())],
        request.state.as_deref(),
    ))
}

/// The redirect URI with response parameters, `state` and `iss` (RFC 9207) added.
pub fn redirect_to(
    state: &AppState,
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    client_state: Option<&str>,
) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(client_state) = client_state {
            query.append_pair("state", client_state);
        }
        query.append_pair("iss", &state.oidc.issuer);
    }
    url.to_string()
}

/// The redirect that tells the client why its request failed.
pub fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &OAuthError,
) -> String {
    redirect_to(
        state,
        redirect_uri,
        &[
            ("error", error.error),
            ("error_description", &error.description),
        ],
        client_state,
    )
}

/// A grant id from an ID token's `sid`, as RP-initiated logout receives it.
pub fn grant_of_id_token(claims: &serde_json::Value) -> Option<Uuid> {
    claims["sid"].as_str().and_then(|s| Uuid::parse_str(s).ok())
}
