//! The inspector's JSON API. Each call reads the store on a blocking thread through a
//! read-only connection of its own, with a time limit; lists are newest first and paged by
//! `before` (the `next_before` of the previous page).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use chrono::Utc;
use rusqlite::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Inspector};
use crate::iterable::{KNOWN_EVENTS, parse_timestamp};
use crate::pipeline::PseudonymKey;
use crate::sinks::batch::{Batch, Cell};
use crate::sinks::sqlite::replay::{ReplayError, replay_stoppable};
use crate::spool::inspect::{Bucket, Carried, OutcomeFilter, RequestFilter, ScanBounds};
use crate::spool::{Selection, SpoolError, SpoolReader};

/// How long one call may read; a filter that would scan longer is told to narrow.
const QUERY_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Requests per page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 50;
/// The longest `window` of `/api/stats`.
const MAX_STATS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

type ApiResult = Result<Json<Value>, ApiError>;

/// What the page needs to know once: the sources, where webhooks go, the known event names.
pub(super) async fn meta(State(inspector): State<Arc<Inspector>>) -> ApiResult {
    let config = &inspector.config;
    let sources: Vec<Value> = config
        .sources
        .iter()
        .map(|source| {
            json!({
                "name": source.name,
                "auth": source.auth.mode(),
                "url": format!("{}/iterable/{}", inspector.webhook_base, source.name),
            })
        })
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "webhook_base": inspector.webhook_base,
        "sources": sources,
        "event_names": KNOWN_EVENTS.iter().map(|known| known.name).collect::<Vec<_>>(),
        "log": if config.spool.jetstream().is_some() { "jetstream" } else { "sqlite" },
        "store": inspector.db_path.display().to_string(),
        "token_required": inspector.token_digest.is_some(),
        "max_page": crate::spool::inspect::MAX_PAGE,
        "scan_window": crate::spool::inspect::SCAN_WINDOW,
    })))
}

/// `GET /api/requests`' parameters; an empty one is no filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestsQuery {
    limit: Option<usize>,
    before: Option<i64>,
    after: Option<i64>,
    source: Option<String>,
    event: Option<String>,
    outcome: Option<String>,
    /// An email address or a user id (`user` is the same filter).
    email: Option<String>,
    user: Option<String>,
    q: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

pub(super) async fn requests(
    State(inspector): State<Arc<Inspector>>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(bad_query)?;
    let outcome = match given(query.outcome) {
        None => None,
        Some(name) => Some(
            serde_json::from_value::<OutcomeFilter>(Value::String(name.clone())).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "`outcome` = `{name}` is not one of events, failed, journey, duplicate, \
                         pending"
                    ),
                )
            })?,
        ),
    };
    let who = match (given(query.email), given(query.user)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give `email` or `user`, not both: each matches emails and user ids alike",
            ));
        }
        (email, user) => email.or(user).map(|who| inspector.spellings(&who)).unwrap_or_default(),
    };
    let filter = RequestFilter {
        before: query.before,
        after: query.after,
        limit: query.limit.unwrap_or(DEFAULT_PAGE),
        source: given(query.source),
        event: given(query.event),
        outcome,
        who,
        // Searched as given: spaces at either end may be what is looked for.
        text: query.q.filter(|q| !q.is_empty()),
        since: time_param("since", query.since)?,
        until: time_param("until", query.until)?,
        bounds: ScanBounds::default(),
    };
    let page = read(&inspector, move |reader| reader.requests(&filter)).await?;
    Ok(Json(json!(page)))
}

/// `GET /api/requests/{seq}`: the request whole, its rows, and for events it carried that an
/// earlier request was first to bring (Iterable's resends), that request.
pub(super) async fn request(
    State(inspector): State<Arc<Inspector>>,
    Path(seq): Path<String>,
) -> ApiResult {
    let seq: i64 = seq.parse().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("`{seq}` is not a request's seq"))
    })?;
    let keys = inspector.keys();
    let detail = read(&inspector, move |reader| {
        let Some(mut detail) = reader.request(seq)? else { return Ok(None) };
        detail.carried_earlier = carried_earlier(reader, seq, &detail.events, &keys)?;
        Ok(Some(detail))
    })
    .await?;
    match detail {
        Some(detail) => Ok(Json(json!(detail))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no request has seq {seq}"))),
    }
}

