//! What the benchmarks share: an account written straight into the database, an
//! `entitled serve` process that is killed when dropped, and medians.
// Each benchmark uses some of these helpers.
#![allow(dead_code)]

pub mod load;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use entitle_server::{
    identity::{password, store},
    AppState, Config,
};

pub const PASSWORD: &str = "correct horse battery staple";

/// A running `entitled serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A verified account with [`PASSWORD`], written into the database `config` names.
pub async fn insert_account(config: &Config, email: &str, is_operator: bool) -> anyhow::Result<()> {
    let state = AppState::open(config.clone()).await?;
    let now = entitle_server::db::now_ms();
    let account = store::AccountRow {
        id: uuid::Uuid::now_v7(),
        email: email.into(),
        first_name: "Bench".into(),
        last_name: "Mark".into(),
        country: "DE".into(),
        password_hash: Some(password::hash_blocking(&config.password, PASSWORD)?),
        status: "active".into(),
        email_verified: true,
        is_operator,
        home_org_id: None,
        tos_accepted_version: None,
        tos_accepted_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.writer().await?;
    store::insert_account(&mut conn, &account).await?;
    drop(conn);
    state.db.close().await;
    Ok(())
}

/// Starts `entitled serve` on a free loopback port over `data_dir` (and `database_url`,
/// when given) and waits until it is ready. `ENTITLE_LOG` passes through (default warn).
pub async fn serve(
    entitled: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Server> {
    serve_with(entitled, data_dir, database_url, &[]).await
}

/// [`serve`] with settings given as `ENTITLE_…` environment variables.
pub async fn serve_with(
    entitled: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    settings: &[(&str, &str)],
) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(entitled);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env(
            "ENTITLE_LOG",
            std::env::var("ENTITLE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        command.env("ENTITLE_DATABASE_URL", url);
    }
    command.envs(settings.iter().copied());
    let server = Server {
        child: command.spawn()?,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        anyhow::ensure!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}
