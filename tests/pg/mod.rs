//! A real PostgreSQL for the sink's tests: its URL from `TEST_POSTGRES_URL` (`.ci/run` sets
//! it), and a schema of each test's own, dropped at its end.

#![allow(dead_code, unreachable_pub)]

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, Instant};

use hookhouse::config::{Config, PostgresConfig};
use tokio_postgres::{Client, NoTls};

pub const URL_VARIABLE: &str = "TEST_POSTGRES_URL";

/// The test database's URL, or `None` (with a line saying so) when it is not configured.
pub fn database_url() -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: set {URL_VARIABLE} (e.g. postgres://postgres@127.0.0.1:5432/test) \
                 to run the PostgreSQL sink tests; .ci/run does"
            );
            None
        }
    }
}

/// A schema of the test's own in the test database, and a client to check it with.
pub struct Warehouse {
    pub schema: String,
    pub client: Client,
}

impl Warehouse {
    pub async fn new(url: &str, test: &str) -> Warehouse {
        let (client, connection) =
            tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|err| {
                panic!("cannot reach PostgreSQL at {URL_VARIABLE}: {err}");
            });
        tokio::spawn(connection);
        let schema = format!("hh_test_{test}_{}", std::process::id());
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
        Warehouse { schema, client }
    }

    pub fn sink(&self, url: &str) -> PostgresConfig {
        PostgresConfig {
            url: url.to_owned().into(),
            schema: self.schema.clone(),
            batch_size: NonZeroUsize::new(5_000).unwrap(),
            tls: url.contains("sslmode=require"),
            ca_file: None,
            load_timeout: Duration::from_secs(120),
            lock_timeout: Duration::from_secs(10),
        }
    }

    /// A sink configuration for `url` without a database behind it (a stalled server, say).
    pub fn offline_sink(url: &str, test: &str) -> PostgresConfig {
        PostgresConfig {
            url: url.to_owned().into(),
            schema: format!("hh_test_{test}_{}", std::process::id()),
            batch_size: NonZeroUsize::new(5_000).unwrap(),
            tls: false,
            ca_file: None,
            load_timeout: Duration::from_secs(120),
            lock_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the sink on a configuration, pointed at `url` (the database, or a proxy to it).
    pub fn configure(&self, config: &mut Config, url: &str) {
        config.sinks.postgres = Some(self.sink(url));
    }

    pub async fn count(&self, sql_after_from: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {}.{sql_after_from}", self.schema);
        self.client.query_one(&sql, &[]).await.unwrap().get(0)
    }

    pub async fn drop_schema(self) {
        self.client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema)).await.unwrap();
    }
}

/// `sink` with a load timeout and a lock timeout of these many seconds.
pub fn with_timeouts(sink: PostgresConfig, load_secs: u64, lock_secs: u64) -> PostgresConfig {
    PostgresConfig {
        load_timeout: Duration::from_secs(load_secs),
        lock_timeout: Duration::from_secs(lock_secs),
        ..sink
    }
}

/// Waits until the PostgreSQL sink's cursor in the store at `db` has reached its newest
/// request.
pub async fn wait_caught_up(db: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    let store =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("store opens");
    loop {
        let (position, last): (Option<i64>, i64) = store
            .query_row(
                "SELECT (SELECT position FROM sink_cursors WHERE sink = 'postgres'), \
                 (SELECT coalesce(max(seq), 0) FROM raw_requests)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        if position == Some(last) {
            return;
        }
        assert!(Instant::now() < deadline, "sink stuck at {position:?} of {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
