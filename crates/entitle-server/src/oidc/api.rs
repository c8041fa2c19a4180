//! `/api/v1/clients` (operators register clients) and the signed-in devices of a person:
//! `/api/v1/me/devices` for themselves, `/api/v1/accounts/{id}/revoke-sessions` for
//! their administrators.

use axum::{extract::State, http::StatusCode};
use entitle_proto::{ClientRegistration, OAuthClient, Problem, SignedInDevice, SigningKey};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{clients, store};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::now_ms,
    error::{ApiError, ApiResult, Json, Path},
    identity::{
        flows::actor_of,
        session::{Operator, SignedIn},
        store::AccountRow,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_client, list_clients))
        .routes(routes!(disable_client))
        .routes(routes!(list_signing_keys))
        .routes(routes!(rotate_signing_keys))
        .routes(routes!(my_devices))
        .routes(routes!(revoke_my_device))
}

/// Registers a client and returns it; a confidential client's secret is shown only here.
pub async fn register(
    state: &AppState,
    actor: &Actor,
    request: &ClientRegistration,
) -> ApiResult<OAuthClient> {
    let new = clients::check_registration(request, &state.config.oidc)?;
    let mut tx = state.db.begin().await?;
    if let Some(org) = new.org_id {
        if crate::orgs::store::org_by_id(&mut tx, org).await?.is_none() {
            return Err(ApiError::field(
                "org_id",
                "unknown",
                "No such organization.",
            ));
        }
    }
    let (row, secret) = clients::insert(&mut tx, new, None, false).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "oidc.client_registered",
            target_type: "client",
            target_id: Some(row.id),
            target_label: Some(&row.client_id),
            org_id: row.org_id,
            details: json!({ "name": row.name, "confidential": row.confidential }),
        },
    )
    .await?;
    tx.commit().await?;
    let mut client = row.to_proto();
    client.client_secret = secret;
    Ok(client)
}

/// Every signing key, newest first.
pub async fn signing_keys(state: &AppState) -> ApiResult<Vec<SigningKey>> {
    Ok(super::keys::list(&state.db)
        .await?
        .into_iter()
        .map(|k| SigningKey {
            kid: k.kid,
            alg: k.alg,
            created_at: k.created_at,
            retired_at: k.retired_at,
            publish_until: k.publish_until,
        })
        .collect())
}

/// Adds a new key of each algorithm; the previous ones stop signing and stay published
/// until every token they signed has expired. Returns the new keys' ids and how long
/// the old ones stay published.
pub async fn rotate_keys(state: &AppState, actor: &Actor) -> ApiResult<(Vec<String>, i64)> {
    let retention = super::keys::longest_token_lifetime_ms(&state.db, &state.config.oidc).await?;
    let kids = super::keys::rotate(&state.db, state.oidc.keys.kek(), retention).await?;
    state.oidc.keys.reload(&state.db).await?;
    let mut conn = state.db.writer().await?;
    audit::record(
        &mut conn,
        actor,
        Entry {
            action: "oidc.keys_rotated",
            target_type: "signing_key",
            target_id: None,
            target_label: None,
            org_id: None,
            details: json!({ "new": kids, "old_published_for_secs": retention / 1000 }),
        },
    )
    .await?;
    Ok((kids, retention))
}

/// The provider's signing keys (operators only).
#[utoipa::path(get, path = "/api/v1/keys", tag = "clients",
    responses((status = 200, body = Vec<SigningKey>), (status = 403, body = Problem)))]
async fn list_signing_keys(
    State(state): State<AppState>,
    _operator: Operator,
) -> ApiResult<Json<Vec<SigningKey>>> {
    Ok(Json(signing_keys(&state).await?))
}

/// Rotate the signing keys (operators only); answers with every key.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "clients",
    responses((status = 200, body = Vec<SigningKey>), (status = 403, body = Problem)))]
async fn rotate_signing_keys(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
) -> ApiResult<Json<Vec<SigningKey>>> {
    rotate_keys(&state, &actor_of(&current.account, &from)).await?;
    Ok(Json(signing_keys(&state).await?))
}

