//! What of a request's headers and query string is kept with it. Headers are kept by an
//! allow-list (`store.keep_headers`), never a deny-list: a proxy or a user can add any header,
//! and a list of bad names is always one name short. Query parameters whose names look like
//! credentials are removed. And the request's own secrets (the secret of its secret URL, its
//! source's credentials) are replaced by `***` wherever they still appear in what is kept.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::CREDENTIAL_HEADERS;

/// Written in place of a secret found in a kept value.
const MASK: &str = "***";

/// Parts of a query parameter's name (lower-case, `-`, `_` and `.` removed) that mark it as a
/// credential: `access_token`, `X-Amz-Signature`, `client_secret`, `authorization`, ...
const CREDENTIAL_PARAM_PARTS: [&str; 8] =
    ["token", "secret", "password", "passwd", "signature", "credential", "authoriz", "authentic"];

/// Endings that mark a credential (`api_key`, `x-access-key`, `basic_auth`); not parts, since
/// `keyword` and `author` are not.
const CREDENTIAL_PARAM_ENDINGS: [&str; 2] = ["key", "auth"];

/// Whole names that are credentials too short to match otherwise.
const CREDENTIAL_PARAM_NAMES: [&str; 4] = ["sig", "pwd", "pass", "code"];

/// What must not be kept of one request.
#[derive(Debug, Default)]
pub(super) struct Redaction<'a> {
    /// Lower-case header names to keep.
    pub(super) keep_headers: &'a [String],
    /// The header that carries the source's secret, never kept even if listed.
    pub(super) secret_header: Option<&'a str>,
    /// Secret values to mask wherever they appear in a kept header or parameter.
    pub(super) secrets: Vec<&'a str>,
}

impl Redaction<'_> {
    /// The kept headers as a JSON object, names lower-case, repeated headers joined with `, `.
    pub(super) fn headers_json(&self, headers: &HeaderMap) -> String {
        let mut kept = Map::new();
        for (name, value) in headers {
            let name = name.as_str();
            if !self.keep_headers.iter().any(|keep| keep == name)
                || CREDENTIAL_HEADERS.contains(&name)
                || self.secret_header == Some(name)
            {
                continue;
            }
            let value = self.mask_header(&String::from_utf8_lossy(value.as_bytes()));
            match kept.get_mut(name) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    kept.insert(name.to_owned(), Value::String(value));
                }
            }
        }
        Value::Object(kept).to_string()
    }

    /// The query string without credential-looking parameters, and with any secret masked;
    /// `None` when nothing is left. Kept parameters keep their original spelling.
    pub(super) fn query(&self, query: Option<&str>) -> Option<String> {
        let query = query?;
        let kept: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                let decoded: String = form_urlencoded::parse(name.as_bytes())
                    .map(|(key, _)| key.into_owned())
                    .collect();
                !is_credential_param(&decoded)
            })
            .map(|pair| self.mask_encoded(pair))
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }

    /// The body with any secret replaced by `***`. A secret has no business in an event, and
    /// a body is kept for as long as the store is; almost always nothing is found and the
    /// body is returned as it came, without a copy.
    pub(super) fn body(&self, body: Bytes) -> Bytes {
        let mut masked: Option<Vec<u8>> = None;
        for secret in &self.secrets {
            let current = masked.as_deref().unwrap_or(&body);
            let finder = memchr::memmem::Finder::new(secret.as_bytes());
            if finder.find(current).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(current.len());
            let mut rest = current;
            while let Some(at) = finder.find(rest) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(MASK.as_bytes());
                rest = &rest[at + secret.len()..];
            }
            out.extend_from_slice(rest);
            masked = Some(out);
        }
        masked.map_or(body, Bytes::from)
    }

    /// A header value masked as written, or, when only its percent-decoded form shows a
    /// secret (a URL copied by a proxy), stored decoded and masked.
    fn mask_header(&self, value: &str) -> String {
        let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        if decoded != value && self.secrets.iter().any(|secret| decoded.contains(secret)) {
            return self.mask(&decoded);
        }
        self.mask(value)
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret) {
                text = text.replace(secret, MASK);
            }
        }
        text
    }

    /// A query pair masked both as written and as its decoded form would show the secret.
    fn mask_encoded(&self, pair: &str) -> String {
        let decoded: String = form_urlencoded::parse(pair.as_bytes())
            .map(|(k, v)| if v.is_empty() { k.into_owned() } else { format!("{k}={v}") })
            .collect();
        if self.secrets.iter().any(|secret| decoded.contains(secret)) {
            // Re-encode what is left once the secret is gone: the original spelling is lost,
            // which only matters for a pair that carried a secret.
            let masked = self.mask(&decoded);
            let (key, value) = masked.split_once('=').unwrap_or((&masked, ""));
            return form_urlencoded::Serializer::new(String::new())
                .append_pair(key, value)
                .finish();
        }
        self.mask(pair)
    }
}

