//! entitled: identity, organizations and entitlements in one server.
//!
//! `build_router` is what `main` serves and what the tests drive.

pub mod app;
pub mod audit;
pub mod config;
pub mod csv_file;
pub mod db;
pub mod entitlements;
pub mod error;
pub mod http;
pub mod identity;
pub mod mail;
pub mod metering;
pub mod metrics;
pub mod oidc;
pub mod orgs;
pub mod portal;
pub mod staged;
pub mod words;

pub use app::AppState;
pub use config::Config;
pub use http::build_router;

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Err(error) = state.record_public_url().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "recording the public URL failed"
        );
    }
    metrics::init();
    let metrics_server = match state.config.metrics.listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await?;
            tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
            let router = http::metrics_router(state.clone());
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }))
        }
        None => None,
    };
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let reclaim = tokio::spawn(reclaim_seats(state.clone()));
    let usage = tokio::spawn(fold_usage(state.clone()));
    let client_changes = tokio::spawn(oidc::clients::follow_changes(
        state.db.clone(),
        state.oidc.clients.clone(),
    ));
    let app = build_router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    housekeeping.abort();
    reclaim.abort();
    usage.abort();
    client_changes.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    served
}

/// How often a serving process frees the seats of leases whose heartbeats stopped.
pub const RECLAIM_EVERY_MS: u64 = 5_000;

/// Seat holds the reclaim looks at per pass (lapsed ones freed in one transaction per pool).
const RECLAIM_BATCH: i64 = 1_000;

/// Frees the seats whose holders stopped renewing, found through the review index, until
/// none is left: a burst of lapsed seats is caught up with, a thousand at a time. Every
/// process runs it; a seat freed twice is not (the delete is conditional).
async fn reclaim_seats(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(RECLAIM_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match entitlements::seats::reclaim_expired(&state.db, db::now_ms(), RECLAIM_BATCH).await
            {
                Ok(pass) if pass.full && pass.freed + pass.deferred > 0 => {
                    tokio::task::yield_now().await
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "reclaiming lapsed seats failed");
                    break;
                }
            }
        }
    }
}

/// How often a serving process folds the usage events recorded since into the aggregates.
pub const FOLD_EVERY_MS: u64 = 1_000;

/// Events folded per transaction.
const FOLD_BATCH: i64 = 5_000;

/// Folds recorded usage events into the aggregates until none waits, every second; once
/// an hour also deletes the raw events past their retention. Every process runs it; one
/// fold runs at a time.
async fn fold_usage(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FOLD_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let purge_every = 3_600_000 / FOLD_EVERY_MS;
    let mut count: u64 = 0;
    loop {
        tick.tick().await;
        loop {
            match metering::fold::fold_pending(&state.db, FOLD_BATCH).await {
                Ok(n) if n as i64 == FOLD_BATCH => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "folding usage events failed");
                    break;
                }
            }
        }
        if count.is_multiple_of(purge_every) {
            let retention = state.config.metering.raw_retention_days * metering::rules::DAY_MS;
            if let Err(error) = metering::fold::purge_raw(&state.db, db::now_ms() - retention).await
            {
                tracing::warn!(error = %error, "purging raw usage events failed");
            }
        }
        count += 1;
    }
}

/// Periodic work of a serving process: pick up keys another process rotated, delete
/// codes and tokens that can no longer be used, and check verified domains again.
async fn housekeeping(state: AppState) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(
        oidc::keys::KEY_RELOAD_INTERVAL_SECS as u64,
    ));
    ticks.tick().await;
    let mut count: u64 = 0;
    loop {
        ticks.tick().await;
        count += 1;
        if let Err(error) = state.oidc.keys.reload(&state.db).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "reloading signing keys failed"
            );
        }
        let kek = state.oidc.keys.kek();
        if let Err(error) = state.licensing.reload(&state.db, kek).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "reloading license keys failed"
            );
        }
        if count.is_multiple_of(10) {
            let purged = async {
                let mut conn = state.db.writer().await?;
                oidc::store::purge_expired(&mut conn, db::now_ms()).await
            }
            .await;
            if let Err(error) = purged {
                tracing::warn!(error = %error, "purging expired tokens failed");
            }
        }
        if let Err(error) = orgs::domains::recheck_due(&state, db::now_ms()).await {
            tracing::warn!(error = %error.detail(), "re-checking verified domains failed");
        }
    }
}
