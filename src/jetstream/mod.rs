//! The request log on NATS JetStream, for running many hookhouses: receivers publish each
//! accepted request to a replicated stream and answer 2xx after its acknowledgement; loaders
//! share one durable pull consumer per sink; secret URLs live in a key-value bucket.
//!
//! The stream is limits-retention with `discard: new` (a full stream refuses a publish, which
//! the receiver answers with 503; `discard: old` would silently drop requests no sink has
//! loaded), file storage, and a two-minute duplicate window keyed by a `Nats-Msg-Id` derived
//! from the request's content. Facts measured about JetStream are in `docs/jetstream.md`.

pub mod loader;
pub mod log;
pub mod record;
pub mod replay;
pub mod secret_urls;
pub mod status;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use secrecy::ExposeSecret as _;

use crate::config::{Config, JetStreamConfig, NatsAuth};

/// What a request's envelope may add to its body in a message, at most: the head (path,
/// query and kept headers) is capped by `server.max_header_bytes`, and JSON escaping of it can
/// double that; the rest of the envelope is small.
const ENVELOPE_SLACK: usize = 4 * 1024;

/// How long the stream remembers a `Nats-Msg-Id` (JetStream's default).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("cannot connect to NATS at {servers}: {source}")]
    Connect {
        servers: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot read the NATS credentials file `{path}`: {source}")]
    Credentials {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the NATS servers accept messages of at most {max_payload} bytes, but a request of \
         `server.max_body_bytes` ({max_body}) with its envelope needs up to {needed}: set \
         `max_payload: {suggested}` in the servers' configuration (NATS advises at most 8 MB), \
         or lower `server.max_body_bytes` below {fits}"
    )]
    PayloadTooSmall {
        max_payload: usize,
        max_body: usize,
        needed: usize,
        suggested: usize,
        fits: usize,
    },
    #[error("JetStream: {0}")]
    Api(String),
    #[error(
        "stream `{stream}` exists with {what}: hookhouse needs {wanted}. Change it (`nats stream \
         edit {stream}`) or name another stream in `spool.jetstream.stream`"
    )]
    Mismatch { stream: String, what: String, wanted: String },
}

/// A connection to the NATS servers with the stream checked.
#[derive(Debug, Clone)]
pub struct Stream {
    pub client: async_nats::Client,
    pub context: jetstream::Context,
    pub config: JetStreamConfig,
    /// The stream's identity: its name and creation time, so a PostgreSQL schema loaded from
    /// it refuses a recreated stream whose sequences start again at 1.
    pub id: String,
    /// The largest message a request of this configuration makes, at most.
    pub largest_request: usize,
}

impl Stream {
    /// Connects, refuses servers whose `max_payload` is too small for this configuration's
    /// largest request, and creates the stream (or checks it and brings its limits in line).
    pub async fn open(config: &Config) -> Result<Stream, StreamSetupError> {
        let Some(js) = config.spool.jetstream() else {
            return Err(StreamSetupError::Api("`spool.kind` is not `jetstream`".into()));
        };
        let client = connect(js).await?;
        let largest_request = check_payload(&client, config)?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(js.publish_timeout);
        let info = ensure_stream(&context, js).await?;
        let id = format!("jetstream:{}:{}", js.stream, info.created.unix_timestamp_nanos());
        Ok(Stream { client, context, config: js.clone(), id, largest_request })
    }

    /// The subject a source's requests are published on.
    pub fn subject(&self, source: &str) -> String {
        format!("{}.requests.{source}", self.config.stream)
    }
}

async fn connect(js: &JetStreamConfig) -> Result<async_nats::Client, StreamSetupError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("hookhouse")
        .connection_timeout(Duration::from_secs(5))
        // Reconnects for ever, each publish failing (503) meanwhile.
        .retry_on_initial_connect();
    options = match &js.auth {
        NatsAuth::None => options,
        NatsAuth::CredentialsFile(path) => {
            options.credentials_file(path).await.map_err(|source| {
                StreamSetupError::Credentials { path: path.display().to_string(), source }
            })?
        }
        NatsAuth::Token(token) => options.token(token.expose_secret().to_owned()),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose_secret().to_owned())
        }
    };
    if let Some(ca_file) = &js.ca_file {
        options = options.add_root_certificates(ca_file.clone());
    }
    let servers = js.servers.join(", ");
    let addresses: Vec<async_nats::ServerAddr> =
        js.servers.iter().filter_map(|server| server.parse().ok()).collect();
    let client = options
        .connect(addresses)
        .await
        .map_err(|source| StreamSetupError::Connect { servers: servers.clone(), source })?;
    // `retry_on_initial_connect` returns before the first connection: wait for it a while, so
    // a wrong address is reported at start rather than as 503s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            return Err(StreamSetupError::Api(format!(
                "no NATS server answered at {servers} within 10 s: check `spool.jetstream.servers`"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(client)
}

