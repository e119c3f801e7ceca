//! An `auth = "oauth2"` source takes the bearer tokens its own token endpoint issued, and only
//! while they live: not another source's, not after expiry, not once their client is removed or
//! its secret changed (tokens are signed, never stored, so a restart is what a rotation is).

use std::time::Duration;

use reqwest::StatusCode;

use super::common::TestApp;
use super::{CLIENT_ID, CLIENT_SECRET, SOURCES, spawn_toml, spawn_toml_in, token, token_for};

/// What an `oauth2` source answers a refused token with (RFC 6750 section 3.1).
const INVALID_TOKEN: &str = r#"Bearer realm="hookhouse", error="invalid_token""#;

/// A journey call to `journeys` with this `Authorization` header (none: `None`).
async fn call(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/iterable/journeys/journey/welcome?email=a%40b.io"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

fn raw_requests(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM raw_requests")
}

#[tokio::test]
async fn calls_without_a_valid_token_of_this_source_are_refused_and_not_stored() {
    // `elsewhere` has the very same client: its tokens must still not open `journeys`.
    let app = spawn_toml(&format!(
        "{SOURCES}\n[[sources]]\nname = \"elsewhere\"\nauth = \"oauth2\"\n\
         [[sources.clients]]\nid = \"{CLIENT_ID}\"\nsecret = \"{CLIENT_SECRET}\"\n"
    ))
    .await;
    let good = token(&app).await;
    let foreign = token_for(&app, "elsewhere", CLIENT_ID, CLIENT_SECRET).await;
    assert_ne!(good, foreign);

    let refused = call(&app, None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // No credentials at all: no error code (RFC 6750 section 3.1).
    assert_eq!(refused.headers()["www-authenticate"], r#"Bearer realm="hookhouse""#);
    let tampered = format!("{}x", &good[..good.len() - 1]);
    for bad in [
        "Bearer garbage".to_owned(),
        "Bearer ".to_owned() + &foreign,
        "Bearer ".to_owned() + &tampered,
        // The client's secret is not a token.
        "Bearer ".to_owned() + CLIENT_SECRET,
        "Basic ".to_owned() + &good,
    ] {
        let refused = call(&app, Some(&bad)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(refused.headers()["www-authenticate"], INVALID_TOKEN, "{bad}");
    }
    assert_eq!(raw_requests(&app), 0, "refused calls are not stored");

    // The source's system endpoint takes the same tokens, and refuses the same way.
    let system = |token: Option<String>| {
        let mut request = app
            .client
            .post(app.url("/iterable/journeys"))
            .header("content-type", "application/json")
            .body(common_open());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(system(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(system(Some(foreign.clone())).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(raw_requests(&app), 0);

    assert_eq!(call(&app, Some(&format!("Bearer {good}"))).await.status(), StatusCode::OK);
    assert_eq!(system(Some(good.clone())).await.unwrap().status(), StatusCode::OK);
    assert_eq!(raw_requests(&app), 2);
    let sources: String = app
        .db()
        .query_row("SELECT group_concat(DISTINCT source) FROM raw_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sources, "journeys");
    app.stop().await.unwrap();
}

fn common_open() -> String {
    super::common::email_open("bearer-system")
}

#[tokio::test]
async fn a_token_is_refused_once_it_has_expired() {
    let app = spawn_toml(&format!(
        "{SOURCES}\n[[sources.clients]]\nid = \"brief\"\nsecret = \"brief-secret-0123456789\"\n\
         token_ttl_secs = 1\n"
    ))
    .await;
    // Tokens expire on whole seconds: start just after one, so the first call is in the
    // token's only second however slow the machine is.
    let into_second =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_010 - into_second))).await;
    let started = std::time::Instant::now();
    let brief = token_for(&app, "journeys", "brief", "brief-secret-0123456789").await;
    let fresh = call(&app, Some(&format!("Bearer {brief}"))).await;
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(fresh.status(), StatusCode::OK);
    }

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let expired = call(&app, Some(&format!("Bearer {brief}"))).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(expired.headers()["www-authenticate"], INVALID_TOKEN);
    // The long-lived client's token, asked before the wait, still works.
    let lasting = token(&app).await;
    assert_eq!(call(&app, Some(&format!("Bearer {lasting}"))).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

/// `journeys` with the clients `a` and `b`, under the given secrets (`None`: not listed).
fn clients(a: Option<&str>, b: Option<&str>) -> String {
    let mut text = "[[sources]]\nname = \"default\"\n\n[[sources]]\nname = \"journeys\"\n\
                    auth = \"oauth2\"\n"
        .to_owned();
    for (id, secret) in [("a", a), ("b", b)] {
        if let Some(secret) = secret {
            text += &format!("[[sources.clients]]\nid = \"{id}\"\nsecret = \"{secret}\"\n");
        }
    }
    text
}

const SECRET_A: &str = "client-a-secret-0123456789";
const SECRET_B: &str = "client-b-secret-0123456789";

#[tokio::test]
async fn a_removed_client_or_a_changed_secret_ends_its_tokens_across_a_restart() {
    let app = spawn_toml(&clients(Some(SECRET_A), Some(SECRET_B))).await;
    let token_a = token_for(&app, "journeys", "a", SECRET_A).await;
    let token_b = token_for(&app, "journeys", "b", SECRET_B).await;
    for token in [&token_a, &token_b] {
        assert_eq!(call(&app, Some(&format!("Bearer {token}"))).await.status(), StatusCode::OK);
    }
    let data_dir = app.stop().await.unwrap();

    // `a` removed: its token is dead, `b`'s lives on through the restart.
    let app = spawn_toml_in(data_dir, &clients(None, Some(SECRET_B))).await;
    let refused = call(&app, Some(&format!("Bearer {token_a}"))).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], INVALID_TOKEN);
    assert_eq!(call(&app, Some(&format!("Bearer {token_b}"))).await.status(), StatusCode::OK);
    let data_dir = app.stop().await.unwrap();

    // `a` back with a new secret: its old token is dead, and so is its old secret.
    let new_a = "client-a-rotated-0123456789";
    let app = spawn_toml_in(data_dir, &clients(Some(new_a), Some(SECRET_B))).await;
    let refused = call(&app, Some(&format!("Bearer {token_a}"))).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let old_secret = app
        .client
        .post(app.url("/iterable/journeys/oauth/token"))
        .basic_auth("a", Some(SECRET_A))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(old_secret.status(), StatusCode::UNAUTHORIZED);
    let token_a2 = token_for(&app, "journeys", "a", new_a).await;
    for token in [&token_a2, &token_b] {
        assert_eq!(call(&app, Some(&format!("Bearer {token}"))).await.status(), StatusCode::OK);
    }
    // Two accepted calls in the first run, one in the second, two in the third.
    assert_eq!(raw_requests(&app), 5);
    app.stop().await.unwrap();
}
