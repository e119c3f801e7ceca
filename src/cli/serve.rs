//! `hookhouse serve`: load the configuration, start, print where to point Iterable.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::app::{App, Role, shutdown_signal};
use crate::config::{AnswerKind, Config, Overrides, SourceAuth};
use crate::request::SNOWPLOW_PATH;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file; `HOOKHOUSE_*` variables and these flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve the inspector (a page and JSON API showing what arrived) on this address, such
    /// as `127.0.0.1:8081`; off unless given here or as `[admin] listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Where the store lives [default: ./hookhouse-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Refuse to start on a warning too (a secret file or TLS key other users can read).
    #[arg(long)]
    pub strict: bool,
    /// With a JetStream log: only receive, leaving the sinks to `hookhouse load` processes.
    #[arg(long)]
    pub no_load: bool,
}

impl ServeArgs {
    /// The configuration these flags name; its warnings are logged, or with `--strict`
    /// refused like errors.
    pub(super) fn load_config(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            admin: self.admin.clone(),
        };
        let config = Config::load(self.config.as_deref(), &overrides)?;
        if self.strict && !config.warnings.is_empty() {
            anyhow::bail!(
                "refusing to start with --strict:\n  - {}",
                config.warnings.join("\n  - ")
            );
        }
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let role = Role::Serve { load: !args.no_load };
    run(args, role).await
}

/// `hookhouse load`: the sinks of a JetStream log, and `/healthz`, `/readyz`, `/metrics`.
pub(super) async fn load(args: ServeArgs) -> anyhow::Result<()> {
    run(args, Role::Load).await
}

async fn run(args: ServeArgs, role: Role) -> anyhow::Result<()> {
    let config = args.load_config()?;
    let shutdown = shutdown_signal().context("failed to install the signal handlers")?;
    let app = App::build_as(config, role).await?;
    print_banner(&app, role);
    app.run(shutdown).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Tells a new user where to point Iterable.
fn print_banner(app: &App, role: Role) {
    let config = app.config();
    let scheme = if config.server.tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", app.local_addr());
    let log = match config.spool.jetstream() {
        None => format!("store: {}", config.store.db_path().display()),
        Some(js) => format!(
            "request log: JetStream stream `{}` ({} replicas) on {}",
            js.stream,
            js.replicas,
            js.servers.join(", ")
        ),
    };
    let mut text =
        format!("hookhouse {} listening on {base}\n  {log}\n", env!("CARGO_PKG_VERSION"));
    if !role.loads() {
        text.push_str("  not loading (--no-load): `hookhouse load` processes run the sinks\n");
    }
    if let (Some(pg), true) = (&config.sinks.postgres, role.loads()) {
        text.push_str(&format!(
            "  loading PostgreSQL: {} schema `{}`{} (lag: `hookhouse status`)\n",
            pg.url_masked(),
            pg.schema,
            if pg.tls { " over TLS" } else { "" }
        ));
    }
    if role == Role::Load {
        text.push_str("  Health: /healthz  Readiness: /readyz  Metrics: /metrics\n");
        text.push_str(&inspector_line(app, scheme));
        println!("{text}");
        return;
    }
    text.push_str("\n  Point Iterable's system webhooks (Integrations > Webhooks) at:\n");
    for source in &config.sources {
        text.push_str(&format!("    source `{}`: {base}/iterable/{}\n", source.name, source.name));
    }
    if let Some(source) = &config.server.snowplow_source {
        text.push_str(&format!(
            "  or keep a Snowplow-style URL (source `{source}`):\n    {base}{SNOWPLOW_PATH}?schema=\
             iglu%3Acom.iterable%2Fsystem_webhook%2Fjsonschema%2F1-0-0\n"
        ));
    }
    text.push_str(&journey_lines(config, &base));
    if config.server.tls.is_none() {
        text.push_str(
            "  Iterable only calls HTTPS URLs: set `[server.tls]` or publish this port through a \
             TLS-terminating proxy.\n",
        );
    }
    text.push_str("  Health: /healthz  Readiness: /readyz  Metrics: /metrics\n");
    text.push_str(&inspector_line(app, scheme));
    println!("{text}");
}

/// The token URL of each `oauth2` source and the URL of each journey that answers with data,
/// as they go into a journey webhook's settings.
fn journey_lines(config: &Config, base: &str) -> String {
    let mut text = String::new();
    for source in &config.sources {
        let name = &source.name;
        if let SourceAuth::OAuth2(clients) = &source.auth {
            let ids: Vec<&str> = clients.iter().map(|client| client.id.as_str()).collect();
            text.push_str(&format!(
                "  Journey webhooks of source `{name}` use OAuth 2.0 client credentials:\n    \
                 token URL {base}/iterable/{name}/oauth/token, client id {}\n",
                ids.join(" or ")
            ));
        }
        for journey in &source.journeys {
            let kind = match journey.answer {
                AnswerKind::Engagement { .. } => "the user's engagement",
                AnswerKind::Sql { .. } => "its `sql` query's first row",
            };
            text.push_str(&format!(
                "  Journey `{}` answers with {kind}:\n    GET {base}/iterable/{name}/journey/{}\
                 ?email={{{{email}}}}\n",
                journey.journey, journey.journey
            ));
        }
    }
    text
}

/// Where to open the inspector, or how to turn it on.
fn inspector_line(app: &App, scheme: &str) -> String {
    match (app.admin_addr(), &app.config().admin) {
        (Some(addr), Some(admin)) => format!(
            "\n  Inspector (what arrived, and what became of it): {scheme}://{addr}/{}\n",
            if admin.token.is_some() { "  (asks for `admin.token`)" } else { "" }
        ),
        _ => "\n  Inspector: off; run with `--admin 127.0.0.1:8081` (or set `[admin] listen`) to \
              watch requests arrive in a browser\n"
            .to_owned(),
    }
}
