//! `GET /api/requests`: newest first, paged by `next_before`, and each filter alone and
//! combined, checked against the seqs the webhook port answered with.

use hookhouse::config::{SourceAuth, SourceConfig};
use serde_json::{Value, json};

use super::{Inspector, email_open, fixture, seqs_of, spawn_inspector};

/// An inspector with two open sources, `default` and `staging`.
async fn two_sources() -> Inspector {
    spawn_inspector(None, |config| {
        config.sources = vec![
            SourceConfig::new("default", SourceAuth::None),
            SourceConfig::new("staging", SourceAuth::None),
        ];
    })
    .await
}

#[tokio::test]
async fn the_list_is_newest_first_and_next_before_pages_through_it_without_gaps_or_repeats() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let mut posted = Vec::new();
    for n in 0..23 {
        posted.push(
            inspector
                .post_event("default", &email_open("ada@example.com", &format!("m-{n}")))
                .await,
        );
    }
    inspector.loaded();
    let newest_first: Vec<i64> = posted.iter().rev().copied().collect();

    // Pages of 5: 5, 5, 5, 5, 3, each starting below the last one's `next_before`.
    let mut before: Option<i64> = None;
    let mut pages = Vec::new();
    loop {
        let before_text = before.map(|b| b.to_string());
        let mut query = vec![("limit", "5")];
        if let Some(text) = &before_text {
            query.push(("before", text));
        }
        let page = inspector.page(&query).await;
        assert_eq!(page["last_seq"], *posted.last().unwrap(), "{page}");
        let seqs = seqs_of(&page);
        if let Some(before) = before {
            assert!(seqs.iter().all(|&s| s < before), "{seqs:?} after before={before}");
        }
        pages.push(seqs.clone());
        match page["next_before"].as_i64() {
            Some(next) => {
                assert_eq!(Some(&next), seqs.last(), "a full page goes on from its last seq");
                before = Some(next);
            }
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(pages.concat(), newest_first, "every request once, newest first");

    // The default page holds all 23; `after` lists only what came since.
    assert_eq!(seqs_of(&inspector.page(&[]).await), newest_first);
    let after = posted[19].to_string();
    assert_eq!(seqs_of(&inspector.page(&[("after", &after)]).await), &newest_first[..3]);
    let (lo, hi) = (posted[5].to_string(), posted[9].to_string());
    assert_eq!(
        seqs_of(&inspector.page(&[("after", &lo), ("before", &hi)]).await),
        [posted[8], posted[7], posted[6]]
    );

    // `limit` is kept within 1 and `max_page`; `before` past the start is an empty end.
    assert_eq!(seqs_of(&inspector.page(&[("limit", "0")]).await), &newest_first[..1]);
    assert_eq!(seqs_of(&inspector.page(&[("limit", "100000")]).await), newest_first);
    let first = posted[0].to_string();
    let empty = inspector.page(&[("before", &first)]).await;
    assert_eq!((seqs_of(&empty), &empty["next_before"]), (vec![], &Value::Null));

    // Each line says what the request was and what became of it.
    let page = inspector.page(&[("limit", "1")]).await;
    let line = &page["requests"][0];
    assert_eq!(line["seq"], posted[22]);
    assert_eq!(line["source"], "default");
    assert_eq!(line["kind"], "system");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/iterable/default");
    assert_eq!(line["content_type"], "application/json");
    assert_eq!(line["events"], json!([{"name": "emailOpen", "count": 1}]));
    assert_eq!(line["failures"], 0);
    assert_eq!(line["journey_call"], false);
    assert_eq!(line["who"], "ada@example.com");
    assert_eq!(line["outcome"], "events");
    assert!(line["received_at"].as_str().unwrap().ends_with('Z'), "{line}");
    inspector.stop().await;
}

/// `next_before` is `null` when nothing older matches, also when the last page is exactly
/// `limit` long (the query reads one row more than the page to tell).
#[tokio::test]
async fn a_last_page_exactly_full_has_no_next_before() {
    let inspector = spawn_inspector(None, |_| {}).await;
    for n in 0..4 {
        inspector.post_event("default", &email_open("ada@example.com", &format!("m-{n}"))).await;
    }
    inspector.loaded();
    let page = inspector.page(&[("limit", "4")]).await;
    assert_eq!(seqs_of(&page).len(), 4);
    assert_eq!(page["next_before"], Value::Null, "nothing older than the 4 requests: {page}");
    inspector.stop().await;
}

#[tokio::test]
async fn source_filter_lists_only_that_sources_requests() {
    let inspector = two_sources().await;
    let mut default = Vec::new();
    let mut staging = Vec::new();
    for n in 0..6 {
        let body = email_open("ada@example.com", &format!("m-{n}"));
        if n % 3 == 0 {
            staging.push(inspector.post_event("staging", &body).await);
        } else {
            default.push(inspector.post_event("default", &body).await);
        }
    }
    inspector.loaded();
    staging.reverse();
    default.reverse();
    assert_eq!(inspector.listed(&[("source", "staging")]).await, staging);
    assert_eq!(inspector.listed(&[("source", "default")]).await, default);
    assert_eq!(inspector.listed(&[("source", "staging"), ("limit", "1")]).await, staging);
    let page = inspector.page(&[("source", "staging")]).await;
    assert!(page["requests"].as_array().unwrap().iter().all(|r| r["source"] == "staging"));
    assert_eq!(inspector.listed(&[("source", "nobody")]).await, Vec::<i64>::new());
    // An empty parameter is no filter.
    assert_eq!(inspector.listed(&[("source", "")]).await.len(), 6);
    inspector.stop().await;
}

#[tokio::test]
async fn event_filter_lists_the_requests_that_brought_that_event() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let open = inspector.post_event("default", &email_open("ada@example.com", "m-1")).await;
    let send = inspector.post_event("default", &fixture("emailSend/basic.json")).await;
    let push = inspector.post_event("default", &fixture("pushSend/user_id_only.json")).await;
    let open2 = inspector.post_event("default", &email_open("bob@example.com", "m-2")).await;
    inspector.loaded();
    assert_eq!(inspector.listed(&[("event", "emailOpen")]).await, [open2, open]);
    assert_eq!(inspector.listed(&[("event", "emailSend")]).await, [send]);
    assert_eq!(inspector.listed(&[("event", "pushSend")]).await, [push]);
    assert_eq!(inspector.listed(&[("event", "smsSend")]).await, Vec::<i64>::new());
    let page = inspector.page(&[("event", "pushSend")]).await;
    assert_eq!(page["requests"][0]["events"], json!([{"name": "pushSend", "count": 1}]));
    inspector.stop().await;
}

