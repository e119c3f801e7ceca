#!/usr/bin/env bash
# The campaign metric views on a large embedded store: each query against a view timed with
# hyperfine next to the plain query over the same rows (the scan the view cannot avoid),
# measured in the same run, so the ratio is what the view's arithmetic costs on top of reading.
#
#   bench/metric_views.sh                    # REQUESTS=10000000 RUNS=5
#   STORE_CACHE=/var/tmp/hookhouse-inspector-stores bench/metric_views.sh   # reuse a filled store
#
# The store is bench/inspector_fill.sql's (see bench/lib.sh, fill_store): one event per request
# from 500,000 people over 24 hours, in 3,000 campaigns; 10 million take about 6 minutes and
# 12 GB to fill. Queries run in sqlite3, read-only, from a warm page cache (one warm-up run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

REQUESTS=${REQUESTS:-10000000}
RUNS=${RUNS:-5}
STORE_CACHE=${STORE_CACHE:-}
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-metric-views-bench.XXXXXX")

ensure_tools
command -v hyperfine >/dev/null || { log "installing hyperfine"; apt-get update; apt-get install -y hyperfine; }
build

if [[ -n $STORE_CACHE ]]; then dir="$STORE_CACHE/$REQUESTS"; else dir="$LOG_DIR/store"; fi
fill_store "$REQUESTS" "$dir"
# The views are made when hookhouse starts: a cached store filled by an older one gets them now.
port=$(free_port)
"$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" >"$LOG_DIR/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready hookhouse "$port"
stop_server hookhouse
db="$dir/hookhouse.db"

campaign=$((100000 + 1234))
person="user4242@example.com"
# name | query on a view | the plain query reading the same rows
pairs=(
  "one_campaign_by_day|SELECT * FROM campaign_daily WHERE campaign_id = $campaign|SELECT count(*) FROM events WHERE campaign_id = $campaign"
  "top_campaigns|SELECT campaign_id, sends, open_rate FROM campaign_totals ORDER BY sends DESC LIMIT 10|SELECT campaign_id, count(*) AS n FROM events GROUP BY campaign_id ORDER BY n DESC LIMIT 10"
  "one_person|SELECT * FROM user_engagement WHERE person = '$person'|SELECT count(*) FROM events WHERE email = '$person'"
)

# A view that gives no rows would time nothing worth reading.
for pair in "${pairs[@]}"; do
  IFS='|' read -r name view _ <<<"$pair"
  rows=$(sqlite3 -readonly "$db" "SELECT count(*) FROM ($view)")
  ((rows > 0)) || die "$name: the view gave no rows"
  log "$name: $rows rows; plan: $(sqlite3 -readonly "$db" "EXPLAIN QUERY PLAN $view" | tr '\n' ' ')"
done

printf '\n%-22s %12s %12s %8s\n' query "view s" "plain s" ratio
for pair in "${pairs[@]}"; do
  IFS='|' read -r name view plain <<<"$pair"
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$LOG_DIR/$name.json" \
    -n view "sqlite3 -readonly '$db' \"$view\"" \
    -n plain "sqlite3 -readonly '$db' \"$plain\"" >"$LOG_DIR/$name.txt" 2>&1 ||
    die "hyperfine failed on $name: $(cat "$LOG_DIR/$name.txt")"
  view_ratio "$LOG_DIR/$name.json" "$name"
done

# indexed NAME WHAT PAIR SQL: makes an index with SQL, then times PAIR's view query again
# (50 runs) against the same view without it, measured above.
indexed() {
  local name=$1 what=$2 pair=$3 sql=$4 started query scanned
  IFS='|' read -r scanned query _ <<<"$pair"
  started=$EPOCHREALTIME
  sqlite3 "$db" "$sql"
  log "$what made in $(python3 -c "print(round($EPOCHREALTIME - $started, 1))") s; plan: $(sqlite3 -readonly "$db" "EXPLAIN QUERY PLAN $query" | tr '\n' ' ')"
  hyperfine --warmup 3 --runs 50 --export-json "$LOG_DIR/$name.json" \
    -n indexed "sqlite3 -readonly '$db' \"$query\"" >"$LOG_DIR/$name.txt" 2>&1 ||
    die "hyperfine failed: $(cat "$LOG_DIR/$name.txt")"
  python3 - "$LOG_DIR/$name.json" "$LOG_DIR/$scanned.json" "$name" <<'PY'
import json, sys
indexed = json.load(open(sys.argv[1]))["results"][0]
scan = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}["view"]
print(f"{sys.argv[3]:<22} {indexed['mean']:12.4f} {scan['mean']:12.3f} "
      f"{indexed['mean'] / scan['mean']:8.4f}   (plain: the view without the index; "
      f"p50 {indexed['median'] * 1e3:.1f} ms, max {indexed['max'] * 1e3:.1f} ms)")
PY
}

# With `store.campaign_index = true` (the statement of src/spool/schema.rs's CAMPAIGN_INDEX):
# one campaign's days.
indexed one_campaign_indexed "campaign index" "${pairs[0]}" \
  "CREATE INDEX IF NOT EXISTS events_campaign ON events (campaign_id, created_at)
     WHERE campaign_id IS NOT NULL;"
# With the inspector's index of people (`[admin]` on: src/spool/schema.rs's PERSON_INDEX): one
# person's row.
indexed one_person_indexed "person index" "${pairs[2]}" \
  "CREATE INDEX IF NOT EXISTS events_email ON events (email, raw_seq) WHERE email IS NOT NULL;
   CREATE INDEX IF NOT EXISTS events_user_id ON events (user_id, raw_seq) WHERE user_id IS NOT NULL;"
# A cached store stays as the fill left it.
sqlite3 "$db" "DROP INDEX IF EXISTS events_campaign; DROP INDEX IF EXISTS events_email;
  DROP INDEX IF EXISTS events_user_id;"
[[ -n $STORE_CACHE ]] || rm -rf "$dir"
