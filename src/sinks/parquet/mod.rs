//! The Parquet lake sink: every table as a Hive-partitioned Parquet dataset in a directory,
//! that DuckDB, Spark and every warehouse read.
//!
//! A batch becomes one file per table and partition, named after the requests it holds
//! ([`files`]), typed as [`schema`] says, and made visible atomically; the cursor moves only
//! after every file of the batch is in place. The runner's linger is `max_file_age_secs` and
//! its batch is `target_file_mb` of bodies, so a file holds what arrived in that time.
//!
//! Exactly once, with no index of its own:
//! - a load first deletes every file whose requests start after the cursor: what a load
//!   interrupted before its acknowledgement (a SIGKILL between a rename and the cursor move)
//!   or a replay (which moves the cursor back) left; a file the cursor falls inside of (a
//!   replay) is written again whole, from its first request;
//! - an event resent in a later request is kept only with its first request, as the embedded
//!   tables keep it (`events.raw_seq`): the load waits until they have loaded its requests and
//!   keeps the events whose first request is among them.

pub mod files;
pub mod schema;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{Batch, Cell, Row, Rows};
use super::{RunnerSettings, Sink, SinkError};
use crate::config::ParquetConfig;
use crate::pipeline::PseudonymKey;
use crate::spool::{Refusal, Spool, SpoolReader};
use files::{encode, lake_files};
use store::{Known, LakeStore};

/// The cursor name of the lake.
pub const SINK_NAME: &str = "parquet";

/// The file at the lake's root naming the store it is loaded from (DuckDB's and pyarrow's
/// `**/*.parquet` do not read it).
const OWNER_FILE: &str = "_hookhouse_store_id";

/// A file (a batch) holds at most this many requests: building a batch allocates about 5 KiB
/// a request, and batches of 200,000 spent half their time in the kernel's page faults
/// (bench/parquet.sh, BENCHMARKS.md).
const MAX_REQUESTS_PER_FILE: usize = 50_000;

/// How long a load waits for the embedded tables to reach its requests.
const EMBEDDED_WAIT: Duration = Duration::from_secs(60);

pub struct ParquetSink {
    config: ParquetConfig,
    spool: Spool,
    keys: Arc<HashMap<String, PseudonymKey>>,
    /// Opened at connect: the store and its files.
    lake: Option<(LakeStore, Known)>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink").field("url", &self.config.location.url()).finish()
    }
}

impl ParquetSink {
    pub fn new(
        config: ParquetConfig,
        spool: Spool,
        keys: Arc<HashMap<String, PseudonymKey>>,
    ) -> Self {
        ParquetSink { config, spool, keys, lake: None }
    }
}

impl Sink for ParquetSink {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    fn settings(&self) -> RunnerSettings {
        RunnerSettings {
            max_requests: MAX_REQUESTS_PER_FILE,
            max_bytes: self.config.target_bytes,
            linger: self.config.max_file_age,
            attempt_timeout: Duration::from_secs(300),
        }
    }

    /// Opens the lake, claims it for `store_id` (refusing one loaded from another store) and
    /// lists its files.
    async fn connect(&mut self, store_id: &str) -> Result<(), SinkError> {
        let lake = LakeStore::open(&self.config.location)?;
        match lake.read_text(OWNER_FILE).await? {
            Some(found) if found.trim() == store_id => {}
            Some(found) => {
                return Err(SinkError::Permanent(format!(
                    "the lake `{}` is loaded from another hookhouse store (id {}); give this \
                     store a lake of its own with `sinks.parquet.url`",
                    lake.describe(),
                    found.trim()
                )));
            }
            None => lake.put(OWNER_FILE, format!("{store_id}\n").into_bytes()).await?,
        }
        let known = lake.list().await?;
        tracing::info!(url = %lake.describe(), files = known.values().map(Vec::len).sum::<usize>(),
            "Parquet lake ready");
        self.lake = Some((lake, known));
        Ok(())
    }

    fn needs_connect(&self) -> bool {
        self.lake.is_none()
    }

    fn disconnect(&mut self) {
        self.lake = None;
    }

