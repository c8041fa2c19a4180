//! Signing keys: generated on first start, stored encrypted in the database, published
//! as a JWKS, rotated by `entitled keys rotate`.
//!
//! Signing uses ring directly with the parsed key pairs kept in memory (parsing an RSA
//! key for every token would cost more than the signature); verification goes through
//! `jsonwebtoken`, which checks the algorithm, the signature and the registered claims.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM},
    rand::{SecureRandom, SystemRandom},
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair},
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    db::{now_ms, Db, DbError, Executor},
    execute, on_db,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(raw: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == raw)
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::Rs256 => jsonwebtoken::Algorithm::RS256,
            Alg::Es256 => jsonwebtoken::Algorithm::ES256,
            Alg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    signer: Signer,
}

struct VerifyingKey {
    alg: Alg,
    key: jsonwebtoken::DecodingKey,
}

/// The keys one server process signs and verifies with, as last loaded.
pub struct KeySet {
    active: HashMap<Alg, Arc<SigningKey>>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: String,
}

/// Why a token was not accepted; the token endpoint and introspection say only "invalid".
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("signed by a key this server does not know")]
    UnknownKey,
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Encrypts private keys at rest and derives the refresh-token MAC key.
pub struct KeyEncryptionKey {
    aead: LessSafeKey,
    raw: [u8; 32],
}

impl KeyEncryptionKey {
    /// From config (base64) or, failing that, `<data_dir>/key-encryption.key`, created
    /// with owner-only permissions on first start.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<KeyEncryptionKey> {
        let raw: Vec<u8> = match configured {
            Some(value) => decode_key(value).context("oidc.key_encryption_key")?,
            None => {
                let path = data_dir.join("key-encryption.key");
                if !path.exists() {
                    std::fs::create_dir_all(data_dir)?;
                    let mut fresh = [0u8; 32];
                    SystemRandom::new()
                        .fill(&mut fresh)
                        .map_err(|_| anyhow::anyhow!("no randomness"))?;
                    publish_private_file(&path, &STANDARD.encode(fresh))?;
                }
                // Read back: another process starting at the same moment may have won.
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                decode_key(&text).with_context(|| format!("{}", path.display()))?
            }
        };
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| anyhow::anyhow!("the key-encryption key must be 32 bytes"))?;
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| anyhow::anyhow!("bad key"))?,
        );
        Ok(KeyEncryptionKey { aead, raw })
    }

    /// A key for another purpose, so one leaked derived key reveals nothing else.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Mac, SimpleHmac};
        let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(&self.raw)
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn seal(&self, kid: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut sealed = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        Ok([&nonce[..], &sealed].concat())
    }

    pub(crate) fn open(&self, kid: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > 12, "sealed key too short");
        let (nonce, body) = sealed.split_at(12);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("nonce"))?;
        let mut body = body.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
            .map_err(|_| {
                anyhow::anyhow!(
                    "signing key {kid} cannot be decrypted: this server's key-encryption key \
                     differs from the one that stored it (set oidc.key_encryption_key to the \
                     same value on every server)"
                )
            })?;
        Ok(plain.to_vec())
    }
}

fn decode_key(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| anyhow::anyhow!("not base64"))
}

/// Writes a file readable by its owner alone, whole or not at all: written aside, then
/// linked into place, so a process starting at the same moment sees either nothing or
/// the complete file, and the first to link wins.
fn publish_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let aside = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&aside)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(error).with_context(|| format!("creating {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A new key pair: its PKCS#8 private key and public JWK (without `kid`).
fn generate(alg: Alg) -> anyhow::Result<(Vec<u8>, Value)> {
    let rng = SystemRandom::new();
    let bad = |_| anyhow::anyhow!("key generation failed");
    Ok(match alg {
        Alg::Rs256 => {
            use rsa::{pkcs8::EncodePrivateKey, traits::PublicKeyParts};
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
            let der = key.to_pkcs8_der()?.as_bytes().to_vec();
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            (der, jwk)
        }
        Alg::Es256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(bad)?;
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                doc.as_ref(),
                &rng,
            )
            .map_err(|_| anyhow::anyhow!("bad key"))?;
            let point = pair.public_key().as_ref();
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            (doc.as_ref().to_vec(), jwk)
        }
        Alg::EdDsa => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(bad)?;
            let pair =
                Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| anyhow::anyhow!("bad key"))?;
            let jwk = json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            (doc.as_ref().to_vec(), jwk)
        }
    })
}

