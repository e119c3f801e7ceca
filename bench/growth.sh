#!/usr/bin/env bash
# Growth benchmark: does hookhouse keep its ingest rate while its store grows to millions of
# events? For each kind of body in BODIES (see bench/run.sh), one hookhouse on a fresh data dir
# is loaded by wrk in consecutive WINDOW-long runs until TOTAL_EVENTS requests are stored (each
# body is one event). Per window: wrk's rps and p99 (its BENCH line), the requests stored so
# far, the embedded `sqlite` sink's max lag (hookhouse_sink_lag_seconds{sink="sqlite"} read
# from /metrics every 200 ms, `n/a` in builds without the gauge) and the server's peak RSS so
# far. At the end, per body: last-window / first-window rps and whether it is >= 0.8, the peak
# RSS (VmHWM), how long the sink took to catch up, and a check that `events` holds one row per
# stored request and every 2xx is stored.
#
# Usage (from the repo root):  bench/growth.sh
# Knobs: TOTAL_EVENTS=10000000  WINDOW=30s  CONNS=200  BODIES="realistic mixed"  THREADS=2
#        CATCHUP_TIMEOUT_S=300  TMPDIR=/tmp (where the stores go)  CARGO_TARGET_DIR=...
# A smoke run: TOTAL_EVENTS=20000 WINDOW=3s bench/growth.sh
#
# Disk: a store takes a few KiB per event (raw request, 48-column row, indexes), so tens of GB
# at the default TOTAL_EVENTS; one store exists at a time and is deleted after its body's run.
# The script estimates the final size after the first window and stops if TMPDIR cannot hold
# it. The final check counts `raw_requests` with count(*), which reads the whole table once.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

TOTAL_EVENTS=${TOTAL_EVENTS:-10000000}
WINDOW=${WINDOW:-30s}
CONNS=${CONNS:-200}
# The last window must keep this share of the first window's rate.
MIN_GROWTH_RATIO=0.8

# One line per window: body window rps p99_ms requests non2xx socket_errors stored max_lag_s
# peak_rss_kb. One line per body in SUMMARY: body windows events catchup_s peak_rss_kb.
RESULTS=$(mktemp /tmp/hookhouse-growth-results.XXXXXX)
SUMMARY=$(mktemp /tmp/hookhouse-growth-summary.XXXXXX)
CLEANUP_FILES+=("$RESULTS" "$SUMMARY")

# check_disk STORED: after the first window, stop if the store would outgrow its filesystem.
check_disk() {
  local stored=$1 used avail need
  used=$(du -sb "$DATA_DIR" | cut -f1)
  avail=$(df --output=avail -B1 "$DATA_DIR" | tail -1)
  need=$((used * TOTAL_EVENTS / stored - used))
  log "store: $((used / stored)) bytes per request so far, ~$((need / 1024 / 1024 / 1024)) GiB" \
    "more for $TOTAL_EVENTS, $((avail / 1024 / 1024 / 1024)) GiB free"
  ((need < avail)) || die "not enough disk for $TOTAL_EVENTS events under ${TMPDIR:-/tmp}"
}

# grow BODY: one fresh server loaded window by window until TOTAL_EVENTS are stored.
grow() {
  local body=$1 port window=0 stored=0 previous twoxx_total=0 line samples lag rss
  port=$(free_port)
  log "$body bodies: hookhouse on port $port, fresh store"
  start_server hookhouse "$port"
  wait_ready hookhouse "$port"
  wrk_command "$CONNS" "$WINDOW" "$(body_script "$body")" "$port"
  log "running ${WRK_CMD[*]} until $TOTAL_EVENTS requests are stored"

  while ((stored < TOTAL_EVENTS)); do
    window=$((window + 1))
    samples="$LOG_DIR/lag-$body-$window.samples"
    start_lag_sampler "$port" "$samples"
    line=$(run_wrk)
    stop_lag_sampler
    lag=$(max_lag "$samples")

    local requests non2xx twoxx
    requests=$(bench_field "$line" requests)
    non2xx=$(bench_field "$line" non2xx)
    twoxx=$((requests - non2xx))
    ((twoxx > 0)) || die "window $window: no 2xx ($requests requests, $non2xx non-2xx)"
    ((non2xx == 0)) || log "WARNING: window $window: $non2xx requests answered with a status >= 400"
    twoxx_total=$((twoxx_total + twoxx))

    previous=$stored
    stored=$(stored_requests_fast)
    ((stored > previous)) || die "window $window stored nothing (still $stored requests)"
    ((window > 1)) || check_disk "$stored"
    rss=$(peak_rss_kb "$SERVER_PID")
    echo "    window $window: rps=$(bench_field "$line" rps) p99_ms=$(bench_field "$line" p99_ms)" \
      "stored=$stored max_lag_s=$lag peak_rss_mib=$((rss / 1024))" >&2
    echo "$body $window $(bench_field "$line" rps) $(bench_field "$line" p99_ms) $requests" \
      "$non2xx $(socket_errors "$line") $stored $lag $rss" >>"$RESULTS"
  done

  local catchup events
  catchup=$(wait_catchup "$port")
  if [[ $catchup == n/a ]]; then
    echo "    lag: n/a (no hookhouse_sink_lag_requests{sink=\"$LAG_SINK\"} in /metrics)" >&2
  else
    echo "    the $LAG_SINK sink caught up ${catchup}s after the last window" >&2
  fi
  log "counting the store (every raw request once)"
  events=$(check_events_match)
  # Stored rows only grow, so a 2xx count covered now stays covered after shutdown.
  echo "    2xx answered=$twoxx_total stored=$events events=$events" >&2
  ((events >= twoxx_total)) ||
    die "hookhouse lost acknowledged requests: 2xx=$twoxx_total stored=$events"
  rss=$(peak_rss_kb "$SERVER_PID")
  stop_server hookhouse
  rm -rf "$DATA_DIR"
  DATA_DIR=""
  echo "$body $window $events $catchup $rss" >>"$SUMMARY"
}

