#!/usr/bin/env bash
# End-to-end benchmark into PostgreSQL: the ingest benchmark's load (wrk, unique emailOpen bodies,
# bench/unique_body.lua) against hookhouse with the PostgreSQL sink, measuring how many events per
# second reach PostgreSQL and the largest lag (age of the oldest request not yet loaded, sampled
# every 250 ms). The baseline, measured in the same run and alternated with it, is the same load
# against hookhouse without the sink; the ratio shows what loading PostgreSQL costs ingestion.
#
# Usage (from the repo root):  bench/postgres.sh
# Knobs: CONNS=200 ROUNDS=2 DURATION=20s THREADS=2 PG_URL=postgres://postgres@127.0.0.1:5432/test
#        COUNTING_TRIGGERS=off (the campaign counts' triggers disabled once the sink made them)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNS=${CONNS:-200}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=hookhouse_bench
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$TARGET_DIR/release/hookhouse"
WORK=$(mktemp -d /tmp/hookhouse-pg-bench.XXXXXX)
SERVER_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
  [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
command -v psql >/dev/null || die "psql is needed"
pg_isready -q -d "$PG_URL" || die "PostgreSQL at $PG_URL is not answering"
log "building the release binary"
cargo build --release --bin hookhouse

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run MODE ROUND: MODE is `baseline` (no sink) or `postgres`. Prints one result line.
run() {
  local mode=$1 round=$2 port data config
  port=$(free_port)
  data="$WORK/$mode-$round"
  config="$WORK/$mode-$round.toml"
  mkdir -p "$data"
  printf '[server]\nlisten = "127.0.0.1:%s"\n[store]\ndata_dir = "%s"\n' "$port" "$data" >"$config"
  if [[ $mode == postgres ]]; then
    psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" 2>/dev/null
    printf '[sinks.postgres]\nurl = "%s"\nschema = "%s"\n' "$PG_URL" "$SCHEMA" >>"$config"
  fi
  "$BIN" serve --config "$config" >"$WORK/$mode-$round.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
  if [[ $mode == postgres ]]; then
    # The sink creates its tables on connect; wait for them so the sampler can count.
    for _ in $(seq 1 100); do
      psql "$PG_URL" -qtAc "SELECT 1 FROM $SCHEMA.events LIMIT 1" >/dev/null 2>&1 && break
      sleep 0.1
    done
    # COUNTING_TRIGGERS=off: without the triggers that keep the campaign counts, to measure them.
    [[ ${COUNTING_TRIGGERS:-on} == on ]] ||
      psql "$PG_URL" -qc "ALTER TABLE $SCHEMA.events DISABLE TRIGGER USER"
  fi

  local sampler_out="$WORK/$mode-$round.samples"
  if [[ $mode == postgres ]]; then
    python3 bench/pg_lag_sampler.py "$data/hookhouse.db" >"$sampler_out" &
    local sampler=$!
  fi
  local wrk_out
  wrk_out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/unique_body.lua \
    "http://127.0.0.1:$port/iterable/default" | grep '^BENCH')
  local loaded_rate="-" max_lag="-" drain="-"
  if [[ $mode == postgres ]]; then
    # The load is over: how long until PostgreSQL has everything?
    local start=$SECONDS last
    last=$(sqlite3 "$data/hookhouse.db" "SELECT max(seq) FROM raw_requests")
    until [[ $(sqlite3 "$data/hookhouse.db" "SELECT position FROM sink_cursors WHERE sink='postgres'") == "$last" ]]; do
      ((SECONDS - start < 120)) || die "the sink did not catch up within 120 s"
      sleep 0.1
    done
    drain=$((SECONDS - start))
    kill "$sampler" && wait "$sampler" 2>/dev/null || true
    max_lag=$(awk '/^MAXLAG/ {print $2}' "$sampler_out")
    loaded_rate=$(awk '/^RATE/ {print $2}' "$sampler_out")
    local in_pg in_spool
    in_pg=$(psql "$PG_URL" -qtAc "SELECT count(*) FROM $SCHEMA.events")
    in_spool=$(sqlite3 "$data/hookhouse.db" "SELECT count(*) FROM events")
    [[ $in_pg == "$in_spool" ]] || die "PostgreSQL has $in_pg events, the spool $in_spool"
  fi
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  echo "$mode round=$round $wrk_out loaded_events_per_s=$loaded_rate max_lag_s=$max_lag drain_s=$drain"
}

results=()
for round in $(seq 1 "$ROUNDS"); do
  for mode in baseline postgres; do
    log "round $round: $mode, $CONNS connections, $DURATION"
    results+=("$(run "$mode" "$round")")
    printf '%s\n' "${results[-1]}" >&2
  done
done

python3 - "${results[@]}" <<'EOF'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", line), mode=line.split()[0]) for line in sys.argv[1:]]
base = [float(r["rps"]) for r in rows if r["mode"] == "baseline"]
pg = [r for r in rows if r["mode"] == "postgres"]
ingest = [float(r["rps"]) for r in pg]
loaded = [float(r["loaded_events_per_s"]) for r in pg]
lags = [float(r["max_lag_s"]) for r in pg]
print(f"baseline ingest (no sink):  {statistics.mean(base):9.0f} req/s")
print(f"ingest with PostgreSQL:     {statistics.mean(ingest):9.0f} req/s  = {statistics.mean(ingest)/statistics.mean(base):.2f} of baseline")
print(f"loaded into PostgreSQL:     {statistics.mean(loaded):9.0f} events/s (sustained, during the load)")
print(f"largest lag:                {max(lags):9.2f} s")
print(f"drain after the load:       {max(int(r['drain_s']) for r in pg):9d} s")
print(f"non-2xx:                    {sum(int(r['non2xx']) for r in rows):9d}")
EOF
