//! Turning the parts of an HTTP request into the record the spool keeps.

use std::net::SocketAddr;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, Method, Uri, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::{ReceiveError, content_encoding};
use crate::pipeline::ContentKind;
use crate::spool::{RawRequest, sha256_hex};

/// Headers never stored: credentials and session state.
const SECRET_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/// Parts of a header name that mark it as carrying a secret (`X-Api-Key`, `X-Auth-Token`,
/// `X-Webhook-Secret`, ...): Iterable lets users add any custom header for authentication.
const SECRET_NAME_PARTS: [&str; 6] =
    ["token", "secret", "signature", "password", "api-key", "apikey"];

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.contains(&name) || SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

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
    pub(super) async fn into_raw(
        self,
        source: &str,
        secret_header: Option<&str>,
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
        // Stored decoded, so replay and sinks read it as any body; `body_sha256` is of these
        // bytes, and the kept `content-encoding` header says how it arrived.
        let body = content_encoding::decode(&self.headers, body, limits.max_bytes)?;
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
            query: self.uri.query().map(str::to_owned),
            headers_json: safe_headers_json(&self.headers, secret_header),
            remote_addr: Some(self.remote.ip().to_string()),
            content_type,
            body_sha256: sha256_hex(&body),
            body,
        })
    }
}

/// The headers as a JSON object, names lower-case, repeated headers joined with `, `, and
/// credentials left out.
fn safe_headers_json(headers: &HeaderMap, secret_header: Option<&str>) -> String {
    let mut kept = Map::new();
    for (name, value) in headers {
        if is_secret_header(name.as_str()) || secret_header == Some(name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        match kept.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                kept.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    Value::Object(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn credentials_are_never_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        headers.insert("cookie", HeaderValue::from_static("session=s3cret"));
        headers.insert("x-api-key", HeaderValue::from_static("s3cret"));
        headers.insert("x-iterable-webhook-token", HeaderValue::from_static("s3cret"));
        headers.insert("user-agent", HeaderValue::from_static("Iterable"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        headers.insert("x-custom-auth", HeaderValue::from_static("s3cret"));
        let json = safe_headers_json(&headers, Some("x-custom-auth"));
        assert!(!json.contains("s3cret"), "{json}");
        assert_eq!(json, r#"{"user-agent":"Iterable","x-tag":"a, b"}"#);
    }
}
