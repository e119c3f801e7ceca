//! Properties of the pipeline that must hold for every input, not only the fixtures: the
//! normaliser never panics and accounts for every part of a request, an event's id ignores key
//! order, whitespace and string escapes but not its source, and normalising a request again (a
//! replay, or Iterable's resend of the same body) gives the same rows.
//!
//! Failures are not persisted to `proptest-regressions/`: proptest prints the shrunk input, which
//! belongs in a named unit test next to the fix.

use bytes::Bytes;
use chrono::DateTime;
use hookhouse::pipeline::{ContentKind, EventId, Outcome, normalise};
use hookhouse::request::SNOWPLOW_PATH;
use hookhouse::request::{RawRequest, RequestKind, sha256_hex};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

const SYSTEM_PATH: &str = "/iterable/default";
const JOURNEY_PATH: &str = "/iterable/default/journey/welcome";

/// 256 cases per property keep the whole file to a few seconds in a debug build.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Requests

fn request(
    method: &str,
    path: &str,
    query: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
) -> RawRequest {
    RawRequest {
        received_at: DateTime::from_timestamp(1_712_487_601, 0).expect("a valid time"),
        source: "default".to_owned(),
        kind: RequestKind::of_path(path),
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers_json: "{}".to_owned(),
        remote_addr: Some("127.0.0.1".to_owned()),
        peer_addr: None,
        content_type,
        body_sha256: sha256_hex(&body),
        body: Bytes::from(body),
    }
}

/// How many events plus failures a request on a non-journey path must produce: one per element
/// of a non-empty JSON array, else one (an event, or a failure saying why not).
fn expected_parts(request: &RawRequest) -> usize {
    if request.path == SNOWPLOW_PATH && request.method == "GET" && request.body.is_empty() {
        return 1;
    }
    match ContentKind::of(request.content_type.as_deref()) {
        ContentKind::Json => match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Array(items)) if !items.is_empty() => items.len(),
            _ => 1,
        },
        ContentKind::Form | ContentKind::Unsupported => 1,
    }
}

/// Normalises `request` and checks that nothing in it was dropped or doubled.
fn normalise_and_account(request: &RawRequest) -> Result<Outcome, TestCaseError> {
    let outcome = normalise(request);
    if request.path == JOURNEY_PATH {
        prop_assert!(outcome.events.is_empty(), "a journey call made events");
        prop_assert_eq!(outcome.journey_calls.len() + outcome.failures.len(), 1);
    } else {
        prop_assert!(outcome.journey_calls.is_empty(), "a system webhook made a journey call");
        prop_assert_eq!(outcome.events.len() + outcome.failures.len(), expected_parts(request));
    }
    for event in &outcome.events {
        prop_assert_eq!(event.event_id.as_str().len(), 42);
        prop_assert_eq!(&event.source, &request.source);
        prop_assert!(!event.event_name.trim().is_empty());
    }
    Ok(outcome)
}

fn arb_method() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just("POST"), 3 => Just("GET"), 1 => Just("PUT")]
}

fn arb_path() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(SYSTEM_PATH), Just(SNOWPLOW_PATH), Just(JOURNEY_PATH)]
}

fn arb_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("Application/JSON; charset=UTF-8".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        Just(Some(String::new())),
        any::<String>().prop_map(Some),
    ]
}

