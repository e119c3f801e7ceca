#!/usr/bin/env bash
# Many hookhouses on JetStream: the ingest benchmark's load (wrk, realistic unique emailOpen
# bodies, bench/unique_body.lua) against receivers that publish every request to a NATS
# JetStream stream and answer 2xx after its ack, and the stream loaded into PostgreSQL by
# `hookhouse load` processes. Everything runs on this one machine: the NATS servers, the
# receivers, the loaders, PostgreSQL and wrk share its cores and its disk, so every figure is
# a ratio against the `ceiling` example (bench/ceiling.rs, a no-op JSON receiver) measured in
# the same run, before and after the rest.
#
# Measurements, each CONNS connections for DURATION, each on a fresh set of nats-servers:
#   ceiling      the ceiling example (first and last; the baseline is their mean)
#   js1          `serve --no-load` on one nats-server, stream replicas = 1
#   js3          `serve --no-load` on a 3-node cluster on loopback, replicas = 3
#   js3-sync     the same with `jetstream { sync_interval: always }` on every node: each
#                publish ack waits for an fsync (the default syncs every 2 minutes)
#   e2e          3-node cluster (replicas = 3, default sync), one `serve --no-load` and
#                LOADERS `hookhouse load` processes sharing the durable consumer, loading
#                [sinks.postgres] into a fresh schema
# For every receiver run it checks that the stream holds at least as many requests as were
# answered 2xx; for e2e, that PostgreSQL ends with one `events` row per request in the stream.
#
# e2e reports: events/s loaded during the load (the loaders' hookhouse_sink_loaded_events_total
# summed, read when wrk starts and ends) and over the whole run until caught up; the sink lag
# (hookhouse_sink_lag_seconds{sink="postgres"} of each loader, read every SAMPLE_S; the loaders
# refresh that gauge once a second), max and p95/p99 of the samples taken while wrk ran; and
# catch-up, the seconds from wrk's end until `<schema>.events` holds every request of the stream.
#
# CPU: for each measurement, the cores each group of processes used while wrk ran (utime+stime
# from /proc), and the whole machine's busy and iowait share from /proc/stat (anything else
# running on the machine included); what is left of the busy share is mostly wrk.
#
# Usage (from the repo root):  bench/jetstream.sh
# Knobs: CONNS=200 DURATION=20s THREADS=2 LOADERS=2 CASES="ceiling js1 js3 js3-sync e2e"
#        NATS_SERVER=/var/tmp/hookhouse-ci-venv/bin/nats-server (>= 2.10; not Debian's 2.9)
#        PG_URL=postgres://postgres@127.0.0.1:5432/test SCHEMA=hookhouse_js_bench
#        MAX_BYTES=4294967296 (the stream's max_bytes, reserved on create) SAMPLE_S=0.25
#        BATCH_SIZE= ([sinks.postgres] batch_size; unset: hookhouse's default, 1000 from a JetStream log)
#        CATCHUP_TIMEOUT_S=300 CARGO_TARGET_DIR=...
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

CONNS=${CONNS:-200}
DURATION=${DURATION:-20s}
LOADERS=${LOADERS:-2}
CASES=${CASES:-ceiling js1 js3 js3-sync e2e drain}
NATS_SERVER=${NATS_SERVER:-/var/tmp/hookhouse-ci-venv/bin/nats-server}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=${SCHEMA:-hookhouse_js_bench}
MAX_BYTES=${MAX_BYTES:-4294967296}
SAMPLE_S=${SAMPLE_S:-0.25}
# [sinks.postgres] batch_size; empty: hookhouse's default (1000 from a JetStream log).
BATCH_SIZE=${BATCH_SIZE:-}
STREAM=HOOKHOUSE_BENCH
BODY_SCRIPT=$(body_script realistic)
LAG_SINK=postgres
CLK_TCK=$(getconf CLK_TCK)

# One line per measurement, `key=value ...`, aggregated into the final table.
RESULTS=$(mktemp /tmp/hookhouse-js-bench-results.XXXXXX)
CLEANUP_FILES+=("$RESULTS")

