//! `hookhouse simulate` against a real hookhouse: what the summary says was acknowledged is
//! what the store holds, event for event.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use common::{TestApp, spawn_app, spawn_app_with};
use hookhouse::simulate::{EVENT_NAMES, SimulateArgs, Summary, run, run_until};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

/// The arguments `hookhouse simulate --url <url> <flags>` would get.
fn args(url: &str, flags: &[&str]) -> SimulateArgs {
    Cli::try_parse_from(["simulate", "--url", url].iter().chain(flags))
        .unwrap_or_else(|err| panic!("{err}"))
        .args
}

/// Stored events by name.
fn stored_by_event(app: &TestApp) -> BTreeMap<String, u64> {
    let db = app.db();
    let mut query =
        db.prepare("SELECT event_name, count(*) FROM events GROUP BY event_name").unwrap();
    query
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
        .unwrap()
        .map(|row| row.map(|(name, count)| (name, u64::try_from(count).unwrap())))
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_clean(summary: &Summary, sent: u64) {
    assert_eq!(summary.sent, sent, "{summary}");
    assert_eq!(summary.acknowledged, sent, "{summary}");
    assert_eq!(summary.errors(), 0, "{summary}");
    assert_eq!(summary.abandoned, 0, "{summary}");
    assert!(!summary.interrupted);
    assert!(summary.all_acknowledged());
    assert_eq!(summary.by_event.values().sum::<u64>(), sent, "{summary}");
}

#[tokio::test]
async fn every_acknowledged_event_is_stored_once() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default");
    let summary = run(args(&url, &["--count", "300", "--rate", "0", "--seed", "3"])).await.unwrap();

    assert_clean(&summary, 300);
    assert!(summary.latency_p50.is_some() && summary.latency_p99 >= summary.latency_p50);
    // The first events cover every name once, so all 25 arrive even in a short run.
    let sent: Vec<&str> = summary.by_event.keys().map(String::as_str).collect();
    let mut every = EVENT_NAMES.to_vec();
    every.sort_unstable();
    assert_eq!(sent, every);

    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 300);
    assert_eq!(app.count("SELECT count(*) FROM failed_events"), 0);
    // Bodies are unique, so deduplication keeps every one.
    assert_eq!(app.count("SELECT count(*) FROM events"), 300);
    assert_eq!(stored_by_event(&app), summary.by_event);
    // Iterable's timestamp format was understood, and ids were promoted.
    assert_eq!(app.count("SELECT count(*) FROM events WHERE created_at IS NULL"), 0);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE email IS NULL AND user_id IS NULL"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn only_the_chosen_events_are_sent() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default");
    let flags = ["--count", "40", "--rate", "0", "--events", "emailOpen,smsBounce"];
    let summary = run(args(&url, &flags)).await.unwrap();

    assert_clean(&summary, 40);
    assert_eq!(summary.by_event.keys().collect::<Vec<_>>(), ["emailOpen", "smsBounce"]);
    assert_eq!(stored_by_event(&app), summary.by_event);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn extra_headers_are_sent_with_every_request() {
    // Only listed headers are stored, so the test lists its own.
    let app = spawn_app_with(|c| c.store.keep_headers.push("x-simulated-by".to_owned())).await;
    let url = app.url("/iterable/default");
    let flags = ["--count", "5", "--rate", "0", "--header", "X-Simulated-By: hookhouse tests"];
    assert_clean(&run(args(&url, &flags)).await.unwrap(), 5);

    let with_header = app.count(
        "SELECT count(*) FROM raw_requests \
         WHERE json_extract(headers, '$.\"x-simulated-by\"') = 'hookhouse tests' \
         AND content_type = 'application/json'",
    );
    assert_eq!(with_header, 5);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_rate_paces_the_requests() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default");
    // 21 events at 100/s: the first at once, then one every 10 ms.
    let summary = run(args(&url, &["--count", "21", "--rate", "100"])).await.unwrap();
    assert_clean(&summary, 21);
    assert!(summary.elapsed >= Duration::from_millis(200), "{summary}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_duration_bounds_the_run() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default");
    let summary = run(args(&url, &["--duration", "1s", "--rate", "20"])).await.unwrap();
    assert!(summary.elapsed >= Duration::from_secs(1), "{summary}");
    // Ticks at 0, 50, ..., 950 ms: never more than 20.
    assert!((1..=20).contains(&summary.sent), "{summary}");
    assert_clean(&summary, summary.sent);
    assert_eq!(app.count("SELECT count(*) FROM events"), summary.sent as i64);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_stop_signal_ends_the_run_with_a_summary() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default");
    let stop = tokio::time::sleep(Duration::from_millis(300));
    let summary =
        run_until(args(&url, &["--count", "1000000", "--rate", "100"]), stop).await.unwrap();

    assert!(summary.interrupted, "{summary}");
    assert!((1..1_000).contains(&summary.sent), "{summary}");
    assert_eq!(summary.sent, summary.acknowledged + summary.errors() + summary.abandoned);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), summary.acknowledged as i64);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_and_connection_failures_are_counted() {
    let app = spawn_app().await;
    let url = app.url("/iterable/no-such-source");
    let summary = run(args(&url, &["--count", "7", "--rate", "0"])).await.unwrap();
    assert_eq!((summary.sent, summary.acknowledged), (7, 0));
    assert_eq!(summary.errors_by_status, BTreeMap::from([(404, 7)]));
    assert!(summary.by_event.is_empty());
    app.stop().await.unwrap();

    // A port nobody listens on: bind one, then let it go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/iterable/default", listener.local_addr().unwrap());
    drop(listener);
    let summary = run(args(&url, &["--count", "3", "--rate", "0"])).await.unwrap();
    assert_eq!(summary.sent, 3);
    assert_eq!(summary.connection_errors, BTreeMap::from([("connect".to_owned(), 3)]));
    assert_eq!((summary.latency_p50, summary.latency_p99), (None, None));
}
