//! The tables of `hookhouse.db`, created and upgraded by numbered migrations recorded in
//! SQLite's `user_version`. A migration is never edited once released; a change is a new one.

use rusqlite::Connection;

/// Migration `i` upgrades a database at version `i` to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the spool and the embedded sink's tables.
    r#"
    CREATE TABLE raw_requests (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so cursors only move on
        received_at  TEXT    NOT NULL,                   -- RFC 3339 UTC, microseconds
        source       TEXT    NOT NULL,
        method       TEXT    NOT NULL,
        path         TEXT    NOT NULL,
        query        TEXT,
        headers      TEXT    NOT NULL,                   -- JSON object, secrets removed
        remote_addr  TEXT,
        content_type TEXT,
        body         BLOB    NOT NULL,
        body_sha256  TEXT    NOT NULL
    );
    CREATE TABLE events (
        event_id     TEXT    PRIMARY KEY,                -- hash of source + canonical event
        raw_seq      INTEGER NOT NULL,                   -- the first request that carried it
        source       TEXT    NOT NULL,
        event_name   TEXT    NOT NULL,
        email        TEXT,
        user_id      TEXT,
        created_at   TEXT,                               -- RFC 3339 UTC
        received_at  TEXT    NOT NULL,
        campaign_id  INTEGER,
        template_id  INTEGER,
        message_id   TEXT,
        app_id       TEXT,
        platform     TEXT,
        data         TEXT    NOT NULL,                   -- JSON of dataFields
        family       TEXT    NOT NULL,                   -- email, push, sms, ... or other
        channel_id         INTEGER,
        message_type_id    INTEGER,
        workflow_id        INTEGER,
        experiment_id      INTEGER,
        content_id         INTEGER,
        campaign_name      TEXT,
        template_name      TEXT,
        workflow_name      TEXT,
        email_subject      TEXT,
        url                TEXT,
        link_url           TEXT,
        user_agent         TEXT,
        user_agent_device  TEXT,
        ip                 TEXT,
        city               TEXT,
        region             TEXT,
        country            TEXT,
        locale             TEXT,
        proxy_source       TEXT,
        is_bot             INTEGER,                      -- 0 or 1
        recipient_state    TEXT,
        bounce_message     TEXT,
        reason             TEXT,
        unsub_source       TEXT,
        signup_source      TEXT,
        email_list_ids     TEXT,                         -- JSON array
        labels             TEXT,                         -- JSON array
        to_phone_number    TEXT,
        from_phone_number  TEXT,
        sms_message        TEXT,
        push_message       TEXT,
        transactional_data TEXT,                         -- JSON
        parse_warnings     TEXT                          -- JSON array of what could not be read
    );
    -- The per-event views filter on the name and users ask for time ranges. Inserts arrive in
    -- roughly `created_at` order per name, so this index stays cheap to maintain.
    CREATE INDEX events_name_created ON events (event_name, created_at);
    -- Replay replaces a request's own rows; without this it scans the table per request.
    CREATE INDEX events_raw_seq ON events (raw_seq);
    -- One row the writer rewrites to check, after a failure, that commits work again.
    CREATE TABLE spool_probe (id INTEGER PRIMARY KEY, probed_at TEXT NOT NULL);
    -- Stitch-style secret URLs: only a hash of each secret is kept.
    CREATE TABLE secret_urls (
        id            INTEGER PRIMARY KEY,
        source        TEXT    NOT NULL,
        secret_sha256 TEXT    NOT NULL UNIQUE,
        created_at    TEXT    NOT NULL
    );
    CREATE TABLE journey_calls (
        seq          INTEGER PRIMARY KEY,                -- the raw request's seq
        received_at  TEXT    NOT NULL,
        source       TEXT    NOT NULL,
        journey      TEXT    NOT NULL,
        method       TEXT    NOT NULL,
        email        TEXT,
        user_id      TEXT,
        data         TEXT    NOT NULL                    -- JSON: {"query": {..}, "body": ..}
    );
    CREATE TABLE failed_events (
        id           INTEGER PRIMARY KEY,
        raw_seq      INTEGER NOT NULL,
        received_at  TEXT    NOT NULL,
        stage        TEXT    NOT NULL,
        reason       TEXT    NOT NULL,
        body         BLOB    NOT NULL
    );
    CREATE INDEX failed_events_raw_seq ON failed_events (raw_seq);
    "#,
    // 2: cursors of the sinks that load from the spool (PostgreSQL, ...), and refusals by them.
    r#"
    CREATE TABLE sink_cursors (
        sink          TEXT    PRIMARY KEY,
        position      INTEGER NOT NULL DEFAULT 0,  -- every raw_requests.seq <= this is loaded
        generation    INTEGER NOT NULL DEFAULT 0,  -- bumped by replay, which may move it back
        loaded_at     TEXT,                        -- the last successful load
        last_error    TEXT,                        -- why the last attempt failed, until one works
        last_error_at TEXT
    );
    -- NULL: the normaliser could not read it; otherwise the sink that refused the event.
    ALTER TABLE failed_events ADD COLUMN sink TEXT;
    "#,
    // 3: pseudonymisation and dropped bodies (per-source options).
    r#"
    -- 1: the source had `drop_raw_bodies` and every part of the request was normalised, so
    -- `body` is empty and `body_sha256` is the digest of the body that was not kept (keyed when
    -- the source pseudonymises). Replay skips such a request and leaves its rows alone.
    ALTER TABLE raw_requests ADD COLUMN body_dropped INTEGER NOT NULL DEFAULT 0;
    -- 1: its events hold keyed digests of personal fields; replay needs the source's key.
    ALTER TABLE raw_requests ADD COLUMN pseudonymised INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: the store's identity, so that a warehouse loaded from it can tell it from another.
    r#"
    CREATE TABLE spool_identity (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        id       TEXT    NOT NULL
    );
    INSERT INTO spool_identity (only_row, id) VALUES (1, lower(hex(randomblob(16))));
    "#,
    // 5: the connection's peer beside the client; `remote_addr` is now the client a trusted
    // proxy forwarded (earlier rows hold the peer in both senses there).
    r#"
    ALTER TABLE raw_requests ADD COLUMN peer_addr TEXT;
    "#,
    // 6: the spool is a request log and the embedded tables a sink behind a cursor. Each
    // request records its kind; a `drop_raw_bodies` body is kept until every sink has loaded
    // it; a body may be stored with its personal values already replaced by digests.
    r#"
    -- system, journey or snowplow; NULL for rows stored before, whose kind is read from the path.
    ALTER TABLE raw_requests ADD COLUMN kind TEXT;
    -- The journey's name, for a journey call.
    ALTER TABLE raw_requests ADD COLUMN journey TEXT;
    -- Set while a `drop_raw_bodies` body waits for the sinks: the digest that replaces
    -- `body_sha256` when the body is emptied.
    ALTER TABLE raw_requests ADD COLUMN drop_body_digest TEXT;
    -- 1: `body` and `query` hold keyed digests in place of personal values already (a source
    -- with a key and `drop_raw_bodies`), so rows are made from them without the key.
    ALTER TABLE raw_requests ADD COLUMN body_hidden INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX raw_requests_drop_pending ON raw_requests (seq) WHERE drop_body_digest IS NOT NULL;
    -- Until now the embedded tables were written with each request: they are loaded up to here.
    INSERT OR IGNORE INTO sink_cursors (sink, position, loaded_at)
        SELECT 'sqlite', coalesce(max(seq), 0), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
        FROM raw_requests;
    "#,
    // 7: a store may be the local copy of a JetStream log (`[sinks.sqlite]` with `[spool] kind =
    // "jetstream"`): its requests then carry the stream's sequences, and it names the stream.
    r#"
    ALTER TABLE spool_identity ADD COLUMN copy_of TEXT;
    "#,
    // 8: the inspector finds a person's journey calls by email or user id (keyed by seq, which
    // the indexes hold already; the events' person index is made only while the inspector is
    // on, see `person_index`), and counts events per minute.
    r#"
    CREATE INDEX journey_calls_email ON journey_calls (email) WHERE email IS NOT NULL;
    CREATE INDEX journey_calls_user_id ON journey_calls (user_id) WHERE user_id IS NOT NULL;
    -- The chart counts events by name per minute from this index alone; it serves every
    -- lookup by `raw_seq` the narrower index did.
    DROP INDEX events_raw_seq;
    CREATE INDEX events_raw_seq_name ON events (raw_seq, event_name);
    "#,
    // 9: a journey call records the HTTP status it was answered with: 200 for a call answered
    // `{"status":"stored"}`, the answer's for one that answers with data (NULL: stored
    // before this version, or not a journey call).
    r#"
    ALTER TABLE raw_requests ADD COLUMN answer_status INTEGER;
    ALTER TABLE journey_calls ADD COLUMN answer_status INTEGER;
    "#,
    // 10: retention. Bodies are emptied in `seq` order and their rows stay, so the pruner keeps
    // how far it got, rather than reading every emptied row again at each pass.
    r#"
    CREATE TABLE retention_marks (
        target TEXT    PRIMARY KEY,   -- raw_bodies
        after  INTEGER NOT NULL       -- every loaded request up to here has been looked at
    );
    "#,
];

