//! Registered clients: who may ask for tokens, where codes may be sent, and how a
//! client proves who it is at the token endpoint.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use entitle_proto::{ClientRegistration, OAuthClient};
use uuid::Uuid;

use crate::{
    db::{now_ms, Db, DbError, Executor},
    error::ApiError,
    execute,
    identity::{flows::Fields, tokens},
    on_db,
};

pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const GRANT_TYPES: [&str; 4] = [
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    CLIENT_CREDENTIALS,
    DEVICE_CODE,
];

/// The scopes this provider knows; `org` adds the organization and roles to tokens.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "org"];

/// The `entitle` desktop client: public, loopback redirects, device flow, automatic sign-in.
pub const DESKTOP_CLIENT_ID: &str = "entitle-desktop";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: Uuid,
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub secret_hash: Option<Vec<u8>>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub org_id: Option<Uuid>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub id_token_alg: String,
    pub resource_server: bool,
    pub built_in: bool,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

fn json_list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

impl ClientRow {
    pub fn redirect_uris(&self) -> Vec<String> {
        json_list(&self.redirect_uris)
    }

    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        json_list(&self.post_logout_redirect_uris)
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.split(' ').any(|g| g == grant_type)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.split(' ').any(|s| s == scope)
    }

    /// Exact match, except that a registered loopback redirect accepts any port (RFC 8252 §7.3).
    pub fn redirect_uri_allowed(&self, presented: &str) -> bool {
        self.redirect_uris()
            .iter()
            .any(|registered| redirect_matches(registered, presented))
    }

    pub fn to_proto(&self) -> OAuthClient {
        OAuthClient {
            id: self.id,
            client_id: self.client_id.clone(),
            name: self.name.clone(),
            confidential: self.confidential,
            redirect_uris: self.redirect_uris(),
            post_logout_redirect_uris: self.post_logout_redirect_uris(),
            grant_types: self.grant_types.split(' ').map(str::to_owned).collect(),
            scopes: self.scopes.split(' ').map(str::to_owned).collect(),
            org_id: self.org_id,
            access_token_ttl_secs: self.access_token_ttl_secs,
            refresh_token_ttl_secs: self.refresh_token_ttl_secs,
            id_token_signed_response_alg: self.id_token_alg.clone(),
            resource_server: self.resource_server,
            built_in: self.built_in,
            client_secret: None,
        }
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("[::1]") | Some("localhost")
    )
}

pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host_str() == p.host_str()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && p.username().is_empty()
        && p.password().is_none()
}

/// Limits of a registration, so that nothing unbounded is stored.
const MAX_URIS: usize = 20;
const MAX_URI_BYTES: usize = 2_000;
const MAX_SCOPES: usize = 50;
const MAX_SCOPE_BYTES: usize = 100;

