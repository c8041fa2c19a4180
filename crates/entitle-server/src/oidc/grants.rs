//! The token endpoint's rules: client authentication, each grant type, and the tokens
//! they issue; also revocation, introspection and reading access tokens back.

use std::{collections::HashMap, sync::Arc};

use axum::http::{header, HeaderMap};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    clients::{
        self, ClientRow, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, DEVICE_CODE, REFRESH_TOKEN,
    },
    keys::Alg,
    rotation::Rotation,
    scope_has,
    store::{self, GrantRow},
    AccessClaims, OAuthError, Params,
};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::{now_ms, DbError, Executor},
    identity::{store::AccountRow, tokens},
    on_db,
};

/// The successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Finds the client and checks its credentials: `client_secret_basic`,
/// `client_secret_post`, or `none` for public clients.
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<ClientRow>, OAuthError> {
    let basic = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => Some(parse_basic(value).ok_or_else(|| OAuthError::invalid_client(true))?),
        None => None,
    };
    let posted_id = params.get("client_id")?;
    let posted_secret = params.get("client_secret")?;
    let (client_id, secret, via_basic) = match (basic, posted_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method, not both Basic and client_secret.",
            ))
        }
        (Some((id, secret)), None) => {
            if posted_id.is_some_and(|posted| posted != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client.",
                ));
            }
            (id, Some(secret), true)
        }
        (None, secret) => match posted_id {
            Some(id) => (id.to_owned(), secret.map(str::to_owned), false),
            None => return Err(OAuthError::invalid_client(false)),
        },
    };
    let client = state
        .oidc
        .clients
        .get(&state.db, &client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client(via_basic))?;
    let authenticated = match (&secret, client.confidential) {
        (Some(secret), true) => clients::secret_matches(&client, secret),
        (None, false) => true,
        // A public client has no secret to present; a confidential one must present it.
        _ => false,
    };
    if !authenticated {
        return Err(OAuthError::invalid_client(via_basic));
    }
    Ok(client)
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let id = unescape(id)?;
    (!id.is_empty()).then_some(())?;
    Some((id, unescape(secret)?))
}

/// The scope a client may have out of `requested`: every scope must be registered for
/// the client, and `offline_access` needs the refresh_token grant.
pub fn grantable_scope(client: &ClientRow, requested: &str) -> Result<String, OAuthError> {
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !client.allows_scope(scope) {
            return Err(OAuthError::invalid_scope(format!(
                "The scope {scope:?} is not available to this client."
            )));
        }
        if scope == "offline_access" && !client.allows_grant(REFRESH_TOKEN) {
            continue;
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(granted.join(" "))
}

/// A person and what tokens say about them.
#[derive(Debug, Clone)]
pub struct Subject {
    pub account: AccountRow,
    pub roles: Vec<String>,
    /// Newer Terms of Service were published that the person has not accepted: nothing
    /// is issued to them until they sign in and accept.
    pub owes_terms: bool,
}

pub async fn load_subject(
    ex: &mut impl Executor,
    account_id: Uuid,
) -> Result<Option<Subject>, OAuthError> {
    Ok(subjects_of(ex, &[account_id]).await?.remove(&account_id))
}

/// The active accounts among `ids` with their roles in their home organization and
/// whether each owes acceptance of the current terms, in one query.
pub async fn subjects_of(
    ex: &mut impl Executor,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Subject>, DbError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        account: AccountRow,
        role: Option<String>,
        current_terms: Option<String>,
    }
    let Some(first) = ids.first() else {
        return Ok(HashMap::new());
    };
    // Padded to a power of two (repeating an id changes nothing), so a handful of
    // statement shapes stay in the prepared-statement cache.
    let mut ids = ids.to_vec();
    ids.resize(ids.len().next_power_of_two(), *first);
    let columns = crate::identity::store::account_columns_of("a");
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {}, r.role, (SELECT t.version FROM terms_versions t \
         ORDER BY t.published_at DESC, t.version DESC LIMIT 1) AS current_terms \
         FROM accounts a \
         LEFT JOIN org_member_roles r ON r.account_id = a.id AND r.org_id = a.home_org_id \
         WHERE a.id IN ({}) ORDER BY r.role",
        columns,
        placeholders.join(", ")
    );
    let rows: Vec<Row> = on_db!(ex, |c| {
        let mut query = sqlx::query_as(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        query.fetch_all(c).await
    })?;
    let mut subjects: HashMap<Uuid, Subject> = HashMap::new();
    for row in rows.into_iter().filter(|r| r.account.is_active()) {
        let subject = subjects.entry(row.account.id).or_insert_with(|| Subject {
            owes_terms: row.current_terms.is_some()
                && row.account.tos_accepted_version != row.current_terms,
            account: row.account.clone(),
            roles: Vec::new(),
        });
        subject.roles.extend(row.role);
    }
    Ok(subjects)
}

