//! The canonical event: one typed row of the `events` table, made only by the normaliser.

use serde::Serialize;
use serde_json::Value;

use super::{Context, EventId};
use crate::iterable::{Envelope, EventFields, Family, family_of, id_i64, parse_timestamp};
use crate::request::format_time;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonicalEvent {
    pub event_id: EventId,
    pub source: String,
    pub event_name: String,
    pub family: Family,
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// `dataFields.createdAt` in UTC, RFC 3339; `None` when absent or unreadable (the raw value
    /// stays in `data` and the reason in `parse_warnings`).
    pub created_at: Option<String>,
    pub campaign_id: Option<i64>,
    pub template_id: Option<i64>,
    pub message_id: Option<String>,
    pub app_id: Option<String>,
    pub platform: Option<String>,
    #[serde(flatten)]
    pub fields: EventFields,
    /// `dataFields` (merged with any flattened fields) as JSON text.
    pub data: String,
    /// What could not be read, as a JSON array of sentences; `None` when everything was.
    pub parse_warnings: Option<String>,
    /// Only the normaliser constructs events, so every row went through it.
    #[serde(skip)]
    sealed: Sealed,
}

/// A private token: code outside this module cannot build a [`CanonicalEvent`].
#[derive(Debug, Clone, PartialEq)]
struct Sealed;

impl CanonicalEvent {
    pub(super) fn new(context: &Context<'_>, raw: &Value, envelope: &Envelope<'_>) -> Self {
        let mut warnings = Vec::new();
        let created = envelope.field("createdAt").and_then(|value| match parse_timestamp(value) {
            Ok(time) => Some(time),
            Err(err) => {
                warnings.push(format!("createdAt: {err}"));
                None
            }
        });
        let created_at = created.map(|time| {
            if time.timestamp_subsec_nanos() == 0 {
                time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            } else {
                format_time(&time)
            }
        });
        CanonicalEvent {
            event_id: EventId::derive(context.source, raw, created),
            source: context.source.to_owned(),
            event_name: envelope.event_name.to_owned(),
            family: family_of(envelope.event_name),
            email: envelope.email.map(str::to_owned),
            user_id: envelope.user_id.map(str::to_owned),
            created_at,
            campaign_id: id_i64(envelope.field("campaignId")),
            template_id: id_i64(envelope.field("templateId")),
            message_id: envelope.str_field("messageId").map(str::to_owned),
            app_id: context.app_id.clone(),
            platform: context.platform.clone(),
            fields: EventFields::read(envelope),
            data: serde_json::to_string(envelope.data_fields.as_ref())
                .unwrap_or_else(|_| "{}".to_owned()),
            parse_warnings: (!warnings.is_empty()).then(|| Value::from(warnings).to_string()),
            sealed: Sealed,
        }
    }
}
