//! The pages over plain HTTP: forms need their CSRF token, and the flows work end to end
//! without JavaScript. (The browser test drives the same pages in Chromium.)

use entitle_testkit::{csrf_token, TestApp, PASSWORD};
use reqwest::{Client, StatusCode};

async fn form_page(app: &TestApp, client: &Client, path: &str) -> String {
    let response = client.get(app.url(path)).send().await.expect("page");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    csrf_token(&response.text().await.expect("html")).expect("a form")
}

async fn submit(
    app: &TestApp,
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.url(path))
        .form(fields)
        .send()
        .await
        .expect("submit")
}

#[tokio::test]
async fn sign_up_verify_sign_in_and_account_pages() {
    let app = TestApp::spawn().await;
    let browser = app.new_client();
    let csrf = form_page(&app, &browser, "/sign-up").await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("email", "ana@example.com"),
        ("first_name", "Αλέξης"),
        ("last_name", "Silva"),
        ("country", "Portugal"),
        ("password", PASSWORD),
    ];
    let page = submit(&app, &browser, "/sign-up", &fields)
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("Check your email"));

    let token = app
        .mail
        .expect("ana@example.com", "Confirm")
        .await
        .token("/verify-email")
        .expect("link");
    let csrf = form_page(&app, &browser, &format!("/verify-email?token={token}")).await;
    let page = submit(
        &app,
        &browser,
        "/verify-email",
        &[("csrf_token", &csrf), ("token", &token)],
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(page.contains("Email address confirmed"), "{page}");

    let csrf = form_page(&app, &browser, "/sign-in").await;
    let wrong = submit(
        &app,
        &browser,
        "/sign-in",
        &[
            ("csrf_token", &csrf),
            ("email", "ana@example.com"),
            ("password", "not the password"),
        ],
    )
    .await;
    assert!(wrong
        .text()
        .await
        .expect("html")
        .contains("The email address or password is wrong."));
    let ok = submit(
        &app,
        &browser,
        "/sign-in",
        &[
            ("csrf_token", &csrf),
            ("email", "ana@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/account");
    let account = browser
        .get(app.url("/account"))
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("html");
    assert!(account.contains("Αλέξης Silva"));
    assert!(account.contains("PT"));
    let export = browser
        .get(app.url("/account/export"))
        .send()
        .await
        .expect("export");
    assert!(export.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .contains("attachment"));
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_change_nothing() {
    let app = TestApp::spawn().await;
    let browser = app.new_client();
    let csrf = form_page(&app, &browser, "/sign-up").await;
    let fields = |token: &'static str| {
        vec![
            ("csrf_token", token),
            ("email", "ana@example.com"),
            ("first_name", "Ana"),
            ("last_name", "Silva"),
            ("country", "PT"),
            ("password", PASSWORD),
        ]
    };
    // No token, a made-up token, and a real token from another browser.
    for token in ["", "forged"] {
        let r = submit(&app, &browser, "/sign-up", &fields(token)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.expect("html").contains("Request id"));
    }
    let other = app.new_client();
    let mut stolen = fields("");
    stolen[0].1 = &csrf;
    let r = submit(&app, &other, "/sign-up", &stolen).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(crate::count(&app, "accounts").await, 0);
}

#[tokio::test]
async fn forgot_password_pages_set_a_password_after_confirming_the_email() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let browser = app.new_client();
    let csrf = form_page(&app, &browser, "/forgot-password").await;
    let page = submit(
        &app,
        &browser,
        "/forgot-password",
        &[("csrf_token", &csrf), ("email", "ana@example.com")],
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(page.contains("Check your email"));
    let link = app
        .mail
        .expect("ana@example.com", "Set your")
        .await
        .link(&app.base_url)
        .expect("link");
    let path = link.trim_start_matches(&app.base_url).to_owned();
    let token = path.split("token=").nth(1).expect("token").to_owned();
    let csrf = form_page(&app, &browser, &path).await;

    let mismatch = submit(
        &app,
        &browser,
        "/reset-password",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("email", "eve@example.com"),
            ("password", "a brand new passphrase"),
            ("password_confirmation", "a brand new passphrase"),
        ],
    )
    .await;
    assert!(mismatch
        .text()
        .await
        .expect("html")
        .contains("not the email address the link was sent to"));
    let typo = submit(
        &app,
        &browser,
        "/reset-password",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("email", "ana@example.com"),
            ("password", "a brand new passphrase"),
            ("password_confirmation", "a brand new passphrasf"),
        ],
    )
    .await;
    assert!(typo.text().await.expect("html").contains("not the same"));
    let done = submit(
        &app,
        &browser,
        "/reset-password",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("email", "ana@example.com"),
            ("password", "a brand new passphrase"),
            ("password_confirmation", "a brand new passphrase"),
        ],
    )
    .await;
    assert!(done
        .text()
        .await
        .expect("html")
        .contains("Your password is set"));
    app.sign_in("ana@example.com", "a brand new passphrase")
        .await;

    // The used link now says so.
    let dead = browser.get(app.url(&path)).send().await.expect("page");
    assert_eq!(dead.status(), StatusCode::BAD_REQUEST);
    assert!(dead
        .text()
        .await
        .expect("html")
        .contains("invalid, has expired or was already used"));
}

#[tokio::test]
async fn unknown_pages_are_a_friendly_404() {
    let app = TestApp::spawn().await;
    let r = app.get("/no-such-page").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
}
