//! The checked-in test vectors (`tests/vectors/`): license files, good and hostile, each
//! with the outcome every verifier must reach. They are made from a fixed key, so they
//! are the same on every run (Ed25519 signatures are deterministic); a test checks that
//! the files on disk are exactly what the format produces, and
//! `ENTITLE_REGENERATE_VECTORS=1 cargo test -p entitle-license` writes them again.

use std::{fs, path::PathBuf};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use entitle_license::{
    read_unverified, sign_license, sign_revocations, verify, verify_revocations, Claims,
    Expectations, Keys, Kind, Reason, RevocationClaims, SigningKey, BEGIN, END,
};
use hmac_free::hs256;
use serde_json::{json, Value};

/// The vectors' key: never used for anything else.
const SEED: [u8; 32] = *b"entitle-license test vectors 001";
const KID: &str = "license-test-1";
const ISSUER: &str = "https://licenses.vendor.example";
/// The time the vectors are checked at: 2026-12-05T00:00:00Z.
const NOW: u64 = 1_796_428_800;
const DAY: u64 = 86_400;

fn key() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

fn jwks() -> String {
    let x = URL_SAFE_NO_PAD.encode(key().verifying_key().to_bytes());
    json!({"keys": [
        {"kty": "RSA", "kid": "oidc-rsa", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": KID, "x": x},
    ]})
    .to_string()
}

fn claims() -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: "01935f6e-8a3b-7c2d-9e4f-0a1b2c3d4e5f".to_owned(),
        jti: "01935f6e-8a3b-7c2d-9e4f-00000000c0de".to_owned(),
        iat: NOW - DAY,
        nbf: None,
        exp: NOW + 30 * DAY,
        kind: Kind::Reserved,
        email: "ann@supplier.example".to_owned(),
        org: "01935f6e-0000-7000-8000-00000000acme".replace("acme", "a0e0"),
        org_name: "Acme Engineering".to_owned(),
        product: "civil-designer".to_owned(),
        version: "24.*".to_owned(),
        machine: "5d41402abc4b2a76b9719d911017c592".to_owned(),
        machine_name: "ANN-WORKSTATION".to_owned(),
        server_time: NOW - DAY,
        heartbeat_secs: None,
        nonce: None,
    }
}

/// A compact JWS with any header and payload, signed by the vectors' key (for hostile
/// headers and payloads that are not a license's).
fn jws_with_header(header: Value, payload: &impl serde::Serialize) -> String {
    use ed25519_dalek::Signer;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(payload).expect("json"))
    );
    let signature = key().sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn armor(compact: &str) -> String {
    format!("{BEGIN}\n{compact}\n{END}\n")
}