/// A person tokens may be issued to: active, and bound by the current terms.
fn issuable(subject: Option<Subject>) -> Result<Subject, OAuthError> {
    let subject =
        subject.ok_or_else(|| OAuthError::invalid_grant("The account is no longer active."))?;
    if subject.owes_terms {
        return Err(OAuthError::invalid_grant(
            "New Terms of Service were published: sign in again and accept them.",
        ));
    }
    Ok(subject)
}

/// What the issued tokens are for.
pub struct Issue<'a> {
    pub client: &'a ClientRow,
    pub subject: Option<&'a Subject>,
    pub scope: &'a str,
    pub grant: Option<&'a GrantRow>,
    pub nonce: Option<&'a str>,
    /// The refresh token's generation, when one is issued.
    pub refresh_generation: Option<i64>,
}

pub fn issue(state: &AppState, issue: Issue<'_>) -> Result<TokenResponse, OAuthError> {
    let provider = &state.oidc;
    let keys = provider.keys.current();
    let now = now_ms() / 1000;
    let client = issue.client;
    let access_ttl = client.access_token_ttl_secs;
    let (sub, org, roles) = match issue.subject {
        Some(s) => (
            s.account.id.to_string(),
            s.account.home_org_id,
            s.roles.clone(),
        ),
        None => (client.client_id.clone(), client.org_id, Vec::new()),
    };
    let access_claims = AccessClaims {
        iss: provider.issuer.clone(),
        sub: sub.clone(),
        aud: provider.issuer.clone(),
        exp: now + access_ttl,
        iat: now,
        jti: Uuid::new_v4(),
        client_id: client.client_id.clone(),
        scope: issue.scope.to_owned(),
        auth_time: issue.grant.map(|g| g.auth_time / 1000),
        sid: issue.grant.map(|g| g.id),
        org,
        roles,
    };
    let access_alg = Alg::parse(&state.config.oidc.access_token_alg).unwrap_or(Alg::Es256);
    let access_token = keys.signing(access_alg)?.sign("at+jwt", &access_claims)?;
    let id_token = match (issue.subject, issue.grant) {
        (Some(subject), Some(grant)) if scope_has(issue.scope, "openid") => {
            let claims = IdClaims {
                iss: &provider.issuer,
                sub: &sub,
                aud: &client.client_id,
                azp: &client.client_id,
                exp: now + state.config.oidc.id_token_ttl_secs,
                iat: now,
                auth_time: grant.auth_time / 1000,
                sid: grant.id,
                at_hash: at_hash(&access_token),
                nonce: issue.nonce,
                person: PersonClaims::of(subject, issue.scope),
            };
            let alg = Alg::parse(&client.id_token_alg).unwrap_or(Alg::Rs256);
            Some(keys.signing(alg)?.sign("JWT", &claims)?)
        }
        _ => None,
    };
    let refresh_token = match (issue.grant, issue.refresh_generation) {
        (Some(grant), Some(generation)) => Some(provider.refresh_token(grant.id, generation)),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: access_ttl,
        scope: issue.scope.to_owned(),
        id_token,
        refresh_token,
    })
}

/// The claims of an ID token (OpenID Connect Core §2).
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    sid: Uuid,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(flatten)]
    person: PersonClaims<'a>,
}

/// The person's claims a scope releases, for ID tokens and userinfo.
#[derive(Serialize, Default)]
pub struct PersonClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    /// Present (possibly null) with the `org` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<Option<Uuid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
}