/// The largest message a request can make, if the servers accept it.
fn check_payload(client: &async_nats::Client, config: &Config) -> Result<usize, StreamSetupError> {
    let max_payload = client.server_info().max_payload;
    let max_body = config.server.max_body_bytes;
    let head = 2 * config.server.max_header_bytes.get();
    let needed = max_body + head + ENVELOPE_SLACK;
    if needed <= max_payload {
        return Ok(needed);
    }
    Err(StreamSetupError::PayloadTooSmall {
        max_payload,
        max_body,
        needed,
        suggested: needed.next_power_of_two(),
        fits: max_payload.saturating_sub(head + ENVELOPE_SLACK),
    })
}

/// The stream as hookhouse needs it.
fn stream_config(js: &JetStreamConfig) -> stream::Config {
    stream::Config {
        name: js.stream.clone(),
        subjects: vec![format!("{}.requests.>", js.stream)],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        num_replicas: js.replicas,
        max_bytes: js.max_bytes,
        max_age: js.max_age,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some("hookhouse request log".into()),
        ..Default::default()
    }
}

async fn ensure_stream(
    context: &jetstream::Context,
    js: &JetStreamConfig,
) -> Result<stream::Info, StreamSetupError> {
    let wanted = stream_config(js);
    let api = |err: &dyn std::fmt::Display| StreamSetupError::Api(err.to_string());
    let existing = match context.get_stream(&js.stream).await {
        Ok(mut existing) => Some(existing.info().await.map_err(|e| api(&e))?.clone()),
        Err(err) => match err.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(inner)
                if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                None
            }
            _ => return Err(api(&err)),
        },
    };
    let Some(existing) = existing else {
        let created = context.create_stream(wanted).await.map_err(|err| {
            // JetStream reserves `max_bytes` on every replica when it creates the stream.
            if err.to_string().contains("10047") {
                return StreamSetupError::Api(format!(
                    "{err}: the servers cannot reserve `spool.jetstream.max_bytes` ({}) of \
                     storage: lower it, or raise `jetstream {{ max_file_store }}` on the servers",
                    js.max_bytes
                ));
            }
            api(&err)
        })?;
        tracing::info!(stream = %js.stream, replicas = js.replicas, "created the JetStream stream");
        return Ok(created.cached_info().clone());
    };
    let found = &existing.config;
    let mismatch = |what: String, wanted: &str| StreamSetupError::Mismatch {
        stream: js.stream.clone(),
        what,
        wanted: wanted.to_owned(),
    };
    if found.discard != stream::DiscardPolicy::New {
        return Err(mismatch(
            "`discard: old` (it drops the oldest requests, loaded or not)".into(),
            "`discard: new`",
        ));
    }
    if found.retention != stream::RetentionPolicy::Limits {
        return Err(mismatch(
            format!("retention {:?}", found.retention),
            "limits retention (work-queue or interest retention deletes what `replay` reads)",
        ));
    }
    if !found.subjects.iter().any(|subject| subject == &wanted.subjects[0]) {
        return Err(mismatch(format!("subjects {:?}", found.subjects), &wanted.subjects[0]));
    }
    let limits_differ = found.num_replicas != wanted.num_replicas
        || found.max_bytes != wanted.max_bytes
        || found.max_age != wanted.max_age;
    if !limits_differ {
        return Ok(existing);
    }
    // Replicas and limits follow the configuration, so changing them is a restart.
    let mut updated = found.clone();
    updated.num_replicas = wanted.num_replicas;
    updated.max_bytes = wanted.max_bytes;
    updated.max_age = wanted.max_age;
    let info = context.update_stream(updated).await.map_err(|e| api(&e))?;
    tracing::info!(stream = %js.stream, replicas = js.replicas, max_bytes = js.max_bytes,
        "brought the stream's replicas and limits in line with the configuration");
    Ok(info)
}