/// A query string: none, arbitrary text (stored as received, so possibly malformed), or the
/// Snowplow shape with control parameters and event fields.
fn arb_query() -> impl Strategy<Value = Option<String>> {
    let field = prop_oneof![
        Just("eventName".to_owned()),
        Just("email".to_owned()),
        Just("userId".to_owned()),
        Just("campaignId".to_owned()),
        Just("createdAt".to_owned()),
        Just("isBot".to_owned()),
        Just("emailListIds".to_owned()),
        any::<String>(),
    ];
    let value = prop_oneof![
        Just("emailOpen".to_owned()),
        arb_iterable_time(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<String>(),
    ];
    let snowplow = (
        any::<bool>(),
        option::of(prop_oneof![Just("shop".to_owned()), any::<String>()]),
        option::of(prop_oneof![Just("web".to_owned()), Just(String::new()), any::<String>()]),
        vec((field, value), 0..6),
    )
        .prop_map(|(schema, aid, platform, fields)| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if schema {
                query.append_pair("schema", "iglu:com.iterable/system_webhook/jsonschema/1-0-0");
            }
            if let Some(aid) = aid {
                query.append_pair("aid", &aid);
            }
            if let Some(platform) = platform {
                query.append_pair("p", &platform);
            }
            for (key, value) in &fields {
                query.append_pair(key, value);
            }
            Some(query.finish())
        });
    prop_oneof![2 => Just(None), 1 => any::<String>().prop_map(Some), 3 => snowplow]
}

// ---------------------------------------------------------------------------------------------
// JSON values

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-1.0e6..1.0e6f64).prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

/// Any JSON value: scalars (unicode strings, finite floats) nested in arrays and objects.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        any::<String>().prop_map(Value::String),
        "[a-z]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(arb_key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("eventName".to_owned()),
        Just("dataFields".to_owned()),
        Just("email".to_owned()),
        "[a-zA-Z]{1,10}",
        any::<String>(),
    ]
}

/// A timestamp as Iterable writes it (`2016-12-02 20:21:04 +00:00`), any offset, including
/// times before 1970 and in the far future.
fn arb_iterable_time() -> impl Strategy<Value = String> {
    (-62_135_596_800i64..253_402_300_799, -14 * 60..=14 * 60i32, any::<bool>()).prop_map(
        |(seconds, offset_minutes, fraction)| {
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("in range");
            let time =
                DateTime::from_timestamp(seconds, 0).expect("in range").with_timezone(&offset);
            let format =
                if fraction { "%Y-%m-%d %H:%M:%S%.3f %:z" } else { "%Y-%m-%d %H:%M:%S %:z" };
            time.format(format).to_string()
        },
    )
}

fn arb_created_at() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => arb_iterable_time().prop_map(Value::String),
        1 => arb_iterable_time().prop_map(|t| Value::String(format!("  {t}\n"))),
        1 => (0i64..4_102_444_800).prop_map(|s| {
            Value::String(DateTime::from_timestamp(s, 0).expect("in range").to_rfc3339())
        }),
        1 => (0i64..4_102_444_800).prop_map(Value::from),
        1 => (0i64..4_102_444_800_000).prop_map(Value::from),
        1 => (0i64..4_102_444_800_000).prop_map(|ms| Value::String(ms.to_string())),
        1 => prop_oneof![
            Just("yesterday"),
            Just(""),
            Just("2016-13-45 25:61:61 +00:00"),
            Just("2016-12-02 20:21:04"),
            Just("0000-01-01T00:00:00+01:00"),
            Just("+262143-12-31T23:59:59Z"),
        ]
        .prop_map(Value::from),
        1 => any::<String>().prop_map(Value::String),
        1 => arb_number(),
        1 => prop_oneof![Just(Value::Null), Just(Value::Bool(true)), Just(Value::Array(vec![]))],
    ]
}

fn arb_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..10_000_000).prop_map(Value::from),
        2 => (0i64..10_000_000).prop_map(|n| Value::String(n.to_string())),
        1 => (0i64..10_000_000).prop_map(|n| Value::from(n as f64)),
        1 => arb_number(),
        1 => Just(Value::Null),
        1 => prop_oneof![Just(""), Just(" 12 "), Just("12abc"), Just("1e3")].prop_map(Value::from),
    ]
}

fn arb_flag() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just("true"), Just("FALSE"), Just("1"), Just("0"), Just("maybe")]
            .prop_map(Value::from),
        arb_number(),
        Just(Value::Null),
    ]
}

