//! A batch: requests read from the log after a cursor, and the rows of every logical table
//! made from them by the pipeline. Each sink loads a batch its own way; every sink gets the
//! same rows, built here, in the one place that maps the pipeline's types to columns.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};

use super::columns::{EVENTS, FAILED_EVENTS, JOURNEY_CALLS, RAW_REQUESTS, Table};
use crate::pipeline::{
    CanonicalEvent, EventId, Failure, JourneyCall, Outcome, PseudonymKey, normalise_with,
};
use crate::request::StoredRequest;

/// One value, typed by its column's [`super::columns::Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Json(String),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
}

/// One row of a [`Table`], its cells in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The request it came from.
    pub seq: i64,
    pub cells: Vec<Cell>,
    /// Set when a value does not fit its column's kind; such a row is refused whole.
    pub problem: Option<String>,
}

/// The rows of one table in a batch.
#[derive(Debug)]
pub struct Rows {
    pub table: &'static Table,
    pub rows: Vec<Row>,
}

/// Requests `after < seq <= through` and everything made from them. From the SQLite log a
/// batch is every request of that range; from a JetStream consumer, shared by competing
/// loaders, it is some of them: `seqs` says which.
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub through: i64,
    /// The requests' seqs, ascending.
    pub seqs: Vec<i64>,
    /// The requests' bodies, in bytes.
    pub body_bytes: usize,
    pub raw_requests: Rows,
    pub events: Rows,
    pub journey_calls: Rows,
    /// The normaliser's failures; a sink adds its own refusals.
    pub failures: Rows,
    /// Requests whose rows could not be made again (their body was dropped once every sink
    /// then running had loaded them): a sink keeps whatever rows it has of these.
    pub kept: Vec<i64>,
    /// Requests whose body and query hold keyed digests already (`StoredRequest::body_hidden`).
    pub hidden: Vec<i64>,
    /// Events and failures per source, for the counters of `/metrics`.
    pub per_source: HashMap<String, (u64, u64)>,
}

/// Why a batch could not be made.
#[derive(Debug, thiserror::Error)]
#[error(
    "stored request {seq} of source `{source_name}` was pseudonymised, and the configuration has \
     no `pseudonymise.key` for that source: its rows cannot be made without writing personal \
     values in plain"
)]
pub struct MissingKey {
    pub seq: i64,
    pub source_name: String,
}

impl Batch {
    /// Runs the pipeline on `requests` (read after `after`, in order, at least one), with the
    /// sources' keys.
    pub fn build(
        after: i64,
        requests: &[StoredRequest],
        keys: &HashMap<String, PseudonymKey>,
    ) -> Result<Batch, MissingKey> {
        let through = requests.last().map_or(after, |stored| stored.seq);
        let mut batch = Batch {
            after,
            through,
            seqs: requests.iter().map(|stored| stored.seq).collect(),
            body_bytes: requests.iter().map(|stored| stored.request.body.len()).sum(),
            raw_requests: Rows { table: &RAW_REQUESTS, rows: Vec::with_capacity(requests.len()) },
            events: Rows { table: &EVENTS, rows: Vec::with_capacity(requests.len()) },
            journey_calls: Rows { table: &JOURNEY_CALLS, rows: Vec::new() },
            failures: Rows { table: &FAILED_EVENTS, rows: Vec::new() },
            kept: Vec::new(),
            hidden: requests.iter().filter(|s| s.body_hidden).map(|s| s.seq).collect(),
            per_source: HashMap::new(),
        };
        // A resend carries an event already in the batch: its first request keeps it.
        let mut seen = HashMap::new();
        for stored in requests {
            batch.raw_requests.rows.push(raw_request_row(stored));
            let Some(outcome) = derive(stored, keys)? else {
                batch.kept.push(stored.seq);
                continue;
            };
            batch.add(stored, &outcome, &mut seen);
        }
        Ok(batch)
    }

