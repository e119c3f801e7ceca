//! Every fixture in `tests/fixtures/iterable/` posted through the HTTP port lands as the
//! documented rows: each promoted column holds the value of its `dataFields` key, converted as
//! documented; a resend adds nothing; and the whole row is snapshotted (insta) so any change in
//! what users query is reviewed.

mod common;

use std::path::Path;

use chrono::{DateTime, Utc};
use common::{FIXTURES, TestApp, fixtures, spawn_app};
use serde_json::{Map, Value};

fn snapshot_name(path: &Path) -> String {
    let event = path.parent().unwrap().file_name().unwrap().to_string_lossy();
    let case = path.file_stem().unwrap().to_string_lossy();
    format!("{event}__{case}")
}

/// The rows of a table for one request, columns by name, SQLite types mapped to JSON.
fn rows(app: &TestApp, table: &str, seq_column: &str, seq: i64) -> Vec<Map<String, Value>> {
    let db = app.db();
    let mut statement = db
        .prepare(&format!("SELECT * FROM {table} WHERE {seq_column} = ?1 ORDER BY rowid"))
        .unwrap();
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    statement
        .query_map([seq], |row| {
            let mut map = Map::new();
            for (index, name) in names.iter().enumerate() {
                let value = match row.get_ref(index)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(i) => Value::from(i),
                    rusqlite::types::ValueRef::Real(f) => Value::from(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        Value::from(String::from_utf8_lossy(b).into_owned())
                    }
                };
                map.insert(name.clone(), value);
            }
            Ok(map)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// How a `dataFields` key is expected to appear in its column.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
    JsonList,
}

/// Column, `dataFields` key, conversion; see [`FALLBACKS`] for a column read from a second key.
const PROMOTED: &[(&str, &str, Kind)] = &[
    ("campaign_id", "campaignId", Kind::Int),
    ("template_id", "templateId", Kind::Int),
    ("message_id", "messageId", Kind::Text),
    ("channel_id", "channelId", Kind::Int),
    ("message_type_id", "messageTypeId", Kind::Int),
    ("workflow_id", "workflowId", Kind::Int),
    ("experiment_id", "experimentId", Kind::Int),
    ("content_id", "contentId", Kind::Int),
    ("campaign_name", "campaignName", Kind::Text),
    ("template_name", "templateName", Kind::Text),
    ("workflow_name", "workflowName", Kind::Text),
    ("email_subject", "emailSubject", Kind::Text),
    ("url", "url", Kind::Text),
    ("link_url", "linkUrl", Kind::Text),
    ("user_agent", "userAgent", Kind::Text),
    ("user_agent_device", "userAgentDevice", Kind::Text),
    ("ip", "ip", Kind::Text),
    ("city", "city", Kind::Text),
    ("region", "region", Kind::Text),
    ("country", "country", Kind::Text),
    ("locale", "locale", Kind::Text),
    ("proxy_source", "proxySource", Kind::Text),
    ("is_bot", "isBot", Kind::Bool),
    ("recipient_state", "recipientState", Kind::Text),
    ("bounce_message", "bounceMessage", Kind::Text),
    ("reason", "reason", Kind::Text),
    ("unsub_source", "unsubSource", Kind::Text),
    ("signup_source", "signupSource", Kind::Text),
    ("email_list_ids", "emailListIds", Kind::JsonList),
    ("labels", "labels", Kind::JsonList),
    ("to_phone_number", "toPhoneNumber", Kind::Text),
    ("from_phone_number", "fromPhoneNumber", Kind::Text),
    ("sms_message", "smsMessage", Kind::Text),
    ("push_message", "pushMessage", Kind::Text),
];

/// Column, and where it is read when its own key gives nothing: `smsClick` names its link
/// `clickedUrl`; an `smsBounce` may have its reason only in `smsProviderResponse.message`.
const FALLBACKS: &[(&str, &[&str])] =
    &[("url", &["clickedUrl"]), ("bounce_message", &["smsProviderResponse", "message"])];

/// The expected value of a promoted column: its own key's, else its fallback's.
fn expected_promoted(column: &str, key: &str, kind: Kind, fields: &Map<String, Value>) -> Value {
    let own = expected(kind, fields.get(key));
    let Some((_, path)) = FALLBACKS.iter().find(|(name, _)| *name == column) else { return own };
    if !own.is_null() {
        return own;
    }
    let mut value = fields.get(path[0]);
    for step in &path[1..] {
        value = value.and_then(|v| v.get(step));
    }
    expected(kind, value)
}

/// The expected column value for a `dataFields` value, per the documented conversions.
fn expected(kind: Kind, value: Option<&Value>) -> Value {
    match (kind, value) {
        (_, None | Some(Value::Null)) => Value::Null,
        (Kind::Text, Some(Value::String(s))) if s.is_empty() => Value::Null,
        (Kind::Text, Some(Value::String(s))) => Value::from(s.as_str()),
        (Kind::Text, Some(other)) => Value::from(other.to_string()),
        (Kind::Int, Some(Value::String(s))) => s.parse::<i64>().map_or(Value::Null, Value::from),
        (Kind::Int, Some(other)) => other.as_i64().map_or(Value::Null, Value::from),
        (Kind::Bool, Some(Value::Bool(b))) => Value::from(i64::from(*b)),
        (Kind::Bool, Some(Value::String(s))) => Value::from(i64::from(s == "true")),
        (Kind::Bool, Some(_)) => Value::Null,
        (Kind::JsonList, Some(list @ Value::Array(_))) => Value::from(list.to_string()),
        (Kind::JsonList, Some(_)) => Value::Null,
    }
}

/// The events a fixture body holds, as JSON objects, and each one's merged event fields.
fn fixture_events(text: &str, content_type: &str) -> Vec<(Value, Map<String, Value>)> {
    let bodies = if content_type.starts_with("application/json") {
        match serde_json::from_str::<Value>(text).unwrap() {
            Value::Array(items) => items,
            one => vec![one],
        }
    } else {
        let form: Map<String, Value> = form_urlencoded::parse(text.trim_end().as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
            .collect();
        vec![Value::Object(form)]
    };
    bodies
        .into_iter()
        .map(|body| {
            let object = body.as_object().unwrap();
            let mut fields: Map<String, Value> = object
                .iter()
                .filter(|(k, _)| {
                    !["email", "userId", "eventName", "dataFields"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(Value::Object(nested)) = object.get("dataFields") {
                fields.extend(nested.clone());
            }
            (body, fields)
        })
        .collect()
}

fn expected_created_at(value: Option<&Value>) -> Value {
    let Some(Value::String(text)) = value else { return Value::Null };
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %:z")
        .map(|t| Value::from(t.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn every_fixture_lands_in_the_right_columns_once() {
    let app = spawn_app().await;
    for (path, content_type) in fixtures() {
        let name = snapshot_name(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let response = app.post("/iterable/default", content_type, &text).await;
        assert_eq!(response.status(), 200, "{name}");
        let answer: Value = response.json().await.unwrap();
        let seq = answer["seq"].as_i64().unwrap();
        let stored = rows(&app, "events", "raw_seq", seq);
        let failed = rows(&app, "failed_events", "raw_seq", seq);
        assert!(failed.is_empty(), "{name} failed: {failed:?}");

        let events = fixture_events(&text, content_type);
        assert_eq!(stored.len(), events.len(), "{name}: one row per event");
        for ((body, fields), row) in events.iter().zip(&stored) {
            assert_eq!(row["event_name"], body["eventName"], "{name}");
            let email = body.get("email").filter(|e| e.is_string()).or(fields.get("email"));
            assert_eq!(row["email"], email.cloned().unwrap_or(Value::Null), "{name}: email");
            let user_id = body.get("userId").filter(|u| u.is_string()).or(fields.get("userId"));
            assert_eq!(row["user_id"], user_id.cloned().unwrap_or(Value::Null), "{name}: user_id");
            assert_eq!(row["created_at"], expected_created_at(fields.get("createdAt")), "{name}");
            for &(column, key, kind) in PROMOTED {
                let expected = expected_promoted(column, key, kind, fields);
                assert_eq!(row[column], expected, "{name}: `{column}`");
            }
            let data: Value = serde_json::from_str(row["data"].as_str().unwrap()).unwrap();
            assert_eq!(data, Value::Object(fields.clone()), "{name}: data keeps every field");
        }

        let snapshot: Vec<_> = stored
            .iter()
            .map(|row| {
                let mut row = row.clone();
                row.insert("received_at".into(), "[received_at]".into());
                row.insert("raw_seq".into(), "[raw_seq]".into());
                row
            })
            .collect();
        insta::assert_json_snapshot!(name.clone(), snapshot);

        // Iterable's retry resends the same body: a new raw request, no new event.
        let events_before = app.count("SELECT count(*) FROM events");
        assert_eq!(app.post("/iterable/default", content_type, &text).await.status(), 200);
        assert_eq!(app.count("SELECT count(*) FROM events"), events_before, "{name}: resend");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn edge_cases_hold_the_documented_values() {
    let app = spawn_app().await;
    let post = |case: &'static str| {
        let app = &app;
        async move {
            let path = format!("{FIXTURES}/{case}");
            let kind = if case.ends_with(".form") {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let answer: Value =
                app.post("/iterable/default", kind, &text).await.json().await.unwrap();
            rows(app, "events", "raw_seq", answer["seq"].as_i64().unwrap())
        }
    };

    let nested_wins = post("emailOpen/flattened_and_nested.json").await;
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/emailOpen/flattened_and_nested.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(nested_wins[0]["campaign_id"], fixture["dataFields"]["campaignId"]);
    assert_ne!(nested_wins[0]["campaign_id"], fixture["campaignId"]);

    let utc = post("emailOpen/non_utc_offset.json").await;
    assert!(utc[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(utc[0]["created_at"], "2016-12-02T20:21:04Z");

    for case in
        ["emailSend/transactional_data_object.json", "emailSend/transactional_data_string.json"]
    {
        let row = post(case).await;
        let data: Value =
            serde_json::from_str(row[0]["transactional_data"].as_str().unwrap()).unwrap();
        assert!(data.is_object(), "{case}: transactionalData read as an object: {data}");
    }

    let unknown = post("customThing/unknown_event_name.json").await;
    assert_eq!(
        (unknown[0]["event_name"].as_str(), unknown[0]["family"].as_str()),
        (Some("customThing"), Some("other"))
    );

    let user_only = post("pushSend/user_id_only.json").await;
    assert_eq!(user_only[0]["email"], Value::Null);
    assert!(user_only[0]["user_id"].is_string());

    let subject = post("emailSend/long_unrendered_subject.json").await;
    assert!(subject[0]["email_subject"].as_str().unwrap().len() > 1800);

    let click = post("smsClick/clicked_url.json").await;
    assert_eq!(
        click[0]["url"],
        "https://www.example.com/sale/spring?utm_source=iterable&utm_medium=sms"
    );
    let bounce = post("smsBounce/provider_response_only.json").await;
    assert_eq!(
        bounce[0]["bounce_message"],
        "The 'To' number +15005550001 is not a valid phone number."
    );

    let three = post("emailOpen/array_of_three.json").await;
    assert_eq!(three.len(), 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn every_known_event_has_a_view_with_its_rows() {
    let app = spawn_app().await;
    for (path, content_type) in fixtures() {
        if path.file_name().is_some_and(|f| f == "basic.json") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(app.post("/iterable/default", content_type, &text).await.status(), 200);
        }
    }
    for event in hookhouse::iterable::KNOWN_EVENTS {
        let in_view = app.count(&format!("SELECT count(*) FROM {}", event.view));
        let in_events =
            app.count(&format!("SELECT count(*) FROM events WHERE event_name = '{}'", event.name));
        assert_eq!(in_view, in_events, "{}", event.view);
        let has_fixture = Path::new(FIXTURES).join(event.name).join("basic.json").exists();
        if has_fixture {
            assert_eq!(in_view, 1, "view `{}` shows its fixture", event.view);
        }
    }
    let sms: (String, String) = app
        .db()
        .query_row("SELECT to_phone_number, sms_message FROM sms_bounce", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(!sms.0.is_empty() && !sms.1.is_empty(), "{sms:?}");
    app.stop().await.unwrap();
}
