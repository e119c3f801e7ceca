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
    /// A later version replaces the stored values, except these columns: the identity and the
    /// first sighting.
    Update { key: &'static str, kept: &'static [&'static str] },
    /// No key: a request's rows are replaced together.
    ByRequest,
}

impl Table {
    /// The `ON CONFLICT` clause for writing rows again: `DO NOTHING`, or with `update` (and a
    /// table whose rows may change) `DO UPDATE SET` every column but the kept ones. `None` for a
    /// table without a key.
    pub fn on_conflict(&self, update: bool) -> Option<String> {
        match self.merge {
            Merge::Update { key, kept } if update => {
                let updates: Vec<String> = self
                    .names()
                    .filter(|name| !kept.contains(name))
                    .map(|name| format!("{name} = excluded.{name}"))
                    .collect();
                Some(format!("ON CONFLICT ({key}) DO UPDATE SET {}", updates.join(", ")))
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
    merge: Merge::Update { key: "event_id", kept: &["event_id", "raw_seq", "received_at"] },
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
    merge: Merge::Update { key: "seq", kept: &["seq"] },
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
