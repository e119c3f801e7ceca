#!/usr/bin/env bash
# Benchmark of the Parquet lake sink (`[sinks.parquet]`, src/sinks/parquet/): how fast events
# reach the lake, how stale the lake gets, what it costs ingestion, and how fast a lake added to
# a full store catches up. Two cases:
#
#   load     wrk (unique emailOpen bodies, bench/unique_body.lua, CONNS connections, DURATION)
#            against `serve` with the lake, alternated with a baseline: the same load against
#            `serve` without it, so the ratio of the two ingest rates is the lake's cost. While
#            wrk runs and until the lake holds every request, /metrics is read every 0.25 s:
#            hookhouse_sink_lag_seconds{sink="parquet"} (age of the oldest request not in the
#            lake; the runner refreshes it once a second) and
#            hookhouse_sink_loaded_events_total{sink="parquet"}. Target: the lag stays within
#            max_file_age_secs + 2 s.
#   catchup  a store of at least EVENTS requests (one event each) filled by wrk against a plain
#            `serve` (no lake), which is then stopped; `serve` with the lake starts on it, with
#            no traffic, and the time until the `parquet` cursor reaches the store's last seq
#            gives events/s (target: >= 150,000). CATCHUPS times, on the same store: between
#            rounds the lake directory is deleted and its cursor row removed (a new lake).
#            With DIAGNOSE=1 two more runs on the same store put the embedded `sqlite` sink's
#            cursor back too (its rows deleted, cursor set to 0, by sqlite3): `embedded-only`
#            times the embedded sink catching up alone (no lake), `both` the lake when the
#            embedded tables must catch up first (the lake waits for them).
#            Every catch-up records CPU per thread (/proc/PID/task/*/stat) and
#            `/usr/bin/time -v` of the server.
#
# Every lake is checked with DuckDB at the end: as many events as the store's `events`, no
# event_id twice.
#
# Usage (from the repo root):  bench/parquet.sh
# Knobs: CASES="load catchup"  CONNS=200  ROUNDS=1  FILE_AGE=60 (max_file_age_secs)
#        DURATION=<2 x FILE_AGE + 10>s  TARGET_FILE_MB=128  EVENTS=1000000  CATCHUPS=2
#        DIAGNOSE=1  THREADS=2  WORK_ROOT=/var/tmp  LAKE_PYTHON=/var/tmp/hookhouse-lake-venv/bin/python
#        CARGO_TARGET_DIR=...
# Stores and lakes live in WORK_ROOT/pqbench-XXXXXX (a 1M-event store is 1-2 GB) and are
# deleted at the end whatever happens; server logs and samples are kept if the run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

CASES=${CASES:-load catchup}
CONNS=${CONNS:-200}
ROUNDS=${ROUNDS:-1}
FILE_AGE=${FILE_AGE:-60}
DURATION=${DURATION:-$((FILE_AGE * 2 + 10))s}
TARGET_FILE_MB=${TARGET_FILE_MB:-128}
EVENTS=${EVENTS:-1000000}
CATCHUPS=${CATCHUPS:-2}
DIAGNOSE=${DIAGNOSE:-1}
WORK_ROOT=${WORK_ROOT:-/var/tmp}
LAKE_PYTHON=${LAKE_PYTHON:-/var/tmp/hookhouse-lake-venv/bin/python}
SAMPLE_S=0.25
# How long a lake may take to hold everything after the load, or to catch up a store.
DRAIN_TIMEOUT_S=$((FILE_AGE * 3 + 120))
CATCHUP_LIMIT_S=${CATCHUP_LIMIT_S:-900}
FILL_CHUNK=20s
CLK_TCK=$(getconf CLK_TCK)

WORK=""
HH_PID=""       # the hookhouse process (SERVER_PID is /usr/bin/time's when wrapped)
PQ_SAMPLER=""
RESULTS=()

# lib.sh's cleanup kills the server and removes its logs; the stores and lakes go too, even
# after a failure (they are large).
parquet_cleanup() {
  local status=$?
  if [[ -n $PQ_SAMPLER ]]; then kill "$PQ_SAMPLER" 2>/dev/null || true; fi
  if [[ -n $HH_PID ]] && is_running "$HH_PID"; then
    kill -KILL "$HH_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do is_running "$HH_PID" || break; sleep 0.1; done
  fi
  (exit "$status")
  cleanup
  if [[ -n $WORK && -d $WORK ]]; then
    sleep 0.2
    rm -rf "$WORK"
  fi
}
trap parquet_cleanup EXIT

