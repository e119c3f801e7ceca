//! Loopback helpers for the harnesses of real servers the tests start (`tests/nats`,
//! `tests/lake`): ports nothing listens on, and one plain HTTP request to a monitoring or admin
//! endpoint, with std alone.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

/// `count` distinct loopback ports nothing listens on now: the kernel's picks for port 0, all
/// held until every one is picked, then released for a server to bind moments later.
pub(crate) fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port"))
        .collect();
    listeners.iter().map(|listener| listener.local_addr().expect("bound address").port()).collect()
}

/// One request to `127.0.0.1:port`: status and body, or `None` when nothing answers within
/// `timeout`. HTTP/1.0, so the body comes plain and the server closes; a text body is sent as
/// `text/plain`.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let addr = (Ipv4Addr::LOCALHOST, port).into();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