/// RFC 7638 thumbprint: the required members in lexicographic order, hashed.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let canonical = members
        .iter()
        .map(|m| format!("\"{m}\":{}", jwk[*m]))
        .collect::<Vec<_>>()
        .join(",");
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{canonical}}}")))
}

fn signer(alg: Alg, der: &[u8]) -> anyhow::Result<Signer> {
    let bad = |_| anyhow::anyhow!("stored {} key is unusable", alg.as_str());
    Ok(match alg {
        Alg::Rs256 => Signer::Rsa(RsaKeyPair::from_pkcs8(der).map_err(bad)?),
        Alg::Es256 => Signer::Ecdsa(
            EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(bad)?,
        ),
        Alg::EdDsa => Signer::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(bad)?),
    })
}

fn verifying_key(alg: Alg, jwk: &Value) -> anyhow::Result<jsonwebtoken::DecodingKey> {
    let member = |name: &str| {
        jwk[name]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("JWK lacks {name}"))
    };
    Ok(match alg {
        Alg::Rs256 => jsonwebtoken::DecodingKey::from_rsa_components(member("n")?, member("e")?)?,
        Alg::Es256 => jsonwebtoken::DecodingKey::from_ec_components(member("x")?, member("y")?)?,
        Alg::EdDsa => jsonwebtoken::DecodingKey::from_ed_components(member("x")?)?,
    })
}

impl SigningKey {
    /// A compact JWS of `claims` with this key; `typ` is `JWT` or `at+jwt`.
    pub fn sign(&self, typ: &str, claims: &impl serde::Serialize) -> anyhow::Result<String> {
        let header = json!({ "alg": self.alg.as_str(), "kid": self.kid, "typ": typ });
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let rng = SystemRandom::new();
        let failed = |_| anyhow::anyhow!("signing failed");
        let signature = match &self.signer {
            Signer::Rsa(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, jws.as_bytes(), &mut out)
                    .map_err(failed)?;
                out
            }
            Signer::Ecdsa(pair) => pair
                .sign(&rng, jws.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(jws.as_bytes()).as_ref().to_vec(),
        };
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jws)
    }
}

impl KeySet {
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    pub fn signing(&self, alg: Alg) -> anyhow::Result<Arc<SigningKey>> {
        self.active
            .get(&alg)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no active {} signing key", alg.as_str()))
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    /// Verifies signature, `iss`, `exp` (and `nbf`), and `aud` when one is given.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        check_expiry: bool,
    ) -> Result<T, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.verifying.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut validation = jsonwebtoken::Validation::new(key.alg.jsonwebtoken());
        validation.set_issuer(&[issuer]);
        validation.leeway = 30;
        validation.validate_exp = check_expiry;
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if !check_expiry {
            validation.required_spec_claims.remove("exp");
        }
        Ok(jsonwebtoken::decode::<T>(token, &key.key, &validation)?.claims)
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    sealed_private_key: Vec<u8>,
    retired_at: Option<i64>,
}

/// The keys as this process knows them, reloaded when another process may have rotated.
pub struct KeyRing {
    kek: KeyEncryptionKey,
    current: RwLock<Arc<KeySet>>,
    loaded_at: std::sync::atomic::AtomicI64,
}

/// Reload at most this often when a token names an unknown key.
const RELOAD_ON_UNKNOWN_KID_MS: i64 = 5_000;

