//! `hookhouse check-config`: load the configuration as `serve` would, refuse an invalid one
//! listing every problem, or print the effective values with every secret masked.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::ServeArgs;
use crate::config::{AnswerKind, Config, NatsAuth, SourceAuth};

pub(super) fn check_config(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.load_config()?;
    // An `sql` answer's query is checked against the store's schema, as `serve` checks it.
    if let Err(problems) = crate::answers::Answers::for_config(&config) {
        anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
    }
    println!("{}", serde_json::to_string_pretty(&effective(&config))?);
    Ok(ExitCode::SUCCESS)
}

/// An `oauth2` source's clients, their secrets masked.
fn oauth_clients(auth: &SourceAuth) -> Vec<Value> {
    let SourceAuth::OAuth2(clients) = auth else {
        return Vec::new();
    };
    clients
        .iter()
        .map(|client| {
            json!({
                "id": client.id,
                "secret": "***",
                "token_ttl_secs": client.token_ttl.as_secs(),
            })
        })
        .collect()
}

/// The configuration as JSON; a secret shows only as `"***"`, so the output can be pasted in
/// a ticket.
fn effective(config: &Config) -> Value {
    let server = &config.server;
    let store = &config.store;
    let sources: Vec<Value> = config
        .sources
        .iter()
        .map(|source| {
            let (secrets, header) = match &source.auth {
                SourceAuth::None | SourceAuth::OAuth2(_) => (0, None),
                SourceAuth::Basic(s) | SourceAuth::Token(s) => (s.len(), None),
                SourceAuth::Header { name, secrets } => (secrets.len(), Some(name.as_str())),
            };
            json!({
                "name": source.name,
                "auth": source.auth.mode(),
                "secrets": vec!["***"; secrets],
                "header": header,
                "allow_ips": source.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "max_requests_per_second": source.max_requests_per_second,
                "pseudonymise": source.pseudonymise.as_ref().map(|_| json!({ "key": "***" })),
                "drop_raw_bodies": source.drop_raw_bodies,
                "clients": oauth_clients(&source.auth),
                "journeys": source.journeys.iter().map(|journey| {
                    let mut answer = match &journey.answer {
                        AnswerKind::Engagement { from_sources } => json!({
                            "answer": "engagement",
                            "from_sources": from_sources,
                        }),
                        AnswerKind::Sql { query, max_rows, timeout } => json!({
                            "answer": "sql",
                            "query": query,
                            "max_rows": max_rows,
                            "timeout_ms": timeout.as_millis(),
                        }),
                    };
                    answer["name"] = json!(journey.journey);
                    answer
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "server": {
            "listen": server.listen.to_string(),
            "max_body_bytes": server.max_body_bytes,
            "snowplow_source": server.snowplow_source,
            "shutdown_timeout_secs": server.shutdown_timeout.as_secs(),
            "header_read_timeout_secs": server.header_read_timeout.as_secs(),
            "body_read_timeout_secs": server.body_read_timeout.as_secs(),
            "idle_timeout_secs": server.idle_timeout.as_secs(),
            "max_connections": server.max_connections.get(),
            "max_http2_streams": server.max_http2_streams.get(),
            "max_header_bytes": server.max_header_bytes.get(),
            "max_inflight_body_bytes": server.max_inflight_body_bytes.get(),
            "max_auth_failures_per_minute": server.auth_block.map_or(0, |b| b.max_failures_per_minute),
            "auth_block_secs": server.auth_block.map(|b| b.block_for.as_secs()),
            "trusted_proxies": server.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "tls": server.tls.as_ref().map(|tls| json!({
                "cert": tls.cert.display().to_string(),
                "key": tls.key.display().to_string(),
            })),
        },
        "store": {
            "data_dir": store.data_dir.display().to_string(),
            "db_path": store.db_path().display().to_string(),
            "max_queue_depth": store.max_queue_depth.get(),
            "max_batch": store.max_batch.get(),
            "busy_timeout_ms": store.busy_timeout.as_millis(),
            "keep_headers": store.keep_headers,
            "min_free_disk_mb": store.min_free_disk / (1024 * 1024),
        },
        "retention": {
            "raw_bodies_days": days(store.retention.raw_bodies_days),
            "raw_requests_days": days(store.retention.raw_requests_days),
            "failed_events_days": days(store.retention.failed_events_days),
            "events_days": days(store.retention.events_days),
        },
        "sources": sources,
        "warnings": config.warnings,
        "sinks": {
            "postgres": config.sinks.postgres.as_ref().map(|pg| json!({
                "url": pg.url_masked(),
                "schema": pg.schema,
                "tls": pg.tls,
                "ca_file": pg.ca_file.as_ref().map(|path| path.display().to_string()),
                "batch_size": pg.batch_size.get(),
            })),
            "parquet": config.sinks.parquet.as_ref().map(|lake| json!({
                "url": lake.location.url(),
                "max_file_age_secs": lake.max_file_age.as_secs(),
                "target_file_mb": lake.target_bytes / (1024 * 1024),
            })),
            "sqlite": config.sinks.sqlite_copy.as_ref().map(|path| json!({
                "path": path.display().to_string(),
            })),
        },
        "spool": match config.spool.jetstream() {
            None => json!({ "kind": "sqlite" }),
            Some(js) => json!({
                "kind": "jetstream",
                "servers": js.servers,
                "stream": js.stream,
                "replicas": js.replicas,
                "max_bytes": js.max_bytes,
                "max_age_days": js.max_age.as_secs() / 86_400,
                "auth": match &js.auth {
                    NatsAuth::None => "none",
                    NatsAuth::CredentialsFile(_) => "credentials file",
                    NatsAuth::Token(_) => "token (hidden)",
                    NatsAuth::UserPassword { .. } => "user and password (hidden)",
                },
                "ca_file": js.ca_file.as_ref().map(|path| path.display().to_string()),
                "publish_timeout_ms": js.publish_timeout.as_millis(),
                "ack_wait_secs": js.ack_wait.as_secs(),
            }),
        },
    })
}

/// A retention age as the configuration writes it: days, or `"forever"`.
fn days(days: Option<u32>) -> serde_json::Value {
    days.map_or_else(|| json!("forever"), |days| json!(days))
}
