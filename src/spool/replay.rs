//! Replay: re-run stored `raw_requests` through the current normaliser and rewrite what they
//! produced. Used after an upgrade or a fix, so that `failed_events` rows that can now be read
//! become events.
//!
//! Safe while `serve` runs: it uses its own connection and short transactions (one per
//! [`BATCH`] requests), so the live writer waits at most one batch for the lock. Idempotent:
//! a request's own rows (events it was first to carry, its journey call, its failures) are
//! replaced, so running it twice gives the same tables.
//!
//! A request stored without its body (`body_dropped`, a source's `drop_raw_bodies`) is never
//! selected: there is nothing to re-read, and its rows stay as ingestion wrote them. A request
//! of a pseudonymising source is replayed only with that source's key, so a replay never
//! writes a personal value in plain.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior, params};

use std::collections::HashMap;

use super::{RawRequest, format_time};
use crate::pipeline::{PseudonymKey, normalise_with};
use crate::sinks::cursor;
use crate::sinks::sqlite::{Inserts, OnConflict, RawRow};

/// Requests per transaction: small enough that `serve`'s commits are not held up for long.
const BATCH: usize = 500;

/// Which stored requests to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Since(DateTime<Utc>),
    /// `seq` from, to (inclusive).
    Seqs(i64, i64),
    /// Only requests with a row in `failed_events`.
    Failed,
}

impl Selection {
    fn condition(&self) -> &'static str {
        match self {
            Selection::All => "body_dropped = 0",
            Selection::Since(_) => "body_dropped = 0 AND received_at >= :since",
            Selection::Seqs(..) => "body_dropped = 0 AND seq BETWEEN :from AND :to",
            Selection::Failed => {
                "body_dropped = 0 AND seq IN (SELECT raw_seq FROM failed_events WHERE sink IS NULL)"
            }
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub requests: u64,
    pub events: u64,
    pub journey_calls: u64,
    /// `failed_events` rows of the replayed requests before the replay...
    pub failures_before: u64,
    /// ...and after.
    pub failures_after: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no store at `{0}`: run `hookhouse serve` first, or pass --data-dir")]
    Missing(String),
    #[error("failed to read or write the store")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored request {seq} has an unreadable `received_at` `{value}`")]
    BadTime { seq: i64, value: String },
    #[error(
        "stored request {seq} of source `{source_name}` was pseudonymised: pass the configuration \
         that holds the source's `pseudonymise.key` with --config"
    )]
    MissingKey { seq: i64, source_name: String },
}

/// Replays the selected requests, calling `progress(done, total)` after each batch. `keys` are
/// the pseudonymisation keys by source name.
pub fn replay(
    db_path: &Path,
    selection: &Selection,
    keys: &HashMap<String, PseudonymKey>,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplayReport, ReplayError> {
    if !db_path.is_file() {
        return Err(ReplayError::Missing(db_path.display().to_string()));
    }
    let mut conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(10))?;

    let since = match selection {
        Selection::Since(time) => format_time(time),
        _ => String::new(),
    };
    let (from, to) = match selection {
        Selection::Seqs(from, to) => (*from, *to),
        _ => (0, 0),
    };
    let bound: Vec<(&str, &dyn ToSql)> = match selection {
        Selection::Since(_) => vec![(":since", &since)],
        Selection::Seqs(..) => vec![(":from", &from), (":to", &to)],
        _ => vec![],
    };
    let condition = selection.condition();
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM raw_requests WHERE {condition}"),
        bound.as_slice(),
        |row| row.get(0),
    )?;
    let total = total.unsigned_abs();

    let mut report = ReplayReport::default();
    let mut last_seq = i64::MIN;
    let query = format!(
        "SELECT seq, received_at, source, method, path, query, headers, remote_addr, \
         content_type, body, body_sha256, pseudonymised, peer_addr FROM raw_requests \
         WHERE seq > :last AND {condition} ORDER BY seq LIMIT {BATCH}"
    );
    loop {
        let batch = {
            let mut with_last = bound.clone();
            with_last.push((":last", &last_seq));
            read_batch(&conn, &query, &with_last)?
        };
        let Some((seq, _, _)) = batch.last() else { break };
        last_seq = *seq;
        write_batch(&mut conn, &batch, keys, &mut report)?;
        progress(report.requests, total);
    }
    Ok(report)
}

