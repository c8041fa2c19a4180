//! The admin portal's working tools over HTTP: the member list's filters and counts,
//! bulk actions under the same rules as one at a time, invitations and reset links sent
//! again, the member's whole record, destructive actions that ask first, the staged
//! preview's "remove all invalid rows" and "discard", and the readable audit log.

use entitle_testkit::{expect_problem, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admin_pages::{browser_as, csrf_of, get};
use crate::members::{acme_and_globex, member};

async fn add_invited(app: &TestApp, token: &str, org: &str, email: &str, roles: &[&str]) -> String {
    let response = app
        .post_as(
            token,
            &format!("/api/v1/orgs/{org}/members"),
            &json!({"email": email, "first_name": "Ivy", "last_name": "Invited", "country": "DE", "roles": roles}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.mail.expect(email, "added to").await;
    let added: Value = response.json().await.expect("member");
    added["account_id"].as_str().expect("id").to_owned()
}

async fn listing(app: &TestApp, token: &str, org: &str, query: &str) -> Value {
    let response = app
        .get_as(token, &format!("/api/v1/orgs/{org}/members?{query}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.expect("page")
}

fn emails(page: &Value) -> Vec<String> {
    page["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["email"].as_str().expect("email").to_owned())
        .collect()
}

/// The page a form's redirect leads to.
async fn follow(app: &TestApp, browser: &reqwest::Client, response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let (status, html) = get(app, browser, &location).await;
    assert_eq!(status, StatusCode::OK, "{location}");
    html
}

async fn bulk(app: &TestApp, token: &str, org: &str, body: Value) -> reqwest::Response {
    app.post_as(token, &format!("/api/v1/orgs/{org}/members/bulk"), &body)
        .await
}

#[tokio::test]
async fn members_are_filtered_by_status_role_and_domain_with_counts() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    add_invited(&app, fiona, acme, "ivy@acme.test", &["license_checkout"]).await;
    add_invited(&app, fiona, acme, "ian@partner.example", &[]).await;
    let (dora, _) = member(&app, fiona, acme, "Acme", "dora@acme.test", &[]).await;
    let disabled = app
        .patch_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/members/{dora}"),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    let invited = listing(&app, fiona, acme, "status=invited").await;
    assert_eq!(
        (invited["total"].as_i64(), emails(&invited)),
        (
            Some(2),
            vec!["ian@partner.example".to_owned(), "ivy@acme.test".to_owned()]
        )
    );
    let active = listing(&app, fiona, acme, "status=active").await;
    assert_eq!(emails(&active), vec!["cory@acme.test", "fiona@acme.test"]);
    assert_eq!(
        emails(&listing(&app, fiona, acme, "status=disabled").await),
        vec!["dora@acme.test"]
    );
    assert_eq!(
        emails(&listing(&app, fiona, acme, "role=license_checkout").await),
        vec!["ivy@acme.test"]
    );
    assert_eq!(
        emails(&listing(&app, fiona, acme, "domain=PARTNER.example").await),
        vec!["ian@partner.example"]
    );
    // Filters combine with each other and with search.
    let both = listing(&app, fiona, acme, "status=invited&domain=acme.test&q=iv").await;
    assert_eq!(emails(&both), vec!["ivy@acme.test"]);

    let counts: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/members/counts"))
        .await
        .json()
        .await
        .expect("counts");
    assert_eq!(counts["total"], 5);
    assert_eq!(
        counts["statuses"],
        json!({"active": 2, "invited": 2, "disabled": 1})
    );
    assert_eq!(counts["roles"]["license_checkout"], 1);
    assert_eq!(
        counts["domains"][0],
        json!({"domain": "acme.test", "members": 4})
    );

    // Bad filters are named; other organizations' counts are not to be had.
    for (query, field) in [("status=gone", "status"), ("role=root", "role")] {
        let response = app
            .get_as(fiona, &format!("/api/v1/orgs/{acme}/members?{query}"))
            .await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let foreign = app
        .get_as(&orgs.gus, &format!("/api/v1/orgs/{acme}/members/counts"))
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);

    // The filtered list exports as CSV, every page of it, formulas neutralized.
    let csv = app
        .get_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/members.csv?status=invited"),
        )
        .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "Email,First Name,Last Name,Country,Roles,Status,Joined"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[2].starts_with("ivy@acme.test,Ivy,Invited,DE,License Checkout,invited,"));
}

#[tokio::test]
async fn bulk_actions_follow_the_rules_of_one_at_a_time() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona, cory) = (&orgs.acme, &orgs.fiona, &orgs.cory);
    let ivy = add_invited(&app, fiona, acme, "ivy@acme.test", &[]).await;
    let ian = add_invited(&app, fiona, acme, "ian@acme.test", &[]).await;
    let fiona_id = listing(&app, fiona, acme, "q=fiona").await["members"][0]["account_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let gus_id = listing(&app, &orgs.gus, &orgs.globex, "").await["members"][0]["account_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A Co-Administrator may not give Administrator: nobody changes, and each is told.
    let response = bulk(
        &app,
        cory,
        acme,
        json!({"action": "add_role", "role": "administrator", "account_ids": [ivy, ian]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["done"], json!([]));
    assert_eq!(outcome["refused"].as_array().map(Vec::len), Some(2));
    assert_eq!(outcome["refused"][0]["code"], "role_required");
    assert_eq!(
        emails(&listing(&app, fiona, acme, "role=administrator").await),
        Vec::<String>::new()
    );

    // A role they may give is given; the Fulfillment Contact above them and a member
    // of another organization are refused, and Globex's member is untouched.
    let response = bulk(
        &app,
        cory,
        acme,
        json!({"action": "add_role", "role": "license_checkout", "account_ids": [ivy, fiona_id, gus_id, ian]}),
    )
    .await;
    let outcome: Value = response.json().await.expect("outcome");
    let done: Vec<&str> = outcome["done"]
        .as_array()
        .expect("done")
        .iter()
        .map(|d| d["email"].as_str().expect("email"))
        .collect();
    assert_eq!(done, vec!["ivy@acme.test", "ian@acme.test"]);
    let refused: Vec<(&str, &str)> = outcome["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|r| {
            (
                r["account_id"].as_str().expect("id"),
                r["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            (fiona_id.as_str(), "role_required"),
            (gus_id.as_str(), "not_found")
        ]
    );
    assert!(
        outcome["refused"][1]["email"].is_null(),
        "nothing of another org leaks"
    );
    let gus_page = listing(&app, &orgs.gus, &orgs.globex, "").await;
    assert_eq!(
        gus_page["members"][0]["roles"],
        json!(["fulfillment_contact"])
    );

    // Resending invitations: the invited get a new link, the registered are refused.
    let response = bulk(
        &app,
        cory,
        acme,
        json!({"action": "resend_invitation", "account_ids": [ivy, fiona_id]}),
    )
    .await;
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["done"][0]["email"], "ivy@acme.test");
    assert_eq!(outcome["refused"][0]["code"], "role_required");
    let mail = app.mail.expect("ivy@acme.test", "added to Acme").await;
    assert!(mail.token("/reset-password").is_some());

    // Disable, then remove, many at once; the last Fulfillment Contact stays.
    let response = bulk(
        &app,
        fiona,
        acme,
        json!({"action": "disable", "account_ids": [ivy, ian, fiona_id]}),
    )
    .await;
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["done"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        emails(&listing(&app, fiona, acme, "status=disabled").await),
        vec!["ian@acme.test", "ivy@acme.test"]
    );
    let response = bulk(
        &app,
        fiona,
        acme,
        json!({"action": "remove", "account_ids": [ivy, ian]}),
    )
    .await;
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["done"].as_array().map(Vec::len), Some(2));
    assert_eq!(listing(&app, fiona, acme, "").await["total"], 2);

    // Malformed requests change nothing and say why.
    for (body, field) in [
        (json!({"action": "add_role", "account_ids": [ivy]}), "role"),
        (
            json!({"action": "disable", "account_ids": []}),
            "account_ids",
        ),
        (
            json!({"action": "disable", "role": "user", "account_ids": [ivy]}),
            "role",
        ),
        (
            json!({"action": "add_role", "role": "root", "account_ids": [ivy]}),
            "role",
        ),
    ] {
        let response = bulk(&app, fiona, acme, body.clone()).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let too_many: Vec<String> = (0..201).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let response = bulk(
        &app,
        fiona,
        acme,
        json!({"action": "disable", "account_ids": too_many}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = bulk(
        &app,
        fiona,
        acme,
        json!({"action": "explode", "account_ids": [ivy]}),
    )
    .await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    // A User may not act in bulk at all.
    let (_, uma) = member(&app, fiona, acme, "Acme", "uma@acme.test", &[]).await;
    let response = bulk(
        &app,
        &uma,
        acme,
        json!({"action": "enable", "account_ids": [fiona_id]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_member_record_shows_sign_in_invitation_and_sends_links_again() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    let ivy = add_invited(&app, fiona, acme, "ivy@acme.test", &[]).await;
    let detail: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/members/{ivy}"))
        .await
        .json()
        .await
        .expect("member");
    assert_eq!(detail["email"], "ivy@acme.test");
    assert!(detail["last_sign_in_at"].is_null());
    let invitation = &detail["invitation"];
    assert!(invitation["expires_at"].as_i64() > invitation["sent_at"].as_i64());
    assert_eq!(detail["groups"], json!([]));

    let resend = app
        .post_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/members/{ivy}/invitation"),
            &json!({}),
        )
        .await;
    assert_eq!(resend.status(), StatusCode::NO_CONTENT);
    let mail = app.mail.expect("ivy@acme.test", "added to Acme").await;
    let token = mail.token("/reset-password").expect("link");
    let set = app
        .post(
            "/api/v1/reset-password",
            &json!({"token": token, "email": "ivy@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    app.sign_in("ivy@acme.test", PASSWORD).await;
    let detail: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/members/{ivy}"))
        .await
        .json()
        .await
        .expect("member");
    assert!(detail["last_sign_in_at"].as_i64().is_some());
    assert!(detail["invitation"].is_null());

    // Registered now: no invitation, but a reset link.
    let again = app
        .post_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/members/{ivy}/invitation"),
            &json!({}),
        )
        .await;
    expect_problem(again, StatusCode::CONFLICT, "already_registered").await;
    let reset = app
        .post_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/members/{ivy}/password-reset"),
            &json!({}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let mail = app
        .mail
        .expect("ivy@acme.test", "Set a new entitle password")
        .await;
    assert!(mail.text.contains("An administrator of Acme"));

    // Not from another organization, not over someone above them.
    let foreign = app
        .post_as(
            &orgs.gus,
            &format!("/api/v1/orgs/{acme}/members/{ivy}/password-reset"),
            &json!({}),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let fiona_id = listing(&app, fiona, acme, "q=fiona").await["members"][0]["account_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let upward = app
        .post_as(
            &orgs.cory,
            &format!("/api/v1/orgs/{acme}/members/{fiona_id}/password-reset"),
            &json!({}),
        )
        .await;
    assert_eq!(upward.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn destructive_pages_ask_first_and_name_who() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    let (bob, _) = member(&app, fiona, acme, "Acme", "bob@acme.test", &[]).await;
    let browser = browser_as(&app, "fiona@acme.test").await;
    let member_page = format!("/orgs/{acme}/members/{bob}");
    let csrf = csrf_of(&app, &browser, &member_page).await;

    // Without JavaScript the form arrives unconfirmed: a page asks, nothing changes.
    for (path, extra) in [("remove", None), ("access", Some(("disabled", "true")))] {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(extra);
        let response = browser
            .post(app.url(&format!("{member_page}/{path}")))
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.expect("html");
        assert!(html.contains("New Member (bob@acme.test)"), "{html}");
        assert!(html.contains(r#"name="confirmed" value="yes""#));
    }
    assert_eq!(
        listing(&app, fiona, acme, "status=active").await["total"],
        3
    );

    // Confirmed: done, and the notice names them.
    let response = browser
        .post(app.url(&format!("{member_page}/remove")))
        .form(&[("csrf_token", csrf.as_str()), ("confirmed", "yes")])
        .send()
        .await
        .expect("post");
    let html = follow(&app, &browser, response).await;
    assert!(
        html.contains("Removed New Member (bob@acme.test) from Acme."),
        "{html}"
    );
    // The notice is shown once.
    let (_, again) = get(&app, &browser, &format!("/orgs/{acme}/members")).await;
    assert!(!again.contains("Removed New Member"));

    // The bulk form asks too, naming everyone it would disable.
    let ivy = add_invited(&app, fiona, acme, "ivy@acme.test", &[]).await;
    let bulk_form = [
        ("csrf_token", csrf.as_str()),
        ("action", "disable"),
        ("role", ""),
        ("member", ivy.as_str()),
        ("back", "/evil.example"),
    ];
    let response = browser
        .post(app.url(&format!("/orgs/{acme}/members/bulk")))
        .form(&bulk_form)
        .send()
        .await
        .expect("post");
    let html = response.text().await.expect("html");
    assert!(
        html.contains("Disable 1 person?") && html.contains("Ivy Invited (ivy@acme.test)"),
        "{html}"
    );
    let mut confirmed = bulk_form.to_vec();
    confirmed.push(("confirmed", "yes"));
    let response = browser
        .post(app.url(&format!("/orgs/{acme}/members/bulk")))
        .form(&confirmed)
        .send()
        .await
        .expect("post");
    assert_eq!(
        response.headers()["location"],
        format!("/orgs/{acme}/members").as_str(),
        "a bad back link is not followed"
    );
    let html = follow(&app, &browser, response).await;
    assert!(html.contains("Disabled 1 person: Ivy Invited."), "{html}");
    assert_eq!(
        emails(&listing(&app, fiona, acme, "status=disabled").await),
        vec!["ivy@acme.test"]
    );
}

#[tokio::test]
async fn the_staged_preview_removes_invalid_rows_discards_files_and_warns_of_formulas() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    let csv = "Email,First Name,Last Name,Country,Roles\r\n\
               ann@acme.test,Ann,Alder,DE,\r\n\
               ANN@acme.test,Annie,Alder,DE,\r\n\
               not-an-address,Carl,Cedar,DE,\r\n\
               eve@acme.test,=HYPERLINK(\"x\"),Evans,DE,\r\n";
    let staged = entitle_testkit::new_client()
        .post(app.url(&format!("/api/v1/orgs/{acme}/imports?file_name=people.csv")))
        .bearer_auth(fiona)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("stage");
    assert_eq!(staged.status(), StatusCode::CREATED);
    let batch: Value = staged.json().await.expect("batch");
    let id = batch["id"].as_str().expect("id").to_owned();
    let rows = batch["rows"].as_array().expect("rows");
    assert_eq!(
        rows[1]["details"],
        "Same email address as line 2; only that line is added."
    );
    assert_eq!(rows[0]["details"], "", "a valid row needs no reason");
    assert_eq!(rows[3]["status"], "valid");
    assert!(rows[3]["warnings"][0]
        .as_str()
        .expect("warning")
        .starts_with("First Name starts with “=”"));

    let response = app
        .post_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/imports/{id}/remove-invalid"),
            &json!({}),
        )
        .await;
    let trimmed: Value = response.json().await.expect("batch");
    assert_eq!(trimmed["counts"], json!({"removed": 2, "valid": 2}));

    // The page shows only the problems when asked, and the summary says what will happen.
    let browser = browser_as(&app, "fiona@acme.test").await;
    let (_, html) = get(
        &app,
        &browser,
        &format!("/orgs/{acme}/imports/{id}?show=problems"),
    )
    .await;
    assert!(
        html.contains("4 rows: 2 people will be added, 2 removed."),
        "{html}"
    );
    assert_eq!(
        html.matches("<tr class=\"status-").count(),
        1,
        "only Eve's formula is left to look at"
    );

    // Discarding asks first, then the file is gone; a committed file cannot be discarded.
    let csrf = csrf_of(&app, &browser, &format!("/orgs/{acme}/imports/{id}")).await;
    let discard = format!("/orgs/{acme}/imports/{id}/discard");
    let asked = browser
        .post(app.url(&discard))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert!(asked
        .text()
        .await
        .expect("html")
        .contains("Discard people.csv?"));
    assert_eq!(crate::count(&app, "import_batches").await, 1);
    let done = browser
        .post(app.url(&discard))
        .form(&[("csrf_token", csrf.as_str()), ("confirmed", "yes")])
        .send()
        .await
        .expect("post");
    assert!(follow(&app, &browser, done)
        .await
        .contains("Discarded people.csv: nobody from it was added."));
    assert_eq!(crate::count(&app, "import_batches").await, 0);
    assert_eq!(crate::count(&app, "import_rows").await, 0);
    let gone = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/imports/{id}"))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // Committed: each row says what happened, and the summary counts who was added.
    let staged = entitle_testkit::new_client()
        .post(app.url(&format!("/api/v1/orgs/{acme}/imports")))
        .bearer_auth(fiona)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("stage");
    let id = staged.json::<Value>().await.expect("batch")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let committed: Value = app
        .post_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/imports/{id}/commit"),
            &json!({}),
        )
        .await
        .json()
        .await
        .expect("batch");
    let results: Vec<&str> = committed["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["result"].as_str().expect("result"))
        .collect();
    assert_eq!(
        results,
        vec![
            "added_and_invited",
            "not_added",
            "not_added",
            "added_and_invited"
        ]
    );
    let (_, html) = get(&app, &browser, &format!("/orgs/{acme}/imports/{id}")).await;
    assert!(
        html.contains("2 people were added and invited by email; 2 rows were not added."),
        "{html}"
    );
    let discard = app
        .delete_as(fiona, &format!("/api/v1/orgs/{acme}/imports/{id}"))
        .await;
    expect_problem(discard, StatusCode::CONFLICT, "import_committed").await;
    // Another organization cannot discard or trim Acme's files.
    for response in [
        app.delete_as(&orgs.gus, &format!("/api/v1/orgs/{acme}/imports/{id}"))
            .await,
        app.post_as(
            &orgs.gus,
            &format!("/api/v1/orgs/{acme}/imports/{id}/remove-invalid"),
            &json!({}),
        )
        .await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn the_audit_log_filters_by_part_of_the_actor_and_by_whom_it_touched() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    let (bob, _) = member(&app, fiona, acme, "Acme", "bob@acme.test", &[]).await;
    let roles = entitle_testkit::new_client()
        .put(app.url(&format!("/api/v1/orgs/{acme}/members/{bob}/roles")))
        .bearer_auth(&orgs.cory)
        .json(&json!({"roles": ["usage_reports"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(roles.status(), StatusCode::OK);
    let page: Value = app
        .get_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/audit?actor_contains=CORY&target_id={bob}"),
        )
        .await
        .json()
        .await
        .expect("events");
    let actions: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, vec!["org.roles_changed"]);
    let wildcard: Value = app
        .get_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/audit?actor_contains=%25"),
        )
        .await
        .json()
        .await
        .expect("events");
    assert_eq!(
        wildcard["events"],
        json!([]),
        "% is a character, not a wildcard"
    );

    let browser = browser_as(&app, "fiona@acme.test").await;
    let (status, html) = get(&app, &browser, &format!("/orgs/{acme}/audit?target={bob}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("everything done to New Member (bob@acme.test)"),
        "{html}"
    );
    assert!(html.contains("Roles changed"));
    assert!(
        html.contains("<del>User</del> → <ins>Usage Reports</ins>"),
        "{html}"
    );
    assert!(
        !html.contains(">org.roles_changed<"),
        "codes are not shown as words"
    );
}

#[tokio::test]
async fn access_requests_are_approved_with_roles_and_keep_their_history() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona, cory) = (&orgs.acme, &orgs.fiona, &orgs.cory);
    // Two people name an administrator of Acme (no verified domain is needed for that).
    let mut requests = Vec::new();
    for email in ["pat@elsewhere.example", "quinn@elsewhere.example"] {
        app.register(email, PASSWORD).await;
        let token = app.sign_in(email, PASSWORD).await;
        let asked = app
            .post_as(
                &token,
                "/api/v1/access-requests",
                &json!({"administrator_email": "Fiona@acme.test", "message": "Sales"}),
            )
            .await;
        assert_eq!(asked.status(), StatusCode::ACCEPTED);
        app.mail
            .expect("fiona@acme.test", "asks to join Acme")
            .await;
    }
    let queue: Value = app
        .get_as(fiona, &format!("/api/v1/orgs/{acme}/access-requests"))
        .await
        .json()
        .await
        .expect("queue");
    for request in queue.as_array().expect("queue") {
        assert_eq!(request["via"], "administrator");
        assert_eq!(request["named_administrator"], "fiona@acme.test");
        requests.push(request["id"].as_str().expect("id").to_owned());
    }

    // A Co-Administrator may not approve with a role beyond theirs: nothing happens.
    let approve = |token: &str, id: &str, body: Value| {
        let (app, path) = (
            &app,
            format!("/api/v1/orgs/{acme}/access-requests/{id}/approve"),
        );
        let token = token.to_owned();
        async move { app.post_as(&token, &path, &body).await }
    };
    let refused = approve(cory, &requests[0], json!({"roles": ["administrator"]})).await;
    expect_problem(refused, StatusCode::FORBIDDEN, "role_required").await;
    assert_eq!(listing(&app, fiona, acme, "q=pat").await["total"], 0);
    let bad = approve(cory, &requests[0], json!({"roles": ["root"]})).await;
    expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let approved = approve(cory, &requests[0], json!({"roles": ["license_checkout"]})).await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.expect("request");
    assert_eq!(approved["roles"], json!(["license_checkout"]));
    assert_eq!(approved["decided_by"], "cory@acme.test");
    let pat = listing(&app, fiona, acme, "q=pat").await;
    let mut roles: Vec<String> =
        serde_json::from_value(pat["members"][0]["roles"].clone()).expect("roles");
    roles.sort();
    assert_eq!(roles, vec!["license_checkout"]);
    // No body at all still approves, as before.
    let bare = entitle_testkit::new_client()
        .post(app.url(&format!(
            "/api/v1/orgs/{acme}/access-requests/{}/approve",
            requests[1]
        )))
        .bearer_auth(fiona)
        .send()
        .await
        .expect("approve");
    assert_eq!(bare.status(), StatusCode::OK);

    // The page shows the history: who decided, when, and with which roles.
    let browser = browser_as(&app, "fiona@acme.test").await;
    let (_, html) = get(&app, &browser, &format!("/orgs/{acme}/access-requests")).await;
    assert!(html.contains("Nobody is waiting to join Acme."));
    assert!(
        html.contains("cory@acme.test") && html.contains("User, License Checkout"),
        "{html}"
    );
    let history: Value = app
        .get_as(
            fiona,
            &format!("/api/v1/orgs/{acme}/access-requests?status=approved"),
        )
        .await
        .json()
        .await
        .expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn administrators_land_on_their_organization_and_error_pages_keep_the_header() {
    let app = TestApp::spawn().await;
    let orgs = acme_and_globex(&app).await;
    let (acme, fiona) = (&orgs.acme, &orgs.fiona);
    member(&app, fiona, acme, "Acme", "uma@acme.test", &[]).await;
    for (email, landing) in [
        ("fiona@acme.test", format!("/orgs/{acme}/members")),
        ("uma@acme.test", "/account".to_owned()),
    ] {
        let browser = app.new_client();
        let signed_in = app
            .submit_form(
                &browser,
                "/sign-in",
                "/sign-in",
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        assert_eq!(signed_in.headers()["location"], landing.as_str(), "{email}");
    }
    // The sign-in page tells invited people how to set a password, the same for everyone.
    let (_, html) = get(&app, &app.new_client(), "/sign-in").await;
    assert!(html.contains("Added by your organization and never set a password?"));

    // Another organization's page: 404, in the visitor's own header.
    let browser = browser_as(&app, "fiona@acme.test").await;
    let (status, html) = get(&app, &browser, &format!("/orgs/{}/members", orgs.globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("fiona@acme.test") && html.contains("Sign out"),
        "{html}"
    );
    assert!(
        !html.contains("Globex"),
        "nothing of the other organization shows"
    );
    // A page of their own organization that their role does not open: 403 with the
    // organization's header, so they can go elsewhere in it.
    let uma = browser_as(&app, "uma@acme.test").await;
    let (status, html) = get(&app, &uma, &format!("/orgs/{acme}/audit")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains(&format!("/orgs/{acme}/administrators")) && html.contains("uma@acme.test"),
        "{html}"
    );
}
