//! The traffic generator: which event comes next, in a realistic mix of Iterable's documented
//! event names. The bodies themselves are built in `bodies`; nothing here sends anything.

use rand::RngExt as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde_json::Value;

use super::bodies::Maker;
use super::values::Medium;

/// Every event name with a documented example body, its medium, and its weight in the mix:
/// sends and opens dominate, bounces, complaints and skips are rare, as in a real project.
const EVENTS: [(&str, Medium, u32); 25] = [
    ("emailSend", Medium::Email, 240),
    ("emailOpen", Medium::Email, 150),
    ("emailClick", Medium::Email, 50),
    ("emailBounce", Medium::Email, 12),
    ("emailComplaint", Medium::Email, 3),
    ("emailSendSkip", Medium::Email, 12),
    ("emailSubscribe", Medium::Email, 10),
    ("emailUnSubscribe", Medium::Email, 8),
    ("hostedUnsubscribeClick", Medium::Email, 4),
    ("pushSend", Medium::Push, 120),
    ("pushOpen", Medium::Push, 40),
    ("pushBounce", Medium::Push, 8),
    ("pushUninstall", Medium::Push, 6),
    ("pushSendSkip", Medium::Push, 8),
    ("smsSend", Medium::Sms, 60),
    ("smsBounce", Medium::Sms, 4),
    ("smsReceived", Medium::Sms, 10),
    ("smsClick", Medium::Sms, 12),
    ("smsSendSkip", Medium::Sms, 4),
    ("inAppSend", Medium::InApp, 70),
    ("inAppOpen", Medium::InApp, 50),
    ("inAppClick", Medium::InApp, 20),
    ("inAppSendSkip", Medium::InApp, 4),
    ("webPushSend", Medium::WebPush, 40),
    ("webPushSendSkip", Medium::WebPush, 4),
];

/// Every event name the generator can send, in the order of [`EVENTS`].
pub const EVENT_NAMES: [&str; 25] = {
    let mut names = [""; 25];
    let mut i = 0;
    while i < EVENTS.len() {
        names[i] = EVENTS[i].0;
        i += 1;
    }
    names
};

/// An event name the generator does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event name `{name}`{hint}; known names: {known}", known = EVENT_NAMES.join(", "))]
pub struct UnknownEventName {
    name: String,
    /// A case-insensitive match, for the `emailUnsubscribe` / `emailUnSubscribe` trap.
    hint: String,
}

/// The generator's own spelling of `name`.
pub fn event_name(name: &str) -> Result<&'static str, UnknownEventName> {
    if let Some(known) = EVENT_NAMES.iter().find(|known| **known == name) {
        return Ok(known);
    }
    let hint = EVENT_NAMES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map(|known| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default();
    Err(UnknownEventName { name: name.to_owned(), hint })
}

/// Realistic Iterable system-webhook traffic. The first events cover every requested name once,
/// in random order, so even a short run shows each kind; after that the weighted mix applies.
/// Every body is unique (each carries a unique `messageId` or a newly signed-up user), so a
/// receiver's deduplication never folds two simulated events into one.
#[derive(Debug)]
pub struct Traffic {
    kinds: Vec<(&'static str, Medium)>,
    /// Running sums of the kinds' weights, for weighted picks.
    cumulative: Vec<u32>,
    /// Kinds not sent yet, as indices into `kinds`.
    unsent: Vec<usize>,
    maker: Maker,
}

impl Traffic {
    /// Traffic of the named events (every known one when `events` is empty). The same `seed`
    /// gives the same sequence of events, apart from `createdAt`.
    pub fn new(events: &[&str], seed: Option<u64>) -> Result<Self, UnknownEventName> {
        let wanted = events.iter().map(|name| event_name(name)).collect::<Result<Vec<_>, _>>()?;
        let chosen: Vec<_> =
            EVENTS.iter().filter(|(name, ..)| wanted.is_empty() || wanted.contains(name)).collect();
        let mut rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        let cumulative = chosen
            .iter()
            .scan(0, |sum, (.., weight)| {
                *sum += weight;
                Some(*sum)
            })
            .collect();
        let mut unsent: Vec<usize> = (0..chosen.len()).collect();
        unsent.shuffle(&mut rng);
        Ok(Traffic {
            kinds: chosen.iter().map(|(name, medium, _)| (*name, *medium)).collect(),
            cumulative,
            unsent,
            maker: Maker::new(rng),
        })
    }

