//! The `entitled` binary's commands, run as an operator would.

use std::process::Command;

fn entitled(
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

    let first = entitled(
        temp.path(),
        url,
        &["bootstrap", "--email", "ops@vendor.example"],
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("Operator account created"));
    // Without SMTP the set-password message lands in the outbox as an .eml file.
    let outbox: Vec<_> = std::fs::read_dir(temp.path().join("outbox"))
        .expect("outbox")
        .collect();
    assert_eq!(outbox.len(), 1);

    let second = entitled(
        temp.path(),
        url,
        &["bootstrap", "--email", "other@vendor.example"],
    );
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    let forced = entitled(
        temp.path(),
        url,
        &["bootstrap", "--email", "other@vendor.example", "--force"],
    );
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );

    let bad = entitled(
        temp.path(),
        url,
        &["bootstrap", "--email", "nonsense", "--force"],
    );
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