#[tokio::test]
async fn email_and_user_filters_find_a_persons_events_and_journey_calls() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let lovelace = inspector.post_event("default", &fixture("emailSend/basic.json")).await;
    let ada = inspector.post_event("default", &email_open("ada@example.com", "m-1")).await;
    let by_id = inspector.post_event("default", &fixture("pushSend/user_id_only.json")).await;
    let ada_again = inspector.post_event("default", &email_open("ada@example.com", "m-2")).await;
    let call = inspector.journey("default", "welcome", "email=ada%40example.com&step=1").await;
    let by_id_call = inspector.journey("default", "welcome", "userId=user-7f3e91c2").await;
    inspector.loaded();

    assert_eq!(inspector.listed(&[("email", "ada@example.com")]).await, [call, ada_again, ada]);
    assert_eq!(inspector.listed(&[("email", "ada.lovelace@example.com")]).await, [lovelace]);
    assert_eq!(inspector.listed(&[("user", "user-7f3e91c2")]).await, [by_id_call, by_id]);
    // `email` and `user` are one filter: either finds either.
    assert_eq!(inspector.listed(&[("email", "user-7f3e91c2")]).await, [by_id_call, by_id]);
    assert_eq!(inspector.listed(&[("user", "ada.lovelace@example.com")]).await, [lovelace]);
    assert_eq!(inspector.listed(&[("email", "nobody@example.com")]).await, Vec::<i64>::new());
    // Exact, not a prefix.
    assert_eq!(inspector.listed(&[("email", "ada@example")]).await, Vec::<i64>::new());
    assert_eq!(inspector.listed(&[("email", "ada@example.com"), ("limit", "1")]).await.len(), 3);

    let page = inspector.page(&[("user", "user-7f3e91c2")]).await;
    let lines = page["requests"].as_array().unwrap();
    assert!(lines.iter().all(|r| r["who"] == "user-7f3e91c2"), "{page}");
    assert_eq!(lines[0]["journey_call"], true);
    assert_eq!(lines[0]["kind"], "journey");
    assert_eq!(lines[0]["journey"], "welcome");
    inspector.stop().await;
}

