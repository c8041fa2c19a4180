//! The identity half's hardening: what an attacker with an administrator's rights, a SCIM
//! token or a mailbox tried, each refused at its root.

use entitle_server::{on_db, AppState, Config};
use entitle_testkit::{expect_problem, new_client, TestApp, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    members::{member, org_with_contact},
    oidc::{
        desktop_tokens, refresh, refresh_is_refused, register_client, service_client, token_request,
    },
    scim::{expect_scim_error, scim_get, scim_send, scim_token},
};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn patch_body(operations: Value) -> String {
    json!({"schemas": [PATCH_OP], "Operations": operations}).to_string()
}

async fn scim_user(app: &TestApp, token: &str, id: &str) -> Value {
    let response = scim_get(app, token, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("user")
}

/// A desktop client's refresh token for someone with a password, as automatic sign-in keeps it.
async fn desktop_refresh_token(app: &TestApp, email: &str) -> String {
    let browser = new_client();
    let response = app
        .page_sign_in(&browser, email, PASSWORD, "/account")
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    let tokens = desktop_tokens(app, &browser, "openid offline_access").await;
    tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

/// The attack that was reported: an Administrator makes a SCIM token and, through it,
/// changes, disables or removes a Fulfillment Contact. Every SCIM write, alone or in a
/// Bulk request, goes through the rules the API applies, so the token reaches as far as
/// an Administrator and no further.
#[tokio::test]
async fn a_scim_token_reaches_as_far_as_an_administrator_and_no_further() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (fred_id, _) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "fred@acme.test",
        &["fulfillment_contact"],
    )
    .await;
    let (_, ada) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "ada@acme.test",
        &["administrator"],
    )
    .await;
    let mut targets = Vec::new();
    for (email, roles) in [
        ("alan@acme.test", &["administrator"][..]),
        ("cora@acme.test", &["co_administrator"][..]),
        ("ulla@acme.test", &["user", "license_checkout"][..]),
    ] {
        let (id, _) = member(&app, &fiona, &acme, "Acme", email, roles).await;
        targets.push((id, email));
    }
    // The Administrator makes the token, as the attack did.
    let token = scim_token(&app, &ada, &acme).await;
    let fred_path = format!("/scim/v2/Users/{fred_id}");
    let fred_before = scim_user(&app, &token, &fred_id).await;

    let attempts = [
        (
            Method::PATCH,
            Some(patch_body(json!([
                {"op": "replace", "path": "emails", "value": [{"value": "mallory@evil.test", "primary": true}]}
            ]))),
        ),
        (
            Method::PATCH,
            Some(patch_body(json!([
                {"op": "replace", "path": "userName", "value": "mallory@evil.test"}
            ]))),
        ),
        (
            Method::PATCH,
            Some(patch_body(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        ),
        (
            Method::PATCH,
            Some(patch_body(
                json!([{"op": "replace", "path": "name.givenName", "value": "Mal"}]),
            )),
        ),
        (
            Method::PUT,
            Some(
                json!({"schemas": [USER], "userName": "mallory@evil.test",
                       "name": {"givenName": "Fred", "familyName": "Acme"},
                       "emails": [{"value": "mallory@evil.test"}]})
                .to_string(),
            ),
        ),
        (Method::DELETE, None),
    ];
    for (method, body) in &attempts {
        let response = scim_send(
            &app,
            &token,
            method.clone(),
            &fred_path,
            body.as_deref(),
            None,
        )
        .await;
        expect_scim_error(response, StatusCode::FORBIDDEN, None).await;
    }
    // The same through /Bulk: each operation refused on its own.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": format!("/Users/{fred_id}"),
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "mallory@evil.test"}]}]}},
            {"method": "PUT", "path": format!("/Users/{fred_id}"),
             "data": {"schemas": [USER], "userName": "x", "name": {"givenName": "Fred", "familyName": "Acme"}, "active": false}},
            {"method": "DELETE", "path": format!("/Users/{fred_id}")},
        ],
    })
    .to_string();
    let response = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Bulk",
        Some(&bulk),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let results: Value = response.json().await.expect("bulk");
    for result in results["Operations"].as_array().expect("results") {
        assert_eq!(result["status"], "403", "{result}");
    }
    // Nothing of Fred changed, and no mail went to the attacker.
    let mut fred_after = scim_user(&app, &token, &fred_id).await;
    fred_after["meta"] = fred_before["meta"].clone();
    assert_eq!(fred_after, fred_before);
    assert!(app
        .mail
        .all()
        .await
        .iter()
        .all(|m| !m.to.iter().any(|t| t.contains("evil.test"))));

    // Within its reach the token does what an Administrator does.
    for (id, email) in &targets {
        let path = format!("/scim/v2/Users/{id}");
        let renamed = scim_send(
            &app,
            &token,
            Method::PATCH,
            &path,
            Some(&patch_body(json!([
                {"op": "replace", "path": "name.givenName", "value": "Renamed"},
                {"op": "replace", "path": "externalId", "value": "idp-1"},
            ]))),
            None,
        )
        .await;
        assert_eq!(renamed.status(), StatusCode::OK, "{email}");
        let off = scim_send(
            &app,
            &token,
            Method::PATCH,
            &path,
            Some(&patch_body(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
            None,
        )
        .await;
        assert_eq!(off.status(), StatusCode::OK, "{email}");
        let removed = scim_send(&app, &token, Method::DELETE, &path, None, None).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT, "{email}");
    }
}