impl<'a> PersonClaims<'a> {
    pub fn of(subject: &'a Subject, scope: &str) -> PersonClaims<'a> {
        let account = &subject.account;
        let mut claims = PersonClaims::default();
        if scope_has(scope, "email") {
            claims.email = Some(&account.email);
            claims.email_verified = Some(account.email_verified);
        }
        if scope_has(scope, "profile") {
            claims.given_name = Some(&account.first_name);
            claims.family_name = Some(&account.last_name);
            claims.name = Some(format!("{} {}", account.first_name, account.last_name));
            claims.country = Some(&account.country);
        }
        if scope_has(scope, "org") {
            claims.org = Some(account.home_org_id);
            claims.roles = Some(&subject.roles);
        }
        claims
    }
}

/// OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token.
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The token endpoint: dispatches on `grant_type`.
pub async fn token(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    from: &Client,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = params.required("grant_type")?;
    if !clients::GRANT_TYPES.contains(&grant_type) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("The grant type {grant_type:?} is not supported."),
        ));
    }
    let client = authenticate_client(state, headers, params).await?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::unauthorized_client(grant_type));
    }
    let issued = match grant_type {
        AUTHORIZATION_CODE => authorization_code(state, &client, params, from).await,
        REFRESH_TOKEN => refresh_token(state, &client, params).await,
        CLIENT_CREDENTIALS => client_credentials(state, &client, params),
        _ => device_code(state, &client, params, from).await,
    };
    if issued.is_ok() {
        crate::metrics::token_issued(grant_type);
    }
    issued
}

/// A new grant for a person signed in to a client, with a refresh token when
/// `offline_access` was granted.
#[allow(clippy::too_many_arguments)]
async fn open_grant(
    ex: &mut impl Executor,
    client: &ClientRow,
    account: &AccountRow,
    scope: &str,
    auth_time: i64,
    from: &Client,
    now: i64,
    via: &str,
) -> Result<GrantRow, OAuthError> {
    let offline = scope_has(scope, "offline_access");
    let lifetime = if offline {
        client.refresh_token_ttl_secs
    } else {
        client.access_token_ttl_secs
    };
    let grant = GrantRow {
        id: Uuid::now_v7(),
        account_id: account.id,
        client_id: client.client_id.clone(),
        scope: scope.to_owned(),
        auth_time,
        generation: 0,
        offline,
        created_at: now,
        last_used_at: now,
        expires_at: now + lifetime * 1000,
        revoked_at: None,
        ip: Some(from.ip.clone()),
        user_agent: from.user_agent.clone(),
    };
    store::insert_grant(ex, &grant).await?;
    audit::record(
        ex,
        &Actor {
            id: Some(account.id),
            label: Some(account.email.clone()),
            ip: Some(from.ip.clone()),
        },
        Entry {
            action: "oidc.client_signed_in",
            target_type: "client",
            target_id: Some(client.id),
            target_label: Some(&client.client_id),
            org_id: None,
            details: json!({ "grant": grant.id, "scope": scope, "via": via }),
        },
    )
    .await?;
    Ok(grant)
}

