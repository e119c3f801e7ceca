//! A damaged store is reported, not served as if nothing happened: real files damaged as a
//! disk or a cut WAL damages them, `hookhouse check` and `replay` through the real binary, and
//! `serve` through its port (`/readyz`, `/metrics`) and `hookhouse status`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{email_open, spawn_app, spawn_app_in, stored_seq};
use rusqlite::Connection;
use serde_json::Value;

fn hookhouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhouse")).args(args).output().expect("binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stores `count` distinct events, lets the embedded sink load them, and stops `serve`, with
/// the WAL checkpointed into the file so that the file alone holds every page.
async fn store_with_events(count: usize) -> tempfile::TempDir {
    let app = spawn_app().await;
    for i in 0..count {
        stored_seq(app.post_webhook(&email_open(&format!("integrity-{i}"))).await).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM events"), count as i64);
    let dir = app.stop().await.unwrap();
    let conn = Connection::open(dir.path().join("hookhouse.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    dir
}

/// Flips 16 bytes in the middle of one key of a leaf page of the events' primary-key index:
/// inside the cell content, so the page's header and cell pointers are intact and SQLite
/// opens the file and walks the page as if nothing happened.
fn flip_an_index_entry(db: &Path) -> i64 {
    let page = {
        let conn = Connection::open(db).unwrap();
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let pageno: i64 = conn
            .query_row(
                "SELECT pageno FROM dbstat WHERE name = 'sqlite_autoindex_events_1' \
                 AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 1",
                [],
                |r| r.get(0),
            )
            .expect("the events' primary key has two leaf pages at least");
        (pageno, page_size)
    };
    let (pageno, page_size) = page;
    let mut file = std::fs::read(db).unwrap();
    let start = usize::try_from((pageno - 1) * page_size).unwrap();
    let leaf = &mut file[start..start + usize::try_from(page_size).unwrap()];
    assert_eq!(leaf[0], 0x0a, "an index leaf page");
    let cells = usize::from(u16::from_be_bytes([leaf[3], leaf[4]]));
    let pointer = 8 + 2 * (cells / 2);
    let cell = usize::from(u16::from_be_bytes([leaf[pointer], leaf[pointer + 1]]));
    // Payload size, header size and two serial types take a byte each: the 42 characters of
    // the event id start 4 bytes in; these 16 are in its hash part.
    for byte in &mut leaf[cell + 20..cell + 36] {
        *byte ^= 0x01;
    }
    std::fs::write(db, file).unwrap();
    pageno
}

/// `/readyz` once the check at start has ended.
async fn readyz_after_the_check(app: &common::TestApp) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get("/readyz").await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if body["store"]["check"] != "checking" {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "the check at start did not end: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(app: &common::TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn a_damaged_index_entry_is_found_by_check_and_reported_by_serve() {
    let dir = store_with_events(400).await;
    let db = dir.path().join("hookhouse.db");
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let clean = hookhouse(&["check", "--data-dir", &data_dir]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(stdout(&clean).contains("bodies: 400 verified, 0 skipped"), "{}", stdout(&clean));

    let page = flip_an_index_entry(&db);
    // What made this invisible: the quick check passes such a page.
    let quick = hookhouse(&["check", "--quick", "--data-dir", &data_dir]);
    assert!(stdout(&quick).contains("file: ok (PRAGMA quick_check"), "{}", stdout(&quick));

    let check = hookhouse(&["check", "--data-dir", &data_dir]);
    let out = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{out}\n{}", String::from_utf8_lossy(&check.stderr));
    assert!(out.contains("file: DAMAGED (PRAGMA integrity_check"), "page {page}: {out}");
    assert!(out.contains("missing from index sqlite_autoindex_events_1"), "{out}");
    assert!(out.contains("What to do: restore the last backup"), "{out}");

    let app = spawn_app_in(dir, |_| {}).await;
    let (status, body) = readyz_after_the_check(&app).await;
    assert_eq!(status, 200, "requests are still stored: {body}");
    assert_eq!(body["store"]["check"], "damaged", "{body}");
    let problems = body["store"]["problems"].to_string();
    assert!(problems.contains("sqlite_autoindex_events_1"), "{body}");
    assert!(body["store"]["what_to_do"].as_str().unwrap().contains("hookhouse replay"));
    let text = metrics(&app).await;
    assert!(text.lines().any(|l| l == "hookhouse_store_damaged 1"), "{text}");

    let status = hookhouse(&["status", "--data-dir", app.data_dir.path().to_str().unwrap()]);
    let out = stdout(&status);
    assert!(out.contains("integrity: DAMAGED"), "{out}");
    assert!(out.contains("sqlite_autoindex_events_1"), "{out}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_healthy_store_says_so_on_readyz_metrics_and_status() {
    let dir = store_with_events(3).await;
    let app = spawn_app_in(dir, |_| {}).await;
    let (status, body) = readyz_after_the_check(&app).await;
    assert_eq!((status, &body["store"]["check"]), (200, &Value::from("ok")), "{body}");
    assert_eq!(body["store"]["seq_gap"], Value::Null);
    let text = metrics(&app).await;
    assert!(text.lines().any(|l| l == "hookhouse_store_damaged 0"), "{text}");
    assert!(text.contains("hookhouse_store_check_timestamp_seconds 1"), "{text}");
    let data_dir = app.data_dir.path().to_str().unwrap();
    let status = hookhouse(&["status", "--data-dir", data_dir]);
    assert!(stdout(&status).contains("integrity: ok at `serve`'s start"), "{}", stdout(&status));
    let json: Value =
        serde_json::from_slice(&hookhouse(&["status", "--json", "--data-dir", data_dir]).stdout)
            .unwrap();
    assert_eq!(json["integrity"]["damaged"], false, "{json}");
    assert_eq!(json["integrity"]["last_check"]["check"], "ok", "{json}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_altered_body_is_named_by_check_and_replay_leaves_its_event_alone() {
    let dir = store_with_events(5).await;
    let db = dir.path().join("hookhouse.db");
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let conn = Connection::open(&db).unwrap();
    // Bytes of one body changed in place, its digest left as it was: it no longer parses.
    conn.execute(
        "UPDATE raw_requests SET body = CAST(replace(CAST(body AS TEXT), '\"eventName\"', \
         '\"eventNamf\"') AS BLOB) WHERE seq = 3",
        [],
    )
    .unwrap();
    let event = |conn: &Connection| -> (i64, i64) {
        conn.query_row(
            "SELECT (SELECT count(*) FROM events WHERE raw_seq = 3), \
             (SELECT count(*) FROM failed_events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(event(&conn), (1, 0));

    let check = hookhouse(&["check", "--data-dir", &data_dir]);
    let out = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains("file: ok"), "{out}");
    assert!(out.contains("bodies: 4 verified, 0 skipped"), "{out}");
    assert!(out.contains("body no longer matches its body_sha256: seq 3\n"), "{out}");

    let replay = hookhouse(&["replay", "--data-dir", &data_dir]);
    let out = stdout(&replay);
    assert_eq!(replay.status.code(), Some(1), "{out}");
    assert!(out.contains("replayed 4 requests"), "{out}");
    assert!(out.contains("left out 1 requests whose body no longer matches"), "{out}");
    assert!(out.contains("seq 3;"), "{out}");
    assert_eq!(event(&conn), (1, 0), "the intact event stays and no failure is filed");
}

#[tokio::test]
async fn a_store_missing_requests_its_sinks_loaded_never_reuses_their_numbers() {
    let dir = store_with_events(5).await;
    let db = dir.path().join("hookhouse.db");
    let data_dir = dir.path().to_str().unwrap().to_owned();
    {
        // As a WAL cut short leaves it: the last two requests and their place in the sequence
        // gone, while the sinks' cursors (read from pages already in the file) say loaded.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "DELETE FROM raw_requests WHERE seq > 3;
             UPDATE sqlite_sequence SET seq = 3 WHERE name = 'raw_requests';
             INSERT INTO sink_cursors (sink, position) VALUES ('postgres', 5);",
        )
        .unwrap();
    }
    let check = hookhouse(&["check", "--data-dir", &data_dir]);
    let out = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains("requests after seq 3 up to 5 are missing from the store"), "{out}");
    let status = hookhouse(&["status", "--data-dir", &data_dir]);
    assert!(stdout(&status).contains("MISSING REQUESTS: requests after seq 3 up to 5"));

    let app = spawn_app_in(dir, |_| {}).await;
    let seq = stored_seq(app.post_webhook(&email_open("after-the-cut")).await).await;
    assert_eq!(seq, 6, "numbered above every loaded request");
    let (status, body) = readyz_after_the_check(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["store"]["seq_gap"]["last_seq"], 3, "{body}");
    assert_eq!(body["store"]["seq_gap"]["loaded_through"], 5, "{body}");
    let text = metrics(&app).await;
    assert!(text.lines().any(|l| l == "hookhouse_store_damaged 1"), "{text}");
    assert!(text.lines().any(|l| l == "hookhouse_store_missing_requests 2"), "{text}");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE raw_seq = 6"), 1);
    app.stop().await.unwrap();
}
