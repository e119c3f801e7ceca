//! A source's authentication: its mode and its accepted secrets, resolved from inline values,
//! `env:NAME` or `file:PATH`. Secrets live in `SecretString`, so they never reach a log line
//! or a `Debug` print.

use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::journeys::{OAuthClient, RawClient, RawJourney, resolve_clients};
use crate::pipeline::PseudonymKey;

/// A source as written in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: String,
    /// `none`, `basic`, `token`, `header` or `oauth2`.
    #[serde(default = "default_auth")]
    pub auth: String,
    /// Accepted secrets; two or more live at once let a secret be rotated without losing
    /// traffic while Iterable's configuration change propagates.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The header carrying the secret, for `auth = "header"`.
    #[serde(default)]
    pub header: Option<String>,
    /// Addresses or CIDR ranges allowed to send to this source (empty: any).
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// A local copy of Iterable's published IP ranges (JSON, prefixes under `webhooks`), added
    /// to `allow_ips`.
    #[serde(default)]
    pub allow_ips_file: Option<PathBuf>,
    /// Requests per second accepted from this source (also the burst); none means no limit.
    #[serde(default)]
    pub max_requests_per_second: Option<u32>,
    /// Keyed hashing of personal fields (`[sources.pseudonymise]`).
    #[serde(default)]
    pub pseudonymise: Option<RawPseudonymise>,
    /// Keep no raw body for a request whose every part became an event or journey call.
    #[serde(default)]
    pub drop_raw_bodies: bool,
    /// The clients of `auth = "oauth2"` (`[[sources.clients]]`).
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// Journey endpoints that answer with data (`[[sources.journeys]]`).
    #[serde(default)]
    pub journeys: Vec<RawJourney>,
}

/// `[sources.pseudonymise]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPseudonymise {
    /// The HMAC key, inline, `env:NAME` or `file:PATH` like the secrets.
    pub key: String,
}

fn default_auth() -> String {
    "none".to_owned()
}

/// How a source's requests prove they come from Iterable.
#[derive(Debug, Clone)]
pub enum SourceAuth {
    None,
    /// `Authorization: Basic <x>`, `x` the secret itself or base64 of a `user:password` secret.
    Basic(Vec<SecretString>),
    /// `Authorization: OAuth2 <secret>` (Iterable's spelling) or `Bearer <secret>`.
    Token(Vec<SecretString>),
    /// `<header>: <secret>`; the header name is lower-case.
    Header {
        name: String,
        secrets: Vec<SecretString>,
    },
    /// `Authorization: Bearer <token>` (or `OAuth2`), a token this source's token endpoint
    /// issued to one of these clients (OAuth 2.0 client credentials).
    OAuth2(Vec<OAuthClient>),
}

