//! Every event name Iterable documents for system webhooks, grouped in families. An unknown
//! name is a normal event of the `other` family: it gets the generic columns and no view.

use serde::Serialize;

/// The kind of message an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Email,
    Subscription,
    Push,
    Sms,
    InApp,
    WebPush,
    Embedded,
    WhatsApp,
    Journey,
    Other,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Email => "email",
            Family::Subscription => "subscription",
            Family::Push => "push",
            Family::Sms => "sms",
            Family::InApp => "in_app",
            Family::WebPush => "web_push",
            Family::Embedded => "embedded",
            Family::WhatsApp => "whatsapp",
            Family::Journey => "journey",
            Family::Other => "other",
        }
    }
}

/// A documented event name, its family and the name of its SQL view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownEvent {
    pub name: &'static str,
    pub family: Family,
    pub view: &'static str,
    /// Whether Iterable has published an example body for it.
    pub confirmed: bool,
}

const fn known(
    name: &'static str,
    family: Family,
    view: &'static str,
    confirmed: bool,
) -> KnownEvent {
    KnownEvent { name, family, view, confirmed }
}

use Family::*;

/// The 25 names with documented example bodies, then the 14 listed without one.
pub const KNOWN_EVENTS: &[KnownEvent] = &[
    known("emailSend", Email, "email_send", true),
    known("emailOpen", Email, "email_open", true),
    known("emailClick", Email, "email_click", true),
    known("emailBounce", Email, "email_bounce", true),
    known("emailComplaint", Email, "email_complaint", true),
    known("emailSendSkip", Email, "email_send_skip", true),
    known("emailSubscribe", Subscription, "email_subscribe", true),
    known("emailUnSubscribe", Subscription, "email_unsubscribe", true),
    known("hostedUnsubscribeClick", Subscription, "hosted_unsubscribe_click", true),
    known("pushSend", Push, "push_send", true),
    known("pushOpen", Push, "push_open", true),
    known("pushBounce", Push, "push_bounce", true),
    known("pushUninstall", Push, "push_uninstall", true),
    known("pushSendSkip", Push, "push_send_skip", true),
    known("smsSend", Sms, "sms_send", true),
    known("smsBounce", Sms, "sms_bounce", true),
    known("smsReceived", Sms, "sms_received", true),
    known("smsClick", Sms, "sms_click", true),
    known("smsSendSkip", Sms, "sms_send_skip", true),
    known("inAppSend", InApp, "in_app_send", true),
    known("inAppOpen", InApp, "in_app_open", true),
    known("inAppClick", InApp, "in_app_click", true),
    known("inAppSendSkip", InApp, "in_app_send_skip", true),
    known("webPushSend", WebPush, "web_push_send", true),
    known("webPushSendSkip", WebPush, "web_push_send_skip", true),
    known("embeddedClick", Embedded, "embedded_click", false),
    known("embeddedImpression", Embedded, "embedded_impression", false),
    known("embeddedReceived", Embedded, "embedded_received", false),
    known("embeddedSession", Embedded, "embedded_session", false),
    known("inAppDelete", InApp, "in_app_delete", false),
    known("inAppRecall", InApp, "in_app_recall", false),
    known("inAppClose", InApp, "in_app_close", false),
    known("journeyExit", Journey, "journey_exit", false),
    known("webPushClick", WebPush, "web_push_click", false),
    known("whatsAppSend", WhatsApp, "whatsapp_send", false),
    known("whatsAppReceived", WhatsApp, "whatsapp_received", false),
    known("whatsAppSeen", WhatsApp, "whatsapp_seen", false),
    known("whatsAppClick", WhatsApp, "whatsapp_click", false),
    known("whatsAppBounce", WhatsApp, "whatsapp_bounce", false),
    known("whatsAppSendSkip", WhatsApp, "whatsapp_send_skip", false),
];

/// The catalogue entry for a name, matched exactly (Iterable's names are case-sensitive:
/// `emailUnSubscribe` has a capital S).
pub fn lookup(name: &str) -> Option<&'static KnownEvent> {
    KNOWN_EVENTS.iter().find(|event| event.name == name)
}

pub fn family_of(name: &str) -> Family {
    lookup(name).map_or(Family::Other, |event| event.family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_complete_and_consistent() {
        assert_eq!(KNOWN_EVENTS.iter().filter(|e| e.confirmed).count(), 25);
        assert_eq!(KNOWN_EVENTS.iter().filter(|e| !e.confirmed).count(), 15, "14 + inAppClose");
        let mut views: Vec<_> = KNOWN_EVENTS.iter().map(|e| e.view).collect();
        views.sort_unstable();
        views.dedup();
        assert_eq!(views.len(), KNOWN_EVENTS.len(), "view names are unique");
        assert!(views.iter().all(|v| v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn unknown_names_are_other() {
        assert_eq!(family_of("emailUnSubscribe"), Family::Subscription);
        assert_eq!(family_of("emailUnsubscribe"), Family::Other);
        assert_eq!(family_of("purchase"), Family::Other);
    }
}
