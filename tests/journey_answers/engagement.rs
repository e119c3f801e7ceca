//! The built-in `engagement` answer, computed from events posted in the test through the system
//! webhook of other sources: its ten fields, exactly and with their types, who the call is
//! about (email, else userId; query string or body), and `from_sources`.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::TestApp;
use super::{
    SOURCES, answer_status, ask, ask_json, days_ago, event, iterable_date, now, post_event,
    spawn_toml, token,
};

const ADA: &str = "ada@example.com";
const GRACE: &str = "grace@example.com";
const URL_A: &str = "https://www.example.com/a?utm_source=iterable";
const URL_B: &str = "https://www.example.com/b";
const LINK_G: &str = "https://www.example.com/grace-link";

fn config() -> String {
    format!("{SOURCES}\n[[sources.journeys]]\nname = \"engagement\"\nanswer = \"engagement\"\n")
}

/// What a user nobody has heard of gets: every field, zero, `false` or `null`.
fn nothing_known() -> Value {
    json!({
        "emailOpens30d": 0, "emailClicks30d": 0, "smsClicks30d": 0, "pushOpens30d": 0,
        "lastOpenAt": null, "lastClickAt": null, "lastClickUrl": null,
        "hardBounced": false, "complained": false, "unsubscribed": false,
    })
}

/// Posts every event to `default`, in an order unlike their `createdAt` order (the answer goes
/// by `createdAt`), waits for the embedded sink to load them, and returns the answers expected
/// for Ada and for Grace.
async fn post_history(app: &TestApp) -> (Value, Value) {
    let newest_open = days_ago(1) - Duration::hours(2);
    let newest_click = days_ago(5);
    let grace_old_open = days_ago(31);
    let grace_click = days_ago(4);
    let events = [
        event(ADA, "emailOpen", days_ago(3), json!({})),
        event(ADA, "emailOpen", newest_open, json!({})),
        event(ADA, "emailOpen", days_ago(2), json!({})),
        // Outside the window, and posted last: neither counted nor the newest.
        event(ADA, "emailOpen", days_ago(40), json!({})),
        event(ADA, "emailClick", days_ago(10), json!({"url": URL_B, "linkUrl": URL_B})),
        event(ADA, "emailClick", newest_click, json!({"url": URL_A, "linkUrl": "https://x.io/l"})),
        event(ADA, "emailClick", days_ago(50), json!({"url": "https://www.example.com/old"})),
        // Newer than every email click: an SMS click is not the last email click.
        event(ADA, "smsClick", now() - Duration::hours(1), json!({"url": "https://sms.io/s"})),
        event(ADA, "pushOpen", days_ago(6), json!({})),
        event(ADA, "pushOpen", days_ago(35), json!({})),
        event(ADA, "emailBounce", days_ago(7), json!({"recipientState": "HardBounce"})),
        event(ADA, "emailComplaint", days_ago(8), json!({"recipientState": "Complaint"})),
        event(ADA, "emailUnSubscribe", days_ago(9), json!({"unsubSource": "EmailLink"})),
        event(ADA, "emailSubscribe", days_ago(20), json!({"signupSource": "WebForm"})),
        event(GRACE, "emailBounce", days_ago(3), json!({"recipientState": "SoftBounce"})),
        event(GRACE, "emailSubscribe", days_ago(2), json!({"signupSource": "WebForm"})),
        event(GRACE, "emailUnSubscribe", days_ago(20), json!({"unsubSource": "EmailLink"})),
        event(GRACE, "emailOpen", grace_old_open, json!({})),
        // No `url`: the click's `linkUrl` is its URL.
        event(GRACE, "emailClick", grace_click, json!({"linkUrl": LINK_G})),
        event(GRACE, "pushOpen", days_ago(29), json!({})),
        // Events of no interest to the answer.
        event(GRACE, "emailSend", days_ago(1), json!({})),
        event(GRACE, "smsSend", days_ago(1), json!({})),
    ];
    for body in &events {
        post_event(app, "default", body).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM events"), events.len() as i64);
    let ada = json!({
        "emailOpens30d": 3, "emailClicks30d": 2, "smsClicks30d": 1, "pushOpens30d": 1,
        "lastOpenAt": iterable_date(newest_open),
        "lastClickAt": iterable_date(newest_click),
        "lastClickUrl": URL_A,
        "hardBounced": true, "complained": true, "unsubscribed": true,
    });
    let grace = json!({
        "emailOpens30d": 0, "emailClicks30d": 1, "smsClicks30d": 0, "pushOpens30d": 1,
        "lastOpenAt": iterable_date(grace_old_open),
        "lastClickAt": iterable_date(grace_click),
        "lastClickUrl": LINK_G,
        "hardBounced": false, "complained": false, "unsubscribed": false,
    });
    (ada, grace)
}

#[tokio::test]
async fn the_engagement_answer_is_the_users_ten_fields_exactly() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    let (ada, grace) = post_history(&app).await;

    let (answer, seq) = ask(&app, &token, "engagement?email=ada%40example.com").await.ok();
    assert_eq!(answer, ada);
    assert_eq!(answer_status(&app, seq), (Some(200), Some(200)));
    let (answer, _) = ask(&app, &token, "engagement?email=grace%40example.com").await.ok();
    assert_eq!(answer, grace);
    let (answer, _) = ask(&app, &token, "engagement?email=nobody%40example.com").await.ok();
    assert_eq!(answer, nothing_known());
    let (answer, _) = ask(&app, &token, "engagement?userId=nobody-at-all").await.ok();
    assert_eq!(answer, nothing_known());

    // The user from the body: its top level, or its dataFields, as Iterable renders them.
    let (answer, _) = ask_json(&app, &token, "engagement", &json!({"email": ADA})).await.ok();
    assert_eq!(answer, ada);
    let in_data_fields = json!({"dataFields": {"email": GRACE, "plan": "pro"}});
    let (answer, _) = ask_json(&app, &token, "engagement", &in_data_fields).await.ok();
    assert_eq!(answer, grace);
    let form = app
        .client
        .post(app.url("/iterable/journeys/journey/engagement"))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ada%40example.com&step=2")
        .send()
        .await
        .unwrap();
    assert_eq!(super::Reply::of(form).await.ok().0, ada);
    app.stop().await.unwrap();
}

