//! Loaders: each configured sink as one durable pull consumer of the stream, shared by every
//! loader process (competing consumers). A loader pulls a batch, makes its rows with the same
//! pipeline as the SQLite log's sinks, loads it idempotently, and acknowledges it only after
//! the sink has committed; a failed load is given back (nak) to be redelivered after the
//! back-off. Redeliveries arrive late and out of order, possibly to another loader: loading a
//! request again changes nothing, so at-least-once delivery gives exactly-once rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::{Message, stream};
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Stream, record};
use crate::config::Config;
use crate::metrics::{Metrics, SinkMetrics};
use crate::pipeline::PseudonymKey;
use crate::request::StoredRequest;
use crate::sinks::runner::{Backoff, ProgressReport, pause_unless_stopped};
use crate::sinks::sqlite::stream_copy::StreamCopySink;
use crate::sinks::{Batch, RunnerSettings, Sink, SinkError, postgres, source_keys};
use crate::spool::Spool;
use crate::telemetry::SenderText;

/// Pulls wait at least this long for a batch to fill once fewer are waiting.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// How many requests a consumer lets its loaders hold unacknowledged, across all of them;
/// JetStream's default (1,000) would stall two loaders pulling batches of 5,000.
const MAX_ACK_PENDING: i64 = 100_000;
/// How often the lag gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// The durable consumer name of a sink.
pub fn consumer_name(sink: &str) -> String {
    format!("hookhouse-{sink}")
}