/// The events the request carries that are in the store from an earlier request.
fn carried_earlier(
    reader: &SpoolReader,
    seq: i64,
    own: &[serde_json::Map<String, Value>],
    keys: &HashMap<String, PseudonymKey>,
) -> Result<Vec<Carried>, SpoolError> {
    let Some(stored) = reader.read_one(seq)? else { return Ok(Vec::new()) };
    // Without the source's key its ids cannot be computed; the detail still shows the rest.
    let Ok(batch) = Batch::build(seq - 1, std::slice::from_ref(&stored), keys) else {
        return Ok(Vec::new());
    };
    let index = batch.events.table.position("event_id").unwrap_or(0);
    let ids: Vec<String> = batch
        .events
        .rows
        .iter()
        .filter_map(|row| match row.cells.get(index) {
            Some(Cell::Text(id)) => Some(id.clone()),
            _ => None,
        })
        .filter(|id| {
            !own.iter().any(|event| event.get("event_id") == Some(&Value::from(id.as_str())))
        })
        .collect();
    Ok(reader
        .carriers(&ids)?
        .into_iter()
        .map(|(event_id, first_seq)| Carried { event_id, first_seq })
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FailedQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/failed`: `failed_events`, newest first, with their reasons.
pub(super) async fn failed(
    State(inspector): State<Arc<Inspector>>,
    query: Result<Query<FailedQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let page = read(&inspector, move |reader| reader.failed(query.before, limit)).await?;
    Ok(Json(json!(page)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    /// `30m`, `1h`, `24h`, `7d`; 1 hour by default.
    window: Option<String>,
    /// `minute` or `hour`; by default minutes up to a 3-hour window, hours beyond.
    bucket: Option<String>,
}

/// `GET /api/stats`: events per minute (or hour) by event name over the window.
pub(super) async fn stats(
    State(inspector): State<Arc<Inspector>>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(bad_query)?;
    let window = match given(query.window) {
        None => chrono::TimeDelta::hours(1),
        Some(text) => parse_window(&text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`window` = `{text}` must look like `30m`, `1h` or `7d`, at most `7d`"),
            )
        })?,
    };
    let bucket = match given(query.bucket).as_deref() {
        None if window <= chrono::TimeDelta::hours(3) => Bucket::Minute,
        None | Some("hour") => Bucket::Hour,
        Some("minute") => Bucket::Minute,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`bucket` = `{other}` is not `minute` or `hour`"),
            ));
        }
    };
    let from = Utc::now() - window;
    let cache = Arc::clone(&inspector);
    let stats = read(&inspector, move |reader| cache.stats.stats(reader, from, bucket)).await?;
    Ok(Json(json!(stats)))
}

fn parse_window(text: &str) -> Option<chrono::TimeDelta> {
    let unit = text.chars().last()?;
    let number = &text[..text.len() - unit.len_utf8()];
    let number: i64 = number.parse().ok().filter(|&n| n > 0)?;
    let window = match unit {
        'm' => chrono::TimeDelta::try_minutes(number)?,
        'h' => chrono::TimeDelta::try_hours(number)?,
        'd' => chrono::TimeDelta::try_days(number)?,
        _ => return None,
    };
    (window <= MAX_STATS_WINDOW).then_some(window)
}

/// `GET /api/sinks`: each sink's position, lag and last error.
pub(super) async fn sinks(State(inspector): State<Arc<Inspector>>) -> ApiResult {
    let (lags, last_seq) =
        read(&inspector, |reader| Ok((reader.lags(Utc::now())?, reader.last_seq()?))).await?;
    Ok(Json(json!({ "last_seq": last_seq, "sinks": lags })))
}

/// `POST /api/replay`'s body: one request, or every request with failures.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    seq: Option<i64>,
    #[serde(default)]
    failed: bool,
}

/// `POST /api/replay`: re-reads requests with the current normaliser and rewrites their rows,
/// as `hookhouse replay` does (and, like it, sends the other sinks back to load them again).
pub(super) async fn replay(
    State(inspector): State<Arc<Inspector>>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            format!(
                "send `{{\"seq\": N}}` or `{{\"failed\": true}}` as application/json: {}",
                rejection.body_text()
            ),
        )
    })?;
    let selection = match (body.seq, body.failed) {
        (Some(seq), false) => Selection::Seqs(seq, seq),
        (None, true) => Selection::Failed,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "send exactly one of `{\"seq\": N}` or `{\"failed\": true}`",
            ));
        }
    };
    if inspector.config.spool.jetstream().is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "with a JetStream log, replay from the command line: `hookhouse replay --config FILE \
             --seq A..B`",
        ));
    }
    // Held by the replay itself (not this handler), so a client that goes away mid-replay does
    // not let a second one start beside it.
    let Ok(one_at_a_time) = Arc::clone(&inspector.replaying).try_lock_owned() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a replay is running; try again when it ends",
        ));
    };
    if let Some(seq) = body.seq {
        let summary = read(&inspector, move |reader| reader.summary(seq)).await?;
        match summary {
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no request has seq {seq}"),
                ));
            }
            Some(summary) if summary.body_dropped => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "request {seq} was stored without its body (`drop_raw_bodies`): there is \
                         nothing to read again"
                    ),
                ));
            }
            Some(summary) if summary.outcome == "pending" => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("request {seq} is not loaded yet: its rows follow in a moment"),
                ));
            }
            Some(_) => {}
        }
    }
    let db_path = inspector.db_path.clone();
    let keys = inspector.keys();
    let stop = inspector.stop.clone();
    let report = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = one_at_a_time;
        // Between batches: a shutdown does not wait for a long replay (it is idempotent, and
        // what it did is committed).
        replay_stoppable(&db_path, &selection, &keys, |_, _| {}, || stop.is_cancelled())
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the replay's thread failed"))?;
    match report {
        Ok(report) => {
            inspector.stats.clear();
            tracing::info!(
                requests = report.requests,
                events = report.events,
                failures_before = report.failures_before,
                failures_after = report.failures_after,
                altered_bodies_left_out = report.altered_total,
                "replayed from the inspector"
            );
            Ok(Json(json!(report)))
        }
        Err(ReplayError::MissingKey(missing)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{missing}: add the source's `pseudonymise` key to the configuration"),
        )),
        Err(ReplayError::Store(err)) => Err(store_error(err)),
    }
}

