//! Staged bulk registration over HTTP: stage, remove rows, commit all-or-nothing, report.

use entitle_testkit::{expect_problem, new_client, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::members::org_with_contact;

async fn stage(app: &TestApp, token: &str, org: &str, file: &str) -> Response {
    new_client()
        .post(app.url(&format!("/api/v1/orgs/{org}/imports?file_name=staff.csv")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(file.to_owned())
        .send()
        .await
        .expect("stage")
}

async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str) -> Response {
    new_client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_file_is_staged_trimmed_and_committed_once() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let (globex, gus) = org_with_contact(&app, &operator, "Globex", "gus@globex.example").await;
    let file = "\u{feff}email,FIRST NAME,Last Name,country,Roles\r\n\
                ana@acme.example,Ana,Silva,PT,\r\n\
                ANA@acme.example,Ana,Silva,PT,\r\n\
                jose@acme.example,José,Müller,DE,Administrator;Software Downloads\r\n\
                fiona@acme.example,Fiona,Acme,GB,\r\n\
                gus@globex.example,Gus,Globex,GB,\r\n\
                bad-address,,Nobody,Narnia,Wizard\r\n\
                \"wang@acme.example\",\"小明, Jr.\",王,CN,User\r\n";
    let response = stage(&app, &fiona, &acme, file).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let batch: Value = response.json().await.expect("batch");
    let id = batch["id"].as_str().expect("id").to_owned();
    let statuses: Vec<&str> = batch["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        [
            "valid",
            "duplicate",
            "valid",
            "already_member",
            "other_organization",
            "invalid",
            "valid"
        ]
    );
    assert!(batch["rows"][5]["details"]
        .as_str()
        .expect("details")
        .contains("Wizard"));
    assert_eq!(
        crate::count(&app, "org_members").await,
        2,
        "nothing added while staged"
    );

    // Another organization sees nothing of it; a stranger to Acme neither.
    expect_problem(
        send(
            &app,
            &gus,
            reqwest::Method::GET,
            &format!("/api/v1/orgs/{acme}/imports/{id}"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        send(
            &app,
            &gus,
            reqwest::Method::GET,
            &format!("/api/v1/orgs/{globex}/imports/{id}"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // The x on José's row, then commit: Ana and Wang join, invited by email.
    let response = send(
        &app,
        &fiona,
        reqwest::Method::DELETE,
        &format!("/api/v1/orgs/{acme}/imports/{id}/rows/3"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let trimmed: Value = response.json().await.expect("batch");
    assert_eq!(trimmed["counts"]["removed"], 1);
    let response = send(
        &app,
        &fiona,
        reqwest::Method::POST,
        &format!("/api/v1/orgs/{acme}/imports/{id}/commit"),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let committed: Value = response.json().await.expect("batch");
    assert!(committed["committed_at"].as_i64().is_some());
    assert_eq!(crate::count(&app, "org_members").await, 4);
    app.mail.expect("ana@acme.example", "added to Acme").await;
    app.mail.expect("wang@acme.example", "added to Acme").await;

    // Twice changes nothing; committed rows cannot be removed.
    let again = send(
        &app,
        &fiona,
        reqwest::Method::POST,
        &format!("/api/v1/orgs/{acme}/imports/{id}/commit"),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(crate::count(&app, "org_members").await, 4);
    expect_problem(
        send(
            &app,
            &fiona,
            reqwest::Method::DELETE,
            &format!("/api/v1/orgs/{acme}/imports/{id}/rows/1"),
        )
        .await,
        StatusCode::CONFLICT,
        "import_committed",
    )
    .await;

    let report = send(
        &app,
        &fiona,
        reqwest::Method::GET,
        &format!("/api/v1/orgs/{acme}/imports/{id}/report"),
    )
    .await;
    assert_eq!(report.headers()["content-type"], "text/csv; charset=utf-8");
    let report = report.text().await.expect("csv");
    assert!(report.starts_with("Line,Email,First Name"), "{report}");
    assert!(
        report.contains("removed before committing") && report.contains("added and invited"),
        "{report}"
    );
    let listed: Value = send(
        &app,
        &fiona,
        reqwest::Method::GET,
        &format!("/api/v1/orgs/{acme}/imports"),
    )
    .await
    .json()
    .await
    .expect("list");
    assert_eq!(listed[0]["file_name"], "staff.csv");
}

#[tokio::test]
async fn oversized_unreadable_and_outdated_files_change_nothing() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let file = |users: usize| {
        let mut text = String::from("Email,First Name,Last Name,Country,Roles\n");
        for i in 0..users {
            text.push_str(&format!(
                "user{i}@acme.example,User,Number {i},DE,User;License Checkout\n"
            ));
        }
        text
    };
    let response = stage(&app, &fiona, &acme, &file(1001)).await;
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "validation_failed");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("Split it into files of 1,000 users or fewer"),
        "{problem}"
    );
    for bad in [
        "",
        "Email;First Name;Last Name;Country\na;b;c;d\n",
        "Email,Phone\n",
    ] {
        expect_problem(
            stage(&app, &fiona, &acme, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(crate::count(&app, "import_batches").await, 0);

    let response = stage(&app, &fiona, &acme, &file(1000)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let batch: Value = response.json().await.expect("batch");
    assert_eq!(batch["counts"]["valid"], 1000);
    let id = batch["id"].as_str().expect("id");
    // Someone joins meanwhile: the commit adds nobody and says which rows changed.
    let added = app
        .post_as(&fiona, &format!("/api/v1/orgs/{acme}/members"), &serde_json::json!({"email": "user7@acme.example", "first_name": "U", "last_name": "S", "country": "DE"}))
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let before = crate::count(&app, "org_members").await;
    expect_problem(
        send(
            &app,
            &fiona,
            reqwest::Method::POST,
            &format!("/api/v1/orgs/{acme}/imports/{id}/commit"),
        )
        .await,
        StatusCode::CONFLICT,
        "import_changed",
    )
    .await;
    assert_eq!(crate::count(&app, "org_members").await, before);
    let batch: Value = send(
        &app,
        &fiona,
        reqwest::Method::GET,
        &format!("/api/v1/orgs/{acme}/imports/{id}"),
    )
    .await
    .json()
    .await
    .expect("batch");
    assert_eq!(batch["rows"][7]["status"], "already_member");
    send(
        &app,
        &fiona,
        reqwest::Method::DELETE,
        &format!("/api/v1/orgs/{acme}/imports/{id}/rows/8"),
    )
    .await;
    let response = send(
        &app,
        &fiona,
        reqwest::Method::POST,
        &format!("/api/v1/orgs/{acme}/imports/{id}/commit"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(crate::count(&app, "org_members").await, before + 999);
}

/// `entitled serve` as its own process on the test's database.
fn serve(app: &TestApp, port: u16) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_entitled"));
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&app.data_dir)
        .env("ENTITLE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(url) = &app.state.config.database_url {
        command.arg("--database-url").arg(url);
    }
    command.spawn().expect("entitled starts")
}

async fn ready(base: &str) {
    for _ in 0..300 {
        if new_client()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{base} did not start");
}

#[tokio::test]
async fn a_commit_killed_midway_leaves_all_rows_or_none() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;
    let mut file = String::from("Email,First Name,Last Name,Country,Roles\n");
    for i in 0..1000 {
        file.push_str(&format!(
            "user{i}@acme.example,User,Number {i},DE,User;License Checkout\n"
        ));
    }
    let batch: Value = stage(&app, &fiona, &acme, &file)
        .await
        .json()
        .await
        .expect("batch");
    let id = batch["id"].as_str().expect("id").to_owned();
    let members_before = crate::count(&app, "org_members").await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(&app, port);
    ready(&base).await;
    let commit = tokio::spawn({
        let (base, fiona, acme, id) = (base.clone(), fiona.clone(), acme.clone(), id.clone());
        async move {
            new_client()
                .post(format!("{base}/api/v1/orgs/{acme}/imports/{id}/commit"))
                .bearer_auth(&fiona)
                .send()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    server.kill().expect("SIGKILL");
    server.wait().expect("killed");
    let _ = commit.await;

    // Restarted, the server sees the batch committed with every row, or not at all.
    let mut server = serve(&app, port);
    ready(&base).await;
    let batch: Value = new_client()
        .get(format!("{base}/api/v1/orgs/{acme}/imports/{id}"))
        .bearer_auth(&fiona)
        .send()
        .await
        .expect("batch")
        .json()
        .await
        .expect("json");
    let added = crate::count(&app, "org_members").await - members_before;
    eprintln!(
        "killed {} the commit finished",
        if batch["committed_at"].is_null() {
            "before"
        } else {
            "after"
        }
    );
    if batch["committed_at"].is_null() {
        assert_eq!(added, 0, "an uncommitted batch added nobody");
        let response = new_client()
            .post(format!("{base}/api/v1/orgs/{acme}/imports/{id}/commit"))
            .bearer_auth(&fiona)
            .send()
            .await
            .expect("commit");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            crate::count(&app, "org_members").await - members_before,
            1000
        );
    } else {
        assert_eq!(added, 1000, "a committed batch added everyone");
    }
    server.kill().expect("stop");
    let _ = server.wait();
}

/// What a new administrator tries first: country names as people write them, the file
/// Excel saves on Windows, and uploads as `curl -F` sends them.
#[tokio::test]
async fn everyday_files_country_names_and_uploads_are_read() {
    let app = TestApp::spawn().await;
    let operator = app.operator("olga@vendor.example").await;
    let (acme, fiona) = org_with_contact(&app, &operator, "Acme", "fiona@acme.example").await;

    let file = "Email,First Name,Last Name,Country,Roles\n\
                a@acme.example,A,A,United Kingdom,\n\
                b@acme.example,B,B,South Korea,\n\
                c@acme.example,C,C,Czech Republic,\n\
                d@acme.example,D,D,The Netherlands,\n\
                e@acme.example,E,E,Côte d'Ivoire,\n\
                f@acme.example,F,F,Viet Nam,\n\
                g@acme.example,G,G,UK,\n\
                h@acme.example,H,H,USA,\n\
                i@acme.example,I,I,Great Britain,\n\
                j@acme.example,J,J,\"Korea, Republic of\",\n\
                k@acme.example,K,K,Narnia,\n";
    let batch: Value = stage(&app, &fiona, &acme, file)
        .await
        .json()
        .await
        .expect("batch");
    let read: Vec<(&str, Option<&str>)> = batch["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap_or(""),
                r["country_code"].as_str(),
            )
        })
        .collect();
    let valid = |code| ("valid", Some(code));
    assert_eq!(
        read,
        [
            valid("GB"),
            valid("KR"),
            valid("CZ"),
            valid("NL"),
            valid("CI"),
            valid("VN"),
            valid("GB"),
            valid("US"),
            valid("GB"),
            valid("KR"),
            ("invalid", None),
        ]
    );
    assert_eq!(batch["encoding"], "utf-8");
    // The preview shows the code it was read as.
    let browser = new_client();
    app.page_sign_in(
        &browser,
        "fiona@acme.example",
        entitle_testkit::PASSWORD,
        "/",
    )
    .await;
    let id = batch["id"].as_str().expect("id");
    let page = browser
        .get(app.url(&format!("/orgs/{acme}/imports/{id}")))
        .send()
        .await
        .expect("preview")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("<abbr title=\"South Korea\">KR</abbr>"),
        "{page}"
    );

    // Excel's plain "CSV" on Windows: Windows-1252, read as such and said so.
    let excel = b"Email,First Name,Last Name,Country,Roles\r\nfran@acme.example,Fran\xe7ois,M\xfcller,C\xf4te d'Ivoire,\r\n".to_vec();
    let response = new_client()
        .post(app.url(&format!("/api/v1/orgs/{acme}/imports")))
        .bearer_auth(&fiona)
        .header("content-type", "text/csv")
        .body(excel)
        .send()
        .await
        .expect("stage");
    assert_eq!(response.status(), StatusCode::CREATED);
    let batch: Value = response.json().await.expect("batch");
    assert_eq!(batch["encoding"], "windows-1252");
    assert_eq!(batch["rows"][0]["first_name"], "François");
    assert_eq!(batch["rows"][0]["country_code"], "CI");
    let id = batch["id"].as_str().expect("id");
    let page = browser
        .get(app.url(&format!("/orgs/{acme}/imports/{id}")))
        .send()
        .await
        .expect("preview")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Windows-1252"));
    // Binary is still no text, and the detail says why.
    let response = new_client()
        .post(app.url(&format!("/api/v1/orgs/{acme}/imports")))
        .bearer_auth(&fiona)
        .header("content-type", "text/csv")
        .body(vec![0x89, b'P', b'N', b'G', 0, 0, 0x1a, 0xff, 0xfe])
        .send()
        .await
        .expect("stage");
    let problem = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("not a CSV text file")));

    // multipart/form-data, as curl -F sends it; the part's file name is kept.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(
            "Email,First Name,Last Name,Country,Roles\nm@acme.example,M,M,DE,\n".as_bytes(),
        )
        .file_name("from-curl.csv")
        .mime_str("text/csv")
        .expect("mime"),
    );
    let response = new_client()
        .post(app.url(&format!("/api/v1/orgs/{acme}/imports")))
        .bearer_auth(&fiona)
        .multipart(form)
        .send()
        .await
        .expect("stage");
    assert_eq!(response.status(), StatusCode::CREATED);
    let batch: Value = response.json().await.expect("batch");
    assert_eq!(batch["file_name"], "from-curl.csv");
    assert_eq!(batch["rows"][0]["email"], "m@acme.example");
    // Anything else is 415, a missing type included.
    for content_type in [
        None,
        Some("application/json"),
        Some("application/octet-stream"),
    ] {
        let mut request = new_client()
            .post(app.url(&format!("/api/v1/orgs/{acme}/imports")))
            .bearer_auth(&fiona)
            .body("Email,First Name,Last Name,Country,Roles\nx@acme.example,X,X,DE,\n");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("stage");
        expect_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }

    // Sign-up and adding a member read countries the same way.
    let added = app
        .post_as(
            &fiona,
            &format!("/api/v1/orgs/{acme}/members"),
            &serde_json::json!({"email": "n@acme.example", "first_name": "N", "last_name": "N",
                                "country": "Viet Nam"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(
        added.json::<Value>().await.expect("member")["country"],
        "VN"
    );
    let signed_up = app
        .post(
            "/api/v1/signup",
            &serde_json::json!({"email": "s@example.com", "password": entitle_testkit::PASSWORD,
                                "first_name": "S", "last_name": "S", "country": "The Netherlands"}),
        )
        .await;
    assert_eq!(signed_up.status(), StatusCode::ACCEPTED);
}
