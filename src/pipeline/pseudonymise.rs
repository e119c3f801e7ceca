//! Keyed pseudonymisation of personal fields, for sources configured with a key: the values of
//! `email`, the phone numbers and `ip`, wherever they sit in an event, become the hex
//! HMAC-SHA256 of their text under the source's key, before anything is derived or written.
//! The same value under the same key always gives the same digest, so rows still join and
//! count by person; without the key the digest cannot be checked against a guessed address.
//!
//! Other text that contains one of those values (Iterable's `emailId` is
//! `c<campaign>:t<template>:<email>`; a URL may carry the address in its query) has the value
//! replaced by its digest in place, also when it is spelt in another ASCII case
//! (`ADA@EXAMPLE.COM`) or percent-encoded (`ada%40example.com`, `%2B1555...`, or encoded twice,
//! `%2540`, as in a link wrapped by a click tracker): see `embedded.rs`. Such a spelling gets
//! the digest of the value as it was found under its personal key, so it joins with that
//! value's rows; a spelling that is itself a personal value gets its own digest, and one that
//! matches several values differing only in case gets the first's in byte order.
//!
//! Each lookup is linear in the text: whole values through a hash map, embedded ones through
//! one search over every value, so a body of 75,000 distinct addresses costs a scan, not
//! 75,000 comparisons per string.

mod embedded;

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::Sha256;

use embedded::Embedded;

/// Keys whose values are personal, at any depth of an event.
pub const PERSONAL_KEYS: [&str; 5] =
    ["email", "ip", "phoneNumber", "toPhoneNumber", "fromPhoneNumber"];

/// Personal values shorter than this are not searched for inside other text: a two-digit
/// "phone number" would otherwise rewrite every number in the event.
const MIN_EMBEDDED_LEN: usize = 5;

/// A source's pseudonymisation key; `Debug` never shows it.
#[derive(Clone)]
pub struct PseudonymKey(SecretString);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

impl PseudonymKey {
    pub fn new(key: SecretString) -> Self {
        PseudonymKey(key)
    }

    /// The hex HMAC-SHA256 of `data` under this key.
    pub fn digest(&self, data: &[u8]) -> String {
        digest_with(&self.mac(), data)
    }

    /// A copy of `event` with every personal value replaced by its digest.
    pub fn apply(&self, event: &Value) -> Value {
        self.hider([event]).apply(event)
    }

