//! Many hookhouses on one JetStream stream, against real nats-server processes (a 3-node
//! cluster on loopback, or one node) and the real PostgreSQL: receivers answer 2xx only after
//! the stream's acknowledgement, loaders share each sink's consumer, and nothing that got a
//! 2xx is lost or doubled when a stream leader or a loader is killed.
//!
//! Skipped, each with a line saying so, unless `TEST_NATS_SERVER` (a nats-server >= 2.10) and
//! `TEST_POSTGRES_URL` are set; `.ci/run` sets both.

mod nats;
mod pg;
mod process;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nats::{Cluster, NodeOptions};
use pg::Warehouse;
use process::{Server, hookhouse, run_to_exit};

/// Messages of up to 2 MiB: a 1 MiB body and its envelope fit (the default 1 MiB would not).
const TEST_MAX_PAYLOAD: u64 = 2 * 1024 * 1024;

fn options() -> NodeOptions {
    NodeOptions { max_payload: Some(TEST_MAX_PAYLOAD), ..NodeOptions::default() }
}

/// Writes a configuration for a JetStream log on `cluster`, with `extra` TOML appended.
fn write_config(dir: &Path, cluster: &Cluster, replicas: usize, extra: &str) -> PathBuf {
    let servers: Vec<String> = cluster.client_urls().iter().map(|url| format!("{url:?}")).collect();
    let text = format!(
        "[spool]\nkind = \"jetstream\"\n[spool.jetstream]\nservers = [{}]\nstream = \"HH\"\n\
         replicas = {replicas}\nmax_bytes = 268435456\nack_wait_secs = 3\n\
         publish_timeout_ms = 2000\n{extra}",
        servers.join(", ")
    );
    let path = dir.join("hookhouse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn postgres_section(url: &str, warehouse: &Warehouse, batch_size: usize) -> String {
    format!(
        "[sinks.postgres]\nurl = {url:?}\nschema = {:?}\nbatch_size = {batch_size}\n",
        warehouse.schema
    )
}

/// `hookhouse <role> --config FILE` on a random port, its data directory under `dir`.
fn command(dir: &Path, role: &str, config: &Path, name: &str, extra: &[&str]) -> Command {
    let data = dir.join(name);
    let mut command = hookhouse(dir);
    command
        .args([role, "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(&data)
        .args(extra);
    command
}

/// `hookhouse ARGS... PATH` run to its exit (the path ends the arguments: a file or a
/// directory).
fn cli(dir: &Path, args: &[&str], path: &Path) -> process::Finished {
    let mut command = hookhouse(dir);
    command.args(args).arg(path);
    run_to_exit(command)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// An `emailOpen` whose `messageId` is `id`.
fn event(id: &str) -> String {
    format!(
        r#"{{"email":"{id}@example.com","eventName":"emailOpen","dataFields":{{"messageId":"{id}","createdAt":"2026-12-01 10:00:00 +00:00","campaignId":1}}}}"#
    )
}

/// Posts `body` and returns the status and the answer's `seq`, if any.
async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Option<u64>) {
    let sent = client.post(url).header("content-type", "application/json").body(body).send().await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let json: serde_json::Value = response.json().await.unwrap_or_default();
            (status, json["seq"].as_u64())
        }
        // A receiver that cannot answer in time is a failure the sender retries, like a 503.
        Err(_) => (0, None),
    }
}

/// How many rows of `table` each `messageId` has in PostgreSQL.
async fn counts_by_id(warehouse: &Warehouse, table: &str) -> HashMap<String, i64> {
    let sql = match table {
        "events" => {
            format!("SELECT message_id, count(*) FROM {}.events GROUP BY 1", warehouse.schema)
        }
        _ => format!(
            "SELECT convert_from(body, 'UTF8')::json->'dataFields'->>'messageId', count(*) \
             FROM {}.raw_requests GROUP BY 1",
            warehouse.schema
        ),
    };
    let rows = warehouse.client.query(&sql, &[]).await.unwrap_or_default();
    rows.iter()
        .filter_map(|row| Some((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1))))
        .collect()
}

