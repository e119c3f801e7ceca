//! Independent readers of a Parquet lake for the tests, DuckDB and pyarrow, run by a python
//! from `TEST_LAKE_PYTHON` (`.ci/lake-readers` installs one, with moto), and a moto S3 server
//! on loopback, killed when dropped. The readers are `read_lake.py` beside this file; what they
//! report is in its docstring.
//!
//! ```ignore
//! let Some(python) = lake::python() else { return };
//! let table = lake::read(&python, Reader::DuckDb, lake_dir, "events", None);
//! assert_eq!(table.column_type("received_at"), Some("TIMESTAMP WITH TIME ZONE"));
//!
//! let server = lake::S3Server::start(&python);
//! server.create_bucket("lake");
//! let s3 = server.credentials(); // any key: accepted until `reject_credentials`
//! let table = lake::read(&python, Reader::PyArrow, "s3://lake/prefix", "events", Some(&s3));
//! ```
//!
//! DuckDB's httpfs extension cannot be installed here (its download site is not reachable), so
//! both readers reach S3 through pyarrow's S3 client; DuckDB then reads a local copy of the
//! table's objects with its own glob, Parquet decoder and Hive partitioning.
//!
//! Credentials: moto accepts any key until [`S3Server::reject_credentials`], after which it
//! checks every request's signature against its IAM users, as AWS would: a key it never issued
//! gets 403 `InvalidAccessKeyId`, a wrong secret 403 `SignatureDoesNotMatch`.
//! [`S3Server::accept_credentials`] lifts that again (moto's `POST /moto-api/reset-auth`), and
//! [`S3Server::create_user`] issues a key that is accepted either way.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../loopback/mod.rs"]
mod loopback;

pub(crate) const PYTHON_VARIABLE: &str = "TEST_LAKE_PYTHON";

/// The reader script and the harness's own S3 client, kept beside this file.
const READ_LAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake/read_lake.py");
const S3_ADMIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake/s3_admin.py");

/// How long moto may take to answer after it is started; about a second is usual.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long one request to moto's own API may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The region every [`S3`] names; moto serves any.
pub(crate) const REGION: &str = "us-east-1";

/// The python with duckdb, pyarrow and moto, from `TEST_LAKE_PYTHON`, or `None` (with a line
/// saying so) when it is not set: `let Some(python) = lake::python() else { return };`.
pub(crate) fn python() -> Option<PathBuf> {
    match std::env::var_os(PYTHON_VARIABLE) {
        Some(python) if !python.is_empty() => Some(PathBuf::from(python)),
        _ => {
            eprintln!(
                "skipped: set {PYTHON_VARIABLE} to a python with duckdb, pyarrow and moto \
                 (.ci/lake-readers prints one)"
            );
            None
        }
    }
}

/// Which independent reader reads the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// DuckDB's `read_parquet('<table>/**/*.parquet', hive_partitioning = true)`; types are
    /// `DESCRIBE`'s (`TIMESTAMP WITH TIME ZONE`, `BIGINT`, `JSON`, `VARCHAR[]`, ...). Its glob
    /// reads dot- and underscore-prefixed files too.
    DuckDb,
    /// `pyarrow.dataset.dataset(<table>, format="parquet", partitioning="hive")`; types are the
    /// Arrow schema's (`timestamp[us, tz=UTC]`, `int64`, `extension<arrow.json>`, ...). It skips
    /// files whose names start with `.` or `_`.
    PyArrow,
}

impl Reader {
    pub(crate) const ALL: [Reader; 2] = [Reader::DuckDb, Reader::PyArrow];

    fn arg(self) -> &'static str {
        match self {
            Reader::DuckDb => "duckdb",
            Reader::PyArrow => "pyarrow",
        }
    }
}

/// Where and as whom to read an `s3://` lake.
#[derive(Clone, Debug)]
pub(crate) struct S3 {
    /// `http://127.0.0.1:<port>`: path-style, plain HTTP.
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) key: String,
    pub(crate) secret: String,
}

/// One leaf column of a Parquet file's schema, as `pyarrow.parquet` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParquetColumn {
    /// Dotted: `received_at`, `tags.list.element`.
    pub(crate) path: String,
    /// `INT64`, `BOOLEAN`, `BYTE_ARRAY`, ...
    pub(crate) physical: String,
    /// `None`, `String`, `JSON`, `Timestamp(isAdjustedToUTC=true, timeUnit=microseconds, ...)`.
    pub(crate) logical: String,
    /// `NONE`, `UTF8`, `JSON`, `TIMESTAMP_MICROS`, ...
    pub(crate) converted: String,
}