fn arb_list() -> impl Strategy<Value = Value> {
    prop_oneof![
        vec((0i64..100_000).prop_map(Value::from), 0..4).prop_map(Value::Array),
        prop_oneof![Just("1,2"), Just("[1,2]"), Just(""), Just(" "), Just("a, 3,")]
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        arb_json(),
    ]
}

fn arb_transactional_data() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_json(),
        arb_json().prop_map(|value| Value::String(value.to_string())),
        Just(Value::from("not json")),
        Just(Value::from("")),
    ]
}

fn arb_text() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[a-zA-Z0-9 .@:/-]{0,24}".prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        1 => arb_json(),
    ]
}

/// One `dataFields` entry, keyed by a field Iterable really sends, with the values it really
/// sends and some it should not.
fn arb_data_field() -> impl Strategy<Value = (String, Value)> {
    let key = |name: &'static str| Just(name.to_owned());
    prop_oneof![
        3 => (key("createdAt"), arb_created_at()),
        2 => (key("campaignId"), arb_id()),
        1 => (key("templateId"), arb_id()),
        1 => (key("channelId"), arb_id()),
        1 => (key("messageTypeId"), arb_id()),
        1 => (key("workflowId"), arb_id()),
        1 => (key("messageId"), arb_text()),
        1 => (key("isBot"), arb_flag()),
        1 => (key("emailListIds"), arb_list()),
        1 => (key("labels"), arb_list()),
        1 => (key("transactionalData"), arb_transactional_data()),
        1 => (key("email"), arb_text()),
        1 => (key("userId"), arb_text()),
        1 => (key("url"), arb_text()),
        1 => (key("ip"), arb_text()),
        1 => (key("toPhoneNumber"), prop_oneof![arb_text(), arb_number()]),
        1 => (arb_key(), arb_json()),
    ]
}

fn arb_event_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop_oneof![
            Just("emailOpen"),
            Just("emailClick"),
            Just("emailSend"),
            Just("emailBounce"),
            Just("emailUnSubscribe"),
            Just("hostedUnsubscribeClick"),
            Just("pushSend"),
            Just("smsReceived"),
            Just("inAppOpen"),
            Just("customThing"),
        ]
        .prop_map(Value::from),
        1 => prop_oneof![Just(""), Just("   "), Just("\t\n")].prop_map(Value::from),
        1 => any::<String>().prop_map(Value::String),
        1 => arb_json(),
    ]
}

/// An Iterable-like event: the envelope keys each present or not, `dataFields` usually an
/// object of real fields, and sometimes fields flattened to the top level as catalogs show them.
fn arb_iterable_event() -> impl Strategy<Value = Value> {
    let data_fields = prop_oneof![
        6 => vec(arb_data_field(), 0..8)
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        1 => arb_json(),
    ];
    (
        option::of(
            prop_oneof![4 => "[a-z.]{1,12}@example\\.com".prop_map(Value::String), 1 => arb_text()],
        ),
        option::of(arb_text()),
        option::of(arb_event_name()),
        option::of(data_fields),
        prop_oneof![4 => Just(vec![]), 1 => vec(arb_data_field(), 1..4)],
    )
        .prop_map(|(email, user_id, event_name, data_fields, flattened)| {
            let mut event: Map<String, Value> = flattened.into_iter().collect();
            let envelope = [
                ("email", email),
                ("userId", user_id),
                ("eventName", event_name),
                ("dataFields", data_fields),
            ];
            for (key, value) in envelope {
                if let Some(value) = value {
                    event.insert(key.to_owned(), value);
                }
            }
            Value::Object(event)
        })
}

/// Whether `value` is an object the envelope accepts: a non-blank string `eventName` and a
/// `dataFields` that is absent, null or an object.
fn is_event(value: &Value) -> bool {
    let Some(object) = value.as_object() else { return false };
    let named =
        object.get("eventName").and_then(Value::as_str).is_some_and(|n| !n.trim().is_empty());
    let fields_ok = matches!(object.get("dataFields"), None | Some(Value::Null | Value::Object(_)));
    named && fields_ok
}

