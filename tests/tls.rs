//! HTTPS with a certificate made in the test: HTTP/1.1 and HTTP/2 (ALPN), a request over TLS
//! is stored like any other, `server.max_connections` holds, and SIGHUP swaps the certificate
//! for new connections while open ones go on.

mod common;
mod process;

use std::time::Duration;

use common::{email_open, spawn_app_with};
use hookhouse::tls::TlsFiles;

/// A self-signed certificate for `localhost`, written as PEM files; returns its PEM.
fn write_certificate(dir: &std::path::Path) -> (TlsFiles, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    let pem = certified.cert.pem();
    std::fs::write(&files.cert, &pem).unwrap();
    std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
    (files, pem)
}

fn client(pem: &str, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap());
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn https_serves_http1_and_http2_and_stores_the_request() {
    let certs = tempfile::tempdir().unwrap();
    let (files, pem) = write_certificate(certs.path());
    let app = spawn_app_with(move |config| config.server.tls = Some(files)).await;
    let url = format!("https://localhost:{}/iterable/default", app.addr.port());

    for (http1_only, version) in
        [(true, reqwest::Version::HTTP_11), (false, reqwest::Version::HTTP_2)]
    {
        let response = client(&pem, http1_only)
            .post(&url)
            .header("content-type", "application/json")
            .body(email_open(&format!("tls-{http1_only}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
    }
    assert_eq!(app.count("SELECT count(*) FROM events"), 2);

    // Plain HTTP on the HTTPS port is refused, not served.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", app.addr.port()))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port, first) = serve_https(dir.path()).await;
    let health = format!("https://localhost:{port}/healthz");
    assert_eq!(client(&first, true).get(&health).send().await.unwrap().status(), 200);

    let (_, second) = write_certificate(dir.path());
    server.signal("HUP");
    server.wait_for_output("TLS certificate reloaded").await;
    assert_eq!(client(&second, true).get(&health).send().await.unwrap().status(), 200);
    assert!(client(&first, true).get(&health).send().await.is_err(), "old certificate served");

    server.terminate().await;
    let status = server.wait_exit(process::PROCESS_DEADLINE).await;
    assert!(status.success(), "{status}\n{}", server.output());
}

#[tokio::test]
async fn https_connections_beyond_the_limit_wait_until_one_closes() {
    let certs = tempfile::tempdir().unwrap();
    let (files, pem) = write_certificate(certs.path());
    let app = spawn_app_with(move |config| {
        config.server.tls = Some(files);
        config.server.max_connections = std::num::NonZeroUsize::MIN;
    })
    .await;
    let health = format!("https://localhost:{}/healthz", app.addr.port());
    // A connection that has not even begun its handshake already holds the only place.
    let holder = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn({
        let client = client(&pem, false);
        async move { client.get(&health).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served beyond the limit");
    drop(holder);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the first connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sighup_keeps_an_open_http2_connection_working() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port, first) = serve_https(dir.path()).await;
    let url = format!("https://localhost:{port}/iterable/default");
    let post = |client: &reqwest::Client, message: &str| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(email_open(message))
            .send()
    };

    // One client trusting only the first certificate, holding one HTTP/2 connection.
    let open = client(&first, false);
    let before = post(&open, "h2-before").await.unwrap();
    assert_eq!((before.status().as_u16(), before.version()), (200, reqwest::Version::HTTP_2));

    let (_, second) = write_certificate(dir.path());
    server.signal("HUP");
    server.wait_for_output("TLS certificate reloaded").await;
    // New connections get the new certificate...
    assert!(post(&client(&first, false), "h2-new").await.is_err(), "old certificate served");
    assert_eq!(post(&client(&second, false), "h2-second").await.unwrap().status(), 200);
    // ...while the open connection goes on: a new one would present the second certificate,
    // which this client does not trust, so success means the old connection served it.
    for n in 0..3 {
        let after = post(&open, &format!("h2-after-{n}")).await.unwrap();
        assert_eq!((after.status().as_u16(), after.version()), (200, reqwest::Version::HTTP_2));
    }

    server.terminate().await;
    let status = server.wait_exit(process::PROCESS_DEADLINE).await;
    assert!(status.success(), "{status}\n{}", server.output());
}

/// A child `hookhouse serve` on HTTPS with a fresh certificate in `dir`: the server, its port,
/// and the certificate (PEM) a client must trust.
async fn serve_https(dir: &std::path::Path) -> (process::Server, String, String) {
    let (files, certificate) = write_certificate(dir);
    let config = dir.join("hookhouse.toml");
    std::fs::write(
        &config,
        format!(
            "[server.tls]\ncert = '{}'\nkey = '{}'\n",
            files.cert.display(),
            files.key.display()
        ),
    )
    .unwrap();
    let mut command = process::serve(&dir.join("data"));
    command.arg("--config").arg(&config);
    let server = process::Server::start(command).await;
    let port = server.addr().rsplit(':').next().unwrap().to_owned();
    (server, port, certificate)
}
