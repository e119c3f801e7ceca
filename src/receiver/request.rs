//! Turning the parts of an HTTP request into the record the spool keeps.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::ReceiveError;
use super::redact::Redaction;
use crate::pipeline::ContentKind;
use crate::spool::{RawRequest, sha256_hex};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, Method, Uri, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

/// How much body to read and for how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub(super) max_bytes: usize,
    pub(super) timeout: Duration,
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
        limits: BodyLimits,
    ) -> Result<RawRequest, ReceiveError> {
        let too_large = ReceiveError::TooLarge { limit: limits.max_bytes };
        let declared = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limits.max_bytes as u64) {
            return Err(too_large);
        }
        let read = Limited::new(self.body, limits.max_bytes).collect();
        let body = match tokio::time::timeout(limits.timeout, read).await {
            Err(_) => return Err(ReceiveError::BodyTimeout),
            Ok(Err(err)) if err.is::<LengthLimitError>() => return Err(too_large),
            Ok(Err(_)) => return Err(ReceiveError::BodyRead),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
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
