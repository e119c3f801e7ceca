//! Refusals and 503s in the log without a flood: per reason and source, the first is logged at
//! once, then at most one line a second, with the caller's address and how many were left
//! out meanwhile. Every one of them is counted in `/metrics` all the same.

use std::net::IpAddr;

use super::ReceiveError;
use crate::telemetry::LogLimit;

#[derive(Debug)]
pub(super) struct RefusalLog {
    /// By reason and source label (a configured name or `unknown`, never a sender's text, so
    /// the keys stay few).
    lines: LogLimit<(&'static str, String)>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog { lines: LogLimit::per_second() }
    }
}

impl RefusalLog {
    /// `source` must be a source label; `client` is the caller's address when it is known.
    pub(super) fn note(&self, source: &str, client: Option<IpAddr>, err: &ReceiveError) {
        let reason = err.reason();
        let Some(left_out) = self.lines.admit((reason, source.to_owned())) else { return };
        let status = err.status().as_u16();
        let client = client.map(tracing::field::display);
        // As a string, which the text format writes quoted: the error may hold a sender's text
        // (escaped, but with its spaces), and unquoted it could pass for `key=value` fields.
        let error = err.to_string();
        if err.status().is_server_error() {
            // The writer logs the store's own error; this says which requests met it.
            tracing::warn!(
                source,
                reason,
                status,
                client,
                error = error.as_str(),
                not_logged_since_last = left_out,
                "request not stored"
            );
        } else {
            tracing::info!(
                source,
                reason,
                status,
                client,
                error = error.as_str(),
                not_logged_since_last = left_out,
                "request refused"
            );
        }
    }
}
