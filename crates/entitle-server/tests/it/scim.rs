//! SCIM 2.0 over HTTP: tokens confine a client to its organization; users are listed
//! with filters, sorting and pages; errors use the SCIM error schema.

use entitle_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{member, org_with_contact};

async fn scim_token(app: &TestApp, admin: &str, org: &str) -> String {
    let created: Value = app
        .post_as(
            admin,
            &format!("/api/v1/orgs/{org}/scim-tokens"),
            &json!({"name": "IdP"}),
        )
        .await
        .json()
        .await
        .expect("token");
    created["token"].as_str().expect("secret").to_owned()
}

async fn scim_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    entitle_testkit::new_client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("scim")
}

async fn expect_scim_error(
    response: reqwest::Response,
    status: StatusCode,
    scim_type: Option<&str>,
) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/scim+json")
    );
    let body: Value = response.json().await.expect("error");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], status.as_u16().to_string());
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
}

#[tokio::test]
async fn scim_users_are_listed_filtered_sorted_and_paged_within_the_tokens_organization() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let (ann_id, _) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "ann@acme.test",
        &["license_checkout"],
    )
    .await;
    member(&app, &fiona, &acme, "Acme", "bob@acme.test", &[]).await;
    let acme_scim = scim_token(&app, &fiona, &acme).await;
    let globex_scim = scim_token(&app, &gus, &globex).await;

    // No token, a session token, a forged one: 401 in SCIM's words.
    let anonymous = entitle_testkit::new_client()
        .get(app.url("/scim/v2/Users"))
        .send()
        .await
        .expect("scim");
    assert_eq!(
        anonymous.headers()["www-authenticate"].to_str().ok(),
        Some("Bearer realm=\"scim\"")
    );
    expect_scim_error(anonymous, StatusCode::UNAUTHORIZED, None).await;
    for token in [
        fiona.as_str(),
        "entitle_scim_forged",
        &acme_scim[..acme_scim.len() - 1],
    ] {
        expect_scim_error(
            scim_get(&app, token, "/scim/v2/Users").await,
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
    }

    let all: Value = scim_get(&app, &acme_scim, "/scim/v2/Users")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(
        all["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(
        (all["totalResults"].as_i64(), all["itemsPerPage"].as_i64()),
        (Some(3), Some(3))
    );

    let found = scim_get(
        &app,
        &acme_scim,
        "/scim/v2/Users?filter=userName%20eq%20%22ANN@acme.test%22",
    )
    .await;
    assert_eq!(found.status(), StatusCode::OK);
    let found: Value = found.json().await.expect("list");
    assert_eq!(found["totalResults"], 1);
    let ann = &found["Resources"][0];
    assert_eq!(ann["id"], json!(ann_id));
    assert_eq!(ann["userName"], "ann@acme.test");
    assert_eq!(
        ann["emails"],
        json!([{"value": "ann@acme.test", "type": "work", "primary": true}])
    );
    assert_eq!(ann["active"], true);
    assert_eq!(ann["groups"][0]["value"], "license_checkout");
    assert_eq!(ann["meta"]["resourceType"], "User");

    let one = scim_get(&app, &acme_scim, &format!("/scim/v2/Users/{ann_id}")).await;
    assert_eq!(one.status(), StatusCode::OK);
    let etag = one.headers()["etag"].to_str().expect("etag").to_owned();
    let one: Value = one.json().await.expect("user");
    assert_eq!(one["meta"]["version"], json!(etag));
    assert!(etag.starts_with("W/\""));

    let page: Value = scim_get(
        &app,
        &acme_scim,
        "/scim/v2/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=1",
    )
    .await
    .json()
    .await
    .expect("page");
    assert_eq!(
        (
            page["totalResults"].as_i64(),
            page["startIndex"].as_i64(),
            page["itemsPerPage"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(page["Resources"][0]["userName"], "bob@acme.test");
    let counted: Value = scim_get(&app, &acme_scim, "/scim/v2/Users?count=0")
        .await
        .json()
        .await
        .expect("count");
    assert_eq!(
        (
            counted["totalResults"].as_i64(),
            counted["Resources"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    let filtered: Value = scim_get(
        &app,
        &acme_scim,
        "/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20sw%20%22b%22%5D%20or%20name.givenName%20eq%20%22FIONA%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(filtered["totalResults"], 2);

    // Another organization's token sees none of it.
    expect_scim_error(
        scim_get(&app, &globex_scim, &format!("/scim/v2/Users/{ann_id}")).await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let none: Value = scim_get(
        &app,
        &globex_scim,
        "/scim/v2/Users?filter=userName%20eq%20%22ann@acme.test%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(none["totalResults"], 0);

    // Malformed requests.
    for (query, scim_type) in [
        ("filter=userName%20eq", "invalidFilter"),
        ("filter=password%20eq%20%22x%22", "invalidFilter"),
        ("count=ten", "invalidValue"),
        ("sortBy=password", "invalidValue"),
        ("sortOrder=sideways", "invalidValue"),
    ] {
        expect_scim_error(
            scim_get(&app, &acme_scim, &format!("/scim/v2/Users?{query}")).await,
            StatusCode::BAD_REQUEST,
            Some(scim_type),
        )
        .await;
    }
    expect_scim_error(
        scim_get(&app, &acme_scim, "/scim/v2/Users/not-an-id").await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;

    // A revoked token stops working at once.
    let tokens: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/scim-tokens"))
        .await
        .json()
        .await
        .expect("tokens");
    let id = tokens[0]["id"].as_str().expect("id");
    let revoked = entitle_testkit::new_client()
        .delete(app.url(&format!("/api/v1/orgs/{acme}/scim-tokens/{id}")))
        .bearer_auth(&fiona)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    expect_scim_error(
        scim_get(&app, &acme_scim, "/scim/v2/Users").await,
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
}
