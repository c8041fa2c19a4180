//! Benchmark: entitle's OpenID Connect endpoints against panva's oidc-provider (in
//! memory), side by side with the same load generator (wrk) in one run: discovery,
//! JWKS, `client_credentials` and `refresh_token` with rotation. Also the memory each
//! holds per 10,000 live refresh-token families.
//!
//! Run with `bench/oidc.sh`, which builds this in release mode and installs wrk and
//! oidc-provider. Both servers run as their own processes, so CPU and RSS are theirs.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use entitle_server::{
    db::now_ms,
    identity::store::{insert_account, AccountRow},
    oidc::{
        clients::{self, NewClient},
        store::{insert_grant, GrantRow},
    },
    AppState, Config,
};
use uuid::Uuid;

const ROUNDS: usize = 3;
const THREADS: usize = 2;
const CONNECTIONS: usize = 32;
const SCOPE: &str = "openid email offline_access";
/// One per connection, plus the one per thread that wrk draws to check the script.
const TOKENS_PER_ROUND: usize = CONNECTIONS + THREADS;
const OP_SECRET: &str = "bench-secret-bench-secret-bench-secret";

struct Server {
    name: &'static str,
    child: Child,
    base: String,
    authorization: String,
    /// Refresh-token files, one per round, `TOKENS_PER_ROUND` tokens each.
    token_files: Vec<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
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
fn cpu_seconds(pid: u32) -> f64 {
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
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    cpu_percent: f64,
    rss_kib: u64,
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

fn wrk(
    server: &Server,
    path: &str,
    script: Option<(&Path, Vec<String>)>,
    seconds: u64,
) -> anyhow::Result<Run> {
    let mut command = Command::new("wrk");
    command.args([
        "-t",
        &THREADS.to_string(),
        "-c",
        &CONNECTIONS.to_string(),
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
    command.arg(format!("{}{path}", server.base));
    if !script_args.is_empty() {
        command.arg("--").args(&script_args);
    }
    let pid = server.child.id();
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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn summarize(runs: &[Run]) -> Run {
    Run {
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
        cpu_percent: median(runs.iter().map(|r| r.cpu_percent).collect()),
        rss_kib: runs.iter().map(|r| r.rss_kib).max().unwrap_or(0),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", url])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Accounts and refresh-token families straight in the database, as code exchanges
/// would have left them; returns the tokens.
async fn mint_families(
    state: &AppState,
    client_id: &str,
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
            scope: SCOPE.to_owned(),
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

fn split_rounds(dir: &Path, name: &str, tokens: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    tokens
        .chunks(TOKENS_PER_ROUND)
        .take(ROUNDS)
        .enumerate()
        .map(|(round, chunk)| {
            let path = dir.join(format!("{name}-round{round}.tokens"));
            write_lines(&path, chunk)?;
            Ok(path)
        })
        .collect()
}

async fn start_entitle(entitled: &Path, dir: &Path) -> anyhow::Result<(Server, Config)> {
    let port = free_port()?;
    let config = Config {
        data_dir: dir.join("entitle-data"),
        listen: format!("127.0.0.1:{port}").parse()?,
        ..Config::default()
    };
    let state = AppState::open(config.clone()).await?;
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
    let tokens = mint_families(&state, &client.client_id, TOKENS_PER_ROUND * ROUNDS).await?;
    state.db.close().await;
    let child = Command::new(entitled)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&config.data_dir)
        .env("ENTITLE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server {
        name: "entitle",
        child,
        base: format!("http://127.0.0.1:{port}"),
        authorization: basic(&client.client_id, &secret.unwrap_or_default()),
        token_files: split_rounds(dir, "entitle", &tokens)?,
    };
    wait_ready(&format!("{}/readyz", server.base))?;
    Ok((server, config))
}

fn start_oidc_provider(
    script: &Path,
    dir: &Path,
) -> anyhow::Result<(Server, BufReader<std::process::ChildStdout>)> {
    let port = free_port()?;
    let mut child = Command::new("node")
        .arg("--expose-gc")
        .arg(script)
        .args([port.to_string(), (TOKENS_PER_ROUND * ROUNDS).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    );
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let started: serde_json::Value = serde_json::from_str(&line)?;
    let tokens: Vec<String> = started["families"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let server = Server {
        name: "oidc-provider",
        child,
        base: format!("http://127.0.0.1:{port}"),
        authorization: basic("bench", OP_SECRET),
        token_files: split_rounds(dir, "oidc-provider", &tokens)?,
    };
    wait_ready(&format!("{}/.well-known/openid-configuration", server.base))?;
    Ok((server, stdout))
}

struct Scenario {
    name: &'static str,
    entitle_path: &'static str,
    op_path: &'static str,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let entitled = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/release/entitled".into()),
    );
    let op_script = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "bench/oidc-provider/server.mjs".into()),
    );
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let wrk_dir = PathBuf::from(args.get(4).cloned().unwrap_or_else(|| "bench/wrk".into()));
    let temp = tempfile::tempdir()?;

    let (entitle, entitle_config) = start_entitle(&entitled, temp.path()).await?;
    let (op, mut op_stdout) = start_oidc_provider(&op_script, temp.path())?;
    std::thread::sleep(Duration::from_secs(1));
    let idle = [
        (entitle.name, proc_status_kib(entitle.child.id(), "VmRSS:")),
        (op.name, proc_status_kib(op.child.id(), "VmRSS:")),
    ];

    let scenarios = [
        Scenario {
            name: "discovery",
            entitle_path: "/.well-known/openid-configuration",
            op_path: "/.well-known/openid-configuration",
        },
        Scenario {
            name: "JWKS",
            entitle_path: "/oauth2/jwks",
            op_path: "/jwks",
        },
        Scenario {
            name: "client_credentials",
            entitle_path: "/oauth2/token",
            op_path: "/token",
        },
        Scenario {
            name: "refresh_token (rotating)",
            entitle_path: "/oauth2/token",
            op_path: "/token",
        },
    ];
    println!("entitle vs oidc-provider: wrk -t{THREADS} -c{CONNECTIONS}, {seconds} s per run, medians of {ROUNDS} alternating runs\n");
    println!("| scenario | server | requests/s | p50 ms | p99 ms | server CPU % | RSS MiB (max) | non-2xx |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    // BENCH_ONLY=client_credentials,refresh_token runs just those (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for scenario in scenarios
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| s.name.starts_with(o)))
    {
        let mut results: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for (i, server) in [&entitle, &op].into_iter().enumerate() {
                let path = if i == 0 {
                    scenario.entitle_path
                } else {
                    scenario.op_path
                };
                let script = match scenario.name {
                    "client_credentials" => Some((
                        wrk_dir.join("post.lua"),
                        vec![
                            "grant_type=client_credentials&scope=licenses".to_owned(),
                            server.authorization.clone(),
                        ],
                    )),
                    "refresh_token (rotating)" => Some((
                        wrk_dir.join("refresh.lua"),
                        vec![
                            server.token_files[round].display().to_string(),
                            (TOKENS_PER_ROUND / THREADS).to_string(),
                            server.authorization.clone(),
                        ],
                    )),
                    _ => None,
                };
                let run = wrk(
                    server,
                    path,
                    script.as_ref().map(|(f, a)| (f.as_path(), a.clone())),
                    seconds,
                )?;
                results[i].push(run);
            }
        }
        let summaries = [summarize(&results[0]), summarize(&results[1])];
        for (server, s) in [entitle.name, op.name].iter().zip(&summaries) {
            println!(
                "| {} | {server} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {} |",
                scenario.name,
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.cpu_percent,
                s.rss_kib as f64 / 1024.0,
                s.errors
            );
        }
        ratios.push((
            scenario.name,
            summaries[0].rps / summaries[1].rps,
            summaries[0].rss_kib as f64 / summaries[1].rss_kib as f64,
        ));
    }
    println!("\n| scenario | requests/s entitle ÷ oidc-provider | RSS entitle ÷ oidc-provider |");
    println!("|---|---:|---:|");
    for (name, rps, rss) in &ratios {
        println!("| {name} | {rps:.2} | {rss:.2} |");
    }
    println!(
        "\nIdle RSS: entitle {:.1} MiB, oidc-provider {:.1} MiB.",
        idle[0].1 as f64 / 1024.0,
        idle[1].1 as f64 / 1024.0
    );

    // Memory per 10,000 live refresh-token families: entitle keeps them in the database
    // (each one refreshed once through the server, so it is live and was touched);
    // oidc-provider keeps them in its heap.
    let entitle_before = proc_status_kib(entitle.child.id(), "VmRSS:");
    let extra = {
        let state = AppState::open(entitle_config.clone()).await?;
        let client_id = entitle.authorization.clone();
        let decoded = String::from_utf8(STANDARD.decode(client_id.trim_start_matches("Basic "))?)?;
        let id = decoded.split(':').next().unwrap_or_default().to_owned();
        let tokens = mint_families(&state, &id, 10_000).await?;
        state.db.close().await;
        tokens
    };
    let extra_file = temp.path().join("extra.tokens");
    write_lines(&extra_file, &extra)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xargs -P 8 -I{{}} curl -s -o /dev/null -H 'Authorization: {}' -d grant_type=refresh_token -d refresh_token={{}} {}/oauth2/token < {}",
            entitle.authorization,
            entitle.base,
            extra_file.display()
        ))
        .status()?;
    anyhow::ensure!(status.success(), "refreshing the extra families failed");
    let entitle_after = proc_status_kib(entitle.child.id(), "VmRSS:");
    let _ = Command::new("kill")
        .args(["-USR2", &op.child.id().to_string()])
        .status();
    let mut line = String::new();
    op_stdout.read_line(&mut line)?;
    let op_memory: serde_json::Value = serde_json::from_str(&line)?;
    let op_delta = op_memory["rss_after_kib"].as_i64().unwrap_or(0)
        - op_memory["rss_before_kib"].as_i64().unwrap_or(0);
    println!(
        "RSS growth per 10,000 live refresh-token families: entitle {:+.1} MiB (families in SQLite), oidc-provider {:+.1} MiB (in memory).",
        (entitle_after as i64 - entitle_before as i64) as f64 / 1024.0,
        op_delta as f64 / 1024.0
    );
    let database_bytes: u64 = ["entitle.db", "entitle.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(entitle_config.data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "entitle's database file after the run: {:.1} MiB.",
        database_bytes as f64 / 1_048_576.0
    );
    Ok(())
}
