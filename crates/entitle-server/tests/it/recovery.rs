use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn forgot_password_answers_the_same_whatever_the_address() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let known = app
        .post(
            "/api/v1/forgot-password",
            &json!({"email": "ana@example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/forgot-password",
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        known.text().await.expect("body"),
        unknown.text().await.expect("body")
    );
    app.mail
        .expect("ana@example.com", "Set your entitle password")
        .await;
    assert!(app
        .mail
        .all()
        .await
        .iter()
        .all(|m| !m.to.contains(&"nobody@example.com".to_owned())));
}

#[tokio::test]
async fn reset_link_requires_the_email_address_and_works_once() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let old_session = app.sign_in("ana@example.com", PASSWORD).await;
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    let token = app
        .mail
        .expect("ana@example.com", "Set your entitle password")
        .await
        .token("/reset-password")
        .expect("link");

    // The page asks to confirm the address; a wrong one is refused and uses nothing up.
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "eve@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    let problem = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "email_mismatch");
    let response = app.post("/api/v1/reset-password", &json!({"token": token, "email": "ana@example.com", "password": "ana@example.com is me"})).await;
    expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": " ANA@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // Single use; old password and old sessions are gone.
    let response = app.post("/api/v1/reset-password", &json!({"token": token, "email": "ana@example.com", "password": "yet another passphrase"})).await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    expect_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let me = app.get_as(&old_session, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    app.sign_in("ana@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_new_reset_link_retires_older_ones_once_used() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    let first = app
        .mail
        .expect("ana@example.com", "Set your")
        .await
        .token("/reset-password")
        .expect("link");
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    let second = app
        .mail
        .expect("ana@example.com", "Set your")
        .await
        .token("/reset-password")
        .expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": second, "email": "ana@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.post("/api/v1/reset-password", &json!({"token": first, "email": "ana@example.com", "password": "yet another passphrase"})).await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
}

#[tokio::test]
async fn reset_links_expire() {
    let app = TestApp::spawn_with(|c| c.tokens.password_reset_ttl_secs = 0).await;
    app.register("ana@example.com", PASSWORD).await;
    app.post(
        "/api/v1/forgot-password",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    let token = app
        .mail
        .expect("ana@example.com", "Set your")
        .await
        .token("/reset-password")
        .expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "ana@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
}

#[tokio::test]
async fn recovery_emails_are_capped_per_address() {
    let app = TestApp::spawn_with(|c| c.throttle.emails_per_hour = 2).await;
    app.register("ana@example.com", PASSWORD).await;
    for _ in 0..4 {
        let response = app
            .post(
                "/api/v1/forgot-password",
                &json!({"email": "ana@example.com"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Sign-up's verification mail was the first of the hour, so one more gets through.
    app.mail.expect("ana@example.com", "Set your").await;
    let sent = app
        .mail
        .all()
        .await
        .into_iter()
        .filter(|m| m.subject.contains("Set your"))
        .count();
    assert_eq!(sent, 0, "only one recovery email got through the cap");
}
