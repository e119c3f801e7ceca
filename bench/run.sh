#!/usr/bin/env bash
# Load benchmark for "durable ingest vs ceiling": how close does hookhouse, which writes every
# accepted request to its SQLite spool before answering, come to a no-op JSON receiver
# (bench/ceiling.rs)? Runs wrk against both, alternating, and checks that every 2xx hookhouse
# gave is really in its store.
#
# Usage (from the repo root):  bench/run.sh
# Knobs: CONNS="50 200"  ROUNDS=2  DURATION=10s  THREADS=2  CARGO_TARGET_DIR=...
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNS=${CONNS:-50 200}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
HOOKHOUSE_BIN="$TARGET_DIR/release/hookhouse"
CEILING_BIN="$TARGET_DIR/release/examples/ceiling"
LUA_SCRIPT=bench/unique_body.lua
READY_TIMEOUT_S=30
STOP_TIMEOUT_S=60

# One line per run: conns server round rps p50_ms p99_ms peak_rss_kb requests non2xx
# socket_errors stored. Aggregated into the final table.
RESULTS=$(mktemp /tmp/hookhouse-bench-results.XXXXXX)
SERVER_PID=""
DATA_DIR=""
LOG_DIR=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Never leave a server running, whichever way the script ends. Server logs and the data dir of a
# failed run are kept, since that is when someone will read them; otherwise they go.
cleanup() {
  local status=$?
  if [[ -n $SERVER_PID ]] && is_running "$SERVER_PID"; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if ((status == 0)); then
    rm -rf "$LOG_DIR" "$DATA_DIR"
  else
    echo "kept for inspection: logs $LOG_DIR${DATA_DIR:+, data dir $DATA_DIR}" >&2
  fi
  rm -f "$RESULTS"
}
trap cleanup EXIT

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

build() {
  log "building release binaries"
  cargo build --release --bin hookhouse --example ceiling
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

# start_server ROLE PORT: sets SERVER_PID (and DATA_DIR for hookhouse).
start_server() {
  local role=$1 port=$2
  case $role in
    ceiling)
      "$CEILING_BIN" "127.0.0.1:$port" >"$LOG_DIR/$role-$port.log" 2>&1 &
      ;;
    hookhouse)
      # A fresh store every run, so the row count below belongs to this run alone.
      DATA_DIR=$(mktemp -d /tmp/hookhouse-bench-data.XXXXXX)
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

# --- measuring --------------------------------------------------------------------------------

# wrk_command CONNS PORT: fills the WRK_CMD array, kept global so the report prints exactly
# what was run.
WRK_CMD=()
wrk_command() {
  WRK_CMD=(wrk "-t$THREADS" "-c$1" "-d$DURATION" --latency -s "$LUA_SCRIPT"
    "http://127.0.0.1:$2/iterable/default")
}

# bench_field LINE NAME: the value of NAME=... on the BENCH line printed by unique_body.lua.
bench_field() {
  tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'
}

stored_rows() {
  sqlite3 "$DATA_DIR/hookhouse.db" 'select count(*) from raw_requests'
}

# run_one CONNS ROLE ROUND: one server, one wrk run, one line appended to $RESULTS.
run_one() {
  local conns=$1 role=$2 round=$3 port out line rss stored=-
  port=$(free_port)
  log "round $round, $conns connections: $role on port $port"
  start_server "$role" "$port"
  wait_ready "$role" "$port"

  wrk_command "$conns" "$port"
  out=$("${WRK_CMD[@]}") || die "wrk failed: ${WRK_CMD[*]}"
  line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk:"$'\n'"$out"
  echo "    $line" >&2

  rss=$(peak_rss_kb "$SERVER_PID")
  stop_server "$role"

  local requests non2xx socket_errors twoxx
  requests=$(bench_field "$line" requests)
  non2xx=$(bench_field "$line" non2xx)
  socket_errors=$(($(bench_field "$line" errors_connect) + $(bench_field "$line" errors_read) \
    + $(bench_field "$line" errors_write) + $(bench_field "$line" errors_timeout)))
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

  echo "$conns $role $round $(bench_field "$line" rps) $(bench_field "$line" p50_ms)" \
    "$(bench_field "$line" p99_ms) $rss $requests $non2xx $socket_errors $stored" >>"$RESULTS"
}

# --- report -----------------------------------------------------------------------------------

# Means over rounds per (conns, server); the ratio is mean hookhouse rps / mean ceiling rps.
print_table() {
  python3 - "$RESULTS" <<'EOF'
import sys
from collections import defaultdict
from statistics import mean

runs = defaultdict(list)
for line in open(sys.argv[1]):
    conns, server, _round, rps, p50, p99, rss, requests, non2xx, sock, _stored = line.split()
    runs[(int(conns), server)].append(
        dict(rps=float(rps), p50=float(p50), p99=float(p99), rss=int(rss),
             non2xx=int(non2xx), sock=int(sock)))

print("| conns | server | rounds | rps (mean) | p50 ms | p99 ms | peak RSS MiB | hookhouse/ceiling | non-2xx | socket errors |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for conns in sorted({c for c, _ in runs}):
    ceiling = runs.get((conns, "ceiling"))
    ceiling_rps = mean(r["rps"] for r in ceiling) if ceiling else None
    for server in ("ceiling", "hookhouse"):
        rs = runs.get((conns, server))
        if not rs:
            continue
        rps = mean(r["rps"] for r in rs)
        ratio = f"{rps / ceiling_rps:.3f}" if server == "hookhouse" and ceiling_rps else ""
        rss = max(r["rss"] for r in rs) / 1024
        print(f"| {conns} | {server} | {len(rs)} | {rps:,.0f} | {mean(r['p50'] for r in rs):.2f} "
              f"| {mean(r['p99'] for r in rs):.2f} | {rss:.1f} | {ratio} "
              f"| {'/'.join(str(r['non2xx']) for r in rs)} | {'/'.join(str(r['sock']) for r in rs)} |")
EOF
}

print_report() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  echo
  echo "## durable ingest vs ceiling"
  echo
  echo "commit: $commit; machine: $(nproc) cores; wrk $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
  wrk_command '<conns>' '<port>'
  echo "command: ${WRK_CMD[*]}   (conns in: $CONNS)"
  echo "rounds: $ROUNDS per server per connection count, alternating ceiling/hookhouse;" \
    "rps, p50 and p99 are means over rounds, peak RSS (VmHWM) the max; non-2xx per round"
  echo
  print_table
}

main() {
  ensure_tools
  build
  [[ -x $HOOKHOUSE_BIN ]] || die "no binary at $HOOKHOUSE_BIN"
  [[ -x $CEILING_BIN ]] || die "no binary at $CEILING_BIN"
  LOG_DIR=$(mktemp -d /tmp/hookhouse-bench-logs.XXXXXX)
  log "server logs in $LOG_DIR"

  local conns round
  for conns in $CONNS; do
    for ((round = 1; round <= ROUNDS; round++)); do
      # Alternating spreads slow drift of the machine (thermal, page cache, neighbours) over
      # both servers instead of charging it to whichever ran last.
      run_one "$conns" ceiling "$round"
      run_one "$conns" hookhouse "$round"
    done
  done
  print_report
}

main "$@"