async fn authorization_code(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
    from: &Client,
) -> Result<TokenResponse, OAuthError> {
    let code = params.required("code")?;
    let redirect_uri = params.get("redirect_uri")?;
    let verifier = params.get("code_verifier")?;
    let hash = tokens::hash(code);
    let now = now_ms();
    let row = {
        let mut conn = state.db.reader().await?;
        store::code_by_hash(&mut conn, &hash).await?
    };
    let Some(row) = row.filter(|r| r.client_id == client.client_id) else {
        return Err(OAuthError::invalid_grant(
            "The authorization code is invalid.",
        ));
    };
    if row.used_at.is_some() {
        revoke_replayed(state, row.grant_id, "authorization code replayed").await?;
        return Err(OAuthError::invalid_grant(
            "The authorization code was already used; the tokens it issued are revoked.",
        ));
    }
    if row.expires_at <= now {
        return Err(OAuthError::invalid_grant(
            "The authorization code has expired.",
        ));
    }
    if redirect_uri != Some(row.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the one in the authorization request.",
        ));
    }
    check_pkce(row.code_challenge.as_deref(), verifier)?;
    let subject = issuable({
        let mut conn = state.db.reader().await?;
        load_subject(&mut conn, row.account_id).await?
    })?;
    let mut tx = state.db.begin().await?;
    let grant = open_grant(
        &mut tx,
        client,
        &subject.account,
        &row.scope,
        row.auth_time,
        from,
        now,
        AUTHORIZATION_CODE,
    )
    .await?;
    if !store::use_code(&mut tx, &hash, grant.id, now).await? {
        drop(tx);
        // Another request redeemed it a moment ago: that is a replay too.
        let used = {
            let mut conn = state.db.reader().await?;
            store::code_by_hash(&mut conn, &hash).await?
        };
        revoke_replayed(
            state,
            used.and_then(|u| u.grant_id),
            "authorization code replayed",
        )
        .await?;
        return Err(OAuthError::invalid_grant(
            "The authorization code was already used.",
        ));
    }
    tx.commit().await?;
    issue_first(state, client, &subject, &grant, row.nonce.as_deref())
}

/// The first tokens of a new grant: a refresh token of generation 0 when offline.
fn issue_first(
    state: &AppState,
    client: &ClientRow,
    subject: &Subject,
    grant: &GrantRow,
    nonce: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    issue(
        state,
        Issue {
            client,
            subject: Some(subject),
            scope: &grant.scope,
            grant: Some(grant),
            nonce,
            refresh_generation: grant.offline.then_some(0),
        },
    )
}

/// PKCE (RFC 7636) with S256 only.
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier given, but the authorization request had no code_challenge.",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is missing.")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if well_formed && tokens::constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge.",
                ))
            }
        }
    }
}

/// Revokes a grant whose code or refresh token was presented again, and records why.
async fn revoke_replayed(
    state: &AppState,
    grant_id: Option<Uuid>,
    why: &str,
) -> Result<(), OAuthError> {
    let Some(grant_id) = grant_id else {
        return Ok(());
    };
    let mut tx = state.db.begin().await?;
    if store::revoke_grant(&mut tx, grant_id, now_ms()).await? {
        audit::record(
            &mut tx,
            &Actor::system(),
            Entry {
                action: "oidc.grant_revoked",
                target_type: "grant",
                target_id: Some(grant_id),
                target_label: None,
                org_id: None,
                details: json!({ "reason": why }),
            },
        )
        .await?;
        tracing::warn!(grant = %grant_id, reason = why, "revoked a token family");
    }
    tx.commit().await?;
    Ok(())
}

async fn refresh_token(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.required("refresh_token")?;
    let invalid = || OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.");
    let (grant_id, generation) = state
        .oidc
        .parse_refresh_token(presented)
        .ok_or_else(invalid)?;
    let requested_scope = params.get("scope")?;
    if let Some(requested) = requested_scope {
        // Checked before rotating, so a refused request changes nothing.
        let grant = {
            let mut conn = state.db.reader().await?;
            store::grant_by_id(&mut conn, grant_id).await?
        }
        .ok_or_else(invalid)?;
        for scope in requested.split(' ').filter(|s| !s.is_empty()) {
            if !scope_has(&grant.scope, scope) {
                return Err(OAuthError::invalid_scope(format!(
                    "The scope {scope:?} was not granted to this refresh token."
                )));
            }
        }
    }
    let rotation = Rotation {
        grant_id,
        generation,
        client_id: client.client_id.clone(),
    };
    let Some((rotated, subject)) = state.oidc.rotator.rotate(rotation).await? else {
        return Err(refused_refresh(state, client, grant_id, generation).await?);
    };
    let subject = issuable(subject)?;
    let grant = GrantRow {
        id: rotated.id,
        account_id: rotated.account_id,
        client_id: client.client_id.clone(),
        scope: rotated.scope,
        auth_time: rotated.auth_time,
        generation: generation + 1,
        offline: true,
        created_at: rotated.created_at,
        last_used_at: now_ms(),
        expires_at: rotated.expires_at,
        revoked_at: None,
        ip: None,
        user_agent: None,
    };
    let scope = requested_scope.unwrap_or(&grant.scope).to_owned();
    issue(
        state,
        Issue {
            client,
            subject: Some(&subject),
            scope: &scope,
            grant: Some(&grant),
            nonce: None,
            refresh_generation: Some(grant.generation),
        },
    )
}

