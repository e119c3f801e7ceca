//! The store's files on disk: the data directory is created `0700` and `hookhouse.db` `0600`
//! (SQLite gives its `-wal` and `-shm` files the database file's mode), since they hold every
//! request as it arrived, personal data included. An existing directory or database that
//! other users can read is reported, not changed: its owner may have chosen that on purpose.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use crate::config::open_to_others;

/// Creates what is missing of the data directory and the database file, with owner-only
/// modes, and logs a warning for each existing one that is open to other users.
pub(super) fn prepare(data_dir: &Path, db_path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(data_dir)?;
    // `create_new` never touches an existing file; a race with another process is fine.
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(db_path) {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    for path in [data_dir, db_path] {
        if let Some(mode) = open_to_others(path) {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                "the store is readable by other users; it holds every request as received: \
                 `chmod go-rwx` it"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_new_store_is_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let db = dir.join("hookhouse.db");
        prepare(&dir, &db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(open_to_others(&db), None);
    }
}
