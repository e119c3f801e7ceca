//! Authentication: the one place an unauthenticated request becomes an [`AcceptedRequest`],
//! the only type the spool will store. Secrets are compared in constant time and never logged.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ReceiveError;
use super::client_ip::allowed;
use super::drain::refuse;
use super::oauth_token;
use super::redact::Redaction;
use super::request::{BodyLimits, Incoming};
use crate::config::{SourceAuth, SourceConfig};
use crate::request::AcceptedRequest;

/// How a request claims to come from its source.
#[derive(Debug, Clone, Copy)]
pub(super) enum Proof<'a> {
    /// The source's own mode: none, or a secret in a header.
    Headers,
    /// It came through the secret URL with this id and secret; the secret itself is not kept.
    SecretUrl { id: i64, secret: &'a str },
}

/// Checks the caller's address (`client`, after trusted proxies) against the source's
/// allow-list (403), then its credentials (401), before its body is looked at; then builds the
/// record the spool keeps, without the credentials.
pub(super) async fn authenticate(
    source: &SourceConfig,
    proof: Proof<'_>,
    client: IpAddr,
    keep_headers: &[String],
    mut incoming: Incoming,
    limits: BodyLimits<'_>,
) -> Result<AcceptedRequest, ReceiveError> {
    // Refusals are logged in aggregate, with the address, by the handlers' refusal log.
    if !allowed(client, &source.allow) {
        return Err(refuse(incoming.body, limits.max_bytes, ReceiveError::Forbidden).await);
    }
    let mut redaction = Redaction {
        keep_headers,
        secret_header: source.auth.secret_header(),
        secrets: source.auth.secrets().iter().map(ExposeSecret::expose_secret).collect(),
    };
    if let Proof::SecretUrl { id, secret } = proof {
        redaction.secrets.push(secret);
        // The path holds the secret: store which URL it was, never the secret.
        let query = incoming.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        incoming.uri = format!("/hooks/secret-{id}{query}")
            .parse()
            .map_err(|_| ReceiveError::BadRequest("malformed query string".to_owned()))?;
    } else if !credentials_match(&source.name, &source.auth, &incoming.headers) {
        let presented = incoming.headers.contains_key(header::AUTHORIZATION);
        let err = ReceiveError::Unauthorized { challenge: challenge(&source.auth, presented) };
        return Err(refuse(incoming.body, limits.max_bytes, err).await);
    }
    let raw = incoming.into_raw(&source.name, &redaction, client, limits).await?;
    Ok(AcceptedRequest::authenticated(raw))
}

fn credentials_match(source: &str, auth: &SourceAuth, headers: &HeaderMap) -> bool {
    // A request with two credentials is refused whichever is right: proxies and servers
    // disagree on which of two wins, and a check must not pick the one an attacker chose.
    let credential_header = auth.secret_header().unwrap_or(header::AUTHORIZATION.as_str());
    if headers.get_all(credential_header).iter().nth(1).is_some() {
        return false;
    }
    let authorization = || headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match auth {
        SourceAuth::None => true,
        SourceAuth::Token(secrets) => authorization()
            .and_then(bearer)
            .is_some_and(|token| any_equal(secrets, token.as_bytes())),
        SourceAuth::OAuth2(clients) => authorization().and_then(bearer).is_some_and(|token| {
            oauth_token::verify(source, clients, token, unix_now())
                .inspect_err(|why| tracing::debug!(source, ?why, "access token refused"))
                .is_ok()
        }),
        SourceAuth::Basic(secrets) => authorization()
            .and_then(|value| {
                let (scheme, given) = value.trim().split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("basic") {
                    return None;
                }
                let given = given.trim();
                // Iterable sends the configured token as is; standard clients send base64 of
                // `user:password`. The secret may be written either way.
                let decoded = BASE64.decode(given).unwrap_or_default();
                Some(any_equal(secrets, given.as_bytes()) | any_equal(secrets, &decoded))
            })
            .unwrap_or(false),
        SourceAuth::Header { name, secrets } => headers
            .get(name.as_str())
            .map(|value| any_equal(secrets, value.as_bytes()))
            .unwrap_or(false),
    }
}

