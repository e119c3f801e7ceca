//! The pipeline: one spooled request in, canonical events and failures out. Pure functions of
//! the stored request, so a replay of `raw_requests` gives what live ingestion gave.
//! It never touches storage or HTTP.

mod at_rest;
mod body;
mod event;
mod event_id;
mod journey;
mod pseudonymise;

pub use at_rest::hidden_request;
pub use body::ContentKind;
pub use event::CanonicalEvent;
pub use event_id::EventId;
pub use journey::{JourneyCall, call_values};
pub use pseudonymise::{Hider, PERSONAL_KEYS, PseudonymKey};

use serde_json::Value;

use crate::iterable::Envelope;
use crate::request::{RawRequest, RequestKind};

/// The most events one request may carry. Iterable sends one event a request; a larger array
/// would hold the single writer for seconds and fill the store from one request, so it is kept
/// whole as one failure instead.
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// Query parameters of the Snowplow path that configure the request rather than carry data.
const SNOWPLOW_CONTROL_PARAMS: [&str; 3] = ["schema", "aid", "p"];

/// What one request became.
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: Vec<CanonicalEvent>,
    pub journey_calls: Vec<JourneyCall>,
    pub failures: Vec<Failure>,
    /// Set for a pseudonymised request whose kept headers hold one of its personal values (a
    /// `referer` with the address in its query): the headers with those hidden, which its raw
    /// row keeps instead of the headers as received.
    pub headers_json: Option<String>,
}

/// A part of a request that could not become an event, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub stage: Stage,
    pub reason: String,
    /// The part that failed: the whole body, or one element of an array body.
    #[serde(serialize_with = "lossy_text")]
    pub body: Vec<u8>,
}

/// Where in the pipeline a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The body is not JSON or form data.
    Decode,
    /// The body decoded but is not an Iterable event.
    Envelope,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Envelope => "envelope",
        }
    }
}

/// Turns one stored request into its events and failures.
pub fn normalise(request: &RawRequest) -> Outcome {
    normalise_with(request, None)
}

/// [`normalise`], with the personal fields of every event and journey call pseudonymised under
/// `key` (the source's, when it has one). Event ids are computed from the pseudonymised event:
/// a resend still gets the same id under the same key, and the id, an unkeyed hash, cannot be
/// used to test a guessed address. Failures keep the part that failed as it arrived.
pub fn normalise_with(request: &RawRequest, key: Option<&PseudonymKey>) -> Outcome {
    let snowplow = match &request.kind {
        RequestKind::Journey { name } => return journey_outcome(request, name, key),
        RequestKind::Snowplow => true,
        RequestKind::System => false,
    };
    let context = Context {
        source: &request.source,
        app_id: snowplow.then(|| request.query_param("aid")).flatten().filter(|s| !s.is_empty()),
        platform: snowplow.then(|| {
            request.query_param("p").filter(|p| !p.is_empty()).unwrap_or_else(|| "srv".to_owned())
        }),
    };

    let decoded = if snowplow && request.body.is_empty() && request.method == "GET" {
        // Snowplow's GET form: the query string is the event.
        let event = request
            .query_pairs()
            .filter(|(key, _)| !SNOWPLOW_CONTROL_PARAMS.contains(&key.as_str()))
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        Ok(vec![Value::Object(event)])
    } else {
        body::decode(ContentKind::of(request.content_type.as_deref()), &request.body)
    };

    let mut outcome = Outcome::default();
    match decoded {
        Ok(items) if items.len() > MAX_EVENTS_PER_REQUEST => outcome.failures.push(Failure {
            stage: Stage::Decode,
            reason: format!(
                "the body is an array of {} elements; at most {MAX_EVENTS_PER_REQUEST} events \
                 are read from one request",
                items.len()
            ),
            body: request.body.to_vec(),
        }),
        Ok(items) => {
            let many = items.len() > 1;
            // The headers are hidden from every event's values: for one event (Iterable's
            // only shape) its own hider does, an array needs one over all of them.
            let mut headers_hider = key.filter(|_| many).map(|key| key.hider(&items));
            for (index, item) in items.iter().enumerate() {
                let hider = key.map(|key| key.hider([item]));
                let hidden = hider.as_ref().map(|hider| hider.apply(item));
                if !many {
                    headers_hider = hider;
                }
                let event = hidden.as_ref().unwrap_or(item);
                match Envelope::parse(event) {
                    Ok(envelope) => {
                        outcome.events.push(CanonicalEvent::new(&context, event, &envelope));
                    }
                    Err(err) => outcome.failures.push(Failure {
                        stage: Stage::Envelope,
                        reason: if many {
                            format!("array element {index}: {err}")
                        } else {
                            err.to_string()
                        },
                        body: if many {
                            item.to_string().into_bytes()
                        } else {
                            request.body.to_vec()
                        },
                    }),
                }
            }
            outcome.headers_json =
                headers_hider.and_then(|hider| hider.hide_in_headers(&request.headers_json));
        }
        Err(reason) => outcome.failures.push(Failure {
            stage: Stage::Decode,
            reason,
            body: request.body.to_vec(),
        }),
    }
    outcome
}

