//! Ingestion through the real HTTP port: every endpoint, every content shape, every refusal.

mod common;

use common::{email_open, spawn_app, spawn_app_with};
use serde_json::Value;

const SNOWPLOW: &str = "/com.snowplowanalytics.iglu/v1?schema=iglu%3Acom.iterable%2Fsystem_webhook%2Fjsonschema%2F1-0-0";

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_system_webhook_is_stored_with_its_event_row() {
    let app = spawn_app().await;
    let body = email_open("0123456789abcdef0123456789abcdef");
    let response = app
        .client
        .post(app.url("/iterable/default?campaign=12345&empty="))
        .header("content-type", "Application/JSON; charset=UTF-8")
        .header("authorization", "Bearer must-not-be-stored")
        .header("cookie", "session=must-not-be-stored")
        .header("x-api-key", "must-not-be-stored")
        .header("x-iterable-tag", "not listed")
        .header("x-request-id", "req-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    // The answer says where the request is; its rows are the sinks' business.
    assert_eq!(answer, serde_json::json!({"status": "stored", "seq": 1}));

    let db = app.db();
    let (seq, source, method, path, query, headers, remote, ctype, stored_body, sha): (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Vec<u8>,
        String,
    ) = db
        .query_row(
            "SELECT seq, source, method, path, query, headers, remote_addr, content_type, body, \
             body_sha256 FROM raw_requests",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(seq, answer["seq"].as_i64().unwrap());
    assert_eq!(
        (source.as_str(), method.as_str(), path.as_str()),
        ("default", "POST", "/iterable/default")
    );
    assert_eq!(query, "campaign=12345&empty=");
    assert_eq!(remote, "127.0.0.1");
    assert_eq!(ctype, "Application/JSON; charset=UTF-8");
    assert_eq!(stored_body, body.as_bytes());
    assert_eq!(sha.len(), 64);
    let headers: Value = serde_json::from_str(&headers).unwrap();
    // Kept by the default `store.keep_headers` allow-list; nothing else is.
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(headers["content-type"], "Application/JSON; charset=UTF-8");
    for absent in ["x-iterable-tag", "x-api-key", "authorization", "cookie"] {
        assert!(headers.get(absent).is_none(), "{absent} kept: {headers}");
    }
    let received_at: String =
        db.query_row("SELECT received_at FROM raw_requests", [], |r| r.get(0)).unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&received_at).is_ok() && received_at.ends_with('Z')
    );

    let row: (String, i64, String, String, String, i64, i64, String, String, String) = db
        .query_row(
            "SELECT event_id, raw_seq, event_name, email, created_at, campaign_id, template_id, \
             message_id, received_at, data FROM events",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0.len(), 42);
    assert!(row.0.starts_with(&format!("{:010x}", 1_480_710_064)), "id starts with createdAt");
    assert_eq!(row.1, seq);
    assert_eq!((row.2.as_str(), row.3.as_str()), ("emailOpen", "ada@example.com"));
    assert_eq!(row.4, "2016-12-02T20:21:04Z");
    assert_eq!((row.5, row.6), (12345, 67890));
    assert_eq!(row.7, "0123456789abcdef0123456789abcdef");
    assert_eq!(row.8, received_at);
    let data: Value = serde_json::from_str(&row.9).unwrap();
    assert_eq!(data["emailId"], "c12345:t67890:ada@example.com");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_resent_body_adds_a_raw_request_but_no_event() {
    let app = spawn_app().await;
    let body = email_open("resent");
    // The same event with other key order and whitespace is the same event.
    let reordered =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    for payload in [&body, &body, &reordered] {
        assert_eq!(app.post_webhook(payload).await.status(), 200);
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 3);
    assert_eq!(app.count("SELECT count(*) FROM events"), 1);
    assert_eq!(app.count("SELECT raw_seq FROM events"), 1, "the first request keeps the event");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn hundreds_of_concurrent_posts_are_all_acknowledged_and_stored() {
    let app = spawn_app().await;
    let posts = (0..500).map(|i| {
        let (client, url) = (app.client.clone(), app.url("/iterable/default"));
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(email_open(&format!("concurrent-{i}")))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> =
        futures_join(posts.collect()).await.into_iter().map(|s| s.unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 500);
    assert_eq!(app.count("SELECT count(*) FROM events"), 500);
    assert_eq!(app.count("SELECT count(DISTINCT seq) FROM raw_requests"), 500);
    app.stop().await.unwrap();
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn an_array_body_is_several_events() {
    let app = spawn_app().await;
    let body = format!("[{},{},{}]", email_open("a1"), email_open("a2"), email_open("a3"));
    let answer: Value = app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(answer["seq"], 1);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 1);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE raw_seq = 1"), 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_not_stored() {
    let app = spawn_app_with(|config| config.server.max_body_bytes = 1024).await;
    let big = email_open(&"x".repeat(2000));
    let response = app.post_webhook(&big).await;
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("1024"), "{answer}");
    assert_eq!(app.post_webhook(&email_open("small")).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_acknowledged_and_kept_as_a_failure() {
    let app = spawn_app().await;
    let response = app.post_webhook(r#"{"eventName": "emailOpen", "dataFields": {"#).await;
    assert_eq!(response.status(), 200, "a retry cannot repair it, so it is acknowledged");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "stored");
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
    let (seq, stage, reason, body): (i64, String, String, Vec<u8>) = app
        .db()
        .query_row("SELECT raw_seq, stage, reason, body FROM failed_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!((seq, stage.as_str()), (1, "decode"));
    assert!(reason.contains("not valid JSON"), "{reason}");
    assert_eq!(body, br#"{"eventName": "emailOpen", "dataFields": {"#);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 1);
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_object_without_event_name_is_kept_as_a_failure() {
    let app = spawn_app().await;
    assert_eq!(app.post_webhook(r#"{"email":"a@x.io","dataFields":{}}"#).await.status(), 200);
    let (stage, reason): (String, String) = app
        .db()
        .query_row("SELECT stage, reason FROM failed_events", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((stage.as_str(), reason.as_str()), ("envelope", "the event has no `eventName`"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_have_the_right_status_and_store_nothing() {
    let app = spawn_app().await;
    let get = app.get("/iterable/default").await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(app.client.put(app.url(SNOWPLOW)).send().await.unwrap().status(), 405);
    assert_eq!(app.post("/iterable/unknown", "application/json", "{}").await.status(), 404);
    assert_eq!(app.get("/nowhere").await.status(), 404);
    let multipart = app.post("/iterable/default", "multipart/form-data; boundary=x", "--x--").await;
    assert_eq!(multipart.status(), 415);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_snowplow_path_takes_json_form_and_query_events() {
    let app = spawn_app().await;
    let json = app
        .post(&format!("{SNOWPLOW}&aid=shop&p=web"), "application/json", &email_open("sp1"))
        .await;
    assert_eq!(json.status(), 200);
    let array = format!("[{},{}]", email_open("sp2"), email_open("sp3"));
    assert_eq!(app.post(SNOWPLOW, "application/json; charset=utf-8", &array).await.status(), 200);
    let form = "eventName=emailClick&email=form%40x.io&campaignId=77&url=https%3A%2F%2Fx.io";
    assert_eq!(app.post(SNOWPLOW, "application/x-www-form-urlencoded", form).await.status(), 200);
    let get = app.get(&format!("{SNOWPLOW}&eventName=emailBounce&email=get%40x.io&aid=")).await;
    assert_eq!(get.status(), 200);

    type Row = (String, Option<String>, Option<String>, Option<String>, Option<i64>, String);
    let rows: Vec<Row> = {
        let db = app.db();
        let mut stmt = db
            .prepare(
                "SELECT e.event_name, e.email, e.app_id, e.platform, e.campaign_id, r.method \
                 FROM events e JOIN raw_requests r ON r.seq = e.raw_seq ORDER BY e.raw_seq, e.message_id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some("shop"));
    assert_eq!(rows[0].3.as_deref(), Some("web"));
    assert!(rows[1..].iter().all(|r| r.3.as_deref() == Some("srv")), "platform defaults to srv");
    assert_eq!(
        (rows[3].0.as_str(), rows[3].1.as_deref(), rows[3].4),
        ("emailClick", Some("form@x.io"), Some(77))
    );
    assert_eq!(
        (rows[4].0.as_str(), rows[4].1.as_deref(), rows[4].5.as_str()),
        ("emailBounce", Some("get@x.io"), "GET")
    );
    assert_eq!(rows[4].2, None, "an empty aid is no app id");
    let sources: i64 = app.count("SELECT count(*) FROM raw_requests WHERE source = 'default'");
    assert_eq!(sources, 4);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_snowplow_path_refuses_a_missing_or_foreign_schema() {
    let app = spawn_app().await;
    let missing = app.post("/com.snowplowanalytics.iglu/v1", "application/json", "{}").await;
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("schema"));
    let foreign =
        "/com.snowplowanalytics.iglu/v1?schema=iglu%3Acom.acme%2Fthing%2Fjsonschema%2F1-0-0";
    assert_eq!(app.post(foreign, "application/json", "{}").await.status(), 400);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_returns_ok_after_storing() {
    let app = spawn_app().await;
    assert_eq!(app.post_webhook(&email_open("last")).await.status(), 200);
    let dir = app.stop().await.expect("run returns Ok after a graceful shutdown");
    let conn = rusqlite::Connection::open(dir.path().join("hookhouse.db")).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn head_requests_are_answered_but_never_stored() {
    let app = spawn_app().await;
    for path in ["/iterable/default/journey/welcome?email=a%40x.io", SNOWPLOW] {
        let response = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_array_over_the_event_limit_is_one_failure() {
    let app = spawn_app().await;
    let count = hookhouse::pipeline::MAX_EVENTS_PER_REQUEST + 1;
    let body = format!("[{}]", vec![r#"{"eventName":"e"}"#; count].join(","));
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
    assert_eq!(app.count("SELECT count(*) FROM failed_events"), 1);
    let reason: String =
        app.db().query_row("SELECT reason FROM failed_events", [], |r| r.get(0)).unwrap();
    assert!(reason.contains(&format!("{count} elements")), "{reason}");
    app.stop().await.unwrap();
}