    async fn load(&mut self, batch: Arc<Batch>) -> Result<Vec<Refusal>, SinkError> {
        let Some((lake, known)) = self.lake.as_mut() else {
            return Err(SinkError::Retryable("the lake is not open".into()));
        };
        // Reading the store and encoding are blocking work; the files' IO is the store's.
        let straddled = known
            .keys()
            .filter(|(first, last)| *first <= batch.after && batch.after < *last)
            .map(|(first, _)| first - 1)
            .min();
        let (spool, keys) = (self.spool.clone(), Arc::clone(&self.keys));
        let prepared =
            tokio::task::spawn_blocking(move || prepare(&spool, &keys, &batch, straddled))
                .await
                .map_err(|_| SinkError::Retryable("preparing the lake's files stopped".into()))??;
        // What an interrupted load or a replay left after the cursor goes first.
        let stale: Vec<(i64, i64)> =
            known.keys().filter(|(first, _)| *first > prepared.after).copied().collect();
        for range in stale {
            for relative in known.get(&range).cloned().unwrap_or_default() {
                lake.delete(&relative).await?;
            }
            known.remove(&range);
        }
        let mut written = Vec::new();
        for (relative, bytes) in prepared.files {
            lake.put(&relative, bytes).await?;
            written.push(relative);
        }
        if let Some(range) = prepared.range {
            known.entry(range).or_default().extend(written);
        }
        Ok(Vec::new())
    }
}

/// A batch's files, encoded.
struct Prepared {
    /// The cursor the files start after: the batch's, or the first request of a file the
    /// batch's cursor fell inside of.
    after: i64,
    range: Option<(i64, i64)>,
    files: Vec<(String, Vec<u8>)>,
}

fn prepare(
    spool: &Spool,
    keys: &HashMap<String, PseudonymKey>,
    batch: &Batch,
    straddled: Option<i64>,
) -> Result<Prepared, SinkError> {
    let retry =
        |err: &dyn std::fmt::Display| SinkError::Retryable(format!("reading the store: {err}"));
    let mut reader = spool.reader().map_err(|err| retry(&err))?;
    wait_for_embedded(&reader, batch.through)?;
    // A file the cursor falls inside of (after a replay) is written again whole: the batch
    // then starts at its first request.
    let widened;
    let batch = match straddled {
        None => batch,
        Some(after) => {
            // Seqs grow by one: the requests through the batch's last are at most this many,
            // so the read never runs on into the rest of the log.
            let through = usize::try_from(batch.through - after).unwrap_or(usize::MAX);
            let requests = reader.read_after(after, through, usize::MAX).map_err(|e| retry(&e))?;
            let requests: Vec<_> =
                requests.into_iter().take_while(|stored| stored.seq <= batch.through).collect();
            widened = Batch::build(after, &requests, keys)
                .map_err(|err| SinkError::Permanent(err.to_string()))?;
            &widened
        }
    };
    let carried = reader.first_carried(batch.after, batch.through).map_err(|e| retry(&e))?;
    let mut files = Vec::new();
    for mut file in lake_files(batch) {
        if file.table.name == "events" {
            file.rows.retain(|row| is_first_carrier(&batch.events, row, &carried));
            if file.rows.is_empty() {
                continue;
            }
        }
        let bytes = encode(&file).map_err(|err| SinkError::Retryable(err.to_string()))?;
        files.push((file.path, bytes));
    }
    let range = batch.seqs.first().zip(batch.seqs.last()).map(|(first, last)| (*first, *last));
    Ok(Prepared { after: batch.after, range, files })
}

/// Whether the embedded tables keep this event with this request (its first).
fn is_first_carrier(events: &Rows, row: &Row, carried: &HashSet<String>) -> bool {
    match events.table.position("event_id").and_then(|index| row.cells.get(index)) {
        Some(Cell::Text(id)) => carried.contains(id),
        _ => false,
    }
}

