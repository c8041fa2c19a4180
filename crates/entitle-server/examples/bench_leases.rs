//! Benchmark: online leases and bulk checkout, on SQLite or PostgreSQL. In one run, with
//! the same load generator (wrk, 32 connections): the OIDC `refresh_token` grant (with
//! rotation) as the yardstick, lease acquire (a new machine, so a new seat, every
//! request) and lease heartbeat, each with requests/s and p99; the time from a lease's
//! last heartbeat until another machine gets its seat; and a 1,000-row bulk checkout
//! staged and committed.
//!
//! Run with `bench/leases.sh`, which builds this in release mode, installs wrk and starts
//! PostgreSQL for the second half.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use entitle_proto::{NewProduct, NewSubscription, OveragePolicy};
use entitle_server::{
    audit::Actor,
    db::{now_ms, Db},
    entitlements::catalog,
    identity::store::AccountRow,
    on_db,
    orgs::store::{add_member, insert_org, OrgRow},
    AppState, Config,
};
use uuid::Uuid;

mod common;

use common::{
    load::{basic, bench_client, mint_families, summarize, write_lines, wrk, Run},
    median, PASSWORD,
};

const ROUNDS: usize = 3;
/// Rounds run first and not counted: until each of the server's connections has prepared
/// the statements of every batch length, the yardstick ran 30-60% slower in the first
/// round than in the third.
const WARMUP_ROUNDS: usize = 1;
const THREADS: usize = 2;
const CONNECTIONS: usize = 32;
const SCOPE: &str = "openid email offline_access";
/// One refresh token per connection, plus the one per thread wrk draws to check the script.
const TOKENS_PER_ROUND: usize = CONNECTIONS + THREADS;
/// Leases the heartbeat run renews, round robin.
const HEARTBEAT_LEASES: usize = 512;
/// The heartbeat interval the server runs with, so that reclaiming is measured in seconds.
const HEARTBEAT_SECS: i64 = 10;
const BULK_RUNS: usize = 5;
const ADMIN: &str = "admin@bench.example";

/// The people and tokens the run needs, written into the database before the server starts.
struct Seeded {
    client: String,
    /// Refresh tokens for the yardstick, `TOKENS_PER_ROUND` per round.
    refresh_tokens: Vec<String>,
    /// A refresh token of a member of the benchmark's organization, exchanged for the
    /// access token the lease requests carry; and one of the one-seat organization.
    member: String,
    probe: String,
    org_id: Uuid,
}

async fn member_of(
    state: &AppState,
    org_id: Uuid,
    email: &str,
    roles: &[&str],
) -> anyhow::Result<AccountRow> {
    let now = now_ms();
    let account = AccountRow {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        first_name: "Bench".into(),
        last_name: "Member".into(),
        country: "DE".into(),
        password_hash: None,
        status: "active".into(),
        email_verified: true,
        is_operator: false,
        home_org_id: Some(org_id),
        tos_accepted_version: None,
        tos_accepted_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.writer().await?;
    entitle_server::identity::store::insert_account(&mut conn, &account).await?;
    add_member(&mut conn, org_id, &account, roles, now).await?;
    Ok(account)
}

async fn org_with_product(
    state: &AppState,
    name: &str,
    product: &str,
    seats: i64,
) -> anyhow::Result<Uuid> {
    let actor = Actor {
        id: None,
        label: Some("bench".into()),
        ip: None,
    };
    let org = OrgRow {
        id: Uuid::now_v7(),
        name: name.into(),
        created_at: now_ms(),
        auto_approval: false,
    };
    {
        let mut conn = state.db.writer().await?;
        insert_org(&mut conn, &org, Uuid::nil()).await?;
    }
    let new_product = NewProduct {
        code: product.into(),
        name: product.into(),
        versions: vec!["24.2".into()],
    };
    catalog::add_product(state, &actor, &new_product)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let subscription = NewSubscription {
        org_id: org.id,
        products: vec![product.into()],
        seats,
        starts_at: None,
        ends_at: now_ms() + 365 * 86_400_000,
        overage: OveragePolicy::Deny,
        overage_factor: None,
    };
    catalog::add_subscription(state, &actor, &subscription)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(org.id)
}

async fn seed(config: &Config) -> anyhow::Result<Seeded> {
    common::insert_account(config, ADMIN, false).await?;
    let state = AppState::open(config.clone()).await?;
    let (client_id, secret) = bench_client(&state).await?;
    let org_id = org_with_product(&state, "Bench Corp", "bench-cad", 1_000_000).await?;
    let probe_org = org_with_product(&state, "Probe", "probe-cad", 1).await?;
    let admin =
        entitle_server::identity::store::account_by_email(&mut state.db.reader().await?, ADMIN)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no admin"))?;
    add_member(
        &mut state.db.writer().await?,
        org_id,
        &admin,
        &["administrator"],
        now_ms(),
    )
    .await?;
    let member = member_of(&state, org_id, "member@bench.example", &["user"]).await?;
    let prober = member_of(&state, probe_org, "member@probe.example", &["user"]).await?;
    let refresh_tokens = mint_families(
        &state,
        &client_id,
        SCOPE,
        TOKENS_PER_ROUND * (WARMUP_ROUNDS + ROUNDS),
    )
    .await?;
    let family = |account: &AccountRow| {
        let state = state.clone();
        let client_id = client_id.clone();
        let account = account.clone();
        async move { mint_for(&state, &client_id, &account).await }
    };
    let member_token = family(&member).await?;
    let probe_token = family(&prober).await?;
    state.db.close().await;
    Ok(Seeded {
        client: basic(&client_id, &secret),
        refresh_tokens,
        member: member_token,
        probe: probe_token,
        org_id,
    })
}

/// A refresh-token family of `account`, as a code exchange would have left it.
async fn mint_for(
    state: &AppState,
    client_id: &str,
    account: &AccountRow,
) -> anyhow::Result<String> {
    use entitle_server::oidc::store::{insert_grant, GrantRow};
    let now = now_ms();
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
        expires_at: now + 90 * 86_400_000,
        revoked_at: None,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
    };
    insert_grant(&mut state.db.writer().await?, &grant).await?;
    Ok(state.oidc.refresh_token(grant.id, 0))
}

