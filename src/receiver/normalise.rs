//! Running the pipeline for a handler (only for sources with a key or `drop_raw_bodies`: a
//! plain source's rows are made by the sinks): inline for the small bodies Iterable sends, on tokio's
//! blocking pool for large ones, so that a large body never holds an async worker (and with
//! it `/healthz` and every other connection on that worker) while it is normalised.

use super::ReceiveError;
use crate::pipeline::{self, Outcome, PseudonymKey, hidden_request};
use crate::request::AcceptedRequest;
use crate::request::RawRequest;
use crate::spool::SpoolError;

/// Bodies above this are normalised on the blocking pool. Iterable's events are one to a few
/// KiB and take about 20 µs; handing one to another thread costs a wake-up and two
/// cross-thread hand-overs, a large share of that, so they stay inline. The worst body,
/// made only of personal values, takes about 0.5 ms a KiB (975 KB: 0.45 s on a loaded
/// two-core machine, `bench/pseudonymise.rs`), so at this size a worker is held for a few
/// milliseconds at most, past it for up to the whole body limit's worth.
pub(super) const INLINE_MAX_BODY_BYTES: usize = 16 * 1024;

/// The request's events and failures, with its source's key, and when `hide` the request
/// with its personal values hidden ([`hidden_request`]). Hands the request back, since the
/// blocking pool needs to own what it works on.
pub(super) async fn normalise(
    accepted: AcceptedRequest,
    key: Option<&PseudonymKey>,
    hide: bool,
) -> Result<(AcceptedRequest, Outcome, Option<RawRequest>), ReceiveError> {
    let work = move |accepted: AcceptedRequest, key: Option<&PseudonymKey>| {
        let outcome = pipeline::normalise_with(accepted.raw(), key);
        let hidden = match key {
            Some(key) if hide => hidden_request(accepted.raw(), key),
            _ => None,
        };
        (accepted, outcome, hidden)
    };
    if accepted.raw().body.len() <= INLINE_MAX_BODY_BYTES {
        return Ok(work(accepted, key));
    }
    let key = key.cloned();
    match tokio::task::spawn_blocking(move || work(accepted, key.as_ref())).await {
        Ok(done) => Ok(done),
        // A panic goes on as it would have inline; cancelled only means the runtime is
        // shutting down, when nothing more will be stored.
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(ReceiveError::Spool(SpoolError::Closed)),
        },
    }
}
