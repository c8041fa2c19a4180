//! Products, subscriptions and entitlements, and the license keys: what operators set
//! up (API and commands), what people may use, and the keys files are checked against.

use entitle_testkit::{expect_problem, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{acme_and_globex, member};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    entitle_server::db::now_ms()
}

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn operators_manage_products_and_subscriptions_and_members_see_their_entitlements() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let operator = app.operator("olga@vendor.example").await;
    let civil = created(
        app.post_as(
            &operator,
            "/api/v1/products",
            &json!({"code": "civil-designer", "name": "Civil Designer", "versions": ["24.1", "24.2"]}),
        )
        .await,
    )
    .await;
    assert_eq!(civil["versions"], json!(["24.1", "24.2"]));
    created(
        app.post_as(
            &operator,
            "/api/v1/products",
            &json!({"code": "bridge", "name": "Bridge"}),
        )
        .await,
    )
    .await;
    let again = app
        .post_as(
            &operator,
            "/api/v1/products",
            &json!({"code": "bridge", "name": "Twice"}),
        )
        .await;
    expect_problem(again, StatusCode::CONFLICT, "product_exists").await;
    for (body, field) in [
        (json!({"code": "Civil Designer", "name": "x"}), "code"),
        (json!({"code": "ok-code", "name": " "}), "name"),
        (
            json!({"code": "ok-code", "name": "x", "versions": ["a;b"]}),
            "versions",
        ),
    ] {
        let response = app.post_as(&operator, "/api/v1/products", &body).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // Only operators: an organization's Fulfillment Contact is refused.
    let refused = app
        .post_as(
            &orgs.fiona,
            "/api/v1/products",
            &json!({"code": "mine", "name": "Mine"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let renamed = app
        .patch_as(
            &operator,
            "/api/v1/products/bridge",
            &json!({"name": "Bridge Designer"}),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);

    // A subscription for Acme: every check names its field; nothing is written on refusal.
    let now = now_ms();
    let subscription = |body: Value| {
        let (app, operator) = (&app, &operator);
        async move { app.post_as(operator, "/api/v1/subscriptions", &body).await }
    };
    for (body, field) in [
        (
            json!({"org_id": orgs.acme, "products": ["nope"], "seats": 5, "ends_at": now + DAY_MS, "overage": "deny"}),
            "products",
        ),
        (
            json!({"org_id": uuid::Uuid::now_v7(), "products": ["bridge"], "seats": 5, "ends_at": now + DAY_MS, "overage": "deny"}),
            "org_id",
        ),
        (
            json!({"org_id": orgs.acme, "products": ["bridge"], "seats": -1, "ends_at": now + DAY_MS, "overage": "deny"}),
            "seats",
        ),
        (
            json!({"org_id": orgs.acme, "products": ["bridge"], "seats": 5, "starts_at": now, "ends_at": now - 1, "overage": "deny"}),
            "ends_at",
        ),
        (
            json!({"org_id": orgs.acme, "products": ["bridge"], "seats": 5, "ends_at": now + DAY_MS, "overage": "allow_up_to"}),
            "overage_factor",
        ),
        (
            json!({"org_id": orgs.acme, "products": ["bridge"], "seats": 5, "ends_at": now + DAY_MS, "overage": "deny", "overage_factor": 1.5}),
            "overage_factor",
        ),
    ] {
        let problem = expect_problem(
            subscription(body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(crate::count(&app, "subscriptions").await, 0);
    let acme_civil = created(
        subscription(
            json!({"org_id": orgs.acme, "products": ["civil-designer", "bridge"], "seats": 10,
            "ends_at": now + 365 * DAY_MS, "overage": "allow_up_to", "overage_factor": 1.25}),
        )
        .await,
    )
    .await;
    assert_eq!(acme_civil["status"], "active");
    assert_eq!(acme_civil["overage_factor"], 1.25);
    assert_eq!(acme_civil["products"], json!(["bridge", "civil-designer"]));
    // Scheduled for next month: not an entitlement yet.
    created(
        subscription(
            json!({"org_id": orgs.acme, "products": ["bridge"], "seats": 3,
            "starts_at": now + 30 * DAY_MS, "ends_at": now + 60 * DAY_MS, "overage": "deny"}),
        )
        .await,
    )
    .await;
    let globex = created(
        subscription(
            json!({"org_id": orgs.globex, "products": ["bridge"], "seats": 1,
            "ends_at": now + DAY_MS, "overage": "deny"}),
        )
        .await,
    )
    .await;

    // What people may use: Acme's active subscription, not Globex's, not the scheduled one.
    let (_, uma) = member(&app, &orgs.fiona, &orgs.acme, "Acme", "uma@acme.test", &[]).await;
    let entitlements: Value = app
        .get_as(&uma, "/api/v1/me/entitlements")
        .await
        .json()
        .await
        .expect("json");
    let products: Vec<&str> = entitlements
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["product"].as_str().expect("code"))
        .collect();
    assert_eq!(products, vec!["bridge", "civil-designer"]);
    assert_eq!(entitlements[1]["org_name"], "Acme");
    assert_eq!(entitlements[1]["versions"], json!(["24.1", "24.2"]));
    let gus: Value = app
        .get_as(&orgs.gus, "/api/v1/me/entitlements")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(gus.as_array().map(Vec::len), Some(1));

    // Seats change; ending stops entitlements at once, and an ended one stays ended.
    let id = acme_civil["id"].as_str().expect("id");
    let changed = app
        .patch_as(
            &operator,
            &format!("/api/v1/subscriptions/{id}"),
            &json!({"seats": 12}),
        )
        .await;
    assert_eq!(changed.json::<Value>().await.expect("json")["seats"], 12);
    let ended = app
        .post_as(
            &operator,
            &format!("/api/v1/subscriptions/{id}/end"),
            &json!({}),
        )
        .await;
    assert_eq!(
        ended.json::<Value>().await.expect("json")["status"],
        "ended"
    );
    let none: Value = app
        .get_as(&uma, "/api/v1/me/entitlements")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none, json!([]));
    let late = app
        .patch_as(
            &operator,
            &format!("/api/v1/subscriptions/{id}"),
            &json!({"seats": 1}),
        )
        .await;
    expect_problem(late, StatusCode::CONFLICT, "subscription_ended").await;

    // Operators list them by organization; the organization's audit log has them.
    let listed: Value = app
        .get_as(
            &operator,
            &format!("/api/v1/subscriptions?org_id={}", orgs.globex),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], globex["id"]);
    let audit: Value = app
        .get_as(
            &orgs.fiona,
            &format!("/api/v1/orgs/{}/audit?action=subscription.ended", orgs.acme),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1));
    let foreign = app
        .get_as(&orgs.fiona, &format!("/api/v1/subscriptions/{id}"))
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn license_keys_are_published_separately_sealed_at_rest_and_rotate() {
    let app = TestApp::spawn().await;
    let published = app.get("/.well-known/entitle/license-keys").await;
    assert_eq!(published.status(), StatusCode::OK);
    assert_eq!(
        published.headers()["content-type"],
        "application/jwk-set+json"
    );
    let jwks = published.text().await.expect("jwks");
    let keys = entitle_license::Keys::from_jwks(&jwks).expect("a JWKS of Ed25519 keys");
    assert!(!keys.is_empty());
    let jwks: Value = serde_json::from_str(&jwks).expect("json");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_owned();
    let oidc: Value = app
        .get("/oauth2/jwks")
        .await
        .json()
        .await
        .expect("oidc jwks");
    assert!(
        oidc["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k["kid"] != kid.as_str()),
        "license keys are not the OpenID Connect keys"
    );
    // At rest: a nonce, the sealed 32-byte seed and the tag; never the seed itself.
    use entitle_server::on_db;
    let mut conn = app.state.db.reader().await.expect("connection");
    let (sealed,): (Vec<u8>,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT sealed_private_key FROM license_keys WHERE kid = $1"
    )
    .bind(&kid)
    .fetch_one(c)
    .await)
    .expect("row");
    drop(conn);
    assert_eq!(sealed.len(), 12 + 32 + 16);

    let actor = entitle_server::audit::Actor::system();
    let new_kid = entitle_server::entitlements::keys::rotate(&app.state, &actor)
        .await
        .expect("rotates");
    assert_ne!(new_kid, kid);
    assert_eq!(app.state.licensing.current().kid, new_kid);
    let after: Value = app
        .get("/.well-known/entitle/license-keys")
        .await
        .json()
        .await
        .expect("jwks");
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(
        kids,
        vec![kid.as_str(), new_kid.as_str()],
        "the old key stays published"
    );
    // A second server on the same database signs with the same key.
    let beside = app.spawn_beside().await;
    assert_eq!(beside.state.licensing.current().kid, new_kid);
}

#[tokio::test]
async fn the_commands_set_up_products_and_subscriptions() {
    // The commands run beside a server, on its database, as an operator would.
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let url = app.state.config.database_url.clone();
    let run = |args: &[&str]| crate::cli::entitled(&app.data_dir, url.as_deref(), args);
    let added = run(&[
        "products",
        "add",
        "--code",
        "civil-designer",
        "--name",
        "Civil Designer",
        "--version",
        "24.1",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let bad = run(&["products", "add", "--code", "Bad Code", "--name", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("error: code: Use 2 to 64 lowercase letters")
    );
    let listed = run(&["products", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("civil-designer"));

    let subscribed = run(&[
        "subscriptions",
        "add",
        "--org",
        &orgs.acme,
        "--product",
        "civil-designer",
        "--seats",
        "5",
        "--ends",
        "2040-01-01",
        "--overage",
        "allow_up_to",
        "--overage-factor",
        "1.5",
    ]);
    assert!(
        subscribed.status.success(),
        "{}",
        String::from_utf8_lossy(&subscribed.stderr)
    );
    let said = String::from_utf8_lossy(&subscribed.stdout).to_string();
    assert!(
        said.contains("civil-designer")
            && said.contains("5 seats")
            && said.contains("×1.5")
            && said.contains("[active]"),
        "{said}"
    );
    let entitlements: Value = app
        .get_as(&orgs.fiona, "/api/v1/me/entitlements")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(entitlements[0]["product"], "civil-designer");
    let bad_date = run(&[
        "subscriptions",
        "add",
        "--org",
        &orgs.acme,
        "--product",
        "civil-designer",
        "--seats",
        "5",
        "--ends",
        "next year",
    ]);
    assert!(!bad_date.status.success());
    assert!(String::from_utf8_lossy(&bad_date.stderr)
        .contains("--ends \"next year\": give a date as YYYY-MM-DD"));
    let unknown_org = run(&[
        "subscriptions",
        "add",
        "--org",
        &uuid::Uuid::now_v7().to_string(),
        "--product",
        "civil-designer",
        "--seats",
        "5",
        "--ends",
        "2040-01-01",
    ]);
    assert_eq!(unknown_org.status.code(), Some(2));
    let id = said.split_whitespace().next().expect("id").to_owned();
    let ended = run(&["subscriptions", "end", &id]);
    assert!(String::from_utf8_lossy(&ended.stdout).contains("[ended]"));
    let rotated = run(&["keys", "rotate", "--license"]);
    assert!(
        String::from_utf8_lossy(&rotated.stdout).contains("New license signing key"),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
}
