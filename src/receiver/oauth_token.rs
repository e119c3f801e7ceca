//! Access tokens of `auth = "oauth2"` sources: issued by the source's token endpoint to a
//! configured client, verified on every request to the source.
//!
//! A token is never stored: it is signed, so every hookhouse that shares the configuration
//! verifies it without asking another. It reads
//! `hh1.<client id, base64url>.<expiry, unix seconds>.<nonce>.<HMAC-SHA256, base64url>`, the MAC
//! keyed by a key derived from the client's secret and the source's name. So a token stops
//! working when it expires, when its client is removed or its secret changes, and it is good
//! for its own source only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::OAuthClient;

const VERSION: &str = "hh1";

/// Why a token was refused (for the log and the challenge; never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenError {
    Malformed,
    /// No configured client has the id it names (removed, or never one).
    UnknownClient,
    /// Its signature does not match: forged, or its client's secret changed.
    BadSignature,
    Expired,
}

/// A token for `client` of `source`, valid from `now` (unix seconds) for the client's TTL.
pub(super) fn issue(source: &str, client: &OAuthClient, now: u64) -> String {
    let expires = now + client.token_ttl.as_secs();
    let nonce: [u8; 12] = rand::random();
    let signed = format!("{VERSION}.{}.{expires}.{}", B64.encode(&client.id), B64.encode(nonce));
    let mac = mac(source, client).chain_update(signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", B64.encode(mac))
}

/// The client `token` was issued to, if it is one of `clients`, its signature holds and it
/// has not expired at `now`.
pub(super) fn verify<'a>(
    source: &str,
    clients: &'a [OAuthClient],
    token: &str,
    now: u64,
) -> Result<&'a OAuthClient, TokenError> {
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.split('.');
    let (Some(VERSION), Some(id), Some(expires), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let id = B64.decode(id).map_err(|_| TokenError::Malformed)?;
    let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
    let client = clients
        .iter()
        .find(|client| client.id.as_bytes() == id.as_slice())
        .ok_or(TokenError::UnknownClient)?;
    // Constant time: `verify_slice` compares without returning early.
    mac(source, client)
        .chain_update(signed.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    // A token that outlives its client's TTL from now was issued under a longer one: a
    // shortened TTL applies to tokens already out, too.
    if expires <= now || expires > now + client.token_ttl.as_secs() {
        return Err(TokenError::Expired);
    }
    Ok(client)
}

/// The MAC of one client's tokens for one source, keyed by HMAC(client secret, source name)
/// so the same client configured on two sources gets tokens good for one each.
fn mac(source: &str, client: &OAuthClient) -> Hmac<Sha256> {
    let key = Hmac::<Sha256>::new_from_slice(client.secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length")
        .chain_update(b"hookhouse oauth2 token key\0")
        .chain_update(source.as_bytes())
        .finalize()
        .into_bytes();
    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn client(id: &str, secret: &str, ttl: u64) -> OAuthClient {
        OAuthClient {
            id: id.into(),
            secret: SecretString::from(secret),
            token_ttl: Duration::from_secs(ttl),
        }
    }

    /// The id of the client `verify` found.
    fn who<'a>(
        source: &str,
        clients: &'a [OAuthClient],
        token: &str,
        now: u64,
    ) -> Result<&'a str, TokenError> {
        verify(source, clients, token, now).map(|client| client.id.as_str())
    }

    #[test]
    fn a_token_is_good_for_its_client_source_and_lifetime_only() {
        let clients =
            [client("a", "secret-a-0123456789", 60), client("b", "secret-b-0123456789", 60)];
        let token = issue("journeys", &clients[1], 1_000);
        assert_eq!(who("journeys", &clients, &token, 1_000).unwrap(), "b");
        assert_eq!(who("journeys", &clients, &token, 1_059).unwrap(), "b");
        assert_eq!(who("journeys", &clients, &token, 1_060), Err(TokenError::Expired));
        assert_eq!(who("other", &clients, &token, 1_000), Err(TokenError::BadSignature));
        assert_eq!(who("journeys", &clients[..1], &token, 1_000), Err(TokenError::UnknownClient));
        let rotated = [client("b", "secret-b-changed-012", 60)];
        assert_eq!(who("journeys", &rotated, &token, 1_000), Err(TokenError::BadSignature));
        let shortened = [client("b", "secret-b-0123456789", 10)];
        assert_eq!(who("journeys", &shortened, &token, 1_000), Err(TokenError::Expired));
        assert_ne!(token, issue("journeys", &clients[1], 1_000), "each token has its own nonce");
    }

    #[test]
    fn a_changed_token_is_refused() {
        let clients = [client("a", "secret-a-0123456789", 60)];
        let token = issue("journeys", &clients[0], 1_000);
        let (signed, _) = token.rsplit_once('.').unwrap();
        let longer = signed.replace(".1060.", ".9999.");
        let forged = format!("{longer}.{}", token.rsplit_once('.').unwrap().1);
        assert_eq!(who("journeys", &clients, &forged, 1_000), Err(TokenError::BadSignature));
        for garbage in ["", "hh1", "hh1.a.b.c.d", "hh2.YQ.1060.AAAA.AAAA", "Bearer x"] {
            assert_eq!(who("journeys", &clients, garbage, 1_000), Err(TokenError::Malformed));
        }
    }
}