    /// What hides the personal values found in `values` (the events of one request), in them
    /// or in any other text.
    pub fn hider<'a>(&self, values: impl IntoIterator<Item = &'a Value>) -> Hider {
        let mut personal = Vec::new();
        values.into_iter().for_each(|value| collect_personal(value, &mut personal));
        // Byte order, so which value a case-insensitive spelling is credited to never depends
        // on where the values sat in the event.
        personal.sort_unstable();
        personal.dedup();
        Hider::new(self.mac(), personal)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

/// Cloning a keyed MAC reuses its hashed key pads: per value this costs two compressions of
/// the value, not four.
fn digest_with(mac: &Hmac<Sha256>, data: &[u8]) -> String {
    let mut mac = mac.clone();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The personal values of some events and their digests, ready to replace them anywhere.
pub struct Hider {
    /// Each personal value's text and its digest.
    whole: HashMap<String, String>,
    embedded: Search,
    /// Some value holds a `"`, a `\` or a control character, so JSON text spells it otherwise.
    json_escaped: bool,
}

/// How values are found inside other text.
enum Search {
    /// No value is long enough to be searched for.
    Nothing,
    /// Every value of at least [`MIN_EMBEDDED_LEN`] bytes.
    Values(Embedded),
    /// The search could not be built (an automaton has a size limit no body under the body
    /// limit reaches): every string that might hold a value is replaced whole, so none leaks.
    Unbuilt(Hmac<Sha256>),
}

impl Hider {
    fn new(mac: Hmac<Sha256>, personal: Vec<String>) -> Hider {
        let whole: HashMap<String, String> = personal
            .into_iter()
            .map(|plain| {
                let digest = digest_with(&mac, plain.as_bytes());
                (plain, digest)
            })
            .collect();
        let json_escaped =
            whole.keys().any(|plain| plain.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        let mut searched: Vec<(&str, &str)> = whole
            .iter()
            .filter(|(plain, _)| plain.len() >= MIN_EMBEDDED_LEN)
            .map(|(plain, digest)| (plain.as_str(), digest.as_str()))
            .collect();
        // Byte order decides which of several values a shared spelling is credited to.
        searched.sort_unstable();
        let embedded = match Embedded::new(searched.into_iter()) {
            Ok(Some(values)) => Search::Values(values),
            Ok(None) => Search::Nothing,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "too many personal values to search for; hiding every text that may hold one"
                );
                Search::Unbuilt(mac)
            }
        };
        Hider { whole, embedded, json_escaped }
    }

    /// A copy of `event` with every personal value replaced by its digest.
    pub fn apply(&self, event: &Value) -> Value {
        let mut event = event.clone();
        self.rewrite(&mut event, false);
        event
    }

    /// `headers_json` (a JSON object of header values) with the personal values hidden in its
    /// values, or `None` when it holds none.
    pub fn hide_in_headers(&self, headers_json: &str) -> Option<String> {
        // Searched as text first, so the usual request, whose headers hold no value, costs a
        // scan rather than a parse; unless a value has a character JSON escapes.
        if !self.json_escaped && !self.found_in(headers_json) {
            return None;
        }
        let Ok(mut headers) = serde_json::from_str::<Value>(headers_json) else {
            // The receiver built this text; should it ever not be JSON, keep no header rather
            // than one that may hold an address.
            return Some("{}".to_owned());
        };
        let before = headers.clone();
        self.rewrite(&mut headers, false);
        (headers != before).then(|| headers.to_string())
    }

    fn found_in(&self, text: &str) -> bool {
        let mut found = false;
        match &self.embedded {
            Search::Nothing => {}
            Search::Values(values) => values.find(text, |_, _| found = true),
            Search::Unbuilt(_) => found = true,
        }
        found
    }

    /// Replaces personal values by their digests: whole values under personal keys
    /// (`personal` true), and occurrences inside any other string.
    fn rewrite(&self, value: &mut Value, personal: bool) {
        match value {
            Value::Object(map) => self.rewrite_map(map),
            Value::Array(items) => items.iter_mut().for_each(|item| self.rewrite(item, personal)),
            Value::String(text) if personal && !text.is_empty() => {
                if let Some(digest) = self.whole.get(text.as_str()) {
                    *text = digest.clone();
                }
            }
            Value::Number(number) if personal => {
                if let Some(digest) = self.whole.get(&number.to_string()) {
                    *value = Value::String(digest.clone());
                }
            }
            Value::String(text) => self.rewrite_embedded(text),
            _ => {}
        }
    }

    fn rewrite_map(&self, map: &mut Map<String, Value>) {
        for (key, item) in map.iter_mut() {
            self.rewrite(item, PERSONAL_KEYS.contains(&key.as_str()));
        }
    }

    fn rewrite_embedded(&self, text: &mut String) {
        let values = match &self.embedded {
            Search::Nothing => return,
            Search::Values(values) => values,
            Search::Unbuilt(mac) => {
                if text.len() >= MIN_EMBEDDED_LEN {
                    *text = digest_with(mac, text.as_bytes());
                }
                return;
            }
        };
        let (mut hidden, mut copied) = (None::<String>, 0);
        values.find(text, |range, digest| {
            let out = hidden.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..range.start]);
            // A spelling that is itself a personal value keeps its own digest.
            out.push_str(self.whole.get(&text[range.clone()]).map_or(digest, String::as_str));
            copied = range.end;
        });
        if let Some(mut out) = hidden {
            out.push_str(&text[copied..]);
            *text = out;
        }
    }
}

/// The text of each personal value: strings as they are, numbers (a phone number sent as a
/// number) in their JSON spelling. Empty strings and nulls are absent values, left alone.
fn collect_personal(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if PERSONAL_KEYS.contains(&key.as_str()) {
                    collect_scalars(item, out);
                } else {
                    collect_personal(item, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_personal(item, out)),
        _ => {}
    }
}

