//! Journey answers through the HTTP port (issue 14): the OAuth 2.0 client credentials grant of
//! `POST /iterable/{source}/oauth/token`, `auth = "oauth2"` sources that take its bearer tokens,
//! and `[[sources.journeys]]` that answer a call with data from the store (the built-in
//! `engagement` profile, or an operator's read-only `sql` query). Each test writes its
//! configuration as TOML and starts its own hookhouse.

#[path = "journey_answers/bearer.rs"]
mod bearer;
mod common;
#[path = "journey_answers/engagement.rs"]
mod engagement;
#[path = "journey_answers/sql.rs"]
mod sql;
#[path = "journey_answers/token_grant.rs"]
mod token_grant;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use common::{TestApp, spawn_app_in, stored_seq};
use hookhouse::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The client every test's `journeys` source knows.
const CLIENT_ID: &str = "iterable-prod";
const CLIENT_SECRET: &str = "prod-secret-0123456789abcdef";

/// `default` (no authentication, where the tests' events arrive) and `journeys` (OAuth 2.0,
/// one client). A test appends `[[sources.journeys]]` entries, which belong to `journeys`.
const SOURCES: &str = r#"
[[sources]]
name = "default"

[[sources]]
name = "journeys"
auth = "oauth2"
[[sources.clients]]
id = "iterable-prod"
secret = "prod-secret-0123456789abcdef"
"#;

/// A validated configuration from `toml` (which must not hold `[server]` or `[store]`),
/// listening on a random loopback port and storing in `data_dir`.
fn config_from(toml: &str, data_dir: &Path) -> Config {
    let text = config_text(toml, data_dir);
    Config::from_toml_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

fn config_text(toml: &str, data_dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndata_dir = '{}'\n{toml}",
        data_dir.display()
    )
}

/// Starts hookhouse with the configuration `toml` on a new data directory.
async fn spawn_toml(toml: &str) -> TestApp {
    spawn_toml_in(tempfile::tempdir().unwrap(), toml).await
}

/// Starts hookhouse with the configuration `toml` on `data_dir`, as a restart would.
async fn spawn_toml_in(data_dir: tempfile::TempDir, toml: &str) -> TestApp {
    let config = config_from(toml, data_dir.path());
    spawn_app_in(data_dir, move |default| *default = config).await
}

/// The token endpoint's path for `source`.
fn token_path(source: &str) -> String {
    format!("/iterable/{source}/oauth/token")
}

/// An access token of `source` for the client `id`, asked for with HTTP Basic.
async fn token_for(app: &TestApp, source: &str, id: &str, secret: &str) -> String {
    let response = app
        .client
        .post(app.url(&token_path(source)))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "token for `{id}` of `{source}`");
    let grant: Value = response.json().await.unwrap();
    grant["access_token"].as_str().expect("an access token").to_owned()
}

/// The token of the `journeys` source's usual client.
async fn token(app: &TestApp) -> String {
    token_for(app, "journeys", CLIENT_ID, CLIENT_SECRET).await
}

/// What a journey call was answered with.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    /// `Hookhouse-Seq`: the stored call.
    seq: Option<i64>,
    body: Value,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Reply {
        let status = response.status();
        let seq = response
            .headers()
            .get("hookhouse-seq")
            .map(|value| value.to_str().unwrap().parse().expect("a numeric Hookhouse-Seq"));
        let body = response.json().await.unwrap_or(Value::Null);
        Reply { status, seq, body }
    }

    /// The answer of a call answered 200, and its stored seq.
    fn ok(self) -> (Value, i64) {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        (self.body, self.seq.expect("Hookhouse-Seq on an answer"))
    }
}

/// `GET /iterable/journeys/journey/{path_and_query}` with `token` as a bearer token.
async fn ask(app: &TestApp, token: &str, path_and_query: &str) -> Reply {
    let url = app.url(&format!("/iterable/journeys/journey/{path_and_query}"));
    Reply::of(app.client.get(url).bearer_auth(token).send().await.unwrap()).await
}

