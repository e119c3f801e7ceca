//! `serve`'s check of the store at start, on a thread and a read-only connection of its own,
//! so the port listens at once: SQLite's quick check of the whole file, then the `events`
//! table against its indexes (a damaged entry of the primary key passes the quick check and
//! silently breaks deduplication), stopped after [`BUDGET`] on a store too large for it.
//!
//! Its state is kept in the spool's shared state, for `/readyz` and `/metrics`, and in a small
//! file beside the store ([`super::integrity::result_path`]) for `hookhouse status`, which runs
//! in another process and must stay fast on a large store.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::integrity::{self, Depth, SeqGap, Structure, WHAT_TO_DO};
use super::{Shared, SpoolError};
use crate::request::format_time;

/// How long the check at start may read. Long enough for a store of several GB; past it the
/// check says it did not finish, and `hookhouse check` is the way to look at the rest.
const BUDGET: Duration = Duration::from_secs(300);

/// Messages kept of a damaged store: the first ones say enough.
const MAX_PROBLEMS: usize = 10;

/// What the check at start covers.
const SCOPE: &str = "the whole file's structure (PRAGMA quick_check), then the events table \
     against its indexes (PRAGMA integrity_check(events))";

/// Where the check at start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Checking,
    Ok,
    Damaged,
    /// Stopped at [`BUDGET`], or it could not run.
    Unfinished,
}

/// The store's health as `serve` found it at start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreHealth {
    pub check: CheckState,
    pub scope: String,
    pub started_at: String,
    /// When the check ended, and how long it took; `None` while it runs.
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    /// The first problems it found, or why it did not finish.
    pub problems: Vec<String>,
    /// Requests the sinks loaded that the store no longer holds, found when it opened.
    pub seq_gap: Option<SeqGap>,
    /// What to do, while something is wrong.
    pub what_to_do: Option<String>,
}

impl StoreHealth {
    pub(super) fn checking() -> StoreHealth {
        StoreHealth {
            check: CheckState::Checking,
            scope: SCOPE.to_owned(),
            started_at: format_time(&Utc::now()),
            finished_at: None,
            seconds: None,
            problems: Vec::new(),
            seq_gap: None,
            what_to_do: None,
        }
    }

    /// The check found damage, or the store is missing requests its sinks loaded.
    pub fn is_damaged(&self) -> bool {
        self.check == CheckState::Damaged || self.seq_gap.is_some()
    }

    /// How long the check took and when it ended (Unix seconds), once it ended with an
    /// answer: `None` while it runs and when it did not finish.
    pub fn completed(&self) -> Option<(f64, f64)> {
        if !matches!(self.check, CheckState::Ok | CheckState::Damaged) {
            return None;
        }
        let at = DateTime::parse_from_rfc3339(self.finished_at.as_deref()?).ok()?;
        Some((self.seconds?, at.timestamp_millis() as f64 / 1e3))
    }

    pub(super) fn set_seq_gap(&mut self, gap: Option<SeqGap>) {
        self.seq_gap = gap;
        self.what_to_do = self.is_damaged().then(|| WHAT_TO_DO.to_owned());
    }
}

/// The health `serve` last recorded for the store at `db_path`, if it recorded one.
pub fn recorded(db_path: &Path) -> Option<StoreHealth> {
    let text = std::fs::read(integrity::result_path(db_path)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records the state as checking, then starts the check's thread; it ends with the check.
pub(super) fn start(shared: &Arc<Shared>) -> Result<(), SpoolError> {
    record(shared);
    let weak = Arc::downgrade(shared);
    let db_path = shared.db_path.clone();
    std::thread::Builder::new()
        .name("hookhouse-check".to_owned())
        .spawn(move || run(&db_path, &weak))
        .map(|_| ())
        .map_err(|source| SpoolError::Thread { name: "hookhouse-check", source })
}

fn run(db_path: &Path, shared: &Weak<Shared>) {
    let started = Instant::now();
    let deadline = started + BUDGET;
    // Stops too once the spool is gone: nobody would read the answer.
    let within = |weak: Weak<Shared>| {
        move |_: Duration| Instant::now() < deadline && weak.strong_count() > 0
    };
    let result =
        integrity::check_structure(db_path, Depth::Quick, MAX_PROBLEMS, within(shared.clone()))
            .and_then(|quick| match quick {
                Structure::Ok => integrity::check_structure(
                    db_path,
                    Depth::Events,
                    MAX_PROBLEMS,
                    within(shared.clone()),
                ),
                other => Ok(other),
            });
    let seconds = started.elapsed().as_secs_f64();
    let Some(shared) = shared.upgrade() else { return };
    let (check, problems) = match result {
        Ok(Structure::Ok) => {
            tracing::info!(seconds, "the store passed its check at start ({SCOPE})");
            (CheckState::Ok, Vec::new())
        }
        Ok(Structure::Damaged(problems)) => {
            tracing::error!(
                seconds,
                problems = %problems.join("; "),
                "the store is damaged: SQLite's check at start found problems in \
                 `hookhouse.db`. Requests are still stored, but deduplication and the embedded \
                 tables may be wrong, and writes may fail; `hookhouse check` lists every \
                 problem. What to do: {WHAT_TO_DO}"
            );
            (CheckState::Damaged, problems)
        }
        Ok(Structure::Stopped) => {
            let why = format!(
                "stopped after {} s: the store is larger than the check at start covers; run \
                 `hookhouse check` (safe while serve runs)",
                BUDGET.as_secs()
            );
            tracing::warn!(seconds, "the store's check at start {why}");
            (CheckState::Unfinished, vec![why])
        }
        Err(err) => {
            let why = format!("the check could not run: {err}");
            tracing::warn!(error = %err, "the store's check at start could not run");
            (CheckState::Unfinished, vec![why])
        }
    };
    {
        let mut health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
        health.check = check;
        health.finished_at = Some(format_time(&Utc::now()));
        health.seconds = Some(seconds);
        health.problems = problems;
        let gap = health.seq_gap.take();
        health.set_seq_gap(gap);
    }
    record(&shared);
}

/// Writes the health to its file beside the store, whole or not at all (a temporary file
/// renamed over it), owner-only like the store.
fn record(shared: &Shared) {
    let health = shared.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let path = integrity::result_path(&shared.db_path);
    let partial = path.with_extension("json.partial");
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let text = serde_json::to_vec_pretty(&health).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(&text)?;
        std::fs::rename(&partial, &path)
    };
    if let Err(err) = write() {
        tracing::warn!(path = %path.display(), error = %err, "cannot record the store's check");
    }
}
