//! The built-in `engagement` answer: ten fields, always all of them and always of the same
//! type (Iterable fixes a profile field's type when it first sees it, so an unknown user gets
//! zeros, `false` and `null`, never a missing field).
//!
//! | field            | type           | from the user's events                                  |
//! |------------------|----------------|---------------------------------------------------------|
//! | `emailOpens30d`  | number         | `emailOpen` created in the last 30 days                 |
//! | `emailClicks30d` | number         | `emailClick` in the last 30 days                        |
//! | `smsClicks30d`   | number         | `smsClick` in the last 30 days                          |
//! | `pushOpens30d`   | number         | `pushOpen` in the last 30 days                          |
//! | `lastOpenAt`     | date or null   | the newest `emailOpen`                                  |
//! | `lastClickAt`    | date or null   | the newest `emailClick`                                 |
//! | `lastClickUrl`   | string or null | that click's `url` (else its `linkUrl`)                 |
//! | `hardBounced`    | boolean        | an `emailBounce` that is not a `SoftBounce`             |
//! | `complained`     | boolean        | an `emailComplaint`                                     |
//! | `unsubscribed`   | boolean        | the newest `emailSubscribe`/`emailUnSubscribe` is an unsubscribe |
//!
//! Dates are in Iterable's own format, `yyyy-MM-dd HH:mm:ss +00:00`, so a profile field made
//! from one is a date field.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::Answer;
use crate::pipeline::{JourneyCall, PseudonymKey};
use crate::request::format_time;
use crate::spool::SpoolError;
use crate::spool::SpoolReader;
use crate::spool::answers::Person;

/// The window of the `…30d` counts.
const WINDOW_DAYS: i64 = 30;

/// Who the call is about: its `email` (looked up also as its digest under each key, for the
/// sources that pseudonymise), else its `userId`.
pub(super) fn person(call: &JourneyCall, keys: Vec<&PseudonymKey>) -> Result<Person, Answer> {
    if let Some(email) = &call.email {
        let mut values = vec![email.clone()];
        values.extend(keys.iter().map(|key| key.digest(email.as_bytes())));
        return Ok(Person::Email(values));
    }
    if let Some(user_id) = &call.user_id {
        return Ok(Person::UserId(user_id.clone()));
    }
    Err(Answer::error(
        StatusCode::BAD_REQUEST,
        "the call names no user: send `email` or `userId` in the query string or the body \
         (in Iterable: `?email={{email}}`)",
    ))
}

pub(super) fn answer(
    reader: &mut SpoolReader,
    person: &Person,
    sources: Option<&[String]>,
    limit: Duration,
) -> Result<Answer, SpoolError> {
    let since = format_time(&(Utc::now() - chrono::Duration::days(WINDOW_DAYS)));
    let found = reader.engagement(person, sources, &since, limit)?;
    Ok(Answer::ok(json!({
        "emailOpens30d": found.email_opens,
        "emailClicks30d": found.email_clicks,
        "smsClicks30d": found.sms_clicks,
        "pushOpens30d": found.push_opens,
        "lastOpenAt": found.last_open_at.as_deref().map(iterable_date),
        "lastClickAt": found.last_click_at.as_deref().map(iterable_date),
        "lastClickUrl": found.last_click_url,
        "hardBounced": found.hard_bounced,
        "complained": found.complained,
        "unsubscribed": found.unsubscribed,
    })))
}

/// A stored time (RFC 3339) in Iterable's date format, UTC; a time that does not parse (the
/// sinks store only what parsed) is passed on as stored.
fn iterable_date(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |time| time.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S +00:00").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_iterable_writes_them() {
        assert_eq!(iterable_date("2026-12-01T09:08:07.123456Z"), "2026-12-01 09:08:07 +00:00");
        assert_eq!(iterable_date("2026-12-01T10:08:07+01:00"), "2026-12-01 09:08:07 +00:00");
        assert_eq!(iterable_date("not a time"), "not a time");
    }
}
