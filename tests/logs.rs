//! The log of the real binary: a sender's text never reaches it raw (no forged line, no escape
//! byte), no colour codes unless stderr is a terminal, `HOOKHOUSE_LOG_FORMAT=json` gives one
//! JSON object per line, and a flood of refusals gives a few lines with counts.

mod process;

use std::path::Path;
use std::time::Duration;

use process::{PROCESS_DEADLINE, Server, run_to_exit, serve};

const FORGED_TIME: &str = "2026-12-01T18:13:00Z";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(PROCESS_DEADLINE).build().unwrap()
}

/// Stops a server with SIGTERM, so everything it logged has been written.
async fn stop(server: &mut Server) {
    server.terminate().await;
    let status = server.wait_exit(PROCESS_DEADLINE).await;
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", server.output());
}

/// A refusal whose error text holds a decoded newline and a forged log line.
async fn post_forged_newline(server: &Server) {
    let path = format!("/iterable/x%0A{FORGED_TIME}%20INFO%20hookhouse:%20forged");
    let response = client().post(server.url(&path)).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_sender_cannot_forge_a_log_line_or_write_escape_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(&dir.path().join("data"));
    // Debug level too: the handlers' spans show the path's source name.
    command.env("HOOKHOUSE_LOG", "hookhouse=debug");
    let mut server = Server::start(command).await;
    post_forged_newline(&server).await;
    // ESC in a query parameter the error quotes, a C1 CSI in a header value it quotes.
    let snowplow = server.url("/com.snowplowanalytics.iglu/v1?schema=%1b[31mRED");
    assert_eq!(client().get(snowplow).send().await.unwrap().status(), 400);
    let csi = reqwest::header::HeaderValue::from_bytes(b"text/x\xc2\x9b31mC1").unwrap();
    let typed = client().post(server.url("/iterable/default")).header("content-type", csi);
    assert_eq!(typed.body("a").send().await.unwrap().status(), 415);
    server.wait_for_output("unsupported_media_type").await;
    stop(&mut server).await;

    let log = server.stderr();
    let forged = log.lines().filter(|line| line.trim_start().starts_with(FORGED_TIME)).count();
    assert_eq!(forged, 0, "a forged line:\n{log}");
    assert!(!log.contains('\u{1b}'), "a raw ESC byte:\n{log:?}");
    assert!(!log.contains('\u{9b}'), "a raw CSI:\n{log:?}");
    // The error is a quoted value, so a sender's spaces cannot pass for fields of the line.
    assert!(log.contains(r#"error="no source named `x\\n"#), "unquoted error:\n{log}");
    // The text is there, escaped.
    for escaped in
        [format!(r"x\n{FORGED_TIME} INFO"), r"\u{1b}[31mRED".into(), r"\u{9b}31mC1".into()]
    {
        assert!(log.contains(&escaped), "no `{escaped}` in\n{log}");
    }
}

#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("hookhouse.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut server = Server::start_with_stderr(serve(&dir.path().join("data")), log_file).await;
    post_forged_newline(&server).await;
    stop(&mut server).await;
    let log = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("request refused") && text.contains("INFO"), "{text}");
    assert!(!log.contains(&0x1b), "colour codes in a file:\n{text:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_fields_as_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(&dir.path().join("data"));
    command.env("HOOKHOUSE_LOG_FORMAT", "json");
    let mut server = Server::start(command).await;
    post_forged_newline(&server).await;
    server.wait_for_output("request refused").await;
    stop(&mut server).await;

    let log = server.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(lines.iter().all(|line| line["level"].is_string() && line["timestamp"].is_string()));
    let refusal = lines
        .iter()
        .find(|line| line["message"] == "request refused")
        .unwrap_or_else(|| panic!("no refusal in\n{log}"));
    assert_eq!(refusal["reason"], "unknown_source", "{refusal}");
    assert_eq!(refusal["source"], "unknown", "{refusal}");
    assert_eq!(refusal["status"], 404, "{refusal}");
    let error = refusal["error"].as_str().unwrap();
    assert!(error.contains(&format!(r"x\n{FORGED_TIME}")), "{error:?}");
    assert!(lines.iter().any(|line| line["message"] == "stopped cleanly"), "{log}");
}

#[test]
fn an_unknown_log_format_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(&dir.path().join("data"));
    command.env("HOOKHOUSE_LOG_FORMAT", "yaml");
    let run = run_to_exit(command);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(!run.stdout.contains("listening"), "{run:?}");
    assert!(
        run.stderr.contains("`HOOKHOUSE_LOG_FORMAT` is `yaml`: use `text` or `json`"),
        "{run:?}"
    );
}

