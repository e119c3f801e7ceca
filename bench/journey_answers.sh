#!/usr/bin/env bash
# Journey answers on a large store: the latency of a User Profile or Live Data tile's call to
# `GET /iterable/journeys/journey/{name}?email=...` with REQUESTS events in the store (10 million
# by default) against the same call with BASELINE (10,000), measured in the same run, so the
# ratio says whether an answer's cost grows with the store. Each call is measured with wrk (rate
# and median) and with TIMED requests timed one by one (bench/journey_latency.py: the p99 the
# limit MAX_P99_MS holds answers to), warm, and first with the kernel's page cache dropped
# (when run as root), as after a restart.
#
#   bench/journey_answers.sh      # REQUESTS=10000000 BASELINE=10000 CONNS=2 DURATION=10s TIMED=4000
#   STORE_CACHE=/var/tmp/hookhouse-inspector-stores bench/journey_answers.sh   # reuse filled stores
#
# Three calls, each for a random person of the fill's 500,000 (user0..user499999@example.com):
#   plain       GET /iterable/default/journey/plain, a journey with no answer: the call is stored
#               (a durable, group-committed append) and answered `{"status":"stored"}`;
#   engagement  the built-in answer (10 fields from the person's events), with a bearer token
#               from the source's `POST /iterable/journeys/oauth/token`;
#   opens       a `sql` answer: count(*) of the person's `emailOpen` events.
# Every journey call is stored the same way, so an answer's own cost is its latency minus
# plain's, on the same store. On 10 million requests every person has about 20 events; on the
# baseline's 10,000 most have none, so the baseline is the cost of an answer that finds nothing.
#
# The stores are bench/inspector.sh's (bench/inspector_fill.sql; STORE_CACHE keeps them between
# runs: 10 million take about 8 minutes and 12 GB). This benchmark writes to them: hookhouse
# upgrades the schema and, before it listens, builds the index its answers read (on 10 million
# events about a minute; the script waits for /readyz and reports how long the start took; a
# start without journey answers, bench/inspector.sh's, drops it again), and every call measured
# is stored as a journey call. Those calls are removed when the run ends, or by the next run
# (bench/lib.sh's trim_store), so the stores stay the fill.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

REQUESTS=${REQUESTS:-10000000}
BASELINE=${BASELINE:-10000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-2}
# Requests timed one by one per call (bench/journey_latency.py), for its percentiles.
TIMED=${TIMED:-4000}
STORE_CACHE=${STORE_CACHE:-}
# How long a start may take: the first start on a large store builds the answers' index.
START_TIMEOUT_S=${START_TIMEOUT_S:-900}
# p99 above this fails the run (the call is a step of a journey; Iterable's time-out for it is
# not documented, so an answer should not depend on it).
MAX_P99_MS=${MAX_P99_MS:-10}
CLIENT_ID=bench
CLIENT_SECRET=bench-client-secret-0123456789
PEOPLE=500000
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookhouse-journey-bench.XXXXXX")
CONFIG="$LOG_DIR/journeys.toml"

ensure_tools
build

cat >"$CONFIG" <<TOML
[[sources]]
name = "default"

[[sources]]
name = "journeys"
auth = "oauth2"
[[sources.clients]]
id = "$CLIENT_ID"
secret = "$CLIENT_SECRET"
token_ttl_secs = 86400
[[sources.journeys]]
name = "engagement"
answer = "engagement"
[[sources.journeys]]
name = "opens"
answer = "sql"
query = "SELECT count(*) AS opens FROM events WHERE email = :email AND event_name = 'emailOpen'"
TOML

# wait_started PORT LOG: waits until /readyz answers 200 (the port listens only once the schema
# is upgraded and the answers' index is built); prints the seconds it took.
wait_started() {
  local port=$1 log_file=$2 started=$EPOCHREALTIME deadline=$((SECONDS + START_TIMEOUT_S))
  until curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    is_running "$SERVER_PID" || die "hookhouse exited before it was ready; log: $log_file"
    ((SECONDS < deadline)) || die "hookhouse not ready after ${START_TIMEOUT_S}s; log: $log_file"
    sleep 0.5
  done
  awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'
}

