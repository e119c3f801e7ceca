//! A bare HTTP/2 client (the `h2` crate) for what reqwest hides: whether a stream was reset
//! while its body was being sent, and when the server closed the connection.

#![allow(dead_code, unreachable_pub)]

use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Request, StatusCode};
use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One HTTP/2 connection (prior knowledge, plain TCP).
pub struct H2 {
    pub sender: h2::client::SendRequest<Bytes>,
    /// Resolves when the server closes the connection; holds the instant it did.
    pub closed: JoinHandle<Instant>,
}

pub async fn connect(addr: SocketAddr) -> H2 {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
        Instant::now()
    });
    H2 { sender, closed }
}

/// What came of one request.
#[derive(Debug)]
pub struct Sent {
    pub status: Option<StatusCode>,
    /// Whether the whole body went out and its stream ended without a reset.
    pub body_sent: bool,
}

impl H2 {
    /// POSTs `body` to `path` with `headers`, sending the body as flow control allows.
    pub async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: Bytes) -> Sent {
        let mut request = Request::post(format!("http://localhost{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).unwrap();
        let sender = self.sender.clone();
        let mut sender = sender.ready().await.unwrap();
        let (response, mut stream) = sender.send_request(request, body.is_empty()).unwrap();
        let send = async move {
            let mut rest = body;
            while !rest.is_empty() {
                stream.reserve_capacity(rest.len());
                let capacity = match poll_fn(|cx| stream.poll_capacity(cx)).await {
                    Some(Ok(capacity)) => capacity,
                    _ => return false,
                };
                let chunk = rest.split_to(capacity.min(rest.len()));
                if stream.send_data(chunk, rest.is_empty()).is_err() {
                    return false;
                }
            }
            // A reset that arrives after the last frame still cut the request short.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let reset =
                tokio::time::timeout(Duration::from_millis(1), poll_fn(|cx| stream.poll_reset(cx)))
                    .await;
            reset.is_err()
        };
        let (body_sent, response) = tokio::join!(send, response);
        Sent { status: response.ok().map(|r| r.status()), body_sent }
    }
}
