//! Only the spool opens `hookhouse.db`: every other module reads the log through its
//! `SpoolReader` and writes through its writer, so the file has one owner to change (issue 10).
//! Checked on the source: no file outside `src/spool/` opens a SQLite connection.

use std::path::{Path, PathBuf};

/// What opening a SQLite database looks like in rusqlite.
const OPENERS: [&str; 3] = ["Connection::open", "open_with_flags", "open_in_memory_with_flags"];

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn only_the_spool_opens_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), src.display());
    let spool = src.join("spool");
    let mut found = Vec::new();
    let mut in_spool = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") || !OPENERS.iter().any(|o| line.contains(o)) {
                continue;
            }
            if file.starts_with(&spool) {
                in_spool += 1;
            } else {
                found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(in_spool > 0, "the check finds no opener even in src/spool/: it cannot fail");
    assert!(found.is_empty(), "opened outside src/spool/:\n{}", found.join("\n"));
}