# --- one server -------------------------------------------------------------------------------

# write_config FILE PORT DATA [LAKE]: a config for serve, with the lake when LAKE is given.
write_config() {
  local file=$1 port=$2 data=$3 lake=${4:-}
  printf '[server]\nlisten = "127.0.0.1:%s"\n[store]\ndata_dir = "%s"\n' "$port" "$data" >"$file"
  if [[ -n $lake ]]; then
    printf '[sinks.parquet]\nurl = "%s"\nmax_file_age_secs = %s\ntarget_file_mb = %s\n' \
      "$lake" "$FILE_AGE" "$TARGET_FILE_MB" >>"$file"
  fi
}

# serve NAME PORT DATA [LAKE]: starts hookhouse under /usr/bin/time -v (its report in
# LOG_DIR/NAME.time) and waits until it answers. Sets SERVER_PID (time) and HH_PID.
serve() {
  local name=$1 port=$2 data=$3 lake=${4:-} config="$LOG_DIR/$1.toml"
  write_config "$config" "$port" "$data" "$lake"
  /usr/bin/time -v -o "$LOG_DIR/$name.time" "$HOOKHOUSE_BIN" serve --config "$config" \
    >"$LOG_DIR/$name.log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 10))
  HH_PID=""
  while [[ -z $HH_PID ]]; do
    HH_PID=$(pgrep -P "$SERVER_PID" -x hookhouse || true)
    ((SECONDS < deadline)) || die "no hookhouse process under /usr/bin/time; log: $LOG_DIR/$name.log"
    [[ -n $HH_PID ]] || sleep 0.02
  done
  wait_ready hookhouse "$port"
}

# stop NAME: SIGTERM to hookhouse, then wait for it (and time) to exit; fails on a non-zero exit.
stop() {
  local name=$1 deadline=$((SECONDS + STOP_TIMEOUT_S)) status=0
  kill -TERM "$HH_PID"
  while is_running "$SERVER_PID"; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$HH_PID"
      die "$name did not stop within ${STOP_TIMEOUT_S}s of SIGTERM"
    fi
    sleep 0.1
  done
  wait "$SERVER_PID" || status=$?
  SERVER_PID="" HH_PID=""
  ((status == 0)) || die "$name exited with status $status after SIGTERM; log: $LOG_DIR/$name.log"
}

# cursor DATA SINK: the sink's cursor position (0 when it has none).
cursor() {
  sqlite3 -cmd '.timeout 10000' "$1/hookhouse.db" \
    "select coalesce((select position from sink_cursors where sink = '$2'), 0)"
}

last_seq() {
  sqlite3 -cmd '.timeout 10000' "$1/hookhouse.db" 'select coalesce(max(seq), 0) from raw_requests'
}

# wait_cursor DATA SINK SEQ LIMIT_S: polls every 0.1 s until SINK's cursor reaches SEQ; prints
# the time at which it did ($EPOCHREALTIME).
wait_cursor() {
  local data=$1 sink=$2 seq=$3 limit=$4 deadline=$((SECONDS + $4)) position
  while :; do
    position=$(cursor "$data" "$sink")
    ((position >= seq)) && break
    is_running "$HH_PID" || die "hookhouse exited while $sink was at $position of $seq"
    ((SECONDS < deadline)) || die "the $sink sink was at seq $position of $seq after ${limit}s"
    sleep 0.1
  done
  echo "$EPOCHREALTIME"
}

# --- /metrics ---------------------------------------------------------------------------------

# start_sampler PORT FILE: every SAMPLE_S a line `time parquet_lag_s parquet_lag_requests
# parquet_loaded_events sqlite_lag_s` (- where the metric is missing).
start_sampler() {
  local port=$1 file=$2
  : >"$file"
  (
    trap - EXIT INT TERM
    while :; do
      curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null |
        awk -v t="$EPOCHREALTIME" '
          $1 == "hookhouse_sink_lag_seconds{sink=\"parquet\"}" { lag = $2 }
          $1 == "hookhouse_sink_lag_requests{sink=\"parquet\"}" { req = $2 }
          $1 == "hookhouse_sink_loaded_events_total{sink=\"parquet\"}" { loaded = $2 }
          $1 == "hookhouse_sink_lag_seconds{sink=\"sqlite\"}" { slag = $2 }
          END { if (lag == "") lag = "-"; if (req == "") req = "-"; if (loaded == "") loaded = "-";
                if (slag == "") slag = "-"; print t, lag, req, loaded, slag }' >>"$file" || true
      sleep "$SAMPLE_S"
    done
  ) &
  PQ_SAMPLER=$!
}

