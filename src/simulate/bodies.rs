//! Bodies in Iterable's real shape, `{"email", "userId", "eventName", "dataFields"}`, with every
//! event field inside `dataFields`, for each documented event name. Field names and types
//! follow Iterable's example bodies (see `docs/iterable-webhooks.md`); values are made up.

use chrono::{Duration, Utc};
use rand::RngExt as _;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::values::{
    Campaign, Campaigns, Medium, USER_POOL, User, device_and_place, device_token, mix, pick,
};

/// Iterable's timestamp format: `2016-12-02 20:21:04 +00:00`.
const CREATED_AT_FORMAT: &str = "%Y-%m-%d %H:%M:%S +00:00";

const BOUNCE_MESSAGES: [&str; 4] = [
    "550 5.1.1 The email account that you tried to reach does not exist.",
    "552 5.2.2 The email account that you tried to reach is over quota.",
    "554 5.7.1 Message rejected due to content restrictions.",
    "421 4.7.0 Temporary System Problem. Try again later.",
];
const SKIP_REASONS: [&str; 5] = [
    "DuplicateMarketingMessage",
    "MessageTypeUnsubscribed",
    "ChannelUnsubscribed",
    "FrequencyCapped",
    "InvalidContent",
];
const PUSH_SKIP_REASONS: [&str; 3] =
    ["NoValidDevice", "DuplicateMarketingMessage", "MessageTypeUnsubscribed"];
const SIGNUP_SOURCES: [&str; 4] = ["WebForm", "API", "Import", "iOS"];
const UNSUB_SOURCES: [&str; 3] = ["EmailLink", "HostedPage", "API"];
const SMS_REPLIES: [&str; 5] = ["STOP", "YES", "HELP", "Thanks!", "Can I change my appointment?"];
const LINK_PATHS: [&str; 4] = ["/sale", "/products/sneakers", "/blog/faster-checkouts", "/account"];
/// Twilio errors as Iterable passes them on in `smsProviderResponse`.
const SMS_ERRORS: [(i64, &str); 3] = [
    (21211, "The 'To' number is not a valid phone number."),
    (21610, "Attempt to send to unsubscribed recipient"),
    (30006, "Landline or unreachable carrier"),
];
/// The lists people subscribe to.
const EMAIL_LISTS: [i64; 4] = [81_012, 81_013, 92_207, 104_511];

/// Builds bodies from a random source, the run's campaigns and a few counters.
#[derive(Debug)]
pub(super) struct Maker {
    rng: StdRng,
    campaigns: Campaigns,
    /// Mixed into the counters, so two runs do not repeat each other's message ids.
    key: u64,
    /// Events made so far; written into each `messageId`.
    made: u64,
    /// New users made so far, for sign-ups and inbound SMS.
    new_users: u64,
}

impl Maker {
    pub(super) fn new(mut rng: StdRng) -> Self {
        let campaigns = Campaigns::new(&mut rng);
        let key = rng.random();
        Maker { rng, campaigns, key, made: 0, new_users: 0 }
    }

    pub(super) fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The body of one `name` event.
    pub(super) fn body(&mut self, name: &'static str, medium: Medium) -> Value {
        self.made += 1;
        let created_at = Utc::now();
        let created = created_at.format(CREATED_AT_FORMAT).to_string();
        let needs_email = medium == Medium::Email;
        // Sign-ups and inbound texts carry no message id; a new user keeps each one unique.
        let user = if matches!(name, "emailSubscribe" | "smsReceived") {
            self.new_users += 1;
            User::numbered(USER_POOL + self.new_users, self.key, needs_email)
        } else {
            User::numbered(self.rng.random_range(0..USER_POOL), self.key, needs_email)
        };

        let mut data = match name {
            "emailSubscribe" => json!({
                "createdAt": created,
                "profileUpdatedAt": created,
                "signupSource": pick(&mut self.rng, &SIGNUP_SOURCES, "WebForm"),
                "emailListIds": [pick(&mut self.rng, &EMAIL_LISTS, EMAIL_LISTS[0])],
            }),
            "smsReceived" => json!({
                "createdAt": created,
                "fromPhoneNumber": user.phone,
                "toPhoneNumber": "+14155550123",
                "smsMessage": pick(&mut self.rng, &SMS_REPLIES, "STOP"),
            }),
            _ => self.message_fields(name, medium, &user, &created),
        };
        if name == "inAppSend" {
            let expires = created_at + Duration::days(30);
            data["expiresAt"] = expires.format(CREATED_AT_FORMAT).to_string().into();
        }
        envelope(name, &user, data)
    }

