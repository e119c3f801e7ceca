//! `[retention]` on a real store: `serve`'s pruner at start, `hookhouse prune` while it runs
//! and `--dry-run`, removing exactly what the defaults say once every sink has loaded it,
//! and keeping what a sink has not loaded; what `/metrics` and `status` then show.

mod common;
mod pg;

use std::process::Command;

use common::{
    email_open, spawn_app, spawn_app_in, spawn_app_with, stored_seq, wait_embedded_loaded,
};
use rusqlite::{Connection, params};

fn hookhouse(args: &[&str], data_dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hookhouse"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("hookhouse runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Makes request `seq` (and its events) as old as `days`.
fn age(db: &Connection, seq: i64, days: i64) {
    let at = (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    db.execute("UPDATE raw_requests SET received_at = ?1 WHERE seq = ?2", params![at, seq])
        .unwrap();
    db.execute("UPDATE events SET received_at = ?1 WHERE raw_seq = ?2", params![at, seq]).unwrap();
}

fn seqs(db: &Connection, sql: &str) -> Vec<i64> {
    let mut statement = db.prepare(sql).unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

const ROWS: &str = "SELECT seq FROM raw_requests ORDER BY seq";
const BODIES: &str = "SELECT seq FROM raw_requests WHERE length(body) > 0 ORDER BY seq";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defaults_remove_what_every_sink_loaded_and_keep_the_rest() {
    let app = spawn_app().await;
    for n in 1..=6 {
        let seq = stored_seq(app.post_webhook(&email_open(&format!("m{n}"))).await).await;
        assert_eq!(seq, n);
    }
    wait_embedded_loaded(&app.db());
    // Read-write, as an operator's sqlite3 would be: the test makes rows old.
    let db = Connection::open(app.db_path()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let data_dir = app.stop().await.unwrap();
    // Requests 1 and 2 are 100 days old (past raw_requests_days = 90), 3 and 4 are 40 (past
    // raw_bodies_days = 30), 5 and 6 new. A PostgreSQL sink, configured once, has loaded
    // request 1 only: its cursor stays, and holds back everything after it.
    for (seq, days) in [(1, 100), (2, 100), (3, 40), (4, 40)] {
        age(&db, seq, days);
    }
    db.execute("INSERT INTO sink_cursors (sink, position) VALUES ('postgres', 1)", []).unwrap();

    let (ok, out) = hookhouse(&["prune", "--dry-run"], data_dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("would remove 1 requests received before"), "{out}");
    assert!(out.contains("would remove 1 request bodies"), "{out}");
    assert!(out.contains("sink `postgres` is the furthest behind"), "{out}");
    assert!(out.contains("dry run: nothing was removed"), "{out}");
    assert_eq!(seqs(&db, ROWS), [1, 2, 3, 4, 5, 6]);

    // `serve`'s pruner makes its first pass at start.
    let app = spawn_app_in(data_dir, |_| {}).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seqs(&db, ROWS).first() == Some(&1) {
        assert!(std::time::Instant::now() < deadline, "request 1 was not pruned at start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seqs(&db, ROWS), [2, 3, 4, 5, 6], "request 2 is not loaded by postgres");
    assert_eq!(seqs(&db, BODIES), [2, 3, 4, 5, 6]);
    assert_eq!(seqs(&db, "SELECT raw_seq FROM events ORDER BY raw_seq"), [1, 2, 3, 4, 5, 6]);

    // The sink catches up; `hookhouse prune` applies the settings while `serve` runs.
    db.execute("UPDATE sink_cursors SET position = 6 WHERE sink = 'postgres'", []).unwrap();
    let (ok, out) = hookhouse(&["prune"], app.data_dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("removed 1 requests"), "{out}");
    assert!(out.contains("removed 3 request bodies"), "2 goes first, then its row: {out}");
    assert_eq!(seqs(&db, ROWS), [3, 4, 5, 6]);
    assert_eq!(seqs(&db, BODIES), [5, 6], "the rows of 3 and 4 stay, with their digests");
    let digests = seqs(&db, "SELECT count(*) FROM raw_requests WHERE length(body_sha256) = 64");
    assert_eq!(digests, [4]);
    assert_eq!(seqs(&db, "SELECT count(*) FROM events"), [6], "events are kept by default");

    // The pruner counted what it removed at start; the store's size and oldest rows show.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hookhouse_retention_removed_total{table=\"raw_requests\"} 1"),
        "{metrics}"
    );
    let size = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hookhouse_store_size_bytes "))
        .unwrap_or_else(|| panic!("no store size in {metrics}"));
    assert!(size.parse::<u64>().unwrap() > 10_000, "{size}");
    let oldest = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("hookhouse_store_oldest_row_timestamp_seconds{table=\"events\"} ")
        })
        .unwrap_or_else(|| panic!("no oldest event in {metrics}"));
    let age_days = (chrono::Utc::now().timestamp() - oldest.parse::<i64>().unwrap()) / 86_400;
    assert_eq!(age_days, 100, "the oldest event is request 1's");

    let (ok, out) = hookhouse(&["status", "--json"], app.data_dir.path());
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let oldest_row = status["oldest"]["raw_requests"].as_str().unwrap();
    assert!(oldest_row.starts_with(
        &(chrono::Utc::now() - chrono::Duration::days(40)).format("%Y-%m-%d").to_string()
    ));
    assert_eq!(status["returns_space"], true, "a new store gives freed pages back");
    app.stop().await.unwrap();
}

/// A stopped store of `count` requests, 100 days old, that a PostgreSQL sink (for `schema`,
/// never reached: its cursor is made at 0 and stays there) has not loaded; the store opened
/// read-write, as an operator's sqlite3 would be.
async fn held_back_by_postgres(
    schema: &str,
    prefix: &str,
    count: i64,
) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
    let mut down = pg::Warehouse::offline_sink("postgres://postgres@127.0.0.1:1/test", "x");
    down.schema = schema.to_owned();
    let app = spawn_app_with(|config| config.sinks.postgres = Some(down.clone())).await;
    for n in 1..=count {
        stored_seq(app.post_webhook(&email_open(&format!("{prefix}{n}"))).await).await;
    }
    wait_embedded_loaded(&app.db());
    let db_path = app.db_path();
    let data_dir = app.stop().await.unwrap();
    let db = Connection::open(&db_path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    for seq in 1..=count {
        age(&db, seq, 100);
    }
    (data_dir, db_path, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warehouse_that_is_down_holds_requests_back_until_it_has_loaded_them() {
    let Some(url) = pg::database_url() else { return };
    let warehouse = pg::Warehouse::new(&url, "retention").await;
    let (data_dir, db_path, db) = held_back_by_postgres(&warehouse.schema, "pg", 4).await;
    let (ok, out) = hookhouse(&["prune"], data_dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("removed 0 requests"), "{out}");
    assert!(out.contains("up to seq 0 (sink `postgres` is the furthest behind)"), "{out}");
    assert_eq!(seqs(&db, BODIES), [1, 2, 3, 4]);

    // PostgreSQL is back: once it has loaded them, they go.
    let app = spawn_app_in(data_dir, |config| warehouse.configure(config, &url)).await;
    pg::wait_caught_up(&db_path, std::time::Duration::from_secs(30)).await;
    let (ok, out) = hookhouse(&["prune"], app.data_dir.path());
    assert!(ok, "{out}");
    assert!(seqs(&db, ROWS).is_empty(), "{out}");
    assert_eq!(warehouse.count("events").await, 4, "the warehouse keeps its rows");
    assert_eq!(seqs(&db, "SELECT count(*) FROM events"), [4]);
    app.stop().await.unwrap();
    warehouse.drop_schema().await;
}

#[tokio::test]
async fn check_config_refuses_bodies_kept_longer_than_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookhouse.toml");
    std::fs::write(&file, "[retention]\nraw_bodies_days = 120\nraw_requests_days = 90\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookhouse"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(text.contains("`retention.raw_bodies_days` (120) is longer"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_taken_out_of_the_configuration_holds_retention_back_until_forgotten() {
    let schema =
        pg::Warehouse::offline_sink("postgres://postgres@127.0.0.1:1/test", "forget").schema;
    let (data_dir, _, db) = held_back_by_postgres(&schema, "forget", 3).await;

    // Still in the configuration: refused, since `serve` would load everything again.
    let config = data_dir.path().join("hookhouse.toml");
    std::fs::write(&config, "[sinks.postgres]\nurl = \"postgres://postgres@127.0.0.1:1/test\"\n")
        .unwrap();
    let (ok, out) = hookhouse(
        &["forget-sink", "postgres", "--config", config.to_str().unwrap()],
        data_dir.path(),
    );
    assert!(!ok && out.contains("is in the configuration"), "{out}");
    assert_eq!(seqs(&db, "SELECT count(*) FROM sink_cursors WHERE sink = 'postgres'"), [1]);

    // Taken out of it: the cursor goes, and retention removes what the sinks left loaded.
    let (ok, out) = hookhouse(&["forget-sink", "postgres"], data_dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("forgot sink `postgres` (it had loaded up to seq 0)"), "{out}");
    assert!(out.contains("up to seq 3 (sink `sqlite` is the furthest behind)"), "{out}");
    let (ok, out) = hookhouse(&["forget-sink", "postgres"], data_dir.path());
    assert!(!ok && out.contains("it has: sqlite"), "{out}");
    let (ok, out) = hookhouse(&["prune"], data_dir.path());
    assert!(ok, "{out}");
    assert!(seqs(&db, ROWS).is_empty(), "{out}");
    assert_eq!(seqs(&db, "SELECT count(*) FROM events"), [3], "events are kept");
}
