//! Prometheus metrics served at `GET /metrics`: requests accepted, events stored and requests
//! refused, by source (and reason). Metric names live here and nowhere else. Labels are only
//! configured source names and fixed reasons, never anything a sender chose (a path, a secret),
//! so the series stay few and the page never shows a secret.

use std::collections::HashMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::SourceConfig;

/// Requests stored and answered 2xx (the `_total` suffix is added by the encoder).
const REQUESTS_ACCEPTED: &str = "hookhouse_requests_accepted";
/// Events the stored requests carried, resends included.
const EVENTS_STORED: &str = "hookhouse_events_stored";
/// Parts of stored requests kept in `failed_events`.
const EVENTS_FAILED: &str = "hookhouse_events_failed";
/// Requests answered 4xx, nothing stored.
const REQUESTS_REFUSED: &str = "hookhouse_requests_refused";
/// Requests answered 503 because the store could not take them.
const REQUESTS_UNSTORED: &str = "hookhouse_requests_unstored";

/// Events a sink loaded (resends loaded again after a crash or replay included).
const SINK_LOADED: &str = "hookhouse_sink_loaded_events";
/// Rows a sink's warehouse refused, kept in `failed_events`.
const SINK_REFUSED: &str = "hookhouse_sink_refused_rows";
/// Failed load attempts (each is retried with back-off).
const SINK_FAILURES: &str = "hookhouse_sink_failures";
/// Age of the oldest request a sink has not loaded.
const SINK_LAG_SECONDS: &str = "hookhouse_sink_lag_seconds";
/// Requests a sink has not loaded yet.
const SINK_LAG_REQUESTS: &str = "hookhouse_sink_lag_requests";

/// The `source` label of a refusal that names no configured source (an unknown path or secret).
pub const UNKNOWN_SOURCE: &str = "unknown";
/// Journey calls answered with data, by source, journey and status.
const JOURNEY_ANSWERS: &str = "hookhouse_journey_answers";
/// How long answers took to make, from the store.
const JOURNEY_ANSWER_SECONDS: &str = "hookhouse_journey_answer_seconds";
/// Access tokens the token endpoints issued, by source.
const OAUTH_TOKENS_ISSUED: &str = "hookhouse_oauth_tokens_issued";
/// Free bytes on the store's filesystem as the disk guard last read them.
const STORE_FREE_DISK: &str = "hookhouse_store_free_disk_bytes";
/// `hookhouse.db` and its WAL on disk, and the free pages inside it.
const STORE_SIZE: &str = "hookhouse_store_size_bytes";
const STORE_FREE_PAGES: &str = "hookhouse_store_free_pages_bytes";
/// The `received_at` of each table's oldest row (Unix seconds).
const STORE_OLDEST_ROW: &str = "hookhouse_store_oldest_row_timestamp_seconds";
/// Rows (and bodies) retention removed, by table.
const RETENTION_REMOVED: &str = "hookhouse_retention_removed";
/// The longest a pruning step held the store's write lock (requests wait behind it).
const RETENTION_LONGEST_STEP: &str = "hookhouse_retention_longest_step_seconds";
/// 1 when the check at start found the store damaged or requests the sinks loaded are missing.
const STORE_DAMAGED: &str = "hookhouse_store_damaged";
/// Requests the sinks loaded that the store no longer holds.
const STORE_MISSING_REQUESTS: &str = "hookhouse_store_missing_requests";
/// How long the check at start took, and when it ended (0 until it ends with an answer).
const STORE_CHECK_SECONDS: &str = "hookhouse_store_check_duration_seconds";
const STORE_CHECKED_AT: &str = "hookhouse_store_check_timestamp_seconds";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

/// What a sink reports; cheap to clone and update from its own thread.
#[derive(Debug, Clone, Default)]
pub struct SinkMetrics {
    pub loaded: Counter,
    pub refused: Counter,
    pub failures: Counter,
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub lag_requests: Gauge,
}

/// Events and failures made from stored requests, per configured source.
#[derive(Debug, Clone, Default)]
pub struct RowCounters {
    by_source: HashMap<String, (Counter, Counter)>,
}

