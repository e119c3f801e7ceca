//! Start-up wiring: open the store, bind the port, serve until shutdown, then drain the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::answers::Answers;
use crate::config::Config;
use crate::http_server::{self, Transport};
use crate::inspector::{self, Inspector};
use crate::jetstream::Stream;
use crate::jetstream::loader;
use crate::jetstream::log::StreamLog;
use crate::receiver::connection_limit::LimitedListener;
use crate::receiver::{self, AppState, RequestLog};
use crate::sinks;
use crate::spool::{self, Spool, WriterHandle};
use crate::tls::TlsFiles;

/// What a process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receive webhooks and run the sinks (with a JetStream log, unless `--no-load`).
    Serve { load: bool },
    /// Run the sinks from the JetStream log; serve only `/healthz`, `/readyz`, `/metrics`.
    Load,
}

impl Role {
    /// Whether this process runs the sinks.
    pub fn loads(self) -> bool {
        !matches!(self, Role::Serve { load: false })
    }
}

/// A bound, ready-to-run hookhouse.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
    role: Role,
    /// The SQLite log's writer; none with a JetStream log.
    writer: Option<WriterHandle>,
    /// The certificate files and the live configuration SIGHUP reloads, when serving HTTPS.
    tls: Option<(TlsFiles, RustlsConfig)>,
    /// The inspector's listener (`[admin] listen`), when configured.
    admin: Option<(TcpListener, Arc<Inspector>)>,
}

/// Connections the admin listener serves at once: people with a browser, not Iterable.
const ADMIN_MAX_CONNECTIONS: usize = 64;

impl App {
    /// Opens the store and binds the listening socket; nothing is served until [`App::run`].
    pub async fn build(config: Config) -> anyhow::Result<App> {
        App::build_as(config, Role::Serve { load: true }).await
    }

