//! The budget of request-body bytes held in memory at once, across every connection
//! (`server.max_inflight_body_bytes`): a body reserves its bytes before they are kept and gives
//! them back once it is stored or dropped; past the budget a new body gets 503. Only atomics,
//! since every request passes here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;

use super::ReceiveError;
use super::drain;
use super::request::BodyLimits;

#[derive(Debug)]
pub(super) struct BodyBudget {
    max: usize,
    held: AtomicUsize,
}

impl BodyBudget {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(BodyBudget { max, held: AtomicUsize::new(0) })
    }

    /// An empty reservation, grown as a body is read.
    pub(super) fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }
}

/// Bytes taken from the budget; given back when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Holds `more` bytes beyond what it holds, or fails without taking anything.
    pub(super) fn add(&mut self, more: usize) -> Result<(), ReceiveError> {
        self.grow_to(self.bytes.saturating_add(more))
    }

    /// Holds at least `bytes` in all, or fails without taking anything.
    fn grow_to(&mut self, bytes: usize) -> Result<(), ReceiveError> {
        let Some(more) = bytes.checked_sub(self.bytes).filter(|more| *more > 0) else {
            return Ok(());
        };
        let max = self.budget.max;
        self.budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|total| *total <= max)
            })
            .map_err(|_| ReceiveError::BodyBudget)?;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads the whole body within `limits`: its declared length is reserved before anything is
/// read, the rest as it arrives. A body the budget has no room for is read and dropped before
/// the 503, so the sender sees the answer rather than a reset.
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &mut BodyLimits<'_>,
) -> Result<Bytes, ReceiveError> {
    let too_large = ReceiveError::TooLarge { limit: limits.max_bytes };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared = match declared {
        Some(length) if length > limits.max_bytes as u64 => return Err(too_large),
        // Within `max_bytes`, so it fits.
        Some(length) => length as usize,
        None => 0,
    };
    if let Err(err) = limits.held.grow_to(declared) {
        return Err(drain::refuse(body, limits.max_bytes, err).await);
    }
    let read = gather(body, declared, limits.max_bytes, &mut *limits.held);
    match tokio::time::timeout(limits.timeout, read).await {
        Err(_) => Err(ReceiveError::BodyTimeout),
        Ok(Err((err, Some(rest)))) => Err(drain::refuse(rest, limits.max_bytes, err).await),
        Ok(Err((err, None))) => Err(err),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The body's data frames in one buffer. A body in one frame, the common case, is kept as it
/// came, without a copy. On a budget refusal the unread rest is handed back.
async fn gather(
    mut body: Body,
    declared: usize,
    max_bytes: usize,
    held: &mut Reservation,
) -> Result<Bytes, (ReceiveError, Option<Body>)> {
    let mut first = Bytes::new();
    let mut joined = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| (ReceiveError::BodyRead, None))?;
        let Ok(data) = frame.into_data() else { continue };
        let total = first.len() + joined.len() + data.len();
        if total > max_bytes {
            return Err((ReceiveError::TooLarge { limit: max_bytes }, None));
        }
        if first.is_empty() && joined.is_empty() {
            held.grow_to(total).map_err(|err| (err, Some(body_rest(&mut body))))?;
            first = data;
            continue;
        }
        if joined.capacity() - joined.len() < data.len() {
            // Growing the buffer may double it: the budget is asked for what is allocated.
            let want = (joined.capacity() * 2).max(total).max(declared).min(max_bytes);
            held.grow_to(want).map_err(|err| (err, Some(body_rest(&mut body))))?;
            joined.reserve(want - joined.len());
        }
        held.grow_to(total).map_err(|err| (err, Some(body_rest(&mut body))))?;
        if !first.is_empty() {
            joined.extend_from_slice(&first);
            first = Bytes::new();
        }
        joined.extend_from_slice(&data);
    }
    Ok(if joined.is_empty() { first } else { joined.freeze() })
}

fn body_rest(body: &mut Body) -> Body {
    std::mem::replace(body, Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(100);
        let mut first = budget.reservation();
        let mut second = budget.reservation();
        first.grow_to(60).unwrap();
        first.grow_to(40).unwrap();
        assert!(matches!(second.grow_to(41), Err(ReceiveError::BodyBudget)));
        second.grow_to(40).unwrap();
        assert_eq!(budget.held.load(Ordering::Acquire), 100);
        drop(first);
        second.grow_to(100).unwrap();
        drop(second);
        assert_eq!(budget.held.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_joined_and_counted() {
        let budget = BodyBudget::new(1000);
        let mut held = budget.reservation();
        let frames = ["ab", "cd", "ef"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s)));
        let body = Body::from_stream(futures_util::stream::iter(frames));
        let bytes = gather(body, 0, 100, &mut held).await.unwrap();
        assert_eq!(&bytes[..], b"abcdef");
        assert!(held.bytes >= 6 && held.bytes <= 100, "{}", held.bytes);
    }
}
