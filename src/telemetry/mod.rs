//! Logging: the subscriber the binary installs (text, or JSON with
//! `HOOKHOUSE_LOG_FORMAT=json`), [`SenderText`] for showing a sender's text safely, and
//! [`LogLimit`] for lines that could otherwise flood the log. Nothing here knows about HTTP or
//! storage, so every layer may use it.

mod escape;
mod limit;

pub use escape::SenderText;
pub use limit::LogLimit;

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The variable that picks the log format.
pub const LOG_FORMAT_VAR: &str = "HOOKHOUSE_LOG_FORMAT";
/// The variable that holds the level filter (`info`, `hookhouse=debug`, ...).
pub const LOG_FILTER_VAR: &str = "HOOKHOUSE_LOG";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line, the event's fields as top-level keys.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("`{LOG_FORMAT_VAR}` is `{}`: use `text` or `json`", SenderText(.0))]
    UnknownFormat(String),
    #[error("`{LOG_FORMAT_VAR}` is not valid UTF-8: use `text` or `json`")]
    NotUnicode,
}

impl LogFormat {
    /// Reads [`LOG_FORMAT_VAR`]; unset or empty means text.
    pub fn from_env() -> Result<Self, TelemetryError> {
        match std::env::var(LOG_FORMAT_VAR) {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Ok(LogFormat::Text),
            Err(std::env::VarError::NotUnicode(_)) => Err(TelemetryError::NotUnicode),
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(TelemetryError::UnknownFormat(value.to_owned())),
        }
    }
}

/// Installs the global subscriber: stderr, filtered by [`LOG_FILTER_VAR`] (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_VAR).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Colour codes in a file or a log collector are noise, and hide text from `grep`.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_an_unknown_one_is_named() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!(" JSON ".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("".parse::<LogFormat>().unwrap(), LogFormat::Text);
        let err = "yaml\n".parse::<LogFormat>().unwrap_err().to_string();
        assert_eq!(err, "`HOOKHOUSE_LOG_FORMAT` is `yaml\\n`: use `text` or `json`");
    }
}
