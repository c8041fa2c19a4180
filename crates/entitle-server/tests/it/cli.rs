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
