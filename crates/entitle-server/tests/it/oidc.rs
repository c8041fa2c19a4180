//! The OpenID Connect provider over HTTP: the flows, and every way a request can be
//! wrong, each answered with its RFC 6749 error and nothing issued.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use entitle_server::on_db;
use entitle_testkit::{location, new_client, urlencode, TestApp, PASSWORD};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::count;

pub const DESKTOP: &str = "entitle-desktop";
const LOOPBACK: &str = "http://127.0.0.1:49152/callback";

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn authorize_path(
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    challenge: Option<&str>,
    extra: &str,
) -> String {
    let mut path = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=st4te&nonce=n0nce",
        urlencode(client_id),
        urlencode(redirect_uri),
        urlencode(scope)
    );
    if let Some(challenge) = challenge {
        path.push_str(&format!(
            "&code_challenge={challenge}&code_challenge_method=S256"
        ));
    }
    path.push_str(extra);
    path
}

/// A person with a password and a browser (cookie jar) signed in through the page.
pub async fn signed_in_browser(app: &TestApp, email: &str) -> Client {
    app.register(email, PASSWORD).await;
    let browser = new_client();
    let response = app
        .page_sign_in(&browser, email, PASSWORD, "/account")
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    browser
}

/// Follows an authorization request through to the redirect back to the client.
async fn authorize(app: &TestApp, browser: &Client, path: &str) -> Response {
    browser.get(app.url(path)).send().await.expect("authorize")
}

/// The code from a redirect to the client, checking `state` and `iss`.
fn code_from(app: &TestApp, response: &Response) -> String {
    let to = location(response);
    assert!(
        to.starts_with("http://127.0.0.1:49152/callback?"),
        "redirected to {to}"
    );
    assert_eq!(param(&to, "state").as_deref(), Some("st4te"));
    assert_eq!(param(&to, "iss").as_deref(), Some(app.base_url.as_str()));
    param(&to, "code").unwrap_or_else(|| panic!("no code in {to}"))
}

pub async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> Response {
    new_client()
        .post(app.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .expect("token request")
}

async fn expect_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.expect("error json");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    body
}

/// Redeems a desktop-client code at the token endpoint.
async fn exchange(app: &TestApp, code: &str, verifier: &str) -> Response {
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DESKTOP),
            ("code", code),
            ("redirect_uri", LOOPBACK),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub async fn desktop_tokens(app: &TestApp, browser: &Client, scope: &str) -> Value {
    let pkce = pkce();
    let response = authorize(
        app,
        browser,
        &authorize_path(DESKTOP, LOOPBACK, scope, Some(&pkce.challenge), ""),
    )
    .await;
    let code = code_from(app, &response);
    let response = exchange(app, &code, &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("tokens")
}

pub async fn refresh(app: &TestApp, refresh_token: &str, extra: &[(&str, &str)]) -> Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", DESKTOP),
        ("refresh_token", refresh_token),
    ];
    form.extend_from_slice(extra);
    token_request(app, &form).await
}

/// A refresh that must fail with `invalid_grant`.
pub async fn refresh_is_refused(app: &TestApp, refresh_token: &str) -> Value {
    expect_oauth_error(
        refresh(app, refresh_token, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await
}

async fn userinfo(app: &TestApp, access_token: &str) -> Response {
    new_client()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
}

/// Decodes and verifies a JWT against the published JWKS, as a relying party would.
async fn verify_with_jwks(app: &TestApp, token: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = new_client()
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("published key");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base_url.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("valid JWT")
        .claims
}

pub async fn register_client(app: &TestApp, operator: &str, body: Value) -> Value {
    let response = app.post_as(operator, "/api/v1/clients", &body).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap_or_default()
    );
    response.json().await.expect("client")
}

/// A confidential client for `client_credentials` with the scope `licenses`.
pub async fn service_client(app: &TestApp, operator: &str, name: &str) -> Value {
    register_client(
        app,
        operator,
        json!({"name": name, "confidential": true, "grant_types": ["client_credentials"], "scopes": ["licenses"]}),
    )
    .await
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_provider() {
    let app = TestApp::spawn().await;
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], app.base_url);
    assert_eq!(discovery["token_endpoint"], app.url("/oauth2/token"));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.expect("json");
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["alg"].as_str())
        .collect();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg), "{alg} published: {jwks}");
    }
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k.get("d").is_none()),
        "no private parts"
    );
}