/// Waits until the embedded tables have loaded through `through`: they say which request
/// first carried each event.
fn wait_for_embedded(reader: &SpoolReader, through: i64) -> Result<(), SinkError> {
    let started = Instant::now();
    loop {
        let position = reader
            .cursor(super::sqlite::SINK_NAME)
            .map_err(|err| SinkError::Retryable(format!("reading the store: {err}")))?
            .map_or(0, |cursor| cursor.position);
        if position >= through {
            return Ok(());
        }
        if started.elapsed() >= EMBEDDED_WAIT {
            return Err(SinkError::Retryable(format!(
                "the embedded tables are at seq {position}, behind this batch (through {through}); \
                 the lake follows them"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::{Array, Int64Array, ListArray, StringArray, TimestampMicrosecondArray};
    use arrow_schema::DataType;
    use bytes::Bytes;
    use chrono::Utc;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::files::{encode, lake_files};
    use crate::request::{RawRequest, RequestKind, StoredRequest};
    use crate::sinks::batch::Batch;

    fn stored(seq: i64, body: &str) -> StoredRequest {
        StoredRequest {
            seq,
            request: RawRequest {
                received_at: Utc::now(),
                source: "s".into(),
                kind: RequestKind::System,
                method: "POST".into(),
                path: "/iterable/s".into(),
                query: None,
                headers_json: r#"{"user-agent":"Iterable"}"#.into(),
                remote_addr: None,
                peer_addr: None,
                content_type: Some("application/json".into()),
                body: Bytes::from(body.to_owned()),
                body_sha256: String::new(),
            },
            pseudonymised: false,
            body_hidden: false,
            body_dropped: false,
            answer_status: None,
        }
    }

    #[test]
    fn a_batch_is_typed_partitioned_files_that_read_back() {
        let requests = [
            stored(
                5,
                r#"{"email":"a@x.io","eventName":"emailSubscribe","dataFields":{"createdAt":"2026-11-30 23:59:59 +00:00","emailListIds":[11,12],"campaignId":3}}"#,
            ),
            stored(
                6,
                r#"{"email":"b@x.io","eventName":"emailOpen","dataFields":{"createdAt":"2026-12-01 00:00:01 +00:00","labels":["x","y"]}}"#,
            ),
            stored(7, "[1, 2"),
        ];
        let batch = Batch::build(4, &requests, &HashMap::new()).unwrap();
        let files = lake_files(&batch);
        let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
        let name = "part-00000000000000000005-00000000000000000007.parquet";
        assert!(
            paths.contains(&format!("events/event_date=2026-11-30/{name}").as_str()),
            "{paths:?}"
        );
        assert!(paths.contains(&format!("events/event_date=2026-12-01/{name}").as_str()));
        assert!(paths.iter().any(|path| path.starts_with("failed_events/received_date=")));
        assert!(paths.iter().any(|path| path.starts_with("raw_requests/received_date=")));

        let events = files.iter().find(|file| file.path.contains("2026-11-30")).unwrap();
        let bytes = Bytes::from(encode(events).unwrap());
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let root = builder.metadata().file_metadata().schema_descr().root_schema().clone();
        let data = root.get_fields().iter().find(|field| field.name() == "data").unwrap();
        assert_eq!(
            data.get_basic_info().logical_type_ref(),
            Some(&parquet::basic::LogicalType::Json),
            "JSON columns carry Parquet's JSON logical type"
        );
        let read = builder.build().unwrap().next().unwrap().unwrap();
        assert_eq!(read.num_rows(), 1);
        let column = |name: &str| read.column(read.schema().index_of(name).unwrap()).clone();
        let created = column("created_at");
        let created = created.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(created.timezone(), Some("UTC"));
        assert_eq!(created.value(0), 1_796_083_199_000_000, "2026-11-30T23:59:59Z");
        let lists = column("email_list_ids");
        let lists = lists.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(lists.value_type(), DataType::Int64);
        let items = lists.value(0);
        let items = items.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(items.values().to_vec(), vec![11, 12]);
        let campaign = column("campaign_id");
        assert_eq!(campaign.as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3);
        let email = column("email");
        assert_eq!(email.as_any().downcast_ref::<StringArray>().unwrap().value(0), "a@x.io");
        assert!(column("labels").is_null(0), "no labels: null, not an empty list");
    }
}
