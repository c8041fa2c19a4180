//! Test harness for entitle: a server on a fresh database (SQLite in a temporary
//! directory, or a new PostgreSQL database when `ENTITLE_TEST_DATABASE_URL` is set),
//! a real SMTP server that receives its mail, and fixtures for common set-ups.

pub mod dns;
mod smtp;

use std::path::PathBuf;

use entitle_server::{
    config::{SmtpConfig, SmtpTls},
    AppState, Config,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
pub use smtp::{ReceivedMail, SmtpSink};
use tokio::sync::oneshot;

/// Set to a PostgreSQL URL (with rights to create databases) to run the suite there.
pub const DATABASE_ENV: &str = "ENTITLE_TEST_DATABASE_URL";

/// A strong password used by fixtures.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base_url: String,
    pub state: AppState,
    pub mail: SmtpSink,
    /// The DNS server domain claims are verified against; it serves every zone under `test.`.
    pub dns: dns::DnsServer,
    /// Keeps cookies, like a browser.
    pub client: Client,
    pub data_dir: PathBuf,
    _temp: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns a server after `adjust` has changed the test configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::try_spawn(adjust).await.expect("test server starts")
    }

    /// A second server on this one's database (the same SQLite file, or the same
    /// PostgreSQL database) with the same key-encryption key and public URL, as a
    /// deployment of several servers runs them; its own mail and DNS sinks.
    pub async fn spawn_beside(&self) -> TestApp {
        let database_url = self.state.config.database_url.clone();
        let data_dir = self.data_dir.clone();
        let public_url = self.state.config.public_url.clone();
        Self::try_spawn_on(Some((database_url, data_dir, public_url)), |_| {})
            .await
            .expect("second server starts")
    }

    async fn try_spawn(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
        Self::try_spawn_on(None, adjust).await
    }

    /// `shared`: the database URL, data directory and public URL of a server to run beside.
    async fn try_spawn_on(
        shared: Option<(Option<String>, PathBuf, Option<String>)>,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestApp> {
        let temp = tempfile::tempdir()?;
        let mail = SmtpSink::start().await?;
        let dns = dns::DnsServer::start().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let base_url = format!("http://{address}");
        let mut config = Config::for_test(temp.path().join("data"));
        config.listen = address;
        match shared {
            Some((database_url, data_dir, public_url)) => {
                config.database_url = database_url;
                config.data_dir = data_dir;
                config.public_url = public_url;
            }
            None => {
                config.public_url = Some(base_url.clone());
                config.database_url = fresh_database().await?;
            }
        }
        config.smtp = Some(SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port: mail.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "entitle <no-reply@entitle.test>".to_owned(),
        });
        config.domains.resolver = Some(dns.addr);
        adjust(&mut config);
        let data_dir = config.data_dir.clone();
        let state = AppState::open(config).await?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        let server = tokio::spawn(async move {
            let _ = entitle_server::serve(serving, listener, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(TestApp {
            base_url,
            state,
            mail,
            dns,
            client: new_client(),
            data_dir,
            _temp: temp,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A second browser: its own cookie jar.
    pub fn new_client(&self) -> Client {
        new_client()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// A GET with a bearer session token, from a client without cookies.
    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        new_client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// A JSON POST with a bearer session token, from a client without cookies.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Response {
        new_client()
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A JSON PATCH with a bearer session token, from a client without cookies.
    pub async fn patch_as(&self, token: &str, path: &str, body: &Value) -> Response {
        new_client()
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A DELETE with a bearer session token, from a client without cookies.
    pub async fn delete_as(&self, token: &str, path: &str) -> Response {
        new_client()
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Signs up through the API and confirms the address from the real email; returns
    /// the account id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let body = json!({"email": email, "password": password, "first_name": "Test", "last_name": "Person", "country": "DE"});
        let response = self
            .client
            .post(self.url("/api/v1/signup"))
            .json(&body)
            .send()
            .await
            .expect("signup");
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "{}",
            response.text().await.unwrap_or_default()
        );
        let mail = self.mail.expect(email, "Confirm your email").await;
        let token = mail.token("/verify-email").expect("verification link");
        let response = self
            .client
            .post(self.url("/api/v1/verify-email"))
            .json(&json!({"token": token}))
            .send()
            .await
            .expect("verify");
        assert_eq!(response.status(), StatusCode::OK);
        let account: Value = response.json().await.expect("account");
        account["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Signs in with a fresh client and returns its bearer session token.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let response = new_client()
            .post(self.url("/api/v1/session"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("sign in");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        let body: Value = response.json().await.expect("json");
        body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Bootstraps an operator, sets their password from the emailed link and signs in;
    /// returns the operator's bearer token.
    pub async fn operator(&self, email: &str) -> String {
        entitle_server::identity::bootstrap::bootstrap_operator(
            &self.state,
            email,
            "Olga",
            "Operator",
            "US",
            true,
        )
        .await
        .expect("bootstrap");
        let mail = self.mail.expect(email, "operator account").await;
        let token = mail.token("/reset-password").expect("set-password link");
        let response = self
            .post(
                "/api/v1/reset-password",
                &json!({"token": token, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        self.sign_in(email, PASSWORD).await
    }

    /// Fetches a page with `client` and submits its form (CSRF token included) to
    /// `action` with `fields`, as a browser would. Returns the answer, unfollowed.
    pub async fn submit_form(
        &self,
        client: &Client,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let html = client
            .get(self.url(page))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        let csrf = csrf_token(&html).unwrap_or_else(|| panic!("no form on {page}: {html}"));
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        client
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .expect("form post")
    }

    /// Signs `client` in through the sign-in page, continuing to `next`; returns the
    /// redirect the page answers with.
    pub async fn page_sign_in(
        &self,
        client: &Client,
        email: &str,
        password: &str,
        next: &str,
    ) -> Response {
        let page = format!("/sign-in?next={}", urlencode(next));
        self.submit_form(
            client,
            &page,
            "/sign-in",
            &[("email", email), ("password", password), ("next", next)],
        )
        .await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.db.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The CSRF token of the first form on a page.
pub fn csrf_token(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Where a redirect answer points.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A new, empty PostgreSQL database when the suite runs on PostgreSQL; `None` for SQLite.
pub async fn fresh_database() -> anyhow::Result<Option<String>> {
    let Ok(admin_url) = std::env::var(DATABASE_ENV) else {
        return Ok(None);
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    let name = format!("entitle_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let mut url = url::Url::parse(&admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(Some(url.to_string()))
}

/// Asserts a problem document with the given status and code; returns it.
pub async fn expect_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(
        response.status(),
        status,
        "unexpected status for expected {code}"
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["request_id"].is_string(),
        "problem has a request id: {body}"
    );
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}
