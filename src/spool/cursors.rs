//! Sink cursors: how far each sink has loaded the request log, kept in the spool's own database
//! (`sink_cursors`) so that it survives restarts and moves only after the sink's commit; and
//! what a sink's acknowledgement writes with it (its refusals, bodies no sink needs any more).
//!
//! A cursor is a `raw_requests.seq`: every request at or below it, with the events, journey
//! call and failures made from it, is in the sink. `seq` only grows in commit order, so a reader that sees
//! a request also sees every request before it. Replay rewrites rows of old requests; it moves
//! the cursors back and bumps their `generation`, and a sink's advance only applies if the
//! generation is still the one it read, so a batch read before a replay is loaded again.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::Refusal;
use crate::request::format_time;

/// Where a sink stands, as read before loading a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub position: i64,
    pub generation: i64,
}

/// Reads a sink's cursor; `None` for a sink that has never run (see [`create`]).
pub(super) fn read(conn: &Connection, sink: &str) -> rusqlite::Result<Option<Cursor>> {
    conn.query_row("SELECT position, generation FROM sink_cursors WHERE sink = ?1", [sink], |row| {
        Ok(Cursor { position: row.get(0)?, generation: row.get(1)? })
    })
    .optional()
}

/// Creates a new sink's cursor at the start of the spool; does nothing if it exists. It must
/// exist before the first batch is read, so that a replay meanwhile can move it back.
pub(super) fn create(conn: &Connection, sink: &str) -> rusqlite::Result<()> {
    conn.execute("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?1)", [sink])?;
    Ok(())
}

/// Moves the cursor to `to` unless a replay changed it since `from` was read; returns whether
/// it moved. Clears the last error: the sink has just loaded a batch.
pub(super) fn advance(
    conn: &Connection,
    sink: &str,
    from: Cursor,
    to: i64,
) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE sink_cursors SET position = ?1, loaded_at = ?2, last_error = NULL, \
         last_error_at = NULL WHERE sink = ?3 AND generation = ?4",
        params![to, format_time(&Utc::now()), sink, from.generation],
    )?;
    Ok(changed == 1)
}

/// Keeps why the last attempt failed, for `hookhouse status`.
pub(super) fn record_error(conn: &Connection, sink: &str, error: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sink_cursors SET last_error = ?1, last_error_at = ?2 WHERE sink = ?3",
        params![error, format_time(&Utc::now()), sink],
    )?;
    Ok(())
}

/// Sends every sink but `except` back to just before `seq`, in the caller's transaction
/// (replay's).
pub(super) fn rewind_all(conn: &Connection, seq: i64, except: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sink_cursors SET position = min(position, ?1 - 1), generation = generation + 1 \
         WHERE sink <> ?2",
        params![seq, except],
    )?;
    Ok(())
}

/// How far behind the spool a sink is; serialised as `status --json` and `/api/sinks` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lag {
    pub sink: String,
    pub position: i64,
    /// Requests after the cursor.
    #[serde(rename = "lag_requests")]
    pub requests: u64,
    /// Age of the oldest request not yet loaded; zero when caught up.
    #[serde(rename = "lag_seconds")]
    pub seconds: f64,
    pub loaded_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// The lag of one sink, or `None` if it has never run.
pub(super) fn lag(
    conn: &Connection,
    sink: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<Lag>> {
    let row = conn
        .query_row(
            "SELECT position, loaded_at, last_error, last_error_at FROM sink_cursors \
             WHERE sink = ?1",
            [sink],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((position, loaded_at, last_error, last_error_at)) = row else { return Ok(None) };
    let (requests, seconds) = behind(conn, position, now)?;
    Ok(Some(Lag {
        sink: sink.to_owned(),
        position,
        requests,
        seconds,
        loaded_at,
        last_error,
        last_error_at,
    }))
}

/// Requests after `position`, and the age in seconds of the oldest of them (zero when there
/// is none). Cheap: two lookups on `raw_requests`' primary key.
pub(super) fn behind(
    conn: &Connection,
    position: i64,
    now: DateTime<Utc>,
) -> rusqlite::Result<(u64, f64)> {
    let last: i64 =
        conn.query_row("SELECT coalesce(max(seq), 0) FROM raw_requests", [], |row| row.get(0))?;
    let oldest: Option<String> = conn
        .query_row(
            "SELECT received_at FROM raw_requests WHERE seq > ?1 ORDER BY seq LIMIT 1",
            [position],
            |row| row.get(0),
        )
        .optional()?;
    let seconds = oldest
        .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
        .map(|oldest| (now - oldest.with_timezone(&Utc)).num_milliseconds().max(0) as f64 / 1e3)
        .unwrap_or(0.0);
    // `seq` has no gaps in practice (AUTOINCREMENT, rolled-back inserts aside), so the
    // difference counts the requests without a scan.
    Ok(((last - position).max(0).unsigned_abs(), seconds))
}

/// Removes a sink's cursor; where it was, if it had one.
pub(super) fn forget(conn: &Connection, sink: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("DELETE FROM sink_cursors WHERE sink = ?1 RETURNING position", [sink], |row| {
        row.get(0)
    })
    .optional()
}

/// Every sink that has a cursor, by name.
pub(super) fn sinks(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT sink FROM sink_cursors ORDER BY sink")?;
    statement.query_map([], |row| row.get(0))?.collect()
}

/// Keeps a sink's refusals of `after < seq <= through` in `failed_events`, replacing those it
/// made of the same requests before (a reload).
pub(super) fn replace_refusals(
    conn: &Connection,
    sink: &str,
    after: i64,
    through: i64,
    refusals: &[Refusal],
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM failed_events WHERE sink = ?1 AND raw_seq > ?2 AND raw_seq <= ?3",
        params![sink, after, through],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body, sink) \
         VALUES (?1, ?2, 'load', ?3, ?4, ?5)",
    )?;
    for refusal in refusals {
        insert.execute(params![
            refusal.seq,
            format_time(&refusal.received_at),
            refusal.reason,
            refusal.body,
            sink
        ])?;
    }
    Ok(())
}

/// Empties the bodies of `drop_raw_bodies` requests that every sink in `sinks` has loaded: no
/// sink will read them again (a replay skips them). The digest kept in their place was
/// computed when they arrived.
pub(super) fn drop_loaded_bodies(conn: &Connection, sinks: &[&str]) -> rusqlite::Result<usize> {
    if sinks.is_empty() {
        return Ok(0);
    }
    let placeholders = vec!["?"; sinks.len()].join(", ");
    let loaded: Option<i64> = conn.query_row(
        &format!("SELECT min(position) FROM sink_cursors WHERE sink IN ({placeholders})"),
        rusqlite::params_from_iter(sinks),
        |row| row.get(0),
    )?;
    let Some(loaded) = loaded else { return Ok(0) };
    // A pseudonymised request without its body keeps no query either: the query can be the
    // event itself (Snowplow GET, journey parameters).
    conn.execute(
        "UPDATE raw_requests SET body = x'', body_sha256 = drop_body_digest, body_dropped = 1, \
         query = CASE WHEN pseudonymised THEN NULL ELSE query END, drop_body_digest = NULL \
         WHERE drop_body_digest IS NOT NULL AND seq <= ?1",
        [loaded],
    )
}
