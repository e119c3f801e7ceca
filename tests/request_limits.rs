//! Limits on what one request may hold, through the real port: headers past
//! `server.max_header_bytes` get 431 on HTTP/1.1 and HTTP/2; bodies past the shared
//! `server.max_inflight_body_bytes` get 503 with `Retry-After`; and a refusal reads the body
//! first, so an HTTP/2 sender sees a clean 401 rather than a reset stream.

mod common;
mod h2_client;

use std::time::Duration;

use bytes::Bytes;
use common::{email_open, spawn_app_with};
use hookhouse::config::{SourceAuth, SourceConfig};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An emailOpen body of exactly `length` bytes.
fn padded_body(length: usize) -> String {
    let open = email_open("padded");
    let base = open.len() - 1 + r#","pad":""}"#.len();
    format!(r#"{},"pad":"{}"}}"#, &open[..open.len() - 1], "x".repeat(length - base))
}

#[tokio::test]
async fn headers_past_the_limit_get_431_on_http1_and_http2_and_are_not_stored() {
    let app = spawn_app_with(|_| {}).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for (client, version) in [(&app.client, "http/1.1"), (&h2, "http/2")] {
        let post = |header: usize| {
            client
                .post(app.url("/iterable/default"))
                .header("content-type", "application/json")
                .header("x-padding", "p".repeat(header))
                .body(email_open(version))
                .send()
        };
        let refused = post(100 * 1024).await.expect(version);
        assert_eq!(refused.status(), 431, "{version}");
        // Within the default 64 KiB: stored as usual.
        assert_eq!(post(50 * 1024).await.unwrap().status(), 200, "{version}");
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_past_the_inflight_budget_get_503_until_the_budget_frees() {
    let app = spawn_app_with(|config| {
        config.server.max_body_bytes = 48 * 1024;
        config.server.max_inflight_body_bytes = std::num::NonZeroUsize::new(64 * 1024).unwrap();
        config.server.body_read_timeout = Duration::from_secs(10);
    })
    .await;
    // Two slow senders have declared 15,000 bytes each and sent a little. (Under 16 KiB, so
    // no more is reserved for normalising them once they are in.)
    let body = padded_body(15_000);
    let head = format!(
        "POST /iterable/default HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..100]).await.unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = app.post_webhook(&padded_body(40_000)).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    // The slow senders finish and are stored; their budget is given back.
    for stream in &mut slow {
        stream.write_all(&body.as_bytes()[100..]).await.unwrap();
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(app.post_webhook(&padded_body(10_000)).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_http2_refusal_reads_the_body_so_the_sender_sees_a_clean_401() {
    let app = spawn_app_with(|config| {
        let secret = vec![SecretString::from("tok-right".to_owned())];
        config.sources = vec![SourceConfig::new("prod", SourceAuth::Token(secret))];
        // Twenty wrong tokens on purpose: the failed-auth block would answer 429 instead.
        config.server.auth_block = None;
    })
    .await;
    let body = Bytes::from(padded_body(200 * 1024));
    let mut h2 = h2_client::connect(app.addr).await;
    let headers = [("content-type", "application/json"), ("authorization", "Bearer wrong")];
    for attempt in 0..20 {
        let sent = h2.post("/iterable/prod", &headers, body.clone()).await;
        assert_eq!(sent.status.map(|s| s.as_u16()), Some(401), "attempt {attempt}");
        assert!(sent.body_sent, "attempt {attempt}: the stream was reset under its body");
    }
    // reqwest over HTTP/2 sees the same.
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for attempt in 0..5 {
        let response = client
            .post(app.url("/iterable/nowhere"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|err| panic!("attempt {attempt}: {err}"));
        assert_eq!(response.status(), 404);
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}
