//! The embedded tables from a JetStream log (`[sinks.sqlite] path = DIR` with `[spool] kind =
//! "jetstream"`): a `hookhouse.db` of its own that holds a copy of the stream's requests, with
//! the stream's sequences, and every row made from them, so that `hookhouse status
//! --data-dir DIR`, the store's views and the inspector have a store to read.
//!
//! Each loader keeps its own copy, so its consumer is its own (named after the store), not
//! shared: every copy gets every request. A batch is written in one transaction on the
//! store's writer; its requests are keyed by sequence and its events by event id, so a
//! redelivered batch changes nothing, in whatever order it arrives.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::{OnConflict, SINK_NAME, insert, views};
use crate::metrics::RowCounters;
use crate::sinks::batch::Batch;
use crate::sinks::columns::RAW_REQUESTS;
use crate::sinks::{RunnerSettings, Sink, SinkError};
use crate::spool::{Refusal, Spool};

/// Batches as the embedded sink's, with a longer linger: nothing else waits on this writer.
const SETTINGS: RunnerSettings = RunnerSettings {
    max_requests: 1_000,
    max_bytes: 32 * 1024 * 1024,
    linger: Duration::from_millis(50),
    attempt_timeout: Duration::from_secs(60),
};

#[derive(Debug)]
pub struct StreamCopySink {
    spool: Spool,
    counters: RowCounters,
    ready: bool,
    /// `Update` for `hookhouse replay`: each request's rows are made again.
    on_conflict: OnConflict,
}

impl StreamCopySink {
    pub fn new(spool: Spool, counters: RowCounters) -> Self {
        StreamCopySink { spool, counters, ready: false, on_conflict: OnConflict::Keep }
    }

    /// For `hookhouse replay`: the rows of each request loaded replace those it had.
    pub fn replaying(spool: Spool, counters: RowCounters) -> Self {
        StreamCopySink { on_conflict: OnConflict::Update, ..StreamCopySink::new(spool, counters) }
    }

    /// The consumer of this copy: one per store, since each needs every request.
    pub fn consumer_name(&self) -> Result<String, SinkError> {
        let id = self.read(|reader| reader.store_id())?;
        Ok(format!("hookhouse-sqlite-{}", &id[..id.len().min(12)]))
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&crate::spool::SpoolReader) -> Result<T, crate::spool::SpoolError>,
    ) -> Result<T, SinkError> {
        let reader = self.spool.reader().map_err(|err| SinkError::Retryable(err.to_string()))?;
        read(&reader).map_err(|err| SinkError::Retryable(err.to_string()))
    }
}

impl Sink for StreamCopySink {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    fn settings(&self) -> RunnerSettings {
        SETTINGS
    }

    /// Claims the store for `stream_id`, refusing one that is a log of its own (its sequences
    /// are not the stream's) or the copy of another stream; rebuilds the views.
    async fn connect(&mut self, stream_id: &str) -> Result<(), SinkError> {
        let (copy_of, requests) = self.read(|reader| Ok((reader.copy_of()?, reader.totals()?)))?;
        let path = self.spool.db_path().display().to_string();
        match copy_of.as_deref() {
            Some(id) if id == stream_id => {}
            Some(other) => {
                return Err(SinkError::Permanent(format!(
                    "`{path}` is the copy of another JetStream stream ({other}): give \
                     `[sinks.sqlite] path` a directory of its own"
                )));
            }
            None if requests.requests > 0 => {
                return Err(SinkError::Permanent(format!(
                    "`{path}` holds requests of its own (a SQLite log): give `[sinks.sqlite] \
                     path` an empty directory for the stream's copy"
                )));
            }
            None => {}
        }
        let id = stream_id.to_owned();
        self.spool
            .write_embedded_only(Box::new(move |tx| {
                tx.execute("UPDATE spool_identity SET copy_of = ?1", [&id])?;
                views::rebuild(tx)
            }))
            .await
            .map_err(|err| SinkError::Retryable(format!("preparing the store: {err}")))?;
        self.ready = true;
        Ok(())
    }

    fn needs_connect(&self) -> bool {
        !self.ready
    }

    fn disconnect(&mut self) {
        // The store is on this machine: nothing to drop, but connect checks it again.
        self.ready = false;
    }

    async fn load(&mut self, batch: Arc<Batch>) -> Result<Vec<Refusal>, SinkError> {
        let (rows, on_conflict) = (Arc::clone(&batch), self.on_conflict);
        self.spool
            .write_embedded_only(Box::new(move |tx| write(tx, &rows, on_conflict)))
            .await
            .map_err(|err| SinkError::Retryable(err.to_string()))?;
        for (source, (events, failed)) in &batch.per_source {
            self.counters.add(source, *events, *failed);
        }
        Ok(Vec::new())
    }
}

/// The batch's requests and rows; its requests' failures replace those stored before, and
/// replaying, so do their events and journey calls (events first carried by an earlier
/// request are updated in place).
fn write(tx: &Connection, batch: &Batch, on_conflict: OnConflict) -> rusqlite::Result<()> {
    insert(tx, &RAW_REQUESTS, &batch.raw_requests.rows, OnConflict::Keep)?;
    let mut hide = tx.prepare_cached("UPDATE raw_requests SET body_hidden = 1 WHERE seq = ?1")?;
    for seq in &batch.hidden {
        hide.execute([seq])?;
    }
    let mut clear =
        tx.prepare_cached("DELETE FROM failed_events WHERE sink IS NULL AND raw_seq = ?1")?;
    for seq in &batch.seqs {
        clear.execute([seq])?;
    }
    if on_conflict == OnConflict::Update {
        for seq in batch.seqs.iter().filter(|seq| !batch.kept.contains(seq)) {
            tx.execute("DELETE FROM events WHERE raw_seq = ?1", [seq])?;
            tx.execute("DELETE FROM journey_calls WHERE seq = ?1", [seq])?;
        }
    }
    for rows in [&batch.events, &batch.journey_calls, &batch.failures] {
        insert(tx, rows.table, &rows.rows, on_conflict)?;
    }
    Ok(())
}
