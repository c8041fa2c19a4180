//! The HTTP surface: every domain's router merged, with request ids, tracing, body
//! limits, security headers and problem documents for anything unmatched.

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use entitle_proto::Health;
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    app::AppState,
    error::{ApiError, Json, REQUEST_ID},
};

/// Largest request body accepted anywhere (JSON and forms).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "entitle", description = "Identity, organizations and entitlements. Errors are RFC 9457 problem documents with a stable `code`. \
        The API takes the session token of `POST /api/v1/session` as a bearer token (or the session cookie a browser holds); \
        the SCIM endpoints take an organization's SCIM token; the OAuth token, introspection and revocation endpoints authenticate clients."),
    modifiers(&Security),
    security(("session" = []), ("session_cookie" = [])),
    tags(
        (name = "identity", description = "Sign-up, sign-in, recovery and the signed-in account"),
        (name = "terms", description = "Terms of Service"),
        (name = "organizations", description = "Organizations"),
        (name = "audit", description = "Audit trail"),
        (name = "clients", description = "OAuth / OpenID Connect clients"),
        (name = "operations", description = "Health"),
    )
)]
struct ApiDoc;

/// Declares how callers authenticate, and the endpoints outside the JSON API (SCIM, OAuth)
/// with the credentials each takes, so that a client generator knows them all.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            path::{HttpMethod, OperationBuilder, PathItem},
            security::{
                ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement,
                SecurityScheme,
            },
            ResponseBuilder,
        };
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, scheme) in [
            ("session", bearer("The `session_token` of `POST /api/v1/session`.")),
            (
                "session_cookie",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    crate::identity::session::SESSION_COOKIE,
                    "The session cookie of a browser; requests that change something must send JSON.",
                ))),
            ),
            ("scim_token", bearer("An organization's SCIM token (`entitle_scim_…`), made on its Provisioning page.")),
            ("access_token", bearer("An access token (JWT, RFC 9068) issued by `/oauth2/token`.")),
            (
                "client_secret_basic",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Basic)
                        .description(Some("A confidential client's id and secret (RFC 6749 §2.3.1); `client_secret_post` in the form also works, and public clients send only `client_id`."))
                        .build(),
                ),
            ),
        ] {
            components.security_schemes.insert(name.to_owned(), scheme);
        }
        let outside: &[(&str, &[HttpMethod], &str, &str)] = &[
            (
                "/scim/v2/Users",
                &[HttpMethod::Get, HttpMethod::Post],
                "scim_token",
                "SCIM 2.0 Users (RFC 7644); see docs/scim.md",
            ),
            (
                "/scim/v2/Users/{id}",
                &[
                    HttpMethod::Get,
                    HttpMethod::Put,
                    HttpMethod::Patch,
                    HttpMethod::Delete,
                ],
                "scim_token",
                "A SCIM User",
            ),
            (
                "/scim/v2/Users/.search",
                &[HttpMethod::Post],
                "scim_token",
                "Search SCIM Users",
            ),
            (
                "/scim/v2/Groups",
                &[HttpMethod::Get, HttpMethod::Post],
                "scim_token",
                "SCIM 2.0 Groups",
            ),
            (
                "/scim/v2/Groups/{id}",
                &[
                    HttpMethod::Get,
                    HttpMethod::Put,
                    HttpMethod::Patch,
                    HttpMethod::Delete,
                ],
                "scim_token",
                "A SCIM Group",
            ),
            (
                "/scim/v2/Groups/.search",
                &[HttpMethod::Post],
                "scim_token",
                "Search SCIM Groups",
            ),
            (
                "/scim/v2/.search",
                &[HttpMethod::Post],
                "scim_token",
                "Search Users and Groups",
            ),
            (
                "/scim/v2/Bulk",
                &[HttpMethod::Post],
                "scim_token",
                "SCIM bulk operations",
            ),
            (
                "/scim/v2/ServiceProviderConfig",
                &[HttpMethod::Get],
                "scim_token",
                "SCIM service provider configuration",
            ),
            (
                "/oauth2/token",
                &[HttpMethod::Post],
                "client_secret_basic",
                "OAuth 2.0 token endpoint (RFC 6749); see docs/oidc.md",
            ),
            (
                "/oauth2/introspect",
                &[HttpMethod::Post],
                "client_secret_basic",
                "Token introspection (RFC 7662)",
            ),
            (
                "/oauth2/revoke",
                &[HttpMethod::Post],
                "client_secret_basic",
                "Token revocation (RFC 7009)",
            ),
            (
                "/oauth2/device_authorization",
                &[HttpMethod::Post],
                "client_secret_basic",
                "Device authorization (RFC 8628)",
            ),
            (
                "/oauth2/userinfo",
                &[HttpMethod::Get, HttpMethod::Post],
                "access_token",
                "OpenID Connect UserInfo",
            ),
        ];
        for (path, methods, scheme, summary) in outside {
            let tag = if path.starts_with("/scim") {
                "scim"
            } else {
                "oauth"
            };
            for method in *methods {
                let operation = OperationBuilder::new()
                    .summary(Some(*summary))
                    .tag(tag)
                    .security(SecurityRequirement::new(*scheme, Vec::<String>::new()))
                    .response(
                        "200",
                        ResponseBuilder::new().description("See the linked documentation."),
                    )
                    .build();
                let item = PathItem::new(method.clone(), operation);
                match openapi.paths.paths.get_mut(*path) {
                    Some(existing) => existing.merge_operations(item),
                    None => {
                        openapi.paths.paths.insert((*path).to_owned(), item);
                    }
                }
            }
        }
    }
}

fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::identity::api::router())
        .merge(crate::orgs::api::router())
        .merge(crate::orgs::imports_api::router())
        .merge(crate::orgs::domains_api::router())
        .merge(crate::orgs::approval_api::router())
        .merge(crate::orgs::scim::tokens_api::router())
        .merge(crate::oidc::api::router())
        .merge(crate::entitlements::api::router())
        .merge(crate::entitlements::bulk_api::router())
        .split_for_parts()
}

/// The OpenAPI document served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().1
}

pub fn build_router(state: AppState) -> Router {
    let (api, openapi) = api_router();
    let openapi_json = serde_json::to_string(&openapi).unwrap_or_default();
    let api = api.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_behind_token))
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) }),
        )
        .merge(api)
        .merge(crate::portal::router_with(state.clone()))
        .merge(crate::orgs::scim::api::router())
        .merge(crate::oidc::endpoints::router())
        .merge(crate::entitlements::api::public_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The matched route, never the raw URI: query strings carry one-time tokens.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "unmatched".to_owned());
            tracing::info_span!("request", method = %req.method(), route, request_id = tracing::field::Empty)
        }))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .with_state(state)
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether the browser reached us over TLS: the public URL is https, or a trusted reverse
/// proxy says so (`X-Forwarded-Proto: https`, or `Forwarded: proto=https`).
fn over_tls(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    if state.secure_cookies() {
        return true;
    }
    if !state.config.trust_forwarded_for {
        return false;
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    first("x-forwarded-proto").as_deref() == Some("https")
        || first("forwarded").is_some_and(|f| {
            f.split(';')
                .any(|pair| pair.trim().trim_matches('"') == "proto=https")
        })
}

/// What every request passes through, as one layer (each layer costs every request):
/// an id (visible to handlers and problem documents, returned in `x-request-id`), errors
/// in the format of their surface, `Secure` cookies over TLS, the request's place in
/// `entitle_http_request_duration_seconds` and its one log line.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("request_id", id.as_str());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let surface = Surface::of(req.uri().path());
    let tls = over_tls(&state, req.headers());
    let (mut response, account) = REQUEST_ID
        .scope(
            id.clone(),
            crate::error::REQUEST_ACCOUNT.scope(std::cell::Cell::new(None), async {
                let response = in_format_of_surface(surface, next.run(req).await).await;
                let account = crate::error::REQUEST_ACCOUNT
                    .try_with(std::cell::Cell::get)
                    .ok()
                    .flatten();
                (response, account)
            }),
        )
        .await;
    if tls {
        mark_cookies_secure(&mut response);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let status = response.status();
    let latency = started.elapsed();
    // The matched route, never the raw URI: query strings carry one-time tokens.
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::metrics::HTTP_REQUESTS
        .with_label_values(&[method.as_str(), route, status.as_str()])
        .observe(latency.as_secs_f64());
    tracing::info!(
        method = %method,
        route,
        status = status.as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = id,
        account_id = account.map(|a| a.to_string()),
        "request"
    );
    response
}

/// Which kind of client a path serves, so its errors take that kind's format.
#[derive(Clone, Copy)]
enum Surface {
    Scim,
    OAuth,
    Api,
    Page,
}

impl Surface {
    fn of(path: &str) -> Surface {
        if path.starts_with("/scim/") {
            Surface::Scim
        } else if path.starts_with("/oauth2/") {
            Surface::OAuth
        } else if path.starts_with("/api/") {
            Surface::Api
        } else {
            Surface::Page
        }
    }
}

/// Every error answers in the format of the surface it comes from. The framework's own
/// rejections (a body over the limit, a malformed path) are plain text; they become a
/// SCIM error under `/scim`, an OAuth error under `/oauth2`, a problem document under
/// `/api` and an error page anywhere else.
async fn in_format_of_surface(surface: Surface, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    match surface {
        Surface::Scim => crate::orgs::scim::ScimError::new(status, None, text).into_response(),
        Surface::OAuth => crate::oidc::OAuthError {
            status,
            error: "invalid_request",
            description: text,
            basic_challenge: false,
        }
        .into_response(),
        Surface::Api => ApiError::rejected(status, text).into_response(),
        Surface::Page => crate::portal::PageError(ApiError::rejected(status, text)).into_response(),
    }
}

/// Cookies set over TLS are `Secure`: every cookie this server sets passes here, so none
/// can be forgotten.
fn mark_cookies_secure(response: &mut Response) {
    let cookies: Vec<HeaderValue> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| match value.to_str() {
            Ok(text) if !text.to_ascii_lowercase().contains("; secure") => {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(value.clone())
            }
            _ => value.clone(),
        })
        .collect();
    if cookies.is_empty() {
        return;
    }
    response.headers_mut().remove(header::SET_COOKIE);
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// `/metrics` on the main address: only to the configured bearer token; without one
/// configured there is nothing here.
async fn metrics_behind_token(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(expected) = &state.config.metrics.bearer_token else {
        return crate::portal::not_found_page();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if !crate::identity::tokens::constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        let mut response =
            (StatusCode::UNAUTHORIZED, "Send the metrics bearer token.").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return response;
    }
    metrics(State(state)).await
}

/// Every metric, in the Prometheus text format, with the pools' use as of now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    for (pool, open, idle, max) in state.db.pool_use() {
        let gauge = |s: &str| crate::metrics::DB_CONNECTIONS.with_label_values(&[pool, s]);
        gauge("idle").set(idle as i64);
        gauge("in_use").set(i64::from(open) - idle as i64);
        crate::metrics::DB_POOL_SIZE
            .with_label_values(&[pool])
            .set(i64::from(max));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// The separate metrics address's router: `/metrics` alone, without a token.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(Health {
            status: "ready".to_owned(),
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "database unavailable".to_owned(),
                }),
            )
                .into_response()
        }
    }
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError::NotFound.into_response()
    } else {
        crate::portal::not_found_page()
    }
}

/// Plain text, which `uniform_errors` words for the surface the path belongs to.
async fn method_not_allowed() -> (StatusCode, &'static str) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "This method is not allowed here.",
    )
}