#[tokio::test]
async fn text_filter_matches_bytes_of_the_body_or_the_query_string() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let send = inspector.post_event("default", &fixture("emailSend/basic.json")).await;
    let open = inspector.post_event("default", &email_open("ada@example.com", "needle-7731")).await;
    let call =
        inspector.journey("default", "promo", "coupon=XYZ-4410&email=bob%40example.com").await;
    inspector.loaded();
    assert_eq!(inspector.listed(&[("q", "needle-7731")]).await, [open]);
    assert_eq!(inspector.listed(&[("q", "Spring sale: 20% off")]).await, [send]);
    assert_eq!(inspector.listed(&[("q", "XYZ-4410")]).await, [call], "the query string");
    // Bytes as stored, case and all.
    assert_eq!(inspector.listed(&[("q", "NEEDLE-7731")]).await, Vec::<i64>::new());
    assert_eq!(inspector.listed(&[("q", "campaignId")]).await, [open, send]);
    inspector.stop().await;
}

#[tokio::test]
async fn since_and_until_bound_the_list_by_time_received() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let mut posted = Vec::new();
    for n in 0..5 {
        posted.push(
            inspector
                .post_event("default", &email_open("ada@example.com", &format!("m-{n}")))
                .await,
        );
        // Distinct microseconds, so that each request has a time of its own.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    inspector.loaded();
    let page = inspector.page(&[]).await;
    let times: Vec<String> = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| r["received_at"].as_str().unwrap().to_owned())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");

    // Both bounds are inclusive.
    assert_eq!(inspector.listed(&[("since", &times[3])]).await, [posted[4], posted[3]]);
    assert_eq!(inspector.listed(&[("until", &times[1])]).await, [posted[1], posted[0]]);
    assert_eq!(
        inspector.listed(&[("since", &times[1]), ("until", &times[3])]).await,
        [posted[3], posted[2], posted[1]]
    );
    assert_eq!(inspector.listed(&[("since", &times[2]), ("until", &times[2])]).await, [posted[2]]);
    assert_eq!(inspector.listed(&[("since", "2100-01-01T00:00:00Z")]).await, Vec::<i64>::new());
    assert_eq!(inspector.listed(&[("until", "2000-01-01T00:00:00Z")]).await, Vec::<i64>::new());
    // Iterable's own spelling of a time is read as well.
    assert_eq!(inspector.listed(&[("since", "2000-01-01 00:00:00 +00:00")]).await.len(), 5);
    // An offset is a time like another: 2 hours ahead of UTC is the same instant.
    let (date, clock) = times[3].split_once('T').unwrap();
    let hour: u32 = clock[..2].parse().unwrap();
    if hour < 22 {
        let shifted = format!("{date}T{:02}{}+02:00", hour + 2, &clock[2..clock.len() - 1]);
        assert_eq!(inspector.listed(&[("since", &shifted)]).await, [posted[4], posted[3]]);
    }
    inspector.stop().await;
}

#[tokio::test]
async fn outcome_filters_events_failed_and_duplicate() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let first = email_open("ada@example.com", "m-dup");
    let original = inspector.post_event("default", &first).await;
    let other = inspector.post_event("default", &email_open("bob@example.com", "m-2")).await;
    let broken =
        inspector.post_event("default", r#"{"eventName": "emailOpen", "dataFields": {"#).await;
    let resent = inspector.post_event("default", &first).await;
    let no_name = inspector.post_event("default", r#"{"email":"a@x.io","dataFields":{}}"#).await;
    inspector.loaded();

    assert_eq!(inspector.listed(&[("outcome", "events")]).await, [other, original]);
    assert_eq!(inspector.listed(&[("outcome", "failed")]).await, [no_name, broken]);
    assert_eq!(inspector.listed(&[("outcome", "duplicate")]).await, [resent]);
    assert_eq!(inspector.listed(&[("outcome", "pending")]).await, Vec::<i64>::new());
    let outcomes: Vec<(i64, String)> = inspector.page(&[]).await["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["seq"].as_i64().unwrap(), r["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        (no_name, "failed"),
        (resent, "duplicate"),
        (broken, "failed"),
        (other, "events"),
        (original, "events"),
    ];
    let expected: Vec<(i64, String)> =
        expected.iter().map(|(s, o)| (*s, (*o).to_owned())).collect();
    assert_eq!(outcomes, expected);
    let failed = inspector.page(&[("outcome", "failed")]).await;
    assert!(failed["requests"].as_array().unwrap().iter().all(|r| r["failures"] == 1), "{failed}");
    inspector.stop().await;
}

/// `outcome=journey` reads `journey_calls` (its own index). It once answered 500: its
/// candidate query named its column differently from the others.
#[tokio::test]
async fn outcome_journey_lists_the_journey_calls() {
    let inspector = spawn_inspector(None, |_| {}).await;
    let first = inspector.journey("default", "welcome", "email=ada%40example.com").await;
    inspector.post_event("default", &email_open("ada@example.com", "m-1")).await;
    let second = inspector.journey("default", "winback", "email=bob%40example.com&step=3").await;
    inspector.loaded();
    let page = inspector.page(&[("outcome", "journey")]).await;
    assert_eq!(seqs_of(&page), [second, first]);
    let line = &page["requests"][0];
    assert_eq!(line["outcome"], "journey");
    assert_eq!(line["kind"], "journey");
    assert_eq!(line["journey"], "winback");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["who"], "bob@example.com");
    assert_eq!(line["events"], json!([]));
    inspector.stop().await;
}

