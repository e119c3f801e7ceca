//! Pseudonymisation and dropped raw bodies through the HTTP port: no plaintext email, phone
//! number or IP address in any byte of the store, in any case or percent-encoding, nor in the
//! kept headers; stable digests per key, different digests across keys, failed requests kept
//! whole, a replay that needs the key, and bodies made of 75,000 addresses that neither take
//! long nor stop `/healthz` answering.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestApp, spawn_app_with};
use hmac::{Hmac, Mac};
use hookhouse::config::{SourceAuth, SourceConfig};
use hookhouse::pipeline::PseudonymKey;
use hookhouse::sinks::sqlite::replay::{ReplayError, replay};
use hookhouse::spool::Selection;
use secrecy::SecretString;
use sha2::Sha256;

const KEY_A: &str = "pseudonym-key-a-0123456789abcdef";
const KEY_B: &str = "pseudonym-key-b-0123456789abcdef";

const EMAIL: &str = "grace.hopper@example.com";
const TO_PHONE: &str = "+16175550143";
const FROM_PHONE: &str = "+14155550100";
const PHONE: &str = "15557654321";
const IP: &str = "198.51.100.23";

/// Computed here independently of hookhouse: the hex HMAC-SHA256 of `text` under `key`.
fn hmac_hex(key: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn key(text: &str) -> PseudonymKey {
    PseudonymKey::new(SecretString::from(text.to_owned()))
}

fn private_source(name: &str, key_text: &str, drop_raw_bodies: bool) -> SourceConfig {
    SourceConfig {
        pseudonymise: Some(key(key_text)),
        drop_raw_bodies,
        ..SourceConfig::new(name, SourceAuth::None)
    }
}

fn email_click(message_id: &str) -> String {
    format!(
        r#"{{"email":"{EMAIL}","eventName":"emailClick","dataFields":{{"email":"{EMAIL}",
        "createdAt":"2024-03-08 18:30:12 +00:00","campaignId":7,"messageId":"{message_id}",
        "emailId":"c7:t9:{EMAIL}","ip":"{IP}","url":"https://shop.example/?u={EMAIL}",
        "city":"Arlington"}}}}"#
    )
}

fn sms_send() -> String {
    format!(
        r#"{{"email":"{EMAIL}","eventName":"smsSend","dataFields":{{"createdAt":"2024-03-08 18:31:00 +00:00",
        "toPhoneNumber":"{TO_PHONE}","fromPhoneNumber":"{FROM_PHONE}","phoneNumber":{PHONE},
        "smsMessage":"Your order has shipped","messageId":"sms-1"}}}}"#
    )
}

async fn post(app: &TestApp, source: &str, body: &str) -> u16 {
    app.post(&format!("/iterable/{source}"), "application/json", body).await.status().as_u16()
}

/// Whether any file of the data directory (database, WAL, shared memory) holds `needle`.
fn stored_anywhere(app: &TestApp, needle: &str) -> bool {
    std::fs::read_dir(app.data_dir.path()).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
    })
}

/// [`stored_anywhere`] in any ASCII case.
fn stored_in_any_case(app: &TestApp, needle: &str) -> bool {
    std::fs::read_dir(app.data_dir.path()).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    })
}

