//! The campaign and person metric views, on the events of `fixtures/metrics/campaigns.jsonl`:
//! the embedded store's rows against figures worked out by hand from that file, and a real
//! PostgreSQL's rows against the embedded store's, value for value.

mod common;
mod pg;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{TestApp, spawn_app, spawn_app_with, wait_embedded_loaded};
use hookhouse::sinks::metric_views::{Dialect, metric_views};
use hookhouse::spool::Selection;
use rusqlite::types::ValueRef;
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/metrics/campaigns.jsonl";

/// Each view with the columns that order its rows.
const VIEWS: [(&str, &str); 3] = [
    ("campaign_daily", "campaign_id, day"),
    ("campaign_totals", "campaign_id"),
    ("user_engagement", "person"),
];

async fn send_fixture(app: &TestApp) {
    for line in std::fs::read_to_string(FIXTURE).unwrap().lines() {
        let response = app.post_webhook(line).await;
        assert_eq!(response.status(), 200, "{line}");
    }
    wait_embedded_loaded(&app.db());
}

/// A row as JSON, with instants written one way (RFC 3339, UTC, `Z`) and fractions rounded,
/// so that rows from both databases compare equal when their values do.
fn normalise(row: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    row.into_iter()
        .map(|(column, value)| {
            let value = match value {
                Value::String(text) => match DateTime::parse_from_rfc3339(&text) {
                    Ok(at) => Value::String(at.with_timezone(&Utc).to_rfc3339()),
                    Err(_) => Value::String(text),
                },
                // SQLite has no booleans: 0 and 1 stand for them.
                Value::Bool(flag) => json!(i64::from(flag)),
                // PostgreSQL's JSON writes 0.0 as 0: every rate is read as a fraction.
                Value::Number(n) if column.ends_with("_rate") => {
                    json!((n.as_f64().unwrap() * 1e9).round() / 1e9)
                }
                other => other,
            };
            (column, value)
        })
        .collect()
}

