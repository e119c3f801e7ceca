//! Plausible values for simulated traffic: users, campaigns, devices, places and addresses.
//! Addresses come from the ranges reserved for documentation (RFC 5737, RFC 3849, `example`
//! domains, 555 phone numbers), so simulated traffic never names a real person or host.

use rand::RngExt as _;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use serde_json::{Value, json};

/// How many distinct users the everyday traffic is drawn from.
pub(super) const USER_POOL: u64 = 5_000;

const FIRST_NAMES: [&str; 16] = [
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "donald",
    "margaret",
    "linus",
    "katherine",
    "dennis",
    "frances",
    "ken",
    "radia",
    "john",
    "sophie",
    "tim",
];
const LAST_NAMES: [&str; 12] = [
    "lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "hamilton", "torvalds",
    "johnson", "ritchie", "allen", "perlman",
];
const DOMAINS: [&str; 4] = ["example.com", "example.org", "example.net", "mail.example.com"];
const LOCALES: [&str; 6] = ["en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "pt_BR"];

/// `(city, region, country)` as Iterable's geo-IP lookup reports them.
pub(super) const PLACES: [(&str, &str, &str); 8] = [
    ("San Francisco", "CA", "US"),
    ("New York", "NY", "US"),
    ("Austin", "TX", "US"),
    ("London", "ENG", "GB"),
    ("Paris", "IDF", "FR"),
    ("Berlin", "BE", "DE"),
    ("Toronto", "ON", "CA"),
    ("Sydney", "NSW", "AU"),
];

/// `(userAgent, userAgentDevice)`.
pub(super) const USER_AGENTS: [(&str, &str); 6] = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like \
         Gecko) Mobile/15E148",
        "iPhone",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/124.0.0.0 Mobile Safari/537.36",
        "Android",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/124.0.0.0 Safari/537.36",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
         Version/17.4 Safari/605.1.15",
        "Mac",
    ),
    (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "Gmail",
    ),
    ("Mozilla/5.0", "Apple Mail Privacy Protection"),
];

/// Who an event is about. Iterable sends `email`, `userId`, or both, depending on the project.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) email: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) phone: String,
    pub(super) locale: &'static str,
}

impl User {
    /// The user numbered `n`, always the same for the same `n` and `key`. `n` is written into
    /// the email and the user id, so distinct numbers give distinct users.
    pub(super) fn numbered(n: u64, key: u64, needs_email: bool) -> Self {
        let first = FIRST_NAMES[(n % 16) as usize];
        let last = LAST_NAMES[(n / 16 % 12) as usize];
        let domain = DOMAINS[(n / 192 % 4) as usize];
        let email = format!("{first}.{last}{n}@{domain}");
        let user_id = format!("usr_{:016x}", mix(n ^ key));
        // One in seven users lives in a user-id based project: no email at all. One in five has
        // both. Email events need an address, so such a user gets both there.
        let (email, user_id) = match n % 35 {
            0..=4 if !needs_email => (None, Some(user_id)),
            0..=11 => (Some(email), Some(user_id)),
            _ => (Some(email), None),
        };
        let phone = format!("+1{}555{:04}", 201 + mix(n) % 700, mix(n.wrapping_add(key)) % 10_000);
        User { email, user_id, phone, locale: LOCALES[(n / 7 % 6) as usize] }
    }
}

/// The channel a campaign sends on, which decides its ids and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Medium {
    Email,
    Push,
    Sms,
    InApp,
    WebPush,
}

/// A campaign and its template, as repeated in every event it causes.
#[derive(Debug, Clone)]
pub(super) struct Campaign {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) template_id: i64,
    pub(super) template_name: String,
    pub(super) channel_id: i64,
    pub(super) message_type_id: i64,
    pub(super) workflow: Option<(i64, &'static str)>,
    pub(super) experiment_id: Option<i64>,
    /// Subject line, push text, SMS text or in-app title.
    pub(super) content: &'static str,
    pub(super) transactional: bool,
}

