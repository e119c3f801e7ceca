//! `hookhouse status`: what the store holds and how far behind each sink is. Reads the store
//! only, so it is safe to run while `serve` runs.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::config::{Config, Overrides};
use crate::jetstream::Stream;
use crate::sinks::parquet::store::LakeStore;
use crate::spool::integrity::{SeqGap, WHAT_TO_DO};
use crate::spool::{CheckState, SpoolReader, StoreHealth, recorded_health};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The configuration `serve` runs with: with a JetStream log, the stream and its
    /// consumers are reported.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub(super) async fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = &args.config {
        let config = Config::load(Some(file), &Overrides::default())?;
        if config.spool.jetstream().is_some() {
            let stream = Stream::open(&config).await?;
            let report = crate::jetstream::status::report(&stream).await?;
            if args.json {
                println!("{report:#}");
            } else {
                crate::jetstream::status::print_text(&report);
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    let db = args.data_dir.join("hookhouse.db");
    let lake = match &args.config {
        Some(file) => lake_usage(&Config::load(Some(file), &Overrides::default())?).await?,
        None => None,
    };
    let reader = SpoolReader::open(&db)?;
    let totals = reader.totals()?;
    let (requests, events, failed, last_seq) =
        (totals.requests, totals.events, totals.failed_events, totals.last_seq);
    let lags = reader.lags(chrono::Utc::now())?;
    let usage = reader.usage()?;
    // Computed now (cheap); the file check is the one `serve` last recorded, since running
    // one here would read the whole store.
    let gap = reader.seq_gap()?;
    let health = recorded_health(&db);

    if args.json {
        let report = json!({
            "store": db.display().to_string(),
            "requests": requests,
            "last_seq": last_seq,
            "events": events,
            "failed_events": failed,
            "size_bytes": usage.file_bytes,
            "free_pages_bytes": usage.free_bytes,
            "returns_space": usage.returns_space,
            "oldest": usage.oldest,
            "sinks": lags,
            "integrity": {
                "damaged": gap.is_some() || health.as_ref().is_some_and(StoreHealth::is_damaged),
                "seq_gap": gap,
                "last_check": health,
            },
            "lake": lake.as_ref().map(|(url, files, bytes)| json!({
                "url": url, "files": files, "bytes": bytes,
            })),
        });
        println!("{report:#}");
        return Ok(ExitCode::SUCCESS);
    }

    println!("store  {}", db.display());
    println!("  {requests} requests (last seq {last_seq}), {events} events, {failed} failed rows");
    println!(
        "  {:.1} MB on disk ({:.1} MB of it free pages{})",
        usage.file_bytes as f64 / 1e6,
        usage.free_bytes as f64 / 1e6,
        if usage.returns_space { ", given back by retention" } else { ", reused by new rows" }
    );
    let oldest: Vec<String> = usage
        .oldest
        .iter()
        .map(|(table, at)| format!("{table} {}", at.as_deref().unwrap_or("(none)")))
        .collect();
    println!("  oldest: {}", oldest.join(", "));
    print_integrity(gap.as_ref(), health.as_ref());
    if lags.is_empty() {
        println!("  no sink has run yet");
    }
    for lag in &lags {
        println!(
            "  {}: at seq {}, behind by {} requests / {:.1} s{}",
            lag.sink,
            lag.position,
            lag.requests,
            lag.seconds,
            lag.loaded_at.as_ref().map(|at| format!(", last loaded {at}")).unwrap_or_default()
        );
        if let (Some(error), Some(at)) = (&lag.last_error, &lag.last_error_at) {
            println!("    failing since {at}: {error}");
        }
    }
    if let Some((url, files, bytes)) = &lake {
        println!("lake  {url}\n  {files} Parquet files, {bytes} bytes");
    }
    Ok(ExitCode::SUCCESS)
}

/// The store's integrity: requests missing that sinks loaded, and the check `serve` recorded.
fn print_integrity(gap: Option<&SeqGap>, health: Option<&StoreHealth>) {
    if let Some(gap) = gap {
        println!("  MISSING REQUESTS: {}", gap.describe());
    }
    match health {
        None => println!(
            "  integrity: not checked yet (`serve` checks at start; `hookhouse check` checks now)"
        ),
        Some(health) => {
            let when = health.finished_at.as_deref().unwrap_or(&health.started_at);
            let took = health.seconds.map(|s| format!(", took {s:.1} s")).unwrap_or_default();
            match health.check {
                CheckState::Checking => {
                    println!("  integrity: being checked by `serve` since {when}")
                }
                CheckState::Ok => println!("  integrity: ok at `serve`'s start ({when}{took})"),
                CheckState::Damaged => {
                    println!("  integrity: DAMAGED (`serve`'s check at {when}{took}):");
                    for problem in &health.problems {
                        println!("    {problem}");
                    }
                }
                CheckState::Unfinished => println!(
                    "  integrity: not finished at `serve`'s start ({when}): {}",
                    health.problems.join("; ")
                ),
            }
        }
    }
    if gap.is_some() || health.is_some_and(|health| health.check == CheckState::Damaged) {
        println!("  what to do: {WHAT_TO_DO}");
    }
}

/// The Parquet lake of `config`, if it has one: its URL, files and bytes.
async fn lake_usage(config: &Config) -> anyhow::Result<Option<(String, u64, u64)>> {
    let Some(lake) = &config.sinks.parquet else { return Ok(None) };
    let store = LakeStore::open(&lake.location).map_err(|err| anyhow::anyhow!("{err}"))?;
    let (files, bytes) = store.usage().await.map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(Some((store.describe(), files, bytes)))
}
