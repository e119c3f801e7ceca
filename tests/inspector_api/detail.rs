//! `GET /api/requests/{seq}`: the request whole (every stored column, no credential), the rows
//! made from it, who has loaded it, and for a resend the request that brought its events first.

use hookhouse::config::{SourceAuth, SourceConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{email_open, fixture, spawn_inspector};

const SOURCE_SECRET: &str = "prod-source-secret-0123456789";

#[tokio::test]
async fn the_detail_of_an_event_request_holds_its_columns_rows_and_no_credential() {
    let inspector = spawn_inspector(None, |config| {
        let secrets = vec![SecretString::from(SOURCE_SECRET.to_owned())];
        config.sources = vec![SourceConfig::new("prod", SourceAuth::Token(secrets))];
    })
    .await;
    let body = fixture("emailSend/basic.json");
    let response = inspector
        .app
        .client
        .post(inspector.app.url("/iterable/prod?via=inspector-test"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {SOURCE_SECRET}"))
        .header("cookie", "session=cookie-value-4471")
        .header("x-request-id", "req-8812")
        .header("user-agent", "Iterable-Webhook/1.0")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let seq = super::stored_seq(response).await;
    inspector.loaded();

    let detail = inspector.get_json(&format!("/api/requests/{seq}"), &[]).await;
    let text = detail.to_string();
    for credential in [SOURCE_SECRET, "cookie-value-4471"] {
        assert!(!text.contains(credential), "a credential in the detail: {text}");
    }
    let summary = &detail["summary"];
    assert_eq!(summary["seq"], seq);
    assert_eq!(summary["source"], "prod");
    assert_eq!(summary["outcome"], "events");
    assert_eq!(summary["who"], "ada.lovelace@example.com");
    assert_eq!(summary["events"], json!([{"name": "emailSend", "count": 1}]));
    assert_eq!(summary["body_bytes"], body.len());

    let request = &detail["request"];
    assert_eq!(request["seq"], seq);
    assert_eq!(request["source"], "prod");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/iterable/prod");
    assert_eq!(request["query"], "via=inspector-test");
    assert_eq!(request["kind"], "system");
    assert_eq!(request["content_type"], "application/json");
    assert_eq!(request["body"], body.as_str(), "the body as text, byte for byte");
    assert_eq!(request["body_dropped"], 0);
    assert_eq!(request["received_at"], summary["received_at"]);
    assert_eq!(request["body_sha256"].as_str().map(str::len), Some(64));
    for column in ["remote_addr", "peer_addr", "pseudonymised", "body_hidden", "journey"] {
        assert!(request.get(column).is_some(), "`{column}` is shown: {request}");
    }
    let headers = request["headers"].as_object().expect("headers as a JSON object");
    assert_eq!(headers["x-request-id"], "req-8812");
    assert_eq!(headers["user-agent"], "Iterable-Webhook/1.0");
    assert_eq!(headers["content-type"], "application/json");
    for credential in ["authorization", "cookie"] {
        assert!(!headers.contains_key(credential), "`{credential}` stored: {headers:?}");
    }

    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["raw_seq"], seq);
    assert_eq!(event["source"], "prod");
    assert_eq!(event["event_name"], "emailSend");
    assert_eq!(event["family"], "email");
    assert_eq!(event["email"], "ada.lovelace@example.com");
    assert_eq!(event["campaign_id"], 2104011);
    assert_eq!(event["template_id"], 3180021);
    assert_eq!(event["campaign_name"], "Spring Sale Blast 2024");
    assert_eq!(event["message_id"], "68bf1540e49263351a0eb16ead414af0");
    assert_eq!(event["email_subject"], "Spring sale: 20% off everything this week");
    assert_eq!(event["created_at"], "2024-03-04T15:02:11Z");
    assert_eq!(event["labels"], json!(["promo", "spring-2024"]), "JSON columns as JSON");
    assert_eq!(event["data"]["locale"], "en-US");
    assert!(event["event_id"].as_str().is_some_and(|id| !id.is_empty()));

    assert_eq!(detail["journey_calls"], json!([]));
    assert_eq!(detail["failures"], json!([]));
    assert_eq!(detail["carried_earlier"], json!([]));
    let loaded_by = detail["loaded_by"].as_array().unwrap();
    assert!(loaded_by.contains(&json!({"sink": "sqlite", "loaded": true})), "{loaded_by:?}");
    inspector.stop().await;
}

#[tokio::test]
async fn a_resend_is_a_duplicate_whose_detail_names_the_first_request() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let body = email_open("ada@example.com", "m-resent");
    let first = inspector.post_event("default", &body).await;
    let between = inspector.post_event("default", &email_open("bob@example.com", "m-2")).await;
    let second = inspector.post_event("default", &body).await;
    inspector.loaded();

    let original = inspector.get_json(&format!("/api/requests/{first}"), &[]).await;
    assert_eq!(original["summary"]["outcome"], "events");
    assert_eq!(original["carried_earlier"], json!([]));
    let event_id = original["events"][0]["event_id"].as_str().unwrap().to_owned();

    let resend = inspector.get_json(&format!("/api/requests/{second}"), &[]).await;
    assert_eq!(resend["summary"]["outcome"], "duplicate");
    assert_eq!(resend["summary"]["events"], json!([]));
    assert_eq!(resend["events"], json!([]), "its event belongs to the first request");
    assert_eq!(resend["carried_earlier"], json!([{"event_id": event_id, "first_seq": first}]));
    assert_eq!(resend["request"]["body"], body.as_str());

    // A body carrying one old and one new event: only the old one is carried earlier.
    let old = serde_json::from_str::<Value>(&body).unwrap();
    let new = serde_json::from_str::<Value>(&email_open("cy@example.com", "m-new")).unwrap();
    let mixed = inspector.post_event("default", &json!([old, new]).to_string()).await;
    inspector.loaded();
    let detail = inspector.get_json(&format!("/api/requests/{mixed}"), &[]).await;
    assert_eq!(detail["summary"]["outcome"], "events");
    assert_eq!(detail["events"].as_array().unwrap().len(), 1);
    assert_eq!(detail["events"][0]["email"], "cy@example.com");
    assert_eq!(detail["carried_earlier"], json!([{"event_id": event_id, "first_seq": first}]));
    let unrelated = inspector.get_json(&format!("/api/requests/{between}"), &[]).await;
    assert_eq!(unrelated["carried_earlier"], json!([]));
    inspector.stop().await;
}

#[tokio::test]
async fn the_detail_of_a_journey_call_and_of_a_failure() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let call =
        inspector.journey("default", "welcome-series", "email=ada%40example.com&step=2").await;
    let broken = r#"{"eventName": "emailOpen", "dataFields": {"#;
    let failed = inspector.post_event("default", broken).await;
    inspector.loaded();

    let detail = inspector.get_json(&format!("/api/requests/{call}"), &[]).await;
    assert_eq!(detail["summary"]["kind"], "journey");
    assert_eq!(detail["summary"]["outcome"], "journey");
    assert_eq!(detail["summary"]["journey"], "welcome-series");
    assert_eq!(detail["request"]["method"], "GET");
    assert_eq!(detail["request"]["query"], "email=ada%40example.com&step=2");
    let calls = detail["journey_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["seq"], call);
    assert_eq!(calls[0]["journey"], "welcome-series");
    assert_eq!(calls[0]["email"], "ada@example.com");
    assert_eq!(
        calls[0]["data"],
        json!({"query": {"email": "ada@example.com", "step": "2"}, "body": null})
    );
    assert_eq!(detail["events"], json!([]));

    let detail = inspector.get_json(&format!("/api/requests/{failed}"), &[]).await;
    assert_eq!(detail["summary"]["outcome"], "failed");
    assert_eq!(detail["summary"]["failures"], 1);
    let failures = detail["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["raw_seq"], failed);
    assert_eq!(failures[0]["stage"], "decode");
    assert_eq!(failures[0]["sink"], Value::Null);
    assert_eq!(failures[0]["body"], broken);
    assert!(failures[0]["reason"].as_str().unwrap().contains("not valid JSON"), "{detail}");
    assert_eq!(detail["request"]["body"], broken);

    // A body that is not UTF-8 is shown in base64, and previewed with replacement characters.
    let bytes = b"{\"eventName\": \"emailOpen\", \"x\": \"\xff\xfe\"}".to_vec();
    let response = inspector
        .app
        .client
        .post(inspector.app.url("/iterable/default"))
        .header("content-type", "application/json")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let binary = super::stored_seq(response).await;
    inspector.loaded();
    let detail = inspector.get_json(&format!("/api/requests/{binary}"), &[]).await;
    assert_eq!(detail["summary"]["outcome"], "failed");
    assert_eq!(detail["request"].get("body"), None, "{detail}");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    assert_eq!(detail["request"]["body_base64"], encoded);
    let failed = inspector.get_json("/api/failed", &[("limit", "1")]).await;
    assert_eq!(failed["failures"][0]["raw_seq"], binary);
    assert_eq!(failed["failures"][0]["body_preview"], String::from_utf8_lossy(&bytes).as_ref());
    inspector.stop().await;
}
