//! Online leases over HTTP: seats taken, shared by one machine, refused when the last is
//! held (and never oversold, however the requests interleave, on one server or two),
//! overage as the policy allows, heartbeats, release, lapsed seats reclaimed, retries
//! with an Idempotency-Key, and the signed lease checked with `entitle-license`.

use entitle_testkit::{expect_problem, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{acme_and_globex, member, TwoOrgs};

const DAY_MS: i64 = 86_400_000;

/// Acme with a subscription of `seats` to civil-designer under `overage`; returns Uma's token.
pub async fn subscribed(app: &TestApp, orgs: &TwoOrgs, seats: i64, overage: Value) -> String {
    subscribe(
        app,
        ("civil-designer", "Civil Designer"),
        &orgs.acme,
        seats,
        overage,
    )
    .await;
    member(app, &orgs.fiona, &orgs.acme, "Acme", "uma@acme.test", &[])
        .await
        .1
}

/// The operator adds a product (code, name) and a subscription of `seats` of it for
/// `org_id`.
async fn subscribe(
    app: &TestApp,
    (code, name): (&str, &str),
    org_id: &str,
    seats: i64,
    overage: Value,
) {
    let operator = app.operator("olga@vendor.example").await;
    let product = app
        .post_as(
            &operator,
            "/api/v1/products",
            &json!({"code": code, "name": name}),
        )
        .await;
    assert_eq!(product.status(), StatusCode::CREATED);
    let mut body = json!({"org_id": org_id, "products": [code], "seats": seats,
        "ends_at": entitle_server::db::now_ms() + 30 * DAY_MS});
    body.as_object_mut()
        .expect("object")
        .extend(overage.as_object().expect("object").clone());
    let subscription = app.post_as(&operator, "/api/v1/subscriptions", &body).await;
    assert_eq!(subscription.status(), StatusCode::CREATED);
}

fn lease_request(machine: &str) -> Value {
    json!({"product": "civil-designer", "version": "24.2", "machine_id": machine,
        "machine_name": format!("PC {machine}"), "nonce": format!("nonce-{machine}")})
}

pub async fn lease(app: &TestApp, token: &str, machine: &str) -> reqwest::Response {
    app.post_as(token, "/api/v1/leases", &lease_request(machine))
        .await
}

/// A heartbeat of lease `id` by the holder of `token`, with `nonce`.
async fn heartbeat(app: &TestApp, token: &str, id: &str, nonce: &str) -> reqwest::Response {
    app.post_as(
        token,
        &format!("/api/v1/leases/{id}/heartbeat"),
        &json!({ "nonce": nonce }),
    )
    .await
}

pub async fn held(app: &TestApp) -> i64 {
    use entitle_server::on_db;
    let mut conn = app.state.db.reader().await.expect("connection");
    let (held,): (i64,) = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM seat_pools"
    )
    .fetch_one(c)
    .await)
    .expect("held");
    held
}

