#!/usr/bin/env bash
# Load benchmark for "durable ingest vs ceiling": how close does hookhouse, which writes every
# accepted request to its SQLite spool before answering, come to a no-op JSON receiver
# (bench/ceiling.rs)? Runs wrk against both, alternating, for each kind of body in BODIES, and
# checks that every 2xx hookhouse gave is really in its store.
#
# Bodies (wrk scripts; the same unique emailOpen template, see bench/unique_body.lua):
#   realistic  bench/unique_body.lua: `createdAt` is the current second, as live traffic has
#   mixed      bench/mixed_body.lua: live traffic interleaved with a backlog Iterable redelivers
#              after an outage (`createdAt` over 3,600 distinct seconds of the last hour)
#
# For hookhouse it also measures the embedded `sqlite` sink: while wrk runs, /metrics is read
# every 200 ms and max_lag_s is the largest hookhouse_sink_lag_seconds{sink="sqlite"}; after
# wrk, catchup_s is how long until hookhouse_sink_lag_requests{sink="sqlite"} reads 0, and then
# `events` must hold one row per stored request. A build without those gauges (the sink writing
# inside the spool's transaction) reports `lag: n/a`; the events check runs either way.
#
# Usage (from the repo root):  bench/run.sh
# Knobs: CONNS="50 200"  BODIES="realistic mixed"  ROUNDS=2  DURATION=10s  THREADS=2
#        CATCHUP_TIMEOUT_S=300  CARGO_TARGET_DIR=...
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

CONNS=${CONNS:-50 200}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}

# One line per run: conns body server round rps p50_ms p99_ms peak_rss_kb requests non2xx
# socket_errors stored max_lag_s catchup_s. Aggregated into the final table.
RESULTS=$(mktemp /tmp/hookhouse-bench-results.XXXXXX)
CLEANUP_FILES+=("$RESULTS")

# --- measuring --------------------------------------------------------------------------------

# run_one CONNS BODY ROLE ROUND: one server, one wrk run, one line appended to $RESULTS.
run_one() {
  local conns=$1 body=$2 role=$3 round=$4 port line rss stored=- max_lag_s=- catchup_s=-
  local samples
  port=$(free_port)
  log "round $round, $conns connections, $body bodies: $role on port $port"
  start_server "$role" "$port"
  wait_ready "$role" "$port"

  wrk_command "$conns" "$DURATION" "$(body_script "$body")" "$port"
  if [[ $role == hookhouse ]]; then
    samples="$LOG_DIR/lag-$conns-$body-$round.samples"
    start_lag_sampler "$port" "$samples"
  fi
  line=$(run_wrk)
  if [[ $role == hookhouse ]]; then
    stop_lag_sampler
    max_lag_s=$(max_lag "$samples")
    catchup_s=$(wait_catchup "$port")
    if [[ $max_lag_s == n/a || $catchup_s == n/a ]]; then
      echo "    lag: n/a (no hookhouse_sink_lag_*{sink=\"$LAG_SINK\"} in /metrics)" >&2
      max_lag_s=n/a catchup_s=n/a
    else
      echo "    lag: max ${max_lag_s}s over $(grep -c . "$samples") samples, caught up ${catchup_s}s after wrk" >&2
    fi
    local events
    events=$(check_events_match)
    echo "    events=$events (one per stored request)" >&2
  fi

  rss=$(peak_rss_kb "$SERVER_PID")
  stop_server "$role"

  local requests non2xx twoxx
  requests=$(bench_field "$line" requests)
  non2xx=$(bench_field "$line" non2xx)
  twoxx=$((requests - non2xx))
  ((twoxx > 0)) || die "$role answered no request with a 2xx ($requests requests, $non2xx non-2xx)"
  ((non2xx == 0)) || log "WARNING: $role answered $non2xx requests with a status >= 400"

  if [[ $role == hookhouse ]]; then
    # The point of hookhouse: a 2xx means the request is durably stored. Rows may exceed the
    # 2xx count (requests stored whose response wrk never read before it stopped), never fall
    # short of it.
    stored=$(stored_rows) || die "cannot count rows in $DATA_DIR/hookhouse.db"
    echo "    2xx answered=$twoxx stored=$stored" >&2
    ((stored >= twoxx)) || die "hookhouse lost acknowledged requests: 2xx=$twoxx stored=$stored"
    rm -rf "$DATA_DIR"
    DATA_DIR=""
  fi

  echo "$conns $body $role $round $(bench_field "$line" rps) $(bench_field "$line" p50_ms)" \
    "$(bench_field "$line" p99_ms) $rss $requests $non2xx $(socket_errors "$line") $stored" \
    "$max_lag_s $catchup_s" >>"$RESULTS"
}

