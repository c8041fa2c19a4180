use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn changing_the_password_ends_other_sessions_only() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let here = app.sign_in("ana@example.com", PASSWORD).await;
    let elsewhere = app.sign_in("ana@example.com", PASSWORD).await;
    let client = app.new_client();

    let wrong = client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&here)
        .json(
            &json!({"current_password": "not it at all", "new_password": "a brand new passphrase"}),
        )
        .send()
        .await
        .expect("change");
    let problem =
        expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "current_password");

    let ok = client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&here)
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .expect("change");
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        client
            .get(app.url("/api/v1/me"))
            .bearer_auth(&here)
            .send()
            .await
            .expect("me")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(app.url("/api/v1/me"))
            .bearer_auth(&elsewhere)
            .send()
            .await
            .expect("me")
            .status(),
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
    let client = app.new_client();

    let export: Value = client
        .get(app.url("/api/v1/me/export"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export")
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

    let wrong = client
        .post(app.url("/api/v1/me/erase"))
        .bearer_auth(&token)
        .json(&json!({"password": "not the password"}))
        .send()
        .await
        .expect("erase");
    expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let erased = client
        .post(app.url("/api/v1/me/erase"))
        .bearer_auth(&token)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .expect("erase");
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
        .new_client()
        .get(app.url(&format!("/api/v1/audit?target_id={id}")))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("audit")
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
    app.new_client()
        .post(app.url("/api/v1/orgs"))
        .bearer_auth(&operator)
        .json(&body)
        .send()
        .await
        .expect("org");
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
        .new_client()
        .post(app.url("/api/v1/me/erase"))
        .bearer_auth(&fiona)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .expect("erase");
    expect_problem(response, StatusCode::CONFLICT, "last_fulfillment_contact").await;
}