    /// The next event: its name and its body in Iterable's nested shape.
    #[expect(
        clippy::should_implement_trait,
        reason = "traffic never ends: an `Iterator`'s `Option` would always be `Some`"
    )]
    pub fn next(&mut self) -> (String, Value) {
        let index = match self.unsent.pop() {
            Some(index) => index,
            None => self.weighted_pick(),
        };
        let (name, medium) = self.kinds[index];
        (name.to_owned(), self.maker.body(name, medium))
    }

    fn weighted_pick(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let roll = self.maker.rng().random_range(0..total.max(1));
        self.cumulative.partition_point(|sum| *sum <= roll).min(self.kinds.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use chrono::DateTime;

    use super::*;

    fn sample(events: &[&str], n: usize) -> Vec<(String, Value)> {
        let mut traffic = Traffic::new(events, Some(42)).unwrap();
        (0..n).map(|_| traffic.next()).collect()
    }

    #[test]
    fn every_family_comes_first_then_the_mix() {
        let events = sample(&[], 3_000);
        let first: BTreeSet<&str> = events[..25].iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(first, EVENT_NAMES.iter().copied().collect());

        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, _) in &events {
            *counts.entry(name).or_default() += 1;
        }
        assert!(counts["emailSend"] > 10 * counts["emailBounce"], "{counts:?}");
        assert!(counts["emailOpen"] > 5 * counts["emailComplaint"], "{counts:?}");
        assert!(counts["pushSend"] > counts["pushUninstall"], "{counts:?}");
    }

    #[test]
    fn only_the_requested_events_are_made() {
        let events = sample(&["emailOpen", "smsBounce"], 200);
        let names: BTreeSet<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, BTreeSet::from(["emailOpen", "smsBounce"]));
    }

    #[test]
    fn bodies_have_iterables_real_shape() {
        for (name, body) in sample(&[], 2_000) {
            let top = body.as_object().unwrap();
            assert_eq!(top["eventName"], name.as_str());
            for key in top.keys() {
                assert!(
                    ["email", "userId", "eventName", "dataFields"].contains(&key.as_str()),
                    "`{key}` at the top of {body}"
                );
            }
            assert!(top.contains_key("email") || top.contains_key("userId"), "{body}");
            let data = top["dataFields"].as_object().unwrap();
            if let Some(email) = top.get("email") {
                assert_eq!(&data["email"], email, "{body}");
            }
            let created = data["createdAt"].as_str().unwrap();
            DateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S %:z")
                .unwrap_or_else(|err| panic!("createdAt `{created}`: {err}"));
            assert!(created.ends_with(" +00:00"), "{created}");
            if let Some(id) = data.get("messageId") {
                let id = id.as_str().unwrap();
                assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            }
            if let Some(campaign) = data.get("campaignId") {
                assert!(campaign.is_i64(), "{body}");
                assert!(data["templateId"].is_i64(), "{body}");
            }
            if name.starts_with("email") && data.contains_key("messageId") {
                let expected = format!(
                    "c{}:t{}:{}",
                    data["campaignId"],
                    data["templateId"],
                    top["email"].as_str().unwrap()
                );
                assert_eq!(data["emailId"], expected.as_str(), "{body}");
            }
        }
    }

    #[test]
    fn family_fields_are_present() {
        let events = sample(&[], 3_000);
        let has = |event: &str, field: &str| {
            events
                .iter()
                .filter(|(name, _)| name == event)
                .all(|(_, body)| body["dataFields"].get(field).is_some())
        };
        for (event, field) in [
            ("emailClick", "url"),
            ("emailClick", "linkUrl"),
            ("emailOpen", "userAgent"),
            ("emailOpen", "ip"),
            ("emailOpen", "city"),
            ("emailBounce", "bounceMessage"),
            ("emailSendSkip", "reason"),
            ("emailSubscribe", "emailListIds"),
            ("emailUnSubscribe", "emailListIds"),
            ("hostedUnsubscribeClick", "url"),
            ("pushSend", "pushMessage"),
            ("pushSend", "badge"),
            ("pushOpen", "deeplink"),
            ("smsSend", "toPhoneNumber"),
            ("smsSend", "smsMessage"),
            ("smsReceived", "fromPhoneNumber"),
            ("smsBounce", "smsProviderResponse"),
            ("inAppSend", "messageContext"),
            ("webPushSendSkip", "reason"),
        ] {
            assert!(has(event, field), "{event} without {field}");
        }
        let ipv6 = events
            .iter()
            .any(|(_, body)| body["dataFields"]["ip"].as_str().is_some_and(|ip| ip.contains(':')));
        assert!(ipv6, "no IPv6 address in the sample");
        let user_id_only = events.iter().any(|(_, body)| {
            body.get("email").is_none() && body["userId"].as_str().is_some_and(|id| !id.is_empty())
        });
        assert!(user_id_only, "no user-id-only user in the sample");
    }

    #[test]
    fn bodies_are_unique() {
        let bodies: Vec<String> = sample(&[], 20_000).iter().map(|(_, b)| b.to_string()).collect();
        let distinct: HashSet<&String> = bodies.iter().collect();
        assert_eq!(distinct.len(), bodies.len());
        // The message-id-less kinds stay unique on their own, too.
        for only in ["emailSubscribe", "smsReceived"] {
            let bodies: HashSet<String> =
                sample(&[only], 5_000).iter().map(|(_, b)| b.to_string()).collect();
            assert_eq!(bodies.len(), 5_000, "{only}");
        }
    }

    #[test]
    fn a_seed_repeats_the_sequence() {
        let names = |seed| {
            let mut traffic = Traffic::new(&[], Some(seed)).unwrap();
            (0..100).map(|_| traffic.next().0).collect::<Vec<_>>()
        };
        assert_eq!(names(9), names(9));
        assert_ne!(names(9), names(10));
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let err = Traffic::new(&["emailOpen", "emailUnsubscribe"], None).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("unknown event name `emailUnsubscribe`"), "{message}");
        assert!(message.contains("did you mean `emailUnSubscribe`?"), "{message}");
        assert!(message.contains("emailSend, emailOpen,"), "{message}");
        assert!(message.ends_with("webPushSendSkip"), "{message}");
        assert_eq!(event_name("smsClick"), Ok("smsClick"));
        assert!(!event_name("purchase").unwrap_err().to_string().contains("did you mean"));
    }
}
