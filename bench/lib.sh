# shellcheck shell=bash
# Helpers shared by the bench/*.sh scripts: tools and build, starting, probing and stopping one
# server, wrk and its BENCH line, the store's counts, the filled stores of bench/inspector.sh and
# bench/journey_answers.sh, and the embedded `sqlite` sink's lag read from `GET /metrics`, and hyperfine's view-to-plain ratio. Sourced, not run; the caller sets `set -euo pipefail`,
# cds to the repo root and then sources this file.
#
# It installs an EXIT trap (see cleanup): a caller adds its own temporary files to
# CLEANUP_FILES instead of setting another trap.

TARGET_DIR=${CARGO_TARGET_DIR:-target}
HOOKHOUSE_BIN="$TARGET_DIR/release/hookhouse"
CEILING_BIN="$TARGET_DIR/release/examples/ceiling"
THREADS=${THREADS:-2}
BODIES=${BODIES:-realistic mixed}
READY_TIMEOUT_S=30
STOP_TIMEOUT_S=60
# How long the sink may take to load what the load left behind before the run fails.
CATCHUP_TIMEOUT_S=${CATCHUP_TIMEOUT_S:-300}
# The sink whose lag is measured: the embedded tables in hookhouse.db.
LAG_SINK=sqlite
LAG_SAMPLE_S=0.2

SERVER_PID=""
SAMPLER_PID=""
DATA_DIR=""
LOG_DIR=""
CLEANUP_FILES=()
# Further processes a caller starts (bench/jetstream.sh: NATS servers, receivers, loaders):
# `spawned PID` adds one, `reaped PID` takes it off once waited for, so that cleanup never
# signals a reused pid. Killed with SIGKILL if still running when the script ends.
CLEANUP_PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Never leave a server or a sampler running, whichever way the script ends. Server logs and the
# data dir of a failed run are kept, since that is when someone will read them; otherwise they
# go.
cleanup() {
  local status=$?
  stop_lag_sampler
  local pid
  for pid in "${CLEANUP_PIDS[@]}"; do
    is_running "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -n $SERVER_PID ]] && is_running "$SERVER_PID"; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if ((status == 0)); then
    rm -rf "$LOG_DIR" "$DATA_DIR"
  elif [[ -n $LOG_DIR$DATA_DIR ]]; then
    echo "kept for inspection:${LOG_DIR:+ logs $LOG_DIR}${LOG_DIR:+${DATA_DIR:+,}}${DATA_DIR:+ data dir $DATA_DIR}" >&2
  fi
  ((${#CLEANUP_FILES[@]} == 0)) || rm -f "${CLEANUP_FILES[@]}"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap runs with a failing status.
trap 'exit 130' INT
trap 'exit 143' TERM

spawned() { CLEANUP_PIDS+=("$1"); }
reaped() {
  local pid kept=()
  for pid in "${CLEANUP_PIDS[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
  CLEANUP_PIDS=(${kept[@]+"${kept[@]}"})
}

# --- setup ------------------------------------------------------------------------------------

ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update
    apt-get install -y "${missing[@]}"
  fi
  command -v python3 >/dev/null || die "python3 is needed for the arithmetic"
}

# build [--with-ceiling]: the release server, and the ceiling example when asked. Building an
# example brings in the dev-dependencies, whose features cargo then unifies into the server's
# build too, so the two give slightly different `hookhouse` binaries (run.sh has always measured
# the one built with the ceiling). Both stay in the target dir: switching is a re-link.
build() {
  local args=(--bin hookhouse)
  [[ ${1:-} == --with-ceiling ]] && args+=(--example ceiling)
  log "building release binaries: cargo build --release ${args[*]}"
  cargo build --release "${args[@]}"
  [[ -x $HOOKHOUSE_BIN ]] || die "no binary at $HOOKHOUSE_BIN"
  [[ ${1:-} != --with-ceiling || -x $CEILING_BIN ]] || die "no binary at $CEILING_BIN"
}

# body_script NAME: the wrk script that sends the bodies BODIES names.
body_script() {
  case $1 in
    realistic) echo bench/unique_body.lua ;;
    mixed) echo bench/mixed_body.lua ;;
    *) die "unknown body \`$1\` in BODIES (known: realistic, mixed)" ;;
  esac
}

check_bodies() {
  local body
  [[ -n ${BODIES// /} ]] || die "BODIES is empty"
  for body in $BODIES; do body_script "$body" >/dev/null; done
}

# --- one server -------------------------------------------------------------------------------

# Ask the kernel for a free loopback port. Another process could take it before the server
# binds, but on a quiet benchmark machine that race does not happen in practice.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# `kill -0` succeeds on a zombie, so look at the process state instead: an exited child stays a
# zombie until we `wait` for it.
is_running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z ]]
}

