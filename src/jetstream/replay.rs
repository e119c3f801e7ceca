//! `hookhouse replay` with a JetStream log: reads a range of the stream on an ordered
//! consumer of its own (the loaders' consumers are untouched) and loads it again into every
//! configured sink, through the current pipeline. PostgreSQL merges a batch it has seen
//! (rows updated, rows no longer made deleted); the local copy replaces each request's rows.
//! Safe while receivers and loaders run: a loader and a replay writing the same request
//! both write what the same pipeline makes of it.

use std::sync::Arc;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::{Stream, record};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::request::StoredRequest;
use crate::sinks::postgres::PostgresSink;
use crate::sinks::sqlite::stream_copy::StreamCopySink;
use crate::sinks::{Batch, Sink, SinkError, source_keys};
use crate::spool::Spool;

/// Requests normalised and loaded at a time.
const BATCH: usize = 1_000;

/// Which requests of the stream.
#[derive(Debug, Clone, Copy)]
pub enum Range {
    /// Sequences from, to (inclusive).
    Seqs(u64, u64),
    /// Received at or after.
    Since(DateTime<Utc>),
}

#[derive(Debug, Default)]
pub struct ReplayReport {
    pub requests: u64,
    pub events: u64,
    pub failures: u64,
}

/// Replays `range` into the configured sinks; `progress(done, total)` after each batch.
pub async fn replay(
    config: &Config,
    range: Range,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<ReplayReport> {
    let stream = Stream::open(config).await?;
    let mut handle = stream.context.get_stream(&stream.config.stream).await?;
    let state = handle.info().await?.state.clone();
    let (first, last) = match range {
        Range::Seqs(from, to) => (from.max(state.first_sequence), to.min(state.last_sequence)),
        Range::Since(_) => (state.first_sequence, state.last_sequence),
    };
    let mut sinks = open_sinks(config, &stream).await?;
    let mut report = ReplayReport::default();
    if first > last || state.messages == 0 {
        return Ok(report);
    }
    let consumer = handle
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: first },
            description: Some("hookhouse replay".into()),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let keys = source_keys(config);
    let total = last - first + 1;
    let mut pending: Vec<StoredRequest> = Vec::with_capacity(BATCH);
    let mut done = 0;
    while let Some(message) = messages.next().await {
        let message = message?;
        let seq = message.info().map_err(|err| anyhow::anyhow!("{err}"))?.stream_sequence;
        if seq > last {
            break;
        }
        done = seq - first + 1;
        match record::decode(seq, &message.payload) {
            Ok(stored) => {
                let selected = match range {
                    Range::Since(since) => stored.request.received_at >= since,
                    Range::Seqs(..) => true,
                };
                if selected {
                    pending.push(stored);
                }
            }
            Err(err) => tracing::warn!(seq, error = %err, "not a request record; skipped"),
        }
        if pending.len() >= BATCH || seq == last {
            load(&mut sinks, &mut pending, &keys, &mut report).await?;
            progress(done, total);
        }
        if seq == last {
            break;
        }
    }
    load(&mut sinks, &mut pending, &keys, &mut report).await?;
    progress(done, total);
    Ok(report)
}

/// The configured sinks, connected. A sink is one of two kinds, so they are held apart.
struct Sinks {
    postgres: Option<PostgresSink>,
    copy: Option<(StreamCopySink, crate::spool::WriterHandle)>,
}

async fn open_sinks(config: &Config, stream: &Stream) -> anyhow::Result<Sinks> {
    let mut sinks = Sinks { postgres: None, copy: None };
    if let Some(pg) = &config.sinks.postgres {
        let mut sink = PostgresSink::new(pg.clone());
        sink.connect(&stream.id).await.map_err(sink_error)?;
        sinks.postgres = Some(sink);
    }
    if let Some(dir) = &config.sinks.sqlite_copy {
        let store = config.store_in(dir);
        let (spool, writer) = Spool::open(&store)?;
        let counters = Metrics::new(&config.sources).row_counters();
        let mut sink = StreamCopySink::replaying(spool, counters);
        sink.connect(&stream.id).await.map_err(sink_error)?;
        sinks.copy = Some((sink, writer));
    }
    if sinks.postgres.is_none() && sinks.copy.is_none() {
        anyhow::bail!("no sink to replay into: configure `[sinks.postgres]` or `[sinks.sqlite]`");
    }
    Ok(sinks)
}

fn sink_error(err: SinkError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

async fn load(
    sinks: &mut Sinks,
    pending: &mut Vec<StoredRequest>,
    keys: &std::collections::HashMap<String, crate::pipeline::PseudonymKey>,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let requests = std::mem::take(pending);
    let after = requests[0].seq - 1;
    let batch = Arc::new(Batch::build(after, &requests, keys)?);
    report.requests += requests.len() as u64;
    report.events += batch.events.rows.len() as u64;
    report.failures += batch.failures.rows.len() as u64;
    if let Some(sink) = &mut sinks.postgres {
        sink.load(Arc::clone(&batch)).await.map_err(sink_error)?;
    }
    if let Some((sink, _)) = &mut sinks.copy {
        sink.load(batch).await.map_err(sink_error)?;
    }
    Ok(())
}
