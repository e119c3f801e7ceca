//! Credential guessing through the HTTP port: after `max_failures_per_minute` failed
//! credentials or secret-URL guesses, the caller's address (after trusted proxies) gets 429
//! with `Retry-After`, even with the right credentials, and every refusal is counted.

mod common;

use std::time::Duration;

use common::{TestApp, email_open, spawn_app_with};
use hookhouse::config::{AuthBlock, SourceAuth, SourceConfig};
use secrecy::SecretString;

const TOKEN: &str = "auth-block-token-61";

async fn app_with(block: Option<AuthBlock>, trusted_proxies: &[&str]) -> TestApp {
    let trusted = trusted_proxies.iter().map(|net| net.parse().unwrap()).collect();
    spawn_app_with(move |config| {
        config.sources = vec![
            SourceConfig::new(
                "prod",
                SourceAuth::Token(vec![SecretString::from(TOKEN.to_owned())]),
            ),
            SourceConfig::new("open", SourceAuth::None),
        ];
        if let Some(block) = block {
            config.server.auth_block = Some(block);
        }
        config.server.trusted_proxies = trusted;
    })
    .await
}

/// Posts to `/iterable/prod` with `token`, from `forwarded_for` when given.
async fn post(app: &TestApp, token: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/iterable/prod"))
        .header("content-type", "application/json")
        .bearer_auth(token)
        .body(email_open("auth-block"));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

async fn refused(app: &TestApp, source: &str, reason: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series =
        format!(r#"hookhouse_requests_refused_total{{source="{source}",reason="{reason}"}}"#);
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn thirty_wrong_guesses_block_the_address_even_for_the_right_token() {
    // The defaults: 20 failures a minute, then 60 seconds.
    let app = app_with(None, &[]).await;
    let mut statuses = Vec::new();
    for n in 0..30 {
        statuses.push(post(&app, &format!("guess-{n}"), None).await.status().as_u16());
    }
    assert_eq!(statuses[..20], [401; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429; 10], "{statuses:?}");
    let right = post(&app, TOKEN, None).await;
    assert_eq!(right.status(), 429, "a blocked address is refused before any comparison");
    assert!((55..=60).contains(&retry_after(&right)), "{:?}", right.headers());
    // Another source is refused too: the block is on the address.
    let open = app.post("/iterable/open", "application/json", &email_open("o")).await;
    assert_eq!(open.status(), 429);
    assert!(open.headers().contains_key("retry-after"));

    assert_eq!(refused(&app, "prod", "unauthorized").await, 20);
    assert_eq!(refused(&app, "prod", "auth_blocked").await, 11);
    assert_eq!(refused(&app, "open", "auth_blocked").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_block_is_per_client_after_trusted_proxies_and_ends() {
    let block = AuthBlock { max_failures_per_minute: 3, block_for: Duration::from_secs(2) };
    let app = app_with(Some(block), &["127.0.0.1/32"]).await;
    let (guesser, neighbour) = (Some("203.0.113.9"), Some("203.0.113.10"));
    for _ in 0..3 {
        assert_eq!(post(&app, "wrong", guesser).await.status(), 401);
    }
    let blocked = post(&app, TOKEN, guesser).await;
    assert_eq!(blocked.status(), 429);
    assert!((1..=2).contains(&retry_after(&blocked)), "{:?}", blocked.headers());
    // The proxy itself and the other client behind it are not blocked.
    assert_eq!(post(&app, TOKEN, neighbour).await.status(), 200);
    assert_eq!(post(&app, TOKEN, None).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(post(&app, TOKEN, guesser).await.status(), 200, "the block ended");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_secret_url_guesses_count_towards_the_block() {
    let app = app_with(None, &[]).await;
    for n in 0..20 {
        let guess = app.post(&format!("/hooks/guess-{n}"), "application/json", "{}").await;
        assert_eq!(guess.status(), 401, "guess {n}");
    }
    let blocked = app.post("/hooks/guess-20", "application/json", "{}").await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    assert_eq!(post(&app, TOKEN, None).await.status(), 429);
    assert_eq!(refused(&app, "unknown", "unauthorized").await, 20);
    assert_eq!(refused(&app, "unknown", "auth_blocked").await, 1);
    app.stop().await.unwrap();
}
