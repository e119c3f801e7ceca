//! `sql` answers: an operator's query, its named parameters bound (never interpolated) from
//! the call's query string or body, the first row's columns the answer; a query that writes is
//! refused at start, and one that runs too long is answered 504.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookhouse::app::App;
use hookhouse::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{TestApp, spawn_app_in};
use super::{
    SOURCES, answer_status, ask, ask_json, config_text, days_ago, event, now, post_event,
    spawn_toml, spawn_toml_in, token,
};

const ADA: &str = "ada@example.com";
const GRACE: &str = "grace@example.com";

/// Written as TOML basic strings: the queries hold no double quote.
const JOURNEYS: &str = r#"
[[sources.journeys]]
name = "opens"
answer = "sql"
query = "SELECT count(*) AS opens, max(created_at) AS last FROM events WHERE email = :email AND event_name = :name"

[[sources.journeys]]
name = "first-seen"
answer = "sql"
query = "SELECT email AS who, min(created_at) AS since FROM events WHERE email = :email GROUP BY email"

[[sources.journeys]]
name = "typed"
answer = "sql"
query = "SELECT @email AS echo, $n AS n, 2.5 AS ratio, NULL AS missing, count(*) AS events FROM events WHERE email = @email"

[[sources.journeys]]
name = "recent"
answer = "sql"
query = "SELECT event_name AS name, created_at AS at FROM events WHERE email = :email ORDER BY created_at DESC"
max_rows = 2

[[sources.journeys]]
name = "slow"
answer = "sql"
query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) AS n FROM c"
timeout_ms = 200
"#;

fn config() -> String {
    format!("{SOURCES}{JOURNEYS}")
}

/// When Ada's events were created, newest first.
struct History {
    click: DateTime<Utc>,
    newest_open: DateTime<Utc>,
}

