//! The PostgreSQL sink: follows the spool behind its own cursor and loads every request, event,
//! journey call and failure into typed tables.
//!
//! Delivery is at least once (the cursor moves only after PostgreSQL has committed) and rows are
//! exactly once (every load is idempotent, see [`load`]). The sink never slows ingestion: it
//! only reads the spool, and while PostgreSQL is away it retries with capped exponential
//! back-off, then catches up from its cursor.
//!
//! Client: `tokio-postgres`, for binary COPY (the fastest way into PostgreSQL, without text
//! escaping) on the runtime the server already runs; sqlx offers only text COPY and brings a
//! compile-time query layer we do not need.

mod encode;
mod load;
mod schema;
mod tls;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params};
use secrecy::ExposeSecret as _;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

use crate::config::PostgresConfig;
use crate::metrics::{Metrics, SinkMetrics};
use crate::sinks::batch::{self, Batch};
use crate::sinks::cursor::{self, Cursor};
use crate::spool::{Spool, SpoolError, format_time};
use crate::telemetry::SenderText;
use load::{Connections, Refusal, SINK_NAME};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the spool: {0}")]
    Spool(#[from] rusqlite::Error),
    #[error(
        "the PostgreSQL schema is at version {found}, newer than this hookhouse knows ({known}): \
         upgrade hookhouse"
    )]
    SchemaTooNew { found: i32, known: usize },
    #[error("TLS to PostgreSQL: {0}")]
    Tls(#[from] tls::TlsSetupError),
    #[error(
        "PostgreSQL schema {schema} is loaded from another hookhouse store (id {owner}); give \
         this store a schema of its own with `sinks.postgres.schema`"
    )]
    OtherStore { schema: String, owner: String },
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the spool's writer: {0}")]
    Writer(#[from] SpoolError),
    #[error("the spool reader stopped unexpectedly")]
    Reader,
}

/// tokio-postgres shows "db error" for a server error; the server's message is what helps.
/// Its DETAIL is left out: it can quote a row's values. For other errors the causes are
/// added, since "error performing TLS handshake" alone does not say what to fix.
pub(super) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Back-off after a failure: doubles from the first step to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How often the sink looks for new requests once it has caught up.
const POLL: Duration = Duration::from_millis(100);
/// After a batch smaller than `batch_size`, how long the sink lets requests gather before the
/// next: fewer, fuller transactions (each a commit and an fsync in PostgreSQL) for at most this
/// much more lag. Under load this, not the batch size, sets the batch size.
const LINGER: Duration = Duration::from_millis(200);
/// The longest one batch may take in PostgreSQL before the connection is given up.
/// Generous, since splitting out refused rows can take many transactions; a dead connection is
/// noticed sooner by TCP keepalives and the TCP user timeout.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the sink logs its lag.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often the lag gauges of `/metrics` are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// What one step of the sink did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing new in the spool.
    CaughtUp,
    Loaded {
        requests: usize,
        events: usize,
        refused: usize,
    },
    /// A replay moved the cursor while the batch was loading; it is loaded again.
    Rewound,
}

/// The sink's state: its spool connection and, while PostgreSQL is reachable, its client.
pub struct PostgresSink {
    config: PostgresConfig,
    /// A read-only connection to the spool, for batches and the cursor.
    reader: Arc<Mutex<Connection>>,
    /// The spool's writer, for the cursor's moves and the refusals.
    spool: Spool,
    client: Option<Connections>,
    /// The next batch, being read while the current one loads.
    ahead: Option<Ahead>,
    metrics: SinkMetrics,
}

