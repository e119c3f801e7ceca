//! The disk-space guard on a real small filesystem (`TEST_SMALL_FS`: a mounted filesystem of a
//! few tens of MB, which `.ci/small-fs` makes from a loop device): once free space falls below
//! `store.min_free_disk_mb`, requests are answered 503 with `Retry-After` and `/readyz` turns
//! 503 saying why, and both recover by themselves when the space comes back.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::{email_open, spawn_app_in, stored_seq};
use reqwest::StatusCode;

const VARIABLE: &str = "TEST_SMALL_FS";
const MIN_FREE: u64 = 20 * 1024 * 1024;

fn free_bytes(path: &std::path::Path) -> u64 {
    let stats = rustix::fs::statvfs(path).unwrap();
    stats.f_bavail * stats.f_frsize
}

/// Polls `check` until it is true, for at most 10 s (the guard reads the disk every second).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn below_the_minimum_free_space_requests_get_503_and_it_recovers_by_itself() {
    let Some(small_fs) = std::env::var_os(VARIABLE).filter(|v| !v.is_empty()) else {
        eprintln!(
            "skipped: {VARIABLE} is not set; mount a small filesystem (.ci/small-fs does, as \
             root) and set {VARIABLE} to its path to run the disk guard test"
        );
        return;
    };
    let root = tempfile::tempdir_in(&small_fs).unwrap();
    let data_dir = tempfile::tempdir_in(root.path()).unwrap();
    let app = spawn_app_in(data_dir, |config| config.store.min_free_disk = MIN_FREE).await;
    let first = stored_seq(app.post_webhook(&email_open("before")).await).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    // Fill the filesystem to 8 MB under the minimum.
    let ballast_path = root.path().join("ballast");
    let free = free_bytes(root.path());
    assert!(free > MIN_FREE + (16 << 20), "{small_fs:?} has only {free} bytes free");
    {
        let mut ballast = std::fs::File::create(&ballast_path).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..(free - MIN_FREE + (8 << 20)) >> 20 {
            ballast.write_all(&chunk).unwrap();
        }
        ballast.sync_all().unwrap();
    }
    eventually("/readyz turning 503", async || {
        app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.headers()["retry-after"], "5");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().contains("store.min_free_disk_mb"), "{body}");
    // /readyz stays 503 with no traffic at all (the guard reads the disk, not a write).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::SERVICE_UNAVAILABLE);

    let refused = app.post_webhook(&email_open("while-low")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "30");
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"], "the store is low on disk space, retry later");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hookhouse_requests_unstored_total{source=\"default\"} 1"),
        "the refusal is counted: {metrics}"
    );
    let free: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hookhouse_store_free_disk_bytes "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the free space gauge");
    assert!(free < MIN_FREE, "the gauge shows the low space: {free}");

    std::fs::remove_file(&ballast_path).unwrap();
    eventually("/readyz turning 200 again", async || {
        app.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    let after = stored_seq(app.post_webhook(&email_open("after")).await).await;
    assert_eq!(after, first + 1, "the refused request was not stored");
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 2);
}