/// Why a refresh token did not rotate. An older generation of a live grant is a
/// reuse: the whole family is revoked.
async fn refused_refresh(
    state: &AppState,
    client: &ClientRow,
    grant_id: Uuid,
    generation: i64,
) -> Result<OAuthError, OAuthError> {
    let grant = {
        let mut conn = state.db.reader().await?;
        store::grant_by_id(&mut conn, grant_id).await?
    };
    let reused = grant.as_ref().is_some_and(|g| {
        g.client_id == client.client_id && g.revoked_at.is_none() && generation < g.generation
    });
    if reused {
        revoke_replayed(state, Some(grant_id), "rotated refresh token reused").await?;
        return Ok(OAuthError::invalid_grant(
            "This refresh token was already used; every token of its family is revoked.",
        ));
    }
    Ok(OAuthError::invalid_grant(
        "The refresh token is invalid, expired or revoked.",
    ))
}

fn client_credentials(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let requested = params.get("scope")?.unwrap_or_default();
    let scope = grantable_scope(client, requested)?;
    for person_scope in ["openid", "offline_access", "profile", "email"] {
        if scope_has(&scope, person_scope) {
            return Err(OAuthError::invalid_scope(format!(
                "The scope {person_scope} is about a person; client_credentials has none."
            )));
        }
    }
    issue(
        state,
        Issue {
            client,
            subject: None,
            scope: &scope,
            grant: None,
            nonce: None,
            refresh_generation: None,
        },
    )
}

/// Characters of user codes: no vowels (no words), no look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

pub fn new_user_code() -> String {
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char)
        .collect()
}

/// What a person types, normalized: case, dashes and spaces do not matter.
pub fn normalize_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