/// A table as one reader read it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// Each column's name and the reader's type for it, in the reader's order (Hive partition
    /// columns last).
    pub(crate) columns: Vec<(String, String)>,
    /// One JSON object a row, in the reader's order: timestamps as ISO 8601 with microseconds
    /// (`2026-11-22T10:00:00.000001Z` when UTC), dates `2026-11-22`, bytes base64, lists
    /// arrays, JSON-typed columns as their text.
    pub(crate) rows: Vec<Value>,
    /// The Parquet files the reader read, relative to the table, sorted.
    pub(crate) files: Vec<String>,
    /// The leaf columns of the first file's Parquet schema.
    pub(crate) parquet: Vec<ParquetColumn>,
}

impl Table {
    /// The reader's type of a column.
    pub(crate) fn column_type(&self, name: &str) -> Option<&str> {
        self.columns.iter().find(|(column, _)| column == name).map(|(_, kind)| kind.as_str())
    }

    /// The first file's Parquet leaf column at a dotted path.
    pub(crate) fn parquet_column(&self, path: &str) -> Option<&ParquetColumn> {
        self.parquet.iter().find(|column| column.path == path)
    }

    /// The rows ordered by a column's JSON value (numbers by value, others by their text): the
    /// readers' row order is not the writer's.
    pub(crate) fn rows_sorted_by(&self, column: &str) -> Vec<Value> {
        let mut rows = self.rows.clone();
        rows.sort_by(|a, b| {
            let (a, b) = (&a[column], &b[column]);
            match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                _ => a.to_string().cmp(&b.to_string()),
            }
        });
        rows
    }
}

/// Reads `<lake>/<table>/**/*.parquet` (a directory, or `s3://bucket/prefix` with `s3`) with
/// one reader; panics with the reader's stderr when it fails.
pub(crate) fn read(
    python: &Path,
    reader: Reader,
    lake: &str,
    table: &str,
    s3: Option<&S3>,
) -> Table {
    try_read(python, reader, lake, table, s3)
        .unwrap_or_else(|err| panic!("{reader:?} cannot read {table} of {lake}: {err}"))
}

/// [`read`], or the reader's stderr when it fails (a partial file, no files, rejected
/// credentials, ...).
pub(crate) fn try_read(
    python: &Path,
    reader: Reader,
    lake: &str,
    table: &str,
    s3: Option<&S3>,
) -> Result<Table, String> {
    let mut command = Command::new(python);
    command.arg(READ_LAKE).arg(reader.arg()).arg(lake).arg(table);
    if let Some(s3) = s3 {
        command.args(["--s3-endpoint", &s3.endpoint, "--s3-region", &s3.region]).args([
            "--s3-key",
            &s3.key,
            "--s3-secret",
            &s3.secret,
        ]);
    }
    let output = run(&mut command)?;
    let document: Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("its output is not JSON ({err}): {}", lossy(&output.stdout)))?;
    Ok(table_from(&document))
}

fn table_from(document: &Value) -> Table {
    let text =
        |value: &Value| value.as_str().expect("a string in read_lake.py's output").to_owned();
    let list = |key: &str| document[key].as_array().cloned().unwrap_or_default();
    Table {
        columns: list("columns")
            .iter()
            .map(|column| (text(&column["name"]), text(&column["type"])))
            .collect(),
        rows: list("rows"),
        files: list("files").iter().map(text).collect(),
        parquet: list("parquet")
            .iter()
            .map(|column| ParquetColumn {
                path: text(&column["path"]),
                physical: text(&column["physical"]),
                logical: text(&column["logical"]),
                converted: text(&column["converted"]),
            })
            .collect(),
    }
}

/// Runs a python snippet (`python -c CODE ARGS...`) and returns its stdout; panics with its
/// stderr when it fails. For tests that write a dataset of their own with pyarrow.
pub(crate) fn run_python(python: &Path, code: &str, args: &[&str]) -> String {
    let output = run(Command::new(python).arg("-c").arg(code).args(args))
        .unwrap_or_else(|err| panic!("python snippet failed: {err}"));
    String::from_utf8(output.stdout).expect("python printed UTF-8")
}

/// Runs a command to its exit with nothing on stdin: its output, or why it failed.
fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{} exited with {}:\n{}",
            command_name(command),
            output.status,
            lossy(&output.stderr)
        ))
    }
}

