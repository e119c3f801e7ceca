//! Start-up wiring: open the store, bind the port, serve until shutdown, then drain the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

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
            format!(
                "failed to open the store in `{}`",
                config.store.data_dir.display()
            )
        })?;
        let listen = config.server.listen;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!(
                "failed to listen on `{listen}`: choose another with --listen or `server.listen`"
            )
        })?;
        Ok(App {
            listener,
            state: Arc::new(AppState { config, spool }),
            writer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to the configured one regardless.
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
    /// (each waits for its commit), and returns once the store has committed everything queued.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            listener,
            state,
            writer,
        } = self;
        let router = receiver::router(state);
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
        // The router, and with it the last handle to the spool, is dropped by now, so the
        // writer drains its queue and exits.
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .context("failed to wait for the store to finish")?;
        Ok(())
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "failed to listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
