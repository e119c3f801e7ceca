"""Reads one table of a Parquet lake with an independent reader and prints it as one JSON document.

    read_lake.py duckdb|pyarrow <lake_dir_or_s3_url> <table>
        [--s3-endpoint http://127.0.0.1:PORT --s3-region R --s3-key K --s3-secret S]

The table is `<lake>/<table>/**/*.parquet` with Hive partitioning (`event_date=2026-11-22/`).
The document printed:

    {"reader": "duckdb",
     "columns": [{"name": "received_at", "type": "TIMESTAMP WITH TIME ZONE"}, ...],
     "rows": [{"received_at": "2026-11-22T10:00:00.000001Z", ...}, ...],
     "files": ["event_date=2026-11-22/part-0.parquet", ...],
     "parquet": [{"path": "received_at", "physical": "INT64",
                  "logical": "Timestamp(...)", "converted": "TIMESTAMP_MICROS"}, ...]}

`columns` are the reader's own types: DuckDB's `DESCRIBE`, pyarrow's dataset schema. `parquet`
is the leaf columns of the first file's Parquet schema (physical, logical and converted types),
whichever reader. `files` are the table's Parquet files relative to the table, sorted: DuckDB's
glob `**/*.parquet` (dot-files included), pyarrow's dataset discovery (skips `.` and `_`
prefixes). Values: timestamps as ISO 8601 with microseconds (`Z` for UTC ones), dates as
`YYYY-MM-DD`, bytes as base64, lists as arrays, JSON-typed columns as their text.

S3 (`s3://bucket/prefix`): DuckDB's httpfs extension cannot be installed offline, so both
readers list and fetch objects with pyarrow's S3 client (`pyarrow.fs.S3FileSystem`, path-style,
plain HTTP). pyarrow reads the dataset from S3 directly; DuckDB reads a local copy of every
object under the table made with that client, so its own glob, Parquet decoding and Hive
partitioning are the ones tested.
"""

import argparse
import base64
import datetime
import decimal
import json
import os
import sys
import tempfile
import uuid


def value(v):
    """A Python value from either reader as JSON that Rust's serde_json can compare."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            return v.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return v.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, (decimal.Decimal, uuid.UUID, datetime.timedelta)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    return str(v)


def parquet_columns(open_file):
    """The leaf columns of one Parquet file's schema."""
    import pyarrow.parquet as pq

    with open_file() as f:
        schema = pq.ParquetFile(f).schema
    columns = []
    for i in range(len(schema)):
        column = schema.column(i)
        columns.append(
            {
                "path": column.path,
                "physical": column.physical_type,
                "logical": str(column.logical_type),
                "converted": column.converted_type,
            }
        )
    return columns


def s3_filesystem(args):
    import pyarrow.fs

    endpoint = args.s3_endpoint or ""
    scheme = "https" if endpoint.startswith("https://") else "http"
    endpoint = endpoint.split("://", 1)[-1].rstrip("/")
    return pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint or None,
        scheme=scheme,
        access_key=args.s3_key,
        secret_key=args.s3_secret,
        region=args.s3_region or "us-east-1",
        # No retries: a failure is the test's to see, at once.
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def s3_objects(fs, root):
    """Every object under `root` (`bucket/prefix/table`), relative to it, sorted."""
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True)
    infos = fs.get_file_info(selector)
    prefix = root.rstrip("/") + "/"
    return sorted(
        info.path[len(prefix):] for info in infos if info.type == pyarrow.fs.FileType.File
    )


def read_duckdb(table_root, fs):
    import duckdb

    with tempfile.TemporaryDirectory(prefix="read-lake-") as mirror:
        if fs is not None:
            # Every object, not only `*.parquet`, so DuckDB's glob decides what it reads.
            for relative in s3_objects(fs, table_root):
                local = os.path.join(mirror, relative)
                os.makedirs(os.path.dirname(local), exist_ok=True)
                with fs.open_input_stream(f"{table_root}/{relative}") as src, open(local, "wb") as dst:
                    dst.write(src.read())
            table_root = mirror
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        pattern = os.path.join(table_root, "**", "*.parquet")
        source = f"read_parquet({sql_string(pattern)}, hive_partitioning = true)"
        files = sorted(
            os.path.relpath(row[0], table_root)
            for row in connection.execute("SELECT file FROM glob(?)", [pattern]).fetchall()
        )
        if not files:
            raise SystemExit(f"no Parquet files match {pattern}")
        columns = [
            {"name": row[0], "type": row[1]}
            for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        ]
        result = connection.execute(f"SELECT * FROM {source}")
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, map(value, row))) for row in result.fetchall()]
        parquet = parquet_columns(lambda: open(os.path.join(table_root, files[0]), "rb"))
    return {"reader": "duckdb", "columns": columns, "rows": rows, "files": files, "parquet": parquet}


def read_pyarrow(table_root, fs):
    import pyarrow.dataset as ds

    dataset = ds.dataset(table_root, filesystem=fs, format="parquet", partitioning="hive")
    prefix = table_root.rstrip("/") + "/"
    files = sorted(path[len(prefix):] if path.startswith(prefix) else path for path in dataset.files)
    if not files:
        raise SystemExit(f"no Parquet files in the dataset at {table_root}")
    table = dataset.to_table()
    columns = [{"name": field.name, "type": str(field.type)} for field in table.schema]
    rows = [{k: value(v) for k, v in row.items()} for row in table.to_pylist()]
    first = prefix + files[0]
    if fs is None:
        parquet = parquet_columns(lambda: open(first, "rb"))
    else:
        parquet = parquet_columns(lambda: fs.open_input_file(first))
    return {"reader": "pyarrow", "columns": columns, "rows": rows, "files": files, "parquet": parquet}


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reader", choices=["duckdb", "pyarrow"])
    parser.add_argument("lake", help="a directory, or s3://bucket[/prefix]")
    parser.add_argument("table")
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--s3-region")
    parser.add_argument("--s3-key")
    parser.add_argument("--s3-secret")
    args = parser.parse_args()

    if args.lake.startswith("s3://"):
        fs = s3_filesystem(args)
        table_root = args.lake[len("s3://"):].rstrip("/") + "/" + args.table
    else:
        fs = None
        table_root = os.path.join(os.path.abspath(args.lake), args.table)
    read = read_duckdb if args.reader == "duckdb" else read_pyarrow
    json.dump(read(table_root, fs), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