/// A registered person's sign-in address changes only when the owner of the new one
/// confirms it; the old address is told, can cancel, and is told again when it happens;
/// then every session and refresh-token grant of the account ends.
#[tokio::test]
async fn a_new_sign_in_address_waits_for_its_owner_and_then_signs_the_person_out() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (uma_id, uma) = member(&app, &fiona, &acme, "Acme", "uma@acme.test", &[]).await;
    let refresh_token = desktop_refresh_token(&app, "uma@acme.test").await;

    let response = entitle_testkit::new_client()
        .patch(app.url(&format!("/api/v1/orgs/{acme}/members/{uma_id}")))
        .bearer_auth(&fiona)
        .json(&json!({"email": "Uma.New@Acme.test"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), StatusCode::OK);
    let member: Value = response.json().await.expect("member");
    assert_eq!(member["email"], "uma@acme.test");
    assert_eq!(member["pending_email"], "uma.new@acme.test");
    let told = app
        .mail
        .expect("uma@acme.test", "sign-in address is being changed")
        .await;
    assert!(told.text.contains("uma.new@acme.test"));
    let confirm = app
        .mail
        .expect(
            "uma.new@acme.test",
            "Confirm your new entitle sign-in address",
        )
        .await;

    // Until confirmed, the new address neither signs in nor recovers the account.
    let refused = app
        .post(
            "/api/v1/session",
            &json!({"email": "uma.new@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "uma.new@acme.test"}),
    )
    .await;
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "uma@acme.test"}),
    )
    .await;
    app.mail
        .expect("uma@acme.test", "Set your entitle password")
        .await;
    assert!(app.mail.all().await.iter().all(
        |m| !(m.to.contains(&"uma.new@acme.test".to_owned()) && m.subject.contains("password"))
    ));
    assert_eq!(
        app.get_as(&uma, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // The link is used on a page that asks first; then the change is made.
    let token = confirm.token("/confirm-email-change").expect("link");
    let confirmed = app
        .post("/api/v1/email-change/confirm", &json!({"token": token}))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let account: Value = confirmed.json().await.expect("account");
    assert_eq!(
        (
            account["email"].as_str(),
            account["email_verified"].as_bool()
        ),
        (Some("uma.new@acme.test"), Some(true))
    );
    app.mail
        .expect("uma@acme.test", "sign-in address was changed")
        .await;
    assert_eq!(
        app.get_as(&uma, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED,
        "sessions ended"
    );
    refresh_is_refused(&app, &refresh_token).await;
    expect_problem(
        app.post("/api/v1/email-change/confirm", &json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    app.sign_in("uma.new@acme.test", PASSWORD).await;
    let old = app
        .post(
            "/api/v1/session",
            &json!({"email": "uma@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let members: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members?q=uma.new"))
        .await
        .json()
        .await
        .expect("members");
    assert_eq!(members["total"], 1, "the member list follows the address");

    // The person asks for another change themselves (password required); the old
    // address cancels it.
    let uma = app.sign_in("uma.new@acme.test", PASSWORD).await;
    expect_problem(
        app.post_as(
            &uma,
            "/api/v1/me/email",
            &json!({"email": "u@acme.test", "password": "wrong password here"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_problem(
        app.post_as(
            &uma,
            "/api/v1/me/email",
            &json!({"email": "fiona@acme.test", "password": PASSWORD}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let asked = app
        .post_as(
            &uma,
            "/api/v1/me/email",
            &json!({"email": "u@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let confirm = app
        .mail
        .expect("u@acme.test", "Confirm your new")
        .await
        .token("/confirm-email-change")
        .expect("confirm link");
    let cancel = app
        .mail
        .expect("uma.new@acme.test", "is being changed")
        .await
        .token("/cancel-email-change")
        .expect("cancel link");
    let cancelled = app
        .post("/api/v1/email-change/cancel", &json!({"token": cancel}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.post("/api/v1/email-change/confirm", &json!({"token": confirm}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.get_as(&uma, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

/// Through SCIM the same: a registered person's new address waits for confirmation; a
/// person who has not registered yet is re-invited at the new address at once.
#[tokio::test]
async fn scim_address_changes_wait_for_registered_people_and_reinvite_the_others() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (uma_id, _) = member(&app, &fiona, &acme, "Acme", "uma@acme.test", &[]).await;
    let token = scim_token(&app, &fiona, &acme).await;
    let change_to = |email: &str| {
        patch_body(
            json!([{"op": "replace", "path": "emails", "value": [{"value": email, "primary": true}]}]),
        )
    };

    let patched = scim_send(
        &app,
        &token,
        Method::PATCH,
        &format!("/scim/v2/Users/{uma_id}"),
        Some(&change_to("uma@new.test")),
        None,
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let user: Value = patched.json().await.expect("user");
    assert_eq!(user["emails"][0]["value"], "uma@acme.test");
    app.mail.expect("uma@acme.test", "is being changed").await;
    app.mail.expect("uma@new.test", "Confirm your new").await;

    let created = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Users",
        Some(
            &json!({"schemas": [USER], "userName": "nina@acme.test",
                    "name": {"givenName": "Nina", "familyName": "N"}})
            .to_string(),
        ),
        None,
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let nina: Value = created.json().await.expect("user");
    let first = app
        .mail
        .expect("nina@acme.test", "added to Acme")
        .await
        .token("/reset-password")
        .expect("link");
    let moved = scim_send(
        &app,
        &token,
        Method::PATCH,
        &format!("/scim/v2/Users/{}", nina["id"].as_str().expect("id")),
        Some(&change_to("nina@acme.example")),
        None,
    )
    .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.expect("user");
    assert_eq!(moved["emails"][0]["value"], "nina@acme.example");
    let second = app
        .mail
        .expect("nina@acme.example", "added to Acme")
        .await
        .token("/reset-password")
        .expect("link");
    expect_problem(
        app.post(
            "/api/v1/reset-password",
            &json!({"token": first, "email": "nina@acme.test", "password": PASSWORD}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let registered = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": second, "email": "nina@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::OK);
}

/// A new password, whether changed or reset, ends browser sessions and the grants of
/// clients (the desktop client's automatic sign-in included), and the person is told.
#[tokio::test]
async fn a_new_password_ends_sessions_and_refresh_tokens_and_is_told() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    member(&app, &fiona, &acme, "Acme", "uma@acme.test", &[]).await;

    let refresh_token = desktop_refresh_token(&app, "uma@acme.test").await;
    let other = app.sign_in("uma@acme.test", PASSWORD).await;
    let current = app.sign_in("uma@acme.test", PASSWORD).await;
    let new_password = "a different long passphrase";
    let changed = app
        .post_as(
            &current,
            "/api/v1/me/password",
            &json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    refresh_is_refused(&app, &refresh_token).await;
    assert_eq!(
        app.get_as(&other, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as(&current, "/api/v1/me").await.status(),
        StatusCode::OK,
        "the session that made the change stays"
    );
    app.mail
        .expect("uma@acme.test", "Your entitle password was changed")
        .await;

    // Reset by email link: the same, the session that asked included.
    let browser = new_client();
    app.page_sign_in(&browser, "uma@acme.test", new_password, "/account")
        .await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    let rotated = refresh(&app, tokens["refresh_token"].as_str().expect("rt"), &[]).await;
    assert_eq!(rotated.status(), StatusCode::OK, "the family lives");
    let rotated: Value = rotated.json().await.expect("tokens");
    let refresh_token = rotated["refresh_token"].as_str().expect("rt").to_owned();
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "uma@acme.test"}),
    )
    .await;
    let link = app
        .mail
        .expect("uma@acme.test", "Set your entitle password")
        .await
        .token("/reset-password")
        .expect("link");
    let reset = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": link, "email": "uma@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(
        app.get_as(&current, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    refresh_is_refused(&app, &refresh_token).await;
    app.mail
        .expect("uma@acme.test", "Your entitle password was changed")
        .await;
}

/// Signing a person out everywhere touches their whole account, so only they, an
/// operator, or someone who may change them in their home organization may do it.
#[tokio::test]
async fn signing_someone_out_everywhere_follows_the_member_rules() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (_, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let (_, cory) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "cory@acme.test",
        &["co_administrator"],
    )
    .await;
    let (uma_id, uma) = member(&app, &fiona, &acme, "Acme", "uma@acme.test", &[]).await;
    let fiona_id = app
        .get_as(&fiona, "/api/v1/me")
        .await
        .json::<Value>()
        .await
        .expect("me")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let revoke = async |token: &str, id: &str| {
        app.post_as(
            token,
            &format!("/api/v1/accounts/{id}/revoke-sessions"),
            &json!({}),
        )
        .await
    };
    expect_problem(
        revoke(&cory, &fiona_id).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        revoke(&gus, &uma_id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        revoke(&uma, &fiona_id).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    assert_eq!(
        app.get_as(&fiona, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        revoke(&cory, &uma_id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get_as(&uma, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Introspection tells a client about its own tokens; only a client registered as a
/// resource server learns about others'.
#[tokio::test]
async fn clients_introspect_their_own_tokens_and_resource_servers_any() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@example.com").await;
    let resource = register_client(
        &app,
        &operator,
        json!({"name": "API", "confidential": true, "resource_server": true,
               "grant_types": ["client_credentials"], "scopes": ["licenses"]}),
    )
    .await;
    let nosy = service_client(&app, &operator, "Another service").await;
    let expect_problem_fields = app
        .post_as(
            &operator,
            "/api/v1/clients",
            &json!({"name": "Public API", "resource_server": true, "redirect_uris": ["https://x.example/cb"]}),
        )
        .await;
    expect_problem(
        expect_problem_fields,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let introspect = async |client: &Value, token: &str| -> Value {
        new_client()
            .post(app.url("/oauth2/introspect"))
            .basic_auth(
                client["client_id"].as_str().expect("id"),
                client["client_secret"].as_str(),
            )
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect")
            .json()
            .await
            .expect("json")
    };
    let browser = crate::oidc::signed_in_browser(&app, "hal@example.com").await;
    let tokens = desktop_tokens(&app, &browser, "openid offline_access").await;
    for token in ["access_token", "refresh_token"] {
        let token = tokens[token].as_str().expect("token");
        assert_eq!(introspect(&nosy, token).await, json!({"active": false}));
        assert_eq!(introspect(&resource, token).await["active"], true);
    }
    let own: Value = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", nosy["client_id"].as_str().expect("id")),
            (
                "client_secret",
                nosy["client_secret"].as_str().expect("secret"),
            ),
        ],
    )
    .await
    .json()
    .await
    .expect("tokens");
    let about = introspect(&nosy, own["access_token"].as_str().expect("access")).await;
    assert_eq!(about["active"], true);
}

/// Servers started at the same moment on an empty database make one set of signing keys
/// (and one key-encryption key file), so each accepts the other's tokens from the start.
#[tokio::test]
async fn servers_starting_together_make_one_set_of_signing_keys() {
    let temp = tempfile::tempdir().expect("tempdir");
    let database_url = entitle_testkit::fresh_database().await.expect("database");
    let config = || {
        let mut config = Config::for_test(temp.path().join("data"));
        config.database_url = database_url.clone();
        config
    };
    let (a, b) = tokio::join!(AppState::open(config()), AppState::open(config()));
    let (a, b) = (a.expect("first server"), b.expect("second server"));
    assert_eq!(a.oidc.keys.current().jwks(), b.oidc.keys.current().jwks());
    let mut conn = a.db.reader().await.expect("connection");
    let (keys,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM signing_keys"
    )
    .fetch_one(c)
    .await)
    .expect("count");
    assert_eq!(keys, 3, "one key per algorithm");
    assert_eq!(a.licensing.current().kid, b.licensing.current().kid);
    let (license_keys,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM license_keys"
    )
    .fetch_one(c)
    .await)
    .expect("count");
    assert_eq!(license_keys, 1, "one license key");
}

/// Wrong passwords sent at once, half to each of two servers on one database, get no more
/// checks than the same sent one after another: the attempt is counted before the hash.
#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_guesses_than_sequential_ones() {
    let app = TestApp::spawn().await;
    let beside = app.spawn_beside().await;
    app.register("kim@example.com", PASSWORD).await;
    let free = app.state.config.throttle.account_free_failures;
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let url = if i % 2 == 0 {
                app.url("/api/v1/session")
            } else {
                beside.url("/api/v1/session")
            };
            tokio::spawn(async move {
                new_client()
                    .post(url)
                    .json(
                        &json!({"email": "kim@example.com", "password": "not the password at all"}),
                    )
                    .send()
                    .await
                    .expect("sign in")
                    .status()
            })
        })
        .collect();
    let mut checked = 0;
    for attempt in attempts {
        match attempt.await.expect("request") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, free);
    let mut conn = app.state.db.reader().await.expect("connection");
    let (failures,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT failures FROM throttles WHERE key = $1"
    )
    .bind("signin:account:kim@example.com")
    .fetch_one(c)
    .await)
    .expect("throttle");
    assert_eq!(failures, free, "no increment lost, none extra");
    let blocked = app
        .post(
            "/api/v1/session",
            &json!({"email": "kim@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A person may type only so many wrong device codes before waiting: a pending code of
/// someone else's cannot be found by trying.
#[tokio::test]
async fn the_device_page_limits_wrong_codes_per_person() {
    let app = TestApp::spawn().await;
    let browser = crate::oidc::signed_in_browser(&app, "kai@example.com").await;
    let free = app.state.config.throttle.account_free_failures;
    for attempt in 0..=free {
        let response = browser
            .get(app.url("/device?user_code=ZZZZ-ZZZZ"))
            .send()
            .await
            .expect("device page");
        if attempt < free {
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.text().await.expect("html").contains("not valid"));
        } else {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(response
                .text()
                .await
                .expect("html")
                .contains("Too many wrong codes"));
        }
    }
    let form = app
        .submit_form(
            &browser,
            "/device",
            "/device",
            &[("user_code", "ZZZZ-ZZZZ"), ("decision", "allow")],
        )
        .await;
    assert_eq!(form.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// On PostgreSQL a client disabled through one server is refused by the others at once
/// (they are told with NOTIFY), not when their cache of clients expires.
#[tokio::test]
async fn a_client_disabled_on_one_server_is_refused_by_the_others_at_once() {
    let app = TestApp::spawn().await;
    if app.state.config.database_url.is_none() {
        return; // One process serves a SQLite database.
    }
    let beside = app.spawn_beside().await;
    let operator = app.operator("olga@example.com").await;
    let service = service_client(&app, &operator, "Data source").await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", service["client_id"].as_str().expect("id")),
        (
            "client_secret",
            service["client_secret"].as_str().expect("secret"),
        ),
    ];
    let token_at = async |server: &TestApp| {
        new_client()
            .post(server.url("/oauth2/token"))
            .form(&form)
            .send()
            .await
            .expect("token")
            .status()
    };
    assert_eq!(token_at(&beside).await, StatusCode::OK, "cached there now");
    let disabled = new_client()
        .delete(app.url(&format!(
            "/api/v1/clients/{}",
            service["client_id"].as_str().expect("id")
        )))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("disable");
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    // Well within the cache's 10 seconds: the notice, not the expiry, dropped it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while token_at(&beside).await == StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other server still accepts the disabled client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(token_at(&app).await, StatusCode::UNAUTHORIZED);
}

/// Behind a trusted reverse proxy that terminates TLS, cookies are Secure.
#[tokio::test]
async fn cookies_are_secure_behind_a_trusted_tls_proxy() {
    let app = TestApp::spawn_with(|config| config.trust_forwarded_for = true).await;
    app.register("kim@example.com", PASSWORD).await;
    let sign_in = async |headers: &[(&str, &str)]| {
        let mut request = new_client()
            .post(app.url("/api/v1/session"))
            .json(&json!({"email": "kim@example.com", "password": PASSWORD}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("sign in");
        assert_eq!(response.status(), StatusCode::OK);
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    for headers in [
        &[("x-forwarded-proto", "https")][..],
        &[("forwarded", "for=192.0.2.1;proto=https")][..],
    ] {
        let cookies = sign_in(headers).await;
        assert!(!cookies.is_empty());
        assert!(
            cookies.iter().all(|c| c.contains("; Secure")),
            "{cookies:?}"
        );
    }
    let plain = sign_in(&[("x-forwarded-proto", "http")]).await;
    assert!(plain.iter().all(|c| !c.contains("Secure")), "{plain:?}");

    let untrusting = TestApp::spawn().await;
    untrusting.register("kim@example.com", PASSWORD).await;
    let response = new_client()
        .post(untrusting.url("/api/v1/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("sign in");
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap_or_default().contains("Secure")));
}
