//! `hookhouse backup FILE`: a consistent copy of the store, safe while `serve` runs, with
//! progress on standard error and how to restore it at the end.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::spool::backup::{BackupProgress, backup};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (it must not exist; the copy is written to FILE.partial and
    /// renamed once whole and checked).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data")]
    pub data_dir: PathBuf,
}

pub(super) fn run(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let db = args.data_dir.join("hookhouse.db");
    let started = Instant::now();
    let mut last_line = None::<Instant>;
    let mut stderr = std::io::stderr();
    let summary = backup(&db, &args.file, |BackupProgress { copied, total }| {
        // A line a second at most, and the last one.
        if copied < total && last_line.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        last_line = Some(Instant::now());
        let percent = (copied * 100).checked_div(total).unwrap_or(100);
        let _ = writeln!(
            stderr,
            "backing up {}: {percent}% ({:.1} of {:.1} MB)",
            db.display(),
            copied as f64 / 1e6,
            total as f64 / 1e6
        );
    })?;
    println!(
        "backed up {} requests (up to seq {}) to {} ({:.1} MB) in {:.1} s",
        summary.requests,
        summary.last_seq,
        summary.path.display(),
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!(
        "to restore: stop hookhouse, remove {dir}/hookhouse.db-wal and {dir}/hookhouse.db-shm, \
         copy the backup to {dir}/hookhouse.db, start hookhouse (sinks load again from their \
         cursors in the copy)",
        dir = args.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
