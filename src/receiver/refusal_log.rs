//! Refusals in the log without a flood: the first of each reason is logged at once, then at
//! most one line a second per reason, saying how many were left out meanwhile. (401 and 403
//! have lines of their own, with the caller's address, in `auth.rs`.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ReceiveError;

const EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    /// By reason: when a line was last written, and refusals since then not written.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl RefusalLog {
    pub(super) fn note(&self, source: &str, err: &ReceiveError) {
        let reason = err.reason();
        if matches!(reason, "unauthorized" | "forbidden") {
            return;
        }
        let now = Instant::now();
        let suppressed = {
            let Ok(mut last) = self.last.lock() else { return };
            match last.get_mut(reason) {
                Some((at, skipped)) if now.duration_since(*at) < EVERY => {
                    *skipped += 1;
                    return;
                }
                Some((at, skipped)) => {
                    *at = now;
                    std::mem::take(skipped)
                }
                None => {
                    last.insert(reason, (now, 0));
                    0
                }
            }
        };
        tracing::info!(
            source,
            reason,
            status = err.status().as_u16(),
            error = %err,
            not_logged_since_last = suppressed,
            "request refused"
        );
    }
}
