//! The binary's start-up: configuration layers (defaults, TOML file, `HOOKHOUSE_*` variables,
//! flags, each winning over the one before), refusals that name what is wrong, and the banner.

mod process;

use std::path::Path;
use std::process::Command;

use process::{Finished, PROCESS_DEADLINE, Server, hookhouse, run_to_exit};

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("hookhouse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `hookhouse serve --config FILE` plus `args`.
fn serve_with_config(dir: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = hookhouse(dir);
    command.args(["serve", "--config"]).arg(config).args(args);
    command
}

fn assert_refused(run: &Finished) {
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(!run.stdout.contains("listening"), "a refused configuration started serving: {run:?}");
}

/// Stops a server with SIGTERM and checks it exits 0.
async fn stop(mut server: Server) {
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(PROCESS_DEADLINE).build().unwrap()
}

#[tokio::test]
async fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"not-an-address\"\n[store]\ndata_dir = '{}'\n",
            from_file.display()
        ),
    );

    // The file alone is read, and its address refused.
    let run = run_to_exit(serve_with_config(dir.path(), &config, &[]));
    assert_refused(&run);
    assert!(run.stderr.contains("`not-an-address`"), "{run:?}");

    // The variable wins for `server.listen`; the file still gives `store.data_dir`.
    let mut command = serve_with_config(dir.path(), &config, &[]);
    command.env("HOOKHOUSE_SERVER__LISTEN", "127.0.0.1:0");
    let server = Server::start(command).await;
    assert!(from_file.join("hookhouse.db").is_file(), "no store in the file's data_dir");
    stop(server).await;
}

#[tokio::test]
async fn flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (from_env, from_flag) = (dir.path().join("from-env"), dir.path().join("from-flag"));
    let command = |args: &[&str]| {
        let mut command = hookhouse(dir.path());
        command
            .arg("serve")
            .args(args)
            .env("HOOKHOUSE_SERVER__LISTEN", "nowhere")
            .env("HOOKHOUSE_STORE__DATA_DIR", &from_env);
        command
    };

    // The variables alone are read, and their address refused.
    let run = run_to_exit(command(&[]));
    assert_refused(&run);
    assert!(run.stderr.contains("`nowhere`"), "{run:?}");

    let data_dir = from_flag.to_str().unwrap();
    let server = Server::start(command(&["--listen", "127.0.0.1:0", "--data-dir", data_dir])).await;
    assert!(from_flag.join("hookhouse.db").is_file(), "no store in --data-dir");
    assert!(!from_env.exists(), "the variable's data_dir was used despite --data-dir");
    stop(server).await;
}

#[tokio::test]
async fn configured_sources_replace_the_default_one() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = write_config(dir.path(), "[[sources]]\nname = \"prod\"\n");
    let command = serve_with_config(
        dir.path(),
        &config,
        &["--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()],
    );
    let server = Server::start(command).await;
    let banner = server.wait_for_stdout("/readyz").await;
    assert!(banner.contains(&server.url("/iterable/prod")), "{banner}");
    assert!(!banner.contains("/iterable/default"), "{banner}");

    let body = r#"{"email":"a@x.io","eventName":"emailOpen","dataFields":{"campaignId":5,"messageId":"cli-prod","createdAt":"2016-12-02 20:21:04 +00:00"}}"#;
    let post = |path: &str| {
        client().post(server.url(path)).header("content-type", "application/json").body(body).send()
    };
    let stored = post("/iterable/prod").await.unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.json::<serde_json::Value>().await.unwrap()["status"], "stored");
    assert_eq!(post("/iterable/default").await.unwrap().status(), 404);
    stop(server).await;

    let conn = rusqlite::Connection::open(data_dir.join("hookhouse.db")).unwrap();
    let sources: Vec<String> = conn
        .prepare("SELECT source FROM events")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sources, ["prod"]);
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = write_config(dir.path(), "[server]\nlisten = \"127.0.0.1:0\"\nmax_body = 3\n");
    let run = run_to_exit(serve_with_config(
        dir.path(),
        &config,
        &["--data-dir", data_dir.to_str().unwrap()],
    ));
    assert_refused(&run);
    assert!(run.stderr.contains("`max_body`"), "{run:?}");
    assert!(!data_dir.exists(), "a refused configuration created the store");

    let config = write_config(dir.path(), "[sever]\nlisten = \"127.0.0.1:0\"\n");
    let run = run_to_exit(serve_with_config(dir.path(), &config, &[]));
    assert_refused(&run);
    assert!(run.stderr.contains("`sever`"), "{run:?}");

    // A misspelt variable fails as loudly as a misspelt key.
    let mut command = hookhouse(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0"]).env("HOOKHOUSE_STORE__MAX_BACH", "3");
    let run = run_to_exit(command);
    assert_refused(&run);
    assert!(run.stderr.contains("`max_bach`"), "{run:?}");
}

