//! What `[retention]` removes from the store, one small step at a time.
//!
//! A step reads a window of at most `limit` rows in key order (the oldest first) and removes
//! those of them that are old enough, so the write lock is held for a bounded time whatever
//! the store's size. The same window, counted instead of removed, is what
//! `hookhouse prune --dry-run` reports.
//!
//! The rules that keep it safe:
//! - **Loaded first.** A request's body or row goes only once every sink with a cursor has
//!   loaded it (`seq <= min(position)`): a sink that is down or behind holds pruning back.
//! - **What replay needs stays.** A request the normaliser could not read (a `failed_events`
//!   row without a sink) keeps its body and row as long as that failure is kept, so
//!   `replay --failed` can still read it after an upgrade.
//! - **Oldest first, never past a young row.** A window stops at its first row that is too
//!   young; a row that is older but comes after it goes in a later pass. Pruning therefore
//!   never removes a row younger than its setting, and may keep one a little longer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::config::Retention;
use crate::request::format_time;

/// What one kind of step removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Bodies of loaded requests (`raw_bodies_days`); rows and digests stay.
    Bodies,
    /// Whole loaded requests (`raw_requests_days`).
    Requests,
    FailedEvents,
    /// The embedded sink's `events` and `journey_calls` (`events_days`).
    Events,
    JourneyCalls,
}

impl Target {
    pub const ALL: [Target; 5] = [
        // Failures first: a failure removed frees its request's body and row in this pass.
        Target::FailedEvents,
        Target::Bodies,
        Target::Requests,
        Target::JourneyCalls,
        Target::Events,
    ];

    /// The name `status`, `prune` and `/metrics` use.
    pub fn name(self) -> &'static str {
        match self {
            Target::Bodies => "raw_bodies",
            Target::Requests => "raw_requests",
            Target::FailedEvents => "failed_events",
            Target::Events => "events",
            Target::JourneyCalls => "journey_calls",
        }
    }

    fn days(self, retention: &Retention) -> Option<u32> {
        match self {
            Target::Bodies => retention.raw_bodies_days,
            Target::Requests => retention.raw_requests_days,
            Target::FailedEvents => retention.failed_events_days,
            Target::Events | Target::JourneyCalls => retention.events_days,
        }
    }

    /// The time before which rows go, as stored text (RFC 3339 UTC with microseconds, which
    /// sorts as time does); `None` when the setting keeps them forever.
    pub fn cutoff(self, retention: &Retention, now: DateTime<Utc>) -> Option<String> {
        let days = self.days(retention)?;
        Some(format_time(&(now - chrono::Duration::days(i64::from(days)))))
    }

    /// The window: keys (in order) and whether each row is older than the cutoff.
    fn window_sql(self) -> &'static str {
        match self {
            Target::Bodies | Target::Requests => {
                "SELECT seq, received_at < :cutoff FROM raw_requests \
                 WHERE seq > :after AND seq <= :loaded ORDER BY seq LIMIT :limit"
            }
            Target::FailedEvents => {
                "SELECT id, received_at < :cutoff FROM failed_events \
                 WHERE id > :after ORDER BY id LIMIT :limit"
            }
            Target::Events => {
                "SELECT raw_seq, received_at < :cutoff FROM events \
                 WHERE raw_seq > :after ORDER BY raw_seq LIMIT :limit"
            }
            Target::JourneyCalls => {
                "SELECT seq, received_at < :cutoff FROM journey_calls \
                 WHERE seq > :after ORDER BY seq LIMIT :limit"
            }
        }
    }

    /// The rows of `after < key <= upto` this target removes.
    fn condition(self) -> &'static str {
        match self {
            Target::Bodies => {
                "seq > :after AND seq <= :upto AND body_dropped = 0 \
                 AND drop_body_digest IS NULL AND NOT EXISTS (SELECT 1 FROM failed_events f \
                 WHERE f.raw_seq = raw_requests.seq AND f.sink IS NULL)"
            }
            Target::Requests => {
                "seq > :after AND seq <= :upto AND NOT EXISTS (SELECT 1 FROM failed_events f \
                 WHERE f.raw_seq = raw_requests.seq AND f.sink IS NULL)"
            }
            Target::FailedEvents => "id > :after AND id <= :upto AND received_at < :cutoff",
            Target::Events => "raw_seq > :after AND raw_seq <= :upto AND received_at < :cutoff",
            Target::JourneyCalls => "seq > :after AND seq <= :upto AND received_at < :cutoff",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Target::Bodies | Target::Requests => "raw_requests",
            Target::FailedEvents => "failed_events",
            Target::Events => "events",
            Target::JourneyCalls => "journey_calls",
        }
    }

    /// Only bodies keep a mark: their rows stay, so without one every pass would read again
    /// every row whose body is gone. Removed rows need none: the next window starts at the
    /// oldest row left.
    fn keeps_mark(self) -> bool {
        self == Target::Bodies
    }
}

