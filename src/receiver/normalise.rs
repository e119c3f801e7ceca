//! Running the pipeline for a handler: inline for the small bodies Iterable sends, on tokio's
//! blocking pool for large ones, so that a large body never holds an async worker (and with
//! it `/healthz` and every other connection on that worker) while it is normalised.

use super::{AcceptedRequest, ReceiveError};
use crate::pipeline::{self, Outcome, PseudonymKey};
use crate::spool::SpoolError;

/// Bodies above this are normalised on the blocking pool. Iterable's events are one to a few
/// KiB and take about 20 µs; handing one to another thread costs a wake-up and two
/// cross-thread hand-overs, a large share of that, so they stay inline. The worst body,
/// made only of personal values, takes about 0.5 ms a KiB (975 KB: 0.45 s on a loaded
/// two-core machine, `bench/pseudonymise.rs`), so at this size a worker is held for a few
/// milliseconds at most, past it for up to the whole body limit's worth.
pub(super) const INLINE_MAX_BODY_BYTES: usize = 16 * 1024;

/// The request's events and failures, with its source's key. Hands the request back, since
/// the blocking pool needs to own what it works on.
pub(super) async fn normalise(
    accepted: AcceptedRequest,
    key: Option<&PseudonymKey>,
) -> Result<(AcceptedRequest, Outcome), ReceiveError> {
    if accepted.raw().body.len() <= INLINE_MAX_BODY_BYTES {
        let outcome = pipeline::normalise_with(accepted.raw(), key);
        return Ok((accepted, outcome));
    }
    let key = key.cloned();
    let work = move || {
        let outcome = pipeline::normalise_with(accepted.raw(), key.as_ref());
        (accepted, outcome)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => Ok(done),
        // A panic goes on as it would have inline; cancelled only means the runtime is
        // shutting down, when nothing more will be stored.
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(ReceiveError::Spool(SpoolError::Closed)),
        },
    }
}