/// Starts a loader for every configured sink; returns how many. They stop when `stop` is
/// cancelled, after the batch in hand.
pub fn start(
    config: &Config,
    stream: &Stream,
    metrics: &Metrics,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<usize> {
    let keys = Arc::new(source_keys(config));
    let mut started = 0;
    if let Some(pg) = &config.sinks.postgres {
        let sink = postgres::PostgresSink::new(pg.clone());
        let loader = Loader::new(sink, consumer_name("postgres"), stream, metrics, &keys);
        tracker.spawn(loader.run(stop.clone()));
        started += 1;
    }
    if let Some(dir) = &config.sinks.sqlite_copy {
        let store = config.store_in(dir);
        let (spool, writer) = Spool::open(&store).map_err(|err| {
            anyhow::anyhow!("failed to open the stream's local copy in `{}`: {err}", dir.display())
        })?;
        let sink = StreamCopySink::new(spool, metrics.row_counters());
        let consumer = sink.consumer_name().map_err(|err| anyhow::anyhow!("{err}"))?;
        let loader = Loader::new(sink, consumer, stream, metrics, &keys);
        let stop = stop.clone();
        tracker.spawn(async move {
            loader.run(stop).await;
            // The loader's spool handle is gone: the writer drains and ends.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        });
        started += 1;
    }
    Ok(started)
}

struct Loader<S> {
    sink: S,
    /// The durable consumer it pulls from.
    consumer: String,
    settings: RunnerSettings,
    stream: Stream,
    keys: Arc<HashMap<String, PseudonymKey>>,
    metrics: SinkMetrics,
    /// The mean size of the messages last pulled, which sizes the next pull.
    mean_message_bytes: usize,
}

/// What one step did.
enum Step {
    /// Nothing arrived while the pull waited.
    Idle,
    Loaded {
        events: usize,
        refused: usize,
    },
}

/// A failed step, with the messages to give back.
struct Failed {
    error: SinkError,
    messages: Vec<Message>,
    /// The stream failed (a pull during an election, say), not the sink: its connection
    /// is kept.
    in_stream: bool,
}

impl<S: Sink> Loader<S> {
    fn new(
        sink: S,
        consumer: String,
        stream: &Stream,
        metrics: &Metrics,
        keys: &Arc<HashMap<String, PseudonymKey>>,
    ) -> Self {
        Loader {
            settings: sink.settings(),
            metrics: metrics.sink(sink.name()),
            sink,
            consumer,
            stream: stream.clone(),
            keys: Arc::clone(keys),
            mean_message_bytes: 1,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let name = self.sink.name();
        let Some((mut consumer, stream)) = self.consumer_until_stopped(&stop).await else {
            return;
        };
        let lag = tokio::spawn(report_lag(
            name,
            consumer.clone(),
            stream,
            self.metrics.clone(),
            stop.clone(),
        ));
        tracing::info!(sink = name, consumer = %self.consumer, "loading from the stream");
        let mut backoff = Backoff::new();
        // After a failed pull the consumer is looked up (or made) again: one deleted by an
        // operator, or lost with a server's state, would otherwise fail every pull for ever
        // (async-nats issue 1584 is the streaming form of this).
        let mut renew = false;
        while !stop.is_cancelled() {
            if renew {
                match self.consumer().await {
                    Ok((renewed, _)) => {
                        consumer = renewed;
                        renew = false;
                    }
                    Err(err) => {
                        tracing::debug!(sink = name, error = %err, "consumer not renewed yet")
                    }
                }
            }
            let pause = match self.step(&consumer, &stop).await {
                Ok(Step::Idle) => Duration::ZERO,
                Ok(Step::Loaded { events, refused }) => {
                    backoff.succeeded(name);
                    if refused > 0 {
                        tracing::warn!(
                            sink = name,
                            refused,
                            "rows refused; kept in the sink's failed_events"
                        );
                    }
                    self.metrics.loaded.inc_by(events as u64);
                    self.metrics.refused.inc_by(refused as u64);
                    Duration::ZERO
                }
                Err(Failed { error, messages, in_stream }) => {
                    if in_stream {
                        renew = true;
                    } else {
                        self.sink.disconnect();
                    }
                    self.metrics.failures.inc();
                    let pause = if in_stream {
                        let pause = backoff.next_retry();
                        let message = SenderText(&error.to_string()).to_string();
                        tracing::warn!(sink = name, error = %message,
                            retry_in_ms = pause.as_millis() as u64, "cannot read the stream; retrying");
                        pause
                    } else {
                        backoff.failed(name, &error, "the requests stay in the stream")
                    };
                    // Given back to be redelivered after the pause, to this loader or another.
                    for message in &messages {
                        let _ = message.ack_with(AckKind::Nak(Some(pause))).await;
                    }
                    pause
                }
            };
            pause_unless_stopped(pause, &stop).await;
        }
        // Acks are buffered writes: send them before the loader goes.
        let _ = self.stream.client.flush().await;
        lag.abort();
    }

    /// The sink's consumer, created or brought in line with this configuration; retried
    /// until it exists or the loader is stopped.
    async fn consumer_until_stopped(
        &self,
        stop: &CancellationToken,
    ) -> Option<(PullConsumer, stream::Stream)> {
        let mut backoff = Backoff::new();
        loop {
            match self.consumer().await {
                Ok(consumer) => return Some(consumer),
                Err(err) => tracing::warn!(sink = self.sink.name(), error = %err,
                    "cannot set up the sink's consumer; retrying"),
            }
            pause_unless_stopped(backoff.next_retry(), stop).await;
            if stop.is_cancelled() {
                return None;
            }
        }
    }

    async fn consumer(&self) -> Result<(PullConsumer, stream::Stream), String> {
        let js = &self.stream.config;
        let stream: stream::Stream =
            self.stream.context.get_stream(&js.stream).await.map_err(|err| err.to_string())?;
        let name = self.consumer.clone();
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("hookhouse loaders of the `{}` sink", self.sink.name())),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: js.ack_wait,
            max_ack_pending: MAX_ACK_PENDING,
            num_replicas: js.replicas,
            ..Default::default()
        };
        match stream.get_consumer::<consumer::pull::Config>(&name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|err| err.to_string())?;
                let same = info.config.ack_wait == config.ack_wait
                    && info.config.max_ack_pending == config.max_ack_pending;
                if same {
                    return Ok((existing, stream));
                }
                let updated = stream.update_consumer(config).await.map_err(|e| e.to_string())?;
                Ok((updated, stream))
            }
            Err(_) => {
                let created = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
                Ok((created, stream))
            }
        }
    }

    /// Pulls a batch, makes its rows, loads them and acknowledges them.
    async fn step(
        &mut self,
        consumer: &PullConsumer,
        stop: &CancellationToken,
    ) -> Result<Step, Failed> {
        let fail =
            |error: SinkError, messages: Vec<Message>| Failed { error, messages, in_stream: false };
        let timeout = self.settings.attempt_timeout;
        if self.sink.needs_connect() {
            let connected = tokio::time::timeout(timeout, self.sink.connect(&self.stream.id)).await;
            match connected {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(fail(error, Vec::new())),
                Err(_) => return Err(fail(timed_out(timeout), Vec::new())),
            }
        }
        let messages = tokio::select! {
            pulled = self.pull(consumer) => pulled.map_err(|error| Failed {
                error,
                messages: Vec::new(),
                in_stream: true,
            })?,
            () = stop.cancelled() => return Ok(Step::Idle),
        };
        if messages.is_empty() {
            return Ok(Step::Idle);
        }
        let (requests, messages) = decode_all(messages).await;
        if requests.is_empty() {
            return Ok(Step::Idle);
        }
        let keys = Arc::clone(&self.keys);
        let built = tokio::task::spawn_blocking(move || {
            let after = requests.first().map_or(0, |stored| stored.seq - 1);
            Batch::build(after, &requests, &keys)
        })
        .await;
        let batch = match built {
            Ok(Ok(batch)) => batch,
            Ok(Err(missing_key)) => {
                return Err(fail(SinkError::Permanent(missing_key.to_string()), messages));
            }
            Err(_) => {
                let error = SinkError::Retryable("making the batch's rows failed".into());
                return Err(fail(error, messages));
            }
        };
        let events = batch.event_count();
        let load = self.sink.load(Arc::new(batch));
        let loaded = keep_alive(&messages, self.stream.config.ack_wait, timeout, load).await;
        let refusals = match loaded {
            Ok(Ok(refusals)) => refusals,
            Ok(Err(error)) => return Err(fail(error, messages)),
            Err(()) => return Err(fail(timed_out(timeout), messages)),
        };
        // Committed: acknowledge. A lost ack only means a redelivery, which changes nothing.
        for message in &messages {
            if let Err(err) = message.ack().await {
                tracing::debug!(error = %err, "an acknowledgement was not sent; it is redelivered");
            }
        }
        Ok(Step::Loaded { events, refused: refusals.len() })
    }

    /// The next batch: as many as are waiting up to the sink's batch size, or what arrived
    /// within its linger.
    ///
    /// Its bytes are bounded here, by asking for as many messages as the sink's byte limit
    /// holds at the last batch's mean size, and not by the pull's own `max_bytes`: measured on
    /// a 3-node cluster, after a stream leader was killed, every pull with `max_bytes` was
    /// answered `409 Batch Completed` without a message, and the loaders stalled.
    async fn pull(&mut self, consumer: &PullConsumer) -> Result<Vec<Message>, SinkError> {
        let fit = self.settings.max_bytes / self.mean_message_bytes.max(1);
        let pulled = consumer
            .batch()
            .max_messages(self.settings.max_requests.min(fit).max(1))
            .expires(self.settings.linger.max(MIN_WAIT))
            .messages()
            .await
            .map_err(|err| SinkError::Retryable(format!("pulling from the stream: {err}")))?;
        let mut pulled = std::pin::pin!(pulled);
        let mut messages = Vec::new();
        while let Some(message) = pulled.next().await {
            match message {
                Ok(message) => messages.push(message),
                // What was pulled is loaded; the error shows again on the next pull if it lasts.
                Err(err) if !messages.is_empty() => {
                    tracing::debug!(error = %err, "a pull ended early");
                    break;
                }
                Err(err) => {
                    return Err(SinkError::Retryable(format!("pulling from the stream: {err}")));
                }
            }
        }
        if !messages.is_empty() {
            let bytes: usize = messages.iter().map(|message| message.payload.len()).sum();
            self.mean_message_bytes = bytes / messages.len();
        }
        Ok(messages)
    }
}

