//! Auto Approval, requests to join and required actions, end to end: real DNS for the
//! domain, real SMTP for every message.

use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    domains::claim_and_verify,
    members::{acme_and_globex, TwoOrgs},
};

async fn actions(app: &TestApp, token: &str, org: &str) -> Vec<Value> {
    let actions: Value = app
        .get_as(token, &format!("/api/v1/orgs/{org}/required-actions"))
        .await
        .json()
        .await
        .expect("actions");
    actions.as_array().expect("list").clone()
}

async fn required(app: &TestApp, token: &str, org: &str) -> Vec<String> {
    actions(app, token, org)
        .await
        .iter()
        .map(|a| a["code"].as_str().expect("code").to_owned())
        .collect()
}

async fn set_auto_approval(
    app: &TestApp,
    token: &str,
    org: &str,
    enabled: bool,
) -> reqwest::Response {
    entitle_testkit::new_client()
        .put(app.url(&format!("/api/v1/orgs/{org}/auto-approval")))
        .bearer_auth(token)
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .expect("put")
}

async fn home_org(app: &TestApp, email: &str) -> Value {
    let token = app.sign_in(email, PASSWORD).await;
    let me: Value = app
        .get_as(&token, "/api/v1/me")
        .await
        .json()
        .await
        .expect("me");
    me["home_org_id"].clone()
}

#[tokio::test]
async fn auto_approval_needs_a_verified_domain_and_adds_people_who_verify_an_address_there() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme, fiona, cory, ..
    } = acme_and_globex(&app).await;

    assert_eq!(
        required(&app, &fiona, &acme).await,
        ["verify_domain", "enable_auto_approval"]
    );
    expect_problem(
        set_auto_approval(&app, &fiona, &acme, true).await,
        StatusCode::CONFLICT,
        "no_verified_domain",
    )
    .await;
    claim_and_verify(&app, &fiona, &acme, "acme.test").await;
    assert_eq!(
        required(&app, &fiona, &acme).await,
        ["enable_auto_approval"]
    );
    expect_problem(
        set_auto_approval(&app, &cory, &acme, true).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    let response = set_auto_approval(&app, &fiona, &acme, true).await;
    assert_eq!(response.status(), StatusCode::OK);
    let org: Value = response.json().await.expect("org");
    assert_eq!(org["auto_approval"], true);
    assert!(required(&app, &fiona, &acme).await.is_empty());

    // Someone of the domain signs up and confirms their address: a User at once, and
    // the administrators hear of it.
    app.register("nina@acme.test", PASSWORD).await;
    assert_eq!(home_org(&app, "nina@acme.test").await, json!(acme));
    let nina: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members?q=nina"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(nina["members"][0]["roles"], json!(["user"]));
    app.mail
        .expect(
            "fiona@acme.test",
            "nina@acme.test joined Acme through Auto Approval",
        )
        .await;
    let events: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?action=org.member_auto_approved"),
        )
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(events["events"][0]["target"], "nina@acme.test");

    // Other domains, and the same domain once Auto Approval is off, join nobody.
    app.register("otto@elsewhere.test", PASSWORD).await;
    assert_eq!(home_org(&app, "otto@elsewhere.test").await, Value::Null);
    assert_eq!(
        set_auto_approval(&app, &fiona, &acme, false).await.status(),
        StatusCode::OK
    );
    app.register("olaf@acme.test", PASSWORD).await;
    assert_eq!(home_org(&app, "olaf@acme.test").await, Value::Null);
    assert_eq!(
        required(&app, &fiona, &acme).await,
        ["enable_auto_approval"]
    );
}