/// Makes or drops the index of events by email and by user id (newest `raw_seq` first per
/// person), which only the inspector reads: made while it is on, dropped when it is off, so
/// a store without it does not pay for it at every load.
pub(crate) fn person_index(conn: &Connection, wanted: bool) -> rusqlite::Result<()> {
    optional_index(
        conn,
        wanted,
        &PERSON_INDEX,
        "indexing events by email and user id for the inspector; a large store takes a while \
         (about 30 s for 10 million events)",
    )
}

/// Makes or drops the index journey answers read: each person's events by name and time (and
/// source, for `from_sources`), covering the click's URL and the bounce's recipient state, so
/// an answer reads one range of the index and no event row: with a cold page cache each row
/// read was another random read of the disk, what made the engagement answer's p99 (see
/// BENCHMARKS.md). Made only while a journey answers, like the inspector's.
pub(crate) fn answer_index(conn: &Connection, wanted: bool) -> rusqlite::Result<()> {
    optional_index(
        conn,
        wanted,
        &ANSWER_INDEX,
        "indexing events by person, name and time for journey answers; a large store takes a \
         while (about a minute for 10 million events)",
    )
}

/// An index made only while a feature that reads it is on: its names (the first is probed)
/// and the statements that make them.
struct OptionalIndex {
    names: &'static [&'static str],
    create: &'static str,
    /// The names of the index this one replaced, dropped wherever they are found.
    replaces: &'static [&'static str],
}

