//! `Content-Encoding` through the HTTP port: gzip and deflate (zlib-wrapped or raw) bodies
//! become events and are stored decoded; a bomb is 413, an unknown coding 415 and a corrupt
//! body 400, none of them stored.

mod common;

use std::io::Write;

use common::{TestApp, email_open, spawn_app};
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use sha2::{Digest, Sha256};

async fn post_encoded(app: &TestApp, coding: &str, body: Vec<u8>) -> u16 {
    let response = app
        .client
        .post(app.url("/iterable/default"))
        .header("content-type", "application/json")
        .header("content-encoding", coding)
        .body(body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(plain).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_become_events_and_are_stored_decoded() {
    let app = spawn_app().await;
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(email_open("m-zlib").as_bytes()).unwrap();
    let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
    raw.write_all(email_open("m-raw").as_bytes()).unwrap();
    assert_eq!(post_encoded(&app, "gzip", gzip(email_open("m-gzip").as_bytes())).await, 200);
    assert_eq!(post_encoded(&app, "deflate", zlib.finish().unwrap()).await, 200);
    assert_eq!(post_encoded(&app, "Deflate", raw.finish().unwrap()).await, 200);
    assert_eq!(post_encoded(&app, "identity", email_open("m-id").into_bytes()).await, 200);

    assert_eq!(app.count("SELECT count(*) FROM failed_events"), 0);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_name = 'emailOpen'"), 4);
    let (body, sha, headers): (Vec<u8>, String, String) = app
        .db()
        .query_row("SELECT body, body_sha256, headers FROM raw_requests WHERE seq = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(body, email_open("m-gzip").as_bytes(), "stored as the sender wrote it");
    assert_eq!(sha, hex::encode(Sha256::digest(&body)), "the digest is of the stored bytes");
    assert!(headers.contains(r#""content-encoding":"gzip""#), "{headers}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bombs_unknown_codings_and_corrupt_bodies_are_refused_and_not_stored() {
    let app = spawn_app().await;
    // 10 MB of zeros is about 10 KB of gzip, far under the 1 MiB limit until inflated.
    let bomb = gzip(&vec![0; 10_000_000]);
    assert!(bomb.len() < 100_000);
    assert_eq!(post_encoded(&app, "gzip", bomb).await, 413);
    assert_eq!(post_encoded(&app, "br", email_open("m-br").into_bytes()).await, 415);
    assert_eq!(post_encoded(&app, "zstd", email_open("m-zstd").into_bytes()).await, 415);
    assert_eq!(post_encoded(&app, "gzip, gzip", gzip(&gzip(b"{}"))).await, 415, "stacked");
    let mut corrupt = gzip(email_open("m-corrupt").as_bytes());
    corrupt.truncate(corrupt.len() / 2);
    assert_eq!(post_encoded(&app, "gzip", corrupt).await, 400);
    assert_eq!(post_encoded(&app, "gzip", b"not gzip at all".to_vec()).await, 400);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn what_inflating_adds_counts_against_the_body_budget() {
    // 8 KiB of budget: a ~12 KiB event sent as a few hundred gzip bytes fits as it arrives,
    // not once inflated.
    let app = common::spawn_app_with(|config| {
        config.server.max_inflight_body_bytes = std::num::NonZeroUsize::new(8 * 1024).unwrap();
    })
    .await;
    let padded = format!(
        r#"{{"eventName":"emailOpen","email":"a@example.com","dataFields":{{"pad":"{}"}}}}"#,
        " ".repeat(12 * 1024)
    );
    let compressed = gzip(padded.as_bytes());
    assert!(compressed.len() < 1024);
    assert_eq!(post_encoded(&app, "gzip", compressed).await, 503);
    assert_eq!(post_encoded(&app, "gzip", gzip(email_open("small").as_bytes())).await, 200);
    assert_eq!(app.count("SELECT count(*) FROM raw_requests"), 1);
    app.stop().await.unwrap();
}