stop_sampler() {
  [[ -n $PQ_SAMPLER ]] || return 0
  kill "$PQ_SAMPLER" 2>/dev/null || true
  wait "$PQ_SAMPLER" 2>/dev/null || true
  PQ_SAMPLER=""
}

# --- the lake ---------------------------------------------------------------------------------

# verify_lake DATA LAKE: DuckDB's count of the lake's events and of distinct event_ids must both
# equal the store's events. Prints the count.
verify_lake() {
  local data=$1 lake=$2 store lake_rows lake_ids
  store=$(sqlite3 -cmd '.timeout 10000' "$data/hookhouse.db" 'select count(*) from events')
  read -r lake_rows lake_ids < <("$LAKE_PYTHON" -c '
import sys, duckdb
rows, ids = duckdb.sql(f"""select count(*), count(distinct event_id) from read_parquet(
    '"'"'{sys.argv[1]}/events/**/*.parquet'"'"', hive_partitioning = true)""").fetchall()[0]
print(rows, ids)' "$lake") || die "DuckDB cannot read the lake $lake"
  ((lake_rows == lake_ids)) || die "the lake has $lake_rows events but $lake_ids event_ids: some twice"
  ((lake_rows == store)) || die "the lake has $lake_rows events, the store $store"
  echo "    lake verified: $lake_rows events = the store's, no event_id twice" >&2
  echo "$lake_rows"
}

lake_files_count() {
  find "$1/events" -name '*.parquet' | wc -l
}

# --- CPU per thread ---------------------------------------------------------------------------

# thread_cpu PID: `tid name cpu_s` for each thread of PID, busiest first.
thread_cpu() {
  local task tid name ticks
  for task in /proc/"$1"/task/*; do
    tid=${task##*/}
    name=$(cat "$task/comm" 2>/dev/null) || continue
    ticks=$(sed 's/.*) //' "$task/stat" 2>/dev/null | awk '{ print $12 + $13 }') || continue
    echo "$tid ${name// /_} $(awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')"
  done | sort -k3,3nr
}

# thread_states PID: a line `tid name state wchan` per thread (state R running, D waiting for
# the disk, S sleeping), appended every second of a catch-up and summarised by state_summary.
thread_states() {
  local task
  for task in /proc/"$1"/task/*; do
    printf '%s %s %s %s\n' "${task##*/}" "$(tr ' ' _ <"$task/comm" 2>/dev/null)" \
      "$(sed 's/.*) //' "$task/stat" 2>/dev/null | cut -d' ' -f1)" "$(cat "$task/wchan" 2>/dev/null || echo -)"
  done 2>/dev/null || true
}

# state_summary FILE: per thread seen running (R) or in disk wait (D) in at least one sample,
# `name(tid) R%/D%` of the samples.
state_summary() {
  awk '{ n[$1]++; name[$1] = $2; if ($3 == "R") r[$1]++; if ($3 == "D") d[$1]++ }
    END { for (t in n) if (r[t] + d[t] > 0)
      printf "%s(%s)_R%d%%/D%d%%\n", name[t], t, 100 * r[t] / n[t], 100 * d[t] / n[t] }' "$1" |
    sort | paste -sd, -
}

# cpu_summary FILE WALL_S: the busy threads of a thread_cpu listing as `name(tid) cores` over
# WALL_S seconds, on one line.
cpu_summary() {
  awk -v wall="$2" '$3 >= 0.05 * wall { printf "%s%s(%s) %.2f", sep, $2, $1, $3 / wall; sep = ", " }
    END { print "" }' "$1"
}

time_field() {
  awk -F': ' -v key="$2" 'index($1, key) { print $2 }' "$1"
}

# --- case: load -------------------------------------------------------------------------------

