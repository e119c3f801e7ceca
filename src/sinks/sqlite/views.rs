//! The event and metric views in the embedded database. Views hold no data, so they are
//! dropped and recreated at every start; a new name or column needs no migration.

use rusqlite::Connection;

use crate::sinks::metric_views::{Dialect, metric_views};
use crate::sinks::views::event_views;

/// Drops and recreates every event and metric view, in the caller's transaction.
pub(super) fn rebuild(tx: &Connection) -> rusqlite::Result<()> {
    for (view, name, columns) in event_views() {
        // Names come from our own catalogue, never from input, so formatting them is safe.
        tx.execute_batch(&format!(
            "DROP VIEW IF EXISTS {view};\nCREATE VIEW {view} AS SELECT {columns} FROM events \
             WHERE event_name = '{name}';",
            columns = columns.join(", "),
        ))?;
    }
    for (view, select) in metric_views(Dialect::Sqlite, "events") {
        tx.execute_batch(&format!("DROP VIEW IF EXISTS {view};\nCREATE VIEW {view} AS {select};"))?;
    }
    Ok(())
}
