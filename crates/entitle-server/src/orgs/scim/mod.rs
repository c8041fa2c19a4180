//! SCIM 2.0 provisioning (RFC 7643/7644): an organization's identity provider manages
//! its users with a bearer token the organization's administrators create. This part
//! holds the tokens, the authentication of SCIM requests and SCIM's error documents.

pub mod api;
pub mod bulk;
pub mod discovery;
pub mod filter;
pub mod groups;
pub mod provisioning;
pub mod query;
pub mod tokens_api;
pub mod users;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use entitle_proto::ScimToken;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::{access::OrgAccess, roles::Action};
use crate::{
    app::{AppState, Client},
    audit::{self, Entry},
    db::{now_ms, DbError},
    error::{ApiError, ApiResult},
    execute,
    identity::{flows::actor_of, store::AccountRow, tokens},
    on_db,
};

/// Tokens start with this, so secret scanners and people can tell what they are.
pub const TOKEN_PREFIX: &str = "entitle_scim_";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for ScimToken {
    fn from(r: TokenRow) -> Self {
        ScimToken {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            token: None,
        }
    }
}

/// Creates a token; its secret is in the answer and nowhere else.
pub async fn create_token(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    name: &str,
    from: &Client,
) -> ApiResult<ScimToken> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "invalid",
            "Name the token in 1 to 100 characters, such as the identity provider that uses it.",
        ));
    }
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::ManageScimTokens)?;
    let issued = tokens::issue();
    let id = Uuid::now_v7();
    let now = now_ms();
    execute!(
        &mut tx,
        "INSERT INTO scim_tokens (id, org_id, name, token_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        org_id,
        name,
        &issued.hash,
        caller.id,
        now
    )?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.scim_token_created",
            target_type: "scim_token",
            target_id: Some(id),
            target_label: Some(name),
            org_id: Some(org_id),
            details: json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ScimToken {
        id,
        name: name.to_owned(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        token: Some(format!("{TOKEN_PREFIX}{}", issued.secret)),
    })
}

pub async fn list_tokens(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<ScimToken>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ManageScimTokens)?;
    let rows: Vec<TokenRow> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT id, name, created_at, last_used_at, revoked_at FROM scim_tokens \
         WHERE org_id = $1 ORDER BY created_at"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    Ok(rows.into_iter().map(ScimToken::from).collect())
}

/// Revokes a token at once: the next request with it is refused.
pub async fn revoke_token(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::ManageScimTokens)?;
    let revoked = execute!(
        &mut tx,
        "UPDATE scim_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        now_ms(),
        id,
        org_id
    )?;
    if revoked == 0 {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.scim_token_revoked",
            target_type: "scim_token",
            target_id: Some(id),
            target_label: None,
            org_id: Some(org_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// POST `/.search` at the root (RFC 7644 §3.4.3): users, then groups, as one list. A
/// filter naming attributes one type lacks finds none of that type.
pub async fn search_everything(
    state: &AppState,
    org_id: Uuid,
    query: &query::ListQuery,
) -> Result<serde_json::Value, ScimError> {
    let (start, count) = query::paging(query)?;
    let users = users::list(state, org_id, query).await;
    let (users_total, mut resources) = part_of_search(&users)?;
    // The groups' part of the page starts where the users run out.
    let groups_query = query::ListQuery {
        start_index: Some((start - users_total).max(1).to_string()),
        count: Some((count - resources.len() as i64).to_string()),
        ..query.clone()
    };
    let groups = groups::list(state, org_id, &groups_query).await;
    let (groups_total, group_resources) = part_of_search(&groups)?;
    if let (Err(error), Err(_)) = (users, groups) {
        return Err(error);
    }
    resources.extend(group_resources);
    Ok(query::list_response(
        users_total + groups_total,
        start,
        resources,
    ))
}

/// One type's total and resources in a root search; none when the filter does not apply.
fn part_of_search(
    list: &Result<serde_json::Value, ScimError>,
) -> Result<(i64, Vec<serde_json::Value>), ScimError> {
    match list {
        Ok(list) => Ok((
            list["totalResults"].as_i64().unwrap_or(0),
            list["Resources"].as_array().cloned().unwrap_or_default(),
        )),
        Err(error) if error.scim_type == Some("invalidFilter") => Ok((0, Vec::new())),
        Err(error) => Err(ScimError::new(
            error.status,
            error.scim_type,
            error.detail.clone(),
        )),
    }
}

// What reading any SCIM request body needs; the submodules share these.

/// A 400 with its SCIM error type.
fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
}

/// A string attribute, or none.
fn text(value: &Json, name: &str) -> Result<Option<String>, ScimError> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        _ => Err(bad("invalidValue", format!("{name} must be a string."))),
    }
}

