//! `GET /metrics`: every refusal counted by source and reason, accepted requests and stored
//! events by source, no source authentication needed, no secret shown.

mod common;

use std::time::Duration;

use common::{email_open, spawn_app_with};
use hookhouse::config::{SourceAuth, SourceConfig};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "metrics-test-token-93";

/// The value of the sample written exactly as `series`, or 0 when it is absent.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn each_refusal_is_counted_by_source_and_reason() {
    let app = spawn_app_with(|config| {
        config.server.max_body_bytes = 4096;
        config.server.body_read_timeout = Duration::from_secs(1);
        config.sources = vec![
            SourceConfig::new("open", SourceAuth::None),
            SourceConfig::new(
                "prod",
                SourceAuth::Token(vec![SecretString::from(TOKEN.to_owned())]),
            ),
            SourceConfig {
                allow: vec!["10.0.0.0/8".parse().unwrap()],
                ..SourceConfig::new("fenced", SourceAuth::None)
            },
            SourceConfig {
                max_requests_per_second: Some(2),
                ..SourceConfig::new("limited", SourceAuth::None)
            },
        ];
    })
    .await;
    let post = |path: &str, body: String| {
        app.client.post(app.url(path)).header("content-type", "application/json").body(body)
    };

    // Accepted: two to `open` (three events), one to `prod` with the right token.
    let two = format!("[{},{}]", email_open("m-1"), email_open("m-2"));
    assert_eq!(post("/iterable/open", two).send().await.unwrap().status(), 200);
    assert_eq!(post("/iterable/open", email_open("m-3")).send().await.unwrap().status(), 200);
    let authorised = post("/iterable/prod", email_open("m-4")).bearer_auth(TOKEN);
    assert_eq!(authorised.send().await.unwrap().status(), 200);

    // 401 twice: no credentials, and a prefix of the token.
    assert_eq!(post("/iterable/prod", email_open("x")).send().await.unwrap().status(), 401);
    let prefix = post("/iterable/prod", email_open("x")).bearer_auth(&TOKEN[..10]);
    assert_eq!(prefix.send().await.unwrap().status(), 401);
    // 403: the test client is not in 10.0.0.0/8.
    assert_eq!(post("/iterable/fenced", email_open("x")).send().await.unwrap().status(), 403);
    // 429: the third request within a second of a 2-per-second source.
    let mut limited = Vec::new();
    for n in 0..3 {
        let response = post("/iterable/limited", email_open(&format!("l-{n}"))).send().await;
        limited.push(response.unwrap().status().as_u16());
    }
    assert_eq!(limited.iter().filter(|&&s| s == 429).count(), 1, "{limited:?}");
    // 413: a body over the 4 KiB limit.
    let big = format!(r#"{{"eventName":"emailOpen","pad":"{}"}}"#, "x".repeat(8192));
    assert_eq!(post("/iterable/open", big).send().await.unwrap().status(), 413);
    // 415 and 404 (a source nobody configured, counted as `unknown`).
    let form = app.client.post(app.url("/iterable/open")).header("content-type", "text/csv");
    assert_eq!(form.body("a,b").send().await.unwrap().status(), 415);
    assert_eq!(post("/iterable/nobody", email_open("x")).send().await.unwrap().status(), 404);
    // 408: a body that never finishes.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /iterable/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"eventName\":",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));

    // No source credentials needed.
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().contains("openmetrics-text"));
    let text = response.text().await.unwrap();
    let refused = |source: &str, reason: &str| {
        sample(
            &text,
            &format!(r#"hookhouse_requests_refused_total{{source="{source}",reason="{reason}"}}"#),
        )
    };
    assert_eq!(refused("prod", "unauthorized"), 2, "{text}");
    assert_eq!(refused("fenced", "forbidden"), 1, "{text}");
    assert_eq!(refused("limited", "rate_limited"), 1, "{text}");
    assert_eq!(refused("open", "too_large"), 1, "{text}");
    assert_eq!(refused("open", "body_timeout"), 1, "{text}");
    assert_eq!(refused("open", "unsupported_media_type"), 1, "{text}");
    assert_eq!(refused("unknown", "unknown_source"), 1, "{text}");
    let by_source = |name: &str, source: &str| {
        sample(&text, &format!(r#"hookhouse_{name}_total{{source="{source}"}}"#))
    };
    assert_eq!(by_source("requests_accepted", "open"), 2, "{text}");
    assert_eq!(by_source("events_stored", "open"), 3, "{text}");
    assert_eq!(by_source("requests_accepted", "prod"), 1, "{text}");
    assert_eq!(by_source("requests_accepted", "limited"), 2, "{text}");
    assert_eq!(by_source("requests_accepted", "fenced"), 0, "{text}");
    assert!(!text.contains(&TOKEN[..10]), "no secret, not even a prefix, on the page");
    assert!(!text.contains("nobody"), "a name a sender made up is not a label");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_method_is_counted_and_keeps_its_allow_header() {
    let app = spawn_app_with(|_| {}).await;
    let response = app.client.get(app.url("/iterable/default")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let text = app.get("/metrics").await.text().await.unwrap();
    let series =
        r#"hookhouse_requests_refused_total{source="unknown",reason="method_not_allowed"}"#;
    assert_eq!(sample(&text, series), 1, "{text}");
    app.stop().await.unwrap();
}
