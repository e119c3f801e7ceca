//! Paces and sends: one POST per event, at most `--concurrency` in flight and `--rate` a
//! second, until the count is reached, the time is up, or the stop signal fires. It never
//! retries: a simulation reports what the receiver answered.

use std::future::{Future, pending};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval, sleep_until, timeout};

use super::report::{ConnectionError, Outcome, Recorder};
use super::traffic::Traffic;
use super::{Limit, Plan, Summary};

/// How long one request may take, connection included, before it counts as a time-out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an interrupted run still waits for answers to requests already sent.
const GRACE: Duration = Duration::from_secs(2);

pub(super) async fn send(
    plan: &Plan,
    mut traffic: Traffic,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("hookhouse-simulate/", env!("CARGO_PKG_VERSION")))
        .default_headers(plan.headers.clone())
        .build()
        .context("failed to build the HTTP client")?;
    let count = match plan.limit {
        Limit::Count(count) => Some(count),
        Limit::Duration(_) => None,
    };
    // The recorder's clock starts first, so a `--duration` run never reports less than it.
    let mut recorder = Recorder::new(count);
    let deadline = match plan.limit {
        Limit::Count(_) => None,
        Limit::Duration(duration) => Some(Instant::now() + duration),
    };
    let time_up = async move {
        match deadline {
            Some(deadline) => sleep_until(deadline).await,
            None => pending().await,
        }
    };
    tokio::pin!(stop, time_up);
    let mut ticker = (plan.rate > 0).then(|| {
        // Burst: after a stall (a slow receiver, a full window) the missed ticks fire at once,
        // so the run keeps its average rate; tokio's timer has millisecond resolution anyway.
        let period = Duration::from_secs_f64(1.0 / f64::from(plan.rate));
        let mut ticker = interval(period.max(Duration::from_nanos(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticker
    });
    let mut in_flight = JoinSet::new();
    let mut issued: u64 = 0;
    let mut interrupted = false;

    'sending: while count.is_none_or(|count| issued < count) {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        while let Some(done) = in_flight.try_join_next() {
            record(&mut recorder, done);
        }
        // Wait for a free slot, then for the next tick; give up on either end of the run.
        loop {
            let full = in_flight.len() >= plan.concurrency;
            tokio::select! {
                biased;
                () = &mut stop => {
                    interrupted = true;
                    break 'sending;
                }
                () = &mut time_up => break 'sending,
                Some(done) = in_flight.join_next(), if full => record(&mut recorder, done),
                () = tick(&mut ticker), if !full => break,
            }
        }

        let (event, body) = traffic.next();
        let request = client.post(plan.url.clone()).body(body.to_string());
        recorder.sent();
        issued += 1;
        in_flight.spawn(async move {
            let started = Instant::now();
            let result = match request.send().await {
                // Reading the whole answer lets the connection be reused.
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.map(|_| status)
                }
                Err(err) => Err(err),
            };
            Outcome {
                event,
                latency: started.elapsed(),
                result: result.map_err(|err| ConnectionError::of(&err)),
            }
        });
    }

    let wait = if interrupted { GRACE } else { REQUEST_TIMEOUT + GRACE };
    let drained = timeout(wait, async {
        while let Some(done) = in_flight.join_next().await {
            record(&mut recorder, done);
        }
    })
    .await;
    if drained.is_err() {
        for _ in 0..in_flight.len() {
            recorder.abandoned();
        }
        in_flight.shutdown().await;
    }
    Ok(recorder.finish(interrupted))
}

/// The next tick, or at once when the rate is unlimited.
async fn tick(ticker: &mut Option<Interval>) {
    if let Some(ticker) = ticker {
        ticker.tick().await;
    }
}

fn record(recorder: &mut Recorder, done: Result<Outcome, JoinError>) {
    match done {
        Ok(outcome) => recorder.record(outcome),
        // Tasks are only cancelled by `shutdown`, and do not panic; count it as unknown.
        Err(_) => recorder.abandoned(),
    }
}
