//! `hookhouse validate` and `hookhouse replay` through the real binary.

mod common;

use std::process::{Command, Output};

use common::{email_open, spawn_app};
use serde_json::Value;

fn hookhouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhouse")).args(args).output().expect("binary runs")
}

#[test]
fn validate_prints_the_rows_or_the_reasons() {
    let ok = hookhouse(&["validate", "tests/fixtures/iterable/emailClick/basic.json"]);
    assert!(ok.status.success(), "{ok:?}");
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["events"][0]["event_name"], "emailClick");
    assert!(report["events"][0]["url"].is_string());
    assert_eq!(report["failures"], Value::Array(vec![]));

    let form = hookhouse(&["validate", "tests/fixtures/iterable/emailClick/form_encoded.form"]);
    assert!(form.status.success());

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"email": "a@x.io", "dataFields": {}}"#).unwrap();
    let refused = hookhouse(&["validate", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["failures"][0]["reason"], "the event has no `eventName`");

    let missing = hookhouse(&["validate", "/nonexistent.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.json"));
}

/// Stores a readable request as if an older hookhouse had failed to read it: a raw row and a
/// `failed_events` row, no event, and the embedded sink's cursor past it (as that version's
/// sink left it), all in one transaction so the running sink never sees the row without them.
fn store_as_failed_by_an_older_version(db: &std::path::Path, body: &str) -> i64 {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // Nothing in flight: the sink has loaded everything before.
    common::wait_embedded_loaded(&conn);
    let conn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    conn.execute(
        "INSERT INTO raw_requests (received_at, source, method, path, query, headers, \
         remote_addr, content_type, body, body_sha256) VALUES \
         ('2026-01-01T00:00:00.000000Z', 'default', 'POST', '/iterable/default', NULL, '{}', \
         '127.0.0.1', 'application/json', ?1, ?2)",
        rusqlite::params![body.as_bytes(), hookhouse::request::sha256_hex(body.as_bytes())],
    )
    .unwrap();
    let seq = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body) \
         VALUES (?1, '2026-01-01T00:00:00.000000Z', 'envelope', 'unknown shape (old version)', ?2)",
        rusqlite::params![seq, body.as_bytes()],
    )
    .unwrap();
    // A new generation, as a replay makes: a batch the running sink read before this commit
    // (its poll may read the cursor before and the requests after) is then not applied, where
    // it would have made an event of this request and deleted its failure.
    conn.execute(
        "UPDATE sink_cursors SET position = ?1, generation = generation + 1 WHERE sink = 'sqlite'",
        [seq],
    )
    .unwrap();
    conn.commit().unwrap();
    seq
}

#[tokio::test]
async fn replay_turns_a_failure_into_an_event_while_serve_runs() {
    let app = spawn_app().await;
    for i in 0..20 {
        assert_eq!(app.post_webhook(&email_open(&format!("before-{i}"))).await.status(), 200);
    }
    assert_eq!(app.post_webhook("{not json").await.status(), 200);
    let fixed_seq = store_as_failed_by_an_older_version(&app.db_path(), &email_open("recovered"));
    assert_eq!(app.count("SELECT count(*) FROM failed_events"), 2);

    // Live traffic goes on while the replay runs.
    let sender = {
        let (client, url) = (app.client.clone(), app.url("/iterable/default"));
        tokio::spawn(async move {
            let mut acked = 0;
            for i in 0..200 {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(email_open(&format!("during-{i}")))
                    .send()
                    .await
                    .unwrap();
                acked += u32::from(response.status() == 200);
            }
            acked
        })
    };
    let data_dir = app.data_dir.path().to_str().unwrap().to_owned();
    let replay = tokio::task::spawn_blocking(move || {
        hookhouse(&["replay", "--failed", "--data-dir", &data_dir])
    })
    .await
    .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    let summary = String::from_utf8_lossy(&replay.stdout);
    assert!(summary.contains("replayed 2 requests"), "{summary}");
    assert!(summary.contains("failed rows 2 -> 1"), "{summary}");
    assert_eq!(sender.await.unwrap(), 200, "serve kept acknowledging during the replay");

    assert_eq!(
        app.count("SELECT count(*) FROM failed_events"),
        1,
        "the malformed body stays failed"
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM events WHERE raw_seq = {fixed_seq}")),
        1,
        "the readable request became an event"
    );
    assert_eq!(app.count("SELECT count(*) FROM events"), 20 + 200 + 1);

    // All, twice: idempotent.
    let data_dir = app.data_dir.path().to_str().unwrap().to_owned();
    for _ in 0..2 {
        let again = hookhouse(&["replay", "--data-dir", &data_dir]);
        assert!(again.status.success());
        assert!(String::from_utf8_lossy(&again.stdout).contains("replayed 222 requests"));
        assert_eq!(app.count("SELECT count(*) FROM events"), 221);
        assert_eq!(app.count("SELECT count(*) FROM failed_events"), 1);
    }
    let range = hookhouse(&["replay", "--seq", "3..5", "--data-dir", &data_dir]);
    assert!(String::from_utf8_lossy(&range.stdout).contains("replayed 3 requests"));
    let since =
        hookhouse(&["replay", "--since", "2026-01-01 00:00:00 +00:00", "--data-dir", &data_dir]);
    assert!(since.status.success());
    let bad = hookhouse(&["replay", "--seq", "9..2", "--data-dir", &data_dir]);
    assert_eq!(bad.status.code(), Some(1));
    app.stop().await.unwrap();
}

#[test]
fn replay_without_a_store_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookhouse(&["replay", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `hookhouse serve` first"));
}
