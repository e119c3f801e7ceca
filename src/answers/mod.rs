//! Journey webhooks that answer with data: for a journey of `[[sources.journeys]]`, the call's
//! answer is a JSON object of fields read from the store, which Iterable keeps on the user's
//! profile (a User Profile tile's GET) or in the journey's `liveData` (a Live Data tile with
//! Data Retrieval).
//!
//! - `engagement`: ten fields of the user's email, SMS and push engagement ([`engagement`]).
//! - `sql`: the first row of an operator's read-only query, its named parameters bound to the
//!   call's values ([`sql`]).
//!
//! The answer is made before the call is stored, so the stored call records its status; it
//! reads the embedded tables on a small pool of read-only connections.

mod engagement;
mod sql;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::config::{AnswerKind, Config, JourneyAnswer};
use crate::pipeline::{self, JourneyCall, PseudonymKey};
use crate::request::RawRequest;
use crate::spool::SpoolError;
use crate::spool::SpoolReader;
use crate::spool::answers::check_answer_query;

/// How long the built-in answer may read: its queries are index ranges of one person, done in
/// a millisecond; this bounds a pathological person (millions of events).
const ENGAGEMENT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Connections kept open between calls; more are opened under load and closed after.
const IDLE_READERS: usize = 8;

/// What a journey call is answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: StatusCode::OK, body }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Answer { status, body: json!({ "error": message.into() }) }
    }
}

/// The answering side of every source's journeys.
#[derive(Debug)]
pub struct Answers {
    /// The embedded tables; `None` only when no journey answers (checked by `Config`).
    db_path: Option<PathBuf>,
    idle: Mutex<Vec<SpoolReader>>,
    /// Each pseudonymising source and its key: its events hold the digest of an address.
    keys: Vec<(String, PseudonymKey)>,
}

impl Answers {
    /// The answers of `config`'s journeys, `None` when no journey answers.
    pub fn for_config(config: &Config) -> Result<Option<Arc<Answers>>, Vec<String>> {
        if config.journeys_answer() { Answers::new(config).map(Some) } else { Ok(None) }
    }

    /// Checks every `sql` answer's query (one statement that only reads, named parameters)
    /// and prepares to answer. The problems name the source and journey.
    pub fn new(config: &Config) -> Result<Arc<Answers>, Vec<String>> {
        let mut problems = Vec::new();
        for source in &config.sources {
            for journey in &source.journeys {
                if let AnswerKind::Sql { query, .. } = &journey.answer
                    && let Err(why) = check_answer_query(query)
                {
                    problems.push(format!(
                        "source `{}`, journey `{}`: the `query` is refused: {why}",
                        source.name, journey.journey
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Arc::new(Answers {
            db_path: config.embedded_db_path(),
            idle: Mutex::new(Vec::new()),
            keys: config
                .sources
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.pseudonymise.clone()?)))
                .collect(),
        }))
    }

    /// The answer to `request`, a call of `journey`. Never fails: what goes wrong is an answer
    /// too (400 for a call that names no user, 504 past the time limit, 503 without a store).
    pub async fn answer(self: &Arc<Self>, journey: &JourneyAnswer, request: &RawRequest) -> Answer {
        let outcome = pipeline::normalise(request);
        let Some(call) = outcome.journey_calls.into_iter().next() else {
            let reason = outcome.failures.first().map_or("unreadable", |f| f.reason.as_str());
            return Answer::error(
                StatusCode::BAD_REQUEST,
                format!("the call's body cannot be read: {reason}"),
            );
        };
        let this = Arc::clone(self);
        let journey = journey.clone();
        let answered = tokio::task::spawn_blocking(move || this.answer_blocking(&journey, &call))
            .await
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "a journey answer panicked");
                Err(Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "the answer failed"))
            });
        answered.unwrap_or_else(|refusal| refusal)
    }

    fn answer_blocking(
        &self,
        journey: &JourneyAnswer,
        call: &JourneyCall,
    ) -> Result<Answer, Answer> {
        let name = &journey.journey;
        match &journey.answer {
            AnswerKind::Engagement { from_sources } => {
                // Who the call is about first: a call naming no one needs no connection.
                let person = engagement::person(call, self.digest_keys(from_sources.as_deref()))?;
                let sources = from_sources.as_deref();
                self.with_reader(name, |reader| {
                    engagement::answer(reader, &person, sources, ENGAGEMENT_TIME_LIMIT)
                })
            }
            AnswerKind::Sql { query, max_rows, timeout } => self
                .with_reader(name, |reader| sql::answer(reader, call, query, *max_rows, *timeout)),
        }
    }

    /// Runs `read` on a pooled connection, given back once it has answered; a failed read
    /// becomes the answer [`store_trouble`] gives.
    fn with_reader(
        &self,
        journey: &str,
        read: impl FnOnce(&mut SpoolReader) -> Result<Answer, SpoolError>,
    ) -> Result<Answer, Answer> {
        let mut reader = self.reader()?;
        let answer = read(&mut reader).map_err(|err| store_trouble(journey, &err))?;
        self.give_back(reader);
        Ok(answer)
    }

    /// The keys under which an address is looked up besides itself: those of the sources in
    /// scope that pseudonymise.
    fn digest_keys(&self, from: Option<&[String]>) -> Vec<&PseudonymKey> {
        let in_scope = |name: &String| from.is_none_or(|names| names.contains(name));
        self.keys.iter().filter(|(name, _)| in_scope(name)).map(|(_, key)| key).collect()
    }

    fn reader(&self) -> Result<SpoolReader, Answer> {
        if let Some(reader) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(reader);
        }
        let path = self.db_path.as_ref().ok_or_else(|| {
            Answer::error(StatusCode::SERVICE_UNAVAILABLE, "this hookhouse has no embedded store")
        })?;
        let mut reader = SpoolReader::open(path).map_err(|err| store_trouble("", &err))?;
        reader.for_answers().map_err(|err| store_trouble("", &err))?;
        Ok(reader)
    }

    fn give_back(&self, reader: SpoolReader) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        }
    }
}

/// What a call is told when the store could not answer; the details go to the log only.
fn store_trouble(journey: &str, err: &SpoolError) -> Answer {
    use rusqlite::ErrorCode;
    match err {
        SpoolError::Missing(_) => Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store does not exist yet: it is made when the first request is stored",
        ),
        SpoolError::Read(err)
            if err.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) =>
        {
            tracing::warn!(journey, "a journey answer ran past its time limit");
            Answer::error(StatusCode::GATEWAY_TIMEOUT, "the answer took longer than its time limit")
        }
        other => {
            tracing::error!(journey, error = %other, "a journey answer could not read the store");
            Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be read from the store",
            )
        }
    }
}
