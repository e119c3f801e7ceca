//! The spool: the durable store every accepted request is written to before it is answered.
//!
//! # Guarantees
//!
//! - **A 2xx means committed.** [`Spool::append`] returns only after the SQLite transaction
//!   holding the request has committed in WAL mode with `synchronous=FULL`, so the request
//!   survives a process crash (SIGKILL) and, on storage that honours `fsync`, a power loss.
//! - **Group commit.** One writer thread owns the only write connection. It takes every request
//!   waiting in its queue (up to `store.max_batch`) into one transaction, so concurrent requests
//!   share one `fsync` and throughput grows with concurrency instead of collapsing under it.
//! - **All or nothing per batch.** A request's raw row, its events and its failures are written
//!   in the same transaction. If the transaction fails, every request in it gets an error (and
//!   so a 503): none is acknowledged, none is half stored.
//! - **Back-pressure, not buffering.** The queue holds at most `store.max_queue_depth` requests;
//!   beyond that `append` fails at once with [`SpoolError::Overloaded`] rather than holding
//!   unacknowledged requests in memory.
//! - **Ordering.** `raw_requests.seq` increases in commit order and is never reused.
//!
//! It does not decide what a request means (the pipeline does) nor who may send one
//! (the receiver does: only an [`AcceptedRequest`] can be appended).

mod checkpointer;
mod files;
mod record;
mod replay;
mod schema;
pub mod secret_urls;
mod writer;

pub use record::{RawRequest, StoredAs, format_time, sha256_hex};
pub use replay::{ReplayError, ReplayReport, Selection, replay};
pub use schema::MigrationError;
pub use writer::WriterHandle;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use tokio::sync::oneshot;

use crate::config::StoreConfig;
use crate::pipeline::Outcome;
use crate::receiver::AcceptedRequest;

/// A sink's write, run by the writer inside its transaction; returns whether it applied.
pub type SinkWrite = Box<dyn FnOnce(&rusqlite::Connection) -> rusqlite::Result<bool> + Send>;

/// Where an appended request now lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: i64,
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
    #[error("the store failed to commit the request")]
    WriteFailed,
    #[error("the store is shutting down")]
    Closed,
    #[error("a sink's write to the store failed: {0}")]
    SinkWrite(String),
}

/// A cloneable handle to the writer; cheap to share between request handlers.
#[derive(Debug, Clone)]
pub struct Spool {
    queue: SyncSender<writer::Job>,
    shared: Arc<Shared>,
}

/// State the writer publishes to the handlers.
#[derive(Debug)]
struct Shared {
    queued: AtomicUsize,
    max_queued: usize,
    /// False from a failed commit until the next successful write or probe.
    writable: AtomicBool,
}

impl Spool {
    /// Opens (creating if needed) the store and starts its writer thread.
    pub fn open(config: &StoreConfig) -> Result<(Spool, WriterHandle), SpoolError> {
        files::prepare(&config.data_dir, &config.db_path()).map_err(|source| {
            SpoolError::CreateDir { path: config.data_dir.display().to_string(), source }
        })?;
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            max_queued: config.max_queue_depth.get(),
            writable: AtomicBool::new(true),
        });
        let (queue, handle) = writer::start(config, Arc::clone(&shared))?;
        Ok((Spool { queue, shared }, handle))
    }

    /// Stores the request and the rows it produced; returns once they are committed.
    pub async fn append(
        &self,
        request: AcceptedRequest,
        outcome: Outcome,
        stored_as: StoredAs,
    ) -> Result<Receipt, SpoolError> {
        let (reply, receipt) = oneshot::channel();
        let request = request.into_raw();
        self.send(writer::Job::Request(writer::RequestJob { request, outcome, stored_as, reply }))?;
        receipt.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Runs a sink's small write (its cursor, its refusals) in the writer's next commit and
    /// returns what it returned. Through the writer, because a separate connection would wait
    /// for the write lock behind the request stream, polling, for up to half a second under
    /// load; here it costs a savepoint. An error rolls back only this write.
    ///
    /// A full queue makes it wait for room rather than fail: the sink's load is already
    /// committed, and only this write stands between it and the next batch.
    pub async fn write_for_sink(&self, write: SinkWrite) -> Result<bool, SpoolError> {
        let (reply, done) = oneshot::channel();
        let mut job = writer::Job::Sink(writer::SinkJob { write: Some(write), reply });
        loop {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
            match self.queue.try_send(job) {
                Ok(()) => break,
                Err(err) => {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                    match err {
                        TrySendError::Full(unsent) => job = unsent,
                        TrySendError::Disconnected(_) => return Err(SpoolError::Closed),
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        done.await.unwrap_or(Err(SpoolError::Closed))
    }

    fn send(&self, job: writer::Job) -> Result<(), SpoolError> {
        // Count before sending so the writer's decrement can never run first.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.try_send(job).map_err(|err| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            match err {
                TrySendError::Full(_) => SpoolError::Overloaded,
                TrySendError::Disconnected(_) => SpoolError::Closed,
            }
        })
    }

    /// Whether a request appended now would be stored: the last write succeeded and the queue
    /// has room.
    pub fn is_ready(&self) -> bool {
        self.shared.writable.load(Ordering::Relaxed)
            && self.shared.queued.load(Ordering::Relaxed) < self.shared.max_queued
    }

    /// Requests waiting for the writer.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}
