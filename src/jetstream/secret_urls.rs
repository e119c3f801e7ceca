//! Secret URLs shared by every receiver: a JetStream key-value bucket from secret hash to
//! its source, so no receiver keeps state of its own. Only the hash is stored, as in the
//! SQLite store; an entry's id is the bucket revision that created it.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::Stream;
use crate::request::{format_time, sha256_hex};
use crate::spool::secret_urls::{LIVE_PER_SOURCE, SecretUrlError, SecretUrlInfo, generate};

/// How often a receiver re-reads the bucket: `secret revoke` takes effect within this.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The bucket's errors are the store's (`SecretUrlError`), so `hookhouse secret` says the
/// same either way.
fn bucket_error(err: impl std::fmt::Display) -> SecretUrlError {
    SecretUrlError::Bucket(err.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
struct Value {
    source: String,
    created_at: String,
}

/// The bucket of `stream`, created (with the stream's replicas) if missing.
pub async fn bucket(stream: &Stream) -> Result<kv::Store, SecretUrlError> {
    let name = format!("{}_secret_urls", stream.config.stream);
    if let Ok(store) = stream.context.get_key_value(&name).await {
        return Ok(store);
    }
    stream
        .context
        .create_key_value(kv::Config {
            bucket: name,
            description: "hookhouse secret URLs: SHA-256 of each secret -> its source".into(),
            history: 1,
            num_replicas: stream.config.replicas,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(bucket_error)
}

/// Every live secret: (hash, id, value).
async fn entries(store: &kv::Store) -> Result<Vec<(String, i64, Value)>, SecretUrlError> {
    let mut keys = store.keys().await.map_err(bucket_error)?;
    let mut found = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(bucket_error)?;
        let Some(entry) = store.entry(&key).await.map_err(bucket_error)? else { continue };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        match serde_json::from_slice::<Value>(&entry.value) {
            Ok(value) => found.push((key, i64::try_from(entry.revision).unwrap_or(0), value)),
            Err(err) => tracing::warn!(key, error = %err, "an unreadable secret URL entry"),
        }
    }
    found.sort_by_key(|(_, id, _)| *id);
    Ok(found)
}

/// Makes a new secret for `source` and returns it; only its hash is stored.
pub async fn create(store: &kv::Store, source: &str) -> Result<String, SecretUrlError> {
    let live = entries(store).await?.iter().filter(|(_, _, value)| value.source == source).count();
    if live >= LIVE_PER_SOURCE as usize {
        return Err(SecretUrlError::TooMany(source.to_owned()));
    }
    let secret = generate();
    let value = Value { source: source.to_owned(), created_at: format_time(&chrono::Utc::now()) };
    let bytes = serde_json::to_vec(&value).map_err(bucket_error)?;
    store.create(sha256_hex(secret.as_bytes()), bytes.into()).await.map_err(bucket_error)?;
    Ok(secret)
}

pub async fn list(store: &kv::Store) -> Result<Vec<SecretUrlInfo>, SecretUrlError> {
    Ok(entries(store)
        .await?
        .into_iter()
        .map(|(hash, id, value)| SecretUrlInfo {
            id,
            source: value.source,
            created_at: value.created_at,
            fingerprint: hash.chars().take(8).collect(),
        })
        .collect())
}

pub async fn revoke(store: &kv::Store, id: i64) -> Result<SecretUrlInfo, SecretUrlError> {
    let info = list(store).await?.into_iter().find(|info| info.id == id);
    let info = info.ok_or(SecretUrlError::NoSuchId(id))?;
    let entries = entries(store).await?;
    let hash = entries.iter().find(|(_, entry_id, _)| *entry_id == id).map(|(hash, _, _)| hash);
    let hash = hash.ok_or(SecretUrlError::NoSuchId(id))?;
    store.purge(hash).await.map_err(bucket_error)?;
    Ok(info)
}

/// Every live secret's hash and its (source, id), for the receiver's lookup table.
pub async fn hashes(store: &kv::Store) -> Result<HashMap<String, (String, i64)>, SecretUrlError> {
    Ok(entries(store)
        .await?
        .into_iter()
        .map(|(hash, id, value)| (hash, (value.source, id)))
        .collect())
}
