//! The loop every sink runs on: read the requests after its cursor, make their rows, load
//! them, acknowledge; with read-ahead, linger, back-off, a timeout on every attempt, metrics,
//! lag reports and a graceful stop.
//!
//! Each sink runs on a thread and runtime of its own, so that under heavy ingestion it is
//! scheduled by the kernel beside the server rather than queued behind request tasks; its
//! lag gauges are kept by a task of their own, so they keep reporting while a load hangs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batch::Batch;
use super::{Sink, SinkError};
use crate::metrics::{Metrics, SinkMetrics};
use crate::pipeline::PseudonymKey;
use crate::spool::{Acknowledgement, Cursor, Spool, SpoolReader};
use crate::telemetry::SenderText;

/// How a sink is paced.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// The most requests in one batch.
    pub max_requests: usize,
    /// Fewer requests once their bodies reach this many bytes (at least one).
    pub max_bytes: usize,
    /// After a batch smaller than `max_requests`, how long requests may gather before the
    /// next: fewer, fuller transactions for at most this much more lag.
    pub linger: Duration,
    /// The longest one attempt (connecting, or loading one batch) may take before it counts
    /// as a failure and the connection is dropped.
    pub attempt_timeout: Duration,
}

/// Back-off after a retryable failure: doubles from the first step to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// After a permanent failure (it needs an operator): try again this rarely.
const PERMANENT_RETRY: Duration = Duration::from_secs(60);
/// Once caught up, the sink wakes at every commit, and at least this often (a replay run by
/// another process moves a cursor without a commit here).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often the lag gauges of `/metrics` are refreshed, and a hanging attempt noticed.
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// How long a stopped sink goes on loading what is in the log.
const DRAIN: Duration = Duration::from_secs(5);
/// How often the sink logs its progress and lag.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Blocking threads of a sink's runtime: the batch being read ahead, the cursor, the lag.
const BLOCKING_THREADS: usize = 3;

/// A sink loop's back-off: the pause after each failure (doubling from [`FIRST_RETRY`] to
/// [`MAX_RETRY`] for a retryable one, [`PERMANENT_RETRY`] for one that needs an operator) and
/// the line that says it recovered. Shared by this runner and the JetStream loaders.
#[derive(Debug)]
pub(crate) struct Backoff {
    retry: Duration,
    failing: bool,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { retry: FIRST_RETRY, failing: false }
    }

    /// A step loaded something: the next failure starts from the first step again.
    pub(crate) fn succeeded(&mut self, sink: &str) {
        if self.failing {
            tracing::info!(sink, "sink recovered; catching up");
            self.failing = false;
        }
        self.retry = FIRST_RETRY;
    }

    /// The pause after `err`, logged with what waits meanwhile (`waiting`). A target's message
    /// may quote a value a sender chose: it is escaped.
    pub(crate) fn failed(&mut self, sink: &str, err: &SinkError, waiting: &str) -> Duration {
        let message = SenderText(&err.to_string()).to_string();
        let retry = self.next_retry();
        let pause = match err {
            SinkError::Retryable(_) => retry,
            SinkError::Permanent(_) => PERMANENT_RETRY,
        };
        if let SinkError::Permanent(_) = err {
            tracing::error!(sink, error = %message, retry_in_secs = pause.as_secs(),
                "sink failed and needs attention; {waiting}");
        } else {
            tracing::warn!(sink, error = %message, retry_in_ms = pause.as_millis() as u64,
                "sink failed; {waiting}");
        }
        self.failing = true;
        pause
    }

    /// The retryable pause to use now, doubling it for the next failure.
    pub(crate) fn next_retry(&mut self) -> Duration {
        let now = self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
        now
    }
}

/// Sleeps `pause`, or less if `stop` is cancelled meanwhile.
pub(crate) async fn pause_unless_stopped(pause: Duration, stop: &CancellationToken) {
    if !pause.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// What the runners share.
pub(super) struct Context<'a> {
    pub(super) spool: &'a Spool,
    pub(super) metrics: &'a Metrics,
    pub(super) keys: &'a Arc<HashMap<String, PseudonymKey>>,
    pub(super) stop: &'a CancellationToken,
    pub(super) tracker: &'a TaskTracker,
}

