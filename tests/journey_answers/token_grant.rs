//! `POST /iterable/{source}/oauth/token`: the client credentials grant (RFC 6749 section 4.4)
//! with the client in HTTP Basic or in the body, and every error of section 5.2.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::TestApp;
use super::{CLIENT_ID, CLIENT_SECRET, SOURCES, ask, spawn_toml, token_path};

/// `journeys` with a second client whose tokens live ten minutes.
fn config() -> String {
    format!(
        "{SOURCES}\n[[sources.clients]]\nid = \"short-lived\"\n\
         secret = \"short-secret-0123456789\"\ntoken_ttl_secs = 600\n"
    )
}

/// A token request to `source`: the form `fields`, and HTTP Basic when `basic` is set.
async fn grant(
    app: &TestApp,
    source: &str,
    basic: Option<(&str, &str)>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.client.post(app.url(&token_path(source))).form(fields);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

/// Asserts `response` is the section 5.2 error `code` with `status`, and returns its headers.
async fn assert_error(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    let headers = response.headers().clone();
    assert_eq!(response.status(), status, "{code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    headers
}

/// Asserts `response` grants a token of `expires_in` seconds and returns its body.
async fn assert_granted(response: reqwest::Response, expires_in: u64) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 20), "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], expires_in, "{body}");
    body
}

#[tokio::test]
async fn a_client_gets_a_token_with_http_basic_or_in_the_body() {
    let app = spawn_toml(&config()).await;
    let fields = [("grant_type", "client_credentials")];

    let basic = grant(&app, "journeys", Some((CLIENT_ID, CLIENT_SECRET)), &fields).await;
    let basic = assert_granted(basic, 3600).await;
    assert!(basic.get("scope").is_none(), "no scope asked, none echoed: {basic}");

    let in_body = [
        ("grant_type", "client_credentials"),
        ("client_id", "short-lived"),
        ("client_secret", "short-secret-0123456789"),
        ("scope", "journeys:read profile"),
    ];
    let form = assert_granted(grant(&app, "journeys", None, &in_body).await, 600).await;
    assert_eq!(form["scope"], "journeys:read profile");

    let json_body = json!({
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
    });
    let url = app.url(&token_path("journeys"));
    let json = app.client.post(url).json(&json_body).send().await.unwrap();
    let json = assert_granted(json, 3600).await;

    let tokens: Vec<&str> =
        [&basic, &form, &json].iter().map(|b| b["access_token"].as_str().unwrap()).collect();
    assert_ne!(tokens[0], tokens[2], "each grant is a token of its own");
    for token in tokens {
        let reply = ask(&app, token, "anything?email=ada%40example.com").await;
        assert_eq!(reply.status, StatusCode::OK, "{token}");
        assert_eq!(reply.body["status"], "stored");
    }
    // Iterable's own spelling of the scheme works too.
    let spelled = app
        .client
        .get(app.url("/iterable/journeys/journey/anything"))
        .header("authorization", format!("OAuth2 {}", basic["access_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(spelled.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 4, "only the journey calls");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_or_unknown_client_is_refused_with_invalid_client_and_a_challenge() {
    let app = spawn_toml(&config()).await;
    let fields = [("grant_type", "client_credentials")];
    let cases = [
        grant(&app, "journeys", Some((CLIENT_ID, "prod-secret-0123456789abcdeX")), &fields).await,
        grant(&app, "journeys", Some(("nobody", CLIENT_SECRET)), &fields).await,
        // The other client's secret is not this client's.
        grant(&app, "journeys", Some((CLIENT_ID, "short-secret-0123456789")), &fields).await,
        grant(
            &app,
            "journeys",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong-secret-0123456789"),
            ],
        )
        .await,
    ];
    for response in cases {
        let headers = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert_eq!(headers["www-authenticate"], r#"Basic realm="hookhouse""#);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_grants_get_the_error_rfc_6749_names() {
    let app = spawn_toml(&config()).await;
    let basic = Some((CLIENT_ID, CLIENT_SECRET));

    let password = grant(&app, "journeys", basic, &[("grant_type", "password")]).await;
    assert_error(password, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let no_grant_type = grant(&app, "journeys", basic, &[("scope", "x")]).await;
    assert_error(no_grant_type, StatusCode::BAD_REQUEST, "invalid_request").await;
    let both = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let twice_authenticated = grant(&app, "journeys", basic, &both).await;
    assert_error(twice_authenticated, StatusCode::BAD_REQUEST, "invalid_request").await;
    let repeated = [("grant_type", "client_credentials"), ("grant_type", "client_credentials")];
    let repeated = grant(&app, "journeys", basic, &repeated).await;
    assert_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;

    // `default` takes no tokens.
    let fields = [("grant_type", "client_credentials")];
    let not_oauth = grant(&app, "default", basic, &fields).await;
    assert_error(not_oauth, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(grant(&app, "nowhere", basic, &fields).await.status(), StatusCode::NOT_FOUND);
    let get = app.client.get(app.url(&token_path("journeys"))).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A valid grant still works after them (nothing blocked the address).
    assert_eq!(grant(&app, "journeys", basic, &fields).await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0, "token requests are not stored");
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let secret = CLIENT_SECRET.as_bytes();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret), "the secret was stored");
    }
    app.stop().await.unwrap();
}
