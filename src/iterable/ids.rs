//! Iterable's integer ids (`campaignId`, `templateId`, ...): numbers in real bodies, numeric
//! strings in form-encoded and query-string bodies, often `null`.

use serde_json::Value;

/// An id as `i64`, from a JSON integer or a string of digits; `None` for null, empty or
/// anything that is not a whole number in range.
pub fn id_i64(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64().or_else(|| {
            // Some senders write ids as floats (`12345.0`); accept them only when exact.
            number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_numeric_strings() {
        assert_eq!(id_i64(Some(&json!(12345))), Some(12345));
        assert_eq!(id_i64(Some(&json!("12345"))), Some(12345));
        assert_eq!(id_i64(Some(&json!(12345.0))), Some(12345));
        assert_eq!(id_i64(Some(&json!(1.5))), None);
        assert_eq!(id_i64(Some(&json!(""))), None);
        assert_eq!(id_i64(Some(&json!(null))), None);
        assert_eq!(id_i64(None), None);
    }
}
