//! The Parquet lake sink: every table as a Hive-partitioned Parquet dataset in a directory,
//! that DuckDB, Spark and every warehouse read.
//!
//! A batch becomes one file per table and partition, named after the requests it holds
//! ([`files`]), typed as [`schema`] says, and made visible atomically; the cursor moves only
//! after every file of the batch is in place.

pub mod files;
pub mod schema;

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