/// Ada: three opens and a click, newest; Grace: one open. Posted to `default`, loaded.
async fn post_history(app: &TestApp) -> History {
    let history = History { click: now() - chrono::Duration::hours(1), newest_open: days_ago(1) };
    for body in [
        event(ADA, "emailOpen", days_ago(3), json!({})),
        event(ADA, "emailOpen", history.newest_open, json!({})),
        event(ADA, "emailOpen", days_ago(40), json!({})),
        event(ADA, "emailClick", history.click, json!({"url": "https://www.example.com/a"})),
        event(GRACE, "emailOpen", days_ago(2), json!({})),
    ] {
        post_event(app, "default", &body).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM events"), 5);
    history
}

/// A stored `created_at` (RFC 3339) as the time it names.
fn instant(value: &Value) -> DateTime<Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a time, not {value}"));
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn named_parameters_are_bound_from_the_query_string_and_the_body() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    let history = post_history(&app).await;

    let (answer, seq) =
        ask(&app, &token, "opens?email=ada%40example.com&name=emailOpen").await.ok();
    assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
    assert_eq!(answer["opens"], 3);
    assert_eq!(instant(&answer["last"]), history.newest_open);
    assert_eq!(answer_status(&app, seq), (Some(200), Some(200)));
    let (answer, _) = ask(&app, &token, "opens?email=ada%40example.com&name=emailClick").await.ok();
    assert_eq!(answer["opens"], 1);
    assert_eq!(instant(&answer["last"]), history.click);

    let body = json!({"email": ADA, "name": "emailOpen"});
    let (answer, _) = ask_json(&app, &token, "opens", &body).await.ok();
    assert_eq!(answer["opens"], 3, "{answer}");
    let body = json!({"dataFields": {"email": GRACE, "name": "emailOpen"}});
    let (answer, _) = ask_json(&app, &token, "opens", &body).await.ok();
    assert_eq!(answer["opens"], 1, "{answer}");

    // `@` and `$` parameters; a JSON number binds as a number, a query-string value as text.
    let (answer, _) =
        ask_json(&app, &token, "typed", &json!({"email": ADA, "n": 7, "plan": "pro"})).await.ok();
    assert_eq!(answer, json!({"echo": ADA, "n": 7, "ratio": 2.5, "missing": null, "events": 4}));
    let (answer, _) = ask(&app, &token, "typed?email=grace%40example.com&n=7").await.ok();
    assert_eq!(
        answer,
        json!({"echo": GRACE, "n": "7", "ratio": 2.5, "missing": null, "events": 1})
    );

    // `max_rows = 2`: the first row's fields, and the rows beside them.
    let (answer, _) = ask(&app, &token, "recent?email=ada%40example.com").await.ok();
    let rows = answer["rows"].as_array().unwrap_or_else(|| panic!("rows: {answer}"));
    assert_eq!(rows.len(), 2, "{answer}");
    assert_eq!(
        (answer["name"].clone(), rows[0]["name"].clone()),
        (json!("emailClick"), json!("emailClick"))
    );
    assert_eq!(rows[0]["at"], answer["at"]);
    assert_eq!(instant(&rows[0]["at"]), history.click);
    assert_eq!(rows[1]["name"], "emailOpen");
    assert_eq!(instant(&rows[1]["at"]), history.newest_open);
    assert_eq!(rows[0].as_object().unwrap().len(), 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn no_row_or_no_such_user_answers_nulls_and_values_are_never_sql() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    post_history(&app).await;

    let (answer, _) = ask(&app, &token, "first-seen?email=nobody%40example.com").await.ok();
    assert_eq!(answer, json!({"who": null, "since": null}));
    let (answer, _) = ask(&app, &token, "first-seen?email=ada%40example.com").await.ok();
    assert_eq!(answer["who"], ADA, "{answer}");
    // A parameter the call does not have is NULL, which matches nothing.
    let (answer, _) = ask(&app, &token, "opens?email=ada%40example.com").await.ok();
    assert_eq!(answer, json!({"opens": 0, "last": null}));

    for hostile in
        ["x' OR 1=1 --", "x' OR '1'='1", "'; DELETE FROM events; --", "ada@example.com' --"]
    {
        let body = json!({"email": hostile, "name": "emailOpen"});
        let (answer, _) = ask_json(&app, &token, "opens", &body).await.ok();
        assert_eq!(answer, json!({"opens": 0, "last": null}), "{hostile}");
        let (answer, _) = ask_json(&app, &token, "first-seen", &body).await.ok();
        assert_eq!(answer, json!({"who": null, "since": null}), "{hostile}");
        let (answer, _) = ask_json(&app, &token, "typed", &body).await.ok();
        assert_eq!(answer["echo"], hostile, "bound as the text it is");
        assert_eq!(answer["events"], 0);
    }
    let injected = "opens?email=x%27%20OR%201%3D1%20--&name=emailOpen%27%20OR%20%271%27%3D%271";
    assert_eq!(ask(&app, &token, injected).await.ok().0, json!({"opens": 0, "last": null}));
    assert_eq!(app.count("SELECT count(*) FROM events"), 5, "every event is still there");
    app.stop().await.unwrap();
}

/// A parameter comes from the body's top level, else its dataFields, else the query string:
/// the order a journey call's email is found in.
#[tokio::test]
async fn a_parameter_in_the_body_wins_over_data_fields_and_the_query_string() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    post_history(&app).await;
    let body = json!({"email": ADA, "dataFields": {"email": GRACE, "name": "emailOpen"}});
    let (answer, _) =
        ask_json(&app, &token, "opens?email=grace%40example.com&name=emailClick", &body).await.ok();
    assert_eq!(answer["opens"], 3, "Ada's opens (body), not Grace's: {answer}");
    // The body's top level wins over its dataFields.
    let body = json!({"email": ADA, "name": "emailOpen", "dataFields": {"email": GRACE}});
    let (answer, _) = ask_json(&app, &token, "opens", &body).await.ok();
    assert_eq!(answer["opens"], 3, "{answer}");
    app.stop().await.unwrap();
}