#[tokio::test]
async fn leases_take_share_and_give_back_seats_and_verify_offline() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 2, json!({"overage": "deny"})).await;

    let first = lease(&app, &uma, "machine-aaaa").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("lease");
    assert_eq!(first["org_name"], "Acme");
    assert_eq!(first["overage"], false);
    // The signed lease verifies offline against the published license keys.
    let jwks = app
        .get("/.well-known/entitle/license-keys")
        .await
        .text()
        .await
        .expect("jwks");
    let keys = entitle_license::Keys::from_jwks(&jwks).expect("keys");
    let now = u64::try_from(entitle_server::db::now_ms() / 1000).expect("now");
    let expect = entitle_license::Expectations {
        machine: Some("machine-aaaa"),
        version: Some("24.2"),
        nonce: Some("nonce-machine-aaaa"),
        kind: Some(entitle_license::Kind::Lease),
        issuer: Some(&app.base_url),
        ..entitle_license::Expectations::product("civil-designer")
    };
    let verified = entitle_license::verify(
        first["license"].as_str().expect("license"),
        &keys,
        now,
        &expect,
    )
    .expect("the lease verifies");
    assert_eq!(verified.claims.jti, first["id"].as_str().expect("id"));
    assert_eq!(verified.claims.org, orgs.acme);
    assert!(verified.claims.exp > now + 6 * 86_400, "a week offline");

    // The same machine shares its seat; a second machine takes the other; a third is refused.
    assert_eq!(
        lease(&app, &uma, "machine-aaaa").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(held(&app).await, 1);
    assert_eq!(
        lease(&app, &uma, "machine-bbbb").await.status(),
        StatusCode::CREATED
    );
    let refused = lease(&app, &uma, "machine-cccc").await;
    expect_problem(refused, StatusCode::CONFLICT, "no_seat_available").await;
    assert_eq!(held(&app).await, 2);
    assert_eq!(crate::count(&app, "license_denials").await, 1);

    // Heartbeats renew with a fresh nonce, and keep the seat as long as the lease; someone
    // else's lease is not found.
    let id = first["id"].as_str().expect("id");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let renewed = heartbeat(&app, &uma, id, "second-nonce").await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let renewed: Value = renewed.json().await.expect("lease");
    let claims = entitle_license::read_unverified(renewed["license"].as_str().expect("license"))
        .expect("claims");
    assert_eq!(claims.nonce.as_deref(), Some("second-nonce"));
    let (lease_until, seat_until): (i64, i64) = {
        use entitle_server::on_db;
        let mut conn = app.state.db.reader().await.expect("connection");
        let sql = format!(
            "SELECT l.expires_at, {} FROM leases l \
             JOIN seat_holds h ON h.id = l.hold_id WHERE l.id = $1",
            entitle_server::entitlements::seats::hold_end("h")
        );
        on_db!(&mut conn, |c| sqlx::query_as(&sql)
            .bind(id.parse::<uuid::Uuid>().expect("lease id"))
            .fetch_one(c)
            .await)
        .expect("lease and seat")
    };
    assert!(lease_until > first["expires_at"].as_i64().expect("expires_at"));
    assert_eq!(
        seat_until, lease_until,
        "the seat is kept as long as the lease"
    );
    let theirs = heartbeat(&app, &orgs.fiona, id, "nonce-of-fiona").await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);

    // Releasing both leases of the first machine frees its seat for the third.
    let leases: Vec<String> = {
        use entitle_server::on_db;
        let mut conn = app.state.db.reader().await.expect("connection");
        let rows: Vec<(uuid::Uuid,)> = on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT id FROM leases WHERE machine = 'machine-aaaa'"
        )
        .fetch_all(c)
        .await)
        .expect("leases");
        rows.into_iter().map(|(id,)| id.to_string()).collect()
    };
    assert_eq!(leases.len(), 2);
    let release = |id: String| {
        let (app, uma) = (&app, &uma);
        async move {
            entitle_testkit::new_client()
                .delete(app.url(&format!("/api/v1/leases/{id}")))
                .bearer_auth(uma)
                .send()
                .await
                .expect("delete")
                .status()
        }
    };
    assert_eq!(release(leases[0].clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(
        held(&app).await,
        2,
        "the machine's other lease still holds the seat"
    );
    assert_eq!(release(leases[1].clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(release(leases[1].clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        lease(&app, &uma, "machine-cccc").await.status(),
        StatusCode::CREATED
    );

    // Not entitled: Globex has no subscription. Bad input is named and writes nothing.
    let gus = lease(&app, &orgs.gus, "machine-gggg").await;
    expect_problem(gus, StatusCode::FORBIDDEN, "not_entitled").await;
    for (field, value) in [
        ("machine_id", json!("x")),
        ("product", json!("Civil Designer")),
        ("nonce", json!("")),
    ] {
        let mut body = lease_request("machine-zzzz");
        body[field] = value;
        let response = app.post_as(&uma, "/api/v1/leases", &body).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let unknown = app
        .post_as(&uma, "/api/v1/leases", &json!({"product": "nothing-here", "version": "1", "machine_id": "machine-zzzz", "machine_name": "Z", "nonce": "nonce-zzzz"}))
        .await;
    expect_problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let unauthenticated = app
        .post("/api/v1/leases", &lease_request("machine-zzzz"))
        .await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(crate::count(&app, "leases").await, 2);
}

#[tokio::test]
async fn a_retried_request_gets_the_same_lease_and_an_ended_subscription_grants_nothing() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 1, json!({"overage": "deny"})).await;
    let with_key = |machine: &str, key: &str| {
        let (app, uma, body, key) = (&app, &uma, lease_request(machine), key.to_owned());
        async move {
            entitle_testkit::new_client()
                .post(app.url("/api/v1/leases"))
                .bearer_auth(uma)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("post")
        }
    };
    let first = with_key("machine-aaaa", "retry-1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("lease");
    let again = with_key("machine-aaaa", "retry-1").await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.expect("lease")["id"],
        first["id"]
    );
    assert_eq!(crate::count(&app, "leases").await, 1);
    // Retries sent at once (the same group commit, or the next) take one lease between them.
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let (url, uma, body) = (
                app.url("/api/v1/leases"),
                uma.clone(),
                lease_request("machine-aaaa"),
            );
            tokio::spawn(async move {
                let response = entitle_testkit::new_client()
                    .post(url)
                    .bearer_auth(uma)
                    .header("Idempotency-Key", "retry-2")
                    .json(&body)
                    .send()
                    .await
                    .expect("post");
                let status = response.status();
                (status, response.json::<Value>().await.expect("lease"))
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for retry in retries {
        let (status, lease) = retry.await.expect("task");
        assert!(status.is_success(), "{status}: {lease}");
        created += usize::from(status == StatusCode::CREATED);
        ids.push(lease["id"].clone());
    }
    assert_eq!(created, 1, "one of the retries took the lease");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(crate::count(&app, "leases").await, 2);
    let reused = with_key("machine-bbbb", "retry-1").await;
    let problem = expect_problem(
        reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "idempotency_key_reused");

    let operator = app.operator("olga@vendor.example").await;
    let subscriptions: Value = app
        .get_as(&operator, "/api/v1/subscriptions")
        .await
        .json()
        .await
        .expect("list");
    let id = subscriptions[0]["id"].as_str().expect("id");
    app.post_as(
        &operator,
        &format!("/api/v1/subscriptions/{id}/end"),
        &json!({}),
    )
    .await;
    let after = lease(&app, &uma, "machine-cccc").await;
    expect_problem(after, StatusCode::FORBIDDEN, "not_entitled").await;
}

#[tokio::test]
async fn overage_is_granted_as_the_policy_allows_and_marked() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(
        &app,
        &orgs,
        2,
        json!({"overage": "allow_up_to", "overage_factor": 1.5}),
    )
    .await;
    let mut overage = Vec::new();
    for machine in ["machine-aaaa", "machine-bbbb", "machine-cccc"] {
        let response = lease(&app, &uma, machine).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{machine}");
        overage.push(
            response.json::<Value>().await.expect("lease")["overage"]
                .as_bool()
                .expect("overage"),
        );
    }
    assert_eq!(
        overage,
        vec![false, false, true],
        "2 seats, then 1 more: 2 × 1.5"
    );
    let fourth = lease(&app, &uma, "machine-dddd").await;
    expect_problem(fourth, StatusCode::CONFLICT, "no_seat_available").await;
}

#[tokio::test]
async fn a_seat_whose_heartbeats_stop_is_given_back() {
    let app = TestApp::spawn_with(|c| c.licensing.heartbeat_secs = 1).await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 1, json!({"overage": "deny"})).await;
    let first = lease(&app, &uma, "machine-aaaa").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let id = first.json::<Value>().await.expect("lease")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    expect_problem(
        lease(&app, &uma, "machine-bbbb").await,
        StatusCode::CONFLICT,
        "no_seat_available",
    )
    .await;
    // No heartbeat: the background reclaim frees the seat soon after the interval.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while held(&app).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the seat was not reclaimed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let late = heartbeat(&app, &uma, &id, "too-late-nonce").await;
    assert_eq!(
        late.status(),
        StatusCode::NOT_FOUND,
        "its lease is gone with the seat"
    );
    assert_eq!(
        lease(&app, &uma, "machine-bbbb").await.status(),
        StatusCode::CREATED
    );
}

/// A machine whose hold lapsed takes a seat again before the background reclaim runs: its
/// lapsed hold gives way (the pool counts one seat), for a lease and for a checkout.
#[tokio::test]
async fn a_machine_whose_hold_lapsed_takes_a_seat_again_before_the_reclaim() {
    use entitle_server::{entitlements::seats, on_db};
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    subscribed(&app, &orgs, 3, json!({"overage": "deny"})).await;
    let (product_id,): (uuid::Uuid,) = {
        let mut conn = app.state.db.reader().await.expect("connection");
        on_db!(&mut conn, |c| sqlx::query_as("SELECT id FROM products")
            .fetch_one(c)
            .await)
        .expect("product")
    };
    let org_id: uuid::Uuid = orgs.acme.parse().expect("org id");
    let now = entitle_server::db::now_ms();
    let take = |at: i64, machines: &[&str]| {
        let wanted: Vec<(String, i64)> = machines
            .iter()
            .map(|m| ((*m).to_owned(), at + 1_000))
            .collect();
        let db = app.state.db.clone();
        async move {
            let mut tx = db.begin().await.expect("transaction");
            let holds = seats::take_upto(&mut tx, org_id, product_id, &wanted, at)
                .await
                .expect("taking seats");
            tx.commit().await.expect("commit");
            holds
        }
    };
    let first = take(now, &["machine-aaaa", "machine-bbbb"]).await;
    assert!(first.iter().all(Option::is_some));
    // Both lapse; one machine comes back while seats are left.
    let again = take(now + 5_000, &["machine-aaaa"]).await;
    assert!(again[0].is_some(), "{again:?}");
    assert_ne!(again[0].map(|h| h.0), first[0].map(|h| h.0), "a new hold");
    assert_eq!(held(&app).await, 2, "machine-aaaa counts once");
    // The pool's seats run short: lapsed holds give theirs back.
    let more = take(now + 5_000, &["machine-cccc", "machine-dddd"]).await;
    assert!(more.iter().all(Option::is_some), "{more:?}");
    assert_eq!(held(&app).await, 3);
}

/// A heartbeat renews its lease alone: the seat lasts as long, past the hold's own end,
/// without being written. The reclaim finds it due at its own end, keeps it and moves its
/// end to the lease's; at the lease's end it frees the seat and the lease is gone, also
/// for the machine taking a seat again before the reclaim.
#[tokio::test]
async fn a_heartbeat_keeps_the_seat_past_the_hold_own_end() {
    use entitle_server::{entitlements::seats, on_db};
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 1, json!({"overage": "deny"})).await;
    let taken: Value = lease(&app, &uma, "machine-aaaa")
        .await
        .json()
        .await
        .expect("lease");
    let id = taken["id"].as_str().expect("id");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let renewed = heartbeat(&app, &uma, id, "nonce-renewal").await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let ends = || async {
        let mut conn = app.state.db.reader().await.expect("connection");
        let sql = format!(
            "SELECT h.expires_at, {}, l.expires_at FROM seat_holds h \
             JOIN leases l ON l.hold_id = h.id",
            seats::hold_end("h")
        );
        let ends: Option<(i64, i64, i64)> =
            on_db!(&mut conn, |c| sqlx::query_as(&sql).fetch_optional(c).await).expect("ends");
        ends
    };
    let (own, end, lease_end) = ends().await.expect("a hold and its lease");
    assert!(own < lease_end, "the heartbeat did not write the hold");
    assert_eq!(end, lease_end, "the seat lasts as long as the lease");

    let at_own_end = seats::reclaim_expired(&app.state.db, own, 100)
        .await
        .expect("reclaim");
    assert_eq!((at_own_end.freed, at_own_end.deferred), (0, 1));
    assert_eq!(held(&app).await, 1);
    assert_eq!(ends().await, Some((lease_end, lease_end, lease_end)));
    let before = seats::reclaim_expired(&app.state.db, lease_end - 1, 100)
        .await
        .expect("reclaim");
    assert_eq!((before.freed, before.deferred), (0, 0), "not due again yet");

    // Past the lease's end another machine takes the seat before any reclaim: the lapsed
    // hold gives way, with its lease.
    let (org_id, product_id): (uuid::Uuid, uuid::Uuid) = {
        let mut conn = app.state.db.reader().await.expect("connection");
        on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT org_id, product_id FROM seat_holds"
        )
        .fetch_one(c)
        .await)
        .expect("pool")
    };
    let mut tx = app.state.db.begin().await.expect("transaction");
    let wanted = [("machine-bbbb".to_owned(), lease_end + 1_000)];
    let during = seats::take_upto(&mut tx, org_id, product_id, &wanted, lease_end - 1)
        .await
        .expect("taking a seat");
    assert_eq!(during, vec![None], "the renewed seat is still held");
    let after = seats::take_upto(&mut tx, org_id, product_id, &wanted, lease_end)
        .await
        .expect("taking a seat");
    assert!(after[0].is_some(), "the lapsed seat gives way");
    tx.commit().await.expect("commit");
    assert_eq!(held(&app).await, 1);
    assert_eq!(crate::count(&app, "leases").await, 0);
    let gone = heartbeat(&app, &uma, id, "nonce-too-late").await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// The reclaim frees lapsed seats a batch at a time, each pool's in one transaction, and
/// counts each freed seat in its own pool; live seats stay, and a seat renewed since it was
/// taken is looked at again at its new end.
#[tokio::test]
async fn the_reclaim_frees_lapsed_seats_of_every_pool_in_batches() {
    use entitle_server::{entitlements::seats, on_db};
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    subscribed(&app, &orgs, 5, json!({"overage": "deny"})).await;
    subscribe(
        &app,
        ("road-designer", "Road Designer"),
        &orgs.acme,
        5,
        json!({"overage": "deny"}),
    )
    .await;
    let products: Vec<(uuid::Uuid,)> = {
        let mut conn = app.state.db.reader().await.expect("connection");
        on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT id FROM products ORDER BY code"
        )
        .fetch_all(c)
        .await)
        .expect("products")
    };
    let org_id: uuid::Uuid = orgs.acme.parse().expect("org id");
    let now = entitle_server::db::now_ms();
    // Of each product: three seats lapsing, one live, and one renewed after it was taken
    // (due for review at its first end, but live).
    for (product_id,) in &products {
        let wanted: Vec<(String, i64)> = ["a", "b", "c", "live", "renewed"]
            .iter()
            .map(|m| {
                let until = if *m == "live" {
                    now + 60_000
                } else {
                    now + 1_000
                };
                (format!("machine-{m}"), until)
            })
            .collect();
        let mut tx = app.state.db.begin().await.expect("transaction");
        let holds = seats::take_upto(&mut tx, org_id, *product_id, &wanted, now)
            .await
            .expect("taking seats");
        assert!(holds.iter().all(Option::is_some));
        let (renewed, _) = holds[4].expect("renewed hold");
        seats::extend(&mut tx, renewed, now + 60_000)
            .await
            .expect("renewing");
        tx.commit().await.expect("commit");
    }
    assert_eq!(held(&app).await, 10);
    let pools_held = || async {
        let mut conn = app.state.db.reader().await.expect("connection");
        let pools: Vec<(i64,)> = on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT held FROM seat_pools ORDER BY product_id"
        )
        .fetch_all(c)
        .await)
        .expect("pools");
        pools
    };
    let later = now + 5_000;
    let mut passes = Vec::new();
    loop {
        let pass = seats::reclaim_expired(&app.state.db, later, 4)
            .await
            .expect("reclaim");
        passes.push(pass);
        if !pass.full {
            break;
        }
    }
    assert_eq!(
        passes.len(),
        3,
        "8 due in batches of 4: two full, then none"
    );
    assert_eq!(passes.iter().map(|p| p.freed).sum::<u64>(), 6);
    assert_eq!(
        passes.iter().map(|p| p.deferred).sum::<u64>(),
        2,
        "the renewed holds are due again at their end"
    );
    assert_eq!(
        pools_held().await,
        vec![(2,), (2,)],
        "each pool keeps its live and renewed seats"
    );
    let again = seats::reclaim_expired(&app.state.db, later, 4)
        .await
        .expect("reclaim");
    assert_eq!((again.freed, again.deferred), (0, 0), "nothing due");
    let after_all = seats::reclaim_expired(&app.state.db, now + 61_000, 100)
        .await
        .expect("reclaim");
    assert_eq!((after_all.freed, after_all.full), (4, false));
    assert_eq!(pools_held().await, vec![(0,), (0,)]);
}

