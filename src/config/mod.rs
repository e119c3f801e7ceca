//! Configuration: built-in defaults, then the TOML file, then `HOOKHOUSE_*` environment
//! variables (`__` for nesting), then command-line flags. Raw serde structs are validated into
//! [`Config`] in one pass that reports every problem at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod file_modes;
mod journeys;
mod retention;
mod secret;
mod sinks;
mod source;
mod spool;

pub use admin::{AdminConfig, RawAdmin};
pub use file_modes::open_to_others;
use ipnet::IpNet;
use journeys::resolve_journeys;
pub use journeys::{AnswerKind, JourneyAnswer, OAuthClient, RawClient, RawJourney};
pub use retention::{RawDays, RawRetention, Retention};
pub use sinks::{
    LakeLocation, ParquetConfig, PostgresConfig, RawParquet, RawPostgres, RawS3, RawSinks,
    RawSqliteCopy, S3Config, SinksConfig,
};
pub use source::{RawPseudonymise, RawSource, SourceAuth};
use source::{resolve_allow, resolve_auth, resolve_pseudonymise};
pub use spool::{JetStreamConfig, NatsAuth, RawJetStream, RawSpool, SpoolConfig};

use crate::pipeline::PseudonymKey;
use crate::tls::TlsFiles;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The name every unconfigured install uses, and the Snowplow path's default source.
pub const DEFAULT_SOURCE: &str = "default";

/// The configuration as written by the user, before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub store: RawStore,
    pub sources: Vec<RawSource>,
    pub sinks: RawSinks,
    pub spool: RawSpool,
    pub admin: RawAdmin,
    pub retention: RawRetention,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: u64,
    /// The source that requests on the Snowplow-compatible path belong to.
    pub snowplow_source: String,
    /// How long a shutdown waits for open connections before closing them.
    pub shutdown_timeout_secs: u64,
    /// Serve HTTPS with these PEM files.
    pub tls: Option<RawTls>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR ranges or addresses).
    pub trusted_proxies: Vec<String>,
    /// Time a client has to send its request headers (then the connection is closed).
    pub header_read_timeout_secs: u64,
    /// Time a client has to send its body once the headers are in (then 408).
    pub body_read_timeout_secs: u64,
    /// Connections served at once (HTTP and HTTPS); more wait in the kernel's backlog.
    pub max_connections: u64,
    /// A connection with no request in flight this long is closed (HTTP/1.1 and HTTP/2).
    pub idle_timeout_secs: u64,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_http2_streams: u64,
    /// Request line plus headers, in bytes; beyond it the answer is 431.
    pub max_header_bytes: u64,
    /// Body bytes being read across all requests at once; beyond it new bodies get 503.
    pub max_inflight_body_bytes: u64,
    /// Failed credentials from one address within a minute after which it is refused
    /// (429) for `auth_block_secs`; 0 turns the block off.
    pub max_auth_failures_per_minute: u64,
    /// How long an address that guessed too often is refused.
    pub auth_block_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 1024 * 1024,
            snowplow_source: DEFAULT_SOURCE.to_owned(),
            shutdown_timeout_secs: 30,
            tls: None,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_connections: 10_000,
            idle_timeout_secs: 60,
            max_http2_streams: 100,
            max_header_bytes: 64 * 1024,
            // 128 MiB, not more: measured peak memory is about 1.35 times the budget under an
            // HTTP/2 flood (bench/memory.sh), and the process should stay under 300 MB.
            max_inflight_body_bytes: 128 * 1024 * 1024,
            max_auth_failures_per_minute: 20,
            auth_block_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub data_dir: PathBuf,
    /// Requests waiting for the writer beyond which new ones are answered 503.
    pub max_queue_depth: u64,
    /// The most requests one group commit may hold.
    pub max_batch: u64,
    /// How long a write waits for a lock held by another process before failing.
    pub busy_timeout_ms: u64,
    /// Request headers kept in `raw_requests.headers` (an allow-list, any case); every other
    /// header is left out.
    pub keep_headers: Vec<String>,
    /// Free space on the store's filesystem below which new requests are answered 503 (and
    /// `/readyz` too) before SQLite meets a full disk; 0 turns the guard off.
    pub min_free_disk_mb: u64,
    /// Index the embedded `events` by campaign and time, which the campaign metric views read
    /// for one campaign: milliseconds instead of a scan of every event, for 0.77 of the
    /// embedded sink's load rate (BENCHMARKS.md, "Campaign metric views"); off by default.
    pub campaign_index: bool,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./hookhouse-data"),
            max_queue_depth: 20_000,
            max_batch: 2_048,
            busy_timeout_ms: 2_000,
            keep_headers: DEFAULT_KEEP_HEADERS.iter().map(|name| (*name).to_owned()).collect(),
            min_free_disk_mb: 1_024,
            campaign_index: false,
        }
    }
}

