//! The embedded SQLite sink, on by default: the `events`, `journey_calls` and `failed_events`
//! tables and the per-event views in `hookhouse.db`, loaded behind the cursor `sqlite` like
//! any other sink, typically milliseconds behind the log.
//!
//! Its loads run on the spool's writer, in a transaction of their own between request commits
//! ([`Spool::write_embedded`]): the writer is the only connection that writes the file. It
//! owns these inserts and the views; the spool owns the file and its schema.

pub mod replay;
pub mod stream_copy;
mod views;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{CachedStatement, Connection, ToSql};

use super::batch::{Batch, Cell, Row};
use super::columns::{JOURNEY_CALLS, Table};
use super::{RunnerSettings, Sink, SinkError};
use crate::metrics::RowCounters;
use crate::request::format_time;
use crate::spool::{Acknowledgement, EmbeddedWrite, Refusal, Spool};

/// The cursor name of the embedded sink.
pub const SINK_NAME: &str = "sqlite";

/// Batches of up to 512 requests, written in chunks of [`CHUNK`]: each chunk is a
/// transaction on the one writer, and requests wait for their commit behind it, so its length
/// is what the sink adds to their latency (about 14 us an event here: 128 events keep it near
/// 2 ms, where one transaction of 2,000 events made p99 60 ms; BENCHMARKS.md). Without an
/// fsync, a small transaction costs little more per event than a large one, mixed timestamps
/// included; the batch, not the chunk, sets how often the sink reads, normalises and
/// acknowledges.
const SETTINGS: RunnerSettings = RunnerSettings {
    max_requests: 512,
    max_bytes: 16 * 1024 * 1024,
    linger: Duration::from_millis(5),
    attempt_timeout: Duration::from_secs(60),
};

/// Requests per transaction of a load.
const CHUNK: usize = 128;

/// What to do with a row whose key is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Loading: a resend changes nothing; the first request stays its `raw_seq`.
    Keep,
    /// Replay: the stored row takes what the current normaliser makes of the same request.
    Update,
}

#[derive(Debug)]
pub struct SqliteSink {
    spool: Spool,
    counters: RowCounters,
    views_ready: bool,
}

