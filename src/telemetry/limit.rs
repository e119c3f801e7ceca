//! A log line that can repeat thousands of times a second (refusals, 503s, failed commits) is
//! written at most once an interval per key, with the count of those left out since the last
//! one written. Counting every occurrence is the metrics' job; this keeps the log readable and
//! its volume bounded whatever a sender does.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one line per key and interval.
#[derive(Debug)]
pub struct LogLimit<K> {
    every: Duration,
    slots: Mutex<HashMap<K, Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    written: Instant,
    left_out: u64,
}

impl<K: Eq + Hash> LogLimit<K> {
    /// One line a second per key.
    pub fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    pub fn new(every: Duration) -> Self {
        LogLimit { every, slots: Mutex::new(HashMap::new()) }
    }

    /// Whether to write the line for `key` now: `Some(n)`, `n` the lines left out since the
    /// last one written, or `None` to leave this one out. The first line of a key is written
    /// at once. Keys must come from a small fixed set (reasons, configured names), never from
    /// a sender's text: each keeps a slot for the life of the process.
    pub fn admit(&self, key: K) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: K, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get_mut(&key) {
            Some(slot) if now.saturating_duration_since(slot.written) < self.every => {
                slot.left_out += 1;
                None
            }
            Some(slot) => {
                slot.written = now;
                Some(std::mem::take(&mut slot.left_out))
            }
            None => {
                slots.insert(key, Slot { written: now, left_out: 0 });
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_an_interval_per_key_with_the_count_left_out() {
        let limit = LogLimit::per_second();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(limit.admit_at("a", at(0)), Some(0));
        assert_eq!(limit.admit_at("b", at(1)), Some(0), "keys are limited apart");
        assert_eq!((0..5).filter_map(|n| limit.admit_at("a", at(10 + n))).count(), 0);
        assert_eq!(limit.admit_at("a", at(1_000)), Some(5));
        assert_eq!(limit.admit_at("a", at(1_500)), None);
        assert_eq!(limit.admit_at("a", at(2_100)), Some(1));
        assert_eq!(limit.admit_at("b", at(5_000)), Some(0));
    }
}
