-- Fills a store hookhouse made (its schema, empty) with __N__ requests as the embedded sink would
-- leave them, for bench/inspector.sh: received over the last 24 hours, one event each from
-- 500,000 people, every 50th a resend (no rows of its own), every 1,000th a failure, every
-- 100,000th an `emailComplaint` (a rare name). Clicks have a URL, bounces a recipient state (a
-- third hard), as Iterable's do: the journey answers' covering index holds them. __N__ is
-- replaced by the count (see the script).
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
PRAGMA temp_store = MEMORY;
BEGIN;
CREATE TEMP TABLE fill AS
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < __N__)
SELECT
  i AS seq,
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%f seconds', (__N__ - i) * 86400.0 / __N__)) AS received_at,
  CASE WHEN i % 7 = 0 THEN 'journeys' ELSE 'default' END AS source,
  printf('user%d@example.com', (i * 7919) % 500000) AS email,
  CASE
    WHEN i % 100000 = 0 THEN 'emailComplaint'
    ELSE (SELECT name FROM (SELECT 0 AS k, 'emailSend' AS name UNION ALL SELECT 1, 'emailSend'
      UNION ALL SELECT 2, 'emailOpen' UNION ALL SELECT 3, 'emailOpen' UNION ALL SELECT 4, 'emailClick'
      UNION ALL SELECT 5, 'pushSend' UNION ALL SELECT 6, 'pushOpen' UNION ALL SELECT 7, 'smsSend'
      UNION ALL SELECT 8, 'inAppOpen' UNION ALL SELECT 9, 'emailBounce') WHERE k = i % 10)
  END AS event_name,
  100000 + i % 3000 AS campaign_id
FROM n;
INSERT INTO raw_requests (seq, received_at, source, method, path, headers, remote_addr,
    content_type, body, body_sha256, kind)
SELECT seq, received_at, source, 'POST', '/iterable/' || source,
  '{"content-type":"application/json","user-agent":"Iterable"}', '127.0.0.1', 'application/json',
  CAST(printf('{"email":"%s","eventName":"%s","dataFields":{"email":"%s","campaignId":%d,"templateId":%d,"messageId":"%032x","createdAt":"%s","campaignName":"Campaign %d","emailSubject":"Our news for you, number %d","userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"}}',
    email, event_name, email, campaign_id, campaign_id + 7, seq, substr(received_at, 1, 19),
    campaign_id, seq) AS BLOB),
  printf('%064x', seq), 'system'
FROM fill;
INSERT INTO events (event_id, raw_seq, source, event_name, email, created_at, received_at,
    campaign_id, template_id, message_id, data, family, campaign_name, email_subject, url,
    recipient_state)
SELECT printf('%042x', seq), seq, source, event_name, email, substr(received_at, 1, 19) || 'Z',
  received_at, campaign_id, campaign_id + 7, printf('%032x', seq),
  printf('{"email":"%s","campaignId":%d}', email, campaign_id),
  CASE WHEN event_name LIKE 'email%' THEN 'email' WHEN event_name LIKE 'push%' THEN 'push'
       WHEN event_name LIKE 'sms%' THEN 'sms' ELSE 'in_app' END,
  printf('Campaign %d', campaign_id), printf('Our news for you, number %d', seq),
  CASE WHEN event_name = 'emailClick'
       THEN printf('https://shop.example.com/news/%d?utm_source=iterable&utm_campaign=%d', seq % 97, campaign_id) END,
  CASE WHEN event_name = 'emailBounce' THEN CASE WHEN seq % 3 = 0 THEN 'HardBounce' ELSE 'SoftBounce' END END
FROM fill WHERE seq % 50 != 0 AND seq % 1000 != 0;
INSERT INTO failed_events (raw_seq, received_at, stage, reason, body)
SELECT seq, received_at, 'envelope', 'the event has no `eventName`', CAST('{}' AS BLOB)
FROM fill WHERE seq % 1000 = 0;
INSERT OR REPLACE INTO sink_cursors (sink, position, loaded_at)
  VALUES ('sqlite', __N__, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
COMMIT;
