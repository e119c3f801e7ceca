//! `hookhouse backup FILE` while `serve` takes a burst: the copy opens, passes SQLite's check,
//! and holds every request acknowledged before the backup started, each with its body.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{email_open, spawn_app, stored_seq};
use rusqlite::Connection;
use tokio::sync::Mutex;

/// Acknowledged requests: (seq, messageId).
type Acked = Arc<Mutex<Vec<(i64, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_a_burst_holds_every_request_acknowledged_before_it() {
    let app = Arc::new(spawn_app().await);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Four senders, each posting as fast as the store acknowledges.
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (app, acked, stop) = (app.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("burst-{sender}-{n}");
                    let seq = stored_seq(app.post_webhook(&email_open(&id)).await).await;
                    acked.lock().await.push((seq, id));
                    n += 1;
                }
            })
        })
        .collect();
    while acked.lock().await.len() < 1500 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let before: Vec<(i64, String)> = acked.lock().await.clone();
    let target = app.data_dir.path().join("backup.db");
    let data_dir = app.data_dir.path().to_owned();
    let output = {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_hookhouse"))
                .arg("backup")
                .arg(&target)
                .arg("--data-dir")
                .arg(&data_dir)
                .output()
                .expect("hookhouse runs")
        })
        .await
        .unwrap()
    };
    let during = acked.lock().await.len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "backup failed: {stdout}\n{stderr}");
    assert!(stderr.contains("% ("), "progress is shown: {stderr}");
    assert!(stdout.contains("backed up") && stdout.contains("to restore"), "{stdout}");
    assert!(during > 0, "the burst went on while the backup ran");

    let copy = Connection::open(&target).unwrap();
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let mut find = copy
        .prepare("SELECT json_extract(CAST(body AS TEXT), '$.dataFields.messageId') FROM raw_requests WHERE seq = ?1")
        .unwrap();
    for (seq, id) in &before {
        let found: String = find.query_row([seq], |r| r.get(0)).unwrap_or_else(|err| {
            panic!("request {seq} was acknowledged before the backup and is not in it: {err}")
        });
        assert_eq!(&found, id, "request {seq}");
    }
    // A consistent snapshot: its requests are exactly seq 1..=last, no gap.
    let (count, last): (i64, i64) = copy
        .query_row("SELECT count(*), max(seq) FROM raw_requests", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(count, last);
    assert!(stdout.contains(&format!("backed up {count} requests (up to seq {last})")), "{stdout}");

    // A second backup to the same file is refused, and the first is left as it was.
    let again = Command::new(env!("CARGO_BIN_EXE_hookhouse"))
        .arg("backup")
        .arg(&target)
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}
