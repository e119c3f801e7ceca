//! Route handlers: gather the request, check it, store it, answer.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{Proof, authenticate};
use super::client_ip::client_ip;
use super::drain::refuse;
use super::normalise::{INLINE_MAX_BODY_BYTES, normalise};
use super::request::{BodyLimits, Incoming};
use super::{AppState, ReceiveError};
use crate::config::{SourceConfig, WORK_BYTES_PER_BODY_BYTE};
use crate::iterable::SNOWPLOW_SCHEMA_PREFIX;
use crate::metrics::{self, UNKNOWN_SOURCE};
use crate::request::{AcceptedRequest, StoredAs};
use crate::telemetry::SenderText;

/// `POST /iterable/{source}`: Iterable's system webhooks.
#[tracing::instrument(level = "debug", skip_all, fields(source = %SenderText(&source)))]
pub(super) async fn system_webhook(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let client = caller(&state, &incoming);
    store(&state, &source, Proof::Headers, client, incoming).await
}

/// `/iterable/{source}/journey/{journey}`: journey webhooks, any of GET, POST, PUT, PATCH or
/// DELETE, with a JSON, form or empty body.
#[tracing::instrument(
    level = "debug",
    skip_all,
    fields(source = %SenderText(&source), journey = %SenderText(&journey))
)]
pub(super) async fn journey(
    State(state): State<Arc<AppState>>,
    Path((source, journey)): Path<(String, String)>,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let client = caller(&state, &incoming);
    store(&state, &source, Proof::Headers, client, incoming).await
}

/// `POST /hooks/{secret}`: Stitch-style secret URLs; the secret names and authenticates the
/// source.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn secret_url(
    State(state): State<Arc<AppState>>,
    Path(secret): Path<String>,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let client = caller(&state, &incoming);
    // A blocked address is refused before its guess is looked up.
    if let Err(blocked) = state.auth_blocks.check(client) {
        let err = counted(&state, UNKNOWN_SOURCE, client, blocked);
        return Err(drained(&state, incoming.body, err).await);
    }
    let refused = || {
        state.auth_blocks.failed(client);
        let err =
            ReceiveError::Unauthorized { challenge: r#"Bearer realm="hookhouse""#.to_owned() };
        counted(&state, UNKNOWN_SOURCE, client, err)
    };
    // Only the secret as `secret new` printed it: a percent-encoded spelling would decode to
    // the same secret, but be copied as sent (by a proxy's `X-Original-URL`, say) where
    // masking the secret cannot find it.
    let as_printed = incoming.uri.path().strip_prefix("/hooks/") == Some(secret.as_str());
    let found = as_printed.then(|| state.secret_urls.lookup(&secret)).flatten();
    let Some((source, id)) = found else {
        let err = refused();
        return Err(drained(&state, incoming.body, err).await);
    };
    store(&state, &source, Proof::SecretUrl { id, secret: &secret }, client, incoming).await
}

/// `GET|POST /com.snowplowanalytics.iglu/v1?schema=iglu:com.iterable/system_webhook/...`:
/// the URL shape a Snowplow collector takes, so switching is a change of host name.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn snowplow(
    State(state): State<Arc<AppState>>,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let client = caller(&state, &incoming);
    let Some(source) = state.config.server.snowplow_source.clone() else {
        let err = counted(&state, UNKNOWN_SOURCE, client, ReceiveError::SnowplowDisabled);
        return Err(drained(&state, incoming.body, err).await);
    };
    let schema = form_urlencoded::parse(incoming.uri.query().unwrap_or("").as_bytes())
        .find(|(key, _)| key == "schema")
        .map(|(_, value)| value.into_owned());
    let bad_schema = match schema {
        Some(schema) if schema.starts_with(SNOWPLOW_SCHEMA_PREFIX) => None,
        Some(schema) => Some(format!(
            "unsupported schema `{schema}`: this path takes `{SNOWPLOW_SCHEMA_PREFIX}<version>`"
        )),
        None => Some(format!(
            "the `schema` query parameter is missing: use `{SNOWPLOW_SCHEMA_PREFIX}1-0-0`"
        )),
    };
    if let Some(reason) = bad_schema {
        let err = counted(&state, &source, client, ReceiveError::BadRequest(reason));
        return Err(drained(&state, incoming.body, err).await);
    }
    store(&state, &source, Proof::Headers, client, incoming).await
}

