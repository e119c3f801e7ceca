//! The one mapping from receiver errors to HTTP statuses. Bodies are short JSON that name the
//! problem for the sender; internals go to the log, never into a response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::spool::SpoolError;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no source named `{0}` is configured")]
    UnknownSource(String),
    #[error("the Snowplow-compatible path is not enabled: configure `server.snowplow_source`")]
    SnowplowDisabled,
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content type `{0}`: send JSON or a form")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding `{0}`: send gzip, deflate or no encoding")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("failed to read the request body")]
    BodyRead,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("not found")]
    NotFound,
    #[error("this source's rate limit is reached")]
    RateLimited { retry_after: u64 },
    #[error("this address may not send to this source")]
    Forbidden,
    #[error("missing or wrong credentials")]
    Unauthorized { challenge: String },
    #[error("the request could not be stored")]
    Spool(#[from] SpoolError),
}

impl ReceiveError {
    pub fn status(&self) -> StatusCode {
        match self {
            ReceiveError::UnknownSource(_)
            | ReceiveError::SnowplowDisabled
            | ReceiveError::NotFound => StatusCode::NOT_FOUND,
            ReceiveError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ReceiveError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ReceiveError::Forbidden => StatusCode::FORBIDDEN,
            ReceiveError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ReceiveError::UnsupportedMediaType(_) | ReceiveError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ReceiveError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReceiveError::BodyRead => StatusCode::BAD_REQUEST,
            ReceiveError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ReceiveError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            ReceiveError::RateLimited { .. } => "rate_limited",
            ReceiveError::Forbidden => "forbidden",
            ReceiveError::Unauthorized { .. } => "unauthorized",
            ReceiveError::Spool(_) => "store_unavailable",
        }
    }

    /// Seconds a sender should wait before retrying, for the errors that are worth a retry.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ReceiveError::RateLimited { retry_after } => Some(*retry_after),
            ReceiveError::Spool(SpoolError::Overloaded) => Some(1),
            ReceiveError::Spool(_) => Some(5),
            _ => None,
        }
    }
}

impl IntoResponse for ReceiveError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The writer has logged the store's own error; this adds which request met it.
            tracing::warn!(error = %self, status = status.as_u16(), "request not stored");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        let message = match &self {
            ReceiveError::Spool(SpoolError::Overloaded) => {
                "the store is busy, retry later".to_owned()
            }
            ReceiveError::Spool(_) => "the request could not be stored, retry later".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if let ReceiveError::Unauthorized { challenge } = &self {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
