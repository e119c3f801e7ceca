//! The lake readers themselves (`tests/lake`): a small Hive-partitioned dataset that pyarrow
//! writes reads back, values and types, through DuckDB and pyarrow, from a directory and from
//! moto's S3; and moto rejects credentials and accepts them again when told. Skipped, with a
//! line saying so, unless `TEST_LAKE_PYTHON` names a python with duckdb, pyarrow and moto
//! (`.ci/run` sets it).

mod lake;

use std::path::Path;

use lake::{Reader, Table};
use serde_json::{Value, json};

/// Writes `<lake>/events/event_date=.../part-0.parquet`: one column of each type the lake sink
/// writes, nulls and empty lists included. `pa.json_()` is the Parquet JSON logical type.
const WRITE_DATASET: &str = r#"
import datetime, os, sys
import pyarrow as pa, pyarrow.parquet as pq
utc = datetime.timezone.utc
schema = pa.schema([
    ("received_at", pa.timestamp("us", tz="UTC")),
    ("id", pa.int64()),
    ("ok", pa.bool_()),
    ("ids", pa.list_(pa.int64())),
    ("tags", pa.list_(pa.string())),
    ("payload", pa.json_()),
    ("body", pa.binary()),
])
partitions = {
    "2026-11-22": [
        (datetime.datetime(2026, 11, 22, 10, 0, 0, 1, tzinfo=utc), 1, True, [1, 2], ["a", "b"],
         '{"a":1}', b"\x00\x01"),
    ],
    "2026-11-23": [
        (datetime.datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=utc), 2, False, [], [],
         "[]", b""),
        (datetime.datetime(2026, 11, 23, 0, 0, tzinfo=utc), 3, None, None, ["x"], None, None),
    ],
}
for date, rows in partitions.items():
    directory = os.path.join(sys.argv[1], "events", f"event_date={date}")
    os.makedirs(directory)
    columns = [pa.array(list(values), type=field.type) for values, field in zip(zip(*rows), schema)]
    pq.write_table(pa.table(columns, schema=schema), os.path.join(directory, "part-0.parquet"))
"#;

fn write_dataset(python: &Path, lake: &Path) {
    lake::run_python(python, WRITE_DATASET, &[lake.to_str().expect("UTF-8 path")]);
}

fn expected_rows() -> Vec<Value> {
    vec![
        json!({"received_at": "2026-11-22T10:00:00.000001Z", "id": 1, "ok": true, "ids": [1, 2],
               "tags": ["a", "b"], "payload": "{\"a\":1}", "body": "AAE=",
               "event_date": "2026-11-22"}),
        json!({"received_at": "2026-11-23T23:59:59.999999Z", "id": 2, "ok": false, "ids": [],
               "tags": [], "payload": "[]", "body": "", "event_date": "2026-11-23"}),
        json!({"received_at": "2026-11-23T00:00:00.000000Z", "id": 3, "ok": null, "ids": null,
               "tags": ["x"], "payload": null, "body": null, "event_date": "2026-11-23"}),
    ]
}

/// The types each reader reports for the columns [`WRITE_DATASET`] writes, partition last.
fn expected_types(reader: Reader) -> Vec<(String, String)> {
    let types: [(&str, &str); 8] = match reader {
        Reader::DuckDb => [
            ("received_at", "TIMESTAMP WITH TIME ZONE"),
            ("id", "BIGINT"),
            ("ok", "BOOLEAN"),
            ("ids", "BIGINT[]"),
            ("tags", "VARCHAR[]"),
            ("payload", "JSON"),
            ("body", "BLOB"),
            ("event_date", "DATE"),
        ],
        Reader::PyArrow => [
            ("received_at", "timestamp[us, tz=UTC]"),
            ("id", "int64"),
            ("ok", "bool"),
            ("ids", "list<element: int64>"),
            ("tags", "list<element: string>"),
            ("payload", "extension<arrow.json>"),
            ("body", "binary"),
            // Hive partition values are strings to pyarrow unless it is given a schema.
            ("event_date", "string"),
        ],
    };
    types.iter().map(|(name, kind)| (name.to_string(), kind.to_string())).collect()
}

