//! `hookhouse forget-sink NAME`: removes the cursor of a sink taken out of the configuration.
//! A cursor stays when its sink is removed, and retention never goes past the lowest cursor,
//! so without this a PostgreSQL sink tried once would keep every request forever.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Overrides};
use crate::spool::{Maintenance, SpoolReader};

#[derive(Debug, clap::Args)]
pub struct ForgetSinkArgs {
    /// The sink whose cursor goes (`hookhouse status` lists them): `postgres` or `parquet`.
    pub sink: String,
    /// The configuration `serve` runs with: a sink still in it is refused.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory holding `hookhouse.db` [default: the configuration's, else
    /// ./hookhouse-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub(super) fn run(args: &ForgetSinkArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    anyhow::ensure!(
        config.spool.jetstream().is_none(),
        "with a JetStream log the sinks' positions are the stream's consumers, not cursors in \
         the store: remove a loader's consumer with the nats CLI"
    );
    let sink = args.sink.as_str();
    if crate::sinks::configured(&config).contains(&sink) {
        anyhow::bail!(
            "sink `{sink}` is in the configuration{}: `serve` runs it, and forgetting its \
             cursor would make it load every stored request again. Remove it from the \
             configuration and restart `serve` first",
            args.config.as_ref().map(|file| format!(" ({})", file.display())).unwrap_or_default()
        );
    }
    let db = config.store.db_path();
    let forgotten = Maintenance::open(&db)?.forget_sink(sink)?;
    match forgotten {
        Ok(position) => {
            println!("forgot sink `{sink}` (it had loaded up to seq {position})");
            match SpoolReader::open(&db)?.slowest_sink()? {
                Some((slowest, at)) => println!(
                    "retention now goes up to seq {at} (sink `{slowest}` is the furthest behind)"
                ),
                None => println!("no sink has a cursor now"),
            }
            println!(
                "adding `{sink}` back later loads it from the start again: every request still \
                 stored, with events from those whose bodies retention kept"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(sinks) => {
            eprintln!(
                "this store has no cursor for a sink `{sink}`; it has: {}",
                if sinks.is_empty() { "none".to_owned() } else { sinks.join(", ") }
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