/// Attribute names are case-insensitive (RFC 7643 §2.1).
fn field<'a>(object: &'a Json, name: &str) -> &'a Json {
    object
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
        .unwrap_or(&Json::Null)
}

/// 400 `invalidSyntax` unless the body's `schemas` lists `schema`.
fn check_schemas(body: &Json, schema: &str) -> Result<(), ScimError> {
    let listed = field(body, "schemas")
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(schema)));
    if listed {
        Ok(())
    } else {
        Err(bad(
            "invalidSyntax",
            format!("The body's schemas must include {schema}."),
        ))
    }
}

/// A SCIM error document (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn unauthorized() -> Self {
        ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "Send an organization's SCIM token as a bearer token.",
        )
    }
}

impl From<ApiError> for ScimError {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(inner) = &error {
            tracing::error!(error = format!("{inner:#}"), "internal error in SCIM");
        }
        let (status, scim_type) = match &error {
            // SCIM answers every unusable value with 400 (RFC 7644 §3.12).
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, Some("invalidValue")),
            ApiError::Conflict {
                code: "already_member" | "member_of_other_org" | "email_taken",
                ..
            } => (error.status(), Some("uniqueness")),
            // Details of a person whose home is another organization are read-only here.
            ApiError::Forbidden {
                code: "not_home_organization",
                ..
            } => (StatusCode::BAD_REQUEST, Some("mutability")),
            _ => (error.status(), None),
        };
        ScimError::new(status, scim_type, error.detail())
    }
}

impl From<DbError> for ScimError {
    fn from(error: DbError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

/// The organization a SCIM request acts for, from its bearer token.
pub struct ScimClient {
    pub org_id: Uuid,
    pub token_id: Uuid,
}

impl ScimClient {
    /// The token's standing in its organization, for the rule functions every entry
    /// point shares: an Administrator's rights.
    pub async fn access(&self, tx: &mut crate::db::Tx) -> Result<OrgAccess, ScimError> {
        OrgAccess::of_scim_token(tx, self.org_id)
            .await
            .map_err(|error| match error {
                ApiError::Unauthenticated => {
                    ScimError::new(StatusCode::UNAUTHORIZED, None, "The organization is gone.")
                }
                other => other.into(),
            })
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|v| v.trim().strip_prefix(TOKEN_PREFIX))
            .filter(|s| tokens::looks_valid(s))
            .ok_or_else(ScimError::unauthorized)?;
        let mut conn = state.db.reader().await?;
        let found: Option<(Uuid, Uuid, Option<i64>)> = on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT id, org_id, last_used_at FROM scim_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        )
        .bind(tokens::hash(secret))
        .fetch_optional(c)
        .await)
        .map_err(DbError::from)?;
        drop(conn);
        let (token_id, org_id, last_used_at) = found.ok_or_else(ScimError::unauthorized)?;
        // Recorded at most once a minute, so provisioning bursts do not write per request.
        let now = now_ms();
        if last_used_at.is_none_or(|at| now - at > 60_000) {
            let mut conn = state.db.writer().await?;
            execute!(
                &mut conn,
                "UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2",
                now,
                token_id
            )?;
        }
        Ok(ScimClient { org_id, token_id })
    }
}
