//! The receiver's view of the secret URLs: a table from secret hash to source, re-read from
//! the store every second on its own thread, so `hookhouse secret new` and `revoke` take
//! effect in a running `serve` without a restart and no request waits on SQLite.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::spool::secret_urls::{load_hashes, table_exists};
use crate::spool::sha256_hex;

const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct SecretUrls {
    /// Secret hash -> (source, id).
    table: RwLock<HashMap<String, (String, i64)>>,
}

impl SecretUrls {
    /// Loads the table now and keeps it fresh until the last handle is dropped.
    pub(super) fn start(db_path: PathBuf) -> Arc<Self> {
        let urls = Arc::new(SecretUrls::default());
        urls.refresh(&db_path);
        let weak: Weak<SecretUrls> = Arc::downgrade(&urls);
        let spawned = std::thread::Builder::new().name("secret-urls".to_owned()).spawn(move || {
            while let Some(urls) = weak.upgrade() {
                urls.refresh(&db_path);
                drop(urls);
                std::thread::sleep(REFRESH);
            }
        });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "secret URLs will not refresh until restart");
        }
        urls
    }

    fn refresh(&self, db_path: &PathBuf) {
        let read = || -> rusqlite::Result<HashMap<String, (String, i64)>> {
            let conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            if !table_exists(&conn)? {
                return Ok(HashMap::new());
            }
            load_hashes(&conn)
        };
        match read() {
            Ok(table) => {
                *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = table;
            }
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
