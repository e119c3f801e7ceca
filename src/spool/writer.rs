//! The writer thread: the only connection that writes `hookhouse.db`. It runs on its own OS
//! thread because SQLite calls block, and async code must not.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::checkpointer::Checkpointer;
use super::{Receipt, Shared, SinkWrite, SpoolError, schema};
use crate::config::StoreConfig;
use crate::request::{RawRequest, StoredAs};
use crate::telemetry::LogLimit;

/// How often a writer whose last commit failed checks whether the store is writable again,
/// so readiness recovers without waiting for traffic.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Room in the queue for background jobs, beyond `store.max_queue_depth` requests: each sink
/// and the pruner has one job queued at a time, and a full channel makes them wait, not fail.
const BACKGROUND_ROOM: usize = 32;

/// WAL length (4 KiB pages) past which the writer completes a checkpoint itself.
const WAL_CATCH_UP_PAGES: i64 = 8_192;

#[expect(
    clippy::large_enum_variant,
    reason = "requests are nearly every job: boxing them would cost an allocation each"
)]
pub(super) enum Job {
    Request(RequestJob),
    /// Run in a savepoint inside the next group commit: small writes (a cursor, refusals).
    Sink(SinkJob),
    /// Transactions of their own, one after each group commit: a sink's load into the
    /// embedded tables, in chunks, so that requests never wait behind more than one chunk.
    SinkTransactions(ChunkedJob),
}

/// A load in chunks, each its own transaction; the reply is the last chunk's result.
pub(super) struct ChunkedJob {
    pub(super) chunks: VecDeque<SinkWrite>,
    pub(super) reply: oneshot::Sender<Result<bool, SpoolError>>,
}

pub(super) struct RequestJob {
    pub(super) request: RawRequest,
    pub(super) stored_as: StoredAs,
    pub(super) reply: oneshot::Sender<Result<Receipt, SpoolError>>,
}

/// A sink's bookkeeping, written in the same commit as the requests around it.
pub(super) struct SinkJob {
    /// Taken when it runs.
    pub(super) write: Option<SinkWrite>,
    pub(super) reply: oneshot::Sender<Result<bool, SpoolError>>,
}

/// What a job came to, once its transaction commits.
enum Written {
    Stored(i64),
    Sink(Result<bool, String>),
}

impl Job {
    /// Answers that nothing of it was stored.
    fn fail(self) {
        let _ = match self {
            Job::Request(job) => job.reply.send(Err(SpoolError::WriteFailed)).is_ok(),
            Job::Sink(job) => job.reply.send(Err(SpoolError::WriteFailed)).is_ok(),
            Job::SinkTransactions(job) => job.reply.send(Err(SpoolError::WriteFailed)).is_ok(),
        };
    }
}

/// Joins the writer once every [`super::Spool`] handle is dropped and the queue is drained.
#[derive(Debug)]
pub struct WriterHandle {
    thread: JoinHandle<()>,
}

impl WriterHandle {
    /// Blocks until the writer has committed everything queued and exited.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the spool writer thread panicked");
        }
    }
}

pub(super) fn start(
    config: &StoreConfig,
    shared: Arc<Shared>,
) -> Result<(SyncSender<Job>, WriterHandle), SpoolError> {
    let path = config.db_path();
    let mut conn = open_connection(&path, config.busy_timeout)
        .map_err(|source| SpoolError::Open { path: path.display().to_string(), source })?;
    schema::migrate(&mut conn)
        .map_err(|source| SpoolError::Migrate { path: path.display().to_string(), source })?;
    // A store too damaged to compare is still opened: its requests may still be appended, and
    // the check at start reports the damage.
    let gap = super::integrity::guard_sequence(&conn).unwrap_or_else(|err| {
        tracing::error!(
            error = %err,
            "cannot compare the store's newest request with the sinks' cursors; the store may \
             be damaged: run `hookhouse check`"
        );
        None
    });
    shared.health.lock().unwrap_or_else(|e| e.into_inner()).set_seq_gap(gap);
    schema::person_index(&conn, config.person_index)
        .and_then(|()| schema::answer_index(&conn, config.answer_index))
        .and_then(|()| schema::campaign_index(&conn, config.campaign_index))
        .map_err(|source| SpoolError::Open { path: path.display().to_string(), source })?;

    let checkpointer = Checkpointer::start(&path)?;

    // Requests alone count against `max_queue_depth` (`Spool::send`); the channel also has room
    // for the background jobs (sinks' writes, the pruner's steps, views), so a pruning step
    // queued while the store is locked never turns a request away.
    let (queue, jobs) = sync_channel(config.max_queue_depth.get() + BACKGROUND_ROOM);
    let max_batch = config.max_batch.get();
    let thread = std::thread::Builder::new()
        .name("spool-writer".to_owned())
        .spawn(move || {
            run(conn, jobs, Arc::clone(&shared), max_batch);
            // Nothing will be written any more: readiness must say so.
            shared.writable.store(false, Ordering::Relaxed);
            checkpointer.stop();
        })
        .map_err(|source| SpoolError::Thread { name: "spool-writer", source })?;
    Ok((queue, WriterHandle { thread }))
}