/// A journey tile's call: one `journey_calls` row, or the failure to read it.
fn journey_outcome(request: &RawRequest, name: &str, key: Option<&PseudonymKey>) -> Outcome {
    match journey::read(request, name, key) {
        Ok((call, headers_json)) => {
            Outcome { journey_calls: vec![call], headers_json, ..Outcome::default() }
        }
        Err(failure) => Outcome { failures: vec![failure], ..Outcome::default() },
    }
}

fn lossy_text<S: serde::Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(body))
}

/// What the route adds to every event of a request.
#[derive(Debug)]
struct Context<'a> {
    source: &'a str,
    app_id: Option<String>,
    platform: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::SNOWPLOW_PATH;
    use bytes::Bytes;

    /// A stored request for the pipeline's tests (here and in its submodules').
    pub(super) fn request(
        method: &str,
        path: &str,
        query: Option<&str>,
        ctype: &str,
        body: &str,
    ) -> RawRequest {
        RawRequest {
            received_at: chrono::Utc::now(),
            source: "default".into(),
            kind: RequestKind::of_path(path),
            method: method.into(),
            path: path.into(),
            query: query.map(str::to_owned),
            headers_json: "{}".into(),
            remote_addr: None,
            peer_addr: None,
            content_type: Some(ctype.into()).filter(|c: &String| !c.is_empty()),
            body: Bytes::from(body.to_owned()),
            body_sha256: String::new(),
        }
    }

    const OPEN: &str = r#"{"email":"a@x.io","eventName":"emailOpen","dataFields":{"campaignId":7,"createdAt":"2016-12-02 20:21:04 +00:00"}}"#;

    #[test]
    fn one_object_is_one_event() {
        let outcome =
            normalise(&request("POST", "/iterable/default", None, "application/json", OPEN));
        assert_eq!(outcome.failures, vec![]);
        let event = &outcome.events[0];
        assert_eq!(event.event_name, "emailOpen");
        assert_eq!(event.campaign_id, Some(7));
        assert_eq!(event.created_at.as_deref(), Some("2016-12-02T20:21:04Z"));
        assert_eq!((event.app_id.as_deref(), event.platform.as_deref()), (None, None));
    }

    #[test]
    fn array_elements_succeed_and_fail_one_by_one() {
        let body = format!("[{OPEN}, 3, {{\"eventName\":\"emailClick\"}}]");
        let outcome =
            normalise(&request("POST", "/iterable/default", None, "application/json", &body));
        assert_eq!(outcome.events.len(), 2);
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].stage, Stage::Envelope);
        assert!(outcome.failures[0].reason.starts_with("array element 1:"));
        assert_eq!(outcome.failures[0].body, b"3");
    }

    #[test]
    fn malformed_json_is_a_decode_failure_keeping_the_body() {
        let outcome =
            normalise(&request("POST", "/iterable/default", None, "application/json", "{oops"));
        assert!(outcome.events.is_empty());
        assert_eq!(outcome.failures[0].stage, Stage::Decode);
        assert_eq!(outcome.failures[0].body, b"{oops");
    }

    #[test]
    fn snowplow_get_turns_the_query_into_the_event() {
        let query = "schema=iglu%3Acom.iterable%2Fsystem_webhook%2Fjsonschema%2F1-0-0&aid=shop&eventName=emailOpen&email=a%40x.io&campaignId=9";
        let outcome = normalise(&request("GET", SNOWPLOW_PATH, Some(query), "", ""));
        let event = &outcome.events[0];
        assert_eq!(event.email.as_deref(), Some("a@x.io"));
        assert_eq!(event.campaign_id, Some(9));
        assert_eq!(event.app_id.as_deref(), Some("shop"));
        assert_eq!(event.platform.as_deref(), Some("srv"));
    }

    #[test]
    fn snowplow_form_body_is_one_event_of_strings() {
        let body = "eventName=emailClick&email=b%40x.io&templateId=4";
        let outcome = normalise(&request(
            "POST",
            SNOWPLOW_PATH,
            Some("p=web"),
            "application/x-www-form-urlencoded",
            body,
        ));
        let event = &outcome.events[0];
        assert_eq!((event.event_name.as_str(), event.template_id), ("emailClick", Some(4)));
        assert_eq!(event.platform.as_deref(), Some("web"));
    }
}
