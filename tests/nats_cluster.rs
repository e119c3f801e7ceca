//! The NATS harness itself (`tests/nats`): real servers start, elect leaders, survive the loss
//! of a node, and take the options the harness promises. Skipped, with a line saying so,
//! unless `TEST_NATS_SERVER` names a nats-server >= 2.10 (`.ci/run` sets it).

mod nats;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nats::{Cluster, NodeOptions};
use serde_json::{Value, json};

#[test]
fn three_nodes_keep_a_meta_leader_through_the_loss_of_one() {
    let Some(bin) = nats::server_binary() else { return };
    let mut cluster = Cluster::start(&bin, 3, &NodeOptions::default());
    assert_eq!(cluster.client_urls().len(), 3);
    let leader = cluster.meta_leader().expect("a started cluster has a meta leader");

    // Killing the leader itself makes the other two elect one, not merely keep it.
    cluster.kill(leader);
    assert!(!cluster.is_running(leader));
    cluster.wait_ready();
    let successor = cluster.meta_leader().expect("two of three nodes elect a meta leader");
    assert_ne!(successor, leader, "a killed node cannot lead");

    cluster.restart(leader);
    cluster.wait_ready();
    assert!(cluster.is_running(leader));
    // `meta_leader` asks every running node, so the restarted one agrees on the leader.
    assert!(
        cluster.meta_leader().is_some(),
        "no meta leader after the restart\n{}",
        cluster.logs()
    );
}

#[test]
fn a_stream_leader_moves_when_its_node_is_killed() {
    let Some(bin) = nats::server_binary() else { return };
    let mut cluster = Cluster::start(&bin, 3, &NodeOptions::default());
    let created = create_stream(&cluster.url(0), "SELFTEST", 3);
    assert_eq!(created["config"]["num_replicas"], 3, "{created}");
    let leader = wait_for(|| cluster.stream_leader("SELFTEST"), "a stream leader");
    assert_eq!(cluster.stream_leader("NO_SUCH_STREAM"), None);

    cluster.kill(leader);
    let started = Instant::now();
    let successor = wait_for(|| cluster.stream_leader("SELFTEST"), "a new stream leader");
    eprintln!("stream leader n{leader} -> n{successor} in {:.1?}", started.elapsed());
    assert_ne!(successor, leader);

    cluster.restart(leader);
    cluster.wait_ready();
    // `wait_ready` waited until every node names a running leader for the stream: the same
    // one, the restarted node included.
    let now_leading = cluster.stream_leader("SELFTEST").expect("a stream leader");
    for node in 0..cluster.len() {
        let jsz = cluster.monitor(node, "/jsz?streams=true").expect("/jsz answers");
        let detail = nats::stream_details(&jsz)
            .find(|detail| detail["name"] == "SELFTEST")
            .unwrap_or_else(|| panic!("n{node} does not list the stream: {jsz}"));
        assert_eq!(detail["cluster"]["leader"], cluster.name(now_leading), "n{node}: {detail}");
    }
}

#[test]
fn one_node_starts_with_the_options_asked_for() {
    let Some(bin) = nats::server_binary() else { return };
    let options = NodeOptions { max_payload: Some(8 * 1024 * 1024), sync_always: true };
    let cluster = Cluster::start(&bin, 1, &options);
    assert_eq!(cluster.client_urls(), [cluster.url(0)]);
    assert!(cluster.url(0).starts_with("nats://127.0.0.1:"), "{}", cluster.url(0));
    assert_eq!(cluster.meta_leader(), Some(0));

    let varz = cluster.monitor(0, "/varz").expect("/varz answers");
    assert_eq!(varz["server_name"], "n0");
    assert_eq!(varz["max_payload"], 8 * 1024 * 1024);
    let jsz = cluster.monitor(0, "/jsz").expect("/jsz answers");
    assert_eq!(jsz["config"]["sync_always"], true, "{jsz}");

    create_stream(&cluster.url(0), "SELFTEST", 1);
    assert_eq!(cluster.stream_leader("SELFTEST"), Some(0));
}

#[test]
fn default_options_leave_the_server_defaults() {
    let Some(bin) = nats::server_binary() else { return };
    let cluster = Cluster::start(&bin, 1, &NodeOptions::default());
    let varz = cluster.monitor(0, "/varz").expect("/varz answers");
    assert_eq!(varz["max_payload"], 1024 * 1024, "the server's default is 1 MiB");
    let jsz = cluster.monitor(0, "/jsz").expect("/jsz answers");
    assert_ne!(jsz["config"]["sync_always"], true, "{jsz}");
}

/// Polls `probe` until it answers, for as long as a cluster may take to be ready.
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = Instant::now() + nats::READY_DEADLINE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what} within {:?}", nats::READY_DEADLINE);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates a stream through the JetStream API and returns the server's answer.
fn create_stream(url: &str, name: &str, replicas: u32) -> Value {
    let request =
        json!({ "name": name, "subjects": [format!("{name}.>")], "num_replicas": replicas });
    let answer = request_reply(url, &format!("$JS.API.STREAM.CREATE.{name}"), &request.to_string());
    assert!(answer.get("error").is_none(), "stream {name} not created: {answer}");
    answer
}

/// One request over the NATS text protocol, with a plain socket: the harness must not depend
/// on the client crate it will be used to test.
fn request_reply(url: &str, subject: &str, body: &str) -> Value {
    const INBOX: &str = "_INBOX.selftest";
    let addr = url.strip_prefix("nats://").expect("a nats:// URL");
    let mut stream = TcpStream::connect(addr).expect("connect to nats-server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "CONNECT {{\"verbose\":false}}\r\nSUB {INBOX} 1\r\nPUB {subject} {INBOX} {}\r\n{body}\r\n",
        body.len()
    )
    .expect("send to nats-server");
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap_or_else(|err| {
            panic!("no reply to {subject}: {err}\n{}", String::from_utf8_lossy(&received))
        });
        assert!(read > 0, "nats-server closed: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received);
        assert!(!text.contains("-ERR"), "nats-server refused: {text}");
        // `MSG <subject> <sid> <bytes>\r\n<payload>\r\n`, after the INFO line.
        let Some(start) = text.find(&format!("MSG {INBOX} ")) else { continue };
        let Some(line_end) = text[start..].find("\r\n").map(|end| start + end) else { continue };
        let size: usize = text[start..line_end].rsplit(' ').next().unwrap().parse().unwrap();
        let payload = line_end + 2;
        if text.len() >= payload + size {
            return serde_json::from_str(&text[payload..payload + size]).expect("JSON reply");
        }
    }
}