impl KeyRing {
    /// Makes sure a key of every algorithm exists, then loads them.
    pub async fn open(db: &Db, kek: KeyEncryptionKey) -> anyhow::Result<KeyRing> {
        let missing = {
            let mut conn = db.reader().await?;
            missing_algs(&mut conn).await?
        };
        if !missing.is_empty() {
            // Servers started together on an empty database would each make their own
            // keys and refuse each other's tokens: whoever holds the lock first makes
            // them, and the others find them made.
            let mut tx = db.serialized(KEY_GENERATION_LOCK).await?;
            for alg in missing_algs(&mut tx).await? {
                insert_new_key(&mut tx, &kek, alg).await?;
            }
            tx.commit().await?;
        }
        let ring = KeyRing {
            current: RwLock::new(Arc::new(load(db, &kek).await?)),
            kek,
            loaded_at: now_ms().into(),
        };
        Ok(ring)
    }

    pub fn kek(&self) -> &KeyEncryptionKey {
        &self.kek
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub async fn reload(&self, db: &Db) -> anyhow::Result<()> {
        let fresh = Arc::new(load(db, &self.kek).await?);
        self.loaded_at
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// The key set that knows `kid`, reloading (rate limited) if this process does not.
    pub async fn for_kid(&self, db: &Db, kid: Option<&str>) -> Arc<KeySet> {
        let keys = self.current();
        let unknown = kid.is_some_and(|kid| !keys.knows(kid));
        let stale = now_ms() - self.loaded_at.load(std::sync::atomic::Ordering::Relaxed)
            > RELOAD_ON_UNKNOWN_KID_MS;
        if unknown && stale {
            if let Err(error) = self.reload(db).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "reloading signing keys failed"
                );
            }
            return self.current();
        }
        keys
    }
}

async fn insert_new_key(
    ex: &mut impl Executor,
    kek: &KeyEncryptionKey,
    alg: Alg,
) -> anyhow::Result<String> {
    let (der, mut jwk) = tokio::task::spawn_blocking(move || generate(alg)).await??;
    let kid = thumbprint(&jwk);
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    let sealed = kek.seal(&kid, &der)?;
    execute!(
        ex,
        "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private_key, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &kid,
        alg.as_str(),
        jwk.to_string(),
        &sealed,
        now_ms()
    )?;
    Ok(kid)
}

async fn load(db: &Db, kek: &KeyEncryptionKey) -> anyhow::Result<KeySet> {
    let mut conn = db.reader().await?;
    let rows: Vec<KeyRow> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT kid, alg, public_jwk, sealed_private_key, retired_at FROM signing_keys \
         WHERE retired_at IS NULL OR publish_until > $1 ORDER BY created_at"
    )
    .bind(now_ms())
    .fetch_all(c)
    .await)?;
    let mut active = HashMap::new();
    let mut verifying = HashMap::new();
    let mut published = Vec::new();
    for row in rows {
        let alg =
            Alg::parse(&row.alg).with_context(|| format!("key {} has alg {}", row.kid, row.alg))?;
        let jwk: Value = serde_json::from_str(&row.public_jwk)?;
        verifying.insert(
            row.kid.clone(),
            VerifyingKey {
                alg,
                key: verifying_key(alg, &jwk)?,
            },
        );
        if row.retired_at.is_none() {
            // Rows come oldest first, so the newest active key of each algorithm wins.
            let der = kek.open(&row.kid, &row.sealed_private_key)?;
            active.insert(
                alg,
                Arc::new(SigningKey {
                    kid: row.kid.clone(),
                    alg,
                    signer: signer(alg, &der)?,
                }),
            );
        }
        published.push(jwk);
    }
    Ok(KeySet {
        active,
        verifying,
        jwks: json!({ "keys": published }).to_string(),
    })
}

/// Retires every active key (still published for `retention_ms`) and adds new ones.
/// Returns the new key ids.
pub async fn rotate(
    db: &Db,
    kek: &KeyEncryptionKey,
    retention_ms: i64,
) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    execute!(
        &mut tx,
        "UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL",
        now,
        now + retention_ms
    )?;
    let mut kids = Vec::new();
    for alg in Alg::ALL {
        kids.push(insert_new_key(&mut tx, kek, alg).await?);
    }
    tx.commit().await?;
    Ok(kids)
}

