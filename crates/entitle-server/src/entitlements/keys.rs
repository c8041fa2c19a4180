//! License signing keys: Ed25519, separate from the OpenID Connect keys, sealed at rest
//! under the same key-encryption key, published as a JWKS at
//! `/.well-known/entitle/license-keys` and rotated with `entitled keys rotate --license`.
//! A retired key stays published for a year and a day: license files live up to a year.

use std::sync::{Arc, RwLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use entitle_license::SigningKey;
use rand::RngCore;
use serde_json::{json, Value};

use crate::{
    app::AppState,
    audit::{self, Actor, Entry},
    db::{now_ms, Db, DbError, Executor},
    execute,
    oidc::keys::{thumbprint, KeyEncryptionKey},
    on_db,
};

/// How long a retired license key stays published: the longest a file it signed lives.
pub const RETIRED_KEY_PUBLISHED_MS: i64 = 366 * 86_400_000;
/// The row whose lock makes first-start key generation happen once per database.
const GENERATION_LOCK: &str = "license_key_generation";

/// The current signing key and the published JWKS, as this process knows them.
pub struct LicenseKeySet {
    pub kid: String,
    pub signing: SigningKey,
    /// Every key still published, active or retired.
    pub jwks: String,
}

/// The license keys of a serving process, reloaded with the OIDC keys so that another
/// process's rotation is picked up.
pub struct LicenseKeys {
    current: RwLock<Arc<LicenseKeySet>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    public_jwk: String,
    sealed_private_key: Vec<u8>,
    retired_at: Option<i64>,
}

impl LicenseKeys {
    /// Makes sure an active key exists (once, whichever process starts first), then loads.
    pub async fn open(db: &Db, kek: &KeyEncryptionKey) -> anyhow::Result<LicenseKeys> {
        let active = {
            let mut conn = db.reader().await?;
            has_active_key(&mut conn).await?
        };
        if !active {
            let mut tx = db.serialized(GENERATION_LOCK).await?;
            if !has_active_key(&mut tx).await? {
                insert_new_key(&mut tx, kek).await?;
            }
            tx.commit().await?;
        }
        Ok(LicenseKeys {
            current: RwLock::new(Arc::new(load(db, kek).await?)),
        })
    }

    pub fn current(&self) -> Arc<LicenseKeySet> {
        self.current
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub async fn reload(&self, db: &Db, kek: &KeyEncryptionKey) -> anyhow::Result<()> {
        let fresh = Arc::new(load(db, kek).await?);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

async fn has_active_key(ex: &mut impl Executor) -> Result<bool, DbError> {
    let row: Option<(String,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT kid FROM license_keys WHERE retired_at IS NULL LIMIT 1"
    )
    .fetch_optional(c)
    .await)?;
    Ok(row.is_some())
}

/// The public JWK of an Ed25519 key, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(key: &SigningKey) -> (String, Value) {
    let mut jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    });
    let kid = thumbprint(&jwk);
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("EdDSA");
    jwk["use"] = json!("sig");
    (kid, jwk)
}

async fn insert_new_key(ex: &mut impl Executor, kek: &KeyEncryptionKey) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let (kid, jwk) = public_jwk(&key);
    let sealed = kek.seal(&kid, &seed)?;
    execute!(
        ex,
        "INSERT INTO license_keys (kid, public_jwk, sealed_private_key, created_at) \
         VALUES ($1, $2, $3, $4)",
        &kid,
        jwk.to_string(),
        &sealed,
        now_ms()
    )?;
    Ok(kid)
}

async fn load(db: &Db, kek: &KeyEncryptionKey) -> anyhow::Result<LicenseKeySet> {
    let mut conn = db.reader().await?;
    let rows: Vec<KeyRow> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT kid, public_jwk, sealed_private_key, retired_at FROM license_keys \
         WHERE retired_at IS NULL OR publish_until > $1 ORDER BY created_at"
    )
    .bind(now_ms())
    .fetch_all(c)
    .await)?;
    let mut active = None;
    let mut published = Vec::with_capacity(rows.len());
    for row in rows {
        published.push(serde_json::from_str::<Value>(&row.public_jwk)?);
        if row.retired_at.is_none() {
            // Oldest first: the newest active key wins.
            let seed: [u8; 32] = kek
                .open(&row.kid, &row.sealed_private_key)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("license key {} is not 32 bytes", row.kid))?;
            active = Some((row.kid, SigningKey::from_bytes(&seed)));
        }
    }
    let (kid, signing) = active.ok_or_else(|| anyhow::anyhow!("no active license key"))?;
    Ok(LicenseKeySet {
        kid,
        signing,
        jwks: json!({ "keys": published }).to_string(),
    })
}

/// Retires the active license key (published for a year and a day more) and makes a new
/// one, audited; returns its id. This process signs with it at once; others within a
/// minute, when they reload.
pub async fn rotate(state: &AppState, actor: &Actor) -> anyhow::Result<String> {
    let now = now_ms();
    let kek = state.oidc.keys.kek();
    let mut tx = state.db.begin().await?;
    execute!(
        &mut tx,
        "UPDATE license_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL",
        now,
        now + RETIRED_KEY_PUBLISHED_MS
    )?;
    let kid = insert_new_key(&mut tx, kek).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "license.keys_rotated",
            target_type: "license_key",
            target_id: None,
            target_label: Some(&kid),
            org_id: None,
            details: json!({ "new": kid }),
        },
    )
    .await?;
    tx.commit().await?;
    state.licensing.reload(&state.db, kek).await?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint_of_the_public_key() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let (kid, jwk) = public_jwk(&key);
        assert_eq!(jwk["kid"], kid.as_str());
        let keys = entitle_license::Keys::from_jwks(&json!({ "keys": [jwk] }).to_string())
            .expect("a JWKS entitle-license reads");
        assert!(!keys.is_empty());
        // The same key always gets the same id; another key another.
        assert_eq!(public_jwk(&SigningKey::from_bytes(&[1u8; 32])).0, kid);
        assert_ne!(public_jwk(&SigningKey::from_bytes(&[2u8; 32])).0, kid);
    }
}
