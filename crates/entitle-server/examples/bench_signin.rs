//! Benchmark: password sign-ins per second through the JSON API against the bare
//! Argon2id verification rate of the same parameters, plus the server's memory.
//!
//! Run with `bench/signin.sh` (release build). It starts `entitled serve` as its own
//! process on a fresh SQLite data directory with the default configuration, so the
//! server's RSS is the server's alone.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

mod common;

use common::{median, PASSWORD};
use entitle_server::{
    config::{Config, PasswordConfig},
    identity::password,
};

const EMAIL: &str = "bench@example.com";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_owned())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Bare verification rate: `threads` threads verifying the same hash for `duration`,
/// either reusing their Argon2 memory (strict) or through the argon2 crate's
/// `verify_password`, which allocates it for every hash.
fn bare_rate(
    config: &PasswordConfig,
    threads: usize,
    duration: Duration,
    reuse_memory: bool,
) -> f64 {
    let hash = Arc::new(password::hash_blocking(config, PASSWORD).expect("hash"));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hash, done, stop) = (hash.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut memory = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let ok = if reuse_memory {
                        password::verify_reusing(&mut memory, PASSWORD, &hash)
                    } else {
                        password::verify_blocking(PASSWORD, &hash)
                    };
                    assert!(ok);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

const ROUNDS: usize = 3;

/// `concurrency` clients signing in back to back for `duration`: (rate, failures, peak RSS KiB).
async fn api_phase(
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, u64, u64)> {
    let body = serde_json::json!({"email": EMAIL, "password": PASSWORD});
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, body, ok, failed, url) = (
            client.clone(),
            body.clone(),
            ok.clone(),
            failed.clone(),
            format!("{base}/api/v1/session"),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in tasks {
        t.await?;
    }
    Ok((
        ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
        peak,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let entitled = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/release/entitled".into()),
    );
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let concurrency = cores * 2;
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("data");
    let params = PasswordConfig::default();

    // One verified account, written straight into the database the server will use.
    let config = Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    common::insert_account(&config, EMAIL, false).await?;
    let server = common::serve(&entitled, &data_dir, None).await?;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(server.child.id());

    // Alternate the two phases so drift on the machine hits both alike; report medians.
    let mut api_rates = Vec::new();
    let mut bare_rates = Vec::new();
    let mut allocating_rates = Vec::new();
    let mut peak_rss = 0;
    let mut failures = 0;
    for _ in 0..ROUNDS {
        let (rate, failed, peak) =
            api_phase(&client, &base, server.child.id(), concurrency, duration).await?;
        api_rates.push(rate);
        failures += failed;
        peak_rss = peak_rss.max(peak);
        bare_rates.push(bare_rate(&params, cores, duration, true));
        allocating_rates.push(bare_rate(&params, cores, duration, false));
    }
    drop(server);
    let (api, bare) = (median(&mut api_rates), median(&mut bare_rates));
    println!(
        "argon2id parameters: m={} KiB, t={}, p={}",
        params.memory_kib, params.iterations, params.parallelism
    );
    println!(
        "cores: {cores}; API clients: {concurrency}; {ROUNDS} rounds of {seconds} s per phase"
    );
    println!("sign-ins/s through POST /api/v1/session, median: {api:.1} (rounds {api_rates:.1?}, {failures} failed requests)");
    println!("bare argon2id verifications/s on {cores} threads, memory reused, median: {bare:.1} (rounds {bare_rates:.1?})");
    let allocating = median(&mut allocating_rates);
    println!("bare argon2id verifications/s on {cores} threads, argon2 verify_password (allocates per hash), median: {allocating:.1} (rounds {allocating_rates:.1?})");
    println!(
        "ratio API / bare, memory reused (medians): {:.3}",
        api / bare
    );
    println!(
        "ratio API / bare, allocating (medians): {:.3}",
        api / allocating
    );
    println!(
        "server RSS idle: {:.1} MiB; peak under load: {:.1} MiB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    Ok(())
}
