//! The receiver's side of the stream: publish an accepted request, wait for JetStream's
//! acknowledgement (a quorum of the stream's replicas has it), and only then let the
//! receiver answer 2xx.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::connection::State;

use super::{Stream, record};
use crate::request::{AcceptedRequest, StoredAs};

/// Why a request was not acknowledged by the stream; the receiver answers 503 for each.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the stream did not acknowledge within {0} ms")]
    Timeout(u128),
    /// No leader (an election), a full stream (`discard: new`), a lost connection, ...
    #[error("the stream refused the request: {0}")]
    Refused(String),
}

/// How long `/readyz` waits for the stream to answer while publishes are failing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes requests to the stream; shared by every handler.
#[derive(Debug)]
pub struct StreamLog {
    stream: Stream,
    in_flight: AtomicUsize,
    /// Set by a failed publish, cleared by the next success or a probe of `/readyz`.
    failing: AtomicBool,
}

impl StreamLog {
    pub fn new(stream: Stream) -> Self {
        StreamLog { stream, in_flight: AtomicUsize::new(0), failing: AtomicBool::new(false) }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Publishes the request and waits for its acknowledgement; returns its stream sequence
    /// (a resend inside the duplicate window returns the first one's).
    pub async fn append(
        &self,
        accepted: AcceptedRequest,
        stored_as: StoredAs,
    ) -> Result<u64, PublishError> {
        let raw = accepted.raw();
        let payload = record::encode(raw, &stored_as);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", record::message_id(raw).as_str());
        let subject = self.stream.subject(&raw.source);
        let timeout = self.stream.config.publish_timeout;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let published = tokio::time::timeout(timeout, async {
            let ack = self.stream.context.publish_with_headers(subject, headers, payload).await;
            ack.map_err(|err| PublishError::Refused(err.to_string()))?
                .await
                .map_err(|err| PublishError::Refused(err.to_string()))
        })
        .await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let result = match published {
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(PublishError::Timeout(timeout.as_millis())),
        };
        self.failing.store(result.is_err(), Ordering::Relaxed);
        result
    }

    /// Whether a request sent now would be acknowledged: connected, and either the last
    /// publish succeeded or the stream answers now (its leader is elected) with room for the
    /// largest request (`discard: new` refuses what does not fit).
    pub async fn is_ready(&self) -> bool {
        if self.stream.client.connection_state() != State::Connected {
            return false;
        }
        if !self.failing.load(Ordering::Relaxed) {
            return true;
        }
        let probe = async {
            let mut handle = self.stream.context.get_stream(&self.stream.config.stream).await?;
            let bytes = handle.info().await?.state.bytes;
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(bytes)
        };
        let Ok(Ok(bytes)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await else {
            return false;
        };
        let room = u64::try_from(self.stream.config.max_bytes).unwrap_or(u64::MAX);
        let fits = bytes.saturating_add(self.stream.largest_request as u64) <= room;
        if fits {
            self.failing.store(false, Ordering::Relaxed);
        }
        fits
    }

    /// Requests waiting for their acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}
