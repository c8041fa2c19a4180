//! Reserved checkouts over HTTP: who may check out, the seat a checkout holds, the
//! license file and its verification, check-in by an administrator or the holder, and
//! the signed revocation list.

use entitle_testkit::{expect_problem, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::leases::{held, lease, subscribed};
use crate::members::{acme_and_globex, member};

const DAY_MS: i64 = 86_400_000;

fn request(email: &str, machine: &str, days: i64) -> Value {
    json!({"email": email, "product": "civil-designer", "version": "24.*", "machine_name": machine,
        "expires_at": entitle_server::db::now_ms() + days * DAY_MS})
}

async fn keys(app: &TestApp) -> entitle_license::Keys {
    let jwks = app
        .get("/.well-known/entitle/license-keys")
        .await
        .text()
        .await
        .expect("jwks");
    entitle_license::Keys::from_jwks(&jwks).expect("keys")
}

fn now_secs() -> u64 {
    u64::try_from(entitle_server::db::now_ms() / 1000).expect("now")
}

#[tokio::test]
async fn checkouts_hold_seats_yield_files_and_are_checked_in_onto_the_revocation_list() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 2, json!({"overage": "deny"})).await;
    let path = format!("/api/v1/orgs/{}/checkouts", orgs.acme);

    // An external supplier's person, on their machine.
    let created = app
        .post_as(
            &orgs.fiona,
            &path,
            &request("ann@supplier.example", "ANN-PC", 20),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["checkout"]["status"], "reserved");
    assert_eq!(held(&app).await, 1);
    let file = created["license"].as_str().expect("license").to_owned();
    let keys = keys(&app).await;
    let expect = entitle_license::Expectations {
        machine: Some("ANN-PC"),
        version: Some("24.2"),
        kind: Some(entitle_license::Kind::Reserved),
        issuer: Some(&app.base_url),
        ..entitle_license::Expectations::product("civil-designer")
    };
    let verified = entitle_license::verify(&file, &keys, now_secs(), &expect).expect("verifies");
    assert_eq!(
        verified.claims.org, orgs.acme,
        "the organization that checked it out pays"
    );
    assert_eq!(verified.claims.email, "ann@supplier.example");

    // A lease takes the other seat; the next checkout is refused.
    assert_eq!(
        lease(&app, &uma, "machine-bbbb").await.status(),
        StatusCode::CREATED
    );
    let refused = app
        .post_as(
            &orgs.fiona,
            &path,
            &request("bob@supplier.example", "BOB-PC", 20),
        )
        .await;
    expect_problem(refused, StatusCode::CONFLICT, "no_seat_available").await;

    // Bad requests name the field; nothing is held for them.
    for (body, field) in [
        (request("not an address", "X", 30), "email"),
        (request("c@supplier.example", "X", 400), "expires_at"),
        (request("c@supplier.example", "X", 60), "expires_at"),
        (
            json!({"email": "c@supplier.example", "product": "nope-nope", "version": "1", "machine_name": "X", "expires_at": entitle_server::db::now_ms() + DAY_MS}),
            "product",
        ),
    ] {
        let response = app.post_as(&orgs.fiona, &path, &body).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(held(&app).await, 2);

    // The file can be downloaded again; the list shows it.
    let id = created["checkout"]["id"].as_str().expect("id").to_owned();
    let download = app
        .get_as(&orgs.fiona, &format!("{path}/{id}/license"))
        .await;
    assert_eq!(
        download.headers()["content-type"],
        "application/x-entitle-license"
    );
    let again = download.text().await.expect("file");
    assert!(entitle_license::verify(&again, &keys, now_secs(), &expect).is_ok());
    let listed: Value = app
        .get_as(&orgs.fiona, &path)
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Check-in frees the seat at once and revokes the file.
    let checked_in = app
        .post_as(&orgs.fiona, &format!("{path}/{id}/check-in"), &json!({}))
        .await;
    assert_eq!(
        checked_in.json::<Value>().await.expect("json")["status"],
        "checked_in"
    );
    assert_eq!(held(&app).await, 1);
    let list = app.get("/api/v1/revocations").await;
    assert_eq!(list.headers()["content-type"], "application/jwt");
    let revocations = entitle_license::verify_revocations(
        &list.text().await.expect("jws"),
        &keys,
        Some(&app.base_url),
        None,
    )
    .expect("a signed list");
    assert_eq!(revocations.sequence(), 1);
    assert!(revocations.contains(&id));
    let revoked = entitle_license::Expectations {
        revocations: Some(&revocations),
        ..expect.clone()
    };
    assert_eq!(
        entitle_license::verify(&file, &keys, now_secs(), &revoked).err(),
        Some(entitle_license::Reason::Revoked)
    );
    let twice = app
        .post_as(&orgs.fiona, &format!("{path}/{id}/check-in"), &json!({}))
        .await;
    assert_eq!(twice.status(), StatusCode::OK);
    let later = entitle_license::verify_revocations(
        &app.get("/api/v1/revocations")
            .await
            .text()
            .await
            .expect("jws"),
        &keys,
        None,
        Some(1),
    )
    .expect("list");
    assert_eq!(
        later.sequence(),
        1,
        "checking in again revokes nothing more"
    );
    assert_eq!(
        app.post_as(
            &orgs.fiona,
            &path,
            &request("bob@supplier.example", "BOB-PC", 20)
        )
        .await
        .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn only_administrators_and_license_checkout_check_out_and_holders_check_in_their_own() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 5, json!({"overage": "deny"})).await;
    let path = format!("/api/v1/orgs/{}/checkouts", orgs.acme);
    let refused = app
        .post_as(&uma, &path, &request("uma@acme.test", "UMA-PC", 10))
        .await;
    expect_problem(refused, StatusCode::FORBIDDEN, "role_required").await;
    let (_, clara) = member(
        &app,
        &orgs.fiona,
        &orgs.acme,
        "Acme",
        "clara@acme.test",
        &["license_checkout"],
    )
    .await;
    let created = app
        .post_as(&clara, &path, &request("uma@acme.test", "UMA-PC", 10))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.expect("json")["checkout"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Another organization sees nothing of Acme's checkouts.
    assert_eq!(
        app.get_as(&orgs.gus, &path).await.status(),
        StatusCode::NOT_FOUND
    );
    let foreign = app
        .post_as(&orgs.gus, &format!("{path}/{id}/check-in"), &json!({}))
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    // The holder lists it and downloads its file; nobody else can.
    let mine: Value = app
        .get_as(&uma, "/api/v1/me/checkouts")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(mine[0]["id"], id.as_str());
    let file = app
        .get_as(&uma, &format!("/api/v1/me/checkouts/{id}/license"))
        .await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file
        .text()
        .await
        .expect("file")
        .starts_with("-----BEGIN ENTITLE LICENSE-----"));
    assert_eq!(
        app.get_as(&clara, &format!("/api/v1/me/checkouts/{id}/license"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let none: Value = app
        .get_as(&orgs.gus, "/api/v1/me/checkouts")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(none, json!([]));
    // The holder returns it early; nobody else may through their own endpoint.
    let other = app
        .post_as(
            &clara,
            &format!("/api/v1/me/checkouts/{id}/check-in"),
            &json!({}),
        )
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let mine = app
        .post_as(
            &uma,
            &format!("/api/v1/me/checkouts/{id}/check-in"),
            &json!({}),
        )
        .await;
    assert_eq!(
        mine.json::<Value>().await.expect("json")["status"],
        "checked_in"
    );
    assert_eq!(held(&app).await, 0);
}