/// Asks for a lease for each of `machines` at once, alternately on `app` and on `beside`
/// (two servers of one database): the answers, in order.
async fn acquire_on_both(
    app: &TestApp,
    beside: &TestApp,
    token: &str,
    machines: impl Iterator<Item = String>,
) -> Vec<(StatusCode, Value)> {
    let attempts: Vec<_> = machines
        .enumerate()
        .map(|(i, machine)| {
            let server = if i % 2 == 0 { app } else { beside };
            let request = entitle_testkit::new_client()
                .post(server.url("/api/v1/leases"))
                .bearer_auth(token)
                .json(&lease_request(&machine));
            tokio::spawn(async move {
                let response = request.send().await.expect("post");
                let status = response.status();
                (status, response.json().await.expect("json"))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        answers.push(attempt.await.expect("request"));
    }
    answers
}

/// Many clients race for the last seats, on two servers of one database: seats held never
/// exceed seats owned, and every refusal is `no_seat_available`. Three rounds.
#[tokio::test]
async fn racing_clients_never_hold_more_seats_than_owned() {
    let app = TestApp::spawn().await;
    let beside = app.spawn_beside().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 5, json!({"overage": "deny"})).await;
    for round in 0..3 {
        let machines = (0..24).map(|i| format!("machine-{round}-{i:04}"));
        let attempts = acquire_on_both(&app, &beside, &uma, machines).await;
        let mut granted = Vec::new();
        for (status, body) in attempts {
            match status {
                StatusCode::CREATED => granted.push(body["id"].as_str().expect("id").to_owned()),
                StatusCode::CONFLICT => assert_eq!(body["code"], "no_seat_available", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(granted.len(), 5, "round {round}");
        assert_eq!(held(&app).await, 5, "round {round}");
        for id in granted {
            let status = entitle_testkit::new_client()
                .delete(app.url(&format!("/api/v1/leases/{id}")))
                .bearer_auth(&uma)
                .send()
                .await
                .expect("delete")
                .status();
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        assert_eq!(held(&app).await, 0);
    }
}

/// Every machine asks for a lease on both servers of one database at the same moment:
/// each machine takes one seat, which its two leases share, whichever server writes it.
#[tokio::test]
async fn a_machine_asking_two_servers_at_once_takes_one_seat() {
    let app = TestApp::spawn().await;
    let beside = app.spawn_beside().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 50, json!({"overage": "deny"})).await;
    for round in 0..3 {
        let machines = (0..32).map(|i| format!("shared-{round}-{:04}", i / 2));
        for (status, body) in acquire_on_both(&app, &beside, &uma, machines).await {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        assert_eq!(held(&app).await, 16 * (round + 1), "round {round}");
        let mut conn = app.state.db.reader().await.expect("connection");
        let shared: Vec<(i64,)> = entitle_server::on_db!(&mut conn, |c| sqlx::query_as(
            "SELECT COUNT(*) FROM leases GROUP BY hold_id"
        )
        .fetch_all(c)
        .await)
        .expect("leases by seat");
        assert_eq!(
            shared,
            vec![(2,); 16 * (round as usize + 1)],
            "round {round}"
        );
    }
}

/// The licensing endpoints take the access tokens the provider issues for a person (as
/// the desktop client sends them) for leases and their heartbeats, and refuse them once the
/// person is disabled or the grant is revoked; a service client's token (no person) is
/// refused.
#[tokio::test]
async fn access_tokens_of_people_are_accepted_and_refused_when_their_grant_ends() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    subscribed(&app, &orgs, 3, json!({"overage": "deny"})).await;
    let browser = crate::admin_pages::browser_as(&app, "uma@acme.test").await;
    let tokens = crate::oidc::desktop_tokens(&app, &browser, "openid offline_access").await;
    let access = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let taken = lease(&app, &access, "machine-aaaa").await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    let taken: Value = taken.json().await.expect("lease");
    let heartbeat = |token: String| {
        let (app, path) = (
            &app,
            format!(
                "/api/v1/leases/{}/heartbeat",
                taken["id"].as_str().expect("id")
            ),
        );
        async move {
            app.post_as(&token, &path, &json!({"nonce": "nonce-12345678"}))
                .await
                .status()
        }
    };
    assert_eq!(heartbeat(access.clone()).await, StatusCode::OK);
    let entitlements: Value = app
        .get_as(&access, "/api/v1/me/entitlements")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(entitlements[0]["product"], "civil-designer");

    // A service client's token names no person: refused.
    let operator = app.operator("olga@vendor.example").await;
    let service = crate::oidc::service_client(&app, &operator, "Data source").await;
    let granted: Value = crate::oidc::token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", service["client_id"].as_str().expect("id")),
            (
                "client_secret",
                service["client_secret"].as_str().expect("secret"),
            ),
        ],
    )
    .await
    .json()
    .await
    .expect("token");
    let machine_token = granted["access_token"].as_str().expect("token");
    assert_eq!(
        lease(&app, machine_token, "machine-bbbb").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The access token of a grant since revoked (its refresh token's family): refused.
    let other = crate::oidc::desktop_tokens(&app, &browser, "openid offline_access").await;
    let other_access = other["access_token"].as_str().expect("access token");
    assert_eq!(heartbeat(other_access.to_owned()).await, StatusCode::OK);
    let revoked = entitle_testkit::new_client()
        .post(app.url("/oauth2/revoke"))
        .form(&[
            (
                "token",
                other["refresh_token"].as_str().expect("refresh token"),
            ),
            ("client_id", crate::oidc::DESKTOP),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        heartbeat(other_access.to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        lease(&app, other_access, "machine-bbbb").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(heartbeat(access.clone()).await, StatusCode::OK);

    // A token altered after signing: refused.
    let mut forged = access.clone();
    forged.pop();
    forged.push(if access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        lease(&app, &forged, "machine-bbbb").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Disabled by their administrator: refused at once, not at the token's expiry.
    let uma_id = {
        let page: Value = app
            .get_as(
                &orgs.fiona,
                &format!("/api/v1/orgs/{}/members?q=uma", orgs.acme),
            )
            .await
            .json()
            .await
            .expect("page");
        page["members"][0]["account_id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let disabled = app
        .patch_as(
            &orgs.fiona,
            &format!("/api/v1/orgs/{}/members/{uma_id}", orgs.acme),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        lease(&app, &access, "machine-cccc").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(heartbeat(access.clone()).await, StatusCode::UNAUTHORIZED);
}