# --- report -----------------------------------------------------------------------------------

# Means over rounds per (conns, bodies, server); the ratio is mean hookhouse rps / mean ceiling
# rps for the same connections and bodies. max_lag_s and catchup_s are the worst round's.
print_table() {
  python3 - "$RESULTS" <<'EOF'
import sys
from collections import defaultdict
from statistics import mean

runs = defaultdict(list)
order = []  # bodies in the order BODIES named them
for line in open(sys.argv[1]):
    (conns, body, server, _round, rps, p50, p99, rss, _requests, non2xx, sock, _stored,
     lag, catchup) = line.split()
    if body not in order:
        order.append(body)
    runs[(int(conns), body, server)].append(
        dict(rps=float(rps), p50=float(p50), p99=float(p99), rss=int(rss),
             non2xx=int(non2xx), sock=int(sock), lag=lag, catchup=catchup))

def worst(values):
    """The largest of a column that is a number, n/a (no metric) or - (not measured)."""
    numbers = [float(v) for v in values if v not in ("n/a", "-")]
    if numbers:
        return f"{max(numbers):.2f}"
    return "n/a" if "n/a" in values else ""

print("| conns | bodies | server | rounds | rps (mean) | p50 ms | p99 ms | peak RSS MiB "
      "| hookhouse/ceiling | max_lag_s | catchup_s | non-2xx | socket errors |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for conns in sorted({c for c, _, _ in runs}):
    for body in order:
        ceiling = runs.get((conns, body, "ceiling"))
        ceiling_rps = mean(r["rps"] for r in ceiling) if ceiling else None
        for server in ("ceiling", "hookhouse"):
            rs = runs.get((conns, body, server))
            if not rs:
                continue
            rps = mean(r["rps"] for r in rs)
            ratio = f"{rps / ceiling_rps:.3f}" if server == "hookhouse" and ceiling_rps else ""
            rss = max(r["rss"] for r in rs) / 1024
            print(f"| {conns} | {body} | {server} | {len(rs)} | {rps:,.0f} "
                  f"| {mean(r['p50'] for r in rs):.2f} | {mean(r['p99'] for r in rs):.2f} "
                  f"| {rss:.1f} | {ratio} | {worst([r['lag'] for r in rs])} "
                  f"| {worst([r['catchup'] for r in rs])} "
                  f"| {'/'.join(str(r['non2xx']) for r in rs)} "
                  f"| {'/'.join(str(r['sock']) for r in rs)} |")
EOF
}

print_report() {
  local commit body
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  echo
  echo "## durable ingest vs ceiling"
  echo
  echo "commit: $commit; machine: $(nproc) cores; wrk $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
  wrk_command '<conns>' "$DURATION" '<script>' '<port>'
  echo "command: ${WRK_CMD[*]}   (conns in: $CONNS)"
  for body in $BODIES; do
    echo "bodies $body: $(body_script "$body")"
  done
  echo "rounds: $ROUNDS per server per connection count and bodies, alternating ceiling/hookhouse;" \
    "rps, p50 and p99 are means over rounds, peak RSS (VmHWM), max_lag_s and catchup_s the max;" \
    "non-2xx per round; lag of the \`$LAG_SINK\` sink from /metrics, n/a where the build has no gauge"
  echo
  print_table
}

main() {
  ensure_tools
  check_bodies
  build --with-ceiling
  LOG_DIR=$(mktemp -d /tmp/hookhouse-bench-logs.XXXXXX)
  log "server logs in $LOG_DIR"

  local conns body round
  for conns in $CONNS; do
    for body in $BODIES; do
      for ((round = 1; round <= ROUNDS; round++)); do
        # Alternating spreads slow drift of the machine (thermal, page cache, neighbours) over
        # both servers instead of charging it to whichever ran last.
        run_one "$conns" "$body" ceiling "$round"
        run_one "$conns" "$body" hookhouse "$round"
      done
    done
  done
  print_report
}

main "$@"
