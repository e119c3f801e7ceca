//! `spawn_app()`: a real hookhouse on a random port with a temporary data directory, and typed
//! helpers to post webhooks and read the store.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;

use hookhouse::app::App;
use hookhouse::config::Config;
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    /// The inspector's listener, when the configuration has `[admin]`.
    pub admin_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts hookhouse with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts hookhouse after `adjust` has changed the default configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), adjust).await
}

/// Starts hookhouse on an existing data directory, as a restart would.
pub async fn spawn_app_in(data_dir: TempDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::with_data_dir(data_dir.path());
    adjust(&mut config);
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let admin_addr = app.admin_addr();
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stop.await;
    }));
    TestApp {
        addr,
        admin_addr,
        client: reqwest::Client::new(),
        data_dir,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the inspector's listener; panics when `[admin]` is not configured.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin_addr.expect("the test configured `[admin]`");
        format!("http://{admin}{path}")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join("hookhouse.db")
    }

    /// Posts a JSON body to `/iterable/default`.
    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        self.post("/iterable/default", "application/json", body).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// A read-only connection to the store, as a user's query tool would open it, once the
    /// embedded sink has loaded every request stored so far (its rows follow the 2xx by a few
    /// milliseconds).
    pub fn db(&self) -> Connection {
        let db = Connection::open_with_flags(self.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("store opens");
        wait_embedded_loaded(&db);
        db
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |row| row.get(0)).expect("count query")
    }

    /// Leaves loaded request `seq` as a hookhouse that could not read it would have: its one
    /// event gone, a decode failure in its place. (Replay exists for this: a newer normaliser
    /// reads what an older one failed.)
    pub fn fail_as_an_older_version(&self, seq: i64) {
        let mut conn = Connection::open(self.db_path()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(tx.execute("DELETE FROM events WHERE raw_seq = ?1", [seq]).unwrap(), 1);
        let inserted = tx
            .execute(
                "INSERT INTO failed_events (raw_seq, received_at, stage, reason, body, sink) \
                 SELECT seq, received_at, 'decode', ?2, body, NULL FROM raw_requests \
                 WHERE seq = ?1",
                rusqlite::params![seq, OLDER_VERSION_REASON],
            )
            .unwrap();
        assert_eq!(inserted, 1);
        tx.commit().unwrap();
    }

    /// Stops accepting, waits for in-flight commits, and hands back the data directory so
    /// the store can be read after the server is gone.
    pub async fn stop(mut self) -> anyhow::Result<TempDir> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task")?;
        }
        Ok(self.data_dir)
    }
}

/// The seq of a request the receiver answered `{"status":"stored"}` with 200.
pub async fn stored_seq(response: reqwest::Response) -> i64 {
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "stored", "{answer}");
    answer["seq"].as_i64().unwrap()
}

/// The reason [`TestApp::fail_as_an_older_version`] files.
pub const OLDER_VERSION_REASON: &str = "written by an older version";

/// How long the embedded sink may take to load what a test sent, on a busy CI machine.
pub const EMBEDDED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the embedded `sqlite` sink's cursor has reached the newest stored request.
/// Blocking: the sink runs on threads of its own, so the test's runtime may wait here.
pub fn wait_embedded_loaded(db: &Connection) {
    let deadline = std::time::Instant::now() + EMBEDDED_DEADLINE;
    loop {
        let (position, last): (Option<i64>, i64) = db
            .query_row(
                "SELECT (SELECT position FROM sink_cursors WHERE sink = 'sqlite'), \
                 (SELECT coalesce(max(seq), 0) FROM raw_requests)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("cursor query");
        if position.unwrap_or(0) >= last {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the embedded sink is stuck at {position:?} of {last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A realistic emailOpen body in Iterable's real nested shape.
pub fn email_open(message_id: &str) -> String {
    format!(
        r#"{{"email":"ada@example.com","eventName":"emailOpen","dataFields":{{"email":"ada@example.com","createdAt":"2016-12-02 20:21:04 +00:00","campaignId":12345,"templateId":67890,"messageId":"{message_id}","emailId":"c12345:t67890:ada@example.com","userAgent":"Mozilla/5.0","ip":"203.0.113.7","city":"Paris","country":"FR"}}}}"#
    )
}

pub const FIXTURES: &str = "tests/fixtures/iterable";

/// Every fixture file, sorted, with the content type its extension stands for.
pub fn fixtures() -> Vec<(PathBuf, &'static str)> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(FIXTURES).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => files.push((path, "application/json")),
                Some("form") => files.push((path, "application/x-www-form-urlencoded")),
                _ => {}
            }
        }
    }
    files.sort();
    assert!(files.len() >= 50, "fixtures missing: found {}", files.len());
    files
}
