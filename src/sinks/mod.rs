//! Sinks: where canonical events are loaded. The embedded SQLite sink writes inside the spool's
//! own transaction; every other sink loads from the spool behind its own cursor.

pub mod batch;
pub mod columns;
pub mod cursor;
pub mod postgres;
pub mod sqlite;
pub mod views;
