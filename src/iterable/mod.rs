//! Iterable's event model: the envelope, its timestamps and its ids, read the way Iterable
//! really sends them (fields nested in `dataFields`) and the way third-party catalogs show them
//! (fields at the top level). Knows nothing of HTTP or storage.

mod catalog;
mod envelope;
mod fields;
mod ids;
mod timestamp;

pub use catalog::{Family, KNOWN_EVENTS, KnownEvent, family_of, lookup};
pub use envelope::{Envelope, EnvelopeError};
pub use fields::EventFields;
pub use ids::id_i64;
pub use timestamp::{TimestampError, parse_timestamp};

/// The Iglu schema prefix Snowplow uses for Iterable system webhooks, any version.
pub const SNOWPLOW_SCHEMA_PREFIX: &str = "iglu:com.iterable/system_webhook/jsonschema/";
