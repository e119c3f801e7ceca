//! Real nats-server processes with JetStream for the tests: one node, or a cluster of three on
//! loopback, each in a temporary directory of the cluster's own, killed when the cluster is
//! dropped, even on a failed assertion. The binary comes from `TEST_NATS_SERVER` (`.ci/run`
//! installs one): Debian's nats-server is 2.9, which lacks what these tests need.
//!
//! ```ignore
//! let Some(bin) = nats::server_binary() else { return };
//! let cluster = nats::Cluster::start(&bin, 3, &nats::NodeOptions::default());
//! ```

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../loopback/mod.rs"]
mod loopback;

pub(crate) const BINARY_VARIABLE: &str = "TEST_NATS_SERVER";

/// The oldest server these tests accept: 2.10 brought `sync_interval` and the JetStream
/// behaviour that `shared/docs/jetstream.md` measured.
const MINIMUM_VERSION: (u64, u64) = (2, 10);

/// How long a cluster may take to elect a meta leader and report healthy; 1 to 4 s is usual.
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long one request to a monitoring port may take; a node that is starting or has been
/// killed must not hold up the others' polling.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// The nats-server to run, from `TEST_NATS_SERVER`, or `None` (with a line saying so) when it is
/// not set: the caller returns early, `let Some(bin) = nats::server_binary() else { return };`.
/// A variable that names no usable server, or one older than 2.10, fails the test instead: it
/// was meant to run.
pub(crate) fn server_binary() -> Option<PathBuf> {
    let bin = match std::env::var_os(BINARY_VARIABLE) {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => {
            eprintln!(
                "skipped: set {BINARY_VARIABLE} to a nats-server >= {}.{} (.ci/run installs one)",
                MINIMUM_VERSION.0, MINIMUM_VERSION.1
            );
            return None;
        }
    };
    // Once a test binary: every test asks, and the answer cannot change.
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(problem) = CHECKED.get_or_init(|| check_version(&bin)) {
        panic!("{BINARY_VARIABLE}={}: {problem}", bin.display());
    }
    Some(bin)
}

/// Whether `bin --version` (`nats-server: v2.15.1`) names a recent enough server.
fn check_version(bin: &Path) -> Result<(), String> {
    let output = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|err| format!("cannot run it: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().strip_prefix("nats-server: v").unwrap_or("");
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= MINIMUM_VERSION => Ok(()),
        (Some(_), Some(_)) => Err(format!(
            "it is {version}, older than the {}.{} these tests need",
            MINIMUM_VERSION.0, MINIMUM_VERSION.1
        )),
        _ => Err(format!("`--version` printed no nats-server version: {:?}", text.trim())),
    }
}

/// What every node of a cluster is configured with, beyond its names and ports.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeOptions {
    /// The server's `max_payload` in bytes; unset, the server's default of 1 MiB. The server
    /// refuses to start above its `max_pending`, 64 MiB (NATS advises at most 8 MB).
    pub(crate) max_payload: Option<u64>,
    /// `jetstream { sync_interval: always }`: fsync before each publish ack, instead of every
    /// two minutes.
    pub(crate) sync_always: bool,
}

/// One server of a cluster: its ports stay the same across restarts, as a real node's would.
struct Node {
    name: String,
    client_port: u16,
    http_port: u16,
    config: PathBuf,
    /// stdout and stderr of every run of this node, appended.
    log: PathBuf,
    /// `None` once killed. A mutex, so that [`Cluster::wait_ready`] can notice a node that
    /// exited (a bad configuration, say) through `&self`.
    child: Mutex<Option<Child>>,
}

