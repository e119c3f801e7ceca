//! The inspector page in a real browser: headless Chromium driven by playwright-core
//! (`tests/browser/inspector.cjs`) against a hookhouse serving on real ports. Needs
//! `TEST_BROWSER`, the directory `.ci/browser` prints (its `node_modules` holds
//! playwright-core); without it these tests say they are skipped.
//!
//! Screenshots of each state are kept in `target/tmp/inspector-screenshots/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hookhouse::app::App;
use hookhouse::config::{AdminConfig, Config};
use rusqlite::Connection;
use secrecy::SecretString;
use tokio::sync::oneshot;

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

struct Running {
    webhook: SocketAddr,
    admin: SocketAddr,
    db: PathBuf,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(token: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_data_dir(dir.path());
    config.admin = Some(AdminConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: token.map(|t| SecretString::from(t.to_owned())),
    });
    let app = App::build(config).await.unwrap();
    let (webhook, admin) = (app.local_addr(), app.admin_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Running { webhook, admin, db: dir.path().join("hookhouse.db"), stop, served, _dir: dir }
}

async fn post(client: &reqwest::Client, running: &Running, body: String) -> i64 {
    let answer: serde_json::Value = client
        .post(format!("http://{}/iterable/default", running.webhook))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["seq"].as_i64().unwrap()
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

/// Waits until the embedded sink has loaded request `seq`.
fn wait_loaded(db: &Path, seq: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn = Connection::open(db).unwrap();
    loop {
        let position: i64 = conn
            .query_row(
                "SELECT coalesce(max(position), 0) FROM sink_cursors WHERE sink = 'sqlite'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if position >= seq {
            return;
        }
        assert!(Instant::now() < deadline, "request {seq} was not loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Leaves request `seq` as a hookhouse that could not read it would have: no event, a failure.
/// (Replay exists for this: a newer normaliser reads what an older one failed.)
fn fail_as_an_older_version_would(db: &Path, seq: i64) {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("DELETE FROM events WHERE raw_seq = ?1", [seq]).unwrap();
    conn.execute(
        "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body) \
         SELECT seq, received_at, 'decode', 'written by an older hookhouse', body \
         FROM raw_requests WHERE seq = ?1",
        [seq],
    )
    .unwrap();
}

fn run_script(
    browser: &Path,
    running: &Running,
    screenshots: &Path,
    seqs: (i64, i64),
    token: Option<&str>,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/inspector.cjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("NODE_PATH", browser.join("node_modules"))
        .env("ADMIN_URL", format!("http://{}/", running.admin))
        .env("WEBHOOK_URL", format!("http://{}/iterable/default", running.webhook))
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
    let running = start(None).await;
    let client = reqwest::Client::new();
    let names = ["emailSend", "emailOpen", "emailClick", "pushSend", "smsSend", "inAppOpen"];
    let mut last = 0;
    for n in 0..30 {
        last = post(
            &client,
            &running,
            event(names[n % names.len()], &format!("user{n}@example.com"), n),
        )
        .await;
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
    let hostile_seq = post(&client, &running, hostile.to_string()).await;
    let failed_seq = post(&client, &running, event("emailBounce", "bounced@example.com", 99)).await;
    wait_loaded(&running.db, failed_seq.max(last).max(hostile_seq));
    fail_as_an_older_version_would(&running.db, failed_seq);

    let screenshots = screenshots_dir("new-user");
    tokio::task::block_in_place(|| {
        run_script(&browser, &running, &screenshots, (failed_seq, hostile_seq), None)
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
    let conn = Connection::open(&running.db).unwrap();
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
    running.stop.send(()).unwrap();
    running.served.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_asks_for_it_and_refuses_a_wrong_one() {
    let Some(browser) = browser_dir() else { return };
    let token = "a-token-long-enough-0123456789";
    let running = start(Some(token)).await;
    let client = reqwest::Client::new();
    let seq = post(&client, &running, event("emailOpen", "token@example.com", 1)).await;
    wait_loaded(&running.db, seq);
    let screenshots = screenshots_dir("token");
    tokio::task::block_in_place(|| {
        run_script(&browser, &running, &screenshots, (0, 0), Some(token))
    });
    assert_screenshots(&screenshots, &["09-token-asked", "10-token-accepted"]);
    running.stop.send(()).unwrap();
    running.served.await.unwrap().unwrap();
}
