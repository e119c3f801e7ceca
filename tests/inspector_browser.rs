//! The inspector page in a real browser: headless Chromium driven by playwright-core
//! (`tests/browser/inspector.cjs`) against a hookhouse serving on real ports. Needs
//! `TEST_BROWSER`, the directory `.ci/browser` prints (its `node_modules` holds
//! playwright-core); without it these tests say they are skipped.
//!
//! Screenshots of each state are kept in `target/tmp/inspector-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{OLDER_VERSION_REASON, TestApp, spawn_app_with, stored_seq};
use hookhouse::config::AdminConfig;
use secrecy::SecretString;

fn browser_dir() -> Option<PathBuf> {
    match std::env::var_os("TEST_BROWSER") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!(
                "skipped: set TEST_BROWSER=$(.ci/browser) to run the inspector in headless Chromium"
            );
            None
        }
    }
}

/// hookhouse with the inspector on a random loopback port (and `token`).
async fn start(token: Option<&str>) -> TestApp {
    let token = token.map(|t| SecretString::from(t.to_owned()));
    spawn_app_with(|config| {
        config.admin = Some(AdminConfig { listen: "127.0.0.1:0".parse().unwrap(), token });
    })
    .await
}

async fn post(app: &TestApp, body: String) -> i64 {
    stored_seq(app.post_webhook(&body).await).await
}

fn event(name: &str, email: &str, n: usize) -> String {
    serde_json::json!({
        "email": email,
        "eventName": name,
        "dataFields": {
            "email": email, "campaignId": 5000 + n, "templateId": 61,
            "messageId": format!("browser-{name}-{n}"), "createdAt": "2026-12-02 07:00:00 +00:00"
        }
    })
    .to_string()
}

fn run_script(
    browser: &Path,
    app: &TestApp,
    screenshots: &Path,
    seqs: (i64, i64),
    token: Option<&str>,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/inspector.cjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("NODE_PATH", browser.join("node_modules"))
        .env("ADMIN_URL", app.admin_url("/"))
        .env("WEBHOOK_URL", app.url("/iterable/default"))
        .env("OLDER_VERSION_REASON", OLDER_VERSION_REASON)
        .env("SCREENSHOTS", screenshots)
        .env("HOOKHOUSE", env!("CARGO_BIN_EXE_hookhouse"))
        .env("FAILED_SEQ", seqs.0.to_string())
        .env("HOSTILE_SEQ", seqs.1.to_string());
    if let Some(token) = token {
        command.env("TOKEN", token);
    }
    let output = command.output().expect("node runs (`.ci/browser` installs it)");
    let say = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}",
        say(&output.stdout),
        say(&output.stderr)
    );
    println!("{}", say(&output.stdout));
}

/// An empty directory for one test's screenshots, so none is left from an earlier run.
fn screenshots_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspector-screenshots").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_screenshots(dir: &Path, names: &[&str]) {
    for name in names {
        let file = dir.join(format!("{name}.png"));
        let bytes =
            std::fs::read(&file).unwrap_or_else(|_| panic!("no screenshot {}", file.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{} is not a screenshot",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_watches_requests_arrive_filters_opens_and_replays_in_chromium() {
    let Some(browser) = browser_dir() else { return };
    let app = start(None).await;
    let names = ["emailSend", "emailOpen", "emailClick", "pushSend", "smsSend", "inAppOpen"];
    let mut last = 0;
    for n in 0..30 {
        last = post(&app, event(names[n % names.len()], &format!("user{n}@example.com"), n)).await;
    }
    // Webhook bodies come from outside: values that are markup must show as text.
    let hostile = serde_json::json!({
        "email": "<img src=x onerror=window.__xss=1>@example.com",
        "eventName": "emailClick",
        "dataFields": {
            "email": "<img src=x onerror=window.__xss=1>@example.com",
            "campaignId": 9, "messageId": "hostile",
            "campaignName": "</pre><script>window.__xss=2</script>\"><svg onload=window.__xss=3>",
            "url": "javascript:window.__xss=4", "createdAt": "2026-12-02 07:00:00 +00:00"
        }
    });
    let hostile_seq = post(&app, hostile.to_string()).await;
    let failed_seq = post(&app, event("emailBounce", "bounced@example.com", 99)).await;
    assert!(failed_seq > last.max(hostile_seq));
    drop(app.db()); // once every request is loaded
    app.fail_as_an_older_version(failed_seq);

    let screenshots = screenshots_dir("new-user");
    tokio::task::block_in_place(|| {
        run_script(&browser, &app, &screenshots, (failed_seq, hostile_seq), None)
    });
    assert_screenshots(
        &screenshots,
        &[
            "01-loaded",
            "02-new-request",
            "03-filtered",
            "04-detail",
            "05-failures",
            "06-replayed",
            "07-phone-list",
            "08-phone-detail",
        ],
    );

    // The replay the page asked for is in the store: the event is back, the failure gone.
    let conn = app.db();
    let events: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE raw_seq = ?1 AND email = 'bounced@example.com'",
            [failed_seq],
            |r| r.get(0),
        )
        .unwrap();
    let failures: i64 = conn
        .query_row("SELECT count(*) FROM failed_events WHERE raw_seq = ?1", [failed_seq], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!((events, failures), (1, 0));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_asks_for_it_and_refuses_a_wrong_one() {
    let Some(browser) = browser_dir() else { return };
    let token = "a-token-long-enough-0123456789";
    let app = start(Some(token)).await;
    post(&app, event("emailOpen", "token@example.com", 1)).await;
    drop(app.db()); // once it is loaded
    let screenshots = screenshots_dir("token");
    tokio::task::block_in_place(|| run_script(&browser, &app, &screenshots, (0, 0), Some(token)));
    assert_screenshots(&screenshots, &["09-token-asked", "10-token-accepted"]);
    app.stop().await.unwrap();
}
