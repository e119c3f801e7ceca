//! The pruner: applies `[retention]` in the background, every minute, as steps of a few
//! milliseconds run by the writer between request commits (the writer holds the only write
//! connection, so a step never waits for the lock and a request waits behind one step at
//! most), then gives the freed pages back to the file system and records the store's size.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::retention::{self, Target};
use super::{Spool, SpoolError, StoreUsage};
use crate::config::Retention;

/// How often a pass starts (the first at once).
const PASS_INTERVAL: Duration = Duration::from_secs(60);
/// A step aims to hold the write lock this long at most; its window grows and shrinks to fit.
const STEP_TARGET: Duration = Duration::from_millis(1);
const WINDOW: (usize, usize, usize) = (16, 64, 512);
/// After a step, the pruner waits this many times as long as it took (at least
/// [`STEP_PAUSE_MIN`]): pruning takes a twentieth of the writer's time at most, whatever the
/// backlog (a tenth cost ingest 10% while emptying bodies, BENCHMARKS.md). That still empties
/// thousands of bodies a second, hundreds of times what a million events a day needs.
const STEP_PAUSE_FACTOR: u32 = 19;
const STEP_PAUSE_MIN: Duration = Duration::from_millis(5);
/// Pages given back per step (4 MiB with 4 KiB pages).
const VACUUM_PAGES: u64 = 1024;

/// What one pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub removed: BTreeMap<&'static str, u64>,
    pub body_bytes: u64,
    pub steps: u64,
    pub longest_step: Duration,
    pub pages_returned: u64,
}

/// Runs passes until `stop`, logging what each removed and keeping the store's usage for
/// `/metrics`.
pub async fn run(spool: Spool, retention: Retention, stop: CancellationToken) {
    let mut window = WINDOW.1;
    loop {
        if retention.prunes() {
            match spool.prune_pass(&retention, &mut window, &stop).await {
                Ok(report) if report.removed.values().any(|n| *n > 0) => tracing::info!(
                    removed = ?report.removed,
                    body_mb = report.body_bytes as f64 / 1e6,
                    steps = report.steps,
                    longest_step_ms = report.longest_step.as_secs_f64() * 1e3,
                    pages_returned = report.pages_returned,
                    "retention removed what its settings no longer keep"
                ),
                Ok(_) => {}
                Err(SpoolError::Closed) => return,
                Err(error) => {
                    tracing::warn!(%error, "retention pass failed; the next one tries again")
                }
            }
        }
        if let Err(error) = spool.refresh_usage().await {
            tracing::debug!(%error, "could not read the store's size");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PASS_INTERVAL) => {}
        }
    }
}

impl Spool {
    /// One pass over every target with a setting. `window` carries the step size over passes.
    pub async fn prune_pass(
        &self,
        retention: &Retention,
        window: &mut usize,
        stop: &CancellationToken,
    ) -> Result<PassReport, SpoolError> {
        let now = Utc::now();
        let mut report = PassReport::default();
        for target in Target::ALL {
            let Some(cutoff) = target.cutoff(retention, now) else { continue };
            let mut after = None;
            loop {
                if stop.is_cancelled() {
                    return Ok(report);
                }
                let (step, took) = self.prune_step(target, cutoff.clone(), after, *window).await?;
                report.steps += 1;
                report.longest_step = report.longest_step.max(took);
                self.note_step(took);
                *report.removed.entry(target.name()).or_default() += step.removed;
                report.body_bytes += step.bytes;
                self.count_pruned(target, step.removed);
                *window = next_window(*window, took);
                if step.done {
                    break;
                }
                after = Some(step.after);
                tokio::time::sleep(pause(took)).await;
            }
        }
        loop {
            let (pages, took) = self.vacuum_step().await?;
            report.pages_returned += pages;
            report.longest_step = report.longest_step.max(took);
            self.note_step(took);
            if pages < VACUUM_PAGES || stop.is_cancelled() {
                break;
            }
            tokio::time::sleep(pause(took)).await;
        }
        Ok(report)
    }

    /// One step, in a transaction of its own on the writer; how long its SQL took.
    async fn prune_step(
        &self,
        target: Target,
        cutoff: String,
        after: Option<i64>,
        window: usize,
    ) -> Result<(retention::Step, Duration), SpoolError> {
        let (send, receive) = oneshot::channel();
        self.write_embedded_only(Box::new(move |conn| {
            let began = Instant::now();
            let after = match after {
                Some(after) => after,
                None => retention::start(conn, target)?,
            };
            let step = retention::step(conn, target, &cutoff, after, window, true)?;
            let _ = send.send((step, began.elapsed()));
            Ok(())
        }))
        .await?;
        receive.await.map_err(|_| SpoolError::Closed)
    }

    /// Gives up to [`VACUUM_PAGES`] free pages back to the file system; how many it gave.
    async fn vacuum_step(&self) -> Result<(u64, Duration), SpoolError> {
        let (send, receive) = oneshot::channel();
        self.write_embedded_only(Box::new(move |conn| {
            let began = Instant::now();
            let pages = retention::vacuum(conn, VACUUM_PAGES)?;
            let _ = send.send((pages, began.elapsed()));
            Ok(())
        }))
        .await?;
        receive.await.map_err(|_| SpoolError::Closed)
    }

    /// Reads the store's size and its oldest rows, for `/metrics`.
    pub async fn refresh_usage(&self) -> Result<(), SpoolError> {
        let reader = self.reader()?;
        let usage = tokio::task::spawn_blocking(move || reader.usage())
            .await
            .map_err(|_| SpoolError::Closed)??;
        *self.shared.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
        Ok(())
    }

    /// The store's size and oldest rows as the pruner last read them.
    pub fn usage(&self) -> Option<StoreUsage> {
        self.shared.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rows removed by retention since start, by target.
    pub fn pruned(&self) -> BTreeMap<&'static str, u64> {
        self.shared.pruned.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The longest a pruning step has held the write lock since start.
    pub fn longest_prune_step(&self) -> Duration {
        Duration::from_micros(self.shared.longest_prune_step_us.load(Ordering::Relaxed))
    }

    fn note_step(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.shared.longest_prune_step_us.fetch_max(micros, Ordering::Relaxed);
    }

    fn count_pruned(&self, target: Target, removed: u64) {
        let mut pruned = self.shared.pruned.lock().unwrap_or_else(|e| e.into_inner());
        *pruned.entry(target.name()).or_default() += removed;
    }
}

fn pause(took: Duration) -> Duration {
    (took * STEP_PAUSE_FACTOR).max(STEP_PAUSE_MIN)
}

/// Halves the window after a step over twice the target, doubles it after one under half.
fn next_window(window: usize, took: Duration) -> usize {
    let (least, _, most) = WINDOW;
    if took > STEP_TARGET * 2 {
        (window / 2).max(least)
    } else if took < STEP_TARGET / 2 {
        (window * 2).min(most)
    } else {
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_time_a_step_takes() {
        assert_eq!(next_window(256, Duration::from_millis(10)), 128);
        assert_eq!(next_window(16, Duration::from_millis(10)), 16);
        assert_eq!(next_window(128, Duration::from_micros(200)), 256);
        assert_eq!(next_window(512, Duration::from_micros(200)), 512);
        assert_eq!(next_window(256, Duration::from_millis(1)), 256);
    }
}
