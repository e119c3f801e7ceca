//! `[spool]`: where accepted requests are logged. SQLite on this machine (the default), or a
//! replicated NATS JetStream stream shared by many receivers and loaders.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpool {
    /// `sqlite` (the default) or `jetstream`.
    pub kind: String,
    pub jetstream: Option<RawJetStream>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJetStream {
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_replicas")]
    pub replicas: u64,
    /// The stream refuses new requests (503) once it holds this many bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u64,
    /// A NATS `.creds` file: `file:PATH` or a path.
    #[serde(default)]
    pub credentials: Option<String>,
    /// Inline, `env:NAME` or `file:PATH`, as every secret.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM certificates to trust for `tls://` servers, besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long a receiver waits for the stream's acknowledgement before answering 503.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// How long a loader may hold a batch without word before it is redelivered to another:
    /// how soon the requests of a loader that died are loaded by the others.
    #[serde(default = "default_ack_wait_secs")]
    pub ack_wait_secs: u64,
}

fn default_stream() -> String {
    "HOOKHOUSE".to_owned()
}

fn default_replicas() -> u64 {
    3
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024 * 1024
}

fn default_max_age_days() -> u64 {
    14
}

fn default_publish_timeout_ms() -> u64 {
    5_000
}

fn default_ack_wait_secs() -> u64 {
    30
}

/// The request log in use.
#[derive(Debug, Clone, Default)]
pub enum SpoolConfig {
    /// `hookhouse.db` in the data directory.
    #[default]
    Sqlite,
    JetStream(JetStreamConfig),
}

