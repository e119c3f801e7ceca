//! The PostgreSQL sink across a real crash: a child `hookhouse serve` loading PostgreSQL is
//! SIGKILLed in the middle of a burst (wherever its sink is: reading, in a COPY, between
//! PostgreSQL's commit and the cursor update), then restarted; every acknowledged event ends up
//! in PostgreSQL exactly once.

mod pg;
mod process;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pg::{Warehouse, database_url};
use process::{Server, serve};
use tokio::sync::Mutex;

const SENDERS: usize = 32;
const ACKS_BEFORE_KILL: usize = 3_000;
const DEADLINE: Duration = Duration::from_secs(60);

fn body(id: &str) -> String {
    format!(
        r#"{{"email":"crash@example.com","eventName":"emailOpen","dataFields":{{"email":"crash@example.com","createdAt":"2026-11-22 10:00:00 +00:00","campaignId":1,"messageId":"{id}","city":"Oslo"}}}}"#
    )
}

fn start(data_dir: &Path, config: &Path) -> std::process::Command {
    let mut command = serve(data_dir);
    command.arg("--config").arg(config);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_reaches_postgres_once_across_a_sigkill() {
    let Some(url) = database_url() else { return };
    let warehouse = Warehouse::new(&url, "crash").await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("hookhouse.toml");
    std::fs::write(
        &config,
        format!("[sinks.postgres]\nurl = \"{url}\"\nschema = \"{}\"\n", warehouse.schema),
    )
    .unwrap();

    let mut server = Server::start(start(&data_dir, &config)).await;
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (url, acked, count) = (server.url("/iterable/default"), acked.clone(), count.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0.. {
                let id = format!("crash-{sender}-{n}");
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(&id))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        acked.lock().await.insert(id);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The server is gone: this request was never acknowledged.
                    _ => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + DEADLINE;
    while count.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the burst never reached {ACKS_BEFORE_KILL} acks");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() >= ACKS_BEFORE_KILL);

    // Restarted on the same store, the sink carries on from its cursor.
    let _server = Server::start(start(&data_dir, &config)).await;
    pg::wait_caught_up(&data_dir.join("hookhouse.db"), DEADLINE).await;
    let store = rusqlite::Connection::open(data_dir.join("hookhouse.db")).unwrap();

    let rows = warehouse
        .client
        .query(
            &format!(
                "SELECT message_id, count(*) FROM {}.events GROUP BY message_id",
                warehouse.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let mut loaded = HashSet::new();
    for row in &rows {
        let (id, copies): (String, i64) = (row.get(0), row.get(1));
        assert_eq!(copies, 1, "{id} loaded {copies} times");
        loaded.insert(id);
    }
    let missing: Vec<_> = acked.difference(&loaded).take(5).collect();
    assert!(missing.is_empty(), "acknowledged but not in PostgreSQL: {missing:?}");
    let in_spool: i64 =
        store.query_row("SELECT count(*) FROM events", [], |row| row.get(0)).unwrap();
    assert_eq!(i64::try_from(loaded.len()).unwrap(), in_spool, "PostgreSQL mirrors the spool");
    assert_eq!(
        warehouse.count("raw_requests").await,
        store
            .query_row("SELECT count(*) FROM raw_requests", [], |row| row.get::<_, i64>(0))
            .unwrap()
    );
    warehouse.drop_schema().await;
}