/// The path every webhook takes, counted in `/metrics` whatever its outcome. A blocked
/// address is refused before anything is compared; a wrong credential counts towards a block.
/// `client` is the caller after trusted proxies ([`caller`]), resolved once per request.
async fn store(
    state: &AppState,
    source_name: &str,
    proof: Proof<'_>,
    client: IpAddr,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let result = match state.auth_blocks.check(client) {
        Ok(()) => try_store(state, source_name, proof, client, incoming).await,
        Err(blocked) => Err(drained(state, incoming.body, blocked).await),
    };
    result.map_err(|err| {
        if matches!(err, ReceiveError::Unauthorized { .. }) {
            state.auth_blocks.failed(client);
        }
        counted(state, source_name, client, err)
    })
}

/// `err`, once the refused request's body has been read and dropped within
/// `server.max_body_bytes` (see `drain`).
async fn drained(state: &AppState, body: Body, err: ReceiveError) -> ReceiveError {
    refuse(body, state.config.server.max_body_bytes, err).await
}

/// The caller's address after trusted proxies, as authentication sees it.
pub(super) fn caller(state: &AppState, incoming: &Incoming) -> IpAddr {
    client_ip(incoming.remote.ip(), &incoming.headers, &state.config.server.trusted_proxies)
}

/// Counts a refusal (or a 503) for `/metrics`, logs it in aggregate and hands the error on.
/// `source` may be any text: a name that is not a configured source is counted and logged as
/// `unknown`.
fn counted(
    state: &AppState,
    source: &str,
    client: impl Into<Option<IpAddr>>,
    err: ReceiveError,
) -> ReceiveError {
    let source = state.metrics.source_label(source);
    if err.status().is_server_error() {
        state.metrics.unstored(source);
    } else {
        state.metrics.refused(source, err.reason());
    }
    state.refusal_log.note(source, client.into(), &err);
    err
}

