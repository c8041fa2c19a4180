//! Bulk checkout over HTTP: stage a CSV file, see every row's status, take rows out,
//! commit all-or-nothing under the seat limit; who may; and files that cannot be staged.

use entitle_testkit::{expect_problem, new_client, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::leases::{held, lease, subscribed};
use crate::members::acme_and_globex;

async fn stage(app: &TestApp, token: &str, org: &str, file: &[u8]) -> Response {
    new_client()
        .post(app.url(&format!(
            "/api/v1/orgs/{org}/checkout-batches?file_name=site.csv"
        )))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(file.to_vec())
        .send()
        .await
        .expect("stage")
}

fn day(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

fn statuses(batch: &Value) -> Vec<String> {
    batch["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_owned())
        .collect()
}

#[tokio::test]
async fn a_file_is_staged_trimmed_and_committed_all_or_nothing_within_the_seats() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let uma = subscribed(&app, &orgs, 3, json!({"overage": "deny"})).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    // One seat is leased already: two are free.
    assert_eq!(
        lease(&app, &uma, "machine-aaaa").await.status(),
        StatusCode::CREATED
    );
    let in_month = day(20);
    let file = format!(
        "Email,Product,Version,Machine,Expires\r\n\
         ann@supplier.example,civil-designer,24.*,ANN-PC,{in_month}\r\n\
         bob@supplier.example,civil-designer,24.*,ann-pc,{in_month}\r\n\
         not an address,civil-designer,24.*,X,{in_month}\r\n\
         ann@supplier.example,civil-designer,24.1,ANN-PC,{in_month}\r\n\
         cy@supplier.example,bridge-analyst,1,CY-PC,{in_month}\r\n\
         dee@supplier.example,civil-designer,24.*,DEE-PC,{in_month}\r\n\
         eve@supplier.example,civil-designer,24.*,EVE-PC,{in_month}\r\n\
         fay@supplier.example,civil-designer,24.*,FAY-PC,{}\r\n",
        day(60)
    );
    let staged = stage(&app, fiona, acme, file.as_bytes()).await;
    assert_eq!(staged.status(), StatusCode::CREATED);
    let batch: Value = staged.json().await.expect("batch");
    assert_eq!(
        statuses(&batch),
        vec![
            "valid",
            "valid",
            "invalid",
            "duplicate",
            "invalid",
            "valid",
            "no_seat",
            "invalid"
        ],
        "{batch:#}"
    );
    assert!(batch["rows"][4]["details"]
        .as_str()
        .expect("details")
        .contains("no product has the code bridge-analyst"));
    assert!(batch["rows"][7]["details"]
        .as_str()
        .expect("details")
        .contains("past the end of the subscription"));
    assert_eq!(held(&app).await, 1, "staging takes no seat");
    let id = batch["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/orgs/{acme}/checkout-batches/{id}");

    // Another organization, and a member without the right, see nothing of it.
    assert_eq!(
        app.get_as(&orgs.gus, &path).await.status(),
        StatusCode::NOT_FOUND
    );
    expect_problem(
        app.get_as(&orgs.cory, &path).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    expect_problem(
        stage(&app, &uma, acme, file.as_bytes()).await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;

    // Take out the rows that cannot be checked out, and the second valid one.
    let trimmed: Value = app
        .post_as(fiona, &format!("{path}/remove-invalid"), &json!({}))
        .await
        .json()
        .await
        .expect("batch");
    assert_eq!(trimmed["counts"]["removed"], 5);
    let response = app.delete_as(fiona, &format!("{path}/rows/2")).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Meanwhile the last free seat is leased: committing changes nothing.
    assert_eq!(
        lease(&app, &uma, "machine-bbbb").await.status(),
        StatusCode::CREATED
    );
    let refused = app
        .post_as(fiona, &format!("{path}/commit"), &json!({}))
        .await;
    expect_problem(refused, StatusCode::CONFLICT, "batch_changed").await;
    let after: Value = app.get_as(fiona, &path).await.json().await.expect("batch");
    assert_eq!(after["rows"][5]["status"], "no_seat");
    assert!(after["committed_at"].is_null());
    assert_eq!(held(&app).await, 2, "nothing was checked out");
    let listed: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/checkouts"))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(0));

    // A second file: both rows share one machine, so they take the one free seat.
    let second = stage(
        &app,
        fiona,
        acme,
        format!(
            "Email,Product,Version,Machine,Expires\n\
             ann@supplier.example,civil-designer,24.*,ANN-PC,{in_month}\n\
             bob@supplier.example,civil-designer,24.*,ann-pc,{in_month}\n"
        )
        .as_bytes(),
    )
    .await;
    let second: Value = second.json().await.expect("batch");
    assert_eq!(statuses(&second), vec!["valid", "valid"]);
    let second_path = format!(
        "/api/v1/orgs/{acme}/checkout-batches/{}",
        second["id"].as_str().expect("id")
    );
    let committed: Value = app
        .post_as(fiona, &format!("{second_path}/commit"), &json!({}))
        .await
        .json()
        .await
        .expect("batch");
    assert!(committed["committed_at"].is_i64(), "{committed:#}");
    assert_eq!(committed["rows"][0]["result"], "checked_out");
    assert!(committed["rows"][1]["checkout_id"].is_string());
    assert_eq!(held(&app).await, 3, "one seat for the machine both share");
    let again: Value = app
        .post_as(fiona, &format!("{second_path}/commit"), &json!({}))
        .await
        .json()
        .await
        .expect("batch");
    assert_eq!(again["committed_at"], committed["committed_at"]);
    assert_eq!(held(&app).await, 3, "committing again does nothing");
    expect_problem(
        app.delete_as(fiona, &second_path).await,
        StatusCode::CONFLICT,
        "batch_committed",
    )
    .await;
    let seats: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/seats"))
        .await
        .json()
        .await
        .expect("seats");
    assert_eq!(
        seats,
        json!([{"product": "civil-designer", "product_name": "Civil Designer", "seats": 3,
            "cap": 3, "leased": 2, "reserved": 1, "overage": 0,
            "ends_at": seats[0]["ends_at"]}])
    );
    expect_problem(
        app.get_as(&uma, &format!("/api/v1/orgs/{acme}/seats"))
            .await,
        StatusCode::FORBIDDEN,
        "role_required",
    )
    .await;
    let subscriptions: Value = app
        .get_as(&orgs.cory, &format!("/api/v1/orgs/{acme}/subscriptions"))
        .await
        .json()
        .await
        .expect("subscriptions");
    assert_eq!(subscriptions[0]["seats"], 3);
}

#[tokio::test]
async fn files_that_cannot_be_staged_are_refused_whole() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    subscribed(&app, &orgs, 3, json!({"overage": "deny"})).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    let mut huge = String::from("Email,Product,Version,Machine,Expires\n");
    for i in 0..1001 {
        huge.push_str(&format!(
            "p{i}@example.com,civil-designer,1,PC-{i},{}\n",
            day(5)
        ));
    }
    for (file, code, says) in [
        (&b""[..], "unreadable_file", "The file is empty"),
        (
            b"Email;Product;Version;Machine;Expires\n",
            "unreadable_file",
            "\";\"",
        ),
        (
            b"Email,Product,Machine\na@example.com,x,y\n",
            "unreadable_file",
            "lacks the columns Version, Expires",
        ),
        (
            b"\x89PNG\r\n\x1a\n\0\0",
            "unreadable_file",
            "not a CSV text file",
        ),
        (
            b"Email,Product,Version,Machine,Expires,Colour\n",
            "unreadable_file",
            "\"Colour\"",
        ),
        (huge.as_bytes(), "too_many_rows", "1001 checkouts"),
    ] {
        let problem = expect_problem(
            stage(&app, fiona, acme, file).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["code"], code);
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
    }
    let too_large = stage(&app, fiona, acme, &vec![b'a'; 2 * 1024 * 1024]).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let listed: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/checkout-batches"))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed, json!([]), "nothing half-written");
    let template = app.get("/api/v1/checkout-batches/template").await;
    assert_eq!(
        template.text().await.expect("csv"),
        "Email,Product,Version,Machine,Expires\r\n"
    );
}
