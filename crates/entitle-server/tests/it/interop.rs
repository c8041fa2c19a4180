//! An independent relying party against the provider: panva's `openid-client` (npm),
//! run by Node from `interop/`. `scripts/setup-test-deps.sh` installs it.

use std::path::PathBuf;

use entitle_testkit::{TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const REDIRECT_URI: &str = "http://127.0.0.1:47011/callback";
const POST_LOGOUT_REDIRECT_URI: &str = "https://app.example.com/signed-out";

#[tokio::test]
async fn openid_client_completes_every_flow() {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    assert!(
        interop.join("node_modules/openid-client").exists(),
        "openid-client is not installed: run scripts/setup-test-deps.sh"
    );
    let app = TestApp::spawn_with(|c| c.oidc.device_poll_interval_secs = 1).await;
    let operator = app.operator("olga@example.com").await;
    let register = |body: Value| {
        let app = &app;
        let operator = &operator;
        async move {
            let response = app.post_as(operator, "/api/v1/clients", &body).await;
            assert_eq!(response.status(), StatusCode::CREATED);
            response.json::<Value>().await.expect("client")
        }
    };
    let web = register(json!({
        "name": "Web application", "confidential": true,
        "redirect_uris": [REDIRECT_URI], "post_logout_redirect_uris": [POST_LOGOUT_REDIRECT_URI],
    }))
    .await;
    let service = register(json!({
        "name": "Data source", "confidential": true,
        "grant_types": ["client_credentials"], "scopes": ["licenses"],
    }))
    .await;
    let email = "rp.person@example.com";
    app.register(email, PASSWORD).await;

    let output = tokio::process::Command::new("node")
        .arg("openid-client-rp.mjs")
        .current_dir(&interop)
        .env("ISSUER", &app.base_url)
        .env("CLIENT_ID", web["client_id"].as_str().expect("id"))
        .env(
            "CLIENT_SECRET",
            web["client_secret"].as_str().expect("secret"),
        )
        .env("SERVICE_ID", service["client_id"].as_str().expect("id"))
        .env(
            "SERVICE_SECRET",
            service["client_secret"].as_str().expect("secret"),
        )
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("POST_LOGOUT_REDIRECT_URI", POST_LOGOUT_REDIRECT_URI)
        .env("EMAIL", email)
        .env("PASSWORD", PASSWORD)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("the relying party finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openid-client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .expect("a JSON summary");
    assert_eq!(
        result["checks"].as_array().map(Vec::len),
        Some(9),
        "{result}"
    );
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `interop/license-verify.mjs` (panva's `jose`) on a directory of license files and
/// their `outcomes.json`: what it made of each.
async fn jose_verdicts(dir: &std::path::Path) -> Value {
    let output = tokio::process::Command::new("node")
        .arg("license-verify.mjs")
        .arg(dir)
        .current_dir(repository().join("interop"))
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The license format as another ecosystem reads it: panva's `jose` (npm) verifies the
/// `entitle-license` crate's checked-in vectors against their JWKS and reaches the same
/// outcome for each (the signature, then the claims as docs/license-format.md says).
#[tokio::test]
async fn jose_reads_the_license_vectors_as_the_crate_does() {
    let vectors = repository().join("crates/entitle-license/tests/vectors");
    let jose = jose_verdicts(&vectors).await;
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(vectors.join("outcomes.json")).expect("outcomes"),
    )
    .expect("json");
    let outcomes = manifest["outcomes"].as_object().expect("outcomes");
    assert!(outcomes.len() >= 20);
    for (name, outcome) in outcomes {
        let seen = &jose[name];
        let signature = seen["signature"].as_bool().expect("signature");
        match outcome.as_str().expect("outcome") {
            "unsupported_algorithm" | "unknown_key" | "bad_signature" => {
                assert!(
                    !signature,
                    "{name}: jose accepted what entitle refuses: {seen}"
                )
            }
            "malformed" => assert!(
                !signature || seen["claims"] == "malformed",
                "{name}: {seen}"
            ),
            "wrong_kind" => assert_eq!(seen["claims"], "wrong_kind", "{name}: {seen}"),
            claims => {
                assert!(signature, "{name}: jose refused a good signature: {seen}");
                assert_eq!(seen["claims"], claims, "{name}: {seen}");
            }
        }
    }
}

/// A license file the server issued, checked by panva's `jose` (npm) against the JWKS the
/// server publishes: nobody here wrote the verifier.
#[tokio::test]
async fn jose_verifies_a_file_the_server_issued_against_the_published_keys() {
    let app = TestApp::spawn().await;
    let orgs = crate::members::acme_and_globex(&app).await;
    crate::leases::subscribed(&app, &orgs, 2, json!({"overage": "deny"})).await;
    let now = entitle_server::db::now_ms();
    let created = app
        .post_as(
            &orgs.fiona,
            &format!("/api/v1/orgs/{}/checkouts", orgs.acme),
            &json!({"email": "ann@supplier.example", "product": "civil-designer", "version": "24.*",
                "machine_name": "ANN-PC", "expires_at": now + 10 * 86_400_000_i64}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let jwks: Value = app
        .get("/.well-known/entitle/license-keys")
        .await
        .json()
        .await
        .expect("jwks");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("issued.lic"),
        created["license"].as_str().expect("file"),
    )
    .expect("write");
    let manifest = json!({
        "now": now / 1000,
        "jwks": jwks,
        "expect": {"product": "civil-designer", "version": "24.2", "machine": "ANN-PC", "issuer": app.base_url},
        "outcomes": {"issued.lic": "valid"},
    });
    std::fs::write(dir.path().join("outcomes.json"), manifest.to_string()).expect("write");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = tokio::process::Command::new("node")
        .arg("license-verify.mjs")
        .arg(dir.path())
        .current_dir(root.join("interop"))
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let jose: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(jose["issued.lic"]["signature"], true, "{jose}");
    assert_eq!(jose["issued.lic"]["claims"], "valid", "{jose}");
    assert_eq!(jose["issued.lic"]["jti"], created["checkout"]["id"]);
}
