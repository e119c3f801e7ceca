//! `[retention]`: how long the SQLite store keeps what it holds. Each table has its own age,
//! counted from when a request was received; `"forever"` keeps it. Nothing is removed before
//! every sink has loaded it (the pruner reads the cursors), so these are upper bounds on what
//! is kept only once the sinks are caught up.

use serde::{Deserialize, Serialize};

/// An age in days, or `"forever"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawDays {
    Days(i64),
    Word(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    /// Bodies of requests every sink has loaded; the row, its digest and its headers stay.
    pub raw_bodies_days: RawDays,
    /// Whole `raw_requests` rows, once every sink has loaded them.
    pub raw_requests_days: RawDays,
    pub failed_events_days: RawDays,
    /// `events` and `journey_calls` in the embedded store; kept unless set.
    pub events_days: RawDays,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            raw_bodies_days: RawDays::Days(30),
            raw_requests_days: RawDays::Days(90),
            failed_events_days: RawDays::Days(365),
            events_days: RawDays::Word(FOREVER.to_owned()),
        }
    }
}

const FOREVER: &str = "forever";

/// The ages, in days; `None` keeps the table's rows forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub raw_bodies_days: Option<u32>,
    pub raw_requests_days: Option<u32>,
    pub failed_events_days: Option<u32>,
    pub events_days: Option<u32>,
}

impl Retention {
    /// Whether anything is ever removed.
    pub fn prunes(&self) -> bool {
        self.raw_bodies_days.is_some()
            || self.raw_requests_days.is_some()
            || self.failed_events_days.is_some()
            || self.events_days.is_some()
    }
}

pub(super) fn resolve(raw: &RawRetention, problems: &mut Vec<String>) -> Retention {
    let before = problems.len();
    let mut days = |key: &str, value: &RawDays| -> Option<u32> {
        match value {
            RawDays::Days(n) if (1..=36_500).contains(n) => u32::try_from(*n).ok(),
            RawDays::Word(word) if word == FOREVER => None,
            RawDays::Days(n) => {
                problems.push(format!(
                    "`retention.{key}` is {n}: use a number of days from 1 to 36500, or \
                     \"forever\" to keep them"
                ));
                None
            }
            RawDays::Word(word) => {
                problems.push(format!(
                    "`retention.{key}` is \"{word}\": use a number of days, or \"forever\""
                ));
                None
            }
        }
    };
    let retention = Retention {
        raw_bodies_days: days("raw_bodies_days", &raw.raw_bodies_days),
        raw_requests_days: days("raw_requests_days", &raw.raw_requests_days),
        failed_events_days: days("failed_events_days", &raw.failed_events_days),
        events_days: days("events_days", &raw.events_days),
    };
    // A row removed takes its body with it: bodies kept longer than their rows is a setting
    // that cannot be honoured, so it is refused rather than silently shortened.
    let bodies = retention.raw_bodies_days.unwrap_or(u32::MAX);
    let rows = retention.raw_requests_days.unwrap_or(u32::MAX);
    if bodies > rows && problems.len() == before {
        problems.push(format!(
            "`retention.raw_bodies_days` ({}) is longer than `retention.raw_requests_days` ({}): \
             a body goes with its row, so keep rows at least as long as bodies",
            show(retention.raw_bodies_days),
            show(retention.raw_requests_days)
        ));
    }
    retention
}

fn show(days: Option<u32>) -> String {
    days.map(|d| d.to_string()).unwrap_or_else(|| FOREVER.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Retention, Vec<String>) {
        use figment::providers::{Format as _, Serialized, Toml};
        let raw: RawRetention =
            figment::Figment::from(Serialized::defaults(RawRetention::default()))
                .merge(Toml::string(text))
                .extract()
                .unwrap();
        let mut problems = Vec::new();
        (resolve(&raw, &mut problems), problems)
    }

    #[test]
    fn the_defaults_keep_bodies_a_month_rows_a_quarter_failures_a_year_and_events_forever() {
        let (retention, problems) = parse("");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            retention,
            Retention {
                raw_bodies_days: Some(30),
                raw_requests_days: Some(90),
                failed_events_days: Some(365),
                events_days: None,
            }
        );
    }

    #[test]
    fn forever_keeps_and_nonsense_is_refused_with_what_to_write() {
        let (retention, problems) = parse(
            "raw_bodies_days = \"forever\"\nraw_requests_days = \"forever\"\nevents_days = 400",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(retention.raw_bodies_days, None);
        assert_eq!(retention.events_days, Some(400));

        let (_, problems) = parse("raw_bodies_days = 0\nfailed_events_days = \"never\"");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("retention.raw_bodies_days` is 0"), "{problems:?}");
        assert!(problems[1].contains("\"forever\""), "{problems:?}");
    }

    #[test]
    fn bodies_cannot_outlive_their_rows() {
        let (_, problems) = parse("raw_bodies_days = 60\nraw_requests_days = 30");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("longer than `retention.raw_requests_days` (30)"));
        let (_, problems) = parse("raw_bodies_days = \"forever\"");
        assert!(problems[0].contains("(forever) is longer"), "{problems:?}");
    }
}