/// Starts `sink` on a thread of its own, tracked by the context's tracker.
pub(super) fn start<S: Sink>(sink: S, context: &Context<'_>) -> std::io::Result<()> {
    // Its blocking work (reads of the log, normalising a batch) is serial: a few threads do,
    // and every extra one would keep an allocator heap of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?;
    let runner = Runner {
        settings: sink.settings(),
        metrics: context.metrics.sink(sink.name()),
        sink,
        spool: context.spool.clone(),
        keys: Arc::clone(context.keys),
        progress: Arc::new(Progress::default()),
    };
    let stop = context.stop.clone();
    // A thread of its own rather than the blocking pool: a runtime being dropped waits for
    // its blocking tasks, and a sink ends only when told to. The tracker's token counts the
    // thread as a task until it ends.
    let running = context.tracker.token();
    std::thread::Builder::new().name(format!("sink-{}", runner.sink.name())).spawn(move || {
        runtime.block_on(runner.run(stop));
        drop(running);
    })?;
    Ok(())
}

struct Runner<S> {
    sink: S,
    settings: RunnerSettings,
    spool: Spool,
    keys: Arc<HashMap<String, PseudonymKey>>,
    metrics: SinkMetrics,
    progress: Arc<Progress>,
}

/// What the loop tells its lag task.
#[derive(Debug, Default)]
struct Progress {
    /// The cursor position after the last acknowledged batch.
    position: AtomicI64,
    /// Milliseconds since the runner started at which the current attempt began; 0 for none.
    attempt_started_ms: AtomicU64,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing new in the log.
    CaughtUp,
    Loaded {
        /// The batch was as large as the settings allow (requests or bytes): more waits.
        full: bool,
        events: usize,
        refused: usize,
    },
    /// A replay moved the cursor while the batch was loading; it is read again.
    Rewound,
}

/// A batch being read while the previous one loads.
struct Ahead {
    /// The cursor the read assumes: where the previous batch leaves it.
    from: Cursor,
    read: tokio::task::JoinHandle<Result<Option<Batch>, SinkError>>,
}