/// `(campaign name, content, triggered by a journey, transactional)` per medium.
const EMAIL_CAMPAIGNS: [(&str, &str, bool, bool); 5] = [
    ("Spring sale", "Spring sale: 20% off everything until Sunday", false, false),
    ("Welcome series - day 1", "Welcome! Here is how to get started", true, false),
    ("Weekly digest", "Your week in review", false, false),
    ("Abandoned cart", "You left something in your cart", true, false),
    ("Order confirmation", "Your order {{orderId}} is confirmed", true, true),
];
const PUSH_CAMPAIGNS: [(&str, &str, bool, bool); 3] = [
    ("Flash sale push", "Flash sale! 2 hours only", false, false),
    ("Back in stock", "Good news: it is back in stock", true, false),
    ("Delivery update", "Your parcel is out for delivery", true, true),
];
const SMS_CAMPAIGNS: [(&str, &str, bool, bool); 3] = [
    (
        "SMS weekend offer",
        "Weekend offer: 15% off with code WKND15. Reply STOP to opt out",
        false,
        false,
    ),
    ("Appointment reminder", "Reminder: your appointment is tomorrow at 10:00", true, true),
    ("Verification code", "Your verification code is 482913", true, true),
];
const IN_APP_CAMPAIGNS: [(&str, &str, bool, bool); 3] = [
    ("Feature tour", "Discover the new dashboard", false, false),
    ("Rate the app", "Enjoying the app? Rate us", true, false),
    ("Upgrade offer", "Go premium: first month free", false, false),
];
const WEB_PUSH_CAMPAIGNS: [(&str, &str, bool, bool); 2] = [
    ("New article", "New on the blog: 10 tips for faster checkouts", false, false),
    ("Price drop", "A product on your wish list dropped in price", true, false),
];

const JOURNEYS: [&str; 3] = ["Onboarding journey", "Cart recovery", "Transactional"];

// Picking a campaign indexes these tables, so none may be empty.
const _: () = assert!(
    !EMAIL_CAMPAIGNS.is_empty()
        && !PUSH_CAMPAIGNS.is_empty()
        && !SMS_CAMPAIGNS.is_empty()
        && !IN_APP_CAMPAIGNS.is_empty()
        && !WEB_PUSH_CAMPAIGNS.is_empty()
);

/// Every medium's campaigns, with ids drawn once per run.
#[derive(Debug)]
pub(super) struct Campaigns {
    email: Vec<Campaign>,
    push: Vec<Campaign>,
    sms: Vec<Campaign>,
    in_app: Vec<Campaign>,
    web_push: Vec<Campaign>,
}

impl Campaigns {
    pub(super) fn new(rng: &mut StdRng) -> Self {
        Campaigns {
            email: campaigns(&EMAIL_CAMPAIGNS, 3420, 3866, rng),
            push: campaigns(&PUSH_CAMPAIGNS, 3421, 3868, rng),
            sms: campaigns(&SMS_CAMPAIGNS, 3422, 3870, rng),
            in_app: campaigns(&IN_APP_CAMPAIGNS, 3423, 3872, rng),
            web_push: campaigns(&WEB_PUSH_CAMPAIGNS, 3424, 3874, rng),
        }
    }

    /// A random campaign of `medium`.
    pub(super) fn pick(&self, medium: Medium, rng: &mut StdRng) -> &Campaign {
        let list = match medium {
            Medium::Email => &self.email,
            Medium::Push => &self.push,
            Medium::Sms => &self.sms,
            Medium::InApp => &self.in_app,
            Medium::WebPush => &self.web_push,
        };
        // Never empty: one campaign per row of a non-empty table (asserted above).
        &list[rng.random_range(0..list.len())]
    }
}

