//! Argon2id password hashing on a small pool of dedicated threads.
//!
//! One thread per core, each reusing its own Argon2 memory: hashes never run more at
//! once than there are cores (more would only thrash the caches of a memory-hard
//! function), and the server's memory stays at threads × `memory_kib` however many
//! sign-ins arrive together.

use std::sync::{mpsc, Arc, Mutex};

use anyhow::Context;
use argon2::{
    password_hash::{PasswordHash, PasswordVerifier as _},
    Algorithm, Argon2, Block, Params, Version,
};
use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::{config::PasswordConfig, metrics::HashJob};

const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
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

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<anyhow::Result<String>>,
        counted: HashJob,
    },
    Verify {
        password: String,
        stored: String,
        reply: oneshot::Sender<anyhow::Result<bool>>,
        counted: HashJob,
    },
}

impl PasswordHasher {
    pub fn new(config: &PasswordConfig) -> anyhow::Result<Self> {
        let params = params_of(config)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..config.max_concurrent_hashes {
            let queue = queue.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&queue, &params))
                .context("starting a hashing thread")?;
        }
        let dummy_hash = hash_with(&params, &mut Vec::new(), "entitle timing equaliser")?;
        Ok(PasswordHasher {
            params,
            jobs,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Hash {
                password: password.to_owned(),
                reply,
                counted: HashJob::queued(),
            })
            .map_err(|_| anyhow::anyhow!("hashing threads stopped"))?;
        answer.await.context("hashing thread dropped the job")?
    }

    /// Checks `password` against `stored`; with no stored hash, does the same work and fails.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verdict> {
        let (target, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let rehash = needs_rehash(&target, &self.params);
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Verify {
                password: password.to_owned(),
                stored: target,
                reply,
                counted: HashJob::queued(),
            })
            .map_err(|_| anyhow::anyhow!("hashing threads stopped"))?;
        let matched = answer.await.context("hashing thread dropped the job")?? && real;
        Ok(match (matched, rehash) {
            (false, _) => Verdict::Mismatch,
            (true, false) => Verdict::Match,
            (true, true) => Verdict::MatchNeedsRehash,
        })
    }
}

fn worker(queue: &Mutex<mpsc::Receiver<Job>>, params: &Params) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash {
                password,
                reply,
                mut counted,
            }) => {
                counted.start();
                let _ = reply.send(hash_with(params, &mut memory, &password));
            }
            Ok(Job::Verify {
                password,
                stored,
                reply,
                mut counted,
            }) => {
                counted.start();
                let _ = reply.send(verify_with(&mut memory, &password, &stored));
            }
            Err(_) => return,
        }
    }
}

fn params_of(config: &PasswordConfig) -> anyhow::Result<Params> {
    Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        Some(OUTPUT_BYTES),
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))
}

fn blocks<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for the password.
fn hash_with(params: &Params, memory: &mut Vec<Block>, password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut output = [0u8; OUTPUT_BYTES];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut output,
            blocks(memory, params),
        )
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(output)
    ))
}

fn verify_with(memory: &mut Vec<Block>, password: &str, stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored)
        .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm)
        .map_err(|e| anyhow::anyhow!("stored hash algorithm: {e}"))?;
    let version = Version::try_from(parsed.version.unwrap_or(0x13))
        .map_err(|e| anyhow::anyhow!("stored hash version: {e}"))?;
    let params =
        Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash parameters: {e}"))?;
    let salt = parsed.salt.context("stored hash has no salt")?;
    let mut salt_buffer = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buffer)
        .map_err(|e| anyhow::anyhow!("stored hash salt: {e}"))?;
    let expected = parsed.hash.context("stored hash has no output")?;
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut output,
            blocks(memory, &params),
        )
        .map_err(|e| anyhow::anyhow!("verifying: {e}"))?;
    Ok(output.ct_eq(expected.as_bytes()).into())
}

fn needs_rehash(stored: &str, wanted: &Params) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(params) => {
            params.m_cost() != wanted.m_cost()
                || params.t_cost() != wanted.t_cost()
                || params.p_cost() != wanted.p_cost()
        }
        Err(_) => true,
    }
}

/// Hashes with the given parameters on this thread (benchmarks, fixtures).
pub fn hash_blocking(config: &PasswordConfig, password: &str) -> anyhow::Result<String> {
    hash_with(&params_of(config)?, &mut Vec::new(), password)
}

/// Verifies on this thread reusing `memory` between calls, as the hashing threads do:
/// the fastest this machine verifies a hash, the benchmark's strict baseline.
pub fn verify_reusing(memory: &mut Vec<Block>, password: &str, stored: &str) -> bool {
    verify_with(memory, password, stored).unwrap_or(false)
}

/// Verifies on this thread with the argon2 crate's own verifier: the benchmark's
/// baseline, and an independent check that our hashes are standard PHC strings.
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
        assert!(
            verify_blocking("correct horse battery", &hash),
            "a standard PHC string"
        );
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
    async fn hashes_from_the_argon2_crate_verify_too() {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let params = Params::new(32, 1, 1, None).expect("params");
        let foreign = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery", &salt)
            .expect("hash")
            .to_string();
        let hasher = PasswordHasher::new(&config(32)).expect("hasher");
        assert_eq!(
            hasher
                .verify("correct horse battery", Some(&foreign))
                .await
                .expect("verify"),
            Verdict::Match
        );
    }

    #[tokio::test]
    async fn missing_or_malformed_hashes_never_match() {
        let hasher = PasswordHasher::new(&config(64)).expect("hasher");
        assert_eq!(
            hasher
                .verify("entitle timing equaliser", None)
                .await
                .expect("verify"),
            Verdict::Mismatch
        );
        assert!(hasher
            .verify("x", Some("$argon2id$nonsense"))
            .await
            .is_err());
    }
}
