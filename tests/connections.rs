//! Connections that send nothing useful are closed on time, plain or TLS, HTTP/1.1 or HTTP/2:
//! silent, one byte, part of the HTTP/2 preface, the whole preface and SETTINGS, a finished TLS
//! handshake; idle kept-alive connections too. So `server.max_connections` silent sockets do
//! not lock out senders, and they do not hold up shutdown.

mod common;
mod h2_client;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{email_open, spawn_app_with};
use hookhouse::config::Config;
use hookhouse::tls::TlsFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The client half of the HTTP/2 preface, then an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

const HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads until the server closes (EOF or reset) and returns how long that took from `since`,
/// or fails once `limit` has passed.
async fn closed_after(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    since: Instant,
    limit: Duration,
) -> Duration {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after {limit:?}");
    since.elapsed()
}

async fn connect_and_send(addr: std::net::SocketAddr, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let since = Instant::now();
    stream.write_all(bytes).await.unwrap();
    (stream, since)
}

fn short_timeouts(config: &mut Config) {
    config.server.header_read_timeout = HEAD_TIMEOUT;
    config.server.idle_timeout = Duration::from_secs(1);
}

#[tokio::test]
async fn connections_without_a_request_head_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(short_timeouts).await;
    let mut preface_and_settings = H2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(&EMPTY_SETTINGS);
    let cases: [(&str, &[u8]); 5] = [
        ("silent", b""),
        ("one byte", b"P"),
        ("preface prefix", &H2_PREFACE[..10]),
        ("preface and SETTINGS", &preface_and_settings),
        ("part of an HTTP/1.1 head", b"POST /iterable/default HTTP/1.1\r\nHost: x\r\n"),
    ];
    let mut waits = Vec::new();
    for (name, bytes) in cases {
        let (stream, since) = connect_and_send(app.addr, bytes).await;
        waits.push((name, tokio::spawn(closed_after(stream, since, Duration::from_secs(10)))));
    }
    for (name, wait) in waits {
        let waited = wait.await.unwrap_or_else(|_| panic!("{name}: still open"));
        assert!(waited >= HEAD_TIMEOUT - Duration::from_millis(100), "{name}: {waited:?}");
        assert!(waited < HEAD_TIMEOUT * 3, "{name}: closed after {waited:?}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tls_connections_silent_before_or_after_the_handshake_are_closed_on_time() {
    let certs = tempfile::tempdir().unwrap();
    let (files, der) = write_certificate(certs.path());
    let app = spawn_app_with(move |config| {
        short_timeouts(config);
        config.server.tls = Some(files);
    })
    .await;
    // No handshake at all.
    let (silent, since) = connect_and_send(app.addr, b"").await;
    let before = tokio::spawn(closed_after(silent, since, Duration::from_secs(10)));
    // A whole handshake, offering HTTP/2, then nothing.
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let since = Instant::now();
    let tls = tls_connector(der).connect(ServerName::try_from("localhost").unwrap(), tcp);
    let tls = tls.await.expect("handshake");
    let after = closed_after(tls, since, Duration::from_secs(10)).await;
    let before = before.await.unwrap();
    for waited in [before, after] {
        assert!(waited >= HEAD_TIMEOUT - Duration::from_millis(100), "{waited:?}");
        assert!(waited < HEAD_TIMEOUT * 3, "closed after {waited:?}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_on_http1_and_http2() {
    let app = spawn_app_with(|config| {
        config.server.header_read_timeout = Duration::from_secs(5);
        config.server.idle_timeout = Duration::from_secs(1);
    })
    .await;
    // HTTP/1.1, kept alive after its response.
    let (mut h1, _) = connect_and_send(app.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buffer = [0u8; 512];
    let n = h1.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let h1_idle = tokio::spawn(closed_after(h1, answered, Duration::from_secs(10)));

    // HTTP/2, with one request answered.
    let mut h2 = h2_client::connect(app.addr).await;
    let sent = h2.post("/iterable/default", &[("content-type", "application/json")], "{}".into());
    assert_eq!(sent.await.status.map(|s| s.as_u16()), Some(200));
    let answered = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), &mut h2.closed).await;
    let h2_idle = closed.expect("HTTP/2 connection still open").unwrap() - answered;

    for (name, waited) in [("http/1.1", h1_idle.await.unwrap()), ("http/2", h2_idle)] {
        assert!(waited >= Duration::from_millis(900), "{name}: {waited:?}");
        assert!(waited < Duration::from_secs(4), "{name}: closed after {waited:?}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn silent_sockets_up_to_max_connections_do_not_lock_out_a_sender() {
    let app = spawn_app_with(|config| {
        short_timeouts(config);
        config.server.max_connections = NonZeroUsize::new(20).unwrap();
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response =
        tokio::time::timeout(Duration::from_secs(10), app.post_webhook(&email_open("x")))
            .await
            .expect("a sender locked out by silent sockets");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    drop(silent);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn silent_connections_do_not_hold_up_shutdown() {
    let app = spawn_app_with(|config| {
        config.server.header_read_timeout = Duration::from_secs(30);
        config.server.shutdown_timeout = Duration::from_secs(30);
    })
    .await;
    let mut preface_and_settings = H2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(&EMPTY_SETTINGS);
    let mut open = Vec::new();
    for bytes in [&b""[..], b"P", &preface_and_settings, b"POST /iterable/default HTTP/1.1\r\n"] {
        open.push(connect_and_send(app.addr, bytes).await.0);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown waited for silent connections")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// A self-signed certificate for `localhost`, written as PEM files; returns its DER.
fn write_certificate(dir: &std::path::Path) -> (TlsFiles, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.cert, certified.cert.pem()).unwrap();
    std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
    (files, certified.cert.der().clone())
}

fn tls_connector(certificate: CertificateDer<'static>) -> TlsConnector {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsConnector::from(Arc::new(config))
}
