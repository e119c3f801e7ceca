//! The request record: one accepted HTTP request as the request log keeps it, and the input of
//! the pipeline both when it arrives and when a sink or a replay reads it back.
//!
//! It sits below the receiver, the pipeline, the spool and the sinks, and depends on none of
//! them: each of those speaks of requests in these types.

mod kind;

pub use kind::{RequestKind, SNOWPLOW_PATH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct RawRequest {
    pub received_at: DateTime<Utc>,
    pub source: String,
    /// Which route it came in by, and so how the pipeline reads it.
    pub kind: RequestKind,
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
    /// Its rows hold keyed digests of personal fields; deriving them needs the source's key.
    pub pseudonymised: bool,
    /// `Some(digest)`: the body is not to be kept once every sink has loaded the request, and
    /// `digest` then replaces its `body_sha256`.
    pub dropped_body_digest: Option<String>,
    /// The body and query already hold keyed digests in place of personal values (a source
    /// with a key whose body is dropped: not even the log holds it in plain).
    pub body_hidden: bool,
    /// Kept headers with the request's personal values hidden, when they held one; stored
    /// instead of [`RawRequest::headers_json`].
    pub headers_json: Option<String>,
    /// The status a journey call that answers with data was answered with (its answer is
    /// made before it is stored, so the row can say how it went).
    pub answer_status: Option<u16>,
}

/// A request the receiver has authenticated: the only thing the request log appends.
///
/// Made only by the receiver (`receiver::auth`), after the caller's address and credentials
/// were checked and the record's secrets removed.
#[derive(Debug)]
pub struct AcceptedRequest {
    raw: RawRequest,
}

impl AcceptedRequest {
    /// For the receiver alone: `raw` has passed every check and holds no secret.
    pub fn authenticated(raw: RawRequest) -> Self {
        AcceptedRequest { raw }
    }

    pub fn raw(&self) -> &RawRequest {
        &self.raw
    }

    pub fn into_raw(self) -> RawRequest {
        self.raw
    }
}

/// A request read back from the log, with where it lives and how it was kept.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Its place in the log: grows in commit order, never reused.
    pub seq: i64,
    pub request: RawRequest,
    /// Its rows hold keyed digests; deriving them needs the source's key.
    pub pseudonymised: bool,
    /// Its body and query hold those digests already: its rows are made without the key.
    pub body_hidden: bool,
    /// Its body is gone (a source's `drop_raw_bodies`): its rows cannot be derived again and
    /// a sink that has them keeps them.
    pub body_dropped: bool,
    /// For a journey call answered with data, the answer's status ([`StoredAs::answer_status`]).
    pub answer_status: Option<u16>,
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

/// Whether a stored body is still the one its `body_sha256` was made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    /// Its plain SHA-256 matches.
    Intact,
    /// It does not: the bytes changed after they were stored (a damaged file, an edit).
    Altered,
    /// Its digest is not a plain SHA-256 of what is stored: the body was dropped (the digest is
    /// of the body that was not kept) or hidden (a keyed digest of the original).
    Unverifiable,
}

/// Checks a stored body against its digest, as `raw_requests` keeps them.
pub fn check_body(
    body: &[u8],
    body_sha256: &str,
    body_dropped: bool,
    body_hidden: bool,
) -> BodyCheck {
    if body_dropped || body_hidden {
        return BodyCheck::Unverifiable;
    }
    if sha256_hex(body).eq_ignore_ascii_case(body_sha256) {
        BodyCheck::Intact
    } else {
        BodyCheck::Altered
    }
}

impl StoredRequest {
    /// [`check_body`] of this request.
    pub fn check_body(&self) -> BodyCheck {
        check_body(
            &self.request.body,
            &self.request.body_sha256,
            self.body_dropped,
            self.body_hidden,
        )
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
