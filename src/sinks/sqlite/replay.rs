//! Replay: re-run stored requests through the current normaliser and rewrite what the
//! embedded sink holds of them. Used after an upgrade or a fix, so that `failed_events` rows
//! that can now be read become events; every other sink is sent back to load them again.
//!
//! Safe while `serve` runs: it uses a maintenance connection of the spool and short
//! transactions (one per [`BATCH`] requests), so the live writer waits at most one batch for
//! the lock. Idempotent: a request's own rows (events it was first to carry, its journey call,
//! its failures) are replaced, so running it twice gives the same tables.
//!
//! A request stored without its body (`body_dropped`, a source's `drop_raw_bodies`) is never
//! selected: there is nothing to re-read, and its rows stay as they are. A request of a
//! pseudonymising source is replayed only with that source's key, so a replay never writes a
//! personal value in plain.
//!
//! A request whose body no longer matches its `body_sha256` (a damaged file, an edit) is not
//! the request that arrived: it is left out, its rows stay as they were made from the intact
//! body, and the report names it ([`ReplayReport::altered`]).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::params;

use super::{OnConflict, SINK_NAME, write};
use crate::pipeline::PseudonymKey;
use crate::request::BodyCheck;
use crate::sinks::batch::{Batch, MissingKey};
use crate::spool::{Maintenance, Selection, SpoolError, rewind_sinks};

/// Requests per transaction: small enough that `serve`'s commits are not held up for long.
const BATCH: usize = 500;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    pub requests: u64,
    pub events: u64,
    pub journey_calls: u64,
    /// `failed_events` rows of the replayed requests before the replay...
    pub failures_before: u64,
    /// ...and after.
    pub failures_after: u64,
    /// The other sinks were sent back to load again from this request on.
    pub rewound_to: Option<i64>,
    /// Requests left out because their body no longer matches its digest, the first
    /// [`MAX_LISTED`] by seq (left out of the JSON when there is none)...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub altered: Vec<i64>,
    /// ...and how many in all.
    #[serde(skip_serializing_if = "is_zero")]
    pub altered_total: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// Altered requests a report lists by seq.
pub const MAX_LISTED: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] SpoolError),
    #[error("{0}: pass the configuration that holds it with --config")]
    MissingKey(#[from] MissingKey),
}

/// Replays the selected requests, calling `progress(done, total)` after each batch. `keys` are
/// the pseudonymisation keys by source name.
pub fn replay(
    db_path: &Path,
    selection: &Selection,
    keys: &HashMap<String, PseudonymKey>,
    progress: impl FnMut(u64, u64),
) -> Result<ReplayReport, ReplayError> {
    replay_stoppable(db_path, selection, keys, progress, || false)
}

/// [`replay`], ending early (after a whole batch) once `stop()` says so; the report says how
/// far it got.
pub fn replay_stoppable(
    db_path: &Path,
    selection: &Selection,
    keys: &HashMap<String, PseudonymKey>,
    mut progress: impl FnMut(u64, u64),
    stop: impl Fn() -> bool,
) -> Result<ReplayReport, ReplayError> {
    let mut store = Maintenance::open(db_path)?;
    let total = store.count(selection)?;
    let mut report = ReplayReport::default();
    let mut after = i64::MIN;
    while !stop() {
        let requests = store.read_selected(selection, after, BATCH)?;
        let Some(last) = requests.last().map(|stored| stored.seq) else { break };
        let (requests, altered): (Vec<_>, Vec<_>) =
            requests.into_iter().partition(|stored| stored.check_body() != BodyCheck::Altered);
        for stored in altered {
            tracing::warn!(
                seq = stored.seq,
                "request {} is left as it is: its body no longer matches its body_sha256 (the \
                 store is damaged: `hookhouse check`)",
                stored.seq
            );
            report.altered_total += 1;
            if report.altered.len() < MAX_LISTED {
                report.altered.push(stored.seq);
            }
        }
        // Normalised before the write lock is taken, so `serve` waits only for the writes.
        let batch = Batch::build(after, &requests, keys)?;
        after = last;
        if requests.is_empty() {
            progress(report.requests + report.altered_total, total);
            continue;
        }
        let seqs: Vec<i64> = requests.iter().map(|stored| stored.seq).collect();
        let (failures_before, rewound_to) = store.write(|tx| rewrite(tx, &seqs, &batch))?;
        report.rewound_to = match (report.rewound_to, rewound_to) {
            (Some(so_far), Some(now)) => Some(so_far.min(now)),
            (so_far, now) => so_far.or(now),
        };
        report.requests += seqs.len() as u64;
        report.events += batch.events.rows.len() as u64;
        report.journey_calls += batch.journey_calls.rows.len() as u64;
        report.failures_before += failures_before;
        report.failures_after += batch.failures.rows.len() as u64;
        progress(report.requests + report.altered_total, total);
    }
    Ok(report)
}

/// Replaces the embedded rows of `seqs` with `batch`'s, sends the other sinks back to the
/// lowest request whose rows changed, and returns how many failures the requests had before
/// and that request.
fn rewrite(
    tx: &rusqlite::Connection,
    seqs: &[i64],
    batch: &Batch,
) -> rusqlite::Result<(u64, Option<i64>)> {
    let mut failures_before = 0;
    // The `app_id` and `platform` a later copy of an event filled in (the same event by the
    // Snowplow path) are not in the request that carries it: kept across its rewrite.
    let mut route = Vec::new();
    for seq in seqs {
        let before: i64 = tx.query_row(
            "SELECT count(*) FROM failed_events WHERE raw_seq = ?1 AND sink IS NULL",
            [seq],
            |r| r.get(0),
        )?;
        failures_before += before.unsigned_abs();
        let mut statement = tx.prepare_cached(
            "SELECT event_id, app_id, platform FROM events \
             WHERE raw_seq = ?1 AND (app_id IS NOT NULL OR platform IS NOT NULL)",
        )?;
        let rows = statement.query_map([seq], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            route.push(row?);
        }
        // The request's own rows go; events first carried by an earlier request stay theirs
        // and are updated through the conflict clause. Refusals by sinks stay: they belong to
        // the sink, which loads these requests again.
        tx.execute("DELETE FROM failed_events WHERE raw_seq = ?1 AND sink IS NULL", params![seq])?;
        tx.execute("DELETE FROM events WHERE raw_seq = ?1", params![seq])?;
        tx.execute("DELETE FROM journey_calls WHERE seq = ?1", params![seq])?;
    }
    write(tx, batch, (batch.after, batch.through), OnConflict::Update)?;
    for (event_id, app_id, platform) in &route {
        tx.execute(
            "UPDATE events SET app_id = coalesce(app_id, ?2), platform = coalesce(platform, ?3) \
             WHERE event_id = ?1",
            params![event_id, app_id, platform],
        )?;
    }
    // An event first carried by an earlier request keeps that request's `raw_seq`, below this
    // batch, and was updated in place: the other sinks must load again from there.
    let mut lowest = seqs.first().copied().unwrap_or(i64::MAX);
    let id_index = batch.events.table.position("event_id").unwrap_or(0);
    for row in &batch.events.rows {
        if let Some(crate::sinks::batch::Cell::Text(id)) = row.cells.get(id_index) {
            let carrier: i64 =
                tx.query_row("SELECT raw_seq FROM events WHERE event_id = ?1", [id], |r| r.get(0))?;
            lowest = lowest.min(carrier);
        }
    }
    if lowest == i64::MAX {
        return Ok((failures_before, None));
    }
    rewind_sinks(tx, lowest, SINK_NAME)?;
    Ok((failures_before, Some(lowest)))
}