fn sqlite_rows(app: &TestApp, view: &str, order: &str) -> Vec<BTreeMap<String, Value>> {
    let db = app.db();
    let mut statement = db.prepare(&format!("SELECT * FROM {view} ORDER BY {order}")).unwrap();
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    statement
        .query_map([], |row| {
            let mut out = BTreeMap::new();
            for (i, column) in columns.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => json!(n),
                    ValueRef::Real(x) => json!(x),
                    ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    ValueRef::Blob(_) => panic!("{view}.{column} is a blob"),
                };
                out.insert(column.clone(), value);
            }
            Ok(normalise(out))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn row(value: Value) -> BTreeMap<String, Value> {
    normalise(serde_json::from_value(value).unwrap())
}

const TWO_THIRDS: f64 = 2.0 / 3.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_views_count_what_the_fixture_holds() {
    let app = spawn_app().await;
    send_fixture(&app).await;

    // Campaign 100 on 1 November: sends to a, b, c; a opens twice (once through Apple's
    // proxy) and b once; a clicks; c bounces. On 2 November (a's open at 23:30 -02:00 is
    // 01:30 UTC there): a and b open, b clicks and complains, a unsubscribes; no sends.
    let common = json!({"campaign_id": 100, "campaign_name": "Welcome", "send_skips": 0});
    let with = |fields: Value| {
        let mut merged = common.as_object().unwrap().clone();
        merged.extend(fields.as_object().unwrap().clone());
        row(Value::Object(merged))
    };
    assert_eq!(
        sqlite_rows(&app, "campaign_daily", "campaign_id, day"),
        [
            with(json!({"day": "2026-11-01", "sends": 3, "opens": 3, "unique_opens": 2,
                "machine_opens": 1, "clicks": 1, "unique_clicks": 1, "bounces": 1,
                "complaints": 0, "unsubscribes": 0, "open_rate": TWO_THIRDS,
                "click_rate": 1.0 / 3.0, "click_to_open_rate": 0.5})),
            with(json!({"day": "2026-11-02", "sends": 0, "opens": 2, "unique_opens": 2,
                "machine_opens": 0, "clicks": 1, "unique_clicks": 1, "bounces": 0,
                "complaints": 1, "unsubscribes": 1, "open_rate": null, "click_rate": null,
                "click_to_open_rate": 0.5})),
            row(json!({"campaign_id": 200, "campaign_name": "Push promo", "day": "2026-11-03",
                "sends": 2, "send_skips": 0, "opens": 1, "unique_opens": 1, "machine_opens": 0,
                "clicks": 0, "unique_clicks": 0, "bounces": 0, "complaints": 0,
                "unsubscribes": 0, "open_rate": 0.5, "click_rate": 0.0,
                "click_to_open_rate": 0.0})),
        ]
    );
    // Over the whole campaign a and b are 2 unique openers, not the 4 the days add up to.
    assert_eq!(
        sqlite_rows(&app, "campaign_totals", "campaign_id"),
        [
            with(json!({"first_event_at": "2026-11-01T09:00:00Z",
                "last_event_at": "2026-11-02T10:00:00Z", "sends": 3, "opens": 5,
                "unique_opens": 2, "machine_opens": 1, "clicks": 2, "unique_clicks": 2,
                "bounces": 1, "complaints": 1, "unsubscribes": 1, "open_rate": TWO_THIRDS,
                "click_rate": TWO_THIRDS, "click_to_open_rate": 1.0})),
            row(json!({"campaign_id": 200, "campaign_name": "Push promo",
                "first_event_at": "2026-11-03T07:00:00Z",
                "last_event_at": "2026-11-03T07:10:00Z", "sends": 2, "send_skips": 0,
                "opens": 1, "unique_opens": 1, "machine_opens": 0, "clicks": 0,
                "unique_clicks": 0, "bounces": 0, "complaints": 0, "unsubscribes": 0,
                "open_rate": 0.5, "click_rate": 0.0, "click_to_open_rate": 0.0})),
        ]
    );
    // The same figures as a query written without the view would count them: each measure
    // on its own, from the rows of that event name.
    let db = app.db();
    let by_hand: Vec<(i64, String, i64, i64, i64)> = db
        .prepare(
            "WITH days AS (SELECT DISTINCT campaign_id, date(created_at) AS day FROM events
                           WHERE campaign_id IS NOT NULL)
             SELECT campaign_id, day,
               (SELECT count(*) FROM events e WHERE e.campaign_id = d.campaign_id
                  AND date(e.created_at) = d.day AND e.event_name LIKE '%Send'),
               (SELECT count(DISTINCT coalesce(email, user_id)) FROM events e
                  WHERE e.campaign_id = d.campaign_id AND date(e.created_at) = d.day
                  AND e.event_name LIKE '%Open'),
               (SELECT count(DISTINCT coalesce(email, user_id)) FROM events e
                  WHERE e.campaign_id = d.campaign_id AND date(e.created_at) = d.day
                  AND e.event_name LIKE '%Click')
             FROM days d ORDER BY campaign_id, day",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let from_view: Vec<(i64, String, i64, i64, i64)> = db
        .prepare(
            "SELECT campaign_id, day, sends, unique_opens, unique_clicks FROM campaign_daily
             ORDER BY campaign_id, day",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(from_view, by_hand);

    // One row a person, by email or else user id. a unsubscribed from campaign 100; c
    // unsubscribed from a list and subscribed again; d only subscribed, outside any campaign.
    let person = |fields: Value| {
        let mut base = json!({"email": null, "user_id": null, "sends": 0, "opens": 0,
            "clicks": 0, "bounces": 0, "complaints": 0, "unsubscribes": 0,
            "last_send_at": null, "last_open_at": null, "last_click_at": null,
            "last_unsubscribe_at": null, "bounced": false, "unsubscribed": false});
        base.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        row(base)
    };
    assert_eq!(
        sqlite_rows(&app, "user_engagement", "person"),
        [
            person(json!({"person": "a@example.com", "email": "a@example.com",
                "first_seen_at": "2026-11-01T09:00:00Z",
                "last_seen_at": "2026-11-03T07:00:01Z", "sends": 2, "opens": 3, "clicks": 1,
                "unsubscribes": 1, "last_send_at": "2026-11-03T07:00:01Z",
                "last_open_at": "2026-11-02T01:30:00Z", "last_click_at": "2026-11-01T12:30:00Z",
                "last_unsubscribe_at": "2026-11-02T10:00:00Z", "unsubscribed": true})),
            person(json!({"person": "b@example.com", "email": "b@example.com",
                "first_seen_at": "2026-11-01T09:00:01Z",
                "last_seen_at": "2026-11-02T09:00:00Z", "sends": 1, "opens": 2, "clicks": 1,
                "complaints": 1, "last_send_at": "2026-11-01T09:00:01Z",
                "last_open_at": "2026-11-02T08:00:00Z",
                "last_click_at": "2026-11-02T08:01:00Z"})),
            person(json!({"person": "c@example.com", "email": "c@example.com",
                "first_seen_at": "2026-11-01T09:00:02Z",
                "last_seen_at": "2026-11-04T09:00:00Z", "sends": 1, "bounces": 1,
                "unsubscribes": 1, "last_send_at": "2026-11-01T09:00:02Z",
                "last_unsubscribe_at": "2026-11-02T12:00:00Z", "bounced": true})),
            person(json!({"person": "d@example.com", "email": "d@example.com",
                "first_seen_at": "2026-11-03T12:00:00Z",
                "last_seen_at": "2026-11-03T12:00:00Z"})),
            person(json!({"person": "u9", "user_id": "u9",
                "first_seen_at": "2026-11-03T07:00:00Z",
                "last_seen_at": "2026-11-03T07:10:00Z", "sends": 1, "opens": 1,
                "last_send_at": "2026-11-03T07:00:00Z",
                "last_open_at": "2026-11-03T07:10:00Z"})),
        ]
    );
    app.stop().await.unwrap();
}

async fn pg_rows(
    warehouse: &pg::Warehouse,
    select: &str,
    order: &str,
) -> Vec<BTreeMap<String, Value>> {
    let sql = format!("SELECT to_jsonb(v) FROM ({select}) v ORDER BY {order}");
    warehouse
        .client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .iter()
        .map(|r| normalise(serde_json::from_value(r.get::<_, Value>(0)).unwrap()))
        .collect()
}

/// Every PostgreSQL view against the embedded store's, value for value.
async fn assert_same_as_embedded(app: &TestApp, warehouse: &pg::Warehouse, when: &str) {
    for (view, order) in VIEWS {
        let embedded = sqlite_rows(app, view, order);
        assert!(!embedded.is_empty(), "{view} is empty");
        let select = format!("SELECT * FROM {}.{view}", warehouse.schema);
        assert_eq!(pg_rows(warehouse, &select, order).await, embedded, "{view} {when}");
    }
}

/// PostgreSQL's counted campaign views against the same figures counted from its events.
async fn assert_counts_match_events(warehouse: &pg::Warehouse, when: &str) {
    let events = format!("{}.events", warehouse.schema);
    let from_events = metric_views(Dialect::Postgres, &events);
    for (view, order) in &VIEWS[..2] {
        let (_, select) = from_events.iter().find(|(name, _)| name == view).unwrap();
        let counted = format!("SELECT * FROM {}.{view}", warehouse.schema);
        assert_eq!(
            pg_rows(warehouse, &counted, order).await,
            pg_rows(warehouse, select, order).await,
            "{view} {when}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_views_hold_the_same_rows_as_the_embedded_ones() {
    let Some(url) = pg::database_url() else { return };
    let warehouse = pg::Warehouse::new(&url, "metric_views").await;
    let app = spawn_app_with(|config| warehouse.configure(config, &url)).await;
    send_fixture(&app).await;
    pg::wait_caught_up(&app.db_path(), std::time::Duration::from_secs(30)).await;
    let definition: String = warehouse
        .client
        .query_one(
            "SELECT definition FROM pg_views WHERE schemaname = $1 AND viewname = 'campaign_daily'",
            &[&warehouse.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(definition.contains("campaign_day_counts"), "read from the counts: {definition}");
    assert_same_as_embedded(&app, &warehouse, "after loading").await;

    // Rows an older version got wrong (b's click filed under campaign 200, c's bounce read as
    // an open): the counts follow the update, and a replay, which loads every event again
    // (INSERT ... ON CONFLICT DO UPDATE), puts them right.
    warehouse
        .client
        .batch_execute(&format!(
            "UPDATE {s}.events SET campaign_id = 200 WHERE email = 'b@example.com'
               AND event_name = 'emailClick';
             UPDATE {s}.events SET event_name = 'emailOpen' WHERE event_name = 'emailBounce';",
            s = warehouse.schema
        ))
        .await
        .unwrap();
    assert_counts_match_events(&warehouse, "after updates").await;
    assert_ne!(
        pg_rows(
            &warehouse,
            &format!("SELECT * FROM {}.campaign_totals", warehouse.schema),
            "campaign_id"
        )
        .await,
        sqlite_rows(&app, "campaign_totals", "campaign_id"),
        "the stale rows show"
    );
    let db = app.db_path();
    tokio::task::spawn_blocking(move || {
        hookhouse::sinks::sqlite::replay::replay(
            &db,
            &Selection::All,
            &Default::default(),
            |_, _| {},
        )
    })
    .await
    .unwrap()
    .unwrap();
    pg::wait_caught_up(&app.db_path(), std::time::Duration::from_secs(30)).await;
    assert_same_as_embedded(&app, &warehouse, "after a replay").await;

    // Events deleted in the warehouse: b's only open of 1 November goes (a unique open less
    // that day, not over the campaign: b opened again on the 2nd), and all of campaign 200.
    warehouse
        .client
        .batch_execute(&format!(
            "DELETE FROM {s}.events WHERE email = 'b@example.com' AND event_name = 'emailOpen'
               AND created_at < '2026-11-02';
             DELETE FROM {s}.events WHERE campaign_id = 200;",
            s = warehouse.schema
        ))
        .await
        .unwrap();
    assert_counts_match_events(&warehouse, "after deletes").await;
    let totals = pg_rows(
        &warehouse,
        &format!("SELECT * FROM {}.campaign_totals", warehouse.schema),
        "campaign_id",
    )
    .await;
    assert_eq!(totals.len(), 1, "campaign 200 has no events left: {totals:?}");
    assert_eq!((&totals[0]["opens"], &totals[0]["unique_opens"]), (&json!(4), &json!(2)));

    // An upgrade from a schema before the counts: the migration counts the events there are.
    let data_dir = app.stop().await.unwrap();
    warehouse
        .client
        .batch_execute(&format!(
            "DROP TABLE {s}.campaign_uniques, {s}.campaign_day_counts, {s}.campaign_people,
               {s}.campaign_day_people, {s}.campaign_day_names CASCADE;
             DROP TYPE {s}.campaign_change CASCADE;
             DROP FUNCTION {s}.campaign_event_kind(text);
             DROP FUNCTION {s}.events_added, {s}.events_removed, {s}.events_changed CASCADE;
             DELETE FROM {s}.schema_migrations WHERE version = 5;",
            s = warehouse.schema
        ))
        .await
        .unwrap();
    let app = common::spawn_app_in(data_dir, |config| warehouse.configure(config, &url)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let migrated =
        format!("SELECT count(*) FROM {}.schema_migrations WHERE version = 5", warehouse.schema);
    while warehouse.client.query_one(&migrated, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "the schema was not upgraded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_counts_match_events(&warehouse, "after the upgrade").await;
    app.stop().await.unwrap();
    warehouse.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_serve_one_campaign_and_one_person_and_the_campaign_index_goes_when_off() {
    let app = spawn_app_with(|config| config.store.campaign_index = true).await;
    send_fixture(&app).await;
    // The inspector's index of people (src/spool/schema.rs, PERSON_INDEX), made while it is
    // on: one person's row is then read from it too.
    rusqlite::Connection::open(app.db_path())
        .unwrap()
        .execute_batch(
            "CREATE INDEX IF NOT EXISTS events_email ON events (email, raw_seq)
             WHERE email IS NOT NULL;",
        )
        .unwrap();
    let one_campaign = "SELECT * FROM campaign_daily WHERE campaign_id = 100";
    let one_person = "SELECT * FROM user_engagement WHERE person = 'b@example.com'";
    let person_plan: Vec<String> = app
        .db()
        .prepare(&format!("EXPLAIN QUERY PLAN {one_person}"))
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        person_plan.iter().any(|step| step.contains("USING INDEX events_email")),
        "{person_plan:?}"
    );
    let plan = |db: &rusqlite::Connection| -> String {
        let mut statement = db.prepare(&format!("EXPLAIN QUERY PLAN {one_campaign}")).unwrap();
        let details: Vec<String> =
            statement.query_map([], |r| r.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
        details.join("; ")
    };
    assert!(plan(&app.db()).contains("USING INDEX events_campaign"), "{}", plan(&app.db()));
    assert_eq!(sqlite_rows(&app, "campaign_daily WHERE campaign_id = 100", "day").len(), 2);

    let data_dir = app.stop().await.unwrap();
    let app = common::spawn_app_in(data_dir, |_| {}).await;
    let indexes = app.count("SELECT count(*) FROM sqlite_master WHERE name = 'events_campaign'");
    assert_eq!(indexes, 0, "off by default: the index is dropped");
    assert!(!plan(&app.db()).contains("events_campaign"));
    app.stop().await.unwrap();
}
