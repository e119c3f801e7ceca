//! The binary keeps secrets and the store private: a configuration error never echoes a
//! secret's value, short secrets are refused, the store is created owner-only, secret files
//! other users can read are a warning (a refusal with `--strict`), `secret new` checks the
//! source exists, and `check-config` shows every limit.

mod process;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use process::{PROCESS_DEADLINE, Server, hookhouse, run_to_exit};

const SECRET: &str = "SUPERSECRET-0123456789";

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("hookhouse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed_from_the_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = \"{SECRET}\"\n"),
    );
    for command in ["check-config", "serve"] {
        let mut run = hookhouse(dir.path());
        run.args([command, "--listen", "127.0.0.1:0", "--config"]).arg(&config);
        let finished = run_to_exit(run);
        assert_eq!(finished.status.code(), Some(1), "{finished:?}");
        assert!(finished.stderr.contains("sources"), "the key is named: {finished:?}");
        assert!(!finished.stderr.contains(SECRET) && !finished.stdout.contains(SECRET));
    }
    let mut run = hookhouse(dir.path());
    run.args(["check-config"]).env(
        "HOOKHOUSE_SOURCES",
        format!("[{{name=\"prod\",auth=\"token\",secrets=\"{SECRET}\"}}]"),
    );
    let finished = run_to_exit(run);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(!finished.stderr.contains(SECRET), "{finished:?}");
}

#[test]
fn a_toml_syntax_error_does_not_quote_the_line_holding_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [{SECRET}]\n"),
    );
    let mut run = hookhouse(dir.path());
    run.args(["check-config", "--config"]).arg(&config);
    let finished = run_to_exit(run);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(finished.stderr.contains("line 4"), "the place is named: {finished:?}");
    assert!(!finished.stderr.contains(SECRET), "{finished:?}");
}

#[test]
fn a_short_secret_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [\"k\", \"long-enough-secret-0123\"]\n",
    );
    let mut run = hookhouse(dir.path());
    run.args(["check-config", "--config"]).arg(&config);
    let finished = run_to_exit(run);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(finished.stderr.contains("secret 1 of 2 is shorter than 16"), "{finished:?}");
}

#[tokio::test]
async fn a_new_store_is_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(process::serve(&data_dir)).await;
    let post = reqwest::Client::new()
        .post(server.url("/iterable/default"))
        .header("content-type", "application/json")
        .body(r#"{"eventName":"emailOpen","email":"a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(mode(&data_dir), 0o700);
    for file in ["hookhouse.db", "hookhouse.db-wal", "hookhouse.db-shm"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    server.terminate().await;
    assert!(server.wait_exit(PROCESS_DEADLINE).await.success());
}

#[test]
fn a_secret_file_others_can_read_is_a_warning_and_with_strict_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("token");
    std::fs::write(&secret_file, SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [\"file:{}\"]\n",
            secret_file.display()
        ),
    );
    let check = |strict: bool| {
        let mut run = hookhouse(dir.path());
        run.args(["check-config", "--config"]).arg(&config);
        if strict {
            run.arg("--strict");
        }
        run_to_exit(run)
    };
    let warned = check(false);
    assert_eq!(warned.status.code(), Some(0), "{warned:?}");
    assert!(warned.stdout.contains("readable by other users (mode 0644)"), "{warned:?}");
    let refused = check(true);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("--strict") && refused.stderr.contains("chmod 600"));

    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let quiet = check(true);
    assert_eq!(quiet.status.code(), Some(0), "{quiet:?}");
    assert!(!quiet.stdout.contains("readable by other users"), "{quiet:?}");
    assert!(!quiet.stdout.contains(SECRET) && !quiet.stderr.contains(SECRET));
}

#[tokio::test]
async fn secret_new_refuses_a_source_that_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // A store to write into, made by a short-lived serve.
    let mut server = Server::start(process::serve(&data_dir)).await;
    server.terminate().await;
    assert!(server.wait_exit(PROCESS_DEADLINE).await.success());

    let mut run = hookhouse(dir.path());
    run.args(["secret", "new", "--source", "nosuch", "--data-dir"]).arg(&data_dir);
    let refused = run_to_exit(run);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("no source named `nosuch`"), "{refused:?}");
    assert!(!refused.stdout.contains("/hooks/"), "a secret was made: {refused:?}");

    let mut run = hookhouse(dir.path());
    run.args(["secret", "new", "--source", "default", "--data-dir"]).arg(&data_dir);
    let made = run_to_exit(run);
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    assert!(made.stdout.starts_with("/hooks/"), "{made:?}");
}

#[test]
fn check_config_shows_every_timeout_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_to_exit({
        let mut run = hookhouse(dir.path());
        run.arg("check-config");
        run
    });
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let effective: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let server = &effective["server"];
    for (key, default) in [
        ("header_read_timeout_secs", 10),
        ("body_read_timeout_secs", 30),
        ("idle_timeout_secs", 60),
        ("max_connections", 10_000),
        ("max_http2_streams", 100),
        ("max_header_bytes", 65_536),
        ("max_inflight_body_bytes", 134_217_728),
        ("max_auth_failures_per_minute", 20),
        ("auth_block_secs", 60),
    ] {
        assert_eq!(server[key], default, "{key} in {server}");
    }
    assert!(effective["store"]["keep_headers"].as_array().unwrap().len() >= 5);
}
