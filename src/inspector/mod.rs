//! The inspector: a page and a JSON API on the admin listener (`[admin] listen`), showing what
//! arrived, what became of it, and the sinks' health. Never on the webhook port, since it
//! shows the personal data requests carry.
//!
//! It reads the embedded tables through the spool's read-only connection
//! ([`crate::spool::SpoolReader`]), one per call on a blocking thread, so it holds no lock the
//! writer waits for. Security: with `admin.token` every API call needs
//! `Authorization: Bearer <token>` (a header a browser never adds by itself, so another site
//! cannot make one for the user); without it (loopback only) the `Host` must be a loopback
//! name, so a page elsewhere cannot reach it by rebinding its DNS name to 127.0.0.1. The page
//! itself holds no data and loads nothing from elsewhere (a strict Content-Security-Policy).

mod api;
mod page;
mod stats_cache;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// What every inspector handler shares.
#[derive(Debug)]
pub struct Inspector {
    /// The `hookhouse.db` holding the embedded tables.
    db_path: PathBuf,
    config: Config,
    /// SHA-256 of `admin.token`, compared in constant time.
    token_digest: Option<[u8; 32]>,
    /// The webhook port's base URL, for "copy as curl".
    webhook_base: String,
    /// One replay at a time: a second waits for nothing and is told so.
    replaying: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled at shutdown: a replay stops after its current batch.
    stop: CancellationToken,
    /// The chart's complete buckets.
    stats: stats_cache::StatsCache,
}

impl Inspector {
    /// `None` when the configuration has no `[admin]` or no embedded tables to read.
    pub fn new(config: &Config, webhook_addr: SocketAddr) -> Option<Inspector> {
        let admin = config.admin.as_ref()?;
        let db_path = config.embedded_db_path()?;
        let token_digest = admin
            .token
            .as_ref()
            .map(|token| Sha256::digest(token.expose_secret().as_bytes()).into());
        let scheme = if config.server.tls.is_some() { "https" } else { "http" };
        // Listening on every address: a command copied from the page goes to this machine.
        let mut webhook_addr = webhook_addr;
        if webhook_addr.ip().is_unspecified() {
            webhook_addr.set_ip(match webhook_addr {
                SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
                SocketAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        Some(Inspector {
            db_path,
            config: config.clone(),
            token_digest,
            webhook_base: format!("{scheme}://{webhook_addr}"),
            replaying: Arc::new(tokio::sync::Mutex::new(())),
            stop: CancellationToken::new(),
            stats: stats_cache::StatsCache::default(),
        })
    }

    /// Cancelled when the process stops, so that a replay under way ends after its batch.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// What a person's email or user id looks like in the store: as given, and for each
    /// pseudonymising source the digest its rows hold instead.
    fn spellings(&self, who: &str) -> Vec<String> {
        let mut spellings = vec![who.to_owned()];
        for source in &self.config.sources {
            let Some(key) = &source.pseudonymise else { continue };
            let hidden = key.apply(&serde_json::json!({ "email": who }));
            if let Some(digest) = hidden["email"].as_str()
                && !spellings.iter().any(|known| known == digest)
            {
                spellings.push(digest.to_owned());
            }
        }
        spellings
    }
}

/// The admin listener's routes.
pub fn router(inspector: Arc<Inspector>) -> Router {
    let api = Router::new()
        .route("/api/meta", get(api::meta))
        .route("/api/requests", get(api::requests))
        .route("/api/requests/{seq}", get(api::request))
        .route("/api/failed", get(api::failed))
        .route("/api/stats", get(api::stats))
        .route("/api/sinks", get(api::sinks))
        .route("/api/replay", post(api::replay))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&inspector), require_token));
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .merge(api)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&inspector), loopback_host))
        .layer(middleware::from_fn(no_store))
        .layer(middleware::from_fn(security_headers))
        .with_state(inspector)
}

/// An API error: its status and a sentence saying what to do, as `{"error": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// `Authorization: Bearer <admin.token>` on every API call when a token is configured.
async fn require_token(
    State(inspector): State<Arc<Inspector>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &inspector.token_digest else { return next.run(request).await };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        // The scheme's name is case-insensitive (RFC 9110).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Sha256::digest(token.trim().as_bytes()));
    if given.is_some_and(|given| bool::from(given.ct_eq(expected))) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the inspector needs `Authorization: Bearer <admin.token>`",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hookhouse\""));
    response
}

/// Without a token the inspector answers only to a loopback `Host` (see the module docs).
async fn loopback_host(
    State(inspector): State<Arc<Inspector>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|authority| authority.as_str()));
    if inspector.token_digest.is_some() || host.is_none_or(is_loopback_host) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "without `admin.token` the inspector answers only to http://127.0.0.1, http://localhost \
         or http://[::1] (so no other site can reach it through a DNS name); set `admin.token` \
         to use another name",
    )
    .into_response()
}

/// Whether a `Host` (or HTTP/2 `:authority`) names this machine's loopback interface. A
/// request with neither came from no browser, which always sends one.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The page may run only its own script and style, and be framed by no one.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Answers hold personal data (the page is small and changes with each release): no cache
/// keeps them.
async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for ok in ["127.0.0.1:8081", "localhost:8081", "LOCALHOST", "[::1]:8081", "127.0.0.2"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8081", "10.0.0.1:8081", "localhost.evil.example", "[::2]:1"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