#[tokio::test]
async fn code_flow_with_pkce_signs_a_person_in_after_the_sign_in_page() {
    let app = TestApp::spawn().await;
    let email = "ada@example.com";
    app.register(email, PASSWORD).await;
    let browser = new_client();
    let pkce = pkce();
    let path = authorize_path(
        DESKTOP,
        LOOPBACK,
        "openid profile email offline_access org",
        Some(&pkce.challenge),
        "&login_hint=ada%40example.com",
    );
    // Not signed in: the sign-in page, which comes back to the same request.
    let response = authorize(&app, &browser, &path).await;
    let to = location(&response);
    assert!(to.starts_with("/sign-in?"), "{to}");
    assert_eq!(
        param(&format!("http://x{to}"), "email").as_deref(),
        Some(email)
    );
    let next = param(&format!("http://x{to}"), "next").expect("next");
    let response = app.page_sign_in(&browser, email, PASSWORD, &next).await;
    assert_eq!(location(&response), next);
    let response = authorize(&app, &browser, &next).await;
    let code = code_from(&app, &response);

    let response = exchange(&app, &code, &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("tokens");
    assert_eq!(tokens["token_type"], "Bearer");
    let id = verify_with_jwks(
        &app,
        tokens["id_token"].as_str().expect("id token"),
        DESKTOP,
    )
    .await;
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["email"], email);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["given_name"], "Test");
    assert_eq!(id["family_name"], "Person");
    assert_eq!(id["country"], "DE");
    assert!(id["auth_time"].as_i64().is_some() && id["sid"].as_str().is_some());
    let access_token = tokens["access_token"].as_str().expect("access token");
    let header = jsonwebtoken::decode_header(access_token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let access = verify_with_jwks(&app, access_token, &app.base_url).await;
    assert_eq!(access["sub"], id["sub"]);
    assert_eq!(access["client_id"], DESKTOP);
    assert_eq!(access["scope"], "openid profile email offline_access org");
    assert!(access["roles"].is_array() && access.get("jti").is_some());
    assert!(tokens["refresh_token"].as_str().is_some());

    let info: Value = userinfo(&app, access_token)
        .await
        .json()
        .await
        .expect("userinfo");
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email"], email);
    assert_eq!(info["family_name"], "Person");

    // The signed-in device is listed for the person.
    let session = app.sign_in(email, PASSWORD).await;
    let devices: Value = app
        .get_as(&session, "/api/v1/me/devices")
        .await
        .json()
        .await
        .expect("devices");
    assert_eq!(devices[0]["client_id"], DESKTOP);
    assert_eq!(devices[0]["automatic_sign_in"], true);
}