    /// Adds a request's rows; `seen` holds the index in `events` of each event id so far.
    fn add(
        &mut self,
        stored: &StoredRequest,
        outcome: &Outcome,
        seen: &mut HashMap<EventId, usize>,
    ) {
        let (seq, request) = (stored.seq, &stored.request);
        for event in &outcome.events {
            match seen.entry(event.event_id.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(self.events.rows.len());
                    self.events.rows.push(event_row(seq, request.received_at, event));
                }
                // As the sinks' conflict clause does for a copy in a later batch.
                Entry::Occupied(first) => {
                    fill_route_columns(&mut self.events.rows[*first.get()], event)
                }
            }
        }
        for call in &outcome.journey_calls {
            self.journey_calls.rows.push(journey_call_row(stored, call));
        }
        for failure in &outcome.failures {
            self.failures.rows.push(failure_row(seq, request.received_at, failure));
        }
        let counts = self.per_source.entry(request.source.clone()).or_default();
        counts.0 += outcome.events.len() as u64;
        counts.1 += outcome.failures.len() as u64;
    }

    pub fn event_count(&self) -> usize {
        self.events.rows.len()
    }

    pub fn request_count(&self) -> usize {
        self.raw_requests.rows.len()
    }
}

/// What the pipeline makes of a stored request: `None` when its body is gone.
fn derive(
    stored: &StoredRequest,
    keys: &HashMap<String, PseudonymKey>,
) -> Result<Option<Outcome>, MissingKey> {
    if stored.body_dropped {
        return Ok(None);
    }
    // A hidden body holds the digests already; hashing them again would change every id.
    let key = if stored.pseudonymised && !stored.body_hidden {
        let key = keys.get(&stored.request.source).ok_or_else(|| MissingKey {
            seq: stored.seq,
            source_name: stored.request.source.clone(),
        })?;
        Some(key)
    } else {
        None
    };
    Ok(Some(normalise_with(&stored.request, key)))
}

fn text(value: &Option<String>) -> Cell {
    value.as_ref().map_or(Cell::Null, |text| Cell::Text(text.clone()))
}

fn json(value: &Option<String>) -> Cell {
    value.as_ref().map_or(Cell::Null, |text| Cell::Json(text.clone()))
}

fn int(value: Option<i64>) -> Cell {
    value.map_or(Cell::Null, Cell::Int)
}

/// A row whose cells were all built from typed values.
fn row(seq: i64, cells: Vec<Cell>) -> Row {
    Row { seq, cells, problem: None }
}

fn raw_request_row(stored: &StoredRequest) -> Row {
    let request = &stored.request;
    row(
        stored.seq,
        vec![
            Cell::Int(stored.seq),
            Cell::Time(request.received_at),
            Cell::Text(request.source.clone()),
            Cell::Text(request.kind.as_str().to_owned()),
            text(&request.kind.journey().map(str::to_owned)),
            Cell::Text(request.method.clone()),
            Cell::Text(request.path.clone()),
            text(&request.query),
            Cell::Json(request.headers_json.clone()),
            text(&request.remote_addr),
            text(&request.content_type),
            Cell::Bytes(request.body.to_vec()),
            Cell::Text(request.body_sha256.clone()),
            Cell::Bool(stored.body_dropped),
            Cell::Bool(stored.pseudonymised),
            text(&request.peer_addr),
            int(stored.answer_status.map(i64::from)),
        ],
    )
}

