//! Integrity of the store: SQLite's own checks of the file, every kept body against its
//! digest, and the request numbers against what the sinks loaded. `hookhouse check` runs them
//! all; `serve` checks the file in the background at start ([`start_background_check`]) and
//! keeps the result where `/readyz`, `/metrics` and `hookhouse status` read it.
//!
//! Every check reads on a read-only connection of its own, so it runs beside `serve` (WAL): it
//! never blocks the writer, but while one read transaction lasts the checkpointer cannot move
//! the WAL past it, so the WAL grows by what arrives meanwhile.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension as _};

use super::SpoolError;
use crate::request::{BodyCheck, check_body};

/// What to do about a damaged store, said wherever the damage is reported.
pub const WHAT_TO_DO: &str = "restore the last backup (`hookhouse backup`; docs/operating.md, \
     \"Restoring\"), or copy the requests into a fresh store and `hookhouse replay` them \
     (docs/operating.md, \"A damaged store\")";

/// Rows of bodies read per statement: each batch is a short read transaction of its own.
const BODY_BATCH: i64 = 500;

/// How many virtual-machine steps SQLite runs between two calls of a check's `tick`.
const TICK_OPS: i32 = 1_000;

/// How thoroughly SQLite checks the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `PRAGMA quick_check`: every b-tree page's structure, but not whether each index holds
    /// exactly its table's rows (a damaged index entry passes it).
    Quick,
    /// `PRAGMA integrity_check`: also every index against its table.
    Full,
    /// `PRAGMA integrity_check(events)`: the `events` table against its indexes, the primary
    /// key that deduplication relies on among them.
    Events,
}

impl Depth {
    fn pragma(self) -> &'static str {
        match self {
            Depth::Quick => "PRAGMA quick_check",
            Depth::Full => "PRAGMA integrity_check",
            Depth::Events => "PRAGMA integrity_check(events)",
        }
    }
}

/// What SQLite's check of the file found.
#[derive(Debug, Clone, PartialEq)]
pub enum Structure {
    Ok,
    /// Its first messages, at most the number asked for.
    Damaged(Vec<String>),
    /// `tick` asked it to stop before it finished.
    Stopped,
}

/// Runs SQLite's check of the file at `db_path`. `tick(elapsed)` is called every so often
/// while it runs (to show progress or to bound its time); returning false stops the check.
pub fn check_structure(
    db_path: &Path,
    depth: Depth,
    max_problems: usize,
    mut tick: impl FnMut(Duration) -> bool + Send + 'static,
) -> Result<Structure, SpoolError> {
    let mut conn = open_read_only(db_path)?;
    let started = Instant::now();
    conn.progress_handler(TICK_OPS, Some(move || !tick(started.elapsed())))?;
    let mut statement = conn.prepare(depth.pragma())?;
    let mut rows = statement.query([])?;
    let mut problems = Vec::new();
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                let text: String = row.get(0)?;
                // A row may hold several messages, a line each, under a line naming the schema.
                let messages =
                    text.lines().filter(|line| *line != "ok" && !line.starts_with("***"));
                for message in messages {
                    if problems.len() < max_problems {
                        problems.push(message.to_owned());
                    }
                }
            }
            Ok(None) => break,
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                return Ok(Structure::Stopped);
            }
            // A page SQLite cannot even walk: the check's own answer.
            Err(rusqlite::Error::SqliteFailure(err, message))
                if err.code == rusqlite::ErrorCode::DatabaseCorrupt =>
            {
                problems.push(message.unwrap_or_else(|| err.to_string()));
                break;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(if problems.is_empty() { Structure::Ok } else { Structure::Damaged(problems) })
}

/// What the check of the bodies against their digests found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BodyReport {
    /// Bodies whose plain SHA-256 matched.
    pub verified: u64,
    /// Bodies that cannot be checked: dropped (`body_dropped`) or hidden behind keyed digests
    /// (`body_hidden`).
    pub skipped: u64,
    /// Requests whose body no longer matches, the first ones by seq...
    pub altered: Vec<i64>,
    /// ...and how many there are in all.
    pub altered_total: u64,
    /// Why the bodies after some request could not be read, if they could not.
    pub unreadable: Option<String>,
}

