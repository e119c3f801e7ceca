//! Reading the log: what sinks, `status` and replay see of `hookhouse.db`, on a read-only
//! connection of their own. WAL mode lets it read while the writer commits.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row};

use super::SpoolError;
use super::cursors::{self, Cursor, Lag};
use super::retention::{self, StoreUsage, Target};
use crate::config::Retention;
use crate::request::{RawRequest, RequestKind, StoredRequest};

/// The columns [`stored_request`] reads, in its order.
pub(super) const REQUEST_COLUMNS: &str = "seq, received_at, source, kind, journey, method, path, \
     query, headers, remote_addr, peer_addr, content_type, body, body_sha256, pseudonymised, \
     body_hidden, body_dropped, answer_status";

/// A read-only connection to the log. Blocking: call it from a blocking thread.
#[derive(Debug)]
pub struct SpoolReader {
    conn: Connection,
}

/// What a retention pass would remove of one target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedRemoval {
    pub target: &'static str,
    /// Rows received before this go (once every sink has loaded them, for requests).
    pub cutoff: String,
    pub rows: u64,
    /// Bytes of bodies, for `raw_bodies`.
    pub bytes: u64,
}

/// What the store holds, for `hookhouse status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub requests: i64,
    pub last_seq: i64,
    pub events: i64,
    pub failed_events: i64,
}

/// A read-only connection to an existing store (a missing file is an error, not a new store).
pub(super) fn open_read_only(db_path: &Path) -> Result<Connection, SpoolError> {
    if !db_path.is_file() {
        return Err(SpoolError::Missing(db_path.display().to_string()));
    }
    Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| SpoolError::Open { path: db_path.display().to_string(), source })
}

impl SpoolReader {
    /// Opens an existing store for reading.
    pub fn open(db_path: &Path) -> Result<SpoolReader, SpoolError> {
        Ok(SpoolReader { conn: open_read_only(db_path)? })
    }

    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The store's identity, so a warehouse can tell which store it is loaded from.
    pub fn store_id(&self) -> Result<String, SpoolError> {
        Ok(self.conn.query_row("SELECT id FROM spool_identity", [], |row| row.get(0))?)
    }

    /// The JetStream log this store is a copy of, if it is one.
    pub fn copy_of(&self) -> Result<Option<String>, SpoolError> {
        Ok(self.conn.query_row("SELECT copy_of FROM spool_identity", [], |row| row.get(0))?)
    }

    /// A sink's cursor; `None` for a sink that was never registered.
    pub fn cursor(&self, sink: &str) -> Result<Option<Cursor>, SpoolError> {
        Ok(cursors::read(&self.conn, sink)?)
    }

    /// The requests after `after`, in order: at most `max_requests`, and fewer once
    /// `max_bytes` of bodies are read (always at least one), so a batch of large bodies stays
    /// small in memory.
    pub fn read_after(
        &mut self,
        after: i64,
        max_requests: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRequest>, SpoolError> {
        let limit = i64::try_from(max_requests.max(1)).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM raw_requests WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params![after, limit])?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let stored = stored_request(row)?;
            bytes += stored.request.body.len();
            batch.push(stored);
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(batch)
    }

    /// Request `seq`, if the store has it.
    pub fn read_one(&self, seq: i64) -> Result<Option<StoredRequest>, SpoolError> {
        use rusqlite::OptionalExtension as _;
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM raw_requests WHERE seq = ?1");
        Ok(self.conn.prepare_cached(&sql)?.query_row([seq], stored_request).optional()?)
    }

