//! Organization members over HTTP: who may list them, search, sort and pages, and
//! that nothing of one organization is visible from another.

use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An organization with its Fulfillment Contact registered and signed in: (org id, token).
pub async fn org_with_contact(
    app: &TestApp,
    operator: &str,
    name: &str,
    contact: &str,
) -> (String, String) {
    let response = app
        .post_as(
            operator,
            "/api/v1/orgs",
            &json!({"name": name, "fulfillment_contact": {"email": contact, "first_name": "Fiona", "last_name": name, "country": "GB"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let org: Value = response.json().await.expect("org");
    let mail = app.mail.expect(contact, &format!("added to {name}")).await;
    let token = mail.token("/reset-password").expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": contact, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    (
        org["id"].as_str().expect("id").to_owned(),
        app.sign_in(contact, PASSWORD).await,
    )
}

#[tokio::test]
async fn members_are_listed_to_administrators_and_hidden_from_other_orgs() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.example").await;

    let page: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["total"], 1);
    assert_eq!(page["members"][0]["email"], "fiona@acme.example");
    assert_eq!(page["members"][0]["roles"], json!(["fulfillment_contact"]));
    assert_eq!(page["members"][0]["registered"], true);

    // Org A's administrator gets 404 for anything of org B, as does a stranger.
    for path in [
        format!("/api/v1/orgs/{globex}/members"),
        format!("/api/v1/orgs/{globex}/administrators"),
        format!("/api/v1/orgs/{globex}"),
    ] {
        expect_problem(
            app.get_as(&fiona, &path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    app.register("stranger@example.com", PASSWORD).await;
    let stranger = app.sign_in("stranger@example.com", PASSWORD).await;
    expect_problem(
        app.get_as(&stranger, &format!("/api/v1/orgs/{acme}/members"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get_as(
            &gus,
            &format!("/api/v1/orgs/{}/members", uuid::Uuid::now_v7()),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Operators see every organization; members see who their administrators are.
    let page: Value = app
        .get_as(&operator, &format!("/api/v1/orgs/{globex}/members"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["members"][0]["email"], "gus@globex.example");
    let admins: Value = app
        .get_as(&gus, &format!("/api/v1/orgs/{globex}/administrators"))
        .await
        .json()
        .await
        .expect("admins");
    assert_eq!(
        admins,
        json!([{"first_name": "Fiona", "last_name": "Globex", "email": "gus@globex.example", "roles": ["fulfillment_contact"]}])
    );
}

#[tokio::test]
async fn member_lists_search_sort_and_page_and_refuse_bad_queries() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let list = |query: &str| {
        let app = &app;
        let path = format!("/api/v1/orgs/{acme}/members?{query}");
        let fiona = fiona.clone();
        async move { app.get_as(&fiona, &path).await }
    };
    let page: Value = list("q=FIONA&sort=last_name&order=desc&limit=1&offset=0")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        (page["total"].as_i64(), page["limit"].as_i64()),
        (Some(1), Some(1))
    );
    let none: Value = list("q=%25nobody_").await.json().await.expect("page");
    assert_eq!(none["total"], 0);
    for bad in [
        "sort=password_hash",
        "order=up",
        "limit=0",
        "limit=201",
        "offset=-1",
    ] {
        expect_problem(
            list(bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(list("limit=ten").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(list("unknown=1").await.status(), StatusCode::BAD_REQUEST);
}
