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

    /// The requests waiting for the log while a request sent now would be stored, else why not.
    pub(super) async fn readiness(&self) -> Result<usize, String> {
        const NOT_WRITING: &str = "the store is not accepting writes";
        match self {
            RequestLog::Sqlite(spool) => match spool.low_disk() {
                Some(low) => Err(low.to_string()),
                None if spool.is_ready() => Ok(spool.queued()),
                None => Err(NOT_WRITING.to_owned()),
            },
            RequestLog::JetStream(stream) if stream.is_ready().await => Ok(stream.in_flight()),
            RequestLog::JetStream(_) => Err(NOT_WRITING.to_owned()),
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