/// A body for any route: arbitrary bytes, any JSON, Iterable-like events alone or in arrays,
/// or a form.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => vec(any::<u8>(), 0..256),
        2 => arb_json().prop_map(|value| value.to_string().into_bytes()),
        3 => arb_iterable_event().prop_map(|value| value.to_string().into_bytes()),
        2 => vec(prop_oneof![3 => arb_iterable_event(), 1 => arb_json()], 0..5)
            .prop_map(|items| Value::Array(items).to_string().into_bytes()),
        1 => vec(arb_data_field(), 0..6).prop_map(|fields| {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("eventName", "emailOpen");
            for (key, value) in fields {
                let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                form.append_pair(&key, &text);
            }
            form.finish().into_bytes()
        }),
    ]
}

fn arb_request() -> impl Strategy<Value = RawRequest> {
    (arb_method(), arb_path(), arb_query(), arb_content_type(), arb_body()).prop_map(
        |(method, path, query, content_type, body)| {
            request(method, path, query, content_type, body)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The same JSON, written differently

/// splitmix64: a tiny deterministic generator, so one proptest `u64` drives every choice of
/// key order, whitespace and escape in a rewriting.
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// JSON's insignificant whitespace, zero to three characters of it.
    fn space(&mut self, out: &mut String) {
        for _ in 0..self.below(4) {
            out.push([' ', '\n', '\t', '\r'][self.below(4)]);
        }
    }
}

/// Writes `value` as JSON text with every object's keys in a shuffled order, random whitespace
/// between tokens and some string characters written as `\u` escapes.
fn rewrite(value: &Value, choices: &mut Choices, out: &mut String) {
    choices.space(out);
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                entries.swap(i, choices.below(i + 1));
            }
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                rewrite_string(key, choices, out);
                choices.space(out);
                out.push(':');
                rewrite(item, choices, out);
            }
            choices.space(out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                rewrite(item, choices, out);
            }
            choices.space(out);
            out.push(']');
        }
        Value::String(text) => rewrite_string(text, choices, out),
        scalar => out.push_str(&scalar.to_string()),
    }
    choices.space(out);
}

