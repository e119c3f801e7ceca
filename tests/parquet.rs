//! The Parquet lake through the binary, read back by independent readers (DuckDB and pyarrow,
//! from `TEST_LAKE_PYTHON`; `.ci/lake-readers` installs them): it equals the embedded store
//! row for row and column for column, with the lake's types, and a SIGKILL mid-load or a
//! replay leaves no event twice.

mod lake;
mod process;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookhouse::sinks::columns::{EVENTS, Kind, Table};
use lake::Reader;
use process::{Server, hookhouse, run_to_exit, serve};
use rusqlite::types::ValueRef;
use serde_json::Value;

/// Where a test's lake is: `dir/lake`, or a bucket of a moto S3 server.
enum Lake<'a> {
    Local,
    S3(&'a lake::S3),
}

const BUCKET: &str = "lake";

impl Lake<'_> {
    fn url(&self, dir: &Path) -> String {
        match self {
            Lake::Local => dir.join("lake").display().to_string(),
            Lake::S3(_) => format!("s3://{BUCKET}/hookhouse"),
        }
    }

    fn s3(&self) -> Option<&lake::S3> {
        match self {
            Lake::Local => None,
            Lake::S3(s3) => Some(s3),
        }
    }
}

/// A configuration with the lake at `lake`, files closed after a second.
fn write_config(dir: &Path, lake: &Lake<'_>) -> std::path::PathBuf {
    let path = dir.join("hookhouse.toml");
    let mut text = format!("[sinks.parquet]\nurl = {:?}\nmax_file_age_secs = 1\n", lake.url(dir));
    if let Some(s3) = lake.s3() {
        text.push_str(&format!(
            "[sinks.parquet.s3]\nendpoint = {:?}\nregion = {:?}\naccess_key_id = {:?}\n\
             secret_access_key = {:?}\n",
            s3.endpoint, s3.region, s3.key, s3.secret
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn start_command(dir: &Path, lake: &Lake<'_>) -> std::process::Command {
    let mut command = serve(&dir.join("data"));
    command.arg("--config").arg(write_config(dir, lake));
    command
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Waits until the lake's cursor is at the store's last request.
fn wait_caught_up(dir: &Path, server_output: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut status = hookhouse(dir);
        status.args(["status", "--json", "--data-dir"]).arg(dir.join("data"));
        let run = run_to_exit(status);
        let report: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let last = report["last_seq"].as_i64();
        let sinks = report["sinks"].as_array().cloned().unwrap_or_default();
        let at = |name: &str| {
            sinks
                .iter()
                .find(|sink| sink["sink"] == name)
                .and_then(|sink| sink["position"].as_i64())
        };
        if last.is_some() && at("parquet") == last && at("sqlite") == last {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the lake never caught up: {report:#}\n{}",
            server_output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The embedded store's rows of `table`, as JSON objects by column name.
fn store_rows(dir: &Path, table: &Table) -> Vec<serde_json::Map<String, Value>> {
    let conn = rusqlite::Connection::open(dir.join("data/hookhouse.db")).unwrap();
    let names: Vec<&str> = table.names().collect();
    let sql = format!("SELECT {} FROM {}", names.join(", "), table.name);
    let mut statement = conn.prepare(&sql).unwrap();
    let rows = statement
        .query_map([], |row| {
            let mut object = serde_json::Map::new();
            for (index, name) in names.iter().enumerate() {
                let value = match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(x) => Value::from(x),
                    ValueRef::Text(text) => Value::from(String::from_utf8_lossy(text).into_owned()),
                    ValueRef::Blob(_) => Value::from("<blob>"),
                };
                object.insert((*name).to_owned(), value);
            }
            Ok(object)
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// One value in a form both stores' values reduce to, by the column's kind.
fn canonical(kind: Kind, name: &str, value: &Value) -> Value {
    match (kind, value) {
        (_, Value::Null) => Value::Null,
        (Kind::Bool, Value::Number(n)) => Value::from(n.as_i64() == Some(1)),
        (Kind::Time, Value::String(text)) => {
            let time: DateTime<Utc> = text.parse().unwrap_or_else(|_| panic!("{name}: {text}"));
            Value::from(time.timestamp_micros())
        }
        // The lake's JSON columns come back as their text; the store's too; lists as arrays.
        (Kind::Json, Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        (_, other) => other.clone(),
    }
}

fn assert_lake_equals_store(dir: &Path, python: &Path, at: &Lake<'_>) {
    let store = store_rows(dir, &EVENTS);
    for reader in [Reader::DuckDb, Reader::PyArrow] {
        let lake = lake::read(python, reader, &at.url(dir), "events", at.s3());
        assert_eq!(lake.rows.len(), store.len(), "{reader:?}: one lake row per stored event");
        let by_id: HashMap<&str, &Value> =
            lake.rows.iter().map(|row| (row["event_id"].as_str().unwrap(), row)).collect();
        assert_eq!(by_id.len(), lake.rows.len(), "{reader:?}: an event_id twice in the lake");
        for stored in &store {
            let id = stored["event_id"].as_str().unwrap();
            let row = by_id.get(id).unwrap_or_else(|| panic!("{reader:?}: {id} not in the lake"));
            for column in EVENTS.columns {
                let (ours, theirs) = (&stored[column.name], &row[column.name]);
                assert_eq!(
                    canonical(column.kind, column.name, theirs),
                    canonical(column.kind, column.name, ours),
                    "{reader:?}: event {id}, column {}",
                    column.name
                );
            }
        }
    }
}

#[tokio::test]
async fn the_lake_equals_the_store_row_for_row_with_its_types() {
    let Some(python) = lake::python() else { return };
    lake_equals_store(&python, &Lake::Local).await;
}

#[tokio::test]
async fn the_lake_on_s3_equals_the_store_row_for_row_with_its_types() {
    let Some(python) = lake::python() else { return };
    let s3 = lake::S3Server::start(&python);
    s3.create_bucket(BUCKET);
    lake_equals_store(&python, &Lake::S3(&s3.credentials())).await;
    let objects = s3.list_objects(BUCKET, "hookhouse/");
    assert!(
        objects.iter().any(|key| key.starts_with("hookhouse/events/event_date=")),
        "{objects:?}"
    );
}

async fn lake_equals_store(python: &Path, at: &Lake<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(start_command(dir.path(), at)).await;
    let url = server.url("/iterable/default");
    // Every event family, then a resend of one body (one event, kept with its first request)
    // and a body that is not JSON (a failure).
    let mut simulate = hookhouse(dir.path());
    simulate.args(["simulate", "--count", "300", "--rate", "500", "--url", &url]);
    let sent = run_to_exit(simulate);
    assert!(sent.status.success(), "{}", sent.stderr);
    let client = client();
    let body = r#"{"email":"r@example.com","eventName":"emailSubscribe","dataFields":{"createdAt":"2026-11-30 23:59:59 +00:00","emailListIds":[11,12],"labels":["a","b"]}}"#;
    for _ in 0..2 {
        let response = client.post(&url).header("content-type", "application/json").body(body);
        assert_eq!(response.send().await.unwrap().status(), 200);
    }
    let broken = client.post(&url).header("content-type", "application/json").body("[1, 2");
    assert_eq!(broken.send().await.unwrap().status(), 200);
    wait_caught_up(dir.path(), || server.output());

    assert_lake_equals_store(dir.path(), python, at);
    // `status` with the configuration counts the lake's files and bytes.
    let mut status = hookhouse(dir.path());
    status.args(["status", "--json", "--config"]).arg(dir.path().join("hookhouse.toml"));
    status.arg("--data-dir").arg(dir.path().join("data"));
    let run = run_to_exit(status);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    assert!(report["lake"]["files"].as_u64() > Some(3), "{report:#}\n{}", run.stderr);
    assert!(report["lake"]["bytes"].as_u64() > Some(10_000), "{report:#}");
    let lake_url = at.url(dir.path());
    let events = lake::read(python, Reader::DuckDb, &lake_url, "events", at.s3());
    for (column, expected) in [
        ("created_at", "TIMESTAMP WITH TIME ZONE"),
        ("received_at", "TIMESTAMP WITH TIME ZONE"),
        ("campaign_id", "BIGINT"),
        ("is_bot", "BOOLEAN"),
        ("data", "JSON"),
        ("transactional_data", "JSON"),
        ("email_list_ids", "BIGINT[]"),
        ("labels", "VARCHAR[]"),
        ("event_date", "DATE"),
    ] {
        assert_eq!(events.column_type(column), Some(expected), "{column}");
    }
    let subscribed: Vec<&Value> =
        events.rows.iter().filter(|row| row["email"] == "r@example.com").collect();
    assert_eq!(subscribed.len(), 1, "the resend is one event");
    assert_eq!(subscribed[0]["email_list_ids"], serde_json::json!([11, 12]));
    assert_eq!(subscribed[0]["labels"], serde_json::json!(["a", "b"]));
    assert_eq!(subscribed[0]["event_date"], "2026-11-30");

    let failed = lake::read(python, Reader::PyArrow, &lake_url, "failed_events", at.s3());
    assert_eq!(
        failed.rows.len(),
        store_rows(dir.path(), &hookhouse::sinks::columns::FAILED_EVENTS).len()
    );
    assert!(!failed.rows.is_empty());
    let requests = lake::read(python, Reader::PyArrow, &lake_url, "raw_requests", at.s3());
    assert_eq!(requests.rows.len(), 303, "every request, resend and failure included");
    assert_eq!(requests.column_type("body"), Some("binary"));
    let Lake::Local = at else { return };
    // The README's campaign query, in DuckDB against the lake, as SQLite answers it.
    let conn = rusqlite::Connection::open(dir.path().join("data/hookhouse.db")).unwrap();
    let campaign: i64 = conn
        .query_row(
            "SELECT campaign_id FROM email_open WHERE campaign_id IS NOT NULL \
             GROUP BY campaign_id ORDER BY count(*) DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let mut statement = conn
        .prepare(
            "SELECT date(created_at) AS day, count(*) AS opens, count(DISTINCT email) AS people \
             FROM email_open WHERE campaign_id = ?1 GROUP BY day ORDER BY day",
        )
        .unwrap();
    let expected: Vec<Value> = statement
        .query_map([campaign], |row| {
            Ok(serde_json::json!([
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?
            ]))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let query = "import duckdb, json, sys\n\
        duckdb.sql(\"SET TimeZone = 'UTC'\")\n\
        rows = duckdb.sql(f\"SELECT CAST(created_at AS DATE) AS day, count(*) AS opens, \
        count(DISTINCT email) AS people FROM read_parquet('{sys.argv[1]}/events/**/*.parquet', \
        hive_partitioning = true) WHERE event_name = 'emailOpen' AND campaign_id = {sys.argv[2]} \
        GROUP BY day ORDER BY day\").fetchall()\n\
        print(json.dumps([[str(day), opens, people] for day, opens, people in rows]))";
    let answered = lake::run_python(python, query, &[&lake_url, &campaign.to_string()]);
    let answered: Vec<Value> = serde_json::from_str(answered.trim()).unwrap();
    assert!(!expected.is_empty());
    assert_eq!(answered, expected, "the README's campaign query on the lake");
    // Nothing half-written is left where a reader looks.
    let leftovers: Vec<String> = walk(&dir.path().join("lake"))
        .into_iter()
        .filter(|name| !name.ends_with(".parquet") && !name.ends_with("_hookhouse_store_id"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn a_sigkill_mid_load_and_a_replay_leave_no_event_twice() {
    let Some(python) = lake::python() else { return };
    sigkill_and_replay(&python, &Lake::Local).await;
}

#[tokio::test]
async fn on_s3_a_sigkill_mid_load_and_a_replay_leave_no_event_twice() {
    let Some(python) = lake::python() else { return };
    let s3 = lake::S3Server::start(&python);
    s3.create_bucket(BUCKET);
    sigkill_and_replay(&python, &Lake::S3(&s3.credentials())).await;
}

async fn sigkill_and_replay(python: &Path, at: &Lake<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let client = client();
    let post = |url: String, n: usize| {
        let client = client.clone();
        async move {
            let body = format!(
                r#"{{"email":"k{n}@example.com","eventName":"emailOpen","dataFields":{{"messageId":"m{n}","createdAt":"2026-12-01 10:00:00 +00:00"}}}}"#
            );
            let response = client.post(url).header("content-type", "application/json").body(body);
            response.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    };
    // Killed three times while requests keep coming, at moments that fall in a load, between
    // a file's rename and the cursor's move, or between loads.
    let mut n = 0;
    for round in 0..3 {
        let mut server = Server::start(start_command(dir.path(), at)).await;
        let url = server.url("/iterable/default");
        let until = Instant::now() + Duration::from_millis(1_300 + 450 * round);
        while Instant::now() < until {
            assert_eq!(post(url.clone(), n).await, 200);
            n += 1;
        }
        server.kill();
    }
    let server = Server::start(start_command(dir.path(), at)).await;
    wait_caught_up(dir.path(), || server.output());
    assert_lake_equals_store(dir.path(), python, at);

    // A replay moves the lake's cursor back: the files it covers are written again, not added.
    let mut replay = hookhouse(dir.path());
    replay.args(["replay", "--seq", "5..", "--data-dir"]).arg(dir.path().join("data"));
    let replayed = run_to_exit(replay);
    assert!(replayed.status.success(), "{}", replayed.stderr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_caught_up(dir.path(), || server.output());
    assert_lake_equals_store(dir.path(), python, at);
    let ids: HashSet<String> = store_rows(dir.path(), &EVENTS)
        .iter()
        .map(|row| row["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), n, "one event per request sent");
}

#[tokio::test]
async fn rejected_s3_credentials_are_reported_retried_and_then_recovered() {
    let Some(python) = lake::python() else { return };
    let s3 = lake::S3Server::start(&python);
    s3.create_bucket(BUCKET);
    // A key the server never issued: refused from now on, as a revoked key would be.
    s3.reject_credentials();
    let credentials = s3.credentials();
    let at = Lake::S3(&credentials);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(start_command(dir.path(), &at)).await;
    let client = client();
    for n in 0..20 {
        let body = format!(
            r#"{{"email":"c{n}@example.com","eventName":"emailOpen","dataFields":{{"createdAt":"2026-12-01 10:00:00 +00:00"}}}}"#
        );
        let response = client.post(server.url("/iterable/default")).body(body);
        let response = response.header("content-type", "application/json").send().await.unwrap();
        assert_eq!(response.status(), 200, "ingestion never waits for the lake");
    }
    server.wait_for_output("InvalidAccessKeyId").await;
    let mut status = hookhouse(dir.path());
    status.args(["status", "--json", "--data-dir"]).arg(dir.path().join("data"));
    let report: Value = serde_json::from_str(&run_to_exit(status).stdout).unwrap();
    let sinks = report["sinks"].as_array().cloned().unwrap_or_default();
    let lake = sinks.iter().find(|sink| sink["sink"] == "parquet").cloned().unwrap_or_default();
    let error = lake["last_error"].as_str().unwrap_or("");
    assert!(error.contains("InvalidAccessKeyId"), "{report:#}");
    assert_eq!(lake["position"], 0, "nothing acknowledged while the lake refuses: {report:#}");

    s3.accept_credentials();
    wait_caught_up(dir.path(), || server.output());
    assert_lake_equals_store(dir.path(), &python, &at);
    assert!(server.stderr().contains("sink recovered"), "{}", server.output());
}