/// One campaign per row of `table`. Transactional campaigns get the next message type.
fn campaigns(
    table: &[(&'static str, &'static str, bool, bool)],
    channel_id: i64,
    message_type_id: i64,
    rng: &mut StdRng,
) -> Vec<Campaign> {
    table
        .iter()
        .map(|&(name, content, journey, transactional)| Campaign {
            id: rng.random_range(1_000_000..10_000_000),
            name: name.to_owned(),
            template_id: rng.random_range(1_000_000..10_000_000),
            template_name: format!("{name} template"),
            channel_id,
            message_type_id: message_type_id + i64::from(transactional),
            workflow: journey.then(|| {
                (rng.random_range(10_000..100_000), JOURNEYS[rng.random_range(0..JOURNEYS.len())])
            }),
            experiment_id: (!journey && rng.random_bool(0.3))
                .then(|| rng.random_range(100_000..1_000_000)),
            content,
            transactional,
        })
        .collect()
}

/// An IPv4 (three in four) or IPv6 address from the documentation ranges.
pub(super) fn ip(rng: &mut StdRng) -> String {
    if rng.random_bool(0.75) {
        let net = ["192.0.2", "198.51.100", "203.0.113"].choose(rng).copied().unwrap_or("192.0.2");
        format!("{net}.{}", rng.random_range(1..255))
    } else {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.random_range(0..0x1_0000),
            rng.random_range(0..0x1_0000),
            rng.random_range(1..0x1_0000)
        )
    }
}

/// `userAgent`, `userAgentDevice`, `ip`, `city`, `region`, `country` of an open or a click.
pub(super) fn device_and_place(rng: &mut StdRng) -> Value {
    let (agent, device) = USER_AGENTS[rng.random_range(0..USER_AGENTS.len())];
    let (city, region, country) = PLACES[rng.random_range(0..PLACES.len())];
    json!({
        "userAgent": agent,
        "userAgentDevice": device,
        "ip": ip(rng),
        "city": city,
        "region": region,
        "country": country,
    })
}

/// A push token or web-push browser token: opaque, long, URL-safe.
pub(super) fn device_token(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..64).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// One of `choices`, or `fallback` if there are none.
pub(super) fn pick<T: Clone>(rng: &mut StdRng, choices: &[T], fallback: T) -> T {
    choices.choose(rng).cloned().unwrap_or(fallback)
}

/// A bijection on `u64` (SplitMix64's finaliser): distinct inputs give distinct, random-looking
/// outputs, which is what makes message ids unique without remembering them.
pub(super) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn numbered_users_are_distinct_and_stable() {
        let users: Vec<User> = (0..2_000).map(|n| User::numbered(n, 7, false)).collect();
        let ids: HashSet<String> =
            users.iter().map(|u| format!("{:?}/{:?}", u.email, u.user_id)).collect();
        assert_eq!(ids.len(), users.len());
        assert!(users.iter().any(|u| u.email.is_none() && u.user_id.is_some()));
        assert!(users.iter().any(|u| u.email.is_some() && u.user_id.is_some()));
        assert!(users.iter().all(|u| u.phone.len() == 12 && u.phone.starts_with("+1")));
        assert_eq!(User::numbered(3, 7, false).user_id, users[3].user_id);
        assert!((0..100).all(|n| User::numbered(n, 7, true).email.is_some()));
    }

    #[test]
    fn addresses_are_documentation_addresses() {
        let mut rng = StdRng::seed_from_u64(1);
        let ips: Vec<String> = (0..200).map(|_| ip(&mut rng)).collect();
        assert!(ips.iter().all(|ip| ip.parse::<std::net::IpAddr>().is_ok()), "{ips:?}");
        assert!(ips.iter().any(|ip| ip.starts_with("2001:db8:")));
        assert!(ips.iter().any(|ip| ip.contains('.')));
    }

    #[test]
    fn mix_is_injective_on_a_sample() {
        let outputs: HashSet<u64> = (0..100_000).map(mix).collect();
        assert_eq!(outputs.len(), 100_000);
    }
}