impl<S: Sink> Runner<S> {
    async fn run(mut self, stop: CancellationToken) {
        let name = self.sink.name();
        if let Err(err) = self.spool.register_sink(name).await {
            tracing::error!(sink = name, error = %err, "the sink cannot start: its cursor cannot be created");
            return;
        }
        let reader = match self.open_reader().await {
            Ok(reader) => Arc::new(std::sync::Mutex::new(reader)),
            Err(err) => {
                tracing::error!(sink = name, error = %err, "the sink cannot read the store");
                return;
            }
        };
        let lag = tokio::spawn(report_lag(
            name,
            self.spool.clone(),
            self.metrics.clone(),
            Arc::clone(&self.progress),
            self.settings.attempt_timeout,
            stop.clone(),
        ));
        let started = Instant::now();
        let mut commits = self.spool.subscribe();
        let mut backoff = Backoff::new();
        let mut ahead: Option<Ahead> = None;
        // Once stopped, the sink loads what is in the log for a few seconds at most, so a
        // graceful stop leaves it caught up.
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if draining.is_none() && stop.is_cancelled() {
                draining = Some(tokio::time::Instant::now() + DRAIN);
            }
            // Stopping drops an attempt in flight: safe, the cursor moves only after a load,
            // and a load done twice changes nothing.
            let step_started = Instant::now();
            let step = match draining {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.step(&reader, &mut ahead, started))
                        .await
                    {
                        Ok(step) => step,
                        Err(_) => break,
                    }
                }
                None => tokio::select! {
                    step = self.step(&reader, &mut ahead, started) => step,
                    () = stop.cancelled() => continue,
                },
            };
            self.progress.attempt_started_ms.store(0, Ordering::Relaxed);
            if draining.is_some() && !matches!(step, Ok(Step::Loaded { .. } | Step::Rewound)) {
                if let Err(err) = &step {
                    tracing::warn!(sink = name, error = %SenderText(&err.to_string()),
                        "sink stopped before catching up; it loads from its cursor at next start");
                }
                break;
            }
            let pause = match step {
                Ok(Step::Loaded { full, events, refused }) => {
                    backoff.succeeded(name);
                    if refused > 0 {
                        tracing::warn!(sink = name, refused, "rows refused; kept in failed_events");
                    }
                    self.metrics.loaded.inc_by(events as u64);
                    self.metrics.refused.inc_by(refused as u64);
                    // The linger counts from the read: a long load has let requests gather
                    // already, and waiting the whole linger after it would only add lag.
                    if full || draining.is_some() {
                        Duration::ZERO
                    } else {
                        self.settings.linger.saturating_sub(step_started.elapsed())
                    }
                }
                Ok(Step::Rewound) => Duration::ZERO,
                Ok(Step::CaughtUp) => {
                    // Woken by the next commit, or after a while regardless; after a commit,
                    // requests gather for the linger first, so the first after a quiet spell
                    // does not make a batch (a lake's file) of its own.
                    tokio::select! {
                        woken = tokio::time::timeout(IDLE_POLL, commits.changed()) => {
                            if woken.is_ok() { self.settings.linger } else { Duration::ZERO }
                        }
                        () = stop.cancelled() => break,
                    }
                }
                Err(err) => {
                    ahead = None;
                    self.sink.disconnect();
                    self.metrics.failures.inc();
                    let pause =
                        backoff.failed(name, &err, "events stay in the store until it loads them");
                    if let Err(err) = self.spool.record_sink_error(name, err.to_string()).await {
                        tracing::debug!(error = %err, "could not record the sink's error");
                    }
                    pause
                }
            };
            pause_unless_stopped(pause, &stop).await;
        }
        lag.abort();
    }

    async fn open_reader(&self) -> Result<SpoolReader, SinkError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || spool.reader())
            .await
            .map_err(|_| SinkError::Retryable("the store reader stopped".to_owned()))?
            .map_err(|err| SinkError::Retryable(err.to_string()))
    }

    /// Connects if needed, then loads the next batch, each attempt within its timeout.
    async fn step(
        &mut self,
        reader: &Arc<std::sync::Mutex<SpoolReader>>,
        ahead: &mut Option<Ahead>,
        started: Instant,
    ) -> Result<Step, SinkError> {
        let timeout = self.settings.attempt_timeout;
        let timed_out = || {
            SinkError::Retryable(format!(
                "the attempt did not finish within {} s; the connection is dropped",
                timeout.as_secs()
            ))
        };
        let mark = || started.elapsed().as_millis().max(1) as u64;
        if self.sink.needs_connect() {
            self.progress.attempt_started_ms.store(mark(), Ordering::Relaxed);
            let store_id = with_reader(reader, |reader| reader.store_id()).await?;
            tokio::time::timeout(timeout, self.sink.connect(&store_id))
                .await
                .map_err(|_| timed_out())??;
        }
        let cursor = with_reader(reader, {
            let name = self.sink.name();
            move |reader| reader.cursor(name)
        })
        .await?
        .ok_or_else(|| SinkError::Retryable("the sink's cursor is missing".to_owned()))?;
        self.progress.position.store(cursor.position, Ordering::Relaxed);
        let batch = match ahead.take() {
            Some(next) if next.from == cursor => {
                next.read.await.map_err(|_| SinkError::Retryable("read failed".to_owned()))??
            }
            _ => self.read(reader, cursor.position).await?,
        };
        let Some(batch) = batch else { return Ok(Step::CaughtUp) };
        // A full batch means more is waiting: read it while this one loads.
        let full = batch.request_count() >= self.settings.max_requests
            || batch.body_bytes >= self.settings.max_bytes;
        if full {
            let from = Cursor { position: batch.through, generation: cursor.generation };
            let read = self.spawn_read(reader, from.position);
            *ahead = Some(Ahead { from, read });
        }
        self.progress.attempt_started_ms.store(mark(), Ordering::Relaxed);
        let events = batch.event_count();
        let ack = Acknowledgement {
            sink: self.sink.name(),
            from: cursor,
            after: batch.after,
            through: batch.through,
            refusals: Vec::new(),
        };
        let through = batch.through;
        let (refused, moved) = tokio::time::timeout(
            timeout,
            self.sink.load_and_acknowledge(Arc::new(batch), ack, &self.spool),
        )
        .await
        .map_err(|_| timed_out())??;
        let step = Step::Loaded { full, events, refused };
        if !moved {
            *ahead = None;
            return Ok(Step::Rewound);
        }
        self.progress.position.store(through, Ordering::Relaxed);
        Ok(step)
    }

    async fn read(
        &self,
        reader: &Arc<std::sync::Mutex<SpoolReader>>,
        after: i64,
    ) -> Result<Option<Batch>, SinkError> {
        self.spawn_read(reader, after)
            .await
            .map_err(|_| SinkError::Retryable("the store reader stopped".to_owned()))?
    }

    /// Reads the requests after `after` and makes their rows, on a blocking thread: SQLite
    /// blocks, and normalising thousands of requests is CPU work.
    fn spawn_read(
        &self,
        reader: &Arc<std::sync::Mutex<SpoolReader>>,
        after: i64,
    ) -> tokio::task::JoinHandle<Result<Option<Batch>, SinkError>> {
        let reader = Arc::clone(reader);
        let keys = Arc::clone(&self.keys);
        let (max_requests, max_bytes) = (self.settings.max_requests, self.settings.max_bytes);
        tokio::task::spawn_blocking(move || {
            let requests = {
                let mut reader = reader.lock().unwrap_or_else(|e| e.into_inner());
                reader
                    .read_after(after, max_requests, max_bytes)
                    .map_err(|err| SinkError::Retryable(format!("reading the store: {err}")))?
            };
            if requests.is_empty() {
                return Ok(None);
            }
            Batch::build(after, &requests, &keys)
                .map(Some)
                .map_err(|err| SinkError::Permanent(err.to_string()))
        })
    }
}