fn assert_dataset(reader: Reader, table: Table) {
    assert_eq!(table.columns, expected_types(reader), "{reader:?}'s column types");
    assert_eq!(
        table.files,
        ["event_date=2026-11-22/part-0.parquet", "event_date=2026-11-23/part-0.parquet"],
        "{reader:?}'s files"
    );
    assert_eq!(table.rows_sorted_by("id"), expected_rows(), "{reader:?}'s rows");

    // The file's own Parquet types, whichever reader.
    let parquet = |path: &str| {
        let column = table.parquet_column(path).unwrap_or_else(|| panic!("no Parquet {path}"));
        (column.physical.as_str(), column.logical.as_str(), column.converted.as_str())
    };
    assert_eq!(
        parquet("received_at"),
        (
            "INT64",
            "Timestamp(isAdjustedToUTC=true, timeUnit=microseconds, \
             is_from_converted_type=false, force_set_converted_type=false)",
            "TIMESTAMP_MICROS"
        )
    );
    assert_eq!(parquet("id"), ("INT64", "None", "NONE"));
    assert_eq!(parquet("ok"), ("BOOLEAN", "None", "NONE"));
    assert_eq!(parquet("ids.list.element"), ("INT64", "None", "NONE"));
    assert_eq!(parquet("tags.list.element"), ("BYTE_ARRAY", "String", "UTF8"));
    assert_eq!(parquet("payload"), ("BYTE_ARRAY", "JSON", "JSON"));
    assert_eq!(parquet("body"), ("BYTE_ARRAY", "None", "NONE"));
}

#[test]
fn both_readers_read_a_hive_partitioned_directory() {
    let Some(python) = lake::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(&python, dir.path());
    let lake_dir = dir.path().to_str().unwrap();
    for reader in Reader::ALL {
        assert_dataset(reader, lake::read(&python, reader, lake_dir, "events", None));
    }
}

#[test]
fn both_readers_read_a_hive_partitioned_bucket() {
    let Some(python) = lake::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(&python, dir.path());
    let server = lake::S3Server::start(&python);
    server.create_bucket("lake");
    server.upload_dir(dir.path(), "lake", "prefix");
    assert_eq!(
        server.list_objects("lake", "prefix/"),
        [
            "prefix/events/event_date=2026-11-22/part-0.parquet",
            "prefix/events/event_date=2026-11-23/part-0.parquet"
        ]
    );
    let s3 = server.credentials();
    for reader in Reader::ALL {
        assert_dataset(
            reader,
            lake::read(&python, reader, "s3://lake/prefix", "events", Some(&s3)),
        );
    }
}

#[test]
fn moto_rejects_credentials_when_told_and_accepts_them_again() {
    let Some(python) = lake::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(&python, dir.path());
    let server = lake::S3Server::start(&python);
    server.create_bucket("lake");
    server.upload_dir(dir.path(), "lake", "");
    let user = server.create_user("sink");
    let anyone = server.credentials();
    let wrong_secret = lake::S3 { secret: "wrong".to_owned(), ..user.clone() };
    // Both readers reach S3 through pyarrow, which names AWS errors in capitals. The DuckDB
    // reader lists first and sees moto's error code; pyarrow's dataset starts with a HEAD,
    // whose 403 has no body to name it.
    let refused = |reader, code| match reader {
        Reader::DuckDb => code,
        Reader::PyArrow => "ACCESS_DENIED during HeadObject",
    };
    let read = |reader, s3| lake::try_read(&python, reader, "s3://lake", "events", Some(s3));

    server.reject_credentials();
    for reader in Reader::ALL {
        let err = read(reader, &anyone).expect_err("a key moto never issued is rejected");
        assert!(err.contains(refused(reader, "INVALID_ACCESS_KEY_ID")), "{reader:?}: {err}");
        let err = read(reader, &wrong_secret).expect_err("a wrong secret is rejected");
        assert!(err.contains(refused(reader, "SIGNATURE_DOES_NOT_MATCH")), "{reader:?}: {err}");
        assert_eq!(read(reader, &user).expect("an issued key is accepted").rows.len(), 3);
    }
    // The harness's own calls sign with its issued key: they go on working.
    server.put_object("lake", "elsewhere/notes.txt", b"not Parquet");
    assert_eq!(server.get_object("lake", "elsewhere/notes.txt"), b"not Parquet");
    assert!(server.log().contains(" 403 "), "moto logs the rejected requests");

    server.accept_credentials();
    for reader in Reader::ALL {
        assert_eq!(read(reader, &anyone).expect("any key is accepted again").rows.len(), 3);
    }
}
