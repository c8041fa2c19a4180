use entitle_server::{
    config::PasswordConfig,
    identity::{password, store},
};
use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_look_the_same() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let wrong = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": "not the password"}),
        )
        .await;
    let wrong = expect_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app
        .post(
            "/api/v1/session",
            &json!({"email": "nobody@example.com", "password": "not the password"}),
        )
        .await;
    let unknown = expect_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account() {
    let app = TestApp::spawn_with(|c| {
        c.throttle.account_free_failures = 3;
        c.throttle.max_delay_secs = 60;
    })
    .await;
    app.register("ana@example.com", PASSWORD).await;
    for _ in 0..3 {
        let response = app
            .post(
                "/api/v1/session",
                &json!({"email": "ana@example.com", "password": "wrong password!"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The third failure starts a delay: even the right password must wait.
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    let retry_after: i64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_client_address() {
    let app = TestApp::spawn_with(|c| {
        c.throttle.address_free_failures = 4;
        c.throttle.account_free_failures = 100;
    })
    .await;
    for i in 0..4 {
        let response = app
            .post(
                "/api/v1/session",
                &json!({"email": format!("guess{i}@example.com"), "password": "wrong password!"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "other@example.com", "password": "wrong password!"}),
        )
        .await;
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}

#[tokio::test]
async fn session_cookie_is_http_only_and_lax_and_sign_out_ends_it() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    let response = app
        .post(
            "/api/v1/session",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("entitle_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "plain http test server");
    let body: Value = response.json().await.expect("json");
    let token = body["session_token"].as_str().expect("token").to_owned();
    assert_eq!(body["tos_required"], false);

    // Bearer and cookie both work.
    let bearer = app.get_as(&token, "/api/v1/me").await;
    assert_eq!(bearer.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/me").await.status(), StatusCode::OK);

    let response = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("sign out");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let bearer = app.get_as(&token, "/api/v1/me").await;
    expect_problem(bearer, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

#[tokio::test]
async fn cookie_authenticated_changes_must_be_json() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com", PASSWORD).await;
    app.post(
        "/api/v1/session",
        &json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    // What a cross-site form could send: no JSON content type.
    let response = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(
        app.get("/api/v1/me").await.status(),
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test]
async fn stored_hashes_are_upgraded_when_parameters_change() {
    let app = TestApp::spawn().await;
    let id = app.register("ana@example.com", PASSWORD).await;
    let old = PasswordConfig {
        memory_kib: 32,
        iterations: 1,
        parallelism: 1,
        max_concurrent_hashes: 1,
    };
    let old_hash = password::hash_blocking(&old, PASSWORD).expect("hash");
    let id: uuid::Uuid = id.parse().expect("uuid");
    {
        let mut conn = app.state.db.writer().await.expect("conn");
        store::set_password_hash(&mut conn, id, &old_hash, 0)
            .await
            .expect("set");
    }
    app.sign_in("ana@example.com", PASSWORD).await;
    let mut conn = app.state.db.reader().await.expect("conn");
    let account = store::account_by_id(&mut conn, id)
        .await
        .expect("query")
        .expect("account");
    let new_hash = account.password_hash.expect("hash");
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{new_hash}"
    );
    assert!(password::verify_blocking(PASSWORD, &new_hash));
}
