//! The identity half's hardening: what an attacker with an administrator's rights, a SCIM
//! token or a mailbox tried, each refused at its root.

use entitle_testkit::{expect_problem, new_client, TestApp, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    members::{member, org_with_contact},
    oidc::{desktop_tokens, refresh, refresh_is_refused},
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
