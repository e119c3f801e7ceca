//! What a simulation achieved: outcomes are tallied as they arrive, shown on a live progress
//! line on stderr (only when stderr is a terminal), and summed up in a [`Summary`] for stdout.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::StatusCode;
use tokio::time::Instant;

/// How one request ended.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) event: String,
    pub(super) latency: Duration,
    pub(super) result: Result<StatusCode, ConnectionError>,
}

/// A request that got no HTTP status back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectionError {
    /// The connection could not be made.
    Connect,
    /// No complete answer within the request time-out.
    Timeout,
    /// The connection broke while sending or reading.
    Other,
}

impl ConnectionError {
    pub(super) fn of(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            ConnectionError::Timeout
        } else if err.is_connect() {
            ConnectionError::Connect
        } else {
            ConnectionError::Other
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ConnectionError::Connect => "connect",
            ConnectionError::Timeout => "timeout",
            ConnectionError::Other => "broken",
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Requests sent, whatever came of them.
    pub sent: u64,
    /// Requests answered 2xx.
    pub acknowledged: u64,
    /// Requests answered with another status, by status code.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// Requests that got no status, by kind: `connect`, `timeout`, `broken`.
    pub connection_errors: BTreeMap<String, u64>,
    /// Requests still in flight when an interrupted run gave up waiting; their fate is unknown.
    pub abandoned: u64,
    /// Acknowledged requests by event name.
    pub by_event: BTreeMap<String, u64>,
    /// Median and 99th-percentile time to a complete answer, over requests that got a status.
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub elapsed: Duration,
    /// Requests sent per second of `elapsed`.
    pub rate: f64,
    /// Whether ctrl-c (or the caller's stop signal) ended the run early.
    pub interrupted: bool,
}

impl Summary {
    /// Whether every request sent was answered 2xx: the exit status of `hookhouse simulate`.
    pub fn all_acknowledged(&self) -> bool {
        self.acknowledged == self.sent
    }

    /// Requests that were answered with a non-2xx status or got no answer.
    pub fn errors(&self) -> u64 {
        self.errors_by_status.values().sum::<u64>() + self.connection_errors.values().sum::<u64>()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let interrupted = if self.interrupted { " (interrupted)" } else { "" };
        writeln!(
            f,
            "sent {} events in {:.2}s ({:.1}/s){interrupted}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.rate
        )?;
        row(f, "  acknowledged (2xx)", self.acknowledged)?;
        row(f, "  errors", self.errors())?;
        for (status, count) in &self.errors_by_status {
            let reason =
                StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
            row(f, &format!("    {status} {reason}"), count)?;
        }
        for (kind, count) in &self.connection_errors {
            row(f, &format!("    connection: {kind}"), count)?;
        }
        if self.abandoned > 0 {
            row(f, "  abandoned (no answer)", self.abandoned)?;
        }
        let latency = |p: Option<Duration>| {
            p.map_or_else(|| "-".to_owned(), |p| format!("{:.1} ms", p.as_secs_f64() * 1000.0))
        };
        row(f, "  latency p50", latency(self.latency_p50))?;
        row(f, "  latency p99", latency(self.latency_p99))?;
        if !self.by_event.is_empty() {
            writeln!(f, "  acknowledged by event")?;
            for (event, count) in &self.by_event {
                row(f, &format!("    {event}"), count)?;
            }
        }
        Ok(())
    }
}

/// One line of the summary: the label, then the value right-aligned in a column.
fn row(f: &mut fmt::Formatter<'_>, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "{label:<28}{value:>10}")
}

/// Tallies outcomes as they arrive and keeps the progress line current.
#[derive(Debug)]
pub(super) struct Recorder {
    progress: ProgressBar,
    started: Instant,
    sent: u64,
    acknowledged: u64,
    errors_by_status: BTreeMap<u16, u64>,
    connection_errors: BTreeMap<String, u64>,
    abandoned: u64,
    by_event: BTreeMap<String, u64>,
    /// Microseconds, 4 bytes each: an hour at 10,000 events/s keeps 144 MB.
    latencies_us: Vec<u32>,
}

impl Recorder {
    /// A recorder for `total` events, or an open-ended run when `None`.
    pub(super) fn new(total: Option<u64>) -> Self {
        let progress = if std::io::stderr().is_terminal() {
            progress_bar(total)
        } else {
            ProgressBar::hidden()
        };
        Recorder {
            progress,
            started: Instant::now(),
            sent: 0,
            acknowledged: 0,
            errors_by_status: BTreeMap::new(),
            connection_errors: BTreeMap::new(),
            abandoned: 0,
            by_event: BTreeMap::new(),
            latencies_us: Vec::new(),
        }
    }

    /// A request has been sent.
    pub(super) fn sent(&mut self) {
        self.sent += 1;
        self.progress.inc(1);
    }

