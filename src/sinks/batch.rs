//! Reading the spool for sinks that load from it: the requests after a cursor, with every row
//! they produced, in one read transaction so the batch is a consistent snapshot.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension as _};

use super::columns::{EVENTS, FAILED_EVENTS, JOURNEY_CALLS, Kind, RAW_REQUESTS, Table};

/// One value, typed by its column's [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Json(String),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
}

/// One row of a [`Table`], its cells in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The request it came from.
    pub seq: i64,
    pub cells: Vec<Cell>,
    /// Set when a stored value does not fit its column's kind; such a row is refused whole.
    pub problem: Option<String>,
}

/// The rows of one table in a batch.
#[derive(Debug)]
pub struct Rows {
    pub table: &'static Table,
    pub rows: Vec<Row>,
}

/// Requests `after < seq <= through` and everything they produced.
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub through: i64,
    pub raw_requests: Rows,
    pub events: Rows,
    pub journey_calls: Rows,
    /// The normaliser's failures; a sink adds its own refusals.
    pub failures: Rows,
}

impl Batch {
    pub fn event_count(&self) -> usize {
        self.events.rows.len()
    }
}

/// Reads the next batch after `after`: up to `max_events` events and `max_events` requests,
/// always whole requests. `None` when there is nothing new.
pub fn read(
    conn: &mut Connection,
    after: i64,
    max_events: usize,
) -> rusqlite::Result<Option<Batch>> {
    let tx = conn.transaction()?;
    let last: Option<i64> = tx.query_row("SELECT max(seq) FROM raw_requests", [], |r| r.get(0))?;
    let Some(last) = last.filter(|&last| last > after) else { return Ok(None) };
    let limit = i64::try_from(max_events.max(1)).unwrap_or(i64::MAX);
    // The request holding the `max_events`-th event after the cursor ends the batch.
    let by_events: Option<i64> = tx
        .query_row(
            "SELECT raw_seq FROM events WHERE raw_seq > ?1 ORDER BY raw_seq LIMIT 1 OFFSET ?2",
            [after, limit - 1],
            |r| r.get(0),
        )
        .optional()?;
    let through = by_events.unwrap_or(last).min(last).min(after.saturating_add(limit));
    let batch = Batch {
        after,
        through,
        raw_requests: read_rows(&tx, &RAW_REQUESTS, "", after, through)?,
        events: read_rows(&tx, &EVENTS, "", after, through)?,
        journey_calls: read_rows(&tx, &JOURNEY_CALLS, "", after, through)?,
        failures: read_rows(&tx, &FAILED_EVENTS, "AND sink IS NULL", after, through)?,
    };
    tx.commit()?;
    Ok(Some(batch))
}

fn read_rows(
    conn: &Connection,
    table: &'static Table,
    extra_condition: &str,
    after: i64,
    through: i64,
) -> rusqlite::Result<Rows> {
    let names: Vec<&str> = table.names().collect();
    let seq = table.seq_column;
    // Table and column names come from our own specs, never from input.
    let sql = format!(
        "SELECT {} FROM {} WHERE {seq} > ?1 AND {seq} <= ?2 {extra_condition} ORDER BY {seq}",
        names.join(", "),
        table.name,
    );
    let seq_index = table.position(seq).unwrap_or(0);
    let mut statement = conn.prepare_cached(&sql)?;
    let mut cursor = statement.query([after, through])?;
    let mut rows = Vec::new();
    while let Some(row) = cursor.next()? {
        let mut cells = Vec::with_capacity(names.len());
        let mut problem = None;
        for (index, column) in table.columns.iter().enumerate() {
            let cell = cell(row.get_ref(index)?, column.kind).unwrap_or_else(|why| {
                problem.get_or_insert_with(|| format!("{}: {why}", column.name));
                Cell::Null
            });
            cells.push(cell);
        }
        let seq = match cells.get(seq_index) {
            Some(Cell::Int(seq)) => *seq,
            _ => after,
        };
        rows.push(Row { seq, cells, problem });
    }
    Ok(Rows { table, rows })
}

/// Reads a stored value as `kind`; SQLite's loose typing means a column may hold anything.
fn cell(value: ValueRef<'_>, kind: Kind) -> Result<Cell, String> {
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|_| "stored text is not UTF-8".to_owned())
    };
    Ok(match (value, kind) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Integer(n), Kind::BigInt) => Cell::Int(n),
        (ValueRef::Integer(n), Kind::Bool) => Cell::Bool(n != 0),
        (ValueRef::Integer(n), Kind::Text) => Cell::Text(n.to_string()),
        (ValueRef::Real(x), Kind::Text) => Cell::Text(x.to_string()),
        (ValueRef::Text(bytes), Kind::Text) => Cell::Text(text(bytes)?),
        (ValueRef::Text(bytes), Kind::Json) => Cell::Json(text(bytes)?),
        (ValueRef::Text(bytes), Kind::Time) => {
            let text = text(bytes)?;
            let time = DateTime::parse_from_rfc3339(&text)
                .map_err(|_| format!("`{text}` is not an RFC 3339 time"))?;
            Cell::Time(time.with_timezone(&Utc))
        }
        (ValueRef::Blob(bytes) | ValueRef::Text(bytes), Kind::Bytes) => Cell::Bytes(bytes.to_vec()),
        (value, kind) => {
            return Err(format!("a {:?} value in a {kind:?} column", value.data_type()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_their_column_kind() {
        assert_eq!(cell(ValueRef::Integer(1), Kind::Bool), Ok(Cell::Bool(true)));
        assert_eq!(cell(ValueRef::Integer(7), Kind::Text), Ok(Cell::Text("7".to_owned())));
        let time = cell(ValueRef::Text(b"2026-11-22T10:00:00.5Z"), Kind::Time).unwrap();
        assert_eq!(time, Cell::Time("2026-11-22T10:00:00.500Z".parse().unwrap()));
        assert!(cell(ValueRef::Text(b"yesterday"), Kind::Time).unwrap_err().contains("yesterday"));
        assert!(cell(ValueRef::Real(1.5), Kind::BigInt).is_err());
    }
}
