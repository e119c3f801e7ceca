//! Decoding a request body into the JSON values that may be events.

use serde_json::{Map, Value};

/// How a body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Json,
    Form,
    /// A type no Iterable sender uses; the receiver refuses it with 415.
    Unsupported,
}

impl ContentKind {
    /// Matches leniently: any case, any parameters (`application/json; charset=UTF-8`), any
    /// `+json` type. A missing type or `text/plain` is read as JSON, since that is all Iterable
    /// sends and a misconfigured proxy should not lose events.
    pub fn of(content_type: Option<&str>) -> Self {
        let Some(content_type) = content_type else {
            return ContentKind::Json;
        };
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" | "text/json" | "text/plain" => ContentKind::Json,
            "application/x-www-form-urlencoded" => ContentKind::Form,
            other if other.ends_with("+json") => ContentKind::Json,
            _ => ContentKind::Unsupported,
        }
    }
}

/// The candidate events of a body: one for an object or a form, one per element of an array.
/// The error is a readable reason for `failed_events`.
pub(super) fn decode(kind: ContentKind, body: &[u8]) -> Result<Vec<Value>, String> {
    match decode_value(kind, body)? {
        Value::Array(items) if items.is_empty() => {
            Err("the body is an empty JSON array".to_owned())
        }
        Value::Array(items) => Ok(items),
        value => Ok(vec![value]),
    }
}

/// The whole body as one JSON value: the parsed JSON, or an object of a form's fields.
pub(super) fn decode_value(kind: ContentKind, body: &[u8]) -> Result<Value, String> {
    match kind {
        ContentKind::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err("the body is empty".to_owned());
            }
            serde_json::from_slice::<Value>(body)
                .map_err(|err| format!("the body is not valid JSON: {err}"))
        }
        ContentKind::Form => {
            let fields: Map<String, Value> = form_urlencoded::parse(body)
                .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
                .collect();
            if fields.is_empty() {
                Err("the form body has no fields".to_owned())
            } else {
                Ok(Value::Object(fields))
            }
        }
        ContentKind::Unsupported => Err("the body's content type is not JSON or a form".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_matched_leniently() {
        for json in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=UTF-8"),
            Some("application/vnd.api+json"),
            Some("text/plain;charset=utf-8"),
        ] {
            assert_eq!(ContentKind::of(json), ContentKind::Json, "{json:?}");
        }
        assert_eq!(
            ContentKind::of(Some("application/x-www-form-urlencoded; charset=utf-8")),
            ContentKind::Form
        );
        assert_eq!(
            ContentKind::of(Some("multipart/form-data; boundary=x")),
            ContentKind::Unsupported
        );
    }

    #[test]
    fn bodies_decode_to_candidate_events() {
        assert_eq!(decode(ContentKind::Json, b"{\"a\":1}").unwrap().len(), 1);
        assert_eq!(decode(ContentKind::Json, b"[{},{},{}]").unwrap().len(), 3);
        assert!(decode(ContentKind::Json, b"  ").unwrap_err().contains("empty"));
        assert!(decode(ContentKind::Json, b"[]").unwrap_err().contains("empty JSON array"));
        assert!(decode(ContentKind::Json, b"{").unwrap_err().contains("not valid JSON"));
        let form = decode(ContentKind::Form, b"eventName=emailOpen&email=a%40b.c").unwrap();
        assert_eq!(form[0]["email"], "a@b.c");
    }
}
