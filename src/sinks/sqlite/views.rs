//! One SQL view per documented event name (`email_open`, `sms_bounce`, ...), selecting the
//! columns that event family fills. Views hold no data, so they are dropped and recreated at
//! every start from the catalogue in `iterable::catalog`; a new name or column needs no
//! migration.

use rusqlite::Connection;

use crate::iterable::{Family, KNOWN_EVENTS};

/// Columns every view has.
const COMMON: &[&str] = &[
    "event_id",
    "raw_seq",
    "source",
    "event_name",
    "email",
    "user_id",
    "created_at",
    "received_at",
    "campaign_id",
    "campaign_name",
    "template_id",
    "template_name",
    "message_id",
    "message_type_id",
    "channel_id",
    "workflow_id",
    "workflow_name",
    "experiment_id",
    "app_id",
    "platform",
    "locale",
    "labels",
];

/// Where the event was seen: opens and clicks on every channel carry these.
const WHERE_SEEN: &[&str] = &["user_agent", "user_agent_device", "ip", "city", "region", "country"];

/// Columns a family fills, beyond [`COMMON`] and before `data`.
fn family_columns(family: Family) -> Vec<&'static str> {
    let (own, seen): (&[&str], bool) = match family {
        Family::Email => (
            &[
                "email_subject",
                "content_id",
                "url",
                "link_url",
                "proxy_source",
                "is_bot",
                "recipient_state",
                "bounce_message",
                "reason",
                "transactional_data",
            ],
            true,
        ),
        Family::Subscription => {
            (&["email_list_ids", "unsub_source", "signup_source", "url", "reason"], true)
        }
        Family::Push => (&["push_message", "recipient_state", "bounce_message", "reason"], false),
        Family::Sms => (
            &[
                "to_phone_number",
                "from_phone_number",
                "sms_message",
                "url",
                "link_url",
                "recipient_state",
                "bounce_message",
                "reason",
            ],
            true,
        ),
        Family::InApp | Family::Embedded => (&["content_id", "url", "link_url", "reason"], true),
        Family::WebPush => (&["push_message", "url", "reason"], true),
        Family::WhatsApp => (
            &[
                "to_phone_number",
                "from_phone_number",
                "url",
                "recipient_state",
                "bounce_message",
                "reason",
            ],
            false,
        ),
        Family::Journey => (&["reason"], false),
        Family::Other => (&[], false),
    };
    let mut columns = own.to_vec();
    if seen {
        columns.extend_from_slice(WHERE_SEEN);
    }
    columns
}

/// Drops and recreates every event view in one transaction.
pub(crate) fn rebuild(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for event in KNOWN_EVENTS {
        let columns: Vec<&str> = COMMON
            .iter()
            .copied()
            .chain(family_columns(event.family))
            .chain(["data", "parse_warnings"])
            .collect();
        // Names come from our own catalogue, never from input, so formatting them is safe.
        tx.execute_batch(&format!(
            "DROP VIEW IF EXISTS {view};\nCREATE VIEW {view} AS SELECT {columns} FROM events \
             WHERE event_name = '{name}';",
            view = event.view,
            columns = columns.join(", "),
            name = event.name,
        ))?;
    }
    tx.commit()
}
