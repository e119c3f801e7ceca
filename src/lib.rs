//! hookhouse receives Iterable's webhooks, stores every one durably before answering, and
//! turns them into typed, deduplicated rows.
//!
//! # Layout
//!
//! The modules follow the path of one event:
//!
//! - [`cli`]: subcommands and what they print.
//! - [`config`]: defaults, TOML file, `HOOKHOUSE_*` variables and flags, validated in one pass.
//! - [`app`]: start-up wiring and graceful shutdown; `http_server`: the accept loop (plain or
//!   TLS) with its connection limit, its timers for silent and idle connections, and HTTP/2
//!   flow control.
//! - [`receiver`]: HTTP routes, authentication, limits, errors to statuses.
//! - [`iterable`]: Iterable's envelope, timestamps and ids.
//! - [`request`]: the request record and its kind, below everything that handles requests.
//! - [`pipeline`]: a stored request in, canonical events and failures out.
//! - [`spool`]: the durable request log (`hookhouse.db`), its group-commit writer and the
//!   sinks' cursors; the only module that opens the file.
//! - [`metrics`]: the counters behind `GET /metrics` and their names.
//! - [`tls`]: certificates for HTTPS, reloaded on SIGHUP.
//! - [`sinks`]: every set of tables made from the log, each behind its cursor on one runner:
//!   the embedded SQLite tables (on by default) and PostgreSQL.
//! - [`answers`]: journey calls answered with data from the embedded tables (the built-in
//!   engagement profile, or an operator's read-only query).
//! - [`inspector`]: the admin listener's page and JSON API (what arrived, what became of it,
//!   replay), reading the embedded tables through the spool's read-only connection.
//! - [`telemetry`]: the log subscriber (text or JSON), escaping of a sender's text, and
//!   rate-limited lines; every layer may use it.

pub mod answers;
pub mod app;
pub mod cli;
pub mod config;
mod http_server;
pub mod inspector;
pub mod iterable;
pub mod jetstream;
pub mod metrics;
pub mod pipeline;
pub mod receiver;
pub mod request;
pub mod simulate;
pub mod sinks;
pub mod spool;
pub mod telemetry;
pub mod tls;
