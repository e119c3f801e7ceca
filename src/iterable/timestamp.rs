//! Iterable's timestamps: `2016-12-02 20:21:04 +00:00` (space separator, numeric offset, which an
//! RFC 3339 parser rejects), with RFC 3339 and epoch seconds or milliseconds as fallbacks.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
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
    if let Some(time) = parse_iterable_exact(text) {
        return Some(time);
    }
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %:z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .map(|time: DateTime<FixedOffset>| time.with_timezone(&Utc))
        .ok()
        .or_else(|| text.parse::<i64>().ok().and_then(from_epoch))
}

/// The exact form every real body uses, `2016-12-02 20:21:04 +00:00`, read without a format
/// string: it is on every event's path and chrono's `parse_from_str` re-reads its pattern each
/// call. Anything else falls through to the general parsers.
fn parse_iterable_exact(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 26 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b' ' || b[23] != b':' || !matches!(b[20], b'+' | b'-') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range]
            .iter()
            .try_fold(0u32, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    let date =
        NaiveDate::from_ymd_opt(i32::try_from(number(0..4)?).ok()?, number(5..7)?, number(8..10)?)?;
    let time = date.and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)?;
    let offset_seconds = i32::try_from(number(21..23)? * 3600 + number(24..26)? * 60).ok()?;
    let offset = if b[20] == b'-' { -offset_seconds } else { offset_seconds };
    let offset = FixedOffset::east_opt(offset)?;
    time.and_local_timezone(offset).single().map(|t| t.with_timezone(&Utc))
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
    fn the_exact_form_agrees_with_chrono() {
        for text in [
            "2016-12-02 20:21:04 +00:00",
            "2024-02-29 23:59:59 -07:30",
            "1999-01-01 00:00:00 +14:00",
        ] {
            let chrono = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %:z").unwrap();
            assert_eq!(parse_iterable_exact(text), Some(chrono.with_timezone(&Utc)), "{text}");
        }
        for text in [
            "2016-13-02 20:21:04 +00:00",
            "2016-12-02T20:21:04 +00:00",
            "2016-12-02 20:21:04 +0000",
        ] {
            assert_eq!(parse_iterable_exact(text), None, "{text}");
        }
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