/// An access token for the family's person, from the token endpoint.
async fn access_token(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    refresh: &str,
) -> anyhow::Result<String> {
    let answer: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .header("authorization", client)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn lease_body(product: &str, machine: &str) -> serde_json::Value {
    serde_json::json!({"product": product, "version": "24.2", "machine_id": machine,
        "machine_name": format!("PC {machine}"), "nonce": "bench-nonce"})
}

async fn acquire(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    machine: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .post(format!("{base}/api/v1/leases"))
        .bearer_auth(token)
        .json(&lease_body(product, machine))
        .send()
        .await?)
}

fn row(name: &str, s: &Run) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {} |",
        s.rps, s.p50_ms, s.p99_ms, s.cpu_percent, s.errors
    );
}

/// A bulk checkout file of 1,000 new machines, numbered from `first`.
fn checkout_file(first: usize) -> String {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let day = format!(
        "{:04}-{:02}-{:02}",
        expires.year(),
        u8::from(expires.month()),
        expires.day()
    );
    let mut file = String::from("Email,Product,Version,Machine,Expires\r\n");
    for n in first..first + 1000 {
        file.push_str(&format!(
            "person{n}@supplier.example,bench-cad,24.*,SITE-PC-{n:06},{day}\r\n"
        ));
    }
    file
}

