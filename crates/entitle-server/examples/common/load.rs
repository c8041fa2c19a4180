//! Load generation shared by the HTTP benchmarks: wrk runs with the server's CPU and
//! RSS read from /proc, and their medians.

use std::{io::Write, path::Path, process::Command, time::Instant};

use base64::{engine::general_purpose::STANDARD, Engine};
use entitle_server::{
    db::now_ms,
    identity::store::{insert_account, AccountRow},
    oidc::store::{insert_grant, GrantRow},
    AppState,
};
use uuid::Uuid;

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub cpu_percent: f64,
    pub rss_kib: u64,
}

fn parse_latency(value: &str) -> f64 {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len()),
    );
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}

/// One wrk run against `url` with `connections` over `threads`, the server being process
/// `pid`: requests/s, latency, non-2xx answers, the server's CPU and RSS.
pub fn wrk(
    pid: u32,
    url: &str,
    script: Option<(&Path, Vec<String>)>,
    seconds: u64,
    threads: usize,
    connections: usize,
) -> anyhow::Result<Run> {
    let mut command = Command::new("wrk");
    command.args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    let script_args = match &script {
        Some((file, args)) => {
            command.arg("-s").arg(file);
            args.clone()
        }
        None => Vec::new(),
    };
    command.arg(url);
    if !script_args.is_empty() {
        command.arg("--").args(&script_args);
    }
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let output = command.output()?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut run = Run {
        cpu_percent: 100.0 * cpu / elapsed,
        rss_kib: proc_status_kib(pid, "VmRSS:"),
        ..Run::default()
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => run.p50_ms = parse_latency(value),
            ["99%", value] => run.p99_ms = parse_latency(value),
            ["Requests/sec:", value] => run.rps = value.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", value] => {
                run.errors = value.parse().unwrap_or(0)
            }
            _ => {}
        }
    }
    Ok(run)
}

pub fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The medians of several runs (errors summed, the largest RSS).
pub fn summarize(runs: &[Run]) -> Run {
    Run {
        rps: median_of(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median_of(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median_of(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
        cpu_percent: median_of(runs.iter().map(|r| r.cpu_percent).collect()),
        rss_kib: runs.iter().map(|r| r.rss_kib).max().unwrap_or(0),
    }
}

pub fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    Ok(())
}

/// An HTTP Basic `Authorization` header.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Accounts and refresh-token families straight in the database, as code exchanges
/// would have left them; returns the tokens.
pub async fn mint_families(
    state: &AppState,
    client_id: &str,
    scope: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    let mut tokens = Vec::with_capacity(count);
    let mut tx = state.db.begin().await?;
    for n in 0..count {
        let account = AccountRow {
            id: Uuid::now_v7(),
            email: format!("person-{}@example.com", Uuid::new_v4().simple()),
            first_name: "Bench".into(),
            last_name: format!("Person {n}"),
            country: "DE".into(),
            password_hash: None,
            status: "active".into(),
            email_verified: true,
            is_operator: false,
            home_org_id: None,
            tos_accepted_version: None,
            tos_accepted_at: None,
            created_at: now,
            updated_at: now,
        };
        insert_account(&mut tx, &account).await?;
        let grant = GrantRow {
            id: Uuid::now_v7(),
            account_id: account.id,
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            auth_time: now,
            generation: 0,
            offline: true,
            created_at: now,
            last_used_at: now,
            expires_at: now + 90 * 24 * 3600 * 1000,
            revoked_at: None,
            ip: Some("127.0.0.1".into()),
            user_agent: Some("bench".into()),
        };
        insert_grant(&mut tx, &grant).await?;
        tokens.push(state.oidc.refresh_token(grant.id, 0));
    }
    tx.commit().await?;
    Ok(tokens)
}

/// The benchmarks' confidential client (ES256 ID tokens, the access tokens' audience a
/// resource server): its id and secret.
pub async fn bench_client(state: &AppState) -> anyhow::Result<(String, String)> {
    use entitle_server::oidc::clients::{self, NewClient};
    let (client, secret) = {
        let mut conn = state.db.writer().await?;
        clients::insert(
            &mut conn,
            NewClient {
                name: "bench".into(),
                confidential: true,
                resource_server: true,
                redirect_uris: vec!["https://rp.example/cb".into()],
                post_logout_redirect_uris: vec![],
                grant_types: vec![
                    "client_credentials".into(),
                    "refresh_token".into(),
                    "authorization_code".into(),
                ],
                scopes: vec![
                    "openid".into(),
                    "email".into(),
                    "offline_access".into(),
                    "licenses".into(),
                ],
                org_id: None,
                access_token_ttl_secs: 600,
                refresh_token_ttl_secs: 90 * 24 * 3600,
                id_token_alg: "ES256".into(),
            },
            None,
            false,
        )
        .await?
    };
    Ok((client.client_id, secret.unwrap_or_default()))
}