pub(super) async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("`{method} {}` is not an inspector call (see the README's list)", uri.path()),
    )
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("nothing at `{}` on the inspector", uri.path()))
}

impl Inspector {
    /// The sources' pseudonymisation keys, by name, which replay and ids need.
    fn keys(&self) -> HashMap<String, PseudonymKey> {
        self.config
            .sources
            .iter()
            .filter_map(|source| Some((source.name.clone(), source.pseudonymise.clone()?)))
            .collect()
    }
}

/// Runs `work` on a read-only connection on a blocking thread.
async fn read<T: Send + 'static>(
    inspector: &Inspector,
    work: impl FnOnce(&SpoolReader) -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, ApiError> {
    let path = inspector.db_path.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = SpoolReader::open(&path)?;
        reader.limit_query_time(QUERY_TIME_LIMIT)?;
        reader.in_snapshot(work)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the query's thread failed"))?
    .map_err(store_error)
}

fn store_error(err: SpoolError) -> ApiError {
    match err {
        SpoolError::Missing(path) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no store at `{path}` yet: it is made when the first request is stored (with a \
                 JetStream log, at the first load into `[sinks.sqlite]`)"
            ),
        ),
        SpoolError::Read(err)
            if err.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) =>
        {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the query took longer than {} s: narrow it (a time range, a source, an \
                     email)",
                    QUERY_TIME_LIMIT.as_secs()
                ),
            )
        }
        other => {
            let message =
                std::iter::successors(Some(&other as &(dyn std::error::Error + 'static)), |err| {
                    err.source()
                })
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(": ");
            tracing::warn!(error = %message, "an inspector query failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the store failed: hookhouse's log says why",
            )
        }
    }
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// A parameter with something in it.
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn time_param(
    name: &str,
    value: Option<String>,
) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    let Some(text) = given(value) else { return Ok(None) };
    parse_timestamp(&Value::from(text.as_str())).map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{name}` = `{text}` is not a time such as `2026-12-02T05:00:00Z`"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(parse_window("30m"), Some(chrono::TimeDelta::minutes(30)));
        assert_eq!(parse_window("7d"), Some(chrono::TimeDelta::days(7)));
        for bad in ["", "m", "0h", "8d", "1w", "-1h", "1.5h", "1é", "é"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }
}
