//! SCIM 2.0 over HTTP: tokens confine a client to its organization; users are listed
//! with filters, sorting and pages; errors use the SCIM error schema.

use entitle_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::members::{member, org_with_contact};

pub async fn scim_token(app: &TestApp, admin: &str, org: &str) -> String {
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

pub async fn scim_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    entitle_testkit::new_client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("scim")
}

pub async fn expect_scim_error(
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
    assert_eq!(ann["emails"], json!([{"value": "ann@acme.test"}]));
    assert_eq!(ann["active"], true);
    assert_eq!(ann["roles"][0]["value"], "license_checkout");
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

pub async fn scim_send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = entitle_testkit::new_client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/scim+json");
    if let Some(version) = if_match {
        request = request.header("if-match", version);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    request.send().await.expect("scim")
}

#[tokio::test]
async fn scim_creates_invites_replaces_patches_and_deletes_users_under_the_portals_rules() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.test").await;
    let token = scim_token(&app, &fiona, &acme).await;
    let globex_scim = scim_token(&app, &gus, &globex).await;
    let dana = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "okta|1234",
        "externalId": "00u1",
        "name": {"givenName": "Dana", "familyName": "Scully"},
        "emails": [{"value": "Dana@Acme.test", "primary": true, "type": "work"}],
        "active": true,
    })
    .to_string();

    let created = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Users",
        Some(&dana),
        None,
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let user: Value = created.json().await.expect("user");
    let id = user["id"].as_str().expect("id").to_owned();
    assert!(location.ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(
        (
            user["userName"].as_str(),
            user["externalId"].as_str(),
            user["emails"][0]["value"].as_str()
        ),
        (Some("okta|1234"), Some("00u1"), Some("dana@acme.test"))
    );
    assert_eq!(user["roles"][0]["value"], "user");
    assert_eq!(user["groups"], json!([]));
    app.mail.expect("dana@acme.test", "added to Acme").await;
    let events: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?action=account.created"),
        )
        .await
        .json()
        .await
        .expect("audit");
    assert!(events["events"][0]["actor"]
        .as_str()
        .is_some_and(|a| a.starts_with("scim token ")));

    // The same userName, or someone already in an organization: uniqueness.
    for body in [
        dana.clone(),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "fiona@acme.test",
               "name": {"givenName": "F", "familyName": "C"}}).to_string(),
    ] {
        let response = scim_send(&app, &token, Method::POST, "/scim/v2/Users", Some(&body), None).await;
        expect_scim_error(response, StatusCode::CONFLICT, Some("uniqueness")).await;
    }
    let found: Value = scim_get(
        &app,
        &token,
        "/scim/v2/Users?filter=userName%20eq%20%22OKTA%7C1234%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(found["totalResults"], 1, "userName compares without case");

    // PUT needs the current version when If-Match is sent.
    let path = format!("/scim/v2/Users/{id}");
    let version = user["meta"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let renamed = dana.replace("Scully", "Mulder");
    let stale = scim_send(
        &app,
        &token,
        Method::PUT,
        &path,
        Some(&renamed),
        Some("W/\"stale\""),
    )
    .await;
    expect_scim_error(stale, StatusCode::PRECONDITION_FAILED, None).await;
    let replaced = scim_send(
        &app,
        &token,
        Method::PUT,
        &path,
        Some(&renamed),
        Some(&version),
    )
    .await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let replaced: Value = replaced.json().await.expect("user");
    assert_eq!(replaced["name"]["familyName"], "Mulder");
    assert_ne!(replaced["meta"]["version"], json!(version));
    // The organization owns Dana's identity (it is her home), so it may move her address;
    // not onto someone else's.
    let taken = renamed.replace("Dana@Acme.test", "fiona@acme.test");
    expect_scim_error(
        scim_send(&app, &token, Method::PUT, &path, Some(&taken), None).await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;
    let moved = renamed.replace("Dana@Acme.test", "d.mulder@acme.test");
    let moved = scim_send(&app, &token, Method::PUT, &path, Some(&moved), None).await;
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.expect("user");
    assert_eq!(moved["emails"][0]["value"], "d.mulder@acme.test");
    let by_email: Value = scim_get(
        &app,
        &token,
        "/scim/v2/Users?filter=emails.value%20eq%20%22d.mulder@acme.test%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(by_email["totalResults"], 1);

    // PATCH: deactivating disables the member as the portal does.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]})
    .to_string();
    let patched = scim_send(&app, &token, Method::PATCH, &path, Some(&deactivate), None).await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.expect("user");
    assert_eq!(patched["active"], false);
    let member: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members/{id}"))
        .await
        .json()
        .await
        .expect("member");
    assert_eq!(member["disabled"], true);
    for (body, scim_type) in [
        ("{not json", "invalidSyntax"),
        ("[]", "invalidSyntax"),
        (
            r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": "x"}]}"#,
            "invalidPath",
        ),
    ] {
        expect_scim_error(
            scim_send(&app, &token, Method::PATCH, &path, Some(body), None).await,
            StatusCode::BAD_REQUEST,
            Some(scim_type),
        )
        .await;
    }

    // Another organization's token cannot touch the user.
    for method in [Method::PATCH, Method::DELETE] {
        let response = scim_send(&app, &globex_scim, method, &path, Some(&deactivate), None).await;
        expect_scim_error(response, StatusCode::NOT_FOUND, None).await;
    }

    // DELETE takes them out of the organization; a Fulfillment Contact is beyond the
    // token's Administrator rights.
    let deleted = scim_send(&app, &token, Method::DELETE, &path, None, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_scim_error(
        scim_get(&app, &token, &path).await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    expect_scim_error(
        scim_send(&app, &token, Method::DELETE, &path, None, None).await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let contact: Value = scim_get(
        &app,
        &token,
        "/scim/v2/Users?filter=userName%20eq%20%22fiona@acme.test%22",
    )
    .await
    .json()
    .await
    .expect("list");
    let contact_path = format!(
        "/scim/v2/Users/{}",
        contact["Resources"][0]["id"].as_str().expect("id")
    );
    expect_scim_error(
        scim_send(&app, &token, Method::DELETE, &contact_path, None, None).await,
        StatusCode::FORBIDDEN,
        None,
    )
    .await;
}

/// python-scim's scim2-tester (RFC 7643/7644 checks) against a real server: every check
/// it runs must pass.
#[tokio::test]
async fn scim2_tester_passes_every_check() {
    let scim2 = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/scim/.venv/bin/scim2");
    assert!(
        scim2.exists(),
        "scim2-tester is not installed: run scripts/setup-test-deps.sh"
    );
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let token = scim_token(&app, &fiona, &acme).await;
    let output = tokio::process::Command::new(&scim2)
        .arg("--url")
        .arg(format!("{}/scim/v2", app.base_url))
        .arg("test")
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {token}"))
        .output()
        .await
        .expect("scim2 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            line.split_once(' ').is_some_and(|(status, _)| {
                !status.is_empty() && status.chars().all(|c| c.is_ascii_uppercase())
            })
        })
        .collect();
    let failed: Vec<&&str> = results
        .iter()
        .filter(|l| !l.starts_with("SUCCESS "))
        .collect();
    assert!(
        results.len() >= 30 && failed.is_empty(),
        "scim2-tester: {} checks, failed: {failed:?}\n{stdout}\n{}",
        results.len(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn scim_bulk_applies_operations_in_order_with_bulk_ids_and_limits() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let token = scim_token(&app, &fiona, &acme).await;
    let user = |name: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@acme.test"),
               "name": {"givenName": name, "familyName": "Bulk"}})
    };
    let bulk = |operations: Value, fail_on_errors: Option<u64>| {
        let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": operations});
        if let Some(n) = fail_on_errors {
            body["failOnErrors"] = json!(n);
        }
        body.to_string()
    };
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});

    let request = bulk(
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "kim", "data": user("kim")},
            {"method": "PATCH", "path": "/Users/bulkId:kim", "data": deactivate},
            {"method": "POST", "path": "/Users", "bulkId": "again", "data": user("kim")},
            {"method": "POST", "path": "/Users", "bulkId": "lee", "data": user("lee")},
            {"method": "DELETE", "path": "/Users/bulkId:lee"},
            {"method": "GET", "path": "/Users"},
        ]),
        None,
    );
    let response = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Bulk",
        Some(&request),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("bulk");
    let statuses: Vec<&str> = answer["Operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| o["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["201", "200", "409", "201", "204", "400"]);
    assert_eq!(
        answer["Operations"][2]["response"]["scimType"],
        "uniqueness"
    );
    let kim: Value = scim_get(
        &app,
        &token,
        "/scim/v2/Users?filter=userName%20eq%20%22kim@acme.test%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(
        kim["Resources"][0]["active"], false,
        "patched through its bulkId"
    );
    let lee: Value = scim_get(
        &app,
        &token,
        "/scim/v2/Users?filter=userName%20eq%20%22lee@acme.test%22",
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(
        lee["totalResults"], 0,
        "created, then deleted through its bulkId"
    );

    // failOnErrors stops after that many errors.
    let request = bulk(
        json!([
            {"method": "PATCH", "path": "/Users/bulkId:nobody", "data": deactivate},
            {"method": "POST", "path": "/Users", "bulkId": "max", "data": user("max")},
        ]),
        Some(1),
    );
    let answer: Value = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Bulk",
        Some(&request),
        None,
    )
    .await
    .json()
    .await
    .expect("bulk");
    assert_eq!(answer["Operations"].as_array().map(Vec::len), Some(1));

    // Over 1,000 operations, or not a bulk request at all.
    let many: Vec<Value> = (0..1001)
        .map(|n| json!({"method": "DELETE", "path": format!("/Users/{n}")}))
        .collect();
    expect_scim_error(
        scim_send(
            &app,
            &token,
            Method::POST,
            "/scim/v2/Bulk",
            Some(&bulk(json!(many), None)),
            None,
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("tooMany"),
    )
    .await;
    for body in [
        r#"{"Operations": []}"#,
        "not json",
        r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 0, "Operations": []}"#,
    ] {
        expect_scim_error(
            scim_send(
                &app,
                &token,
                Method::POST,
                "/scim/v2/Bulk",
                Some(body),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
        )
        .await;
    }
}

