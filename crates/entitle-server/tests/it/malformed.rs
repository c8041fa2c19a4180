//! Malformed input on every endpoint gets a clear 4xx problem document and changes nothing.

use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::count;

/// Every endpoint of the OpenAPI document that takes a JSON body, with its method, path
/// parameters filled in (bodies are read before anything is looked up).
async fn body_endpoints(app: &TestApp) -> Vec<(Method, String)> {
    let doc: Value = app
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .expect("openapi");
    let mut endpoints = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation["requestBody"]["content"]["application/json"].is_object() {
                let filled = path
                    .split('/')
                    .map(|part| {
                        if part.starts_with('{') {
                            "0190a5a0-0000-7000-8000-000000000001"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                endpoints.push((method.to_uppercase().parse().expect("method"), filled));
            }
        }
    }
    assert!(endpoints.len() >= 20, "{endpoints:?}");
    endpoints
}

async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "accounts",
        "orgs",
        "sessions",
        "account_tokens",
        "terms_versions",
        "audit_events",
        "org_members",
    ] {
        counts.push(count(app, table).await);
    }
    counts
}

#[tokio::test]
async fn malformed_bodies_are_refused_everywhere() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let before = snapshot(&app).await;
    let client = app.new_client();
    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(200 * 1024));
    for (method, path) in body_endpoints(&app).await {
        let send = |body: String, content_type: &'static str| {
            client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&operator)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let r = send("{not json".into(), "application/json")
            .await
            .expect("send");
        expect_problem(r, StatusCode::BAD_REQUEST, "malformed_json").await;
        // Only objects: serde would read an array into a struct field by field.
        for array in [
            "[1, 2, 3]",
            "[]",
            r#"["ops@vendor.example", "correct horse battery staple"]"#,
        ] {
            let r = send(array.into(), "application/json").await.expect("send");
            let problem = expect_problem(r, StatusCode::BAD_REQUEST, "invalid_body").await;
            assert!(problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("object")));
        }
        let r = send(
            r#"{"email": 42, "token": false, "version": [], "name": {}}"#.into(),
            "application/json",
        )
        .await
        .expect("send");
        expect_problem(r, StatusCode::BAD_REQUEST, "invalid_body").await;
        let r = send("email=a%40b.c".into(), "application/x-www-form-urlencoded")
            .await
            .expect("send");
        expect_problem(
            r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        let r = send(huge.clone(), "application/json").await.expect("send");
        expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        let r = send(
            String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x01]).into_owned(),
            "application/json",
        )
        .await
        .expect("send");
        expect_problem(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    }
    // Unknown fields are refused rather than silently ignored.
    let r = app
        .post(
            "/api/v1/forgot-password",
            &json!({"email": "a@example.com", "admin": true}),
        )
        .await;
    expect_problem(r, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_are_problems() {
    let app = TestApp::spawn().await;
    expect_problem(
        app.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let r = app
        .client
        .put(app.url("/api/v1/signup"))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    expect_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    app.register("ana@example.com", PASSWORD).await;
    let token = app.sign_in("ana@example.com", PASSWORD).await;
    let r = app.get_as(&token, "/api/v1/orgs/not-a-uuid").await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // Forged and malformed session tokens are simply not signed in.
    for bad in ["", "x", &"A".repeat(43), "Bearer", &"é".repeat(30)] {
        let r = app
            .new_client()
            .get(app.url("/api/v1/me"))
            .header("authorization", format!("Bearer {bad}"))
            .send()
            .await
            .expect("send");
        expect_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
}

#[tokio::test]
async fn operational_endpoints_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let doc: serde_json::Value = app
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .expect("openapi");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/v1/signup",
        "/api/v1/session",
        "/api/v1/forgot-password",
        "/api/v1/reset-password",
        "/api/v1/terms/accept",
        "/api/v1/orgs",
        "/api/v1/audit",
        "/api/v1/me/export",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

/// Every string has a limit, and an over-long one is a 422 that names the field without
/// echoing the whole text back; email addresses are checked as addresses.
#[tokio::test]
async fn strings_have_limits_and_email_fields_take_only_addresses() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let (org, fiona) =
        crate::members::org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    app.register("sam@example.com", PASSWORD).await;
    let sam = app.sign_in("sam@example.com", PASSWORD).await;
    let before = snapshot(&app).await;
    let long = "x".repeat(60_000);
    let field_refused = async |response: reqwest::Response, field: &str| {
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert!(
            problem.to_string().len() < 2_000,
            "the text is not echoed back"
        );
    };
    for email in [format!("{long}@example.com"), "not-an-email".to_owned()] {
        let r = app
            .post_as(
                &sam,
                "/api/v1/access-requests",
                &json!({"administrator_email": email}),
            )
            .await;
        field_refused(r, "administrator_email").await;
    }
    let r = app
        .post_as(
            &operator,
            "/api/v1/clients",
            &json!({"name": "App", "redirect_uris": ["https://app.example/cb"], "scopes": ["openid", long]}),
        )
        .await;
    field_refused(r, "scopes").await;
    let r = app
        .post_as(&operator, "/api/v1/terms/accept", &json!({"version": long}))
        .await;
    field_refused(r, "version").await;
    let r = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{org}/audit?actor={}", "a".repeat(300)),
        )
        .await;
    field_refused(r, "actor").await;
    let r = app
        .post_as(
            &fiona,
            &format!("/api/v1/orgs/{org}/domains"),
            &json!({"domain": long}),
        )
        .await;
    field_refused(r, "domain").await;
    let r = app
        .post_as(
            &fiona,
            &format!("/api/v1/orgs/{org}/members"),
            &json!({"email": "new@acme.test", "first_name": "N", "last_name": "M",
                    "country": "DE", "roles": [long]}),
        )
        .await;
    field_refused(r, "roles").await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// The OpenAPI document says how each operation authenticates, and says it truly: every
/// API operation that inherits the session requirement answers 401 without credentials,
/// and the ones marked public do not.
#[tokio::test]
async fn the_openapi_document_declares_how_each_operation_authenticates() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .expect("openapi");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["scim_token"]["scheme"], "bearer");
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    assert_eq!(
        doc["security"],
        json!([{"session": []}, {"session_cookie": []}])
    );
    assert_eq!(
        doc["paths"]["/scim/v2/Users/{id}"]["patch"]["security"],
        json!([{"scim_token": []}])
    );
    assert_eq!(
        doc["paths"]["/oauth2/token"]["post"]["security"],
        json!([{"client_secret_basic": []}])
    );
    let mut public = Vec::new();
    let mut checked = 0;
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/") {
            continue;
        }
        for (method, operation) in operations.as_object().expect("operations") {
            let filled: String = path
                .split('/')
                .map(|p| {
                    if p.starts_with('{') {
                        "0190a5a0-0000-7000-8000-000000000001"
                    } else {
                        p
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method: Method = method.to_uppercase().parse().expect("method");
            let response = app
                .new_client()
                .request(method.clone(), app.url(&filled))
                .json(&json!({}))
                .send()
                .await
                .expect("send");
            if operation["security"] == json!([{}]) {
                assert_ne!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                );
                public.push(path.clone());
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                );
                checked += 1;
            }
        }
    }
    assert!(public.iter().any(|p| p == "/api/v1/session"));
    assert!(checked > 40, "{checked}");
}
