//! Files the configuration points at that hold secrets (`file:` secrets, the TLS key): one
//! that other users can read is a warning at start, and a refusal with `--strict`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::RawConfig;

/// The file's mode when a user other than its owner may read it (or, for a directory, enter
/// and list it).
pub fn open_to_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

/// A warning for every secret-holding file in `raw` that others can read.
pub(super) fn exposed_secret_files(raw: &RawConfig) -> Vec<String> {
    let mut files: Vec<(String, &Path)> = Vec::new();
    for source in &raw.sources {
        let owner = format!("source `{}`", source.name);
        let specs = source.secrets.iter().chain(source.pseudonymise.iter().map(|p| &p.key));
        for spec in specs {
            if let Some(path) = spec.strip_prefix("file:") {
                files.push((format!("{owner}: secret file"), Path::new(path)));
            }
        }
    }
    if let Some(path) = raw.sinks.postgres.as_ref().and_then(|pg| pg.url.strip_prefix("file:")) {
        files.push(("`sinks.postgres.url`: file".to_owned(), Path::new(path)));
    }
    if let Some(tls) = &raw.server.tls {
        files.push(("`server.tls.key`".to_owned(), &tls.key));
    }
    files
        .into_iter()
        .filter_map(|(what, path)| {
            let mode = open_to_others(path)?;
            Some(format!(
                "{what} `{}` is readable by other users (mode {mode:04o}): `chmod 600` it",
                path.display()
            ))
        })
        .collect()
}
