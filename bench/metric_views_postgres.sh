#!/usr/bin/env bash
# The campaign metric views in PostgreSQL on EVENTS events: each query against a view timed
# with hyperfine (psql) next to the plain query over the same rows, in the same run, as
# bench/metric_views.sh does for the embedded store.
#
#   bench/metric_views_postgres.sh     # EVENTS=10000000 RUNS=5 PG_URL=postgres://postgres@127.0.0.1:5432/test
#
# hookhouse makes the schema (tables, indexes, triggers, views: `serve` with the sink on an
# empty store); events are then generated in PostgreSQL like bench/inspector_fill.sql's (one
# each from 500,000 people over 24 hours, 3,000 campaigns). It measures what the triggers that
# keep the campaign counts cost loading (LOAD_EVENTS=500000 in statements of 5,000, with and
# without them), how long an upgrade takes to count EVENTS events, and then the queries. The
# schema is dropped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

EVENTS=${EVENTS:-10000000}
RUNS=${RUNS:-5}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=hh_bench_metric_views
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-metric-views-pg.XXXXXX")
DATA_DIR=$LOG_DIR/store

ensure_tools
command -v psql >/dev/null || die "psql is needed"
command -v hyperfine >/dev/null || { log "installing hyperfine"; apt-get update; apt-get install -y hyperfine; }
build

psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE"
printf '[sinks.postgres]\nurl = "%s"\nschema = "%s"\n' "$PG_URL" "$SCHEMA" >"$LOG_DIR/hookhouse.toml"
port=$(free_port)
"$HOOKHOUSE_BIN" serve --config "$LOG_DIR/hookhouse.toml" --listen "127.0.0.1:$port" \
  --data-dir "$DATA_DIR" >"$LOG_DIR/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready hookhouse "$port"
for _ in $(seq 1 100); do
  psql "$PG_URL" -qtAc "SELECT 1 FROM $SCHEMA.campaign_daily LIMIT 0" >/dev/null 2>&1 && break
  sleep 0.1
done
stop_server hookhouse
psql "$PG_URL" -qtAc "SELECT 1 FROM $SCHEMA.campaign_daily LIMIT 0" >/dev/null ||
  die "hookhouse did not make the views in $SCHEMA"

# fill FROM TO [STEP]: events FROM..TO as bench/inspector_fill.sql makes them, in statements
# of STEP events (the sink loads batches of 5,000: each is one statement for the triggers).
fill() {
  local from=$1 to=$2 step=${3:-$(($2 - $1 + 1))} low
  {
    echo "SET synchronous_commit = off;"
    for ((low = from; low <= to; low += step)); do
      cat <<SQL
INSERT INTO $SCHEMA.events (event_id, raw_seq, source, event_name, email, created_at,
    received_at, campaign_id, template_id, message_id, data, family, campaign_name,
    email_subject, url, recipient_state)
SELECT lpad(to_hex(i), 42, '0'), i, 'default', name,
  'user' || ((i * 7919) % 500000) || '@example.com', at, at, 100000 + i % 3000,
  100007 + i % 3000, lpad(to_hex(i), 32, '0'),
  jsonb_build_object('campaignId', 100000 + i % 3000),
  CASE WHEN name LIKE 'email%' THEN 'email' WHEN name LIKE 'push%' THEN 'push'
       WHEN name LIKE 'sms%' THEN 'sms' ELSE 'in_app' END,
  'Campaign ' || (100000 + i % 3000), 'Our news for you, number ' || i,
  CASE WHEN name = 'emailClick' THEN 'https://shop.example.com/news/' || (i % 97) END,
  CASE WHEN name = 'emailBounce' THEN 'HardBounce' END
FROM (SELECT i, now() - make_interval(secs => ($EVENTS - i) * 86400.0 / $EVENTS) AS at,
        CASE WHEN i % 100000 = 0 THEN 'emailComplaint'
             ELSE (ARRAY['emailSend', 'emailSend', 'emailOpen', 'emailOpen', 'emailClick',
                         'pushSend', 'pushOpen', 'smsSend', 'inAppOpen', 'emailBounce'])[i % 10 + 1]
        END AS name
      FROM generate_series($low::bigint, least($((low + step - 1)), $to)) AS i) AS fill;
SQL
    done
  } | psql "$PG_URL" -v ON_ERROR_STOP=1 -q
}
empty() {
  psql "$PG_URL" -qc "TRUNCATE $SCHEMA.events, $SCHEMA.campaign_uniques, $SCHEMA.campaign_day_counts,
    $SCHEMA.campaign_people, $SCHEMA.campaign_day_people, $SCHEMA.campaign_day_names"
}
triggers() { psql "$PG_URL" -qc "ALTER TABLE $SCHEMA.events $1 TRIGGER USER"; }
seconds() { local start=$EPOCHREALTIME; "$@"; python3 -c "print(round($EPOCHREALTIME - $start, 2))"; }

