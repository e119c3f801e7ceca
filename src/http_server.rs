//! The accept loop for plain HTTP and HTTPS alike: `server.max_connections` (connections
//! beyond it wait in the kernel's backlog), a header-read timeout on every connection, and
//! graceful shutdown. It is the loop `axum::serve` runs, over hyper-util, plus a timer and an
//! optional TLS handshake: `axum::serve` cannot configure its connections, and serving plain
//! HTTP through axum-server cost about 0.02 of the ceiling on the ingest benchmark.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::serve::Listener as _;
use axum_server::accept::Accept as _;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::receiver::connection_limit::{LimitedListener, LimitedStream};

/// What happens on a new connection before HTTP starts.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Plain,
    /// A TLS handshake with the live configuration (SIGHUP swaps it for new connections;
    /// open ones keep theirs). axum-server's acceptor gives up on a handshake after 10 s.
    Tls(RustlsConfig),
}

/// Serves `router` until `shutdown` resolves, then stops accepting, asks every connection to
/// finish its request in flight, and returns once all have closed.
///
/// A client that has not sent a whole HTTP/1.1 request head `header_read_timeout` after the
/// connection is ready (or, on a kept-alive connection, after its previous response) is
/// disconnected, so slow or idle clients cannot hold connections, and with them
/// `server.max_connections`.
pub(crate) async fn serve(
    mut listener: LimitedListener,
    router: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let tls = match transport {
        Transport::Plain => None,
        Transport::Tls(config) => Some(RustlsAcceptor::new(config)),
    };
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
        let connection = Connection {
            builder: Arc::clone(&builder),
            router: router.clone(),
            remote,
            stopping: stopping.clone(),
            _closed: closed.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => connection.serve_tls(acceptor, stream).await,
            }
        });
    }
    // The listening socket closes here: new clients are refused, not left in the backlog.
    drop(listener);
    let _ = stop.send(true);
    drop(closed);
    all_closed.closed().await;
}

/// One accepted connection and what it needs from the server.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    remote: SocketAddr,
    stopping: watch::Receiver<bool>,
    /// Dropped when the connection ends; the server waits for every one at shutdown.
    _closed: watch::Receiver<()>,
}

impl Connection {
    async fn serve_tls(mut self, acceptor: RustlsAcceptor, stream: LimitedStream) {
        let handshake = tokio::select! {
            handshake = acceptor.accept(stream, ()) => handshake,
            // A connection still in its handshake at shutdown has no request to finish.
            _ = self.stopping.changed() => return,
        };
        match handshake {
            Ok((stream, _)) => self.serve(stream).await,
            Err(err) => {
                tracing::debug!(error = %err, remote = %self.remote, "TLS handshake failed");
            }
        }
    }

    async fn serve(mut self, stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let tower = TowerToHyperService::new(self.router.clone());
        let remote = self.remote;
        // What `into_make_service_with_connect_info` does: handlers read the peer address
        // from `ConnectInfo`.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            hyper::service::Service::call(&tower, request)
        });
        let mut connection = pin!(self.builder.serve_connection(TokioIo::new(stream), service));
        let mut finishing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        // Resets, timeouts and malformed requests: the client's doing.
                        tracing::debug!(error = %err, remote = %remote, "connection ended");
                    }
                    return;
                }
                _ = self.stopping.changed(), if !finishing => {
                    connection.as_mut().graceful_shutdown();
                    finishing = true;
                }
            }
        }
    }
}
