//! Argon2id password hashing on blocking threads, bounded so hashes cannot exhaust memory.

use std::sync::Arc;

use anyhow::Context;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
    Algorithm, Argon2, Params, Version,
};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when an account has no password, so both paths cost the same.
    dummy_hash: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// The password is right but was hashed with other parameters: store a new hash.
    MatchNeedsRehash,
}

impl PasswordHasher {
    pub fn new(config: &PasswordConfig) -> anyhow::Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, "entitle timing equaliser")?;
        Ok(PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let params = self.params.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .context("hash task")?
    }

    /// Checks `password` against `stored`; with no stored hash, does the same work and fails.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verdict> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let params = self.params.clone();
        let password = password.to_owned();
        let (stored, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
            let matched = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(match (matched && real, needs_rehash(&parsed, &params)) {
                (false, _) => Verdict::Mismatch,
                (true, false) => Verdict::Match,
                (true, true) => Verdict::MatchNeedsRehash,
            })
        })
        .await
        .context("verify task")?
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    Ok(argon2
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        .to_string())
}

fn needs_rehash(stored: &PasswordHash<'_>, wanted: &Params) -> bool {
    if stored.algorithm.as_str() != "argon2id" || stored.version != Some(0x13) {
        return true;
    }
    match Params::try_from(stored) {
        Ok(params) => {
            params.m_cost() != wanted.m_cost()
                || params.t_cost() != wanted.t_cost()
                || params.p_cost() != wanted.p_cost()
        }
        Err(_) => true,
    }
}

/// Hashes with the given parameters on this thread: for the benchmark's bare hash rate.
pub fn hash_blocking(config: &PasswordConfig, password: &str) -> anyhow::Result<String> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    hash_with(&params, password)
}

/// Verifies on this thread with the stored hash's own parameters: the benchmark's baseline.
pub fn verify_blocking(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory_kib: u32) -> PasswordConfig {
        PasswordConfig {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 2,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_flag_old_parameters() {
        let old = PasswordHasher::new(&config(64)).expect("hasher");
        let hash = old.hash("correct horse battery").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            old.verify("correct horse battery", Some(&hash))
                .await
                .expect("verify"),
            Verdict::Match
        );
        assert_eq!(
            old.verify("wrong horse battery", Some(&hash))
                .await
                .expect("verify"),
            Verdict::Mismatch
        );
        let new = PasswordHasher::new(&config(128)).expect("hasher");
        assert_eq!(
            new.verify("correct horse battery", Some(&hash))
                .await
                .expect("verify"),
            Verdict::MatchNeedsRehash
        );
    }

    #[tokio::test]
    async fn missing_hash_never_matches() {
        let hasher = PasswordHasher::new(&config(64)).expect("hasher");
        assert_eq!(
            hasher
                .verify("entitle timing equaliser", None)
                .await
                .expect("verify"),
            Verdict::Mismatch
        );
    }
}
