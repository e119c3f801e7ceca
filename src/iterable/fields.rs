//! The event fields promoted to typed columns, read from `dataFields` the way they really
//! arrive: ids as numbers or numeric strings, flags as booleans or `"true"`, lists as arrays,
//! `transactionalData` as an object or a JSON-encoded string, `""` for an undefined merge field.

use serde::Serialize;
use serde_json::Value;

use super::{Envelope, id_i64};

/// The promoted columns of one event; `None` where the event has no such field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventFields {
    pub channel_id: Option<i64>,
    pub message_type_id: Option<i64>,
    pub workflow_id: Option<i64>,
    pub experiment_id: Option<i64>,
    pub content_id: Option<i64>,
    pub campaign_name: Option<String>,
    pub template_name: Option<String>,
    pub workflow_name: Option<String>,
    pub email_subject: Option<String>,
    pub url: Option<String>,
    pub link_url: Option<String>,
    pub user_agent: Option<String>,
    pub user_agent_device: Option<String>,
    pub ip: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub locale: Option<String>,
    pub proxy_source: Option<String>,
    pub is_bot: Option<bool>,
    pub recipient_state: Option<String>,
    pub bounce_message: Option<String>,
    pub reason: Option<String>,
    pub unsub_source: Option<String>,
    pub signup_source: Option<String>,
    /// JSON array text.
    pub email_list_ids: Option<String>,
    /// JSON array text.
    pub labels: Option<String>,
    pub to_phone_number: Option<String>,
    pub from_phone_number: Option<String>,
    pub sms_message: Option<String>,
    pub push_message: Option<String>,
    /// JSON text of `transactionalData`, decoded when it was sent as a JSON-encoded string.
    pub transactional_data: Option<String>,
}

impl EventFields {
    pub fn read(envelope: &Envelope<'_>) -> Self {
        let id = |key| id_i64(envelope.field(key));
        let text = |key| text(envelope.field(key));
        EventFields {
            channel_id: id("channelId"),
            message_type_id: id("messageTypeId"),
            workflow_id: id("workflowId"),
            experiment_id: id("experimentId"),
            content_id: id("contentId"),
            campaign_name: text("campaignName"),
            template_name: text("templateName"),
            workflow_name: text("workflowName"),
            email_subject: text("emailSubject"),
            // `smsClick` names its link `clickedUrl`; `url` wins when both are sent.
            url: text("url").or_else(|| text("clickedUrl")),
            link_url: text("linkUrl"),
            user_agent: text("userAgent"),
            user_agent_device: text("userAgentDevice"),
            ip: text("ip"),
            city: text("city"),
            region: text("region"),
            country: text("country"),
            locale: text("locale"),
            proxy_source: text("proxySource"),
            is_bot: flag(envelope.field("isBot")),
            recipient_state: text("recipientState"),
            bounce_message: text("bounceMessage").or_else(|| provider_message(envelope)),
            reason: text("reason"),
            unsub_source: text("unsubSource"),
            signup_source: text("signupSource"),
            email_list_ids: json_list(envelope.field("emailListIds")),
            labels: json_list(envelope.field("labels")),
            to_phone_number: text("toPhoneNumber"),
            from_phone_number: text("fromPhoneNumber"),
            sms_message: text("smsMessage"),
            push_message: text("pushMessage"),
            transactional_data: embedded_json(envelope.field("transactionalData")),
        }
    }
}

/// A text column: strings as they are (`""` is absent), numbers and booleans in their JSON
/// spelling (a phone number sent as a number stays readable), objects as JSON text.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// An `smsBounce` may carry its reason only in the SMS provider's answer
/// (`smsProviderResponse.message`, Twilio's error shape), an object or a JSON-encoded string.
fn provider_message(envelope: &Envelope<'_>) -> Option<String> {
    let message = |response: &Value| text(response.get("message"));
    match envelope.field("smsProviderResponse")? {
        Value::String(s) => serde_json::from_str::<Value>(s).ok().as_ref().and_then(message),
        response => message(response),
    }
}

fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// A list column as JSON array text. A form body sends `1,2` or `[1,2]` as a string.
fn json_list(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Array(_) => value.map(Value::to_string),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(list @ Value::Array(_)) => Some(list.to_string()),
            _ => Some(Value::Array(s.split(',').map(list_item).collect()).to_string()),
        },
        other => Some(Value::Array(vec![other.clone()]).to_string()),
    }
}

fn list_item(item: &str) -> Value {
    let item = item.trim();
    item.parse::<i64>().map_or_else(|_| Value::String(item.to_owned()), Value::from)
}

/// JSON that may arrive encoded as a string: decoded when the string holds JSON.
fn embedded_json(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(
            serde_json::from_str::<Value>(s)
                .unwrap_or_else(|_| Value::from(s.as_str()))
                .to_string(),
        ),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(data: Value) -> EventFields {
        let body = json!({"eventName": "emailSend", "dataFields": data});
        EventFields::read(&Envelope::parse(&body).unwrap())
    }

    #[test]
    fn values_are_read_as_they_really_arrive() {
        let f = fields(json!({
            "channelId": "12", "workflowId": null, "isBot": "true", "url": "",
            "emailListIds": [1, 2], "labels": "a,b", "toPhoneNumber": 15551234567_i64,
            "transactionalData": "{\"order\":7}", "ip": "2001:db8::1"
        }));
        assert_eq!((f.channel_id, f.workflow_id, f.is_bot), (Some(12), None, Some(true)));
        assert_eq!(f.url, None);
        assert_eq!(f.email_list_ids.as_deref(), Some("[1,2]"));
        assert_eq!(f.labels.as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(f.to_phone_number.as_deref(), Some("15551234567"));
        assert_eq!(f.transactional_data.as_deref(), Some(r#"{"order":7}"#));
        assert_eq!(f.ip.as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn sms_click_and_bounce_fields_under_their_own_names() {
        let click = fields(json!({"clickedUrl": "https://exmpl.co/r/pts"}));
        assert_eq!(click.url.as_deref(), Some("https://exmpl.co/r/pts"));
        let both = fields(json!({"url": "https://a.example", "clickedUrl": "https://b.example"}));
        assert_eq!(both.url.as_deref(), Some("https://a.example"), "`url` wins");

        let reason = "The 'To' number +15005550001 is not a valid phone number.";
        let bounce = fields(json!({"smsProviderResponse": {"code": 21211, "message": reason}}));
        assert_eq!(bounce.bounce_message.as_deref(), Some(reason));
        let encoded =
            fields(json!({"smsProviderResponse": format!("{{\"message\":\"{reason}\"}}")}));
        assert_eq!(encoded.bounce_message.as_deref(), Some(reason));
        let own =
            fields(json!({"bounceMessage": "30003", "smsProviderResponse": {"message": "x"}}));
        assert_eq!(own.bounce_message.as_deref(), Some("30003"), "`bounceMessage` wins");
        let none = fields(json!({"smsProviderResponse": {"message": "", "code": 1}}));
        assert_eq!(none.bounce_message, None);
    }

    #[test]
    fn transactional_data_object_and_plain_string() {
        let object = fields(json!({"transactionalData": {"order": 7}}));
        assert_eq!(object.transactional_data.as_deref(), Some(r#"{"order":7}"#));
        let plain = fields(json!({"transactionalData": "not json"}));
        assert_eq!(plain.transactional_data.as_deref(), Some(r#""not json""#));
    }
}
