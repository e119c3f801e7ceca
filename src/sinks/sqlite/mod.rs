//! The embedded SQLite sink: writes a request's events and failures into `hookhouse.db` inside
//! the spool's own transaction, so a raw request and its rows are committed together and this
//! sink can never lag or lose a row. It owns the `events` and `failed_events` inserts only.

use rusqlite::{Transaction, params};

use crate::pipeline::Outcome;

/// Inserts the rows one request produced. An event already stored (a resend) is left as it
/// was: the first request that carried it stays its `raw_seq`.
pub(crate) fn insert_outcome(
    tx: &Transaction<'_>,
    raw_seq: i64,
    received_at: &str,
    outcome: &Outcome,
) -> rusqlite::Result<()> {
    if !outcome.events.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (event_id, raw_seq, source, event_name, email, user_id, \
             created_at, received_at, campaign_id, template_id, message_id, app_id, platform, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (event_id) DO NOTHING",
        )?;
        for event in &outcome.events {
            insert.execute(params![
                event.event_id.as_str(),
                raw_seq,
                event.source,
                event.event_name,
                event.email,
                event.user_id,
                event.created_at,
                received_at,
                event.campaign_id,
                event.template_id,
                event.message_id,
                event.app_id,
                event.platform,
                event.data,
            ])?;
        }
    }
    if !outcome.failures.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for failure in &outcome.failures {
            insert.execute(params![
                raw_seq,
                received_at,
                failure.stage.as_str(),
                failure.reason,
                failure.body
            ])?;
        }
    }
    Ok(())
}