/// The longest any token signed now can stay valid, so retired keys stay published that long.
pub async fn longest_token_lifetime_ms(
    db: &Db,
    config: &crate::config::OidcConfig,
) -> Result<i64, DbError> {
    let mut conn = db.reader().await?;
    let (longest_client,): (Option<i64>,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT MAX(access_token_ttl_secs) FROM oauth_clients"
    )
    .fetch_one(c)
    .await)?;
    let longest = longest_client
        .unwrap_or(0)
        .max(config.access_token_ttl_secs)
        .max(config.id_token_ttl_secs);
    // Plus the time other processes may keep signing with a key before they reload.
    Ok((longest + 2 * KEY_RELOAD_INTERVAL_SECS) * 1000)
}

#[derive(Debug, sqlx::FromRow)]
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// Every stored key, newest first, for `entitled keys list`.
pub async fn list(db: &Db) -> Result<Vec<KeySummary>, DbError> {
    let mut conn = db.reader().await?;
    on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT kid, alg, created_at, retired_at, publish_until FROM signing_keys ORDER BY created_at DESC"
    )
    .fetch_all(c)
    .await)
    .map_err(Into::into)
}

/// How often a serving process reloads keys, to pick up another process's rotation.
pub const KEY_RELOAD_INTERVAL_SECS: i64 = 60;

/// The row whose lock makes first-start key generation happen once per database.
const KEY_GENERATION_LOCK: &str = "signing_key_generation";

/// The algorithms without a current key.
async fn missing_algs(ex: &mut impl Executor) -> Result<Vec<Alg>, DbError> {
    let present: Vec<(String,)> = on_db!(ex, |c| sqlx::query_as(
        "SELECT DISTINCT alg FROM signing_keys WHERE retired_at IS NULL"
    )
    .fetch_all(c)
    .await)?;
    Ok(Alg::ALL
        .into_iter()
        .filter(|a| !present.iter().any(|(p,)| p == a.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies() {
        for alg in Alg::ALL {
            let (der, mut jwk) = generate(alg).expect("generates");
            jwk["kid"] = json!("k1");
            let key = SigningKey {
                kid: "k1".into(),
                alg,
                signer: signer(alg, &der).expect("parses"),
            };
            let set = KeySet {
                active: HashMap::new(),
                verifying: HashMap::from([(
                    "k1".to_owned(),
                    VerifyingKey {
                        alg,
                        key: verifying_key(alg, &jwk).expect("jwk"),
                    },
                )]),
                jwks: String::new(),
            };
            let exp = now_ms() / 1000 + 60;
            let token = key
                .sign("JWT", &json!({"iss": "https://i", "sub": "s", "exp": exp}))
                .expect("signs");
            let claims: Value = set
                .verify(&token, "https://i", None, true)
                .expect("verifies");
            assert_eq!(claims["sub"], "s");
            assert!(set
                .verify::<Value>(&token, "https://other", None, true)
                .is_err());
            let mut tampered = token.clone();
            tampered.insert(token.find('.').expect("dot") + 2, 'x');
            assert!(set
                .verify::<Value>(&tampered, "https://i", None, true)
                .is_err());
        }
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kek = KeyEncryptionKey::load(None, dir.path()).expect("creates");
        let again = KeyEncryptionKey::load(None, dir.path()).expect("reads");
        let sealed = kek.seal("kid", b"secret").expect("seals");
        assert_eq!(again.open("kid", &sealed).expect("opens"), b"secret");
        assert!(again.open("other", &sealed).is_err());
        let other = KeyEncryptionKey::load(Some(&STANDARD.encode([7u8; 32])), dir.path())
            .expect("configured");
        assert!(other.open("kid", &sealed).is_err());
        assert!(KeyEncryptionKey::load(Some("c2hvcnQ="), dir.path()).is_err());
    }
}
