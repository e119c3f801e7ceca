//! The same event sent by the native path and by the Snowplow path is one row (its id comes
//! from its body), and keeps the `app_id` and `platform` that only the Snowplow path's query
//! gives: the first arrival's row, with a later copy's values where it had none. Through the
//! real port, into the embedded store, through `replay`, and into PostgreSQL
//! (`TEST_POSTGRES_URL`; skipped with a line saying so without it).

mod common;
mod pg;

use std::process::Command;
use std::time::Duration;

use common::{TestApp, spawn_app, spawn_app_with, stored_seq};
use pg::{Warehouse, database_url};

const SNOWPLOW: &str = "/com.snowplowanalytics.iglu/v1?schema=iglu%3Acom.iterable%2Fsystem_webhook%2Fjsonschema%2F1-0-0";

/// Real-shaped bodies, every field inside `dataFields`, `createdAt` in Iterable's format.
fn email_click(message_id: &str) -> String {
    format!(
        r#"{{"email":"ada@example.com","eventName":"emailClick","dataFields":{{"email":"ada@example.com","createdAt":"2024-03-09 10:14:31 +00:00","campaignId":2104161,"templateId":3180179,"messageId":"{message_id}","emailId":"c2104161:t3180179:ada@example.com","url":"https://www.example.com/sale","linkId":"1234","userAgent":"Mozilla/5.0","ip":"203.0.113.7"}}}}"#
    )
}

fn sms_click(message_id: &str) -> String {
    format!(
        r#"{{"email":"grace@example.com","eventName":"smsClick","dataFields":{{"email":"grace@example.com","createdAt":"2024-03-10 08:02:17 +00:00","campaignId":2104170,"templateId":3180190,"messageId":"{message_id}","toPhoneNumber":"+12025550143","clickedUrl":"https://www.example.com/spring"}}}}"#
    )
}

/// Posts `body` by the native path (`query` None) or the Snowplow path with `query` added,
/// and waits until the embedded store has loaded it; its seq.
async fn send(app: &TestApp, body: &str, query: Option<&str>) -> i64 {
    let response = match query {
        None => app.post_webhook(body).await,
        Some(query) => app.post(&format!("{SNOWPLOW}&{query}"), "application/json", body).await,
    };
    let seq = stored_seq(response).await;
    drop(app.db());
    seq
}

type Route = (i64, Option<String>, Option<String>);

/// The one row of the event with `message_id`: its first request, app id and platform.
fn route(app: &TestApp, message_id: &str) -> Route {
    let db = app.db();
    let mut statement =
        db.prepare("SELECT raw_seq, app_id, platform FROM events WHERE message_id = ?1").unwrap();
    let rows: Vec<Route> = statement
        .query_map([message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "{message_id}: one row, not {rows:?}");
    rows.into_iter().next().unwrap()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// Each case: the message id, the body, and the routes it is sent by, in order (`None` the
/// native path); then the row it must end as (`seq` the index of the first send).
type Case = (&'static str, fn(&str) -> String, &'static [Option<&'static str>]);

const CASES: &[Case] = &[
    ("native-then-snowplow", email_click, &[None, Some("aid=shop&p=web")]),
    ("snowplow-then-native", email_click, &[Some("aid=shop&p=web"), None]),
    ("sms-native-then-snowplow", sms_click, &[None, Some("aid=shop&p=mob")]),
    // The first value wins; only a NULL is filled (the default platform `srv` is a value).
    ("first-value-wins", email_click, &[Some("p=web"), Some("aid=shop&p=mob")]),
];

fn expected(case: &str) -> (Option<String>, Option<String>) {
    match case {
        "native-then-snowplow" | "snowplow-then-native" => (some("shop"), some("web")),
        "sms-native-then-snowplow" => (some("shop"), some("mob")),
        "first-value-wins" => (some("shop"), some("web")),
        other => panic!("no expectation for {other}"),
    }
}

/// Sends every case, each copy in a load of its own; the seq of each case's first send.
async fn send_cases(app: &TestApp) -> Vec<i64> {
    let mut firsts = Vec::new();
    for (message_id, body, routes) in CASES {
        let mut seqs = Vec::new();
        for query in *routes {
            seqs.push(send(app, &body(message_id), *query).await);
        }
        firsts.push(seqs[0]);
    }
    firsts
}

#[tokio::test]
async fn a_copy_by_the_other_path_fills_app_id_and_platform_in_the_store() {
    let app = spawn_app().await;
    let firsts = send_cases(&app).await;
    for ((message_id, ..), first) in CASES.iter().zip(&firsts) {
        let (app_id, platform) = expected(message_id);
        assert_eq!(route(&app, message_id), (*first, app_id, platform), "{message_id}");
    }
    // The first request still carries the event; the copy added a raw request and no row.
    assert_eq!(app.count("SELECT count(*) FROM events"), CASES.len() as i64);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2 * CASES.len() as i64);
    let url: String = app
        .db()
        .query_row(
            "SELECT url FROM sms_click WHERE message_id = 'sms-native-then-snowplow'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(url, "https://www.example.com/spring", "smsClick's clickedUrl");

    // A plain resend of the first request changes nothing.
    send(&app, &email_click("native-then-snowplow"), None).await;
    assert_eq!(route(&app, "native-then-snowplow"), (firsts[0], some("shop"), some("web")));

    // Replaying only the native request that carries the event rewrites its row from that
    // request, which has no app id: the value the Snowplow copy filled in is kept.
    let first = firsts[0].to_string();
    let data_dir = app.data_dir.path().to_str().unwrap().to_owned();
    let range = format!("{first}..{first}");
    let replay = Command::new(env!("CARGO_BIN_EXE_hookhouse"))
        .args(["replay", "--seq", &range, "--data-dir", &data_dir])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    assert_eq!(route(&app, "native-then-snowplow"), (firsts[0], some("shop"), some("web")));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_copy_by_the_other_path_fills_app_id_and_platform_in_postgres() {
    let Some(url) = database_url() else { return };
    let pg = Warehouse::new(&url, "route_columns").await;
    let app = spawn_app_with(|config| pg.configure(config, &url)).await;
    // Each copy after PostgreSQL has loaded the first, so it meets the stored row there.
    for (message_id, body, routes) in CASES {
        for query in *routes {
            send(&app, &body(message_id), *query).await;
            pg::wait_caught_up(&app.db_path(), Duration::from_secs(30)).await;
        }
    }
    for (message_id, ..) in CASES {
        let sql = format!(
            "SELECT raw_seq, app_id, platform FROM {}.events WHERE message_id = $1",
            pg.schema
        );
        let rows = pg.client.query(&sql, &[message_id]).await.unwrap();
        assert_eq!(rows.len(), 1, "{message_id}");
        let loaded: Route = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        assert_eq!(loaded, route(&app, message_id), "{message_id}: as the embedded store has it");
        let (app_id, platform) = expected(message_id);
        assert_eq!((loaded.1, loaded.2), (app_id, platform), "{message_id}");
    }
    assert_eq!(pg.count("events").await, CASES.len() as i64);
    app.stop().await.unwrap();
    pg.drop_schema().await;
}
