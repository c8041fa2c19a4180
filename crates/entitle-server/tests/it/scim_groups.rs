//! SCIM Groups over HTTP: the identity provider's groups, their members, and the roles
//! administrators map them to, within the token's organization.

use entitle_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    members::{acme_and_globex, member, TwoOrgs},
    scim::{expect_scim_error, scim_get, scim_send, scim_token},
};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).expect("json")
}

async fn create_group(app: &TestApp, token: &str, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let body = json!({"schemas": [GROUP], "displayName": name, "members": members});
    json_of(
        scim_send(
            app,
            token,
            Method::POST,
            "/scim/v2/Groups",
            Some(&body.to_string()),
            None,
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

async fn patch_group(app: &TestApp, token: &str, id: &str, operations: Value) -> StatusCode {
    let body = json!({"schemas": [PATCH], "Operations": operations});
    let response = scim_send(
        app,
        token,
        Method::PATCH,
        &format!("/scim/v2/Groups/{id}"),
        Some(&body.to_string()),
        None,
    )
    .await;
    response.status()
}

async fn expect_status(response: reqwest::Response, status: StatusCode) {
    let got = response.status();
    assert_eq!(got, status, "{}", response.text().await.unwrap_or_default());
}

/// A member's roles as the member API shows them, alphabetically.
async fn roles(app: &TestApp, admin: &str, org: &str, account: &str) -> Vec<String> {
    let member: Value = app
        .get_as(admin, &format!("/api/v1/orgs/{org}/members/{account}"))
        .await
        .json()
        .await
        .expect("member");
    member["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn map(app: &TestApp, admin: &str, org: &str, group: &str, role: Value) -> reqwest::Response {
    app.new_client()
        .put(app.url(&format!("/api/v1/orgs/{org}/scim-groups/{group}/role")))
        .bearer_auth(admin)
        .json(&json!({ "role": role }))
        .send()
        .await
        .expect("map")
}

#[tokio::test]
async fn groups_mapped_to_roles_give_them_and_take_back_only_what_they_gave() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme, fiona, cory, ..
    } = acme_and_globex(&app).await;
    let (ann, _) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "ann@acme.test",
        &["user", "license_checkout"],
    )
    .await;
    let (bob, _) = member(&app, &fiona, &acme, "Acme", "bob@acme.test", &[]).await;
    let fiona_id: Value = app
        .get_as(&fiona, "/api/v1/me")
        .await
        .json()
        .await
        .expect("me");
    let fiona_id = fiona_id["id"].as_str().expect("id").to_owned();
    let token = scim_token(&app, &fiona, &acme).await;

    // A group named after a role is mapped to it; a Fulfillment Contact is left alone.
    let admins = create_group(&app, &token, "Co-Administrator", &[&ann, &fiona_id]).await;
    assert_eq!(admins["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(admins["members"][0]["type"], "User");
    assert_eq!(
        roles(&app, &fiona, &acme, &ann).await,
        ["co_administrator", "license_checkout", "user"]
    );
    assert_eq!(
        roles(&app, &fiona, &acme, &fiona_id).await,
        ["fulfillment_contact"]
    );

    // Another name maps to nothing until an administrator maps it.
    let engineers = create_group(&app, &token, "Engineers", &[&ann, &bob]).await;
    let engineers_id = engineers["id"].as_str().expect("id");
    assert_eq!(roles(&app, &fiona, &acme, &bob).await, ["user"]);
    let mapped = map(&app, &fiona, &acme, engineers_id, json!("Usage Reports")).await;
    assert_eq!(mapped.status(), StatusCode::OK);
    let mapped: Value = mapped.json().await.expect("summary");
    assert_eq!(mapped["role"], "usage_reports");
    assert_eq!(mapped["member_count"], 2);
    assert_eq!(
        roles(&app, &fiona, &acme, &bob).await,
        ["usage_reports", "user"]
    );
    let user: Value = scim_get(&app, &token, &format!("/scim/v2/Users/{bob}"))
        .await
        .json()
        .await
        .expect("user");
    assert_eq!(user["groups"][0]["value"], engineers_id);
    assert_eq!(user["groups"][0]["display"], "Engineers");
    assert_eq!(user["roles"][0]["value"], "usage_reports");

    // Nobody maps a group to Fulfillment Contact, and a Co-Administrator cannot map one
    // to Administrator (nor unmap one from it).
    expect_status(
        map(
            &app,
            &fiona,
            &acme,
            engineers_id,
            json!("fulfillment_contact"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_status(
        map(&app, &cory, &acme, engineers_id, json!("administrator")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_status(
        map(&app, &fiona, &acme, engineers_id, json!("boss")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_status(
        map(&app, &fiona, &acme, "not-a-group", json!("user")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(
        map(
            &app,
            &fiona,
            &acme,
            &Uuid::now_v7().to_string(),
            json!("user"),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A Co-Administrator's mapping leaves alone the members they could not change by
    // hand.
    let (adam, _) = member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "adam@acme.test",
        &["administrator"],
    )
    .await;
    let auditors = create_group(&app, &token, "Auditors", &[&bob, &adam]).await;
    let auditors_id = auditors["id"].as_str().expect("id");
    expect_status(
        map(&app, &cory, &acme, auditors_id, json!("usage_reports")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(roles(&app, &fiona, &acme, &adam).await, ["administrator"]);
    assert_eq!(
        roles(&app, &fiona, &acme, &bob).await,
        ["usage_reports", "user"]
    );
    let deleted = scim_send(
        &app,
        &token,
        Method::DELETE,
        &format!("/scim/v2/Groups/{auditors_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // Leaving a group takes back the role it gave, not the same role given by hand.
    let checkout = create_group(&app, &token, "license checkout", &[&ann, &bob]).await;
    let checkout_id = checkout["id"].as_str().expect("id");
    assert!(roles(&app, &fiona, &acme, &bob)
        .await
        .contains(&"license_checkout".to_owned()));
    let status = patch_group(
        &app,
        &token,
        checkout_id,
        json!([{"op": "remove", "path": format!("members[value eq \"{ann}\" or value eq \"{bob}\"]")}]),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        roles(&app, &fiona, &acme, &bob).await,
        ["usage_reports", "user"]
    );
    assert!(roles(&app, &fiona, &acme, &ann)
        .await
        .contains(&"license_checkout".to_owned()));

    // Unmapping and deleting take the groups' roles back.
    assert_eq!(
        map(&app, &fiona, &acme, engineers_id, Value::Null)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(roles(&app, &fiona, &acme, &bob).await, ["user"]);
    let deleted = scim_send(
        &app,
        &token,
        Method::DELETE,
        &format!("/scim/v2/Groups/{}", admins["id"].as_str().expect("id")),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        roles(&app, &fiona, &acme, &ann).await,
        ["license_checkout", "user"]
    );

    // The administrators' list, and the audit trail.
    let groups: Value = app
        .get_as(&cory, &format!("/api/v1/orgs/{acme}/scim-groups"))
        .await
        .json()
        .await
        .expect("groups");
    let names: Vec<&str> = groups
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|g| g["display_name"].as_str())
        .collect();
    assert_eq!(names, ["Engineers", "license checkout"]);
    let audit: Value = app
        .get_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/audit?action=org.group_mapped"),
        )
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(3), "{audit}");
}

#[tokio::test]
async fn scim_groups_are_filtered_versioned_and_confined_to_the_tokens_organization() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme,
        fiona,
        globex,
        gus,
        ..
    } = acme_and_globex(&app).await;
    let (ann, _) = member(&app, &fiona, &acme, "Acme", "ann@acme.test", &[]).await;
    let (bob, _) = member(&app, &fiona, &acme, "Acme", "bob@acme.test", &[]).await;
    let (gina, _) = member(&app, &gus, &globex, "Globex", "gina@globex.test", &[]).await;
    let token = scim_token(&app, &fiona, &acme).await;
    let globex_token = scim_token(&app, &gus, &globex).await;
    let sales = create_group(&app, &token, "Sales", &[&ann]).await;
    let sales_id = sales["id"].as_str().expect("id").to_owned();
    create_group(&app, &token, "Engineering", &[&bob]).await;

    // Filters, attribute selection and sorting.
    let list = |query: &str| {
        let path = format!("/scim/v2/Groups?{query}");
        let app = &app;
        let token = &token;
        async move { json_of(scim_get(app, token, &path).await, StatusCode::OK).await }
    };
    let found = list("filter=displayName%20eq%20%22sales%22").await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["members"][0]["value"], ann.as_str());
    let found = list(&format!("filter=members%5Bvalue%20eq%20%22{bob}%22%5D")).await;
    assert_eq!(found["Resources"][0]["displayName"], "Engineering");
    let found = list("sortBy=displayName&sortOrder=descending&excludedAttributes=members").await;
    assert_eq!(found["totalResults"], 2);
    assert_eq!(found["Resources"][0]["displayName"], "Sales");
    assert!(found["Resources"][0].get("members").is_none());
    let found = list("filter=displayName%20sw%20%22E%22%20and%20not%20(members%20pr)").await;
    assert_eq!(found["totalResults"], 0);
    expect_scim_error(
        scim_get(
            &app,
            &token,
            "/scim/v2/Groups?filter=userName%20eq%20%22x%22",
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("invalidFilter"),
    )
    .await;

    // PATCH answers 204, or the group when attributes are asked for; versions move.
    let version = sales["meta"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let body = json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": bob}, {"value": ann}]},
        {"op": "replace", "path": "displayName", "value": "Sales EMEA"},
    ]});
    let patched = json_of(
        scim_send(
            &app,
            &token,
            Method::PATCH,
            &format!("/scim/v2/Groups/{sales_id}?attributes=members,displayName"),
            Some(&body.to_string()),
            Some(&version),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["displayName"], "Sales EMEA");
    assert_eq!(patched["members"].as_array().map(Vec::len), Some(2));
    assert_ne!(patched["meta"]["version"].as_str(), Some(version.as_str()));
    expect_scim_error(
        scim_send(
            &app,
            &token,
            Method::PUT,
            &format!("/scim/v2/Groups/{sales_id}"),
            Some(&json!({"schemas": [GROUP], "displayName": "Sales"}).to_string()),
            Some(&version),
        )
        .await,
        StatusCode::PRECONDITION_FAILED,
        None,
    )
    .await;
    // PUT replaces every member.
    let replaced = json_of(
        scim_send(
            &app,
            &token,
            Method::PUT,
            &format!("/scim/v2/Groups/{sales_id}"),
            Some(
                &json!({"schemas": [GROUP], "displayName": "Sales", "members": [{"value": bob}]})
                    .to_string(),
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        replaced["members"],
        json!([{"value": bob, "type": "User", "$ref": app.url(&format!("/scim/v2/Users/{bob}"))}])
    );

    // Bad requests change nothing.
    for (body, status, scim_type) in [
        (
            json!({"schemas": [GROUP], "displayName": "engineering"}),
            StatusCode::CONFLICT,
            "uniqueness",
        ),
        (
            json!({"schemas": [GROUP], "displayName": "X", "members": [{"value": gina}]}),
            StatusCode::BAD_REQUEST,
            "invalidValue",
        ),
        (
            json!({"schemas": [GROUP], "displayName": "X", "members": [{"value": "not-an-id"}]}),
            StatusCode::BAD_REQUEST,
            "invalidValue",
        ),
        (
            json!({"schemas": [GROUP], "displayName": " "}),
            StatusCode::BAD_REQUEST,
            "invalidValue",
        ),
        (
            json!({"displayName": "X"}),
            StatusCode::BAD_REQUEST,
            "invalidSyntax",
        ),
    ] {
        expect_scim_error(
            scim_send(
                &app,
                &token,
                Method::POST,
                "/scim/v2/Groups",
                Some(&body.to_string()),
                None,
            )
            .await,
            status,
            Some(scim_type),
        )
        .await;
    }
    for raw in ["{", "[]", "null"] {
        expect_scim_error(
            scim_send(
                &app,
                &token,
                Method::POST,
                "/scim/v2/Groups",
                Some(raw),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
        )
        .await;
    }
    let status = patch_group(
        &app,
        &token,
        &sales_id,
        json!([{"op": "add", "path": "members", "value": [{"value": ann}, {"value": gina}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unchanged = json_of(
        scim_get(&app, &token, &format!("/scim/v2/Groups/{sales_id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        unchanged["members"].as_array().map(Vec::len),
        Some(1),
        "nothing of a refused patch stays"
    );
    let listed = json_of(
        scim_get(&app, &token, "/scim/v2/Groups").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["totalResults"], 2);

    // Another organization's token sees none of it.
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let body = json!({"schemas": [GROUP, PATCH], "displayName": "Mine", "Operations": [{"op": "remove", "path": "members"}]});
        let response = scim_send(
            &app,
            &globex_token,
            method.clone(),
            &format!("/scim/v2/Groups/{sales_id}"),
            Some(&body.to_string()),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method}");
    }
    let theirs = json_of(
        scim_get(&app, &globex_token, "/scim/v2/Groups").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs["totalResults"], 0);
    expect_status(
        app.get_as(&gus, &format!("/api/v1/orgs/{acme}/scim-groups"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(
        map(&app, &gus, &acme, &sales_id, json!("user")).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A root search lists users, then groups; a user who leaves the organization leaves
    // its groups.
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "displayName sw \"s\"", "count": 10});
    let found = json_of(
        scim_send(
            &app,
            &token,
            Method::POST,
            "/scim/v2/.search",
            Some(&search.to_string()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(found["Resources"][0]["displayName"], "Sales");
    let deleted = scim_send(
        &app,
        &token,
        Method::DELETE,
        &format!("/scim/v2/Users/{bob}"),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let emptied = json_of(
        scim_get(&app, &token, &format!("/scim/v2/Groups/{sales_id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(emptied["members"], json!([]));

    // Bulk: a user and a group holding them, by bulkId.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "cleo@acme.test",
            "name": {"givenName": "Cleo", "familyName": "Ng"}, "emails": [{"value": "cleo@acme.test"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
            "schemas": [GROUP], "displayName": "Support", "members": [{"value": "bulkId:u"}]}},
        {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {
            "schemas": [PATCH], "Operations": [{"op": "replace", "path": "externalId", "value": "okta-7"}]}},
    ]});
    let done = json_of(
        scim_send(
            &app,
            &token,
            Method::POST,
            "/scim/v2/Bulk",
            Some(&bulk.to_string()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let statuses: Vec<&str> = done["Operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o["status"].as_str())
        .collect();
    assert_eq!(statuses, ["201", "201", "204"], "{done}");
    let support = list("filter=externalId%20eq%20%22okta-7%22").await;
    assert_eq!(support["Resources"][0]["displayName"], "Support");
    assert_eq!(
        support["Resources"][0]["members"].as_array().map(Vec::len),
        Some(1)
    );
}

/// A cookie-keeping client signed in through the sign-in page.
async fn browser_as(app: &TestApp, email: &str) -> reqwest::Client {
    let browser = app.new_client();
    let signed_in = app
        .page_sign_in(&browser, email, entitle_testkit::PASSWORD, "/account")
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    browser
}

#[tokio::test]
async fn the_provisioning_page_makes_tokens_and_maps_groups_for_those_allowed() {
    let app = TestApp::spawn().await;
    let TwoOrgs {
        acme, fiona, gus, ..
    } = acme_and_globex(&app).await;
    let (ann, _) = member(&app, &fiona, &acme, "Acme", "ann@acme.test", &[]).await;
    let page = format!("/orgs/{acme}/provisioning");
    let browser = browser_as(&app, "fiona@acme.test").await;

    // A token made on the page is shown once, and works.
    let made = app
        .submit_form(
            &browser,
            &page,
            &format!("{page}/tokens"),
            &[("name", "Okta")],
        )
        .await;
    assert_eq!(made.status(), StatusCode::OK);
    let html = made.text().await.expect("html");
    assert!(html.contains(&app.url("/scim/v2")), "the endpoint is shown");
    let secret = html
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the secret is shown")
        .to_owned();
    let engineers = create_group(&app, &secret, "Engineers", &[&ann]).await;
    let engineers_id = engineers["id"].as_str().expect("id");
    let again = browser.get(app.url(&page)).send().await.expect("page");
    let html = again.text().await.expect("html");
    assert!(!html.contains(&secret), "shown once only");
    assert!(html.contains("Engineers"));

    // Mapping from the page; an empty choice unmaps.
    let mapped = app
        .submit_form(
            &browser,
            &page,
            &format!("{page}/groups/{engineers_id}/role"),
            &[("role", "software_downloads")],
        )
        .await;
    assert_eq!(mapped.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        roles(&app, &fiona, &acme, &ann).await,
        ["software_downloads", "user"]
    );
    let refused = app
        .submit_form(
            &browser,
            &page,
            &format!("{page}/groups/{engineers_id}/role"),
            &[("role", "fulfillment_contact")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert!(refused
        .text()
        .await
        .expect("html")
        .contains("never through a group"));
    app.submit_form(
        &browser,
        &page,
        &format!("{page}/groups/{engineers_id}/role"),
        &[("role", "")],
    )
    .await;
    assert_eq!(roles(&app, &fiona, &acme, &ann).await, ["user"]);

    // Revoking from the page stops the token.
    let tokens: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/scim-tokens"))
        .await
        .json()
        .await
        .expect("tokens");
    let token_id = tokens[0]["id"].as_str().expect("id");
    let revoked = app
        .submit_form(
            &browser,
            &page,
            &format!("{page}/tokens/{token_id}/revoke"),
            &[("confirmed", "yes")],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scim_get(&app, &secret, "/scim/v2/Groups").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A Co-Administrator sees the groups but no tokens; a User and another organization
    // see nothing.
    let cory = browser_as(&app, "cory@acme.test").await;
    let html = cory
        .get(app.url(&page))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Engineers") && !html.contains("Create token"));
    let ann_browser = browser_as(&app, "ann@acme.test").await;
    let status = ann_browser
        .get(app.url(&page))
        .send()
        .await
        .expect("page")
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let gus_browser = browser_as(&app, "gus@globex.test").await;
    let status = gus_browser
        .get(app.url(&page))
        .send()
        .await
        .expect("page")
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = gus;
}
