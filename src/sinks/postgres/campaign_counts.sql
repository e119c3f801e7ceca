-- Migration 5: campaign counts kept up to date as events change, so that `campaign_daily`
-- and `campaign_totals` read a row per campaign (and day) instead of every event.
--
-- Triggers on `events` (statement-level, reading the statement's transition tables) apply each
-- change, whatever made it: the sink's COPY, a reload's INSERT ... ON CONFLICT, a replay's
-- deletes, or a user's own DELETE. Unique people are counted from a row per campaign (and
-- day) and person holding that person's opens and clicks: a person counts once their first
-- open arrives, and no longer once their last is deleted. What counts as what is
-- src/sinks/metric_views.rs's; tests/metric_views.rs compares these counts with those views.
-- A migration is never edited once released: a change to what counts is a new one.

CREATE TYPE {schema}.campaign_change AS (
    campaign_id   bigint,
    campaign_name text,
    day           date,
    person        text,
    kind          text,
    machine       boolean,
    sign          integer
);

CREATE FUNCTION {schema}.campaign_event_kind(event_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN event_name IN ('emailSend', 'pushSend', 'smsSend', 'inAppSend', 'webPushSend',
                            'whatsAppSend') THEN 'send'
        WHEN event_name IN ('emailSendSkip', 'pushSendSkip', 'smsSendSkip', 'inAppSendSkip',
                            'webPushSendSkip', 'whatsAppSendSkip') THEN 'skip'
        WHEN event_name IN ('emailOpen', 'pushOpen', 'inAppOpen') THEN 'open'
        WHEN event_name IN ('emailClick', 'smsClick', 'inAppClick', 'webPushClick',
                            'whatsAppClick') THEN 'click'
        WHEN event_name IN ('emailBounce', 'pushBounce', 'smsBounce', 'whatsAppBounce')
            THEN 'bounce'
        WHEN event_name = 'emailComplaint' THEN 'complaint'
        WHEN event_name = 'emailUnSubscribe' THEN 'unsubscribe'
    END
$$;

-- Per campaign and day: `events` counts every event (a campaign whose events are all gone
-- has 0 and no row in the views).
CREATE TABLE {schema}.campaign_day_counts (
    campaign_id   bigint NOT NULL,
    day           date   NOT NULL,
    events        bigint NOT NULL,
    sends         bigint NOT NULL,
    send_skips    bigint NOT NULL,
    opens         bigint NOT NULL,
    unique_opens  bigint NOT NULL,
    machine_opens bigint NOT NULL,
    clicks        bigint NOT NULL,
    unique_clicks bigint NOT NULL,
    bounces       bigint NOT NULL,
    complaints    bigint NOT NULL,
    unsubscribes  bigint NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
-- A campaign's unique people over all its days: not the sum of its days' (a person opening
-- on two days is one). Its other counts are its days' added up.
CREATE TABLE {schema}.campaign_uniques (
    campaign_id   bigint PRIMARY KEY,
    unique_opens  bigint NOT NULL,
    unique_clicks bigint NOT NULL
);
-- The names a campaign's events carried each day, with how many: the views show the greatest
-- name of the events there are, as a `max(campaign_name)` over them would.
CREATE TABLE {schema}.campaign_day_names (
    campaign_id   bigint NOT NULL,
    day           date   NOT NULL,
    campaign_name text   NOT NULL,
    events        bigint NOT NULL,
    PRIMARY KEY (campaign_id, day, campaign_name)
);
-- Each person's opens and clicks of a campaign (on a day): what unique counts are made of.
CREATE TABLE {schema}.campaign_day_people (
    campaign_id bigint NOT NULL,
    day         date   NOT NULL,
    person      text   NOT NULL,
    opens       bigint NOT NULL,
    clicks      bigint NOT NULL,
    PRIMARY KEY (campaign_id, day, person)
);
CREATE TABLE {schema}.campaign_people (
    campaign_id bigint NOT NULL,
    person      text   NOT NULL,
    opens       bigint NOT NULL,
    clicks      bigint NOT NULL,
    PRIMARY KEY (campaign_id, person)
);

-- Applies changes (sign 1: an event added, -1: one removed). Rows are written in key order,
-- so two transactions applying changes wait for each other rather than deadlock.
CREATE FUNCTION {schema}.apply_campaign_changes(changes {schema}.campaign_change[]) RETURNS void
LANGUAGE sql AS $$
    WITH c AS (SELECT * FROM unnest(changes)),
    delta AS (
        SELECT campaign_id, day, person,
            coalesce(sum(sign) FILTER (WHERE kind = 'open'), 0) AS opens,
            coalesce(sum(sign) FILTER (WHERE kind = 'click'), 0) AS clicks
        FROM c WHERE person IS NOT NULL AND kind IN ('open', 'click')
        GROUP BY campaign_id, day, person
    ),
    people AS (
        INSERT INTO {schema}.campaign_day_people AS p (campaign_id, day, person, opens, clicks)
        SELECT campaign_id, day, person, opens, clicks FROM delta
        ORDER BY campaign_id, day, person
        ON CONFLICT (campaign_id, day, person) DO UPDATE
            SET opens = p.opens + excluded.opens, clicks = p.clicks + excluded.clicks
        RETURNING p.campaign_id, p.day, p.person, p.opens, p.clicks
    ),
    uniques AS (
        SELECT cur.campaign_id, cur.day,
            sum((cur.opens > 0)::int - (cur.opens - d.opens > 0)::int) AS opens,
            sum((cur.clicks > 0)::int - (cur.clicks - d.clicks > 0)::int) AS clicks
        FROM people cur JOIN delta d USING (campaign_id, day, person)
        GROUP BY cur.campaign_id, cur.day
    ),
    counts AS (
        SELECT campaign_id, day, sum(sign) AS events,
            coalesce(sum(sign) FILTER (WHERE kind = 'send'), 0) AS sends,
            coalesce(sum(sign) FILTER (WHERE kind = 'skip'), 0) AS send_skips,
            coalesce(sum(sign) FILTER (WHERE kind = 'open'), 0) AS opens,
            coalesce(sum(sign) FILTER (WHERE kind = 'open' AND machine), 0) AS machine_opens,
            coalesce(sum(sign) FILTER (WHERE kind = 'click'), 0) AS clicks,
            coalesce(sum(sign) FILTER (WHERE kind = 'bounce'), 0) AS bounces,
            coalesce(sum(sign) FILTER (WHERE kind = 'complaint'), 0) AS complaints,
            coalesce(sum(sign) FILTER (WHERE kind = 'unsubscribe'), 0) AS unsubscribes
        FROM c GROUP BY campaign_id, day
    )
    INSERT INTO {schema}.campaign_day_counts AS t
    SELECT k.campaign_id, k.day, k.events, k.sends, k.send_skips, k.opens,
        coalesce(u.opens, 0), k.machine_opens, k.clicks, coalesce(u.clicks, 0), k.bounces,
        k.complaints, k.unsubscribes
    FROM counts k LEFT JOIN uniques u USING (campaign_id, day)
    ORDER BY k.campaign_id, k.day
    ON CONFLICT (campaign_id, day) DO UPDATE SET
        events = t.events + excluded.events, sends = t.sends + excluded.sends,
        send_skips = t.send_skips + excluded.send_skips, opens = t.opens + excluded.opens,
        unique_opens = t.unique_opens + excluded.unique_opens,
        machine_opens = t.machine_opens + excluded.machine_opens,
        clicks = t.clicks + excluded.clicks,
        unique_clicks = t.unique_clicks + excluded.unique_clicks,
        bounces = t.bounces + excluded.bounces, complaints = t.complaints + excluded.complaints,
        unsubscribes = t.unsubscribes + excluded.unsubscribes;

    WITH c AS (SELECT * FROM unnest(changes)),
    delta AS (
        SELECT campaign_id, person,
            coalesce(sum(sign) FILTER (WHERE kind = 'open'), 0) AS opens,
            coalesce(sum(sign) FILTER (WHERE kind = 'click'), 0) AS clicks
        FROM c WHERE person IS NOT NULL AND kind IN ('open', 'click')
        GROUP BY campaign_id, person
    ),
    people AS (
        INSERT INTO {schema}.campaign_people AS p (campaign_id, person, opens, clicks)
        SELECT campaign_id, person, opens, clicks FROM delta
        ORDER BY campaign_id, person
        ON CONFLICT (campaign_id, person) DO UPDATE
            SET opens = p.opens + excluded.opens, clicks = p.clicks + excluded.clicks
        RETURNING p.campaign_id, p.person, p.opens, p.clicks
    ),
    uniques AS (
        SELECT cur.campaign_id,
            sum((cur.opens > 0)::int - (cur.opens - d.opens > 0)::int) AS opens,
            sum((cur.clicks > 0)::int - (cur.clicks - d.clicks > 0)::int) AS clicks
        FROM people cur JOIN delta d USING (campaign_id, person)
        GROUP BY cur.campaign_id
    )
    INSERT INTO {schema}.campaign_uniques AS t (campaign_id, unique_opens, unique_clicks)
    SELECT campaign_id, opens, clicks FROM uniques
    ORDER BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET
        unique_opens = t.unique_opens + excluded.unique_opens,
        unique_clicks = t.unique_clicks + excluded.unique_clicks;

    INSERT INTO {schema}.campaign_day_names AS n (campaign_id, day, campaign_name, events)
    SELECT campaign_id, day, campaign_name, sum(sign) FROM unnest(changes)
    WHERE campaign_name IS NOT NULL
    GROUP BY campaign_id, day, campaign_name
    ORDER BY campaign_id, day, campaign_name
    ON CONFLICT (campaign_id, day, campaign_name) DO UPDATE SET events = n.events + excluded.events;
$$;

-- One event as a change: dated and attributed as the views do.
CREATE FUNCTION {schema}.campaign_change_of(e {schema}.events, sign integer)
RETURNS {schema}.campaign_change LANGUAGE sql STABLE AS $$
    SELECT ROW(e.campaign_id, e.campaign_name,
        CAST(coalesce(e.created_at, e.received_at) AT TIME ZONE 'UTC' AS date),
        coalesce(e.email, e.user_id), {schema}.campaign_event_kind(e.event_name),
        coalesce(e.is_bot OR e.proxy_source IS NOT NULL, false), sign)::{schema}.campaign_change
$$;

CREATE FUNCTION {schema}.events_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.apply_campaign_changes(ARRAY(
        SELECT {schema}.campaign_change_of(n, 1) FROM added n WHERE n.campaign_id IS NOT NULL));
    RETURN NULL;
END $$;
CREATE FUNCTION {schema}.events_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.apply_campaign_changes(ARRAY(
        SELECT {schema}.campaign_change_of(o, -1) FROM removed o WHERE o.campaign_id IS NOT NULL));
    RETURN NULL;
END $$;
CREATE FUNCTION {schema}.events_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.apply_campaign_changes(ARRAY(
        SELECT {schema}.campaign_change_of(o, -1) FROM removed o WHERE o.campaign_id IS NOT NULL
        UNION ALL
        SELECT {schema}.campaign_change_of(n, 1) FROM added n WHERE n.campaign_id IS NOT NULL));
    RETURN NULL;
END $$;
CREATE TRIGGER events_added AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_added();
CREATE TRIGGER events_removed AFTER DELETE ON {schema}.events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_removed();
CREATE TRIGGER events_changed AFTER UPDATE ON {schema}.events
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_changed();

-- The events already loaded, in slices of `raw_seq` so that no array holds them all.
DO $$
DECLARE
    last_seq bigint := (SELECT coalesce(max(raw_seq), 0) FROM {schema}.events);
    low bigint := 0;
BEGIN
    WHILE low < last_seq LOOP
        PERFORM {schema}.apply_campaign_changes(ARRAY(
            SELECT {schema}.campaign_change_of(e, 1) FROM {schema}.events e
            WHERE e.campaign_id IS NOT NULL AND e.raw_seq > low AND e.raw_seq <= low + 100000));
        low := low + 100000;
    END LOOP;
END $$;