/// The lines of `log` that contain every one of `needles`, and the occurrences they stand
/// for: each line itself plus the count it gives in `left_out_field`.
fn accounted(log: &str, needles: &[&str], left_out_field: &str) -> (usize, u64) {
    let lines: Vec<&str> =
        log.lines().filter(|line| needles.iter().all(|n| line.contains(n))).collect();
    let total = lines
        .iter()
        .map(|line| {
            let (_, after) = line.split_once(&format!("{left_out_field}=")).expect("a count");
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            1 + digits.parse::<u64>().unwrap()
        })
        .sum();
    (lines.len(), total)
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("hookhouse.toml");
    let text =
        "[[sources]]\nname = \"prod\"\nauth = \"token\"\nsecrets = [\"flood-token-0123456789\"]\n";
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_flood_of_401s_is_logged_in_a_few_lines_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(&dir.path().join("data"));
    command.arg("--config").arg(write_config(dir.path()));
    // Every guess must reach the comparison: no block.
    command.env("HOOKHOUSE_SERVER__MAX_AUTH_FAILURES_PER_MINUTE", "0");
    let mut server = Server::start(command).await;
    let (token_url, secret_url) = (server.url("/iterable/prod"), server.url("/hooks/guess-"));
    let guess = move |n: usize| {
        let request = if n.is_multiple_of(2) {
            client().post(&token_url).bearer_auth(format!("guess-{n}"))
        } else {
            client().post(format!("{secret_url}{n}"))
        };
        async move { request.body("{}").send().await.unwrap().status().as_u16() }
    };
    let mut tasks = Vec::new();
    for task in 0..4 {
        let guess = guess.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in (task..2_000).step_by(4) {
                statuses.push(guess(n).await);
            }
            statuses
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|&status| status == 401));
    }
    // One more of each after a quiet second: its line carries the count of the flood.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(guess(2_000).await, 401);
    assert_eq!(guess(2_001).await, 401);
    stop(&mut server).await;

    let log = server.stderr();
    let refusal_lines = log.lines().filter(|line| line.contains("refused")).count();
    assert!(refusal_lines <= 30, "{refusal_lines} lines for 2,002 refusals:\n{log}");
    for source in ["prod", "unknown"] {
        let source = format!(r#"source="{source}""#);
        let needles = [r#"reason="unauthorized""#, source.as_str()];
        let (lines, total) = accounted(&log, &needles, "not_logged_since_last");
        assert!(lines >= 2, "{source}: {lines} lines\n{log}");
        assert_eq!(total, 1_001, "{source}: the lines must account for every refusal\n{log}");
    }
    assert!(log.contains("client=127.0.0.1"), "the caller's address is kept:\n{log}");
}

#[tokio::test]
async fn a_store_failing_every_commit_is_logged_in_a_few_lines_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut command = serve(&data_dir);
    command.env("HOOKHOUSE_STORE__BUSY_TIMEOUT_MS", "20");
    let mut server = Server::start(command).await;
    // Another process holding the write lock: every commit fails, as on a full disk.
    let lock = rusqlite::Connection::open(data_dir.join("hookhouse.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let url = server.url("/iterable/default");
    let post = move || {
        let request = client().post(&url).header("content-type", "application/json");
        let body = r#"{"eventName":"emailOpen","email":"a@example.com"}"#;
        async move { request.body(body).send().await.unwrap().status().as_u16() }
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let post = post.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..100 {
                statuses.push(post().await);
            }
            statuses
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|&status| status == 503));
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(post().await, 503);
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    stop(&mut server).await;

    let log = server.stderr();
    assert!(log.lines().count() < 60, "{} lines:\n{log}", log.lines().count());
    let needles = ["request not stored", r#"reason="store_unavailable""#, r#"source="default""#];
    let (lines, total) = accounted(&log, &needles, "not_logged_since_last");
    assert!((2..=20).contains(&lines), "{lines} lines for 401 requests not stored:\n{log}");
    assert_eq!(total, 401, "the lines must account for every 503\n{log}");
    let (commits, _) =
        accounted(&log, &["failed to commit to the store"], "failed_batches_not_logged_since_last");
    assert!((1..=20).contains(&commits), "{commits} lines for the failed commits:\n{log}");
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_are_logged_with_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(serve(&dir.path().join("data"))).await;
    let wrong = client().delete(server.url("/iterable/default")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert!(wrong.headers().contains_key("allow"), "axum's Allow header is kept");
    let lost = client().post(server.url("/nowhere")).body("{}").send().await.unwrap();
    assert_eq!(lost.status(), 404);
    server.wait_for_output(r#"reason="not_found""#).await;
    stop(&mut server).await;
    let log = server.stderr();
    for reason in [r#"reason="method_not_allowed""#, r#"reason="not_found""#] {
        let line = log.lines().find(|line| line.contains(reason)).unwrap_or_default();
        assert!(line.contains("client=127.0.0.1"), "no `{reason}` line with the caller:\n{log}");
    }
}
