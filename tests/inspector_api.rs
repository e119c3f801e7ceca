//! The inspector's JSON API through its own port (`[admin] listen`): the request list, its
//! paging and filters, one request whole, failures and replay, stats and sinks, and the
//! listener's defences (the token, the loopback `Host`, the security headers). Each test
//! starts its own hookhouse with the inspector on a random loopback port.

mod common;
#[path = "inspector_api/detail.rs"]
mod detail;
#[path = "inspector_api/failures.rs"]
mod failures;
#[path = "inspector_api/listing.rs"]
mod listing;

use common::{TestApp, spawn_app_with, stored_seq};
use hookhouse::config::{AdminConfig, Config, RawConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

/// A token long enough for `[admin]` (16 characters at least).
const TOKEN: &str = "inspector-t0ken-0123456789abcdef";

/// A hookhouse whose inspector listens on a random loopback port.
struct Inspector {
    app: TestApp,
    /// Sent as `Authorization: Bearer` on every API call when set.
    token: Option<&'static str>,
}

/// Starts hookhouse with `[admin] listen = "127.0.0.1:0"` (and `token`), after `adjust`.
async fn spawn_inspector(
    token: Option<&'static str>,
    adjust: impl FnOnce(&mut Config),
) -> Inspector {
    let app = spawn_app_with(move |config| {
        config.admin = Some(AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: token.map(|token| SecretString::from(token.to_owned())),
        });
        adjust(config);
    })
    .await;
    assert!(app.admin_addr.is_some_and(|addr| addr.port() != 0), "the inspector is bound");
    Inspector { app, token }
}

