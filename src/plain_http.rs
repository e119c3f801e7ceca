//! Plain HTTP: an accept loop of our own over hyper-util, the loop `axum::serve` runs, plus a
//! timer so every connection gets `server.header_read_timeout`. `axum::serve` offers no way to
//! configure its connections, and moving plain HTTP to axum-server (as HTTPS is) cost about
//! 0.02 of the ceiling on the ingest benchmark; this loop adds only the timer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::serve::Listener as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

use crate::receiver::connection_limit::LimitedListener;

/// Serves `router` until `shutdown` resolves, then stops accepting, asks every connection to
/// finish its request in flight, and returns once all have closed.
///
/// A client that has not sent a whole request head `header_read_timeout` after the connection
/// opened (or, on a kept-alive connection, after its previous response) is disconnected, so
/// slow or idle clients cannot hold connections, and with them `server.max_connections`.
pub(crate) async fn serve(
    mut listener: LimitedListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let builder = Arc::new(builder);
    // `stop` tells connections to finish; every connection holds a `closed` receiver, so
    // `all_closed.closed()` resolves once the last one has ended.
    let (stop, stopping) = watch::channel(false);
    let (all_closed, closed) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tower = TowerToHyperService::new(router.clone());
        // What `into_make_service_with_connect_info` does: handlers read the peer address
        // from `ConnectInfo`.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            hyper::service::Service::call(&tower, request)
        });
        let builder = Arc::clone(&builder);
        let mut stopping = stopping.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let mut finishing = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(err) = served {
                            // Resets, timeouts and malformed requests: the client's doing.
                            tracing::debug!(error = %err, remote = %remote, "connection ended");
                        }
                        break;
                    }
                    _ = stopping.changed(), if !finishing => {
                        connection.as_mut().graceful_shutdown();
                        finishing = true;
                    }
                }
            }
            drop(closed);
        });
    }
    // The listening socket closes here: new clients are refused, not left in the backlog.
    drop(listener);
    let _ = stop.send(true);
    drop(closed);
    all_closed.closed().await;
}