fn command_name(command: &Command) -> String {
    let mut name = command.get_program().to_string_lossy().into_owned();
    if let Some(script) = command.get_args().next() {
        name.push(' ');
        name.push_str(&script.to_string_lossy());
    }
    name
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A moto S3 server (`python -m moto.server`, the venv's `moto_server`) on a free loopback
/// port, its log in a temporary directory, killed when dropped.
///
/// The harness's own calls ([`S3Server::create_bucket`], [`S3Server::put_object`], ...) sign
/// with an IAM key made at start, so they work while credentials are rejected.
pub(crate) struct S3Server {
    python: PathBuf,
    port: u16,
    /// The harness's IAM key and secret, allowed everything.
    admin: (String, String),
    child: Option<Child>,
    // Declared last, so it is removed after the process that writes in it is gone.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto on a free loopback port and waits until it answers.
    pub(crate) fn start(python: &Path) -> S3Server {
        let dir = tempfile::tempdir().expect("temporary directory for moto");
        let port = loopback::free_ports(1)[0];
        let log = File::create(dir.path().join("moto.log")).expect("create moto log");
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start moto with {}: {err}", python.display()));
        // From here on the server owns the process, so a failed start still kills it.
        let mut server = S3Server {
            python: python.to_owned(),
            port,
            admin: (String::new(), String::new()),
            child: Some(child),
            dir,
        };
        server.wait_ready();
        server.admin = server.issue_key(&["setup"]);
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Credentials for this server with a key moto never issued (`test`/`test`): accepted until
    /// [`S3Server::reject_credentials`], rejected with 403 `InvalidAccessKeyId` after.
    pub(crate) fn credentials(&self) -> S3 {
        self.s3("test", "test")
    }

    /// Credentials for this server with the given key and secret.
    pub(crate) fn s3(&self, key: &str, secret: &str) -> S3 {
        S3 {
            endpoint: self.endpoint(),
            region: REGION.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// A new IAM user allowed `s3:*`, and its credentials: accepted whether or not moto
    /// enforces credentials; with another secret, rejected with 403 `SignatureDoesNotMatch`
    /// while it does.
    pub(crate) fn create_user(&self, name: &str) -> S3 {
        let (key, secret) = self.issue_key(&["create-user", name]);
        self.s3(&key, &secret)
    }

    /// From now on every request must be signed with a key moto issued (the harness's and
    /// those of [`S3Server::create_user`]): others get 403 `InvalidAccessKeyId`, or
    /// `SignatureDoesNotMatch` for an issued key with a wrong secret.
    pub(crate) fn reject_credentials(&self) {
        self.reset_auth("0");
    }

    /// Any key is accepted again, as at start.
    pub(crate) fn accept_credentials(&self) {
        self.reset_auth("inf");
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        self.admin(&["create-bucket", bucket], None);
    }

    pub(crate) fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        self.admin(&["put", bucket, key], Some(body));
    }

    /// Every file under `dir` as `<prefix>/<path relative to dir>`.
    pub(crate) fn upload_dir(&self, dir: &Path, bucket: &str, prefix: &str) {
        let dir = dir.to_str().expect("UTF-8 path");
        self.admin(&["upload", bucket, prefix, dir], None);
    }

    /// The keys under `prefix`, sorted.
    pub(crate) fn list_objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listing = self.admin(&["list", bucket, prefix], None);
        String::from_utf8(listing).expect("UTF-8 keys").lines().map(str::to_owned).collect()
    }

    pub(crate) fn get_object(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.admin(&["get", bucket, key], None)
    }

    /// The server's log (one line a request: method, path, status), for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Runs `s3_admin.py` with the harness's key; its stdout.
    fn admin(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let mut child = Command::new(&self.python)
            .arg(S3_ADMIN)
            .arg(self.endpoint())
            .args(args)
            .env("HARNESS_S3_KEY", &self.admin.0)
            .env("HARNESS_S3_SECRET", &self.admin.1)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {S3_ADMIN}: {err}"));
        if let Some(body) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(body).expect("write the object to s3_admin.py");
        }
        let output = child.wait_with_output().expect("wait for s3_admin.py");
        assert!(
            output.status.success(),
            "s3_admin.py {args:?} exited with {}:\n{}",
            output.status,
            lossy(&output.stderr)
        );
        output.stdout
    }

    fn issue_key(&self, args: &[&str]) -> (String, String) {
        let printed = String::from_utf8(self.admin(args, None)).expect("UTF-8 key");
        let mut words = printed.split_whitespace().map(str::to_owned);
        match (words.next(), words.next()) {
            (Some(key), Some(secret)) => (key, secret),
            _ => panic!("s3_admin.py {args:?} printed no key and secret: {printed:?}"),
        }
    }

    /// `POST /moto-api/reset-auth` with the number of requests to let through unchecked before
    /// moto checks signatures (`0`: from now on; `inf`: never). It must be `text/plain`: moto
    /// reads the raw body, which Flask empties for a form.
    fn reset_auth(&self, count: &str) {
        let (status, body) = self
            .http("POST", "/moto-api/reset-auth", count)
            .unwrap_or_else(|| panic!("moto does not answer /moto-api/reset-auth\n{}", self.log()));
        assert_eq!(status, 200, "moto's /moto-api/reset-auth: {body}");
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) =
                self.child.as_mut().and_then(|child| child.try_wait().ok()).flatten()
            {
                panic!("moto exited with {status}\n{}", self.log());
            }
            if let Some((200, _)) = self.http("GET", "/moto-api/", "") {
                eprintln!("moto: ready on {} in {:.1?}", self.endpoint(), started.elapsed());
                return;
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "moto not ready within {READY_DEADLINE:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One request to moto: status and body, or `None` when it does not answer.
    fn http(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        loopback::http(self.port, method, path, body, HTTP_TIMEOUT)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
