//! `hookhouse status`: what the store holds and how far behind each sink is. Reads the store
//! only, so it is safe to run while `serve` runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::sinks::cursor;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let db = args.data_dir.join("hookhouse.db");
    if !db.is_file() {
        anyhow::bail!(
            "no store at `{}`: run `hookhouse serve` first, or pass --data-dir",
            db.display()
        );
    }
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("failed to open `{}`", db.display()))?;
    let count = |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [], |row| row.get(0)) };
    let requests = count("SELECT count(*) FROM raw_requests")?;
    let events = count("SELECT count(*) FROM events")?;
    let failed = count("SELECT count(*) FROM failed_events")?;
    let last_seq = count("SELECT coalesce(max(seq), 0) FROM raw_requests")?;
    let now = chrono::Utc::now();
    let mut lags = Vec::new();
    for sink in cursor::sinks(&conn)? {
        if let Some(lag) = cursor::lag(&conn, &sink, now)? {
            lags.push(lag);
        }
    }

    if args.json {
        let sinks: Vec<_> = lags
            .iter()
            .map(|lag| {
                json!({
                    "sink": lag.sink,
                    "position": lag.position,
                    "lag_requests": lag.requests,
                    "lag_events": lag.events,
                    "lag_seconds": lag.seconds,
                    "loaded_at": lag.loaded_at,
                    "last_error": lag.last_error,
                    "last_error_at": lag.last_error_at,
                })
            })
            .collect();
        let report = json!({
            "store": db.display().to_string(),
            "requests": requests,
            "last_seq": last_seq,
            "events": events,
            "failed_events": failed,
            "sinks": sinks,
        });
        println!("{report:#}");
        return Ok(ExitCode::SUCCESS);
    }

    println!("store  {}", db.display());
    println!("  {requests} requests (last seq {last_seq}), {events} events, {failed} failed rows");
    println!("  sqlite: loaded with every request (same transaction)");
    if lags.is_empty() {
        println!("  no other sink has run yet");
    }
    for lag in &lags {
        println!(
            "  {}: at seq {}, behind by {} requests / {} events / {:.1} s{}",
            lag.sink,
            lag.position,
            lag.requests,
            lag.events,
            lag.seconds,
            lag.loaded_at.as_ref().map(|at| format!(", last loaded {at}")).unwrap_or_default()
        );
        if let (Some(error), Some(at)) = (&lag.last_error, &lag.last_error_at) {
            println!("    failing since {at}: {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
