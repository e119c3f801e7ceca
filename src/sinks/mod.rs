//! Sinks: where canonical events are loaded. One folder per sink, each with the same shape.

pub mod sqlite;