fn open_connection(path: &std::path::Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    schema::prepare_new(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // WAL is what lets readers (users' queries, sinks) run while the writer commits.
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the store could not switch to WAL mode (got `{mode}`)"
        )));
    }
    // FULL: the WAL is fsynced at every commit, so a 2xx survives a power loss, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(busy_timeout)?;
    // The checkpointer thread copies WAL frames into the database in the background. Under
    // sustained load it never sees the whole WAL copied, and only then can the WAL be reused;
    // so once the WAL passes 32 MiB the writer finishes the (by then short) remainder itself.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CATCH_UP_PAGES)?;
    // Keep a WAL that was once large from holding its disk space after it is reset.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Drains the queue in batches until every sender is gone and every chunked load is done.
fn run(mut conn: Connection, jobs: Receiver<Job>, shared: Arc<Shared>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    // Sinks' loads, one chunk run after each group commit.
    let mut loads: VecDeque<ChunkedJob> = VecDeque::new();
    let mut senders_gone = false;
    // A full disk fails every batch, hundreds a second: one line a second says so.
    let failures = LogLimit::per_second();
    loop {
        let first = if !loads.is_empty() || senders_gone {
            // A load is waiting: take what is queued without blocking, then run its next chunk.
            match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    senders_gone = true;
                    None
                }
            }
        } else if shared.writable.load(Ordering::Relaxed) {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match jobs.recv_timeout(PROBE_INTERVAL) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    probe(&mut conn, &shared);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if let Some(first) = first {
            batch.push(first);
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let taken = batch.iter().filter(|job| matches!(job, Job::Request(_))).count();
            shared.queued.fetch_sub(taken, Ordering::Relaxed);
            let mut requests = Vec::with_capacity(batch.len());
            for job in batch.drain(..) {
                match job {
                    Job::SinkTransactions(load) => loads.push_back(load),
                    other => requests.push(other),
                }
            }
            batch = requests;
            if !batch.is_empty() {
                commit_batch(&mut conn, &mut batch, &shared, &failures);
            }
        }
        if let Some(load) = loads.front_mut() {
            let chunk = load.chunks.pop_front();
            let result = own_transaction(&mut conn, chunk);
            if (result.is_err() || load.chunks.is_empty())
                && let Some(load) = loads.pop_front()
            {
                let _ = load.reply.send(result.map_err(SpoolError::SinkWrite));
            }
        } else if senders_gone {
            return;
        }
    }
}

/// Runs a sink's write in a transaction of its own. It does not wait for an fsync: what it
/// writes is made again from the request log if a crash loses it (its cursor is written after
/// it), and the next request commit's fsync makes it durable with that commit, since WAL frames
/// reach the disk in order.
fn own_transaction(conn: &mut Connection, write: Option<SinkWrite>) -> Result<bool, String> {
    let Some(write) = write else { return Err("the write ran already".to_owned()) };
    let run = |conn: &mut Connection| -> rusqlite::Result<Result<bool, String>> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let applied = write(&tx)?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(applied)
        })();
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(result.map_err(|err| err.to_string()))
    };
    run(conn).unwrap_or_else(|err| Err(err.to_string()))
}

