//! The checkpointer: copies committed WAL frames into the database file on its own thread and
//! connection, so the writer never pays for a checkpoint (an extra write and `fsync` of the
//! database file) while requests wait for their commit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::SpoolError;

/// How often committed frames are copied into the database file.
const INTERVAL: Duration = Duration::from_millis(50);

/// Runs until `stop` is set, then does a last full checkpoint.
pub(super) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Self, SpoolError> {
        let open = || {
            let conn = Connection::open(path)?;
            // A restart waits for the writer's current transaction; it must not wait for long.
            conn.busy_timeout(Duration::from_millis(200))?;
            Ok(conn)
        };
        let conn = open()
            .map_err(|source| SpoolError::Open { path: path.display().to_string(), source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("spool-checkpoint".to_owned())
            .spawn(move || run(&conn, &stopping))
            .map_err(|source| SpoolError::Thread { name: "spool-checkpoint", source })?;
        Ok(Checkpointer { stop, thread })
    }

    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn run(conn: &Connection, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(INTERVAL);
        // Logged when the state changes, not every pass: a full disk would flood the log.
        match (checkpoint(conn, "PASSIVE"), failing) {
            (Ok(_), true) => {
                tracing::info!("WAL checkpoints work again");
                failing = false;
            }
            (Err(err), false) => {
                tracing::warn!(error = %err, "WAL checkpoint failed; retrying quietly");
                failing = true;
            }
            _ => {}
        }
    }
    // Leave a short WAL behind so the next start and users' readers find a compact file.
    if let Err(err) = checkpoint(conn, "TRUNCATE") {
        tracing::debug!(error = %err, "final WAL checkpoint skipped");
    }
}

/// Runs one checkpoint and returns the number of frames in the WAL.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get::<_, i64>(1))
}