#[tokio::test]
async fn people_ask_to_join_and_administrators_approve_or_reject() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme,
        fiona,
        cory,
        globex,
        gus,
        ..
    } = acme_and_globex(&app).await;
    claim_and_verify(&app, &fiona, &acme, "acme.test").await;

    // Someone of the domain finds the organization and asks.
    app.register("pat@acme.test", PASSWORD).await;
    let pat = app.sign_in("pat@acme.test", PASSWORD).await;
    let joinable: Value = app
        .get_as(&pat, "/api/v1/access-requests/organizations")
        .await
        .json()
        .await
        .expect("orgs");
    assert_eq!(
        joinable,
        json!([{"id": acme, "name": "Acme", "domain": "acme.test"}])
    );
    let ask = |token: &str, body: Value| {
        let app = &app;
        let token = token.to_owned();
        async move { app.post_as(&token, "/api/v1/access-requests", &body).await }
    };
    for _ in 0..2 {
        let response = ask(&pat, json!({"org_id": acme, "message": "I am in sales."})).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    app.mail
        .expect("fiona@acme.test", "pat@acme.test asks to join Acme")
        .await;
    assert!(required(&app, &fiona, &acme)
        .await
        .contains(&"decide_access_requests".to_owned()));
    let queue: Value = app
        .get_as(&cory, &format!("/api/v1/orgs/{acme}/access-requests"))
        .await
        .json()
        .await
        .expect("queue");
    assert_eq!(
        queue.as_array().map(Vec::len),
        Some(1),
        "asked twice, one request"
    );
    assert_eq!(queue[0]["message"], "I am in sales.");
    let request = queue[0]["id"].as_str().expect("id").to_owned();

    // Other organizations see nothing of the queue; Users are refused.
    expect_problem(
        app.get_as(&gus, &format!("/api/v1/orgs/{acme}/access-requests"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.post_as(
            &gus,
            &format!("/api/v1/orgs/{globex}/access-requests/{request}/approve"),
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A Co-Administrator approves: Pat is a User and is told.
    let approved = app
        .post_as(
            &cory,
            &format!("/api/v1/orgs/{acme}/access-requests/{request}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.expect("request");
    assert_eq!(approved["status"], "approved");
    app.mail
        .expect("pat@acme.test", "You are now a member of Acme")
        .await;
    assert_eq!(home_org(&app, "pat@acme.test").await, json!(acme));
    assert!(!required(&app, &fiona, &acme)
        .await
        .contains(&"decide_access_requests".to_owned()));
    expect_problem(
        app.post_as(
            &cory,
            &format!("/api/v1/orgs/{acme}/access-requests/{request}/approve"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_decided",
    )
    .await;
    expect_problem(
        app.get_as(&pat, &format!("/api/v1/orgs/{acme}/access-requests"))
            .await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;

    // A contractor of another domain asks through the administrator they know, and is
    // turned down with a reason.
    app.register("con@freelance.test", PASSWORD).await;
    let con = app.sign_in("con@freelance.test", PASSWORD).await;
    let response = ask(&con, json!({"administrator_email": " Fiona@Acme.test "})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // An address that administers nothing gets the same answer, and nothing happens.
    let response = ask(&con, json!({"administrator_email": "nobody@acme.test"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let queue: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/access-requests"))
        .await
        .json()
        .await
        .expect("queue");
    assert_eq!(queue.as_array().map(Vec::len), Some(1));
    assert_eq!(queue[0]["email"], "con@freelance.test");
    let request = queue[0]["id"].as_str().expect("id");
    let rejected = app
        .post_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/access-requests/{request}/reject"),
            &json!({"reason": "Ask your project lead to invite you."}),
        )
        .await;
    assert_eq!(rejected.status(), StatusCode::OK);
    let mail = app
        .mail
        .expect("con@freelance.test", "Your request to join Acme")
        .await;
    assert!(
        mail.text.contains("Ask your project lead to invite you."),
        "{}",
        mail.text
    );
    assert_eq!(home_org(&app, "con@freelance.test").await, Value::Null);

    // Bad requests: nothing named, both named, too long, a domain that is not theirs,
    // and someone who already belongs to an organization.
    for body in [
        json!({}),
        json!({"org_id": acme, "administrator_email": "fiona@acme.test"}),
        json!({"org_id": acme, "message": "x".repeat(501)}),
    ] {
        expect_problem(
            ask(&con, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    expect_problem(
        ask(&con, json!({"org_id": acme})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        ask(&pat, json!({"org_id": acme})).await,
        StatusCode::CONFLICT,
        "already_in_organization",
    )
    .await;
    // Unknown fields and a body of the wrong shape: refused as malformed.
    for body in [json!({"org": acme}), json!([])] {
        let status = ask(&con, body).await.status();
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{status}"
        );
    }
}

/// The count of the "invited but not registered" required action, if it stands.
async fn invited(app: &TestApp, token: &str, org: &str) -> Option<i64> {
    actions(app, token, org)
        .await
        .iter()
        .find(|a| a["code"] == "invited_not_registered")
        .map(|a| a["count"].as_i64().expect("count"))
}

#[tokio::test]
async fn invited_people_are_a_required_action_until_they_set_a_password() {
    let app = TestApp::spawn().await;
    let TwoOrgs { acme, fiona, .. } = acme_and_globex(&app).await;
    assert_eq!(
        invited(&app, &fiona, &acme).await,
        None,
        "everyone in the fixture has a password"
    );
    let mut ids = Vec::new();
    for email in ["ivy@acme.test", "ike@acme.test", "ida@acme.test"] {
        let added: Value = app
            .post_as(
                &fiona,
                &format!("/api/v1/orgs/{acme}/members"),
                &json!({"email": email, "first_name": "New", "last_name": "Member", "country": "DE"}),
            )
            .await
            .json()
            .await
            .expect("member");
        ids.push(added["account_id"].as_str().expect("id").to_owned());
    }
    assert_eq!(invited(&app, &fiona, &acme).await, Some(3));

    // Setting a password, being disabled, and leaving each take one off.
    let mail = app.mail.expect("ivy@acme.test", "added to Acme").await;
    let token = mail.token("/reset-password").expect("link");
    let set = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "ivy@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(invited(&app, &fiona, &acme).await, Some(2));
    let disabled = app
        .new_client()
        .patch(app.url(&format!("/api/v1/orgs/{acme}/members/{}", ids[1])))
        .bearer_auth(&fiona)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(invited(&app, &fiona, &acme).await, Some(1));
    let removed = app
        .new_client()
        .delete(app.url(&format!("/api/v1/orgs/{acme}/members/{}", ids[2])))
        .bearer_auth(&fiona)
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(invited(&app, &fiona, &acme).await, None);
}
