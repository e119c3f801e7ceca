//! What a source with a pseudonymisation key and `drop_raw_bodies` keeps of a request until
//! the sinks have loaded it: the request with every personal value in its body and query
//! replaced by its digest, so that not even the log holds one in plain, and the rows made from
//! it without the key are those made from the original with it (same digests, same event ids).

use serde_json::{Map, Value};

use super::{ContentKind, PseudonymKey, SNOWPLOW_CONTROL_PARAMS, body};
use crate::request::{RawRequest, RequestKind};

/// The content type of a hidden body: whatever arrived, it is kept as JSON.
const JSON: &str = "application/json";

/// `request` with its personal values hidden under `key`; `None` when its body cannot be read
/// (such a request has a failure, and keeps its body whole).
pub fn hidden_request(request: &RawRequest, key: &PseudonymKey) -> Option<RawRequest> {
    let mut hidden = request.clone();
    match &request.kind {
        RequestKind::Journey { .. } => {
            let query: Map<String, Value> =
                request.query_pairs().map(|(name, value)| (name, Value::String(value))).collect();
            let body = if request.body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                body::decode_value(ContentKind::of(request.content_type.as_deref()), &request.body)
                    .ok()?
            };
            // As `journey::read` hides them: one hider over the query and the body together.
            let data = key.apply(&serde_json::json!({ "query": query, "body": body }));
            hidden.query = Some(encode_query(data["query"].as_object()?.iter()));
            hidden.body = match &data["body"] {
                Value::Null => bytes::Bytes::new(),
                body => bytes::Bytes::from(body.to_string()),
            };
        }
        RequestKind::Snowplow if request.body.is_empty() && request.method == "GET" => {
            let (control, event): (Vec<_>, Vec<_>) = request
                .query_pairs()
                .partition(|(name, _)| SNOWPLOW_CONTROL_PARAMS.contains(&name.as_str()));
            let event: Map<String, Value> =
                event.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
            let event = key.apply(&Value::Object(event));
            let control = control.into_iter().map(|(name, value)| (name, Value::String(value)));
            let mut pairs: Vec<(String, Value)> = control.collect();
            pairs.extend(event.as_object()?.iter().map(|(k, v)| (k.clone(), v.clone())));
            hidden.query = Some(encode_query(pairs.iter().map(|(k, v)| (k, v))));
        }
        RequestKind::Snowplow | RequestKind::System => {
            let kind = ContentKind::of(request.content_type.as_deref());
            let items = body::decode(kind, &request.body).ok()?;
            // Each event hidden by its own hider, as `normalise_with` does.
            let mut hidden_items: Vec<Value> = items.iter().map(|item| key.apply(item)).collect();
            let body = match (hidden_items.len(), request.body.trim_ascii_start().first()) {
                (1, Some(b'[')) | (2.., _) => Value::Array(hidden_items),
                _ => hidden_items.pop()?,
            };
            hidden.body = bytes::Bytes::from(body.to_string());
            // Only the Snowplow path reads its query, and only its control parameters.
            hidden.query = match request.kind {
                RequestKind::Snowplow => Some(encode_query(
                    request
                        .query_pairs()
                        .filter(|(name, _)| SNOWPLOW_CONTROL_PARAMS.contains(&name.as_str()))
                        .map(|(name, value)| (name, Value::String(value)))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|(k, v)| (k, v)),
                ))
                .filter(|query| !query.is_empty()),
                _ => None,
            };
        }
    }
    if !hidden.body.is_empty() {
        hidden.content_type = Some(JSON.to_owned());
    }
    // A plain SHA-256 of a body whose other fields are all stored would let anyone confirm a
    // guessed address.
    hidden.body_sha256 = key.digest(&request.body);
    Some(hidden)
}

/// A query string of string values.
fn encode_query<'a>(pairs: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value.as_str().unwrap_or(&value.to_string()));
    }
    query.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::normalise_with;
    use crate::pipeline::tests::request;
    use crate::request::SNOWPLOW_PATH;

    const EMAIL: &str = "ada@example.com";

    fn key() -> PseudonymKey {
        PseudonymKey::new("a key of sixteen chars".to_owned().into())
    }

    /// Rows from the hidden request without the key are the rows from the original with it,
    /// and the hidden request holds no personal value.
    fn check(original: RawRequest) {
        let key = key();
        let hidden = hidden_request(&original, &key).expect("readable");
        let text = format!("{:?} {:?}", hidden.query, String::from_utf8_lossy(&hidden.body));
        assert!(!text.contains(EMAIL) && !text.contains("ada%40example.com"), "{text}");
        let expected = normalise_with(&original, Some(&key));
        let got = normalise_with(&hidden, None);
        assert!(!expected.events.is_empty() || !expected.journey_calls.is_empty());
        assert_eq!(got.events, expected.events);
        assert_eq!(got.journey_calls, expected.journey_calls);
        assert_eq!(got.failures, expected.failures);
    }

    #[test]
    fn system_webhooks_one_or_many() {
        let open = format!(
            r#"{{"email":"{EMAIL}","eventName":"emailOpen","dataFields":{{"emailId":"c1:t2:{EMAIL}","createdAt":"2016-12-02 20:21:04 +00:00"}}}}"#
        );
        check(request(
            "POST",
            "/iterable/s",
            Some("email=ada%40example.com"),
            "application/json",
            &open,
        ));
        check(request("POST", "/iterable/s", None, "", &format!("[{open}]")));
        check(request(
            "POST",
            "/iterable/s",
            None,
            "application/json",
            &format!("[{open}, {open}]"),
        ));
    }

    #[test]
    fn snowplow_get_post_and_forms() {
        let query = format!(
            "schema=iglu%3Acom.iterable%2Fx&aid=shop&eventName=emailOpen&email={}",
            "ada%40example.com"
        );
        check(request("GET", SNOWPLOW_PATH, Some(&query), "", ""));
        let form = "eventName=emailClick&email=ada%40example.com&templateId=4";
        check(request(
            "POST",
            SNOWPLOW_PATH,
            Some("p=web&x=ada%40example.com"),
            "application/x-www-form-urlencoded",
            form,
        ));
    }

    #[test]
    fn journey_calls_with_query_and_body() {
        let path = "/iterable/s/journey/welcome";
        check(request("GET", path, Some("email=ada%40example.com&step=2"), "", ""));
        check(request(
            "POST",
            path,
            Some("ip=203.0.113.7"),
            "application/json",
            &format!(r#"{{"dataFields":{{"email":"{EMAIL}"}}}}"#),
        ));
        check(request(
            "PUT",
            path,
            None,
            "application/x-www-form-urlencoded",
            "email=ada%40example.com&n=1",
        ));
    }
}