    /// The fields of an event about one message: campaign, template, ids, and the family's own.
    fn message_fields(&mut self, name: &str, medium: Medium, user: &User, created: &str) -> Value {
        let campaign = self.campaigns.pick(medium, &mut self.rng).clone();
        let message_id =
            format!("{:016x}{:016x}", self.rng.random::<u64>(), mix(self.made ^ self.key));
        let mut data = json!({
            "createdAt": created,
            "campaignId": campaign.id,
            "campaignName": campaign.name,
            "templateId": campaign.template_id,
            "templateName": campaign.template_name,
            "messageId": message_id,
            "channelId": campaign.channel_id,
            "messageTypeId": campaign.message_type_id,
            "workflowId": campaign.workflow.map(|(id, _)| id),
            "workflowName": campaign.workflow.map(|(_, workflow)| workflow),
            "experimentId": campaign.experiment_id,
            "contentId": campaign.template_id + 7,
            "labels": [],
        });
        if let (Some(email), Medium::Email) = (&user.email, medium) {
            data["emailId"] = format!("c{}:t{}:{email}", campaign.id, campaign.template_id).into();
        }
        extend(&mut data, self.family_fields(name, &campaign, user));
        data
    }

    /// What one event name adds to the message fields.
    fn family_fields(&mut self, name: &str, campaign: &Campaign, user: &User) -> Value {
        let rng = &mut self.rng;
        match name {
            "emailSend" => {
                let mut fields = json!({ "emailSubject": campaign.content });
                if campaign.transactional {
                    let order = json!({ "orderId": format!("A{}", rng.random_range(10_000..99_999)),
                                        "total": rng.random_range(500..50_000) as f64 / 100.0 });
                    // Iterable sends it as an object or as a JSON-encoded string.
                    fields["transactionalData"] =
                        if rng.random_bool(0.5) { order.to_string().into() } else { order };
                }
                fields
            }
            "emailOpen" => with(
                device_and_place(rng),
                json!({ "emailSubject": campaign.content, "proxySource": Value::Null }),
            ),
            "emailClick" | "smsClick" => {
                let path = pick(rng, &LINK_PATHS, "/");
                let url = format!("https://www.example.com{path}");
                let link_id = rng.random_range(1_000_000..9_999_999).to_string();
                let mut fields = with(
                    device_and_place(rng),
                    json!({
                        "url": format!("{url}?utm_source=iterable&utm_campaign={}", campaign.id),
                        "linkUrl": url,
                        "linkId": link_id,
                        "canonicalUrlId": rng.random_range(1_000_000..9_999_999).to_string(),
                        "hrefIndex": rng.random_range(0..6),
                    }),
                );
                if name == "smsClick" {
                    fields["toPhoneNumber"] = user.phone.as_str().into();
                }
                fields
            }
            "emailBounce" => json!({
                "recipientState": "Bounced",
                "bounceMessage": pick(rng, &BOUNCE_MESSAGES, BOUNCE_MESSAGES[0]),
            }),
            "emailComplaint" => json!({ "recipientState": "Complaint" }),
            "emailSendSkip" | "smsSendSkip" | "inAppSendSkip" | "webPushSendSkip" => {
                json!({ "reason": pick(rng, &SKIP_REASONS, SKIP_REASONS[0]) })
            }
            "pushSendSkip" => json!({ "reason": pick(rng, &PUSH_SKIP_REASONS, "NoValidDevice") }),
            "emailUnSubscribe" => json!({
                "unsubSource": pick(rng, &UNSUB_SOURCES, "EmailLink"),
                "emailListIds": [pick(rng, &EMAIL_LISTS, EMAIL_LISTS[0])],
                "channelIds": if rng.random_bool(0.3) { json!([campaign.channel_id]) } else { json!([]) },
            }),
            "hostedUnsubscribeClick" => with(
                device_and_place(rng),
                json!({ "url": format!(
                    "https://links.iterable.com/e/encryptedUnsubscribe?_r={}",
                    rng.random_range(100_000..999_999)
                ) }),
            ),
            "pushSend" | "pushOpen" => {
                let deeplink = rng.random_bool(0.6).then(|| {
                    json!({ "ios": "https://www.example.com/app/sale",
                            "android": "https://www.example.com/app/sale" })
                });
                let mut fields = json!({
                    "platformEndpoint": "",
                    "pushMessage": campaign.content,
                    "badge": pick(rng, &[Some(""), Some("1"), None], None),
                    "sound": pick(rng, &[Some(""), Some("default"), None], None),
                    "deeplink": deeplink,
                    "payload": {},
                    "locale": user.locale,
                    "isGhostPush": false,
                    "contentAvailable": false,
                });
                if name == "pushOpen" {
                    fields["appAlreadyRunning"] = rng.random_bool(0.3).into();
                }
                fields
            }
            "pushBounce" | "pushUninstall" => json!({
                "platformEndpoint": device_token(rng),
                "isGhostPush": name == "pushUninstall" && rng.random_bool(0.5),
            }),
            "smsSend" | "smsBounce" => {
                let mut fields = json!({
                    "toPhoneNumber": user.phone,
                    "fromSMSSenderId": 4521,
                    "fromPhoneNumberId": 2718,
                    "smsMessage": campaign.content,
                    "imageUrl": Value::Null,
                    "locale": user.locale,
                });
                if name == "smsBounce" {
                    let (code, message) = pick(rng, &SMS_ERRORS, SMS_ERRORS[0]);
                    fields["smsProviderResponse"] = json!({
                        "status": 400,
                        "message": message,
                        "code": code,
                        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                    });
                }
                fields
            }
            "inAppSend" | "inAppOpen" | "inAppClick" => {
                let mut fields = json!({
                    "messageContext": {
                        "saveToInbox": rng.random_bool(0.4),
                        "trigger": pick(rng, &["immediate", "open", "never"], "immediate"),
                    },
                    "locale": user.locale,
                });
                if name != "inAppSend" {
                    fields["messageContext"]["location"] =
                        pick(rng, &["in-app", "inbox"], "in-app").into();
                    fields["deviceInfo"] = json!({
                        "appPackageName": "com.example.shop",
                        "deviceId": format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
                        "platform": pick(rng, &["iOS", "Android"], "iOS"),
                    });
                }
                if name == "inAppClick" {
                    let url =
                        pick(rng, &["iterable://dismiss", "https://www.example.com/premium"], "");
                    fields["url"] = url.into();
                    fields["clickedUrl"] = url.into();
                }
                fields
            }
            "webPushSend" => json!({
                "browserToken": device_token(rng),
                "pushMessage": campaign.content,
                "url": "https://www.example.com/blog",
            }),
            _ => json!({}),
        }
    }
}

/// The top level holds only `email`, `userId`, `eventName` and `dataFields`; the email is
/// repeated inside `dataFields`, as Iterable does.
fn envelope(name: &str, user: &User, mut data: Value) -> Value {
    let mut top = Map::new();
    if let Some(email) = &user.email {
        top.insert("email".to_owned(), email.as_str().into());
        data["email"] = email.as_str().into();
    }
    if let Some(user_id) = &user.user_id {
        top.insert("userId".to_owned(), user_id.as_str().into());
    }
    top.insert("eventName".to_owned(), name.into());
    top.insert("dataFields".to_owned(), data);
    Value::Object(top)
}

/// `base` with the fields of `more` added.
fn with(mut base: Value, more: Value) -> Value {
    extend(&mut base, more);
    base
}

/// Adds the fields of `more` to `base`.
fn extend(base: &mut Value, more: Value) {
    if let (Value::Object(base), Value::Object(more)) = (base, more) {
        base.extend(more);
    }
}
