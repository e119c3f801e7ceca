//! What the inspector's views hold: the filters, and the pages and rows they answer with, as
//! the API serialises them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CANDIDATES, SCAN_WINDOW};

/// Which requests a page lists; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only `seq < before` (the next page).
    pub before: Option<i64>,
    /// Only `seq > after` (what arrived since the last look).
    pub after: Option<i64>,
    pub limit: usize,
    pub source: Option<String>,
    /// An event name, such as `emailOpen`.
    pub event: Option<String>,
    pub outcome: Option<OutcomeFilter>,
    /// An email address or a user id, as any of these spellings (the address, and its digest
    /// under each pseudonymising source's key); empty: no such filter.
    pub who: Vec<String>,
    /// Bytes the body or the query string contains, exactly.
    pub text: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub bounds: ScanBounds,
}

/// How much one page may examine (tests make them small).
#[derive(Debug, Clone, Copy)]
pub struct ScanBounds {
    /// Requests examined when no index serves the filter.
    pub scan_window: i64,
    /// Rows read from a filter's own index.
    pub candidates: usize,
}

impl Default for ScanBounds {
    fn default() -> Self {
        ScanBounds { scan_window: SCAN_WINDOW, candidates: CANDIDATES }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    /// It was the first to carry at least one event.
    Events,
    /// At least one part of it failed (the normaliser, or a sink that refused a row).
    Failed,
    /// A journey webhook call.
    Journey,
    /// Loaded, with nothing of its own: its events came earlier (Iterable resends).
    Duplicate,
    /// Not in the embedded tables yet.
    Pending,
}

/// One line of the list.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSummary {
    pub seq: i64,
    pub received_at: String,
    pub source: String,
    pub kind: &'static str,
    pub journey: Option<String>,
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body_bytes: i64,
    pub body_dropped: bool,
    /// The email or user id of its first event or journey call.
    pub who: Option<String>,
    pub events: Vec<NameCount>,
    pub failures: i64,
    pub journey_call: bool,
    /// `events`, `failed`, `partial` (events and failures), `journey`, `duplicate`, `pending`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct NameCount {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestPage {
    pub requests: Vec<RequestSummary>,
    /// Pass as `before` for the next page; `None` when nothing older matches.
    pub next_before: Option<i64>,
    /// The newest seq in the store, for a view that polls with `after`.
    pub last_seq: i64,
}

/// One request whole.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    pub summary: RequestSummary,
    /// Every column of its `raw_requests` row; the body as text when it is UTF-8 (else
    /// `body_base64`).
    pub request: Map<String, Value>,
    /// The `events` rows it was first to carry.
    pub events: Vec<Map<String, Value>>,
    pub journey_calls: Vec<Map<String, Value>>,
    pub failures: Vec<Map<String, Value>>,
    /// Each sink and whether it has loaded this request.
    pub loaded_by: Vec<SinkPosition>,
    /// Events it carried that an earlier request brought first (filled by the caller, which
    /// runs the pipeline for their ids).
    pub carried_earlier: Vec<Carried>,
}

/// An event a request carried that is in the store from an earlier request.
#[derive(Debug, Clone, Serialize)]
pub struct Carried {
    pub event_id: String,
    pub first_seq: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkPosition {
    pub sink: String,
    pub loaded: bool,
}

/// A row of `failed_events`, its body cut to a preview.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRow {
    pub id: i64,
    pub raw_seq: i64,
    pub received_at: String,
    pub source: Option<String>,
    pub stage: String,
    pub reason: String,
    /// The sink that refused it; `None` for the normaliser.
    pub sink: Option<String>,
    pub body_bytes: i64,
    pub body_preview: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedPage {
    pub failures: Vec<FailedRow>,
    pub next_before: Option<i64>,
}

/// Events (and failures) per time bucket, by event name.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// `minute` or `hour`.
    pub bucket: &'static str,
    pub from: String,
    pub to: String,
    /// Buckets before this were not counted yet: the call ran out of its time, newest first.
    /// Asking again goes on from the counts kept (`null`: the whole window is here).
    pub counted_from: Option<String>,
    pub counts: Vec<BucketCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketCount {
    /// The bucket's start, RFC 3339.
    pub at: String,
    /// The event's family (`email`, `push`, ...); `failed` for failures.
    pub family: String,
    pub event_name: String,
    pub count: i64,
}

/// How big each bucket of [`SpoolReader::stats`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Minute,
    Hour,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
        }
    }

    pub fn step(self) -> chrono::TimeDelta {
        match self {
            Bucket::Minute => chrono::TimeDelta::minutes(1),
            Bucket::Hour => chrono::TimeDelta::hours(1),
        }
    }
}