/// Source, limits, authentication, pipeline, spool.
async fn try_store(
    state: &AppState,
    source_name: &str,
    proof: Proof<'_>,
    client: IpAddr,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let server = &state.config.server;
    let max_head = server.max_header_bytes.get();
    if incoming.head_len() > max_head {
        let err = ReceiveError::HeadersTooLarge { limit: max_head };
        return Err(drained(state, incoming.body, err).await);
    }
    let Some(source) = state.config.source(source_name) else {
        let err = ReceiveError::UnknownSource(source_name.to_owned());
        return Err(drained(state, incoming.body, err).await);
    };
    // Held until the request is stored: a body waiting for its commit is still in memory.
    let mut held = state.body_budget.reservation();
    let limits = BodyLimits {
        max_bytes: server.max_body_bytes,
        timeout: server.body_read_timeout,
        held: &mut held,
    };
    let keep_headers = &state.config.store.keep_headers;
    let accepted = authenticate(source, proof, client, keep_headers, incoming, limits).await?;
    // Counted only once the sender proved it may send, so strangers cannot use up the limit.
    if let Some(limit) = state.rate_limits.get(&source.name) {
        limit.take().map_err(|retry_after| ReceiveError::RateLimited { retry_after })?;
    }
    // A large body normalised here has its rows reserved with it, so the budget bounds what a
    // flood of large bodies costs in memory and not only their bytes on arrival; a small
    // body's are noise. (A plain source's rows are made by the sinks, in bounded batches.)
    let body_len = accepted.raw().body.len();
    if normalised_on_arrival(source) && body_len > INLINE_MAX_BODY_BYTES {
        held.add(body_len * WORK_BYTES_PER_BODY_BYTE)?;
    }
    // A journey that answers with data is answered from the store before the call is
    // stored, so the stored call records how it was answered.
    let journey = accepted.raw().kind.journey().map(str::to_owned);
    let answer = match (&journey, &state.answers) {
        (Some(journey), Some(answers)) => match source.journey_answer(journey) {
            Some(configured) => {
                let started = std::time::Instant::now();
                let answer = answers.answer(configured, accepted.raw()).await;
                let seconds = started.elapsed().as_secs_f64();
                state.metrics.answered(&source.name, journey, answer.status.as_u16(), seconds);
                Some(answer)
            }
            None => None,
        },
        _ => None,
    };
    let (accepted, mut stored_as) = keep_as(source, accepted).await?;
    stored_as.answer_status = match &answer {
        Some(answer) => Some(answer.status.as_u16()),
        None => journey.is_some().then_some(StatusCode::OK.as_u16()),
    };
    let seq = state.log.append(accepted, stored_as).await?;
    state.metrics.accepted(&source.name);
    if let Some(answer) = answer {
        let headers = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (HeaderName::from_static(SEQ_HEADER), HeaderValue::from(seq)),
        ];
        return Ok((answer.status, headers, Json(answer.body)).into_response());
    }
    // Formatted directly: this answer is on every request's path, and a JSON tree for two
    // fixed keys is allocation for nothing.
    let body = format!(r#"{{"status":"stored","seq":{seq}}}"#);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The header of a journey answer that names the stored call (its body is the answer's
/// fields, which Iterable reads, so the `seq` cannot be in it).
const SEQ_HEADER: &str = "hookhouse-seq";

/// Whether the source's requests go through the pipeline before they are stored (see
/// [`keep_as`]); a plain source's rows are made by the sinks.
fn normalised_on_arrival(source: &SourceConfig) -> bool {
    source.pseudonymise.is_some() || source.drop_raw_bodies
}

/// How the request is kept, as its source's options decide. A plain source's request is
/// stored as it came: its rows are made by the sinks, off the answer's path. A source with a
/// key or `drop_raw_bodies` needs the pipeline's verdict first:
/// - with a key, kept headers that repeat a personal value of the body are hidden;
/// - with `drop_raw_bodies`, a request every part of which became a row has its body emptied
///   once every sink has loaded it, and a failed one keeps its body for replay; its digest
///   stays, keyed when the source pseudonymises (a plain SHA-256 of a body whose other fields
///   are all stored would let anyone confirm a guessed address);
/// - with both, the log never holds the body in plain: it keeps the request with its
///   personal values hidden (`pipeline::hidden_request`) until the body goes.
async fn keep_as(
    source: &SourceConfig,
    accepted: AcceptedRequest,
) -> Result<(AcceptedRequest, StoredAs), ReceiveError> {
    if !normalised_on_arrival(source) {
        return Ok((accepted, StoredAs::default()));
    }
    let key = source.pseudonymise.as_ref();
    let (accepted, outcome, hidden) = normalise(accepted, key, source.drop_raw_bodies).await?;
    let drop_body = source.drop_raw_bodies && outcome.failures.is_empty();
    let raw = accepted.raw();
    let mut stored_as = StoredAs {
        pseudonymised: key.is_some(),
        dropped_body_digest: drop_body.then(|| match key {
            Some(key) => key.digest(&raw.body),
            None => raw.body_sha256.clone(),
        }),
        body_hidden: false,
        headers_json: outcome.headers_json,
        answer_status: None,
    };
    let accepted = match hidden.filter(|_| drop_body) {
        Some(hidden) => {
            stored_as.body_hidden = true;
            AcceptedRequest::authenticated(hidden)
        }
        None => accepted,
    };
    Ok((accepted, stored_as))
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 only while a request sent now would be stored.
///
/// A damaged store (the check at start found problems, or requests the sinks loaded are
/// missing) stays 200, with the damage in the body under `store`: requests are still stored
/// durably, and a 503 would only make Iterable retry until it gives up and a load balancer
/// stop sending, losing the events that are still stored well. The damage is for a person to
/// act on, alerted through `hookhouse_store_damaged`, not a reason to refuse traffic.
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.log.spool().map(|spool| spool.health());
    match state.log.readiness().await {
        Ok(queued) => {
            let mut body = json!({ "status": "ready", "queued": queued });
            if let Some(store) = store {
                body["store"] = json!(store);
            }
            Json(body).into_response()
        }
        Err(reason) => {
            let mut body = json!({ "status": "not ready", "reason": reason });
            if let Some(store) = store {
                body["store"] = json!(store);
            }
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
            response
        }
    }
}

/// HEAD (monitors, link checkers) on a path whose GET stores a request: answered, never stored.
pub(super) async fn head_not_stored() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /metrics`: Prometheus counters. Open to anyone who can reach the port, like
/// `/healthz`: it holds counts by configured source name, never a secret or a sender's text.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(spool) = state.log.spool() {
        state.metrics.free_disk(spool.free_disk_bytes());
        state.metrics.store_usage(
            spool.usage().as_ref(),
            &spool.pruned(),
            spool.longest_prune_step(),
        );
        let health = spool.health();
        let missing = health.seq_gap.as_ref().map_or(0, |gap| gap.missing());
        state.metrics.store_health(health.is_damaged(), missing, health.completed());
    }
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "failed to encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) async fn not_found(
    State(state): State<Arc<AppState>>,
    incoming: Incoming,
) -> ReceiveError {
    let client = caller(&state, &incoming);
    let err = counted(&state, UNKNOWN_SOURCE, client, ReceiveError::NotFound);
    drained(&state, incoming.body, err).await
}

/// A known path with a method it does not take; axum adds the `Allow` header, so the answer
/// stays a bare status rather than the error's JSON.
pub(super) async fn method_not_allowed(
    State(state): State<Arc<AppState>>,
    incoming: Incoming,
) -> StatusCode {
    let client = caller(&state, &incoming);
    let err = counted(&state, UNKNOWN_SOURCE, client, ReceiveError::MethodNotAllowed);
    let _ = drained(&state, incoming.body, err).await;
    StatusCode::METHOD_NOT_ALLOWED
}