/// Waits until every seat held now has lapsed and the background reclaim has freed it:
/// how many it freed, and how long after the last of them lapsed it was done.
async fn lapsed_seats_freed(db: &Db) -> anyhow::Result<(f64, f64)> {
    let (holds, last): (i64, Option<i64>) = on_db!(&mut db.reader().await?, |c| {
        sqlx::query_as("SELECT COUNT(*), MAX(expires_at) FROM seat_holds")
            .fetch_one(c)
            .await
    })?;
    let last = last.unwrap_or_else(now_ms);
    loop {
        let now = now_ms();
        let (lapsed,): (i64,) = on_db!(&mut db.reader().await?, |c| {
            sqlx::query_as("SELECT COUNT(*) FROM seat_holds WHERE expires_at <= $1")
                .bind(now)
                .fetch_one(c)
                .await
        })?;
        if now > last && lapsed == 0 {
            return Ok((holds as f64, (now - last) as f64 / 1000.0));
        }
        anyhow::ensure!(
            now - last < 120_000,
            "{lapsed} lapsed seats not freed 2 minutes on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let entitled = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/release/entitled".into()),
    );
    let database_url = args.get(2).cloned().filter(|s| !s.is_empty());
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let lua = Path::new("bench/wrk");
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("data");
    let config = Config {
        data_dir: data_dir.clone(),
        database_url: database_url.clone(),
        ..Config::default()
    };
    let seeded = seed(&config).await?;
    if let Some(url) = &database_url {
        // What autovacuum does within a minute of a bulk load: without statistics of the
        // seeded grants, the yardstick ran 25-30% slower in its first counted round. Only
        // the tables seeding wrote, as autovacuum would: one vacuumed while empty is taken
        // for one that stays small, and the plans made then walk it once it has grown
        // (lease acquire ran at a third of its rate until autovacuum looked again).
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT relname::text FROM pg_stat_user_tables WHERE n_live_tup > 0")
                .fetch_all(&mut conn)
                .await?;
        for (table,) in tables {
            sqlx::query(&format!("VACUUM ANALYZE \"{table}\""))
                .execute(&mut conn)
                .await?;
        }
    }
    let heartbeat = HEARTBEAT_SECS.to_string();
    let server = common::serve_with(
        &entitled,
        &data_dir,
        database_url.as_deref(),
        &[("ENTITLE_LICENSING__HEARTBEAT_SECS", &heartbeat)],
    )
    .await?;
    let base = server.base.clone();
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let token = access_token(&http, &base, &seeded.client, &seeded.member).await?;
    let bearer = format!("Bearer {token}");

    let token_files: Vec<PathBuf> = seeded
        .refresh_tokens
        .chunks(TOKENS_PER_ROUND)
        .enumerate()
        .map(|(round, chunk)| {
            let path = temp.path().join(format!("round{round}.tokens"));
            write_lines(&path, chunk).map(|_| path)
        })
        .collect::<anyhow::Result<_>>()?;

    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("== {backend}: wrk -t{THREADS} -c{CONNECTIONS}, {seconds} s per run, medians of {ROUNDS} alternating runs after {WARMUP_ROUNDS} not counted\n");
    println!("| scenario | requests/s | p50 ms | p99 ms | server CPU % | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut runs: [Vec<Run>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let db = Db::connect(database_url.as_deref(), &data_dir).await?;
    let mut reclaims = Vec::new();
    for (round, tokens) in token_files.iter().enumerate() {
        let refresh = (
            lua.join("refresh.lua"),
            vec![
                tokens.display().to_string(),
                (TOKENS_PER_ROUND / THREADS).to_string(),
                seeded.client.clone(),
            ],
        );
        runs[0].push(wrk(
            pid,
            &format!("{base}/oauth2/token"),
            Some((&refresh.0, refresh.1)),
            seconds,
            THREADS,
            CONNECTIONS,
        )?);
        let acquire_args = vec![
            "acquire".to_owned(),
            bearer.clone(),
            "bench-cad".to_owned(),
            format!("r{round}"),
        ];
        runs[1].push(wrk(
            pid,
            &base,
            Some((&lua.join("lease.lua"), acquire_args)),
            seconds,
            THREADS,
            CONNECTIONS,
        )?);
        // The acquire run's seats lapse and the background reclaim frees them before the
        // next run, which would otherwise share the machine with it.
        reclaims.push(lapsed_seats_freed(&db).await?);
        // Leases for the heartbeat run, taken just before it: with a 10 s interval, those
        // of an earlier round have lapsed.
        let mut lease_ids = Vec::with_capacity(HEARTBEAT_LEASES);
        for n in 0..HEARTBEAT_LEASES {
            let machine = format!("heartbeat-{round}-{n:05}");
            let lease: serde_json::Value = acquire(&http, &base, &token, "bench-cad", &machine)
                .await?
                .error_for_status()?
                .json()
                .await?;
            lease_ids.push(lease["id"].as_str().unwrap_or_default().to_owned());
        }
        let ids_file = temp.path().join(format!("leases-{round}.ids"));
        write_lines(&ids_file, &lease_ids)?;
        let heartbeat_args = vec![
            "heartbeat".to_owned(),
            bearer.clone(),
            ids_file.display().to_string(),
        ];
        runs[2].push(wrk(
            pid,
            &base,
            Some((&lua.join("lease.lua"), heartbeat_args)),
            seconds,
            THREADS,
            CONNECTIONS,
        )?);
    }
    for scenario in &mut runs {
        scenario.drain(..WARMUP_ROUNDS);
    }
    reclaims.drain(..WARMUP_ROUNDS);
    let [refresh, acquired, renewed] = [
        summarize(&runs[0]),
        summarize(&runs[1]),
        summarize(&runs[2]),
    ];
    row("OIDC refresh_token (rotating), the yardstick", &refresh);
    row("lease acquire (a new seat each)", &acquired);
    row("lease heartbeat", &renewed);
    println!(
        "\nacquire ÷ refresh_token: {:.2} (goal ≥ 0.8); heartbeat ÷ refresh_token: {:.2} (goal ≥ 1)",
        acquired.rps / refresh.rps,
        renewed.rps / refresh.rps
    );
    println!();
    let [refreshes, acquires, heartbeats] = &runs;
    for (round, ((r, a), h)) in refreshes.iter().zip(acquires).zip(heartbeats).enumerate() {
        println!(
            "round {}: refresh_token {:.0}/s, acquire {:.0}/s ({:.2}), heartbeat {:.0}/s ({:.2})",
            round + 1,
            r.rps,
            a.rps,
            a.rps / r.rps,
            h.rps,
            h.rps / r.rps
        );
    }

    let (mut freed, mut after): (Vec<f64>, Vec<f64>) = reclaims.into_iter().unzip();
    println!(
        "\nthe acquire run's lapsed seats, median of {ROUNDS}: {:.0} freed by the background reclaim, the last {:.1} s after it lapsed (it runs every {:.0} s)",
        median(&mut freed),
        median(&mut after),
        entitle_server::RECLAIM_EVERY_MS as f64 / 1000.0
    );

    // The seat of a lease whose heartbeats stop: the probe organization has one seat.
    let probe = access_token(&http, &base, &seeded.client, &seeded.probe).await?;
    let first: serde_json::Value = acquire(&http, &base, &probe, "probe-cad", "probe-machine-a")
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = first["id"].as_str().unwrap_or_default().to_owned();
    http.post(format!("{base}/api/v1/leases/{id}/heartbeat"))
        .bearer_auth(&probe)
        .json(&serde_json::json!({"nonce": "last-heartbeat"}))
        .send()
        .await?
        .error_for_status()?;
    let last_heartbeat = Instant::now();
    let mut refused = 0;
    loop {
        let answer = acquire(&http, &base, &probe, "probe-cad", "probe-machine-b").await?;
        if answer.status().is_success() {
            break;
        }
        refused += 1;
        anyhow::ensure!(
            last_heartbeat.elapsed() < Duration::from_secs(120),
            "the seat was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let freed = last_heartbeat.elapsed().as_secs_f64();
    let promised = (HEARTBEAT_SECS + (HEARTBEAT_SECS / 10).min(30)) as f64;
    println!(
        "\nlast heartbeat → another machine gets the seat: {freed:.2} s with a {HEARTBEAT_SECS} s heartbeat interval ({promised:.0} s promised: the interval and its tenth; {:.0} ms later; {refused} attempts refused meanwhile, each 409 no_seat_available)",
        (freed - promised) * 1000.0
    );

    // Bulk checkout: 1,000 new machines staged and committed, as an administrator would.
    let session: serde_json::Value = http
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = session["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (mut staged, mut committed, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..BULK_RUNS {
        let started = Instant::now();
        let batch: serde_json::Value = http
            .post(format!(
                "{base}/api/v1/orgs/{}/checkout-batches",
                seeded.org_id
            ))
            .bearer_auth(&admin)
            .header("content-type", "text/csv")
            .body(checkout_file(run * 1000))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let stage_ms = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            batch["counts"]["valid"] == 1000,
            "not all rows valid: {}",
            batch["counts"]
        );
        let commit_started = Instant::now();
        let done: serde_json::Value = http
            .post(format!(
                "{base}/api/v1/orgs/{}/checkout-batches/{}/commit",
                seeded.org_id,
                batch["id"].as_str().unwrap_or_default()
            ))
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(done["committed_at"].is_i64(), "not committed");
        committed.push(commit_started.elapsed().as_secs_f64() * 1000.0);
        staged.push(stage_ms);
        total.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\nbulk checkout of 1,000 rows, median of {BULK_RUNS}: stage {:.0} ms + commit {:.0} ms = {:.0} ms (goal < 300 ms on SQLite)",
        median(&mut staged),
        median(&mut committed),
        median(&mut total)
    );
    Ok(())
}
