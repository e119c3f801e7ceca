//! A source's authentication: its mode and its accepted secrets, resolved from inline values,
//! `env:NAME` or `file:PATH`. Secrets live in `SecretString`, so they never reach a log line
//! or a `Debug` print.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A source as written in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: String,
    /// `none`, `basic`, `token` or `header`.
    #[serde(default = "default_auth")]
    pub auth: String,
    /// Accepted secrets; two or more live at once let a secret be rotated without losing
    /// traffic while Iterable's configuration change propagates.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The header carrying the secret, for `auth = "header"`.
    #[serde(default)]
    pub header: Option<String>,
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
}

impl SourceAuth {
    pub fn mode(&self) -> &'static str {
        match self {
            SourceAuth::None => "none",
            SourceAuth::Basic(_) => "basic",
            SourceAuth::Token(_) => "token",
            SourceAuth::Header { .. } => "header",
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
    let needs_secrets = |problems: &mut Vec<String>| {
        if raw.secrets.is_empty() {
            problems
                .push(format!("source `{name}` has `auth = \"{}\"` but no `secrets`", raw.auth));
        }
    };
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
        other => {
            problems.push(format!(
                "source `{name}`: `auth = \"{other}\"` is not one of none, basic, token, header"
            ));
            SourceAuth::None
        }
    }
}

/// An inline secret, `env:NAME` or `file:PATH` (trailing newline trimmed).
fn resolve_secret(source: &str, spec: &str, problems: &mut Vec<String>) -> Option<SecretString> {
    let value = if let Some(var) = spec.strip_prefix("env:") {
        match std::env::var(var) {
            Ok(value) => value,
            Err(_) => {
                problems
                    .push(format!("source `{source}`: environment variable `{var}` is not set"));
                return None;
            }
        }
    } else if let Some(path) = spec.strip_prefix("file:") {
        match std::fs::read_to_string(path) {
            Ok(text) => text.trim_end_matches(['\n', '\r']).to_owned(),
            Err(err) => {
                problems
                    .push(format!("source `{source}`: cannot read secret file `{path}`: {err}"));
                return None;
            }
        }
    } else {
        spec.to_owned()
    };
    if value.is_empty() {
        problems.push(format!("source `{source}`: a secret is empty"));
        return None;
    }
    Some(SecretString::from(value))
}
