//! `GET /api/failed`, `POST /api/replay`, `GET /api/stats` and `GET /api/sinks`: what failed,
//! reading it again, counts per bucket, and how far each sink has loaded.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::common::OLDER_VERSION_REASON;

use super::{Inspector, email_open, error_of, fixture, seqs_of, spawn_inspector};

const BROKEN: &str = r#"{"eventName": "emailOpen", "dataFields": {"#;
/// A writable connection to the store, as an older hookhouse's would have been.
fn writer(inspector: &Inspector) -> Connection {
    let conn = Connection::open(inspector.app.db_path()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// What an older hookhouse that could not read request `seq` would have left: no event, and
/// a `failed_events` row holding its body.
fn count(inspector: &Inspector, sql: &str, seq: i64) -> i64 {
    writer(inspector).query_row(sql, [seq], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn failed_lists_failures_newest_first_with_reason_stage_and_preview() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let first = inspector.post_event("default", BROKEN).await;
    inspector.post_event("default", &email_open("ada@example.com", "m-ok")).await;
    let no_name = r#"{"email":"a@x.io","dataFields":{}}"#;
    let second = inspector.post_event("default", no_name).await;
    inspector.loaded();

    let page = inspector.get_json("/api/failed", &[]).await;
    assert_eq!(page["next_before"], Value::Null);
    let failures = page["failures"].as_array().unwrap();
    let raw_seqs: Vec<i64> = failures.iter().map(|f| f["raw_seq"].as_i64().unwrap()).collect();
    assert_eq!(raw_seqs, [second, first], "newest first");
    let newest = &failures[0];
    assert_eq!(newest["stage"], "envelope");
    assert_eq!(newest["reason"], "the event has no `eventName`");
    assert_eq!(newest["sink"], Value::Null);
    assert_eq!(newest["source"], "default");
    assert_eq!(newest["body_preview"], no_name);
    assert_eq!(newest["body_bytes"], no_name.len());
    let oldest = &failures[1];
    assert_eq!(oldest["stage"], "decode");
    assert!(oldest["reason"].as_str().unwrap().contains("not valid JSON"), "{oldest}");
    assert_eq!(oldest["body_preview"], BROKEN);
    let detail = inspector.get_json(&format!("/api/requests/{first}"), &[]).await;
    assert_eq!(oldest["received_at"], detail["request"]["received_at"]);

    // Paged by `id`, one at a time.
    let one = inspector.get_json("/api/failed", &[("limit", "1")]).await;
    assert_eq!(one["failures"].as_array().unwrap().len(), 1);
    assert_eq!(one["failures"][0]["raw_seq"], second);
    let next = one["next_before"].as_i64().unwrap().to_string();
    assert_eq!(next, one["failures"][0]["id"].to_string());
    let two = inspector.get_json("/api/failed", &[("limit", "1"), ("before", &next)]).await;
    assert_eq!(two["failures"][0]["raw_seq"], first);

    // A long body is cut to a preview; its length is the whole body's.
    let long = format!(r#"{{"eventName": "emailOpen", "padding": "{}""#, "x".repeat(5_000));
    inspector.post_event("default", &long).await;
    inspector.loaded();
    let page = inspector.get_json("/api/failed", &[("limit", "1")]).await;
    let preview = page["failures"][0]["body_preview"].as_str().unwrap();
    assert_eq!(preview, &long[..2_000]);
    assert_eq!(page["failures"][0]["body_bytes"], long.len());
    inspector.stop().await;
}

#[tokio::test]
async fn replaying_one_request_turns_an_old_failure_back_into_its_event() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let seq = inspector.post_event("default", &email_open("ada@example.com", "m-replay")).await;
    let other = inspector.post_event("default", &email_open("bob@example.com", "m-other")).await;
    inspector.loaded();
    inspector.app.fail_as_an_older_version(seq);

    let summary = |detail: &Value| detail["summary"]["outcome"].as_str().unwrap().to_owned();
    let detail = inspector.get_json(&format!("/api/requests/{seq}"), &[]).await;
    assert_eq!(summary(&detail), "failed");
    assert_eq!(detail["failures"][0]["reason"], OLDER_VERSION_REASON);
    assert_eq!(seqs_of(&inspector.page(&[("outcome", "failed")]).await), [seq]);
    let failed = inspector.get_json("/api/failed", &[]).await;
    assert_eq!(failed["failures"][0]["raw_seq"], seq);
    assert_eq!(failed["failures"][0]["reason"], OLDER_VERSION_REASON);

    let (status, report) = inspector.replay(json!({"seq": seq})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({"requests": 1, "events": 1, "journey_calls": 0, "failures_before": 1,
               "failures_after": 0, "rewound_to": seq})
    );
    assert_eq!(count(&inspector, "SELECT count(*) FROM failed_events WHERE raw_seq = ?1", seq), 0);
    let (name, email): (String, String) = writer(&inspector)
        .query_row("SELECT event_name, email FROM events WHERE raw_seq = ?1", [seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((name.as_str(), email.as_str()), ("emailOpen", "ada@example.com"));
    let detail = inspector.get_json(&format!("/api/requests/{seq}"), &[]).await;
    assert_eq!(summary(&detail), "events");
    assert_eq!(detail["events"][0]["message_id"], "m-replay");
    assert_eq!(inspector.get_json("/api/failed", &[]).await["failures"], json!([]));
    assert_eq!(count(&inspector, "SELECT count(*) FROM events WHERE raw_seq = ?1", other), 1);

    // Idempotent: once more changes nothing.
    let (status, report) = inspector.replay(json!({"seq": seq, "failed": false})).await;
    assert_eq!(status, 200);
    assert_eq!(report["events"], 1);
    assert_eq!(report["failures_before"], 0);
    assert_eq!(count(&inspector, "SELECT count(*) FROM events WHERE raw_seq = ?1", seq), 1);
    inspector.stop().await;
}

#[tokio::test]
async fn replaying_every_failure_fixes_what_can_be_read_and_keeps_the_rest() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let a = inspector.post_event("default", &email_open("ada@example.com", "m-a")).await;
    let b = inspector.post_event("default", &fixture("emailSend/basic.json")).await;
    let broken = inspector.post_event("default", BROKEN).await;
    inspector.loaded();
    inspector.app.fail_as_an_older_version(a);
    inspector.app.fail_as_an_older_version(b);
    assert_eq!(seqs_of(&inspector.page(&[("outcome", "failed")]).await), [broken, b, a]);

    let (status, report) = inspector.replay(json!({"failed": true})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({"requests": 3, "events": 2, "journey_calls": 0, "failures_before": 3,
               "failures_after": 1, "rewound_to": a})
    );
    assert_eq!(seqs_of(&inspector.page(&[("outcome", "failed")]).await), [broken]);
    assert_eq!(seqs_of(&inspector.page(&[("outcome", "events")]).await), [b, a]);
    let failed = inspector.get_json("/api/failed", &[]).await;
    let failures = failed["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["raw_seq"], broken);
    assert_eq!(count(&inspector, "SELECT count(*) FROM events WHERE raw_seq = ?1", b), 1);
    inspector.stop().await;
}

#[tokio::test]
async fn replay_refuses_what_it_cannot_do() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let seq = inspector.post_event("default", &email_open("ada@example.com", "m-1")).await;
    inspector.loaded();
    let post = |content_type: &'static str, body: &'static str| {
        inspector
            .request(reqwest::Method::POST, "/api/replay")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let message = error_of(post("text/plain", r#"{"seq": 1}"#).await.unwrap(), 415).await;
    assert!(message.contains("application/json"), "{message}");
    let message = error_of(post("application/json", "{}").await.unwrap(), 400).await;
    assert!(message.contains("exactly one"), "{message}");
    let both = format!(r#"{{"seq": {seq}, "failed": true}}"#);
    let response = inspector
        .request(reqwest::Method::POST, "/api/replay")
        .header("content-type", "application/json")
        .body(both)
        .send()
        .await
        .unwrap();
    assert!(error_of(response, 400).await.contains("exactly one"));
    let (status, answer) = inspector.replay(json!({"seq": 999_999})).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("999999"), "{answer}");
    let response = inspector.request(reqwest::Method::GET, "/api/replay").send().await.unwrap();
    assert_eq!(response.status(), 405, "replay is a POST");
    // Nothing was touched.
    assert_eq!(count(&inspector, "SELECT count(*) FROM events WHERE raw_seq = ?1", seq), 1);
    inspector.stop().await;
}

/// Counts by (bucket, family, event name) of a stats answer.
fn counts(stats: &Value) -> BTreeMap<(String, String, String), i64> {
    let mut counts = BTreeMap::new();
    for row in stats["counts"].as_array().unwrap() {
        let key = (
            row["at"].as_str().unwrap().to_owned(),
            row["family"].as_str().unwrap().to_owned(),
            row["event_name"].as_str().unwrap().to_owned(),
        );
        assert!(counts.insert(key, row["count"].as_i64().unwrap()).is_none(), "one row a key");
    }
    counts
}

#[tokio::test]
async fn stats_count_the_events_of_each_minute_by_name_and_family() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let mut posted = Vec::new();
    for n in 0..3 {
        let body = email_open("ada@example.com", &format!("m-{n}"));
        posted.push((inspector.post_event("default", &body).await, "email", "emailOpen"));
    }
    posted.push((
        inspector.post_event("default", &fixture("pushSend/basic.json")).await,
        "push",
        "pushSend",
    ));
    posted.push((inspector.post_event("default", BROKEN).await, "failed", "failed"));
    // A resend adds no event.
    inspector.post_event("default", &email_open("ada@example.com", "m-0")).await;
    inspector.loaded();

    // What each bucket must hold, from the times the requests were received.
    let mut minutes = BTreeMap::new();
    let mut hours = BTreeMap::new();
    for (seq, family, name) in posted {
        let detail = inspector.get_json(&format!("/api/requests/{seq}"), &[]).await;
        let at = detail["request"]["received_at"].as_str().unwrap().to_owned();
        let key = |at: String| (at, family.to_owned(), name.to_owned());
        *minutes.entry(key(format!("{}:00Z", &at[..16]))).or_insert(0) += 1;
        *hours.entry(key(format!("{}:00:00Z", &at[..13]))).or_insert(0) += 1;
    }
    let stats = inspector.get_json("/api/stats", &[("window", "1h"), ("bucket", "minute")]).await;
    assert_eq!(stats["bucket"], "minute");
    assert_eq!(counts(&stats), minutes);
    let stats = inspector.get_json("/api/stats", &[]).await;
    assert_eq!(stats["bucket"], "minute", "minutes by default for an hour");
    assert_eq!(counts(&stats), minutes);
    let stats = inspector.get_json("/api/stats", &[("window", "24h")]).await;
    assert_eq!(stats["bucket"], "hour", "hours by default beyond three");
    assert_eq!(counts(&stats), hours);
    let stats = inspector.get_json("/api/stats", &[("window", "7d"), ("bucket", "hour")]).await;
    assert_eq!(counts(&stats), hours);
    assert!(stats["from"].as_str().unwrap() < stats["to"].as_str().unwrap(), "{stats}");
    inspector.stop().await;
}

#[tokio::test]
async fn sinks_show_the_embedded_sink_caught_up() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let sinks = inspector.get_json("/api/sinks", &[]).await;
    assert_eq!(sinks["last_seq"], 0, "an empty store: {sinks}");
    let mut last = 0;
    for n in 0..4 {
        last = inspector
            .post_event("default", &email_open("ada@example.com", &format!("m-{n}")))
            .await;
    }
    inspector.loaded();
    let sinks = inspector.get_json("/api/sinks", &[]).await;
    assert_eq!(sinks["last_seq"], last);
    let all = sinks["sinks"].as_array().unwrap();
    let sqlite = all.iter().find(|s| s["sink"] == "sqlite").unwrap_or_else(|| panic!("{sinks}"));
    assert_eq!(sqlite["position"], last);
    assert_eq!(sqlite["lag_requests"], 0);
    assert_eq!(sqlite["last_error"], Value::Null);
    assert_eq!(sqlite["last_error_at"], Value::Null);
    assert!(sqlite["loaded_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{sqlite}");
    inspector.stop().await;
}

/// A request stored without its body (`drop_raw_bodies`) has nothing to read again: replay
/// says so and changes nothing.
#[tokio::test]
async fn replaying_a_request_whose_body_was_dropped_is_refused() {
    let inspector = spawn_inspector(None, |config| config.sources[0].drop_raw_bodies = true).await;
    let seq = inspector.post_event("default", &email_open("ada@example.com", "m-dropped")).await;
    inspector.loaded();
    let (status, answer) = inspector.replay(json!({"seq": seq})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("drop_raw_bodies"), "{answer}");
    assert_eq!(count(&inspector, "SELECT count(*) FROM events WHERE raw_seq = ?1", seq), 1);
    inspector.stop().await;
}
