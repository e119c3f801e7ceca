//! The real `hookhouse` binary as a child process: start it, read its banner, signal it, and
//! always kill it when a test ends, even on a failed assertion.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a start-up, a shutdown or a refusal to start may take on a busy CI machine.
pub(crate) const PROCESS_DEADLINE: Duration = Duration::from_secs(15);

/// The binary with a clean environment: no `HOOKHOUSE_*` variable leaks in from the caller,
/// and a relative default data directory lands in `cwd`, never in the repository.
pub(crate) fn hookhouse(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhouse"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKHOUSE_") {
            command.env_remove(name);
        }
    }
    command.current_dir(cwd).stdin(Stdio::null());
    command
}

/// `hookhouse serve` on a random port with its store in `data_dir`.
pub(crate) fn serve(data_dir: &Path) -> Command {
    let mut command = hookhouse(data_dir.parent().unwrap_or(data_dir));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    command
}

/// A running `hookhouse serve`, killed and reaped when dropped.
pub(crate) struct Server {
    child: Child,
    exited: Option<ExitStatus>,
    base_url: String,
    stdout: Output,
    stderr: Output,
}

impl Server {
    /// Spawns `command` and waits for the banner's first line,
    /// `hookhouse <version> listening on http://<addr>`.
    pub(crate) async fn start(command: Command) -> Server {
        Self::start_with_stderr(command, Stdio::piped()).await
    }

    /// As [`Server::start`], with stderr going to `stderr` (a file, say); unless it is a pipe,
    /// [`Server::stderr`] is then empty.
    pub(crate) async fn start_with_stderr(
        mut command: Command,
        stderr: impl Into<Stdio>,
    ) -> Server {
        command.stdout(Stdio::piped()).stderr(stderr);
        let mut child = command.spawn().expect("failed to spawn hookhouse");
        let stdout = Output::capture(child.stdout.take().expect("piped stdout"));
        let stderr = match child.stderr.take() {
            Some(piped) => Output::capture(piped),
            None => Output::capture(std::io::empty()),
        };
        // From here on the guard owns the child, so a failed start-up still kills it.
        let mut server = Server { child, exited: None, base_url: String::new(), stdout, stderr };
        let prefix = format!("hookhouse {} listening on ", env!("CARGO_PKG_VERSION"));
        let deadline = Instant::now() + PROCESS_DEADLINE;
        let first_line = loop {
            // The reader appends whole lines only, so a first line is a complete one.
            if let Some(line) = server.stdout.text().lines().next() {
                break line.to_owned();
            }
            if let Some(status) = server.try_wait() {
                panic!("hookhouse exited with {status} before its banner\n{}", server.output());
            }
            assert!(
                Instant::now() < deadline,
                "no banner within {PROCESS_DEADLINE:?}\n{}",
                server.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let Some(base_url) = first_line.strip_prefix(&prefix) else {
            panic!("the banner's first line is not `{prefix}<url>`: {first_line:?}");
        };
        assert!(
            (base_url.starts_with("http://127.0.0.1:")
                || base_url.starts_with("https://127.0.0.1:"))
                && !base_url.ends_with(":0"),
            "the banner names no bound port: {first_line:?}"
        );
        server.base_url = base_url.to_owned();
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `host:port` of the listening socket.
    pub(crate) fn addr(&self) -> &str {
        self.base_url.trim_start_matches("https://").trim_start_matches("http://")
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("failed to run `kill`");
        assert!(status.success(), "`kill -{name}` failed: {status}");
    }

    /// Waits until stdout or stderr contains `needle`.
    pub(crate) async fn wait_for_output(&self, needle: &str) {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {PROCESS_DEADLINE:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until stdout contains `needle`, and returns it all.
    pub(crate) async fn wait_for_stdout(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let text = self.stdout.text();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "stdout never showed {needle:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Everything written to stderr (the log) so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Both streams, for failure messages.
    pub(crate) fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout.text(), self.stderr.text())
    }

    /// SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("failed to SIGKILL hookhouse");
        self.exited = Some(self.child.wait().expect("failed to reap hookhouse"));
    }

    /// SIGTERM, as `docker stop` or Kubernetes would, once the process catches it; see
    /// [`Server::wait_exit`]. Waiting keeps these tests deterministic: hookhouse installs its
    /// handler only after printing the banner (see `tests/cli.rs`).
    pub(crate) async fn terminate(&mut self) {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        while !self.catches_sigterm() {
            if let Some(status) = self.try_wait() {
                panic!("hookhouse exited with {status} before SIGTERM\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "hookhouse never caught SIGTERM\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.terminate_at_once();
    }

    /// SIGTERM now, whether or not the process has a handler for it yet.
    pub(crate) fn terminate_at_once(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("failed to run `kill`");
        assert!(status.success(), "`kill -TERM` failed: {status}");
    }

    /// Whether the process has a SIGTERM handler, from the `SigCgt` mask of Linux's
    /// `/proc/<pid>/status`. Without procfs it cannot tell, and says yes.
    fn catches_sigterm(&self) -> bool {
        const SIGTERM: u32 = 15;
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
        else {
            return true;
        };
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (SIGTERM - 1)) != 0)
    }

    /// Waits for the process to exit on its own.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hookhouse still running after {limit:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("failed to poll hookhouse");
        }
        self.exited
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `command` to completion, killing it and failing if it outlives [`PROCESS_DEADLINE`]
/// (a configuration that should be refused must not start a server that runs forever).
pub(crate) fn run_to_exit(mut command: Command) -> Finished {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("failed to spawn hookhouse");
    let stdout = Output::capture(child.stdout.take().expect("piped stdout"));
    let stderr = Output::capture(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + PROCESS_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("failed to poll hookhouse") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hookhouse still running after {PROCESS_DEADLINE:?}\n--- stdout\n{}--- stderr\n{}",
                stdout.text(),
                stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Finished { status, stdout: stdout.finish(), stderr: stderr.finish() }
}

/// One output stream of the child, read on its own thread so the child never blocks on a full
/// pipe.
struct Output {
    text: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Output {
    fn capture(stream: impl Read + Send + 'static) -> Output {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            while matches!(stream.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Output { text, reader: Some(reader) }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Everything, once the child has exited and the stream reached its end.
    fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.text()
    }
}
