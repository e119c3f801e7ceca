//! The logical tables as Arrow schemas, and a table's rows as one Arrow record batch: the
//! Parquet types every reader sees.
//!
//! - timestamps: TIMESTAMP(microseconds, UTC);
//! - ids and counts: INT64; `is_bot`: BOOLEAN; bodies: BINARY;
//! - `data`, `transactional_data`, headers and the other JSON columns: strings with the
//!   canonical JSON extension type, written as Parquet's JSON logical type;
//! - two JSON columns are lists in every warehouse's eyes, and typed as such here:
//!   `email_list_ids` LIST<INT64>, `labels` LIST<STRING>.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::extension::Json;
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};

use crate::sinks::batch::{Cell, Row};
use crate::sinks::columns::{Kind, Table};

/// JSON columns that hold a list, and the type of its items.
const LISTS: [(&str, DataType); 2] =
    [("email_list_ids", DataType::Int64), ("labels", DataType::Utf8)];

/// How a column is typed in the lake.
#[derive(Debug, Clone, PartialEq)]
enum LakeType {
    Plain(DataType),
    Json,
    List(DataType),
}

fn lake_type(name: &str, kind: Kind) -> LakeType {
    if let Some((_, item)) = LISTS.iter().find(|(list, _)| *list == name) {
        return LakeType::List(item.clone());
    }
    match kind {
        Kind::Text => LakeType::Plain(DataType::Utf8),
        Kind::BigInt => LakeType::Plain(DataType::Int64),
        Kind::Bool => LakeType::Plain(DataType::Boolean),
        Kind::Time => LakeType::Plain(utc_micros()),
        Kind::Json => LakeType::Json,
        Kind::Bytes => LakeType::Plain(DataType::Binary),
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The items of a list column: nullable, named `item` as Arrow's builders make them.
fn item_field(item: &DataType) -> Arc<Field> {
    Arc::new(Field::new("item", item.clone(), true))
}

/// The table's schema in the lake; every column may be null (a value a request did not have).
pub fn arrow_schema(table: &Table) -> Schema {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .map(|column| match lake_type(column.name, column.kind) {
            LakeType::Plain(data_type) => Field::new(column.name, data_type, true),
            LakeType::Json => {
                Field::new(column.name, DataType::Utf8, true).with_extension_type(Json::default())
            }
            LakeType::List(item) => {
                Field::new(column.name, DataType::List(item_field(&item)), true)
            }
        })
        .collect();
    Schema::new(fields)
}

/// `rows` of `table` as one record batch, columns in the table's order.
pub fn record_batch(table: &Table, rows: &[&Row]) -> Result<RecordBatch, ArrowError> {
    let schema = Arc::new(arrow_schema(table));
    let columns: Vec<ArrayRef> = table
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let cells = rows.iter().map(move |row| row.cells.get(index).unwrap_or(&Cell::Null));
            build_column(&lake_type(column.name, column.kind), cells)
        })
        .collect();
    RecordBatch::try_new(schema, columns)
}

fn build_column<'a>(lake: &LakeType, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    match lake {
        LakeType::Plain(DataType::Int64) => {
            let mut builder = Int64Builder::new();
            cells.for_each(|cell| builder.append_option(as_int(cell)));
            Arc::new(builder.finish())
        }
        LakeType::Plain(DataType::Boolean) => {
            let mut builder = BooleanBuilder::new();
            cells.for_each(|cell| {
                builder.append_option(match cell {
                    Cell::Bool(value) => Some(*value),
                    _ => None,
                })
            });
            Arc::new(builder.finish())
        }
        LakeType::Plain(DataType::Timestamp(..)) => {
            let mut builder = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            cells.for_each(|cell| {
                builder.append_option(match cell {
                    Cell::Time(time) => Some(time.timestamp_micros()),
                    _ => None,
                })
            });
            Arc::new(builder.finish())
        }
        LakeType::Plain(DataType::Binary) => {
            let mut builder = BinaryBuilder::new();
            cells.for_each(|cell| match cell {
                Cell::Bytes(bytes) => builder.append_value(bytes),
                _ => builder.append_null(),
            });
            Arc::new(builder.finish())
        }
        LakeType::List(item) => build_list(item, cells),
        // Text, and JSON as its text.
        _ => {
            let mut builder = StringBuilder::new();
            cells.for_each(|cell| match cell {
                Cell::Text(text) | Cell::Json(text) => builder.append_value(text),
                _ => builder.append_null(),
            });
            Arc::new(builder.finish())
        }
    }
}

fn as_int(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(value) => Some(*value),
        _ => None,
    }
}

/// A JSON array cell as a list; JSON that is not an array of the item type is null (the
/// whole value is still in the event's `data`).
fn build_list<'a>(item: &DataType, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    let parsed = cells.map(|cell| match cell {
        Cell::Json(text) => serde_json::from_str::<Vec<serde_json::Value>>(text).ok(),
        _ => None,
    });
    if *item == DataType::Int64 {
        let mut builder = ListBuilder::new(Int64Builder::new()).with_field(item_field(item));
        for list in parsed {
            match list {
                Some(values) => {
                    values.iter().for_each(|value| builder.values().append_option(value.as_i64()));
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        return Arc::new(builder.finish());
    }
    let mut builder = ListBuilder::new(StringBuilder::new()).with_field(item_field(item));
    for list in parsed {
        match list {
            Some(values) => {
                for value in &values {
                    match value {
                        serde_json::Value::String(text) => builder.values().append_value(text),
                        serde_json::Value::Null => builder.values().append_null(),
                        other => builder.values().append_value(other.to_string()),
                    }
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}
