//! The PostgreSQL sink when PostgreSQL does not fail but stalls: a server that accepts TCP and
//! never answers, and a lock held by another session (a loader that died mid-batch, whose
//! session PostgreSQL has not yet noticed is gone). Either must count as a failure, be logged
//! and recorded, and leave the lag gauges moving, instead of a sink that waits silently.
//!
//! A permanent failure (a schema newer than this version) is not retried in a loop either.
//!
//! The lock and schema tests need `TEST_POSTGRES_URL` (`.ci/run` sets it); the silent server
//! needs nothing.

mod common;
mod pg;

use std::time::{Duration, Instant};

use common::{TestApp, email_open, spawn_app_with};
use pg::{Warehouse, database_url};
use rusqlite::OptionalExtension as _;
use tokio::net::TcpListener;

/// How long a test waits for what it expects, on a busy CI machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// The value of one series in `/metrics` text, or -1 if it is absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(-1.0)
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

/// The sink's last recorded error, as `hookhouse status` shows it.
fn sink_error(app: &TestApp) -> Option<String> {
    rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row("SELECT last_error FROM sink_cursors WHERE sink = 'postgres'", [], |r| r.get(0))
        .optional()
        .unwrap()
        .flatten()
}

async fn wait_for_error(app: &TestApp, contains: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(error) = sink_error(app).filter(|error| error.contains(contains)) {
            return error;
        }
        assert!(Instant::now() < deadline, "no error with `{contains}`: {:?}", sink_error(app));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_failure_and_the_gauges_keep_moving() {
    // Accepts connections and holds them open without reading or writing a byte.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let app = spawn_app_with(|config| {
        let pg = Warehouse::offline_sink(&url, "silent");
        config.sinks.postgres = Some(pg::with_timeouts(pg, 2, 1));
    })
    .await;
    for i in 0..20 {
        assert_eq!(app.post_webhook(&email_open(&format!("silent-{i}"))).await.status(), 200);
    }
    let error = wait_for_error(&app, "did not finish within 2 s").await;
    println!("recorded: {error}");

    // Failures are counted, and the lag gauges go on rising while every attempt hangs.
    let deadline = Instant::now() + DEADLINE;
    let (first_lag, first_failures) = loop {
        let text = metrics(&app).await;
        let lag = metric(&text, r#"hookhouse_sink_lag_seconds{sink="postgres"}"#);
        let failures = metric(&text, r#"hookhouse_sink_failures_total{sink="postgres"}"#);
        let requests = metric(&text, r#"hookhouse_sink_lag_requests{sink="postgres"}"#);
        if failures >= 1.0 && requests >= 20.0 && lag > 0.0 {
            break (lag, failures);
        }
        assert!(Instant::now() < deadline, "no failure or lag in\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let text = metrics(&app).await;
    let lag = metric(&text, r#"hookhouse_sink_lag_seconds{sink="postgres"}"#);
    let failures = metric(&text, r#"hookhouse_sink_failures_total{sink="postgres"}"#);
    assert!(lag >= first_lag + 3.0, "the lag gauge froze: {first_lag} then {lag}");
    assert!(
        failures > first_failures,
        "no further failure counted: {first_failures} then {failures}"
    );
    // The embedded sink is not held up by a stalled warehouse.
    assert_eq!(app.count("SELECT count(*) FROM events"), 20);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_lock_held_by_another_session_fails_the_load_naming_that_session() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "locked").await;
    let app = spawn_app_with(|config| {
        config.sinks.postgres = Some(pg::with_timeouts(pg.sink(&url), 30, 1));
    })
    .await;
    assert_eq!(app.post_webhook(&email_open("before-the-lock")).await.status(), 200);
    pg::wait_caught_up(&app.db_path(), DEADLINE).await;

    // Another session takes the progress marks' row locks and sits idle in its transaction,
    // as the session of a loader killed mid-batch does until PostgreSQL notices it is gone.
    let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .batch_execute(&format!("SELECT * FROM {}.load_progress FOR UPDATE", pg.schema))
        .await
        .unwrap();

    assert_eq!(app.post_webhook(&email_open("behind-the-lock")).await.status(), 200);
    let error = wait_for_error(&app, &format!("backend pid {holder_pid}")).await;
    println!("recorded: {error}");
    assert!(error.contains("load_progress"), "{error}");
    assert!(error.contains("idle in transaction"), "{error}");
    let text = metrics(&app).await;
    assert!(metric(&text, r#"hookhouse_sink_failures_total{sink="postgres"}"#) >= 1.0, "{text}");
    assert_eq!(pg.count("events").await, 1, "nothing loads past the lock");

    // Once the other session ends, the sink loads what waited.
    holder.batch_execute("ROLLBACK").await.unwrap();
    pg::wait_caught_up(&app.db_path(), DEADLINE).await;
    assert_eq!(pg.count("events").await, 2);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_schema_newer_than_this_version_is_permanent_and_not_retried_in_a_loop() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "newer").await;
    // What a newer hookhouse would have left: its schema at a version this one does not know.
    pg.client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.schema_migrations (version integer \
             PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO {schema}.schema_migrations (version) VALUES (99);",
            schema = pg.schema
        ))
        .await
        .unwrap();
    let app = spawn_app_with(|config| pg.configure(config, &url)).await;
    assert_eq!(app.post_webhook(&email_open("for-a-newer-schema")).await.status(), 200);
    let error = wait_for_error(&app, "newer than this hookhouse knows").await;
    assert!(error.contains("upgrade hookhouse"), "{error}");
    // A retryable failure would be tried again within 250 ms, 500 ms, 1 s...; a permanent one
    // waits a minute, so the count stays at one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = metrics(&app).await;
    assert_eq!(metric(&text, r#"hookhouse_sink_failures_total{sink="postgres"}"#), 1.0, "{text}");
    // The embedded tables are not held up by it.
    assert_eq!(app.count("SELECT count(*) FROM events"), 1);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}