/// The token of `Authorization: Bearer <token>`, or `OAuth2 <token>` (Iterable's spelling for
/// system webhooks), the scheme in any case.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let known = scheme.eq_ignore_ascii_case("oauth2") || scheme.eq_ignore_ascii_case("bearer");
    known.then(|| token.trim())
}

/// Seconds since the Unix epoch, as token expiries count them.
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Whether `given` equals any secret, in time independent of where they differ and of their
/// lengths: what is compared are SHA-256 digests, always 32 bytes (comparing the texts
/// themselves returns at once on a length mismatch, which tells a guesser the length). Every
/// secret is compared, so the time does not say which one matched either.
fn any_equal(secrets: &[SecretString], given: &[u8]) -> bool {
    let given = Sha256::digest(given);
    secrets
        .iter()
        .fold(subtle::Choice::from(0), |found, secret| {
            found | Sha256::digest(secret.expose_secret().as_bytes()).ct_eq(&given)
        })
        .into()
}

/// The `WWW-Authenticate` of a 401; `presented`: the request had an `Authorization` header.
fn challenge(auth: &SourceAuth, presented: bool) -> String {
    match auth {
        SourceAuth::Basic(_) => r#"Basic realm="hookhouse""#.to_owned(),
        SourceAuth::Header { name, .. } => format!(r#"ApiKey realm="hookhouse", header="{name}""#),
        SourceAuth::Token(_) | SourceAuth::None => r#"Bearer realm="hookhouse""#.to_owned(),
        // RFC 6750 section 3.1: a token that was refused is `invalid_token` (the client should
        // ask the token endpoint for a new one); a request with no credentials gets no error
        // code.
        SourceAuth::OAuth2(_) if presented => {
            r#"Bearer realm="hookhouse", error="invalid_token""#.to_owned()
        }
        SourceAuth::OAuth2(_) => r#"Bearer realm="hookhouse""#.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(s.to_string())).collect()
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn token_accepts_oauth2_and_bearer_and_every_live_secret() {
        let auth = SourceAuth::Token(secrets(&["new", "old"]));
        assert!(credentials_match("s", &auth, &with("authorization", "OAuth2 new")));
        assert!(credentials_match("s", &auth, &with("authorization", "Bearer old")));
        assert!(credentials_match("s", &auth, &with("authorization", "bearer  new ")));
        assert!(!credentials_match("s", &auth, &with("authorization", "Bearer nope")));
        let mut two = with("authorization", "Bearer new");
        two.append("authorization", HeaderValue::from_static("Bearer wrong"));
        assert!(!credentials_match("s", &auth, &two), "two credentials are refused");
        assert!(!credentials_match("s", &auth, &with("authorization", "Basic new")));
        assert!(!credentials_match("s", &auth, &HeaderMap::new()));
    }

    #[test]
    fn basic_accepts_the_secret_itself_or_base64_of_user_password() {
        let auth = SourceAuth::Basic(secrets(&["iterable:pa55", "raw-token"]));
        let encoded = BASE64.encode("iterable:pa55");
        assert!(credentials_match("s", &auth, &with("authorization", &format!("Basic {encoded}"))));
        assert!(credentials_match("s", &auth, &with("authorization", "Basic raw-token")));
        assert!(!credentials_match(
            "s",
            &auth,
            &with("authorization", "Basic aXRlcmFibGU6d3Jvbmc=")
        ));
    }

    #[test]
    fn secrets_of_other_lengths_never_match() {
        let live = secrets(&["tok-0123456789abcdef"]);
        assert!(any_equal(&live, b"tok-0123456789abcdef"));
        for given in [&b"tok-0123456789abcde"[..], b"tok-0123456789abcdefX", b"", b"t"] {
            assert!(!any_equal(&live, given), "{given:?}");
        }
    }

    #[test]
    fn header_mode_reads_its_header() {
        let auth = SourceAuth::Header { name: "x-api-key".into(), secrets: secrets(&["k1"]) };
        assert!(credentials_match("s", &auth, &with("x-api-key", "k1")));
        assert!(!credentials_match("s", &auth, &with("x-api-key", "k2")));
        assert!(!credentials_match("s", &auth, &with("authorization", "Bearer k1")));
    }
}
