//! What a connection's timer reads: whether a request is in flight, and since when the
//! connection has been idle. Written by the service on every request, so only atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// `idle_since` before the first request has finished.
const NEVER: u64 = u64::MAX;

/// One connection's requests, shared by its service and its timer.
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds after `accepted` when the last request finished, or [`NEVER`].
    idle_since: AtomicU64,
}

/// What the timer should do with its connection now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Check again then.
    WaitUntil(Instant),
    /// No request has reached the service within the header timeout: nothing to finish.
    Unused,
    /// No request in flight for the idle timeout.
    Idle,
}

impl Activity {
    pub(super) fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Activity {
            accepted,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(NEVER),
        })
    }

    /// Marks a request as in flight until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Whether a request has ever reached the service on this connection.
    pub(super) fn ever_used(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
            || self.idle_since.load(Ordering::Acquire) != NEVER
    }

    pub(super) fn verdict(&self, now: Instant, first_head: Duration, idle: Duration) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::WaitUntil(now + idle);
        }
        let since = match self.idle_since.load(Ordering::Acquire) {
            NEVER => {
                let deadline = self.accepted + first_head;
                // A first request may come and go before the deadline: look again within an
                // idle timeout, so its idle clock is not overlooked.
                return if now >= deadline {
                    Verdict::Unused
                } else {
                    Verdict::WaitUntil(deadline.min(now + idle))
                };
            }
            nanos => self.accepted + Duration::from_nanos(nanos),
        };
        let deadline = since + idle;
        if now >= deadline { Verdict::Idle } else { Verdict::WaitUntil(deadline) }
    }
}

/// A request in flight; dropping it (the response is ready) starts the idle clock.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // Nanoseconds fit in a u64 for 584 years of connection.
        let nanos = activity.accepted.elapsed().as_nanos() as u64;
        // Stored before the decrement, so a timer that sees no request in flight sees this too.
        activity.idle_since.store(nanos, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn unused_then_in_flight_then_idle() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(activity.verdict(start, HEAD, IDLE), Verdict::WaitUntil(start + HEAD));
        let early = activity.verdict(start, HEAD, Duration::from_secs(1));
        assert_eq!(early, Verdict::WaitUntil(start + Duration::from_secs(1)));
        assert_eq!(activity.verdict(start + HEAD, HEAD, IDLE), Verdict::Unused);
        assert!(!activity.ever_used());

        let request = activity.begin();
        assert!(activity.ever_used());
        let later = start + HEAD * 2;
        assert_eq!(activity.verdict(later, HEAD, IDLE), Verdict::WaitUntil(later + IDLE));
        drop(request);
        let now = Instant::now();
        match activity.verdict(now, HEAD, IDLE) {
            Verdict::WaitUntil(at) => assert!(at > start + IDLE && at <= now + IDLE, "{at:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(activity.verdict(now + IDLE, HEAD, IDLE), Verdict::Idle);
        assert!(activity.ever_used());
    }
}