    /// The event ids whose first request (`events.raw_seq`, the row the embedded tables keep)
    /// is in `after < seq <= through`: what a sink without keys of its own (the lake) keeps
    /// of those requests' events, so an event resent later is not written twice.
    pub fn first_carried(
        &self,
        after: i64,
        through: i64,
    ) -> Result<std::collections::HashSet<String>, SpoolError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT event_id FROM events WHERE raw_seq > ?1 AND raw_seq <= ?2")?;
        let ids = statement.query_map([after, through], |row| row.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Requests after `position` and the age in seconds of the oldest of them.
    pub fn behind(&self, position: i64, now: DateTime<Utc>) -> Result<(u64, f64), SpoolError> {
        Ok(cursors::behind(&self.conn, position, now)?)
    }

    /// How far behind each sink that ever ran is, by name.
    pub fn lags(&self, now: DateTime<Utc>) -> Result<Vec<Lag>, SpoolError> {
        let mut lags = Vec::new();
        for sink in cursors::sinks(&self.conn)? {
            lags.extend(cursors::lag(&self.conn, &sink, now)?);
        }
        Ok(lags)
    }

    /// The store's size and the age of its oldest rows.
    pub fn usage(&self) -> Result<StoreUsage, SpoolError> {
        let path = Path::new(self.conn.path().unwrap_or_default());
        Ok(retention::usage(&self.conn, path)?)
    }

    /// What a retention pass would remove now, by target, without removing it
    /// (`hookhouse prune --dry-run`): the pruner's own steps, counted instead of applied.
    pub fn prune_plan(
        &self,
        settings: &Retention,
        now: DateTime<Utc>,
    ) -> Result<Vec<PlannedRemoval>, SpoolError> {
        let mut plan = Vec::new();
        for target in Target::ALL {
            let Some(cutoff) = target.cutoff(settings, now) else { continue };
            let mut planned =
                PlannedRemoval { target: target.name(), cutoff: cutoff.clone(), rows: 0, bytes: 0 };
            let mut after = retention::start(&self.conn, target)?;
            loop {
                let step = retention::step(&self.conn, target, &cutoff, after, 4096, false)?;
                planned.rows += step.removed;
                planned.bytes += step.bytes;
                if step.done {
                    break;
                }
                after = step.after;
            }
            plan.push(planned);
        }
        Ok(plan)
    }

    /// The sink with the lowest cursor, which holds back the pruning of requests.
    pub fn slowest_sink(&self) -> Result<Option<(String, i64)>, SpoolError> {
        Ok(retention::slowest_sink(&self.conn)?)
    }

    /// Requests the sinks loaded that the store no longer holds, if any (cheap: lookups on
    /// keys and indexes).
    pub fn seq_gap(&self) -> Result<Option<super::integrity::SeqGap>, SpoolError> {
        Ok(super::integrity::seq_gap(&self.conn)?)
    }

    pub fn totals(&self) -> Result<Totals, SpoolError> {
        let count =
            |sql: &str| -> rusqlite::Result<i64> { self.conn.query_row(sql, [], |row| row.get(0)) };
        Ok(Totals {
            requests: count("SELECT count(*) FROM raw_requests")?,
            last_seq: self.last_seq()?,
            events: count("SELECT count(*) FROM events")?,
            failed_events: count("SELECT count(*) FROM failed_events")?,
        })
    }

    /// The live secret URLs' hashes: secret hash -> (source, id).
    pub fn secret_url_hashes(
        &self,
    ) -> Result<std::collections::HashMap<String, (String, i64)>, SpoolError> {
        Ok(super::secret_urls::load_hashes(&self.conn)?)
    }
}

/// A `raw_requests` row read with [`REQUEST_COLUMNS`].
pub(super) fn stored_request(row: &Row<'_>) -> rusqlite::Result<StoredRequest> {
    let seq: i64 = row.get(0)?;
    let received_at: String = row.get(1)?;
    let received_at = DateTime::parse_from_rfc3339(&received_at)
        .map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(err))
        })?
        .with_timezone(&Utc);
    let path: String = row.get(6)?;
    let kind = match row.get::<_, Option<String>>(3)? {
        Some(kind) => RequestKind::from_stored(&kind, row.get(4)?).ok_or_else(|| {
            let why = format!("request {seq} has an unknown kind `{kind}`: upgrade hookhouse");
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, why.into())
        })?,
        // Stored before schema 6.
        None => RequestKind::of_path(&path),
    };
    let request = RawRequest {
        received_at,
        source: row.get(2)?,
        kind,
        method: row.get(5)?,
        path,
        query: row.get(7)?,
        headers_json: row.get(8)?,
        remote_addr: row.get(9)?,
        peer_addr: row.get(10)?,
        content_type: row.get(11)?,
        body: Bytes::from(row.get::<_, Vec<u8>>(12)?),
        body_sha256: row.get(13)?,
    };
    Ok(StoredRequest {
        seq,
        request,
        pseudonymised: row.get(14)?,
        body_hidden: row.get(15)?,
        body_dropped: row.get(16)?,
        answer_status: row.get(17)?,
    })
}