fn collect_scalars(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|item| collect_scalars(item, out)),
        Value::Object(map) => map.values().for_each(|item| collect_scalars(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(text: &str) -> PseudonymKey {
        PseudonymKey::new(SecretString::from(text.to_owned()))
    }

    #[test]
    fn personal_values_become_digests_everywhere_and_nothing_else_changes() {
        let event = json!({
            "email": "ada@example.com", "eventName": "smsSend",
            "dataFields": {
                "email": "ada@example.com", "emailId": "c1:t2:ada@example.com",
                "toPhoneNumber": 15551234567_i64, "fromPhoneNumber": "+15550001111",
                "ip": "203.0.113.7", "campaignId": 1, "city": "Paris",
                "transactionalData": "{\"phoneNumber\":\"+15550001111\"}"
            }
        });
        let key = key("k1");
        let hidden = key.apply(&event);
        let text = hidden.to_string();
        for plain in ["ada@example.com", "15551234567", "+15550001111", "203.0.113.7"] {
            assert!(!text.contains(plain), "{plain} left in {text}");
        }
        let email = key.digest(b"ada@example.com");
        assert_eq!(hidden["email"], json!(email));
        assert_eq!(hidden["dataFields"]["emailId"], json!(format!("c1:t2:{email}")));
        assert_eq!(hidden["dataFields"]["toPhoneNumber"], json!(key.digest(b"15551234567")));
        assert_eq!(hidden["dataFields"]["campaignId"], json!(1));
        assert_eq!(hidden["dataFields"]["city"], json!("Paris"));
        assert_eq!(email.len(), 64);
    }

    #[test]
    fn digests_are_stable_per_key_and_differ_between_keys() {
        assert_eq!(key("a").digest(b"x@y.z"), key("a").digest(b"x@y.z"));
        assert_ne!(key("a").digest(b"x@y.z"), key("b").digest(b"x@y.z"));
        assert!(!format!("{:?}", key("sekrit")).contains("sekrit"));
    }

    #[test]
    fn other_cases_and_encodings_get_the_digest_of_the_value() {
        let event = json!({
            "email": "Ada.Lovelace@example.com", "phoneNumber": "+15550001111",
            "dataFields": {
                "url": "https://x.example/?e=Ada.Lovelace%40example.com&p=%2b15550001111",
                "linkUrl": "https://x.example/?E=ADA.LOVELACE@EXAMPLE.COM",
                "wrapped": "https://t.example/r?to=https%3A%2F%2Fx%2F%3Fe%3Dada.lovelace%2540example.com",
            }
        });
        let key = key("k1");
        let (email, phone) = (key.digest(b"Ada.Lovelace@example.com"), key.digest(b"+15550001111"));
        let hidden = key.apply(&event);
        let fields = &hidden["dataFields"];
        assert_eq!(fields["url"], json!(format!("https://x.example/?e={email}&p={phone}")));
        assert_eq!(fields["linkUrl"], json!(format!("https://x.example/?E={email}")));
        assert_eq!(
            fields["wrapped"],
            json!(format!("https://t.example/r?to=https%3A%2F%2Fx%2F%3Fe%3D{email}"))
        );
    }

    #[test]
    fn the_longest_value_wins_and_a_case_twin_keeps_its_own_digest() {
        let event = json!({
            "email": ["bob@example.com", "BOB@example.com"], "ip": "example.com",
            "dataFields": { "note": "bob@example.com BOB@example.com Bob@Example.com example.com" }
        });
        let key = key("k1");
        let [lower, upper, host] =
            ["bob@example.com", "BOB@example.com", "example.com"].map(|p| key.digest(p.as_bytes()));
        let hidden = key.apply(&event);
        // `BOB@...` sorts first in byte order, so the third spelling is credited to it.
        assert_eq!(hidden["dataFields"]["note"], json!(format!("{lower} {upper} {upper} {host}")));
        assert_eq!(hidden["email"], json!([lower, upper]));
    }

    #[test]
    fn short_values_are_hidden_whole_but_not_searched_for() {
        let event = json!({ "phoneNumber": "1234", "dataFields": { "n": "order 1234" } });
        let hidden = key("k1").apply(&event);
        assert_eq!(hidden["phoneNumber"], json!(key("k1").digest(b"1234")));
        assert_eq!(hidden["dataFields"]["n"], json!("order 1234"));
    }

    #[test]
    fn headers_are_hidden_only_when_they_hold_a_value() {
        let hider = key("k1").hider([&json!({ "email": "ada@example.com" })]);
        let digest = key("k1").digest(b"ada@example.com");
        assert_eq!(hider.hide_in_headers(r#"{"user-agent":"Iterable"}"#), None);
        assert_eq!(
            hider.hide_in_headers(r#"{"referer":"https://x/?e=ada%40example.com"}"#),
            Some(format!(r#"{{"referer":"https://x/?e={digest}"}}"#))
        );
    }
}
