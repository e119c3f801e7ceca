//! The spool's promise through the real binary: a request answered 2xx is in `hookhouse.db`
//! however the process ends, killed (SIGKILL) or stopped (SIGTERM) in the middle of a burst;
//! after a kill, the embedded sink loads its events within seconds of the restart.
//!
//! A SIGKILL loses what the process holds, not what the kernel holds, so these tests catch a 2xx
//! sent before the commit; they cannot show that the commit reached the disk (`fsync`).

mod process;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use process::{PROCESS_DEADLINE, Server, serve};
use rusqlite::Connection;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Concurrent senders, each posting one request at a time.
const SENDERS: usize = 64;
/// Acknowledged requests after which the server is stopped, with the senders still sending.
const ACKS_BEFORE_STOP: usize = 400;
/// Bounds every sender so that a server that never dies cannot keep the test running.
const MAX_REQUESTS_PER_SENDER: usize = 5_000;
const BURST_DEADLINE: Duration = Duration::from_secs(20);
/// How soon after a restart the embedded sink must have loaded what the log holds.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_request_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(serve(&data_dir)).await;

    let burst = Burst::start(&server, "kill");
    // Deterministically in flight at the kill: a request whose body is half sent.
    let mut half_sent = send_half_a_request(&server, "kill-half-sent").await;
    burst.wait_for_acks(&server).await;
    let in_flight = burst.in_flight();
    server.kill();
    let result = burst.finish().await;
    println!("SIGKILL with {in_flight} requests in flight: {result:?}");

    let mut reply = Vec::new();
    let read = tokio::time::timeout(PROCESS_DEADLINE, half_sent.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the half-sent request's connection outlived the process");
    assert!(reply.is_empty(), "a half-sent request was answered: {reply:?}");
    assert!(result.acked.len() >= ACKS_BEFORE_STOP, "{result:?}");
    assert_eq!(result.senders_still_sending, 0, "the burst ended before the kill: {result:?}");
    assert_eq!(result.refusals, 0, "no request should be refused: {result:?}");

    // The log holds every acknowledged request; the embedded tables may lag it by what the
    // sink had not loaded yet.
    let db = data_dir.join("hookhouse.db");
    let behind = events_missing(&db, &result.acked);
    println!("after the kill, {behind} acknowledged requests had no event row yet");

    // Recovery: the store opens, the embedded sink catches up from its cursor within a few
    // seconds while the server runs, and the store takes writes and never reuses a seq.
    let server = Server::start(serve(&data_dir)).await;
    let restarted = Instant::now();
    while events_missing(&db, &result.acked) > 0 {
        assert!(
            restarted.elapsed() < CATCH_UP_DEADLINE,
            "{} acknowledged requests still have no event {CATCH_UP_DEADLINE:?} after the restart",
            events_missing(&db, &result.acked)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "every acknowledged request's event was there {:?} after the restart",
        restarted.elapsed()
    );
    let after = restart_and_post_one(server).await;

    let after_seq = after.seq;
    let mut acked = result.acked;
    acked.push(after);
    let stored = assert_every_ack_stored(&data_dir.join("hookhouse.db"), &acked);
    assert_eq!(stored.max_seq, after_seq, "the request after the restart is not the newest");
    assert!(
        !stored.message_ids.contains("kill-half-sent"),
        "a request whose body never arrived was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_burst_exits_0_with_every_acknowledged_request_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(serve(&data_dir)).await;

    let burst = Burst::start(&server, "term");
    burst.wait_for_acks(&server).await;
    let in_flight = burst.in_flight();
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    let result = burst.finish().await;
    println!("SIGTERM with {in_flight} requests in flight: {result:?}");

    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());
    assert!(result.acked.len() >= ACKS_BEFORE_STOP, "{result:?}");
    assert_eq!(result.senders_still_sending, 0, "the burst ended before SIGTERM: {result:?}");
    assert_eq!(result.refusals, 0, "no request should be refused: {result:?}");
    drop(server);

    let stored = assert_every_ack_stored(&data_dir.join("hookhouse.db"), &result.acked);
    // A stopping server finishes what it started: it answers every request it stored, so a
    // deploy causes no resends.
    assert_eq!(stored.requests, result.acked.len(), "stored but never answered");
}

/// A request answered 2xx, and the sequence number the answer gave.
#[derive(Debug)]
struct Ack {
    message_id: String,
    seq: i64,
}

/// What a burst's senders saw.
#[derive(Default)]
struct BurstResult {
    sent: usize,
    acked: Vec<Ack>,
    /// Answers other than 2xx.
    refusals: usize,
    /// Requests that failed to connect: sent after the server was gone.
    not_connected: usize,
    /// Requests that connected but got no complete answer: cut by the server's end.
    cut: usize,
    /// Senders that reached their bound or deadline without meeting an error.
    senders_still_sending: usize,
}

impl std::fmt::Debug for BurstResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BurstResult")
            .field("sent", &self.sent)
            .field("acked", &self.acked.len())
            .field("refusals", &self.refusals)
            .field("not_connected", &self.not_connected)
            .field("cut", &self.cut)
            .field("senders_still_sending", &self.senders_still_sending)
            .finish()
    }
}