#[tokio::test]
async fn no_plaintext_personal_value_reaches_any_byte_of_the_store() {
    let app = spawn_app_with(|c| c.sources = vec![private_source("private", KEY_A, true)]).await;
    assert_eq!(post(&app, "private", &email_click("m-1")).await, 200);
    assert_eq!(post(&app, "private", &email_click("m-1")).await, 200, "a resend");
    assert_eq!(post(&app, "private", &email_click("m-2")).await, 200);
    assert_eq!(post(&app, "private", &sms_send()).await, 200);
    let journey = format!("/iterable/private/journey/welcome?email={EMAIL}&ip={IP}");
    assert_eq!(app.post(&journey, "application/json", "{}").await.status(), 200);
    // Nothing in this body can be normalised, so it is kept whole for a later replay.
    let broken = r#"{"eventName": "emailOpen", "dataFields": oops"#;
    assert_eq!(post(&app, "private", broken).await, 200);

    for plain in [EMAIL, TO_PHONE, FROM_PHONE, PHONE, IP] {
        assert!(!stored_anywhere(&app, plain), "`{plain}` is in the store while serving");
    }
    let db = app.db();
    let email_digest = hmac_hex(KEY_A, EMAIL);
    let (email, ip, email_id): (String, String, String) = db
        .query_row(
            "SELECT email, ip, json_extract(data, '$.emailId') FROM events \
             WHERE event_name = 'emailClick' AND message_id = 'm-2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(email, email_digest);
    assert_eq!(ip, hmac_hex(KEY_A, IP));
    assert_eq!(email_id, format!("c7:t9:{email_digest}"));
    let (to, from, phone): (String, String, String) = db
        .query_row(
            "SELECT to_phone_number, from_phone_number, json_extract(data, '$.phoneNumber') \
             FROM events WHERE event_name = 'smsSend'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(to, hmac_hex(KEY_A, TO_PHONE));
    assert_eq!(from, hmac_hex(KEY_A, FROM_PHONE));
    assert_eq!(phone, hmac_hex(KEY_A, PHONE), "a number is hashed in its JSON spelling");
    let journey_email: String =
        db.query_row("SELECT email FROM journey_calls", [], |r| r.get(0)).unwrap();
    assert_eq!(journey_email, email_digest);

    // Same input, same digest: both clicks carry one email digest; the resend added no row.
    assert_eq!(app.count("SELECT count(DISTINCT email) FROM events"), 1);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_name = 'emailClick'"), 2);
    // Dropped: every request whose parts all became rows. Kept: the one that failed.
    assert_eq!(
        app.count("SELECT count(*) FROM raw_requests WHERE body_dropped = 1 AND length(body) = 0"),
        5
    );
    let kept: Vec<u8> = db
        .query_row("SELECT body FROM raw_requests WHERE body_dropped = 0", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, broken.as_bytes(), "a failed request keeps its body");
    assert_eq!(app.count("SELECT count(*) FROM failed_events"), 1);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests WHERE pseudonymised = 1"), 6);
    drop(db);

    let dir = app.stop().await.unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for plain in [EMAIL, TO_PHONE, FROM_PHONE, PHONE, IP] {
            assert!(!bytes.windows(plain.len()).any(|w| w == plain.as_bytes()), "`{plain}`");
        }
    }
}

#[tokio::test]
async fn another_key_gives_other_digests_and_replay_needs_the_key() {
    let app = spawn_app_with(|c| {
        c.sources = vec![private_source("a", KEY_A, false), private_source("b", KEY_B, false)]
    })
    .await;
    let body = email_click("m-1");
    assert_eq!(post(&app, "a", &body).await, 200);
    assert_eq!(post(&app, "b", &body).await, 200);
    let email_of = |source: &str| -> String {
        app.db()
            .query_row("SELECT email FROM events WHERE source = ?1", [source], |r| r.get(0))
            .unwrap()
    };
    let (a, b) = (email_of("a"), email_of("b"));
    assert_eq!(a, hmac_hex(KEY_A, EMAIL));
    assert_eq!(b, hmac_hex(KEY_B, EMAIL));
    assert_ne!(a, b);
    // Bodies kept (no `drop_raw_bodies`): the raw row still holds what Iterable sent.
    assert_eq!(app.count("SELECT count(*) FROM raw_requests WHERE body_dropped = 0"), 2);
    let ids_before = app.count("SELECT count(DISTINCT event_id) FROM events");
    let dir = app.stop().await.unwrap();
    let db_path = dir.path().join("hookhouse.db");

    // Without the keys a replay would write the addresses in plain: it refuses instead.
    let refused = replay(&db_path, &Selection::All, &HashMap::new(), |_, _| {});
    assert!(
        matches!(&refused, Err(ReplayError::MissingKey(missing)) if missing.seq == 1),
        "{refused:?}"
    );
    let keys = HashMap::from([("a".to_owned(), key(KEY_A)), ("b".to_owned(), key(KEY_B))]);
    let report = replay(&db_path, &Selection::All, &keys, |_, _| {}).unwrap();
    assert_eq!(report.requests, 2);
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let emails: Vec<String> = db
        .prepare("SELECT email FROM events ORDER BY source")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(emails, [a, b], "replay under the same keys gives the same digests");
    let ids_after: i64 =
        db.query_row("SELECT count(DISTINCT event_id) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(ids_after, ids_before);
}

#[tokio::test]
async fn encoded_and_recased_addresses_and_kept_headers_are_hidden_too() {
    const ADA: &str = "Ada.Lovelace@example.com";
    let app = spawn_app_with(|c| {
        c.sources = vec![private_source("private", KEY_A, true)];
        // Not kept by default; a user may add it, and then it carries the address.
        c.store.keep_headers.push("referer".to_owned());
    })
    .await;
    let body = format!(
        r#"{{"email":"{ADA}","eventName":"emailClick","dataFields":{{"email":"{ADA}",
        "createdAt":"2024-03-08 18:30:12 +00:00","messageId":"m-enc",
        "url":"https://shop.example/?e=Ada.Lovelace%40example.com",
        "linkUrl":"https://shop.example/welcome?u=ADA.LOVELACE@EXAMPLE.COM&p=%2B16175550143",
        "toPhoneNumber":"{TO_PHONE}"}}}}"#
    );
    let response = app
        .client
        .post(app.url("/iterable/private"))
        .header("content-type", "application/json")
        .header("referer", "https://mail.example/open?to=ada.lovelace%40example.com")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let spellings = ["ada.lovelace@example.com", "ada.lovelace%40example.com", "16175550143"];
    for plain in spellings {
        assert!(!stored_in_any_case(&app, plain), "`{plain}` is in the store while serving");
    }
    let (email, phone) = (hmac_hex(KEY_A, ADA), hmac_hex(KEY_A, TO_PHONE));
    let (url, link_url, headers): (String, String, String) = app
        .db()
        .query_row(
            "SELECT e.url, e.link_url, r.headers FROM events e JOIN raw_requests r ON r.seq = e.raw_seq",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Every spelling gets the digest of the address as found under `email`, so they join.
    assert_eq!(url, format!("https://shop.example/?e={email}"));
    assert_eq!(link_url, format!("https://shop.example/welcome?u={email}&p={phone}"));
    let headers: serde_json::Value = serde_json::from_str(&headers).unwrap();
    assert_eq!(headers["referer"], format!("https://mail.example/open?to={email}"));

    let dir = app.stop().await.unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for plain in spellings {
            assert!(!bytes.windows(plain.len()).any(|w| w.eq_ignore_ascii_case(plain.as_bytes())));
        }
    }
}

