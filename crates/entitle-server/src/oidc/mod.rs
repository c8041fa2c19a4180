//! The OpenID Connect provider: discovery, keys, the authorization, token, device,
//! userinfo, revocation, introspection and logout endpoints, and registered clients.
//!
//! Every sign-in of a client on a person's behalf opens a *grant*. Access and ID tokens
//! name it in `sid`; with `offline_access` it carries a refresh token that rotates on
//! every use. Refresh tokens are the grant id and a generation counter under an HMAC, so
//! nothing secret is stored: the grant row keeps the current generation, and an older
//! one presented again is a reuse that revokes the grant (the whole token family).

pub mod api;
pub mod authorize;
pub mod clients;
pub mod endpoints;
pub mod grants;
pub mod keys;
pub mod rotation;
pub mod store;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Mac, SimpleHmac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::{config::Config, db::DbError, identity::tokens};

pub use keys::KeyRing;

/// The provider's share of the application state.
pub struct Provider {
    pub keys: KeyRing,
    pub issuer: String,
    pub rotator: rotation::Rotator,
    pub clients: std::sync::Arc<clients::ClientCache>,
    /// Access tokens whose signature was checked, until they expire.
    pub verified: grants::VerifiedTokens,
    refresh_mac_key: [u8; 32],
    discovery: String,
}

impl Provider {
    pub fn new(config: &Config, keys: KeyRing, db: &crate::db::Db) -> Provider {
        let issuer = config.public_base();
        let refresh_mac_key = keys.kek().derive("entitle refresh tokens v1");
        Provider {
            discovery: endpoints::discovery_document(&issuer).to_string(),
            issuer,
            refresh_mac_key,
            keys,
            rotator: rotation::Rotator::start(db.clone()),
            clients: Default::default(),
            verified: Default::default(),
        }
    }

    pub fn discovery(&self) -> &str {
        &self.discovery
    }

    fn refresh_mac(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(&self.refresh_mac_key)
            .expect("HMAC takes keys of any length");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// `grant id ‖ generation ‖ HMAC`, base64url: unforgeable, and nothing to store.
    pub fn refresh_token(&self, grant_id: Uuid, generation: i64) -> String {
        let mut body = Vec::with_capacity(56);
        body.extend_from_slice(grant_id.as_bytes());
        body.extend_from_slice(&generation.to_be_bytes());
        let mac = self.refresh_mac(&body);
        body.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The grant and generation of a refresh token this server issued, or `None`.
    pub fn parse_refresh_token(&self, token: &str) -> Option<(Uuid, i64)> {
        if token.len() != 75 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (body, mac) = bytes.split_at(24);
        if !tokens::constant_time_eq(&self.refresh_mac(body), mac) {
            return None;
        }
        let grant_id = Uuid::from_slice(&body[..16]).ok()?;
        let generation = i64::from_be_bytes(body[16..24].try_into().ok()?);
        Some((grant_id, generation))
    }
}

/// An RFC 6749 error answer: `{"error": …, "error_description": …}`.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Answer 401 with a Basic challenge: the client tried HTTP Basic authentication.
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_scope", description)
    }

    pub fn invalid_client(basic: bool) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.".to_owned(),
            basic_challenge: basic,
        }
    }

    pub fn unauthorized_client(grant: &str) -> OAuthError {
        OAuthError::new(
            "unauthorized_client",
            format!("This client is not registered for {grant}."),
        )
    }

    fn server_error() -> OAuthError {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: format!(
                "The server failed; request id {}.",
                crate::error::current_request_id().unwrap_or_default()
            ),
            basic_challenge: false,
        }
    }
}

impl From<DbError> for OAuthError {
    fn from(error: DbError) -> Self {
        tracing::error!(error = %error, "database error at an OAuth endpoint");
        OAuthError::server_error()
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(error: anyhow::Error) -> Self {
        tracing::error!(
            error = format!("{error:#}"),
            "internal error at an OAuth endpoint"
        );
        OAuthError::server_error()
    }
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        })
        .unwrap_or_default();
        let mut response = (self.status, no_store_json(body)).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"entitle\""),
            );
        }
        response
    }
}

/// A JSON body that must not be cached (tokens, token errors: RFC 6749 §5.1).
pub fn no_store_json(body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// Form parameters of an OAuth request; a parameter given twice is refused (RFC 6749 §3.1).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `name`, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "The parameter {name} is given more than once."
            )));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("The parameter {name} is missing.")))
    }
}

/// Claims of a JWT access token (RFC 9068) as this server issues and reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The grant (signed-in client session) the token belongs to; none for client_credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The home organization of the person (or the organization of a service client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    #[serde(default)]
    pub roles: Vec<String>,
}

pub fn scope_has(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_duplicates_and_treat_empty_as_absent() {
        let params = Params::parse(b"a=1&b=&c=x%20y&a=2");
        assert!(params.get("a").is_err());
        assert_eq!(params.get("b").expect("single"), None);
        assert_eq!(params.get("c").expect("single"), Some("x y"));
        assert!(params.required("missing").is_err());
    }
}
