//! Journey webhooks: calls from a journey tile, any method, a body the customer designs (JSON,
//! a form or nothing) plus "dynamic parameters" in the query string. Each call becomes one
//! `journey_calls` row; it is not an Iterable system event and has no `eventName`.

use serde_json::{Map, Value};

use super::{ContentKind, Failure, PseudonymKey, Stage, body};
use crate::request::RawRequest;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JourneyCall {
    pub journey: String,
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// JSON: `{"query": {name: value}, "body": <the decoded body or null>}`.
    pub data: String,
}

/// The values a call's `data` (`{"query": .., "body": ..}`) holds under `key`, in the order
/// they are taken: the body's top level, its `dataFields`, the query string.
pub fn call_values<'a>(data: &'a Value, key: &'a str) -> impl Iterator<Item = &'a Value> {
    let body = &data["body"];
    [body.get(key), body.get("dataFields").and_then(|d| d.get(key)), data["query"].get(key)]
        .into_iter()
        .flatten()
}

/// The call, and for a pseudonymised source its headers with the call's personal values
/// hidden when they held one.
pub(super) fn read(
    request: &RawRequest,
    journey: &str,
    key: Option<&PseudonymKey>,
) -> Result<(JourneyCall, Option<String>), Failure> {
    let query: Map<String, Value> =
        request.query_pairs().map(|(key, value)| (key, Value::String(value))).collect();
    let body = if request.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        let kind = ContentKind::of(request.content_type.as_deref());
        body::decode_value(kind, &request.body).map_err(|reason| Failure {
            stage: Stage::Decode,
            reason,
            body: request.body.to_vec(),
        })?
    };
    let mut data = serde_json::json!({ "query": query, "body": body });
    let mut headers_json = None;
    if let Some(key) = key {
        let hider = key.hider([&data]);
        headers_json = hider.hide_in_headers(&request.headers_json);
        data = hider.apply(&data);
    }
    let find = |key: &str| {
        call_values(&data, key)
            .find_map(|value| value.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
    };
    let call = JourneyCall {
        journey: journey.to_owned(),
        email: find("email"),
        user_id: find("userId"),
        data: data.to_string(),
    };
    Ok((call, headers_json))
}