    pub(super) fn record(&mut self, outcome: Outcome) {
        match outcome.result {
            Ok(status) => {
                let micros = u32::try_from(outcome.latency.as_micros()).unwrap_or(u32::MAX);
                self.latencies_us.push(micros);
                if status.is_success() {
                    self.acknowledged += 1;
                    *self.by_event.entry(outcome.event).or_default() += 1;
                } else {
                    *self.errors_by_status.entry(status.as_u16()).or_default() += 1;
                }
            }
            Err(err) => {
                *self.connection_errors.entry(err.as_str().to_owned()).or_default() += 1;
            }
        }
        if !self.progress.is_hidden() {
            let rate = self.sent as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let (acknowledged, errors) = (self.acknowledged, self.errors());
            self.progress
                .set_message(format!("acked {acknowledged}, errors {errors}, {rate:.0}/s"));
        }
    }

    /// A request whose answer will never be known: the run stopped waiting for it.
    pub(super) fn abandoned(&mut self) {
        self.abandoned += 1;
    }

    fn errors(&self) -> u64 {
        self.errors_by_status.values().sum::<u64>() + self.connection_errors.values().sum::<u64>()
    }

    pub(super) fn finish(mut self, interrupted: bool) -> Summary {
        self.progress.finish_and_clear();
        let elapsed = self.started.elapsed();
        self.latencies_us.sort_unstable();
        let percentile = |p: f64| {
            let n = self.latencies_us.len();
            // Nearest rank: the smallest value with at least p of the values at or below it.
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
            self.latencies_us.get(rank - 1).map(|us| Duration::from_micros(u64::from(*us)))
        };
        let seconds = elapsed.as_secs_f64();
        Summary {
            sent: self.sent,
            acknowledged: self.acknowledged,
            latency_p50: percentile(0.50),
            latency_p99: percentile(0.99),
            errors_by_status: self.errors_by_status,
            connection_errors: self.connection_errors,
            abandoned: self.abandoned,
            by_event: self.by_event,
            elapsed,
            rate: if seconds > 0.0 { self.sent as f64 / seconds } else { 0.0 },
            interrupted,
        }
    }
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{elapsed_precise} [{bar:20}] {pos}/{len} sent, {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {elapsed_precise} {pos} sent, {msg}",
        ),
    };
    // The templates are constants; a mistake in one falls back to the default look.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(event: &str, millis: u64, result: Result<u16, ConnectionError>) -> Outcome {
        Outcome {
            event: event.to_owned(),
            latency: Duration::from_millis(millis),
            result: result.map(|code| StatusCode::from_u16(code).unwrap()),
        }
    }

    #[test]
    fn tallies_statuses_events_and_percentiles() {
        let mut recorder = Recorder::new(Some(104));
        for _ in 0..104 {
            recorder.sent();
        }
        for millis in 1..=100 {
            let event = if millis % 2 == 0 { "emailOpen" } else { "smsSend" };
            recorder.record(outcome(event, millis, Ok(200)));
        }
        recorder.record(outcome("emailOpen", 500, Ok(503)));
        recorder.record(outcome("emailOpen", 1, Err(ConnectionError::Connect)));
        recorder.record(outcome("emailOpen", 1, Err(ConnectionError::Timeout)));
        recorder.abandoned();

        let summary = recorder.finish(true);
        assert_eq!((summary.sent, summary.acknowledged, summary.abandoned), (104, 100, 1));
        assert_eq!(summary.errors(), 3);
        assert_eq!(summary.sent, summary.acknowledged + summary.errors() + summary.abandoned);
        assert_eq!(summary.errors_by_status, BTreeMap::from([(503, 1)]));
        assert_eq!(summary.connection_errors["connect"], 1);
        assert_eq!(summary.connection_errors["timeout"], 1);
        assert_eq!(summary.by_event["emailOpen"], 50);
        assert_eq!(summary.by_event["smsSend"], 50);
        // 101 latencies: 1..=100 ms and one 500 ms; connection errors have none.
        assert_eq!(summary.latency_p50, Some(Duration::from_millis(51)));
        assert_eq!(summary.latency_p99, Some(Duration::from_millis(100)));
        assert!(summary.interrupted);
        assert!(!summary.all_acknowledged());
    }

    #[test]
    fn an_empty_run_has_no_latency() {
        let summary = Recorder::new(None).finish(false);
        assert_eq!((summary.sent, summary.latency_p50, summary.latency_p99), (0, None, None));
        assert!(summary.to_string().contains("  latency p50                        -\n"));
    }

    #[test]
    fn the_summary_reads_well() {
        let summary = Summary {
            sent: 300,
            acknowledged: 297,
            errors_by_status: BTreeMap::from([(503, 2)]),
            connection_errors: BTreeMap::from([("timeout".to_owned(), 1)]),
            abandoned: 0,
            by_event: BTreeMap::from([("emailOpen".to_owned(), 200), ("smsSend".to_owned(), 97)]),
            latency_p50: Some(Duration::from_micros(2_150)),
            latency_p99: Some(Duration::from_micros(9_800)),
            elapsed: Duration::from_millis(1_500),
            rate: 200.0,
            interrupted: false,
        };
        insta::assert_snapshot!(summary.to_string(), @"
        sent 300 events in 1.50s (200.0/s)
          acknowledged (2xx)               297
          errors                             3
            503 Service Unavailable          2
            connection: timeout              1
          latency p50                   2.1 ms
          latency p99                   9.8 ms
          acknowledged by event
            emailOpen                      200
            smsSend                         97
        ");
    }
}