/// Nodes `n0`, `n1`, ... of one JetStream cluster (or a single server), each with its own
/// configuration file and store directory in a temporary directory, all killed when dropped.
pub(crate) struct Cluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    // Declared last, so it is removed after the processes that write in it are gone.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `nodes` servers (1, or 3 for a cluster that survives one loss) on free loopback
    /// ports and waits until they are ready (see [`Cluster::wait_ready`]).
    pub(crate) fn start(bin: &Path, nodes: usize, options: &NodeOptions) -> Cluster {
        assert!(nodes >= 1, "a cluster needs at least one node");
        let dir = tempfile::tempdir().expect("temporary directory for nats-server");
        let ports: Vec<[u16; 3]> = loopback::free_ports(3 * nodes)
            .chunks(3)
            .map(|ports| [ports[0], ports[1], ports[2]])
            .collect();
        let routes: Vec<String> =
            ports.iter().map(|[_, _, route]| format!("nats-route://127.0.0.1:{route}")).collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(index, &[client_port, http_port, route_port])| {
                let name = format!("n{index}");
                let store = dir.path().join(format!("{name}-store"));
                let cluster = (nodes > 1).then_some((route_port, routes.as_slice()));
                let config = node_config(&name, client_port, http_port, &store, cluster, options);
                let config_path = dir.path().join(format!("{name}.conf"));
                std::fs::write(&config_path, config).expect("write nats-server configuration");
                Node {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port,
                    http_port,
                    config: config_path,
                    child: Mutex::new(None),
                }
            })
            .collect();
        // From here on the cluster owns the processes, so a failed start still kills them.
        let mut cluster = Cluster { bin: bin.to_owned(), nodes, dir };
        for node in 0..cluster.nodes.len() {
            cluster.spawn(node);
        }
        cluster.wait_ready();
        cluster
    }

    /// How many nodes the cluster has, running or not.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The client URL of every node, killed ones included, as an application would be
    /// configured.
    pub(crate) fn client_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|node| self.url(node)).collect()
    }

    /// `nats://127.0.0.1:<port>` of one node.
    pub(crate) fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[node].client_port)
    }

    /// The node's `server_name`: `n0`, `n1`, ...
    pub(crate) fn name(&self, node: usize) -> &str {
        &self.nodes[node].name
    }

    /// Whether the node's process is running (it was neither killed nor has it exited).
    pub(crate) fn is_running(&self, node: usize) -> bool {
        let mut child = self.nodes[node].child.lock().unwrap();
        match child.as_mut().map(|child| child.try_wait().expect("poll nats-server")) {
            Some(None) => true,
            Some(Some(_)) | None => false,
        }
    }

    /// Which running node leads the JetStream meta group, as the running nodes see it; a
    /// single server leads itself. `None` while there is an election, or while a running node
    /// still names a killed one.
    pub(crate) fn meta_leader(&self) -> Option<usize> {
        if self.nodes.len() == 1 {
            // A plain server has no meta group (`/jsz` has no `meta_cluster`).
            return self.is_running(0).then_some(0);
        }
        let mut leader = None;
        for node in self.running() {
            let jsz = self.get_json(node, "/jsz")?;
            let named = self.node_named(jsz["meta_cluster"]["leader"].as_str()?)?;
            // All must agree: a node that missed the election still names the old leader.
            if leader.is_some_and(|leader| leader != named) {
                return None;
            }
            leader = Some(named);
        }
        leader.filter(|&leader| self.is_running(leader))
    }

    /// Which running node leads `stream`, from the first running node whose
    /// `/jsz?streams=true` names a running leader: its JSON lists
    /// `account_details[].stream_detail[]`, each with `name` and `cluster.leader` (a
    /// `server_name`; a single server names itself). `None` when no node knows the stream or
    /// the leader named is not running (an election is under way).
    pub(crate) fn stream_leader(&self, stream: &str) -> Option<usize> {
        self.running().into_iter().find_map(|node| {
            let jsz = self.get_json(node, "/jsz?streams=true")?;
            let leader =
                stream_details(&jsz).find(|detail| detail["name"] == stream)?["cluster"]["leader"]
                    .as_str()?;
            self.node_named(leader).filter(|&leader| self.is_running(leader))
        })
    }

    /// SIGKILL, as a crash or the OOM killer would, and reaps the process. Its store stays.
    pub(crate) fn kill(&mut self, node: usize) {
        let mut child = self.nodes[node].child.lock().unwrap();
        let mut running = child.take().unwrap_or_else(|| panic!("n{node} is not running"));
        running.kill().expect("SIGKILL nats-server");
        running.wait().expect("reap nats-server");
    }

    /// Starts a killed node again with the same configuration, store and ports. Returns at
    /// once, so a test can watch it catch up; [`Cluster::wait_ready`] waits for that.
    pub(crate) fn restart(&mut self, node: usize) {
        assert!(!self.is_running(node), "n{node} is still running; kill it first");
        self.spawn(node);
    }

    /// Waits until the running nodes can serve: each answers `/healthz` with 200, they all name
    /// the same running meta leader (a cluster), and each names a running leader for every
    /// replicated stream it lists. Panics with each node's log tail after [`READY_DEADLINE`].
    ///
    /// Plain `/healthz` (not `?js-enabled-only=true`) also waits for a restarted node to be
    /// current with the meta leader, yet it answers 200 about half a second before that node
    /// learns its streams' leaders: hence the last condition. After a kill it waits out the
    /// election of new leaders for the streams the killed node led (6 to 8 s); a stream of one
    /// replica on a killed node has none to elect and is not waited for.
    pub(crate) fn wait_ready(&self) {
        let started = Instant::now();
        let deadline = started + READY_DEADLINE;
        loop {
            for node in 0..self.nodes.len() {
                let exited = self.nodes[node]
                    .child
                    .lock()
                    .unwrap()
                    .as_mut()
                    .and_then(|child| child.try_wait().expect("poll nats-server"));
                if let Some(status) = exited {
                    panic!("n{node} exited with {status}\n{}", self.logs());
                }
            }
            let running = self.running();
            assert!(!running.is_empty(), "no node is running to wait for");
            let waiting_for = self.not_ready(&running);
            let Some(waiting_for) = waiting_for else {
                eprintln!(
                    "nats: {} of {} nodes ready in {:.1?}",
                    running.len(),
                    self.nodes.len(),
                    started.elapsed()
                );
                return;
            };
            assert!(
                Instant::now() < deadline,
                "nats-server not ready within {READY_DEADLINE:?}: {waiting_for}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What [`Cluster::wait_ready`] still waits for, if anything.
    fn not_ready(&self, running: &[usize]) -> Option<String> {
        for &node in running {
            match self.get(node, "/healthz") {
                Some((200, _)) => {}
                Some((status, body)) => {
                    return Some(format!("n{node}'s /healthz is {status} {}", body.trim()));
                }
                None => return Some(format!("n{node}'s monitoring port does not answer")),
            }
        }
        if self.meta_leader().is_none() {
            return Some("the running nodes do not agree on a running meta leader".to_owned());
        }
        for &node in running {
            let Some(jsz) = self.get_json(node, "/jsz?streams=true&config=true") else {
                return Some(format!("n{node}'s /jsz does not answer"));
            };
            for detail in stream_details(&jsz) {
                let replicated = detail["config"]["num_replicas"].as_u64().unwrap_or(1) > 1;
                let led = detail["cluster"]["leader"]
                    .as_str()
                    .and_then(|leader| self.node_named(leader))
                    .is_some_and(|leader| self.is_running(leader));
                if replicated && !led {
                    return Some(format!(
                        "n{node} names no running leader for stream {}",
                        detail["name"]
                    ));
                }
            }
        }
        None
    }

    /// The last lines of every node's log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        const TAIL: usize = 20;
        let mut text = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {} ({})\n", node.name, node.config.display()));
            for line in &lines[lines.len().saturating_sub(TAIL)..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// The temporary directory with the configurations, logs and stores.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, node: usize) {
        let node = &self.nodes[node];
        // A file, not a pipe: nothing has to read it for the server to go on, and it keeps the
        // runs before a restart.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open nats-server log");
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&node.config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.bin.display()));
        *node.child.lock().unwrap() = Some(child);
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&node| self.is_running(node)).collect()
    }

    fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// A monitoring endpoint's JSON (`/varz`, `/jsz?streams=true`, ...), or `None` when the
    /// node does not answer it with 200.
    pub(crate) fn monitor(&self, node: usize, path: &str) -> Option<Value> {
        self.get_json(node, path)
    }

    fn get_json(&self, node: usize, path: &str) -> Option<Value> {
        match self.get(node, path)? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// A GET to the node's monitoring port: status and body, or `None` when it does not
    /// answer. HTTP/1.0, so the server sends the body plain and closes, never chunked.
    fn get(&self, node: usize, path: &str) -> Option<(u16, String)> {
        loopback::http(self.nodes[node].http_port, "GET", path, "", HTTP_TIMEOUT)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(mut child) = node.child.lock().unwrap_or_else(|err| err.into_inner()).take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One node's configuration file. `cluster` is its route port and every node's route URL, or
/// `None` for a single node, which runs as a plain server, as a development setup would.
fn node_config(
    name: &str,
    client_port: u16,
    http_port: u16,
    store: &Path,
    cluster: Option<(u16, &[String])>,
    options: &NodeOptions,
) -> String {
    let mut config = format!(
        "server_name: {name}\nlisten: \"127.0.0.1:{client_port}\"\nhttp: \"127.0.0.1:{http_port}\"\n"
    );
    if let Some(max_payload) = options.max_payload {
        config.push_str(&format!("max_payload: {max_payload}\n"));
    }
    config.push_str(&format!("jetstream {{\n  store_dir: {}\n", quoted(store)));
    if options.sync_always {
        config.push_str("  sync_interval: always\n");
    }
    config.push_str("}\n");
    if let Some((route_port, routes)) = cluster {
        // Every node lists every route, its own included (the server skips it), so the
        // configurations differ only in names and ports.
        config.push_str(&format!(
            "cluster {{\n  name: hookhouse-test\n  listen: \"127.0.0.1:{route_port}\"\n  \
             routes: [{}]\n}}\n",
            routes.join(", ")
        ));
    }
    config
}

/// The streams of every account in a `/jsz?streams=true` answer:
/// `account_details[].stream_detail[]`.
pub(crate) fn stream_details(jsz: &Value) -> impl Iterator<Item = &Value> {
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|account| account["stream_detail"].as_array())
        .flatten()
}

/// A path as a quoted string of nats-server's configuration format, which escapes as JSON does.
fn quoted(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("temporary path is UTF-8")).unwrap()
}