impl RowCounters {
    pub fn add(&self, source: &str, events: u64, failed: u64) {
        if let Some((stored, failures)) = self.by_source.get(source) {
            stored.inc_by(events);
            failures.inc_by(failed);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct SinkFamilies {
    loaded: Family<SinkLabel, Counter>,
    refused: Family<SinkLabel, Counter>,
    failures: Family<SinkLabel, Counter>,
    lag_seconds: Family<SinkLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    lag_requests: Family<SinkLabel, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    source: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    source: String,
    journey: String,
    status: u16,
}

/// The registry and the counters the receiver updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    refused: Family<RefusalLabels, Counter>,
    unstored: Family<SourceLabel, Counter>,
    /// Per configured source, looked up once at start so the success path is a map lookup and
    /// an atomic add, with no label allocation and no lock.
    by_source: HashMap<String, SourceCounters>,
    sinks: SinkFamilies,
    answers: Family<AnswerLabels, Counter>,
    answer_seconds: Histogram,
    tokens_issued: Family<SourceLabel, Counter>,
    free_disk: Gauge,
    store: StoreGauges,
}

/// What the store holds, as the pruner last read it, and what the spool's check found
/// (set from their state at every scrape).
#[derive(Debug, Clone, Default)]
struct StoreGauges {
    size: Gauge,
    free_pages: Gauge,
    oldest: Family<TableLabel, Gauge>,
    removed: Family<TableLabel, Counter>,
    longest_step: Gauge<f64, std::sync::atomic::AtomicU64>,
    damaged: Gauge,
    missing_requests: Gauge,
    check_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    checked_at: Gauge<f64, std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone, Default)]
struct SourceCounters {
    accepted: Counter,
    events: Counter,
    failed: Counter,
}

impl Metrics {
    pub fn new(sources: &[SourceConfig]) -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<SourceLabel, Counter>::default();
        let events = Family::<SourceLabel, Counter>::default();
        let failed = Family::<SourceLabel, Counter>::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        let unstored = Family::<SourceLabel, Counter>::default();
        registry.register(
            REQUESTS_ACCEPTED,
            "Requests stored and answered 2xx, by source",
            accepted.clone(),
        );
        registry.register(
            EVENTS_STORED,
            "Events made from stored requests by the embedded sink (resends included), by source",
            events.clone(),
        );
        registry.register(
            EVENTS_FAILED,
            "Parts of stored requests the embedded sink kept in failed_events, by source",
            failed.clone(),
        );
        registry.register(
            REQUESTS_REFUSED,
            "Requests refused with a 4xx and not stored, by source and reason",
            refused.clone(),
        );
        registry.register(
            REQUESTS_UNSTORED,
            "Requests answered 503 because the store could not take them, by source",
            unstored.clone(),
        );
        let by_source = sources
            .iter()
            .map(|source| {
                let label = SourceLabel { source: source.name.clone() };
                let counters = SourceCounters {
                    accepted: accepted.get_or_create_owned(&label),
                    events: events.get_or_create_owned(&label),
                    failed: failed.get_or_create_owned(&label),
                };
                (source.name.clone(), counters)
            })
            .collect();
        let sinks = SinkFamilies::default();
        registry.register(SINK_LOADED, "Events loaded, by sink", sinks.loaded.clone());
        registry.register(
            SINK_REFUSED,
            "Rows the warehouse refused, kept in failed_events, by sink",
            sinks.refused.clone(),
        );
        registry.register(
            SINK_FAILURES,
            "Failed load attempts, retried with back-off, by sink",
            sinks.failures.clone(),
        );
        registry.register(
            SINK_LAG_SECONDS,
            "Age of the oldest request not yet loaded, by sink",
            sinks.lag_seconds.clone(),
        );
        registry.register(
            SINK_LAG_REQUESTS,
            "Requests not yet loaded, by sink",
            sinks.lag_requests.clone(),
        );
        let answers = Family::<AnswerLabels, Counter>::default();
        registry.register(
            JOURNEY_ANSWERS,
            "Journey calls answered with data from the store, by source, journey and status",
            answers.clone(),
        );
        // From a millisecond (an index range) to the seconds of a time limit.
        let answer_seconds = Histogram::new([
            0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
        ]);
        registry.register(
            JOURNEY_ANSWER_SECONDS,
            "Time to make a journey answer from the store (before the call is stored)",
            answer_seconds.clone(),
        );
        let tokens_issued = Family::<SourceLabel, Counter>::default();
        registry.register(
            OAUTH_TOKENS_ISSUED,
            "Access tokens issued by a source's OAuth token endpoint",
            tokens_issued.clone(),
        );
        let free_disk = Gauge::default();
        registry.register(
            STORE_FREE_DISK,
            "Free bytes on the store's filesystem (below store.min_free_disk_mb requests get 503)",
            free_disk.clone(),
        );
        let store = StoreGauges::default();
        registry.register(
            STORE_SIZE,
            "Bytes of hookhouse.db and its WAL on disk",
            store.size.clone(),
        );
        registry.register(
            STORE_FREE_PAGES,
            "Bytes of free pages inside hookhouse.db, reused by new rows or given back by retention",
            store.free_pages.clone(),
        );
        registry.register(
            STORE_OLDEST_ROW,
            "When the oldest row of each table was received (Unix seconds; raw_bodies: the oldest kept body)",
            store.oldest.clone(),
        );
        registry.register(
            RETENTION_REMOVED,
            "Rows removed by [retention] since start, by table (raw_bodies: bodies emptied)",
            store.removed.clone(),
        );
        registry.register(
            RETENTION_LONGEST_STEP,
            "The longest a retention step held the store's write lock since start, in seconds",
            store.longest_step.clone(),
        );
        registry.register(
            STORE_DAMAGED,
            "1 when the check at start found the store damaged or requests the sinks loaded are \
             missing from it (see /readyz and the log: restore the backup, or replay into a \
             fresh store)",
            store.damaged.clone(),
        );
        registry.register(
            STORE_MISSING_REQUESTS,
            "Requests the sinks loaded that the store no longer holds",
            store.missing_requests.clone(),
        );
        registry.register(
            STORE_CHECK_SECONDS,
            "How long the store's check at start took (0 until it ends with an answer)",
            store.check_seconds.clone(),
        );
        registry.register(
            STORE_CHECKED_AT,
            "When the store's check at start ended with an answer, in Unix seconds (0 while it \
             runs, and when it could not finish)",
            store.checked_at.clone(),
        );
        Metrics {
            registry,
            free_disk,
            store,
            refused,
            unstored,
            by_source,
            sinks,
            answers,
            answer_seconds,
            tokens_issued,
        }
    }

