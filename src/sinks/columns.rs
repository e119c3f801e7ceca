//! The logical tables every sink holds (DESIGN.md, "Tables"), declared once: their columns in
//! order, with the kind of value each holds. [`crate::sinks::batch`] builds rows in this order
//! and every sink maps each kind to its own type; `tests/row_model.rs` checks the real SQLite
//! and PostgreSQL schemas against this declaration.

/// What a column holds, independent of any database's type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    BigInt,
    Bool,
    /// An instant, stored in SQLite as RFC 3339 UTC text.
    Time,
    /// JSON, stored in SQLite as text.
    Json,
    Bytes,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

use Kind::{BigInt, Bool, Bytes, Json, Text, Time};

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The column holding the `raw_requests.seq` a row belongs to, which cursors move along.
    pub seq_column: &'static str,
    /// How a row written again (a resend, a replay, a reload) meets the stored one.
    pub merge: Merge,
}

/// How a row meets a stored row with the same key.
#[derive(Debug, Clone, Copy)]
pub enum Merge {
    /// Rows never change once stored: another copy is ignored.
    Keep { key: &'static str },
    /// A later version replaces the stored values, except `kept` (the identity and the first
    /// sighting) and `filled`: what the route adds rather than the body, which a later copy only
    /// fills where the stored row has none, also when the row is otherwise kept as it is.
    Update { key: &'static str, kept: &'static [&'static str], filled: &'static [&'static str] },
    /// No key: a request's rows are replaced together.
    ByRequest,
}

impl Table {
    /// The `ON CONFLICT` clause for writing rows again. Without `update`, the stored row stays
    /// as it is but for its NULL `filled` columns, which the new copy fills (`DO NOTHING` when
    /// the table has none). With `update` (and a table whose rows may change), every column but
    /// the kept ones takes the new value, and the filled ones keep a stored value over a new one.
    /// `None` for a table without a key. The stored row is named by the bare table name, which
    /// SQLite and PostgreSQL both accept in `DO UPDATE` for a schema-qualified target too.
    pub fn on_conflict(&self, update: bool) -> Option<String> {
        let name = self.name;
        let fill =
            |column: &str| format!("{column} = coalesce({name}.{column}, excluded.{column})");
        match self.merge {
            Merge::Update { key, kept, filled } if update => {
                let updates: Vec<String> = self
                    .names()
                    .filter(|column| !kept.contains(column))
                    .map(|column| {
                        if filled.contains(&column) {
                            fill(column)
                        } else {
                            format!("{column} = excluded.{column}")
                        }
                    })
                    .collect();
                Some(format!("ON CONFLICT ({key}) DO UPDATE SET {}", updates.join(", ")))
            }
            Merge::Update { key, filled, .. } if !filled.is_empty() => {
                let updates: Vec<String> = filled.iter().map(|column| fill(column)).collect();
                // Only a row that gains a value is written: a plain resend changes nothing.
                let gains: Vec<String> = filled
                    .iter()
                    .map(|column| {
                        format!("({name}.{column} IS NULL AND excluded.{column} IS NOT NULL)")
                    })
                    .collect();
                Some(format!(
                    "ON CONFLICT ({key}) DO UPDATE SET {} WHERE {}",
                    updates.join(", "),
                    gains.join(" OR ")
                ))
            }
            Merge::Keep { key } | Merge::Update { key, .. } => {
                Some(format!("ON CONFLICT ({key}) DO NOTHING"))
            }
            Merge::ByRequest => None,
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + Clone + '_ {
        self.columns.iter().map(|column| column.name)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }
}

pub const RAW_REQUESTS: Table = Table {
    name: "raw_requests",
    columns: &[
        col("seq", BigInt),
        col("received_at", Time),
        col("source", Text),
        col("kind", Text),
        col("journey", Text),
        col("method", Text),
        col("path", Text),
        col("query", Text),
        col("headers", Json),
        col("remote_addr", Text),
        col("content_type", Text),
        col("body", Bytes),
        col("body_sha256", Text),
        col("body_dropped", Bool),
        col("pseudonymised", Bool),
        col("peer_addr", Text),
        col("answer_status", BigInt),
    ],
    seq_column: "seq",
    merge: Merge::Keep { key: "seq" },
};

/// `events`, in the order the SQLite sink inserts them.
pub const EVENTS: Table = Table {
    name: "events",
    columns: &[
        col("event_id", Text),
        col("raw_seq", BigInt),
        col("source", Text),
        col("event_name", Text),
        col("email", Text),
        col("user_id", Text),
        col("created_at", Time),
        col("received_at", Time),
        col("campaign_id", BigInt),
        col("template_id", BigInt),
        col("message_id", Text),
        col("app_id", Text),
        col("platform", Text),
        col("data", Json),
        col("family", Text),
        col("channel_id", BigInt),
        col("message_type_id", BigInt),
        col("workflow_id", BigInt),
        col("experiment_id", BigInt),
        col("content_id", BigInt),
        col("campaign_name", Text),
        col("template_name", Text),
        col("workflow_name", Text),
        col("email_subject", Text),
        col("url", Text),
        col("link_url", Text),
        col("user_agent", Text),
        col("user_agent_device", Text),
        // Text, not an IP type: a pseudonymised source stores a digest here.
        col("ip", Text),
        col("city", Text),
        col("region", Text),
        col("country", Text),
        col("locale", Text),
        col("proxy_source", Text),
        col("is_bot", Bool),
        col("recipient_state", Text),
        col("bounce_message", Text),
        col("reason", Text),
        col("unsub_source", Text),
        col("signup_source", Text),
        col("email_list_ids", Json),
        col("labels", Json),
        col("to_phone_number", Text),
        col("from_phone_number", Text),
        col("sms_message", Text),
        col("push_message", Text),
        col("transactional_data", Json),
        col("parse_warnings", Json),
    ],
    seq_column: "raw_seq",
    // The same event sent by the native and the Snowplow path is one row (its id comes from
    // the body): the first arrival's, with the `app_id` and `platform` of a later copy where
    // the first had none (README, "Deduplication").
    merge: Merge::Update {
        key: "event_id",
        kept: &["event_id", "raw_seq", "received_at"],
        filled: &["app_id", "platform"],
    },
};

pub const JOURNEY_CALLS: Table = Table {
    name: "journey_calls",
    columns: &[
        col("seq", BigInt),
        col("received_at", Time),
        col("source", Text),
        col("journey", Text),
        col("method", Text),
        col("email", Text),
        col("user_id", Text),
        col("data", Json),
        col("answer_status", BigInt),
    ],
    seq_column: "seq",
    merge: Merge::Update { key: "seq", kept: &["seq"], filled: &[] },
};

/// `failed_events` without its local `id`: sinks key failures by the request they came from.
pub const FAILED_EVENTS: Table = Table {
    name: "failed_events",
    columns: &[
        col("raw_seq", BigInt),
        col("received_at", Time),
        col("stage", Text),
        col("reason", Text),
        col("sink", Text),
        col("body", Bytes),
    ],
    seq_column: "raw_seq",
    merge: Merge::ByRequest,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_copy_fills_only_the_route_columns() {
        let keep = EVENTS.on_conflict(false).unwrap();
        assert!(keep.starts_with("ON CONFLICT (event_id) DO UPDATE SET "), "{keep}");
        assert!(keep.contains("app_id = coalesce(events.app_id, excluded.app_id)"), "{keep}");
        assert!(keep.contains("platform = coalesce(events.platform, excluded.platform)"));
        assert!(keep.contains("WHERE (events.app_id IS NULL AND excluded.app_id IS NOT NULL)"));
        assert!(!keep.contains("email ="), "a resend changes nothing else: {keep}");

        let update = EVENTS.on_conflict(true).unwrap();
        assert!(update.contains("email = excluded.email"), "{update}");
        assert!(update.contains("app_id = coalesce(events.app_id, excluded.app_id)"));
        assert!(!update.contains("raw_seq ="), "{update}");
        assert!(!update.contains(" WHERE "), "{update}");

        assert_eq!(RAW_REQUESTS.on_conflict(true).unwrap(), "ON CONFLICT (seq) DO NOTHING");
        assert!(!JOURNEY_CALLS.on_conflict(false).unwrap().contains("UPDATE"));
    }
}
