//! One accepted request as a stream message: the record the SQLite log keeps, framed as a
//! length-prefixed JSON envelope followed by the body's bytes as received (no base64: a
//! body of the largest size must still fit the server's `max_payload`).

use std::borrow::Cow;

use bytes::{BufMut as _, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::request::{RawRequest, RequestKind, StoredAs, StoredRequest};

/// Everything but the body. Borrowed when written, owned when read.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<'a> {
    /// The record's format, so a newer loader can read what an older receiver wrote.
    v: u32,
    /// Microseconds since the Unix epoch, the log's precision.
    received_at_us: i64,
    source: Cow<'a, str>,
    kind: Cow<'a, str>,
    journey: Option<Cow<'a, str>>,
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    query: Option<Cow<'a, str>>,
    headers: Cow<'a, str>,
    remote_addr: Option<Cow<'a, str>>,
    peer_addr: Option<Cow<'a, str>>,
    content_type: Option<Cow<'a, str>>,
    body_sha256: Cow<'a, str>,
    pseudonymised: bool,
    body_hidden: bool,
    /// Absent in records written before journey answers, and for requests without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer_status: Option<u16>,
}

const VERSION: u32 = 1;

/// Why a message could not be read as a request.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the message is shorter than its envelope")]
    Truncated,
    #[error("the envelope is not a hookhouse request record: {0}")]
    Envelope(#[from] serde_json::Error),
    #[error("the record is version {0}, newer than this hookhouse reads: upgrade the loaders")]
    TooNew(u32),
    #[error("the record's receive time {0} is out of range")]
    Time(i64),
    #[error("the record's kind `{0}` is unknown")]
    Kind(String),
}

/// The message for `raw`, stored as `stored_as` says.
pub fn encode(raw: &RawRequest, stored_as: &StoredAs) -> Bytes {
    let envelope = Envelope {
        v: VERSION,
        received_at_us: raw.received_at.timestamp_micros(),
        source: Cow::Borrowed(&raw.source),
        kind: Cow::Borrowed(raw.kind.as_str()),
        journey: raw.kind.journey().map(Cow::Borrowed),
        method: Cow::Borrowed(&raw.method),
        path: Cow::Borrowed(&raw.path),
        query: raw.query.as_deref().map(Cow::Borrowed),
        headers: Cow::Borrowed(stored_as.headers_json.as_deref().unwrap_or(&raw.headers_json)),
        remote_addr: raw.remote_addr.as_deref().map(Cow::Borrowed),
        peer_addr: raw.peer_addr.as_deref().map(Cow::Borrowed),
        content_type: raw.content_type.as_deref().map(Cow::Borrowed),
        body_sha256: Cow::Borrowed(&raw.body_sha256),
        pseudonymised: stored_as.pseudonymised,
        body_hidden: stored_as.body_hidden,
        answer_status: stored_as.answer_status,
    };
    // Serialising plain strings and numbers into memory cannot fail.
    let json = serde_json::to_vec(&envelope).unwrap_or_default();
    let mut framed = BytesMut::with_capacity(4 + json.len() + raw.body.len());
    framed.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    framed.put_slice(&json);
    framed.put_slice(&raw.body);
    framed.freeze()
}

/// The request in `payload`, at stream sequence `seq`.
pub fn decode(seq: u64, payload: &Bytes) -> Result<StoredRequest, RecordError> {
    let length = payload.get(..4).ok_or(RecordError::Truncated)?;
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    let json = payload.get(4..4 + length).ok_or(RecordError::Truncated)?;
    let envelope: Envelope<'_> = serde_json::from_slice(json)?;
    if envelope.v > VERSION {
        return Err(RecordError::TooNew(envelope.v));
    }
    let journey = envelope.journey.map(Cow::into_owned);
    let kind = RequestKind::from_stored(&envelope.kind, journey)
        .ok_or_else(|| RecordError::Kind(envelope.kind.clone().into_owned()))?;
    let received_at = DateTime::<Utc>::from_timestamp_micros(envelope.received_at_us)
        .ok_or(RecordError::Time(envelope.received_at_us))?;
    let request = RawRequest {
        received_at,
        source: envelope.source.into_owned(),
        kind,
        method: envelope.method.into_owned(),
        path: envelope.path.into_owned(),
        query: envelope.query.map(Cow::into_owned),
        headers_json: envelope.headers.into_owned(),
        remote_addr: envelope.remote_addr.map(Cow::into_owned),
        peer_addr: envelope.peer_addr.map(Cow::into_owned),
        content_type: envelope.content_type.map(Cow::into_owned),
        body: payload.slice(4 + length..),
        body_sha256: envelope.body_sha256.into_owned(),
    };
    Ok(StoredRequest {
        seq: i64::try_from(seq).unwrap_or(i64::MAX),
        request,
        pseudonymised: envelope.pseudonymised,
        body_hidden: envelope.body_hidden,
        // The stream keeps every body until its `max_age`.
        body_dropped: false,
        answer_status: envelope.answer_status,
    })
}

