//! Stitch-style secret URLs: made by the CLI, used through `serve`, at most two live per
//! source, revoked; the secret never stored.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestApp, email_open, spawn_app_with};

fn secret(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookhouse"))
        .arg("secret")
        .args(args)
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .output()
        .unwrap()
}

/// Posts to `path` until it answers `want` (secret URLs reach `serve` within a second).
async fn post_until(app: &TestApp, path: &str, want: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // The body must not carry the secret, or the check that it is never stored is void.
        let response = app.post(path, "application/json", &email_open("via-secret-url")).await;
        if response.status() == want || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn secret_urls_are_made_used_limited_and_revoked() {
    // Waiting for a new or revoked URL to reach `serve` means repeated 401s: no block here
    // (tests/auth_block.rs covers it).
    let app = spawn_app_with(|config| config.server.auth_block = None).await;
    assert_eq!(app.post("/hooks/guess", "application/json", "{}").await.status(), 401);

    let made = secret(&app, &["new", "--source", "default"]);
    assert!(made.status.success(), "{made:?}");
    let path = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    assert!(path.starts_with("/hooks/") && path.len() > 40, "{path}");
    assert_eq!(post_until(&app, &format!("{path}?campaign=7"), 200).await.status(), 200);
    let (stored_path, query, source): (String, String, String) = app
        .db()
        .query_row("SELECT path, query, source FROM raw_requests", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (stored_path.as_str(), query.as_str(), source.as_str()),
        ("/hooks/secret-1", "campaign=7", "default")
    );
    assert_eq!(app.count("SELECT count(*) FROM events"), 1);

    // Two live per source: a second is fine, a third is refused.
    assert!(secret(&app, &["new", "--source", "default"]).status.success());
    let third = secret(&app, &["new", "--source", "default"]);
    assert_eq!(third.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&third.stderr).contains("revoke one first"));

    let listed = String::from_utf8(secret(&app, &["list"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let secret_part = path.trim_start_matches("/hooks/");
    assert!(!listed.contains(secret_part));
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret_part.len()).any(|w| w == secret_part.as_bytes()));
    }

    assert!(secret(&app, &["revoke", "--id", "1"]).status.success());
    assert_eq!(post_until(&app, &path, 401).await.status(), 401);
    app.stop().await.unwrap();
}
