//! One view per documented event name (`email_open`, `sms_bounce`, ...), selecting the columns
//! that event family fills; every sink that supports views makes the same ones from this list.

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

/// Every event view: its name, the `event_name` it selects, and its columns in order.
pub fn event_views() -> impl Iterator<Item = (&'static str, &'static str, Vec<&'static str>)> {
    KNOWN_EVENTS.iter().map(|event| {
        let columns = COMMON
            .iter()
            .copied()
            .chain(family_columns(event.family))
            .chain(["data", "parse_warnings"])
            .collect();
        (event.view, event.name, columns)
    })
}