const PERSON_INDEX: OptionalIndex = OptionalIndex {
    names: &["events_email", "events_user_id"],
    create: "CREATE INDEX IF NOT EXISTS events_email ON events (email, raw_seq)
                 WHERE email IS NOT NULL;
             CREATE INDEX IF NOT EXISTS events_user_id ON events (user_id, raw_seq)
                 WHERE user_id IS NOT NULL;",
    replaces: &[],
};

const ANSWER_INDEX: OptionalIndex = OptionalIndex {
    names: &["events_email_answer", "events_user_id_answer"],
    // The last three columns are NULL (one byte of the record's header each) on every event
    // but clicks and bounces: the covering costs little more than the key.
    create: "CREATE INDEX IF NOT EXISTS events_email_answer
                 ON events (email, event_name, created_at, source, url, link_url, recipient_state)
                 WHERE email IS NOT NULL;
             CREATE INDEX IF NOT EXISTS events_user_id_answer
                 ON events (user_id, event_name, created_at, source, url, link_url,
                            recipient_state)
                 WHERE user_id IS NOT NULL;",
    // The first answer index (0.14): keys only, so the newest click and the bounces were
    // read from the event rows.
    replaces: &["events_email_name_created", "events_user_id_name_created"],
};

const CAMPAIGN_INDEX: OptionalIndex = OptionalIndex {
    names: &["events_campaign"],
    // The same key as PostgreSQL's `events_campaign`: a campaign's events in time order.
    create: "CREATE INDEX IF NOT EXISTS events_campaign ON events (campaign_id, created_at)
                 WHERE campaign_id IS NOT NULL;",
    replaces: &[],
};