#[tokio::test]
async fn filters_combine() {
    let inspector = two_sources().await;
    let a = inspector.post_event("staging", &email_open("ada@example.com", "combo-1")).await;
    let _other_source =
        inspector.post_event("default", &email_open("ada@example.com", "combo-2")).await;
    let _other_person =
        inspector.post_event("staging", &email_open("bob@example.com", "combo-3")).await;
    let _other_event = inspector.post_event("staging", &fixture("emailSend/basic.json")).await;
    let b = inspector.post_event("staging", &email_open("ada@example.com", "combo-4")).await;
    let _dup = inspector.post_event("staging", &email_open("ada@example.com", "combo-4")).await;
    inspector.loaded();
    let staging_ada = [("source", "staging"), ("email", "ada@example.com")];
    // A person's requests are those that brought their events: b's resend brought none.
    assert_eq!(inspector.listed(&staging_ada).await, [b, a]);
    let mut query = staging_ada.to_vec();
    query.push(("event", "emailOpen"));
    assert_eq!(inspector.listed(&query).await, [b, a]);
    query.push(("q", "combo-1"));
    assert_eq!(inspector.listed(&query).await, [a]);
    query.push(("outcome", "events"));
    assert_eq!(inspector.listed(&query).await, [a]);
    let query = [("source", "staging"), ("event", "emailOpen"), ("outcome", "events")];
    assert_eq!(inspector.listed(&query).await.len(), 3, "a, bob's and b");
    let query = [("source", "default"), ("event", "emailSend")];
    assert_eq!(inspector.listed(&query).await, Vec::<i64>::new());
    inspector.stop().await;
}

/// `outcome=failed` (read from `failed_events`' index) combines with the filters applied to
/// each candidate. It once answered 500: the candidates' count was given every filter's value.
#[tokio::test]
async fn outcome_failed_combines_with_source() {
    let inspector = spawn_inspector(None, |config| {
        config.sources = vec![
            SourceConfig::new("default", SourceAuth::None),
            SourceConfig::new("staging", SourceAuth::None),
        ];
    })
    .await;
    let broken = r#"{"eventName": "emailOpen", "dataFields": {"#;
    let staging = inspector.post_event("staging", broken).await;
    inspector.post_event("default", broken).await;
    inspector.loaded();
    assert_eq!(inspector.listed(&[("outcome", "failed"), ("source", "staging")]).await, [staging]);
    assert_eq!(inspector.listed(&[("outcome", "failed"), ("q", "emailOpen")]).await.len(), 2);
    inspector.stop().await;
}

/// A pseudonymising source keeps a digest in place of the address: the filter, given the
/// address, finds its requests all the same (and never shows the address it was not given).
#[tokio::test]
async fn the_person_filter_finds_a_pseudonymised_address() {
    let key = hookhouse::pipeline::PseudonymKey::new(secrecy::SecretString::from(
        "pseudonym-key-0123456789".to_owned(),
    ));
    let inspector = spawn_inspector(None, |config| {
        config.sources[0].pseudonymise = Some(key);
    })
    .await;
    let seq = inspector.post_event("default", &email_open("ada@example.com", "m-hidden")).await;
    inspector.post_event("default", &email_open("bob@example.com", "m-other")).await;
    inspector.loaded();
    let page = inspector.page(&[("email", "ada@example.com")]).await;
    assert_eq!(seqs_of(&page), [seq]);
    let who = page["requests"][0]["who"].as_str().unwrap();
    assert_ne!(who, "ada@example.com", "the store holds a digest, shown as it is");
    assert!(seqs_of(&inspector.page(&[("email", "carol@example.com")]).await).is_empty());
    inspector.stop().await;
}
