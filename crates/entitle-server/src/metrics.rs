//! Prometheus metrics: requests by route and status with their latency, database pool
//! use and query latency, password hashes queued and running, emails sent and failed,
//! tokens issued by grant, and the process's own (CPU, memory, open files). Exposed at
//! `/metrics` only to a configured bearer token or on a separate listen address.
//!
//! The metrics are process-wide, as Prometheus clients keep them, so that the places
//! that count (the database macro, the hashing threads) need no handle to a state.

use std::{sync::LazyLock, time::Instant};

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry `/metrics` exposes.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    if let Err(error) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::warn!(error = %error, "process metrics are unavailable");
    }
    registry
});

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    if let Err(error) = REGISTRY.register(Box::new(metric.clone())) {
        tracing::warn!(error = %error, "a metric could not be registered");
    }
    metric
}

/// Seconds from 0.5 ms to about 16 s.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.0005, 2.0, 16).unwrap_or_default()
}

pub static HTTP_REQUESTS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "entitle_http_request_duration_seconds",
                "HTTP requests by method, matched route and status, with their latency.",
            )
            .buckets(latency_buckets()),
            &["method", "route", "status"],
        )
        .expect("valid metric"),
    )
});

pub static DB_QUERIES: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "entitle_db_query_duration_seconds",
                "Database statements by backend, with their latency.",
            )
            .buckets(latency_buckets()),
            &["backend"],
        )
        .expect("valid metric"),
    )
});

pub static DB_ACQUIRE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "entitle_db_acquire_duration_seconds",
                "Time waited for a database connection, by pool.",
            )
            .buckets(latency_buckets()),
            &["pool"],
        )
        .expect("valid metric"),
    )
});

pub static DB_CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "entitle_db_pool_connections",
                "Database connections by pool and state (idle or in use), as of the scrape.",
            ),
            &["pool", "state"],
        )
        .expect("valid metric"),
    )
});

pub static DB_POOL_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "entitle_db_pool_max_connections",
                "The most connections each pool opens.",
            ),
            &["pool"],
        )
        .expect("valid metric"),
    )
});

pub static HASHES_QUEUED: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "entitle_password_hashes_queued",
            "Password hashes and checks waiting for a hashing thread.",
        )
        .expect("valid metric"),
    )
});

pub static HASHES_RUNNING: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "entitle_password_hashes_running",
            "Password hashes and checks running now.",
        )
        .expect("valid metric"),
    )
});

pub static EMAILS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "entitle_emails_total",
                "Emails by delivery (smtp or outbox) and outcome (sent or failed).",
            ),
            &["delivery", "outcome"],
        )
        .expect("valid metric"),
    )
});

pub static TOKENS_ISSUED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "entitle_oauth_tokens_issued_total",
                "Token responses of the OAuth token endpoint, by grant type.",
            ),
            &["grant_type"],
        )
        .expect("valid metric"),
    )
});

/// Each backend's statement histogram, looked up once: every statement records here.
static SQLITE_QUERIES: LazyLock<Histogram> =
    LazyLock::new(|| DB_QUERIES.with_label_values(&["sqlite"]));
static POSTGRES_QUERIES: LazyLock<Histogram> =
    LazyLock::new(|| DB_QUERIES.with_label_values(&["postgres"]));

/// Records one database statement that started at `started`.
pub fn query_finished(backend: &'static str, started: Instant) {
    let histogram = if backend == "sqlite" {
        &SQLITE_QUERIES
    } else {
        &POSTGRES_QUERIES
    };
    histogram.observe(started.elapsed().as_secs_f64());
}

/// Counts a token response of the token endpoint (the grant types are a fixed few, so
/// each one's counter is looked up once).
pub fn token_issued(grant_type: &str) {
    static BY_GRANT: LazyLock<Vec<(&'static str, prometheus::IntCounter)>> = LazyLock::new(|| {
        crate::oidc::clients::GRANT_TYPES
            .iter()
            .map(|g| (*g, TOKENS_ISSUED.with_label_values(&[*g])))
            .collect()
    });
    if let Some((_, counter)) = BY_GRANT.iter().find(|(g, _)| *g == grant_type) {
        counter.inc();
    }
}

/// Records a wait for a connection of `pool`.
pub fn acquired(pool: &'static str, started: Instant) {
    DB_ACQUIRE
        .with_label_values(&[pool])
        .observe(started.elapsed().as_secs_f64());
}

/// Counts a password job from when it is queued to when it ends: queued, then running.
pub struct HashJob(bool);

impl HashJob {
    pub fn queued() -> HashJob {
        HASHES_QUEUED.inc();
        HashJob(false)
    }

    pub fn start(&mut self) {
        if !self.0 {
            HASHES_QUEUED.dec();
            HASHES_RUNNING.inc();
            self.0 = true;
        }
    }
}

impl Drop for HashJob {
    fn drop(&mut self) {
        if self.0 {
            HASHES_RUNNING.dec();
        } else {
            HASHES_QUEUED.dec();
        }
    }
}

/// Every metric in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&REGISTRY.gather(), &mut out) {
        tracing::warn!(error = %error, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Makes every metric exist from the start, so a scrape shows them at zero.
pub fn init() {
    LazyLock::force(&REGISTRY);
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&DB_QUERIES);
    LazyLock::force(&DB_ACQUIRE);
    LazyLock::force(&DB_CONNECTIONS);
    LazyLock::force(&DB_POOL_SIZE);
    LazyLock::force(&HASHES_QUEUED);
    LazyLock::force(&HASHES_RUNNING);
    for delivery in ["smtp", "outbox"] {
        for outcome in ["sent", "failed"] {
            EMAILS.with_label_values(&[delivery, outcome]);
        }
    }
    LazyLock::force(&TOKENS_ISSUED);
}