# load_run MODE ROUND: MODE baseline (no lake) or lake. Appends one result line to RESULTS.
load_run() {
  local mode=$1 round=$2 port data lake="" name="load-$1-$2" samples line
  port=$(free_port)
  data="$WORK/$name"
  mkdir -p "$data"
  [[ $mode == lake ]] && lake="$WORK/$name-lake"
  log "load round $round: $mode, $CONNS connections, $DURATION, max_file_age_secs $FILE_AGE"
  serve "$name" "$port" "$data" "$lake"
  samples="$LOG_DIR/$name.samples"
  [[ $mode == lake ]] && start_sampler "$port" "$samples"
  local started=$EPOCHREALTIME
  wrk_command "$CONNS" "$DURATION" bench/unique_body.lua "$port"
  line=$(run_wrk)
  local ended=$EPOCHREALTIME rest="" requests non2xx
  requests=$(bench_field "$line" requests)
  non2xx=$(bench_field "$line" non2xx)
  ((requests > non2xx)) || die "no 2xx in $name"
  if [[ $mode == lake ]]; then
    local seq caught events files
    seq=$(last_seq "$data")
    caught=$(wait_cursor "$data" parquet "$seq" "$DRAIN_TIMEOUT_S")
    sleep 1.2 # one more gauge refresh after the last file
    stop_sampler
    events=$(verify_lake "$data" "$lake")
    files=$(lake_files_count "$lake")
    rest=$(python3 - "$samples" "$started" "$ended" "$caught" "$events" "$files" <<'EOF'
import sys
path, start, end, caught, events, files = sys.argv[1:]
start, end, caught = float(start), float(end), float(caught)
rows = [l.split() for l in open(path)]
rows = [(float(r[0]), r[1], r[2], r[3], r[4]) for r in rows if len(r) == 5]
lags = [float(r[1]) for r in rows if r[1] != "-"]
during = [r for r in rows if r[0] <= end and r[3] != "-"]
lag_during = [float(r[1]) for r in rows if r[0] <= end and r[1] != "-"]
loaded_rate = 0.0
if len(during) >= 2:
    loaded_rate = (float(during[-1][3]) - float(during[0][3])) / (during[-1][0] - during[0][0])
sqlite_lags = [float(r[4]) for r in rows if r[4] != "-"]
print(f"lake_events={events} lake_files={files} samples={len(lags)} "
      f"max_lag_s={max(lags) if lags else float('nan'):.2f} "
      f"max_lag_during_s={max(lag_during) if lag_during else float('nan'):.2f} "
      f"max_sqlite_lag_s={max(sqlite_lags) if sqlite_lags else float('nan'):.2f} "
      f"loaded_during_per_s={loaded_rate:.0f} "
      f"loaded_overall_per_s={int(events) / (caught - start):.0f} drain_s={caught - end:.2f}")
EOF
)
  fi
  local rss
  rss=$(peak_rss_kb "$HH_PID")
  stop "$name"
  rm -rf "$data" "$lake"
  RESULTS+=("load mode=$mode round=$round $line peak_rss_kb=$rss $rest")
  echo "    ${RESULTS[-1]}" >&2
}

# --- case: catchup ----------------------------------------------------------------------------

# fill DATA: wrk in FILL_CHUNK runs against a plain serve until the store has EVENTS requests,
# then until the embedded sink has them all; stops the server.
fill() {
  local data=$1 port line stored=0 chunks=0 rps=()
  port=$(free_port)
  mkdir -p "$data"
  log "filling a store with at least $EVENTS requests (no lake)"
  serve fill "$port" "$data"
  while ((stored < EVENTS)); do
    wrk_command "$CONNS" "$FILL_CHUNK" bench/unique_body.lua "$port"
    line=$(run_wrk)
    rps+=("$(bench_field "$line" rps)")
    stored=$(last_seq "$data")
    chunks=$((chunks + 1))
    log "  $stored requests stored"
  done
  wait_cursor "$data" sqlite "$stored" "$CATCHUP_LIMIT_S" >/dev/null
  stop fill
  FILL_NOTE="fill: $stored requests in $chunks x $FILL_CHUNK wrk runs at ${rps[*]} rps (no lake); store $(du -sh "$data" | cut -f1)"
  log "$FILL_NOTE"
}