fn compact_of(file: &str) -> String {
    file.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

/// Every vector: its name, its text, and the outcome (`None` for a license that verifies).
fn vectors() -> Vec<(&'static str, String, Option<Reason>)> {
    let good = sign_license(&claims(), KID, &key());
    let compact = compact_of(&good);
    let parts: Vec<&str> = compact.split('.').collect();
    let mut edited = claims();
    edited.machine = "0000000000000000ffffffffffffffff".to_owned();
    let edited_payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&edited).expect("json"));
    let public_key = key().verifying_key().to_bytes();
    let hs256_header = json!({"alg": "HS256", "typ": "entitle-license+jwt", "kid": KID});
    let hs256_signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(hs256_header.to_string()),
        parts[1]
    );
    let other_key = SigningKey::from_bytes(&[9u8; 32]);
    let lease = Claims {
        kind: Kind::Lease,
        jti: "01935f6e-8a3b-7c2d-9e4f-0000000lease".replace("lease", "1ea5e"),
        exp: NOW + 7 * DAY,
        heartbeat_secs: Some(300),
        nonce: Some("n-0dd3a1".to_owned()),
        ..claims()
    };
    vec![
        ("valid.lic", good.clone(), None),
        (
            "valid-with-text-around.lic",
            format!("Civil Designer for ANN-WORKSTATION\n\n{good}\nKeep this file.\n"),
            None,
        ),
        (
            "valid-rewrapped.lic",
            format!(
                "{BEGIN}\r\n{}\r\n{END}",
                compact
                    .as_bytes()
                    .chunks(40)
                    .map(|c| std::str::from_utf8(c).expect("ascii"))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            ),
            None,
        ),
        ("lease.lic", sign_license(&lease, KID, &key()), None),
        (
            "truncated.lic",
            good[..good.len() / 2].to_owned(),
            Some(Reason::Malformed),
        ),
        (
            "truncated-inside.lic",
            armor(&compact[..compact.len() - 10]),
            Some(Reason::BadSignature),
        ),
        (
            "edited-machine.lic",
            armor(&format!("{}.{edited_payload}.{}", parts[0], parts[2])),
            Some(Reason::BadSignature),
        ),
        (
            "alg-none.lic",
            armor(&format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(
                    json!({"alg": "none", "typ": "entitle-license+jwt", "kid": KID}).to_string()
                ),
                parts[1]
            )),
            Some(Reason::UnsupportedAlgorithm),
        ),
        (
            "hs256-with-public-key.lic",
            armor(&format!(
                "{hs256_signed}.{}",
                URL_SAFE_NO_PAD.encode(hs256(&public_key, hs256_signed.as_bytes()))
            )),
            Some(Reason::UnsupportedAlgorithm),
        ),
        (
            "unknown-key.lic",
            sign_license(&claims(), "license-test-unknown", &other_key),
            Some(Reason::UnknownKey),
        ),
        (
            "known-kid-other-key.lic",
            sign_license(&claims(), KID, &other_key),
            Some(Reason::BadSignature),
        ),
        (
            "no-kid.lic",
            armor(&jws_with_header(
                json!({"alg": "EdDSA", "typ": "entitle-license+jwt"}),
                &claims(),
            )),
            Some(Reason::UnknownKey),
        ),
        (
            "crit-header.lic",
            armor(&jws_with_header(
                json!({"alg": "EdDSA", "typ": "entitle-license+jwt", "kid": KID, "crit": ["exp"]}),
                &claims(),
            )),
            Some(Reason::UnsupportedAlgorithm),
        ),
        (
            "wrong-typ.lic",
            armor(&jws_with_header(
                json!({"alg": "EdDSA", "typ": "JWT", "kid": KID}),
                &claims(),
            )),
            Some(Reason::WrongKind),
        ),
        (
            "expired.lic",
            sign_license(
                &Claims {
                    exp: NOW - DAY,
                    ..claims()
                },
                KID,
                &key(),
            ),
            Some(Reason::Expired),
        ),
        (
            "not-yet-valid.lic",
            sign_license(
                &Claims {
                    nbf: Some(NOW + DAY),
                    ..claims()
                },
                KID,
                &key(),
            ),
            Some(Reason::NotYetValid),
        ),
        (
            "other-machine.lic",
            sign_license(&edited, KID, &key()),
            Some(Reason::WrongMachine),
        ),
        (
            "other-product.lic",
            sign_license(
                &Claims {
                    product: "bridge-designer".to_owned(),
                    ..claims()
                },
                KID,
                &key(),
            ),
            Some(Reason::WrongProduct),
        ),
        (
            "other-version.lic",
            sign_license(
                &Claims {
                    version: "23.*".to_owned(),
                    ..claims()
                },
                KID,
                &key(),
            ),
            Some(Reason::WrongVersion),
        ),
        (
            "other-issuer.lic",
            sign_license(
                &Claims {
                    iss: "https://evil.example".to_owned(),
                    ..claims()
                },
                KID,
                &key(),
            ),
            Some(Reason::WrongIssuer),
        ),
        (
            "missing-claims.lic",
            armor(&jws_with_header(
                json!({"alg": "EdDSA", "typ": "entitle-license+jwt", "kid": KID}),
                &json!({"iss": ISSUER, "exp": NOW + DAY}),
            )),
            Some(Reason::Malformed),
        ),
        ("empty.lic", String::new(), Some(Reason::Malformed)),
        (
            "binary.lic",
            format!("{BEGIN}\n\u{0}\u{1}ÿ\n{END}\n"),
            Some(Reason::Malformed),
        ),
    ]
}

/// One vector's text, as the format makes it.
fn vector(name: &str) -> String {
    vectors()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, text, _)| text)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn expectations() -> Expectations<'static> {
    Expectations {
        version: Some("24.2"),
        machine: Some("5d41402abc4b2a76b9719d911017c592"),
        issuer: Some(ISSUER),
        ..Expectations::product("civil-designer")
    }
}

#[test]
fn the_checked_in_vectors_are_what_the_format_produces_and_verify_as_stated() {
    let regenerate = std::env::var_os("ENTITLE_REGENERATE_VECTORS").is_some();
    let keys = Keys::from_jwks(&jwks()).expect("jwks");
    let mut outcomes = serde_json::Map::new();
    for (name, text, outcome) in vectors() {
        let path = dir().join(name);
        if regenerate {
            fs::write(&path, &text).expect("write vector");
        }
        let on_disk = fs::read_to_string(&path).unwrap_or_else(|_| panic!("{name} is missing"));
        assert_eq!(
            on_disk, text,
            "{name} differs from what the format produces"
        );
        let got = verify(&on_disk, &keys, NOW, &expectations()).map(|l| l.claims.jti);
        assert_eq!(got.as_ref().err().copied(), outcome, "{name}: {got:?}");
        outcomes.insert(
            name.to_owned(),
            json!(outcome.map(Reason::code).unwrap_or("valid")),
        );
    }
    let manifest = json!({
        "now": NOW,
        "jwks": serde_json::from_str::<Value>(&jwks()).expect("jwks"),
        "expect": {"product": "civil-designer", "version": "24.2", "machine": "5d41402abc4b2a76b9719d911017c592", "issuer": ISSUER},
        "outcomes": outcomes,
    });
    let manifest = serde_json::to_string_pretty(&manifest).expect("json") + "\n";
    let path = dir().join("outcomes.json");
    if regenerate {
        fs::write(&path, &manifest).expect("write outcomes");
    }
    assert_eq!(fs::read_to_string(path).expect("outcomes.json"), manifest);
}