/// A registration checked against the rules; `Err` names every bad field.
pub fn check_registration(
    request: &ClientRegistration,
    defaults: &crate::config::OidcConfig,
) -> Result<NewClient, ApiError> {
    let mut fields = Fields::default();
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        fields.add(
            "name",
            "invalid",
            "Give the client a name of 1 to 200 characters.",
        );
    }
    let grant_types: Vec<String> = if request.grant_types.is_empty() {
        vec![AUTHORIZATION_CODE.to_owned(), REFRESH_TOKEN.to_owned()]
    } else {
        request.grant_types.clone()
    };
    for grant in &grant_types {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            fields.add(
                "grant_types",
                "unsupported",
                format!(
                    "Unknown grant type {grant:?}; use {}.",
                    GRANT_TYPES.join(", ")
                ),
            );
        }
    }
    if !request.confidential && grant_types.iter().any(|g| g == CLIENT_CREDENTIALS) {
        fields.add(
            "grant_types",
            "confidential_only",
            "client_credentials needs a confidential client: a public client has no secret.",
        );
    }
    let uses_redirects = grant_types.iter().any(|g| g == AUTHORIZATION_CODE);
    if uses_redirects && request.redirect_uris.is_empty() {
        fields.add(
            "redirect_uris",
            "required",
            "The authorization_code grant needs at least one redirect URI.",
        );
    }
    for (field, uris) in [
        ("redirect_uris", &request.redirect_uris),
        (
            "post_logout_redirect_uris",
            &request.post_logout_redirect_uris,
        ),
    ] {
        if uris.len() > MAX_URIS {
            fields.add(field, "too_many", format!("At most {MAX_URIS} URIs."));
        }
    }
    for uri in request
        .redirect_uris
        .iter()
        .chain(&request.post_logout_redirect_uris)
        .take(2 * MAX_URIS)
    {
        if uri.len() > MAX_URI_BYTES {
            fields.add(
                "redirect_uris",
                "too_long",
                format!("A URI is at most {MAX_URI_BYTES} bytes."),
            );
            continue;
        }
        if let Err(message) = check_redirect_uri(uri) {
            fields.add("redirect_uris", "invalid", format!("{uri}: {message}"));
        }
    }
    let scopes: Vec<String> = if request.scopes.is_empty() {
        SCOPES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        request.scopes.clone()
    };
    if scopes.len() > MAX_SCOPES {
        fields.add(
            "scopes",
            "too_many",
            format!("At most {MAX_SCOPES} scopes."),
        );
    }
    for scope in scopes.iter().take(MAX_SCOPES) {
        if scope.len() > MAX_SCOPE_BYTES {
            fields.add(
                "scopes",
                "too_long",
                format!("A scope name is at most {MAX_SCOPE_BYTES} characters."),
            );
        } else if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            fields.add(
                "scopes",
                "invalid",
                format!("{scope:?} is not a valid scope name."),
            );
        }
    }
    let ttl = |value: Option<i64>, default: i64, field: &str, fields: &mut Fields| match value {
        Some(v) if !(1..=default.max(1)).contains(&v) => {
            fields.add(
                field,
                "out_of_range",
                format!("Must be between 1 and {default} seconds (the server's limit)."),
            );
            default
        }
        Some(v) => v,
        None => default,
    };
    let access_token_ttl_secs = ttl(
        request.access_token_ttl_secs,
        defaults.access_token_ttl_secs,
        "access_token_ttl_secs",
        &mut fields,
    );
    let refresh_token_ttl_secs = ttl(
        request.refresh_token_ttl_secs,
        defaults.refresh_token_ttl_secs,
        "refresh_token_ttl_secs",
        &mut fields,
    );
    let id_token_alg = request
        .id_token_signed_response_alg
        .clone()
        .unwrap_or_else(|| "RS256".to_owned());
    if super::keys::Alg::parse(&id_token_alg).is_none() {
        fields.add(
            "id_token_signed_response_alg",
            "unsupported",
            "Use RS256, ES256 or EdDSA.",
        );
    }
    if request.resource_server && !request.confidential {
        fields.add(
            "resource_server",
            "confidential_only",
            "A resource server introspects tokens with its secret: make it confidential.",
        );
    }
    fields.finish()?;
    Ok(NewClient {
        name: name.to_owned(),
        confidential: request.confidential,
        resource_server: request.resource_server,
        redirect_uris: request.redirect_uris.clone(),
        post_logout_redirect_uris: request.post_logout_redirect_uris.clone(),
        grant_types,
        scopes,
        org_id: request.org_id,
        access_token_ttl_secs,
        refresh_token_ttl_secs,
        id_token_alg,
    })
}

/// Absolute, no fragment; plain http only for loopback (native apps, RFC 8252).
fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(uri).map_err(|_| "not an absolute URL")?;
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err("plain http is allowed only for loopback addresses"),
        // Private-use schemes of native apps (com.example.app:/callback).
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("use https, a loopback http address or a reverse-domain private scheme"),
    }
}

pub struct NewClient {
    pub name: String,
    pub confidential: bool,
    pub resource_server: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub org_id: Option<Uuid>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub id_token_alg: String,
}

