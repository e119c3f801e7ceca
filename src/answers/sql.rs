//! The `sql` answer: an operator's query, read-only, its named parameters bound to the call's
//! values (never written into the SQL), its first row's columns the answer's fields.
//!
//! A parameter `:name` (or `@name`, `$name`) takes the call's `name` from the body's top
//! level, else from the body's `dataFields`, else from the query string (the order a journey
//! call's email is found in); a name the call does not have is NULL. Strings stay text,
//! numbers numbers; an object or array is bound as its JSON text.

use std::time::Duration;

use base64::Engine as _;
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};

use super::Answer;
use crate::pipeline::{JourneyCall, call_values};
use crate::spool::SpoolError;
use crate::spool::SpoolReader;

pub(super) fn answer(
    reader: &mut SpoolReader,
    call: &JourneyCall,
    query: &str,
    max_rows: usize,
    limit: Duration,
) -> Result<Answer, SpoolError> {
    let data: Value = serde_json::from_str(&call.data).unwrap_or(Value::Null);
    let found = reader.answer_rows(query, |name| parameter(&data, name), max_rows, limit)?;
    let object = |cells: Option<&Vec<SqlValue>>| -> Map<String, Value> {
        found
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                (column.clone(), cells.map_or(Value::Null, |cells| json_of(&cells[i])))
            })
            .collect()
    };
    // No row: every field null, so the answer's shape never depends on the user.
    let mut fields = object(found.rows.first());
    if max_rows > 1 {
        let rows = found.rows.iter().map(|row| Value::Object(object(Some(row)))).collect();
        fields.insert("rows".to_owned(), Value::Array(rows));
    }
    Ok(Answer::ok(Value::Object(fields)))
}

/// The call's value for parameter `name` (`data` is the journey call's `{query, body}`).
fn parameter(data: &Value, name: &str) -> SqlValue {
    match call_values(data, name).next() {
        None | Some(Value::Null) => SqlValue::Null,
        Some(Value::String(text)) => SqlValue::Text(text.clone()),
        Some(Value::Bool(flag)) => SqlValue::Integer(i64::from(*flag)),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(SqlValue::Integer)
            .or_else(|| number.as_f64().map(SqlValue::Real))
            .unwrap_or(SqlValue::Null),
        Some(other) => SqlValue::Text(other.to_string()),
    }
}

/// A cell as JSON: numbers stay numbers; a blob, which JSON has no type for, is base64.
fn json_of(cell: &SqlValue) -> Value {
    match cell {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(number) => Value::from(*number),
        SqlValue::Real(number) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        SqlValue::Text(text) => Value::String(text.clone()),
        SqlValue::Blob(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_from_the_body_then_data_fields_then_the_query() {
        let data = serde_json::json!({
            "query": {"email": "q@x.io", "step": "2"},
            "body": {"email": "b@x.io", "n": 3, "vip": true, "dataFields": {"step": "9", "tags": ["a"]}},
        });
        assert_eq!(parameter(&data, "email"), SqlValue::Text("b@x.io".into()));
        assert_eq!(parameter(&data, "step"), SqlValue::Text("9".into()));
        assert_eq!(parameter(&data, "n"), SqlValue::Integer(3));
        assert_eq!(parameter(&data, "vip"), SqlValue::Integer(1));
        assert_eq!(parameter(&data, "tags"), SqlValue::Text(r#"["a"]"#.into()));
        assert_eq!(parameter(&data, "missing"), SqlValue::Null);
        let get = serde_json::json!({"query": {"email": "q@x.io"}, "body": null});
        assert_eq!(parameter(&get, "email"), SqlValue::Text("q@x.io".into()));
    }
}