# --- processes --------------------------------------------------------------------------------

# free_ports N: N distinct free loopback ports, all held until the last is picked.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
}

# stop_pid NAME PID: SIGTERM, wait, fail on a non-zero exit or a hang (as stop_server does).
stop_pid() {
  local name=$1 pid=$2 deadline=$((SECONDS + STOP_TIMEOUT_S)) status=0
  kill -TERM "$pid" 2>/dev/null || true
  while is_running "$pid"; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$pid"
      die "$name did not stop within ${STOP_TIMEOUT_S}s of SIGTERM"
    fi
    sleep 0.1
  done
  wait "$pid" || status=$?
  reaped "$pid"
  ((status == 0)) || die "$name exited with status $status after SIGTERM; log in $LOG_DIR"
}

# wait_http NAME PID URL: until URL answers 2xx, failing if the process exits first.
wait_http() {
  local name=$1 pid=$2 url=$3 deadline=$((SECONDS + READY_TIMEOUT_S))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    is_running "$pid" || die "$name exited before answering $url; logs in $LOG_DIR"
    ((SECONDS < deadline)) || die "$name did not answer $url within ${READY_TIMEOUT_S}s"
    sleep 0.1
  done
}

# --- NATS -------------------------------------------------------------------------------------

NATS_PIDS=()
NATS_HTTP=()
NATS_URLS=()
NATS_DIR=""

# start_nats NODES SYNC TAG: NODES nats-servers (1, or a cluster of 3 on loopback, as
# tests/nats/mod.rs starts them), with `sync_interval: always` when SYNC is 1, in a fresh
# directory; waits until every node is healthy and, for a cluster, all name one meta leader.
start_nats() {
  local nodes=$1 sync=$2 tag=$3 i routes="" ports conf
  NATS_DIR="$DATA_DIR/nats-$tag"
  mkdir -p "$NATS_DIR"
  read -r -a ports <<<"$(free_ports $((3 * nodes)))"
  for ((i = 0; i < nodes; i++)); do
    routes+="${routes:+, }nats-route://127.0.0.1:${ports[3 * i + 2]}"
  done
  NATS_PIDS=() NATS_HTTP=() NATS_URLS=()
  for ((i = 0; i < nodes; i++)); do
    conf="$NATS_DIR/n$i.conf"
    {
      echo "server_name: n$i"
      echo "listen: \"127.0.0.1:${ports[3 * i]}\""
      echo "http: \"127.0.0.1:${ports[3 * i + 1]}\""
      echo "max_payload: 2MB"
      echo "jetstream {"
      echo "  store_dir: \"$NATS_DIR/n$i-store\""
      ((sync)) && echo "  sync_interval: always"
      echo "}"
      if ((nodes > 1)); then
        echo "cluster {"
        echo "  name: hookhouse-bench"
        echo "  listen: \"127.0.0.1:${ports[3 * i + 2]}\""
        echo "  routes: [$routes]"
        echo "}"
      fi
    } >"$conf"
    "$NATS_SERVER" --config "$conf" >"$LOG_DIR/nats-$tag-n$i.log" 2>&1 &
    NATS_PIDS+=($!)
    spawned $!
    NATS_HTTP+=("${ports[3 * i + 1]}")
    NATS_URLS+=("nats://127.0.0.1:${ports[3 * i]}")
  done
  local deadline=$((SECONDS + READY_TIMEOUT_S)) started=$EPOCHREALTIME
  until nats_ready; do
    for i in "${!NATS_PIDS[@]}"; do
      is_running "${NATS_PIDS[i]}" || die "nats-server n$i exited; log: $LOG_DIR/nats-$tag-n$i.log"
    done
    ((SECONDS < deadline)) || die "nats-servers ($tag) not ready within ${READY_TIMEOUT_S}s"
    sleep 0.2
  done
  log "nats ($tag): $nodes node(s) ready in $(elapsed "$started")s"
}

