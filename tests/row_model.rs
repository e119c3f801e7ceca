//! One row model, checked against every physical form of it (STYLE.md, "Seams": a schema is
//! declared once). The logical tables of `hookhouse::sinks::columns` are compared with the
//! tables the real binary creates: in `hookhouse.db` (`PRAGMA table_info`, plus the storage
//! class of the values a real request wrote) and in PostgreSQL (`information_schema`).
//!
//! The PostgreSQL half needs `TEST_POSTGRES_URL` (`.ci/run` sets it) and works in a schema of
//! its own, dropped at its end.

mod pg;
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use hookhouse::sinks::columns::{
    EVENTS, FAILED_EVENTS, JOURNEY_CALLS, Kind, Merge, RAW_REQUESTS, Table,
};
use pg::{URL_VARIABLE, Warehouse};
use process::{PROCESS_DEADLINE, Server, serve};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio_postgres::types::Type;

const TABLES: [&Table; 4] = [&RAW_REQUESTS, &EVENTS, &JOURNEY_CALLS, &FAILED_EVENTS];

/// How long the rows of what a test sent may take to appear in `hookhouse.db`. Rows are polled
/// for, never read right after the 2xx: a sink behind a cursor writes them a little later.
const ROW_DEADLINE: Duration = Duration::from_secs(10);
/// How long the PostgreSQL sink may take to load them on a busy CI machine (as
/// `tests/postgres.rs`).
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

const JOURNEY: &str = "row-model";

/// Columns a physical table may hold beyond the declaration, with why. Anything else
/// undeclared fails: a column no sink knows of is a column no warehouse ever gets.
/// `events` and `journey_calls` have none in SQLite. What of the log's own bookkeeping sinks
/// load (`body_dropped`, `pseudonymised`, `peer_addr`) is declared; the two columns that only
/// say how the log holds a body until every sink has loaded it are not.
const SQLITE_EXTRA: &[(&str, &str, &str)] = &[
    (
        "failed_events",
        "id",
        "the store's local row key; sinks key failures by the request (`raw_seq`) instead",
    ),
    (
        "raw_requests",
        "drop_body_digest",
        "the log's mark on a body to empty once every sink has loaded it; sinks get the result",
    ),
    (
        "raw_requests",
        "body_hidden",
        "the log's note that a body already holds digests; sinks get the rows made from it",
    ),
];
const POSTGRES_EXTRA: &[(&str, &str, &str)] = &[
    (
        "raw_requests",
        "loaded_at",
        "when the warehouse loaded the row: PostgreSQL's, not the spool's",
    ),
    ("events", "loaded_at", "when the warehouse loaded the row: PostgreSQL's, not the spool's"),
    (
        "journey_calls",
        "loaded_at",
        "when the warehouse loaded the row: PostgreSQL's, not the spool's",
    ),
    (
        "failed_events",
        "loaded_at",
        "when the warehouse loaded the row: PostgreSQL's, not the spool's",
    ),
    ("failed_events", "id", "the warehouse's own identity key; a reload replaces by `raw_seq`"),
];

/// The SQLite declared types a column of each kind may have. Time and JSON must be `TEXT`:
/// a declared `DATETIME` or `JSON` gets NUMERIC affinity, which would turn the JSON text `123`
/// into an integer. `BOOLEAN` (NUMERIC affinity) keeps 0 and 1 as integers, so it would do.
fn sqlite_types(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Text | Kind::Time | Kind::Json => &["TEXT"],
        Kind::BigInt => &["INTEGER", "BIGINT"],
        Kind::Bool => &["INTEGER", "BOOLEAN"],
        Kind::Bytes => &["BLOB"],
    }
}

/// The PostgreSQL type of each kind, as `pg_type` in `src/sinks/postgres/encode.rs` (private
/// to the sink) says the sink encodes it.
fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Text => Type::TEXT,
        Kind::BigInt => Type::INT8,
        Kind::Bool => Type::BOOL,
        Kind::Time => Type::TIMESTAMPTZ,
        Kind::Json => Type::JSONB,
        Kind::Bytes => Type::BYTEA,
    }
}

