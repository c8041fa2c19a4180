//! Verifies entitle license files and leases, as a vendor's application embeds it.
//!
//! A license is a JWS in compact serialization (RFC 7515), signed with Ed25519 (`alg`
//! `EdDSA`, RFC 8037) by one of the server's license keys, between
//! `-----BEGIN ENTITLE LICENSE-----` and `-----END ENTITLE LICENSE-----` lines. The format
//! is written in `docs/license-format.md`; any JOSE library can check a file. This crate
//! does no I/O and needs no async runtime: the application gives it the file's text, the
//! keys (the JWKS published at `/.well-known/entitle/license-keys`, cached however it
//! likes), the time, and what it expects, and gets a typed [`License`] or a [`Reason`].
//!
//! ```
//! use entitle_license::{Expectations, Keys, Reason};
//! let keys = Keys::from_jwks(r#"{"keys": []}"#).unwrap();
//! let refused = entitle_license::verify("not a license", &keys, 0, &Expectations::product("civil"));
//! assert_eq!(refused.unwrap_err(), Reason::Malformed);
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

mod clock;
mod revocations;
#[cfg(feature = "sign")]
mod sign;

pub use clock::Clock;
pub use revocations::{verify_revocations, RevocationClaims, Revocations};
#[cfg(feature = "sign")]
pub use sign::{sign_license, sign_revocations, SigningKey};

/// The first line of a license file.
pub const BEGIN: &str = "-----BEGIN ENTITLE LICENSE-----";
/// The last line of a license file.
pub const END: &str = "-----END ENTITLE LICENSE-----";
/// The JWS `typ` of a reserved license file.
pub const TYP_LICENSE: &str = "entitle-license+jwt";
/// The JWS `typ` of an online lease.
pub const TYP_LEASE: &str = "entitle-lease+jwt";
/// The JWS `typ` of a revocation list.
pub const TYP_REVOCATIONS: &str = "entitle-revocations+jwt";
/// Longer files are refused before anything is decoded.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// How far the claims' times may be from the application's clock (seconds): clocks of
/// machines drift, and a file issued a moment ago must not be "not yet valid".
pub const LEEWAY_SECS: u64 = 300;

/// Why a license (or revocation list) is refused. The server answers with the same
/// codes ([`Reason::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Not an armored JWS with the claims of a license: truncated, edited, re-armored,
    /// not JSON, a claim missing or of the wrong type.
    Malformed,
    /// The header names another algorithm than `EdDSA` (`none`, `HS256`, …), or
    /// critical extensions this verifier does not know.
    UnsupportedAlgorithm,
    /// Signed by a key that is not among the keys given (or without a `kid`).
    UnknownKey,
    /// The signature does not match the content.
    BadSignature,
    /// A file of another kind (a lease where a license file was expected, say).
    WrongKind,
    /// Issued by another server than the one expected.
    WrongIssuer,
    /// Past its expiry.
    Expired,
    /// Not valid before a time still to come.
    NotYetValid,
    /// For another machine.
    WrongMachine,
    /// For another product.
    WrongProduct,
    /// For another version of the product.
    WrongVersion,
    /// Checked in or revoked: its id is on the revocation list.
    Revoked,
    /// The clock is earlier than a time this machine has already trusted: it was set back.
    ClockRolledBack,
    /// A revocation list older than one already seen.
    StaleRevocations,
    /// A lease that does not carry the nonce the client sent with its request: an
    /// answer captured earlier and played back.
    Replayed,
}

impl Reason {
    /// The stable code, as the API and the `entitle` client print it.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::WrongKind => "wrong_kind",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongMachine => "wrong_machine",
            Reason::WrongProduct => "wrong_product",
            Reason::WrongVersion => "wrong_version",
            Reason::Revoked => "revoked",
            Reason::ClockRolledBack => "clock_rolled_back",
            Reason::StaleRevocations => "stale_revocations",
            Reason::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Malformed => {
                "the file is not a readable entitle license (truncated or edited?)"
            }
            Reason::UnsupportedAlgorithm => "the file is signed with an algorithm other than EdDSA",
            Reason::UnknownKey => "the file is signed by a key this server has not published",
            Reason::BadSignature => {
                "the signature does not match: the file was changed after signing"
            }
            Reason::WrongKind => "this is not the kind of file expected here",
            Reason::WrongIssuer => "the file was issued by another server",
            Reason::Expired => "the license has expired",
            Reason::NotYetValid => "the license is not valid yet",
            Reason::WrongMachine => "the license is for another machine",
            Reason::WrongProduct => "the license is for another product",
            Reason::WrongVersion => "the license is for another version",
            Reason::Revoked => "the license was checked in or revoked",
            Reason::ClockRolledBack => {
                "this machine's clock was set back past a time it had already seen"
            }
            Reason::StaleRevocations => "the revocation list is older than one already seen",
            Reason::Replayed => {
                "the answer does not carry this request's nonce: it may be a replay"
            }
        })
    }
}