pub fn display_user_code(code: &str) -> String {
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

#[derive(Debug, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// RFC 8628 §3.1–3.2: a device code for the client to poll with, a user code for the person.
pub async fn device_authorization(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<DeviceAuthorization, OAuthError> {
    let client = authenticate_client(state, headers, params).await?;
    if !client.allows_grant(DEVICE_CODE) {
        return Err(OAuthError::unauthorized_client(DEVICE_CODE));
    }
    let scope = grantable_scope(&client, params.get("scope")?.unwrap_or("openid"))?;
    let config = &state.config.oidc;
    let now = now_ms();
    let device_code = tokens::issue();
    let mut conn = state.db.writer().await?;
    for _ in 0..5 {
        let row = store::DeviceRow {
            device_code_hash: device_code.hash.clone(),
            user_code: new_user_code(),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            expires_at: now + config.device_code_ttl_secs * 1000,
            interval_secs: config.device_poll_interval_secs,
            last_polled_at: None,
            account_id: None,
            auth_time: None,
            approved: None,
            consumed_at: None,
        };
        match store::insert_device(&mut conn, &row, now).await {
            Ok(()) => {
                let verification_uri = format!("{}/device", state.config.public_base());
                return Ok(DeviceAuthorization {
                    device_code: device_code.secret,
                    user_code: display_user_code(&row.user_code),
                    verification_uri_complete: format!(
                        "{verification_uri}?user_code={}",
                        row.user_code
                    ),
                    verification_uri,
                    expires_in: config.device_code_ttl_secs,
                    interval: config.device_poll_interval_secs,
                });
            }
            // A live user code collided: draw another.
            Err(error) if error.is_unique_violation() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(anyhow::anyhow!("could not draw a free user code").into())
}

async fn device_code(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
    from: &Client,
) -> Result<TokenResponse, OAuthError> {
    let hash = tokens::hash(params.required("device_code")?);
    let now = now_ms();
    let row = {
        let mut conn = state.db.reader().await?;
        store::device_by_hash(&mut conn, &hash).await?
    };
    let Some(row) = row.filter(|r| r.client_id == client.client_id) else {
        return Err(OAuthError::invalid_grant("The device code is invalid."));
    };
    if row.consumed_at.is_some() {
        return Err(OAuthError::invalid_grant(
            "The device code was already used.",
        ));
    }
    if row.expires_at <= now {
        return Err(OAuthError::new(
            "expired_token",
            "The device code has expired; start again.",
        ));
    }
    match (row.approved, row.account_id) {
        (Some(true), Some(account_id)) => {
            let subject = issuable({
                let mut conn = state.db.reader().await?;
                load_subject(&mut conn, account_id).await?
            })?;
            let mut tx = state.db.begin().await?;
            if !store::consume_device(&mut tx, &hash, now).await? {
                return Err(OAuthError::invalid_grant(
                    "The device code was already used.",
                ));
            }
            let grant = open_grant(
                &mut tx,
                client,
                &subject.account,
                &row.scope,
                row.auth_time.unwrap_or(now),
                from,
                now,
                DEVICE_CODE,
            )
            .await?;
            tx.commit().await?;
            issue_first(state, client, &subject, &grant, None)
        }
        (Some(_), _) => Err(OAuthError::new(
            "access_denied",
            "The person declined the request.",
        )),
        _ => {
            let too_soon = row
                .last_polled_at
                .is_some_and(|last| now - last < row.interval_secs * 1000);
            let interval = if too_soon {
                row.interval_secs + 5
            } else {
                row.interval_secs
            };
            let mut conn = state.db.writer().await?;
            store::record_poll(&mut conn, &hash, now, interval).await?;
            Err(if too_soon {
                OAuthError::new(
                    "slow_down",
                    format!("Poll at most every {interval} seconds."),
                )
            } else {
                OAuthError::new("authorization_pending", "The person has not answered yet.")
            })
        }
    }
}

/// Access tokens whose signature, issuer, audience and type were checked, by their
/// SHA-256, until they expire or their key is no longer published: an application
/// presenting the same token again (a lease heartbeat every few minutes) is not verified
/// again. Whether the token is revoked, its grant live and its client enabled is still
/// asked on every request.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: std::sync::RwLock<HashMap<[u8; 32], (AccessClaims, String)>>,
}

/// The most verified tokens kept; past it, the expired ones go (or all, if none has).
const VERIFIED_MAX: usize = 50_000;

impl VerifiedTokens {
    /// The claims of a token verified before with the key `kid`, if `known(kid)` still.
    fn get(
        &self,
        digest: &[u8; 32],
        now_secs: i64,
        known: impl Fn(&str) -> bool,
    ) -> Option<AccessClaims> {
        let entries = self.entries.read().ok()?;
        entries
            .get(digest)
            .filter(|(claims, kid)| claims.exp > now_secs && known(kid))
            .map(|(claims, _)| claims.clone())
    }

    fn insert(&self, digest: [u8; 32], claims: AccessClaims, kid: String, now_secs: i64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= VERIFIED_MAX {
                entries.retain(|_, (c, _)| c.exp > now_secs);
                if entries.len() >= VERIFIED_MAX {
                    entries.clear();
                }
            }
            entries.insert(digest, (claims, kid));
        }
    }
}

/// The claims of an access token this server signed, still within its lifetime, of a
/// client that is enabled; not yet whether it was revoked.
async fn verified_access_claims(
    state: &AppState,
    token: &str,
) -> Result<Option<AccessClaims>, OAuthError> {
    use sha2::Digest;
    let provider = &state.oidc;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now_secs = now_ms() / 1000;
    let keys = provider.keys.current();
    let claims = match provider
        .verified
        .get(&digest, now_secs, |kid| keys.knows(kid))
    {
        Some(claims) => claims,
        None => {
            let Ok(header) = jsonwebtoken::decode_header(token) else {
                return Ok(None);
            };
            if header.typ.as_deref() != Some("at+jwt") {
                return Ok(None);
            }
            let keys = provider
                .keys
                .for_kid(&state.db, header.kid.as_deref())
                .await;
            let Ok(claims) =
                keys.verify::<AccessClaims>(token, &provider.issuer, Some(&provider.issuer), true)
            else {
                return Ok(None);
            };
            if let Some(kid) = header.kid {
                provider
                    .verified
                    .insert(digest, claims.clone(), kid, now_secs);
            }
            claims
        }
    };
    if provider
        .clients
        .get(&state.db, &claims.client_id)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// An access token this server issued that is still good: signature, issuer, audience,
/// expiry, type, not revoked, its grant live and its client enabled.
pub async fn read_access_token(
    state: &AppState,
    token: &str,
) -> Result<Option<AccessClaims>, OAuthError> {
    let Some(claims) = verified_access_claims(state, token).await? else {
        return Ok(None);
    };
    let sql = format!(
        "WITH t (jti, grant_id) AS (VALUES ($1, $2)) SELECT {} FROM t",
        token_still_good("t")
    );
    let mut conn = state.db.reader().await?;
    let (live,): (bool,) = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(claims.jti)
        .bind(claims.sid)
        .fetch_one(c)
        .await)
    .map_err(DbError::from)?;
    Ok(live.then_some(claims))
}

/// An access token of a signed-in person whose signature, issuer, audience, expiry and
/// client were checked: whom it stands for, and what decides whether it is still good
/// ([`people_of_tokens`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PersonToken {
    pub account_id: Uuid,
    pub grant_id: Uuid,
    pub jti: Uuid,
}

/// The [`PersonToken`] of `token`; none for a token that is not good, or of a client.
pub async fn person_token(
    state: &AppState,
    token: &str,
) -> Result<Option<PersonToken>, OAuthError> {
    let Some(claims) = verified_access_claims(state, token).await? else {
        return Ok(None);
    };
    let (Some(grant_id), Ok(account_id)) = (claims.sid, Uuid::parse_str(&claims.sub)) else {
        return Ok(None);
    };
    Ok(Some(PersonToken {
        account_id,
        grant_id,
        jti: claims.jti,
    }))
}

#[derive(sqlx::FromRow)]
struct TokenPerson {
    token_jti: Uuid,
    #[sqlx(flatten)]
    account: AccountRow,
}

/// The SQL condition that an access token, the `jti` and `grant_id` columns of `alias`,
/// is still good: not revoked, and its grant (none for a service client's) live. With
/// [`AccountRow::is_active`] for a person's ([`person_token_still_good`]), the rule every
/// use of an access token is checked by.
pub fn token_still_good(alias: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM oauth_revoked_tokens r WHERE r.jti = {alias}.jti) \
         AND ({alias}.grant_id IS NULL OR EXISTS (SELECT 1 FROM oauth_grants g \
           WHERE g.id = {alias}.grant_id AND g.revoked_at IS NULL))"
    )
}