impl SqliteSink {
    pub fn new(spool: Spool, counters: RowCounters) -> Self {
        SqliteSink { spool, counters, views_ready: false }
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    fn settings(&self) -> RunnerSettings {
        SETTINGS
    }

    /// The tables are the spool's migrations'; the views are rebuilt at every start.
    async fn connect(&mut self, _store_id: &str) -> Result<(), SinkError> {
        self.spool
            .write_embedded_only(Box::new(views::rebuild))
            .await
            .map_err(|err| SinkError::Retryable(format!("rebuilding the views: {err}")))?;
        self.views_ready = true;
        Ok(())
    }

    fn needs_connect(&self) -> bool {
        !self.views_ready
    }

    fn disconnect(&mut self) {}

    /// The rows alone; the runner uses [`Sink::load_and_acknowledge`], which moves the
    /// cursor in the same transaction.
    async fn load(&mut self, batch: Arc<Batch>) -> Result<Vec<Refusal>, SinkError> {
        let rows = Arc::clone(&batch);
        self.spool
            .write_embedded_only(Box::new(move |tx| {
                write(tx, &rows, (rows.after, rows.through), OnConflict::Keep)
            }))
            .await
            .map_err(|err| SinkError::Retryable(err.to_string()))?;
        Ok(Vec::new())
    }

    async fn load_and_acknowledge(
        &mut self,
        batch: Arc<Batch>,
        ack: Acknowledgement,
        spool: &Spool,
    ) -> Result<(usize, bool), SinkError> {
        let chunks = chunks(&batch)
            .into_iter()
            .map(|(after, through)| -> EmbeddedWrite {
                let rows = Arc::clone(&batch);
                Box::new(move |tx| write(tx, &rows, (after, through), OnConflict::Keep))
            })
            .collect();
        let moved = spool
            .write_embedded(chunks, ack)
            .await
            .map_err(|err| SinkError::Retryable(err.to_string()))?;
        if moved {
            for (source, (events, failed)) in &batch.per_source {
                self.counters.add(source, *events, *failed);
            }
        }
        Ok((0, moved))
    }
}

/// The batch's requests in ranges `(after, through]` of at most [`CHUNK`] requests.
fn chunks(batch: &Batch) -> Vec<(i64, i64)> {
    let seqs: Vec<i64> = batch.raw_requests.rows.iter().map(|row| row.seq).collect();
    let mut ranges = Vec::new();
    let mut after = batch.after;
    for piece in seqs.chunks(CHUNK) {
        let through = piece.last().copied().unwrap_or(after);
        ranges.push((after, through));
        after = through;
    }
    if let Some(last) = ranges.last_mut() {
        last.1 = batch.through;
    }
    ranges
}

/// Writes the rows of the batch's requests `after < seq <= through`: events are added (or,
/// replaying, updated), journey calls replaced; loading, the normaliser's failures of those
/// requests are replaced (replay deletes a request's own rows itself). Loading them again
/// changes nothing.
fn write(
    tx: &Connection,
    batch: &Batch,
    (after, through): (i64, i64),
    on_conflict: OnConflict,
) -> rusqlite::Result<()> {
    if on_conflict == OnConflict::Keep {
        tx.execute(
            "DELETE FROM failed_events WHERE sink IS NULL AND raw_seq > ?1 AND raw_seq <= ?2",
            [after, through],
        )?;
    }
    for rows in [&batch.events, &batch.journey_calls, &batch.failures] {
        let start = rows.rows.partition_point(|row| row.seq <= after);
        let end = rows.rows.partition_point(|row| row.seq <= through);
        insert(tx, rows.table, &rows.rows[start..end], on_conflict)?;
    }
    Ok(())
}

/// Inserts `rows` of `table` with one prepared statement.
fn insert(
    tx: &Connection,
    table: &Table,
    rows: &[Row],
    on_conflict: OnConflict,
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut statement: CachedStatement<'_> = tx.prepare_cached(&insert_sql(table, on_conflict))?;
    for row in rows {
        statement.execute(rusqlite::params_from_iter(&row.cells))?;
    }
    Ok(())
}

/// `INSERT` of every declared column. A table with a key meets a stored row by
/// [`Table::on_conflict`]; journey calls, one per request, are replaced.
fn insert_sql(table: &Table, on_conflict: OnConflict) -> String {
    let names: Vec<&str> = table.names().collect();
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let conflict = if table.name == JOURNEY_CALLS.name {
        JOURNEY_CALLS.on_conflict(true)
    } else {
        table.on_conflict(on_conflict == OnConflict::Update)
    };
    format!(
        "INSERT INTO {} ({}) VALUES ({}) {}",
        table.name,
        names.join(", "),
        placeholders.join(", "),
        conflict.unwrap_or_default()
    )
}

/// A cell as SQLite stores it: booleans as 0/1, JSON as text, times as RFC 3339 UTC text
/// (whole seconds without a fraction, as the normaliser writes `created_at`).
impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(n) => ToSqlOutput::Owned(SqlValue::Integer(*n)),
            Cell::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
            Cell::Text(text) | Cell::Json(text) => {
                ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
            }
            Cell::Time(time) => {
                let text = if time.timestamp_subsec_nanos() == 0 {
                    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                } else {
                    format_time(time)
                };
                ToSqlOutput::Owned(SqlValue::Text(text))
            }
            Cell::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::columns::{EVENTS, FAILED_EVENTS};

    #[test]
    fn inserts_name_every_declared_column() {
        let sql = insert_sql(&EVENTS, OnConflict::Keep);
        assert!(sql.contains("?48") && !sql.contains("?49"), "{sql}");
        assert!(sql.ends_with("excluded.platform IS NOT NULL)"), "{sql}");
        assert!(!sql.contains("email = excluded.email"), "{sql}");
        let sql = insert_sql(&EVENTS, OnConflict::Update);
        assert!(sql.contains("email = excluded.email"));
        assert!(sql.contains("parse_warnings = excluded.parse_warnings"));
        assert!(!sql.contains("raw_seq = excluded"));
        assert!(insert_sql(&JOURNEY_CALLS, OnConflict::Keep).contains("DO UPDATE"));
        assert!(!insert_sql(&FAILED_EVENTS, OnConflict::Keep).contains("ON CONFLICT"));
    }
}
