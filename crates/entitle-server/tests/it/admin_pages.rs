//! The organization pages over plain HTTP: another organization's pages answer 404,
//! roles are enforced as in the API, every form needs its CSRF token (the CSV upload
//! too), and bad uploads change nothing. (browser/tests/admin.test.js drives the same
//! pages in Chromium.)

use entitle_testkit::{csrf_token, TestApp, PASSWORD};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::members::{member, org_with_contact};

/// A cookie-keeping client signed in through the sign-in page.
pub async fn browser_as(app: &TestApp, email: &str) -> Client {
    let browser = app.new_client();
    let signed_in = app
        .page_sign_in(&browser, email, PASSWORD, "/account")
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    browser
}

pub async fn get(app: &TestApp, browser: &Client, path: &str) -> (StatusCode, String) {
    let response = browser.get(app.url(path)).send().await.expect("page");
    (response.status(), response.text().await.expect("html"))
}

pub async fn csrf_of(app: &TestApp, browser: &Client, path: &str) -> String {
    let (status, html) = get(app, browser, path).await;
    assert_eq!(status, StatusCode::OK, "{path}");
    csrf_token(&html).expect("a form")
}

async fn total_members(app: &TestApp, token: &str, org: &str) -> i64 {
    let page: Value = app
        .get_as(token, &format!("/api/v1/orgs/{org}/members"))
        .await
        .json()
        .await
        .expect("page");
    page["total"].as_i64().expect("total")
}