/// The 48 columns of `events`, in [`EVENTS`]' order.
fn event_row(seq: i64, received_at: DateTime<Utc>, event: &CanonicalEvent) -> Row {
    let f = &event.fields;
    let mut problem = None;
    let created_at = match &event.created_at {
        None => Cell::Null,
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(time) => Cell::Time(time.with_timezone(&Utc)),
            Err(_) => {
                problem = Some(format!("created_at: `{text}` is not an RFC 3339 time"));
                Cell::Null
            }
        },
    };
    let cells = vec![
        Cell::Text(event.event_id.as_str().to_owned()),
        Cell::Int(seq),
        Cell::Text(event.source.clone()),
        Cell::Text(event.event_name.clone()),
        text(&event.email),
        text(&event.user_id),
        created_at,
        Cell::Time(received_at),
        int(event.campaign_id),
        int(event.template_id),
        text(&event.message_id),
        text(&event.app_id),
        text(&event.platform),
        Cell::Json(event.data.clone()),
        Cell::Text(event.family.as_str().to_owned()),
        int(f.channel_id),
        int(f.message_type_id),
        int(f.workflow_id),
        int(f.experiment_id),
        int(f.content_id),
        text(&f.campaign_name),
        text(&f.template_name),
        text(&f.workflow_name),
        text(&f.email_subject),
        text(&f.url),
        text(&f.link_url),
        text(&f.user_agent),
        text(&f.user_agent_device),
        text(&f.ip),
        text(&f.city),
        text(&f.region),
        text(&f.country),
        text(&f.locale),
        text(&f.proxy_source),
        f.is_bot.map_or(Cell::Null, Cell::Bool),
        text(&f.recipient_state),
        text(&f.bounce_message),
        text(&f.reason),
        text(&f.unsub_source),
        text(&f.signup_source),
        json(&f.email_list_ids),
        json(&f.labels),
        text(&f.to_phone_number),
        text(&f.from_phone_number),
        text(&f.sms_message),
        text(&f.push_message),
        json(&f.transactional_data),
        json(&event.parse_warnings),
    ];
    Row { seq, cells, problem }
}

/// Fills a kept event row's NULL `app_id` and `platform` (the Snowplow route's, not the
/// body's) from a later copy of the event: [`super::columns::Merge::Update`]'s `filled`.
fn fill_route_columns(first: &mut Row, later: &CanonicalEvent) {
    for (column, value) in [("app_id", &later.app_id), ("platform", &later.platform)] {
        let cell = EVENTS.position(column).and_then(|index| first.cells.get_mut(index));
        if let Some(cell) = cell.filter(|cell| **cell == Cell::Null) {
            *cell = text(value);
        }
    }
}

fn journey_call_row(stored: &StoredRequest, call: &JourneyCall) -> Row {
    let request = &stored.request;
    row(
        stored.seq,
        vec![
            Cell::Int(stored.seq),
            Cell::Time(request.received_at),
            Cell::Text(request.source.clone()),
            Cell::Text(call.journey.clone()),
            Cell::Text(request.method.clone()),
            text(&call.email),
            text(&call.user_id),
            Cell::Json(call.data.clone()),
            int(stored.answer_status.map(i64::from)),
        ],
    )
}