#[tokio::test]
async fn terms_of_service_are_accepted_before_a_code_is_issued() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let browser = signed_in_browser(&app, "ben@example.com").await;
    let response = app
        .post_as(
            &operator,
            "/api/v1/terms",
            &json!({"version": "2026-11", "title": "Terms", "body": "Be nice."}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let pkce = pkce();
    let path = authorize_path(DESKTOP, LOOPBACK, "openid", Some(&pkce.challenge), "");
    let none = authorize(&app, &browser, &format!("{path}&prompt=none")).await;
    assert_eq!(
        param(&location(&none), "error").as_deref(),
        Some("interaction_required")
    );
    let response = authorize(&app, &browser, &path).await;
    let to = location(&response);
    assert!(to.starts_with("/terms?next="), "{to}");
    assert_eq!(count(&app, "oauth_codes").await, 0);
    let next = param(&format!("http://x{to}"), "next").expect("next");
    let response = app
        .submit_form(
            &browser,
            &to,
            "/terms",
            &[("version", "2026-11"), ("next", &next)],
        )
        .await;
    assert_eq!(location(&response), next);
    let response = authorize(&app, &browser, &next).await;
    code_from(&app, &response);

    // New terms: automatic sign-in stops until the person signs in and accepts them.
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let accepted = app
        .post_as(
            &operator,
            "/api/v1/terms/accept",
            &json!({"version": "2026-11"}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    let response = app
        .post_as(
            &operator,
            "/api/v1/terms",
            &json!({"version": "2026-12", "title": "Terms", "body": "Be nicer."}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = refresh_is_refused(&app, tokens["refresh_token"].as_str().expect("rt")).await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("Terms of Service")),
        "{body}"
    );
}

#[tokio::test]
async fn prompt_and_max_age_control_when_the_person_signs_in_again() {
    let app = TestApp::spawn().await;
    let pkce = pkce();
    let path = authorize_path(DESKTOP, LOOPBACK, "openid", Some(&pkce.challenge), "");
    // prompt=none without a session: login_required, back at the client.
    let response = authorize(&app, &new_client(), &format!("{path}&prompt=none")).await;
    let to = location(&response);
    assert_eq!(param(&to, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&to, "state").as_deref(), Some("st4te"));

    let browser = signed_in_browser(&app, "cleo@example.com").await;
    code_from(
        &app,
        &authorize(&app, &browser, &format!("{path}&prompt=none")).await,
    );
    for extra in ["&prompt=login", "&max_age=0"] {
        if extra == "&max_age=0" {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let response = authorize(&app, &browser, &format!("{path}{extra}")).await;
        let to = location(&response);
        assert!(to.starts_with("/sign-in?"), "{extra}: {to}");
        let next = param(&format!("http://x{to}"), "next").expect("next");
        assert!(!next.contains("prompt=login"));
        // Coming back without signing in again still asks for it.
        let again = authorize(&app, &browser, &next).await;
        assert!(
            location(&again).starts_with("/sign-in?"),
            "{extra}: must sign in again"
        );
        app.page_sign_in(&browser, "cleo@example.com", PASSWORD, &next)
            .await;
        code_from(&app, &authorize(&app, &browser, &next).await);
    }
}

#[tokio::test]
async fn bad_authorization_requests_are_refused_without_a_code() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "dan@example.com").await;
    let pkce = pkce();
    // Untrusted redirect URI or client: a page, never a redirect.
    for path in [
        authorize_path(DESKTOP, "https://evil.example/cb", "openid", Some(&pkce.challenge), ""),
        authorize_path(DESKTOP, "http://127.0.0.1:5000/other", "openid", Some(&pkce.challenge), ""),
        authorize_path("no-such-client", LOOPBACK, "openid", Some(&pkce.challenge), ""),
        format!("/oauth2/authorize?response_type=code&client_id={DESKTOP}&code_challenge={}&code_challenge_method=S256", pkce.challenge),
        format!("{}&redirect_uri=x", authorize_path(DESKTOP, LOOPBACK, "openid", Some(&pkce.challenge), "")),
    ] {
        let response = authorize(&app, &browser, &path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(location(&response).is_empty());
    }
    // Trusted redirect URI: the error goes back to the client.
    for (extra_path, error) in [
        (
            authorize_path(DESKTOP, LOOPBACK, "openid", None, ""),
            "invalid_request",
        ),
        (
            authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid",
                None,
                &format!(
                    "&code_challenge={}&code_challenge_method=plain",
                    pkce.challenge
                ),
            ),
            "invalid_request",
        ),
        (
            authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid",
                None,
                "&code_challenge=short&code_challenge_method=S256",
            ),
            "invalid_request",
        ),
        (
            authorize_path(DESKTOP, LOOPBACK, "openid admin", Some(&pkce.challenge), ""),
            "invalid_scope",
        ),
        (
            authorize_path(DESKTOP, LOOPBACK, "openid", Some(&pkce.challenge), "")
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid",
                Some(&pkce.challenge),
                "&prompt=bogus",
            ),
            "invalid_request",
        ),
        (
            authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid",
                Some(&pkce.challenge),
                "&max_age=soon",
            ),
            "invalid_request",
        ),
        (
            authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid",
                Some(&pkce.challenge),
                "&request=eyJ",
            ),
            "request_not_supported",
        ),
    ] {
        let response = authorize(&app, &browser, &extra_path).await;
        let to = location(&response);
        assert!(
            to.starts_with("http://127.0.0.1:49152/callback?"),
            "{extra_path}: {to}"
        );
        assert_eq!(param(&to, "error").as_deref(), Some(error), "{extra_path}");
        assert_eq!(param(&to, "state").as_deref(), Some("st4te"));
        assert!(param(&to, "code").is_none());
    }
    assert_eq!(count(&app, "oauth_codes").await, 0);
}

