//! `hookhouse prune`: apply `[retention]` now, or with `--dry-run` say what would go. `serve`
//! prunes by itself every minute; this is for seeing the effect of a setting before using it,
//! and for a store no `serve` runs on.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use crate::config::{Config, Overrides, Retention};
use crate::spool::{Maintenance, PlannedRemoval, SpoolReader};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// The configuration `serve` runs with, for its `[retention]` (defaults otherwise).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory holding `hookhouse.db` [default: the configuration's, else
    /// ./hookhouse-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Only say what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) fn run(args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    anyhow::ensure!(
        config.spool.jetstream().is_none(),
        "[retention] applies to the SQLite store; a JetStream stream keeps requests for \
         `spool.jetstream.max_age_days`"
    );
    let settings = config.store.retention;
    let db = config.store.db_path();
    let reader = SpoolReader::open(&db)?;
    describe_settings(&settings, reader.slowest_sink()?);
    if !settings.prunes() {
        println!("nothing to do: every table is kept forever");
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    if args.dry_run {
        let plan = reader.prune_plan(&settings, now).context("failed to read the store")?;
        for removal in &plan {
            println!("would remove {}", describe(removal));
        }
        println!("dry run: nothing was removed");
        return Ok(ExitCode::SUCCESS);
    }
    drop(reader);
    let mut maintenance = Maintenance::open(&db)?;
    let mut shown = std::time::Instant::now();
    let (done, pages) = maintenance.prune(&settings, now, |running| {
        if shown.elapsed() >= std::time::Duration::from_secs(1) {
            shown = std::time::Instant::now();
            eprintln!("pruning: {} so far", describe(running));
        }
    })?;
    for removal in &done {
        println!("removed {}", describe(removal));
    }
    if pages > 0 {
        println!("gave {:.1} MB back to the file system", (pages * 4096) as f64 / 1e6);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(removal: &PlannedRemoval) -> String {
    let what = match removal.target {
        "raw_bodies" => {
            format!("{} request bodies ({:.1} MB)", removal.rows, removal.bytes as f64 / 1e6)
        }
        "raw_requests" => format!("{} requests", removal.rows),
        table => format!("{} rows of {table}", removal.rows),
    };
    format!("{what} received before {}", removal.cutoff)
}

fn describe_settings(settings: &Retention, slowest: Option<(String, i64)>) {
    let days = |d: Option<u32>| d.map(|d| format!("{d} days")).unwrap_or("forever".to_owned());
    println!(
        "retention: bodies {}, requests {}, failed events {}, events and journey calls {}",
        days(settings.raw_bodies_days),
        days(settings.raw_requests_days),
        days(settings.failed_events_days),
        days(settings.events_days)
    );
    match slowest {
        Some((sink, position)) => println!(
            "requests go only once every sink has loaded them: up to seq {position} (sink \
             `{sink}` is the furthest behind)"
        ),
        None => println!("no sink has run yet: no request can go"),
    }
}
