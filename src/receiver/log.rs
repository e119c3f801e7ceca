//! The request log a receiver appends to: the SQLite spool on this machine, or a JetStream
//! stream shared with other receivers. Either way a request is answered 2xx only after the
//! log has it durably (SQLite's commit, or the stream's acknowledgement).

use crate::jetstream::log::StreamLog;
use crate::request::{AcceptedRequest, StoredAs};
use crate::spool::Spool;

use super::ReceiveError;

#[derive(Debug)]
pub enum RequestLog {
    Sqlite(Spool),
    /// Boxed: it is much larger than a spool handle.
    JetStream(Box<StreamLog>),
}

impl RequestLog {
    /// Appends the request; returns its place in the log.
    pub(super) async fn append(
        &self,
        accepted: AcceptedRequest,
        stored_as: StoredAs,
    ) -> Result<u64, ReceiveError> {
        match self {
            RequestLog::Sqlite(spool) => {
                let receipt = spool.append(accepted, stored_as).await?;
                Ok(u64::try_from(receipt.seq).unwrap_or(0))
            }
            RequestLog::JetStream(stream) => Ok(stream.append(accepted, stored_as).await?),
        }
    }

    /// `Some(requests waiting for the log)` while a request sent now would be stored.
    pub(super) async fn readiness(&self) -> Option<usize> {
        match self {
            RequestLog::Sqlite(spool) => spool.is_ready().then(|| spool.queued()),
            RequestLog::JetStream(stream) => stream.is_ready().await.then(|| stream.in_flight()),
        }
    }

    /// The SQLite spool, when that is the log.
    pub fn spool(&self) -> Option<&Spool> {
        match self {
            RequestLog::Sqlite(spool) => Some(spool),
            RequestLog::JetStream(_) => None,
        }
    }
}
