//! A batch as lake files: one Parquet file per table and partition, Hive-style
//! (`events/event_date=YYYY-MM-DD/`, the others by `received_date`), named after the requests
//! it holds (`part-<first seq>-<last seq>.parquet`, zero-padded so names sort by seq), so that
//! loading the same requests again writes the same names. Written whole in memory, then made
//! visible atomically.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use arrow_schema::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::schema::record_batch;
use crate::sinks::batch::{Batch, Cell, Row, Rows};

/// Rows per row group: large enough for good compression and statistics, small enough that a
/// reader skipping by statistics skips something.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// One file of the lake, not yet written.
#[derive(Debug)]
pub struct LakeFile<'a> {
    /// Relative to the lake's root: `events/event_date=2026-12-01/part-...parquet`.
    pub path: String,
    pub table: &'static crate::sinks::columns::Table,
    pub rows: Vec<&'a Row>,
}

#[derive(Debug, thiserror::Error)]
pub enum LakeFileError {
    #[error("making the Arrow batch: {0}")]
    Arrow(#[from] ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("writing `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The name of the file of requests `first..=last`.
pub fn file_name(first: i64, last: i64) -> String {
    format!("part-{first:020}-{last:020}.parquet")
}

/// The first and last seq of a file name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<(i64, i64)> {
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// The files of `batch`: for every table, one per partition its rows fall in.
pub fn lake_files(batch: &Batch) -> Vec<LakeFile<'_>> {
    let (first, last) = (batch.seqs.first().copied(), batch.seqs.last().copied());
    let (Some(first), Some(last)) = (first, last) else { return Vec::new() };
    let name = file_name(first, last);
    let mut files = Vec::new();
    let tables: [(&Rows, &str, &[&str]); 4] = [
        (&batch.events, "event_date", &["created_at", "received_at"]),
        (&batch.journey_calls, "received_date", &["received_at"]),
        (&batch.failures, "received_date", &["received_at"]),
        (&batch.raw_requests, "received_date", &["received_at"]),
    ];
    for (rows, partition, times) in tables {
        let mut by_date: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for row in &rows.rows {
            by_date.entry(partition_date(rows, row, times)).or_default().push(row);
        }
        for (date, rows_of_date) in by_date {
            files.push(LakeFile {
                path: format!("{}/{partition}={date}/{name}", rows.table.name),
                table: rows.table,
                rows: rows_of_date,
            });
        }
    }
    files
}

/// The date (UTC) of the first of `times` the row has.
fn partition_date(rows: &Rows, row: &Row, times: &[&str]) -> String {
    times
        .iter()
        .filter_map(|name| rows.table.position(name))
        .find_map(|index| match row.cells.get(index) {
            Some(Cell::Time(time)) => Some(time.format("%Y-%m-%d").to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The file's bytes: snappy, statistics per page, row groups of [`ROW_GROUP_ROWS`].
pub fn encode(file: &LakeFile<'_>) -> Result<Vec<u8>, LakeFileError> {
    let batch = record_batch(file.table, &file.rows)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("hookhouse {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes)
}

/// Makes `bytes` appear at `root/relative` atomically: written to a temporary name that
/// neither DuckDB's nor pyarrow's `**/*.parquet` reads (`.name.tmp`), fsynced, renamed over
/// any file of the same name, and the directory fsynced, so a crash leaves the old file, the
/// new one, or a temporary that the next write replaces, never a partial file.
pub fn publish_local(root: &Path, relative: &str, bytes: &[u8]) -> Result<(), LakeFileError> {
    let target = root.join(relative);
    let io = |source| LakeFileError::Io { path: target.display().to_string(), source };
    let dir = target.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = target.file_name().and_then(|name| name.to_str()).unwrap_or("part.parquet");
    let temporary = dir.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temporary, &target).map_err(io)?;
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_seq_and_read_back() {
        assert_eq!(file_name(7, 12), "part-00000000000000000007-00000000000000000012.parquet");
        assert!(file_name(9, 9) < file_name(10, 10));
        assert_eq!(parse_file_name(&file_name(7, 12)), Some((7, 12)));
        assert_eq!(parse_file_name(".part-1-2.parquet.tmp"), None);
        assert_eq!(parse_file_name("other.parquet"), None);
    }
}