fn is_credential_param(name: &str) -> bool {
    let squashed: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    CREDENTIAL_PARAM_NAMES.contains(&squashed.as_str())
        || CREDENTIAL_PARAM_PARTS.iter().any(|part| squashed.contains(part))
        || CREDENTIAL_PARAM_ENDINGS.iter().any(|ending| squashed.ends_with(ending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keep(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn only_listed_headers_are_kept_and_credentials_never() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        headers.insert("x-forwarded-authorization", HeaderValue::from_static("s3cret"));
        headers.insert("x-original-url", HeaderValue::from_static("/hooks/s3cret"));
        headers.insert("user-agent", HeaderValue::from_static("Iterable"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        headers.insert("x-custom-auth", HeaderValue::from_static("s3cret"));
        let listed = keep(&["user-agent", "x-tag", "authorization", "x-custom-auth"]);
        let redaction = Redaction {
            keep_headers: &listed,
            secret_header: Some("x-custom-auth"),
            secrets: vec![],
        };
        let json = redaction.headers_json(&headers);
        assert_eq!(json, r#"{"user-agent":"Iterable","x-tag":"a, b"}"#);
    }

    #[test]
    fn secrets_are_masked_in_kept_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-original-url", HeaderValue::from_static("/hooks/abcdef123456?x=1"));
        let listed = keep(&["x-original-url"]);
        let redaction =
            Redaction { keep_headers: &listed, secret_header: None, secrets: vec!["abcdef123456"] };
        assert_eq!(redaction.headers_json(&headers), r#"{"x-original-url":"/hooks/***?x=1"}"#);
    }

    #[test]
    fn secrets_are_masked_in_the_body() {
        let redaction = Redaction {
            keep_headers: &[],
            secret_header: None,
            secrets: vec!["s3cret-abc", "zz9"],
        };
        let body = Bytes::from_static(b"{\"u\":\"/hooks/s3cret-abc\",\"v\":\"s3cret-abczz9\"}");
        assert_eq!(&redaction.body(body)[..], b"{\"u\":\"/hooks/***\",\"v\":\"******\"}");
        let clean = Bytes::from_static(b"{}");
        assert_eq!(redaction.body(clean.clone()).as_ptr(), clean.as_ptr(), "no copy");
    }

    #[test]
    fn secrets_are_masked_in_headers_however_encoded() {
        let mut headers = HeaderMap::new();
        headers.insert("x-original-url", HeaderValue::from_static("/p?x=0123456789abcdef%2dtoken"));
        let listed = keep(&["x-original-url"]);
        let redaction = Redaction {
            keep_headers: &listed,
            secret_header: None,
            secrets: vec!["0123456789abcdef-token"],
        };
        assert_eq!(redaction.headers_json(&headers), r#"{"x-original-url":"/p?x=***"}"#);
    }

    #[test]
    fn credential_parameters_leave_the_query() {
        let redaction = Redaction::default();
        let query = "email=ada%40example.com&api_key=k&token=t&X-Amz-Signature=s&accessToken=a\
                     &campaignId=5&sig=x&client_secret=c&password=p&author=me&keyword=k&x-auth=a";
        assert_eq!(
            redaction.query(Some(query)).as_deref(),
            Some("email=ada%40example.com&campaignId=5&author=me&keyword=k")
        );
        assert_eq!(redaction.query(Some("token=t")), None);
        assert_eq!(redaction.query(None), None);
    }

    #[test]
    fn secrets_are_masked_in_parameters_however_encoded() {
        let redaction =
            Redaction { keep_headers: &[], secret_header: None, secrets: vec!["s3cr/et+x"] };
        let kept = redaction.query(Some("next=%2Fhooks%2Fs3cr%2Fet%2Bx&a=1")).unwrap();
        assert!(!kept.contains("s3cr"), "{kept}");
        assert!(kept.ends_with("&a=1"), "{kept}");
    }
}
