//! `entitle_license::verify` against a bare Ed25519 verification of the same signed bytes:
//! what the format (armor, base64url, JSON, claims checks) costs above the signature.
//! Both check strictly (RFC 8032, as the library does). Run by `bench/license.sh`;
//! prints medians of 7 runs of 20,000 verifications each.

use std::time::Instant;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::Signature;
use entitle_license::{sign_license, verify, Claims, Expectations, Keys, Kind, SigningKey};

const RUNS: usize = 7;
const PER_RUN: u32 = 20_000;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let now = 1_796_428_800;
    let claims = Claims {
        iss: "https://licenses.vendor.example".into(),
        sub: "01935f6e-8a3b-7c2d-9e4f-0a1b2c3d4e5f".into(),
        jti: "01935f6e-8a3b-7c2d-9e4f-00000000c0de".into(),
        iat: now,
        nbf: None,
        exp: now + 365 * 86_400,
        kind: Kind::Reserved,
        email: "ann@supplier.example".into(),
        org: "01935f6e-0000-7000-8000-00000000a0e0".into(),
        org_name: "Acme Engineering".into(),
        product: "civil-designer".into(),
        version: "24.*".into(),
        machine: "ANN-WORKSTATION".into(),
        machine_name: "ANN-WORKSTATION".into(),
        server_time: now,
        heartbeat_secs: None,
        nonce: None,
    };
    let file = sign_license(&claims, "bench", &key);
    let mut keys = Keys::default();
    keys.insert("bench", &key.verifying_key().to_bytes())
        .expect("key");
    let expect = Expectations {
        version: Some("24.2"),
        machine: Some("ANN-WORKSTATION"),
        ..Expectations::product("civil-designer")
    };
    // The same signed bytes and signature, checked bare.
    let compact: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
    let (signed, signature) = compact.rsplit_once('.').expect("three parts");
    let signature = Signature::from_bytes(
        &URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64")
            .try_into()
            .expect("64 bytes"),
    );
    let public = key.verifying_key();
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..PER_RUN {
            f();
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(PER_RUN)
    };
    let mut full = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..RUNS {
        full.push(time(&|| {
            verify(&file, &keys, now, &expect).expect("verifies");
        }));
        bare.push(time(&|| {
            public
                .verify_strict(signed.as_bytes(), &signature)
                .expect("verifies");
        }));
    }
    let (full, bare) = (median(full), median(bare));
    println!(
        "file of {} bytes; medians of {RUNS} runs of {PER_RUN}",
        file.len()
    );
    println!("entitle_license::verify: {full:.2} µs");
    println!("bare Ed25519 verify of the same bytes: {bare:.2} µs");
    println!("ratio: {:.3}", full / bare);
}