/// Headers worth keeping with a request by default: what it is, who sent it through which
/// proxies, and how to find it in a trace. Nothing that can carry a credential.
pub const DEFAULT_KEEP_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "x-iterable-event-type",
];

/// What normalising a large body builds and keeps until its commit (the parsed tree, then rows
/// that hold its data again), as a multiple of the body's size; reserved from
/// `server.max_inflight_body_bytes` with the body. Measured peak memory under 1,000 concurrent
/// 1 MiB bodies was about 4.9 times the budget before this was reserved, 2.5 after.
pub const WORK_BYTES_PER_BODY_BYTE: usize = 2;

/// Headers that carry credentials or session state: never stored, even when listed.
pub const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--admin ADDR`: the inspector's listener.
    pub admin: Option<String>,
}

/// A validated configuration: every value typed, every cross-reference checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: SinksConfig,
    pub spool: SpoolConfig,
    /// The inspector's listener, when `[admin] listen` is set.
    pub admin: Option<AdminConfig>,
    /// Problems that do not stop a start (a secret file others can read); `--strict` makes
    /// them errors.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub snowplow_source: Option<String>,
    pub shutdown_timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: NonZeroUsize,
    pub idle_timeout: Duration,
    pub max_http2_streams: NonZeroUsize,
    pub max_header_bytes: NonZeroUsize,
    pub max_inflight_body_bytes: NonZeroUsize,
    /// `None`: failed credentials never block an address.
    pub auth_block: Option<AuthBlock>,
}

/// When an address that keeps failing authentication is refused for a while.
#[derive(Debug, Clone, Copy)]
pub struct AuthBlock {
    pub max_failures_per_minute: u32,
    pub block_for: Duration,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub max_queue_depth: NonZeroUsize,
    pub max_batch: NonZeroUsize,
    pub busy_timeout: Duration,
    /// Lower-case header names stored with a request.
    pub keep_headers: Vec<String>,
    /// Index events by email and by user id, which the inspector's person filter walks. Only
    /// while the inspector is on: the index costs the embedded sink about 40% of its load rate
    /// (bench/embedded_indexes.sh), since people arrive in no order.
    pub person_index: bool,
    /// Index events by person, name and time, which journey answers read. Only while a
    /// source has `[[sources.journeys]]`, for the same reason.
    pub answer_index: bool,
    /// Index events by campaign and time, for the campaign metric views
    /// (`store.campaign_index`, off by default).
    pub campaign_index: bool,
    /// Free bytes below which requests are refused (`store.min_free_disk_mb`); 0: no guard.
    pub min_free_disk: u64,
    /// How long each table's rows are kept (`[retention]`).
    pub retention: Retention,
}

impl StoreConfig {
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hookhouse.db")
    }
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub auth: SourceAuth,
    /// Ranges allowed to send; empty allows any address.
    pub allow: Vec<IpNet>,
    pub max_requests_per_second: Option<u32>,
    /// The key personal fields are hashed with; `None` stores them as they arrive.
    pub pseudonymise: Option<PseudonymKey>,
    /// Keep no raw body for a request whose every part was normalised.
    pub drop_raw_bodies: bool,
    /// Journey endpoints that answer with data from the store.
    pub journeys: Vec<JourneyAnswer>,
}

impl SourceConfig {
    /// A source with this authentication and every other option off.
    pub fn new(name: impl Into<String>, auth: SourceAuth) -> Self {
        SourceConfig {
            name: name.into(),
            auth,
            allow: Vec::new(),
            max_requests_per_second: None,
            pseudonymise: None,
            drop_raw_bodies: false,
            journeys: Vec::new(),
        }
    }

    /// The answer configured for this journey, if it answers with data.
    pub fn journey_answer(&self, journey: &str) -> Option<&JourneyAnswer> {
        self.journeys.iter().find(|answer| answer.journey == journey)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads the layers in order and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(file) = file {
            // `Toml::file` silently ignores a missing file; a path the user named must exist.
            if !file.is_file() {
                return Err(ConfigError::Invalid(vec![format!(
                    "configuration file `{}` does not exist",
                    file.display()
                )]));
            }
            figment = figment.merge(Toml::file(file));
        }
        // `HOOKHOUSE_LOG` and `HOOKHOUSE_LOG_FORMAT` are read by `main`, not configuration keys.
        figment =
            figment.merge(Env::prefixed("HOOKHOUSE_").ignore(&["LOG", "LOG_FORMAT"]).split("__"));
        let mut raw: RawConfig = figment.extract().map_err(load_error)?;
        if let Some(listen) = &overrides.listen {
            raw.server.listen.clone_from(listen);
        }
        if let Some(dir) = &overrides.data_dir {
            raw.store.data_dir.clone_from(dir);
        }
        if let Some(admin) = &overrides.admin {
            raw.admin.listen = Some(admin.clone());
        }
        Self::validate(raw)
    }

    /// Turns raw values into typed ones, collecting every problem rather than stopping at one.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();

        let listen = raw.server.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "`server.listen` = `{}` is not an address such as `127.0.0.1:8080`",
                raw.server.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let max_body_bytes =
            positive(&mut problems, "server.max_body_bytes", raw.server.max_body_bytes);
        let max_connections =
            positive(&mut problems, "server.max_connections", raw.server.max_connections);
        let max_queue_depth =
            positive(&mut problems, "store.max_queue_depth", raw.store.max_queue_depth);
        let max_batch = positive(&mut problems, "store.max_batch", raw.store.max_batch);
        let max_http2_streams =
            positive(&mut problems, "server.max_http2_streams", raw.server.max_http2_streams);
        let max_header_bytes =
            positive(&mut problems, "server.max_header_bytes", raw.server.max_header_bytes);
        let max_inflight_body_bytes = positive(
            &mut problems,
            "server.max_inflight_body_bytes",
            raw.server.max_inflight_body_bytes,
        );
        // One body of the largest size, and what normalising it builds, must fit.
        let one_body =
            raw.server.max_body_bytes.saturating_mul(1 + WORK_BYTES_PER_BODY_BYTE as u64);
        if (max_inflight_body_bytes.get() as u64) < one_body {
            problems.push(format!(
                "`server.max_inflight_body_bytes` ({max_inflight_body_bytes}) must be at least \
                 {} times `server.max_body_bytes` ({one_body}): a body and what normalising it \
                 builds",
                1 + WORK_BYTES_PER_BODY_BYTE
            ));
        }
        let auth_block = (raw.server.max_auth_failures_per_minute > 0).then(|| AuthBlock {
            max_failures_per_minute: u32::try_from(raw.server.max_auth_failures_per_minute)
                .unwrap_or(u32::MAX),
            block_for: Duration::from_secs(raw.server.auth_block_secs.max(1)),
        });
        let mut keep_headers = Vec::new();
        for name in &raw.store.keep_headers {
            match axum::http::HeaderName::from_bytes(name.trim().as_bytes()) {
                Ok(header) if CREDENTIAL_HEADERS.contains(&header.as_str()) => {
                    problems.push(format!(
                        "`{name}` in `store.keep_headers` carries credentials and is never stored"
                    ));
                }
                Ok(header) => keep_headers.push(header.as_str().to_owned()),
                Err(_) => {
                    problems.push(format!("`{name}` in `store.keep_headers` is not a header name"))
                }
            }
        }
        let mut warnings = file_modes::exposed_secret_files(&raw);

        let mut sources: Vec<SourceConfig> = raw
            .sources
            .iter()
            .map(|s| SourceConfig {
                name: s.name.clone(),
                auth: resolve_auth(s, &mut problems),
                allow: resolve_allow(s, &mut problems),
                max_requests_per_second: s.max_requests_per_second.filter(|&n| n > 0),
                pseudonymise: resolve_pseudonymise(s, &mut problems),
                drop_raw_bodies: s.drop_raw_bodies,
                journeys: resolve_journeys(s, &mut problems),
            })
            .collect();
        if sources.is_empty() {
            sources.push(SourceConfig::new(DEFAULT_SOURCE, SourceAuth::None));
        }
        let mut seen = HashSet::new();
        for source in &sources {
            if !is_valid_source_name(&source.name) {
                problems.push(format!(
                    "source name `{}` must be 1 to 64 characters of a-z, 0-9, `-` or `_`",
                    source.name
                ));
            }
            if !seen.insert(source.name.as_str()) {
                problems.push(format!("source `{}` is configured twice", source.name));
            }
        }

        for (source, answer) in
            sources.iter().flat_map(|s| s.journeys.iter().map(move |answer| (s, answer)))
        {
            if let AnswerKind::Engagement { from_sources: Some(names) } = &answer.answer {
                for unknown in names.iter().filter(|name| !seen.contains(name.as_str())) {
                    problems.push(format!(
                        "source `{}`, journey `{}`: `from_sources` names `{unknown}`, which is \
                         not a configured source",
                        source.name, answer.journey
                    ));
                }
            }
        }

        // The Snowplow path follows `default` silently when it exists; a name the user chose
        // explicitly must exist.
        let snowplow_source = if seen.contains(raw.server.snowplow_source.as_str()) {
            Some(raw.server.snowplow_source.clone())
        } else if raw.server.snowplow_source == DEFAULT_SOURCE {
            None
        } else {
            problems.push(format!(
                "`server.snowplow_source` = `{}` names no configured source",
                raw.server.snowplow_source
            ));
            None
        };

        let mut trusted_proxies = Vec::new();
        for entry in &raw.server.trusted_proxies {
            match source::parse_net(entry) {
                Some(net) => trusted_proxies.push(net),
                None => problems.push(format!(
                    "`{entry}` in `server.trusted_proxies` is not an address or CIDR range"
                )),
            }
        }
        let tls = raw.server.tls.map(|tls| TlsFiles { cert: tls.cert, key: tls.key });
        if let Some(tls) = &tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if !path.is_file() {
                    problems.push(format!("`{key}`: `{}` is not a file", path.display()));
                }
            }
        }

        let spool = spool::resolve(&raw.spool, &mut problems);
        let retention = retention::resolve(&raw.retention, &mut problems);
        let sinks = sinks::resolve(&raw.sinks, spool.jetstream().is_some(), &mut problems);
        if sinks.sqlite_copy.is_some() && spool.jetstream().is_none() {
            problems.push(
                "`[sinks.sqlite]` is for a JetStream log (`[spool] kind = \"jetstream\"`): with \
                 the SQLite log the embedded tables are in `hookhouse.db` already"
                    .to_owned(),
            );
        }

        let admin = admin::resolve(&raw.admin, listen, tls.is_some(), &mut problems, &mut warnings);
        if admin.is_some() && spool.jetstream().is_some() && sinks.sqlite_copy.is_none() {
            problems.push(
                "the inspector (`[admin]`) reads the embedded tables: with a JetStream log, keep \
                 a local copy with `[sinks.sqlite] path = \"/var/lib/hookhouse/copy\"`"
                    .to_owned(),
            );
        }
        let answers = sources.iter().any(|source| !source.journeys.is_empty());
        if answers && spool.jetstream().is_some() && sinks.sqlite_copy.is_none() {
            problems.push(
                "journey answers (`[[sources.journeys]]`) read the embedded tables: with a \
                 JetStream log, keep a local copy with `[sinks.sqlite] path = \
                 \"/var/lib/hookhouse/copy\"`"
                    .to_owned(),
            );
        }

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Config {
            server: ServerConfig {
                listen,
                max_body_bytes: max_body_bytes.get(),
                snowplow_source,
                shutdown_timeout: Duration::from_secs(raw.server.shutdown_timeout_secs),
                tls,
                trusted_proxies,
                header_read_timeout: Duration::from_secs(
                    raw.server.header_read_timeout_secs.max(1),
                ),
                body_read_timeout: Duration::from_secs(raw.server.body_read_timeout_secs.max(1)),
                max_connections,
                idle_timeout: Duration::from_secs(raw.server.idle_timeout_secs.max(1)),
                max_http2_streams,
                max_header_bytes,
                max_inflight_body_bytes,
                auth_block,
            },
            store: StoreConfig {
                data_dir: raw.store.data_dir,
                max_queue_depth,
                max_batch,
                busy_timeout: Duration::from_millis(raw.store.busy_timeout_ms),
                keep_headers,
                person_index: admin.is_some(),
                answer_index: answers,
                campaign_index: raw.store.campaign_index,
                min_free_disk: raw.store.min_free_disk_mb.saturating_mul(1024 * 1024),
                retention,
            },
            sources,
            sinks,
            spool,
            admin,
            warnings,
        })
    }

    /// The `hookhouse.db` holding the embedded tables: the store itself, or with a JetStream
    /// log its local copy (`[sinks.sqlite]`), if there is one.
    pub fn embedded_db_path(&self) -> Option<PathBuf> {
        match (self.spool.jetstream(), &self.sinks.sqlite_copy) {
            (None, _) => Some(self.store.db_path()),
            (Some(_), Some(dir)) => Some(dir.join("hookhouse.db")),
            (Some(_), None) => None,
        }
    }

    /// The store in `data_dir` as this configuration opens it: with the person index while
    /// the inspector is on, and the answer index while a journey answers.
    pub fn store_in(&self, data_dir: &Path) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.to_owned(),
            person_index: self.admin.is_some(),
            answer_index: self.journeys_answer(),
            ..self.store.clone()
        }
    }

    /// Whether some source has a journey that answers with data (`[[sources.journeys]]`).
    pub fn journeys_answer(&self) -> bool {
        self.sources.iter().any(|source| !source.journeys.is_empty())
    }

    /// A configuration from TOML text alone (defaults below it, no file, variables or
    /// flags): for tests and tools.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(load_error)?;
        Self::validate(raw)
    }

    /// A configuration for tests and tools: defaults, one `default` source.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut raw = RawConfig::default();
        raw.store.data_dir = data_dir.into();
        raw.server.listen = "127.0.0.1:0".to_owned();
        // Defaults are valid by construction; a failure here is a bug caught by the tests below.
        Self::validate(raw).unwrap_or_else(|err| panic!("default configuration is invalid: {err}"))
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Figment's errors name keys with its profile (`default.server.x`) and repeat themselves in
/// their source chain; this gives one line per problem: what, which key, from where.
fn load_error(err: figment::Error) -> ConfigError {
    let problems = err
        .into_iter()
        .map(|err| {
            let path = match err.path.split_first() {
                Some((first, rest))
                    if err.profile.as_ref().is_some_and(|p| p.as_str() == first) =>
                {
                    rest.join(".")
                }
                _ => err.path.join("."),
            };
            let origin = err.metadata.as_ref().map(|meta| match &meta.source {
                Some(source) => format!(" (in {} `{source}`)", meta.name),
                None => format!(" (in {})", meta.name),
            });
            let key = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
            let kind = without_values(&err.kind, &path);
            format!("{kind}{key}{}", origin.unwrap_or_default())
        })
        .collect();
    ConfigError::Invalid(problems)
}