/// Waits until every id in `ids` has a row of `events`, or fails after `limit`.
async fn wait_loaded(
    warehouse: &Warehouse,
    ids: &[String],
    limit: Duration,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    loop {
        let counts = counts_by_id(warehouse, "events").await;
        let missing = ids.iter().filter(|id| !counts.contains_key(*id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged requests not in PostgreSQL after {limit:?}\n{}",
            ids.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_or_doubled_when_the_leader_and_a_loader_are_killed() {
    let Some(bin) = nats::server_binary() else { return };
    let Some(url) = pg::database_url() else { return };
    let warehouse = Warehouse::new(&url, "js_kill").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&bin, 3, &options());
    // Small batches, so a loader killed at a random moment is most likely in the middle of one.
    let config = write_config(dir.path(), &cluster, 3, &postgres_section(&url, &warehouse, 100));
    let receivers = [
        Server::start(command(dir.path(), "serve", &config, "r1", &["--no-load"])).await,
        Server::start(command(dir.path(), "serve", &config, "r2", &["--no-load"])).await,
    ];
    let mut doomed_loader = Server::start(command(dir.path(), "load", &config, "l1", &[])).await;
    let loader = Server::start(command(dir.path(), "load", &config, "l2", &[])).await;
    let leader = cluster.stream_leader("HH").expect("the stream has a leader");

    // A steady burst from 16 senders to both receivers, each request its own event.
    let urls: Vec<String> = receivers.iter().map(|r| r.url("/iterable/default")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..16 {
        let (client, urls, stop) = (client(), urls.clone(), Arc::clone(&stop));
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("s{sender}-{n}");
                let sent_at = Instant::now();
                let (status, _) = post(&client, &urls[n % 2], event(&id)).await;
                answers.push((id, status, sent_at));
                n += 1;
            }
            answers
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(leader);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    doomed_loader.kill();
    // Past the election (7 to 8 s measured) and well into the time after it.
    tokio::time::sleep(Duration::from_secs(14)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    let acknowledged: Vec<String> =
        answers.iter().filter(|(_, status, _)| *status == 200).map(|(id, ..)| id.clone()).collect();
    let refused: Vec<&(String, u16, Instant)> =
        answers.iter().filter(|(_, status, _)| *status != 200).collect();
    println!(
        "{} requests in {:?}: {} acknowledged, {} refused",
        answers.len(),
        started.elapsed(),
        acknowledged.len(),
        refused.len()
    );
    // Every refusal is a 503, answered within the publish timeout (a hung receiver would show
    // as no answer, 0), and only around the leader's loss.
    for (id, status, sent_at) in &refused {
        assert_eq!(*status, 503, "{id}");
        assert!(*sent_at + Duration::from_secs(3) >= killed_at, "{id} refused before the kill");
    }
    assert!(!refused.is_empty(), "the election should have refused some requests with 503");
    assert!(acknowledged.len() > 200, "too few requests acknowledged: {}", acknowledged.len());

    cluster.restart(leader);
    let logs = || format!("{}\n{}\n{}", loader.output(), doomed_loader.output(), cluster.logs());
    wait_loaded(&warehouse, &acknowledged, Duration::from_secs(90), logs).await;
    // Loads of redelivered batches must have settled: the surviving loader has caught up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for table in ["events", "raw_requests"] {
        let counts = counts_by_id(&warehouse, table).await;
        for id in &acknowledged {
            assert_eq!(counts.get(id), Some(&1), "{id} in {table}");
        }
    }
    warehouse.drop_schema().await;
}

#[tokio::test]
async fn a_full_stream_answers_503_and_a_resend_adds_nothing() {
    let Some(bin) = nats::server_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, 1, &options());
    let config = write_config(dir.path(), &cluster, 1, "");
    // A stream of 64 KiB: full after a few dozen requests.
    let text = std::fs::read_to_string(&config).unwrap().replace("268435456", "65536");
    std::fs::write(&config, text).unwrap();
    let receiver = Server::start(command(dir.path(), "serve", &config, "r", &["--no-load"])).await;
    let (client, url) = (client(), receiver.url("/iterable/default"));

    let first = post(&client, &url, event("first")).await;
    assert_eq!(first.0, 200);
    let resent = post(&client, &url, event("first")).await;
    assert_eq!(resent, first, "a resend inside the duplicate window is the same message");

    let mut statuses = Vec::new();
    for n in 0..400 {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(format!("{}{}", event(&format!("fill-{n}")), " ".repeat(1_000)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 503 {
            assert!(response.headers().contains_key("retry-after"), "503 without Retry-After");
        }
        statuses.push(status);
        if status != 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&503), "the stream never filled: {statuses:?}");
    assert!(statuses.iter().filter(|&&s| s == 200).count() > 10, "{statuses:?}");
    let readyz = client.get(receiver.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 503, "a full stream stores nothing: not ready");

    let status = cli(dir.path(), &["status", "--json", "--config"], &config);
    assert!(status.status.success(), "{}", status.stderr);
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let stored = statuses.iter().filter(|&&s| s == 200).count() as u64 + 1;
    assert_eq!(report["messages"], stored, "the resend added nothing: {report:#}");
}

#[tokio::test]
async fn a_loader_that_was_down_catches_up_and_status_shows_its_lag() {
    let Some(bin) = nats::server_binary() else { return };
    let Some(url) = pg::database_url() else { return };
    let warehouse = Warehouse::new(&url, "js_catch_up").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, 1, &options());
    let config = write_config(dir.path(), &cluster, 1, &postgres_section(&url, &warehouse, 500));
    let receiver = Server::start(command(dir.path(), "serve", &config, "r", &["--no-load"])).await;
    let client = client();
    let url = receiver.url("/iterable/default");
    let mut ids = Vec::new();
    // The loader has never run: the requests wait in the stream.
    for n in 0..60 {
        let id = format!("early-{n}");
        assert_eq!(post(&client, &url, event(&id)).await.0, 200);
        ids.push(id);
    }
    let mut loader = Server::start(command(dir.path(), "load", &config, "l", &[])).await;
    wait_loaded(&warehouse, &ids, Duration::from_secs(30), || loader.output()).await;
    loader.terminate().await;
    loader.wait_exit(Duration::from_secs(15)).await;

    // Down again: more arrive, `status` shows them waiting, and a new loader loads them.
    for n in 0..40 {
        let id = format!("late-{n}");
        assert_eq!(post(&client, &url, event(&id)).await.0, 200);
        ids.push(id);
    }
    let status = cli(dir.path(), &["status", "--json", "--config"], &config);
    assert!(status.status.success(), "{}", status.stderr);
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let consumer = &report["consumers"][0];
    assert_eq!(consumer["consumer"], "hookhouse-postgres", "{report:#}");
    assert_eq!(consumer["lag_requests"], 40, "{report:#}");
    assert!(consumer["lag_seconds"].as_f64().unwrap() > 0.0, "{report:#}");

    let loader = Server::start(command(dir.path(), "load", &config, "l", &[])).await;
    wait_loaded(&warehouse, &ids, Duration::from_secs(30), || loader.output()).await;

    // An operator deletes the consumer under the running loader: it makes it again (from the
    // start of the stream, which loads nothing twice) and goes on.
    let nats = async_nats::connect(cluster.url(0)).await.unwrap();
    let stream = async_nats::jetstream::new(nats).get_stream("HH").await.unwrap();
    stream.delete_consumer("hookhouse-postgres").await.unwrap();
    for n in 0..10 {
        let id = format!("after-delete-{n}");
        assert_eq!(post(&client, &url, event(&id)).await.0, 200);
        ids.push(id);
    }
    wait_loaded(&warehouse, &ids, Duration::from_secs(30), || loader.output()).await;
    let counts = counts_by_id(&warehouse, "events").await;
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)), "every event once: {counts:?}");
    let metrics = client.get(loader.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("postgres"), "the loader serves its sink's metrics:\n{metrics}");
    assert!(loader.stderr().contains("cannot read the stream"), "{}", loader.output());
    warehouse.drop_schema().await;
}

