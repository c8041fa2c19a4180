//! What every handler shares: configuration, database, hasher, mailer and the
//! server-wide secret, all behind one cheap-to-clone handle.

use std::{net::SocketAddr, ops::Deref, sync::Arc};

use anyhow::Context;
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use rand::RngCore;

use crate::{
    config::Config,
    db::{now_ms, Db, Tx},
    identity::{
        hooks::{AccountHooks, HookFuture},
        password::PasswordHasher,
        store::AccountRow,
    },
    mail::Mailer,
    oidc::{keys::KeyEncryptionKey, KeyRing, Provider},
    on_db,
};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub mailer: Mailer,
    /// Keys CSRF tokens; kept in the database so every server process agrees.
    pub csrf_key: [u8; 32],
    pub oidc: Provider,
    /// The keys that sign license files, leases and revocation lists.
    pub licensing: crate::entitlements::keys::LicenseKeys,
    /// Applies lease acquires and heartbeats, those arriving together in one transaction.
    pub leases: crate::entitlements::lease_writer::LeaseWriter,
    /// Where domain claims are looked up.
    pub dns: crate::orgs::domains::Dns,
    /// What the domains above identity do when an account changes.
    pub hooks: AccountHooks,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Connects, migrates and loads the server secret: everything `serve` needs. Without
    /// a `public_url`, links use the one a serving process recorded, if any.
    pub async fn open(mut config: Config) -> anyhow::Result<AppState> {
        let db = Db::connect(config.database_url.as_deref(), &config.data_dir)
            .await
            .context("opening the database")?;
        db.migrate().await.context("running migrations")?;
        if config.public_url.is_none() {
            let mut conn = db.reader().await?;
            config.public_url = setting(&mut conn, PUBLIC_URL_SETTING).await?;
        }
        let csrf_key = load_or_create_secret(&db, "csrf_key").await?;
        let kek =
            KeyEncryptionKey::load(config.oidc.key_encryption_key.as_deref(), &config.data_dir)?;
        let licensing = crate::entitlements::keys::LicenseKeys::open(&db, &kek)
            .await
            .context("loading license keys")?;
        let keys = KeyRing::open(&db, kek)
            .await
            .context("loading signing keys")?;
        {
            let mut conn = db.writer().await?;
            crate::oidc::clients::ensure_built_in(&mut conn, &config.oidc).await?;
        }
        let oidc = Provider::new(&config, keys, &db);
        let leases = crate::entitlements::lease_writer::LeaseWriter::start(
            db.clone(),
            crate::entitlements::lease_writer::Terms {
                heartbeat_secs: config.licensing.heartbeat_secs,
                grace_secs: config.licensing.lease_grace_secs,
            },
        );
        Ok(AppState(Arc::new(Shared {
            oidc,
            licensing,
            leases,
            hasher: PasswordHasher::new(&config.password)?,
            mailer: Mailer::from_config(&config)?,
            dns: crate::orgs::domains::Dns::from_config(&config.domains),
            hooks: account_hooks(),
            config,
            db,
            csrf_key,
        })))
    }

    /// Records where this server is reached, for the commands run beside it.
    pub async fn record_public_url(&self) -> anyhow::Result<()> {
        let mut conn = self.db.writer().await?;
        crate::execute!(
            &mut conn,
            "INSERT INTO server_settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3",
            PUBLIC_URL_SETTING,
            self.config.public_base(),
            now_ms()
        )?;
        Ok(())
    }

    pub fn secure_cookies(&self) -> bool {
        self.config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

const PUBLIC_URL_SETTING: &str = "public_url";

async fn setting(
    ex: &mut impl crate::db::Executor,
    name: &str,
) -> Result<Option<String>, crate::db::DbError> {
    Ok(on_db!(ex, |c| sqlx::query_scalar(
        "SELECT value FROM server_settings WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(c)
    .await)?)
}

/// Identity tells the domains above it of account changes through these.
fn account_hooks() -> AccountHooks {
    fn end_client_grants<'a>(tx: &'a mut Tx, account: &'a AccountRow, now: i64) -> HookFuture<'a> {
        Box::pin(async move {
            crate::oidc::store::revoke_grants_of(tx, account.id, now).await?;
            Ok(())
        })
    }
    fn rekey_memberships<'a>(tx: &'a mut Tx, account: &'a AccountRow, _: i64) -> HookFuture<'a> {
        Box::pin(crate::orgs::store::rekey_member(tx, account))
    }
    AccountHooks {
        signed_out_everywhere: vec![end_client_grants],
        details_changed: vec![rekey_memberships],
    }
}

async fn load_or_create_secret(db: &Db, name: &str) -> anyhow::Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let mut tx = db.begin().await?;
    // Insert-if-absent then read back, so racing processes end up with the same secret.
    on_db!(&mut tx, |c| {
        sqlx::query(
        "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
    )
    .bind(name)
    .bind(&fresh[..])
    .bind(now_ms())
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    let (value,): (Vec<u8>,) = on_db!(&mut tx, |c| sqlx::query_as(
        "SELECT value FROM server_secrets WHERE name = $1"
    )
    .bind(name)
    .fetch_one(c)
    .await)?;
    tx.commit().await?;
    value
        .try_into()
        .map_err(|_| anyhow::anyhow!("server secret {name} has the wrong length"))
}

/// Where a request came from, for throttling and the audit trail.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: String,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
        let ip = forwarded.unwrap_or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned())
        });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(Client { ip, user_agent })
    }
}
