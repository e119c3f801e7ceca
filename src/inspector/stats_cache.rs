//! The chart's counts, kept per bucket once a bucket is complete, so that refreshing the page's
//! chart every few seconds reads only the newest minutes' events rather than the whole window's
//! (an hour of a busy store is hundreds of thousands of events).
//!
//! A bucket is complete once the embedded sink has loaded every request received in it. Kept
//! counts are read again after [`FRESH_FOR`], and all are dropped after a replay from the
//! inspector, since a replay can turn failures into events in old buckets (a `hookhouse replay`
//! from the command line shows in the chart within [`FRESH_FOR`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};

use crate::spool::inspect::{Bucket, BucketCount, Stats};
use crate::spool::{SpoolError, SpoolReader};

/// How long a complete bucket's counts are kept before they are read again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// Requests committed in one batch may differ in `received_at` by its milliseconds: a bucket is
/// complete only this long after the last loaded request's time.
const SETTLE: TimeDelta = TimeDelta::seconds(2);

#[derive(Debug, Default)]
pub(super) struct StatsCache {
    buckets: Mutex<HashMap<(Bucket, DateTime<Utc>), Kept>>,
}

#[derive(Debug)]
struct Kept {
    counts: Vec<BucketCount>,
    read_at: Instant,
}

impl StatsCache {
    /// Counts from the bucket holding `from` to now.
    pub(super) fn stats(
        &self,
        reader: &SpoolReader,
        from: DateTime<Utc>,
        bucket: Bucket,
    ) -> Result<Stats, SpoolError> {
        let step = match bucket {
            Bucket::Minute => TimeDelta::minutes(1),
            Bucket::Hour => TimeDelta::hours(1),
        };
        let from = from.duration_trunc(step).unwrap_or(from);
        let now = Utc::now();
        let complete_before = reader.loaded_through(now)? - SETTLE;
        let mut kept = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, bucket| bucket.read_at.elapsed() < FRESH_FOR);
        // The first bucket not kept: it and every later one are read from the store.
        let mut start = from;
        let mut counts = Vec::new();
        while start + step <= now {
            let Some(bucket) = kept.get(&(bucket, start)) else { break };
            counts.extend(bucket.counts.iter().cloned());
            start += step;
        }
        drop(kept);
        let read = reader.stats(start, bucket)?;
        let mut by_bucket: HashMap<DateTime<Utc>, Vec<BucketCount>> = HashMap::new();
        for count in &read.counts {
            if let Ok(at) = DateTime::parse_from_rfc3339(&count.at) {
                by_bucket.entry(at.with_timezone(&Utc)).or_default().push(count.clone());
            }
        }
        let mut kept = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = start;
        while at + step <= complete_before {
            let counts = by_bucket.remove(&at).unwrap_or_default();
            kept.insert((bucket, at), Kept { counts, read_at: Instant::now() });
            at += step;
        }
        counts.extend(read.counts);
        Ok(Stats { from: crate::request::format_time(&from), counts, ..read })
    }

    /// Forgets every kept count (after a replay).
    pub(super) fn clear(&self) {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