impl SourceAuth {
    pub fn mode(&self) -> &'static str {
        match self {
            SourceAuth::None => "none",
            SourceAuth::Basic(_) => "basic",
            SourceAuth::Token(_) => "token",
            SourceAuth::Header { .. } => "header",
            SourceAuth::OAuth2(_) => "oauth2",
        }
    }

    /// The accepted secrets (none for `none`; `oauth2` accepts tokens, not secrets).
    pub fn secrets(&self) -> &[SecretString] {
        match self {
            SourceAuth::None | SourceAuth::OAuth2(_) => &[],
            SourceAuth::Basic(secrets) | SourceAuth::Token(secrets) => secrets,
            SourceAuth::Header { secrets, .. } => secrets,
        }
    }

    /// The header that carries this source's secret, which must never be stored.
    pub fn secret_header(&self) -> Option<&str> {
        match self {
            SourceAuth::Header { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Validates one source's authentication, adding every problem to `problems`.
pub(super) fn resolve_auth(raw: &RawSource, problems: &mut Vec<String>) -> SourceAuth {
    let name = &raw.name;
    let secrets: Vec<SecretString> =
        raw.secrets.iter().filter_map(|spec| resolve_secret(name, spec, problems)).collect();
    // Named by position, never by value: the message may reach a log.
    for (index, secret) in secrets.iter().enumerate() {
        if secret.expose_secret().chars().count() < MIN_SECRET_LEN {
            problems.push(format!(
                "source `{name}`: secret {} of {} is shorter than {MIN_SECRET_LEN} characters; \
                 a short secret can be guessed (make one with `openssl rand -hex 24`)",
                index + 1,
                secrets.len()
            ));
        }
    }
    let needs_secrets = |problems: &mut Vec<String>| {
        if raw.secrets.is_empty() {
            problems
                .push(format!("source `{name}` has `auth = \"{}\"` but no `secrets`", raw.auth));
        }
    };
    let clients = resolve_clients(raw, problems);
    match raw.auth.as_str() {
        "none" => {
            if !raw.secrets.is_empty() {
                problems.push(format!(
                    "source `{name}` lists `secrets` but `auth = \"none\"`: set `auth` to \
                     `basic`, `token` or `header`"
                ));
            }
            SourceAuth::None
        }
        "basic" => {
            needs_secrets(problems);
            SourceAuth::Basic(secrets)
        }
        "token" => {
            needs_secrets(problems);
            SourceAuth::Token(secrets)
        }
        "header" => {
            needs_secrets(problems);
            let header = raw.header.as_deref().unwrap_or("").trim().to_ascii_lowercase();
            if header.is_empty() || axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.push(format!(
                    "source `{name}` has `auth = \"header\"` and needs `header`, the name of \
                     the header carrying the secret (e.g. `X-Api-Key`)"
                ));
            }
            SourceAuth::Header { name: header, secrets }
        }
        "oauth2" => {
            if !raw.secrets.is_empty() {
                problems.push(format!(
                    "source `{name}` has `auth = \"oauth2\"`, which takes `[[sources.clients]]`, \
                     not `secrets`"
                ));
            }
            SourceAuth::OAuth2(clients)
        }
        // The value is not repeated: a secret pasted into the wrong key must not reach a log.
        _ => {
            problems.push(format!(
                "source `{name}`: `auth` is not one of none, basic, token, header, oauth2"
            ));
            SourceAuth::None
        }
    }
}

/// Validates a source's pseudonymisation key, adding every problem to `problems`.
pub(super) fn resolve_pseudonymise(
    raw: &RawSource,
    problems: &mut Vec<String>,
) -> Option<PseudonymKey> {
    let spec = &raw.pseudonymise.as_ref()?.key;
    let key = resolve_secret(&raw.name, spec, problems)?;
    // A short key can be found by trying every value: then every digest is as good as plain.
    if key.expose_secret().len() < MIN_PSEUDONYM_KEY_LEN {
        problems.push(format!(
            "source `{}`: the `pseudonymise.key` must be at least {MIN_PSEUDONYM_KEY_LEN} \
             characters (e.g. `openssl rand -hex 32`)",
            raw.name
        ));
        return None;
    }
    Some(PseudonymKey::new(key))
}

/// The shortest source secret accepted.
const MIN_SECRET_LEN: usize = 16;

/// The shortest pseudonymisation key accepted.
const MIN_PSEUDONYM_KEY_LEN: usize = 16;

/// An inline secret, `env:NAME` or `file:PATH` (trailing newline trimmed).
fn resolve_secret(source: &str, spec: &str, problems: &mut Vec<String>) -> Option<SecretString> {
    super::secret::resolve(&format!("source `{source}`"), spec, problems)
}

/// Parses `1.2.3.0/24`, `2001:db8::/32` or a bare address (a one-address range).
pub(super) fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Validates a source's allow-list, adding every problem to `problems`.
pub(super) fn resolve_allow(raw: &RawSource, problems: &mut Vec<String>) -> Vec<IpNet> {
    let mut allow = Vec::new();
    for entry in &raw.allow_ips {
        match parse_net(entry) {
            Some(net) => allow.push(net),
            None => problems.push(format!(
                "source `{}`: `{entry}` in `allow_ips` is not an address or CIDR range",
                raw.name
            )),
        }
    }
    if let Some(path) = &raw.allow_ips_file {
        match iterable_ranges(path) {
            Ok(ranges) if !ranges.is_empty() => allow.extend(ranges),
            Ok(_) => problems.push(format!(
                "source `{}`: `{}` has no ranges under `webhooks`",
                raw.name,
                path.display()
            )),
            Err(reason) => problems.push(format!("source `{}`: {reason}", raw.name)),
        }
    }
    allow
}

/// Every CIDR string found under the `webhooks` key of Iterable's ranges document, whatever
/// its grouping (per data centre, per region, a flat list).
fn iterable_ranges(path: &std::path::Path) -> Result<Vec<IpNet>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
    let document: Value = serde_json::from_str(&text)
        .map_err(|err| format!("`{}` is not JSON: {err}", path.display()))?;
    let mut ranges = Vec::new();
    if let Some(webhooks) = document.get("webhooks") {
        collect_nets(webhooks, &mut ranges);
    }
    Ok(ranges)
}

fn collect_nets(value: &Value, out: &mut Vec<IpNet>) {
    match value {
        Value::String(text) => out.extend(parse_net(text)),
        Value::Array(items) => items.iter().for_each(|item| collect_nets(item, out)),
        Value::Object(map) => map.values().for_each(|item| collect_nets(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterable_ranges_are_read_whatever_their_grouping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ip-ranges.json");
        std::fs::write(
            &path,
            r#"{"webhooks": {"US": ["52.0.0.0/24", "3.3.3.3"], "EU": {"prefixes": ["2001:db8::/32"]}},
               "other": ["9.9.9.0/24"]}"#,
        )
        .unwrap();
        let ranges = iterable_ranges(&path).unwrap();
        let text: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["2001:db8::/32", "52.0.0.0/24", "3.3.3.3/32"]);
    }
}