fn timed_out(timeout: Duration) -> SinkError {
    SinkError::Retryable(format!(
        "the attempt did not finish within {} s; the connection is dropped",
        timeout.as_secs()
    ))
}

/// Runs `load` within `timeout`, telling the stream every third of `ack_wait` that the
/// messages are still being worked on, so a long load is not redelivered to another loader
/// meanwhile (a loader that dies stops telling, and its messages come back after `ack_wait`).
async fn keep_alive<T>(
    messages: &[Message],
    ack_wait: Duration,
    timeout: Duration,
    load: impl std::future::Future<Output = T>,
) -> Result<T, ()> {
    let mut load = std::pin::pin!(tokio::time::timeout(timeout, load));
    let mut ticks = tokio::time::interval(ack_wait / 3);
    ticks.tick().await;
    loop {
        tokio::select! {
            done = &mut load => return done.map_err(|_| ()),
            _ = ticks.tick() => {
                for message in messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}

/// The requests in `messages`, in stream order, and the messages that hold them. A message
/// that is not a request record (published by something else on the stream's subjects) is
/// logged and terminated: it stays in the stream, and is not redelivered for ever.
async fn decode_all(messages: Vec<Message>) -> (Vec<StoredRequest>, Vec<Message>) {
    let mut decoded: Vec<(StoredRequest, Message)> = Vec::with_capacity(messages.len());
    for message in messages {
        let seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(err) => {
                tracing::error!(error = %err, "a message without JetStream metadata; skipped");
                continue;
            }
        };
        match record::decode(seq, &message.payload) {
            Ok(stored) => decoded.push((stored, message)),
            Err(err) => {
                tracing::error!(seq, subject = %message.subject, error = %err,
                    "a message on the stream is not a request record; it stays in the stream, unloaded");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    decoded.sort_by_key(|(stored, _)| stored.seq);
    // A redelivery can bring a request twice in one pull: loaded once, acknowledged twice.
    let mut requests: Vec<StoredRequest> = Vec::with_capacity(decoded.len());
    let mut kept = Vec::with_capacity(decoded.len());
    for (stored, message) in decoded {
        if requests.last().is_none_or(|last| last.seq != stored.seq) {
            requests.push(stored);
        }
        kept.push(message);
    }
    (requests, kept)
}

/// Keeps the lag gauges of `/metrics` (requests not yet acknowledged, and how long ago the
/// oldest of them was received) and logs progress every few seconds.
async fn report_lag(
    name: &'static str,
    mut consumer: PullConsumer,
    stream: stream::Stream,
    metrics: SinkMetrics,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(GAUGE_EVERY);
    let mut report = ProgressReport::new(&metrics);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let Ok(info) = consumer.info().await else { continue };
        let behind = info.num_pending + info.num_ack_pending as u64;
        let oldest = info.ack_floor.stream_sequence + 1;
        let seconds = if behind == 0 { 0.0 } else { waited_seconds(&stream, oldest).await };
        metrics.lag_requests.set(i64::try_from(behind).unwrap_or(i64::MAX));
        metrics.lag_seconds.set(seconds);
        report.tick(name, &metrics, behind, seconds);
    }
}

/// How long ago the request at `seq` was received; 0 if it cannot be read.
pub(super) async fn waited_seconds(stream: &stream::Stream, seq: u64) -> f64 {
    let Ok(message) = stream.get_raw_message(seq).await else { return 0.0 };
    let Ok(stored) = record::decode(seq, &message.payload) else { return 0.0 };
    let waited = chrono::Utc::now() - stored.request.received_at;
    (waited.num_milliseconds().max(0) as f64) / 1000.0
}