struct Ahead {
    /// The cursor the read assumes: where the current batch leaves it.
    from: Cursor,
    read: tokio::task::JoinHandle<Result<Option<Batch>, SinkError>>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("url", &self.config.url_masked())
            .field("schema", &self.config.schema)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl PostgresSink {
    /// Opens the spool for reading; PostgreSQL is connected on the first step.
    pub fn open(
        config: PostgresConfig,
        db_path: &Path,
        spool: Spool,
        metrics: &Metrics,
    ) -> Result<Self, SinkError> {
        let conn = Connection::open_with_flags(
            db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let reader = Arc::new(Mutex::new(conn));
        let metrics = metrics.sink(SINK_NAME);
        Ok(PostgresSink { config, reader, spool, client: None, ahead: None, metrics })
    }

    /// Runs the sink on a thread and runtime of its own, so that under heavy ingestion it is
    /// scheduled by the kernel beside the server rather than queued behind request tasks.
    pub fn spawn(
        self,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("hookhouse-postgres".to_owned())
            .spawn(move || runtime.block_on(self.run(stop)))
    }

    /// The next batch after the cursor: the one read ahead during the last load if the cursor
    /// is where that read assumed, else a fresh read.
    async fn next_batch(&mut self) -> Result<(Cursor, Option<Batch>), SinkError> {
        let ahead = match self.ahead.take() {
            Some(ahead) => Some((ahead.from, ahead.read.await.map_err(|_| SinkError::Reader)??)),
            None => None,
        };
        let cursor = match self.with_spool(|conn| Ok(cursor::read(conn, SINK_NAME)?)).await? {
            Some(cursor) => cursor,
            None => {
                let create = |conn: &Connection| cursor::create(conn, SINK_NAME).map(|()| true);
                self.spool.write_for_sink(Box::new(create)).await?;
                return Ok((Cursor { position: 0, generation: 0 }, None));
            }
        };
        if let Some((from, Some(batch))) = ahead
            && from == cursor
        {
            return Ok((cursor, Some(batch)));
        }
        let batch_size = self.config.batch_size.get();
        let batch = self
            .with_spool(move |conn| Ok(batch::read(conn, cursor.position, batch_size)?))
            .await?;
        Ok((cursor, batch))
    }

    /// Starts reading the batch after `batch` while `batch` loads.
    fn read_ahead(&mut self, from: Cursor, batch: &Batch) {
        let from = Cursor { position: batch.through, generation: from.generation };
        let batch_size = self.config.batch_size.get();
        let read =
            self.spawn_on_spool(move |conn| Ok(batch::read(conn, from.position, batch_size)?));
        self.ahead = Some(Ahead { from, read });
    }

    /// Loads the next batch, if any. On an error the connection is dropped, so the next step
    /// starts afresh.
    pub async fn step(&mut self) -> Result<Step, SinkError> {
        let started = Instant::now();
        let (from, Some(batch)) = self.next_batch().await? else { return Ok(Step::CaughtUp) };
        let read_time = started.elapsed();
        // A full batch means more is waiting: read it while this one loads.
        if batch.event_count() >= self.config.batch_size.get() {
            self.read_ahead(from, &batch);
        }
        let refusals = match tokio::time::timeout(LOAD_TIMEOUT, self.load(&batch)).await {
            Ok(Ok(refusals)) => refusals,
            Ok(Err(err)) => {
                self.client = None;
                return Err(err);
            }
            Err(_) => {
                self.client = None;
                return Err(SinkError::Timeout(LOAD_TIMEOUT));
            }
        };
        let step = Step::Loaded {
            requests: batch.raw_requests.rows.len(),
            events: batch.event_count(),
            refused: refusals.len(),
        };
        let (after, through) = (batch.after, batch.through);
        let load_time = started.elapsed() - read_time;
        let record = move |conn: &Connection| record_loaded(conn, from, after, through, &refusals);
        let moved = self.spool.write_for_sink(Box::new(record)).await?;
        tracing::debug!(
            events = batch.event_count(),
            read_ms = read_time.as_millis() as u64,
            load_ms = load_time.as_millis() as u64,
            cursor_ms = (started.elapsed() - read_time - load_time).as_millis() as u64,
            "batch loaded"
        );
        Ok(if moved { step } else { Step::Rewound })
    }

    async fn load(&mut self, batch: &Batch) -> Result<Vec<Refusal>, SinkError> {
        let schema = self.schema_sql();
        let connections = match self.client.take() {
            Some(connections) if !connections.is_closed() => self.client.insert(connections),
            _ => {
                let connections = self.connect().await?;
                self.client.insert(connections)
            }
        };
        load::load(connections, &schema, batch).await
    }

    async fn connect(&self) -> Result<Connections, SinkError> {
        let schema = &self.schema_sql();
        let mut requests = self.open_connection().await?;
        let spool_id = self
            .with_spool(|conn| {
                Ok(conn.query_row("SELECT id FROM spool_identity", [], |row| {
                    row.get::<_, String>(0)
                })?)
            })
            .await?;
        schema::migrate(&mut requests, schema, &spool_id).await?;
        let events = self.open_connection().await?;
        for client in [&requests, &events] {
            load::create_staging(client, schema).await?;
        }
        tracing::info!(url = %self.config.url_masked(), schema = %schema,
            "PostgreSQL sink connected; tables up to date");
        Ok(Connections { requests, events })
    }

    /// The schema as SQL: quoted, so a name PostgreSQL reserves (`user`, `order`) still works.
    /// Configuration allows only a-z, 0-9 and `_`, so quoting needs no escaping.
    fn schema_sql(&self) -> String {
        format!("\"{}\"", self.config.schema)
    }

    async fn open_connection(&self) -> Result<Client, SinkError> {
        let mut pg: tokio_postgres::Config = self.config.url.expose_secret().parse()?;
        pg.connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30))
            .application_name("hookhouse");
        if !self.config.tls {
            let (client, connection) = pg.connect(NoTls).await?;
            tokio::spawn(watch_connection(connection));
            return Ok(client);
        }
        let connector = tls::connector(self.config.ca_file.as_deref())?;
        let (client, connection) = pg.connect(connector).await?;
        tokio::spawn(watch_connection(connection));
        Ok(client)
    }

