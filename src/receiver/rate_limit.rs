//! Per-source rate limits: a token bucket per source (rate and burst both the configured
//! requests per second). A request over the limit gets 429 with `Retry-After` and is not
//! stored; Iterable retries it later. Thirty lines of our own rather than a crate: one bucket
//! per source, checked once per request, needs nothing more.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct RateLimit {
    per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    pub(super) fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        RateLimit {
            per_second,
            bucket: Mutex::new(Bucket { tokens: per_second, refilled: Instant::now() }),
        }
    }

    /// Takes one token, or says in how many whole seconds one will be there.
    pub(super) fn take(&self) -> Result<(), u64> {
        let mut bucket = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.per_second);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_rate_is_refused_with_a_wait() {
        let limit = RateLimit::new(3);
        assert!((0..3).all(|_| limit.take().is_ok()));
        assert_eq!(limit.take(), Err(1));
    }
}
