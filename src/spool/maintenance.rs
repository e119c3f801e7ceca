//! Work on a store outside the request stream (`hookhouse replay`, `hookhouse prune`): selecting stored requests
//! and writing in short transactions on a connection of its own, safe while `serve` runs.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};

use super::reader::{PlannedRemoval, REQUEST_COLUMNS, stored_request};
use super::retention::{self, Target};
use super::{SpoolError, cursors};
use crate::config::Retention;
use crate::request::{StoredRequest, format_time};

/// Which stored requests to select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Since(DateTime<Utc>),
    /// `seq` from, to (inclusive).
    Seqs(i64, i64),
    /// Only requests with a row in `failed_events` made by the normaliser.
    Failed,
}

impl Selection {
    /// Requests whose body is gone are never selected: there is nothing to read again.
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

    fn bound(&self) -> Vec<(&'static str, Box<dyn ToSql>)> {
        match self {
            Selection::Since(time) => vec![(":since", Box::new(format_time(time)))],
            Selection::Seqs(from, to) => vec![(":from", Box::new(*from)), (":to", Box::new(*to))],
            _ => vec![],
        }
    }
}

/// A read-write connection for maintenance.
#[derive(Debug)]
pub struct Maintenance {
    conn: Connection,
}

impl Maintenance {
    /// Opens an existing store; waits up to 10 s for `serve`'s writer when it holds the lock.
    pub fn open(db_path: &Path) -> Result<Maintenance, SpoolError> {
        if !db_path.is_file() {
            return Err(SpoolError::Missing(db_path.display().to_string()));
        }
        let conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|source| SpoolError::Open { path: db_path.display().to_string(), source })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Maintenance { conn })
    }

    /// How many requests `selection` holds.
    pub fn count(&self, selection: &Selection) -> Result<u64, SpoolError> {
        let bound = selection.bound();
        let params: Vec<(&str, &dyn ToSql)> =
            bound.iter().map(|(name, value)| (*name, value.as_ref())).collect();
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM raw_requests WHERE {}", selection.condition()),
            params.as_slice(),
            |row| row.get(0),
        )?;
        Ok(total.unsigned_abs())
    }

    /// The next `limit` selected requests after `after`, in order.
    pub fn read_selected(
        &self,
        selection: &Selection,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRequest>, SpoolError> {
        let bound = selection.bound();
        let mut params: Vec<(&str, &dyn ToSql)> =
            bound.iter().map(|(name, value)| (*name, value.as_ref())).collect();
        params.push((":after", &after));
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM raw_requests WHERE seq > :after AND {} \
             ORDER BY seq LIMIT {limit}",
            selection.condition()
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params.as_slice(), stored_request)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Runs `work` in one immediate transaction.
    pub fn write<T>(
        &mut self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SpoolError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

impl Maintenance {
    /// Removes the cursor of a sink no longer configured, so that it holds retention back no
    /// more. Returns where it was, or the sinks the store has when it has no such cursor.
    pub fn forget_sink(&mut self, sink: &str) -> Result<Result<i64, Vec<String>>, SpoolError> {
        self.write(|tx| match cursors::forget(tx, sink)? {
            Some(position) => Ok(Ok(position)),
            None => Ok(Err(cursors::sinks(tx)?)),
        })
    }
}

/// Sends every sink but `except` back to just before `seq`, in the caller's transaction, and
/// voids acknowledgements of batches read before: they load again.
pub fn rewind_sinks(conn: &Connection, seq: i64, except: &str) -> rusqlite::Result<()> {
    cursors::rewind_all(conn, seq, except)
}

impl Maintenance {
    /// Applies `[retention]` now, as `serve`'s pruner does, in short transactions of this
    /// connection (each waits for `serve`'s writer when it holds the lock); `progress` hears
    /// each target's running total. Returns what went, then gives freed pages back.
    pub fn prune(
        &mut self,
        settings: &Retention,
        now: DateTime<Utc>,
        mut progress: impl FnMut(&PlannedRemoval),
    ) -> Result<(Vec<PlannedRemoval>, u64), SpoolError> {
        let mut done = Vec::new();
        for target in Target::ALL {
            let Some(cutoff) = target.cutoff(settings, now) else { continue };
            let mut removal =
                PlannedRemoval { target: target.name(), cutoff: cutoff.clone(), rows: 0, bytes: 0 };
            let mut after = retention::start(&self.conn, target)?;
            loop {
                let step =
                    self.write(|conn| retention::step(conn, target, &cutoff, after, 1024, true))?;
                removal.rows += step.removed;
                removal.bytes += step.bytes;
                progress(&removal);
                if step.done {
                    break;
                }
                after = step.after;
            }
            done.push(removal);
        }
        let mut pages = 0;
        loop {
            let given = self.write(|conn| retention::vacuum(conn, 1024))?;
            pages += given;
            if given < 1024 {
                break;
            }
        }
        Ok((done, pages))
    }
}