# catchup_run DATA NAME WITH_LAKE WAIT_SINK: starts serve on DATA (with a fresh lake when
# WITH_LAKE is 1), no traffic, and times until WAIT_SINK's cursor reaches the last seq.
catchup_run() {
  local data=$1 name=$2 with_lake=$3 sink=$4 lake="" port seq requests start done_at events="-"
  lake="$WORK/$name-lake"
  [[ $with_lake == 1 ]] || lake=""
  seq=$(last_seq "$data")
  requests=$(sqlite3 "$data/hookhouse.db" 'select count(*) from raw_requests')
  local before_pq before_sq
  before_pq=$(cursor "$data" parquet)
  before_sq=$(cursor "$data" sqlite)
  port=$(free_port)
  log "catch-up $name: $requests requests, cursors before: sqlite $before_sq, parquet $before_pq; lake: ${lake:-none}; waiting for \`$sink\`"
  start=$EPOCHREALTIME
  serve "$name" "$port" "$data" "$lake"
  local ready=$EPOCHREALTIME mid_taken=0 position polls=0
  : >"$LOG_DIR/$name.states"
  # One per-thread snapshot 3 s in (blocking threads idle for 10 s end before the finish).
  while :; do
    position=$(cursor "$data" "$sink")
    ((position >= seq)) && break
    is_running "$HH_PID" || die "hookhouse exited while $sink was at $position of $seq"
    if ((mid_taken == 0)) && awk -v s="$start" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - s > 3) }'; then
      thread_cpu "$HH_PID" >"$LOG_DIR/$name.threads-mid"
      top -H -b -n1 -d0.5 -p "$HH_PID" >"$LOG_DIR/$name.top" 2>/dev/null || true
      mid_taken=1
    fi
    ((polls++ % 5 == 0)) && thread_states "$HH_PID" >>"$LOG_DIR/$name.states"
    awk -v s="$start" -v n="$EPOCHREALTIME" -v l="$CATCHUP_LIMIT_S" 'BEGIN { exit !(n - s > l) }' &&
      die "$sink at seq $position of $seq after ${CATCHUP_LIMIT_S}s"
    sleep 0.1
  done
  done_at=$EPOCHREALTIME
  thread_cpu "$HH_PID" >"$LOG_DIR/$name.threads"
  local cpu_s
  cpu_s=$(sed 's/.*) //' "/proc/$HH_PID/stat" | awk -v hz="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / hz }')
  local rss wall io
  rss=$(peak_rss_kb "$HH_PID")
  io=$(awk '$1 == "read_bytes:" { r = $2 } $1 == "write_bytes:" { w = $2 }
    END { printf "disk_read_mb=%.0f disk_write_mb=%.0f", r / 1048576, w / 1048576 }' "/proc/$HH_PID/io")
  wall=$(awk -v a="$start" -v b="$done_at" 'BEGIN { printf "%.2f", b - a }')
  [[ -n $lake ]] && { events=$(verify_lake "$data" "$lake"); }
  stop "$name"
  local files="-"
  [[ -n $lake ]] && files=$(lake_files_count "$lake")
  local tf="$LOG_DIR/$name.time"
  local user sys
  user=$(time_field "$tf" "User time (seconds)")
  sys=$(time_field "$tf" "System time (seconds)")
  local from=$before_pq
  [[ $sink == sqlite ]] && from=$before_sq
  local result="catchup name=$name waited_for=$sink requests=$requests last_seq=$seq seconds=$wall"
  result+=" startup_s=$(awk -v a="$start" -v b="$ready" 'BEGIN { printf "%.2f", b - a }')"
  result+=" events_per_s=$(awk -v n="$((seq - from))" -v w="$wall" 'BEGIN { printf "%.0f", n / w }')"
  result+=" lake_events=$events lake_files=$files peak_rss_kb=$rss user_s=$user sys_s=$sys"
  result+=" cpu_s=$cpu_s cores=$(awk -v c="$cpu_s" -v w="$wall" 'BEGIN { printf "%.2f", c / w }')"
  result+=" vol_ctx=$(time_field "$tf" "Voluntary context switches") $io"
  result+=" states=[$(state_summary "$LOG_DIR/$name.states")]"
  result+=" threads=[$(cpu_summary "$LOG_DIR/$name.threads" "$wall" | tr ' ' '_')]"
  RESULTS+=("$result")
  echo "    ${RESULTS[-1]}" >&2
  rm -rf "$lake"
}

# new_lake DATA: forget the lake's cursor (a new lake starts from seq 0).
new_lake() {
  sqlite3 -cmd '.timeout 10000' "$1/hookhouse.db" "delete from sink_cursors where sink = 'parquet'"
}

# embedded_behind DATA: the embedded tables emptied and their cursor at 0, as if the store had
# been written by a receiver whose embedded sink had not run.
embedded_behind() {
  log "putting the embedded sink's cursor back to 0 (deleting its rows)"
  sqlite3 -cmd '.timeout 10000' "$1/hookhouse.db" "begin; delete from events;
    delete from journey_calls; delete from failed_events where sink is null;
    update sink_cursors set position = 0 where sink = 'sqlite';
    delete from sink_cursors where sink = 'parquet'; commit;"
}

catchup_case() {
  local data="$WORK/store" round
  fill "$data"
  for ((round = 1; round <= CATCHUPS; round++)); do
    new_lake "$data"
    catchup_run "$data" "catchup-$round" 1 parquet
  done
  if ((DIAGNOSE)); then
    embedded_behind "$data"
    catchup_run "$data" embedded-only 0 sqlite
    embedded_behind "$data"
    catchup_run "$data" both 1 parquet
  fi
  rm -rf "$data"
}

# --- report -----------------------------------------------------------------------------------

print_report() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  echo
  echo "## Parquet lake (bench/parquet.sh)"
  echo
  echo "commit: $commit; machine: $(nproc) cores, load average before: $LOAD_BEFORE; wrk $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
  wrk_command "$CONNS" "$DURATION" bench/unique_body.lua '<port>'
  echo "load: ${WRK_CMD[*]}; [sinks.parquet] max_file_age_secs = $FILE_AGE, target_file_mb = $TARGET_FILE_MB"
  [[ -n ${FILL_NOTE:-} ]] && echo "$FILL_NOTE"
  echo
  printf '%s\n' "${RESULTS[@]}"
  echo
  python3 - "$FILE_AGE" "${RESULTS[@]}" <<'EOF'
import re, statistics, sys
age = float(sys.argv[1])
rows = []
for line in sys.argv[2:]:
    row = dict(re.findall(r"(\w+)=(\S+)", line))
    row["case"] = line.split()[0]
    rows.append(row)
base = [float(r["rps"]) for r in rows if r["case"] == "load" and r["mode"] == "baseline"]
lake = [r for r in rows if r["case"] == "load" and r["mode"] == "lake"]
if base and lake:
    b = statistics.mean(base)
    l = statistics.mean(float(r["rps"]) for r in lake)
    worst = max(float(r["max_lag_s"]) for r in lake)
    print(f"ingest without the lake (baseline): {b:9.0f} req/s  ({' / '.join(f'{x:.0f}' for x in base)})")
    print(f"ingest with the lake:               {l:9.0f} req/s  = {l / b:.3f} of baseline")
    print(f"loaded into the lake while wrk ran: {statistics.mean(float(r['loaded_during_per_s']) for r in lake):9.0f} events/s")
    print(f"  ... wrk start to lake complete:   {statistics.mean(float(r['loaded_overall_per_s']) for r in lake):9.0f} events/s")
    print(f"largest lag of the lake:            {worst:9.2f} s  (target <= {age + 2:.0f} s: {'met' if worst <= age + 2 else 'NOT met'})")
    print(f"non-2xx: {sum(int(r['non2xx']) for r in rows if r['case'] == 'load')}")
for r in rows:
    if r["case"] == "catchup":
        rate = float(r["events_per_s"])
        verdict = ""
        if r["waited_for"] == "parquet" and r["name"].startswith("catchup"):
            verdict = f"  (target >= 150000: {'met' if rate >= 150000 else 'NOT met'})"
        print(f"catch-up {r['name']:>12}: {int(r['last_seq']):,} requests in {float(r['seconds']):.2f} s"
              f" = {rate:9.0f} events/s, {r['cores']} cores{verdict}")
EOF
}

main() {
  ensure_tools
  [[ -x $LAKE_PYTHON ]] || die "no Python with DuckDB at $LAKE_PYTHON"
  [[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
  build --with-ceiling
  LOG_DIR=$(mktemp -d /tmp/hookhouse-pqbench-logs.XXXXXX)
  WORK=$(mktemp -d "$WORK_ROOT/pqbench-XXXXXX")
  log "logs in $LOG_DIR, stores and lakes in $WORK"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  local case round
  for case in $CASES; do
    case $case in
      load)
        for ((round = 1; round <= ROUNDS; round++)); do
          load_run baseline "$round"
          load_run lake "$round"
        done
        ;;
      catchup) catchup_case ;;
      *) die "unknown case \`$case\` (known: load, catchup)" ;;
    esac
  done
  print_report
}

main "$@"