/// Where a step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// Rows (or bodies) removed, or that would be.
    pub removed: u64,
    /// Bytes of bodies removed (bodies only).
    pub bytes: u64,
    /// Where the next step starts.
    pub after: i64,
    /// Nothing more to do in this pass.
    pub done: bool,
}

/// Every request at or below this has been loaded by every sink with a cursor.
pub(super) fn loaded(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(min(position), 0) FROM sink_cursors", [], |row| row.get(0))
}

/// The sink holding pruning back the most: the one with the lowest cursor.
pub(super) fn slowest_sink(conn: &Connection) -> rusqlite::Result<Option<(String, i64)>> {
    conn.query_row(
        "SELECT sink, position FROM sink_cursors ORDER BY position, sink LIMIT 1",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

/// Where a pass of `target` starts: its mark, or the beginning.
pub(super) fn start(conn: &Connection, target: Target) -> rusqlite::Result<i64> {
    if !target.keeps_mark() {
        return Ok(0);
    }
    // A store an older hookhouse made, read before `serve` migrated it, has no marks yet.
    let marks: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'retention_marks'",
        [],
        |row| row.get(0),
    )?;
    if !marks {
        return Ok(0);
    }
    let mark: Option<i64> = conn
        .query_row("SELECT after FROM retention_marks WHERE target = ?1", [target.name()], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(mark.unwrap_or(0))
}

/// One step of `target` after `after`: removes (with `apply`) or counts the old rows of the
/// next window of at most `limit`.
pub(super) fn step(
    conn: &Connection,
    target: Target,
    cutoff: &str,
    after: i64,
    limit: usize,
    apply: bool,
) -> rusqlite::Result<Step> {
    let loaded = loaded(conn)?;
    let mut window = conn.prepare_cached(target.window_sql())?;
    let limit_value = limit as i64;
    let values: [(&str, &dyn rusqlite::ToSql); 4] =
        [(":cutoff", &cutoff), (":after", &after), (":loaded", &loaded), (":limit", &limit_value)];
    let params = used(&window, values);
    let mut rows = window.query(params.as_slice())?;
    let (mut upto, mut seen, mut young) = (after, 0, false);
    while let Some(row) = rows.next()? {
        seen += 1;
        if !row.get::<_, bool>(1)? {
            young = true;
            break;
        }
        upto = row.get(0)?;
    }
    drop(rows);
    let done = young || seen < limit;
    if upto == after {
        return Ok(Step { removed: 0, bytes: 0, after, done: true });
    }
    let (removed, bytes) = if apply {
        remove(conn, target, cutoff, after, upto)?
    } else {
        count(conn, target, cutoff, after, upto)?
    };
    if apply && target.keeps_mark() {
        conn.execute(
            "INSERT INTO retention_marks (target, after) VALUES (?1, ?2) \
             ON CONFLICT (target) DO UPDATE SET after = excluded.after",
            params![target.name(), upto],
        )?;
    }
    Ok(Step { removed, bytes, after: upto, done })
}

fn count(
    conn: &Connection,
    target: Target,
    cutoff: &str,
    after: i64,
    upto: i64,
) -> rusqlite::Result<(u64, u64)> {
    let sql = format!(
        "SELECT count(*), coalesce(sum({}), 0) FROM {} WHERE {}",
        if target == Target::Bodies { "length(body)" } else { "0" },
        target.table(),
        target.condition()
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let params = bound(&statement, &cutoff, &after, &upto);
    statement.query_row(params.as_slice(), |row| {
        Ok((row.get::<_, i64>(0)?.unsigned_abs(), row.get::<_, i64>(1)?.unsigned_abs()))
    })
}

fn remove(
    conn: &Connection,
    target: Target,
    cutoff: &str,
    after: i64,
    upto: i64,
) -> rusqlite::Result<(u64, u64)> {
    match target {
        Target::Bodies => {
            let (_, bytes) = count(conn, target, cutoff, after, upto)?;
            let sql = format!(
                "UPDATE raw_requests SET body = x'', body_dropped = 1, \
                 query = CASE WHEN pseudonymised THEN NULL ELSE query END WHERE {}",
                target.condition()
            );
            let mut statement = conn.prepare_cached(&sql)?;
            let params = bound(&statement, &cutoff, &after, &upto);
            Ok((statement.execute(params.as_slice())? as u64, bytes))
        }
        Target::FailedEvents => {
            // A normaliser's failure removed frees its request: replay no longer needs it.
            let sql = format!(
                "DELETE FROM failed_events WHERE {} RETURNING raw_seq, sink IS NULL",
                target.condition()
            );
            let mut statement = conn.prepare_cached(&sql)?;
            let params = bound(&statement, &cutoff, &after, &upto);
            let freed: Vec<(i64, bool)> = statement
                .query_map(params.as_slice(), |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            drop(statement);
            let removed = freed.len() as u64;
            free_requests_behind_the_mark(conn, freed)?;
            Ok((removed, 0))
        }
        _ => {
            let sql = format!("DELETE FROM {} WHERE {}", target.table(), target.condition());
            let mut statement = conn.prepare_cached(&sql)?;
            let params = bound(&statement, &cutoff, &after, &upto);
            Ok((statement.execute(params.as_slice())? as u64, 0))
        }
    }
}

/// Bodies the bodies' mark passed while a failure kept them: once the failure is gone they
/// are removed as their neighbours were (the mark does not come back for them). Their rows
/// need nothing: the rows' pass starts from the oldest every time.
fn free_requests_behind_the_mark(
    conn: &Connection,
    freed: Vec<(i64, bool)>,
) -> rusqlite::Result<()> {
    let mark = start(conn, Target::Bodies)?;
    let mut drop_body = conn.prepare_cached(
        "UPDATE raw_requests SET body = x'', body_dropped = 1, \
         query = CASE WHEN pseudonymised THEN NULL ELSE query END \
         WHERE seq = ?1 AND seq <= ?2 AND body_dropped = 0 AND drop_body_digest IS NULL \
         AND NOT EXISTS (SELECT 1 FROM failed_events f WHERE f.raw_seq = ?1 AND f.sink IS NULL)",
    )?;
    for (seq, by_normaliser) in freed {
        if by_normaliser {
            drop_body.execute(params![seq, mark])?;
        }
    }
    Ok(())
}

/// The named parameters `statement` uses, of `:cutoff`, `:after` and `:upto`.
fn bound<'a>(
    statement: &rusqlite::Statement<'_>,
    cutoff: &'a &'a str,
    after: &'a i64,
    upto: &'a i64,
) -> Vec<(&'a str, &'a dyn rusqlite::ToSql)> {
    used(statement, [(":cutoff", cutoff), (":after", after), (":upto", upto)])
}

/// Of `values`, those `statement` names (binding a name it lacks is an error).
fn used<'a, const N: usize>(
    statement: &rusqlite::Statement<'_>,
    values: [(&'a str, &'a dyn rusqlite::ToSql); N],
) -> Vec<(&'a str, &'a dyn rusqlite::ToSql)> {
    values
        .into_iter()
        .filter(|(name, _)| statement.parameter_index(name).ok().flatten().is_some())
        .collect()
}

/// Gives up to `pages` free pages back to the file system, if the store was made with
/// incremental auto-vacuum (every store made since retention was added); how many it gave.
pub(super) fn vacuum(conn: &Connection, pages: u64) -> rusqlite::Result<u64> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if mode != 2 {
        return Ok(0);
    }
    let free = |conn: &Connection| -> rusqlite::Result<u64> {
        conn.query_row("PRAGMA freelist_count", [], |row| row.get::<_, i64>(0))
            .map(i64::unsigned_abs)
    };
    let before = free(conn)?;
    if before == 0 {
        return Ok(0);
    }
    conn.execute_batch(&format!("PRAGMA incremental_vacuum({pages})"))?;
    Ok(before.saturating_sub(free(conn)?))
}

/// The store's size and how old its oldest rows are: what `status` and `/metrics` show.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreUsage {
    /// `hookhouse.db` and its WAL, as the file system has them.
    pub file_bytes: u64,
    /// Free pages inside the file: reused by new rows, or given back by the pruner.
    pub free_bytes: u64,
    /// Whether freed pages are given back to the file system (a store made since retention).
    pub returns_space: bool,
    /// Per table (and `raw_bodies`), the `received_at` of its oldest row; none when empty.
    pub oldest: BTreeMap<&'static str, Option<String>>,
}