#[test]
fn every_invalid_value_is_listed_in_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[server]\nlisten = \"nowhere\"\nmax_body_bytes = 0\n");
    let mut command = serve_with_config(dir.path(), &config, &[]);
    command.env("HOOKHOUSE_STORE__MAX_BATCH", "0");
    let run = run_to_exit(command);
    assert_refused(&run);
    for key in ["`server.listen`", "`server.max_body_bytes`", "`store.max_batch`"] {
        assert!(run.stderr.contains(key), "{key} is not named: {run:?}");
    }
    assert_eq!(run.stderr.matches("error:").count(), 1, "one error, not one per value: {run:?}");
}

#[test]
fn a_missing_config_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let run = run_to_exit(serve_with_config(dir.path(), &missing, &["--listen", "127.0.0.1:0"]));
    assert_refused(&run);
    assert!(run.stderr.contains("missing.toml"), "{run:?}");
}

#[tokio::test]
async fn without_configuration_the_store_is_created_and_the_banner_shows_the_default_source() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("new").join("data");
    let mut command = hookhouse(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data_dir);
    let server = Server::start(command).await;

    let banner = server.wait_for_stdout("/readyz").await;
    assert!(banner.contains(&server.url("/iterable/default")), "{banner}");
    assert!(banner.contains(&data_dir.join("hookhouse.db").display().to_string()), "{banner}");
    assert!(data_dir.join("hookhouse.db").is_file(), "no store in a new --data-dir");
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    stop(server).await;
    assert!(!dir.path().join("hookhouse-data").exists(), "the default data_dir was used");
}

#[tokio::test]
async fn the_log_level_variable_is_not_a_configuration_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = process::serve(&dir.path().join("data"));
    command.env("HOOKHOUSE_LOG", "debug");
    stop(Server::start(command).await).await;
}

#[tokio::test]
async fn sigterm_right_after_the_banner_exits_0() {
    // Each try lost the race most of the time while the handlers were installed after the
    // banner; it never does now that they are installed first.
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(process::serve(&dir.path().join("data"))).await;
        server.terminate_at_once();
        let status = server.wait_exit(PROCESS_DEADLINE).await;
        assert!(status.success(), "exit status {status} after SIGTERM");
    }
}

#[tokio::test]
async fn a_stalled_client_does_not_hold_shutdown_past_its_timeout() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[server]\nshutdown_timeout_secs = 1\n");
    let mut command = serve_with_config(dir.path(), &config, &["--listen", "127.0.0.1:0"]);
    command.arg("--data-dir").arg(dir.path().join("data"));
    let mut server = Server::start(command).await;
    // Half a request, its body never finished, as a slow or hostile client leaves it (one
    // still in its head has no request to finish and is dropped at once); then a pause so the
    // server has surely accepted the connection and is reading the body.
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"POST /iterable/default HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status}\n{}", server.output());
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "waited for the grace");
    assert!(server.output().contains("shutdown timeout"), "{}", server.output());
    drop(stalled);
}

#[test]
fn check_config_masks_secrets_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(
        dir.path(),
        "[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [\"s3cr3t-value-0123456\"]\n\
         drop_raw_bodies = true\n[sources.pseudonymise]\nkey = \"pseudonym-k3y-0123456789\"\n",
    );
    let mut command = hookhouse(dir.path());
    command.args(["check-config", "--config"]).arg(&good);
    let run = run_to_exit(command);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(run.stdout.contains("\"***\"") && run.stdout.contains("\"token\""), "{run:?}");
    assert!(run.stdout.contains("\"drop_raw_bodies\": true"), "{run:?}");
    let effective: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(effective["sources"][0]["pseudonymise"]["key"], "***", "{run:?}");
    for secret in ["s3cr3t-value-0123456", "pseudonym-k3y"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{secret}");
    }

    let bad = write_config(
        dir.path(),
        "[server]\nlisten = \"x\"\n[[sources]]\nname = \"P\"\nauth = \"token\"\n\
         [sources.pseudonymise]\nkey = \"short\"\n",
    );
    let mut command = hookhouse(dir.path());
    command.args(["check-config", "--config"]).arg(&bad);
    let run = run_to_exit(command);
    assert_eq!(run.status.code(), Some(1));
    for needle in ["server.listen", "no `secrets`", "source name `P`", "pseudonymise.key"] {
        assert!(run.stderr.contains(needle), "missing {needle}: {run:?}");
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [\"env:HH_TEST_TOKEN\"]\n",
    );
    let mut command = serve_with_config(dir.path(), &config, &["--listen", "127.0.0.1:0"]);
    command
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("HH_TEST_TOKEN", "log-5ecret-value")
        .env("HOOKHOUSE_LOG", "debug");
    let mut server = Server::start(command).await;
    let url = server.url("/iterable/prod");
    for token in ["log-5ecret-value", "wrong-guess-value"] {
        client()
            .post(&url)
            .header("authorization", format!("OAuth2 {token}"))
            .header("content-type", "application/json")
            .body(r#"{"eventName":"emailOpen"}"#)
            .send()
            .await
            .unwrap();
    }
    server.terminate().await;
    assert!(server.wait_exit(PROCESS_DEADLINE).await.success());
    let log = server.output();
    assert!(log.contains(r#"reason="unauthorized""#), "{log}");
    for secret in ["log-5ecret-value", "wrong-guess-value"] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for secret in ["log-5ecret-value", "wrong-guess-value"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} stored"
            );
        }
    }
}
