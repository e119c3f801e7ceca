//! `hookhouse backup`: a consistent copy of the store while `serve` writes to it.
//!
//! The copy is SQLite's online backup, page by page, from one read transaction: in WAL mode a
//! reader's snapshot does not move while writers commit, so the copy is the store as it was
//! when the backup began (every request acknowledged before then is in it), without blocking
//! the writer. Steps of [`STEP_PAGES`] let it report progress; holding the transaction across
//! the steps is what keeps SQLite from restarting the copy whenever a write lands between two
//! of them. It is written to `FILE.partial`, checked (`PRAGMA quick_check`), synced, and only
//! then renamed to `FILE`, so a `FILE` that exists is a whole, checked copy.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step: 16 MiB of 4 KiB pages, a progress line's worth of work.
const STEP_PAGES: i32 = 4096;

/// How far a backup has come, in bytes of the store's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    pub copied: u64,
    pub total: u64,
}

/// What a finished backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    /// The newest request in the copy (0: none).
    pub last_seq: i64,
    pub requests: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no store at `{0}`: pass the --data-dir `serve` uses")]
    Missing(String),
    #[error("`{0}` exists already: a backup never overwrites a file; choose another name")]
    Exists(String),
    #[error("cannot write the backup `{path}`")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the copy failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the copy does not pass `PRAGMA quick_check` ({0}); the store itself may be damaged")]
    Damaged(String),
}

/// Copies the store at `db_path` to `target` (which must not exist), calling `progress` after
/// every step.
pub fn backup(
    db_path: &Path,
    target: &Path,
    progress: impl FnMut(BackupProgress),
) -> Result<BackupSummary, BackupError> {
    backup_in_steps(db_path, target, STEP_PAGES, progress)
}

fn backup_in_steps(
    db_path: &Path,
    target: &Path,
    step_pages: i32,
    mut progress: impl FnMut(BackupProgress),
) -> Result<BackupSummary, BackupError> {
    if !db_path.is_file() {
        return Err(BackupError::Missing(db_path.display().to_string()));
    }
    if target.exists() {
        return Err(BackupError::Exists(target.display().to_string()));
    }
    let partial = partial_path(target);
    let write_error = |source| BackupError::Write { path: partial.display().to_string(), source };
    // Owner-only, as the store is (it holds every request as received). A partial file left by
    // an interrupted backup is replaced.
    match std::fs::remove_file(&partial) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(write_error(err)),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(write_error)?;

    let source = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    // The snapshot the copy is made from, and what it holds.
    source.execute_batch("BEGIN")?;
    let (requests, last_seq): (i64, i64) = source.query_row(
        "SELECT count(*), coalesce(max(seq), 0) FROM raw_requests",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let copied = copy(&source, &partial, step_pages, &mut progress);
    source.execute_batch("COMMIT")?;
    copied?;

    let bytes = std::fs::metadata(&partial).map_err(write_error)?.len();
    File::open(&partial).and_then(|file| file.sync_all()).map_err(write_error)?;
    std::fs::rename(&partial, target)
        .map_err(|source| BackupError::Write { path: target.display().to_string(), source })?;
    if let Some(dir) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        File::open(dir).and_then(|dir| dir.sync_all()).map_err(write_error)?;
    }
    Ok(BackupSummary { path: target.to_owned(), bytes, last_seq, requests })
}

fn copy(
    source: &Connection,
    partial: &Path,
    step_pages: i32,
    progress: &mut impl FnMut(BackupProgress),
) -> Result<(), BackupError> {
    let mut copy = Connection::open(partial)?;
    let page_size: i64 = source.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    {
        let backup = Backup::new(source, &mut copy)?;
        loop {
            let step = backup.step(step_pages)?;
            let now = backup.progress();
            let total = u64::try_from(now.pagecount).unwrap_or(0);
            let left = u64::try_from(now.remaining).unwrap_or(0);
            let copied = total.saturating_sub(left);
            progress(BackupProgress { copied: copied * page_size, total: total * page_size });
            match step {
                StepResult::Done => break,
                // The source is read in our own transaction, so nothing should lock it; the
                // destination is ours alone. Wait a little and go on if something does.
                StepResult::More => {}
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
    let check: String = copy.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(BackupError::Damaged(check));
    }
    // The copy is a database of its own: no WAL left beside it.
    copy.execute_batch("PRAGMA journal_mode = DELETE")?;
    Ok(())
}

/// `FILE.partial`, beside `FILE`.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    target.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn insert(conn: &Connection, seq: i64) {
        conn.execute(
            "INSERT INTO raw_requests (seq, received_at, source, method, path, headers, \
             remote_addr, content_type, body, body_sha256, kind) VALUES (?1, \
             '2026-12-02T00:00:00Z', 'default', 'POST', '/iterable/default', '{}', '127.0.0.1', \
             'application/json', zeroblob(4000), printf('%064x', ?1), 'system')",
            [seq],
        )
        .unwrap();
    }

    #[test]
    fn the_copy_is_the_store_when_it_began_though_writes_land_between_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hookhouse.db");
        let mut writer = Connection::open(&db).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        super::super::schema::migrate(&mut writer).unwrap();
        for seq in 1..=300 {
            insert(&writer, seq);
        }
        let target = dir.path().join("copy.db");
        let mut steps = 0;
        let mut next = 301;
        let summary = backup_in_steps(&db, &target, 16, |progress| {
            steps += 1;
            assert!(progress.copied <= progress.total);
            // A request committed by the writer between two steps of the copy.
            insert(&writer, next);
            next += 1;
        })
        .unwrap();
        assert!(steps > 10, "copied in {steps} steps: the test needs several");
        assert_eq!((summary.requests, summary.last_seq), (300, 300));
        let copy = Connection::open(&target).unwrap();
        let (count, max): (i64, i64) = copy
            .query_row("SELECT count(*), max(seq) FROM raw_requests", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((count, max), (300, 300), "the copy holds the store as it began");
        let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        let file_mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(file_mode, 0o600);
        assert!(!dir.path().join("copy.db.partial").exists());
        let source_rows: i64 =
            writer.query_row("SELECT count(*) FROM raw_requests", [], |r| r.get(0)).unwrap();
        assert_eq!(source_rows, 300 + i64::from(steps));

        let again = backup(&db, &target, |_| {}).unwrap_err();
        assert!(matches!(again, BackupError::Exists(_)), "{again}");
        let missing = backup(&dir.path().join("none.db"), &dir.path().join("x.db"), |_| {});
        assert!(matches!(missing, Err(BackupError::Missing(_))));
    }
}
