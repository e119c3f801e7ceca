//! What the inspector reads of the store: pages of recent requests with what became of them,
//! one request whole, the failures, and counts per minute.
//!
//! Every query starts at the newest row of an index and stops after a bounded number of rows,
//! so a view costs the same with ten requests in the store or ten million. A filter with an
//! index of its own (an email or user id, failures, journey calls) reads at most
//! [`CANDIDATES`] of its rows; the others (source, event name, text) examine at most
//! [`SCAN_WINDOW`] requests. When that bound ends a page early, the page says where to go on
//! (`next_before`) rather than scanning the whole store.

use chrono::{DateTime, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params_from_iter};
use serde_json::{Map, Value};

mod view;

pub use view::*;

use super::SpoolError;
use super::reader::SpoolReader;
use crate::request::{RequestKind, format_time};

/// The most requests one page holds.
pub const MAX_PAGE: usize = 200;
/// Requests examined per page when no index serves the filter.
pub const SCAN_WINDOW: i64 = 20_000;
/// Rows read from a filter's own index per page.
pub const CANDIDATES: usize = 5_000;
/// The sink whose cursor says whether a request's rows are in the embedded tables yet.
const EMBEDDED_SINK: &str = "sqlite";
/// Columns holding JSON text, shown as JSON.
const JSON_COLUMNS: [&str; 6] =
    ["data", "email_list_ids", "labels", "transactional_data", "parse_warnings", "headers"];

impl SpoolReader {
    /// Gives up on a query running longer than `limit` (it then fails with an interrupt), so
    /// an unlucky filter cannot hold a reader for long.
    pub fn limit_query_time(&mut self, limit: std::time::Duration) -> Result<(), SpoolError> {
        let started = std::time::Instant::now();
        self.conn_mut().progress_handler(50_000, Some(move || started.elapsed() > limit))?;
        Ok(())
    }

    /// Runs `work` in one read transaction, so every statement of a view sees the store as
    /// it was at the first (a load or a replay meanwhile cannot mislabel a row).
    pub fn in_snapshot<T>(
        &self,
        work: impl FnOnce(&SpoolReader) -> Result<T, SpoolError>,
    ) -> Result<T, SpoolError> {
        self.conn().execute_batch("BEGIN")?;
        let result = work(self);
        // Nothing was written: ending the transaction cannot lose anything.
        let _ = self.conn().execute_batch("COMMIT");
        result
    }

