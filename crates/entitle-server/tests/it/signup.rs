use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::count;

fn signup_body(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "first_name": "José", "last_name": "Müller", "country": "Germany"})
}

#[tokio::test]
async fn sign_up_then_verify_then_sign_in() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/api/v1/signup",
            &signup_body("  Jose.Mueller@Example.COM "),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = app
        .mail
        .expect("jose.mueller@example.com", "Confirm your email")
        .await;
    assert!(
        mail.html.contains("/verify-email?token="),
        "HTML part carries the link"
    );
    let token = mail.token("/verify-email").expect("link");

    // Not verified yet: no sign-in.
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "jose.mueller@example.com", "password": PASSWORD}),
        )
        .await;
    expect_problem(response, StatusCode::FORBIDDEN, "email_not_verified").await;

    let response = app
        .post("/api/v1/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let account: Value = response.json().await.expect("json");
    assert_eq!(account["email"], "jose.mueller@example.com");
    assert_eq!(account["country"], "DE");
    assert_eq!(account["first_name"], "José");
    assert_eq!(account["email_verified"], true);

    // The link is single use.
    let response = app
        .post("/api/v1/verify-email", &json!({"token": token}))
        .await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;

    // Sign in with a different case of the address.
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "JOSE.MUELLER@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = app.get("/api/v1/me").await.json().await.expect("json");
    assert_eq!(me["email"], "jose.mueller@example.com");
}

#[tokio::test]
async fn sign_up_answers_the_same_for_a_taken_address() {
    let app = TestApp::spawn().await;
    app.register("taken@example.com", PASSWORD).await;
    let accounts = count(&app, "accounts").await;

    let fresh = app
        .post("/api/v1/signup", &signup_body("fresh@example.com"))
        .await;
    let taken = app
        .post("/api/v1/signup", &signup_body("TAKEN@example.com"))
        .await;
    assert_eq!(fresh.status(), taken.status());
    assert_eq!(
        fresh.text().await.expect("body"),
        taken.text().await.expect("body")
    );

    // The owner of the taken address is told, with a way to set a password.
    let mail = app
        .mail
        .expect("taken@example.com", "already have an entitle account")
        .await;
    assert!(mail.token("/reset-password").is_some());
    app.mail
        .expect("fresh@example.com", "Confirm your email")
        .await;
    assert_eq!(count(&app, "accounts").await, accounts + 1);
}

#[tokio::test]
async fn sign_up_rejects_bad_fields_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "first_name": "A", "last_name": "B", "country": "DE"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "first_name": "A", "last_name": "B", "country": "Atlantis"}),
            "country",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "first_name": "A", "last_name": "B", "country": "DE"}),
            "password",
        ),
        (
            json!({"email": "ana@example.com", "password": "ana@example.com!!", "first_name": "Ana", "last_name": "B", "country": "DE"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "first_name": " ", "last_name": "B", "country": "DE"}),
            "first_name",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(300), "first_name": "A", "last_name": "B", "country": "DE"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/signup", &body).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(
            problem["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .any(|e| e["field"] == field),
            "{field}: {problem}"
        );
    }
    assert_eq!(crate::count(&app, "accounts").await, 0);
}

#[tokio::test]
async fn forged_and_malformed_verification_tokens_are_refused() {
    let app = TestApp::spawn().await;
    for token in [
        "",
        "abc",
        &"A".repeat(43),
        "../../etc/passwd",
        &"x".repeat(5000),
    ] {
        let response = app
            .post("/api/v1/verify-email", &json!({"token": token}))
            .await;
        expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
    }
}

#[tokio::test]
async fn verification_links_expire() {
    let app = TestApp::spawn_with(|c| c.tokens.email_verification_ttl_secs = 0).await;
    app.post("/api/v1/signup", &signup_body("late@example.com"))
        .await;
    let token = app
        .mail
        .expect("late@example.com", "Confirm")
        .await
        .token("/verify-email")
        .expect("link");
    let response = app
        .post("/api/v1/verify-email", &json!({"token": token}))
        .await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
}
