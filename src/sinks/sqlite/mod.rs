//! The embedded SQLite sink: writes a request's events, journey calls and failures into
//! `hookhouse.db` inside the spool's own transaction, so a raw request and its rows are
//! committed together and this sink can never lag or lose a row. It owns those inserts and the
//! per-event views; the spool owns the file, the schema and the transaction.

pub(crate) mod views;

use std::sync::LazyLock;

use rusqlite::{CachedStatement, ToSql, Transaction};

use rusqlite::types::ToSqlOutput;

use crate::iterable::Family;
use crate::pipeline::{CanonicalEvent, EventId, Outcome};
use crate::sinks::columns::EVENTS;

impl ToSql for EventId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl ToSql for Family {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// What to do with an event whose id is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Live ingestion: a resend changes nothing; the first request stays its `raw_seq`.
    Keep,
    /// Replay: the stored row takes what the current normaliser makes of the same request.
    Update,
}

fn insert_events_sql(on_conflict: OnConflict) -> String {
    // `event_params` gives the values in this order.
    let names: Vec<&str> = EVENTS.names().collect();
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    // `events` has a key, so there is always a clause.
    let conflict = EVENTS.on_conflict(on_conflict == OnConflict::Update).unwrap_or_default();
    format!(
        "INSERT INTO events ({}) VALUES ({}) {conflict}",
        names.join(", "),
        placeholders.join(", ")
    )
}

/// The insert statements of one transaction, prepared on first use and reused for every
/// request in it: the writer runs this on its serial path, where a statement-cache lookup per
/// request (hashing a 1.5 KB statement) was measurable.
pub(crate) struct Inserts<'tx> {
    tx: &'tx Transaction<'tx>,
    on_conflict: OnConflict,
    events: Option<CachedStatement<'tx>>,
    journey_calls: Option<CachedStatement<'tx>>,
    failures: Option<CachedStatement<'tx>>,
}

impl<'tx> Inserts<'tx> {
    pub(crate) fn new(tx: &'tx Transaction<'tx>, on_conflict: OnConflict) -> Self {
        Inserts { tx, on_conflict, events: None, journey_calls: None, failures: None }
    }

    /// Inserts the rows one request produced.
    pub(crate) fn write(&mut self, raw: &RawRow<'_>, outcome: &Outcome) -> rusqlite::Result<()> {
        if !outcome.events.is_empty() {
            static KEEP: LazyLock<String> = LazyLock::new(|| insert_events_sql(OnConflict::Keep));
            static UPDATE: LazyLock<String> =
                LazyLock::new(|| insert_events_sql(OnConflict::Update));
            let sql = match self.on_conflict {
                OnConflict::Keep => &*KEEP,
                OnConflict::Update => &*UPDATE,
            };
            let insert = prepared(self.tx, &mut self.events, sql)?;
            for event in &outcome.events {
                insert.execute(event_params(raw, event).as_slice())?;
            }
        }
        if !outcome.journey_calls.is_empty() {
            let insert = prepared(
                self.tx,
                &mut self.journey_calls,
                "INSERT OR REPLACE INTO journey_calls (seq, received_at, source, journey, method, \
                 email, user_id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for call in &outcome.journey_calls {
                insert.execute(rusqlite::params![
                    raw.seq,
                    raw.received_at,
                    raw.source,
                    call.journey,
                    raw.method,
                    call.email,
                    call.user_id,
                    call.data,
                ])?;
            }
        }
        if !outcome.failures.is_empty() {
            let insert = prepared(
                self.tx,
                &mut self.failures,
                "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for failure in &outcome.failures {
                insert.execute(rusqlite::params![
                    raw.seq,
                    raw.received_at,
                    failure.stage.as_str(),
                    failure.reason,
                    failure.body
                ])?;
            }
        }
        Ok(())
    }
}

fn prepared<'a, 'tx>(
    tx: &'tx Transaction<'tx>,
    slot: &'a mut Option<CachedStatement<'tx>>,
    sql: &str,
) -> rusqlite::Result<&'a mut CachedStatement<'tx>> {
    if slot.is_none() {
        *slot = Some(tx.prepare_cached(sql)?);
    }
    // Filled just above.
    slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
}

/// The stored request a row belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRow<'a> {
    pub(crate) seq: i64,
    pub(crate) received_at: &'a str,
    pub(crate) source: &'a str,
    pub(crate) method: &'a str,
}

fn event_params<'a>(raw: &'a RawRow<'a>, event: &'a CanonicalEvent) -> [&'a dyn ToSql; 48] {
    let f = &event.fields;
    [
        &event.event_id,
        &raw.seq,
        &event.source,
        &event.event_name,
        &event.email,
        &event.user_id,
        &event.created_at,
        &raw.received_at,
        &event.campaign_id,
        &event.template_id,
        &event.message_id,
        &event.app_id,
        &event.platform,
        &event.data,
        &event.family,
        &f.channel_id,
        &f.message_type_id,
        &f.workflow_id,
        &f.experiment_id,
        &f.content_id,
        &f.campaign_name,
        &f.template_name,
        &f.workflow_name,
        &f.email_subject,
        &f.url,
        &f.link_url,
        &f.user_agent,
        &f.user_agent_device,
        &f.ip,
        &f.city,
        &f.region,
        &f.country,
        &f.locale,
        &f.proxy_source,
        &f.is_bot,
        &f.recipient_state,
        &f.bounce_message,
        &f.reason,
        &f.unsub_source,
        &f.signup_source,
        &f.email_list_ids,
        &f.labels,
        &f.to_phone_number,
        &f.from_phone_number,
        &f.sms_message,
        &f.push_message,
        &f.transactional_data,
        &event.parse_warnings,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_column_has_a_value() {
        assert_eq!(EVENTS.columns.len(), 48, "event_params lists 48 values, in EVENTS' order");
    }

    #[test]
    fn replay_updates_all_but_identity_and_first_sighting() {
        let sql = insert_events_sql(OnConflict::Update);
        assert!(sql.contains("email = excluded.email"));
        assert!(sql.contains("parse_warnings = excluded.parse_warnings"));
        assert!(!sql.contains("raw_seq = excluded"));
        assert!(insert_events_sql(OnConflict::Keep).ends_with("DO NOTHING"));
    }
}
