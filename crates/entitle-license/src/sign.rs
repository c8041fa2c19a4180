//! Signing, for the server (feature `sign`): the one place that writes the format this
//! crate reads.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::Signer;
pub use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{
    revocations::RevocationClaims, Claims, Kind, BEGIN, END, TYP_LEASE, TYP_LICENSE,
    TYP_REVOCATIONS,
};

/// A compact JWS of `payload`, signed EdDSA by `key` under `kid`.
fn jws(typ: &str, kid: &str, payload: &impl Serialize, key: &SigningKey) -> String {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": typ, "kid": kid });
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let payload = serde_json::to_value(payload).unwrap_or_default();
    let signed = format!("{}.{}", encode(&header), encode(&payload));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A license file or lease: the armored JWS of `claims`, 64 characters a line.
pub fn sign_license(claims: &Claims, kid: &str, key: &SigningKey) -> String {
    let typ = match claims.kind {
        Kind::Reserved => TYP_LICENSE,
        Kind::Lease => TYP_LEASE,
    };
    let compact = jws(typ, kid, claims, key);
    let mut text = String::with_capacity(compact.len() + compact.len() / 64 + 80);
    text.push_str(BEGIN);
    text.push('\n');
    for line in compact.as_bytes().chunks(64) {
        // The compact serialization is ASCII: every chunk is text.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    text
}

/// A revocation list: the compact JWS of `claims`.
pub fn sign_revocations(claims: &RevocationClaims, kid: &str, key: &SigningKey) -> String {
    jws(TYP_REVOCATIONS, kid, claims, key)
}