/// Writes one batch in one transaction and answers every request in it.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    shared: &Shared,
    failures: &LogLimit<()>,
) {
    match write_batch(conn, batch) {
        Ok(written) => {
            shared.writable.store(true, Ordering::Relaxed);
            if let Some(seq) = written.iter().rev().find_map(|written| match written {
                Written::Stored(seq) => Some(*seq),
                Written::Sink(_) => None,
            }) {
                shared.committed.send_replace(seq);
            }
            for (job, written) in batch.drain(..).zip(written) {
                // The client may have gone; its request is stored all the same.
                match (job, written) {
                    (Job::Request(job), Written::Stored(seq)) => {
                        let _ = job.reply.send(Ok(Receipt { seq }));
                    }
                    (Job::Sink(job), Written::Sink(result)) => {
                        let _ = job.reply.send(result.map_err(SpoolError::SinkWrite));
                    }
                    // `write_batch` gives one result per job, in order: not reached.
                    (job, _) => job.fail(),
                }
            }
        }
        Err(err) => {
            shared.writable.store(false, Ordering::Relaxed);
            if let Some(left_out) = failures.admit(()) {
                tracing::error!(
                    error = %err,
                    requests = batch.len(),
                    failed_batches_not_logged_since_last = left_out,
                    "failed to commit to the store; answering 503 so the senders retry"
                );
            }
            batch.drain(..).for_each(Job::fail);
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &mut [Job]) -> rusqlite::Result<Vec<Written>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut seqs = Vec::with_capacity(batch.len());
    {
        let mut insert_raw = tx.prepare_cached(
            "INSERT INTO raw_requests (received_at, source, kind, journey, method, path, query, \
             headers, remote_addr, peer_addr, content_type, body, body_sha256, pseudonymised, \
             body_hidden, drop_body_digest, answer_status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        for job in batch.iter_mut() {
            let job = match job {
                Job::Request(job) => job,
                Job::Sink(job) => {
                    seqs.push(Written::Sink(sink_write(&tx, job.write.take())?));
                    continue;
                }
                // Taken out of the batch before it is written.
                Job::SinkTransactions(_) => continue,
            };
            let request = &job.request;
            let stored_as = &job.stored_as;
            insert_raw.execute(params![
                request.received_at_text(),
                request.source,
                request.kind.as_str(),
                request.kind.journey(),
                request.method,
                request.path,
                request.query,
                stored_as.headers_json.as_ref().unwrap_or(&request.headers_json),
                request.remote_addr,
                request.peer_addr,
                request.content_type,
                &request.body[..],
                request.body_sha256,
                stored_as.pseudonymised,
                stored_as.body_hidden,
                stored_as.dropped_body_digest,
                stored_as.answer_status,
            ])?;
            seqs.push(Written::Stored(tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(seqs)
}

/// Runs a sink's write inside a savepoint, so that its failure rolls back only itself and the
/// requests committed with it are not affected.
fn sink_write(
    tx: &rusqlite::Transaction<'_>,
    write: Option<SinkWrite>,
) -> rusqlite::Result<Result<bool, String>> {
    let Some(write) = write else { return Ok(Err("the write ran already".to_owned())) };
    tx.execute_batch("SAVEPOINT sink_write")?;
    match write(tx) {
        Ok(applied) => {
            tx.execute_batch("RELEASE sink_write")?;
            Ok(Ok(applied))
        }
        Err(err) => {
            tx.execute_batch("ROLLBACK TO sink_write; RELEASE sink_write")?;
            Ok(Err(err.to_string()))
        }
    }
}

/// Checks that a write transaction can be opened again after a failure.
/// Commits a one-row write: taking the lock alone succeeds on a full disk, a commit does not.
fn probe(conn: &mut Connection, shared: &Shared) {
    let write = |conn: &mut Connection| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO spool_probe (id, probed_at) VALUES (1, ?1)",
            [crate::request::format_time(&chrono::Utc::now())],
        )?;
        tx.commit()
    };
    let writable = write(conn).is_ok();
    if writable {
        tracing::info!("the store accepts writes again");
        shared.writable.store(true, Ordering::Relaxed);
    }
}
