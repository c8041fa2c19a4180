//! Signed revocation lists: the ids of checked-in or revoked licenses, with a sequence
//! number that only grows, so that a client can tell it holds the latest list and refuse
//! an older one played back to it.

use serde::{Deserialize, Serialize};

use crate::{compact_jws, verified_payload, Keys, Reason, TYP_REVOCATIONS};

/// Lists are refused above this size before anything is decoded.
pub const MAX_REVOCATIONS_BYTES: usize = 16 * 1024 * 1024;

/// The claims of a revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationClaims {
    pub iss: String,
    /// Grows by one with every revocation.
    pub seq: u64,
    /// When it was signed, Unix seconds: a server time the client may trust.
    pub iat: u64,
    /// The revoked licenses' `jti`, sorted.
    pub revoked: Vec<String>,
}

/// A revocation list that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    pub claims: RevocationClaims,
}

impl Revocations {
    pub fn contains(&self, jti: &str) -> bool {
        self.claims
            .revoked
            .binary_search_by(|id| id.as_str().cmp(jti))
            .is_ok()
    }

    pub fn sequence(&self) -> u64 {
        self.claims.seq
    }
}

/// Verifies a revocation list (a compact JWS, as `GET /api/v1/revocations` answers it)
/// against `keys`.
/// `seen` is the highest sequence the client already holds: an older list is
/// [`Reason::StaleRevocations`].
pub fn verify_revocations(
    text: &str,
    keys: &Keys,
    issuer: Option<&str>,
    seen: Option<u64>,
) -> Result<Revocations, Reason> {
    let compact = compact_jws(text, MAX_REVOCATIONS_BYTES)?;
    let (_, payload) = verified_payload(compact, keys, TYP_REVOCATIONS)?;
    let mut claims: RevocationClaims =
        serde_json::from_slice(&payload).map_err(|_| Reason::Malformed)?;
    if issuer.is_some_and(|iss| iss != claims.iss) {
        return Err(Reason::WrongIssuer);
    }
    if seen.is_some_and(|seen| claims.seq < seen) {
        return Err(Reason::StaleRevocations);
    }
    claims.revoked.sort();
    Ok(Revocations { claims })
}
