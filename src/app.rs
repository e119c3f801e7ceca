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
use tokio::sync::oneshot;

use crate::config::Config;
use crate::plain_http;
use crate::receiver::connection_limit::LimitedListener;
use crate::receiver::{self, AppState};
use crate::spool::{Spool, WriterHandle};
use crate::tls::TlsFiles;

/// A bound, ready-to-run hookhouse.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
    writer: WriterHandle,
    /// The certificate files and the live configuration SIGHUP reloads, when serving HTTPS.
    tls: Option<(TlsFiles, RustlsConfig)>,
}

impl App {
    /// Opens the store and binds the listening socket; nothing is served until [`App::run`].
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let (spool, writer) = Spool::open(&config.store).with_context(|| {
            format!("failed to open the store in `{}`", config.store.data_dir.display())
        })?;
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
        Ok(App { listener, state: Arc::new(AppState::new(config, spool)), writer, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to the configured one regardless.
        self.listener.local_addr().unwrap_or(self.state.config.server.listen)
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
    /// (each waits for its commit), and returns once the store has committed everything queued.
    ///
    /// A connection still open `server.shutdown_timeout` after the signal (a stalled client)
    /// is not waited for: `run` returns and the process exits. Nothing acknowledged is lost,
    /// since a 2xx is only sent after its commit; a request cut there was never answered, so
    /// its sender retries.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App { listener, state, writer, tls } = self;
        let grace = state.config.server.shutdown_timeout;
        let header_timeout = state.config.server.header_read_timeout;
        let max_connections = state.config.server.max_connections.get();
        let router = receiver::router(state);
        let drained = match tls {
            None => {
                let listener = LimitedListener::new(listener, max_connections);
                serve_plain(listener, router, shutdown, grace, header_timeout).await
            }
            Some((files, config)) => {
                files.reload_on_sighup(config.clone()).context("failed to listen for SIGHUP")?;
                serve_tls(listener, router, config, shutdown, grace, header_timeout).await?;
                true
            }
        };
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
        let join = tokio::task::spawn_blocking(move || writer.join());
        match tokio::time::timeout(WRITER_JOIN_TIMEOUT, join).await {
            Ok(joined) => joined.context("failed to wait for the store to finish")?,
            Err(_) => tracing::warn!("the store writer did not finish in time; exiting anyway"),
        }
        Ok(())
    }
}

/// How long shutdown waits for the writer once the server has stopped.
const WRITER_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain HTTP, with a header-read timeout (see `plain_http`). Returns whether every
/// connection closed within `grace` after the signal.
async fn serve_plain(
    listener: LimitedListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_timeout: Duration,
) -> bool {
    let (began, shutdown_began) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = began.send(());
    };
    let serve = plain_http::serve(listener, router, signal, header_timeout);
    let deadline = async move {
        match shutdown_began.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = serve => true,
        () = deadline => false,
    }
}

/// HTTPS (HTTP/1.1 and HTTP/2 by ALPN); axum-server closes what is still open after `grace`.
async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: RustlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_timeout: Duration,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(grace));
    });
    let listener = listener.into_std().context("failed to hand the socket to the TLS server")?;
    let mut server =
        axum_server::from_tcp_rustls(listener, config).context("failed to start the TLS server")?;
    // A client gets `header_timeout` to send its request headers; a slow one is disconnected.
    server.http_builder().http1().header_read_timeout(Some(header_timeout));
    server
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .context("the HTTPS server failed")
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
