//! Domain claims verified over real DNS: the testkit runs an authoritative DNS server
//! on loopback, and the tests publish and withdraw the TXT records.

use entitle_testkit::{expect_problem, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{acme_and_globex, member, org_with_contact, TwoOrgs};

async fn claim(app: &TestApp, token: &str, org: &str, domain: &str) -> reqwest::Response {
    app.post_as(
        token,
        &format!("/api/v1/orgs/{org}/domains"),
        &json!({ "domain": domain }),
    )
    .await
}

async fn verify(app: &TestApp, token: &str, org: &str, id: &str) -> reqwest::Response {
    app.post_as(
        token,
        &format!("/api/v1/orgs/{org}/domains/{id}/verify"),
        &json!({}),
    )
    .await
}

/// Claims `domain`, publishes its record and verifies it; returns the domain document.
pub async fn claim_and_verify(app: &TestApp, token: &str, org: &str, domain: &str) -> Value {
    let response = claim(app, token, org, domain).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let claimed: Value = response.json().await.expect("domain");
    app.dns
        .publish_txt(
            claimed["record_name"].as_str().expect("name"),
            claimed["record_value"].as_str().expect("value"),
        )
        .await;
    let response = verify(app, token, org, claimed["id"].as_str().expect("id")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("domain")
}

#[tokio::test]
async fn domains_are_verified_over_dns_and_refused_when_public_taken_or_malformed() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme,
        fiona,
        cory,
        globex,
        gus,
        ..
    } = acme_and_globex(&app).await;

    // A Co-Administrator may not claim; the answer says who may.
    expect_problem(
        claim(&app, &cory, &acme, "acme.test").await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;

    let response = claim(&app, &fiona, &acme, " Acme.TEST. ").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let claimed: Value = response.json().await.expect("domain");
    assert_eq!(claimed["domain"], "acme.test");
    assert_eq!(claimed["record_name"], "_entitle-challenge.acme.test");
    assert_eq!(claimed["verified_at"], Value::Null);
    let id = claimed["id"].as_str().expect("id").to_owned();
    let value = claimed["record_value"].as_str().expect("value").to_owned();
    assert!(value.starts_with("entitle-domain-verification="));

    // Not published yet, then published with the wrong value: not verified, and why.
    expect_problem(
        verify(&app, &fiona, &acme, &id).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    app.dns
        .publish_txt(
            "_entitle-challenge.acme.test",
            "entitle-domain-verification=wrong",
        )
        .await;
    expect_problem(
        verify(&app, &fiona, &acme, &id).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let listed: Value = app
        .get_as(&cory, &format!("/api/v1/orgs/{acme}/domains"))
        .await
        .json()
        .await
        .expect("list");
    assert!(
        listed[0]["check_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not hold")),
        "{listed}"
    );
    // Co-Administrators see the domains but cannot verify them.
    expect_problem(
        verify(&app, &cory, &acme, &id).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;

    app.dns
        .publish_txt("_entitle-challenge.acme.test", &value)
        .await;
    let response = verify(&app, &fiona, &acme, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let verified: Value = response.json().await.expect("domain");
    assert!(verified["verified_at"].is_i64());
    assert_eq!(verified["check_error"], Value::Null);

    // Claimed twice here; verified by another organization, which is not named.
    expect_problem(
        claim(&app, &fiona, &acme, "acme.test").await,
        StatusCode::CONFLICT,
        "domain_already_claimed",
    )
    .await;
    let taken = claim(&app, &gus, &globex, "acme.test").await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let problem: Value = taken.json().await.expect("problem");
    assert_eq!(problem["code"], "domain_taken");
    assert!(!problem.to_string().contains("Acme"), "{problem}");

    // Public mail domains, and things that are not domains.
    for public in ["gmail.com", "eu.outlook.com"] {
        expect_problem(
            claim(&app, &fiona, &acme, public).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    for bad in [
        "",
        "localhost",
        "fiona@acme.test",
        "10.0.0.1",
        "acme..test",
        "a b.test",
    ] {
        expect_problem(
            claim(&app, &fiona, &acme, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    for body in [
        json!({}),
        json!({"domain": 7}),
        json!({"domain": "x.test", "org": 1}),
    ] {
        let response = app
            .post_as(&fiona, &format!("/api/v1/orgs/{acme}/domains"), &body)
            .await;
        assert!(response.status().is_client_error(), "{body}");
    }

    // Another organization's administrator sees nothing of these domains.
    for path in [
        format!("/api/v1/orgs/{acme}/domains"),
        format!("/api/v1/orgs/{acme}/domains/{id}/verify"),
    ] {
        let response = if path.ends_with("verify") {
            app.post_as(&gus, &path, &json!({})).await
        } else {
            app.get_as(&gus, &path).await
        };
        expect_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    expect_problem(
        verify(&app, &gus, &globex, &id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let events: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?action=org.domain_verified"),
        )
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(events["events"][0]["target"], "acme.test");
}

#[tokio::test]
async fn a_verified_domain_whose_record_disappears_is_unverified_and_admins_are_told() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let verified = claim_and_verify(&app, &fiona, &acme, "beta.test").await;
    let later = |hours: i64| entitle_server::db::now_ms() + hours * 3600 * 1000;
    let recheck = |at: i64| entitle_server::orgs::domains::recheck_due(&app.state, at);

    // Not due yet; then due, and the record is still there.
    assert_eq!(
        recheck(entitle_server::db::now_ms())
            .await
            .expect("recheck"),
        0
    );
    assert_eq!(recheck(later(7)).await.expect("recheck"), 1);
    let listed: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/domains"))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed[0]["verified_at"], verified["verified_at"]);

    // The record disappears: unverified at the next check, and the admins hear of it.
    app.dns.withdraw_txt("_entitle-challenge.beta.test").await;
    assert_eq!(recheck(later(14)).await.expect("recheck"), 1);
    let listed: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/domains"))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed[0]["verified_at"], Value::Null);
    assert!(listed[0]["check_error"]
        .as_str()
        .is_some_and(|e| e.contains("disappeared")));
    app.mail
        .expect(
            "fiona@acme.test",
            "beta.test is no longer a verified domain of Acme",
        )
        .await;
    assert_eq!(
        recheck(later(21)).await.expect("recheck"),
        0,
        "nothing verified is due"
    );

    // Now another organization can prove it owns the domain.
    let moved = claim_and_verify(&app, &gus, &globex, "beta.test").await;
    assert!(moved["verified_at"].is_i64());
}

#[tokio::test]
async fn verification_says_so_when_dns_does_not_answer() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port");
    let app = TestApp::spawn_with(|config| config.domains.resolver = Some(closed)).await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let response = claim(&app, &fiona, &acme, "acme.test").await;
    let claimed: Value = response.json().await.expect("domain");
    expect_problem(
        verify(&app, &fiona, &acme, claimed["id"].as_str().expect("id")).await,
        StatusCode::CONFLICT,
        "dns_unavailable",
    )
    .await;
}

#[tokio::test]
async fn scim_tokens_are_made_and_revoked_by_administrators_of_their_own_organization() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (_, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let (_, cory) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "cory@acme.test",
        &["co_administrator"],
    )
    .await;
    let tokens = format!("/api/v1/orgs/{acme}/scim-tokens");

    let response = app.post_as(&fiona, &tokens, &json!({"name": "Okta"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.expect("token");
    let secret = created["token"].as_str().expect("secret shown once");
    assert!(secret.starts_with("entitle_scim_") && secret.len() == 13 + 43);
    let listed: Value = app
        .get_as(&fiona, &tokens)
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed[0]["name"], "Okta");
    assert!(
        listed[0].get("token").is_none(),
        "the secret is never shown again"
    );
    let mut conn = app.state.db.reader().await.expect("connection");
    let stored: (Vec<u8>,) = entitle_server::on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT token_hash FROM scim_tokens"
    )
    .fetch_one(c)
    .await)
    .expect("row");
    drop(conn);
    assert_eq!(stored.0.len(), 32, "stored as a SHA-256 hash");

    for (token, status, code) in [
        (&cory, StatusCode::FORBIDDEN, "role_required"),
        (&gus, StatusCode::NOT_FOUND, "not_found"),
    ] {
        expect_problem(app.get_as(token, &tokens).await, status, code).await;
        expect_problem(
            app.post_as(token, &tokens, &json!({"name": "x"})).await,
            status,
            code,
        )
        .await;
    }
    for name in ["", " ", &"x".repeat(101)] {
        expect_problem(
            app.post_as(&fiona, &tokens, &json!({ "name": name })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let id = created["id"].as_str().expect("id");
    let revoke = |token: &str| {
        entitle_testkit::new_client()
            .delete(app.url(&format!("{tokens}/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        revoke(&gus).await.expect("delete").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        revoke(&fiona).await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        revoke(&fiona).await.expect("delete").status(),
        StatusCode::NOT_FOUND
    );
    let listed: Value = app
        .get_as(&fiona, &tokens)
        .await
        .json()
        .await
        .expect("list");
    assert!(listed[0]["revoked_at"].is_i64());
}
