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

/// Acme (Fiona, its Fulfillment Contact, and Cory, a Co-Administrator) and Globex (Gus,
/// its Fulfillment Contact), all registered and signed in: what most tests of an
/// organization's rules start from.
pub struct TwoOrgs {
    pub acme: String,
    pub fiona: String,
    pub cory: String,
    pub globex: String,
    pub gus: String,
}

pub async fn acme_and_globex(app: &TestApp) -> TwoOrgs {
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(app, &operator, "Acme", "fiona@acme.test").await;
    let (globex, gus) = org_with_contact(app, &operator, "Globex", "gus@globex.test").await;
    let (_, cory) = member(
        app,
        &fiona,
        &acme,
        "Acme",
        "cory@acme.test",
        &["co_administrator"],
    )
    .await;
    TwoOrgs {
        acme,
        fiona,
        cory,
        globex,
        gus,
    }
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

    // Search matches the start of the email address, its domain, "first last" or
    // "last first", in any case, non-ASCII included; sorting by name is by those keys.
    for (email, first, last) in [
        ("jose@corp.example", "José", "Müller"),
        ("wang@corp.example", "王", "小明"),
        ("alexis@acme.example", "Αλέξης", "Παππάς"),
    ] {
        let response = app
            .post_as(
                &fiona,
                &format!("/api/v1/orgs/{acme}/members"),
                &json!({"email": email, "first_name": first, "last_name": last, "country": "DE"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let emails = |page: Value| -> Vec<String> {
        page["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["email"].as_str().expect("email").to_owned())
            .collect()
    };
    for (query, expected) in [
        ("q=JOSE", vec!["jose@corp.example"]),
        (
            "q=corp.example",
            vec!["jose@corp.example", "wang@corp.example"],
        ),
        ("q=m%C3%9CLLER%20jos", vec!["jose@corp.example"]),
        ("q=%20jos%C3%A9%20%20m%C3%BC%20", vec!["jose@corp.example"]),
        ("q=%CE%B1%CE%BB%CE%AD%CE%BE", vec!["alexis@acme.example"]),
        ("q=%E5%B0%8F%E6%98%8E", vec!["wang@corp.example"]),
        ("q=ller", vec![]),
        (
            "sort=first_name",
            vec![
                "fiona@acme.example",
                "jose@corp.example",
                "alexis@acme.example",
                "wang@corp.example",
            ],
        ),
        (
            "sort=email&order=desc&limit=2&offset=1",
            vec!["jose@corp.example", "fiona@acme.example"],
        ),
    ] {
        let page: Value = list(query).await.json().await.expect("page");
        assert_eq!(emails(page), expected, "{query}");
    }
    let all: Value = list("limit=1").await.json().await.expect("page");
    assert_eq!(all["total"], 4, "the organization's member count");
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

async fn add(
    app: &TestApp,
    token: &str,
    org: &str,
    email: &str,
    roles: &[&str],
) -> reqwest::Response {
    app.post_as(
        token,
        &format!("/api/v1/orgs/{org}/members"),
        &json!({"email": email, "first_name": "New", "last_name": "Member", "country": "DE", "roles": roles}),
    )
    .await
}

async fn put_roles(
    app: &TestApp,
    token: &str,
    org: &str,
    account: &str,
    roles: &[&str],
) -> reqwest::Response {
    entitle_testkit::new_client()
        .put(app.url(&format!("/api/v1/orgs/{org}/members/{account}/roles")))
        .bearer_auth(token)
        .json(&json!({"roles": roles}))
        .send()
        .await
        .expect("put")
}

async fn delete(app: &TestApp, token: &str, org: &str, account: &str) -> reqwest::Response {
    entitle_testkit::new_client()
        .delete(app.url(&format!("/api/v1/orgs/{org}/members/{account}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete")
}

/// Adds a member with `roles`, who registers from the invitation; returns (id, token).
pub async fn member(
    app: &TestApp,
    by: &str,
    org: &str,
    org_name: &str,
    email: &str,
    roles: &[&str],
) -> (String, String) {
    let response = add(app, by, org, email, roles).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let added: Value = response.json().await.expect("member");
    assert_eq!(added["registered"], false);
    let mail = app
        .mail
        .expect(email, &format!("added to {org_name}"))
        .await;
    let token = mail.token("/reset-password").expect("link");
    let response = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    (
        added["account_id"].as_str().expect("id").to_owned(),
        app.sign_in(email, PASSWORD).await,
    )
}

#[tokio::test]
async fn administrators_add_members_and_roles_only_as_far_as_their_own_reach() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (admin_id, admin) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "adam@acme.example",
        &["Administrator"],
    )
    .await;
    let (co_id, co) = member(
        &app,
        &admin,
        &acme,
        "Acme",
        "cora@acme.example",
        &["co_administrator"],
    )
    .await;
    let (user_id, user) = member(
        &app,
        &co,
        &acme,
        "Acme",
        "uma@acme.example",
        &["User", "License Checkout"],
    )
    .await;

    // A Co-Administrator can never grant Administrator or Fulfillment Contact.
    expect_problem(
        add(&app, &co, &acme, "x@acme.example", &["administrator"]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        put_roles(&app, &co, &acme, &user_id, &["administrator"]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        put_roles(&app, &co, &acme, &user_id, &["fulfillment_contact"]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    // ...nor change someone above them.
    expect_problem(
        put_roles(&app, &co, &acme, &admin_id, &["user"]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        delete(&app, &co, &acme, &admin_id).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    // An Administrator cannot make Fulfillment Contacts; a User manages nobody.
    expect_problem(
        put_roles(&app, &admin, &acme, &co_id, &["fulfillment_contact"]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        add(&app, &user, &acme, "y@acme.example", &[]).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        app.get_as(&user, &format!("/api/v1/orgs/{acme}/members"))
            .await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;

    let response = put_roles(&app, &co, &acme, &user_id, &["user", "software_downloads"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.expect("member");
    assert_eq!(changed["roles"], json!(["user", "software_downloads"]));
    assert_eq!(
        delete(&app, &co, &acme, &user_id).await.status(),
        StatusCode::NO_CONTENT
    );
    let page: Value = app
        .get_as(&admin, &format!("/api/v1/orgs/{acme}/members"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["total"], 3);
    // The User's access is gone with the membership.
    assert_eq!(
        app.get_as(&user, &format!("/api/v1/orgs/{acme}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // The last Fulfillment Contact stays.
    let fiona_id = page["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "fiona@acme.example")
        .expect("fiona")["account_id"]
        .as_str()
        .expect("id")
        .to_owned();
    expect_problem(
        put_roles(&app, &fiona, &acme, &fiona_id, &["administrator"]).await,
        StatusCode::CONFLICT,
        "last_fulfillment_contact",
    )
    .await;
    expect_problem(
        delete(&app, &fiona, &acme, &fiona_id).await,
        StatusCode::CONFLICT,
        "last_fulfillment_contact",
    )
    .await;

    let events: Value = app
        .get_as(&operator, "/api/v1/audit?action=org.roles_changed")
        .await
        .json()
        .await
        .expect("events");
    let event = &events["events"][0];
    assert_eq!(
        event["details"]["before"],
        json!(["user", "license_checkout"])
    );
    assert_eq!(
        event["details"]["after"],
        json!(["user", "software_downloads"])
    );
}

#[tokio::test]
async fn adding_members_refuses_bad_input_duplicates_and_other_orgs_members() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (globex, _) = org_with_contact(&app, &operator, "Globex", "gus@globex.example").await;
    let before = crate::count(&app, "org_members").await;
    expect_problem(
        add(&app, &fiona, &acme, "fiona@acme.example", &[]).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    expect_problem(
        add(&app, &fiona, &acme, "GUS@globex.example", &[]).await,
        StatusCode::CONFLICT,
        "member_of_other_org",
    )
    .await;
    expect_problem(
        add(&app, &fiona, &acme, "not-an-email", &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_problem(
        add(&app, &fiona, &acme, "w@acme.example", &["wizard"]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_problem(
        add(&app, &fiona, &globex, "w@acme.example", &[]).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let raw = app
        .post_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/members"),
            &json!({"email": "a@b.example"}),
        )
        .await;
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        crate::count(&app, "org_members").await,
        before,
        "nothing added"
    );
}

#[tokio::test]
async fn an_organization_reads_and_exports_its_own_audit_log() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.example").await;
    // A valid address that a spreadsheet would take for a formula.
    assert_eq!(
        add(&app, &fiona, &acme, "=cmd@acme.example", &[])
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        add(&app, &fiona, &acme, "nia@acme.example", &["usage_reports"])
            .await
            .status(),
        StatusCode::CREATED
    );

    let page: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/audit"))
        .await
        .json()
        .await
        .expect("page");
    let actions: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"account.created") && actions.contains(&"org.created"),
        "{actions:?}"
    );
    assert!(
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["org_id"] == acme.as_str()),
        "only Acme's events"
    );
    let by_fiona: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?actor=Fiona@Acme.example&action=account.created"),
        )
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(by_fiona["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(by_fiona["events"][0]["target"], "nia@acme.example");
    let future: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?from=99999999999999"),
        )
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(future["events"], serde_json::json!([]));

    let csv = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/audit.csv"))
        .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("csv");
    assert!(
        csv.starts_with("Time,Actor,IP address,Action,Target,Details")
            && csv.contains("nia@acme.example"),
        "{csv}"
    );
    assert!(
        csv.contains(",'=cmd@acme.example,") && !csv.contains(",=cmd"),
        "formulas neutralized: {csv}"
    );

    expect_problem(
        app.get_as(&gus, &format!("/api/v1/orgs/{acme}/audit"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get_as(&fiona, &format!("/api/v1/orgs/{globex}/audit.csv"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get_as(&fiona, &format!("/api/v1/orgs/{acme}/audit?limit=0"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        app.get_as(&fiona, &format!("/api/v1/orgs/{acme}/audit?from=yesterday"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

async fn patch(
    app: &TestApp,
    token: &str,
    org: &str,
    account: &str,
    body: Value,
) -> reqwest::Response {
    entitle_testkit::new_client()
        .patch(app.url(&format!("/api/v1/orgs/{org}/members/{account}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("patch")
}

#[tokio::test]
async fn members_are_edited_and_disabled_in_their_home_organization() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (uma_id, uma) = member(&app, &fiona, &acme, "Acme", "uma@acme.example", &[]).await;

    let response = patch(
        &app,
        &fiona,
        &acme,
        &uma_id,
        json!({"first_name": "Úma", "country": "at"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let edited: Value = response.json().await.expect("member");
    assert_eq!(
        (edited["first_name"].as_str(), edited["country"].as_str()),
        (Some("Úma"), Some("AT"))
    );
    expect_problem(
        patch(&app, &fiona, &acme, &uma_id, json!({"country": "Narnia"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_problem(
        patch(&app, &fiona, &acme, &uma_id, json!({"nickname": "U"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;

    // Disabled: no sign-in, no session, nothing in the organization; enabled again: back.
    let response = patch(&app, &fiona, &acme, &uma_id, json!({"disabled": true})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get_as(&uma, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = app
        .post(
            "/api/v1/session",
            &json!({"email": "uma@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "the password is right, the account disabled"
    );
    let page: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members?q=uma"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["members"][0]["disabled"], true);
    let renamed: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/members?q=%C3%BAma%20m"),
        )
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(renamed["total"], 1, "found by the new first name");
    assert_eq!(
        patch(&app, &fiona, &acme, &uma_id, json!({"disabled": false}))
            .await
            .status(),
        StatusCode::OK
    );
    let uma = app.sign_in("uma@acme.example", PASSWORD).await;

    let fiona_id: Value = app
        .get_as(&fiona, "/api/v1/me")
        .await
        .json()
        .await
        .expect("me");
    expect_problem(
        patch(
            &app,
            &fiona,
            &acme,
            fiona_id["id"].as_str().expect("id"),
            json!({"disabled": true}),
        )
        .await,
        StatusCode::CONFLICT,
        "cannot_disable_self",
    )
    .await;
    expect_problem(
        patch(&app, &uma, &acme, &uma_id, json!({"first_name": "Me"})).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
}
