//! The metric views analysts query first: per campaign and day, per campaign, and per person.
//! Both the embedded store and PostgreSQL make them from this one definition; only how a day
//! is taken from a timestamp and how a ratio is divided differ ([`Dialect`]).
//!
//! What counts: an event is dated by `created_at` (Iterable's time), or `received_at` when it
//! had none, in UTC. A person is `email`, or `user_id` for the profiles without one. Sends,
//! opens, clicks and bounces count every channel (a campaign has one); machine opens (`isBot`,
//! Apple's proxy) are counted in `opens` and also on their own. Rates are over sends (over
//! unique opens for click-to-open) and NULL when that is 0. Uniques of a campaign are counted
//! over the whole campaign, never summed from its days. Events are already deduplicated.

/// Where a metric view is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `created_at` is RFC 3339 UTC text; `/` on integers truncates.
    Sqlite,
    /// `created_at` is `timestamptz`.
    Postgres,
}

impl Dialect {
    fn day(self, time: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({time}, 1, 10)"),
            Dialect::Postgres => format!("CAST(({time}) AT TIME ZONE 'UTC' AS date)"),
        }
    }

    /// `part / whole` as a fraction, NULL when `whole` is 0.
    fn ratio(self, part: &str, whole: &str) -> String {
        let float = match self {
            Dialect::Sqlite => "REAL",
            Dialect::Postgres => "double precision",
        };
        format!("CAST({part} AS {float}) / NULLIF({whole}, 0)")
    }

    /// An open by a machine: flagged `isBot`, or fetched through a proxy (Apple's Mail
    /// Privacy Protection opens every message it delivers).
    fn machine(self) -> &'static str {
        match self {
            Dialect::Sqlite => "(is_bot = 1 OR proxy_source IS NOT NULL)",
            Dialect::Postgres => "(is_bot OR proxy_source IS NOT NULL)",
        }
    }
}

const SENDS: &str =
    "'emailSend', 'pushSend', 'smsSend', 'inAppSend', 'webPushSend', 'whatsAppSend'";
const SKIPS: &str = "'emailSendSkip', 'pushSendSkip', 'smsSendSkip', 'inAppSendSkip', \
                     'webPushSendSkip', 'whatsAppSendSkip'";
const OPENS: &str = "'emailOpen', 'pushOpen', 'inAppOpen'";
const CLICKS: &str = "'emailClick', 'smsClick', 'inAppClick', 'webPushClick', 'whatsAppClick'";
const BOUNCES: &str = "'emailBounce', 'pushBounce', 'smsBounce', 'whatsAppBounce'";
const COMPLAINTS: &str = "'emailComplaint'";
const UNSUBSCRIBES: &str = "'emailUnSubscribe'";
const SUBSCRIBES: &str = "'emailSubscribe'";

const PERSON: &str = "COALESCE(email, user_id)";

/// The views, in the order they are made: name and `SELECT`.
pub fn metric_views(dialect: Dialect, events: &str) -> Vec<(&'static str, String)> {
    vec![
        ("campaign_daily", campaign_metrics(dialect, events, true)),
        ("campaign_totals", campaign_metrics(dialect, events, false)),
        ("user_engagement", user_engagement(events)),
    ]
}

/// PostgreSQL's `campaign_daily` and `campaign_totals`, read from the counts its triggers keep
/// (`postgres/campaign_counts.sql`): a row per campaign and day, not every event. Same
/// columns and figures as [`metric_views`]' (tests/metric_views.rs compares them).
pub fn counted_campaign_views(schema: &str) -> Vec<(&'static str, String)> {
    let measures = |table: &str| {
        let ratio = |part: &str, whole: &str| {
            Dialect::Postgres.ratio(&format!("{table}.{part}"), &format!("{table}.{whole}"))
        };
        format!(
            "{table}.sends, {table}.send_skips, {table}.opens, {table}.unique_opens, \
             {table}.machine_opens, {table}.clicks, {table}.unique_clicks, {table}.bounces, \
             {table}.complaints, {table}.unsubscribes,\n  {} AS open_rate,\n  \
             {} AS click_rate,\n  {} AS click_to_open_rate",
            ratio("unique_opens", "sends"),
            ratio("unique_clicks", "sends"),
            ratio("unique_clicks", "unique_opens"),
        )
    };
    // A campaign's counts are its days' added up; only its unique people are kept apart.
    let summed = [
        "events",
        "sends",
        "send_skips",
        "opens",
        "machine_opens",
        "clicks",
        "bounces",
        "complaints",
        "unsubscribes",
    ]
    .map(|column| format!("CAST(sum(d.{column}) AS bigint) AS {column}"))
    .join(", ");
    vec![
        (
            "campaign_daily",
            format!(
                "SELECT d.campaign_id,\n  (SELECT max(n.campaign_name) FROM {schema}.campaign_day_names n \
                 WHERE n.campaign_id = d.campaign_id AND n.day = d.day AND n.events > 0) \
                 AS campaign_name,\n  d.day,\n  {}\n\
                 FROM {schema}.campaign_day_counts d\nWHERE d.events > 0",
                measures("d")
            ),
        ),
        (
            "campaign_totals",
            // First and last from `events_campaign`: two index lookups a campaign.
            format!(
                "SELECT t.campaign_id,\n  (SELECT max(n.campaign_name) FROM {schema}.campaign_day_names n \
                 WHERE n.campaign_id = t.campaign_id AND n.events > 0) AS campaign_name,\n  \
                 (SELECT min(e.created_at) FROM {schema}.events e \
                 WHERE e.campaign_id = t.campaign_id) AS first_event_at,\n  \
                 (SELECT max(e.created_at) FROM {schema}.events e \
                 WHERE e.campaign_id = t.campaign_id) AS last_event_at,\n  {}\n\
                 FROM (SELECT d.campaign_id, {summed},\n    \
                 coalesce(max(u.unique_opens), 0) AS unique_opens,\n    \
                 coalesce(max(u.unique_clicks), 0) AS unique_clicks\n  \
                 FROM {schema}.campaign_day_counts d\n  \
                 LEFT JOIN {schema}.campaign_uniques u USING (campaign_id)\n  \
                 GROUP BY d.campaign_id) t\nWHERE t.events > 0",
                measures("t")
            ),
        ),
    ]
}

