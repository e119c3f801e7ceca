//! Reading and dropping the body of a refused request before answering, within limits, so the
//! sender sees the status: over HTTP/2 an unread body gets the stream reset after the answer
//! (clients report the reset, not the 401), and over HTTP/1.1 the connection is closed under it.

use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use http_body_util::BodyExt as _;

use super::ReceiveError;

/// The longest a refusal waits for the body it drops: a sender that is slower than this gets
/// its answer anyway, reset or not.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Drops the body (at most `max_bytes` of it, for at most [`DRAIN_TIME`]) and hands back `err`.
pub(super) async fn refuse(body: Body, max_bytes: usize, err: ReceiveError) -> ReceiveError {
    discard(body, max_bytes).await;
    err
}

async fn discard(mut body: Body, max_bytes: usize) {
    // A declared length beyond the limit is not worth reading.
    if body.size_hint().lower() > max_bytes as u64 {
        return;
    }
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |data| data.len());
            if seen > max_bytes {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
