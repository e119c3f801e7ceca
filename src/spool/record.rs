//! One request as the spool keeps it: the `raw_requests` row, and the input of the pipeline
//! both when it arrives and when it is replayed.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct RawRequest {
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub method: String,
    pub path: String,
    /// The query string without `?`, as received (still percent-encoded).
    pub query: Option<String>,
    /// JSON object of the headers worth keeping; secrets are removed before this is built.
    pub headers_json: String,
    /// The client: the connection's peer, or the address a trusted proxy forwarded.
    pub remote_addr: Option<String>,
    /// The connection's peer (the proxy, when one forwarded the request).
    pub peer_addr: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The hex SHA-256 of the body, stored so users can spot identical resends.
    pub body_sha256: String,
}

/// How a request's `raw_requests` row is kept, as its source's options decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredAs {
    /// Its rows hold keyed digests of personal fields; replaying it needs the source's key.
    pub pseudonymised: bool,
    /// `Some(digest)`: the body is not kept, and `digest` replaces its `body_sha256`.
    pub dropped_body_digest: Option<String>,
}

impl RawRequest {
    /// `received_at` as stored: RFC 3339 UTC with microseconds, fixed width so text order is
    /// time order.
    pub fn received_at_text(&self) -> String {
        format_time(&self.received_at)
    }

    /// The decoded query parameters, in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value)
    }
}

/// The one text form of a time in every table: RFC 3339, UTC, microseconds, `Z`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The hex SHA-256 of a body.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}
