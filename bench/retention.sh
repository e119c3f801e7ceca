#!/usr/bin/env bash
# What pruning costs ingest: wrk's request rate against `serve` on a store of EVENTS old
# requests, while its pruner removes them (`[retention]` defaults: the store's requests are
# 100 days old, past raw_requests_days = 90, and every sink has loaded them), against the same
# store and binary with every table kept forever (no pruning), in the same run, rounds
# alternating. Also reports how much the pruner removed during the round and its longest step
# (the time it held the write lock), from /metrics. Two pruning variants: `prune` empties
# bodies (the first phase of a pass over that store), `delete` removes whole rows (the same
# store with its bodies already emptied, as the next phase finds it).
#
#   bench/retention.sh        # EVENTS=1000000 ROUNDS=3 DURATION=20s CONNS=50 WORK_ROOT=/var/tmp
#
# The store is filled by bench/inspector_fill.sql, its rows then moved 100 days back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

EVENTS=${EVENTS:-1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-50}
WORK=$(mktemp -d "${WORK_ROOT:-/var/tmp}/hookhouse-retentionbench.XXXXXX")
LOG_DIR=$WORK/logs
mkdir -p "$LOG_DIR"

ensure_tools
build

port=$(free_port)
mkdir -p "$WORK/source"
"$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$WORK/source" >"$LOG_DIR/create.log" 2>&1 &
SERVER_PID=$!
wait_ready hookhouse "$port"
stop_server hookhouse
log "filling a store with $EVENTS requests, 100 days old"
sed "s/__N__/$EVENTS/g" bench/inspector_fill.sql | sqlite3 "$WORK/source/hookhouse.db"
sqlite3 "$WORK/source/hookhouse.db" "
  UPDATE raw_requests SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '-100 days');
  UPDATE events SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '-100 days');
  UPDATE failed_events SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '-100 days');
  PRAGMA wal_checkpoint(TRUNCATE);"
log "store: $(du -sh "$WORK/source" | cut -f1)"
# The same store a pass later: every body already emptied, so pruning deletes whole rows.
mkdir -p "$WORK/emptied"
cp "$WORK/source/hookhouse.db" "$WORK/emptied/"
sqlite3 "$WORK/emptied/hookhouse.db" "
  UPDATE raw_requests SET body = x'', body_dropped = 1;
  INSERT INTO retention_marks (target, after) VALUES ('raw_bodies', $EVENTS);
  PRAGMA wal_checkpoint(TRUNCATE);"

printf '[retention]\nraw_bodies_days = "forever"\nraw_requests_days = "forever"\nfailed_events_days = "forever"\n' \
  >"$WORK/keep.toml"
printf '# the defaults: bodies 30 days, requests 90, failures 365\n' >"$WORK/prune.toml"
cp "$WORK/prune.toml" "$WORK/delete.toml"

RESULTS=$WORK/results
# round VARIANT N: one wrk run against a fresh copy of the store.
round() {
  local variant=$1 n=$2 dir=$WORK/$1 line left emptied removed longest
  rm -rf "$dir" && mkdir -p "$dir"
  if [[ $variant == delete ]]; then
    cp "$WORK/emptied/hookhouse.db" "$dir/"
  else
    cp "$WORK/source/hookhouse.db" "$dir/"
  fi
  port=$(free_port)
  DATA_DIR=$dir
  HOOKHOUSE_LOG_FORMAT=json "$HOOKHOUSE_BIN" serve --config "$WORK/$variant.toml" \
    --listen "127.0.0.1:$port" --data-dir "$dir" >"$LOG_DIR/$variant-$n.log" 2>&1 &
  SERVER_PID=$!
  wait_ready hookhouse "$port"
  wrk_command "$CONNS" "$DURATION" bench/unique_body.lua "$port"
  line=$(run_wrk)
  read -r left emptied < <(sql "SELECT count(*), coalesce(sum(body_dropped), 0) FROM raw_requests WHERE seq <= $EVENTS" | tr '|' ' ')
  longest=$(curl -fsS "http://127.0.0.1:$port/metrics" |
    awk '/^hookhouse_retention_longest_step_seconds / { printf "%.2f", $2 * 1000 }')
  stop_server hookhouse
  removed=$((EVENTS - left))
  echo "$variant $n $(bench_field "$line" rps) $(bench_field "$line" p99_ms) $(bench_field "$line" non2xx) $emptied $removed ${longest:--}" >>"$RESULTS"
  log "$variant round $n: $(bench_field "$line" rps) req/s, p99 $(bench_field "$line" p99_ms) ms, $emptied bodies emptied, $removed requests removed"
}

for n in $(seq 1 "$ROUNDS"); do
  round keep "$n"
  round prune "$n"
  round delete "$n"
done

echo
echo "## ${WRK_CMD[*]} (against each variant's port), EVENTS=$EVENTS"
printf '%-6s %-5s %10s %8s %7s %14s %14s %15s\n' variant round req/s p99_ms non2xx bodies_emptied rows_removed longest_step_ms
while read -r variant n rps p99 non2xx emptied removed longest; do
  printf '%-6s %-5s %10s %8s %7s %14s %14s %15s\n' "$variant" "$n" "$rps" "$p99" "$non2xx" "$emptied" "$removed" "$longest"
done <"$RESULTS"
python3 - "$RESULTS" <<'EOF'
import sys, statistics
rows = [line.split() for line in open(sys.argv[1])]
rate = {v: statistics.median(float(r[2]) for r in rows if r[0] == v) for v in ("keep", "prune", "delete")}
failed = False
for v in ("prune", "delete"):
    ratio = rate[v] / rate["keep"]
    print(f"median req/s: keep {rate['keep']:.0f}, {v} {rate[v]:.0f}: ratio {ratio:.3f}")
    if ratio < 0.90:
        print(f"FAIL: ingest while pruning ({v}) is {ratio:.3f} of ingest without (below 0.90)")
        failed = True
bad = [r for r in rows if r[4] != "0"]
if bad:
    sys.exit(f"FAIL: non-2xx answers in {bad}")
sys.exit(1 if failed else 0)
EOF
rm -rf "$WORK"
