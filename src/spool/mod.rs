//! The spool: the durable request log every accepted request is appended to before it is
//! answered, and the cursors of the sinks that load from it.
//!
//! # Guarantees
//!
//! - **A 2xx means committed.** [`Spool::append`] returns only after the SQLite transaction
//!   holding the request has committed in WAL mode with `synchronous=FULL`, so the request
//!   survives a process crash (SIGKILL) and, on storage that honours `fsync`, a power loss.
//! - **The log holds requests only.** An append writes the request record and nothing else;
//!   every table made from requests (the embedded `events`, `journey_calls` and
//!   `failed_events` included) is a sink's, loaded behind its cursor. A raw row therefore
//!   exists before its event rows; a crash between them is caught up from the cursor.
//! - **Group commit.** One writer thread owns the only write connection. It takes every request
//!   waiting in its queue (up to `store.max_batch`) into one transaction, so concurrent requests
//!   share one `fsync` and throughput grows with concurrency instead of collapsing under it.
//! - **All or nothing per batch.** If the transaction fails, every request in it gets an error
//!   (and so a 503): none is acknowledged, none is stored.
//! - **Back-pressure, not buffering.** The queue holds at most `store.max_queue_depth` requests;
//!   beyond that `append` fails at once with [`SpoolError::Overloaded`] rather than holding
//!   unacknowledged requests in memory.
//! - **Ordering.** `raw_requests.seq` increases in commit order and is never reused, so a reader
//!   that sees a request sees every request before it.
//!   A store found at open with its newest request below a sink's cursor (a WAL cut short,
//!   files from different moments) numbers new requests above that cursor ([`integrity`]).
//! - **Damage is reported, not hidden.** At start a background check reads the file
//!   (`start_check`); what it finds is in [`Spool::health`], for `/readyz` and `/metrics`.
//!
//! This module is the only code that opens `hookhouse.db`. Sinks read it through a
//! [`SpoolReader`] and write through the writer ([`Spool::acknowledge`] and friends); the
//! embedded sink's rows go through [`Spool::write_embedded`].
//!
//! It does not decide what a request means (the pipeline does) nor who may send one
//! (the receiver does: only an [`AcceptedRequest`] can be appended).

pub mod answers;
pub mod backup;
mod checkpointer;
mod cursors;
mod disk_guard;
mod files;
pub mod inspect;
pub mod integrity;
mod maintenance;
mod pruner;
mod reader;
pub mod retention;
mod schema;
pub mod secret_urls;
mod start_check;
mod writer;

pub use cursors::{Cursor, Lag};
pub use maintenance::{Maintenance, Selection, rewind_sinks};
pub use pruner::{PassReport, run as run_retention};
pub use reader::{PlannedRemoval, SpoolReader};
pub use retention::StoreUsage;
pub use schema::MigrationError;
pub use start_check::{CheckState, StoreHealth, recorded as recorded_health};
pub use writer::WriterHandle;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use crate::config::StoreConfig;
use crate::request::{AcceptedRequest, StoredAs};

/// A write run by the writer on its connection; returns whether it applied.
type SinkWrite = Box<dyn FnOnce(&rusqlite::Connection) -> rusqlite::Result<bool> + Send>;

/// The embedded sink's load, run by the writer in a transaction of its own.
pub type EmbeddedWrite = Box<dyn FnOnce(&rusqlite::Connection) -> rusqlite::Result<()> + Send>;

/// Where an appended request now lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: i64,
}

/// A row a sink would not take, kept in `failed_events` under the sink's name instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub seq: i64,
    pub received_at: DateTime<Utc>,
    pub reason: String,
    /// The refused row as JSON (a request's own body for `raw_requests`).
    pub body: Vec<u8>,
}

/// What a sink tells the log after its load of `after < seq <= through` committed.
#[derive(Debug, Clone)]
pub struct Acknowledgement {
    pub sink: &'static str,
    /// The cursor the batch was read at; a replay since then makes the acknowledgement void.
    pub from: Cursor,
    pub after: i64,
    pub through: i64,
    pub refusals: Vec<Refusal>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("failed to open the store at `{path}`")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to create the data directory or the database file in `{path}`")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store at `{path}` cannot be used")]
    Migrate {
        path: String,
        #[source]
        source: MigrationError,
    },
    #[error("failed to start the `{name}` thread")]
    Thread {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the store's write queue is full")]
    Overloaded,
    #[error(
        "free disk space is {free_mb} MB, below store.min_free_disk_mb = {min_mb}: free space on \
         the store's filesystem"
    )]
    LowDisk { free_mb: u64, min_mb: u64 },
    #[error("the store could not commit the write (the writer logs why)")]
    WriteFailed,
    #[error("the store is shutting down")]
    Closed,
    #[error("a sink's write to the store failed: {0}")]
    SinkWrite(String),
    #[error("failed to read the store: {0}")]
    Read(#[from] rusqlite::Error),
    #[error("no store at `{0}`: run `hookhouse serve` first, or pass --data-dir")]
    Missing(String),
}

