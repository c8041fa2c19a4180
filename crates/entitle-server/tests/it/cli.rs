//! The `entitled` binary's commands, run as an operator would.

use std::process::Command;

pub fn entitled(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entitled"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("ENTITLE_PASSWORD__MEMORY_KIB", "64")
        .env("ENTITLE_PASSWORD__ITERATIONS", "1");
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command.output().expect("entitled runs")
}

/// `entitled bootstrap` of Olga Operator at `email`.
fn bootstrap(email: &str, force: bool) -> Vec<&str> {
    let mut args = vec![
        "bootstrap",
        "--email",
        email,
        "--first-name",
        "Olga",
        "--last-name",
        "Operator",
        "--country",
        "United Kingdom",
    ];
    if force {
        args.push("--force");
    }
    args
}

#[tokio::test]
async fn bootstrap_refuses_to_run_twice_without_force() {
    let temp = tempfile::tempdir().expect("tempdir");
    let database_url = entitle_testkit::fresh_database().await.expect("database");
    let url = database_url.as_deref();
    let migrate = entitled(temp.path(), url, &["migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let first = entitled(temp.path(), url, &bootstrap("ops@vendor.example", false));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(said.contains("Operator account created"));
    assert!(said.contains("entitled outbox"), "{said}");
    // Without SMTP the set-password message lands in the outbox as an .eml file, and
    // `entitled outbox` prints it with its link whole.
    let outbox: Vec<_> = std::fs::read_dir(temp.path().join("outbox"))
        .expect("outbox")
        .collect();
    assert_eq!(outbox.len(), 1);
    let printed = entitled(temp.path(), url, &["outbox"]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("Hello Olga,"), "{printed}");
    assert!(printed.contains("Subject: Your entitle operator account"));
    let link = printed
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:8080/reset-password?token="))
        .unwrap_or_else(|| panic!("no whole link in {printed}"));
    assert_eq!(
        link.len(),
        "http://127.0.0.1:8080/reset-password?token=".len() + 43
    );
    assert!(!printed.contains("added you"));

    let second = entitled(temp.path(), url, &bootstrap("other@vendor.example", false));
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    let forced = entitled(temp.path(), url, &bootstrap("other@vendor.example", true));
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );

    let bad = entitled(temp.path(), url, &bootstrap("nonsense", true));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("email"));
}

#[test]
fn default_config_prints_a_commented_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_entitled"))
        .arg("default-config")
        .output()
        .expect("entitled runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory_kib = 19456"));
    assert!(text.contains("# [smtp]"));
}

#[tokio::test]
async fn clients_and_keys_are_managed_from_the_command_line() {
    let temp = tempfile::tempdir().expect("tempdir");
    let database_url = entitle_testkit::fresh_database().await.expect("database");
    let url = database_url.as_deref();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let created = entitled(
        temp.path(),
        url,
        &[
            "clients",
            "create",
            "--name",
            "Data source",
            "--confidential",
            "--grant-type",
            "client_credentials",
            "--scope",
            "licenses",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let out = text(&created);
    assert!(
        out.contains("client_id: ") && out.contains("client_secret: "),
        "{out}"
    );
    let client_id = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id: "))
        .expect("client id")
        .to_owned();
    let listed = entitled(temp.path(), url, &["clients", "list"]);
    assert!(text(&listed).contains(&client_id) && text(&listed).contains("entitle-desktop"));

    // Refused registrations say why and store nothing.
    let refused = entitled(
        temp.path(),
        url,
        &[
            "clients",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "http://app.example/cb",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).contains("loopback"), "{}", text(&refused));
    let disabled = entitled(temp.path(), url, &["clients", "disable", &client_id]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    let again = entitled(temp.path(), url, &["clients", "disable", &client_id]);
    assert!(!again.status.success());
    let builtin = entitled(temp.path(), url, &["clients", "disable", "entitle-desktop"]);
    assert!(!builtin.status.success());

    let before = text(&entitled(temp.path(), url, &["keys", "list"]));
    assert_eq!(before.matches(" active").count(), 3, "{before}");
    let rotated = entitled(temp.path(), url, &["keys", "rotate"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let after = text(&entitled(temp.path(), url, &["keys", "list"]));
    assert_eq!(after.matches(" active").count(), 3, "{after}");
    assert_eq!(
        after.matches("retired, published until").count(),
        3,
        "{after}"
    );
}

/// A server records the URL it is reached at, so that commands run beside it without a
/// public_url of their own (`entitled bootstrap`) link to it, not to a default.
#[tokio::test]
async fn commands_link_to_where_the_server_is_reached() {
    let app = entitle_testkit::TestApp::spawn().await;
    // The server records its URL before it answers anything.
    assert!(app.get("/healthz").await.status().is_success());
    let url = app.state.config.database_url.clone();
    let bootstrapped = entitled(
        &app.data_dir,
        url.as_deref(),
        &bootstrap("ops@vendor.example", false),
    );
    assert!(
        bootstrapped.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrapped.stderr)
    );
    // The command has no SMTP of its own: the message is in the outbox.
    let printed = entitled(&app.data_dir, url.as_deref(), &["outbox"]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains(&format!("{}/reset-password?token=", app.base_url)),
        "{printed}"
    );
}

/// What an operator sees when the server starts: a short summary (the whole configuration
/// only at debug), no colour codes when the log is not a terminal, and a warning when it
/// listens beyond loopback with no public_url, naming the URL links will use.
#[tokio::test]
async fn the_start_up_log_is_short_plain_and_warns_of_a_missing_public_url() {
    use tokio::io::AsyncBufReadExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let database_url = entitle_testkit::fresh_database().await.expect("database");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_entitled"));
    command
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(temp.path())
        .env("ENTITLE_PASSWORD__MEMORY_KIB", "64")
        .env("ENTITLE_PASSWORD__ITERATIONS", "1")
        .env_remove("ENTITLE_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = &database_url {
        command.args(["--database-url", url]);
    }
    let mut server = command.spawn().expect("entitled serve");
    let mut lines = tokio::io::BufReader::new(server.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("log") {
            let done = line.contains("entitled listening");
            log.push(line);
            if done {
                break;
            }
        }
    })
    .await;
    let _ = server.kill().await;
    read.expect("the server started");
    let text = log.join("\n");
    assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    assert!(log.iter().all(|l| l.len() < 600), "short lines: {text}");
    assert!(
        !text.contains("memory_kib"),
        "the configuration only at debug: {text}"
    );
    let hostname = hostname::get()
        .expect("hostname")
        .into_string()
        .expect("utf-8");
    let warning = log
        .iter()
        .find(|l| l.contains("WARN") && l.contains("without public_url"))
        .unwrap_or_else(|| panic!("no warning: {text}"));
    assert!(
        warning.contains(&format!("http://{hostname}:")),
        "{warning}"
    );
    assert!(text.contains("entitled outbox"), "{text}");
}