/// The SQL condition that a person's access token, the `jti` and `grant_id` columns of
/// `token`, is still good ([`token_still_good`]) and their account, `account`, active.
pub fn person_token_still_good(token: &str, account: &str) -> String {
    format!(
        "{} AND {}",
        token_still_good(token),
        AccountRow::is_active_sql(account)
    )
}

/// The people of those `tokens` that are still good ([`token_still_good`], their account
/// active) by token id; one query for any number of tokens (at most a few thousand). A
/// revoked grant or a disabled account is refused from the next request.
pub async fn people_of_tokens(
    ex: &mut impl Executor,
    tokens: &[PersonToken],
) -> Result<HashMap<Uuid, AccountRow>, DbError> {
    if tokens.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "WITH t (account_id, grant_id, jti) AS (VALUES {}) \
         SELECT t.jti AS token_jti, {} FROM t JOIN accounts a ON a.id = t.account_id WHERE {}",
        crate::db::value_rows(ex, tokens.len(), 3),
        crate::identity::store::account_columns_of("a"),
        person_token_still_good("t", "a")
    );
    let found: Vec<TokenPerson> = on_db!(ex, |c| {
        let mut query = sqlx::query_as(&sql);
        for token in tokens {
            query = query
                .bind(token.account_id)
                .bind(token.grant_id)
                .bind(token.jti);
        }
        query.fetch_all(c).await
    })?;
    Ok(found
        .into_iter()
        .map(|found| (found.token_jti, found.account))
        .collect())
}

