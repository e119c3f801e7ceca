//! Journey webhooks: every method, every body kind, plus the query string, land in
//! `journey_calls` (and `raw_requests`), answered 200 with a small JSON body.

mod common;

use common::spawn_app;
use serde_json::{Value, json};

#[tokio::test]
async fn calls_of_every_method_and_body_kind_land_in_journey_calls() {
    let app = spawn_app().await;
    let url = app.url("/iterable/default/journey/welcome-series?step=2&coupon=&email=q%40x.io");
    let json_body = r#"{"email":"ada@example.com","userId":"u-1","plan":"pro"}"#;
    let form_body = "email=grace%40example.com&score=9";
    let cases: Vec<(reqwest::Method, Option<(&str, &str)>)> = vec![
        (reqwest::Method::GET, None),
        (reqwest::Method::POST, Some(("application/json", json_body))),
        (reqwest::Method::PUT, Some(("application/x-www-form-urlencoded", form_body))),
        (reqwest::Method::PATCH, Some(("application/json; charset=utf-8", json_body))),
        (reqwest::Method::DELETE, None),
        (reqwest::Method::POST, None),
    ];
    for (method, body) in &cases {
        let mut request = app.client.request(method.clone(), &url);
        if let Some((content_type, text)) = body {
            request = request.header("content-type", *content_type).body(text.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "stored");
    }

    let db = app.db();
    let mut statement = db
        .prepare(
            "SELECT method, journey, email, user_id, data, source FROM journey_calls ORDER BY seq",
        )
        .unwrap();
    type Call = (String, String, Option<String>, Option<String>, String, String);
    let calls: Vec<Call> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(calls.len(), cases.len());
    let methods: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "PUT", "PATCH", "DELETE", "POST"]);
    assert!(calls.iter().all(|c| c.1 == "welcome-series" && c.5 == "default"));

    let data = |i: usize| serde_json::from_str::<Value>(&calls[i].4).unwrap();
    let query = json!({"step": "2", "coupon": "", "email": "q@x.io"});
    // GET with no body: the query alone; the email comes from the query.
    assert_eq!(data(0), json!({"query": query, "body": null}));
    assert_eq!(calls[0].2.as_deref(), Some("q@x.io"));
    // JSON body: kept whole; the body's email and userId win over the query's.
    assert_eq!(data(1)["body"], serde_json::from_str::<Value>(json_body).unwrap());
    assert_eq!(
        (calls[1].2.as_deref(), calls[1].3.as_deref()),
        (Some("ada@example.com"), Some("u-1"))
    );
    // Form body: an object of strings.
    assert_eq!(data(2)["body"], json!({"email": "grace@example.com", "score": "9"}));
    assert_eq!(calls[2].2.as_deref(), Some("grace@example.com"));
    assert_eq!(data(4)["body"], Value::Null);

    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), cases.len() as i64);
    assert_eq!(app.count("SELECT count(*) FROM events"), 0, "journey calls are not events");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_journey_call_with_malformed_json_is_kept_as_a_failure() {
    let app = spawn_app().await;
    let response = app.post("/iterable/default/journey/broken", "application/json", "{nope").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM failed_events WHERE stage = 'decode'"), 1);
    assert_eq!(app.count("SELECT count(*) FROM journey_calls"), 0);
    assert_eq!(
        app.post("/iterable/nobody/journey/x", "application/json", "{}").await.status(),
        404
    );
    app.stop().await.unwrap();
}