impl SpoolConfig {
    pub fn jetstream(&self) -> Option<&JetStreamConfig> {
        match self {
            SpoolConfig::Sqlite => None,
            SpoolConfig::JetStream(config) => Some(config),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    pub servers: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    pub max_bytes: i64,
    pub max_age: Duration,
    pub auth: NatsAuth,
    pub ca_file: Option<PathBuf>,
    pub publish_timeout: Duration,
    pub ack_wait: Duration,
}

/// How hookhouse proves itself to the NATS servers.
#[derive(Debug, Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    CredentialsFile(PathBuf),
    Token(SecretString),
    UserPassword {
        user: String,
        password: SecretString,
    },
}

pub(super) fn resolve(raw: &RawSpool, problems: &mut Vec<String>) -> SpoolConfig {
    match (raw.kind.as_str(), &raw.jetstream) {
        ("" | "sqlite", None) => SpoolConfig::Sqlite,
        ("" | "sqlite", Some(_)) => {
            problems.push(
                "`[spool.jetstream]` is set but `spool.kind` is not `jetstream`: set \
                 `kind = \"jetstream\"` or remove the section"
                    .to_owned(),
            );
            SpoolConfig::Sqlite
        }
        ("jetstream", None) => {
            problems.push(
                "`spool.kind` is `jetstream` but `[spool.jetstream]` is missing: it needs at \
                 least `servers = [\"nats://host:4222\"]`"
                    .to_owned(),
            );
            SpoolConfig::Sqlite
        }
        ("jetstream", Some(js)) => resolve_jetstream(js, problems)
            .map(SpoolConfig::JetStream)
            .unwrap_or(SpoolConfig::Sqlite),
        (other, _) => {
            problems.push(format!("`spool.kind` is `{other}`: use `sqlite` or `jetstream`"));
            SpoolConfig::Sqlite
        }
    }
}

fn resolve_jetstream(raw: &RawJetStream, problems: &mut Vec<String>) -> Option<JetStreamConfig> {
    let before = problems.len();
    if raw.servers.is_empty() {
        problems.push("`spool.jetstream.servers` is empty: list at least one nats:// URL".into());
    }
    for server in &raw.servers {
        if !["nats://", "tls://"].iter().any(|scheme| server.starts_with(scheme)) {
            problems.push(format!(
                "`{server}` in `spool.jetstream.servers` must start with nats:// or tls://"
            ));
        }
    }
    let stream_ok = !raw.stream.is_empty()
        && raw.stream.len() <= 32
        && raw.stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !stream_ok {
        problems.push(format!(
            "`spool.jetstream.stream` = `{}` must be 1 to 32 characters of A-Z, a-z, 0-9, `_` \
             or `-`",
            raw.stream
        ));
    }
    if !(1..=5).contains(&raw.replicas) {
        problems.push(format!(
            "`spool.jetstream.replicas` must be 1 to 5 (3 survives one server lost), not {}",
            raw.replicas
        ));
    }
    let max_bytes = i64::try_from(raw.max_bytes).ok().filter(|&n| n > 0);
    if max_bytes.is_none() {
        problems.push("`spool.jetstream.max_bytes` must be a positive number of bytes".into());
    }
    if raw.max_age_days == 0 {
        problems.push("`spool.jetstream.max_age_days` must be at least 1".into());
    }
    if raw.ack_wait_secs < 3 {
        problems.push("`spool.jetstream.ack_wait_secs` must be at least 3".into());
    }
    if raw.publish_timeout_ms == 0 {
        problems.push("`spool.jetstream.publish_timeout_ms` must be at least 1".into());
    }
    let auth = resolve_auth(raw, problems);
    if let Some(ca_file) = &raw.ca_file
        && !ca_file.is_file()
    {
        problems.push(format!("`spool.jetstream.ca_file`: `{}` is not a file", ca_file.display()));
    }
    if problems.len() > before {
        return None;
    }
    Some(JetStreamConfig {
        servers: raw.servers.clone(),
        stream: raw.stream.clone(),
        replicas: usize::try_from(raw.replicas).unwrap_or(3),
        max_bytes: max_bytes.unwrap_or(i64::MAX),
        max_age: Duration::from_secs(raw.max_age_days * 24 * 3600),
        auth,
        ca_file: raw.ca_file.clone(),
        publish_timeout: Duration::from_millis(raw.publish_timeout_ms),
        ack_wait: Duration::from_secs(raw.ack_wait_secs),
    })
}

fn resolve_auth(raw: &RawJetStream, problems: &mut Vec<String>) -> NatsAuth {
    let given = [raw.credentials.is_some(), raw.token.is_some(), raw.user.is_some()];
    if given.iter().filter(|&&set| set).count() > 1 {
        problems.push(
            "`spool.jetstream`: use one of `credentials`, `token`, or `user` + `password`".into(),
        );
        return NatsAuth::None;
    }
    if let Some(spec) = &raw.credentials {
        let path = PathBuf::from(spec.strip_prefix("file:").unwrap_or(spec));
        if !path.is_file() {
            problems
                .push(format!("`spool.jetstream.credentials`: `{}` is not a file", path.display()));
        }
        return NatsAuth::CredentialsFile(path);
    }
    if let Some(spec) = &raw.token {
        return super::secret::resolve("`spool.jetstream.token`", spec, problems)
            .map_or(NatsAuth::None, NatsAuth::Token);
    }
    match (&raw.user, &raw.password) {
        (Some(user), Some(password)) => {
            super::secret::resolve("`spool.jetstream.password`", password, problems).map_or(
                NatsAuth::None,
                |password| NatsAuth::UserPassword { user: user.clone(), password },
            )
        }
        (None, None) => NatsAuth::None,
        _ => {
            problems.push("`spool.jetstream`: `user` and `password` go together".into());
            NatsAuth::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jetstream(servers: &[&str]) -> RawSpool {
        RawSpool {
            kind: "jetstream".into(),
            jetstream: Some(RawJetStream {
                servers: servers.iter().map(|s| (*s).to_owned()).collect(),
                stream: default_stream(),
                replicas: default_replicas(),
                max_bytes: default_max_bytes(),
                max_age_days: default_max_age_days(),
                credentials: None,
                token: None,
                user: None,
                password: None,
                ca_file: None,
                publish_timeout_ms: default_publish_timeout_ms(),
                ack_wait_secs: default_ack_wait_secs(),
            }),
        }
    }

    #[test]
    fn the_default_is_the_sqlite_log() {
        let mut problems = Vec::new();
        assert!(matches!(resolve(&RawSpool::default(), &mut problems), SpoolConfig::Sqlite));
        assert!(problems.is_empty());
    }

    #[test]
    fn a_jetstream_spool_resolves_with_its_defaults() {
        let mut problems = Vec::new();
        let config = resolve(&jetstream(&["nats://10.0.0.1:4222"]), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let js = config.jetstream().expect("jetstream");
        assert_eq!((js.stream.as_str(), js.replicas), ("HOOKHOUSE", 3));
        assert_eq!(js.max_age, Duration::from_secs(14 * 86_400));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut raw = jetstream(&["http://x"]);
        let js = raw.jetstream.as_mut().unwrap();
        js.stream = "has space".into();
        js.replicas = 0;
        js.user = Some("u".into());
        let mut problems = Vec::new();
        resolve(&raw, &mut problems);
        let text = problems.join("\n");
        for needle in ["nats://", "`has space`", "replicas", "`user` and `password`"] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn a_kind_without_its_section_and_an_unknown_kind_are_refused() {
        let mut problems = Vec::new();
        resolve(&RawSpool { kind: "jetstream".into(), jetstream: None }, &mut problems);
        resolve(&RawSpool { kind: "kafka".into(), jetstream: None }, &mut problems);
        assert!(problems[0].contains("`[spool.jetstream]` is missing"), "{problems:?}");
        assert!(problems[1].contains("use `sqlite` or `jetstream`"), "{problems:?}");
    }
}