/// A multipart/form-data body of `(name, file name, content)` parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "entitle-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, file_name, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(file) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/csv\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn organization_pages_are_hidden_from_other_orgs_and_follow_the_roles() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.example").await;
    let (uma_id, _) = member(&app, &fiona, &acme, "Acme", "uma@acme.example", &[]).await;
    member(
        &app,
        &fiona,
        &acme,
        "Acme",
        "cory@acme.example",
        &["co_administrator"],
    )
    .await;
    let fiona_browser = browser_as(&app, "fiona@acme.example").await;

    // Org A's administrator: every page of org B is "not found", and so is a form post.
    for page in [
        "",
        "/members",
        "/imports",
        "/audit",
        "/administrators",
        "/domains",
        "/access-requests",
    ] {
        let (status, _) = get(&app, &fiona_browser, &format!("/orgs/{globex}{page}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    }
    let csrf = csrf_of(&app, &fiona_browser, &format!("/orgs/{acme}/members")).await;
    let posted = fiona_browser
        .post(app.url(&format!("/orgs/{globex}/members")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "mole@acme.example"),
            ("first_name", "Mo"),
            ("last_name", "Le"),
            ("country", "DE"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    assert_eq!(total_members(&app, &gus, &globex).await, 1);

    // A User sees who the administrators are, and nothing else.
    let uma_browser = browser_as(&app, "uma@acme.example").await;
    for page in [
        "/members",
        "/imports",
        "/audit",
        "/domains",
        "/access-requests",
    ] {
        let (status, _) = get(&app, &uma_browser, &format!("/orgs/{acme}{page}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    let (status, html) = get(&app, &uma_browser, &format!("/orgs/{acme}/administrators")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("fiona@acme.example") && html.contains("cory@acme.example"),
        "{html}"
    );

    // A Co-Administrator cannot make anyone an Administrator; the page says why.
    let cory_browser = browser_as(&app, "cory@acme.example").await;
    let member_page = format!("/orgs/{acme}/members/{uma_id}");
    let csrf = csrf_of(&app, &cory_browser, &member_page).await;
    let refused = cory_browser
        .post(app.url(&format!("{member_page}/roles")))
        .form(&[("csrf_token", csrf.as_str()), ("role_administrator", "on")])
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("html");
    assert!(refused.contains("role=\"alert\""), "{refused}");
    let uma: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/members/{uma_id}"))
        .await
        .json()
        .await
        .expect("member");
    assert_eq!(uma["roles"], serde_json::json!(["user"]));

    // Erasing an account takes it out of the organization's count too.
    assert_eq!(total_members(&app, &fiona, &acme).await, 3);
    let uma_token = app.sign_in("uma@acme.example", PASSWORD).await;
    let erased = app
        .post_as(
            &uma_token,
            "/api/v1/me/erase",
            &serde_json::json!({"password": PASSWORD}),
        )
        .await;
    assert!(erased.status().is_success(), "{}", erased.status());
    assert_eq!(total_members(&app, &fiona, &acme).await, 2);
}

#[tokio::test]
async fn organization_forms_and_uploads_need_their_csrf_token_and_survive_bad_files() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let browser = browser_as(&app, "fiona@acme.example").await;
    let csrf = csrf_of(&app, &browser, &format!("/orgs/{acme}/imports")).await;
    let person = [
        ("email", "new@acme.example"),
        ("first_name", "New"),
        ("last_name", "Person"),
        ("country", "DE"),
    ];
    for token in [None, Some("forged"), Some("")] {
        let mut fields = person.to_vec();
        if let Some(token) = token {
            fields.push(("csrf_token", token));
        }
        let response = browser
            .post(app.url(&format!("/orgs/{acme}/members")))
            .form(&fields)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(total_members(&app, &fiona, &acme).await, 1);

    let upload = |parts: Vec<(&'static str, Option<&'static str>, Vec<u8>)>| {
        let browser = browser.clone();
        let url = app.url(&format!("/orgs/{acme}/imports"));
        async move {
            let borrowed: Vec<(&str, Option<&str>, &[u8])> = parts
                .iter()
                .map(|(n, f, c)| (*n, *f, c.as_slice()))
                .collect();
            let (content_type, body) = multipart(&borrowed);
            browser
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("upload")
        }
    };
    let csv =
        b"Email,First Name,Last Name,Country,Roles\nann@acme.example,Ann,Alder,DE,\n".to_vec();
    // No token, a forged token, or the file before the token: refused before reading it.
    for parts in [
        vec![("file", Some("a.csv"), csv.clone())],
        vec![
            ("csrf_token", None, b"forged".to_vec()),
            ("file", Some("a.csv"), csv.clone()),
        ],
        vec![
            ("file", Some("a.csv"), csv.clone()),
            ("csrf_token", None, csrf.clone().into_bytes()),
        ],
    ] {
        assert_eq!(upload(parts).await.status(), StatusCode::FORBIDDEN);
    }
    // A body that is not multipart at all, and a file over the limit.
    let garbage = browser
        .post(app.url(&format!("/orgs/{acme}/imports")))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("not a multipart body")
        .send()
        .await
        .expect("post");
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let huge = upload(vec![
        ("csrf_token", None, csrf.clone().into_bytes()),
        ("file", Some("big.csv"), vec![b'a'; 1100 * 1024]),
    ])
    .await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // An empty file and a spreadsheet saved with ';': the page says what is wrong.
    for (content, says) in [
        (Vec::new(), "Choose a CSV file to upload."),
        (
            b"Email;First Name;Last Name;Country;Roles\nann@acme.example;Ann;Alder;DE;\n".to_vec(),
            "to separate columns",
        ),
    ] {
        let response = upload(vec![
            ("csrf_token", None, csrf.clone().into_bytes()),
            ("file", Some("bad.csv"), content),
        ])
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.expect("html");
        assert!(html.contains(says), "{html}");
    }
    let batches: Value = app
        .get_as(&fiona, &format!("/api/v1/orgs/{acme}/imports"))
        .await
        .json()
        .await
        .expect("batches");
    assert_eq!(batches, serde_json::json!([]), "nothing was staged");

    // The real thing: staged and shown.
    let staged = upload(vec![
        ("csrf_token", None, csrf.clone().into_bytes()),
        ("file", Some("people.csv"), csv),
    ])
    .await;
    assert_eq!(staged.status(), StatusCode::SEE_OTHER);
    let batch_page = staged.headers()["location"].to_str().expect("location");
    assert!(batch_page.starts_with(&format!("/orgs/{acme}/imports/")));
    let (_, html) = get(&app, &browser, batch_page).await;
    assert!(html.contains("people.csv") && html.contains("ann@acme.example"));
}
