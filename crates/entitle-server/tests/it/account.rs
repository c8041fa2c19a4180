use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn changing_the_password_ends_other_sessions_only() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let here = app.sign_in("ana@example.com", PASSWORD).await;
    let elsewhere = app.sign_in("ana@example.com", PASSWORD).await;

    let wrong = app
        .post_as(
            &here,
            "/api/v1/me/password",
            &json!({"current_password": "not it at all", "new_password": "a brand new passphrase"}),
        )
        .await;
    let problem =
        expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "current_password");

    let ok = app
        .post_as(
            &here,
            "/api/v1/me/password",
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&here, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as(&elsewhere, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.sign_in("ana@example.com", "a brand new passphrase")
        .await;
}

#[tokio::test]
async fn people_export_and_erase_their_data() {
    let app = TestApp::spawn().await;
    let id = app.register("ana@example.com", PASSWORD).await;
    let token = app.sign_in("ana@example.com", PASSWORD).await;

    let export: Value = app
        .get_as(&token, "/api/v1/me/export")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(export["account"]["email"], "ana@example.com");
    assert_eq!(export["sessions"].as_array().expect("sessions").len(), 1);
    assert!(export["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["action"] == "account.signed_up"));
    assert!(
        !export.to_string().contains("argon2"),
        "no password hash in the export"
    );

    let wrong = app
        .post_as(
            &token,
            "/api/v1/me/erase",
            &json!({"password": "not the password"}),
        )
        .await;
    expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let erased = app
        .post_as(&token, "/api/v1/me/erase", &json!({"password": PASSWORD}))
        .await;
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);

    assert_eq!(crate::count(&app, "accounts").await, 0);
    assert_eq!(crate::count(&app, "sessions").await, 0);
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    expect_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // The trail keeps the id but no longer names the person.
    let operator = app.operator("ops@vendor.example").await;
    let page: Value = app
        .get_as(&operator, &format!("/api/v1/audit?target_id={id}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(!page.to_string().contains("ana@example.com"), "{page}");
    assert!(page["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["action"] == "account.erased"));
}

#[tokio::test]
async fn the_last_fulfillment_contact_cannot_erase_themselves() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let body = json!({"name": "Acme", "fulfillment_contact": {"email": "fiona@acme.example", "first_name": "Fiona", "last_name": "Contact", "country": "GB"}});
    app.post_as(&operator, "/api/v1/orgs", &body).await;
    let token = app
        .mail
        .expect("fiona@acme.example", "added")
        .await
        .token("/reset-password")
        .expect("link");
    app.post(
        "/api/v1/reset-password",
        &json!({"token": token, "email": "fiona@acme.example", "password": PASSWORD}),
    )
    .await;
    let fiona = app.sign_in("fiona@acme.example", PASSWORD).await;
    let response = app
        .post_as(&fiona, "/api/v1/me/erase", &json!({"password": PASSWORD}))
        .await;
    expect_problem(response, StatusCode::CONFLICT, "last_fulfillment_contact").await;
}

/// The account page names the country and the roles as people read them, in the same
/// styled details as the rest of the portal, and changes the address from a form.
#[tokio::test]
async fn the_account_page_shows_names_and_changes_the_address() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await; // registered with country DE
    let browser = app.new_client();
    app.page_sign_in(&browser, "ana@example.com", PASSWORD, "/account")
        .await;
    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("<dl class=\"details\">"));
    assert!(html.contains("<dd>Germany (DE)</dd>"), "{html}");
    let asked = app
        .submit_form(
            &browser,
            "/account",
            "/account/email",
            &[
                ("new_email", "ana@new.example"),
                ("email_password", PASSWORD),
            ],
        )
        .await;
    let html = asked.text().await.expect("html");
    assert!(html.contains("We sent a link to ana@new.example"), "{html}");
    assert!(html.contains("changing to ana@new.example"));
    app.mail
        .expect(
            "ana@new.example",
            "Confirm your new entitle sign-in address",
        )
        .await;
    let wrong = app
        .submit_form(
            &browser,
            "/account",
            "/account/email",
            &[
                ("new_email", "ana@other.example"),
                ("email_password", "wrong one"),
            ],
        )
        .await;
    let html = wrong.text().await.expect("html");
    assert!(html.contains("id=\"email_password-error\""), "{html}");
}
