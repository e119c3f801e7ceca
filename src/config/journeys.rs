//! A source's OAuth 2.0 clients (`[[sources.clients]]`, for `auth = "oauth2"`) and its journey
//! endpoints that answer with data (`[[sources.journeys]]`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::source::RawSource;

/// `[[sources.clients]]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub id: String,
    /// Inline, `env:NAME` or `file:PATH`.
    pub secret: String,
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
}

/// `[[sources.journeys]]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJourney {
    pub name: String,
    /// `engagement` or `sql`.
    pub answer: String,
    /// For `engagement`: only these sources' events (default: every source).
    #[serde(default)]
    pub from_sources: Option<Vec<String>>,
    /// For `sql`: one read-only statement with named parameters (`:email`).
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub max_rows: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_token_ttl() -> u64 {
    3600
}

/// A client that may ask this source's token endpoint for access tokens.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub id: String,
    pub secret: SecretString,
    pub token_ttl: Duration,
}

/// A journey endpoint that answers from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyAnswer {
    /// The `{journey}` of `/iterable/{source}/journey/{journey}`.
    pub journey: String,
    pub answer: AnswerKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnswerKind {
    /// The built-in profile of the user's engagement; `None`: events of every source.
    Engagement { from_sources: Option<Vec<String>> },
    /// The first row of a read-only query; `max_rows` above 1 adds the rows as `rows`.
    Sql { query: String, max_rows: usize, timeout: Duration },
}

/// The longest a token may live: a day; Iterable asks again when one expires.
const MAX_TOKEN_TTL_SECS: u64 = 86_400;
/// The shortest client secret accepted, as for a source's secrets.
const MIN_CLIENT_SECRET_LEN: usize = 16;
/// The most rows an `sql` answer may carry.
const MAX_ROWS: u64 = 100;
/// An `sql` answer's time limit when none is set, and the most it may be: Iterable's data
/// feeds must answer within 10 s, and a journey call is answered after the query.
const DEFAULT_SQL_TIMEOUT_MS: u64 = 1000;
const MAX_SQL_TIMEOUT_MS: u64 = 5000;

/// Validates the source's clients, adding every problem to `problems`.
pub(super) fn resolve_clients(raw: &RawSource, problems: &mut Vec<String>) -> Vec<OAuthClient> {
    let name = &raw.name;
    let mut clients: Vec<OAuthClient> = Vec::new();
    for client in &raw.clients {
        let owner = format!("source `{name}`, client `{}`", client.id);
        // RFC 6749 appendix A.1: a client id is visible ASCII; `:` would break HTTP Basic.
        let id_ok = !client.id.is_empty()
            && client.id.len() <= 128
            && client.id.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !id_ok {
            problems.push(format!(
                "source `{name}`: a client `id` must be 1 to 128 visible ASCII characters \
                 without `:`"
            ));
        }
        if clients.iter().any(|known| known.id == client.id) {
            problems.push(format!("{owner} is listed twice"));
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&client.token_ttl_secs) {
            problems.push(format!(
                "{owner}: `token_ttl_secs` must be 1 to {MAX_TOKEN_TTL_SECS} (an hour, 3600, \
                 is usual)"
            ));
        }
        let Some(secret) = super::secret::resolve(&owner, &client.secret, problems) else {
            continue;
        };
        if secret.expose_secret().chars().count() < MIN_CLIENT_SECRET_LEN {
            problems.push(format!(
                "{owner}: the secret is shorter than {MIN_CLIENT_SECRET_LEN} characters (make \
                 one with `openssl rand -hex 24`)"
            ));
        }
        clients.push(OAuthClient {
            id: client.id.clone(),
            secret,
            token_ttl: Duration::from_secs(client.token_ttl_secs),
        });
    }
    match (raw.auth.as_str(), raw.clients.is_empty()) {
        ("oauth2", true) => problems.push(format!(
            "source `{name}` has `auth = \"oauth2\"` but no `[[sources.clients]]`: add one with \
             an `id` and a `secret` for Iterable's OAuth settings"
        )),
        ("oauth2", false) | (_, true) => {}
        (_, false) => problems.push(format!(
            "source `{name}` lists `[[sources.clients]]` but `auth` is not `oauth2`"
        )),
    }
    clients
}

/// Validates the source's journey answers, adding every problem to `problems`. Whether an
/// `sql` query only reads is checked against the store's schema when the answers are opened
/// (`answers::check`), which `check-config` runs too.
pub(super) fn resolve_journeys(raw: &RawSource, problems: &mut Vec<String>) -> Vec<JourneyAnswer> {
    let mut journeys: Vec<JourneyAnswer> = Vec::new();
    for journey in &raw.journeys {
        let owner = format!("source `{}`, journey `{}`", raw.name, journey.name);
        if journey.name.is_empty() || journey.name.contains('/') {
            problems.push(format!("{owner}: `name` must be a non-empty path segment"));
        }
        if journeys.iter().any(|known| known.journey == journey.name) {
            problems.push(format!("{owner} is configured twice"));
        }
        let sql_only = [
            ("query", journey.query.is_some()),
            ("max_rows", journey.max_rows.is_some()),
            ("timeout_ms", journey.timeout_ms.is_some()),
        ];
        let answer = match journey.answer.as_str() {
            "engagement" => {
                for (key, _) in sql_only.iter().filter(|(_, set)| *set) {
                    problems.push(format!("{owner}: `{key}` is for `answer = \"sql\"`"));
                }
                AnswerKind::Engagement { from_sources: journey.from_sources.clone() }
            }
            "sql" => {
                if journey.from_sources.is_some() {
                    problems.push(format!(
                        "{owner}: `from_sources` is for `answer = \"engagement\"` (an `sql` \
                         query names its own sources)"
                    ));
                }
                let query = journey.query.clone().unwrap_or_default();
                if query.trim().is_empty() {
                    problems.push(format!(
                        "{owner}: `answer = \"sql\"` needs a `query`, e.g. `SELECT count(*) AS \
                         opens FROM events WHERE email = :email AND event_name = 'emailOpen'`"
                    ));
                }
                let max_rows = journey.max_rows.unwrap_or(1);
                if !(1..=MAX_ROWS).contains(&max_rows) {
                    problems.push(format!("{owner}: `max_rows` must be 1 to {MAX_ROWS}"));
                }
                let timeout_ms = journey.timeout_ms.unwrap_or(DEFAULT_SQL_TIMEOUT_MS);
                if !(1..=MAX_SQL_TIMEOUT_MS).contains(&timeout_ms) {
                    problems
                        .push(format!("{owner}: `timeout_ms` must be 1 to {MAX_SQL_TIMEOUT_MS}"));
                }
                AnswerKind::Sql {
                    query,
                    max_rows: usize::try_from(max_rows).unwrap_or(1),
                    timeout: Duration::from_millis(timeout_ms),
                }
            }
            _ => {
                problems.push(format!("{owner}: `answer` must be `engagement` or `sql`"));
                continue;
            }
        };
        journeys.push(JourneyAnswer { journey: journey.name.clone(), answer });
    }
    journeys
}
