//! `POST /iterable/{source}/oauth/token`: the OAuth 2.0 client credentials grant (RFC 6749
//! section 4.4) for an `auth = "oauth2"` source, which Iterable's journey webhooks use to get
//! the bearer token they then send.
//!
//! The client authenticates with HTTP Basic or with `client_id` and `client_secret` in the
//! form (section 2.3.1; Iterable's exact request is not documented, so both, and a JSON body
//! too). Errors are section 5.2's. Nothing of the request is stored: it carries the secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt as _, Limited};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::unix_now;
use super::client_ip::allowed;
use super::handlers::caller;
use super::request::Incoming;
use super::{AppState, ReceiveError, oauth_token};
use crate::config::{OAuthClient, SourceAuth};

/// A token request is a few form fields; anything larger is not one.
const MAX_TOKEN_REQUEST_BYTES: usize = 16 * 1024;

/// An error answer of RFC 6749 section 5.2.
#[derive(Debug)]
struct GrantError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl GrantError {
    fn invalid_request(description: impl Into<String>) -> Self {
        GrantError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: description.into(),
        }
    }

    fn invalid_client() -> Self {
        GrantError {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: "unknown client or wrong secret".to_owned(),
        }
    }
}

impl IntoResponse for GrantError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="hookhouse""#),
            );
        }
        response
    }
}

/// Section 5.1: token answers must not be cached.
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

#[tracing::instrument(level = "debug", skip_all, fields(source = %crate::telemetry::SenderText(&source)))]
pub(super) async fn token(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    incoming: Incoming,
) -> Result<Response, ReceiveError> {
    let client = caller(&state, &incoming);
    let refused = |reason: &'static str| state.metrics.refused(&source, reason);
    state.auth_blocks.check(client).inspect_err(|_| refused("auth_blocked"))?;
    let Some(config) = state.config.source(&source) else {
        refused("unknown_source");
        return Err(ReceiveError::UnknownSource(source.clone()));
    };
    if !allowed(client, &config.allow) {
        refused("forbidden");
        return Err(ReceiveError::Forbidden);
    }
    let answer = match read_form(&incoming.headers, incoming.body, &state).await {
        Ok(form) => grant(&source, &config.auth, &incoming.headers, &form, client, &state),
        Err(err) => Err(err),
    };
    Ok(answer.unwrap_or_else(|err| {
        refused(if err.code == "invalid_client" { "unauthorized" } else { "bad_token_request" });
        err.into_response()
    }))
}

/// The grant's checks in section 4.4.2's order, then a token.
fn grant(
    source: &str,
    auth: &SourceAuth,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    client: IpAddr,
    state: &AppState,
) -> Result<Response, GrantError> {
    match form.get("grant_type").map(String::as_str) {
        None => return Err(GrantError::invalid_request("`grant_type` is missing")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(GrantError {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: "this endpoint grants `client_credentials` only".to_owned(),
            });
        }
    }
    let SourceAuth::OAuth2(clients) = auth else {
        return Err(GrantError {
            status: StatusCode::BAD_REQUEST,
            code: "unauthorized_client",
            description: format!(
                "source `{source}` does not take OAuth tokens: set `auth = \"oauth2\"` and add \
                 `[[sources.clients]]`"
            ),
        });
    };
    let (id, secret) = client_credentials(headers, form)?;
    let Some(found) = authenticate(clients, &id, &secret) else {
        state.auth_blocks.failed(client);
        tracing::info!(source, %client, "token request refused: unknown client or wrong secret");
        return Err(GrantError::invalid_client());
    };
    let token = oauth_token::issue(source, found, unix_now());
    tracing::debug!(source, client = found.id, "issued an access token");
    state.metrics.token_issued(source);
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": found.token_ttl.as_secs(),
    });
    // Every scope asked for is granted: the token opens this source, whatever it is called.
    if let Some(scope) = form.get("scope") {
        body["scope"] = Value::String(scope.clone());
    }
    Ok((no_store(), Json(body)).into_response())
}

/// The client id and secret, from HTTP Basic or the form; both at once is refused (section
/// 2.3: a client must not use more than one method).
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, String), GrantError> {
    let in_form = form.get("client_id").map(|id| (id.clone(), form.get("client_secret").cloned()));
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(basic_credentials(value).ok_or_else(GrantError::invalid_client)?),
    };
    match (basic, in_form) {
        (Some(_), Some(_)) => Err(GrantError::invalid_request(
            "the client is authenticated twice: use HTTP Basic or the form fields, not both",
        )),
        (Some(pair), None) => Ok(pair),
        (None, Some((id, Some(secret)))) => Ok((id, secret)),
        (None, Some((_, None))) | (None, None) => Err(GrantError::invalid_client()),
    }
}

/// `Basic base64(id:secret)`, each part form-urlencoded (section 2.3.1).
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |text: &str| -> String {
        form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

/// The client with this id and secret. Every client's secret is compared, by SHA-256 digest
/// in constant time, so the time taken says neither which id exists nor how long its secret is.
fn authenticate<'a>(clients: &'a [OAuthClient], id: &str, secret: &str) -> Option<&'a OAuthClient> {
    let given = Sha256::digest(secret.as_bytes());
    let mut found = None;
    for client in clients {
        let matches = Sha256::digest(client.secret.expose_secret().as_bytes()).ct_eq(&given);
        if bool::from(matches) && client.id == id {
            found = Some(client);
        }
    }
    found
}

/// The form (or JSON object) of the token request; a parameter given twice is refused (section
/// 3.2: parameters must not be included more than once).
async fn read_form(
    headers: &HeaderMap,
    body: axum::body::Body,
    state: &AppState,
) -> Result<HashMap<String, String>, GrantError> {
    let read = Limited::new(body, MAX_TOKEN_REQUEST_BYTES).collect();
    let bytes = match tokio::time::timeout(state.config.server.body_read_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return Err(GrantError::invalid_request(format!(
                "the body is not a token request (at most {MAX_TOKEN_REQUEST_BYTES} bytes)"
            )));
        }
        Err(_) => return Err(GrantError::invalid_request("the body did not arrive in time")),
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut form = HashMap::new();
    let mut add = |key: String, value: String| {
        if form.insert(key.clone(), value).is_some() {
            return Err(GrantError::invalid_request(format!("`{key}` is given twice")));
        }
        Ok(())
    };
    if content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(GrantError::invalid_request("the JSON body is not an object"));
        };
        for (key, value) in map {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            add(key, text)?;
        }
    } else {
        for (key, value) in form_urlencoded::parse(&bytes) {
            add(key.into_owned(), value.into_owned())?;
        }
    }
    Ok(form)
}