impl std::error::Error for Reason {}

/// What a file is: a reserved license (checked out by an administrator, used offline
/// until it expires) or an online lease (renewed by heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Reserved,
    Lease,
}

/// The claims of a license or a lease (`docs/license-format.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The issuing server (its public URL).
    pub iss: String,
    /// The person it is for: their account id.
    pub sub: String,
    /// The checkout's or lease's id: what revocation lists name.
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid before, Unix seconds; `iat` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry, Unix seconds: a checkout's end, or a lease's offline grace.
    pub exp: u64,
    pub kind: Kind,
    /// The person's email address, for display.
    pub email: String,
    /// The paying organization: its id and name.
    pub org: String,
    pub org_name: String,
    /// The product's code.
    pub product: String,
    /// The version it is for: exact, `*` for any, or a prefix ending in `.*` (`24.*`).
    pub version: String,
    /// The machine's id, and its name for display.
    pub machine: String,
    pub machine_name: String,
    /// The server's clock when it signed, Unix seconds: a time the application may trust.
    pub server_time: u64,
    /// A lease's heartbeat interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u64>,
    /// For a lease: the nonce the client sent, so that a captured answer cannot be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A license that verified: its claims and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub claims: Claims,
    pub kid: String,
}

/// What the application expects of a license: the product it is, and optionally the
/// version it runs, the machine it runs on, the server it trusts, the kind of file, the
/// nonce it sent and the revocations it knows.
#[derive(Debug, Clone, Default)]
pub struct Expectations<'a> {
    pub product: &'a str,
    pub version: Option<&'a str>,
    pub machine: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub kind: Option<Kind>,
    pub nonce: Option<&'a str>,
    pub revocations: Option<&'a Revocations>,
}

impl<'a> Expectations<'a> {
    /// Expects `product`, and nothing else yet.
    pub fn product(product: &'a str) -> Self {
        Expectations {
            product,
            ..Expectations::default()
        }
    }
}

/// The public keys licenses are checked against, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

impl Keys {
    /// The Ed25519 keys of a JWKS (`{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": …,
    /// "kid": …}]}`); keys of other types are skipped. [`Reason::Malformed`] when the
    /// document is not a JWKS or an Ed25519 key in it is not one.
    pub fn from_jwks(json: &str) -> Result<Keys, Reason> {
        let jwks: Jwks = serde_json::from_str(json).map_err(|_| Reason::Malformed)?;
        let mut keys = Keys::default();
        for jwk in jwks.keys {
            if jwk.get("kty").and_then(|v| v.as_str()) != Some("OKP")
                || jwk.get("crv").and_then(|v| v.as_str()) != Some("Ed25519")
            {
                continue;
            }
            let kid = jwk.get("kid").and_then(|v| v.as_str());
            let x = jwk.get("x").and_then(|v| v.as_str());
            let (Some(kid), Some(x)) = (kid, x) else {
                return Err(Reason::Malformed);
            };
            let bytes: [u8; 32] = URL_SAFE_NO_PAD
                .decode(x)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(Reason::Malformed)?;
            keys.insert(kid, &bytes)?;
        }
        Ok(keys)
    }

    /// Adds a key: the 32 bytes of an Ed25519 public key.
    pub fn insert(&mut self, kid: &str, public_key: &[u8; 32]) -> Result<(), Reason> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| Reason::Malformed)?;
        self.keys.retain(|(k, _)| k != kid);
        self.keys.push((kid.to_owned(), key));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A JWS whose signature checked out: its `typ`, `kid` and payload.
struct Verified {
    typ: Option<String>,
    kid: String,
    payload: Vec<u8>,
}

/// The JWS between the armor lines, without whitespace. Text around the armor is
/// ignored; it is never trusted.
pub fn unarmor(text: &str) -> Result<String, Reason> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Reason::Malformed);
    }
    let start = text.find(BEGIN).ok_or(Reason::Malformed)? + BEGIN.len();
    let length = text[start..].find(END).ok_or(Reason::Malformed)?;
    let body: String = text[start..start + length]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Reason::Malformed);
    }
    Ok(body)
}

