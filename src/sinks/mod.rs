//! Sinks: every set of tables made from the request log, each loading behind its own cursor.
//!
//! A sink is a [`Sink`]: it connects to its target (refusing one loaded from another store) and
//! loads a [`Batch`] idempotently, returning the rows it refused. Everything else, the loop
//! (cursor, read-ahead, linger, back-off, timeouts, metrics, lag, stopping), is the one
//! [`runner`] every sink runs on. Adding a sink is a folder beside `sqlite/` and `postgres/`
//! and one line in [`start`].

pub mod batch;
pub mod columns;
pub mod metric_views;
pub mod parquet;
pub mod postgres;
pub mod runner;
pub mod sqlite;
pub mod views;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::PseudonymKey;
use crate::spool::{Acknowledgement, Refusal, Spool};
pub use batch::Batch;
pub use runner::RunnerSettings;

/// A destination for the rows made from the log.
pub trait Sink: Send + 'static {
    /// The name of its cursor, its metrics and its refusals.
    fn name(&self) -> &'static str;

    /// How the runner paces it.
    fn settings(&self) -> RunnerSettings;

    /// Makes the target ready (tables and views up to date). `store_id` is the log's
    /// identity: a target already loaded from another store is refused, permanently.
    fn connect(&mut self, store_id: &str) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Whether [`Sink::connect`] must run (again) before the next load.
    fn needs_connect(&self) -> bool;

    /// Drops the connection after a failure, so the next attempt starts afresh.
    fn disconnect(&mut self);

    /// Loads `batch`; loading it again changes nothing. Returns the rows the target refused,
    /// which the runner keeps in `failed_events` under the sink's name.
    fn load(
        &mut self,
        batch: Arc<Batch>,
    ) -> impl Future<Output = Result<Vec<Refusal>, SinkError>> + Send;

    /// Loads `batch` and acknowledges it; returns how many rows were refused and whether the
    /// cursor moved (not when a replay moved it meanwhile). By default the load, then the
    /// acknowledgement; a sink whose tables are in the spool's own file does both in one
    /// transaction.
    fn load_and_acknowledge(
        &mut self,
        batch: Arc<Batch>,
        mut ack: Acknowledgement,
        spool: &Spool,
    ) -> impl Future<Output = Result<(usize, bool), SinkError>> + Send {
        async move {
            ack.refusals = self.load(batch).await?;
            let refused = ack.refusals.len();
            let moved = spool
                .acknowledge(ack)
                .await
                .map_err(|err| SinkError::Retryable(format!("moving the cursor: {err}")))?;
            Ok((refused, moved))
        }
    }
}

/// Why a sink's step failed, and whether trying again soon can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target is away, slow or locked: retried with capped exponential back-off.
    #[error("{0}")]
    Retryable(String),
    /// Needs an operator (a schema newer than this version, a target owned by another store,
    /// a missing key): retried only every few minutes, logged as an error.
    #[error("{0}")]
    Permanent(String),
}

/// The sources' pseudonymisation keys, by source name: what the pipeline needs to make the
/// rows of a pseudonymised request.
pub fn source_keys(config: &Config) -> HashMap<String, PseudonymKey> {
    config
        .sources
        .iter()
        .filter_map(|source| Some((source.name.clone(), source.pseudonymise.clone()?)))
        .collect()
}

/// The names of the sinks `config` runs (their cursors' names), the embedded one first.
pub fn configured(config: &Config) -> Vec<&'static str> {
    let mut names = vec![sqlite::SINK_NAME];
    if config.sinks.postgres.is_some() {
        names.push(postgres::SINK_NAME);
    }
    if config.sinks.parquet.is_some() {
        names.push(parquet::SINK_NAME);
    }
    names
}

/// Starts every configured sink on the runner; they stop when `stop` is cancelled.
pub fn start(
    config: &Config,
    spool: &Spool,
    metrics: &Metrics,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let keys = Arc::new(source_keys(config));
    let context = runner::Context { spool, metrics, keys: &keys, stop, tracker };
    runner::start(sqlite::SqliteSink::new(spool.clone(), metrics.row_counters()), &context)?;
    if let Some(pg) = &config.sinks.postgres {
        runner::start(postgres::PostgresSink::new(pg.clone()), &context)?;
    }
    if let Some(lake) = &config.sinks.parquet {
        runner::start(
            parquet::ParquetSink::new(lake.clone(), spool.clone(), keys.clone()),
            &context,
        )?;
    }
    Ok(())
}