/// Queries that write, or do more than read, each refused when hookhouse starts.
const WRITING_QUERIES: [&str; 11] = [
    "DELETE FROM events",
    "INSERT INTO events (event_id, raw_seq, source, event_name, received_at, data, family) \
     VALUES ('x', 1, 'default', 'emailOpen', '2026-01-01T00:00:00Z', '{}', 'email')",
    "UPDATE events SET email = 'someone@else.io'",
    "CREATE TABLE stolen (x)",
    "DROP TABLE events",
    "ATTACH DATABASE '/tmp/hookhouse-journey-answers.db' AS other",
    "PRAGMA user_version = 3",
    "SELECT 1; DELETE FROM events",
    "SELECT count(*) AS n FROM events; DROP TABLE events",
    "REPLACE INTO journey_calls (seq, received_at, source, journey, method, data) \
     VALUES (1, 'x', 'x', 'x', 'GET', '{}')",
    "VACUUM INTO '/tmp/hookhouse-journey-answers-copy.db'",
];

/// Why hookhouse refuses to start with `query` as journey `bad`'s answer (the configuration
/// or the app may refuse it); panics when it starts.
async fn refusal(query: &str, data_dir: &std::path::Path) -> String {
    let toml = format!("{SOURCES}\n[[sources.journeys]]\nname = \"bad\"\nanswer = \"sql\"\n");
    let toml = format!("{toml}query = '''{query}'''\n");
    let config = match Config::from_toml_str(&config_text(&toml, data_dir)) {
        Err(err) => return err.to_string(),
        Ok(config) => config,
    };
    match App::build(config).await {
        Err(err) => format!("{err:#}"),
        Ok(_) => panic!("hookhouse started with the answer query {query:?}"),
    }
}

#[tokio::test]
async fn a_query_that_writes_is_refused_at_start_and_the_store_is_untouched() {
    let app = spawn_app_in(tempfile::tempdir().unwrap(), |_| {}).await;
    post_history(&app).await;
    let data_dir = app.stop().await.unwrap();

    for query in WRITING_QUERIES {
        let why = refusal(query, data_dir.path()).await;
        assert!(why.contains("journey `bad`"), "{query}: {why}");
        let lower = why.to_lowercase();
        let says = ["writ", "read-only", "read only", "more than read", "statement"];
        assert!(says.iter().any(|s| lower.contains(s)), "{query}: {why}");
    }
    assert!(!std::path::Path::new("/tmp/hookhouse-journey-answers-copy.db").exists());
    let db = rusqlite::Connection::open(data_dir.path().join("hookhouse.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM events"), 5, "every event is still there");
    assert_eq!(count("SELECT count(*) FROM events WHERE email = 'someone@else.io'"), 0);
    assert_eq!(count("SELECT count(*) FROM sqlite_master WHERE name = 'stolen'"), 0);
    drop(db);

    // The same store with a query that reads starts and answers from those events.
    let app = spawn_toml_in(data_dir, &config()).await;
    let token = token(&app).await;
    let (answer, _) = ask(&app, &token, "opens?email=ada%40example.com&name=emailOpen").await.ok();
    assert_eq!(answer["opens"], 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_query_past_its_time_limit_is_answered_504_and_stored() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    post_history(&app).await;
    let started = Instant::now();
    let reply = ask(&app, &token, "slow?email=ada%40example.com").await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{:?}", reply.body);
    assert!(took < Duration::from_millis(1_500), "a 200 ms limit answered after {took:?}");
    assert!(reply.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{:?}", reply.body);
    let seq = reply.seq.expect("Hookhouse-Seq on a 504 answer");
    assert_eq!(answer_status(&app, seq), (Some(504), Some(504)));
    // The time limit was the query's, not the connection's: the next answer is quick.
    let (answer, _) = ask(&app, &token, "opens?email=ada%40example.com&name=emailOpen").await.ok();
    assert_eq!(answer["opens"], 3);
    app.stop().await.unwrap();
}
