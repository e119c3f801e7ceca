//! Stitch-style secret URLs (`/hooks/{secret}`): the secret in the path is the credential.
//! Only its SHA-256 is stored, so the database never holds a usable URL; the secret is shown
//! once, when made. Two may be live per source, so one can be rotated without losing traffic.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rand::Rng as _;
use rusqlite::{Connection, OptionalExtension, params};

use crate::request::{format_time, sha256_hex};

/// How many secret URLs a source may have live at once.
pub const LIVE_PER_SOURCE: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SecretUrlError {
    #[error("no store at `{0}`: run `hookhouse serve` once first, or pass --data-dir")]
    Missing(String),
    #[error(
        "source `{0}` already has {LIVE_PER_SOURCE} live secret URLs: revoke one first \
         (`hookhouse secret list`, then `hookhouse secret revoke --id N`)"
    )]
    TooMany(String),
    #[error("no secret URL with id {0}")]
    NoSuchId(i64),
    #[error("the secret URL bucket: {0}")]
    Bucket(String),
    #[error("failed to read or write the store")]
    Sqlite(#[from] rusqlite::Error),
}

/// A live secret URL as listed: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUrlInfo {
    pub id: i64,
    pub source: String,
    pub created_at: String,
    /// The first characters of the hash, to tell them apart.
    pub fingerprint: String,
}

fn open(db_path: &Path) -> Result<Connection, SecretUrlError> {
    if !db_path.is_file() {
        return Err(SecretUrlError::Missing(db_path.display().to_string()));
    }
    let conn = Connection::open(db_path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Makes a new secret for `source` and returns it; only its hash is stored.
pub fn create(db_path: &Path, source: &str) -> Result<String, SecretUrlError> {
    let mut conn = open(db_path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let live: i64 =
        tx.query_row("SELECT count(*) FROM secret_urls WHERE source = ?1", [source], |r| r.get(0))?;
    if live >= LIVE_PER_SOURCE {
        return Err(SecretUrlError::TooMany(source.to_owned()));
    }
    let secret = generate();
    tx.execute(
        "INSERT INTO secret_urls (source, secret_sha256, created_at) VALUES (?1, ?2, ?3)",
        params![source, sha256_hex(secret.as_bytes()), format_time(&chrono::Utc::now())],
    )?;
    tx.commit()?;
    Ok(secret)
}

/// A new secret: 256 bits from the operating system's generator, URL-safe hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn list(db_path: &Path) -> Result<Vec<SecretUrlInfo>, SecretUrlError> {
    let conn = open(db_path)?;
    let mut statement =
        conn.prepare("SELECT id, source, created_at, secret_sha256 FROM secret_urls ORDER BY id")?;
    let rows = statement.query_map([], info_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke(db_path: &Path, id: i64) -> Result<SecretUrlInfo, SecretUrlError> {
    let conn = open(db_path)?;
    conn.query_row(
        "DELETE FROM secret_urls WHERE id = ?1 RETURNING id, source, created_at, secret_sha256",
        [id],
        info_from_row,
    )
    .optional()?
    .ok_or(SecretUrlError::NoSuchId(id))
}

fn info_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SecretUrlInfo> {
    Ok(SecretUrlInfo {
        id: row.get(0)?,
        source: row.get(1)?,
        created_at: row.get(2)?,
        fingerprint: row.get::<_, String>(3)?.chars().take(8).collect(),
    })
}

/// Every live secret's hash and its (source, id), for the receiver's lookup table.
pub(super) fn load_hashes(conn: &Connection) -> rusqlite::Result<HashMap<String, (String, i64)>> {
    let mut statement = conn.prepare("SELECT secret_sha256, source, id FROM secret_urls")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect()
}
