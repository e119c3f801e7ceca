//! Loading one batch, all in one transaction, idempotently:
//!
//! - `{schema}.load_progress` holds the last `seq` loaded, moved in the batch's transaction. A
//!   batch entirely after it was never loaded: binary COPY straight into the tables, the
//!   fastest way into PostgreSQL.
//! - A batch that overlaps it (a crash between PostgreSQL's commit and the cursor update, or a
//!   replay that moved the cursor back) goes through session-local staging tables and
//!   `INSERT ... SELECT ... ON CONFLICT`: requests and journey calls are keyed by `seq`, events
//!   by `event_id`. A batch's failures replace those already loaded for its requests.
//!
//! A value PostgreSQL refuses (a NUL character in text, an index entry too large, ...) fails
//! the whole COPY. The batch is then loaded again in one transaction, table by table, each
//! piece in a savepoint, halving the pieces that fail until the refused rows are alone; they
//! become refusals and everything else loads, with one commit.

use chrono::Utc;
use futures_util::pin_mut;
use serde_json::{Map, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::PgError;
use super::encode::pg_type;
use crate::sinks::batch::{Batch, Cell, Row};
use crate::sinks::columns::{
    EVENTS, FAILED_EVENTS, JOURNEY_CALLS, Kind, Merge, RAW_REQUESTS, Table,
};
use crate::spool::Refusal;

/// The name this sink records its refusals under.
pub const SINK_NAME: &str = "postgres";

/// The two connections a batch loads over, side by side: PostgreSQL parses COPY data in one
/// process per connection, so two use two cores.
pub(super) struct Connections {
    /// `raw_requests`, `journey_calls` and `failed_events`: progress mark `requests`.
    pub(super) requests: Client,
    /// `events`: progress mark `events`.
    pub(super) events: Client,
}

impl Connections {
    pub(super) fn is_closed(&self) -> bool {
        self.requests.is_closed() || self.events.is_closed()
    }
}

/// Loads `batch`; returns the rows PostgreSQL refused, which are also in its `failed_events`.
pub(super) async fn load(
    connections: &mut Connections,
    schema: &str,
    batch: &Batch,
) -> Result<Vec<Refusal>, PgError> {
    let tables = [&batch.raw_requests, &batch.journey_calls, &batch.events];
    // Rows whose stored values do not fit their column are refused before anything is sent.
    let mut refusals: Vec<Refusal> = tables
        .iter()
        .flat_map(|rows| rows.rows.iter().filter_map(|row| unreadable(rows.table, row)))
        .collect();
    let parts: Vec<(&Table, Vec<&Row>)> = tables
        .iter()
        .map(|rows| (rows.table, rows.rows.iter().filter(|row| row.problem.is_none()).collect()))
        .collect();
    let (request_parts, event_parts) = parts.split_at(2);

    // The common case: each part in one transaction, both at once.
    let (requests, events) = tokio::join!(
        load_part(&mut connections.requests, schema, REQUESTS, request_parts, batch, &refusals),
        load_part(&mut connections.events, schema, EVENTS_MARK, event_parts, batch, &[]),
    );
    match (requests, events) {
        (Ok(()), Ok(())) => return Ok(refusals),
        (Err(err), _) | (_, Err(err)) if !is_refusal(&err) => return Err(err.into()),
        _ => {}
    }

    // Something was refused: load the batch again in one transaction, each piece in a
    // savepoint, halving the pieces that fail until the refused rows are alone.
    let mut tx = connections.requests.transaction().await?;
    for (table, rows) in &parts {
        let mut pending: Vec<&[&Row]> = vec![rows];
        while let Some(part) = pending.pop() {
            let piece = tx.savepoint("piece").await?;
            match load_rows(&piece, schema, table, part, Path::Staged).await {
                Ok(()) => piece.commit().await?,
                Err(err) if is_refusal(&err) => {
                    piece.rollback().await?;
                    match part {
                        [row] => refusals.push(refusal(table, row, &super::describe(&err))),
                        _ => {
                            let (left, right) = part.split_at(part.len() / 2);
                            pending.push(right);
                            pending.push(left);
                        }
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    replace_failures(&tx, schema, batch, &refusals).await?;
    for (table, rows) in &parts {
        delete_stale(&tx, schema, table, rows, batch).await?;
    }
    for mark in [REQUESTS, EVENTS_MARK] {
        lock_progress(&tx, schema, mark).await?;
        set_progress(&tx, schema, mark, batch.through).await?;
    }
    tx.commit().await?;
    Ok(refusals)
}

/// The progress marks in `{schema}.load_progress`.
const REQUESTS: &str = "requests";
const EVENTS_MARK: &str = "events";

/// Loads one part of a batch in one transaction that also moves the part's progress mark:
/// straight into the tables when PostgreSQL has never seen these requests, through the
/// staging tables otherwise. `refusals` go with the requests part (into `failed_events`).
async fn load_part(
    client: &mut Client,
    schema: &str,
    mark: &str,
    parts: &[(&Table, Vec<&Row>)],
    batch: &Batch,
    refusals: &[Refusal],
) -> Result<(), tokio_postgres::Error> {
    let mut path = Path::Direct;
    loop {
        let tx = client.transaction().await?;
        if batch.after < lock_progress(&tx, schema, mark).await? {
            path = Path::Staged;
        }
        match load_parts(&tx, schema, parts, path, batch).await {
            Ok(()) => {
                if mark == REQUESTS {
                    replace_failures(&tx, schema, batch, refusals).await?;
                }
                set_progress(&tx, schema, mark, batch.through).await?;
                return tx.commit().await;
            }
            // An event a replay moved to a later request is already there: merge instead.
            Err(err) if path == Path::Direct && err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                path = Path::Staged;
            }
            Err(err) => return Err(err),
        }
    }
}

/// How rows reach their table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// COPY into the table itself: only for requests PostgreSQL has never seen.
    Direct,
    /// COPY into a staging table, then merge on the table's key.
    Staged,
}

async fn load_parts(
    tx: &Transaction<'_>,
    schema: &str,
    parts: &[(&Table, Vec<&Row>)],
    path: Path,
    batch: &Batch,
) -> Result<(), tokio_postgres::Error> {
    for (table, rows) in parts {
        load_rows(tx, schema, table, rows, path).await?;
        if path == Path::Staged {
            delete_stale(tx, schema, table, rows, batch).await?;
        }
    }
    Ok(())
}

/// Deletes the rows of the batch's requests that are no longer in the batch: a replay turned
/// them into something else (an event into a failure, say). Only for a batch loaded before.
/// By the batch's own seqs: a batch from a shared consumer is not every request of its range.
async fn delete_stale(
    tx: &Transaction<'_>,
    schema: &str,
    table: &Table,
    rows: &[&Row],
    batch: &Batch,
) -> Result<(), tokio_postgres::Error> {
    let Merge::Update { key, .. } = table.merge else { return Ok(()) };
    let Some(index) = table.position(key) else { return Ok(()) };
    let seq = table.seq_column;
    let sql = format!(
        "DELETE FROM {schema}.{name} WHERE {seq} = ANY($1) AND NOT ({key} = ANY($2)) \
         AND NOT ({seq} = ANY($3))",
        name = table.name
    );
    // Requests whose rows could not be made again keep the rows they have.
    let (seqs, kept) = (&batch.seqs, &batch.kept);
    if table.columns[index].kind == Kind::Text {
        let keys: Vec<&str> = rows
            .iter()
            .filter_map(|row| match row.cells.get(index) {
                Some(Cell::Text(key)) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        tx.execute(&sql, &[seqs, &keys, kept]).await?;
    } else {
        let keys: Vec<i64> = rows
            .iter()
            .filter_map(|row| match row.cells.get(index) {
                Some(Cell::Int(key)) => Some(*key),
                _ => None,
            })
            .collect();
        tx.execute(&sql, &[seqs, &keys, kept]).await?;
    }
    Ok(())
}

/// Reads how far a part has loaded, locking its mark so one loader works at a time.
async fn lock_progress(
    tx: &Transaction<'_>,
    schema: &str,
    mark: &str,
) -> Result<i64, tokio_postgres::Error> {
    let sql = format!("SELECT seq FROM {schema}.load_progress WHERE part = $1 FOR UPDATE");
    Ok(tx.query_one(&sql, &[&mark]).await?.get(0))
}

async fn set_progress(
    tx: &Transaction<'_>,
    schema: &str,
    mark: &str,
    through: i64,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!("UPDATE {schema}.load_progress SET seq = greatest(seq, $1) WHERE part = $2");
    tx.execute(&sql, &[&through, &mark]).await?;
    Ok(())
}

fn stage_name(table: &Table) -> String {
    format!("hookhouse_stage_{}", table.name)
}

/// Creates this connection's staging tables: session-local, emptied at every commit or
/// rollback.
pub(super) async fn create_staging(client: &Client, schema: &str) -> Result<(), PgError> {
    for table in [&RAW_REQUESTS, &EVENTS, &JOURNEY_CALLS] {
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {stage} (LIKE {schema}.{name} INCLUDING DEFAULTS) \
                 ON COMMIT DELETE ROWS",
                stage = stage_name(table),
                name = table.name
            ))
            .await?;
    }
    Ok(())
}

/// Copies `rows` into their table, directly or through its staging table.
async fn load_rows(
    tx: &Transaction<'_>,
    schema: &str,
    table: &Table,
    rows: &[&Row],
    path: Path,
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    if path == Path::Direct {
        return copy(tx, &format!("{schema}.{}", table.name), table, rows).await;
    }
    let stage = stage_name(table);
    let columns = table.names().collect::<Vec<_>>().join(", ");
    copy(tx, &stage, table, rows).await?;
    // Staged tables all have a key (failures are replaced by range, never staged).
    let conflict = table.on_conflict(true).unwrap_or_default();
    // Emptied at once, not at commit: the split below merges several pieces in one transaction.
    tx.batch_execute(&format!(
        "INSERT INTO {schema}.{name} ({columns}) SELECT {columns} FROM {stage} \
         {conflict}; DELETE FROM {stage}",
        name = table.name
    ))
    .await
}

/// Binary COPY of `rows` into `target`, whose columns are the table's.
async fn copy(
    tx: &Transaction<'_>,
    target: &str,
    table: &Table,
    rows: &[&Row],
) -> Result<(), tokio_postgres::Error> {
    let columns = table.names().collect::<Vec<_>>().join(", ");
    let sink = tx.copy_in(&format!("COPY {target} ({columns}) FROM STDIN (FORMAT binary)")).await?;
    let types: Vec<_> = table.columns.iter().map(|column| pg_type(column.kind)).collect();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for row in rows {
        writer.as_mut().write_raw(row.cells.iter()).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// The batch's failures (the normaliser's and this sink's refusals) replace those already
/// loaded for its requests, so loading a batch again never doubles them.
async fn replace_failures(
    tx: &Transaction<'_>,
    schema: &str,
    batch: &Batch,
    refusals: &[Refusal],
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &format!("DELETE FROM {schema}.failed_events WHERE raw_seq = ANY($1)"),
        &[&batch.seqs],
    )
    .await?;
    // Failures must always load: text PostgreSQL cannot hold is made safe first.
    let rows: Vec<Row> = batch
        .failures
        .rows
        .iter()
        .map(storable_failure)
        .chain(refusals.iter().map(|refusal| storable_failure(&refusal_row(refusal))))
        .collect();
    let rows: Vec<&Row> = rows.iter().collect();
    if rows.is_empty() {
        return Ok(());
    }
    copy(tx, &format!("{schema}.failed_events"), &FAILED_EVENTS, &rows).await
}

/// Whether PostgreSQL refused a value, rather than failing to run: data exceptions (class 22),
/// constraint violations (23) and limits such as an index entry too large (54).
fn is_refusal(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        let code = code.code();
        code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
    }) && err.code() != Some(&SqlState::QUERY_CANCELED)
}

fn unreadable(table: &'static Table, row: &Row) -> Option<Refusal> {
    row.problem.as_ref().map(|problem| refusal(table, row, problem))
}

fn refusal(table: &Table, row: &Row, reason: &str) -> Refusal {
    let received_at = table
        .position("received_at")
        .and_then(|index| match row.cells.get(index) {
            Some(Cell::Time(time)) => Some(*time),
            _ => None,
        })
        .unwrap_or_else(Utc::now);
    let body = match (table.name, table.position("body").and_then(|i| row.cells.get(i))) {
        ("raw_requests", Some(Cell::Bytes(body))) => body.clone(),
        _ => row_json(table, row).into_bytes(),
    };
    Refusal {
        seq: row.seq,
        received_at,
        reason: format!("PostgreSQL refused a row of `{}`: {reason}", table.name),
        body,
    }
}

/// A row as a JSON object of its columns, for a refusal's body.
fn row_json(table: &Table, row: &Row) -> String {
    let object: Map<String, Value> = table
        .columns
        .iter()
        .zip(&row.cells)
        .map(|(column, cell)| {
            let value = match cell {
                Cell::Null => Value::Null,
                Cell::Int(n) => Value::from(*n),
                Cell::Bool(b) => Value::from(*b),
                Cell::Text(text) | Cell::Json(text) => Value::from(text.as_str()),
                Cell::Time(time) => Value::from(crate::request::format_time(time)),
                Cell::Bytes(bytes) => Value::from(String::from_utf8_lossy(bytes).into_owned()),
            };
            (column.name.to_owned(), value)
        })
        .collect();
    Value::Object(object).to_string()
}

fn refusal_row(refusal: &Refusal) -> Row {
    Row {
        seq: refusal.seq,
        cells: vec![
            Cell::Int(refusal.seq),
            Cell::Time(refusal.received_at),
            Cell::Text("load".to_owned()),
            Cell::Text(refusal.reason.clone()),
            Cell::Text(SINK_NAME.to_owned()),
            Cell::Bytes(refusal.body.clone()),
        ],
        problem: None,
    }
}

/// A failure row with NUL characters (which PostgreSQL text cannot hold) replaced.
/// A stored value that could not be read (NULL here) gets a stand-in where the column needs
/// one, since a failure that cannot load would hold back its batch for ever.
fn storable_failure(row: &Row) -> Row {
    let cells = FAILED_EVENTS
        .columns
        .iter()
        .zip(&row.cells)
        .map(|(column, cell)| match (column.name, cell) {
            (_, Cell::Text(text)) if text.contains('\0') => {
                Cell::Text(text.replace('\0', "\u{FFFD}"))
            }
            ("raw_seq", Cell::Null) => Cell::Int(row.seq),
            ("received_at", Cell::Null) => Cell::Time(Utc::now()),
            ("stage" | "reason", Cell::Null) => Cell::Text(
                row.problem.clone().unwrap_or_else(|| "unreadable in the spool".to_owned()),
            ),
            ("body", Cell::Null) => Cell::Bytes(Vec::new()),
            (_, other) => other.clone(),
        })
        .collect();
    Row { seq: row.seq, cells, problem: None }
}