#[test]
fn a_lease_carries_its_nonce_and_kind() {
    let keys = Keys::from_jwks(&jwks()).expect("jwks");
    let lease = vector("lease.lic");
    let expect = |nonce, kind| Expectations {
        nonce,
        kind,
        ..expectations()
    };
    let ok = verify(
        &lease,
        &keys,
        NOW,
        &expect(Some("n-0dd3a1"), Some(Kind::Lease)),
    )
    .expect("lease");
    assert_eq!(ok.claims.heartbeat_secs, Some(300));
    assert_eq!(ok.kid, KID);
    assert_eq!(
        verify(&lease, &keys, NOW, &expect(Some("n-other"), None)).err(),
        Some(Reason::Replayed)
    );
    assert_eq!(
        verify(&lease, &keys, NOW, &expect(None, Some(Kind::Reserved))).err(),
        Some(Reason::WrongKind)
    );
    // Times count with five minutes of leeway either way.
    assert!(verify(&lease, &keys, NOW + 7 * DAY + 299, &expectations()).is_ok());
    assert_eq!(
        verify(&lease, &keys, NOW + 7 * DAY + 300, &expectations()).err(),
        Some(Reason::Expired)
    );
    assert_eq!(read_unverified(&lease).expect("claims").kind, Kind::Lease);
}

#[test]
fn revocation_lists_name_checked_in_files_and_only_grow() {
    let keys = Keys::from_jwks(&jwks()).expect("jwks");
    let list = |seq, revoked: Vec<&str>| {
        sign_revocations(
            &RevocationClaims {
                iss: ISSUER.to_owned(),
                seq,
                iat: NOW,
                revoked: revoked.into_iter().map(str::to_owned).collect(),
            },
            KID,
            &key(),
        )
    };
    let jti = claims().jti;
    let second = verify_revocations(
        &list(2, vec!["zzz", &jti, "aaa"]),
        &keys,
        Some(ISSUER),
        Some(1),
    )
    .expect("list");
    assert!(second.contains(&jti) && !second.contains("bbb"));
    let file = vector("valid.lic");
    let revoked = Expectations {
        revocations: Some(&second),
        ..expectations()
    };
    assert_eq!(
        verify(&file, &keys, NOW, &revoked).err(),
        Some(Reason::Revoked)
    );
    assert_eq!(
        verify_revocations(&list(1, vec![]), &keys, Some(ISSUER), Some(2)).err(),
        Some(Reason::StaleRevocations)
    );
    // A license is not a revocation list, nor the other way round.
    assert_eq!(
        verify_revocations(&compact_of(&file), &keys, None, None).err(),
        Some(Reason::WrongKind)
    );
    assert_eq!(
        verify(&armor(&list(3, vec![])), &keys, NOW, &expectations()).err(),
        Some(Reason::Malformed)
    );
}

#[test]
fn versions_cover_exactly_any_or_a_dotted_prefix() {
    use entitle_license::version_covers;
    assert!(version_covers("24.2", "24.2"));
    assert!(version_covers("*", "7"));
    assert!(version_covers("24.*", "24.1.3"));
    assert!(!version_covers("24.*", "240.1"));
    assert!(!version_covers("24*", "240"));
    assert!(!version_covers("24.2", "24.20"));
}

#[test]
fn jwks_documents_that_are_not_jwks_are_refused() {
    for bad in [
        "",
        "[]",
        r#"{"keys": {}}"#,
        r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k"}]}"#,
        r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]}"#,
    ] {
        assert_eq!(Keys::from_jwks(bad).err(), Some(Reason::Malformed), "{bad}");
    }
    assert!(
        Keys::from_jwks(r#"{"keys": [{"kty": "EC", "crv": "P-256"}]}"#)
            .expect("skipped")
            .is_empty()
    );
}

/// HMAC-SHA256 written out for the one hostile vector that needs it (an HS256 signature
/// made with the public key as the secret), so the crate needs no HMAC of its own.
mod hmac_free {
    pub fn hs256(key: &[u8], message: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner_hash = Sha256::new()
            .chain_update(&inner)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&outer)
            .chain_update(inner_hash)
            .finalize()
            .into()
    }
}
