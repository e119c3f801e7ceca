//! Slow clients: a body that does not arrive in time gets 408 and is not stored.

mod common;

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