impl BurstResult {
    fn merge(&mut self, other: BurstResult) {
        self.sent += other.sent;
        self.acked.extend(other.acked);
        self.refusals += other.refusals;
        self.not_connected += other.not_connected;
        self.cut += other.cut;
        self.senders_still_sending += other.senders_still_sending;
    }
}

/// [`SENDERS`] tasks each posting unique events in a loop until a request fails.
struct Burst {
    senders: Vec<JoinHandle<BurstResult>>,
    acks: Arc<AtomicUsize>,
    /// Woken by the [`ACKS_BEFORE_STOP`]th acknowledgement, so the test can stop the server
    /// within microseconds of an answer, while its batch may still be committing.
    reached: Arc<Notify>,
    in_flight: Arc<AtomicUsize>,
}

impl Burst {
    fn start(server: &Server, tag: &str) -> Burst {
        let client = reqwest::Client::builder().no_proxy().timeout(BURST_DEADLINE).build().unwrap();
        let url = server.url("/iterable/default");
        let acks = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(Notify::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + BURST_DEADLINE;
        let senders = (0..SENDERS)
            .map(|sender| {
                let (client, url) = (client.clone(), url.clone());
                let (acks, in_flight) = (Arc::clone(&acks), Arc::clone(&in_flight));
                let reached = Arc::clone(&reached);
                let tag = format!("{tag}-{sender}");
                tokio::spawn(async move {
                    let mut result = BurstResult::default();
                    for n in 0..MAX_REQUESTS_PER_SENDER {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let message_id = format!("{tag}-{n}");
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let answer = post_event(&client, &url, &message_id).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        result.sent += 1;
                        match answer {
                            Answer::Stored(seq) => {
                                result.acked.push(Ack { message_id, seq });
                                if acks.fetch_add(1, Ordering::SeqCst) + 1 == ACKS_BEFORE_STOP {
                                    reached.notify_one();
                                }
                            }
                            Answer::Refused => result.refusals += 1,
                            Answer::NotConnected => {
                                result.not_connected += 1;
                                return result;
                            }
                            Answer::Cut => {
                                result.cut += 1;
                                return result;
                            }
                        }
                    }
                    result.senders_still_sending = 1;
                    result
                })
            })
            .collect();
        Burst { senders, acks, reached, in_flight }
    }

    async fn wait_for_acks(&self, server: &Server) {
        if tokio::time::timeout(BURST_DEADLINE, self.reached.notified()).await.is_err() {
            panic!(
                "only {} of {ACKS_BEFORE_STOP} requests acknowledged within {BURST_DEADLINE:?}\n{}",
                self.acks.load(Ordering::SeqCst),
                server.output()
            );
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits for every sender to end; they end at their first failure.
    async fn finish(self) -> BurstResult {
        let join_all = async {
            let mut total = BurstResult::default();
            for sender in self.senders {
                total.merge(sender.await.expect("a sender panicked"));
            }
            total
        };
        tokio::time::timeout(BURST_DEADLINE, join_all)
            .await
            .expect("the senders outlived the burst's deadline")
    }
}

enum Answer {
    Stored(i64),
    Refused,
    NotConnected,
    Cut,
}

async fn post_event(client: &reqwest::Client, url: &str, message_id: &str) -> Answer {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(email_open(message_id))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(err) if err.is_connect() => return Answer::NotConnected,
        Err(_) => return Answer::Cut,
    };
    if !response.status().is_success() {
        return Answer::Refused;
    }
    // Only a complete answer is an acknowledgement.
    match response.json::<Value>().await {
        Ok(answer) if answer["status"] == "stored" => match answer["seq"].as_i64() {
            Some(seq) => Answer::Stored(seq),
            None => panic!("a stored answer without a `seq`: {answer}"),
        },
        Ok(answer) => panic!("a 2xx that is not `stored`: {answer}"),
        Err(_) => Answer::Cut,
    }
}

fn email_open(message_id: &str) -> String {
    json!({
        "email": "crash@example.com",
        "eventName": "emailOpen",
        "dataFields": {
            "campaignId": 5,
            "templateId": 7,
            "messageId": message_id,
            "createdAt": "2016-12-02 20:21:04 +00:00"
        }
    })
    .to_string()
}

/// Opens a connection and sends a request's headers and half its body, so the request is in
/// flight, and cannot be stored, whatever happens to the server next.
async fn send_half_a_request(server: &Server, message_id: &str) -> TcpStream {
    let body = email_open(message_id);
    let head = format!(
        "POST /iterable/default HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        server.addr(),
        body.len()
    );
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Checks that a restarted server is ready and stores a request, then stops it with SIGTERM.
async fn restart_and_post_one(mut server: Server) -> Ack {
    let client = reqwest::Client::builder().no_proxy().timeout(PROCESS_DEADLINE).build().unwrap();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "not ready after the restart\n{}", server.output());
    let message_id = "after-restart".to_owned();
    let Answer::Stored(seq) =
        post_event(&client, &server.url("/iterable/default"), &message_id).await
    else {
        panic!("the restarted server did not store a request\n{}", server.output());
    };
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());
    Ack { message_id, seq }
}

/// How many of `acked` have no `events` row yet (read while the server may be writing).
fn events_missing(db: &Path, acked: &[Ack]) -> usize {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = conn.prepare("SELECT message_id FROM events").unwrap();
    let loaded: HashSet<String> =
        statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    acked.iter().filter(|ack| !loaded.contains(&ack.message_id)).count()
}

/// What the store holds.
struct Stored {
    requests: usize,
    message_ids: HashSet<String>,
    max_seq: i64,
}

/// Asserts that every acknowledged request has its `raw_requests` row at the sequence number
/// its answer gave, and its `events` row pointing back at it; and that no request is half
/// stored.
fn assert_every_ack_stored(db: &Path, acked: &[Ack]) -> Stored {
    let conn = Connection::open(db).unwrap();
    let mut raw_by_seq = HashMap::new();
    let mut statement = conn.prepare("SELECT seq, body FROM raw_requests").unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))
        .unwrap();
    for row in rows {
        let (seq, body) = row.unwrap();
        let body: Value = serde_json::from_slice(&body).expect("a stored body is the JSON sent");
        let message_id = body["dataFields"]["messageId"].as_str().unwrap().to_owned();
        raw_by_seq.insert(seq, message_id);
    }
    let mut event_seq = HashMap::new();
    let mut statement = conn
        .prepare("SELECT message_id, json_extract(data, '$.messageId'), raw_seq FROM events")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
        })
        .unwrap();
    for row in rows {
        let (message_id, in_data, raw_seq) = row.unwrap();
        assert_eq!(message_id, in_data, "`events.message_id` differs from `data`");
        assert!(event_seq.insert(message_id, raw_seq).is_none(), "one message, two events");
    }
    let failed: i64 =
        conn.query_row("SELECT count(*) FROM failed_events", [], |r| r.get(0)).unwrap();

    let lost: Vec<&Ack> = acked
        .iter()
        .filter(|ack| {
            raw_by_seq.get(&ack.seq) != Some(&ack.message_id)
                || event_seq.get(&ack.message_id) != Some(&ack.seq)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests are not stored as answered, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // All or nothing: a stored request has its event, and an event its request.
    assert_eq!(raw_by_seq.len(), event_seq.len(), "requests and events differ in number");
    assert!(
        event_seq.values().all(|seq| raw_by_seq.contains_key(seq)),
        "an event without its request"
    );
    assert_eq!(failed, 0, "well-formed events were stored as failures");
    println!(
        "{} acknowledged, {} stored ({} stored without an answer)",
        acked.len(),
        raw_by_seq.len(),
        raw_by_seq.len() - acked.len().min(raw_by_seq.len())
    );
    Stored {
        requests: raw_by_seq.len(),
        max_seq: raw_by_seq.keys().copied().max().unwrap_or(0),
        message_ids: raw_by_seq.into_values().collect(),
    }
}