nats_ready() {
  local port leaders=()
  for port in "${NATS_HTTP[@]}"; do
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null || return 1
  done
  ((${#NATS_HTTP[@]} > 1)) || return 0
  for port in "${NATS_HTTP[@]}"; do
    leaders+=("$(curl -fsS --max-time 2 "http://127.0.0.1:$port/jsz" 2>/dev/null |
      python3 -c 'import json, sys; print(json.load(sys.stdin).get("meta_cluster", {}).get("leader", ""))' \
        2>/dev/null)")
  done
  [[ -n ${leaders[0]} ]] || return 1
  for port in "${leaders[@]}"; do [[ $port == "${leaders[0]}" ]] || return 1; done
}

stop_nats() {
  local i
  for i in "${!NATS_PIDS[@]}"; do stop_pid "nats-server n$i" "${NATS_PIDS[i]}"; done
  NATS_PIDS=() NATS_HTTP=() NATS_URLS=()
  rm -rf "$NATS_DIR"
}

# --- hookhouse --------------------------------------------------------------------------------

# write_config FILE REPLICAS WITH_PG: the JetStream spool on NATS_URLS, and the PostgreSQL
# sink (default batch_size) when WITH_PG is 1.
write_config() {
  local file=$1 replicas=$2 with_pg=$3 servers="" url
  for url in "${NATS_URLS[@]}"; do servers+="${servers:+, }\"$url\""; done
  {
    echo '[spool]'
    echo 'kind = "jetstream"'
    echo '[spool.jetstream]'
    echo "servers = [$servers]"
    echo "stream = \"$STREAM\""
    echo "replicas = $replicas"
    echo "max_bytes = $MAX_BYTES"
    if ((with_pg)); then
      echo '[sinks.postgres]'
      echo "url = \"$PG_URL\""
      echo "schema = \"$SCHEMA\""
      [[ -z $BATCH_SIZE ]] || echo "batch_size = $BATCH_SIZE"
    fi
  } >"$file"
}

# start_hookhouse NAME ROLE CONFIG PORT [ARGS...]: sets STARTED_PID (not printed: a process
# started in a command substitution is not this shell's child, and could not be waited for).
STARTED_PID=""
start_hookhouse() {
  local name=$1 role=$2 config=$3 port=$4
  shift 4
  "$HOOKHOUSE_BIN" "$role" --config "$config" --listen "127.0.0.1:$port" \
    --data-dir "$DATA_DIR/$name" "$@" >"$LOG_DIR/$name.log" 2>&1 &
  STARTED_PID=$!
  spawned "$STARTED_PID"
}

# stream_messages CONFIG: requests in the stream, from `hookhouse status --json`.
stream_messages() {
  "$HOOKHOUSE_BIN" status --config "$1" --json 2>>"$LOG_DIR/status.log" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"])'
}

pg() { psql "$PG_URL" -qtAX -v ON_ERROR_STOP=1 -c "$1"; }

# loaded_total PORT...: hookhouse_sink_loaded_events_total{sink="postgres"} summed.
loaded_total() {
  local port sum=0 value
  for port; do
    value=$(sink_metric "$port" hookhouse_sink_loaded_events_total)
    sum=$((sum + ${value:-0}))
  done
  echo "$sum"
}

# staged_rows: `events` rows the loaders' sessions put through their staging table (the merge
# path of a batch that starts before the progress mark another loader already moved past),
# from PostgreSQL's statistics of the session-local tables; read while the loaders are still
# connected, a second after their last commit (backends report statistics when idle, at most
# once a second).
staged_rows() {
  sleep 1.2
  pg "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_all_tables WHERE relname = 'hookhouse_stage_events'"
}

# --- CPU --------------------------------------------------------------------------------------

# cpu_snapshot FILE GROUP=PID... ...: `group pid ticks` per process (utime + stime), then
# `machine - busy iowait total` from /proc/stat's first line.
cpu_snapshot() {
  local file=$1 spec group pid
  shift
  : >"$file"
  for spec; do
    group=${spec%%=*}
    for pid in ${spec#*=}; do
      [[ -r /proc/$pid/stat ]] || continue
      sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null |
        awk -v g="$group" -v p="$pid" '{ print g, p, $12 + $13 }' >>"$file" || true
    done
  done
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i;
                     print "machine -", t - $5 - $6, $6, t }' /proc/stat >>"$file"
}

# cpu_report BEFORE AFTER SECONDS: `group=cores ...` for the processes of both snapshots
# (a process that exited in between is not counted), and machine busy/iowait in cores.
cpu_report() {
  awk -v s="$3" -v hz="$CLK_TCK" -v cores="$(nproc)" '
    FNR == NR { if ($1 == "machine") { b0 = $3; w0 = $4; t0 = $5 } else before[$1 " " $2] = $3; next }
    $1 == "machine" { b1 = $3; w1 = $4; t1 = $5; next }
    { key = $1 " " $2; start = (key in before) ? before[key] : 0; used[$1] += $3 - start
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
      for (i = 1; i <= n; i++) printf "cpu_%s=%.2f ", order[i], used[order[i]] / hz / s
      printf "cpu_machine_busy=%.2f cpu_machine_iowait=%.2f\n",
        (b1 - b0) / (t1 - t0) * cores, (w1 - w0) / (t1 - t0) * cores
    }' "$1" "$2"
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

postgres_pids() { pgrep -d ' ' -x postgres || true; }

# --- measurements -----------------------------------------------------------------------------

# wrk_measured CASE PORT GROUPS...: runs wrk against PORT with CPU snapshots around it; prints
# `rps=... p50_ms=... ... cpu_...` (the BENCH line's fields plus the CPU report).
wrk_measured() {
  local case=$1 port=$2 line start seconds
  shift 2
  wrk_command "$CONNS" "$DURATION" "$BODY_SCRIPT" "$port"
  cpu_snapshot "$LOG_DIR/cpu-$case.before" "$@"
  start=$EPOCHREALTIME
  line=$(run_wrk)
  seconds=$(elapsed "$start")
  cpu_snapshot "$LOG_DIR/cpu-$case.after" "$@"
  echo "${line#BENCH } $(cpu_report "$LOG_DIR/cpu-$case.before" "$LOG_DIR/cpu-$case.after" "$seconds")"
}

record() {
  echo "BENCH case=$*" >&2
  echo "case=$*" >>"$RESULTS"
}

run_ceiling() {
  local round=$1 port fields
  port=$(free_port)
  log "ceiling ($round) on port $port, $CONNS connections, $DURATION"
  start_server ceiling "$port"
  wait_ready ceiling "$port"
  fields=$(wrk_measured "ceiling-$round" "$port" "ceiling=$SERVER_PID")
  stop_server ceiling
  record "ceiling round=$round $fields"
}

# run_ingest CASE NODES REPLICAS SYNC: one receiver, no sinks.
run_ingest() {
  local case=$1 nodes=$2 replicas=$3 sync=$4 port config pid fields twoxx stored
  log "$case: serve --no-load on $nodes nats node(s), replicas=$replicas, sync_interval" \
    "$( ((sync)) && echo always || echo default), $CONNS connections, $DURATION"
  start_nats "$nodes" "$sync" "$case"
  config="$DATA_DIR/$case.toml"
  write_config "$config" "$replicas" 0
  port=$(free_port)
  start_hookhouse "receiver-$case" serve "$config" "$port" --no-load
  pid=$STARTED_PID
  wait_http receiver "$pid" "http://127.0.0.1:$port/readyz"
  fields=$(wrk_measured "$case" "$port" "receiver=$pid" "nats=${NATS_PIDS[*]}")
  stop_pid receiver "$pid"
  stored=$(stream_messages "$config") || die "cannot read the stream's state ($case)"
  twoxx=$(($(field "$fields" requests) - $(field "$fields" non2xx)))
  ((twoxx > 0)) || die "$case: no request answered 2xx"
  ((stored >= twoxx)) || die "$case lost acknowledged requests: 2xx=$twoxx in the stream=$stored"
  echo "    2xx answered=$twoxx in the stream=$stored" >&2
  stop_nats
  record "$case nodes=$nodes replicas=$replicas sync=$sync $fields stored=$stored"
}

field() { bench_field "$1" "$2"; }

# start_loaders CONFIG: LOADERS `hookhouse load` processes (LOADER_PIDS, LOADER_PORTS), ready
# and with the schema's tables created.
LOADER_PIDS=()
LOADER_PORTS=()
start_loaders() {
  local config=$1 i lport
  LOADER_PIDS=() LOADER_PORTS=()
  for ((i = 1; i <= LOADERS; i++)); do
    lport=$(free_port)
    start_hookhouse "loader-$i" load "$config" "$lport"
    LOADER_PORTS+=("$lport")
    LOADER_PIDS+=("$STARTED_PID")
  done
  for i in "${!LOADER_PIDS[@]}"; do
    wait_http "loader $((i + 1))" "${LOADER_PIDS[i]}" "http://127.0.0.1:${LOADER_PORTS[i]}/readyz"
  done
  # The sink creates its tables when it connects.
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until pg "SELECT 1 FROM $SCHEMA.events LIMIT 1" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "no $SCHEMA.events within ${READY_TIMEOUT_S}s of the loaders' start"
    sleep 0.2
  done
}

# run_drain: the loaders alone, on a backlog. A receiver fills the stream (3 nodes, replicas =
# 3) for DURATION with no loader running; then LOADERS loaders start on a fresh schema and the
# drain rate is the backlog over the time from their start until PostgreSQL holds all of it
# (their connect and first pull included). What they can load when they do not share the
# cores with the receiver and wrk.
run_drain() {
  local case=drain config port pid fields stored rows start seconds i
  log "$case: fill the stream for $DURATION (3 nats nodes, replicas=3, no loader), then" \
    "$LOADERS x load into PostgreSQL schema $SCHEMA"
  pg "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
  start_nats 3 0 "$case"
  config="$DATA_DIR/$case.toml"
  write_config "$config" 3 1
  port=$(free_port)
  start_hookhouse "receiver-$case" serve "$config" "$port" --no-load
  pid=$STARTED_PID
  wait_http receiver "$pid" "http://127.0.0.1:$port/readyz"
  fields=$(wrk_measured "$case-fill" "$port" "receiver=$pid" "nats=${NATS_PIDS[*]}")
  stop_pid receiver "$pid"
  stored=$(stream_messages "$config") || die "cannot read the stream's state"
  echo "    backlog: $stored requests in the stream" >&2

  cpu_snapshot "$LOG_DIR/cpu-$case.before" "nats=${NATS_PIDS[*]}" "postgres=$(postgres_pids)"
  start=$EPOCHREALTIME
  start_loaders "$config"
  local deadline=$((SECONDS + CATCHUP_TIMEOUT_S))
  while :; do
    rows=$(pg "SELECT count(*) FROM $SCHEMA.events")
    ((rows >= stored)) && break
    ((SECONDS < deadline)) ||
      die "PostgreSQL has $rows events of $stored ${CATCHUP_TIMEOUT_S}s after the loaders started"
    sleep 0.2
  done
  seconds=$(elapsed "$start")
  # The loaders started after the first snapshot: all their CPU time is this drain's.
  cpu_snapshot "$LOG_DIR/cpu-$case.after" "nats=${NATS_PIDS[*]}" "loaders=${LOADER_PIDS[*]}" \
    "postgres=$(postgres_pids)"
  local cpu staged
  cpu=$(cpu_report "$LOG_DIR/cpu-$case.before" "$LOG_DIR/cpu-$case.after" "$seconds")
  staged=$(staged_rows)
  for i in "${!LOADER_PIDS[@]}"; do stop_pid "loader $((i + 1))" "${LOADER_PIDS[i]}"; done
  rows=$(pg "SELECT count(*) FROM $SCHEMA.events")
  ((rows == stored)) || die "PostgreSQL has $rows events, the stream $stored requests (one each expected)"
  stop_nats
  pg "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
  record "$case loaders=$LOADERS backlog=$stored drain_s=$seconds" \
    "drain_events_per_s=$(awk -v n="$stored" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')" \
    "fill_rps=$(field "$fields" rps) staged_rows=$staged $cpu"
}

# run_e2e: a receiver and LOADERS loaders on a 3-node cluster into a fresh schema.
run_e2e() {
  local case=e2e config port pid loader_ports=() loader_pids=() i lport fields deadline
  log "$case: serve --no-load + $LOADERS x load on 3 nats nodes, replicas=3, PostgreSQL schema" \
    "$SCHEMA, $CONNS connections, $DURATION"
  pg "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
  start_nats 3 0 "$case"
  config="$DATA_DIR/$case.toml"
  write_config "$config" 3 1
  port=$(free_port)
  start_hookhouse "receiver-$case" serve "$config" "$port" --no-load
  pid=$STARTED_PID
  wait_http receiver "$pid" "http://127.0.0.1:$port/readyz"
  start_loaders "$config"
  loader_ports=("${LOADER_PORTS[@]}")
  loader_pids=("${LOADER_PIDS[@]}")
  # The lag sampler: `t lag_seconds lag_requests` per loader per sample.
  local samples="$LOG_DIR/e2e-lag.samples" sampler
  (
    trap - EXIT INT TERM
    while :; do
      for lport in "${loader_ports[@]}"; do
        echo "$EPOCHREALTIME $(sink_metric "$lport" hookhouse_sink_lag_seconds)" \
          "$(sink_metric "$lport" hookhouse_sink_lag_requests)"
      done
      sleep "$SAMPLE_S"
    done
  ) >"$samples" &
  sampler=$!
  spawned "$sampler"

  local rows_before loaded_before loaded_after start stop
  rows_before=$(pg "SELECT count(*) FROM $SCHEMA.events")
  loaded_before=$(loaded_total "${loader_ports[@]}")
  start=$EPOCHREALTIME
  fields=$(wrk_measured "$case" "$port" "receiver=$pid" "nats=${NATS_PIDS[*]}" \
    "loaders=${loader_pids[*]}" "postgres=$(postgres_pids)")
  stop=$EPOCHREALTIME
  loaded_after=$(loaded_total "${loader_ports[@]}")

  # Catch-up: until PostgreSQL holds one event per request in the stream. Requests wrk cut
  # off mid-flight may still be published a moment after it stops, so the stream is read again
  # on every poll.
  local stored rows catchup
  deadline=$((SECONDS + CATCHUP_TIMEOUT_S))
  while :; do
    stored=$(stream_messages "$config") || die "cannot read the stream's state"
    rows=$(pg "SELECT count(*) FROM $SCHEMA.events")
    ((rows >= stored)) && break
    ((SECONDS < deadline)) ||
      die "PostgreSQL has $rows events of $stored requests ${CATCHUP_TIMEOUT_S}s after the load"
    sleep 0.2
  done
  catchup=$(elapsed "$stop")
  local caught_up=$EPOCHREALTIME
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  reaped "$sampler"

  local loaded_end staged
  loaded_end=$(loaded_total "${loader_ports[@]}")
  staged=$(staged_rows)
  stop_pid receiver "$pid"
  for i in "${!loader_pids[@]}"; do stop_pid "loader $((i + 1))" "${loader_pids[i]}"; done
  stored=$(stream_messages "$config") || die "cannot read the stream's state"
  rows=$(pg "SELECT count(*) FROM $SCHEMA.events")
  local twoxx=$(($(field "$fields" requests) - $(field "$fields" non2xx)))
  ((twoxx > 0)) || die "$case: no request answered 2xx"
  ((stored >= twoxx)) || die "$case lost acknowledged requests: 2xx=$twoxx in the stream=$stored"
  ((rows == stored)) || die "PostgreSQL has $rows events, the stream $stored requests (one each expected)"
  echo "    2xx answered=$twoxx in the stream=$stored events in PostgreSQL=$rows" >&2
  stop_nats
  pg "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1

  local lag
  lag=$(python3 - "$samples" "$start" "$stop" <<'EOF'
import sys
path, start, stop = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lags = []
for line in open(path):
    parts = line.split()
    if len(parts) >= 2 and start <= float(parts[0]) <= stop:
        lags.append(float(parts[1]))
lags.sort()
def pct(p):
    return lags[min(len(lags) - 1, int(p / 100 * len(lags)))] if lags else float("nan")
print(f"lag_samples={len(lags)} lag_max_s={lags[-1] if lags else float('nan'):.2f} "
      f"lag_p99_s={pct(99):.2f} lag_p95_s={pct(95):.2f} lag_p50_s={pct(50):.2f}")
EOF
  )
  local during total_s
  during=$(awk -v a="$loaded_before" -v b="$loaded_after" -v s="$start" -v t="$stop" \
    'BEGIN { printf "%.0f", (b - a) / (t - s) }')
  total_s=$(awk -v s="$start" -v t="$caught_up" 'BEGIN { printf "%.2f", t - s }')
  record "$case nodes=3 replicas=3 sync=0 loaders=$LOADERS $fields stored=$stored" \
    "pg_events=$((rows - rows_before)) loaded_during_load_per_s=$during" \
    "loaded_until_caught_up_per_s=$(awk -v n="$((rows - rows_before))" -v s="$total_s" \
      'BEGIN { printf "%.0f", n / s }') loaded_metric_total=$((loaded_end - loaded_before))" \
    "catchup_s=$catchup staged_rows=$staged $lag"
}

# --- report -----------------------------------------------------------------------------------

print_report() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  git diff --quiet HEAD -- src bench 2>/dev/null || commit+=" (with uncommitted changes)"
  echo
  echo "## Many hookhouses on JetStream (bench/jetstream.sh)"
  echo
  echo "ALL ON THIS MACHINE: $(nproc) cores, one disk; the nats-servers, receivers, loaders," \
    "PostgreSQL and wrk share them."
  echo "commit: $commit; $("$NATS_SERVER" --version); $(psql --version | head -1);" \
    "wrk $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
  wrk_command "$CONNS" "$DURATION" "$BODY_SCRIPT" '<port>'
  echo "command: ${WRK_CMD[*]}"
  echo "stream: $STREAM, max_bytes $MAX_BYTES; loaders: $LOADERS, [sinks.postgres]" \
    "(batch_size ${BATCH_SIZE:-1000 (default)}); lag sampled every ${SAMPLE_S}s (gauge refreshed every 1 s)"
  echo "cores: CPU time of each group of processes over wrk's run; machine busy and iowait are" \
    "the whole machine's, other users' work on it included; the rest of busy is mostly wrk"
  echo
  python3 - "$RESULTS" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    fields = dict(part.split("=", 1) for part in line.split())
    rows.append(fields)
ceilings = [float(r["rps"]) for r in rows if r["case"] == "ceiling"]
ceiling = sum(ceilings) / len(ceilings) if ceilings else None
if ceilings:
    print(f"ceiling: {' and '.join(f'{c:,.0f}' for c in ceilings)} rps, baseline (mean) {ceiling:,.0f} rps")
    print()
cpu_groups = ["ceiling", "receiver", "nats", "loaders", "postgres"]
print("| case | rps | /ceiling | p50 ms | p99 ms | non-2xx | socket errors | "
      + " | ".join(f"cores {g}" for g in cpu_groups) + " | cores busy (machine) | iowait |")
print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (len(cpu_groups) + 2))
for r in rows:
    if r["case"] == "drain":
        continue
    rps = float(r["rps"])
    ratio = f"{rps / ceiling:.3f}" if ceiling and r["case"] != "ceiling" else ""
    sock = sum(int(r[k]) for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    name = r["case"] + (f" {r['round']}" if "round" in r else "")
    cpu = " | ".join(r.get(f"cpu_{g}", "") for g in cpu_groups)
    print(f"| {name} | {rps:,.0f} | {ratio} | {float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} "
          f"| {r['non2xx']} | {sock} | {cpu} | {r['cpu_machine_busy']} | {r['cpu_machine_iowait']} |")
e2e = [r for r in rows if r["case"] == "e2e"]
for r in e2e:
    print()
    print(f"e2e into PostgreSQL ({r['loaders']} loaders): {int(r['loaded_during_load_per_s']):,} events/s "
          f"loaded while wrk ran, {int(r['loaded_until_caught_up_per_s']):,} events/s from wrk's start "
          f"until caught up ({int(r['pg_events']):,} events); sink lag during the load: max "
          f"{r['lag_max_s']} s, p99 {r['lag_p99_s']} s, p95 {r['lag_p95_s']} s, median {r['lag_p50_s']} s "
          f"({r['lag_samples']} samples); caught up {r['catchup_s']} s after wrk ended; "
          f"{int(r['staged_rows']):,} of the events went through the staging tables")
for r in rows:
    if r["case"] == "drain":
        cpu = ", ".join(f"{g} {r[f'cpu_{g}']}" for g in ("loaders", "postgres", "nats") if f"cpu_{g}" in r)
        print()
        print(f"drain ({r['loaders']} loaders, no receiver or wrk running): {int(r['backlog']):,} requests "
              f"(filled at {float(r['fill_rps']):,.0f} rps) loaded in {r['drain_s']} s = "
              f"{int(r['drain_events_per_s']):,} events/s ({int(r['staged_rows']):,} events staged); cores: {cpu}, machine busy "
              f"{r['cpu_machine_busy']}, iowait {r['cpu_machine_iowait']}")

print()
print("| target | measured | met |")
print("|---|---|---|")
for r in rows:
    if r["case"] == "js1" and ceiling:
        ratio = float(r["rps"]) / ceiling
        p99 = float(r["p99_ms"])
        print(f"| receiver on one node >= 0.3 of the ceiling | {ratio:.3f} | {'yes' if ratio >= 0.3 else 'no'} |")
        print(f"| ... with p99 <= 30 ms | {p99:.1f} ms | {'yes' if p99 <= 30 else 'no'} |")
for r in e2e:
    rate = int(r["loaded_during_load_per_s"])
    lag = float(r["lag_max_s"])
    print(f"| into PostgreSQL, {r['loaders']} loaders, >= 15,000 events/s | {rate:,} events/s while loading "
          f"({int(r['loaded_until_caught_up_per_s']):,} until caught up) | {'yes' if rate >= 15000 else 'no'} |")
    print(f"| ... with lag <= 2 s | max {lag:.2f} s | {'yes' if lag <= 2 else 'no'} |")
EOF
}

main() {
  ensure_tools
  command -v psql >/dev/null || die "psql is needed"
  pg_isready -q -d "$PG_URL" || die "PostgreSQL at $PG_URL is not answering"
  [[ -x $NATS_SERVER ]] || die "no nats-server at $NATS_SERVER (NATS_SERVER=...; >= 2.10)"
  "$NATS_SERVER" --version | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])\.' ||
    die "$NATS_SERVER is $("$NATS_SERVER" --version); JetStream mode needs >= 2.10"
  build --with-ceiling
  LOG_DIR=$(mktemp -d /tmp/hookhouse-js-bench-logs.XXXXXX)
  DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-js-bench-data.XXXXXX")
  log "all on this machine ($(nproc) cores, one disk); logs in $LOG_DIR"

  local case ceiling_runs=0
  for case in $CASES; do
    case $case in
      ceiling) run_ceiling 1; ceiling_runs=1 ;;
      js1) run_ingest js1 1 1 0 ;;
      js3) run_ingest js3 3 3 0 ;;
      js3-sync) run_ingest js3-sync 3 3 1 ;;
      e2e) run_e2e ;;
      drain) run_drain ;;
      *) die "unknown case \`$case\` in CASES (known: ceiling js1 js3 js3-sync e2e drain)" ;;
    esac
  done
  # The ceiling again at the end: the baseline is the mean of both, so drift of the shared
  # machine during the run is not charged to whichever case ran last.
  ((ceiling_runs == 0)) || run_ceiling 2
  print_report
}

main "$@"