/// Makes or drops the index the campaign metric views read for one campaign, as
/// `store.campaign_index` says.
pub(crate) fn campaign_index(conn: &Connection, wanted: bool) -> rusqlite::Result<()> {
    optional_index(
        conn,
        wanted,
        &CAMPAIGN_INDEX,
        "indexing events by campaign and time for the campaign metric views; a large store \
         takes a while",
    )
}

fn optional_index(
    conn: &Connection,
    wanted: bool,
    index: &OptionalIndex,
    making: &str,
) -> rusqlite::Result<()> {
    for old in index.replaces {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {old};"))?;
    }
    let present: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [index.names[0]],
        |row| row.get(0),
    )?;
    match (wanted, present) {
        (true, false) => {
            tracing::info!("{making}");
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {} COMMIT;", index.create))
        }
        (false, true) => conn.execute_batch(
            &index
                .names
                .iter()
                .map(|name| format!("DROP INDEX IF EXISTS {name};"))
                .collect::<String>(),
        ),
        _ => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database is at schema version {found}, newer than this hookhouse knows ({known}): \
         upgrade hookhouse"
    )]
    TooNew { found: i64, known: usize },
    #[error("failed to apply migration {version}")]
    Apply {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to read the schema version")]
    Read(#[from] rusqlite::Error),
}

/// Sets up a database file that is still empty, before anything (even the switch to WAL)
/// writes its first page: only then can auto-vacuum be chosen. Incremental: pages freed by
/// retention are given back to the file system (`PRAGMA incremental_vacuum`), not only
/// reused. A store made before keeps reusing them (docs/operating.md, "Retention").
pub(crate) fn prepare_new(conn: &Connection) -> rusqlite::Result<()> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    if pages == 0 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    Ok(())
}

/// Brings the database up to the newest schema, one transaction per migration.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(found).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(MigrationError::TooNew { found, known: MIGRATIONS.len() });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        // A new store is made in milliseconds; an upgrade may build indexes over millions of
        // rows (migration 8: about 30 s for 10 million events), before the port listens.
        if current > 0 {
            tracing::info!(version, "upgrading the store's schema; a large store takes a while");
        }
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version as i64)?;
            tx.commit()
        };
        apply(conn).map_err(|source| MigrationError::Apply { version, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_person_index_is_made_and_dropped_as_asked() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let indexes = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('events_email', 'events_user_id')",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(indexes(&conn), 0, "not made by the migrations");
        person_index(&conn, true).unwrap();
        person_index(&conn, true).unwrap();
        assert_eq!(indexes(&conn), 2);
        person_index(&conn, false).unwrap();
        assert_eq!(indexes(&conn), 0);
    }

    #[test]
    fn the_answer_index_replaces_the_one_before_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch(
            "CREATE INDEX events_email_name_created ON events (email, event_name, created_at);
             CREATE INDEX events_user_id_name_created ON events (user_id, event_name);",
        )
        .unwrap();
        let names = |conn: &Connection| -> Vec<String> {
            conn.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'events_%_answer' OR name LIKE '%_name_created' ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        answer_index(&conn, true).unwrap();
        assert_eq!(
            names(&conn),
            ["events_email_answer", "events_name_created", "events_user_id_answer"]
        );
        answer_index(&conn, false).unwrap();
        assert_eq!(names(&conn), ["events_name_created"]);
    }

    #[test]
    fn migrates_once_and_refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate(&mut conn), Err(MigrationError::TooNew { found: 99, .. })));
    }
}
