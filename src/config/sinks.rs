//! `[sinks.*]`: the warehouses hookhouse loads besides its embedded SQLite database.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSinks {
    pub postgres: Option<RawPostgres>,
    pub sqlite: Option<RawSqliteCopy>,
    pub parquet: Option<RawParquet>,
}

/// `[sinks.parquet]`: a Parquet lake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParquet {
    /// A directory.
    pub url: String,
    /// A file is closed at most this long after its first row.
    #[serde(default = "default_max_file_age_secs")]
    pub max_file_age_secs: u64,
    /// ... or once its requests' bodies reach about this size.
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// Only for `s3://` URLs.
    #[serde(default)]
    pub s3: Option<RawS3>,
}

/// `[sinks.parquet.s3]`: any S3-compatible endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    /// Unset: AWS's own endpoint for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub region: String,
    /// Inline, `env:NAME` or `file:PATH`, as every secret.
    pub access_key_id: String,
    pub secret_access_key: String,
}

fn default_max_file_age_secs() -> u64 {
    60
}

fn default_target_file_mb() -> u64 {
    128
}

#[derive(Debug, Clone)]
pub struct ParquetConfig {
    pub location: LakeLocation,
    pub max_file_age: Duration,
    pub target_bytes: usize,
}

/// Where the lake is.
#[derive(Debug, Clone)]
pub enum LakeLocation {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String, s3: S3Config },
}

impl LakeLocation {
    /// As the user wrote it: a path, or `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        match self {
            LakeLocation::Dir(path) => path.display().to_string(),
            LakeLocation::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
}

/// `[sinks.sqlite]`: with a JetStream log, a local store holding a copy of the stream and the
/// embedded tables (with the SQLite log, they are in `hookhouse.db` already).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSqliteCopy {
    /// The directory of the copy's `hookhouse.db`.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// `postgres://user@host:5432/db` or `host=.. user=..`, inline, `env:NAME` or `file:PATH`.
    pub url: String,
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Requests (Iterable sends one event each) loaded per transaction [default: 5000 from
    /// the SQLite log, 1000 from a JetStream log].
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// The longest one load (or connect) may take before it counts as a failure.
    #[serde(default = "default_load_timeout_secs")]
    pub load_timeout_secs: u64,
    /// How long a load waits for a lock held by another session before it fails, naming it.
    #[serde(default = "default_lock_timeout_secs")]
    pub lock_timeout_secs: u64,
    /// PEM certificates of a private CA to trust, besides Mozilla's roots, with sslmode=require.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_schema() -> String {
    "hookhouse".to_owned()
}

/// From the SQLite log one loader reads in order, and larger transactions load faster.
const BATCH_SIZE_FROM_SQLITE: u64 = 5_000;
/// From a JetStream log loaders take turns at PostgreSQL, and a loader waiting for its turn
/// holds its whole batch unloaded: 1,000 kept the lag at 0.36 s where 5,000 gave up to 3.2 s,
/// at the same rate (BENCHMARKS.md, bench/jetstream.sh).
const BATCH_SIZE_FROM_JETSTREAM: u64 = 1_000;

fn default_load_timeout_secs() -> u64 {
    120
}

fn default_lock_timeout_secs() -> u64 {
    10
}

#[derive(Debug, Clone, Default)]
pub struct SinksConfig {
    pub postgres: Option<PostgresConfig>,
    /// The directory of the stream's local copy (JetStream log only).
    pub sqlite_copy: Option<PathBuf>,
    pub parquet: Option<ParquetConfig>,
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The connection string; it may hold a password, so it is never printed.
    pub url: SecretString,
    pub schema: String,
    pub batch_size: NonZeroUsize,
    /// `sslmode=require` in the URL: connect with TLS, the certificate verified.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub load_timeout: Duration,
    pub lock_timeout: Duration,
}

