//! Keyed pseudonymisation of personal fields, for sources configured with a key: the values of
//! `email`, the phone numbers and `ip`, wherever they sit in an event, become the hex
//! HMAC-SHA256 of their text under the source's key, before anything is derived or written.
//! The same value under the same key always gives the same digest, so rows still join and
//! count by person; without the key the digest cannot be checked against a guessed address.
//!
//! Other text that contains one of those values (Iterable's `emailId` is
//! `c<campaign>:t<template>:<email>`; a URL may carry the address in its query) has the value
//! replaced by its digest in place.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::Sha256;

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
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A copy of `event` with every personal value replaced by its digest.
    pub fn apply(&self, event: &Value) -> Value {
        let mut personal = Vec::new();
        collect_personal(event, &mut personal);
        personal.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        personal.dedup();
        let replacements: Vec<(String, String)> = personal
            .into_iter()
            .map(|plain| {
                let digest = self.digest(plain.as_bytes());
                (plain, digest)
            })
            .collect();
        let mut event = event.clone();
        rewrite(&mut event, &replacements, false);
        event
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

/// Replaces personal values by their digests: whole values under personal keys (`personal`
/// true), and occurrences inside any other string. `replacements` is longest first, so an
/// address is replaced before a shorter value it contains.
fn rewrite(value: &mut Value, replacements: &[(String, String)], personal: bool) {
    match value {
        Value::Object(map) => rewrite_map(map, replacements),
        Value::Array(items) => {
            items.iter_mut().for_each(|item| rewrite(item, replacements, personal))
        }
        Value::String(text) if personal && !text.is_empty() => {
            if let Some((_, digest)) = replacements.iter().find(|(plain, _)| plain == text) {
                *text = digest.clone();
            }
        }
        Value::Number(number) if personal => {
            let plain = number.to_string();
            if let Some((_, digest)) = replacements.iter().find(|(p, _)| *p == plain) {
                *value = Value::String(digest.clone());
            }
        }
        Value::String(text) => {
            for (plain, digest) in replacements {
                if plain.len() >= MIN_EMBEDDED_LEN && text.contains(plain.as_str()) {
                    *text = text.replace(plain.as_str(), digest);
                }
            }
        }
        _ => {}
    }
}

fn rewrite_map(map: &mut Map<String, Value>, replacements: &[(String, String)]) {
    for (key, item) in map.iter_mut() {
        let personal = PERSONAL_KEYS.contains(&key.as_str());
        rewrite(item, replacements, personal);
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
}