/// About 975 KB: one click whose `email` holds 75,000 distinct addresses (the quadratic case of
/// a naive replacement), and a URL that embeds the last of them.
fn many_addresses(message_id: &str) -> String {
    let emails: Vec<String> = (0..75_000).map(|i| format!(r#""{i}@x.io""#)).collect();
    format!(
        r#"{{"eventName":"emailClick","email":[{}],"dataFields":{{"messageId":"{message_id}",
        "createdAt":"2024-03-08 18:30:12 +00:00","url":"https://shop.example/?u=74999%40x.io"}}}}"#,
        emails.join(",")
    )
}

/// A runtime of its own for the server, with two workers as on the machines it runs on, so a
/// server that blocks its workers cannot also stop the test that measures it. Dropped without
/// waiting for them: a blocked one would hold a failing test for minutes.
struct ServerRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[tokio::test]
async fn bodies_of_many_addresses_are_stored_while_healthz_keeps_answering() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = ServerRuntime(Some(runtime));
    let spawned = server.0.as_ref().unwrap().spawn(spawn_app_with(|c| {
        c.sources = vec![private_source("private", KEY_A, true)];
    }));
    let app = spawned.await.unwrap();
    let bodies: Vec<String> = (0..4).map(|i| many_addresses(&format!("m-{i}"))).collect();
    assert!(bodies.iter().all(|body| (900_000..1_048_576).contains(&body.len())));
    let started = Instant::now();
    let posts = bodies.into_iter().map(|body| {
        let (client, url) = (app.client.clone(), app.url("/iterable/private"));
        tokio::spawn(async move {
            let response = client.post(url).header("content-type", "application/json").body(body);
            response.send().await.unwrap().status().as_u16()
        })
    });
    let posts: Vec<_> = posts.collect();
    // Polled until every post is answered (at most 60 s, so a server that stalls fails here
    // rather than hanging).
    let mut slowest = Duration::ZERO;
    while !posts.iter().all(|post| post.is_finished())
        && started.elapsed() < Duration::from_secs(60)
    {
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), app.get("/healthz")).await;
        slowest = slowest.max(asked.elapsed());
        assert!(answer.is_ok_and(|answer| answer.status() == 200), "healthz did not answer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), 200, "after {:?}", started.elapsed());
    }
    let stored_in = started.elapsed();
    println!("4 posts stored in {stored_in:?}; slowest /healthz {slowest:?}");
    // Each body's pseudonymisation takes about half the whole (four bodies on two threads), so
    // a runtime blocked by one would keep /healthz waiting that long. An eighth of the whole
    // catches that, and grows with it on a busy shared machine, where everything is slower.
    assert!(slowest < stored_in / 8, "/healthz took {slowest:?} of {stored_in:?}");
    assert_eq!(app.count("SELECT count(*) FROM events"), 4);
    let url: String =
        app.db().query_row("SELECT url FROM events LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(url, format!("https://shop.example/?u={}", hmac_hex(KEY_A, "74999@x.io")));
    assert!(!stored_anywhere(&app, "74999@x.io"));
    app.stop().await.unwrap();
    drop(server);
}