impl Inspector {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.app.client.request(method, self.app.admin_url(path));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.request(reqwest::Method::GET, path).query(query).send().await.unwrap()
    }

    /// The JSON of a 200 answer; the body is shown when it is not 200.
    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self.get(path, query).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `error` of an answer that must have `status`.
    async fn get_error(&self, path: &str, query: &[(&str, &str)], status: u16) -> String {
        error_of(self.get(path, query).await, status).await
    }

    /// One page of `GET /api/requests`.
    async fn page(&self, query: &[(&str, &str)]) -> Value {
        self.get_json("/api/requests", query).await
    }

    /// Every seq `GET /api/requests` lists for `query`, following `next_before` to the end,
    /// asserting that each page is newest first and that pages neither overlap nor leave gaps
    /// in the order.
    async fn listed(&self, query: &[(&str, &str)]) -> Vec<i64> {
        let mut seqs: Vec<i64> = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..1_000 {
            let mut query = query.to_vec();
            if let Some(before) = &before {
                query.push(("before", before));
            }
            let page = self.page(&query).await;
            let page_seqs = seqs_of(&page);
            assert!(page_seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {page_seqs:?}");
            if let (Some(last), Some(first)) = (seqs.last(), page_seqs.first()) {
                assert!(first < last, "pages overlap: {last} then {first}");
            }
            seqs.extend(page_seqs);
            match page["next_before"].as_i64() {
                Some(next) => before = Some(next.to_string()),
                None => return seqs,
            }
        }
        panic!("`next_before` never ended for {query:?}");
    }

    /// Posts a JSON body to `/iterable/{source}` and returns its seq.
    async fn post_event(&self, source: &str, body: &str) -> i64 {
        let response =
            self.app.post(&format!("/iterable/{source}"), "application/json", body).await;
        stored_seq(response).await
    }

    /// A journey call, `GET /iterable/{source}/journey/{name}?{query}`; returns its seq.
    async fn journey(&self, source: &str, name: &str, query: &str) -> i64 {
        stored_seq(self.app.get(&format!("/iterable/{source}/journey/{name}?{query}")).await).await
    }

    /// Waits until the embedded tables hold every request stored so far.
    fn loaded(&self) {
        drop(self.app.db());
    }

    async fn replay(&self, body: Value) -> (u16, Value) {
        let response =
            self.request(reqwest::Method::POST, "/api/replay").json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn stop(self) {
        self.app.stop().await.unwrap();
    }
}

/// The `error` sentence of an answer that must have `status`, checking the `{"error"}` shape.
async fn error_of(response: reqwest::Response, status: u16) -> String {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 1, "only `error`: {body}");
    let message = object["error"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

fn seqs_of(page: &Value) -> Vec<i64> {
    page["requests"].as_array().unwrap().iter().map(|r| r["seq"].as_i64().unwrap()).collect()
}

/// An emailOpen in Iterable's nested shape, for `email`, told apart by `message_id`.
fn email_open(email: &str, message_id: &str) -> String {
    json!({
        "email": email,
        "eventName": "emailOpen",
        "dataFields": {
            "email": email,
            "createdAt": "2024-03-04 15:02:11 +00:00",
            "campaignId": 12345,
            "templateId": 67890,
            "messageId": message_id,
            "userAgent": "Mozilla/5.0",
            "ip": "203.0.113.7",
        }
    })
    .to_string()
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", common::FIXTURES)).unwrap()
}

/// The page's headers: the inspector's policy on every answer.
fn assert_security_headers(response: &reqwest::Response) {
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn meta_names_the_sources_the_webhook_base_and_the_event_names() {
    let inspector = spawn_inspector(None, |config| {
        config.sources = vec![
            hookhouse::config::SourceConfig::new("default", hookhouse::config::SourceAuth::None),
            hookhouse::config::SourceConfig::new(
                "staging",
                hookhouse::config::SourceAuth::Token(vec![SecretString::from(
                    "staging-secret-0123456789".to_owned(),
                )]),
            ),
        ];
    })
    .await;
    let response = inspector.get("/api/meta", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_security_headers(&response);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let meta: Value = response.json().await.unwrap();
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    let base = format!("http://{}", inspector.app.addr);
    assert_eq!(meta["webhook_base"], base.as_str());
    assert_eq!(
        meta["sources"],
        json!([
            {"name": "default", "auth": "none", "url": format!("{base}/iterable/default")},
            {"name": "staging", "auth": "token", "url": format!("{base}/iterable/staging")},
        ])
    );
    let names: Vec<&str> =
        meta["event_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for name in ["emailOpen", "emailSend", "pushSend", "smsClick"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(meta["token_required"], false);
    assert_eq!(meta["log"], "sqlite");
    assert_eq!(meta["max_page"], 200);
    assert!(!meta.to_string().contains("staging-secret"), "no source secret in meta");
    inspector.stop().await;
}

#[tokio::test]
async fn with_a_token_every_api_call_needs_it_and_the_page_does_not() {
    let inspector = spawn_inspector(Some(TOKEN), |_| {}).await;
    let seq = inspector.post_event("default", &email_open("ada@example.com", "m-tok")).await;
    inspector.loaded();
    let url = |path: &str| inspector.app.admin_url(path);
    let client = &inspector.app.client;
    let detail = format!("/api/requests/{seq}");
    for path in ["/api/meta", "/api/requests", &detail, "/api/failed", "/api/stats", "/api/sinks"] {
        let wrong = format!("{TOKEN}x");
        for (label, token) in
            [("missing", None), ("wrong", Some(wrong.as_str())), ("empty", Some(""))]
        {
            let mut request = client.get(url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let refused = request.send().await.unwrap();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{label} token on {path}");
            assert_eq!(refused.headers()["www-authenticate"], r#"Bearer realm="hookhouse""#);
            assert_eq!(refused.headers()["cache-control"], "no-store");
            assert_security_headers(&refused);
            let message = error_of(refused, 401).await;
            assert!(message.contains("Authorization: Bearer"), "{message}");
        }
        // The token in another scheme is no token.
        let basic = client.get(url(path)).header("authorization", format!("Basic {TOKEN}"));
        assert_eq!(basic.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
        let allowed = client.get(url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(allowed.status(), StatusCode::OK, "{path}");
    }
    let meta = inspector.get_json("/api/meta", &[]).await;
    assert_eq!(meta["token_required"], true);
    assert_eq!(seqs_of(&inspector.page(&[]).await), [seq], "the right token reads the list");

    // Replay is an API call like the others: refused without the token, and nothing replayed.
    let refused = client.post(url("/api/replay")).json(&json!({"seq": seq})).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // The page holds no data: it is served without the token.
    for (path, content_type, text) in [
        ("/", "text/html", include_str!("../src/inspector/page/index.html")),
        ("/app.js", "text/javascript", include_str!("../src/inspector/page/app.js")),
        ("/app.css", "text/css", include_str!("../src/inspector/page/app.css")),
    ] {
        let response = client.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_security_headers(&response);
        let got = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(got.starts_with(content_type), "{path}: {got}");
        assert_eq!(response.text().await.unwrap(), text, "{path}");
    }
    // With a token the name in `Host` does not matter: the token is the defence.
    let other_host =
        client.get(url("/api/meta")).header("host", "inspector.example").bearer_auth(TOKEN);
    assert_eq!(other_host.send().await.unwrap().status(), StatusCode::OK);
    inspector.stop().await;
}

#[tokio::test]
async fn without_a_token_only_a_loopback_host_is_answered() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let port = inspector.app.admin_addr.unwrap().port();
    let client = &inspector.app.client;
    for path in ["/api/meta", "/api/requests", "/", "/app.js"] {
        for host in ["evil.example", &format!("evil.example:{port}"), "localhost.evil.example"] {
            let response = client
                .get(inspector.app.admin_url(path))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_security_headers(&response);
            let message = error_of(response, 403).await;
            assert!(message.contains("admin.token"), "{message}");
        }
        for host in
            [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
        {
            let response = client
                .get(inspector.app.admin_url(path))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path} with Host {host}");
        }
    }
    inspector.stop().await;
}

#[tokio::test]
async fn the_webhook_port_serves_neither_the_api_nor_the_page() {
    let inspector = spawn_inspector(None, |_| {}).await;
    inspector.post_event("default", &email_open("ada@example.com", "m-port")).await;
    inspector.loaded();
    for path in ["/api/requests", "/api/meta", "/api/requests/1", "/app.js"] {
        let response = inspector.app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path} on the webhook port");
        let body = response.text().await.unwrap();
        assert!(!body.contains("ada@example.com"), "{path}: {body}");
    }
    let replay = inspector.app.post("/api/replay", "application/json", r#"{"seq":1}"#).await;
    assert_eq!(replay.status(), StatusCode::NOT_FOUND);
    // And the inspector's port is no webhook port.
    let response = inspector
        .request(reqwest::Method::POST, "/iterable/default")
        .header("content-type", "application/json")
        .body(email_open("ada@example.com", "m-wrong-port"))
        .send()
        .await
        .unwrap();
    let message = error_of(response, 404).await;
    assert!(message.contains("/iterable/default"), "{message}");
    inspector.stop().await;
}

#[tokio::test]
async fn unknown_parameters_paths_and_bad_values_are_client_errors() {
    let inspector = spawn_inspector(None, |_| {}).await;
    inspector.post_event("default", &email_open("ada@example.com", "m-bad")).await;
    inspector.loaded();
    /// A path, its query, the status, and words the error must hold.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case<'_>; 12] = [
        ("/api/requests", &[("emial", "a@x.io")], 400, "emial"),
        ("/api/requests", &[("limit", "ten")], 400, "limit"),
        ("/api/requests", &[("before", "x")], 400, "before"),
        ("/api/requests", &[("since", "yesterday")], 400, "`since` = `yesterday`"),
        ("/api/requests", &[("until", "2024-13-40T99:00:00Z")], 400, "`until`"),
        ("/api/requests", &[("outcome", "lost")], 400, "`outcome` = `lost`"),
        ("/api/requests/abc", &[], 400, "`abc`"),
        ("/api/requests/999999", &[], 404, "999999"),
        ("/api/failed", &[("page", "2")], 400, "page"),
        ("/api/stats", &[("window", "2w")], 400, "`window` = `2w`"),
        ("/api/stats", &[("window", "8d")], 400, "at most `7d`"),
        ("/api/stats", &[("bucket", "second")], 400, "`bucket` = `second`"),
    ];
    for (path, query, status, needle) in cases {
        let message = inspector.get_error(path, query, status).await;
        assert!(message.contains(needle), "{path} {query:?}: {message}");
    }
    let message = inspector.get_error("/api/nothing-here", &[], 404).await;
    assert!(message.contains("/api/nothing-here"), "{message}");
    inspector.stop().await;
}

#[test]
fn the_admin_listener_refuses_a_short_token_and_an_open_address_without_one() {
    let validate = |listen: &str, token: Option<&str>| {
        let mut raw = RawConfig::default();
        raw.admin.listen = Some(listen.to_owned());
        raw.admin.token = token.map(str::to_owned);
        Config::validate(raw)
    };
    let short = "fifteen-chars-x";
    assert_eq!(short.chars().count(), 15);
    let err = validate("127.0.0.1:8081", Some(short)).unwrap_err().to_string();
    assert!(err.contains("`admin.token` must be at least 16 characters"), "{err}");
    assert!(!err.contains(short), "the token is never echoed: {err}");

    let err = validate("0.0.0.0:8081", None).unwrap_err().to_string();
    assert!(err.contains("`admin.token` is required"), "{err}");
    let err = validate("127.0.0.1:8080", None).unwrap_err().to_string();
    assert!(err.contains("is the webhook port"), "{err}");
    let err = validate("localhost", None).unwrap_err().to_string();
    assert!(err.contains("`admin.listen` = `localhost`"), "{err}");

    let sixteen = "sixteen-chars-xy";
    let config = validate("127.0.0.1:8081", Some(sixteen)).unwrap();
    let admin = config.admin.unwrap();
    assert_eq!(admin.listen, "127.0.0.1:8081".parse().unwrap());
    assert!(admin.token.is_some());
    let open = validate("0.0.0.0:8081", Some(TOKEN)).unwrap();
    assert!(open.warnings.iter().any(|w| w.contains("plain HTTP")), "{:?}", open.warnings);
    assert!(validate("127.0.0.1:8081", None).unwrap().admin.unwrap().token.is_none());
    assert!(Config::validate(RawConfig::default()).unwrap().admin.is_none(), "off by default");
}
