//! Where the lake's files live: a local directory (written atomically by [`publish_local`])
//! or an S3 bucket and prefix, through `object_store` (a file is one PUT, so it appears
//! whole or not at all).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};
use secrecy::ExposeSecret as _;

use super::files::{parse_file_name, publish_local};
use crate::config::{LakeLocation, S3Config};
use crate::sinks::SinkError;

/// The lake's files by the requests they hold (first, last seq), as paths relative to the
/// lake's root: several per range, one per table and partition.
pub type Known = BTreeMap<(i64, i64), Vec<String>>;

#[derive(Debug, Clone)]
pub enum LakeStore {
    Local(PathBuf),
    S3 { store: Arc<AmazonS3>, prefix: String, url: String },
}

impl LakeStore {
    pub fn open(location: &LakeLocation) -> Result<LakeStore, SinkError> {
        match location {
            LakeLocation::Dir(root) => Ok(LakeStore::Local(root.clone())),
            LakeLocation::S3 { bucket, prefix, s3 } => {
                let store = s3_client(bucket, s3).map_err(|err| {
                    SinkError::Permanent(format!("S3 client for `s3://{bucket}`: {err}"))
                })?;
                let url = format!("s3://{bucket}/{prefix}");
                Ok(LakeStore::S3 { store: Arc::new(store), prefix: prefix.clone(), url })
            }
        }
    }

    /// The lake for messages.
    pub fn describe(&self) -> String {
        match self {
            LakeStore::Local(root) => root.display().to_string(),
            LakeStore::S3 { url, .. } => url.clone(),
        }
    }

    fn object(prefix: &str, relative: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", prefix.trim_end_matches('/')))
        }
    }

    /// The text of a small file, `None` if it does not exist.
    pub async fn read_text(&self, relative: &str) -> Result<Option<String>, SinkError> {
        match self {
            LakeStore::Local(root) => match std::fs::read_to_string(root.join(relative)) {
                Ok(text) => Ok(Some(text)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(retryable(self, "reading", relative, &err)),
            },
            LakeStore::S3 { store, prefix, .. } => {
                match store.get(&Self::object(prefix, relative)).await {
                    Ok(found) => {
                        let bytes = found
                            .bytes()
                            .await
                            .map_err(|err| retryable(self, "reading", relative, &err))?;
                        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(err) => Err(retryable(self, "reading", relative, &err)),
                }
            }
        }
    }

    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        match self {
            LakeStore::Local(root) => {
                let (root, relative_owned) = (root.clone(), relative.to_owned());
                tokio::task::spawn_blocking(move || publish_local(&root, &relative_owned, &bytes))
                    .await
                    .map_err(|_| SinkError::Retryable("writing the lake stopped".into()))?
                    .map_err(|err| SinkError::Retryable(err.to_string()))
            }
            LakeStore::S3 { store, prefix, .. } => store
                .put(&Self::object(prefix, relative), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|err| retryable(self, "writing", relative, &err)),
        }
    }

    pub async fn delete(&self, relative: &str) -> Result<(), SinkError> {
        match self {
            LakeStore::Local(root) => match std::fs::remove_file(root.join(relative)) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(retryable(self, "removing", relative, &err)),
            },
            LakeStore::S3 { store, prefix, .. } => {
                match store.delete(&Self::object(prefix, relative)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(err) => Err(retryable(self, "removing", relative, &err)),
                }
            }
        }
    }

    /// How many Parquet files the lake holds, and their bytes.
    pub async fn usage(&self) -> Result<(u64, u64), SinkError> {
        let parquet = |name: &str| name.ends_with(".parquet") && !name.starts_with('.');
        match self {
            LakeStore::Local(root) => {
                let mut total = (0, 0);
                let mut dirs = vec![root.clone()];
                while let Some(dir) = dirs.pop() {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(retryable(self, "listing", "", &err)),
                    };
                    for entry in entries.flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            dirs.push(path);
                        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(parquet) {
                            total.0 += 1;
                            total.1 += entry.metadata().map(|m| m.len()).unwrap_or(0);
                        }
                    }
                }
                Ok(total)
            }
            LakeStore::S3 { store, prefix, .. } => {
                let base = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let mut objects = store.list(base.as_ref());
                let mut total = (0, 0);
                while let Some(object) = objects.next().await {
                    let object = object.map_err(|err| retryable(self, "listing", "", &err))?;
                    if object.location.filename().is_some_and(parquet) {
                        total.0 += 1;
                        total.1 += object.size;
                    }
                }
                Ok(total)
            }
        }
    }

    /// Every `part-<first>-<last>.parquet` of the lake.
    pub async fn list(&self) -> Result<Known, SinkError> {
        let mut known = Known::new();
        match self {
            LakeStore::Local(root) => {
                std::fs::create_dir_all(root)
                    .map_err(|err| retryable(self, "creating", "", &err))?;
                list_dir(root, root, &mut known)
                    .map_err(|err| retryable(self, "listing", "", &err))?;
            }
            LakeStore::S3 { store, prefix, .. } => {
                let base = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let mut objects = store.list(base.as_ref());
                while let Some(object) = objects.next().await {
                    let object = object.map_err(|err| retryable(self, "listing", "", &err))?;
                    let full = object.location.to_string();
                    let relative = match prefix.trim_end_matches('/') {
                        "" => full.as_str(),
                        prefix => {
                            full.strip_prefix(prefix).unwrap_or(&full).trim_start_matches('/')
                        }
                    };
                    let name = relative.rsplit('/').next().unwrap_or(relative);
                    if let Some(range) = parse_file_name(name) {
                        known.entry(range).or_default().push(relative.to_owned());
                    }
                }
            }
        }
        Ok(known)
    }
}

fn retryable(
    store: &LakeStore,
    what: &str,
    relative: &str,
    err: &dyn std::fmt::Display,
) -> SinkError {
    SinkError::Retryable(format!("{what} `{relative}` in the lake `{}`: {err}", store.describe()))
}

fn list_dir(root: &Path, dir: &Path, known: &mut Known) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_dir(root, &path, known)?;
            continue;
        }
        let Some(range) = path.file_name().and_then(|n| n.to_str()).and_then(parse_file_name)
        else {
            continue;
        };
        if let Ok(relative) = path.strip_prefix(root) {
            known.entry(range).or_default().push(relative.display().to_string());
        }
    }
    Ok(())
}

/// The S3 client. Its own retries are few and short: the sink's runner retries a failed
/// attempt with its back-off, and reports each failure.
fn s3_client(bucket: &str, s3: &S3Config) -> object_store::Result<AmazonS3> {
    // reqwest here uses rustls with the process's default provider: ring, as everywhere else.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&s3.region)
        .with_access_key_id(s3.access_key_id.expose_secret())
        .with_secret_access_key(s3.secret_access_key.expose_secret())
        .with_retry(retry);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    builder.build()
}
