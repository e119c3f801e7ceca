//! Turning the parts of an HTTP request into the record the spool keeps.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::ReceiveError;
use super::body_budget::{self, Reservation};
use super::content_encoding;
use super::redact::Redaction;
use crate::pipeline::ContentKind;
use crate::request::{RawRequest, RequestKind, sha256_hex};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, Method, Uri, header};

/// How much body to read and for how long.
#[derive(Debug)]
pub(super) struct BodyLimits<'a> {
    pub(super) max_bytes: usize,
    pub(super) timeout: Duration,
    /// Grown as the body is read; the caller keeps it until the body is stored.
    pub(super) held: &'a mut Reservation,
}

/// The parts of a request the receiver needs, gathered by the handlers.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) remote: SocketAddr,
    pub(super) body: Body,
}

/// Gathered once for every route, so the handlers take one extractor instead of five.
impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = ReceiveError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        // Always present: the server is built with `into_make_service_with_connect_info`.
        let remote =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0).ok_or_else(
                || ReceiveError::BadRequest("the connection's address is unknown".to_owned()),
            )?;
        Ok(Incoming { method: parts.method, uri: parts.uri, headers: parts.headers, remote, body })
    }
}

impl Incoming {
    /// The request line and headers as HTTP/1.1 writes them (`name: value\r\n`): what
    /// `server.max_header_bytes` measures, over HTTP/2 too.
    pub(super) fn head_len(&self) -> usize {
        let target = self.uri.path_and_query().map_or(1, |target| target.as_str().len());
        let line = self.method.as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
        self.headers
            .iter()
            .fold(line, |len, (name, value)| len + name.as_str().len() + value.len() + 4)
    }

    /// Reads the body (at most `limits.max_bytes`, within `limits.timeout`) and builds the
    /// stored record, refusing bodies that are too large, too slow or of a type we cannot read.
    ///
    /// `client` is the address the request comes from after trusted proxies; the connection's
    /// peer is kept beside it.
    pub(super) async fn into_raw(
        self,
        source: &str,
        redaction: &Redaction<'_>,
        client: IpAddr,
        mut limits: BodyLimits<'_>,
    ) -> Result<RawRequest, ReceiveError> {
        let body = body_budget::read(self.body, &self.headers, &mut limits).await?;
        let received = body.len();
        // Stored decoded, so replay and sinks read it as any body; `body_sha256` is of these
        // bytes, and the kept `content-encoding` header says how it arrived.
        let body = content_encoding::decode(&self.headers, body, limits.max_bytes)?;
        // What inflating added is in memory too (a small gzip body can become `max_bytes`).
        limits.held.add(body.len().saturating_sub(received))?;
        let body = redaction.body(body);
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        if !body.is_empty() && ContentKind::of(content_type.as_deref()) == ContentKind::Unsupported
        {
            return Err(ReceiveError::UnsupportedMediaType(content_type.unwrap_or_default()));
        }
        Ok(RawRequest {
            received_at: chrono::Utc::now(),
            source: source.to_owned(),
            kind: RequestKind::of_path(self.uri.path()),
            method: self.method.as_str().to_owned(),
            path: self.uri.path().to_owned(),
            query: redaction.query(self.uri.query()),
            headers_json: redaction.headers_json(&self.headers),
            remote_addr: Some(client.to_string()),
            peer_addr: Some(self.remote.ip().to_string()),
            content_type,
            body_sha256: sha256_hex(&body),
            body,
        })
    }
}
