//! The envelope of one Iterable event: `email`, `userId`, `eventName` and `dataFields`.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Top-level keys that belong to the envelope itself; any other top-level key is an event field
/// sent in the flattened catalog shape.
const ENVELOPE_KEYS: [&str; 4] = ["email", "userId", "eventName", "dataFields"];

/// One event's envelope, borrowed from its parsed JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub event_name: &'a str,
    /// The top-level `email`, else `dataFields.email`.
    pub email: Option<&'a str>,
    /// The top-level `userId`, else `dataFields.userId`.
    pub user_id: Option<&'a str>,
    /// Every event field: `dataFields` merged over any flattened top-level fields
    /// (`dataFields` wins, as it is where Iterable really puts them). Borrowed in the common
    /// case of a real body, which has nothing to merge.
    pub data_fields: Cow<'a, Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the event is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("the event has no `eventName`")]
    MissingEventName,
    #[error("`eventName` must be a non-empty string, found {0}")]
    BadEventName(String),
    #[error("`dataFields` must be an object, found a JSON {0}")]
    BadDataFields(&'static str),
}

impl<'a> Envelope<'a> {
    pub fn parse(event: &'a Value) -> Result<Self, EnvelopeError> {
        let object = event.as_object().ok_or(EnvelopeError::NotAnObject(kind(event)))?;
        let event_name = match object.get("eventName") {
            None | Some(Value::Null) => return Err(EnvelopeError::MissingEventName),
            Some(Value::String(name)) if !name.trim().is_empty() => name.as_str(),
            Some(other) => return Err(EnvelopeError::BadEventName(truncated(other))),
        };
        let nested = match object.get("dataFields") {
            None | Some(Value::Null) => None,
            Some(Value::Object(fields)) => Some(fields),
            Some(other) => return Err(EnvelopeError::BadDataFields(kind(other))),
        };

        let flattened = object.keys().any(|key| !ENVELOPE_KEYS.contains(&key.as_str()));
        let data_fields = match nested {
            Some(nested) if !flattened => Cow::Borrowed(nested),
            None if !flattened => Cow::Owned(Map::new()),
            _ => {
                let mut merged: Map<String, Value> = object
                    .iter()
                    .filter(|(key, _)| !ENVELOPE_KEYS.contains(&key.as_str()))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                if let Some(nested) = nested {
                    merged.extend(nested.iter().map(|(key, value)| (key.clone(), value.clone())));
                }
                Cow::Owned(merged)
            }
        };

        let top_or_nested = |key: &str| {
            non_empty_str(object.get(key))
                .or_else(|| nested.and_then(|n| non_empty_str(n.get(key))))
        };
        Ok(Envelope {
            event_name,
            email: top_or_nested("email"),
            user_id: top_or_nested("userId"),
            data_fields,
        })
    }

    /// A field of the event, wherever it was sent.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.data_fields.get(key).filter(|value| !value.is_null())
    }

    /// A string field; empty strings (Iterable renders undefined merge fields as "") are absent.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        non_empty_str(self.data_fields.get(key))
    }
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn truncated(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 80 {
        let cut = (0..=80).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_real_nested_shape() {
        let body = json!({"email": "a@x.io", "eventName": "emailOpen",
            "dataFields": {"email": "a@x.io", "campaignId": 12, "createdAt": "2016-12-02 20:21:04 +00:00"}});
        let envelope = Envelope::parse(&body).unwrap();
        assert_eq!(envelope.event_name, "emailOpen");
        assert_eq!(envelope.email, Some("a@x.io"));
        assert_eq!(envelope.user_id, None);
        assert_eq!(envelope.field("campaignId"), Some(&json!(12)));
    }

    #[test]
    fn reads_the_flattened_shape_and_nested_fields_win() {
        let body = json!({"eventName": "emailClick", "campaignId": 1, "url": "https://a",
            "dataFields": {"campaignId": 2, "email": "b@x.io"}});
        let envelope = Envelope::parse(&body).unwrap();
        assert_eq!(envelope.field("campaignId"), Some(&json!(2)));
        assert_eq!(envelope.str_field("url"), Some("https://a"));
        assert_eq!(envelope.email, Some("b@x.io"), "email falls back to dataFields.email");
    }

    #[test]
    fn user_id_only_and_no_data_fields() {
        let body = json!({"userId": "u-1", "eventName": "pushSend"});
        let envelope = Envelope::parse(&body).unwrap();
        assert_eq!((envelope.email, envelope.user_id), (None, Some("u-1")));
        assert!(envelope.data_fields.is_empty());
    }

    #[test]
    fn refuses_what_cannot_be_an_event() {
        assert_eq!(Envelope::parse(&json!([1])), Err(EnvelopeError::NotAnObject("array")));
        assert_eq!(Envelope::parse(&json!({"email": "a"})), Err(EnvelopeError::MissingEventName));
        assert!(matches!(
            Envelope::parse(&json!({"eventName": 5})),
            Err(EnvelopeError::BadEventName(_))
        ));
        assert_eq!(
            Envelope::parse(&json!({"eventName": "x", "dataFields": "no"})),
            Err(EnvelopeError::BadDataFields("string"))
        );
    }
}
