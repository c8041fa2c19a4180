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
