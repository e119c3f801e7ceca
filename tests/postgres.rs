//! The PostgreSQL sink against a real PostgreSQL: typed rows for every fixture, exactly once
//! through redelivery, a reload after a crash, an outage, and values PostgreSQL refuses.
//!
//! Needs `TEST_POSTGRES_URL` (`.ci/run` sets it); each test works in a schema of its
//! own, dropped at its end.

mod common;
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{TestApp, email_open, fixtures, spawn_app, spawn_app_in, spawn_app_with};
use hookhouse::sinks::columns::{EVENTS, Kind};
use hookhouse::spool::Selection;
use pg::{URL_VARIABLE, Warehouse, database_url};
use rusqlite::OptionalExtension as _;
use rusqlite::types::ValueRef;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// How long the sink may take to load what a test sent, on a busy CI machine.
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the sink's cursor has reached the newest request in the spool.
async fn wait_caught_up(app: &TestApp) {
    pg::wait_caught_up(&app.db_path(), LOAD_DEADLINE).await;
}

#[tokio::test]
async fn every_fixture_lands_in_postgres_with_real_types() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "types").await;
    let app = spawn_app_with(|config| pg.configure(config, &url)).await;
    for (path, content_type) in fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        let response = app.post("/iterable/default", content_type, &text).await;
        assert_eq!(response.status(), 200, "{}", path.display());
    }
    // A journey call and a body the normaliser cannot read travel too.
    app.post("/iterable/default/journey/welcome", "application/json", r#"{"email":"a@b.c"}"#).await;
    app.post_webhook("{not json").await;
    wait_caught_up(&app).await;

    // The declared types, as a warehouse user sees them.
    let types: Vec<(String, String)> = pg
        .client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'events'",
            &[&pg.schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (column, expected) in [
        ("created_at", "timestamp with time zone"),
        ("received_at", "timestamp with time zone"),
        ("campaign_id", "bigint"),
        ("template_id", "bigint"),
        ("data", "jsonb"),
        ("labels", "jsonb"),
        ("is_bot", "boolean"),
        ("email", "text"),
    ] {
        assert!(
            types.iter().any(|(name, ty)| name == column && ty == expected),
            "{column} should be {expected}: {types:?}"
        );
    }

    // Every event, every column: the same value in PostgreSQL as in the embedded store.
    let sqlite = app.db();
    let mut statement = sqlite
        .prepare(&format!(
            "SELECT {} FROM events ORDER BY event_id",
            EVENTS.names().collect::<Vec<_>>().join(", ")
        ))
        .unwrap();
    let mut rows = statement.query([]).unwrap();
    let mut compared = 0;
    while let Some(row) = rows.next().unwrap() {
        let event_id: String = row.get(0).unwrap();
        let sql = format!(
            "SELECT {} FROM {}.events WHERE event_id = $1",
            EVENTS.names().collect::<Vec<_>>().join(", "),
            pg.schema
        );
        let loaded = pg.client.query_one(&sql, &[&event_id]).await.unwrap();
        for (index, column) in EVENTS.columns.iter().enumerate() {
            let stored = row.get_ref(index).unwrap();
            let context = format!("{event_id}.{}", column.name);
            assert_same(stored, &loaded, index, column.kind, &context);
        }
        compared += 1;
    }
    assert!(compared >= 58, "every fixture event compared, not {compared}");
    assert_eq!(compared, app.count("SELECT count(*) FROM events"));
    assert_eq!(pg.count("events").await, compared);
    assert_eq!(pg.count("raw_requests").await, app.count("SELECT count(*) FROM raw_requests"));
    assert_eq!(pg.count("journey_calls").await, 1);
    assert_eq!(pg.count("failed_events WHERE stage = 'decode' AND sink IS NULL").await, 1);
    assert_eq!(pg.count("email_open").await, app.count("SELECT count(*) FROM email_open"));
    drop(rows);
    drop(statement);
    drop(sqlite);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

/// Asserts a SQLite value and the PostgreSQL value loaded from it are the same, by kind.
fn assert_same(
    stored: ValueRef<'_>,
    loaded: &tokio_postgres::Row,
    index: usize,
    kind: Kind,
    context: &str,
) {
    if stored == ValueRef::Null {
        let null = match kind {
            Kind::Text => loaded.get::<_, Option<String>>(index).is_none(),
            Kind::BigInt => loaded.get::<_, Option<i64>>(index).is_none(),
            Kind::Bool => loaded.get::<_, Option<bool>>(index).is_none(),
            Kind::Time => loaded.get::<_, Option<DateTime<Utc>>>(index).is_none(),
            Kind::Json => loaded.get::<_, Option<Value>>(index).is_none(),
            Kind::Bytes => loaded.get::<_, Option<Vec<u8>>>(index).is_none(),
        };
        assert!(null, "{context}: NULL in SQLite, not in PostgreSQL");
        return;
    }
    match kind {
        Kind::Text => {
            assert_eq!(stored.as_str().unwrap(), loaded.get::<_, &str>(index), "{context}")
        }
        Kind::BigInt => {
            assert_eq!(stored.as_i64().unwrap(), loaded.get::<_, i64>(index), "{context}")
        }
        Kind::Bool => {
            assert_eq!(stored.as_i64().unwrap() != 0, loaded.get::<_, bool>(index), "{context}")
        }
        Kind::Time => {
            let text = stored.as_str().unwrap();
            let expected = DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
            assert_eq!(expected, loaded.get::<_, DateTime<Utc>>(index), "{context}");
        }
        Kind::Json => {
            let expected: Value = serde_json::from_str(stored.as_str().unwrap()).unwrap();
            assert_eq!(expected, loaded.get::<_, Value>(index), "{context}");
        }
        Kind::Bytes => {
            assert_eq!(stored.as_blob().unwrap(), loaded.get::<_, &[u8]>(index), "{context}")
        }
    }
}

#[tokio::test]
async fn redelivery_and_a_reload_after_a_crash_leave_no_duplicate() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "once").await;
    let app = spawn_app_with(|config| pg.configure(config, &url)).await;
    for i in 0..20 {
        let body = email_open(&format!("once-{i}"));
        // Iterable retries a webhook with the same body: three deliveries, one event.
        for _ in 0..3 {
            assert_eq!(app.post_webhook(&body).await.status(), 200);
        }
    }
    app.post_webhook("{broken").await;
    wait_caught_up(&app).await;
    assert_eq!(pg.count("raw_requests").await, 61);
    assert_eq!(pg.count("events").await, 20);
    assert_eq!(pg.count("failed_events").await, 1);

    // A crash after PostgreSQL committed but before the cursor moved: on restart the sink
    // loads the same requests again.
    let data_dir = app.stop().await.unwrap();
    let store = rusqlite::Connection::open(data_dir.path().join("hookhouse.db")).unwrap();
    store.execute("UPDATE sink_cursors SET position = 0", []).unwrap();
    drop(store);
    let app = spawn_app_in(data_dir, |config| pg.configure(config, &url)).await;
    wait_caught_up(&app).await;
    assert_eq!(pg.count("raw_requests").await, 61);
    assert_eq!(pg.count("events").await, 20);
    assert_eq!(pg.count("failed_events").await, 1, "a reload replaces failures, never doubles");
    let distinct: i64 = pg
        .client
        .query_one(&format!("SELECT count(DISTINCT message_id) FROM {}.events", pg.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, 20);

    // PostgreSQL's own progress marks lost as well (a restore from an older backup, say): the
    // sink tries the straight COPY, meets the rows already there, and merges instead.
    let data_dir = app.stop().await.unwrap();
    let store = rusqlite::Connection::open(data_dir.path().join("hookhouse.db")).unwrap();
    store.execute("UPDATE sink_cursors SET position = 0", []).unwrap();
    drop(store);
    pg.client
        .batch_execute(&format!("UPDATE {}.load_progress SET seq = 0", pg.schema))
        .await
        .unwrap();
    let app = spawn_app_in(data_dir, |config| pg.configure(config, &url)).await;
    wait_caught_up(&app).await;
    assert_eq!(pg.count("raw_requests").await, 61);
    assert_eq!(pg.count("events").await, 20);
    assert_eq!(pg.count("failed_events").await, 1);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

/// A loopback TCP proxy to PostgreSQL that a test can cut (closing every connection and
/// refusing new ones) and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let (accept_open, accept_connections) = (Arc::clone(&open), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed at once
                }
                let target = target.clone();
                accept_connections.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { port, open, connections }
    }

    /// A proxy to the test database at `url`, and the URL that goes through it.
    async fn to_database(url: &str) -> (Proxy, String) {
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        let host = match &parsed.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("{URL_VARIABLE} must be a TCP address, not {other:?}"),
        };
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        let proxy = Proxy::start(format!("{host}:{port}")).await;
        let via_proxy = url_at(url, "127.0.0.1", proxy.port, "");
        (proxy, via_proxy)
    }

    async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// The test database's URL with the same credentials at another host and port.