impl PostgresConfig {
    /// The connection string with any password replaced, for messages and `check-config`.
    pub fn url_masked(&self) -> String {
        match tokio_postgres::Config::from_str(self.url.expose_secret()) {
            Ok(parsed) => {
                let user = parsed.get_user().unwrap_or("");
                let hosts: Vec<String> = parsed
                    .get_hosts()
                    .iter()
                    .zip(parsed.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(host, port)| match host {
                        tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                let password = if parsed.get_password().is_some() { ":***" } else { "" };
                let db = parsed.get_dbname().unwrap_or("");
                format!("postgres://{user}{password}@{}/{db}", hosts.join(","))
            }
            Err(_) => "***".to_owned(),
        }
    }
}

/// `from_jetstream`: the log is a JetStream stream, which sets some defaults.
pub(super) fn resolve(
    raw: &RawSinks,
    from_jetstream: bool,
    problems: &mut Vec<String>,
) -> SinksConfig {
    SinksConfig {
        postgres: raw
            .postgres
            .as_ref()
            .and_then(|pg| resolve_postgres(pg, from_jetstream, problems)),
        sqlite_copy: raw.sqlite.as_ref().map(|copy| copy.path.clone()),
        parquet: raw
            .parquet
            .as_ref()
            .and_then(|lake| resolve_parquet(lake, from_jetstream, problems)),
    }
}

fn resolve_parquet(
    raw: &RawParquet,
    from_jetstream: bool,
    problems: &mut Vec<String>,
) -> Option<ParquetConfig> {
    let before = problems.len();
    let location = match raw.url.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                problems.push(format!("`sinks.parquet.url` = `{}` names no bucket", raw.url));
            }
            match &raw.s3 {
                None => {
                    problems.push(
                        "`sinks.parquet.url` is an s3:// URL: add `[sinks.parquet.s3]` with \
                         `region`, `access_key_id` and `secret_access_key` (and `endpoint` for \
                         an S3-compatible server)"
                            .to_owned(),
                    );
                    None
                }
                Some(s3) => {
                    let key = super::secret::resolve(
                        "`sinks.parquet.s3.access_key_id`",
                        &s3.access_key_id,
                        problems,
                    );
                    let secret = super::secret::resolve(
                        "`sinks.parquet.s3.secret_access_key`",
                        &s3.secret_access_key,
                        problems,
                    );
                    key.zip(secret).map(|(access_key_id, secret_access_key)| LakeLocation::S3 {
                        bucket: bucket.to_owned(),
                        prefix: prefix.trim_end_matches('/').to_owned(),
                        s3: S3Config {
                            endpoint: s3.endpoint.clone(),
                            region: s3.region.clone(),
                            access_key_id,
                            secret_access_key,
                        },
                    })
                }
            }
        }
        None if raw.url.contains("://") => {
            problems.push(format!(
                "`sinks.parquet.url` = `{}`: use a directory or an s3:// URL",
                raw.url
            ));
            None
        }
        None => {
            if raw.s3.is_some() {
                problems.push(
                    "`[sinks.parquet.s3]` is only for an s3:// `sinks.parquet.url`".to_owned(),
                );
            }
            Some(LakeLocation::Dir(PathBuf::from(&raw.url)))
        }
    };
    if from_jetstream {
        problems.push(
            "`[sinks.parquet]` loads from the SQLite log; from a JetStream log it is not \
             available yet"
                .to_owned(),
        );
    }
    if raw.max_file_age_secs == 0 || raw.target_file_mb == 0 {
        problems.push(
            "`sinks.parquet.max_file_age_secs` and `target_file_mb` must be at least 1".to_owned(),
        );
    }
    let location = location?;
    (problems.len() == before).then(|| ParquetConfig {
        location,
        max_file_age: Duration::from_secs(raw.max_file_age_secs),
        target_bytes: usize::try_from(raw.target_file_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX),
    })
}