#[tokio::test]
async fn a_secret_revoked_through_one_receiver_is_refused_by_the_other() {
    let Some(bin) = nats::server_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, 1, &options());
    let config = write_config(dir.path(), &cluster, 1, "");
    let receivers = [
        Server::start(command(dir.path(), "serve", &config, "r1", &["--no-load"])).await,
        Server::start(command(dir.path(), "serve", &config, "r2", &["--no-load"])).await,
    ];
    let secret = |args: &[&str]| {
        let mut command = hookhouse(dir.path());
        command.arg("secret").args(args).arg("--config").arg(&config);
        let run = run_to_exit(command);
        assert!(run.status.success(), "secret {args:?}: {}", run.stderr);
        run.stdout
    };
    let path = secret(&["new", "--source", "default"]).trim().to_owned();
    assert!(path.starts_with("/hooks/"), "{path}");
    let client = client();
    // Every receiver applies a new secret within a second or so.
    for receiver in &receivers {
        let deadline = Instant::now() + Duration::from_secs(5);
        while post(&client, &receiver.url(&path), event("via-secret")).await.0 != 200 {
            assert!(Instant::now() < deadline, "the new secret was never accepted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let listed = secret(&["list"]);
    let id = listed.split('\t').next().unwrap().trim().to_owned();
    assert!(listed.contains("default"), "{listed}");
    secret(&["revoke", "--id", &id]);
    let revoked_at = Instant::now();
    for receiver in &receivers {
        while post(&client, &receiver.url(&path), event("after-revoke")).await.0 != 401 {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(3),
                "the revoked secret still works"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(secret(&["list"]).trim().is_empty(), "nothing live after the revoke");
}

#[test]
fn servers_whose_max_payload_cannot_hold_the_largest_request_are_refused_at_start() {
    let Some(bin) = nats::server_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The server's default: 1 MiB, exactly hookhouse's default body limit.
    let cluster = Cluster::start(&bin, 1, &NodeOptions::default());
    let config = write_config(dir.path(), &cluster, 1, "");
    let run = run_to_exit(command(dir.path(), "serve", &config, "r", &[]));
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    for needle in ["max_payload", "server.max_body_bytes"] {
        assert!(run.stderr.contains(needle), "no {needle} in:\n{}", run.stderr);
    }
    assert!(!run.stdout.contains("listening"), "{}", run.stdout);
}

#[tokio::test]
async fn a_local_copy_holds_the_streams_requests_and_rows_with_its_sequences() {
    let Some(bin) = nats::server_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, 1, &options());
    let copy = dir.path().join("copy");
    let config = write_config(
        dir.path(),
        &cluster,
        1,
        &format!("[sinks.sqlite]\npath = {:?}\n", copy.display().to_string()),
    );
    let receiver = Server::start(command(dir.path(), "serve", &config, "r", &["--no-load"])).await;
    let (client, url) = (client(), receiver.url("/iterable/default"));
    let mut seqs = Vec::new();
    for n in 0..20 {
        let (status, seq) = post(&client, &url, event(&format!("copy-{n}"))).await;
        assert_eq!(status, 200);
        seqs.push(seq.unwrap());
    }
    // Not an event: kept in failed_events with its reason.
    let (status, broken_seq) = post(&client, &url, "[1, 2".to_owned()).await;
    assert_eq!(status, 200, "a malformed body is stored, not refused");

    let loader = Server::start(command(dir.path(), "load", &config, "l", &[])).await;
    let db = copy.join("hookhouse.db");
    let count = |sql: &str| -> i64 {
        let Ok(conn) = rusqlite::Connection::open(&db) else { return -1 };
        conn.query_row(sql, [], |row| row.get(0)).unwrap_or(-1)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("SELECT count(*) FROM events") < 20
        || count("SELECT count(*) FROM failed_events") < 1
    {
        assert!(Instant::now() < deadline, "the copy never filled\n{}", loader.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: Vec<u64> = conn
        .prepare("SELECT seq FROM raw_requests ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get::<_, i64>(0).map(|seq| seq as u64))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = seqs.clone();
    expected.push(broken_seq.unwrap());
    assert_eq!(stored, expected, "the copy keeps the stream's sequences");
    assert_eq!(count("SELECT count(*) FROM email_open"), 20, "the views are there");
    let raw_seq: i64 =
        conn.query_row("SELECT raw_seq FROM failed_events", [], |row| row.get(0)).unwrap();
    assert_eq!(Some(raw_seq as u64), broken_seq);

    // `status` reads the copy like any store.
    let status = cli(dir.path(), &["status", "--json", "--data-dir"], &copy);
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!((report["requests"].as_i64(), report["events"].as_i64()), (Some(21), Some(20)));

    // A store that is a log of its own is never taken for a copy.
    let own_log = dir.path().join("own");
    let mut first = Server::start(process::serve(&own_log)).await;
    assert_eq!(post(&client, &first.url("/iterable/default"), event("own")).await.0, 200);
    first.terminate().await;
    first.wait_exit(Duration::from_secs(15)).await;
    let wrong = write_config(
        dir.path(),
        &cluster,
        1,
        &format!("[sinks.sqlite]\npath = {:?}\n", own_log.display().to_string()),
    );
    let refused = Server::start(command(dir.path(), "load", &wrong, "l2", &[])).await;
    refused.wait_for_output("holds requests of its own").await;
}

#[tokio::test]
async fn replay_loads_a_range_of_the_stream_again_into_every_sink() {
    let Some(bin) = nats::server_binary() else { return };
    let Some(url) = pg::database_url() else { return };
    let warehouse = Warehouse::new(&url, "js_replay").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, 1, &options());
    let copy = dir.path().join("copy");
    let sinks = format!(
        "{}[sinks.sqlite]\npath = {:?}\n",
        postgres_section(&url, &warehouse, 500),
        copy.display().to_string()
    );
    let config = write_config(dir.path(), &cluster, 1, &sinks);
    let server = Server::start(command(dir.path(), "serve", &config, "s", &[])).await;
    let client = client();
    let ids: Vec<String> = (0..30).map(|n| format!("replay-{n}")).collect();
    for id in &ids {
        assert_eq!(post(&client, &server.url("/iterable/default"), event(id)).await.0, 200);
    }
    wait_loaded(&warehouse, &ids, Duration::from_secs(30), || server.output()).await;
    let copy_db = copy.join("hookhouse.db");
    let copy_events = || {
        rusqlite::Connection::open(&copy_db)
            .unwrap()
            .query_row("SELECT count(*) FROM events", [], |row| row.get::<_, i64>(0))
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while copy_events() < 30 {
        assert!(Instant::now() < deadline, "the copy never filled\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rows lost or changed downstream, as after a bad manual edit.
    let schema = &warehouse.schema;
    warehouse
        .client
        .batch_execute(&format!(
            "DELETE FROM {schema}.events WHERE message_id IN ('replay-3', 'replay-4'); \
             UPDATE {schema}.events SET email = 'edited' WHERE message_id = 'replay-5'"
        ))
        .await
        .unwrap();
    rusqlite::Connection::open(&copy_db)
        .unwrap()
        .execute("DELETE FROM events WHERE message_id = 'replay-6'", [])
        .unwrap();

    let replay = cli(dir.path(), &["replay", "--seq", "1..", "--config"], &config);
    assert!(replay.status.success(), "{}", replay.stderr);
    assert!(replay.stdout.contains("replayed 30 requests"), "{}", replay.stdout);

    let counts = counts_by_id(&warehouse, "events").await;
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)), "every event once: {counts:?}");
    let email: String = warehouse
        .client
        .query_one(&format!("SELECT email FROM {schema}.events WHERE message_id = 'replay-5'"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(email, "replay-5@example.com", "the replayed row is what the pipeline makes");
    assert_eq!(copy_events(), 30, "the copy has its rows again");

    let failed = cli(dir.path(), &["replay", "--failed", "--config"], &config);
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stderr.contains("--seq A..B or --since"), "{}", failed.stderr);
    warehouse.drop_schema().await;
}