/// A cloneable handle to the writer; cheap to share between request handlers.
///
/// The writer thread ends once every clone is dropped and it has committed what was queued:
/// that, and not a signal, is how it stops, so nothing can be appended after it ended.
#[derive(Debug, Clone)]
pub struct Spool {
    queue: SyncSender<writer::Job>,
    shared: Arc<Shared>,
}

/// State the writer publishes to the handlers.
#[derive(Debug)]
struct Shared {
    db_path: PathBuf,
    queued: AtomicUsize,
    max_queued: usize,
    /// False from a failed commit until the next successful write or probe.
    writable: AtomicBool,
    /// The sinks running in this process: a dropped body goes once all of them loaded it.
    sinks: Mutex<Vec<&'static str>>,
    /// The last seq committed, for sinks waiting for new requests.
    committed: watch::Sender<i64>,
    /// `store.min_free_disk_mb` in bytes (0: no guard), and what the guard last read.
    min_free_disk: u64,
    free_disk: AtomicU64,
    /// True while free space is below `min_free_disk`: new requests are refused.
    low_disk: AtomicBool,
    /// The store's size and oldest rows as the pruner last read them, and what it removed.
    usage: Mutex<Option<StoreUsage>>,
    pruned: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// The longest a pruning step has held the write lock since start, in microseconds.
    longest_prune_step_us: AtomicU64,
    /// The check at start and the request numbers found at open.
    health: Mutex<StoreHealth>,
}

