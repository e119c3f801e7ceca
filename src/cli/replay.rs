//! `hookhouse replay`: re-run stored requests through the current normaliser, with progress.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Config, Overrides};
use crate::iterable::parse_timestamp;
use crate::jetstream::replay::{Range, replay as replay_range};
use crate::sinks::sqlite::replay::replay as replay_store;
use crate::spool::Selection;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data")]
    pub data_dir: PathBuf,
    /// Only requests received at or after TIME (RFC 3339, or `2024-01-31 00:00:00 +00:00`).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["seq", "failed"])]
    pub since: Option<String>,
    /// Only requests whose `seq` is in A..B (inclusive; `A..` for A onwards).
    #[arg(long, value_name = "A..B", conflicts_with = "failed")]
    pub seq: Option<String>,
    /// Only requests that have rows in `failed_events`.
    #[arg(long)]
    pub failed: bool,
    /// The configuration `serve` runs with: its sources' `pseudonymise` keys are needed to
    /// replay their requests. With a JetStream log, the range of the stream is loaded again
    /// into every sink it configures.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub(super) async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), &Overrides::default())?;
    if config.spool.jetstream().is_some() {
        return replay_stream(&args, &config).await;
    }
    tokio::task::spawn_blocking(move || replay(&args, config)).await?
}

/// With a JetStream log: a range of the stream, loaded again into every configured sink.
async fn replay_stream(args: &ReplayArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let range = match selection(args)? {
        Selection::Seqs(from, to) => {
            Range::Seqs(u64::try_from(from).unwrap_or(0), u64::try_from(to).unwrap_or(u64::MAX))
        }
        Selection::Since(time) => Range::Since(time),
        Selection::All => Range::Seqs(0, u64::MAX),
        Selection::Failed => anyhow::bail!(
            "--failed reads the embedded failed_events: with a JetStream log, replay a range \
             with --seq A..B or --since TIME"
        ),
    };
    let bar = progress_bar()?;
    let report = replay_range(config, range, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "replayed {} requests of the stream into the sinks: {} events, {} failed rows",
        report.requests, report.events, report.failures
    );
    Ok(ExitCode::SUCCESS)
}

fn progress_bar() -> anyhow::Result<ProgressBar> {
    Ok(ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests  {per_sec}  eta {eta}")
            .context("progress bar template")?,
    ))
}

fn replay(args: &ReplayArgs, config: Config) -> anyhow::Result<ExitCode> {
    let selection = selection(args)?;
    let db = args.data_dir.join("hookhouse.db");
    let keys = config
        .sources
        .into_iter()
        .filter_map(|source| Some((source.name, source.pseudonymise?)))
        .collect();
    let bar = progress_bar()?;
    let report = replay_store(&db, &selection, &keys, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "replayed {} requests: {} events, {} journey calls; failed rows {} -> {}",
        report.requests,
        report.events,
        report.journey_calls,
        report.failures_before,
        report.failures_after
    );
    if report.altered_total > 0 {
        let seqs: Vec<String> = report.altered.iter().map(i64::to_string).collect();
        println!(
            "left out {} requests whose body no longer matches its body_sha256, their rows kept \
             as they were: seq {}{}; the store is damaged: run `hookhouse check`",
            report.altered_total,
            seqs.join(", "),
            if report.altered_total > report.altered.len() as u64 { " ..." } else { "" }
        );
        // Not a success: what was asked for was not all done, and a script must notice.
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn selection(args: &ReplayArgs) -> anyhow::Result<Selection> {
    if args.failed {
        return Ok(Selection::Failed);
    }
    if let Some(since) = &args.since {
        let time = parse_timestamp(&serde_json::Value::from(since.as_str()))
            .with_context(|| format!("--since `{since}` is not a time"))?;
        return Ok(Selection::Since(time));
    }
    if let Some(range) = &args.seq {
        return parse_range(range).map(|(from, to)| Selection::Seqs(from, to));
    }
    Ok(Selection::All)
}

fn parse_range(range: &str) -> anyhow::Result<(i64, i64)> {
    let bad = || anyhow::anyhow!("--seq `{range}` must look like `100..200` or `100..`");
    let (from, to) = range.split_once("..").ok_or_else(bad)?;
    let from: i64 = from.trim().parse().map_err(|_| bad())?;
    let to: i64 =
        if to.trim().is_empty() { i64::MAX } else { to.trim().parse().map_err(|_| bad())? };
    if from > to {
        return Err(bad());
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_ranges() {
        assert_eq!(parse_range("3..7").unwrap(), (3, 7));
        assert_eq!(parse_range("3..").unwrap(), (3, i64::MAX));
        assert!(parse_range("7..3").is_err());
        assert!(parse_range("x").is_err());
    }
}