/// Stores a client; returns it with its secret (shown this once) when confidential.
pub async fn insert(
    ex: &mut impl Executor,
    new: NewClient,
    client_id: Option<&str>,
    built_in: bool,
) -> Result<(ClientRow, Option<String>), DbError> {
    let secret = new.confidential.then(tokens::issue);
    let row = ClientRow {
        id: Uuid::now_v7(),
        client_id: client_id
            .map(str::to_owned)
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
        name: new.name,
        confidential: new.confidential,
        secret_hash: secret.as_ref().map(|s| s.hash.clone()),
        redirect_uris: serde_json::to_string(&new.redirect_uris).unwrap_or_default(),
        post_logout_redirect_uris: serde_json::to_string(&new.post_logout_redirect_uris)
            .unwrap_or_default(),
        grant_types: new.grant_types.join(" "),
        scopes: new.scopes.join(" "),
        org_id: new.org_id,
        access_token_ttl_secs: new.access_token_ttl_secs,
        refresh_token_ttl_secs: new.refresh_token_ttl_secs,
        id_token_alg: new.id_token_alg,
        resource_server: new.resource_server,
        built_in,
        created_at: now_ms(),
        disabled_at: None,
    };
    execute!(ex, "INSERT INTO oauth_clients (id, client_id, name, confidential, secret_hash, redirect_uris, \
         post_logout_redirect_uris, grant_types, scopes, org_id, access_token_ttl_secs, \
         refresh_token_ttl_secs, id_token_alg, built_in, created_at, resource_server) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (client_id) DO NOTHING", row.id, &row.client_id, &row.name, row.confidential, &row.secret_hash, &row.redirect_uris, &row.post_logout_redirect_uris, &row.grant_types, &row.scopes, row.org_id, row.access_token_ttl_secs, row.refresh_token_ttl_secs, &row.id_token_alg, row.built_in, row.created_at, row.resource_server)?;
    Ok((row, secret.map(|s| s.secret)))
}

/// The built-in desktop client, created on first start.
pub async fn ensure_built_in(
    ex: &mut impl Executor,
    config: &crate::config::OidcConfig,
) -> Result<(), DbError> {
    let desktop = NewClient {
        name: "entitle desktop client".to_owned(),
        confidential: false,
        resource_server: false,
        redirect_uris: vec![
            "http://127.0.0.1/callback".to_owned(),
            "http://[::1]/callback".to_owned(),
        ],
        post_logout_redirect_uris: vec![],
        grant_types: vec![
            AUTHORIZATION_CODE.to_owned(),
            REFRESH_TOKEN.to_owned(),
            DEVICE_CODE.to_owned(),
        ],
        scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        org_id: None,
        access_token_ttl_secs: config.access_token_ttl_secs,
        refresh_token_ttl_secs: config.refresh_token_ttl_secs,
        id_token_alg: "RS256".to_owned(),
    };
    insert(ex, desktop, Some(DESKTOP_CLIENT_ID), true).await?;
    Ok(())
}

const COLUMNS: &str = "id, client_id, name, confidential, secret_hash, redirect_uris, \
    post_logout_redirect_uris, grant_types, scopes, org_id, access_token_ttl_secs, \
    refresh_token_ttl_secs, id_token_alg, resource_server, built_in, created_at, disabled_at";

pub async fn by_client_id(
    ex: &mut impl Executor,
    client_id: &str,
) -> Result<Option<ClientRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM oauth_clients WHERE client_id = $1 AND disabled_at IS NULL"
    ))
    .bind(client_id)
    .fetch_optional(c)
    .await)
    .map_err(Into::into)
}

pub async fn list(ex: &mut impl Executor) -> Result<Vec<ClientRow>, DbError> {
    on_db!(ex, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM oauth_clients WHERE disabled_at IS NULL ORDER BY created_at"
    ))
    .fetch_all(c)
    .await)
    .map_err(Into::into)
}