fn failure_row(seq: i64, received_at: DateTime<Utc>, failure: &Failure) -> Row {
    row(
        seq,
        vec![
            Cell::Int(seq),
            Cell::Time(received_at),
            Cell::Text(failure.stage.as_str().to_owned()),
            Cell::Text(failure.reason.clone()),
            Cell::Null,
            Cell::Bytes(failure.body.clone()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored JSON request of `source` as the spool hands it to a sink.
    fn stored_request(
        seq: i64,
        source: &str,
        kind: crate::request::RequestKind,
        path: &str,
        query: Option<&str>,
        body: &'static str,
    ) -> StoredRequest {
        StoredRequest {
            seq,
            request: crate::request::RawRequest {
                received_at: Utc::now(),
                source: source.into(),
                kind,
                method: "POST".into(),
                path: path.into(),
                query: query.map(str::to_owned),
                headers_json: "{}".into(),
                remote_addr: None,
                peer_addr: None,
                content_type: Some("application/json".into()),
                body: bytes::Bytes::from(body),
                body_sha256: String::new(),
            },
            pseudonymised: false,
            body_hidden: false,
            body_dropped: false,
            answer_status: None,
        }
    }

    #[test]
    fn every_row_has_a_cell_per_declared_column() {
        use crate::request::RequestKind;
        let body = r#"[{"email":"a@x.io","eventName":"emailOpen","dataFields":{"createdAt":"2016-12-02 20:21:04 +00:00"}}, 7]"#;
        let stored = |seq, kind: RequestKind, path: &str| {
            stored_request(seq, "s", kind, path, Some("email=b%40x.io"), body)
        };
        let requests = [
            stored(1, RequestKind::System, "/iterable/s"),
            stored(2, RequestKind::Journey { name: "j".into() }, "/iterable/s/journey/j"),
        ];
        let batch = Batch::build(0, &requests, &HashMap::new()).unwrap();
        assert_eq!((batch.after, batch.through), (0, 2));
        for rows in [&batch.raw_requests, &batch.events, &batch.journey_calls, &batch.failures] {
            assert!(!rows.rows.is_empty(), "{} has rows", rows.table.name);
            for row in &rows.rows {
                assert_eq!(row.cells.len(), rows.table.columns.len(), "{}", rows.table.name);
                assert_eq!(row.problem, None);
            }
        }
        assert_eq!(batch.per_source["s"], (1, 1));
    }

    #[test]
    fn a_copy_in_the_same_batch_fills_the_route_columns_of_the_first() {
        use crate::request::{RequestKind, SNOWPLOW_PATH};
        let body = r#"{"email":"a@x.io","eventName":"emailOpen","dataFields":{"createdAt":"2016-12-02 20:21:04 +00:00","campaignId":7}}"#;
        let stored = |seq, snowplow: Option<&str>| match snowplow {
            Some(query) => stored_request(
                seq,
                "default",
                RequestKind::Snowplow,
                SNOWPLOW_PATH,
                Some(query),
                body,
            ),
            None => {
                stored_request(seq, "default", RequestKind::System, "/iterable/default", None, body)
            }
        };
        let route = |batch: &Batch| {
            let row = &batch.events.rows[0];
            let cell = |name| row.cells[EVENTS.position(name).unwrap()].clone();
            (row.seq, cell("app_id"), cell("platform"))
        };
        let shop = || Cell::Text("shop".into());
        let web = || Cell::Text("web".into());

        let native_first = [stored(1, None), stored(2, Some("aid=shop&p=web"))];
        let batch = Batch::build(0, &native_first, &HashMap::new()).unwrap();
        assert_eq!(batch.events.rows.len(), 1);
        assert_eq!(route(&batch), (1, shop(), web()), "the first row, filled");

        let snowplow_first = [stored(1, Some("aid=shop&p=web")), stored(2, None)];
        let batch = Batch::build(0, &snowplow_first, &HashMap::new()).unwrap();
        assert_eq!(route(&batch), (1, shop(), web()), "NULLs never replace a value");

        let two_apps = [stored(1, Some("p=mob")), stored(2, Some("aid=shop&p=web"))];
        let batch = Batch::build(0, &two_apps, &HashMap::new()).unwrap();
        assert_eq!(route(&batch), (1, shop(), Cell::Text("mob".into())), "the first value wins");
    }

    #[test]
    fn a_pseudonymised_request_needs_its_key() {
        let mut stored = stored_request(
            3,
            "private",
            crate::request::RequestKind::System,
            "/iterable/private",
            None,
            "",
        );
        stored.request.content_type = None;
        stored.pseudonymised = true;
        let err = Batch::build(0, std::slice::from_ref(&stored), &HashMap::new()).unwrap_err();
        assert_eq!(err.seq, 3);
        stored.body_dropped = true;
        let batch = Batch::build(0, &[stored], &HashMap::new()).unwrap();
        assert_eq!(batch.kept, vec![3]);
    }
}
