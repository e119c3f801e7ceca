//! When the store cannot take a request, the answer is 503 with `Retry-After`, never 2xx, and
//! readiness says so. Another process holding the write lock is a real way for writes to fail.

mod common;

use std::time::{Duration, Instant};

use common::{email_open, spawn_app_with};
use rusqlite::Connection;

/// Holds SQLite's write lock on the store, as another process could.
fn lock_store(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[tokio::test]
async fn a_failed_write_is_503_with_retry_after_and_readiness_follows() {
    let app = spawn_app_with(|c| c.store.busy_timeout = Duration::from_millis(100)).await;
    assert_eq!(app.post_webhook(&email_open("before")).await.status(), 200);

    let lock = lock_store(&app.db_path());
    let refused = app.post_webhook(&email_open("while-locked")).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert!(!refused.text().await.unwrap().contains("locked"), "no internals in the body");
    assert_eq!(app.get("/readyz").await.status(), 503);

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The writer probes the store on its own, so readiness recovers without traffic.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.post_webhook(&email_open("after")).await.status(), 200);

    let stored: Vec<String> = {
        let db = app.db();
        let mut stmt = db.prepare("SELECT message_id FROM events ORDER BY raw_seq").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(stored, ["before", "after"], "the refused request was not stored");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_is_503_at_once_and_every_2xx_is_stored() {
    let app = spawn_app_with(|c| {
        c.store.busy_timeout = Duration::from_millis(1500);
        c.store.max_queue_depth = std::num::NonZeroUsize::MIN;
    })
    .await;
    let lock = lock_store(&app.db_path());
    let posts: Vec<_> = (0..6)
        .map(|i| {
            let (client, url) = (app.client.clone(), app.url("/iterable/default"));
            tokio::spawn(async move {
                let started = Instant::now();
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(email_open(&format!("queued-{i}")))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status().as_u16(), retry_after, started.elapsed())
            })
        })
        .collect();
    // Let the requests reach the full queue, then release the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    let mut answers = Vec::new();
    for post in posts {
        answers.push(post.await.unwrap());
    }
    let shed: Vec<_> =
        answers.iter().filter(|(_, retry, _)| retry.as_ref().is_some_and(|v| v == "1")).collect();
    assert!(!shed.is_empty(), "some requests were shed: {answers:?}");
    assert!(
        shed.iter().all(|(status, _, took)| *status == 503 && *took < Duration::from_millis(300))
    );
    let acked = answers.iter().filter(|(status, _, _)| *status == 200).count() as i64;
    assert!(acked >= 1, "{answers:?}");
    assert!(answers.iter().all(|(status, _, _)| *status == 200 || *status == 503));
    assert_eq!(app.count("SELECT count(*) FROM events"), acked);
    app.stop().await.unwrap();
}
