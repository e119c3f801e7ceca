//! The "ceiling" for the ingest benchmark: a no-op axum server that reads and parses each
//! webhook body as JSON and answers 200, storing nothing. Any JSON receiver does at least this
//! much, so hookhouse's throughput is reported as a fraction of this one's (see `bench/run.sh`).

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::{Router, http::StatusCode, routing::post};
use bytes::Bytes;
use tokio::net::TcpListener;

const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let addr: SocketAddr =
        listen.parse().with_context(|| format!("invalid listen address `{listen}`"))?;

    let app = Router::new().route("/iterable/{source}", post(receive));
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("failed to bind `{addr}`"))?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    Ok(())
}

/// Does the minimum any JSON webhook receiver must: take the whole body and parse it.
async fn receive(body: Bytes) -> StatusCode {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Resolves on SIGTERM or Ctrl-C so `bench/run.sh` can stop the server like it stops hookhouse.
async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, never resolve rather than shut down at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