# What the triggers cost loading: LOAD_EVENTS events in statements of 5,000, with the triggers
# and without, rounds alternating.
LOAD_EVENTS=${LOAD_EVENTS:-500000}
load_results=()
for round in 1 2; do
  for variant in with without; do
    empty
    if [[ $variant == with ]]; then triggers ENABLE; else triggers DISABLE; fi
    took=$(seconds fill 1 "$LOAD_EVENTS" 5000)
    log "round $round, $variant the counting triggers: $LOAD_EVENTS events in $took s"
    load_results+=("$variant $took")
  done
done
triggers ENABLE
python3 - "$LOAD_EVENTS" "${load_results[@]}" <<'PY'
import sys
n = int(sys.argv[1])
took = {"with": [], "without": []}
for line in sys.argv[2:]:
    variant, seconds = line.split()
    took[variant].append(float(seconds))
rate = {v: n / (sum(t) / len(t)) for v, t in took.items()}
print(f"loading with / without the counting triggers: {rate['with'] / rate['without']:.3f} "
      f"({rate['with']:.0f} vs {rate['without']:.0f} events/s, statements of 5,000)")
PY

# An upgrade: EVENTS events loaded without the triggers, then counted as migration 5 does
# (src/sinks/postgres/campaign_counts.sql's last block).
log "generating $EVENTS events in $SCHEMA.events (triggers off)"
empty
triggers DISABLE
started=$SECONDS
fill 1 "$EVENTS"
psql "$PG_URL" -qc "ANALYZE $SCHEMA.events"
triggers ENABLE
log "generated in $((SECONDS - started)) s: $(psql "$PG_URL" -qtAc "SELECT pg_size_pretty(pg_total_relation_size('$SCHEMA.events'))")"
backfill() {
  psql "$PG_URL" -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$
DECLARE
    last_seq bigint := (SELECT coalesce(max(raw_seq), 0) FROM $SCHEMA.events);
    low bigint := 0;
BEGIN
    WHILE low < last_seq LOOP
        PERFORM $SCHEMA.apply_campaign_changes(ARRAY(
            SELECT $SCHEMA.campaign_change_of(e, 1) FROM $SCHEMA.events e
            WHERE e.campaign_id IS NOT NULL AND e.raw_seq > low AND e.raw_seq <= low + 100000));
        low := low + 100000;
    END LOOP;
END \$\$;
ANALYZE $SCHEMA.campaign_uniques, $SCHEMA.campaign_day_counts;
SQL
}
echo "counting $EVENTS events as the upgrade does: $(seconds backfill) s"

campaign=$((100000 + 1234))
person="user4242@example.com"
pairs=(
  "one_campaign_by_day|SELECT * FROM $SCHEMA.campaign_daily WHERE campaign_id = $campaign|SELECT count(*) FROM $SCHEMA.events WHERE campaign_id = $campaign"
  "top_campaigns|SELECT campaign_id, sends, open_rate FROM $SCHEMA.campaign_totals ORDER BY sends DESC LIMIT 10|SELECT campaign_id, count(*) AS n FROM $SCHEMA.events GROUP BY campaign_id ORDER BY n DESC LIMIT 10"
  "one_person|SELECT * FROM $SCHEMA.user_engagement WHERE person = '$person'|SELECT count(*) FROM $SCHEMA.events WHERE email = '$person'"
)
for pair in "${pairs[@]}"; do
  IFS='|' read -r name view _ <<<"$pair"
  rows=$(psql "$PG_URL" -qtAc "SELECT count(*) FROM ($view) AS v")
  ((rows > 0)) || die "$name: the view gave no rows"
  log "$name: $rows rows; plan: $(psql "$PG_URL" -qtAc "EXPLAIN $view" | grep -oE '(Index|Seq|Bitmap[A-Za-z ]*) Scan[^(]*' | sort -u | tr '\n' ';')"
done

printf '\n%-22s %12s %12s %8s\n' query "view s" "plain s" ratio
for pair in "${pairs[@]}"; do
  IFS='|' read -r name view plain <<<"$pair"
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$LOG_DIR/$name.json" \
    -n view "psql '$PG_URL' -qtAc \"$view\"" \
    -n plain "psql '$PG_URL' -qtAc \"$plain\"" >"$LOG_DIR/$name.txt" 2>&1 ||
    die "hyperfine failed on $name: $(cat "$LOG_DIR/$name.txt")"
  view_ratio "$LOG_DIR/$name.json" "$name"
done
psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE"
