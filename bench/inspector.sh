#!/usr/bin/env bash
# The inspector's API on a large store: how long each view takes with REQUESTS requests
# (10 million by default) against the same view with BASELINE requests (10,000), measured in
# the same run with wrk, so the ratio says whether a view's cost grows with the store.
#
#   bench/inspector.sh                       # REQUESTS=10000000 BASELINE=10000 DURATION=5s
#   STORE_CACHE=/var/tmp/hookhouse-inspector-stores bench/inspector.sh   # reuse filled stores
#
# Stores are filled by bench/inspector_fill.sql (a store hookhouse created, then rows as the
# embedded sink leaves them: one event per request from 500,000 people over 24 hours, resends,
# failures, a rare event name); STORE_CACHE keeps them between runs (10 million take about
# 6 minutes and 12 GB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

REQUESTS=${REQUESTS:-10000000}
BASELINE=${BASELINE:-10000}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-2}
STORE_CACHE=${STORE_CACHE:-}
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-inspector-bench.XXXXXX")

ensure_tools
build

# latency URL: "p50_ms p99_ms requests_per_s" from wrk.
latency() {
  local out
  out=$(wrk -t1 "-c$CONNS" "-d$DURATION" --latency "$1") || die "wrk failed on $1"
  grep -q 'Non-2xx' <<<"$out" && die "non-2xx answers from $1:"$'\n'"$out"
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
print(f"{p50:.2f} {p99:.2f} {rps:.0f}")
PY
}

# measure N DIR: runs every view against a serve on the store of N requests; prints
# "view p50 p99 rps" lines.
measure() {
  local n=$1 dir=$2 port admin
  port=$(free_port)
  admin=$(free_port)
  "$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --data-dir "$dir" \
    >"$LOG_DIR/serve-$n.log" 2>&1 &
  SERVER_PID=$!
  wait_ready hookhouse "$port"
  local base="http://127.0.0.1:$admin/api"
  local since until
  since=$(date -u -d '-12 hours' +%Y-%m-%dT%H:%M:%SZ)
  until=$(date -u -d '-11 hours 50 minutes' +%Y-%m-%dT%H:%M:%SZ)
  local views=(
    "newest=$base/requests?limit=50"
    "deep_page=$base/requests?limit=50&before=$((n / 2))"
    "email=$base/requests?email=user12345@example.com"
    "event=$base/requests?event=emailOpen"
    "rare_event=$base/requests?event=emailComplaint"
    "source=$base/requests?source=journeys"
    "text=$base/requests?q=number%20$((n - 77))"
    "failed_outcome=$base/requests?outcome=failed"
    "time_range=$base/requests?since=$since&until=$until"
    "detail=$base/requests/$((n / 2))"
    "failures=$base/failed"
    "stats_1h=$base/stats?window=1h"
    "stats_15m=$base/stats?window=15m"
    "stats_24h=$base/stats?window=24h"
    "sinks=$base/sinks"
  )
  # The chart's first count of an hour and of a day, before any bucket is kept (a day on a busy
  # store takes several calls: `counted_from` says where each stopped).
  local window
  for window in 1h 24h; do
    curl -fsS -o "$LOG_DIR/stats-$n-$window.json" -w "first stats $window on $n requests: %{time_total} s\n" \
      "$base/stats?window=$window" >&2
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('  counted_from', s['counted_from'], 'events', sum(c['count'] for c in s['counts']))" \
      "$LOG_DIR/stats-$n-$window.json" >&2
  done
  local view
  for view in "${views[@]}"; do
    curl -fsS -o /dev/null "${view#*=}" || die "${view%%=*} failed: $(curl -sS "${view#*=}")"
    echo "${view%%=*} $(latency "${view#*=}")"
  done
  stop_server hookhouse
}

store_dir() {
  if [[ -n $STORE_CACHE ]]; then echo "$STORE_CACHE/$1"; else echo "$LOG_DIR/store-$1"; fi
}

small_dir=$(store_dir "$BASELINE")
large_dir=$(store_dir "$REQUESTS")
fill_store "$BASELINE" "$small_dir"
fill_store "$REQUESTS" "$large_dir"
log "measuring each view on $BASELINE requests, then on $REQUESTS (wrk -t1 -c$CONNS -d$DURATION)"
small=$(measure "$BASELINE" "$small_dir")
large=$(measure "$REQUESTS" "$large_dir")

printf '\nview             %12s p50/p99 ms   %12s p50/p99 ms   p50 ratio\n' "$BASELINE" "$REQUESTS"
join <(sort <<<"$small") <(sort <<<"$large") | while read -r view s50 s99 _ l50 l99 _; do
  printf '%-16s %14s/%-8s %14s/%-8s %6.2f\n' "$view" "$s50" "$s99" "$l50" "$l99" \
    "$(python3 -c "print($l50 / max($s50, 0.01))")"
done
[[ -n $STORE_CACHE ]] || rm -rf "$small_dir" "$large_dir"