# start_server ROLE PORT: sets SERVER_PID (and DATA_DIR for hookhouse). Logs go to LOG_DIR.
start_server() {
  local role=$1 port=$2
  case $role in
    ceiling)
      "$CEILING_BIN" "127.0.0.1:$port" >"$LOG_DIR/$role-$port.log" 2>&1 &
      ;;
    hookhouse)
      # A fresh store every run, so the row counts belong to this run alone.
      DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-bench-data.XXXXXX")
      "$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$DATA_DIR" \
        >"$LOG_DIR/$role-$port.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
}

# The ceiling has no health route; a small valid POST proves it parses and answers.
probe() {
  local role=$1 port=$2
  case $role in
    ceiling)
      curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data '{}' \
        "http://127.0.0.1:$port/iterable/default"
      ;;
    hookhouse) curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" ;;
  esac
}

wait_ready() {
  local role=$1 port=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
  until probe "$role" "$port" 2>/dev/null; do
    is_running "$SERVER_PID" || die "$role exited before answering; log: $LOG_DIR/$role-$port.log"
    ((SECONDS < deadline)) || die "$role not ready after ${READY_TIMEOUT_S}s on port $port"
    sleep 0.1
  done
}

# Peak resident set size in kB, read before stopping: after exit /proc has nothing left.
peak_rss_kb() {
  awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# SIGTERM then wait: hookhouse finishes its commits before exiting 0, so a non-zero exit or a
# hang here is a shutdown bug worth failing the benchmark for.
stop_server() {
  local role=$1 deadline=$((SECONDS + STOP_TIMEOUT_S)) status=0
  kill -TERM "$SERVER_PID"
  while is_running "$SERVER_PID"; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$SERVER_PID"
      die "$role did not stop within ${STOP_TIMEOUT_S}s of SIGTERM"
    fi
    sleep 0.1
  done
  wait "$SERVER_PID" || status=$?
  SERVER_PID=""
  ((status == 0)) || die "$role exited with status $status after SIGTERM"
}

# --- wrk --------------------------------------------------------------------------------------

# wrk_command CONNS DURATION SCRIPT PORT: fills the WRK_CMD array, kept global so a report can
# print exactly what was run.
WRK_CMD=()
wrk_command() {
  WRK_CMD=(wrk "-t$THREADS" "-c$1" "-d$2" --latency -s "$3" "http://127.0.0.1:$4/iterable/default")
}

# run_wrk: runs WRK_CMD, echoes its BENCH line to stderr and prints it.
run_wrk() {
  local out line
  out=$("${WRK_CMD[@]}") || die "wrk failed: ${WRK_CMD[*]}"
  line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk:"$'\n'"$out"
  echo "    $line" >&2
  echo "$line"
}

# bench_field LINE NAME: the value of NAME=... on the BENCH line printed by unique_body.lua.
bench_field() {
  tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'
}

# socket_errors LINE: connect + read + write + timeout errors on a BENCH line.
socket_errors() {
  echo $(($(bench_field "$1" errors_connect) + $(bench_field "$1" errors_read) \
    + $(bench_field "$1" errors_write) + $(bench_field "$1" errors_timeout)))
}

# --- the store --------------------------------------------------------------------------------

# sql QUERY: one query on this run's store, waiting out a checkpoint's brief lock if it meets one.
sql() {
  sqlite3 -cmd '.timeout 10000' "$DATA_DIR/hookhouse.db" "$1"
}

stored_rows() {
  sql 'select count(*) from raw_requests'
}

# raw_requests only grows and its seq is AUTOINCREMENT from 1, so max(seq) is its row count,
# read from the end of the primary key; count(*) reads every page, ~10 GB at 10 million rows.
stored_requests_fast() {
  sql 'select coalesce(max(seq), 0) from raw_requests'
}

# check_events_match: after catch-up every stored request must be one row in `events` (each
# body carries one event). Both counted in one read transaction; a request committed after the
# sink's gauge was read (wrk closes connections mid-request) gets a few seconds to be loaded
# before a difference fails the run. Prints the count.
check_events_match() {
  local deadline=$((SECONDS + 10)) requests events
  while :; do
    read -r requests events < <(sql 'begin; select (select count(*) from raw_requests) || " " ||
      (select count(*) from events); commit;') || die "cannot count rows in $DATA_DIR/hookhouse.db"
    ((requests == events)) && break
    ((SECONDS < deadline)) ||
      die "after catch-up the store has $requests requests but $events events (one each expected)"
    sleep 0.2
  done
  echo "$requests"
}

# --- filled stores (bench/inspector.sh, bench/journey_answers.sh) -----------------------------

# fill_store N DIR: a store of N requests in DIR, filled by bench/inspector_fill.sql (one event
# per request from 500,000 people over 24 hours), or reused when DIR holds one already: its
# requests 1..N, and after them nothing but the journey calls a benchmark stored, which are
# removed first (see trim_store). A newer hookhouse upgrades its schema when it opens it.
fill_store() {
  local n=$1 dir=$2 port
  if [[ -f $dir/hookhouse.db ]] && [[ $(sqlite3 -cmd '.timeout 10000' "$dir/hookhouse.db" \
    "SELECT (SELECT count(*) FROM raw_requests WHERE seq = $n) || ' ' ||
       (SELECT count(*) FROM raw_requests WHERE seq > $n AND coalesce(kind, '') != 'journey')") == "1 0" ]]; then
    trim_store "$n" "$dir"
    log "reusing the store of $n requests in $dir"
    return
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  port=$(free_port)
  "$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" >"$LOG_DIR/create-$n.log" 2>&1 &
  SERVER_PID=$!
  wait_ready hookhouse "$port"
  stop_server hookhouse
  log "filling a store with $n requests (sqlite3 bench/inspector_fill.sql)"
  local started=$SECONDS
  sed "s/__N__/$n/g" bench/inspector_fill.sql | sqlite3 "$dir/hookhouse.db"
  log "filled in $((SECONDS - started)) s: $(du -sh "$dir" | cut -f1)"
}

# trim_store N DIR: removes the requests stored after the fill's N (bench/journey_answers.sh's
# journey calls: their raw requests, journey_calls rows and anything else they made) and moves
# the sequence and the embedded sink's cursor back to N, so that the store is the fill again.
# The server must be stopped.
trim_store() {
  local n=$1 dir=$2 removed
  removed=$(sqlite3 -cmd '.timeout 10000' "$dir/hookhouse.db" "BEGIN IMMEDIATE;
    DELETE FROM journey_calls WHERE seq > $n;
    DELETE FROM failed_events WHERE raw_seq > $n;
    DELETE FROM events WHERE raw_seq > $n;
    DELETE FROM raw_requests WHERE seq > $n;
    SELECT changes();
    UPDATE sqlite_sequence SET seq = $n WHERE name = 'raw_requests' AND seq > $n;
    UPDATE sink_cursors SET position = $n WHERE position > $n;
    COMMIT;
    PRAGMA wal_checkpoint(TRUNCATE);" | sed -n 1p) ||
    die "cannot remove the requests stored after the fill's $n from $dir/hookhouse.db"
  ((removed == 0)) || log "removed the $removed requests stored after the fill's $n from $dir"
}

# --- the sqlite sink's lag, from /metrics -----------------------------------------------------

# sink_metric PORT NAME: the value of NAME{sink="sqlite"} on /metrics, or nothing when the
# server does not export it (builds before the embedded sink loaded behind a cursor).
sink_metric() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v name="$2" -v sink="sink=\"$LAG_SINK\"" \
      'index($1, name "{") == 1 && index($1, sink) { value = $2 } END { print value }' || true
}

# start_lag_sampler PORT FILE: appends hookhouse_sink_lag_seconds{sink="sqlite"} to FILE every
# LAG_SAMPLE_S until stop_lag_sampler; a sample without the metric writes nothing.
start_lag_sampler() {
  local port=$1 file=$2
  : >"$file"
  (
    trap - EXIT INT TERM
    while :; do
      sink_metric "$port" hookhouse_sink_lag_seconds >>"$file"
      sleep "$LAG_SAMPLE_S"
    done
  ) &
  SAMPLER_PID=$!
}

stop_lag_sampler() {
  [[ -n $SAMPLER_PID ]] || return 0
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
}

# max_lag FILE: the largest sampled lag in seconds, or n/a when no sample had the metric.
max_lag() {
  awk 'NF { n++; if (n == 1 || $1 + 0 > max) max = $1 + 0 }
       END { if (n) printf "%.2f\n", max; else print "n/a" }' "$1"
}

# wait_catchup PORT: seconds from now until hookhouse_sink_lag_requests{sink="sqlite"} reads 0
# (polled every 0.1 s), or n/a when the server does not export it. Fails past
# CATCHUP_TIMEOUT_S.
wait_catchup() {
  local port=$1 start=$EPOCHREALTIME deadline=$((SECONDS + CATCHUP_TIMEOUT_S)) value
  while :; do
    value=$(sink_metric "$port" hookhouse_sink_lag_requests)
    if [[ -z $value ]]; then
      echo n/a
      return
    fi
    awk -v v="$value" 'BEGIN { exit !(v + 0 == 0) }' && break
    ((SECONDS < deadline)) ||
      die "the $LAG_SINK sink still had $value requests to load ${CATCHUP_TIMEOUT_S}s after the load"
    sleep 0.1
  done
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }'
}

# --- hyperfine --------------------------------------------------------------------------------

# view_ratio JSON NAME: "NAME view_s plain_s ratio" from a hyperfine export of two commands
# named `view` and `plain` (bench/metric_views.sh, bench/metric_views_postgres.sh).
view_ratio() {
  python3 - "$1" "$2" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
view, plain = results["view"]["mean"], results["plain"]["mean"]
print(f"{sys.argv[2]:<22} {view:12.4f} {plain:12.4f} {view / plain:8.2f}")
PY
}
