//! Usage events folded into the stored aggregates: the same usage as the rules compute
//! from all the events at once, whatever order and batches they arrive in.

use std::collections::BTreeMap;

use entitle_server::{
    entitlements::usage::{record, Kind, NewEvent, Source},
    metering::{
        fold::{fold_pending, stored_usage},
        rules::{Event, Presence, DAY_MS},
    },
};
use entitle_testkit::TestApp;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use uuid::Uuid;

/// 2026-03-31T12:00:00Z.
const NOON: i64 = 1_774_958_400_000;

fn random_events(rng: &mut StdRng, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|_| {
            let session: u128 = rng.gen_range(0..40);
            let kind = Kind::ALL[rng.gen_range(0..Kind::ALL.len())];
            let at = NOON + rng.gen_range(-DAY_MS..DAY_MS);
            let event = Event {
                kind,
                session: format!("s{session}"),
                at,
                until: if kind == Kind::ReservedUse {
                    at + rng.gen_range(0..4 * 3_600_000)
                } else {
                    at
                },
                account: Uuid::from_u128(session % 7),
                home_org: (!session.is_multiple_of(5)).then(|| Uuid::from_u128(100)),
                billed_org: (kind != Kind::Denial).then(|| Uuid::from_u128(100 + session % 2)),
                source: if kind == Kind::ReservedUse {
                    Source::Reserved
                } else {
                    Source::Own
                },
                product: Uuid::from_u128(1 + (session / 2) % 2),
                machine: format!("m{}", session % 9),
            };
            NewEvent {
                event,
                version: "2026".into(),
                datasource: None,
                detail: None,
            }
        })
        .collect()
}

#[tokio::test]
async fn folded_events_give_the_usage_the_rules_compute_in_any_order_and_batches() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let mut rng = StdRng::seed_from_u64(15);
    let events = random_events(&mut rng, 600);
    let expected = Presence::of(events.iter().map(|e| &e.event));

    // Recorded shuffled, in transactions of random sizes, folded now and then in random
    // batches: late events correct intervals already counted.
    let mut shuffled = events.clone();
    shuffled.shuffle(&mut rng);
    let mut rest = &shuffled[..];
    while !rest.is_empty() {
        let take = rng.gen_range(1..=rest.len().min(80));
        let mut tx = db.begin().await.expect("begin");
        record(&mut tx, &rest[..take]).await.expect("record");
        tx.commit().await.expect("commit");
        rest = &rest[take..];
        if rng.gen_bool(0.5) {
            fold_pending(db, rng.gen_range(1..200)).await.expect("fold");
        }
    }
    while fold_pending(db, 97).await.expect("fold") > 0 {}

    let mut conn = db.reader().await.expect("reader");
    let (from, to) = (NOON - 2 * DAY_MS, NOON + 2 * DAY_MS);
    for org in [100, 101] {
        for product in [1, 2] {
            let (org, product) = (Uuid::from_u128(org), Uuid::from_u128(product));
            let stored = stored_usage(&mut conn, org, product, from, to)
                .await
                .expect("stored usage");
            let computed: BTreeMap<i64, i64> = expected.usage(org, product);
            assert!(!computed.is_empty());
            assert_eq!(stored, computed, "org {org} product {product}");
        }
    }
    // Nothing is left to fold, and folding again changes nothing.
    assert_eq!(fold_pending(db, 1000).await.expect("fold"), 0);
}

#[tokio::test]
async fn a_subscriptions_changes_are_the_seats_from_the_moment_they_are_made() {
    let app = TestApp::spawn().await;
    let orgs = crate::members::acme_and_globex(&app).await;
    let operator = app.operator("olga@vendor.example").await;
    let product: serde_json::Value = app
        .post_as(
            &operator,
            "/api/v1/products",
            &serde_json::json!({"code": "bridge", "name": "Bridge"}),
        )
        .await
        .json()
        .await
        .expect("product");
    let product = Uuid::parse_str(product["id"].as_str().expect("id")).expect("uuid");
    let now = entitle_server::db::now_ms();
    let subscription: serde_json::Value = app
        .post_as(
            &operator,
            "/api/v1/subscriptions",
            &serde_json::json!({"org_id": orgs.acme, "products": ["bridge"], "seats": 10,
                "starts_at": now - DAY_MS, "ends_at": now + 30 * DAY_MS, "overage": "deny"}),
        )
        .await
        .json()
        .await
        .expect("subscription");
    let id = subscription["id"].as_str().expect("id");
    for change in [
        app.patch_as(
            &operator,
            &format!("/api/v1/subscriptions/{id}"),
            &serde_json::json!({"seats": 12}),
        )
        .await,
        app.post_as(
            &operator,
            &format!("/api/v1/subscriptions/{id}/end"),
            &serde_json::json!({}),
        )
        .await,
    ] {
        assert!(change.status().is_success(), "{}", change.status());
    }

    let mut conn = app.state.db.reader().await.expect("reader");
    let org = Uuid::parse_str(&orgs.acme.to_string()).expect("org");
    let terms = entitle_server::metering::terms::terms_of(&mut conn, org)
        .await
        .expect("terms");
    assert_eq!(terms.len(), 3, "{terms:?}");
    let steps = entitle_server::metering::rules::seat_steps(&terms, product);
    // 10 seats from its creation, 12 from the change, none from its end (the backdated
    // start grants nothing before the subscription was made).
    let seats: Vec<i64> = steps.iter().map(|&(_, seats)| seats).collect();
    assert_eq!(seats, vec![10, 12, 0], "{steps:?}");
    assert!(steps[0].0 >= now && steps[2].0 >= steps[1].0);
    assert!(terms.iter().all(|t| t.products == vec![product]));
}

#[tokio::test]
async fn raw_events_past_their_retention_go_and_the_usage_stays() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let mut rng = StdRng::seed_from_u64(400);
    let events = random_events(&mut rng, 200);
    let mut tx = db.begin().await.expect("begin");
    record(&mut tx, &events).await.expect("record");
    tx.commit().await.expect("commit");
    // (The server folds in the background too; either way all are folded here.)
    while fold_pending(db, 1000).await.expect("fold") > 0 {}
    let (org, product) = (Uuid::from_u128(100), Uuid::from_u128(1));
    let usage_around_noon = || async {
        let mut conn = db.reader().await.expect("reader");
        stored_usage(
            &mut conn,
            org,
            product,
            NOON - 2 * DAY_MS,
            NOON + 2 * DAY_MS,
        )
        .await
        .expect("usage")
    };
    let before = usage_around_noon().await;
    assert!(!before.is_empty());
    // Those of the first day go; the others stay.
    let purged = entitle_server::metering::fold::purge_raw(db, NOON)
        .await
        .expect("purge");
    let old = events.iter().filter(|e| e.event.at < NOON).count() as u64;
    assert_eq!(purged, old);
    assert_eq!(crate::count(&app, "usage_events").await as u64, 200 - old);
    assert_eq!(before, usage_around_noon().await);
}