fn rewrite_string(text: &str, choices: &mut Choices, out: &mut String) {
    choices.space(out);
    out.push('"');
    for c in text.chars() {
        if choices.below(4) == 0 {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            let quoted = Value::String(c.to_string()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
    }
    out.push('"');
}

fn parse(text: &str) -> Result<Value, TestCaseError> {
    serde_json::from_str(text).map_err(|err| TestCaseError::fail(format!("{err} in {text}")))
}

/// An event's rows as the sinks see them, for comparing two outcomes.
fn rows(outcome: &Outcome) -> Vec<(String, Value)> {
    outcome
        .events
        .iter()
        .map(|event| {
            let row = serde_json::to_value(event).expect("an event serializes");
            (event.event_id.as_str().to_owned(), row)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normalise_never_panics_on_arbitrary_bytes(
        method in arb_method(),
        path in arb_path(),
        query in arb_query(),
        content_type in prop_oneof![
            Just(None),
            Just(Some("application/json".to_owned())),
            Just(Some("application/x-www-form-urlencoded".to_owned())),
            Just(Some("text/plain".to_owned())),
        ],
        body in prop_oneof![Just(Vec::new()), vec(any::<u8>(), 0..512)],
    ) {
        normalise_and_account(&request(method, path, query, content_type, body))?;
    }

    #[test]
    fn normalise_never_panics_on_any_request(request in arb_request()) {
        normalise_and_account(&request)?;
    }

    #[test]
    fn normalise_never_panics_on_arbitrary_json(
        method in arb_method(),
        path in arb_path(),
        content_type in arb_content_type(),
        body in arb_json(),
    ) {
        normalise_and_account(&request(method, path, None, content_type, body.to_string().into()))?;
    }

    #[test]
    fn an_object_on_the_system_path_is_one_event_or_one_failure(
        body in prop_oneof![3 => arb_iterable_event(), 1 => arb_json()],
    ) {
        let text = body.to_string().into_bytes();
        let outcome = normalise_and_account(
            &request("POST", SYSTEM_PATH, None, Some("application/json".to_owned()), text.clone()),
        )?;
        if body.is_array() {
            // Its elements are the subject of the next property.
            return Ok(());
        }
        if is_event(&body) {
            prop_assert_eq!(outcome.failures.len(), 0);
            prop_assert_eq!(outcome.events.len(), 1);
            let name = outcome.events[0].event_name.as_str();
            prop_assert_eq!(Some(name), body["eventName"].as_str());
        } else {
            prop_assert_eq!(outcome.events.len(), 0);
            prop_assert_eq!(outcome.failures.len(), 1);
            prop_assert_eq!(&outcome.failures[0].body, &text, "the failure keeps the whole body");
        }
    }

    #[test]
    fn an_array_of_n_is_n_events_and_failures(
        items in vec(prop_oneof![3 => arb_iterable_event(), 1 => arb_json()], 1..8),
    ) {
        let body = Value::Array(items.clone()).to_string().into_bytes();
        let outcome = normalise_and_account(
            &request("POST", SYSTEM_PATH, None, Some("application/json".to_owned()), body),
        )?;
        prop_assert_eq!(outcome.events.len() + outcome.failures.len(), items.len());
        prop_assert_eq!(outcome.events.len(), items.iter().filter(|item| is_event(item)).count());
        if items.len() > 1 {
            // Each failure names its element and keeps only that element.
            let failed: Vec<_> =
                items.iter().enumerate().filter(|(_, item)| !is_event(item)).collect();
            for (failure, (index, item)) in outcome.failures.iter().zip(failed) {
                let prefix = format!("array element {index}:");
                prop_assert!(failure.reason.starts_with(&prefix), "{}", failure.reason);
                // The element as parsed and written again (serde_json's float parsing is not
                // exact, so not always the generated value's own text).
                let element = parse(&item.to_string())?.to_string();
                prop_assert_eq!(String::from_utf8_lossy(&failure.body), element);
            }
        }
    }

    #[test]
    fn event_id_ignores_key_order_whitespace_and_escapes(
        value in arb_json(),
        seed in any::<u64>(),
        source in "[a-z0-9_-]{1,12}",
        other_source in "[a-z0-9_-]{1,12}",
    ) {
        let plain = parse(&value.to_string())?;
        let mut rewritten = String::new();
        rewrite(&value, &mut Choices(seed), &mut rewritten);
        let rewritten = parse(&rewritten)?;
        let id = EventId::derive(&source, &plain, None);
        prop_assert_eq!(&id, &EventId::derive(&source, &rewritten, None));
        if other_source != source {
            prop_assert_ne!(&id, &EventId::derive(&other_source, &plain, None));
        }
    }

    #[test]
    fn a_rewritten_body_is_the_same_event(
        event in arb_iterable_event(),
        seed in any::<u64>(),
        sources in ("[a-z0-9_-]{1,12}", "[a-z0-9_-]{1,12}"),
    ) {
        let mut rewritten = String::new();
        rewrite(&event, &mut Choices(seed), &mut rewritten);
        let ctype = Some("application/json".to_owned());
        let mut first = request("POST", SYSTEM_PATH, None, ctype.clone(), event.to_string().into());
        let mut second = request("POST", SYSTEM_PATH, None, ctype, rewritten.into());
        first.source.clone_from(&sources.0);
        second.source.clone_from(&sources.0);
        let (first_outcome, second_outcome) = (normalise(&first), normalise(&second));
        let ids = |outcome: &Outcome| {
            outcome.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>()
        };
        prop_assert_eq!(first_outcome.events.len(), usize::from(is_event(&event)));
        prop_assert_eq!(ids(&first_outcome), ids(&second_outcome));

        if sources.1 != sources.0 {
            second.source.clone_from(&sources.1);
            let elsewhere = normalise(&second);
            for (a, b) in first_outcome.events.iter().zip(&elsewhere.events) {
                prop_assert_ne!(&a.event_id, &b.event_id);
            }
        }
    }

    #[test]
    fn normalising_again_gives_the_same_rows(request in arb_request()) {
        let first = normalise(&request);
        let again = normalise(&request);
        prop_assert_eq!(rows(&first), rows(&again));
        prop_assert_eq!(&first.failures, &again.failures);
        prop_assert_eq!(&first.journey_calls, &again.journey_calls);

        // Iterable's retry: the same body later, from elsewhere. Same events, same ids.
        let mut resend = request.clone();
        resend.received_at += chrono::Duration::hours(1);
        resend.remote_addr = Some("10.0.0.1".to_owned());
        resend.headers_json = r#"{"user-agent":"Iterable"}"#.to_owned();
        let resent = normalise(&resend);
        prop_assert_eq!(rows(&first), rows(&resent));
        prop_assert_eq!(&first.failures, &resent.failures);
    }
}

/// A request with no usable content is refused part by part, never silently dropped.
#[test]
fn expected_parts_agrees_with_the_examples() {
    let json = Some("application/json".to_owned());
    let post = |body: &str| request("POST", SYSTEM_PATH, None, json.clone(), body.into());
    assert_eq!(expected_parts(&post("[{}, 1, []]")), 3);
    assert_eq!(expected_parts(&post("[]")), 1);
    assert_eq!(expected_parts(&post("  ")), 1);
    assert_eq!(expected_parts(&post(r#"{"eventName":"emailOpen"}"#)), 1);
    let outcome = normalise(&post("[]"));
    assert_eq!((outcome.events.len(), outcome.failures.len()), (0, 1));
}

/// The rewriting really changes the text, so the id property is not comparing a text with
/// itself.
#[test]
fn rewrite_changes_the_text_but_not_the_value() {
    let value: Value =
        serde_json::from_str(r#"{"b":[1,{"y":"é","x":null}],"a":"text","c":{"d":2.5,"e":true}}"#)
            .expect("valid JSON");
    let texts: Vec<String> = (0..8)
        .map(|seed| {
            let mut text = String::new();
            rewrite(&value, &mut Choices(seed), &mut text);
            text
        })
        .collect();
    for text in &texts {
        assert_eq!(serde_json::from_str::<Value>(text).expect("valid JSON"), value, "{text}");
    }
    assert!(texts.iter().any(|text| text.contains("\\u")), "{texts:?}");
    assert!(texts.iter().any(|text| text.find("\"c\"") < text.find("\"a\"")), "{texts:?}");
    assert!(texts.iter().any(|text| text.contains(['\n', '\t', ' '])), "{texts:?}");
}

/// `createdAt` of `i64::MIN` (or the string `"-9223372036854775808"`) overflowed the `abs()` in
/// the epoch fallback of `parse_timestamp` and panicked in debug builds; found by these
/// properties, kept as a regression test.
#[test]
fn created_at_of_i64_min_is_a_warning_not_a_panic() {
    for created_at in [r"-9223372036854775808", r#""-9223372036854775808""#] {
        let body =
            format!(r#"{{"eventName":"emailOpen","dataFields":{{"createdAt":{created_at}}}}}"#);
        let json = Some("application/json".to_owned());
        let outcome = normalise(&request("POST", SYSTEM_PATH, None, json, body.into()));
        assert_eq!(outcome.events.len(), 1);
        assert_eq!(outcome.events[0].created_at, None);
        assert!(outcome.events[0].parse_warnings.is_some());
    }
}