    /// Runs `work` on the spool connection off the async threads: SQLite blocks.
    async fn with_spool<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.spawn_on_spool(work).await.map_err(|_| SinkError::Reader)?
    }

    /// Starts `work` on the spool connection on a blocking thread, without waiting for it.
    fn spawn_on_spool<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, SinkError>> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let mut conn = reader.lock().map_err(|_| SinkError::Reader)?;
            work(&mut conn)
        })
    }

    async fn record_error(&self, error: String) {
        let record =
            move |conn: &Connection| cursor::record_error(conn, SINK_NAME, &error).map(|()| true);
        let recorded = self.spool.write_for_sink(Box::new(record)).await;
        if let Err(err) = recorded {
            tracing::debug!(error = %err, "could not record the sink's error in the spool");
        }
    }

    async fn lag(&self) -> Result<Option<cursor::Lag>, SinkError> {
        self.with_spool(|conn| Ok(cursor::lag(conn, SINK_NAME, chrono::Utc::now())?)).await
    }

    /// Loads until `stop` turns true: batches back to back while behind, a poll every
    /// [`POLL`] once caught up, capped exponential back-off while PostgreSQL fails.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut retry = FIRST_RETRY;
        let mut failing = false;
        let mut loaded_since_report = 0usize;
        let mut last_report = Instant::now();
        let mut last_gauge = Instant::now();
        while !*stop.borrow() {
            // Stopping drops a load in flight: safe, the cursor moves only after a commit.
            let step = tokio::select! {
                step = self.step() => step,
                _ = stop.changed() => break,
            };
            let pause = match step {
                Ok(Step::Loaded { events, refused, .. }) => {
                    if failing {
                        tracing::info!("PostgreSQL sink recovered; catching up");
                        failing = false;
                    }
                    if refused > 0 {
                        tracing::warn!(refused, "PostgreSQL refused rows; kept in failed_events");
                    }
                    retry = FIRST_RETRY;
                    loaded_since_report += events;
                    self.metrics.loaded.inc_by(events as u64);
                    self.metrics.refused.inc_by(refused as u64);
                    if events >= self.config.batch_size.get() { Duration::ZERO } else { LINGER }
                }
                Ok(Step::Rewound) => Duration::ZERO,
                Ok(Step::CaughtUp) => POLL,
                Err(err) => {
                    let message = err.to_string();
                    // The warehouse's message may quote a value a sender chose.
                    tracing::warn!(error = %SenderText(&message), retry_in_ms = retry.as_millis() as u64,
                        "PostgreSQL sink failed; events stay in the spool until it loads them");
                    self.record_error(message).await;
                    self.metrics.failures.inc();
                    failing = true;
                    let pause = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    pause
                }
            };
            if last_gauge.elapsed() >= GAUGE_EVERY {
                self.update_lag_gauges().await;
                last_gauge = Instant::now();
            }
            if last_report.elapsed() >= REPORT_EVERY {
                self.report(loaded_since_report, last_report.elapsed()).await;
                loaded_since_report = 0;
                last_report = Instant::now();
            }
            if !pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Sets the lag gauges of `/metrics` from the spool (two primary-key lookups).
    async fn update_lag_gauges(&self) {
        let behind = self
            .with_spool(|conn| {
                let now = chrono::Utc::now();
                let position = cursor::read(conn, SINK_NAME)?.map_or(0, |cursor| cursor.position);
                Ok(cursor::behind(conn, position, now)?)
            })
            .await;
        match behind {
            Ok((requests, seconds)) => {
                self.metrics.lag_requests.set(i64::try_from(requests).unwrap_or(i64::MAX));
                self.metrics.lag_seconds.set(seconds);
            }
            Err(err) => tracing::debug!(error = %err, "could not measure the sink's lag"),
        }
    }

    async fn report(&self, loaded: usize, over: Duration) {
        match self.lag().await {
            Ok(Some(lag)) => tracing::info!(
                loaded_events = loaded,
                events_per_sec = (loaded as f64 / over.as_secs_f64()).round(),
                lag_events = lag.events,
                lag_seconds = lag.seconds,
                "PostgreSQL sink"
            ),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "could not measure the sink's lag"),
        }
    }
}

/// Drives a connection until it closes; the client's next call then reports why.
async fn watch_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "PostgreSQL connection closed");
    }
}

/// After PostgreSQL committed `after < seq <= through`: keeps the refusals in the spool and
/// moves the cursor, in one transaction; returns false (changing nothing) if a replay moved
/// the cursor meanwhile.
fn record_loaded(
    tx: &Connection,
    from: Cursor,
    after: i64,
    through: i64,
    refusals: &[Refusal],
) -> rusqlite::Result<bool> {
    // First: after a replay the refusals may be stale as well, so nothing is written.
    if !cursor::advance(tx, SINK_NAME, from, through)? {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM failed_events WHERE sink = ?1 AND raw_seq > ?2 AND raw_seq <= ?3",
        params![SINK_NAME, after, through],
    )?;
    for refusal in refusals {
        tx.execute(
            "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body, sink) \
             VALUES (?1, ?2, 'load', ?3, ?4, ?5)",
            params![
                refusal.seq,
                format_time(&refusal.received_at),
                refusal.reason,
                refusal.body,
                SINK_NAME
            ],
        )?;
    }
    Ok(true)
}