/// The person an access token of a signed-in person stands for, if the token is still
/// good ([`person_token`], [`people_of_tokens`]).
pub async fn person_of_access_token(
    state: &AppState,
    token: &str,
) -> Result<Option<AccountRow>, OAuthError> {
    let Some(token) = person_token(state, token).await? else {
        return Ok(None);
    };
    let mut conn = state.db.reader().await?;
    Ok(people_of_tokens(&mut conn, &[token])
        .await?
        .remove(&token.jti))
}

/// RFC 7009: revokes a refresh token's family or an access token, if this client's.
/// Unknown tokens are not an error.
pub async fn revoke(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
) -> Result<(), OAuthError> {
    let token = params.required("token")?;
    let now = now_ms();
    if let Some((grant_id, _)) = state.oidc.parse_refresh_token(token) {
        let mut conn = state.db.writer().await?;
        if let Some(grant) = store::grant_by_id(&mut conn, grant_id).await? {
            if grant.client_id == client.client_id {
                store::revoke_grant(&mut conn, grant.id, now).await?;
            }
        }
        return Ok(());
    }
    if let Some(claims) = read_access_token(state, token).await? {
        if claims.client_id == client.client_id {
            let mut conn = state.db.writer().await?;
            store::revoke_access_token(&mut conn, claims.jti, claims.exp * 1000 + 60_000).await?;
        }
    }
    Ok(())
}

/// Whether `caller` may learn what a token of `token_client` is: its own tokens, or any
/// token when it is registered as a resource server.
pub fn may_introspect(caller: &ClientRow, token_client: &str) -> bool {
    caller.resource_server || caller.client_id == token_client
}

/// RFC 7662 for confidential clients: what a token is, or `{"active": false}` (also for
/// tokens the caller may not introspect, so it learns nothing of them).
pub async fn introspect(
    state: &AppState,
    client: &ClientRow,
    params: &Params,
) -> Result<Value, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::invalid_client(false));
    }
    let token = params.required("token")?;
    let inactive = json!({ "active": false });
    let now = now_ms();
    if let Some((grant_id, generation)) = state.oidc.parse_refresh_token(token) {
        let mut conn = state.db.reader().await?;
        let Some(grant) = store::grant_by_id(&mut conn, grant_id).await? else {
            return Ok(inactive);
        };
        if !grant.is_live(now)
            || !grant.offline
            || grant.generation != generation
            || !may_introspect(client, &grant.client_id)
        {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": grant.scope,
            "client_id": grant.client_id,
            "sub": grant.account_id,
            "exp": grant.expires_at / 1000,
            "iat": grant.last_used_at / 1000,
            "iss": state.oidc.issuer,
            "sid": grant.id,
        }));
    }
    Ok(match read_access_token(state, token).await? {
        Some(claims) if may_introspect(client, &claims.client_id) => {
            let mut answer = serde_json::to_value(&claims).map_err(anyhow::Error::from)?;
            answer["active"] = json!(true);
            answer["token_type"] = json!("Bearer");
            answer
        }
        _ => inactive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_accepts_only_the_matching_s256_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(check_pkce(Some(challenge), Some(&verifier.replace('d', "e"))).is_err());
        assert!(check_pkce(Some(challenge), None).is_err());
        assert!(check_pkce(None, Some(verifier)).is_err());
        assert!(check_pkce(Some(challenge), Some("short")).is_err());
        assert!(check_pkce(None, None).is_ok());
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret"));
        assert_eq!(
            parse_basic(&header),
            Some(("my client".to_owned(), "s:cret".to_owned()))
        );
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(
            parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))),
            None
        );
        assert_eq!(parse_basic("Bearer x"), None);
    }

    #[test]
    fn user_codes_are_typed_forgivingly() {
        let code = new_user_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        let shown = display_user_code(&code);
        assert_eq!(normalize_user_code(&shown.to_lowercase()), code);
        assert_eq!(normalize_user_code(" bcdf ghjk "), "BCDFGHJK");
    }
}
