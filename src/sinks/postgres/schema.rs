//! The PostgreSQL tables: numbered migrations recorded in `{schema}.schema_migrations`, applied
//! at every connect under an advisory lock (so two processes starting at once, during a
//! redeploy say, never race), then the event and metric views. A migration is never edited once
//! released; a change is a new one. A schema is loaded from one hookhouse store only
//! (`loaded_from`): `seq` numbers mean something within one store.
//!
//! Types are PostgreSQL's own: `timestamptz` for instants, `bigint` for Iterable's ids, `jsonb`
//! for `dataFields` and lists, `bytea` for bodies. `ip` is `text`: a pseudonymised source
//! stores a digest there.

use tokio_postgres::Client;

use super::PgError;
use crate::sinks::metric_views::{Dialect, counted_campaign_views, metric_views};
use crate::sinks::views::event_views;

/// Migration `i` takes the schema from version `i` to `i + 1`; `{schema}` is replaced by the
/// configured schema, a validated identifier.
const MIGRATIONS: &[&str] = &[
    // 1: the loaded tables.
    r#"
    CREATE TABLE {schema}.raw_requests (
        seq          bigint      PRIMARY KEY,
        received_at  timestamptz NOT NULL,
        source       text        NOT NULL,
        method       text        NOT NULL,
        path         text        NOT NULL,
        query        text,
        headers      jsonb       NOT NULL,
        remote_addr  text,
        content_type text,
        body         bytea       NOT NULL,
        body_sha256  text        NOT NULL,
        body_dropped boolean     NOT NULL,  -- the source drops bodies once normalised
        pseudonymised boolean    NOT NULL,  -- its events hold keyed digests of personal fields
        loaded_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {schema}.events (
        event_id           text        PRIMARY KEY,
        raw_seq            bigint      NOT NULL,
        source             text        NOT NULL,
        event_name         text        NOT NULL,
        email              text,
        user_id            text,
        created_at         timestamptz,
        received_at        timestamptz NOT NULL,
        campaign_id        bigint,
        template_id        bigint,
        message_id         text,
        app_id             text,
        platform           text,
        data               jsonb       NOT NULL,
        family             text        NOT NULL,
        channel_id         bigint,
        message_type_id    bigint,
        workflow_id        bigint,
        experiment_id      bigint,
        content_id         bigint,
        campaign_name      text,
        template_name      text,
        workflow_name      text,
        email_subject      text,
        url                text,
        link_url           text,
        user_agent         text,
        user_agent_device  text,
        ip                 text,
        city               text,
        region             text,
        country            text,
        locale             text,
        proxy_source       text,
        is_bot             boolean,
        recipient_state    text,
        bounce_message     text,
        reason             text,
        unsub_source       text,
        signup_source      text,
        email_list_ids     jsonb,
        labels             jsonb,
        to_phone_number    text,
        from_phone_number  text,
        sms_message        text,
        push_message       text,
        transactional_data jsonb,
        parse_warnings     jsonb,
        loaded_at          timestamptz NOT NULL DEFAULT now()
    );
    -- The views filter on the name and users ask for time ranges, people and campaigns.
    CREATE INDEX events_name_created ON {schema}.events (event_name, created_at);
    CREATE INDEX events_email ON {schema}.events (email);
    CREATE INDEX events_campaign ON {schema}.events (campaign_id, created_at);
    CREATE TABLE {schema}.journey_calls (
        seq          bigint      PRIMARY KEY,
        received_at  timestamptz NOT NULL,
        source       text        NOT NULL,
        journey      text        NOT NULL,
        method       text        NOT NULL,
        email        text,
        user_id      text,
        data         jsonb       NOT NULL,
        loaded_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {schema}.failed_events (
        id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        raw_seq      bigint      NOT NULL,
        received_at  timestamptz NOT NULL,
        stage        text        NOT NULL,
        reason       text        NOT NULL,
        sink         text,                  -- NULL: the normaliser; else the sink that refused it
        body         bytea       NOT NULL,
        loaded_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX failed_events_raw_seq ON {schema}.failed_events (raw_seq);
    -- How far this schema has loaded the spool, per part (`requests`: raw_requests,
    -- journey_calls and failed_events; `events`), moved in the same transaction as the part's
    -- rows. A batch entirely after its mark was never loaded: it is copied straight in.
    CREATE TABLE {schema}.load_progress (
        part         text        PRIMARY KEY,
        seq          bigint      NOT NULL
    );
    INSERT INTO {schema}.load_progress (part, seq) VALUES ('requests', 0), ('events', 0);
    -- The hookhouse store this schema is loaded from: `seq` means something only within one.
    CREATE TABLE {schema}.loaded_from (
        spool_id         text        PRIMARY KEY,
        first_loaded_at  timestamptz NOT NULL DEFAULT now()
    );
    "#,
    // 2: the connection's peer beside the client (`remote_addr`).
    r#"
    ALTER TABLE {schema}.raw_requests ADD COLUMN peer_addr text;
    "#,
    // 3: each request's kind (system, journey, snowplow) and journey name, as the log has them.
    r#"
    ALTER TABLE {schema}.raw_requests ADD COLUMN kind text;
    ALTER TABLE {schema}.raw_requests ADD COLUMN journey text;
    "#,
    // 4: the HTTP status a journey call answered with data got.
    r#"
    ALTER TABLE {schema}.raw_requests ADD COLUMN answer_status bigint;
    ALTER TABLE {schema}.journey_calls ADD COLUMN answer_status bigint;
    "#,
    // 5: campaign counts kept by triggers on events, for the campaign metric views.
    include_str!("campaign_counts.sql"),
];

/// Brings `schema` to the newest version and (re)creates the event views.
pub(super) async fn migrate(
    client: &mut Client,
    schema: &str,
    spool_id: &str,
) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    // One process migrates at a time; the others wait here, then find nothing to do.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("hookhouse:{schema}")])
        .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .await?;
    let found = row.get::<_, i32>(0);
    let current = usize::try_from(found).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(PgError::SchemaTooNew { found, known: MIGRATIONS.len() });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(&sql.replace("{schema}", schema)).await?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await?;
    }
    // `CREATE OR REPLACE` keeps views that users built on ours working across restarts.
    let mut views = String::new();
    for (view, name, columns) in event_views() {
        views.push_str(&format!(
            "CREATE OR REPLACE VIEW {schema}.{view} AS SELECT {} FROM {schema}.events \
             WHERE event_name = '{name}';\n",
            columns.join(", ")
        ));
    }
    // The campaign views read the counts migration 5's triggers keep; the rest read events.
    let counted = counted_campaign_views(schema);
    let from_events = metric_views(Dialect::Postgres, &format!("{schema}.events"));
    for (view, select) in counted.iter().chain(
        from_events.iter().filter(|(view, _)| counted.iter().all(|(other, _)| other != view)),
    ) {
        views.push_str(&format!("CREATE OR REPLACE VIEW {schema}.{view} AS {select};\n"));
    }
    tx.batch_execute(&views).await?;
    // The first store to load the schema claims it; another store's `seq` would collide.
    tx.execute(
        &format!(
            "INSERT INTO {schema}.loaded_from (spool_id) SELECT $1 \
             WHERE NOT EXISTS (SELECT 1 FROM {schema}.loaded_from)"
        ),
        &[&spool_id],
    )
    .await?;
    let owner: String =
        tx.query_one(&format!("SELECT spool_id FROM {schema}.loaded_from"), &[]).await?.get(0);
    if owner != spool_id {
        return Err(PgError::OtherStore { schema: schema.to_owned(), owner });
    }
    tx.commit().await?;
    Ok(())
}
