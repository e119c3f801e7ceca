//! Start-up wiring: open the store, bind the port, serve until shutdown, then drain the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::receiver::{self, AppState};
use crate::spool::{Spool, WriterHandle};

/// A bound, ready-to-run hookhouse.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
    writer: WriterHandle,
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
        Ok(App { listener, state: Arc::new(AppState { config, spool }), writer })
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
        let App { listener, state, writer } = self;
        let grace = state.config.server.shutdown_timeout;
        let (began, shutdown_began) = oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = began.send(());
        };
        let router = receiver::router(state);
        let serve =
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(signal);
        let deadline = async move {
            match shutdown_began.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            served = serve => served.context("the HTTP server failed")?,
            () = deadline => {
                tracing::warn!(
                    timeout_secs = grace.as_secs(),
                    "connections still open after the shutdown timeout; closing them"
                );
                return Ok(());
            }
        }
        // The router, and with it the last handle to the spool, is dropped by now, so the
        // writer drains its queue and exits.
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .context("failed to wait for the store to finish")?;
        Ok(())
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