/// One stored request: its seq, whether it was pseudonymised, and the request.
type Stored = (i64, bool, RawRequest);

fn read_batch(
    conn: &Connection,
    query: &str,
    bound: &[(&str, &dyn ToSql)],
) -> Result<Vec<Stored>, ReplayError> {
    let mut statement = conn.prepare_cached(query)?;
    let rows = statement.query_map(bound, |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, bool>(11)?,
            RawRequest {
                received_at: DateTime::<Utc>::MIN_UTC,
                source: row.get(2)?,
                method: row.get(3)?,
                path: row.get(4)?,
                query: row.get(5)?,
                headers_json: row.get(6)?,
                remote_addr: row.get(7)?,
                content_type: row.get(8)?,
                body: Bytes::from(row.get::<_, Vec<u8>>(9)?),
                body_sha256: row.get(10)?,
                peer_addr: row.get(12)?,
            },
        ))
    })?;
    let mut batch = Vec::new();
    for row in rows {
        let (seq, received_at, pseudonymised, mut request) = row?;
        request.received_at = DateTime::parse_from_rfc3339(&received_at)
            .map_err(|_| ReplayError::BadTime { seq, value: received_at.clone() })?
            .with_timezone(&Utc);
        batch.push((seq, pseudonymised, request));
    }
    Ok(batch)
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Stored],
    keys: &HashMap<String, PseudonymKey>,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    // Normalised before the write lock is taken, so `serve` waits only for the writes.
    let outcomes = batch
        .iter()
        .map(|(seq, pseudonymised, request)| {
            let key = keys.get(&request.source);
            if *pseudonymised && key.is_none() {
                return Err(ReplayError::MissingKey {
                    seq: *seq,
                    source_name: request.source.clone(),
                });
            }
            Ok(normalise_with(request, key))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut inserts = Inserts::new(&tx, OnConflict::Update);
    // The lowest request whose rows this batch changes: the sinks must load again from there.
    let mut lowest = batch.first().map_or(i64::MAX, |(seq, _, _)| *seq);
    for ((seq, _, request), outcome) in batch.iter().zip(outcomes) {
        let failures_before: i64 = tx.query_row(
            "SELECT count(*) FROM failed_events WHERE raw_seq = ?1 AND sink IS NULL",
            [seq],
            |r| r.get(0),
        )?;
        // The request's own rows go; events first carried by an earlier request stay theirs
        // and are updated through the conflict clause.
        // Refusals by sinks stay: they belong to the sink, which reloads these requests below.
        tx.execute("DELETE FROM failed_events WHERE raw_seq = ?1 AND sink IS NULL", params![seq])?;
        tx.execute("DELETE FROM events WHERE raw_seq = ?1", params![seq])?;
        tx.execute("DELETE FROM journey_calls WHERE seq = ?1", params![seq])?;
        let received_at = request.received_at_text();
        let row = RawRow {
            seq: *seq,
            received_at: &received_at,
            source: &request.source,
            method: &request.method,
        };
        inserts.write(&row, &outcome)?;
        // An event first carried by an earlier request keeps that request's `raw_seq`, below
        // this batch, and was updated in place.
        for event in &outcome.events {
            let carrier: i64 = tx.query_row(
                "SELECT raw_seq FROM events WHERE event_id = ?1",
                [event.event_id.as_str()],
                |r| r.get(0),
            )?;
            lowest = lowest.min(carrier);
        }
        report.requests += 1;
        report.events += outcome.events.len() as u64;
        report.journey_calls += outcome.journey_calls.len() as u64;
        report.failures_before += failures_before.unsigned_abs();
        report.failures_after += outcome.failures.len() as u64;
    }
    drop(inserts);
    if lowest != i64::MAX {
        // The sinks that already loaded these rows hold the old ones: send them back.
        cursor::rewind_all(&tx, lowest)?;
    }
    tx.commit()?;
    Ok(())
}