/// The problem without the value that caused it, unless the value sits where no secret can
/// (`server`, `store`): a secret written where a list was expected must not be echoed to a
/// terminal or a log. TOML syntax errors lose the quoted source line for the same reason.
fn without_values(kind: &figment::error::Kind, path: &str) -> String {
    use figment::error::{Actual, Kind};
    let safe = ["server", "store"].iter().any(|table| path.split('.').next() == Some(table));
    let kind_of = |actual: &Actual| match actual {
        Actual::Str(_) | Actual::Char(_) => "a string".to_owned(),
        Actual::Bytes(_) => "bytes".to_owned(),
        Actual::Bool(_) => "a boolean".to_owned(),
        Actual::Signed(_) | Actual::Unsigned(_) => "an integer".to_owned(),
        Actual::Float(_) => "a float".to_owned(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(actual, expected) if !safe => {
            format!("invalid type: found {}, expected {expected}", kind_of(actual))
        }
        Kind::InvalidValue(actual, expected) if !safe => {
            format!("invalid value: found {}, expected {expected}", kind_of(actual))
        }
        Kind::Message(message) => message
            .lines()
            .filter(|line| {
                !line.trim_start().trim_start_matches(char::is_numeric).starts_with(['|', ' '])
            })
            .filter(|line| !line.trim().is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        other => other.to_string(),
    }
}

fn positive(problems: &mut Vec<String>, key: &str, value: u64) -> NonZeroUsize {
    usize::try_from(value).ok().and_then(NonZeroUsize::new).unwrap_or_else(|| {
        problems.push(format!("`{key}` must be a positive integer, not {value}"));
        NonZeroUsize::MIN
    })
}

fn is_valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text)
    }

    #[test]
    fn oauth_clients_and_journey_answers_are_validated_together() {
        let config = from_toml(
            "[[sources]]\nname = \"j\"\nauth = \"oauth2\"\n\
             [[sources.clients]]\nid = \"iterable\"\nsecret = \"0123456789abcdefXYZ\"\n\
             [[sources.journeys]]\nname = \"engagement\"\nanswer = \"engagement\"\n\
             [[sources.journeys]]\nname = \"opens\"\nanswer = \"sql\"\n\
             query = \"SELECT 1 AS one\"\nmax_rows = 5\n",
        )
        .unwrap();
        let source = &config.sources[0];
        let SourceAuth::OAuth2(clients) = &source.auth else { panic!("{:?}", source.auth) };
        assert_eq!((clients[0].id.as_str(), clients[0].token_ttl.as_secs()), ("iterable", 3600));
        assert!(matches!(
            source.journey_answer("opens").unwrap().answer,
            AnswerKind::Sql { max_rows: 5, .. }
        ));
        assert!(config.store.answer_index && !config.store.person_index);

        let err = from_toml(
            "[[sources]]\nname = \"j\"\nauth = \"oauth2\"\n\
             [[sources]]\nname = \"k\"\nauth = \"oauth2\"\n\
             [[sources.clients]]\nid = \"a:b\"\nsecret = \"s3cr\"\ntoken_ttl_secs = 0\n\
             [[sources.journeys]]\nname = \"e\"\nanswer = \"magic\"\n\
             [[sources.journeys]]\nname = \"s\"\nanswer = \"sql\"\nmax_rows = 0\n\
             [[sources.journeys]]\nname = \"f\"\nanswer = \"engagement\"\n\
             from_sources = [\"nope\"]\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "source `j` has `auth = \"oauth2\"` but no `[[sources.clients]]`",
            "a client `id` must be 1 to 128 visible ASCII characters without `:`",
            "`token_ttl_secs` must be 1 to 86400",
            "the secret is shorter than 16 characters",
            "journey `e`: `answer` must be `engagement` or `sql`",
            "journey `s`: `answer = \"sql\"` needs a `query`",
            "journey `s`: `max_rows` must be 1 to 100",
            "`from_sources` names `nope`, which is not a configured source",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("s3cr"), "a secret's value is never repeated:\n{err}");
    }

    #[test]
    fn no_configuration_gives_one_default_source() {
        let config = from_toml("").unwrap();
        assert_eq!(config.sources.len(), 1);
        assert_eq!(config.sources[0].name, "default");
        assert_eq!(config.sources[0].auth.mode(), "none");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 1_048_576);
        assert_eq!(config.server.snowplow_source.as_deref(), Some("default"));
        assert_eq!(config.store.db_path(), PathBuf::from("./hookhouse-data/hookhouse.db"));
    }

    #[test]
    fn the_inspector_reads_the_store_or_a_jetstream_logs_local_copy() {
        let config = from_toml("[admin]\nlisten = \"127.0.0.1:8081\"\n").unwrap();
        assert_eq!(config.admin.as_ref().unwrap().listen.to_string(), "127.0.0.1:8081");
        assert_eq!(config.embedded_db_path(), Some(config.store.db_path()));
        let jetstream = "[spool]\nkind = \"jetstream\"\n[spool.jetstream]\n\
                         servers = [\"nats://127.0.0.1:4222\"]\n[admin]\nlisten = \"127.0.0.1:8081\"\n";
        let err = from_toml(jetstream).unwrap_err().to_string();
        assert!(err.contains("keep a local copy with `[sinks.sqlite] path"), "{err}");
        let config =
            from_toml(&format!("{jetstream}[sinks.sqlite]\npath = \"/var/lib/hookhouse/copy\"\n"))
                .unwrap();
        assert_eq!(
            config.embedded_db_path(),
            Some(PathBuf::from("/var/lib/hookhouse/copy/hookhouse.db"))
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = from_toml("[server]\nlisten = \"127.0.0.1:1\"\nmax_body = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_body"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = from_toml(
            "[server]\nlisten = \"nowhere\"\nmax_body_bytes = 0\nsnowplow_source = \"web\"\n\
             [[sources]]\nname = \"Prod\"\n[[sources]]\nname = \"a\"\n[[sources]]\nname = \"a\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in ["server.listen", "max_body_bytes", "`Prod`", "configured twice", "`web`"] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn the_body_budget_must_hold_one_body_and_its_rows() {
        let err = from_toml("[server]\nmax_inflight_body_bytes = 2097152\n").unwrap_err();
        assert!(err.to_string().contains("at least 3 times `server.max_body_bytes`"), "{err}");
        assert!(from_toml("[server]\nmax_inflight_body_bytes = 3145728\n").is_ok());
    }

    #[test]
    fn snowplow_path_is_off_when_no_default_source_exists() {
        let config = from_toml("[[sources]]\nname = \"prod\"\n").unwrap();
        assert_eq!(config.server.snowplow_source, None);
        let config =
            from_toml("[server]\nsnowplow_source = \"prod\"\n[[sources]]\nname = \"prod\"\n")
                .unwrap();
        assert_eq!(config.server.snowplow_source.as_deref(), Some("prod"));
    }

    #[test]
    fn source_auth_problems_are_listed_together() {
        let err = from_toml(
            "[[sources]]\nname = \"a\"\nauth = \"token\"\nsecrets = [\"env:HOOKHOUSE_TEST_UNSET_VAR_1\"]\n\
             [[sources]]\nname = \"b\"\nauth = \"header\"\nsecrets = [\"x\"]\n\
             [[sources]]\nname = \"c\"\nauth = \"magic\"\n\
             [[sources]]\nname = \"d\"\nauth = \"basic\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("magic"), "the value is not echoed: {err}");
        for needle in
            ["HOOKHOUSE_TEST_UNSET_VAR_1", "needs `header`", "`c`: `auth` is not", "no `secrets`"]
        {
            assert!(err.contains(needle), "missing {needle} in {err}");
        }
    }

    #[test]
    fn secrets_come_from_files_without_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file-secret-0123\n").unwrap();
        let config = from_toml(&format!(
            "[[sources]]\nname = \"p\"\nauth = \"header\"\nheader = \"X-Api-Key\"\n\
             secrets = [\"file:{}\", \"inline-secret-0123\"]\n",
            path.display()
        ))
        .unwrap();
        let SourceAuth::Header { name, secrets } = &config.sources[0].auth else {
            panic!("header mode expected");
        };
        assert_eq!(name, "x-api-key");
        use secrecy::ExposeSecret;
        let values: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(values, ["from-file-secret-0123", "inline-secret-0123"]);
        assert!(!format!("{config:?}").contains("from-file"), "Debug never shows a secret");
    }
}