#[tokio::test]
async fn sqlite_tables_match_the_declared_columns() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(serve(&data_dir)).await;
    let message_id = post_one_of_each(&server).await;
    let db = data_dir.join("hookhouse.db");
    wait_for_sqlite_rows(&db, &message_id, &server).await;
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());

    let store = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut problems = Vec::new();
    for table in TABLES {
        let real = sqlite_columns(&store, table.name);
        problems.extend(compare(table, &real, SQLITE_EXTRA, "SQLite", |kind, ty| {
            let ty = ty.to_ascii_uppercase();
            sqlite_types(kind)
                .contains(&ty.as_str())
                .then_some(())
                .ok_or_else(|| format!("one of {:?}", sqlite_types(kind)))
        }));
        problems.extend(sqlite_key_problems(&store, table));
        problems.extend(sqlite_value_problems(&store, table));
    }
    assert!(
        problems.is_empty(),
        "hookhouse.db differs from sinks::columns:\n  {}",
        problems.join("\n  ")
    );
}

#[tokio::test]
async fn postgres_tables_match_the_declared_columns() {
    let Some(url) = std::env::var(URL_VARIABLE).ok().filter(|url| !url.is_empty()) else {
        println!("skipped: {URL_VARIABLE} is not set");
        return;
    };
    let warehouse = Warehouse::new(&url, "row_model").await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("hookhouse.toml");
    std::fs::write(
        &config,
        format!("[sinks.postgres]\nurl = \"{url}\"\nschema = \"{}\"\n", warehouse.schema),
    )
    .unwrap();
    let mut command = serve(&data_dir);
    command.arg("--config").arg(&config);
    let mut server = Server::start(command).await;
    let message_id = post_one_of_each(&server).await;
    wait_for_postgres_rows(&warehouse, &message_id, &server).await;
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());

    let mut problems = Vec::new();
    for table in TABLES {
        let real = postgres_columns(&warehouse, table.name).await;
        problems.extend(compare(table, &real, POSTGRES_EXTRA, "PostgreSQL", |kind, udt| {
            let expected = pg_type(kind);
            (udt == expected.name()).then_some(()).ok_or_else(|| expected.name().to_owned())
        }));
        problems.extend(postgres_key_problems(&warehouse, table).await);
    }
    let schema = warehouse.schema.clone();
    warehouse.drop_schema().await;
    assert!(
        problems.is_empty(),
        "PostgreSQL schema `{schema}` differs from sinks::columns:\n  {}",
        problems.join("\n  ")
    );
}

/// A column as the database reports it: its name and its type (SQLite's declared type,
/// PostgreSQL's `udt_name` with `data_type` for the reader).
struct RealColumn {
    name: String,
    ty: String,
    shown: String,
}

/// Every way `real` differs from `table`'s declaration: a declared column missing or of a type
/// `accepts` refuses (it returns what it wanted), an undeclared column not in `extra`.
fn compare(
    table: &Table,
    real: &[RealColumn],
    extra: &[(&str, &str, &str)],
    database: &str,
    accepts: impl Fn(Kind, &str) -> Result<(), String>,
) -> Vec<String> {
    if real.is_empty() {
        return vec![format!("{database} has no table `{}`", table.name)];
    }
    let mut problems = Vec::new();
    for column in table.columns {
        match real.iter().find(|real| real.name == column.name) {
            None => problems.push(format!(
                "{}.{} ({:?}) is declared but not in {database}",
                table.name, column.name, column.kind
            )),
            Some(real) => {
                if let Err(wanted) = accepts(column.kind, &real.ty) {
                    problems.push(format!(
                        "{}.{} ({:?}) is `{}` in {database}, expected {wanted}",
                        table.name, column.name, column.kind, real.shown
                    ));
                }
            }
        }
    }
    let undeclared: Vec<&RealColumn> =
        real.iter().filter(|real| table.position(&real.name).is_none()).collect();
    for column in &undeclared {
        let why = extra.iter().find(|(t, c, _)| *t == table.name && *c == column.name);
        match why {
            Some((_, _, why)) => {
                println!("{database} {}.{}: not declared, allowed: {why}", table.name, column.name)
            }
            None => problems.push(format!(
                "{}.{} (`{}`) is in {database} but not declared in sinks::columns",
                table.name, column.name, column.shown
            )),
        }
    }
    for column in table.names().chain([table.seq_column]).chain(merge_key(table)) {
        if table.position(column).is_none() {
            problems
                .push(format!("{}: `{column}` (seq column or key) is not a column", table.name));
        }
    }
    println!(
        "{database} {}: {} declared columns checked, {} undeclared",
        table.name,
        table.columns.len(),
        undeclared.len()
    );
    problems
}