/// The `Nats-Msg-Id` of a request: a digest of what the sender chose (source, route, method,
/// path, query, body), not of when it arrived, so a resend inside the stream's duplicate
/// window is stored once.
pub fn message_id(raw: &RawRequest) -> String {
    let mut hash = Sha256::new();
    for part in [
        raw.source.as_bytes(),
        raw.kind.as_str().as_bytes(),
        raw.kind.journey().unwrap_or("").as_bytes(),
        raw.method.as_bytes(),
        raw.path.as_bytes(),
        raw.query.as_deref().unwrap_or("").as_bytes(),
        raw.body_sha256.as_bytes(),
    ] {
        // Length-prefixed, so no two different requests give the same input.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::sha256_hex;

    fn request(body: &'static [u8]) -> RawRequest {
        RawRequest {
            received_at: Utc::now(),
            source: "prod".into(),
            kind: RequestKind::of_path("/iterable/prod/journey/welcome"),
            method: "POST".into(),
            path: "/iterable/prod/journey/welcome".into(),
            query: Some("a=1".into()),
            headers_json: r#"{"user-agent":"Iterable"}"#.into(),
            remote_addr: Some("203.0.113.9".into()),
            peer_addr: None,
            content_type: Some("application/json".into()),
            body: Bytes::from_static(body),
            body_sha256: sha256_hex(body),
        }
    }

    #[test]
    fn a_record_reads_back_as_the_request_it_was() {
        let raw = request(b"{\"email\":\"a@example.com\"}\n\0binary");
        let stored_as = StoredAs { pseudonymised: true, ..StoredAs::default() };
        let stored = decode(42, &encode(&raw, &stored_as)).unwrap();
        assert_eq!(stored.seq, 42);
        assert!(stored.pseudonymised && !stored.body_hidden && !stored.body_dropped);
        let back = stored.request;
        assert_eq!(back.body, raw.body);
        assert_eq!(back.kind, raw.kind);
        assert_eq!(back.received_at.timestamp_micros(), raw.received_at.timestamp_micros());
        assert_eq!((back.query, back.remote_addr), (raw.query, raw.remote_addr));
        assert_eq!(back.headers_json, raw.headers_json);
    }

    #[test]
    fn hidden_headers_replace_the_received_ones() {
        let raw = request(b"{}");
        let stored_as = StoredAs { headers_json: Some("{}".into()), ..StoredAs::default() };
        assert_eq!(decode(1, &encode(&raw, &stored_as)).unwrap().request.headers_json, "{}");
    }

    #[test]
    fn a_foreign_or_cut_message_is_an_error_not_a_request() {
        let whole = encode(&request(b"{}"), &StoredAs::default());
        assert!(matches!(decode(1, &whole.slice(..10)), Err(RecordError::Truncated)));
        assert!(decode(1, &Bytes::from_static(b"\0\0\0\x02{}")).is_err());
        assert!(matches!(decode(1, &Bytes::from_static(b"ab")), Err(RecordError::Truncated)));
    }

    #[test]
    fn the_message_id_follows_the_content_not_the_arrival() {
        let (first, mut resent) = (request(b"{}"), request(b"{}"));
        resent.received_at = first.received_at + chrono::Duration::seconds(30);
        resent.remote_addr = Some("198.51.100.1".into());
        assert_eq!(message_id(&first), message_id(&resent));
        assert_ne!(message_id(&first), message_id(&request(b"{ }")));
        let mut other_query = request(b"{}");
        other_query.query = Some("a=2".into());
        assert_ne!(message_id(&first), message_id(&other_query));
    }
}