#[tokio::test]
async fn codes_are_single_use_short_lived_and_bound_to_verifier_client_and_redirect() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "eve@example.com").await;
    let new_code = || async {
        let pkce = pkce();
        let response = authorize(
            &app,
            &browser,
            &authorize_path(
                DESKTOP,
                LOOPBACK,
                "openid offline_access",
                Some(&pkce.challenge),
                "",
            ),
        )
        .await;
        (code_from(&app, &response), pkce.verifier)
    };
    let redeem = |code: String, verifier: String, redirect: &'static str| {
        let app = &app;
        async move {
            token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", DESKTOP),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let (code, _) = new_code().await;
    expect_oauth_error(
        redeem(code.clone(), pkce().verifier, LOOPBACK).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let (code, verifier) = new_code().await;
    expect_oauth_error(
        token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", DESKTOP),
                ("code", &code),
                ("redirect_uri", LOOPBACK),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    expect_oauth_error(
        redeem(
            code.clone(),
            verifier.clone(),
            "http://127.0.0.1:49153/other",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(count(&app, "oauth_grants").await, 0, "nothing issued");

    // Replayed: the second exchange fails and revokes what the first one issued.
    let first = redeem(code.clone(), verifier.clone(), LOOPBACK).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tokens: Value = first.json().await.expect("tokens");
    expect_oauth_error(
        redeem(code, verifier, LOOPBACK).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(
        userinfo(&app, access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refreshed = refresh(
        &app,
        tokens["refresh_token"].as_str().expect("refresh"),
        &[],
    )
    .await;
    expect_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Expired.
    let (code, verifier) = new_code().await;
    {
        let mut conn = app.state.db.writer().await.expect("db");
        on_db!(&mut conn, |c| sqlx::query(
            "UPDATE oauth_codes SET expires_at = 0 WHERE used_at IS NULL"
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .expect("expire");
    }
    expect_oauth_error(
        redeem(code, verifier, LOOPBACK).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "fay@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid email offline_access").await;
    let first = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Asking for more than was granted is refused and changes nothing.
    expect_oauth_error(
        refresh(&app, &first, &[("scope", "openid profile")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    let narrowed = refresh(&app, &first, &[("scope", "openid")]).await;
    assert_eq!(narrowed.status(), StatusCode::OK);
    let second: Value = narrowed.json().await.expect("tokens");
    assert_eq!(second["scope"], "openid");
    let id = verify_with_jwks(
        &app,
        second["id_token"].as_str().expect("id token"),
        DESKTOP,
    )
    .await;
    assert!(
        id.get("email").is_none(),
        "narrowed scope releases no email"
    );
    let second_refresh = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(second_refresh, first);

    // The old token again: refused, and the new one dies with it.
    refresh_is_refused(&app, &first).await;
    refresh_is_refused(&app, &second_refresh).await;
    assert_eq!(
        userinfo(&app, second["access_token"].as_str().expect("access"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Garbage and tokens of another client.
    refresh_is_refused(&app, "not-a-token").await;
    let mut forged = second_refresh.into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    refresh_is_refused(&app, &String::from_utf8(forged).expect("utf8")).await;
}

#[tokio::test]
async fn client_credentials_need_the_right_secret() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let service = service_client(&app, &operator, "Data source").await;
    let id = service["client_id"].as_str().expect("id");
    let secret = service["client_secret"].as_str().expect("secret");
    let basic = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "licenses")])
        .send()
        .await
        .expect("token");
    assert_eq!(basic.status(), StatusCode::OK);
    let tokens: Value = basic.json().await.expect("json");
    let access = verify_with_jwks(
        &app,
        tokens["access_token"].as_str().expect("access"),
        &app.base_url,
    )
    .await;
    assert_eq!(access["sub"], id);
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none());
    let post = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(post.status(), StatusCode::OK);

    let wrong = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(
        wrong
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"entitle\"")
    );
    expect_oauth_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    for form in [
        vec![("grant_type", "client_credentials"), ("client_id", id)],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "unknown"),
            ("client_secret", secret),
        ],
    ] {
        expect_oauth_error(
            token_request(&app, &form).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
    }
    for (form, error) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "openid"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", id),
                ("client_secret", secret),
                ("refresh_token", "x"),
            ],
            "unauthorized_client",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", DESKTOP)],
            "unauthorized_client",
        ),
        (
            vec![("client_id", id), ("client_secret", secret)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            "invalid_request",
        ),
    ] {
        expect_oauth_error(
            token_request(&app, &form).await,
            StatusCode::BAD_REQUEST,
            error,
        )
        .await;
    }
    // Not a form.
    let json_body = new_client()
        .post(app.url("/oauth2/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("token");
    expect_oauth_error(json_body, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// Signs a token with the server's own key, so only the named defect makes it invalid.
fn forge(app: &TestApp, alg: &str, claims: Value, typ: &str) -> String {
    let keys = app.state.oidc.keys.current();
    let key = keys
        .signing(entitle_server::oidc::keys::Alg::parse(alg).expect("alg"))
        .expect("key");
    key.sign(typ, &claims).expect("signs")
}

#[tokio::test]
async fn access_tokens_are_checked_for_key_algorithm_integrity_type_and_expiry() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "gus@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid email").await;
    let good = tokens["access_token"].as_str().expect("access").to_owned();
    assert_eq!(userinfo(&app, &good).await.status(), StatusCode::OK);
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    let parts: Vec<&str> = good.split('.').collect();

    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!(uuid::Uuid::now_v7().to_string());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": jsonwebtoken::decode_header(&good).expect("h").kid}).to_string());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let unknown_key = {
        let mut header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64"))
                .expect("header");
        header["kid"] = json!("someone-elses-key");
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            parts[1],
            parts[2]
        )
    };
    let mut expired_claims = claims.clone();
    expired_claims["exp"] = json!(claims["iat"].as_i64().expect("iat") - 3600);
    let expired = forge(&app, "ES256", expired_claims, "at+jwt");
    let id_token_as_access = tokens["id_token"].as_str().expect("id").to_owned();
    let wrong_typ = forge(&app, "ES256", claims.clone(), "JWT");
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = json!("https://elsewhere.example");
    let other_issuer = forge(&app, "ES256", other_issuer, "at+jwt");
    for (name, token) in [
        ("tampered payload", tampered),
        ("alg none", alg_none),
        ("unknown key", unknown_key),
        ("expired", expired),
        ("an ID token", id_token_as_access),
        ("wrong typ", wrong_typ),
        ("another issuer", other_issuer),
        ("garbage", "x.y.z".to_owned()),
    ] {
        let response = userinfo(&app, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("invalid_token")),
            "{name}"
        );
    }
    let missing = new_client()
        .get(app.url("/oauth2/userinfo"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_and_introspection() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let resource = register_client(
        &app,
        &operator,
        json!({"name": "Resource server", "confidential": true, "resource_server": true,
               "grant_types": ["client_credentials"], "scopes": ["licenses"]}),
    )
    .await;
    let (rs_id, rs_secret) = (
        resource["client_id"].as_str().expect("id"),
        resource["client_secret"].as_str().expect("secret"),
    );
    let introspect = |token: String| {
        let app = &app;
        async move {
            let response = new_client()
                .post(app.url("/oauth2/introspect"))
                .basic_auth(rs_id, Some(rs_secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .expect("introspect");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")
        }
    };
    let browser = signed_in_browser(&app, "hal@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let about = introspect(access.clone()).await;
    assert_eq!(about["active"], true);
    assert_eq!(about["client_id"], DESKTOP);
    assert_eq!(introspect(refresh_token.clone()).await["active"], true);
    assert_eq!(
        introspect("nonsense".to_owned()).await,
        json!({"active": false})
    );

    // Public clients may not introspect.
    let public = new_client()
        .post(app.url("/oauth2/introspect"))
        .form(&[("token", access.as_str()), ("client_id", DESKTOP)])
        .send()
        .await
        .expect("introspect");
    expect_oauth_error(public, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Revoking the access token; then the refresh token and its family.
    let revoke = |token: String| {
        let app = &app;
        async move {
            new_client()
                .post(app.url("/oauth2/revoke"))
                .form(&[("token", token.as_str()), ("client_id", DESKTOP)])
                .send()
                .await
                .expect("revoke")
        }
    };
    assert_eq!(revoke(access.clone()).await.status(), StatusCode::OK);
    assert_eq!(introspect(access.clone()).await["active"], false);
    assert_eq!(
        userinfo(&app, &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(revoke(refresh_token.clone()).await.status(), StatusCode::OK);
    assert_eq!(introspect(refresh_token.clone()).await["active"], false);
    refresh_is_refused(&app, &refresh_token).await;
    assert_eq!(
        revoke("unknown".to_owned()).await.status(),
        StatusCode::OK,
        "unknown tokens are fine (RFC 7009)"
    );
}

async fn device_poll(app: &TestApp, device_code: &str) -> Response {
    token_request(
        app,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", DESKTOP),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn device_flow_signs_in_after_the_person_approves_the_code() {
    let app = TestApp::spawn_with(|c| c.oidc.device_poll_interval_secs = 1).await;
    let start = || async {
        let response = new_client()
            .post(app.url("/oauth2/device_authorization"))
            .form(&[("client_id", DESKTOP), ("scope", "openid offline_access")])
            .send()
            .await
            .expect("device authorization");
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.expect("json")
    };
    let started = start().await;
    let device_code = started["device_code"]
        .as_str()
        .expect("device code")
        .to_owned();
    let user_code = started["user_code"].as_str().expect("user code").to_owned();
    assert_eq!(started["verification_uri"], app.url("/device"));
    assert_eq!(started["interval"], 1);
    expect_oauth_error(
        device_poll(&app, &device_code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    expect_oauth_error(
        device_poll(&app, &device_code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    )
    .await;

    // The person opens the verification page: sign-in first, then the code.
    let browser = new_client();
    app.register("ivy@example.com", PASSWORD).await;
    let page = format!("/device?user_code={}", user_code.to_lowercase());
    let response = browser
        .get(app.url(&page))
        .send()
        .await
        .expect("device page");
    assert!(location(&response).starts_with("/sign-in?next="));
    let normalized = user_code.replace('-', "");
    let next = format!("/device?user_code={normalized}");
    app.page_sign_in(&browser, "ivy@example.com", PASSWORD, &next)
        .await;
    let html = browser
        .get(app.url(&next))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("entitle desktop client") && html.contains(&user_code),
        "{html}"
    );
    let decided = app
        .submit_form(
            &browser,
            &next,
            "/device",
            &[("user_code", &user_code), ("decision", "allow")],
        )
        .await;
    assert_eq!(decided.status(), StatusCode::OK);

    let response = device_poll(&app, &device_code).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("tokens");
    assert!(tokens["refresh_token"].as_str().is_some() && tokens["id_token"].as_str().is_some());
    expect_oauth_error(
        device_poll(&app, &device_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // Denied, and unknown codes.
    let denied = start().await;
    let code = denied["user_code"].as_str().expect("code").replace('-', "");
    let page = format!("/device?user_code={code}");
    app.submit_form(
        &browser,
        &page,
        "/device",
        &[("user_code", &code), ("decision", "deny")],
    )
    .await;
    expect_oauth_error(
        device_poll(&app, denied["device_code"].as_str().expect("dc")).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    let html = browser
        .get(app.url("/device?user_code=BBBBBBBB"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("not valid or has expired"));
    expect_oauth_error(
        device_poll(&app, "unknown-device-code").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_the_grant() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let web = register_client(
        &app,
        &operator,
        json!({"name": "Web app", "confidential": true, "redirect_uris": [LOOPBACK], "post_logout_redirect_uris": ["https://app.example.com/bye"]}),
    )
    .await;
    let (id, secret) = (
        web["client_id"].as_str().expect("id"),
        web["client_secret"].as_str().expect("secret"),
    );
    let browser = signed_in_browser(&app, "jo@example.com").await;
    // A confidential client may skip PKCE.
    let response = authorize(
        &app,
        &browser,
        &authorize_path(id, LOOPBACK, "openid offline_access", None, ""),
    )
    .await;
    let code = code_from(&app, &response);
    let response = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", LOOPBACK),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("json");
    let id_token = tokens["id_token"].as_str().expect("id token");

    // An unregistered return address is refused.
    let refused = browser
        .get(app.url(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            urlencode("https://evil.example/")
        )))
        .send()
        .await
        .expect("logout");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // Without a hint the person is asked first.
    let asked = browser
        .get(app.url("/oauth2/logout"))
        .send()
        .await
        .expect("logout")
        .text()
        .await
        .expect("html");
    assert!(asked.contains("Sign out?"));

    let response = browser
        .get(app.url(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
            urlencode("https://app.example.com/bye")
        )))
        .send()
        .await
        .expect("logout");
    assert_eq!(location(&response), "https://app.example.com/bye?state=bye");
    let account = browser
        .get(app.url("/account"))
        .send()
        .await
        .expect("account");
    assert_eq!(
        location(&account),
        "/sign-in",
        "the browser session is over"
    );
    let refreshed = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
        ])
        .send()
        .await
        .expect("token");
    expect_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn people_sign_out_their_devices_and_administrators_theirs() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let browser = signed_in_browser(&app, "kai@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let session = app.sign_in("kai@example.com", PASSWORD).await;
    let devices: Value = app
        .get_as(&session, "/api/v1/me/devices")
        .await
        .json()
        .await
        .expect("devices");
    let device = devices[0]["id"].as_str().expect("id").to_owned();

    // Someone else cannot see or end it.
    app.register("lea@example.com", PASSWORD).await;
    let other = app.sign_in("lea@example.com", PASSWORD).await;
    let response = new_client()
        .delete(app.url(&format!("/api/v1/me/devices/{device}")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let me: Value = app
        .get_as(&session, "/api/v1/me")
        .await
        .json()
        .await
        .expect("me");
    let kai = me["id"].as_str().expect("id").to_owned();
    let response = app
        .post_as(
            &other,
            &format!("/api/v1/accounts/{kai}/revoke-sessions"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = new_client()
        .delete(app.url(&format!("/api/v1/me/devices/{device}")))
        .bearer_auth(&session)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refresh_is_refused(&app, tokens["refresh_token"].as_str().expect("rt")).await;

    // The operator signs Kai out everywhere: devices and browser sessions.
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let response = app
        .post_as(
            &operator,
            &format!("/api/v1/accounts/{kai}/revoke-sessions"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refresh_is_refused(&app, tokens["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(
        app.get_as(&session, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn only_operators_register_clients_and_registrations_are_checked() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    app.register("max@example.com", PASSWORD).await;
    let person = app.sign_in("max@example.com", PASSWORD).await;
    let before = count(&app, "oauth_clients").await;
    let response = app
        .post_as(
            &person,
            "/api/v1/clients",
            &json!({"name": "Mine", "redirect_uris": [LOOPBACK]}),
        )
        .await;
    entitle_testkit::expect_problem(response, StatusCode::FORBIDDEN, "operator_only").await;
    for body in [
        json!({"name": "", "redirect_uris": [LOOPBACK]}),
        json!({"name": "No redirect"}),
        json!({"name": "Plain http", "redirect_uris": ["http://app.example.com/cb"]}),
        json!({"name": "Fragment", "redirect_uris": ["https://app.example.com/cb#x"]}),
        json!({"name": "Public service", "grant_types": ["client_credentials"]}),
        json!({"name": "Odd grant", "redirect_uris": [LOOPBACK], "grant_types": ["password"]}),
        json!({"name": "Long tokens", "redirect_uris": [LOOPBACK], "access_token_ttl_secs": 10_000_000}),
        json!({"name": "Bad alg", "redirect_uris": [LOOPBACK], "id_token_signed_response_alg": "none"}),
    ] {
        let response = app.post_as(&operator, "/api/v1/clients", &body).await;
        entitle_testkit::expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let response = app
        .post_as(
            &operator,
            "/api/v1/clients",
            &json!({"name": "x", "unknown": 1}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&app, "oauth_clients").await, before);
    let listed: Value = app
        .get_as(&operator, "/api/v1/clients")
        .await
        .json()
        .await
        .expect("clients");
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .any(|c| c["client_id"] == DESKTOP && c["built_in"] == true));
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .all(|c| c.get("client_secret").is_none()));
    let response = new_client()
        .delete(app.url(&format!("/api/v1/clients/{DESKTOP}")))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("delete");
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "the built-in client stays"
    );
}

#[tokio::test]
async fn the_account_page_lists_devices_and_signs_them_out() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "nia@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("entitle desktop client") && html.contains("signs in automatically"),
        "{html}"
    );
    let start = html.find("/account/devices/").expect("sign-out form");
    let action = &html[start..start + html[start..].find('"').expect("end")];
    let response = app.submit_form(&browser, "/account", action, &[]).await;
    let html = response.text().await.expect("html");
    assert!(
        html.contains("The device is signed out.") && html.contains("No device or application"),
        "{html}"
    );
    refresh_is_refused(&app, tokens["refresh_token"].as_str().expect("rt")).await;
}

#[tokio::test]
async fn the_same_refresh_token_used_twice_at_once_wins_once_and_ends_the_family() {
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "oli@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let token = tokens["refresh_token"].as_str().expect("rt");
    let (a, b) = tokio::join!(refresh(&app, token, &[]), refresh(&app, token, &[]));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    let winner: Value = if a.status() == StatusCode::OK {
        a.json().await
    } else {
        b.json().await
    }
    .expect("json");
    refresh_is_refused(&app, winner["refresh_token"].as_str().expect("rt")).await;
}

#[tokio::test]
async fn tokens_carry_the_home_organization_and_roles() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let response = app
        .post_as(
            &operator,
            "/api/v1/orgs",
            &json!({"name": "Acme", "fulfillment_contact": {"email": "fiona@acme.example", "first_name": "Fiona", "last_name": "Contact", "country": "GB"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let org: Value = response.json().await.expect("org");
    let mail = app.mail.expect("fiona@acme.example", "added to Acme").await;
    let token = mail.token("/reset-password").expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "fiona@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let browser = new_client();
    app.page_sign_in(&browser, "fiona@acme.example", PASSWORD, "/account")
        .await;
    let tokens = desktop_tokens(&app, &browser, "openid org offline_access").await;
    let id = verify_with_jwks(&app, tokens["id_token"].as_str().expect("id"), DESKTOP).await;
    assert_eq!(id["org"], org["id"]);
    assert_eq!(id["roles"], json!(["fulfillment_contact"]));
    // Refreshed tokens (read in a batch) say the same.
    let response = refresh(&app, tokens["refresh_token"].as_str().expect("rt"), &[]).await;
    let refreshed: Value = response.json().await.expect("tokens");
    let access = verify_with_jwks(
        &app,
        refreshed["access_token"].as_str().expect("at"),
        &app.base_url,
    )
    .await;
    assert_eq!(access["org"], org["id"]);
    assert_eq!(access["roles"], json!(["fulfillment_contact"]));
}

#[tokio::test]
async fn rotated_keys_stay_published_until_their_tokens_expire() {
    use entitle_server::oidc::keys;
    let app = TestApp::spawn().await;
    let browser = signed_in_browser(&app, "pia@example.com").await;
    let before = desktop_tokens(&app, &browser, "openid").await;
    let old_kid = jsonwebtoken::decode_header(before["id_token"].as_str().expect("id"))
        .expect("h")
        .kid;
    let state = &app.state;
    let retention = keys::longest_token_lifetime_ms(&state.db, &state.config.oidc)
        .await
        .expect("retention");
    assert!(retention >= state.config.oidc.id_token_ttl_secs * 1000);
    keys::rotate(&state.db, state.oidc.keys.kek(), retention)
        .await
        .expect("rotates");
    state.oidc.keys.reload(&state.db).await.expect("reloads");

    let jwks: Value = app.get("/oauth2/jwks").await.json().await.expect("jwks");
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        6,
        "old and new keys published"
    );
    assert_eq!(
        userinfo(&app, before["access_token"].as_str().expect("at"))
            .await
            .status(),
        StatusCode::OK
    );
    let after = desktop_tokens(&app, &browser, "openid").await;
    let new_kid = jsonwebtoken::decode_header(after["id_token"].as_str().expect("id"))
        .expect("h")
        .kid;
    assert_ne!(old_kid, new_kid);
    verify_with_jwks(&app, after["id_token"].as_str().expect("id"), DESKTOP).await;

    // Once the retention is over, the old keys are gone and their tokens with them.
    {
        let mut conn = state.db.writer().await.expect("db");
        on_db!(&mut conn, |c| sqlx::query(
            "UPDATE signing_keys SET publish_until = 0 WHERE retired_at IS NOT NULL"
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .expect("expire");
    }
    state.oidc.keys.reload(&state.db).await.expect("reloads");
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.expect("jwks");
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 3);
    assert_eq!(
        userinfo(&app, before["access_token"].as_str().expect("at"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_requests_to_the_other_endpoints_get_oauth_errors() {
    let app = TestApp::spawn().await;
    let form = |path: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move {
            new_client()
                .post(app.url(path))
                .form(&fields)
                .send()
                .await
                .expect("request")
        }
    };
    expect_oauth_error(
        form(
            "/oauth2/device_authorization",
            vec![("client_id", "nobody")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    expect_oauth_error(
        form(
            "/oauth2/device_authorization",
            vec![("client_id", DESKTOP), ("scope", "openid everything")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    expect_oauth_error(
        form("/oauth2/revoke", vec![("client_id", DESKTOP)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_oauth_error(
        form("/oauth2/introspect", vec![("token", "x")]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let basic_garbage = new_client()
        .post(app.url("/oauth2/token"))
        .header("authorization", "Basic %%%")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    expect_oauth_error(basic_garbage, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let huge = "a".repeat(100 * 1024);
    let too_big = new_client()
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", huge.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let logout = new_client()
        .get(app.url("/oauth2/logout?id_token_hint=not-a-jwt"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::BAD_REQUEST);
    let device = new_client()
        .get(app.url("/device?user_code=%FF"))
        .send()
        .await
        .expect("device");
    assert!(device.status() == StatusCode::SEE_OTHER || device.status() == StatusCode::BAD_REQUEST);
    assert_eq!(count(&app, "oauth_device_codes").await, 0);
    assert_eq!(count(&app, "oauth_grants").await, 0);
}
