//! Arbitrary bytes as the body of a system webhook and of a Snowplow POST, read as JSON and as
//! a form: `normalise` must return an outcome, never panic.

#![no_main]

use bytes::Bytes;
use chrono::DateTime;
use hookhouse::pipeline::{SNOWPLOW_PATH, normalise};
use hookhouse::spool::{RawRequest, sha256_hex};
use libfuzzer_sys::fuzz_target;

const ROUTES: [(&str, Option<&str>); 2] = [
    ("/iterable/default", None),
    (
        SNOWPLOW_PATH,
        Some("schema=iglu%3Acom.iterable%2Fsystem_webhook%2Fjsonschema%2F1-0-0&aid=shop&p=web"),
    ),
];

const CONTENT_TYPES: [&str; 2] = ["application/json", "application/x-www-form-urlencoded"];

fuzz_target!(|body: &[u8]| {
    for (path, query) in ROUTES {
        for content_type in CONTENT_TYPES {
            let request = RawRequest {
                received_at: DateTime::UNIX_EPOCH,
                source: "default".to_owned(),
                method: "POST".to_owned(),
                path: path.to_owned(),
                query: query.map(str::to_owned),
                headers_json: "{}".to_owned(),
                remote_addr: None,
                content_type: Some(content_type.to_owned()),
                body: Bytes::copy_from_slice(body),
                body_sha256: sha256_hex(body),
            };
            let outcome = normalise(&request);
            assert!(outcome.journey_calls.is_empty());
            assert!(!(outcome.events.is_empty() && outcome.failures.is_empty()), "{outcome:?}");
        }
    }
});
