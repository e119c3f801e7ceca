//! The PostgreSQL sink: loads every request, event, journey call and failure into typed
//! tables, on the shared runner.
//!
//! Delivery is at least once (the cursor moves only after PostgreSQL has committed) and rows are
//! exactly once (every load is idempotent, see [`load`]). It never slows ingestion: it only
//! reads the log, and while PostgreSQL is away the runner retries with back-off, then catches
//! up from the cursor.
//!
//! Its sessions never wait for long: TCP keepalives and a TCP user timeout notice a dead
//! server; `lock_timeout` turns a wait behind another session (a loader that died mid-batch,
//! whose session PostgreSQL has not noticed is gone) into a failure that names that session;
//! `idle_in_transaction_session_timeout` ends our own session if we die in that state; and the
//! runner's attempt timeout bounds everything else.
//!
//! Client: `tokio-postgres`, for binary COPY (the fastest way into PostgreSQL, without text
//! escaping); sqlx offers only text COPY and brings a compile-time query layer we do not need.

mod encode;
mod load;
mod schema;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::batch::Batch;
use super::{RunnerSettings, Sink, SinkError};
use crate::config::PostgresConfig;
use crate::spool::Refusal;
use load::Connections;
pub use load::SINK_NAME;

/// Errors inside the sink, before the runner sees them as retryable or permanent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
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
    #[error("{0}")]
    LockWait(String),
}

impl From<PgError> for SinkError {
    fn from(err: PgError) -> SinkError {
        match err {
            PgError::SchemaTooNew { .. } | PgError::OtherStore { .. } | PgError::Tls(_) => {
                SinkError::Permanent(err.to_string())
            }
            _ => SinkError::Retryable(err.to_string()),
        }
    }
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

/// After a batch smaller than `batch_size`, how long requests gather before the next: fewer,
/// fuller transactions (each a commit and an fsync in PostgreSQL) for at most this much lag.
const LINGER: Duration = Duration::from_millis(200);
/// A batch's bodies in memory, at most (at least one request).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// How long PostgreSQL keeps our session if we die in a transaction: another loader waits at
/// most this long for the locks it held.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(30);

/// The sink's state: while PostgreSQL is reachable, its two connections.
pub struct PostgresSink {
    config: PostgresConfig,
    client: Option<Connections>,
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
    /// PostgreSQL is connected by the runner's first step.
    pub fn new(config: PostgresConfig) -> Self {
        PostgresSink { config, client: None }
    }

    /// The schema as SQL: quoted, so a name PostgreSQL reserves (`user`, `order`) still works.
    /// Configuration allows only a-z, 0-9 and `_`, so quoting needs no escaping.
    fn schema_sql(&self) -> String {
        format!("\"{}\"", self.config.schema)
    }

    async fn open_connection(&self) -> Result<Client, PgError> {
        let mut pg: tokio_postgres::Config = self.config.url.expose_secret().parse()?;
        // Server-side limits on our own sessions; the client-side keepalives notice a server
        // (or a network) that has gone, the server-side ones a client that has.
        let options = format!(
            "-c lock_timeout={}ms -c idle_in_transaction_session_timeout={}ms \
             -c statement_timeout={}ms -c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 \
             -c tcp_keepalives_count=3",
            self.config.lock_timeout.as_millis(),
            IDLE_IN_TRANSACTION.as_millis(),
            self.config.load_timeout.as_millis(),
        );
        pg.connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30))
            .application_name("hookhouse")
            .options(&options);
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

    /// A lock wait that timed out, told with who held the lock: the sessions holding a lock
    /// on this schema's `load_progress`, read on a fresh connection.
    async fn explain_lock_wait(&self, err: tokio_postgres::Error) -> PgError {
        if err.code() != Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return PgError::Postgres(err);
        }
        let waited = self.config.lock_timeout.as_secs();
        let holders = match self.lock_holders().await {
            Ok(holders) if !holders.is_empty() => holders.join("; "),
            Ok(_) => "a session that has ended since".to_owned(),
            Err(other) => format!("unknown ({other})"),
        };
        PgError::LockWait(format!(
            "waited {waited} s for the lock on {schema}.load_progress, held by {holders}; it is \
             released when that transaction ends (PostgreSQL ends a dead client's session after \
             its keepalives or idle_in_transaction_session_timeout; or run \
             `SELECT pg_terminate_backend(<pid>)`)",
            schema = self.config.schema
        ))
    }

    async fn lock_holders(&self) -> Result<Vec<String>, PgError> {
        let client = self.open_connection().await?;
        let rows = client
            .query(
                "SELECT a.pid, coalesce(a.application_name, ''), \
                 coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''), \
                 coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0) \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.relation = to_regclass($1) AND l.granted AND l.pid <> pg_backend_pid() \
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1",
                &[&format!("{}.load_progress", self.schema_sql())],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                format!(
                    "backend pid {} (application `{}`, client {}, {} for {} s)",
                    row.get::<_, i32>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                    row.get::<_, i64>(4)
                )
            })
            .collect())
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    fn settings(&self) -> RunnerSettings {
        RunnerSettings {
            max_requests: self.config.batch_size.get(),
            max_bytes: MAX_BATCH_BYTES,
            linger: LINGER,
            attempt_timeout: self.config.load_timeout,
        }
    }

    async fn connect(&mut self, store_id: &str) -> Result<(), SinkError> {
        let schema = &self.schema_sql();
        let mut requests = self.open_connection().await?;
        if let Err(err) = schema::migrate(&mut requests, schema, store_id).await {
            return Err(match err {
                PgError::Postgres(err) => self.explain_lock_wait(err).await.into(),
                other => other.into(),
            });
        }
        let events = self.open_connection().await?;
        for client in [&requests, &events] {
            load::create_staging(client, schema).await?;
        }
        tracing::info!(url = %self.config.url_masked(), schema = %schema,
            "PostgreSQL sink connected; tables up to date");
        self.client = Some(Connections { requests, events });
        Ok(())
    }

    fn needs_connect(&self) -> bool {
        self.client.as_ref().is_none_or(Connections::is_closed)
    }

    fn disconnect(&mut self) {
        self.client = None;
    }

    async fn load(&mut self, batch: Arc<Batch>) -> Result<Vec<Refusal>, SinkError> {
        let schema = self.schema_sql();
        let Some(connections) = self.client.as_mut() else {
            return Err(SinkError::Retryable("not connected to PostgreSQL".to_owned()));
        };
        match load::load(connections, &schema, &batch).await {
            Ok(refusals) => Ok(refusals),
            Err(PgError::Postgres(err)) => Err(self.explain_lock_wait(err).await.into()),
            Err(other) => Err(other.into()),
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