/// Register an OAuth/OpenID Connect client (operators only).
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = ClientRegistration,
    responses((status = 201, body = OAuthClient, description = "Registered; `client_secret` is shown only in this answer"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn register_client(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Json(request): Json<ClientRegistration>,
) -> ApiResult<(StatusCode, Json<OAuthClient>)> {
    let client = register(&state, &actor_of(&current.account, &from), &request).await?;
    Ok((StatusCode::CREATED, Json(client)))
}

/// The enabled clients, oldest first.
pub async fn clients(state: &AppState) -> ApiResult<Vec<OAuthClient>> {
    let mut conn = state.db.reader().await?;
    let rows = clients::list(&mut conn).await?;
    Ok(rows.iter().map(clients::ClientRow::to_proto).collect())
}

/// The registered clients (operators only).
#[utoipa::path(get, path = "/api/v1/clients", tag = "clients",
    responses((status = 200, body = Vec<OAuthClient>), (status = 403, body = Problem)))]
async fn list_clients(
    State(state): State<AppState>,
    _operator: Operator,
) -> ApiResult<Json<Vec<OAuthClient>>> {
    Ok(Json(clients(&state).await?))
}

/// Disable a client: its grants are revoked and it gets no more tokens (operators only).
#[utoipa::path(delete, path = "/api/v1/clients/{client_id}", tag = "clients",
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem, description = "Unknown or built-in client")))]
async fn disable_client(
    State(state): State<AppState>,
    Operator(current): Operator,
    from: Client,
    Path(client_id): Path<String>,
) -> ApiResult<StatusCode> {
    disable(&state, &actor_of(&current.account, &from), &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables a registered client and revokes its grants; built-in clients stay.
pub async fn disable(state: &AppState, actor: &Actor, client_id: &str) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    if !clients::disable(&mut tx, client_id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "oidc.client_disabled",
            target_type: "client",
            target_id: None,
            target_label: Some(client_id),
            org_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    state.oidc.clients.forget(client_id);
    Ok(())
}

pub async fn devices_of(state: &AppState, account_id: Uuid) -> ApiResult<Vec<SignedInDevice>> {
    let mut conn = state.db.reader().await?;
    let grants = store::live_grants_of(&mut conn, account_id, now_ms()).await?;
    Ok(grants
        .into_iter()
        .map(|(g, client_name)| SignedInDevice {
            id: g.id,
            client_id: g.client_id,
            client_name,
            scope: g.scope,
            automatic_sign_in: g.offline,
            created_at: g.created_at,
            last_used_at: g.last_used_at,
            expires_at: g.expires_at,
            ip: g.ip,
            user_agent: g.user_agent,
        })
        .collect())
}

/// Signs one of a person's devices out: its refresh token and access tokens stop working.
pub async fn revoke_device(
    state: &AppState,
    account: &AccountRow,
    grant_id: Uuid,
    from: &Client,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    let grant = store::grant_by_id(&mut tx, grant_id)
        .await?
        .filter(|g| g.account_id == account.id)
        .ok_or(ApiError::NotFound)?;
    store::revoke_grant(&mut tx, grant.id, now_ms()).await?;
    audit::record(
        &mut tx,
        &actor_of(account, from),
        Entry {
            action: "oidc.device_signed_out",
            target_type: "grant",
            target_id: Some(grant.id),
            target_label: Some(&grant.client_id),
            org_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The devices and applications signed in as me.
#[utoipa::path(get, path = "/api/v1/me/devices", tag = "identity",
    responses((status = 200, body = Vec<SignedInDevice>), (status = 401, body = Problem)))]
async fn my_devices(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
) -> ApiResult<Json<Vec<SignedInDevice>>> {
    Ok(Json(devices_of(&state, current.account.id).await?))
}

/// Sign one of my devices out.
#[utoipa::path(delete, path = "/api/v1/me/devices/{id}", tag = "identity",
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn revoke_my_device(
    State(state): State<AppState>,
    SignedIn(current): SignedIn,
    from: Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    revoke_device(&state, &current.account, id, &from).await?;
    Ok(StatusCode::NO_CONTENT)
}