/// Runs `work` on the reader on a blocking thread.
async fn with_reader<T: Send + 'static>(
    reader: &Arc<std::sync::Mutex<SpoolReader>>,
    work: impl FnOnce(&SpoolReader) -> Result<T, crate::spool::SpoolError> + Send + 'static,
) -> Result<T, SinkError> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || {
        let reader = reader.lock().unwrap_or_else(|e| e.into_inner());
        work(&reader)
    })
    .await
    .map_err(|_| SinkError::Retryable("the store reader stopped".to_owned()))?
    .map_err(|err| SinkError::Retryable(format!("reading the store: {err}")))
}

/// Keeps the lag gauges and the periodic report going on a connection of its own, whatever
/// the loop is doing; warns once an attempt runs past a tenth of its timeout.
async fn report_lag(
    name: &'static str,
    spool: Spool,
    metrics: SinkMetrics,
    progress: Arc<Progress>,
    attempt_timeout: Duration,
    stop: CancellationToken,
) {
    let reader = match tokio::task::spawn_blocking(move || spool.reader()).await {
        Ok(Ok(reader)) => Arc::new(std::sync::Mutex::new(reader)),
        _ => return,
    };
    let started = Instant::now();
    let mut ticks = tokio::time::interval(GAUGE_EVERY);
    let mut report = ProgressReport::new(&metrics);
    let mut warned_attempt = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let position = progress.position.load(Ordering::Relaxed);
        let behind =
            with_reader(&reader, move |reader| reader.behind(position, chrono::Utc::now())).await;
        let Ok((requests, seconds)) = behind else { continue };
        metrics.lag_requests.set(i64::try_from(requests).unwrap_or(i64::MAX));
        metrics.lag_seconds.set(seconds);
        let attempt = progress.attempt_started_ms.load(Ordering::Relaxed);
        if attempt != 0 && attempt != warned_attempt {
            let running = started.elapsed().saturating_sub(Duration::from_millis(attempt));
            if running >= attempt_timeout / 10 {
                warned_attempt = attempt;
                tracing::warn!(
                    sink = name,
                    running_secs = running.as_secs(),
                    timeout_secs = attempt_timeout.as_secs(),
                    lag_requests = requests,
                    lag_seconds = seconds,
                    "a load is taking long"
                );
            }
        }
        report.tick(name, &metrics, requests, seconds);
    }
}

/// The line a sink logs every [`REPORT_EVERY`]: its rate and lag. An idle sink says nothing.
pub(crate) struct ProgressReport {
    since: Instant,
    loaded_then: u64,
}

impl ProgressReport {
    pub(crate) fn new(metrics: &SinkMetrics) -> Self {
        ProgressReport { since: Instant::now(), loaded_then: metrics.loaded.get() }
    }

    /// Called every gauge refresh with the lag just measured; logs when a report is due.
    pub(crate) fn tick(&mut self, name: &str, metrics: &SinkMetrics, requests: u64, seconds: f64) {
        if self.since.elapsed() < REPORT_EVERY {
            return;
        }
        let loaded = metrics.loaded.get();
        let rate = (loaded - self.loaded_then) as f64 / self.since.elapsed().as_secs_f64();
        if loaded > self.loaded_then || requests > 0 {
            tracing::info!(
                sink = name,
                events_per_sec = rate.round(),
                lag_requests = requests,
                lag_seconds = seconds,
                "sink progress"
            );
        }
        self.loaded_then = loaded;
        self.since = Instant::now();
    }
}