/// `POST` of a JSON body to `/iterable/journeys/journey/{path_and_query}`.
async fn ask_json(app: &TestApp, token: &str, path_and_query: &str, body: &Value) -> Reply {
    let url = app.url(&format!("/iterable/journeys/journey/{path_and_query}"));
    Reply::of(app.client.post(url).bearer_auth(token).json(body).send().await.unwrap()).await
}

/// Distinct message ids, so no two events of a test are one event to dedup.
static NEXT_MESSAGE: AtomicU32 = AtomicU32::new(0);

/// Now, whole seconds: what an event's `createdAt` can say.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(days)
}

/// A time as Iterable writes it, and as the `engagement` answer must: `2026-11-30 10:00:00 +00:00`.
fn iterable_date(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S +00:00").to_string()
}

/// A system webhook body of `event_name` for `email`, created at `at`, in Iterable's shape,
/// with `extra` added to its `dataFields`.
fn event(email: &str, event_name: &str, at: DateTime<Utc>, extra: Value) -> Value {
    let n = NEXT_MESSAGE.fetch_add(1, Ordering::Relaxed);
    let mut fields = json!({
        "email": email,
        "createdAt": iterable_date(at),
        "campaignId": 2104035,
        "templateId": 3180047,
        "messageId": format!("{n:032x}"),
    });
    fields.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"email": email, "eventName": event_name, "dataFields": fields})
}

/// Posts `body` to the system webhook of `source` (no authentication) and returns its seq.
async fn post_event(app: &TestApp, source: &str, body: &Value) -> i64 {
    let path = format!("/iterable/{source}");
    stored_seq(app.post(&path, "application/json", &body.to_string()).await).await
}

/// The `answer_status` of stored call `seq`, in `journey_calls` and in `raw_requests`, once
/// the embedded sink has loaded it.
fn answer_status(app: &TestApp, seq: i64) -> (Option<i64>, Option<i64>) {
    let db = app.db();
    let call = db
        .query_row("SELECT answer_status FROM journey_calls WHERE seq = ?1", [seq], |r| r.get(0))
        .unwrap_or_else(|err| panic!("journey call {seq}: {err}"));
    let raw = db
        .query_row("SELECT answer_status FROM raw_requests WHERE seq = ?1", [seq], |r| r.get(0))
        .unwrap();
    (call, raw)
}

#[tokio::test]
async fn an_answer_names_its_stored_call_and_an_unconfigured_journey_answers_as_before() {
    let app = spawn_toml(&format!(
        "{SOURCES}\n[[sources.journeys]]\nname = \"engagement\"\nanswer = \"engagement\"\n"
    ))
    .await;
    let token = token(&app).await;
    post_event(&app, "default", &event("ada@example.com", "emailOpen", days_ago(1), json!({})))
        .await;
    // The answer reads the embedded tables, which follow the 2xx by milliseconds.
    app.db();

    let (answer, seq) = ask(&app, &token, "engagement?email=ada%40example.com").await.ok();
    assert_eq!(answer["emailOpens30d"], 1, "{answer}");
    let db = app.db();
    let (journey, email, source): (String, String, String) = db
        .query_row("SELECT journey, email, source FROM journey_calls WHERE seq = ?1", [seq], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (journey.as_str(), email.as_str(), source.as_str()),
        ("engagement", "ada@example.com", "journeys")
    );
    assert_eq!(answer_status(&app, seq), (Some(200), Some(200)));

    // A journey without `[[sources.journeys]]` is stored and answered as it always was.
    let plain = ask(&app, &token, "welcome?email=ada%40example.com").await;
    assert_eq!(plain.status, StatusCode::OK);
    let plain_seq = plain.body["seq"].as_i64().expect("a seq");
    assert_eq!(plain.body, json!({"status": "stored", "seq": plain_seq}));
    assert!(plain_seq > seq);
    assert_eq!(answer_status(&app, plain_seq).0, Some(200));
    assert_eq!(app.count("SELECT count(*) FROM journey_calls"), 2);
    app.stop().await.unwrap();
}