print_report() {
  local commit body
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  echo
  echo "## growth: ingest rate as the store grows"
  echo
  echo "commit: $commit; machine: $(nproc) cores; wrk $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
  wrk_command "$CONNS" "$WINDOW" '<script>' '<port>'
  echo "command: ${WRK_CMD[*]}, repeated on one server until $TOTAL_EVENTS requests are stored"
  for body in $BODIES; do
    echo "bodies $body: $(body_script "$body")"
  done
  echo "stored: requests in raw_requests after the window (one event each);" \
    "max_lag_s: the \`$LAG_SINK\` sink's during the window, n/a where the build has no gauge"
  echo
  python3 - "$RESULTS" "$SUMMARY" "$MIN_GROWTH_RATIO" <<'EOF'
import sys

windows = {}
for line in open(sys.argv[1]):
    body, window, rps, p99, _requests, non2xx, sock, stored, lag, rss = line.split()
    windows.setdefault(body, []).append(
        dict(window=int(window), rps=float(rps), p99=float(p99), non2xx=int(non2xx),
             sock=int(sock), stored=int(stored), lag=lag, rss=int(rss)))
summary = {}
for line in open(sys.argv[2]):
    body, count, events, catchup, rss = line.split()
    summary[body] = dict(windows=int(count), events=int(events), catchup=catchup, rss=int(rss))
min_ratio = float(sys.argv[3])

print("| bodies | window | rps | p99 ms | stored | max_lag_s | peak RSS MiB | non-2xx | socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for body, ws in windows.items():
    for w in ws:
        print(f"| {body} | {w['window']} | {w['rps']:,.0f} | {w['p99']:.2f} | {w['stored']:,} "
              f"| {w['lag']} | {w['rss'] / 1024:.1f} | {w['non2xx']} | {w['sock']} |")
print()
print(f"| bodies | windows | events | first-window rps | last-window rps | last/first "
      f"| >= {min_ratio} | peak RSS MiB | max_lag_s (worst window) | catchup_s |")
print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
for body, ws in windows.items():
    s = summary[body]
    first, last = ws[0]["rps"], ws[-1]["rps"]
    ratio = last / first
    verdict = "yes" if ratio >= min_ratio else "no"
    if len(ws) == 1:
        verdict += " (one window: nothing to compare)"
    lags = [float(w["lag"]) for w in ws if w["lag"] != "n/a"]
    worst_lag = f"{max(lags):.2f}" if lags else "n/a"
    print(f"| {body} | {s['windows']} | {s['events']:,} | {first:,.0f} | {last:,.0f} "
          f"| {ratio:.3f} | {verdict} | {s['rss'] / 1024:.1f} | {worst_lag} | {s['catchup']} |")
EOF
}

main() {
  ensure_tools
  check_bodies
  [[ $TOTAL_EVENTS =~ ^[1-9][0-9]*$ ]] || die "TOTAL_EVENTS must be a positive integer"
  # shellcheck disable=SC2119 # the server only, no ceiling
  build
  LOG_DIR=$(mktemp -d /tmp/hookhouse-growth-logs.XXXXXX)
  log "server logs in $LOG_DIR"
  local body
  for body in $BODIES; do
    grow "$body"
  done
  print_report
}

main "$@"
