//! Benchmark: entitle's OpenID Connect endpoints against panva's oidc-provider (in
//! memory), side by side with the same load generator (wrk) in one run: discovery,
//! JWKS, `client_credentials` and `refresh_token` with rotation. Also the memory each
//! holds per 10,000 live refresh-token families.
//!
//! Run with `bench/oidc.sh`, which builds this in release mode and installs wrk and
//! oidc-provider. Both servers run as their own processes, so CPU and RSS are theirs.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use entitle_server::{AppState, Config};

mod common;

use common::load::{
    basic, bench_client, mint_families, proc_status_kib, summarize, write_lines, wrk, Run,
};

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
    let (client_id, secret) = bench_client(&state).await?;
    let tokens = mint_families(&state, &client_id, SCOPE, TOKENS_PER_ROUND * ROUNDS).await?;
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
        authorization: basic(&client_id, &secret),
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
                    server.child.id(),
                    &format!("{}{path}", server.base),
                    script.as_ref().map(|(f, a)| (f.as_path(), a.clone())),
                    seconds,
                    THREADS,
                    CONNECTIONS,
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
        let tokens = mint_families(&state, &id, SCOPE, 10_000).await?;
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
