//! The one mapping from receiver errors to HTTP statuses. Bodies are short JSON that name the
//! problem for the sender; internals go to the log, never into a response. A sender's own text
//! (a path, a header, a query) is shown through [`SenderText`], so no log line can carry it raw.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jetstream::log::PublishError;
use crate::spool::SpoolError;
use crate::telemetry::SenderText;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no source named `{}` is configured", SenderText(.0))]
    UnknownSource(String),
    #[error("the Snowplow-compatible path is not enabled: configure `server.snowplow_source`")]
    SnowplowDisabled,
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content type `{}`: send JSON or a form", SenderText(.0))]
    UnsupportedMediaType(String),
    /// The sender's own word for the encoding, escaped like every sender's text.
    #[error("unsupported content encoding `{}`: send gzip, deflate or no encoding", SenderText(.0))]
    UnsupportedEncoding(String),
    /// The message may quote the request (an unsupported query parameter).
    #[error("{}", SenderText(.0))]
    BadRequest(String),
    #[error("failed to read the request body")]
    BodyRead,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("not found")]
    NotFound,
    #[error("this path does not take this method")]
    MethodNotAllowed,
    #[error("this source's rate limit is reached")]
    RateLimited { retry_after: u64 },
    #[error("too many failed credentials from this address: retry later")]
    AuthBlocked { retry_after: u64 },
    #[error("this address may not send to this source")]
    Forbidden,
    #[error("missing or wrong credentials")]
    Unauthorized { challenge: String },
    #[error("the request line and headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("too many request bodies are arriving at once, retry later")]
    BodyBudget,
    #[error("the request could not be stored")]
    Spool(#[from] SpoolError),
    #[error("the request could not be stored in the stream")]
    Stream(#[from] PublishError),
}

impl ReceiveError {
    pub fn status(&self) -> StatusCode {
        match self {
            ReceiveError::UnknownSource(_)
            | ReceiveError::SnowplowDisabled
            | ReceiveError::NotFound => StatusCode::NOT_FOUND,
            ReceiveError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ReceiveError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ReceiveError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ReceiveError::Forbidden => StatusCode::FORBIDDEN,
            ReceiveError::RateLimited { .. } | ReceiveError::AuthBlocked { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ReceiveError::UnsupportedMediaType(_) | ReceiveError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ReceiveError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReceiveError::BodyRead => StatusCode::BAD_REQUEST,
            ReceiveError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ReceiveError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ReceiveError::BodyBudget | ReceiveError::Spool(_) | ReceiveError::Stream(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `reason` label of a refusal in `/metrics`: fixed words, never the request's own text.
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiveError::UnknownSource(_) => "unknown_source",
            ReceiveError::SnowplowDisabled => "snowplow_disabled",
            ReceiveError::TooLarge { .. } => "too_large",
            ReceiveError::UnsupportedMediaType(_) => "unsupported_media_type",
            ReceiveError::UnsupportedEncoding(_) => "unsupported_encoding",
            ReceiveError::BadRequest(_) => "bad_request",
            ReceiveError::BodyRead => "body_read",
            ReceiveError::BodyTimeout => "body_timeout",
            ReceiveError::NotFound => "not_found",
            ReceiveError::MethodNotAllowed => "method_not_allowed",
            ReceiveError::RateLimited { .. } => "rate_limited",
            ReceiveError::AuthBlocked { .. } => "auth_blocked",
            ReceiveError::Forbidden => "forbidden",
            ReceiveError::Unauthorized { .. } => "unauthorized",
            ReceiveError::HeadersTooLarge { .. } => "headers_too_large",
            ReceiveError::BodyBudget => "body_budget",
            ReceiveError::Spool(SpoolError::LowDisk { .. }) => "low_disk",
            ReceiveError::Spool(_) => "store_unavailable",
            ReceiveError::Stream(_) => "stream_unavailable",
        }
    }

    /// Seconds a sender should wait before retrying, for the errors that are worth a retry.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ReceiveError::RateLimited { retry_after }
            | ReceiveError::AuthBlocked { retry_after } => Some(*retry_after),
            ReceiveError::BodyBudget | ReceiveError::Spool(SpoolError::Overloaded) => Some(1),
            // Space comes back when someone frees it, not within a second.
            ReceiveError::Spool(SpoolError::LowDisk { .. }) => Some(30),
            ReceiveError::Spool(_) | ReceiveError::Stream(_) => Some(5),
            _ => None,
        }
    }
}

impl IntoResponse for ReceiveError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Every request, at debug level only: the lines at the default level are written, in
        // aggregate, by the handlers' refusal log (and the store's own error by its writer).
        tracing::debug!(
            error = self.to_string().as_str(),
            status = status.as_u16(),
            "request answered with an error"
        );
        let message = match &self {
            ReceiveError::Spool(SpoolError::Overloaded) => {
                "the store is busy, retry later".to_owned()
            }
            ReceiveError::Spool(SpoolError::LowDisk { .. }) => {
                "the store is low on disk space, retry later".to_owned()
            }
            ReceiveError::Spool(_) | ReceiveError::Stream(_) => {
                "the request could not be stored, retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if let ReceiveError::Unauthorized { challenge } = &self
            && let Ok(value) = HeaderValue::from_str(challenge)
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