impl BodyReport {
    pub fn is_damaged(&self) -> bool {
        self.altered_total > 0 || self.unreadable.is_some()
    }
}

/// Checks every kept body against its `body_sha256`, in batches; `progress(seq, last_seq)`
/// after each.
pub fn check_bodies(
    db_path: &Path,
    max_listed: usize,
    mut progress: impl FnMut(i64, i64),
) -> Result<BodyReport, SpoolError> {
    let conn = open_read_only(db_path)?;
    let mut report = BodyReport::default();
    let last = conn.query_row("SELECT coalesce(max(seq), 0) FROM raw_requests", [], |row| {
        row.get::<_, i64>(0)
    });
    let last = match last {
        Ok(last) => last,
        Err(err) => {
            report.unreadable = Some(format!("the newest request: {err}"));
            return Ok(report);
        }
    };
    let mut statement = conn.prepare(
        "SELECT seq, body, body_sha256, body_dropped, body_hidden FROM raw_requests \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut after = 0;
    loop {
        let batch = statement
            .query_map([after, BODY_BATCH], |row| {
                let seq: i64 = row.get(0)?;
                let body: Vec<u8> = row.get(1)?;
                let digest: String = row.get(2)?;
                Ok((seq, check_body(&body, &digest, row.get(3)?, row.get(4)?)))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                report.unreadable = Some(format!("the requests after seq {after}: {err}"));
                break;
            }
        };
        let Some(&(seq, _)) = batch.last() else { break };
        for (seq, check) in batch {
            match check {
                BodyCheck::Intact => report.verified += 1,
                BodyCheck::Unverifiable => report.skipped += 1,
                BodyCheck::Altered => {
                    report.altered_total += 1;
                    if report.altered.len() < max_listed {
                        report.altered.push(seq);
                    }
                }
            }
        }
        after = seq;
        progress(after, last);
    }
    Ok(report)
}

/// Requests a sink loaded that the store no longer holds: its newest request is below what a
/// sink's cursor (or the embedded tables) say was loaded, as after a WAL cut or the restore of
/// an older copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeqGap {
    /// The newest request the store holds (0: none).
    pub last_seq: i64,
    /// The highest request loaded...
    pub loaded_through: i64,
    /// ...by this sink (or `events`: the embedded tables hold rows of it).
    pub witness: String,
}

impl SeqGap {
    pub fn missing(&self) -> i64 {
        self.loaded_through - self.last_seq
    }

    /// What is wrong, in one sentence.
    pub fn describe(&self) -> String {
        format!(
            "requests after seq {} up to {} are missing from the store, though `{}` had loaded \
             them ({} requests); `serve` numbers new requests above {}, so that no number a \
             sink loaded is used again",
            self.last_seq,
            self.loaded_through,
            self.witness,
            self.missing(),
            self.loaded_through
        )
    }
}

