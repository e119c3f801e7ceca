//! Load that tries to make hookhouse hold request bodies in memory; `bench/memory.sh` runs it
//! against a release build and reads the server's peak RSS.
//!
//! `memory h2 <addr>`: 4 HTTP/2 connections x 200 streams, each sending 1 MiB of body without
//! END_STREAM, held open for 10 s. `memory h1 <addr>`: 1,000 concurrent 1 MiB POSTs over
//! HTTP/1.1, each on its own connection.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Request;
use bytes::Bytes;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(addr)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: memory h1|h2 <addr>");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("an address like 127.0.0.1:8080");
    match mode.as_str() {
        "h2" => h2_streams(addr, 4, 200).await,
        "h1" => h1_posts(addr, 1000).await,
        other => panic!("unknown mode `{other}`"),
    }
}

async fn h2_streams(addr: SocketAddr, connections: usize, streams: usize) {
    let body = Bytes::from(vec![b' '; MIB]);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..streams {
            let (sender, body) = (sender.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let request = Request::post(format!("http://{addr}/iterable/default"))
                    .header("content-type", "application/json")
                    .body(())
                    .unwrap();
                let mut sender = sender.ready().await.ok()?;
                let (response, mut stream) = sender.send_request(request, false).ok()?;
                let mut rest = body;
                while !rest.is_empty() {
                    stream.reserve_capacity(rest.len());
                    let capacity = poll_fn(|cx| stream.poll_capacity(cx)).await?.ok()?;
                    let chunk = rest.split_to(capacity.min(rest.len()));
                    // Never END_STREAM: the server must hold or drop what it has.
                    stream.send_data(chunk, false).ok()?;
                }
                let status = tokio::time::timeout(Duration::from_secs(10), response).await;
                Some(match status {
                    Ok(Ok(response)) => response.status().as_u16().to_string(),
                    Ok(Err(_)) => "reset".to_owned(),
                    Err(_) => "pending".to_owned(),
                })
            }));
        }
    }
    let mut outcomes = BTreeMap::new();
    let hold = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(hold);
    for task in tasks {
        let outcome = tokio::select! {
            outcome = task => outcome.ok().flatten().unwrap_or_else(|| "refused".to_owned()),
            () = &mut hold => "pending".to_owned(),
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    println!("h2 streams: {outcomes:?}");
}

async fn h1_posts(addr: SocketAddr, count: usize) {
    let body = format!(r#"{{"eventName":"emailOpen","email":"a@example.com","pad":"{}"}}"#, {
        "x".repeat(MIB - 60)
    });
    let body = Bytes::from(body);
    let mut tasks = Vec::new();
    for _ in 0..count {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            // One client each: one connection each, all at once.
            let client = reqwest::Client::builder().http1_only().build().unwrap();
            let sent = client
                .post(format!("http://{addr}/iterable/default"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            }
        }));
    }
    let mut outcomes = BTreeMap::new();
    for task in tasks {
        *outcomes.entry(task.await.unwrap_or_else(|_| "panic".to_owned())).or_insert(0) += 1;
    }
    println!("h1 posts: {outcomes:?}");
}