# token PORT: an access token for the bench client, by HTTP Basic as Iterable may send it.
token() {
  local out
  out=$(curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
    -w '\n%{http_code}' "http://127.0.0.1:$1/iterable/journeys/oauth/token") ||
    die "the token endpoint did not answer"
  [[ ${out##*$'\n'} == 200 ]] || die "the token endpoint answered ${out##*$'\n'}: ${out%$'\n'*}"
  python3 -c 'import json, sys; print(json.loads(sys.argv[1])["access_token"])' "${out%$'\n'*}" ||
    die "no access_token in: ${out%$'\n'*}"
}

# check_answers PORT TOKEN N DIR: one call of each kind before timing them, for a person with
# an `emailOpen` in the store of N (request i is person (i * 7919) % 500000's, and an open when
# i % 10 is 2 or 3: see bench/inspector_fill.sql). The answers must be 200 with their fields and
# types, agree with each other (the fill's events are all from the last 24 hours, so
# emailOpens30d is every open) and with the store read directly; a call without the token must
# be refused.
check_answers() {
  local port=$1 token=$2 n=$3 dir=$4 base="http://127.0.0.1:$1/iterable"
  local i=$((n / 2 - n / 2 % 10 + 2)) email status engagement opens counted
  email="user$((i * 7919 % PEOPLE))@example.com"
  status=$(curl -sS -o /dev/null -w '%{http_code}' "$base/journeys/journey/engagement?email=$email") ||
    die "the call without a token failed"
  [[ $status == 401 ]] || die "a journey call without a token was answered $status, not 401"
  curl -fsS -o /dev/null "$base/default/journey/plain?email=$email" || die "the plain journey call failed"
  engagement=$(curl -sS -w '\n%{http_code}' -H "Authorization: Bearer $token" \
    "$base/journeys/journey/engagement?email=$email") || die "the engagement call failed"
  [[ ${engagement##*$'\n'} == 200 ]] || die "engagement answered ${engagement##*$'\n'}: ${engagement%$'\n'*}"
  opens=$(curl -sS -w '\n%{http_code}' -H "Authorization: Bearer $token" \
    "$base/journeys/journey/opens?email=$email") || die "the opens call failed"
  [[ ${opens##*$'\n'} == 200 ]] || die "opens answered ${opens##*$'\n'}: ${opens%$'\n'*}"
  counted=$(sqlite3 -cmd '.timeout 10000' "$dir/hookhouse.db" \
    "SELECT count(*) FROM events WHERE email = '$email' AND event_name = 'emailOpen'")
  python3 - "${engagement%$'\n'*}" "${opens%$'\n'*}" "$counted" <<'PY' || die "wrong answers for $email"
import json, sys
engagement, opens, counted = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
types = {"emailOpens30d": int, "emailClicks30d": int, "smsClicks30d": int, "pushOpens30d": int,
         "lastOpenAt": (str, type(None)), "lastClickAt": (str, type(None)),
         "lastClickUrl": (str, type(None)), "hardBounced": bool, "complained": bool,
         "unsubscribed": bool}
problems = []
if set(engagement) != set(types):
    problems.append(f"engagement's fields are {sorted(engagement)}")
for name, kind in types.items():
    value = engagement.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problems.append(f"engagement's {name} is {value!r}")
if counted < 1:
    problems.append(f"the store has no emailOpen of the person checked (a fill other than bench/inspector_fill.sql?)")
if opens != {"opens": counted}:
    problems.append(f"opens answered {opens}, the store counts {counted}")
if engagement.get("emailOpens30d") != counted:
    problems.append(f"emailOpens30d is {engagement.get('emailOpens30d')}, the store counts {counted}")
if problems:
    sys.exit("\n".join(problems))
print(f"  {sys.argv[1]}\n  {sys.argv[2]}", file=sys.stderr)
PY
}

# latency PORT PATH [TOKEN]: "p50_ms p99_ms rps" of wrk on PATH, for random people.
latency() {
  local port=$1 path=$2 token=${3:-} out line
  out=$(JOURNEY_PATH=$path JOURNEY_TOKEN=$token PEOPLE=$PEOPLE \
    wrk -t1 "-c$CONNS" "-d$DURATION" --timeout 10s --latency -s bench/journey_answers.lua \
    "http://127.0.0.1:$port") || die "wrk failed on $path"
  line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk on $path:"$'\n'"$out"
  (($(bench_field "$line" non2xx) == 0)) ||
    die "non-2xx answers from $path: $(grep '^FIRST_NOT_2XX ' <<<"$out" || true)"$'\n'"$out"
  (($(socket_errors "$line") == 0)) || die "socket errors on $path:"$'\n'"$out"
  echo "$(bench_field "$line" p50_ms) $(bench_field "$line" p99_ms) $(bench_field "$line" rps)"
}

# timed PORT PATH [TOKEN]: "p50_ms p99_ms max_ms" of TIMED requests on PATH, each timed on its
# own (bench/journey_latency.py), for random people.
timed() {
  local line
  line=$(python3 bench/journey_latency.py "$1" "$2" "$TIMED" "$CONNS" "$PEOPLE" "${3:-}") ||
    die "bench/journey_latency.py failed on $2"
  (($(bench_field "$line" non2xx) == 0)) || die "non-2xx answers from $2: $line"
  echo "$(bench_field "$line" p50_ms) $(bench_field "$line" p99_ms) $(bench_field "$line" max_ms)"
}

# drop_page_cache: empties the kernel's page cache (root only), so the next requests read the
# store from the disk, as the first answers after a restart or after other work evicted it do.
drop_page_cache() {
  sync && echo 1 >/proc/sys/vm/drop_caches 2>/dev/null
}

# measure N DIR: serves the store of N requests with the journeys' configuration and writes
# "call p50 p99 rps timed_p50 timed_p99 timed_max" lines to $LOG_DIR/calls-N and, where the page
# cache can be dropped, "call timed_p50 timed_p99 timed_max" with a cold cache to
# $LOG_DIR/cold-N (run in this shell, not a subshell, so that the EXIT trap stops the server
# whichever way the run ends).
measure() {
  local n=$1 dir=$2 port log_file start_s token call path result
  port=$(free_port)
  log_file="$LOG_DIR/serve-$n.log"
  "$HOOKHOUSE_BIN" serve --config "$CONFIG" --listen "127.0.0.1:$port" --data-dir "$dir" \
    >"$log_file" 2>&1 &
  SERVER_PID=$!
  start_s=$(wait_started "$port" "$log_file")
  log "hookhouse on $n requests ready in $start_s s"
  grep -i 'index' "$log_file" | head -3 | sed 's/^/    /' >&2 || true
  echo "$start_s" >"$LOG_DIR/start-$n"
  token=$(token "$port")
  check_answers "$port" "$token" "$n" "$dir"
  local -A paths=([plain]=/iterable/default/journey/plain
    [engagement]=/iterable/journeys/journey/engagement [opens]=/iterable/journeys/journey/opens)
  : >"$LOG_DIR/calls-$n"
  : >"$LOG_DIR/cold-$n"
  for call in plain engagement opens; do
    path=${paths[$call]}
    local bearer=$token
    [[ $call == plain ]] && bearer=
    if drop_page_cache; then
      result=$(timed "$port" "$path" "$bearer")
      echo "$call $result" | tee -a "$LOG_DIR/cold-$n" | sed 's/^/    cold page cache: /' >&2
    fi
    result="$(latency "$port" "$path" "$bearer") $(timed "$port" "$path" "$bearer")"
    echo "$call $result" | tee -a "$LOG_DIR/calls-$n" >&2
  done
  stop_server hookhouse
  trim_store "$n" "$dir"
}

store_dir() {
  if [[ -n $STORE_CACHE ]]; then echo "$STORE_CACHE/$1"; else echo "$LOG_DIR/store-$1"; fi
}

small_dir=$(store_dir "$BASELINE")
large_dir=$(store_dir "$REQUESTS")
fill_store "$BASELINE" "$small_dir"
fill_store "$REQUESTS" "$large_dir"
log "measuring each call on $BASELINE requests, then on $REQUESTS (wrk -t1 -c$CONNS -d$DURATION --latency -s bench/journey_answers.lua)"
measure "$BASELINE" "$small_dir"
measure "$REQUESTS" "$large_dir"
# The report: wrk's rate and percentiles, the per-request percentiles, and the cold ones.
python3 - "$LOG_DIR" "$BASELINE" "$REQUESTS" "$MAX_P99_MS" <<'PY'
import pathlib, sys
log, baseline, requests, max_p99 = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
def table(name):
    text = (log / name).read_text() if (log / name).exists() else ""
    return {l.split()[0]: [float(v) for v in l.split()[1:]] for l in text.splitlines() if l.strip()}
warm = {n: table(f"calls-{n}") for n in (baseline, requests)}
cold = {n: table(f"cold-{n}") for n in (baseline, requests)}
print(f"\n{'call':<11} {'store':>9} {'wrk p50':>8} {'wrk p99':>8} {'rps':>6} "
      f"{'p50':>6} {'p99':>6} {'max':>7} {'cold p50':>9} {'cold p99':>9} {'cold max':>9}   (ms)")
for call in ("plain", "engagement", "opens"):
    for n in (baseline, requests):
        w = warm[n][call]
        c = cold[n].get(call)
        cold_text = f"{c[0]:9.2f} {c[1]:9.2f} {c[2]:9.2f}" if c else f"{'-':>9} {'-':>9} {'-':>9}"
        print(f"{call:<11} {n:>9} {w[0]:8.2f} {w[1]:8.2f} {w[2]:6.0f} {w[3]:6.2f} {w[4]:6.2f} "
              f"{w[5]:7.2f} {cold_text}")
print()
for n in (baseline, requests):
    for call, w in warm[n].items():
        c = cold[n].get(call)
        extra = f" cold_p50_ms={c[0]:.3f} cold_p99_ms={c[1]:.3f} cold_max_ms={c[2]:.3f}" if c else ""
        print(f"BENCH store={n} call={call} wrk_p50_ms={w[0]:.3f} wrk_p99_ms={w[1]:.3f} "
              f"rps={w[2]:.1f} p50_ms={w[3]:.3f} p99_ms={w[4]:.3f} max_ms={w[5]:.3f}{extra}")
for call in warm[requests]:
    s, l = warm[baseline][call], warm[requests][call]
    print(f"BENCH call={call} p50_ratio={l[3] / max(s[3], 0.01):.2f} "
          f"p99_ratio={l[4] / max(s[4], 0.01):.2f} rps_ratio={l[2] / max(s[2], 0.01):.2f}")
# Only the answers are held to the limit: plain's figures are the durable append alone, which
# every call pays (compare).
slow = [f"{call} on {n}: p99 {t[call][1 if t is cold[n] else 4]:.2f} ms"
        for n in (baseline, requests) for t in (warm[n], cold[n])
        for call in ("engagement", "opens") if call in t
        and t[call][1 if t is cold[n] else 4] > max_p99]
if slow:
    sys.exit(f"answers with a p99 above {max_p99} ms: " + "; ".join(slow))
PY
for n in "$BASELINE" "$REQUESTS"; do
  echo "BENCH store=$n start_s=$(<"$LOG_DIR/start-$n")"
done
[[ -n $STORE_CACHE ]] || rm -rf "$small_dir" "$large_dir"