fn merge_key(table: &Table) -> Option<&'static str> {
    match table.merge {
        Merge::Keep { key } | Merge::Update { key, .. } => Some(key),
        Merge::ByRequest => None,
    }
}

// --- the request sent -----------------------------------------------------------------------

/// Posts an event (a fixture with most promoted fields set), a journey call, and a body the
/// normaliser cannot read, so every table gets a row; returns the event's `messageId`.
async fn post_one_of_each(server: &Server) -> String {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iterable/emailClick/basic.json");
    let event = std::fs::read_to_string(&fixture).unwrap();
    let parsed: Value = serde_json::from_str(&event).unwrap();
    let message_id = parsed["dataFields"]["messageId"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder().no_proxy().timeout(PROCESS_DEADLINE).build().unwrap();
    let journey = format!("/iterable/default/journey/{JOURNEY}");
    for (path, body) in [
        ("/iterable/default", event.as_str()),
        (journey.as_str(), r#"{"email":"row-model@example.com","userId":"u-1"}"#),
        ("/iterable/default", "{not json"),
    ] {
        let response = client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "POST {path}\n{}", server.output());
    }
    message_id
}

const SQLITE_COUNTS: &str = "SELECT (SELECT count(*) FROM raw_requests), \
    (SELECT count(*) FROM events WHERE message_id = ?1), \
    (SELECT count(*) FROM journey_calls WHERE journey = ?2), \
    (SELECT count(*) FROM failed_events)";

/// Polls until every table holds what [`post_one_of_each`] sent.
async fn wait_for_sqlite_rows(db: &Path, message_id: &str, server: &Server) {
    let deadline = Instant::now() + ROW_DEADLINE;
    loop {
        let counts: rusqlite::Result<(i64, i64, i64, i64)> =
            Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(|store| {
                store.query_row(SQLITE_COUNTS, (message_id, JOURNEY), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
            });
        let last = match counts {
            Ok((3, 1, 1, failed)) if failed >= 1 => return,
            Ok(counts) => {
                format!("(raw_requests, events, journey_calls, failed_events) = {counts:?}")
            }
            Err(err) => err.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "rows not in hookhouse.db within {ROW_DEADLINE:?}: {last}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_postgres_rows(warehouse: &Warehouse, message_id: &str, server: &Server) {
    let deadline = Instant::now() + LOAD_DEADLINE;
    let schema = &warehouse.schema;
    let sql = format!(
        "SELECT (SELECT count(*) FROM {schema}.raw_requests), \
         (SELECT count(*) FROM {schema}.events WHERE message_id = $1), \
         (SELECT count(*) FROM {schema}.journey_calls WHERE journey = $2), \
         (SELECT count(*) FROM {schema}.failed_events)"
    );
    loop {
        // Until the sink has connected and migrated, the tables do not exist.
        let last = match warehouse.client.query_one(&sql, &[&message_id, &JOURNEY]).await {
            Ok(row) => {
                let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
                if matches!(counts, (3, 1, 1, failed) if failed >= 1) {
                    return;
                }
                format!("(raw_requests, events, journey_calls, failed_events) = {counts:?}")
            }
            Err(err) => err.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "rows not in PostgreSQL within {LOAD_DEADLINE:?}: {last}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- SQLite ---------------------------------------------------------------------------------

fn sqlite_columns(store: &Connection, table: &str) -> Vec<RealColumn> {
    let mut statement = store.prepare("SELECT name, type FROM pragma_table_info(?1)").unwrap();
    statement
        .query_map([table], |row| {
            let (name, ty): (String, String) = (row.get(0)?, row.get(1)?);
            Ok(RealColumn { name, shown: ty.clone(), ty })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A table that merges by key needs a unique key there, or `ON CONFLICT (key)` is refused.
fn sqlite_key_problems(store: &Connection, table: &Table) -> Vec<String> {
    let Some(key) = merge_key(table) else { return Vec::new() };
    let primary: Vec<String> = store
        .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .unwrap()
        .query_map([table.name], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let unique: Vec<String> = store
        .prepare(
            "SELECT group_concat(i.name) FROM pragma_index_list(?1) AS l, \
             pragma_index_info(l.name) AS i WHERE l.\"unique\" GROUP BY l.name",
        )
        .unwrap()
        .query_map([table.name], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    if primary == [key] || unique.iter().any(|columns| columns == key) {
        Vec::new()
    } else {
        vec![format!(
            "{}: the merge key `{key}` is not unique in SQLite (primary key {primary:?}, unique \
             indexes {unique:?})",
            table.name
        )]
    }
}

/// What the real request wrote: each declared column's values in the storage class its kind
/// promises (`Time` as RFC 3339 UTC text, `Json` as text that parses, `Bool` as 0 or 1).
fn sqlite_value_problems(store: &Connection, table: &Table) -> Vec<String> {
    let mut problems = Vec::new();
    for column in table.columns {
        let sql = format!("SELECT {} FROM {}", column.name, table.name);
        let Ok(mut statement) = store.prepare(&sql) else { continue }; // missing: reported above
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let value = row.get_ref(0).unwrap();
            let fits = match (column.kind, value) {
                (_, ValueRef::Null) => true,
                (Kind::Text, ValueRef::Text(_)) | (Kind::BigInt, ValueRef::Integer(_)) => true,
                (Kind::Bytes, ValueRef::Blob(_)) => true,
                (Kind::Bool, ValueRef::Integer(n)) => n == 0 || n == 1,
                (Kind::Time, ValueRef::Text(text)) => std::str::from_utf8(text).is_ok_and(|text| {
                    text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()
                }),
                (Kind::Json, ValueRef::Text(text)) => serde_json::from_slice::<Value>(text).is_ok(),
                _ => false,
            };
            if !fits {
                problems.push(format!(
                    "{}.{} ({:?}) holds a {:?} value that does not fit: {}",
                    table.name,
                    column.name,
                    column.kind,
                    value.data_type(),
                    shorten(value)
                ));
            }
        }
    }
    problems
}

fn shorten(value: ValueRef<'_>) -> String {
    let text = match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Null => "NULL".to_owned(),
    };
    text.chars().take(60).collect()
}

// --- PostgreSQL -----------------------------------------------------------------------------

async fn postgres_columns(warehouse: &Warehouse, table: &str) -> Vec<RealColumn> {
    warehouse
        .client
        .query(
            "SELECT column_name::text, udt_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
             ORDER BY ordinal_position",
            &[&warehouse.schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| RealColumn { name: row.get(0), ty: row.get(1), shown: row.get(2) })
        .collect()
}

async fn postgres_key_problems(warehouse: &Warehouse, table: &Table) -> Vec<String> {
    let Some(key) = merge_key(table) else { return Vec::new() };
    let keys: Vec<String> = warehouse
        .client
        .query(
            "SELECT string_agg(k.column_name::text, ',' ORDER BY k.ordinal_position) \
             FROM information_schema.table_constraints AS c \
             JOIN information_schema.key_column_usage AS k \
               USING (constraint_schema, constraint_name) \
             WHERE c.table_schema = $1 AND c.table_name = $2 \
               AND c.constraint_type IN ('PRIMARY KEY', 'UNIQUE') \
             GROUP BY c.constraint_name",
            &[&warehouse.schema, &table.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    if keys.iter().any(|columns| columns == key) {
        Vec::new()
    } else {
        vec![format!(
            "{}: the merge key `{key}` is not unique in PostgreSQL (unique keys {keys:?})",
            table.name
        )]
    }
}