    /// Opens the request log (the SQLite store, or the JetStream stream) and binds the
    /// listening socket for `role`.
    pub async fn build_as(config: Config, role: Role) -> anyhow::Result<App> {
        // Before the store opens: a refused `sql` answer is a configuration problem.
        let answers = Answers::for_config(&config).map_err(|problems| {
            anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
        })?;
        let (log, writer) = match config.spool.jetstream() {
            None => {
                if role == Role::Load {
                    anyhow::bail!(
                        "`hookhouse load` runs the sinks of a JetStream log: set `[spool] kind =                          \"jetstream\"` (with the SQLite log, `serve` runs the sinks itself)"
                    );
                }
                let store = config.store_in(&config.store.data_dir);
                let (spool, writer) = Spool::open(&store).with_context(|| {
                    format!("failed to open the store in `{}`", config.store.data_dir.display())
                })?;
                (RequestLog::Sqlite(spool), Some(writer))
            }
            Some(js) => {
                let stream = Stream::open(&config).await.with_context(|| {
                    format!("failed to open the JetStream stream `{}`", js.stream)
                })?;
                let no_sink = config.sinks.postgres.is_none() && config.sinks.sqlite_copy.is_none();
                if role == Role::Load && no_sink {
                    anyhow::bail!(
                        "no sink to load: configure one, such as `[sinks.postgres] url = ...` or \
                         `[sinks.sqlite] path = \"/var/lib/hookhouse/copy\"`"
                    );
                }
                (RequestLog::JetStream(Box::new(StreamLog::new(stream))), None)
            }
        };
        let listen = config.server.listen;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!(
                "failed to listen on `{listen}`: choose another with --listen or `server.listen`"
            )
        })?;
        // Certificates are read now, so a bad file stops start-up rather than the first request.
        let tls = match &config.server.tls {
            Some(files) => {
                let loaded = files.load().context("failed to set up TLS")?;
                Some((files.clone(), RustlsConfig::from_config(loaded)))
            }
            None => None,
        };
        let admin = match &config.admin {
            None => None,
            Some(admin) => {
                let admin_listener = TcpListener::bind(admin.listen).await.with_context(|| {
                    format!(
                        "failed to listen on `{}` for the inspector: choose another with \
                         --admin or `admin.listen`",
                        admin.listen
                    )
                })?;
                let webhook_addr = listener.local_addr().unwrap_or(listen);
                let inspector = Inspector::new(&config, webhook_addr)
                    .context("the inspector has no embedded tables to read")?;
                Some((admin_listener, Arc::new(inspector)))
            }
        };
        let state = Arc::new(AppState::new(config, log, answers));
        Ok(App { listener, state, role, writer, tls, admin })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to the configured one regardless.
        self.listener.local_addr().unwrap_or(self.state.config.server.listen)
    }

    /// Where the inspector listens, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
    /// (each waits for its commit), lets the sinks load what was committed (for a few
    /// seconds at most), and returns once the store has committed everything queued.
    ///
    /// One mechanism stops everything: the signal cancels `stop_serving`; once the server has
    /// drained, `stop_sinks` is cancelled and the sinks' tasks are awaited through their
    /// tracker; the writer then ends because the last handle to the spool is gone.
    ///
    /// A connection still open `server.shutdown_timeout` after the signal (a stalled client)
    /// is not waited for: `run` returns and the process exits. Nothing acknowledged is lost,
    /// since a 2xx is only sent after its commit; a request cut there was never answered, so
    /// its sender retries.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App { listener, state, role, writer, tls, admin } = self;
        let stop_serving = CancellationToken::new();
        let stop_sinks = CancellationToken::new();
        let sink_tasks = TaskTracker::new();
        // Should this future be dropped rather than finish, the sinks stop all the same.
        let _stop_sinks_if_dropped = stop_sinks.clone().drop_guard();
        match &state.log {
            RequestLog::Sqlite(spool) => {
                sinks::start(&state.config, spool, &state.metrics, &stop_sinks, &sink_tasks)
                    .context("failed to start the sinks")?;
                // Stopped with the sinks: it holds a handle to the writer, as they do.
                sink_tasks.spawn(spool::run_retention(
                    spool.clone(),
                    state.config.store.retention,
                    stop_sinks.clone(),
                ));
            }
            RequestLog::JetStream(log) if role.loads() => {
                let started = loader::start(
                    &state.config,
                    log.stream(),
                    &state.metrics,
                    &stop_sinks,
                    &sink_tasks,
                )?;
                if started == 0 {
                    tracing::warn!(
                        "no sink is configured: requests stay in the stream until a \
                        loader with a sink runs"
                    );
                }
            }
            RequestLog::JetStream(_) => {}
        }
        let signalled = stop_serving.clone();
        tokio::spawn(async move {
            shutdown.await;
            signalled.cancel();
        });
        let server = &state.config.server;
        let grace = server.shutdown_timeout;
        let settings = http_server::Settings {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_http2_streams: u32::try_from(server.max_http2_streams.get()).unwrap_or(u32::MAX),
            max_header_bytes: server.max_header_bytes.get(),
        };
        let listener = LimitedListener::new(listener, server.max_connections.get());
        let transport = match tls {
            None => Transport::Plain,
            Some((files, config)) => {
                files.reload_on_sighup(config.clone()).context("failed to listen for SIGHUP")?;
                Transport::Tls(config)
            }
        };
        // The inspector serves beside the webhook port, with its certificate, and stops with it.
        let admin_served = admin.map(|(admin_listener, inspector)| {
            let (stopping, replay_stop) = (stop_serving.clone(), inspector.stop_token());
            tokio::spawn(async move {
                stopping.cancelled().await;
                replay_stop.cancel();
            });
            let listener = LimitedListener::new(admin_listener, ADMIN_MAX_CONNECTIONS);
            let served = http_server::serve(
                listener,
                inspector::router(inspector),
                transport.clone(),
                stop_serving.clone(),
                settings,
            );
            tokio::spawn(served)
        });
        let router = match role {
            Role::Serve { .. } => receiver::router(state),
            Role::Load => receiver::operations_router(state),
        };
        let drained = serve(listener, router, transport, stop_serving, grace, settings).await;
        if let Some(admin_served) = admin_served {
            // Its connections hold no store handle; a page left open is not waited for long.
            let _ = tokio::time::timeout(grace.min(ADMIN_STOP_TIMEOUT), admin_served).await;
        }
        // The sinks load what was committed, then stop; whatever they had not loaded stays in
        // the log behind their cursors.
        stop_sinks.cancel();
        sink_tasks.close();
        if tokio::time::timeout(SINK_STOP_TIMEOUT, sink_tasks.wait()).await.is_err() {
            tracing::warn!("a sink did not stop in time; it loads from its cursor at next start");
        }
        if !drained {
            tracing::warn!(
                timeout_secs = grace.as_secs(),
                "connections still open after the shutdown timeout; closing them"
            );
            return Ok(());
        }
        // The router, and with it the last handle to the spool, is dropped once the last
        // connection has ended, so the writer drains its queue and exits. Connections cut at
        // the deadline may take a moment to unwind; the join is bounded so exit never hangs.
        let Some(writer) = writer else { return Ok(()) };
        let join = tokio::task::spawn_blocking(move || writer.join());
        match tokio::time::timeout(WRITER_JOIN_TIMEOUT, join).await {
            Ok(joined) => joined.context("failed to wait for the store to finish")?,
            Err(_) => tracing::warn!("the store writer did not finish in time; exiting anyway"),
        }
        Ok(())
    }
}

/// How long shutdown waits for the sinks to catch up and stop (each gives itself a little
/// less, see `sinks::runner`).
const SINK_STOP_TIMEOUT: Duration = Duration::from_secs(6);

/// How long shutdown waits for the inspector's connections (a page polling it) to close.
const ADMIN_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the writer once the server has stopped.
const WRITER_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves plain HTTP or HTTPS (see `http_server`). Returns whether every connection closed
/// within `grace` after the signal; if not, the caller stops waiting for them.
async fn serve(
    listener: LimitedListener,
    router: Router,
    transport: Transport,
    shutdown: CancellationToken,
    grace: Duration,
    settings: http_server::Settings,
) -> bool {
    let served = http_server::serve(listener, router, transport, shutdown.clone(), settings);
    let deadline = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = served => true,
        () = deadline => false,
    }
}

/// Installs the SIGTERM and ctrl-c (SIGINT) handlers now, so a signal that arrives before
/// serving starts is not lost, and returns a future that resolves on the first of them.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing the requests in flight");
    })
}