fn count(names: &str) -> String {
    format!("count(CASE WHEN event_name IN ({names}) THEN 1 END)")
}

fn unique(names: &str) -> String {
    format!("count(DISTINCT CASE WHEN event_name IN ({names}) THEN {PERSON} END)")
}

fn last(names: &str) -> String {
    format!("max(CASE WHEN event_name IN ({names}) THEN created_at END)")
}

/// Per campaign and UTC day (`by_day`), or per campaign over its whole life.
fn campaign_metrics(dialect: Dialect, events: &str, by_day: bool) -> String {
    let (day, group, span) = if by_day {
        let day = dialect.day("COALESCE(created_at, received_at)");
        (format!("{day} AS day,\n  "), format!("campaign_id, {day}"), String::new())
    } else {
        (
            String::new(),
            "campaign_id".to_owned(),
            "min(created_at) AS first_event_at,\n  max(created_at) AS last_event_at,\n  "
                .to_owned(),
        )
    };
    format!(
        "SELECT campaign_id,\n  max(campaign_name) AS campaign_name,\n  {day}{span}\
         {} AS sends,\n  {} AS send_skips,\n  {} AS opens,\n  {} AS unique_opens,\n  \
         count(CASE WHEN event_name IN ({OPENS}) AND {} THEN 1 END) AS machine_opens,\n  \
         {} AS clicks,\n  {} AS unique_clicks,\n  {} AS bounces,\n  {} AS complaints,\n  \
         {} AS unsubscribes,\n  {} AS open_rate,\n  {} AS click_rate,\n  \
         {} AS click_to_open_rate\n\
         FROM {events}\nWHERE campaign_id IS NOT NULL\nGROUP BY {group}",
        count(SENDS),
        count(SKIPS),
        count(OPENS),
        unique(OPENS),
        dialect.machine(),
        count(CLICKS),
        unique(CLICKS),
        count(BOUNCES),
        count(COMPLAINTS),
        count(UNSUBSCRIBES),
        dialect.ratio(&unique(OPENS), &count(SENDS)),
        dialect.ratio(&unique(CLICKS), &count(SENDS)),
        dialect.ratio(&unique(CLICKS), &unique(OPENS)),
    )
}

/// Per person (`email`, else `user_id`): when first and last seen, and what they did.
/// `unsubscribed`: their newest subscription event is an unsubscribe (on any list).
/// Two branches, grouped by the column itself, so that `WHERE person = ...` reaches the index
/// on `email` (PostgreSQL's; the embedded store's while the inspector is on).
fn user_engagement(events: &str) -> String {
    let (unsubscribed, subscribed) = (last(UNSUBSCRIBES), last(SUBSCRIBES));
    let measures = format!(
        "min(created_at) AS first_seen_at,\n  max(created_at) AS last_seen_at,\n  \
         {} AS sends,\n  {} AS opens,\n  {} AS clicks,\n  {} AS bounces,\n  \
         {} AS complaints,\n  {} AS unsubscribes,\n  {} AS last_send_at,\n  \
         {} AS last_open_at,\n  {} AS last_click_at,\n  {unsubscribed} AS last_unsubscribe_at,\n  \
         {} > 0 AS bounced,\n  \
         ({unsubscribed} IS NOT NULL AND ({subscribed} IS NULL OR {unsubscribed} > {subscribed})) \
         AS unsubscribed",
        count(SENDS),
        count(OPENS),
        count(CLICKS),
        count(BOUNCES),
        count(COMPLAINTS),
        count(UNSUBSCRIBES),
        last(SENDS),
        last(OPENS),
        last(CLICKS),
        count(BOUNCES),
    );
    format!(
        "SELECT email AS person,\n  email,\n  max(user_id) AS user_id,\n  {measures}\n\
         FROM {events}\nWHERE email IS NOT NULL\nGROUP BY email\n\
         UNION ALL\n\
         SELECT user_id AS person,\n  NULL AS email,\n  user_id,\n  {measures}\n\
         FROM {events}\nWHERE email IS NULL AND user_id IS NOT NULL\nGROUP BY user_id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iterable::KNOWN_EVENTS;

    /// A name misspelt here would count nothing, silently.
    #[test]
    fn every_name_counted_is_a_known_event() {
        for list in [SENDS, SKIPS, OPENS, CLICKS, BOUNCES, COMPLAINTS, UNSUBSCRIBES, SUBSCRIBES] {
            for name in list.split(',').map(|n| n.trim().trim_matches('\'')) {
                assert!(KNOWN_EVENTS.iter().any(|e| e.name == name), "{name} is not an event");
            }
        }
    }

    #[test]
    fn the_embedded_store_divides_as_floats_and_dates_by_prefix() {
        let views = metric_views(Dialect::Sqlite, "events");
        let daily = &views[0].1;
        assert!(daily.contains("substr(COALESCE(created_at, received_at), 1, 10) AS day"));
        assert!(daily.contains("CAST(count(DISTINCT"));
        assert!(daily.contains("AS REAL) / NULLIF("));
        let pg = metric_views(Dialect::Postgres, "s.events");
        assert!(pg[0].1.contains("AT TIME ZONE 'UTC' AS date"));
        assert!(pg[2].1.contains("FROM s.events"));
    }
}