    /// A journey call of `source` answered with data, in `seconds`, with `status`.
    pub fn answered(&self, source: &str, journey: &str, status: u16, seconds: f64) {
        let labels =
            AnswerLabels { source: source.to_owned(), journey: journey.to_owned(), status };
        self.answers.get_or_create(&labels).inc();
        self.answer_seconds.observe(seconds);
    }

    /// The free disk space the store's guard last read.
    pub fn free_disk(&self, bytes: u64) {
        self.free_disk.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The store's size, its oldest rows, and what retention removed (totals since start).
    pub fn store_usage(
        &self,
        usage: Option<&crate::spool::StoreUsage>,
        removed: &std::collections::BTreeMap<&'static str, u64>,
        longest_step: std::time::Duration,
    ) {
        self.store.longest_step.set(longest_step.as_secs_f64());
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(usage) = usage {
            self.store.size.set(gauge(usage.file_bytes));
            self.store.free_pages.set(gauge(usage.free_bytes));
            for (table, oldest) in &usage.oldest {
                let label = TableLabel { table };
                match oldest.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
                    Some(time) => {
                        self.store.oldest.get_or_create(&label).set(time.timestamp());
                    }
                    None => {
                        self.store.oldest.remove(&label);
                    }
                }
            }
        }
        for (table, total) in removed {
            let counter = self.store.removed.get_or_create(&TableLabel { table });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// The store's health as the spool last found it: damaged or not, requests missing that
    /// sinks loaded, and the check's duration and end (Unix seconds), once it ended.
    pub fn store_health(&self, damaged: bool, missing: i64, check: Option<(f64, f64)>) {
        self.store.damaged.set(i64::from(damaged));
        self.store.missing_requests.set(missing);
        let (seconds, at) = check.unwrap_or((0.0, 0.0));
        self.store.check_seconds.set(seconds);
        self.store.checked_at.set(at);
    }

    /// An access token issued by `source`'s token endpoint.
    pub fn token_issued(&self, source: &str) {
        let source = self.label(source);
        self.tokens_issued.get_or_create(&SourceLabel { source }).inc();
    }

    /// The metrics of the sink called `name` (a fixed name such as `postgres`).
    pub fn sink(&self, name: &'static str) -> SinkMetrics {
        let label = SinkLabel { sink: name };
        SinkMetrics {
            loaded: self.sinks.loaded.get_or_create_owned(&label),
            refused: self.sinks.refused.get_or_create_owned(&label),
            failures: self.sinks.failures.get_or_create_owned(&label),
            lag_seconds: self.sinks.lag_seconds.get_or_create_owned(&label),
            lag_requests: self.sinks.lag_requests.get_or_create_owned(&label),
        }
    }

    /// A stored request of a configured source.
    pub fn accepted(&self, source: &str) {
        if let Some(counters) = self.by_source.get(source) {
            counters.accepted.inc();
        }
    }

    /// The counters of what stored requests became, for the embedded sink that makes it.
    pub fn row_counters(&self) -> RowCounters {
        RowCounters {
            by_source: self
                .by_source
                .iter()
                .map(|(name, counters)| {
                    (name.clone(), (counters.events.clone(), counters.failed.clone()))
                })
                .collect(),
        }
    }

    /// A refused request. `source` must be a configured source's name or [`UNKNOWN_SOURCE`].
    pub fn refused(&self, source: &str, reason: &'static str) {
        let source = self.label(source);
        self.refused.get_or_create(&RefusalLabels { source, reason }).inc();
    }

    /// A request the store could not take (503).
    pub fn unstored(&self, source: &str) {
        let source = self.label(source);
        self.unstored.get_or_create(&SourceLabel { source }).inc();
    }

    /// Keeps the label set bounded: a name that is not a configured source becomes
    /// [`UNKNOWN_SOURCE`].
    fn label(&self, source: &str) -> String {
        self.source_label(source).to_owned()
    }

    /// `source` if it is a configured source's name, else [`UNKNOWN_SOURCE`]: what may key a
    /// label or a log line, whatever name a sender typed.
    pub fn source_label<'a>(&self, source: &'a str) -> &'a str {
        if self.by_source.contains_key(source) { source } else { UNKNOWN_SOURCE }
    }

    /// The OpenMetrics text exposition, which Prometheus reads.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn counts_by_source_and_folds_unknown_names_into_one_label() {
        let config = Config::with_data_dir("/nonexistent");
        let metrics = Metrics::new(&config.sources);
        metrics.accepted("default");
        metrics.row_counters().add("default", 2, 1);
        metrics.row_counters().add("made-up-by-a-sender", 5, 5);
        metrics.refused("default", "unauthorized");
        metrics.refused("default", "unauthorized");
        metrics.refused("made-up-by-a-sender", "unknown_source");
        metrics.unstored("default");
        let text = metrics.encode().unwrap();
        for line in [
            r#"hookhouse_requests_accepted_total{source="default"} 1"#,
            r#"hookhouse_events_stored_total{source="default"} 2"#,
            r#"hookhouse_events_failed_total{source="default"} 1"#,
            r#"hookhouse_requests_refused_total{source="default",reason="unauthorized"} 2"#,
            r#"hookhouse_requests_refused_total{source="unknown",reason="unknown_source"} 1"#,
            r#"hookhouse_requests_unstored_total{source="default"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(!text.contains("made-up-by-a-sender"));
    }
}