fn url_at(url: &str, host: &str, port: u16, query: &str) -> String {
    let parsed: tokio_postgres::Config = url.parse().unwrap();
    let user = parsed.get_user().unwrap_or("postgres");
    let db = parsed.get_dbname().unwrap_or("postgres");
    let password = parsed
        .get_password()
        .map(|password| {
            format!(":{}", form_urlencoded::byte_serialize(password).collect::<String>())
        })
        .unwrap_or_default();
    format!("postgres://{user}{password}@{host}:{port}/{db}{query}")
}

/// The sink's last recorded error (none before its cursor exists).
fn sink_error(app: &TestApp) -> Option<String> {
    app.db()
        .query_row("SELECT last_error FROM sink_cursors WHERE sink = 'postgres'", [], |r| r.get(0))
        .optional()
        .unwrap()
        .flatten()
}

/// Waits until the sink records an error and returns it; `never` is the failure message.
async fn wait_for_sink_error(app: &TestApp, never: &str) -> String {
    let deadline = Instant::now() + LOAD_DEADLINE;
    loop {
        if let Some(error) = sink_error(app) {
            return error;
        }
        assert!(Instant::now() < deadline, "{never}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one series in `/metrics` text, or -1 if it is absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(-1.0)
}

/// Polls `/metrics` until `check` holds (the gauges refresh every second).
async fn wait_for_metric(app: &TestApp, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + LOAD_DEADLINE;
    loop {
        let text = app.get("/metrics").await.text().await.unwrap();
        if check(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "metrics never matched:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_outage_delays_events_and_loses_none() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "outage").await;
    let (proxy, via_proxy) = Proxy::to_database(&url).await;
    let app = spawn_app_with(|config| pg.configure(config, &via_proxy)).await;

    for i in 0..50 {
        assert_eq!(app.post_webhook(&email_open(&format!("before-{i}"))).await.status(), 200);
    }
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events").await, 50);

    proxy.cut().await;
    for i in 0..300 {
        let response = app.post_webhook(&email_open(&format!("during-{i}"))).await;
        assert_eq!(response.status(), 200, "ingestion goes on while PostgreSQL is away");
    }
    assert_eq!(app.get("/readyz").await.status(), 200, "a sink outage is not unreadiness");
    // The sink notices, keeps its cursor, and says why in the store.
    wait_for_sink_error(&app, "the outage was never recorded").await;
    assert_eq!(pg.count("events").await, 50, "nothing loads through a cut connection");
    wait_for_metric(&app, |text| {
        metric(text, r#"hookhouse_sink_failures_total{sink="postgres"}"#) >= 1.0
            && metric(text, r#"hookhouse_sink_lag_requests{sink="postgres"}"#) >= 300.0
    })
    .await;

    proxy.restore();
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events").await, 350);
    assert_eq!(sink_error(&app), None, "the error clears once a batch loads");
    wait_for_metric(&app, |text| {
        metric(text, r#"hookhouse_sink_loaded_events_total{sink="postgres"}"#) == 350.0
            && metric(text, r#"hookhouse_sink_lag_requests{sink="postgres"}"#) == 0.0
    })
    .await;
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_value_postgres_refuses_is_kept_as_a_failure_and_the_rest_loads() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "refused").await;
    // Stored first with no sink, so that the sink later meets them all in one batch.
    let app = spawn_app().await;
    // SQLite keeps a NUL character in text; PostgreSQL's text and jsonb cannot hold one: one
    // in a promoted column (and `data`), one in `data` alone.
    let in_column = email_open("refused-column").replace("Paris", "Par\\u0000is");
    let in_data = email_open("refused-data").replace(r#""city""#, r#""note":"a\u0000b","city""#);
    for i in 0..20 {
        assert_eq!(app.post_webhook(&email_open(&format!("fine-{i}"))).await.status(), 200);
        match i {
            4 => assert_eq!(app.post_webhook(&in_column).await.status(), 200),
            13 => assert_eq!(app.post_webhook(&in_data).await.status(), 200),
            _ => {}
        }
    }
    let data_dir = app.stop().await.unwrap();
    let app = spawn_app_in(data_dir, |config| pg.configure(config, &url)).await;
    wait_caught_up(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM events"), 22);
    assert_eq!(pg.count("events").await, 20, "the rest of the batch is loaded");
    assert_eq!(pg.count("events WHERE message_id LIKE 'refused%'").await, 0);
    assert_eq!(pg.count("raw_requests").await, 22, "their requests load");
    let db = app.db();
    let mut statement = db
        .prepare("SELECT stage, reason, body FROM failed_events WHERE sink = 'postgres' ORDER BY raw_seq")
        .unwrap();
    let refusals: Vec<(String, String, Vec<u8>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    for ((stage, reason, body), id) in refusals.iter().zip(["refused-column", "refused-data"]) {
        assert_eq!(stage, "load");
        assert!(reason.contains("events"), "{reason}");
        assert!(String::from_utf8_lossy(body).contains(id), "the refused row is kept");
    }
    drop(statement);
    drop(db);
    assert_eq!(pg.count("failed_events WHERE sink = 'postgres' AND stage = 'load'").await, 2);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_replay_reaches_postgres_too() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "replay").await;
    let app = spawn_app_with(|config| pg.configure(config, &url)).await;
    for i in 0..30 {
        assert_eq!(app.post_webhook(&email_open(&format!("replay-{i}"))).await.status(), 200);
    }
    wait_caught_up(&app).await;
    // Rows an older hookhouse got wrong: a replay must correct them in PostgreSQL as well.
    pg.client
        .batch_execute(&format!("UPDATE {}.events SET city = 'stale'", pg.schema))
        .await
        .unwrap();
    let db = app.db_path();
    let report = tokio::task::spawn_blocking(move || {
        hookhouse::sinks::sqlite::replay::replay(
            &db,
            &Selection::All,
            &Default::default(),
            |_, _| {},
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.requests, 30);
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events WHERE city = 'stale'").await, 0);
    assert_eq!(pg.count("events WHERE city = 'Paris'").await, 30);
    assert_eq!(pg.count("raw_requests").await, 30);

    // A replay of only a resend: the event keeps the earlier request as its `raw_seq`, and
    // PostgreSQL's copy is corrected all the same.
    let first = app.post_webhook(&email_open("replay-resent")).await.json::<Value>().await.unwrap();
    let resend =
        app.post_webhook(&email_open("replay-resent")).await.json::<Value>().await.unwrap();
    wait_caught_up(&app).await;
    let stale = format!(
        "UPDATE {}.events SET city = 'stale' WHERE message_id = 'replay-resent'",
        pg.schema
    );
    pg.client.batch_execute(&stale).await.unwrap();
    let resend_seq = resend["seq"].as_i64().unwrap();
    assert!(resend_seq > first["seq"].as_i64().unwrap());
    replay(&app, Selection::Seqs(resend_seq, resend_seq)).await;
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events WHERE message_id = 'replay-resent' AND city = 'Paris'").await, 1);

    // A request whose event the current version can no longer read (here: a body `{{`, with
    // its digest, as a version that stored it so would have; an altered body without its
    // digest is left alone, tests/integrity.rs): after a replay the event is gone from both
    // stores and the failure is in both.
    let gone = app.post_webhook(&email_open("replay-gone")).await.json::<Value>().await.unwrap();
    let gone_seq = gone["seq"].as_i64().unwrap();
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events WHERE message_id = 'replay-gone'").await, 1);
    let store = rusqlite::Connection::open(app.db_path()).unwrap();
    store
        .execute(
            "UPDATE raw_requests SET body = x'7b7b', body_sha256 = ?1 WHERE seq = ?2",
            rusqlite::params![hookhouse::request::sha256_hex(b"{{"), gone_seq],
        )
        .unwrap();
    drop(store);
    replay(&app, Selection::Seqs(gone_seq, gone_seq)).await;
    wait_caught_up(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM events WHERE message_id = 'replay-gone'"), 0);
    assert_eq!(pg.count("events WHERE message_id = 'replay-gone'").await, 0);
    let failures = format!("failed_events WHERE raw_seq = {gone_seq} AND sink IS NULL");
    assert_eq!(pg.count(&failures).await, 1);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

async fn replay(app: &TestApp, selection: Selection) {
    let db = app.db_path();
    tokio::task::spawn_blocking(move || {
        hookhouse::sinks::sqlite::replay::replay(&db, &selection, &Default::default(), |_, _| {})
    })
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn loads_over_tls_with_the_certificate_verified() {
    let Some(url) = database_url() else { return };
    let Ok(ca_file) = std::env::var("TEST_POSTGRES_TLS_CA") else {
        eprintln!(
            "skipped: set TEST_POSTGRES_TLS_CA to the CA (PEM) of the test server's certificate \
             for `localhost` to run the TLS test; .ci/run does when the server has TLS on"
        );
        return;
    };
    let pg = Warehouse::new(&url, "tls").await;
    let parsed: tokio_postgres::Config = url.parse().unwrap();
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let over_tls = url_at(&url, "localhost", port, "?sslmode=require");

    // Without the server's CA the certificate cannot be verified: nothing loads.
    let app = spawn_app_with(|config| pg.configure(config, &over_tls)).await;
    assert_eq!(app.post_webhook(&email_open("tls-refused")).await.status(), 200);
    let error = wait_for_sink_error(&app, "an unverifiable certificate was accepted").await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    let data_dir = app.stop().await.unwrap();

    // With it, the same requests load, over TLS.
    let app = spawn_app_in(data_dir, |config| {
        pg.configure(config, &over_tls);
        config.sinks.postgres.as_mut().unwrap().ca_file = Some(ca_file.into());
    })
    .await;
    assert_eq!(app.post_webhook(&email_open("tls-loaded")).await.status(), 200);
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events").await, 2);
    let encrypted: i64 = pg
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'hookhouse' AND ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the sink's connections use TLS");
    app.stop().await.unwrap();
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_schema_loaded_from_one_store_refuses_another() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "owner").await;
    let first = spawn_app_with(|config| pg.configure(config, &url)).await;
    assert_eq!(first.post_webhook(&email_open("first-store")).await.status(), 200);
    wait_caught_up(&first).await;

    // Another store's `seq` 1 is not this one's: loading it would overwrite rows.
    let second = spawn_app_with(|config| pg.configure(config, &url)).await;
    assert_eq!(second.post_webhook(&email_open("second-store")).await.status(), 200);
    let error = wait_for_sink_error(&second, "a second store was let in").await;
    assert!(error.contains("another hookhouse store"), "{error}");
    assert_eq!(pg.count("events").await, 1);
    assert_eq!(pg.count("events WHERE message_id = 'first-store'").await, 1);
    second.stop().await.unwrap();
    first.stop().await.unwrap();
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_dropped_body_waits_for_every_sink_before_it_goes() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "dropped").await;
    let (proxy, via_proxy) = Proxy::to_database(&url).await;
    let app = spawn_app_with(|config| {
        config.sources[0].drop_raw_bodies = true;
        pg.configure(config, &via_proxy);
    })
    .await;
    for i in 0..5 {
        assert_eq!(app.post_webhook(&email_open(&format!("dropped-{i}"))).await.status(), 200);
    }
    wait_caught_up(&app).await;
    let dropped = "SELECT count(*) FROM raw_requests WHERE body_dropped = 1 AND length(body) = 0";
    assert_eq!(app.count(dropped), 5, "both sinks loaded them: the bodies are gone");
    assert_eq!(pg.count("events").await, 5);

    // PostgreSQL away: the embedded sink loads the next ones, their bodies stay for PostgreSQL.
    proxy.cut().await;
    for i in 5..10 {
        assert_eq!(app.post_webhook(&email_open(&format!("dropped-{i}"))).await.status(), 200);
    }
    wait_for_sink_error(&app, "the outage was never recorded").await;
    assert_eq!(app.count("SELECT count(*) FROM events"), 10);
    assert_eq!(app.count(dropped), 5);
    assert_eq!(
        app.count("SELECT count(*) FROM raw_requests WHERE drop_body_digest IS NOT NULL"),
        5,
        "kept, marked, until PostgreSQL has them"
    );

    proxy.restore();
    wait_caught_up(&app).await;
    assert_eq!(pg.count("events").await, 10, "PostgreSQL made its events from the kept bodies");
    // The bodies go with the acknowledgement that brought the last sink past them.
    let deadline = Instant::now() + LOAD_DEADLINE;
    while app.count(dropped) < 10 {
        assert!(Instant::now() < deadline, "the kept bodies were never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let digests_kept: i64 = app.count(
        "SELECT count(*) FROM raw_requests WHERE body_sha256 <> '' AND drop_body_digest IS NULL",
    );
    assert_eq!(digests_kept, 10);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}