impl Spool {
    /// Opens (creating if needed) the store and starts its writer thread.
    pub fn open(config: &StoreConfig) -> Result<(Spool, WriterHandle), SpoolError> {
        let db_path = config.db_path();
        files::prepare(&config.data_dir, &db_path).map_err(|source| SpoolError::CreateDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let shared = Arc::new(Shared {
            db_path,
            queued: AtomicUsize::new(0),
            max_queued: config.max_queue_depth.get(),
            writable: AtomicBool::new(true),
            sinks: Mutex::new(Vec::new()),
            committed: watch::Sender::new(0),
            min_free_disk: config.min_free_disk,
            free_disk: AtomicU64::new(0),
            low_disk: AtomicBool::new(false),
            usage: Mutex::new(None),
            pruned: Mutex::new(std::collections::BTreeMap::new()),
            longest_prune_step_us: AtomicU64::new(0),
            health: Mutex::new(StoreHealth::checking()),
        });
        disk_guard::start(&config.data_dir, &shared)?;
        let (queue, handle) = writer::start(config, Arc::clone(&shared))?;
        start_check::start(&shared)?;
        Ok((Spool { queue, shared }, handle))
    }

    /// Appends the request; returns once it is committed.
    pub async fn append(
        &self,
        request: AcceptedRequest,
        stored_as: StoredAs,
    ) -> Result<Receipt, SpoolError> {
        if self.shared.low_disk.load(Ordering::Relaxed) {
            return Err(self.low_disk_error());
        }
        let (reply, receipt) = oneshot::channel();
        let request = request.into_raw();
        self.send(writer::Job::Request(writer::RequestJob { request, stored_as, reply }))?;
        receipt.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// A read-only connection for a sink, `status` or the secret URLs.
    /// The store's file.
    pub fn db_path(&self) -> &std::path::Path {
        &self.shared.db_path
    }

    pub fn reader(&self) -> Result<SpoolReader, SpoolError> {
        SpoolReader::open(&self.shared.db_path)
    }

    /// Changes at every commit of requests: what a caught-up sink waits on.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.shared.committed.subscribe()
    }

    /// Registers a sink running in this process and creates its cursor at the start of the
    /// log if it has none.
    pub async fn register_sink(&self, sink: &'static str) -> Result<(), SpoolError> {
        {
            let mut sinks = self.shared.sinks.lock().unwrap_or_else(|e| e.into_inner());
            if !sinks.contains(&sink) {
                sinks.push(sink);
            }
        }
        self.savepoint(Box::new(move |conn| cursors::create(conn, sink).map(|()| true))).await?;
        Ok(())
    }

    /// Records a sink's load: moves its cursor, keeps its refusals, and empties the bodies no
    /// running sink needs any more. Returns false, changing nothing, if a replay moved the
    /// cursor since the batch was read (the batch is then read again).
    pub async fn acknowledge(&self, ack: Acknowledgement) -> Result<bool, SpoolError> {
        self.savepoint(self.record_load(ack, None)).await
    }

    /// The write that records a sink's load, with `rows` (the load's last rows) written in the
    /// same transaction when given: the cursor first, since after a replay the rows and the
    /// refusals may be stale as well, and then nothing is written.
    fn record_load(&self, ack: Acknowledgement, rows: Option<EmbeddedWrite>) -> SinkWrite {
        let shared = Arc::clone(&self.shared);
        Box::new(move |conn| {
            if !cursors::advance(conn, ack.sink, ack.from, ack.through)? {
                return Ok(false);
            }
            if let Some(rows) = rows {
                rows(conn)?;
            }
            cursors::replace_refusals(conn, ack.sink, ack.after, ack.through, &ack.refusals)?;
            let sinks = shared.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
            cursors::drop_loaded_bodies(conn, &sinks)?;
            Ok(true)
        })
    }

    /// Keeps why a sink's last attempt failed, for `hookhouse status`.
    pub async fn record_sink_error(
        &self,
        sink: &'static str,
        error: String,
    ) -> Result<(), SpoolError> {
        self.savepoint(Box::new(move |conn| {
            cursors::record_error(conn, sink, &error).map(|_| true)
        }))
        .await
        .map(|_| ())
    }

    /// Runs the embedded sink's load on the writer, chunk by chunk, each in a transaction of
    /// its own between request commits, so a request waits behind one chunk at most; the last
    /// chunk also moves the cursor (with the acknowledgement's refusals and dropped bodies).
    /// The writer is the only connection that writes, so the sink never polls for the write
    /// lock. Returns false if a replay moved the cursor since the batch was read; the chunks
    /// before the last were written (loading again changes nothing), the last was not.
    pub async fn write_embedded(
        &self,
        chunks: Vec<EmbeddedWrite>,
        ack: Acknowledgement,
    ) -> Result<bool, SpoolError> {
        let mut chunks: std::collections::VecDeque<EmbeddedWrite> = chunks.into();
        let last = self.record_load(ack, chunks.pop_back());
        let mut chunks: std::collections::VecDeque<SinkWrite> = chunks
            .into_iter()
            .map(|write| -> SinkWrite { Box::new(move |conn| write(conn).map(|()| true)) })
            .collect();
        chunks.push_back(last);
        self.send_waiting(|reply| {
            writer::Job::SinkTransactions(writer::ChunkedJob { chunks, reply })
        })
        .await
    }

    /// Runs a write of the embedded sink that moves no cursor (its views, a load on its own)
    /// in a transaction of its own on the writer.
    pub async fn write_embedded_only(&self, write: EmbeddedWrite) -> Result<(), SpoolError> {
        let chunks =
            std::collections::VecDeque::from([Box::new(move |conn: &rusqlite::Connection| {
                write(conn).map(|()| true)
            }) as SinkWrite]);
        self.send_waiting(|reply| {
            writer::Job::SinkTransactions(writer::ChunkedJob { chunks, reply })
        })
        .await
        .map(|_| ())
    }

    /// Runs a sink's small write in a savepoint of the writer's next commit. Through the
    /// writer, because a separate connection would wait for the write lock behind the request
    /// stream, polling, for up to half a second under load; here it costs a savepoint. An
    /// error rolls back only this write.
    async fn savepoint(&self, write: SinkWrite) -> Result<bool, SpoolError> {
        self.send_waiting(|reply| writer::Job::Sink(writer::SinkJob { write: Some(write), reply }))
            .await
    }

    /// Queues a sink's job. A full queue makes it wait for room rather than fail: the sink's
    /// load is already done, and only this write stands between it and the next batch.
    async fn send_waiting(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<bool, SpoolError>>) -> writer::Job,
    ) -> Result<bool, SpoolError> {
        let (reply, done) = oneshot::channel();
        let mut job = job(reply);
        loop {
            // Not counted in `queued`: that is the requests' share of the queue.
            match self.queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(unsent)) => job = unsent,
                Err(TrySendError::Disconnected(_)) => return Err(SpoolError::Closed),
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        done.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Queues a request, or refuses it at once when `max_queue_depth` requests are waiting.
    fn send(&self, job: writer::Job) -> Result<(), SpoolError> {
        // Count before sending so the writer's decrement can never run first.
        if self.shared.queued.fetch_add(1, Ordering::Relaxed) >= self.shared.max_queued {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(SpoolError::Overloaded);
        }
        self.queue.try_send(job).map_err(|err| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            match err {
                TrySendError::Full(_) => SpoolError::Overloaded,
                TrySendError::Disconnected(_) => SpoolError::Closed,
            }
        })
    }

    /// Why requests are refused for lack of disk space, while they are.
    pub fn low_disk(&self) -> Option<SpoolError> {
        self.shared.low_disk.load(Ordering::Relaxed).then(|| self.low_disk_error())
    }

    /// Free bytes on the store's filesystem as the disk guard last read them (0: no guard).
    pub fn free_disk_bytes(&self) -> u64 {
        self.shared.free_disk.load(Ordering::Relaxed)
    }

    fn low_disk_error(&self) -> SpoolError {
        let mb = |bytes: u64| bytes / (1024 * 1024);
        SpoolError::LowDisk {
            free_mb: mb(self.shared.free_disk.load(Ordering::Relaxed)),
            min_mb: mb(self.shared.min_free_disk),
        }
    }

    /// Whether a request appended now would be stored: the last write succeeded, the queue
    /// has room, and the disk has the space `store.min_free_disk_mb` asks for.
    pub fn is_ready(&self) -> bool {
        !self.shared.low_disk.load(Ordering::Relaxed)
            && self.shared.writable.load(Ordering::Relaxed)
            && self.shared.queued.load(Ordering::Relaxed) < self.shared.max_queued
    }

    /// The store's health: the check at start, and requests missing that sinks loaded.
    pub fn health(&self) -> StoreHealth {
        self.shared.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests waiting for the writer.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}
