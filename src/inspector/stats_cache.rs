//! The chart's counts: events per minute (or hour) by name, counted bucket by bucket, newest
//! first, and kept once a bucket is complete, so that the page's refresh every few seconds
//! counts only the newest minute rather than the whole window.
//!
//! A call counts for at most [`BUDGET`]; what it could not reach yet (the oldest buckets of a
//! long window on a busy store) it says with `counted_from`, and the next call goes on from the
//! buckets kept. A bucket is complete once the embedded sink has loaded every request received
//! in it. Kept counts are counted again after [`FRESH_FOR`], and all are dropped after a replay
//! from the inspector, since a replay can turn failures into events in old buckets (a
//! `hookhouse replay` from the command line shows in the chart within [`FRESH_FOR`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};

use crate::iterable::family_of;
use crate::request::format_time;
use crate::spool::inspect::{Bucket, BucketCount, Stats};
use crate::spool::{SpoolError, SpoolReader};

/// How long a complete bucket's counts are kept before they are counted again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// Requests committed in one batch may differ in `received_at` by its milliseconds: a bucket is
/// complete only this long after the last loaded request's time.
const SETTLE: TimeDelta = TimeDelta::seconds(2);
/// Counting time one call may spend, under the API's query time limit.
const BUDGET: Duration = Duration::from_millis(1200);

#[derive(Debug, Default)]
pub(super) struct StatsCache {
    buckets: Mutex<HashMap<(Bucket, DateTime<Utc>), Kept>>,
}

#[derive(Debug)]
struct Kept {
    counts: Vec<(String, i64)>,
    counted_at: Instant,
}

impl StatsCache {
    /// Counts from the bucket holding `from` to now.
    pub(super) fn stats(
        &self,
        reader: &SpoolReader,
        from: DateTime<Utc>,
        bucket: Bucket,
    ) -> Result<Stats, SpoolError> {
        let started = Instant::now();
        let step = bucket.step();
        let from = from.duration_trunc(step).unwrap_or(from);
        let now = Utc::now();
        let complete_before = reader.loaded_through(now)? - SETTLE;
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, kept| kept.counted_at.elapsed() < FRESH_FOR);
        let mut counts = Vec::new();
        let mut counted_from = None;
        let mut at = now.duration_trunc(step).unwrap_or(now);
        while at >= from {
            let kept = self.kept(bucket, at);
            let names = match kept {
                Some(names) => names,
                None if started.elapsed() >= BUDGET => {
                    counted_from = Some(bucket_time(&(at + step)));
                    break;
                }
                None => {
                    let names = reader.counts_between(&at, &(at + step))?;
                    if at + step <= complete_before {
                        self.keep(bucket, at, names.clone());
                    }
                    names
                }
            };
            counts.extend(names.into_iter().map(|(name, count)| BucketCount {
                at: bucket_time(&at),
                family:
                    if name == "failed" { "failed" } else { family_of(&name).as_str() }.to_owned(),
                event_name: name,
                count,
            }));
            at -= step;
        }
        counts.reverse();
        Ok(Stats {
            bucket: bucket.name(),
            from: bucket_time(&from),
            to: format_time(&now),
            counted_from,
            counts,
        })
    }

    fn kept(&self, bucket: Bucket, at: DateTime<Utc>) -> Option<Vec<(String, i64)>> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get(&(bucket, at)).map(|kept| kept.counts.clone())
    }

    fn keep(&self, bucket: Bucket, at: DateTime<Utc>, counts: Vec<(String, i64)>) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.insert((bucket, at), Kept { counts, counted_at: Instant::now() });
    }

    /// Forgets every kept count (after a replay).
    pub(super) fn clear(&self) {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A bucket's start, to the second: `2026-12-02T05:01:00Z`.
fn bucket_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
