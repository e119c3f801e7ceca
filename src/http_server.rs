//! The accept loop for plain HTTP and HTTPS alike: `server.max_connections` (connections
//! beyond it wait in the kernel's backlog), a timer on every connection, HTTP/2 flow control
//! and stream limits, and graceful shutdown. It is the loop `axum::serve` runs, over
//! hyper-util, plus the timer and an optional TLS handshake: `axum::serve` cannot configure its
//! connections, and serving plain HTTP through axum-server cost about 0.02 of the ceiling on
//! the ingest benchmark.

mod activity;

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
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::receiver::connection_limit::{LimitedListener, LimitedStream};
use activity::{Activity, Verdict};

/// The connection settings `server.*` gives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// From accept to the first complete request head (TLS handshake included); on a
    /// kept-alive HTTP/1.1 connection, for each later head too.
    pub(crate) header_read_timeout: Duration,
    /// With no request in flight for this long, a connection is closed.
    pub(crate) idle_timeout: Duration,
    pub(crate) max_http2_streams: u32,
    /// The receiver answers 431 past this; hyper's own limits sit at twice it, so a head in
    /// between reaches the receiver and gets a clean 431 instead of a cut connection.
    pub(crate) max_header_bytes: usize,
}

/// HTTP/2 windows: how much one stream, and one connection, may send before the receiver has
/// read it. Small and fixed (no adaptive window), so a connection with many open streams
/// cannot make the server buffer more than this; the body budget bounds what handlers hold.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// HTTP/2 pings find peers that vanished without closing while a request is in flight.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection told to close (idle, or shutting down) with nothing in flight may
/// take to say goodbye (an HTTP/2 GOAWAY and its ping) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// hyper refuses to buffer less than this for an HTTP/1.1 head.
const MIN_HYPER_BUFFER: usize = 8 * 1024;

/// What happens on a new connection before HTTP starts.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Plain,
    /// A TLS handshake with the live configuration (SIGHUP swaps it for new connections;
    /// open ones keep theirs). axum-server's acceptor gives up on a handshake after 10 s.
    Tls(RustlsConfig),
}

/// Serves `router` until `shutdown` is cancelled, then stops accepting, asks every connection
/// to finish its request in flight, and returns once all have closed.
///
/// Every connection, plain or TLS, HTTP/1.1 or HTTP/2, is closed if no complete request head
/// has arrived `header_read_timeout` after it was accepted, and once no request has been in
/// flight for `idle_timeout`, so silent, slow or idle clients cannot hold connections, and
/// with them `server.max_connections`.
pub(crate) async fn serve(
    mut listener: LimitedListener,
    router: Router,
    transport: Transport,
    shutdown: CancellationToken,
    settings: Settings,
) {
    let hyper_limit = settings.max_header_bytes.saturating_mul(2).max(MIN_HYPER_BUFFER);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(hyper_limit);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_http2_streams)
        .max_header_list_size(u32::try_from(hyper_limit).unwrap_or(u32::MAX))
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .adaptive_window(false)
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    let builder = Arc::new(builder);
    let tls = match transport {
        Transport::Plain => None,
        Transport::Tls(config) => Some(RustlsAcceptor::new(config)),
    };
    // Every connection is a task of `connections`, told to finish by `shutdown`.
    let connections = TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let connection = Connection {
            activity: Activity::new(Instant::now()),
            settings,
            builder: Arc::clone(&builder),
            router: router.clone(),
            remote,
            stopping: shutdown.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => connection.serve_tls(acceptor, stream).await,
            }
        });
    }
    // The listening socket closes here: new clients are refused, not left in the backlog.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One accepted connection and what it needs from the server.
struct Connection {
    /// Its requests, and when it was accepted.
    activity: Arc<Activity>,
    settings: Settings,
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    remote: SocketAddr,
    /// Cancelled at shutdown: finish the request in flight, then close.
    stopping: CancellationToken,
}

impl Connection {
    async fn serve_tls(self, acceptor: RustlsAcceptor, stream: LimitedStream) {
        // The handshake counts against the time allowed for the first request head.
        let deadline = self.first_head_deadline();
        let handshake = tokio::select! {
            handshake = acceptor.accept(stream, ()) => handshake,
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(remote = %self.remote, "TLS handshake not done in time");
                return;
            }
            // A connection still in its handshake at shutdown has no request to finish.
            () = self.stopping.cancelled() => return,
        };
        match handshake {
            Ok((stream, _)) => self.serve(stream).await,
            Err(err) => {
                tracing::debug!(error = %err, remote = %self.remote, "TLS handshake failed");
            }
        }
    }

    fn first_head_deadline(&self) -> Instant {
        match self.activity.verdict(
            Instant::now(),
            self.settings.header_read_timeout,
            self.settings.idle_timeout,
        ) {
            Verdict::WaitUntil(deadline) => deadline,
            Verdict::Unused | Verdict::Idle => Instant::now(),
        }
    }

    async fn serve(self, stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let tower = TowerToHyperService::new(self.router.clone());
        let remote = self.remote;
        let activity = Arc::clone(&self.activity);
        // What `into_make_service_with_connect_info` does: handlers read the peer address
        // from `ConnectInfo`. The guard tells the timer a request is in flight.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            let in_flight = activity.begin();
            let response = hyper::service::Service::call(&tower, request);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        });
        let mut connection = pin!(self.builder.serve_connection(TokioIo::new(stream), service));
        let (head, idle) = (self.settings.header_read_timeout, self.settings.idle_timeout);
        let timer = tokio::time::sleep_until(self.first_head_deadline());
        let mut timer = pin!(timer);
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
                () = self.stopping.cancelled(), if !finishing => {
                    if !self.activity.ever_used() {
                        // Silent or mid-head: there is no request to finish.
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    finishing = true;
                    timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                }
                () = timer.as_mut() => {
                    let now = Instant::now();
                    match self.activity.verdict(now, head, idle) {
                        // Once closing, checked often enough to drop it soon after it is idle.
                        Verdict::WaitUntil(at) if finishing => {
                            timer.as_mut().reset(at.min(now + CLOSE_GRACE));
                        }
                        Verdict::WaitUntil(at) => timer.as_mut().reset(at),
                        Verdict::Unused => {
                            tracing::debug!(remote = %remote, "closed: no request head in time");
                            return;
                        }
                        // Told to close already, and still open with nothing in flight.
                        Verdict::Idle if finishing => return,
                        Verdict::Idle => {
                            connection.as_mut().graceful_shutdown();
                            finishing = true;
                            timer.as_mut().reset(now + CLOSE_GRACE);
                        }
                    }
                }
            }
        }
    }
}
