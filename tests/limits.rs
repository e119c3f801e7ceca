//! Slow clients and many of them: a body that does not arrive in time gets 408 and is not
//! stored; headers that do not arrive in time close the connection; connections beyond
//! `server.max_connections` wait.

mod common;
mod process;

use std::time::{Duration, Instant};

use common::spawn_app_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the server sends until it closes the connection (bounded by `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut received = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_not_stored() {
    let app = spawn_app_with(|c| c.server.body_read_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /iterable/default HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"eventName\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for the body");
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = spawn_app_with(|c| c.server.max_connections = std::num::NonZeroUsize::MIN).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // The first connection is served and kept open (keep-alive).
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buffer = [0u8; 512];
    let n = first.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));

    // The second waits while the first is open...
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(waited.is_err(), "served beyond the limit");
    // ...and is served once it closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buffer))
        .await
        .expect("served after the first closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    drop(second);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_disconnects_a_client_slow_to_send_its_headers() {
    let app = spawn_app_with(|c| c.server.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /iterable/def").await.unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(waited >= Duration::from_millis(900), "cut before the timeout: {waited:?}");
    assert!(waited < Duration::from_secs(5), "not cut within the timeout: {waited:?}");
    // A client that sends its request in time is served meanwhile and after.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_are_logged_without_flooding_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = process::serve(&dir.path().join("data"));
    command.env("HOOKHOUSE_SERVER__MAX_BODY_BYTES", "100");
    let server = process::Server::start(command).await;
    let client = reqwest::Client::new();
    // A burst of the same refusal: the first is logged at once, the rest are counted.
    for _ in 0..50 {
        let response = client
            .post(server.url("/iterable/default"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"eventName":"emailOpen","pad":"{}"}}"#, "x".repeat(200)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
    }
    server.wait_for_output("request refused").await;
    let output = server.output();
    let lines = output.lines().filter(|line| line.contains("request refused")).count();
    assert!((1..10).contains(&lines), "{lines} lines for 50 refusals:\n{output}");
    assert!(output.contains("too_large"), "{output}");
}
