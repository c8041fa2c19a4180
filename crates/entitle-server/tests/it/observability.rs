//! What an operator watches: Prometheus metrics (never public by default) and one log
//! line per request that never holds a secret.

use entitle_testkit::{new_client, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = new_client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("scrape")
}

#[tokio::test]
async fn metrics_are_scraped_with_the_configured_token_only() {
    let app = TestApp::spawn_with(|config| {
        config.metrics.bearer_token = Some("metrics-secret-0123456789".to_owned())
    })
    .await;
    app.register("kim@example.com", PASSWORD).await;
    let browser = crate::oidc::signed_in_browser(&app, "lee@example.com").await;
    crate::oidc::desktop_tokens(&app, &browser, "openid offline_access").await;

    assert_eq!(
        scrape(&app.url("/metrics"), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scrape(&app.url("/metrics"), Some("wrong")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = scrape(&app.url("/metrics"), Some("metrics-secret-0123456789")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = response.text().await.expect("metrics");
    for wanted in [
        "entitle_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/signup\",status=\"202\"}",
        "entitle_http_request_duration_seconds_bucket{method=\"POST\",route=\"/oauth2/token\",status=\"200\",le=",
        "entitle_db_query_duration_seconds_count{backend=",
        "entitle_db_acquire_duration_seconds_count{pool=",
        "entitle_db_pool_connections{pool=",
        "entitle_db_pool_max_connections{pool=",
        "entitle_password_hashes_queued ",
        "entitle_password_hashes_running ",
        "entitle_emails_total{delivery=\"smtp\",outcome=\"sent\"}",
        "entitle_oauth_tokens_issued_total{grant_type=\"authorization_code\"}",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from\n{text}");
    }

    // Without a token configured, there is nothing at /metrics.
    let plain = TestApp::spawn().await;
    assert_eq!(
        scrape(&plain.url("/metrics"), Some("anything"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app =
        TestApp::spawn_with(|config| config.metrics.listen = Some(([127, 0, 0, 1], port).into()))
            .await;
    assert!(app.get("/healthz").await.status().is_success());
    let response = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("metrics")
        .contains("entitle_http_request_duration_seconds"));
    assert_eq!(
        scrape(&app.url("/metrics"), None).await.status(),
        StatusCode::NOT_FOUND,
        "not on the main address"
    );
}

/// The server binary with JSON logs: one line per request with its method, route,
/// status, latency, request id and account, and never a password, token or cookie.
#[tokio::test]
async fn every_request_is_one_log_line_without_secrets() {
    use tokio::io::AsyncBufReadExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let database_url = entitle_testkit::fresh_database().await.expect("database");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_entitled"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(temp.path())
        .env("ENTITLE_PASSWORD__MEMORY_KIB", "64")
        .env("ENTITLE_PASSWORD__ITERATIONS", "1")
        .env_remove("ENTITLE_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = &database_url {
        command.args(["--database-url", url]);
    }
    let mut server = command.spawn().expect("entitled serve");
    let mut lines = tokio::io::BufReader::new(server.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the server starts")
            .expect("log")
            .expect("a line");
        let event: Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["fields"]["message"] == "entitled listening" {
            break event["fields"]["address"]
                .as_str()
                .expect("address")
                .to_owned();
        }
    };
    let base = format!("http://{address}");
    let client = new_client();
    let password = "a-password-that-must-never-be-logged";
    let signed_up = client
        .post(format!("{base}/api/v1/signup"))
        .json(&json!({"email": "kim@example.com", "password": password,
                      "first_name": "Kim", "last_name": "Lee", "country": "KR"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(signed_up.status(), StatusCode::ACCEPTED);
    let secret_token = "QUERY-TOKEN-THAT-MUST-NEVER-BE-LOGGED-0123456";
    client
        .get(format!("{base}/reset-password?token={secret_token}"))
        .header("cookie", "entitle_session=COOKIE-THAT-MUST-NEVER-BE-LOGGED")
        .send()
        .await
        .expect("page");
    client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("health");
    // Confirm the address from the outbox, sign in and act as the account.
    let outbox = temp.path().join("outbox");
    let message = loop {
        if let Some(message) = entitle_server::mail::newest_in_outbox(&outbox, 1)
            .expect("outbox")
            .pop()
        {
            break message;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let link_at = message.find("token=").expect("link") + 6;
    let token = &message[link_at..link_at + 43];
    let verified: Value = client
        .post(format!("{base}/api/v1/verify-email"))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("account");
    let account_id = verified["id"].as_str().expect("id").to_owned();
    let session: Value = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"email": "kim@example.com", "password": password}))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("session");
    let session_token = session["session_token"].as_str().expect("token").to_owned();
    let me = new_client()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&session_token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let mut requests = Vec::new();
    let mut all = String::new();
    while requests.len() < 6 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("log lines")
            .expect("log")
            .expect("a line");
        all.push_str(&line);
        let event: Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["fields"]["message"] == "request" {
            requests.push(event);
        }
    }
    let _ = server.kill().await;
    let routes: Vec<&str> = requests
        .iter()
        .map(|e| e["fields"]["route"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        routes,
        [
            "/api/v1/signup",
            "/reset-password",
            "/healthz",
            "/api/v1/verify-email",
            "/api/v1/session",
            "/api/v1/me"
        ]
    );
    assert_eq!(requests[5]["fields"]["account_id"], json!(account_id));
    assert!(requests[0]["fields"]["account_id"].is_null());
    let first = &requests[0]["fields"];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["status"], 202);
    assert!(first["latency_ms"].as_f64().is_some());
    assert!(first["request_id"]
        .as_str()
        .is_some_and(|id| id.len() == 36));
    assert_eq!(requests[0]["level"], "INFO");
    for secret in [
        password,
        secret_token,
        "COOKIE-THAT-MUST-NEVER-BE-LOGGED",
        token,
        session_token.as_str(),
    ] {
        assert!(!all.contains(secret), "{secret} was logged");
    }
}
