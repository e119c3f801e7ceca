//! The HTTP side: routes, authentication, limits, and the one mapping from errors to statuses.
//! It turns a request into an [`AcceptedRequest`] and hands it to the spool; it never answers
//! 2xx before the spool has committed.

mod auth;
mod auth_block;
mod body_budget;
mod client_ip;
pub mod connection_limit;
mod content_encoding;
mod drain;
mod error;
mod handlers;
mod log;
mod normalise;
mod oauth_token;
mod rate_limit;
mod redact;
mod refusal_log;
mod request;
mod secret_urls;
mod token_endpoint;

pub use error::ReceiveError;
pub use log::RequestLog;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::answers::Answers;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::request::SNOWPLOW_PATH;
use auth_block::AuthBlocks;
use rate_limit::RateLimit;
use secret_urls::SecretUrls;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub log: RequestLog,
    /// One bucket per source with a limit, by source name.
    rate_limits: HashMap<String, RateLimit>,
    secret_urls: Arc<SecretUrls>,
    pub metrics: Metrics,
    refusal_log: refusal_log::RefusalLog,
    auth_blocks: AuthBlocks,
    /// Request bodies held in memory, across every connection.
    body_budget: Arc<body_budget::BodyBudget>,
    /// What answers journey calls with data, when a source has `[[sources.journeys]]`.
    answers: Option<Arc<Answers>>,
}

impl AppState {
    /// Must run inside a tokio runtime: with a JetStream log, a task keeps the secret URLs
    /// fresh from their bucket.
    pub fn new(config: Config, log: RequestLog, answers: Option<Arc<Answers>>) -> Self {
        let rate_limits = config
            .sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), RateLimit::new(s.max_requests_per_second?))))
            .collect();
        let secret_urls = match &log {
            RequestLog::Sqlite(_) => SecretUrls::start(config.store.db_path()),
            RequestLog::JetStream(stream) => SecretUrls::start_from_bucket(stream.stream().clone()),
        };
        let metrics = Metrics::new(&config.sources);
        let refusal_log = refusal_log::RefusalLog::default();
        let auth_blocks = AuthBlocks::new(config.server.auth_block);
        let body_budget = body_budget::BodyBudget::new(config.server.max_inflight_body_bytes.get());
        AppState {
            config,
            log,
            rate_limits,
            secret_urls,
            metrics,
            refusal_log,
            auth_blocks,
            body_budget,
            answers,
        }
    }
}

/// A loader's routes: health, readiness and metrics, nothing that stores.
pub fn operations_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .with_state(state)
}

/// All routes. Methods not listed get 405 with an `Allow` header.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/iterable/{source}", post(handlers::system_webhook))
        .route("/hooks/{secret}", post(handlers::secret_url))
        .route("/iterable/{source}/oauth/token", post(token_endpoint::token))
        .route(
            "/iterable/{source}/journey/{journey}",
            get(handlers::journey)
                .head(handlers::head_not_stored)
                .post(handlers::journey)
                .put(handlers::journey)
                .patch(handlers::journey)
                .delete(handlers::journey),
        )
        .route(
            SNOWPLOW_PATH,
            get(handlers::snowplow).head(handlers::head_not_stored).post(handlers::snowplow),
        )
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
}