/// Disables a client: its tokens stop working and it cannot get new ones.
pub async fn disable(ex: &mut impl Executor, client_id: &str) -> Result<bool, DbError> {
    let now = now_ms();
    let changed = execute!(ex, "UPDATE oauth_clients SET disabled_at = $1 WHERE client_id = $2 AND disabled_at IS NULL AND NOT built_in", now, client_id)?;
    if changed > 0 {
        execute!(
            ex,
            "UPDATE oauth_grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            now,
            client_id
        )?;
        crate::db::notify(ex, CHANGED_CHANNEL, client_id).await?;
    }
    Ok(changed > 0)
}

/// The PostgreSQL channel on which a changed client's id is announced.
pub const CHANGED_CHANNEL: &str = "entitle_client_changed";

/// Keeps this process's client cache in line with the others' changes on PostgreSQL:
/// a client disabled by another server (or the command line) is dropped as soon as the
/// notice arrives. Should the connection drop, the whole cache is forgotten, since
/// notices may have been missed meanwhile.
pub async fn follow_changes(db: Db, cache: std::sync::Arc<ClientCache>) {
    let Db::Postgres(pool) = db else {
        return;
    };
    loop {
        let Err(error) = listen(&pool, &cache).await;
        tracing::warn!(error = %error, "listening for client changes failed; retrying");
        cache.clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(
    pool: &sqlx::PgPool,
    cache: &ClientCache,
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANGED_CHANNEL).await?;
    cache.clear();
    loop {
        match listener.try_recv().await? {
            Some(notice) => cache.forget(notice.payload()),
            // Reconnected: what was said meanwhile is lost.
            None => cache.clear(),
        }
    }
}

/// Every token request needs its client, and clients rarely change: they are kept in
/// memory for a few seconds. A client disabled through this process is dropped at
/// once; on PostgreSQL, other processes drop it when the notice of [`follow_changes`]
/// arrives, and within `CACHE_TTL` should it not.
#[derive(Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (Arc<ClientRow>, Instant)>>,
}

const CACHE_TTL: Duration = Duration::from_secs(10);
/// Only registered clients are cached, but bound it anyway.
const CACHE_MAX: usize = 10_000;

impl ClientCache {
    pub async fn get(&self, db: &Db, client_id: &str) -> Result<Option<Arc<ClientRow>>, DbError> {
        let cached = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(client_id).cloned());
        if let Some((row, at)) = cached {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(row));
            }
        }
        let row = {
            let mut conn = db.reader().await?;
            by_client_id(&mut conn, client_id).await?
        };
        let Some(row) = row.map(Arc::new) else {
            self.forget(client_id);
            return Ok(None);
        };
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(client_id.to_owned(), (row.clone(), Instant::now()));
        }
        Ok(Some(row))
    }

    pub fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(client_id);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

/// Whether a presented secret is this client's, compared on hashes in constant time.
pub fn secret_matches(client: &ClientRow, presented: &str) -> bool {
    match &client.secret_hash {
        Some(stored) => tokens::constant_time_eq(stored, &tokens::hash(presented)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_does() {
        let r = "http://127.0.0.1/callback";
        assert!(redirect_matches(r, "http://127.0.0.1:53124/callback"));
        assert!(redirect_matches(r, r));
        assert!(!redirect_matches(r, "http://127.0.0.1:53124/other"));
        assert!(!redirect_matches(r, "http://127.0.0.2:53124/callback"));
        assert!(!redirect_matches(r, "http://127.0.0.1:53124/callback?x=1"));
        assert!(!redirect_matches(r, "http://u@127.0.0.1:53124/callback"));
        assert!(!redirect_matches(r, "https://127.0.0.1:53124/callback"));
        let web = "https://app.example.com/cb";
        assert!(redirect_matches(web, web));
        assert!(!redirect_matches(web, "https://app.example.com:444/cb"));
        assert!(!redirect_matches(web, "https://app.example.com/cb/"));
        assert!(!redirect_matches(
            web,
            "https://app.example.com/cb?next=evil"
        ));
    }

    #[test]
    fn redirect_uris_must_be_safe() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }
}
