//! `hookhouse validate FILE`: what one payload would become, without a server or a store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use serde_json::json;

use crate::config::DEFAULT_SOURCE;
use crate::pipeline::normalise;
use crate::request::{RawRequest, RequestKind, sha256_hex};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The payload: a JSON body, or a form-encoded body in a file ending in `.form`.
    pub file: PathBuf,
    /// The source it would be posted to.
    #[arg(long, default_value = DEFAULT_SOURCE)]
    pub source: String,
    /// The Content-Type it would carry [default: from the file's extension].
    #[arg(long)]
    pub content_type: Option<String>,
}

/// Prints `{"events": [...], "journey_calls": [...], "failures": [...]}`; exit code 1 when the
/// payload would produce a failure or nothing at all.
pub(super) fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("failed to read `{}`", args.file.display()))?;
    let form = args.file.extension().is_some_and(|ext| ext == "form");
    let content_type = args.content_type.clone().unwrap_or_else(|| {
        if form { "application/x-www-form-urlencoded" } else { "application/json" }.to_owned()
    });
    let request = RawRequest {
        received_at: chrono::Utc::now(),
        source: args.source.clone(),
        kind: RequestKind::System,
        method: "POST".to_owned(),
        path: format!("/iterable/{}", args.source),
        query: None,
        headers_json: "{}".to_owned(),
        remote_addr: None,
        peer_addr: None,
        content_type: Some(content_type),
        body_sha256: sha256_hex(&body),
        body: Bytes::from(body),
    };
    let outcome = normalise(&request);
    let report = json!({
        "events": outcome.events,
        "journey_calls": outcome.journey_calls,
        "failures": outcome.failures,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let ok = outcome.failures.is_empty() && !outcome.events.is_empty();
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
