use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn publish(app: &TestApp, operator: &str, version: &str) -> reqwest::Response {
    app.post_as(operator, "/api/v1/terms", &json!({"version": version, "title": "Terms of Service", "body": format!("Terms, version {version}.")})).await
}

#[tokio::test]
async fn users_must_accept_the_current_terms_before_anything_else() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    assert_eq!(
        publish(&app, &operator, "2026-01").await.status(),
        StatusCode::CREATED
    );
    app.register("ana@example.com", PASSWORD).await;

    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["tos_required"], true);
    expect_problem(
        app.get("/api/v1/me").await,
        StatusCode::FORBIDDEN,
        "tos_required",
    )
    .await;

    let current: Value = app
        .get("/api/v1/terms/current")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(current["version"], "2026-01");
    let response = app
        .post("/api/v1/terms/accept", &json!({"version": "2025-01"}))
        .await;
    expect_problem(response, StatusCode::CONFLICT, "terms_outdated").await;
    let response = app
        .post("/api/v1/terms/accept", &json!({"version": "2026-01"}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/me").await.status(), StatusCode::OK);

    // Operators owe acceptance too; then a new version must be accepted again by everyone.
    expect_problem(
        publish(&app, &operator, "2026-07").await,
        StatusCode::FORBIDDEN,
        "tos_required",
    )
    .await;
    let accept = app
        .post_as(
            &operator,
            "/api/v1/terms/accept",
            &json!({"version": "2026-01"}),
        )
        .await;
    assert_eq!(accept.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        publish(&app, &operator, "2026-07").await.status(),
        StatusCode::CREATED
    );
    expect_problem(
        app.get("/api/v1/me").await,
        StatusCode::FORBIDDEN,
        "tos_required",
    )
    .await;
}

#[tokio::test]
async fn only_operators_publish_terms_and_versions_are_unique() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    app.register("ana@example.com", PASSWORD).await;
    let user = app.sign_in("ana@example.com", PASSWORD).await;
    expect_problem(
        publish(&app, &user, "1").await,
        StatusCode::FORBIDDEN,
        "operator_only",
    )
    .await;
    expect_problem(
        app.get("/api/v1/terms/current").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let bad = app
        .post_as(
            &operator,
            "/api/v1/terms",
            &json!({"version": "has spaces", "title": "", "body": ""}),
        )
        .await;
    let problem = expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"].as_array().expect("errors").len(), 3);

    assert_eq!(
        publish(&app, &operator, "1").await.status(),
        StatusCode::CREATED
    );
    // The operator accepts their own terms, then cannot reuse the version.
    let accept = app
        .post_as(&operator, "/api/v1/terms/accept", &json!({"version": "1"}))
        .await;
    assert_eq!(accept.status(), StatusCode::NO_CONTENT);
    expect_problem(
        publish(&app, &operator, "1").await,
        StatusCode::CONFLICT,
        "terms_version_exists",
    )
    .await;
}

/// The terms page's first form, the one a keyboard or a screen reader meets first, is the
/// acceptance; signing out is offered after it.
#[tokio::test]
async fn the_terms_page_leads_with_the_accept_form() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    assert_eq!(
        publish(&app, &operator, "2026-01").await.status(),
        StatusCode::CREATED
    );
    app.register("ana@example.com", PASSWORD).await;
    let browser = app.new_client();
    let signed_in = app
        .page_sign_in(&browser, "ana@example.com", PASSWORD, "/account")
        .await;
    assert_eq!(
        entitle_testkit::location(&signed_in),
        "/terms?next=%2Faccount"
    );
    let html = browser
        .get(app.url("/terms?next=%2Faccount"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let forms: Vec<&str> = html
        .match_indices("<form method=\"post\" action=\"")
        .map(|(i, _)| &html[i + 28..i + 28 + 9])
        .collect();
    assert_eq!(forms, ["/terms\">\n", "/sign-out"], "{html}");
    assert!(html.contains("Decline and sign out"));
    let accepted = app
        .submit_form(
            &browser,
            "/terms?next=%2Faccount",
            "/terms",
            &[("version", "2026-01"), ("next", "/account")],
        )
        .await;
    assert_eq!(entitle_testkit::location(&accepted), "/account");
}