/// A body of `event_name` for a user of a user-id project: no email anywhere.
fn user_id_event(user_id: &str, event_name: &str, at: DateTime<Utc>) -> Value {
    let mut body = event("unused@example.com", event_name, at, json!({}));
    let object = body.as_object_mut().unwrap();
    object.remove("email");
    object.insert("userId".into(), json!(user_id));
    body["dataFields"].as_object_mut().unwrap().remove("email");
    body
}

#[tokio::test]
async fn a_user_is_found_by_user_id_and_email_wins_over_it() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    let (_, grace) = post_history(&app).await;
    let newest = days_ago(1);
    for body in [
        user_id_event("u-77", "emailOpen", days_ago(2)),
        user_id_event("u-77", "emailOpen", newest),
        user_id_event("u-77", "emailComplaint", days_ago(3)),
        user_id_event("u-78", "emailOpen", now()),
    ] {
        post_event(&app, "default", &body).await;
    }
    app.db();

    let (answer, _) = ask(&app, &token, "engagement?userId=u-77").await.ok();
    let expected = json!({
        "emailOpens30d": 2, "emailClicks30d": 0, "smsClicks30d": 0, "pushOpens30d": 0,
        "lastOpenAt": iterable_date(newest), "lastClickAt": null, "lastClickUrl": null,
        "hardBounced": false, "complained": true, "unsubscribed": false,
    });
    assert_eq!(answer, expected);

    let (answer, _) =
        ask(&app, &token, "engagement?userId=u-77&email=grace%40example.com").await.ok();
    assert_eq!(answer, grace, "email wins over userId");
    let body = json!({"userId": "u-77", "dataFields": {"userId": "u-77"}});
    let (answer, _) = ask_json(&app, &token, "engagement", &body).await.ok();
    assert_eq!(answer["emailOpens30d"], 2, "{answer}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_naming_no_user_is_answered_400_and_still_stored() {
    let app = spawn_toml(&config()).await;
    let token = token(&app).await;
    let reply = ask(&app, &token, "engagement?step=2").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{:?}", reply.body);
    let seq = reply.seq.expect("Hookhouse-Seq on a 400 answer");
    assert_eq!(answer_status(&app, seq), (Some(400), Some(400)));
    let body = json!({"dataFields": {"plan": "pro"}});
    let reply = ask_json(&app, &token, "engagement", &body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("SELECT count(*) FROM journey_calls WHERE answer_status = 400"), 2);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn from_sources_limits_which_sources_events_count() {
    let app = spawn_toml(
        "[[sources]]\nname = \"default\"\n\n[[sources]]\nname = \"eu\"\n\n\
         [[sources]]\nname = \"journeys\"\nauth = \"oauth2\"\n\
         [[sources.clients]]\nid = \"iterable-prod\"\nsecret = \"prod-secret-0123456789abcdef\"\n\
         [[sources.journeys]]\nname = \"everywhere\"\nanswer = \"engagement\"\n\
         [[sources.journeys]]\nname = \"eu-only\"\nanswer = \"engagement\"\n\
         from_sources = [\"eu\"]\n\
         [[sources.journeys]]\nname = \"both\"\nanswer = \"engagement\"\n\
         from_sources = [\"default\", \"eu\"]\n",
    )
    .await;
    let token = token(&app).await;
    let newest = days_ago(1);
    let in_eu = days_ago(4);
    post_event(&app, "default", &event(ADA, "emailOpen", newest, json!({}))).await;
    post_event(&app, "default", &event(ADA, "emailOpen", days_ago(2), json!({}))).await;
    let bounce = json!({"recipientState": "HardBounce"});
    post_event(&app, "default", &event(ADA, "emailBounce", days_ago(2), bounce)).await;
    post_event(&app, "eu", &event(ADA, "emailOpen", in_eu, json!({}))).await;
    let click = json!({"url": URL_A});
    post_event(&app, "eu", &event(ADA, "emailClick", days_ago(3), click)).await;
    app.db();

    let field = |answer: &Value, name: &str| answer[name].clone();
    let (all, _) = ask(&app, &token, "everywhere?email=ada%40example.com").await.ok();
    let (eu, _) = ask(&app, &token, "eu-only?email=ada%40example.com").await.ok();
    let (both, _) = ask(&app, &token, "both?email=ada%40example.com").await.ok();
    assert_eq!(all, both);
    assert_eq!(field(&all, "emailOpens30d"), 3);
    assert_eq!(field(&all, "lastOpenAt"), iterable_date(newest));
    assert_eq!(field(&all, "hardBounced"), true);
    assert_eq!(field(&eu, "emailOpens30d"), 1, "{eu}");
    assert_eq!(field(&eu, "lastOpenAt"), iterable_date(in_eu));
    assert_eq!(field(&eu, "hardBounced"), false, "the bounce came through `default`");
    assert_eq!(field(&eu, "emailClicks30d"), 1);
    assert_eq!(field(&eu, "lastClickUrl"), URL_A);
    assert_eq!(eu.as_object().unwrap().len(), 10, "{eu}");
    app.stop().await.unwrap();
}