    /// A page of requests, newest first.
    pub fn requests(&self, filter: &RequestFilter) -> Result<RequestPage, SpoolError> {
        let conn = self.conn();
        let last_seq = self.last_seq()?;
        let cursor = embedded_position(conn)?;
        let limit = filter.limit.clamp(1, MAX_PAGE);
        // Exclusive bounds: lo < seq < hi.
        let mut hi = filter.before.unwrap_or(i64::MAX).min(last_seq.saturating_add(1));
        let mut lo = filter.after.unwrap_or(0).max(0);
        if let Some(until) = &filter.until {
            hi = hi.min(first_seq_at_or_after(conn, until, last_seq, true)?);
        }
        if let Some(since) = &filter.since {
            lo = lo.max(first_seq_at_or_after(conn, since, last_seq, false)? - 1);
        }
        if filter.outcome == Some(OutcomeFilter::Pending) {
            lo = lo.max(cursor);
        }
        if lo.saturating_add(1) >= hi {
            return Ok(RequestPage { requests: Vec::new(), next_before: None, last_seq });
        }

        let bounds = filter.bounds;
        // Each request examined must pass `conditions`: ?1 < seq < ?2, then the filters' own
        // values from ?3 on.
        let mut values: Vec<SqlValue> = vec![SqlValue::Integer(lo), SqlValue::Integer(hi)];
        let mut conditions = vec!["r.seq > ?1 AND r.seq < ?2".to_owned()];
        let mut bind = |value: SqlValue| {
            values.push(value);
            format!("?{}", values.len())
        };
        if let Some(source) = &filter.source {
            conditions.push(format!("r.source = {}", bind(SqlValue::Text(source.clone()))));
        }
        if let Some(event) = &filter.event {
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM events e WHERE e.raw_seq = r.seq AND e.event_name = {})",
                bind(SqlValue::Text(event.clone()))
            ));
        }
        if let Some(text) = &filter.text {
            let needle = bind(SqlValue::Blob(text.as_bytes().to_vec()));
            conditions.push(format!(
                "(instr(r.body, {needle}) > 0 OR instr(CAST(coalesce(r.query, '') AS BLOB), \
                 {needle}) > 0)"
            ));
        }
        let has_events = "EXISTS (SELECT 1 FROM events e WHERE e.raw_seq = r.seq)";
        let has_failures = "EXISTS (SELECT 1 FROM failed_events f WHERE f.raw_seq = r.seq)";
        let has_call = "EXISTS (SELECT 1 FROM journey_calls j WHERE j.seq = r.seq)";
        match filter.outcome {
            Some(OutcomeFilter::Events) => conditions.push(has_events.to_owned()),
            Some(OutcomeFilter::Failed) => conditions.push(has_failures.to_owned()),
            Some(OutcomeFilter::Journey) => conditions.push(has_call.to_owned()),
            Some(OutcomeFilter::Duplicate) => conditions.push(format!(
                "NOT {has_events} AND NOT {has_failures} AND NOT {has_call} AND r.seq <= {}",
                bind(SqlValue::Integer(cursor))
            )),
            Some(OutcomeFilter::Pending) | None => {}
        }
        // One more than the page, to know whether anything older matches.
        let sql = format!(
            "SELECT r.seq FROM raw_requests r WHERE {} ORDER BY r.seq DESC LIMIT {}",
            conditions.join(" AND "),
            limit + 1
        );
        let mut statement = conn.prepare(&sql)?;
        // Where the examined rows ended, when the bound and not the store ended them.
        let (mut seqs, floor): (Vec<i64>, Option<i64>) = match candidates(conn, filter, lo, hi)? {
            // A filter with an index of its own: its newest rows, examined one by one (each
            // a lookup by primary key) until the page is full.
            Some(candidates) => {
                let mut seqs = Vec::new();
                for &seq in &candidates {
                    values[0] = SqlValue::Integer(seq - 1);
                    values[1] = SqlValue::Integer(seq + 1);
                    if statement.exists(params_from_iter(values.iter()))? {
                        seqs.push(seq);
                        if seqs.len() > limit {
                            break;
                        }
                    }
                }
                let full = candidates.len() >= bounds.candidates;
                (seqs, full.then(|| candidates.last().copied()).flatten())
            }
            // Otherwise the newest `scan_window` requests below `hi`.
            None => {
                let window_lo = lo.max(hi.saturating_sub(bounds.scan_window.saturating_add(1)));
                values[0] = SqlValue::Integer(window_lo);
                let seqs = statement
                    .query_map(params_from_iter(values.iter()), |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                (seqs, (window_lo > lo).then_some(window_lo + 1))
            }
        };
        let next_before = if seqs.len() > limit {
            seqs.truncate(limit);
            seqs.last().copied()
        } else {
            floor
        };
        let requests = seqs
            .iter()
            .map(|&seq| summary(conn, seq, cursor))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestPage { requests, next_before, last_seq })
    }

    /// One request with every row made from it; `None` if there is no such request.
    pub fn request(&self, seq: i64) -> Result<Option<RequestDetail>, SpoolError> {
        let conn = self.conn();
        let cursor = embedded_position(conn)?;
        let Some(summary) = summary(conn, seq, cursor)? else { return Ok(None) };
        let request =
            rows(conn, "SELECT * FROM raw_requests WHERE seq = ?1", seq)?.pop().unwrap_or_default();
        let events = rows(conn, "SELECT * FROM events WHERE raw_seq = ?1", seq)?;
        let journey_calls = rows(conn, "SELECT * FROM journey_calls WHERE seq = ?1", seq)?;
        let failures =
            rows(conn, "SELECT * FROM failed_events WHERE raw_seq = ?1 ORDER BY id", seq)?;
        let mut statement =
            conn.prepare("SELECT sink, position FROM sink_cursors ORDER BY sink")?;
        let loaded_by = statement
            .query_map([], |r| {
                Ok(SinkPosition { sink: r.get(0)?, loaded: r.get::<_, i64>(1)? >= seq })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(RequestDetail {
            summary,
            request,
            events,
            journey_calls,
            failures,
            loaded_by,
            carried_earlier: Vec::new(),
        }))
    }

    /// The list line of request `seq`, or `None` if there is no such request.
    pub fn summary(&self, seq: i64) -> Result<Option<RequestSummary>, SpoolError> {
        let conn = self.conn();
        Ok(summary(conn, seq, embedded_position(conn)?)?)
    }

    /// When the newest request the embedded tables hold was received: `now` when they hold
    /// every request, the epoch when none.
    pub fn loaded_through(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, SpoolError> {
        let conn = self.conn();
        let position = embedded_position(conn)?;
        if position >= self.last_seq()? {
            return Ok(now);
        }
        let at: Option<String> = conn
            .query_row(
                "SELECT received_at FROM raw_requests WHERE seq <= ?1 ORDER BY seq DESC \
                 LIMIT 1",
                [position],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map_or(DateTime::UNIX_EPOCH, |at| at.with_timezone(&Utc)))
    }

    /// The newest seq in the store; 0 when it is empty.
    pub fn last_seq(&self) -> Result<i64, SpoolError> {
        Ok(self
            .conn()
            .query_row("SELECT coalesce(max(seq), 0) FROM raw_requests", [], |r| r.get(0))?)
    }

    /// The event ids in the store among `ids`, with the request that first carried each.
    pub fn carriers(&self, ids: &[String]) -> Result<Vec<(String, i64)>, SpoolError> {
        let mut statement =
            self.conn().prepare_cached("SELECT raw_seq FROM events WHERE event_id = ?1")?;
        let mut found = Vec::new();
        for id in ids {
            if let Some(seq) = statement.query_row([id], |r| r.get::<_, i64>(0)).optional()? {
                found.push((id.clone(), seq));
            }
        }
        Ok(found)
    }

    /// A page of `failed_events`, newest first.
    pub fn failed(&self, before: Option<i64>, limit: usize) -> Result<FailedPage, SpoolError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut statement = self.conn().prepare_cached(
            "SELECT f.id, f.raw_seq, f.received_at, r.source, f.stage, f.reason, f.sink, \
             length(f.body), CAST(substr(f.body, 1, 2000) AS TEXT) \
             FROM failed_events f LEFT JOIN raw_requests r ON r.seq = f.raw_seq \
             WHERE f.id < ?1 ORDER BY f.id DESC LIMIT ?2",
        )?;
        let mut failures: Vec<FailedRow> = statement
            .query_map(rusqlite::params![before.unwrap_or(i64::MAX), limit as i64 + 1], |r| {
                Ok(FailedRow {
                    id: r.get(0)?,
                    raw_seq: r.get(1)?,
                    received_at: r.get(2)?,
                    source: r.get(3)?,
                    stage: r.get(4)?,
                    reason: r.get(5)?,
                    sink: r.get(6)?,
                    body_bytes: r.get(7)?,
                    body_preview: lossy(r.get_ref(8)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        // One more than the page was read, to know whether anything older is left.
        let next_before = if failures.len() > limit {
            failures.truncate(limit);
            failures.last().map(|f| f.id)
        } else {
            None
        };
        Ok(FailedPage { failures, next_before })
    }

    /// The events and failures of the requests received in `start <= t < end`, by event name
    /// (`failed` for failures). The requests' seq range comes from a binary search over the
    /// primary key; the events are counted from the `(raw_seq, event_name)` index alone, never
    /// the table, so the cost is a walk over that range of the index.
    pub fn counts_between(
        &self,
        start: &DateTime<Utc>,
        end: &DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, SpoolError> {
        let conn = self.conn();
        let last_seq = self.last_seq()?;
        let from = first_seq_at_or_after(conn, start, last_seq, false)?;
        let to = first_seq_at_or_after(conn, end, last_seq, false)?;
        let mut counts = Vec::new();
        if from >= to {
            return Ok(counts);
        }
        let mut statement = conn.prepare_cached(
            "SELECT event_name, count(*) FROM events INDEXED BY events_raw_seq_name \
             WHERE raw_seq >= ?1 AND raw_seq < ?2 GROUP BY event_name",
        )?;
        for row in statement.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?)))? {
            counts.push(row?);
        }
        let failed: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM failed_events WHERE raw_seq >= ?1 AND raw_seq < ?2",
            )?
            .query_row([from, to], |r| r.get(0))?;
        if failed > 0 {
            counts.push(("failed".to_owned(), failed));
        }
        Ok(counts)
    }
}

/// The newest requests (at most `filter.bounds.candidates`, below `hi` and above `lo`) that a
/// filter with an index of its own names: a person's events and journey calls, failures,
/// journey calls. `None` when no such filter is set.
fn candidates(
    conn: &Connection,
    filter: &RequestFilter,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Option<Vec<i64>>> {
    let limit = filter.bounds.candidates;
    // Each branch walks its index backwards from `hi` and stops at `limit`.
    let newest = |table: &str, seq: &str, column: &str| {
        format!(
            "SELECT seq FROM (SELECT {seq} AS seq FROM {table} WHERE {column} = ?3 \
             AND {seq} > ?1 AND {seq} < ?2 ORDER BY {seq} DESC LIMIT {limit})"
        )
    };
    let (sql, spellings) = if !filter.who.is_empty() {
        let branches = [
            newest("events", "raw_seq", "email"),
            newest("events", "raw_seq", "user_id"),
            newest("journey_calls", "seq", "email"),
            newest("journey_calls", "seq", "user_id"),
        ];
        (format!("{} ORDER BY 1 DESC LIMIT {limit}", branches.join(" UNION ")), &filter.who[..])
    } else {
        match filter.outcome {
            Some(OutcomeFilter::Failed) => (
                format!(
                    "SELECT DISTINCT raw_seq FROM failed_events WHERE raw_seq > ?1 \
                     AND raw_seq < ?2 ORDER BY raw_seq DESC LIMIT {limit}"
                ),
                &[][..],
            ),
            Some(OutcomeFilter::Journey) => (
                format!(
                    "SELECT seq FROM journey_calls WHERE seq > ?1 AND seq < ?2 \
                     ORDER BY seq DESC LIMIT {limit}"
                ),
                &[][..],
            ),
            _ => return Ok(None),
        }
    };
    let mut statement = conn.prepare_cached(&sql)?;
    if spellings.is_empty() {
        let rows = statement.query_map(rusqlite::params![lo, hi], |r| r.get(0))?;
        return rows.collect::<rusqlite::Result<Vec<i64>>>().map(Some);
    }
    // Each spelling of the person, merged newest first.
    let mut seqs = Vec::new();
    for who in spellings {
        for seq in statement.query_map(rusqlite::params![lo, hi, who], |r| r.get::<_, i64>(0))? {
            seqs.push(seq?);
        }
    }
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.dedup();
    seqs.truncate(limit);
    Ok(Some(seqs))
}

/// The embedded tables' cursor: requests after it have no rows there yet.
fn embedded_position(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row("SELECT position FROM sink_cursors WHERE sink = ?1", [EMBEDDED_SINK], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// The smallest seq `s` such that every request before it was received before `time` (at or
/// before it, when `strictly`) and the one at or after it was not: `last_seq + 1` when every
/// request was. A binary search over the primary key, since `received_at` grows with `seq`
/// (both follow arrival; requests committed in one batch may differ by its milliseconds).
fn first_seq_at_or_after(
    conn: &Connection,
    time: &DateTime<Utc>,
    last_seq: i64,
    strictly: bool,
) -> rusqlite::Result<i64> {
    let time = format_time(time);
    let mut statement = conn.prepare_cached(
        "SELECT seq, received_at FROM raw_requests WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?;
    let (mut lo, mut hi) = (1_i64, last_seq.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let first: Option<(i64, String)> =
            statement.query_row([mid], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        match first {
            // The first request from `mid` on came before `time`: so did every one up to it.
            Some((seq, at)) if (if strictly { at <= time } else { at < time }) => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The list line of request `seq`, or `None` if there is none.
fn summary(conn: &Connection, seq: i64, cursor: i64) -> rusqlite::Result<Option<RequestSummary>> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, received_at, source, kind, journey, method, path, content_type, \
         length(body), body_dropped FROM raw_requests WHERE seq = ?1",
    )?;
    let Some(mut summary) = statement
        .query_row([seq], |r| {
            let path: String = r.get(6)?;
            let kind = match r.get::<_, Option<String>>(3)? {
                Some(kind) => RequestKind::from_stored(&kind, r.get(4)?)
                    .map_or("unknown", |kind| kind.as_str()),
                None => RequestKind::of_path(&path).as_str(),
            };
            Ok(RequestSummary {
                seq: r.get(0)?,
                received_at: r.get(1)?,
                source: r.get(2)?,
                kind,
                journey: r.get(4)?,
                method: r.get(5)?,
                path,
                content_type: r.get(7)?,
                body_bytes: r.get(8)?,
                body_dropped: r.get(9)?,
                who: None,
                events: Vec::new(),
                failures: 0,
                journey_call: false,
                outcome: "pending",
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut statement = conn.prepare_cached(
        "SELECT event_name, count(*), min(coalesce(email, user_id)) FROM events \
         WHERE raw_seq = ?1 GROUP BY event_name ORDER BY event_name",
    )?;
    let mut rows = statement.query([seq])?;
    while let Some(row) = rows.next()? {
        summary.events.push(NameCount { name: row.get(0)?, count: row.get(1)? });
        if summary.who.is_none() {
            summary.who = row.get(2)?;
        }
    }
    summary.failures = conn
        .prepare_cached("SELECT count(*) FROM failed_events WHERE raw_seq = ?1")?
        .query_row([seq], |r| r.get(0))?;
    let call: Option<Option<String>> = conn
        .prepare_cached("SELECT coalesce(email, user_id) FROM journey_calls WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    if let Some(who) = call {
        summary.journey_call = true;
        summary.who = summary.who.or(who);
    }
    summary.outcome = match (summary.events.is_empty(), summary.failures > 0) {
        _ if seq > cursor => "pending",
        (false, true) => "partial",
        (true, true) => "failed",
        _ if summary.journey_call => "journey",
        (false, false) => "events",
        (true, false) => "duplicate",
    };
    Ok(Some(summary))
}

/// The rows `sql` (one `?1` parameter) selects, each as a JSON object of its columns.
fn rows(
    conn: &Connection,
    sql: &str,
    param: impl ToSql,
) -> rusqlite::Result<Vec<Map<String, Value>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let mut rows = statement.query([param])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(row_object(&names, row)?);
    }
    Ok(out)
}

fn row_object(names: &[String], row: &Row<'_>) -> rusqlite::Result<Map<String, Value>> {
    let mut object = Map::new();
    for (index, name) in names.iter().enumerate() {
        let value = match row.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::from(n),
            ValueRef::Real(x) => Value::from(x),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if JSON_COLUMNS.contains(&name.as_str()) => {
                    serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
                }
                Ok(text) => Value::from(text),
                Err(_) => {
                    use base64::Engine as _;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    object.insert(format!("{name}_base64"), Value::from(encoded));
                    continue;
                }
            },
        };
        object.insert(name.clone(), value);
    }
    Ok(object)
}

/// A preview's text: valid UTF-8 as it is, anything else with replacement characters.
fn lossy(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
    }
}

#[cfg(test)]
mod tests;