/// A compact JWS of at most `max` bytes.
pub(crate) fn compact_jws(text: &str, max: usize) -> Result<&str, Reason> {
    let compact = text.trim();
    if compact.is_empty()
        || compact.len() > max
        || !compact
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Reason::Malformed);
    }
    Ok(compact)
}

/// Checks a compact JWS: three parts, an `EdDSA` header with a known `kid`, and the
/// signature over the first two parts as they are.
fn verify_jws(compact: &str, keys: &Keys) -> Result<Verified, Reason> {
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| Reason::Malformed);
    let header: Header =
        serde_json::from_slice(&decode(header_b64)?).map_err(|_| Reason::Malformed)?;
    if header.alg != "EdDSA" || header.crit.is_some() {
        return Err(Reason::UnsupportedAlgorithm);
    }
    let kid = header.kid.ok_or(Reason::UnknownKey)?;
    let key = keys.get(&kid).ok_or(Reason::UnknownKey)?;
    let signature: [u8; 64] = decode(signature_b64)?
        .try_into()
        .map_err(|_| Reason::BadSignature)?;
    let signed = &compact[..header_b64.len() + 1 + payload_b64.len()];
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| Reason::BadSignature)?;
    Ok(Verified {
        typ: header.typ,
        kid,
        payload: decode(payload_b64)?,
    })
}

/// Whether a license for `licensed` covers `running`: the same version, `*`, or a
/// prefix ending in `.*` (`24.*` covers `24.1` and `24.1.3`, not `240.1`).
pub fn version_covers(licensed: &str, running: &str) -> bool {
    match licensed.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with('.') => running.starts_with(prefix),
        _ => licensed == running,
    }
}

/// Reads a license's claims *without* checking anything: for showing what a file says
/// before (or after) verifying it. Never use the result to decide whether to run.
pub fn read_unverified(text: &str) -> Result<Claims, Reason> {
    let compact = unarmor(text)?;
    let payload = compact.split('.').nth(1).ok_or(Reason::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Reason::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Reason::Malformed)
}

/// Verifies an armored license or lease at `now` (Unix seconds): the signature against
/// `keys`, the times (with [`LEEWAY_SECS`]), and what `expect` names. The first failure
/// is the reason; a file that passes is returned with its claims.
pub fn verify(
    text: &str,
    keys: &Keys,
    now: u64,
    expect: &Expectations<'_>,
) -> Result<License, Reason> {
    let compact = unarmor(text)?;
    let verified = verify_jws(&compact, keys)?;
    let claims: Claims =
        serde_json::from_slice(&verified.payload).map_err(|_| Reason::Malformed)?;
    let typ = match claims.kind {
        Kind::Reserved => TYP_LICENSE,
        Kind::Lease => TYP_LEASE,
    };
    if verified.typ.as_deref() != Some(typ) {
        return Err(Reason::WrongKind);
    }
    if expect.kind.is_some_and(|kind| kind != claims.kind) {
        return Err(Reason::WrongKind);
    }
    if expect.issuer.is_some_and(|iss| iss != claims.iss) {
        return Err(Reason::WrongIssuer);
    }
    if now >= claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(Reason::Expired);
    }
    if now.saturating_add(LEEWAY_SECS) < claims.nbf.unwrap_or(claims.iat) {
        return Err(Reason::NotYetValid);
    }
    if claims.product != expect.product {
        return Err(Reason::WrongProduct);
    }
    if expect
        .version
        .is_some_and(|running| !version_covers(&claims.version, running))
    {
        return Err(Reason::WrongVersion);
    }
    if expect
        .machine
        .is_some_and(|machine| machine != claims.machine)
    {
        return Err(Reason::WrongMachine);
    }
    if expect.nonce.is_some() && expect.nonce != claims.nonce.as_deref() {
        return Err(Reason::Replayed);
    }
    if expect
        .revocations
        .is_some_and(|revoked| revoked.contains(&claims.jti))
    {
        return Err(Reason::Revoked);
    }
    Ok(License {
        claims,
        kid: verified.kid,
    })
}

/// The signature check shared with revocation lists.
pub(crate) fn verified_payload(
    compact: &str,
    keys: &Keys,
    typ: &str,
) -> Result<(String, Vec<u8>), Reason> {
    let verified = verify_jws(compact, keys)?;
    if verified.typ.as_deref() != Some(typ) {
        return Err(Reason::WrongKind);
    }
    Ok((verified.kid, verified.payload))
}
