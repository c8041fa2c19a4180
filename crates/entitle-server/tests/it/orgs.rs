use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn org_body(name: &str, contact: &str) -> Value {
    json!({"name": name, "fulfillment_contact": {"email": contact, "first_name": "Fiona", "last_name": "Contact", "country": "gb"}})
}

async fn create_org(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post_as(token, "/api/v1/orgs", body).await
}

#[tokio::test]
async fn operator_creates_an_org_whose_contact_registers_through_the_emailed_link() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let response = create_org(
        &app,
        &operator,
        &org_body("Acme Engineering", "fiona@acme.example"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let org: Value = response.json().await.expect("json");
    let org_id = org["id"].as_str().expect("id").to_owned();
    assert_eq!(
        org["fulfillment_contacts"]
            .as_array()
            .expect("contacts")
            .len(),
        1
    );

    // Created without a password: signing in fails until they register.
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "fiona@acme.example", "password": PASSWORD}),
        )
        .await;
    expect_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let mail = app
        .mail
        .expect("fiona@acme.example", "added to Acme Engineering")
        .await;
    let token = mail.token("/reset-password").expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "fiona@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fiona = app.sign_in("fiona@acme.example", PASSWORD).await;

    let me: Value = app
        .get_as(&fiona, "/api/v1/me")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["home_org_id"], org_id.as_str());
    assert_eq!(me["country"], "GB");
    assert_eq!(me["email_verified"], true);
    let seen = app.get_as(&fiona, &format!("/api/v1/orgs/{org_id}")).await;
    assert_eq!(seen.status(), StatusCode::OK);
}

#[tokio::test]
async fn orgs_are_invisible_to_non_members_and_only_operators_create_them() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let org: Value = create_org(&app, &operator, &org_body("Acme", "fiona@acme.example"))
        .await
        .json()
        .await
        .expect("json");
    let org_id = org["id"].as_str().expect("id");
    app.register("eve@example.com", PASSWORD).await;
    let eve = app.sign_in("eve@example.com", PASSWORD).await;

    let response = app.get_as(&eve, &format!("/api/v1/orgs/{org_id}")).await;
    expect_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .get_as(&operator, &format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()))
        .await;
    expect_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = create_org(&app, &eve, &org_body("Evil", "eve2@example.com")).await;
    expect_problem(response, StatusCode::FORBIDDEN, "operator_only").await;
    let response = app
        .new_client()
        .post(app.url("/api/v1/orgs"))
        .json(&org_body("Anon", "x@example.com"))
        .send()
        .await
        .expect("org");
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

#[tokio::test]
async fn invalid_orgs_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    let before = (
        crate::count(&app, "orgs").await,
        crate::count(&app, "accounts").await,
    );
    for body in [
        org_body("", "fiona@acme.example"),
        org_body("Acme", "not an email"),
        json!({"name": "Acme", "fulfillment_contact": {"email": "f@acme.example", "first_name": "F", "last_name": "C", "country": "Narnia"}}),
    ] {
        let response = create_org(&app, &operator, &body).await;
        expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(
        (
            crate::count(&app, "orgs").await,
            crate::count(&app, "accounts").await
        ),
        before
    );
}

#[tokio::test]
async fn the_operator_reads_the_audit_trail() {
    let app = TestApp::spawn().await;
    let operator = app.operator("ops@vendor.example").await;
    create_org(&app, &operator, &org_body("Acme", "fiona@acme.example")).await;
    app.register("ana@example.com", PASSWORD).await;
    let ana = app.sign_in("ana@example.com", PASSWORD).await;

    let page: Value = app
        .get_as(&operator, "/api/v1/audit?limit=500")
        .await
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "operator.bootstrapped",
        "account.password_set",
        "org.created",
        "account.created",
        "account.signed_up",
        "account.email_verified",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let created = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "org.created")
        .expect("org.created");
    assert_eq!(created["actor"], "ops@vendor.example");
    assert!(created["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"));

    // Filters and paging.
    let filtered: Value = app
        .get_as(&operator, "/api/v1/audit?action=org.created")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(filtered["events"].as_array().expect("events").len(), 1);
    let first: Value = app
        .get_as(&operator, "/api/v1/audit?limit=2")
        .await
        .json()
        .await
        .expect("json");
    let before = first["next_before"].as_str().expect("more pages");
    let second: Value = app
        .get_as(&operator, &format!("/api/v1/audit?limit=2&before={before}"))
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(first["events"][0]["id"], second["events"][0]["id"]);

    let response = app.get_as(&ana, "/api/v1/audit").await;
    expect_problem(response, StatusCode::FORBIDDEN, "operator_only").await;
    let response = app.get_as(&operator, "/api/v1/audit?limit=0").await;
    expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let response = app.get_as(&operator, "/api/v1/audit?before=nope").await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_query").await;
}
