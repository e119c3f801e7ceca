//! The receiver's view of the secret URLs: a table from secret hash to source, re-read from
//! the store every second on its own thread, so `hookhouse secret new` and `revoke` take
//! effect in a running `serve` without a restart and no request waits on SQLite.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::request::sha256_hex;
use crate::spool::SpoolReader;

const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct SecretUrls {
    /// Secret hash -> (source, id).
    table: RwLock<HashMap<String, (String, i64)>>,
}

impl SecretUrls {
    /// Loads the table now and keeps it fresh until the last handle is dropped. The spool has
    /// migrated the store before the receiver starts, so the table is there.
    pub(super) fn start(db_path: PathBuf) -> Arc<Self> {
        let urls = Arc::new(SecretUrls::default());
        let conn = match SpoolReader::open(&db_path) {
            Ok(conn) => conn,
            Err(err) => {
                tracing::error!(error = %err, "secret URLs are unavailable until restart");
                return urls;
            }
        };
        urls.refresh(&conn);
        let weak: Weak<SecretUrls> = Arc::downgrade(&urls);
        let spawned = std::thread::Builder::new().name("secret-urls".to_owned()).spawn(move || {
            while let Some(urls) = weak.upgrade() {
                urls.refresh(&conn);
                drop(urls);
                std::thread::sleep(REFRESH);
            }
        });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "secret URLs will not refresh until restart");
        }
        urls
    }

    /// The same table from a JetStream key-value bucket, re-read on a task until the last
    /// handle is dropped; a bucket that cannot be read leaves the last table in place.
    pub(super) fn start_from_bucket(stream: crate::jetstream::Stream) -> Arc<Self> {
        use crate::jetstream::secret_urls as bucket;
        let urls = Arc::new(SecretUrls::default());
        let weak: Weak<SecretUrls> = Arc::downgrade(&urls);
        tokio::spawn(async move {
            let mut store = None;
            loop {
                if store.is_none() {
                    store = bucket::bucket(&stream)
                        .await
                        .map_err(|err| {
                            tracing::warn!(error = %err, "secret URLs unavailable; retrying");
                        })
                        .ok();
                }
                if let Some(found) = &store {
                    match bucket::hashes(found).await {
                        Ok(table) => {
                            let Some(urls) = weak.upgrade() else { return };
                            urls.replace(table);
                        }
                        Err(err) => tracing::warn!(error = %err, "failed to re-read secret URLs"),
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(bucket::REFRESH).await;
            }
        });
        urls
    }

    fn replace(&self, table: HashMap<String, (String, i64)>) {
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    fn refresh(&self, reader: &SpoolReader) {
        match reader.secret_url_hashes() {
            Ok(table) => self.replace(table),
            Err(err) => tracing::warn!(error = %err, "failed to re-read secret URLs"),
        }
    }

    /// The source and id a secret belongs to. The secret is hashed first, so the map lookup
    /// reveals nothing about how close a guess was.
    pub(super) fn lookup(&self, secret: &str) -> Option<(String, i64)> {
        let hash = sha256_hex(secret.as_bytes());
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&hash).cloned()
    }
}