pub(super) fn usage(conn: &Connection, db_path: &std::path::Path) -> rusqlite::Result<StoreUsage> {
    let size = |suffix: &str| {
        let mut path = db_path.as_os_str().to_owned();
        path.push(suffix);
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
    };
    let free_bytes = (pragma("freelist_count")? * pragma("page_size")?).unsigned_abs();
    let returns_space = pragma("auto_vacuum")? == 2;
    let mark = start(conn, Target::Bodies)?;
    let oldest_of = |sql: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row(sql, [mark], |row| row.get(0)).optional()
    };
    // Each is one step down an index or the table's key: cheap on any size of store.
    let mut oldest = BTreeMap::new();
    for (name, sql) in [
        ("raw_requests", "SELECT received_at FROM raw_requests WHERE ?1 = ?1 ORDER BY seq LIMIT 1"),
        (
            "raw_bodies",
            "SELECT received_at FROM raw_requests WHERE seq > ?1 AND body_dropped = 0 \
             ORDER BY seq LIMIT 1",
        ),
        ("events", "SELECT received_at FROM events WHERE ?1 = ?1 ORDER BY raw_seq LIMIT 1"),
        (
            "journey_calls",
            "SELECT received_at FROM journey_calls WHERE ?1 = ?1 ORDER BY seq LIMIT 1",
        ),
        (
            "failed_events",
            "SELECT received_at FROM failed_events WHERE ?1 = ?1 ORDER BY id LIMIT 1",
        ),
    ] {
        oldest.insert(name, oldest_of(sql)?);
    }
    Ok(StoreUsage { file_bytes: size("") + size("-wal"), free_bytes, returns_space, oldest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::schema;

    const NOW: &str = "2026-12-03T12:00:00Z";

    fn now() -> DateTime<Utc> {
        NOW.parse().unwrap()
    }

    /// A store with one request (and one event, one journey call) per age in days, oldest
    /// first, as `serve` appends them.
    fn store(ages: &[i64]) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        for age in ages {
            let at = format_time(&(now() - chrono::Duration::days(*age)));
            conn.execute(
                "INSERT INTO raw_requests (received_at, source, method, path, headers, body, \
                 body_sha256) VALUES (?1, 'default', 'POST', '/', '{}', x'7b7d7b7d', 'digest')",
                [&at],
            )
            .unwrap();
            let seq = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO events (event_id, raw_seq, source, event_name, received_at, data, \
                 family) VALUES (?1, ?2, 'default', 'emailSend', ?3, '{}', 'email')",
                params![format!("e{seq}"), seq, at],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO journey_calls (seq, received_at, source, journey, method, data) \
                 VALUES (?1, ?2, 'default', 'j', 'POST', '{}')",
                params![seq, at],
            )
            .unwrap();
        }
        conn
    }

    fn cursor(conn: &Connection, sink: &str, position: i64) {
        conn.execute(
            "INSERT INTO sink_cursors (sink, position) VALUES (?1, ?2) \
             ON CONFLICT (sink) DO UPDATE SET position = excluded.position",
            params![sink, position],
        )
        .unwrap();
    }

    fn failure(conn: &Connection, seq: i64, age: i64, sink: Option<&str>) {
        let at = format_time(&(now() - chrono::Duration::days(age)));
        conn.execute(
            "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body, sink) \
             VALUES (?1, ?2, 'decode', 'unreadable', x'00', ?3)",
            params![seq, at, sink],
        )
        .unwrap();
    }

    /// Runs whole passes of every target as the pruner does, with a small window so that
    /// they take several steps; what each target removed.
    fn prune(conn: &Connection, settings: &Retention, apply: bool) -> BTreeMap<&'static str, u64> {
        let mut removed = BTreeMap::new();
        for target in Target::ALL {
            let Some(cutoff) = target.cutoff(settings, now()) else { continue };
            let mut after = start(conn, target).unwrap();
            loop {
                let step = step(conn, target, &cutoff, after, 2, apply).unwrap();
                *removed.entry(target.name()).or_default() += step.removed;
                if step.done {
                    break;
                }
                after = step.after;
            }
        }
        removed
    }

    fn seqs(conn: &Connection, sql: &str) -> Vec<i64> {
        let mut statement = conn.prepare(sql).unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn with_bodies(conn: &Connection) -> Vec<i64> {
        seqs(conn, "SELECT seq FROM raw_requests WHERE body_dropped = 0 AND length(body) > 0")
    }

    const DEFAULTS: Retention = Retention {
        raw_bodies_days: Some(30),
        raw_requests_days: Some(90),
        failed_events_days: Some(365),
        events_days: None,
    };

    #[test]
    fn removes_exactly_what_the_settings_say_once_every_sink_has_loaded_it() {
        // seq 1..=7, received 400, 100, 91, 89, 31, 29 and 1 days ago.
        let conn = store(&[400, 100, 91, 89, 31, 29, 1]);
        cursor(&conn, "sqlite", 7);
        cursor(&conn, "postgres", 7);
        let plan = prune(&conn, &DEFAULTS, false);
        assert_eq!(plan["raw_requests"], 3);
        assert_eq!(plan["raw_bodies"], 5, "counted before any row goes: 1..=5");
        assert_eq!(with_bodies(&conn).len(), 7, "a dry run changes nothing");

        let removed = prune(&conn, &DEFAULTS, true);
        assert_eq!(removed["raw_bodies"], 5);
        assert_eq!(removed["raw_requests"], 3);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [4, 5, 6, 7]);
        assert_eq!(with_bodies(&conn), [6, 7], "bodies over 30 days gone, rows and digests kept");
        let digests = seqs(&conn, "SELECT count(*) FROM raw_requests WHERE body_sha256 = 'digest'");
        assert_eq!(digests, [4]);
        assert_eq!(seqs(&conn, "SELECT count(*) FROM events"), [7], "events are kept by default");
        assert_eq!(prune(&conn, &DEFAULTS, true).values().sum::<u64>(), 0, "a second pass: none");
    }

    #[test]
    fn keeps_what_a_sink_has_not_loaded() {
        let conn = store(&[400, 300, 200, 100]);
        cursor(&conn, "sqlite", 4);
        cursor(&conn, "postgres", 1);
        prune(&conn, &DEFAULTS, true);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [2, 3, 4]);
        assert_eq!(with_bodies(&conn), [2, 3, 4]);
        cursor(&conn, "postgres", 3);
        prune(&conn, &DEFAULTS, true);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [4]);
        assert_eq!(with_bodies(&conn), [4]);
        let conn = store(&[400]);
        prune(&conn, &DEFAULTS, true);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [1], "no sink: nothing loaded");
    }

    #[test]
    fn a_request_the_normaliser_failed_stays_for_replay_as_long_as_its_failure() {
        let conn = store(&[400, 200, 100]);
        cursor(&conn, "sqlite", 3);
        failure(&conn, 2, 200, None);
        failure(&conn, 3, 100, Some("postgres")); // a warehouse's refusal: replay does not need it
        prune(&conn, &DEFAULTS, true);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [2]);
        assert_eq!(with_bodies(&conn), [2]);
        assert_eq!(seqs(&conn, "SELECT raw_seq FROM failed_events"), [2, 3]);

        // Once failures are kept for less than its age, the failure and then its request go.
        let shorter =
            Retention { failed_events_days: Some(150), raw_requests_days: Some(365), ..DEFAULTS };
        prune(&conn, &shorter, true);
        assert_eq!(seqs(&conn, "SELECT raw_seq FROM failed_events"), [3], "100 days old");
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [2], "rows are kept 365 days now");
        assert!(with_bodies(&conn).is_empty(), "its body went with its failure, behind the mark");
    }

    #[test]
    fn events_and_journey_calls_go_only_when_events_days_is_set() {
        let conn = store(&[400, 200, 10]);
        cursor(&conn, "sqlite", 3);
        let settings = Retention { events_days: Some(300), ..DEFAULTS };
        let removed = prune(&conn, &settings, true);
        assert_eq!((removed["events"], removed["journey_calls"]), (1, 1));
        assert_eq!(seqs(&conn, "SELECT raw_seq FROM events"), [2, 3]);
        assert_eq!(seqs(&conn, "SELECT seq FROM journey_calls"), [2, 3]);
    }

    #[test]
    fn a_window_never_goes_past_a_young_row() {
        // Commit order is not quite arrival order: seq 3 arrived before seq 2.
        let conn = store(&[100, 10, 100]);
        cursor(&conn, "sqlite", 3);
        prune(&conn, &DEFAULTS, true);
        assert_eq!(seqs(&conn, "SELECT seq FROM raw_requests"), [2, 3]);
        assert_eq!(with_bodies(&conn), [2, 3], "kept a while longer, never removed too young");
    }

    #[test]
    fn the_bodies_mark_spares_the_next_pass_the_emptied_rows() {
        let conn = store(&[60, 50, 40, 5]);
        cursor(&conn, "sqlite", 4);
        prune(&conn, &DEFAULTS, true);
        assert_eq!(start(&conn, Target::Bodies).unwrap(), 3);
        let cutoff = Target::Bodies.cutoff(&DEFAULTS, now()).unwrap();
        let step = step(&conn, Target::Bodies, &cutoff, 3, 100, true).unwrap();
        assert_eq!(step, Step { removed: 0, bytes: 0, after: 3, done: true });
    }

    #[test]
    fn a_new_store_gives_freed_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("hookhouse.db")).unwrap();
        schema::prepare_new(&conn).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
        schema::migrate(&mut conn).unwrap();
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0)).unwrap();
        assert_eq!(mode, 2, "incremental");
        let body = vec![7u8; 64 * 1024];
        for _ in 0..50 {
            conn.execute(
                "INSERT INTO raw_requests (received_at, source, method, path, headers, body, \
                 body_sha256) VALUES ('2020-01-01T00:00:00Z', 'd', 'POST', '/', '{}', ?1, 'x')",
                [&body],
            )
            .unwrap();
        }
        cursor(&conn, "sqlite", 50);
        let size = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap()
        };
        let before = size(&conn);
        prune(&conn, &DEFAULTS, true);
        let mut given = 0;
        while let n @ 1.. = vacuum(&conn, 64).unwrap() {
            given += n;
        }
        assert!(given > 700, "{given} pages given back");
        assert!(size(&conn) < before / 4, "{} of {before} pages left", size(&conn));
        let usage = usage(&conn, &dir.path().join("hookhouse.db")).unwrap();
        assert!(usage.returns_space);
        assert_eq!(usage.oldest["raw_requests"], None);
    }
}