/// Compares the newest stored request with the sinks' cursors and the embedded events. Cheap:
/// a few lookups on primary keys and indexes.
pub(super) fn seq_gap(conn: &Connection) -> rusqlite::Result<Option<SeqGap>> {
    let last_seq: i64 =
        conn.query_row("SELECT coalesce(max(seq), 0) FROM raw_requests", [], |row| row.get(0))?;
    let cursor: Option<(String, i64)> = conn
        .query_row(
            "SELECT sink, position FROM sink_cursors ORDER BY position DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let events: Option<i64> =
        conn.query_row("SELECT max(raw_seq) FROM events", [], |row| row.get(0))?;
    let mut witnesses: Vec<(String, i64)> = cursor.into_iter().collect();
    witnesses.extend(events.map(|seq| ("events".to_owned(), seq)));
    let highest = witnesses.into_iter().max_by_key(|(_, seq)| *seq);
    Ok(highest.filter(|(_, seq)| *seq > last_seq).map(|(witness, loaded_through)| SeqGap {
        last_seq,
        loaded_through,
        witness,
    }))
}

/// At open, on the writer's connection: finds a [`SeqGap`], logs it, and raises
/// `sqlite_sequence` so that the next request is numbered above every loaded one. A sink keyed
/// by seq (PostgreSQL's `raw_requests`) already holds rows under the missing numbers: reusing
/// them would load different requests under them, or lose them to its conflict clause.
pub(super) fn guard_sequence(conn: &Connection) -> rusqlite::Result<Option<SeqGap>> {
    let Some(gap) = seq_gap(conn)? else { return Ok(None) };
    let sequence: i64 = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'raw_requests'", [], |row| {
            row.get(0)
        })
        .optional()?
        .unwrap_or(0);
    if sequence < gap.loaded_through {
        let raised = conn.execute(
            "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'raw_requests'",
            [gap.loaded_through],
        )?;
        if raised == 0 {
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('raw_requests', ?1)",
                [gap.loaded_through],
            )?;
        }
    }
    tracing::error!(
        last_seq = gap.last_seq,
        loaded_through = gap.loaded_through,
        sink = %gap.witness,
        "the store is missing requests its sinks loaded: {}. The store was cut short (a damaged \
         WAL) or replaced by an older copy; what to do: {WHAT_TO_DO}",
        gap.describe()
    );
    Ok(Some(gap))
}

/// The store read-only, waiting up to 10 s for a lock (a checkpoint resetting the WAL).
fn open_read_only(db_path: &Path) -> Result<Connection, SpoolError> {
    let conn = super::reader::open_read_only(db_path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Where `serve` keeps the result of its check for `hookhouse status`, beside the store: a
/// file rather than a table, so that reading it needs no migration and a damaged file
/// cannot hide it.
pub fn result_path(db_path: &Path) -> PathBuf {
    db_path.with_file_name("integrity-check.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookhouse.db");
        let mut conn = Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        (dir, path, conn)
    }

    fn insert(conn: &Connection, body: &str, digest: &str) -> i64 {
        conn.execute(
            "INSERT INTO raw_requests (received_at, source, method, path, headers, body, \
             body_sha256) VALUES ('2026-12-03T00:00:00Z', 'default', 'POST', '/iterable/default', \
             '{}', ?1, ?2)",
            rusqlite::params![body.as_bytes(), digest],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    #[test]
    fn a_changed_body_is_named_and_an_unverifiable_one_counted() {
        let (_dir, path, conn) = store();
        let sha = crate::request::sha256_hex;
        insert(&conn, "{\"a\":1}", &sha(b"{\"a\":1}"));
        let altered = insert(&conn, "{\"a\":2}", &sha(b"{\"a\":1}"));
        let dropped = insert(&conn, "", "keyed-digest");
        conn.execute("UPDATE raw_requests SET body_dropped = 1 WHERE seq = ?1", [dropped]).unwrap();
        let report = check_bodies(&path, 10, |_, _| {}).unwrap();
        assert_eq!(report.verified, 1);
        assert_eq!(report.skipped, 1);
        assert_eq!((report.altered.clone(), report.altered_total), (vec![altered], 1));
        assert!(report.is_damaged());
        assert_eq!(check_structure(&path, Depth::Full, 5, |_| true).unwrap(), Structure::Ok);
    }

    #[test]
    fn a_cursor_past_the_last_request_raises_the_sequence() {
        let (_dir, _path, conn) = store();
        insert(&conn, "", "x");
        assert_eq!(guard_sequence(&conn).unwrap(), None);
        conn.execute("INSERT INTO sink_cursors (sink, position) VALUES ('postgres', 40)", [])
            .unwrap();
        let gap = guard_sequence(&conn).unwrap().unwrap();
        assert_eq!((gap.last_seq, gap.loaded_through, gap.witness.as_str()), (1, 40, "postgres"));
        assert_eq!(gap.missing(), 39);
        assert_eq!(insert(&conn, "", "x"), 41, "numbered above the cursor");
        assert_eq!(seq_gap(&conn).unwrap(), None);
    }
}
