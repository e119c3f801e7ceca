//! The deduplication key. Iterable has no delivery id and resends the same body on retry, so
//! an event's id is derived from what it is: SHA-256 over the source name and the event's
//! canonical JSON (object keys sorted, no insignificant whitespace), truncated to 128 bits and
//! written as 32 hex characters, after a 10-hex-digit prefix holding the event's `createdAt`
//! in epoch seconds (zeros when it has none). 42 characters in all, fixed width.
//!
//! Why the prefix: a bare hash is uniformly random, so every insert into the `event_id`
//! primary-key index lands on a different B-tree page, and a group commit of N events writes
//! about N index pages to the WAL. Events arrive close to their `createdAt`, so with the
//! prefix the inserts of one commit share a few pages at the end of the index. On the ingest
//! benchmark this nearly halved commit time (see BENCHMARKS.md). The prefix is part of the
//! event's content, so the id stays deterministic: a resend gets the same id.
//!
//! The trade-off: two genuinely distinct events with byte-identical content collapse into one
//! row. Iterable events carry `createdAt` to the second plus message, campaign and user ids, so
//! such twins are not distinguishable by anyone downstream either. Retries, which do happen,
//! collapse as they should. 128 bits keep the index small while a collision stays out of
//! reach (about 2^64 events before one is likely).

use std::fmt;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A deterministic event id; only [`EventId::derive`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub fn derive(source: &str, event: &Value, created_at: Option<DateTime<Utc>>) -> Self {
        let mut hasher = HashWriter(Sha256::new());
        hasher.0.update(source.as_bytes());
        // A separator no source name contains, so `ab` + `c…` never hashes like `a` + `bc…`.
        hasher.0.update([0u8]);
        write_canonical(&mut hasher, event);
        let digest = hasher.0.finalize();
        // Clamped so times before 1970 or after year 36812 keep the fixed width.
        let seconds = created_at.map_or(0, |t| t.timestamp().clamp(0, 0xff_ffff_ffff));
        EventId(format!("{seconds:010x}{}", hex::encode(&digest[..16])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Feeds written bytes straight into the hash, so the canonical form is never allocated.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `value` with object keys sorted explicitly. serde_json's own order depends on whether
/// any crate in the build enables its `preserve_order` feature; the id must not.
fn write_canonical(out: &mut HashWriter, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.0.update(b"{");
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.0.update(b",");
                }
                write_scalar(out, &Value::String(key.clone()));
                out.0.update(b":");
                write_canonical(out, item);
            }
            out.0.update(b"}");
        }
        Value::Array(items) => {
            out.0.update(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.0.update(b",");
                }
                write_canonical(out, item);
            }
            out.0.update(b"]");
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut HashWriter, value: &Value) {
    // Writing into a hasher cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(source: &str, text: &str) -> EventId {
        EventId::derive(source, &serde_json::from_str(text).unwrap(), None)
    }

    #[test]
    fn ids_sort_by_event_time() {
        let body = serde_json::json!({"eventName": "emailOpen"});
        let at = |s| DateTime::from_timestamp(s, 0);
        let early = EventId::derive("s", &body, at(1_480_710_064));
        let late = EventId::derive("s", &body, at(1_480_710_065));
        assert!(early.as_str() < late.as_str());
        assert_eq!(early.as_str().len(), 42);
        assert!(early.as_str().starts_with("005841d7b0"), "{early}");
        assert_eq!(&early.as_str()[10..], &late.as_str()[10..]);
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = id("s", r#"{"eventName":"emailOpen","dataFields":{"a":1,"b":[1,{"y":2,"x":1}]}}"#);
        let b = id(
            "s",
            r#"{ "dataFields" : { "b" : [1, {"x":1, "y":2}], "a" : 1 }, "eventName" : "emailOpen" }"#,
        );
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 42);
    }

    #[test]
    fn source_and_content_matter() {
        let body = r#"{"eventName":"emailOpen"}"#;
        assert_ne!(id("a", body), id("b", body));
        assert_ne!(id("a", body), id("a", r#"{"eventName":"emailClick"}"#));
        assert_ne!(id("a", r#"{"n":[1,2]}"#), id("a", r#"{"n":[2,1]}"#), "array order matters");
    }
}
