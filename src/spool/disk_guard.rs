//! The disk-space guard (`store.min_free_disk_mb`): below that much free space on the store's
//! filesystem, new requests are refused with 503 and `/readyz` says why, before SQLite meets a
//! full disk, and both recover by themselves once space returns.
//!
//! Free space is read (statvfs: what an unprivileged writer may use) at open and then every
//! [`INTERVAL`] on a thread of its own, so the request path only reads an atomic. Between two
//! reads at most one interval of requests lands: at the receiver's peak (about 30 MB/s of WAL)
//! that is far below the default margin of 1 GiB. Sinks' writes are not refused: they move
//! cursors and drop loaded bodies, which is how space comes back.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Shared, SpoolError};

const INTERVAL: Duration = Duration::from_secs(1);

/// Free bytes on the filesystem holding `dir`, as an unprivileged writer may use them.
pub(super) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Reads the free space once now, then starts the thread that keeps `shared` current; it ends
/// with the spool.
pub(super) fn start(data_dir: &Path, shared: &Arc<Shared>) -> Result<(), SpoolError> {
    if shared.min_free_disk == 0 {
        return Ok(());
    }
    update(data_dir, shared);
    let dir = data_dir.to_owned();
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("hookhouse-disk".to_owned())
        .spawn(move || watch(&dir, &weak))
        .map(|_| ())
        .map_err(|source| SpoolError::Thread { name: "hookhouse-disk", source })
}

fn watch(dir: &Path, shared: &Weak<Shared>) {
    loop {
        std::thread::sleep(INTERVAL);
        let Some(shared) = shared.upgrade() else { return };
        update(dir, &shared);
    }
}

fn update(dir: &Path, shared: &Shared) {
    let free = match free_bytes(dir) {
        Ok(free) => free,
        Err(err) => {
            // Unknown is not low: the writes themselves still fail safely on a full disk.
            tracing::warn!(path = %dir.display(), error = %err, "cannot read the free disk space");
            return;
        }
    };
    shared.free_disk.store(free, Ordering::Relaxed);
    let low = free < shared.min_free_disk;
    let was_low = shared.low_disk.swap(low, Ordering::Relaxed);
    let (free_mb, min_mb) = (free / (1024 * 1024), shared.min_free_disk / (1024 * 1024));
    match (was_low, low) {
        (false, true) => tracing::error!(
            path = %dir.display(),
            free_mb,
            min_free_disk_mb = min_mb,
            "free disk space is below store.min_free_disk_mb: new requests are answered 503 \
             (Iterable retries them) until space is freed; free space on this filesystem or \
             move the store"
        ),
        (true, false) => tracing::info!(
            path = %dir.display(),
            free_mb,
            "free disk space is back above store.min_free_disk_mb: accepting requests again"
        ),
        _ => {}
    }
}