/// Bodies over the size limit are refused in SCIM's words, like every other SCIM error.
#[tokio::test]
async fn scim_bodies_over_the_limit_are_scim_errors() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.test").await;
    let token = scim_token(&app, &fiona, &acme).await;
    let big = format!("{{\"displayName\": \"{}\"}}", "x".repeat(300 * 1024));
    for path in [
        "/scim/v2/Users",
        "/scim/v2/Groups",
        "/scim/v2/.search",
        "/scim/v2/Users/.search",
    ] {
        let response = scim_send(&app, &token, Method::POST, path, Some(&big), None).await;
        expect_scim_error(response, StatusCode::PAYLOAD_TOO_LARGE, None).await;
    }
    let bulk = format!("{{\"x\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let response = scim_send(
        &app,
        &token,
        Method::POST,
        "/scim/v2/Bulk",
        Some(&bulk),
        None,
    )
    .await;
    expect_scim_error(response, StatusCode::PAYLOAD_TOO_LARGE, None).await;
    // A method a SCIM path does not take is a SCIM error too.
    let response = scim_send(
        &app,
        &token,
        Method::PUT,
        "/scim/v2/Users",
        Some("{}"),
        None,
    )
    .await;
    expect_scim_error(response, StatusCode::METHOD_NOT_ALLOWED, None).await;
}
