//! The command line: subcommands and their flags, and what each prints for a person.

mod backup;
mod check;
mod check_config;
mod forget_sink;
mod prune;
mod replay;
mod secret;
mod serve;
mod status;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use replay::ReplayArgs;
pub use serve::ServeArgs;
pub use status::StatusArgs;
pub use validate::ValidateArgs;

use crate::simulate::SimulateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "hookhouse",
    version,
    about = "Receive Iterable webhooks, store every one durably"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive webhooks and store them.
    Serve(ServeArgs),
    /// Run the sinks from a JetStream request log (`[spool] kind = "jetstream"`); any number
    /// of loaders share the work.
    Load(ServeArgs),
    /// Show the rows one payload file would produce, offline; exit 1 if it would fail.
    Validate(ValidateArgs),
    /// Re-run stored requests through the current normaliser (safe while `serve` runs).
    Replay(ReplayArgs),
    /// Check a configuration without starting: list every problem, or print the effective
    /// values with secrets masked.
    CheckConfig(ServeArgs),
    /// Show what the store holds and each sink's lag (requests, events, seconds).
    Status(StatusArgs),
    /// Copy the store to a file while `serve` runs: a consistent, checked snapshot.
    Backup(backup::BackupArgs),
    /// Apply `[retention]` now (`serve` does every minute), or with --dry-run say what would
    /// be removed.
    Prune(prune::PruneArgs),
    /// Remove the cursor of a sink taken out of the configuration, which otherwise holds
    /// `[retention]` back forever (safe while `serve` runs).
    ForgetSink(forget_sink::ForgetSinkArgs),
    /// Check the store for damage: SQLite's full check, every body against its digest, and
    /// requests the sinks loaded that are missing; exit 1 if damaged (safe while `serve` runs).
    Check(check::CheckArgs),
    /// Make, list or revoke Stitch-style secret URLs (`/hooks/{secret}`).
    Secret(secret::SecretArgs),
    /// Send realistic Iterable traffic to a receiver and report what it acknowledged; exit 1
    /// unless every request was answered 2xx.
    Simulate(SimulateArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Load(args) => serve::load(args).await.map(|()| ExitCode::SUCCESS),
        Command::Validate(args) => validate::validate(&args),
        Command::CheckConfig(args) => check_config::check_config(args),
        Command::Secret(args) => secret::secret(&args).await,
        Command::Status(args) => status::status(&args).await,
        Command::Backup(args) => backup::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::ForgetSink(args) => forget_sink::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Replay(args) => replay::run(args).await,
        Command::Simulate(args) => {
            let summary = crate::simulate::run(args).await?;
            Ok(if summary.all_acknowledged() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
