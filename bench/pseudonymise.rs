//! The worst case of pseudonymisation (finding 2 of the hardening issue): a body of about
//! 975 KB holding 75,000 distinct addresses under `email`, normalised under a key; and, for the
//! hot path, an ordinary click. Prints how long one normalisation of each takes:
//! `cargo run --release --example pseudonymise [rounds of the worst case]`.

use std::time::Instant;

use bytes::Bytes;
use hookhouse::pipeline::{PseudonymKey, normalise_with};
use hookhouse::request::{RawRequest, RequestKind};
use secrecy::SecretString;

/// The body: one emailOpen whose `dataFields.email` is 75,000 distinct addresses, plus a few
/// strings that embed one of them, so both the whole-value and the embedded paths are timed.
fn worst_case_body() -> String {
    let emails: Vec<String> = (0..75_000).map(|i| format!("\"{i}@x.io\"")).collect();
    format!(
        r#"{{"email":"0@x.io","eventName":"emailOpen","dataFields":{{"createdAt":"2024-03-08 18:30:12 +00:00","emailId":"c1:t2:74999@x.io","url":"https://shop.example/?u=1234%40x.io","email":[{}]}}}}"#,
        emails.join(",")
    )
}

/// An ordinary click, as Iterable sends it.
const CLICK: &str = r#"{"email":"ada@example.com","eventName":"emailClick","dataFields":{"email":"ada@example.com","createdAt":"2016-12-02 20:21:04 +00:00","campaignId":12345,"templateId":67890,"messageId":"0a1b2c","emailId":"c12345:t67890:ada@example.com","userAgent":"Mozilla/5.0","ip":"203.0.113.7","url":"https://shop.example/?u=ada%40example.com","city":"Paris"}}"#;

fn request(body: String) -> RawRequest {
    RawRequest {
        received_at: chrono::Utc::now(),
        source: "private".into(),
        kind: RequestKind::System,
        method: "POST".into(),
        path: "/iterable/private".into(),
        query: None,
        headers_json: "{}".into(),
        remote_addr: None,
        peer_addr: None,
        content_type: Some("application/json".into()),
        body: Bytes::from(body),
        body_sha256: String::new(),
    }
}

fn main() {
    let key = PseudonymKey::new(SecretString::from("bench-key".to_owned()));
    let click = request(CLICK.to_owned());
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(normalise_with(&click, Some(&key)));
    }
    println!("an ordinary click: {:?} each", started.elapsed() / rounds);
    // The old quadratic code takes a minute or more a round: `pseudonymise 0` skips them.
    let worst_rounds = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    let request = request(worst_case_body());
    for _ in 0..worst_rounds {
        let started = Instant::now();
        let outcome = normalise_with(&request, Some(&key));
        println!(
            "{} bytes, {} events, {} failures: {:?}",
            request.body.len(),
            outcome.events.len(),
            outcome.failures.len(),
            started.elapsed()
        );
    }
}
