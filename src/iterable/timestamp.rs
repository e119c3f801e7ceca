//! Iterable's timestamps: `2016-12-02 20:21:04 +00:00` (space separator, numeric offset, which an
//! RFC 3339 parser rejects), with RFC 3339 and epoch seconds or milliseconds as fallbacks.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a timestamp in Iterable's format, RFC 3339 or epoch seconds/milliseconds")]
pub struct TimestampError(pub String);

/// Epoch values above this are milliseconds: 1e11 seconds is the year 5138.
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Parses a timestamp field into UTC.
pub fn parse_timestamp(value: &Value) -> Result<DateTime<Utc>, TimestampError> {
    let parsed = match value {
        Value::String(text) => parse_text(text.trim()),
        Value::Number(number) => number.as_i64().and_then(from_epoch),
        _ => None,
    };
    parsed.ok_or_else(|| TimestampError(value.to_string()))
}

fn parse_text(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %:z")
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %:z"))
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .map(|time: DateTime<FixedOffset>| time.with_timezone(&Utc))
        .ok()
        .or_else(|| text.parse::<i64>().ok().and_then(from_epoch))
}

fn from_epoch(value: i64) -> Option<DateTime<Utc>> {
    // `unsigned_abs`: `i64::MIN.abs()` overflows (found by the property tests).
    if value.unsigned_abs() >= MILLIS_THRESHOLD.unsigned_abs() {
        DateTime::from_timestamp_millis(value)
    } else {
        DateTime::from_timestamp(value, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(value: Value) -> String {
        parse_timestamp(&value).unwrap().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    #[test]
    fn iterable_format_is_converted_to_utc() {
        assert_eq!(utc(json!("2016-12-02 20:21:04 +00:00")), "2016-12-02T20:21:04Z");
        assert_eq!(utc(json!("2016-12-02 22:21:04 +02:00")), "2016-12-02T20:21:04Z");
    }

    #[test]
    fn fallbacks() {
        assert_eq!(utc(json!("2016-12-02T20:21:04.5-01:00")), "2016-12-02T21:21:04.500Z");
        assert_eq!(utc(json!(1480710064)), "2016-12-02T20:21:04Z");
        assert_eq!(utc(json!(1480710064000_i64)), "2016-12-02T20:21:04Z");
        assert_eq!(utc(json!("1480710064000")), "2016-12-02T20:21:04Z");
    }

    #[test]
    fn garbage_is_an_error_quoting_the_value() {
        let err = parse_timestamp(&json!("yesterday")).unwrap_err();
        assert!(err.to_string().contains("yesterday"));
        assert!(parse_timestamp(&json!(true)).is_err());
    }
}
