//! Per-source authentication through the HTTP port: every mode, rotation with two live secrets,
//! 401 with `WWW-Authenticate`, and nothing of a refused request or of a secret stored.

mod common;

use common::{TestApp, email_open, spawn_app_with};
use hookhouse::config::{SourceAuth, SourceConfig};
use secrecy::SecretString;
use std::sync::atomic::{AtomicU32, Ordering};

/// Distinct bodies, none holding a credential, so the store can be searched for secrets.
static NEXT: AtomicU32 = AtomicU32::new(0);

fn secrets(list: &[&str]) -> Vec<SecretString> {
    list.iter().map(|s| SecretString::from(s.to_string())).collect()
}

async fn app_with_source(auth: SourceAuth) -> TestApp {
    spawn_app_with(move |config| {
        config.sources = vec![SourceConfig::new("prod", auth)];
    })
    .await
}

async fn post(app: &TestApp, header: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/iterable/prod"))
        .header("content-type", "application/json")
        .body(email_open(&format!("auth-{}", NEXT.fetch_add(1, Ordering::Relaxed))));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// No byte of the store (database and WAL) holds `secret`.
fn assert_not_stored(app: &TestApp, secret: &str) {
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} stored");
    }
}

#[tokio::test]
async fn token_mode_takes_oauth2_and_bearer_with_either_live_secret() {
    let app = app_with_source(SourceAuth::Token(secrets(&["tok-new-71", "tok-old-42"]))).await;
    for value in ["OAuth2 tok-new-71", "Bearer tok-old-42", "oauth2 tok-old-42"] {
        assert_eq!(post(&app, Some(("authorization", value))).await.status(), 200, "{value}");
    }
    for header in
        [None, Some(("authorization", "Bearer wrong")), Some(("authorization", "Basic tok-new-71"))]
    {
        let refused = post(&app, header).await;
        assert_eq!(refused.status(), 401, "{header:?}");
        assert_eq!(refused.headers()["www-authenticate"], r#"Bearer realm="hookhouse""#);
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 3, "refusals are not stored");
    assert_not_stored(&app, "tok-new-71");
    assert_not_stored(&app, "tok-old-42");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn basic_mode_takes_the_token_or_base64_user_password() {
    let app =
        app_with_source(SourceAuth::Basic(secrets(&["iterable:pa55w0rd", "plain-tok-9"]))).await;
    // base64("iterable:pa55w0rd")
    let encoded = "aXRlcmFibGU6cGE1NXcwcmQ=";
    assert_eq!(
        post(&app, Some(("authorization", &format!("Basic {encoded}")))).await.status(),
        200
    );
    assert_eq!(post(&app, Some(("authorization", "Basic plain-tok-9"))).await.status(), 200);
    let refused = post(&app, Some(("authorization", "Basic bm9ib2R5Om5vcGU="))).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], r#"Basic realm="hookhouse""#);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2);
    assert_not_stored(&app, encoded);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn header_mode_checks_its_header_and_never_stores_it() {
    let auth =
        SourceAuth::Header { name: "x-iterable-key".into(), secrets: secrets(&["hdr-5ecret"]) };
    let app = app_with_source(auth).await;
    assert_eq!(post(&app, Some(("X-Iterable-Key", "hdr-5ecret"))).await.status(), 200);
    assert_eq!(post(&app, Some(("X-Iterable-Key", "nope"))).await.status(), 401);
    assert_eq!(post(&app, None).await.status(), 401);
    let headers: String =
        app.db().query_row("SELECT headers FROM raw_requests", [], |r| r.get(0)).unwrap();
    assert!(!headers.contains("x-iterable-key"), "{headers}");
    assert_not_stored(&app, "hdr-5ecret");
    app.stop().await.unwrap();
}

fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

async fn app_with_allow_list(allow: &[&str], trusted: &[&str]) -> TestApp {
    let (allow, trusted) = (nets(allow), nets(trusted));
    spawn_app_with(move |config| {
        config.sources =
            vec![SourceConfig { allow, ..SourceConfig::new("prod", SourceAuth::None) }];
        config.server.trusted_proxies = trusted;
    })
    .await
}

#[tokio::test]
async fn allow_lists_refuse_other_addresses_with_403() {
    let outside = app_with_allow_list(&["10.0.0.0/8", "2001:db8::/32"], &[]).await;
    assert_eq!(post(&outside, None).await.status(), 403);
    // Without a trusted proxy, X-Forwarded-For is anyone's to write and is ignored.
    assert_eq!(post(&outside, Some(("x-forwarded-for", "10.1.2.3"))).await.status(), 403);
    assert_eq!(outside.count("SELECT count(*) FROM raw_requests"), 0);
    outside.stop().await.unwrap();

    let inside = app_with_allow_list(&["127.0.0.0/8"], &[]).await;
    assert_eq!(post(&inside, None).await.status(), 200);
    inside.stop().await.unwrap();
}

#[tokio::test]
async fn forwarded_for_is_believed_from_a_trusted_proxy_ipv4_and_ipv6() {
    let app = app_with_allow_list(&["203.0.113.0/24", "2001:db8::/32"], &["127.0.0.1/32"]).await;
    for (forwarded, status) in [
        ("203.0.113.9", 200),
        ("2001:db8::5", 200),
        ("198.51.100.1", 403),
        ("203.0.113.9, 198.51.100.1", 403),
        ("not-an-address", 403),
    ] {
        let response = post(&app, Some(("x-forwarded-for", forwarded))).await;
        assert_eq!(response.status(), status, "{forwarded}");
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        config.sources = vec![SourceConfig {
            max_requests_per_second: Some(5),
            ..SourceConfig::new("prod", SourceAuth::None)
        }];
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = post(&app, None).await;
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status().as_u16());
    }
    let accepted = statuses.iter().filter(|&&s| s == 200).count() as i64;
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!((5..8).contains(&accepted), "{statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), accepted, "429s are not stored");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn two_credentials_are_refused_whichever_comes_first() {
    let app = app_with_source(SourceAuth::Token(secrets(&["tok-right-0123456"]))).await;
    for (first, second) in
        [("Bearer tok-right-0123456", "Bearer wrong"), ("Bearer wrong", "Bearer tok-right-0123456")]
    {
        let response = app
            .client
            .post(app.url("/iterable/prod"))
            .header("content-type", "application/json")
            .header("authorization", first)
            .header("authorization", second)
            .body(email_open("two-credentials"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{first} then {second}");
    }
    let header =
        SourceAuth::Header { name: "x-key".into(), secrets: secrets(&["hdr-right-0123456"]) };
    let app2 = app_with_source(header).await;
    let response = app2
        .client
        .post(app2.url("/iterable/prod"))
        .header("content-type", "application/json")
        .header("x-key", "hdr-right-0123456")
        .header("x-key", "other")
        .body(email_open("two-headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    assert_eq!(app2.count("SELECT count(*) FROM raw_requests"), 0);
}
