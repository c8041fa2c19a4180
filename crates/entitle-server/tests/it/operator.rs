//! The operator's console: organizations found, created and opened; clients registered
//! and disabled; signing keys rotated. Only operators get in, on the pages and the API.

use entitle_testkit::{expect_problem, location, new_client, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{member, org_with_contact};

async fn page(app: &TestApp, browser: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let response = browser.get(app.url(path)).send().await.expect("page");
    (response.status(), response.text().await.expect("html"))
}

#[tokio::test]
async fn operators_find_create_and_open_organizations_from_their_console() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let (_, uma) = member(&app, &fiona, &acme, "Acme", "uma@acme.test", &[]).await;

    // After signing in, an operator lands on the console.
    let browser = new_client();
    let signed_in = app
        .page_sign_in(&browser, "olga@vendor.example", PASSWORD, "")
        .await;
    assert_eq!(location(&signed_in), "/operator");
    let (status, html) = page(&app, &browser, "/operator/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Acme") && html.contains("Globex"));
    assert!(html.contains("Showing 1–2 of 2."), "{html}");
    let (_, html) = page(&app, &browser, "/operator/orgs?q=acm").await;
    assert!(html.contains(&format!("/orgs/{acme}/members")) && !html.contains("Globex"));
    let (_, html) = page(&app, &browser, &format!("/operator/orgs?q={acme}")).await;
    assert!(html.contains("Showing 1–1 of 1."));

    // Create one with its first Fulfillment Contact, then open it.
    let refused = app
        .submit_form(
            &browser,
            "/operator/orgs",
            "/operator/orgs",
            &[
                ("org_name", ""),
                ("email", "x"),
                ("first_name", "F"),
                ("last_name", "C"),
                ("country", "Atlantis"),
            ],
        )
        .await;
    let html = refused.text().await.expect("html");
    assert!(html.contains("id=\"name-error\"") && html.contains("id=\"country-error\""));
    let created = app
        .submit_form(
            &browser,
            "/operator/orgs",
            "/operator/orgs",
            &[
                ("org_name", "Initech"),
                ("email", "bill@initech.test"),
                ("first_name", "Bill"),
                ("last_name", "Lumbergh"),
                ("country", "United States"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let opened = location(&created);
    assert!(opened.ends_with("/members?done=created"), "{opened}");
    let (status, html) = page(&app, &browser, &opened).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("bill@initech.test"));
    app.mail
        .expect("bill@initech.test", "added to Initech")
        .await;

    // The API lists organizations too: all for an operator, one's own for anyone else.
    let all: Value = app
        .get_as(&operator, "/api/v1/orgs?q=INI")
        .await
        .json()
        .await
        .expect("orgs");
    assert_eq!(
        (all["total"].as_i64(), all["orgs"][0]["name"].as_str()),
        (Some(1), Some("Initech"))
    );
    let own: Value = app
        .get_as(&uma, "/api/v1/orgs")
        .await
        .json()
        .await
        .expect("orgs");
    assert_eq!(own["total"], 1);
    assert_eq!(own["orgs"][0]["id"], json!(acme));
    expect_problem(
        app.get_as(&uma, "/api/v1/orgs?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    // Nobody else gets in.
    let someone = new_client();
    app.page_sign_in(&someone, "fiona@acme.test", PASSWORD, "/account")
        .await;
    for path in ["/operator/orgs", "/operator/clients", "/operator/keys"] {
        assert_eq!(
            page(&app, &someone, path).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let anonymous = new_client();
    let response = anonymous
        .get(app.url("/operator/orgs"))
        .send()
        .await
        .expect("page");
    assert_eq!(location(&response), "/sign-in?next=%2Foperator%2Forgs");
    let forged = app
        .submit_form(&someone, "/account", "/operator/keys/rotate", &[])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn operators_register_clients_and_rotate_keys_from_their_console() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let browser = new_client();
    app.page_sign_in(
        &browser,
        "olga@vendor.example",
        PASSWORD,
        "/operator/clients",
    )
    .await;
    let (_, html) = page(&app, &browser, "/operator/clients").await;
    assert!(html.contains("entitle-desktop"));

    let registered = app
        .submit_form(
            &browser,
            "/operator/clients",
            "/operator/clients",
            &[
                ("name", "Data source"),
                ("confidential", "true"),
                ("grant_type", "client_credentials"),
                ("scopes", "licenses"),
            ],
        )
        .await;
    let html = registered.text().await.expect("html");
    let secret_at = html.find("id=\"new-secret\">").expect("secret shown once") + 16;
    let secret = &html[secret_at..secret_at + 43];
    let client_id = {
        let at = html.find("client id <code>").expect("client id") + 16;
        html[at..at + 32].to_owned()
    };
    let (_, again) = page(&app, &browser, "/operator/clients").await;
    assert!(!again.contains(secret), "the secret is shown once");
    let tokens = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "licenses")])
        .send()
        .await
        .expect("token");
    assert_eq!(tokens.status(), StatusCode::OK);
    let refused = app
        .submit_form(
            &browser,
            "/operator/clients",
            "/operator/clients",
            &[
                ("name", ""),
                ("grant_type", "authorization_code"),
                ("redirect_uris", "http://evil.example/cb"),
            ],
        )
        .await;
    let html = refused.text().await.expect("html");
    assert!(html.contains("id=\"name-error\"") && html.contains("id=\"redirect_uris-error\""));
    // Disabling asks first, naming the client; confirmed, it is done.
    let asked = app
        .submit_form(
            &browser,
            "/operator/clients",
            &format!("/operator/clients/{client_id}/disable"),
            &[],
        )
        .await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked
        .text()
        .await
        .expect("html")
        .contains("Disable the client"));
    let disabled = app
        .submit_form(
            &browser,
            "/operator/clients",
            &format!("/operator/clients/{client_id}/disable"),
            &[("confirmed", "yes")],
        )
        .await;
    assert_eq!(
        location(&disabled),
        "/operator/clients?done=disabled_client"
    );
    let tokens = new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(tokens.status(), StatusCode::UNAUTHORIZED);

    // Keys: listed, rotated from the page; the API says the same.
    let (_, html) = page(&app, &browser, "/operator/keys").await;
    assert_eq!(html.matches(">signing<").count(), 3, "{html}");
    let rotated = app
        .submit_form(&browser, "/operator/keys", "/operator/keys/rotate", &[])
        .await;
    assert_eq!(location(&rotated), "/operator/keys?done=rotated");
    let keys: Value = app
        .get_as(&operator, "/api/v1/keys")
        .await
        .json()
        .await
        .expect("keys");
    let keys = keys.as_array().expect("keys");
    assert_eq!(keys.len(), 6);
    assert_eq!(keys.iter().filter(|k| k["retired_at"].is_null()).count(), 3);
    let audit: Value = app
        .get_as(&operator, "/api/v1/audit?action=oidc.keys_rotated")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1));
    app.register("sam@example.com", PASSWORD).await;
    let sam = app.sign_in("sam@example.com", PASSWORD).await;
    expect_problem(
        app.get_as(&sam, "/api/v1/keys").await,
        StatusCode::FORBIDDEN,
        "operator_only",
    )
    .await;
    expect_problem(
        app.post_as(&sam, "/api/v1/keys/rotate", &json!({})).await,
        StatusCode::FORBIDDEN,
        "operator_only",
    )
    .await;
}
