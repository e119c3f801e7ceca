//! `hookhouse secret new|list|revoke`: Stitch-style secret URLs. The secret is printed once,
//! when made; only its hash is stored.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::{Config, Overrides};
use crate::jetstream::Stream;
use crate::jetstream::secret_urls as bucket;
use crate::spool::secret_urls::{self, LIVE_PER_SOURCE};

#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data", global = true)]
    pub data_dir: PathBuf,
    /// The configuration `serve` runs with, which must have the source [default: the
    /// built-in one, whose only source is `default`]. With a JetStream log, secret URLs live
    /// in the stream's key-value bucket, shared by every receiver.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Make a secret URL for a source and print it (shown once).
    New {
        #[arg(long)]
        source: String,
    },
    /// List live secret URLs (ids and fingerprints, never the secrets).
    List,
    /// Revoke a secret URL by its id; requests to it get 401 within a second.
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

pub(super) async fn secret(args: &SecretArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), &Overrides::default())?;
    let db = args.data_dir.join("hookhouse.db");
    let bucket = match config.spool.jetstream() {
        Some(_) => Some(bucket::bucket(&Stream::open(&config).await?).await?),
        None => None,
    };
    match &args.action {
        SecretAction::New { source } => {
            if config.source(source).is_none() {
                let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                anyhow::bail!(
                    "no source named `{source}` is configured (sources: {}); a secret URL for it \
                     would be refused. Pass the configuration `serve` uses with --config",
                    names.join(", ")
                );
            }
            let secret = match &bucket {
                Some(store) => bucket::create(store, source).await?,
                None => secret_urls::create(&db, source)?,
            };
            println!("/hooks/{secret}");
            eprintln!(
                "the secret URL path for source `{source}`: put it after your HTTPS host name in \
                 Iterable. It is shown only now (only its hash is stored); up to \
                 {LIVE_PER_SOURCE} can be live per source."
            );
        }
        SecretAction::List => {
            let listed = match &bucket {
                Some(store) => bucket::list(store).await?,
                None => secret_urls::list(&db)?,
            };
            for info in listed {
                println!(
                    "{}\t{}\t{}\tsha256:{}…",
                    info.id, info.source, info.created_at, info.fingerprint
                );
            }
        }
        SecretAction::Revoke { id } => {
            let info = match &bucket {
                Some(store) => bucket::revoke(store, *id).await?,
                None => secret_urls::revoke(&db, *id)?,
            };
            println!("revoked secret URL {} of source `{}`", info.id, info.source);
        }
    }
    Ok(ExitCode::SUCCESS)
}