fn resolve_postgres(
    raw: &RawPostgres,
    from_jetstream: bool,
    problems: &mut Vec<String>,
) -> Option<PostgresConfig> {
    // Resolved first, but the other keys are checked even when it fails: every problem at once.
    let url = super::secret::resolve("`sinks.postgres.url`", &raw.url, problems);
    let tls = url.as_ref().is_some_and(|url| {
        match tokio_postgres::Config::from_str(url.expose_secret()) {
            Ok(parsed) => parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require,
            // The parser's message can quote the string, password included: keep its kind only.
            Err(_) => {
                problems.push(
                    "`sinks.postgres.url` is not a PostgreSQL connection string such as \
                     `postgres://user@host:5432/db`"
                        .to_owned(),
                );
                false
            }
        }
    });
    if let Some(ca_file) = &raw.ca_file {
        if !ca_file.is_file() {
            problems
                .push(format!("`sinks.postgres.ca_file`: `{}` is not a file", ca_file.display()));
        }
        if url.is_some() && !tls {
            problems.push(
                "`sinks.postgres.ca_file` is only used with TLS: add `sslmode=require` to the url"
                    .to_owned(),
            );
        }
    }
    if !is_identifier(&raw.schema) {
        problems.push(format!(
            "`sinks.postgres.schema` = `{}` must be 1 to 63 characters of a-z, 0-9 and `_`, \
             not starting with a digit",
            raw.schema
        ));
    }
    let default = if from_jetstream { BATCH_SIZE_FROM_JETSTREAM } else { BATCH_SIZE_FROM_SQLITE };
    let requested = raw.batch_size.unwrap_or(default);
    let batch_size = usize::try_from(requested).ok().and_then(NonZeroUsize::new);
    if batch_size.is_none() {
        problems.push(format!(
            "`sinks.postgres.batch_size` must be a positive integer, not {requested}"
        ));
    }
    if raw.load_timeout_secs == 0 || raw.lock_timeout_secs == 0 {
        problems.push(
            "`sinks.postgres.load_timeout_secs` and `lock_timeout_secs` must be at least 1"
                .to_owned(),
        );
    } else if raw.lock_timeout_secs >= raw.load_timeout_secs {
        problems.push(format!(
            "`sinks.postgres.lock_timeout_secs` ({}) must be below `load_timeout_secs` ({}), so \
             a wait on a lock is reported as one",
            raw.lock_timeout_secs, raw.load_timeout_secs
        ));
    }
    Some(PostgresConfig {
        load_timeout: Duration::from_secs(raw.load_timeout_secs.max(1)),
        lock_timeout: Duration::from_secs(raw.lock_timeout_secs.max(1)),
        url: url?,
        schema: raw.schema.clone(),
        batch_size: batch_size.unwrap_or(NonZeroUsize::MIN),
        tls,
        ca_file: raw.ca_file.clone(),
    })
}

/// Lower case only, so that the name hookhouse quotes is the one users type unquoted (which
/// PostgreSQL folds to lower case); and nothing that quoting would have to escape.
fn is_identifier(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str, schema: &str, batch_size: u64) -> RawSinks {
        RawSinks {
            postgres: Some(RawPostgres {
                url: url.to_owned(),
                schema: schema.to_owned(),
                batch_size: Some(batch_size),
                ca_file: None,
                load_timeout_secs: default_load_timeout_secs(),
                lock_timeout_secs: default_lock_timeout_secs(),
            }),
            sqlite: None,
            parquet: None,
        }
    }

    #[test]
    fn postgres_problems_are_listed_together_without_the_password() {
        let mut problems = Vec::new();
        let mut sinks = raw("postgres://u:hunter2@/db", "Bad-Name", 0);
        sinks.postgres.as_mut().unwrap().ca_file = Some("/nonexistent/ca.pem".into());
        resolve(&sinks, false, &mut problems);
        let text = problems.join("\n");
        for needle in ["sslmode=require", "not a file", "`Bad-Name`", "batch_size"] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn an_unset_url_variable_does_not_hide_the_other_problems() {
        let mut problems = Vec::new();
        resolve(&raw("env:HOOKHOUSE_TEST_UNSET_PG_URL", "Bad", 0), false, &mut problems);
        let text = problems.join("\n");
        for needle in ["HOOKHOUSE_TEST_UNSET_PG_URL", "`Bad`", "batch_size"] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn the_default_batch_size_follows_the_log() {
        let mut sinks = raw("postgres://u@db/wh", "hh", 1);
        sinks.postgres.as_mut().unwrap().batch_size = None;
        let mut problems = Vec::new();
        let size = |from_jetstream, problems: &mut Vec<String>| {
            resolve(&sinks, from_jetstream, problems).postgres.unwrap().batch_size.get()
        };
        assert_eq!((size(false, &mut problems), size(true, &mut problems)), (5_000, 1_000));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_masked_url_hides_the_password() {
        let mut problems = Vec::new();
        let config = resolve(
            &raw("postgres://u:hunter2@db.internal:6543/wh", "hh", 10),
            false,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let masked = config.postgres.unwrap().url_masked();
        assert_eq!(masked, "postgres://u:***@db.internal:6543/wh");
    }
}
