#!/usr/bin/env bash
# Journey answers on a large store: the latency of a User Profile or Live Data tile's call to
# `GET /iterable/journeys/journey/{name}?email=...` with REQUESTS events in the store (10 million
# by default) against the same call with BASELINE (10,000), measured in the same run with wrk,
# so the ratio says whether an answer's cost grows with the store.
#
#   bench/journey_answers.sh                 # REQUESTS=10000000 BASELINE=10000 CONNS=2 DURATION=10s
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
    wrk -t1 "-c$CONNS" "-d$DURATION" --latency -s bench/journey_answers.lua "http://127.0.0.1:$port") ||
    die "wrk failed on $path"
  line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk on $path:"$'\n'"$out"
  (($(bench_field "$line" non2xx) == 0)) ||
    die "non-2xx answers from $path: $(grep '^FIRST_NOT_2XX ' <<<"$out" || true)"$'\n'"$out"
  (($(socket_errors "$line") == 0)) || die "socket errors on $path:"$'\n'"$out"
  echo "$(bench_field "$line" p50_ms) $(bench_field "$line" p99_ms) $(bench_field "$line" rps)"
}

# measure N DIR: serves the store of N requests with the journeys' configuration and writes
# "call p50 p99 rps" lines to $LOG_DIR/calls-N (run in this shell, not a subshell, so that the
# EXIT trap stops the server whichever way the run ends).
measure() {
  local n=$1 dir=$2 port log_file start_s token result
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
  : >"$LOG_DIR/calls-$n"
  result=$(latency "$port" /iterable/default/journey/plain)
  echo "plain $result" | tee -a "$LOG_DIR/calls-$n" >&2
  result=$(latency "$port" /iterable/journeys/journey/engagement "$token")
  echo "engagement $result" | tee -a "$LOG_DIR/calls-$n" >&2
  result=$(latency "$port" /iterable/journeys/journey/opens "$token")
  echo "opens $result" | tee -a "$LOG_DIR/calls-$n" >&2
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
small=$(<"$LOG_DIR/calls-$BASELINE")
large=$(<"$LOG_DIR/calls-$REQUESTS")

printf '\ncall         %10s p50/p99 ms  rps   %10s p50/p99 ms  rps   p50 ratio  p99 ratio\n' \
  "$BASELINE" "$REQUESTS"
join <(sort <<<"$small") <(sort <<<"$large") | while read -r call s50 s99 srps l50 l99 lrps; do
  printf '%-12s %10s/%-7s %6.0f   %10s/%-7s %6.0f   %9.2f  %9.2f\n' "$call" "$s50" "$s99" "$srps" \
    "$l50" "$l99" "$lrps" "$(python3 -c "print($l50 / max($s50, 0.01))")" \
    "$(python3 -c "print($l99 / max($s99, 0.01))")"
done
# The answer's own cost: its p50 minus plain's, on each store.
python3 - "$BASELINE" "$REQUESTS" "$small" "$large" <<'PY'
import sys
baseline, requests = sys.argv[1], sys.argv[2]
stores = {baseline: sys.argv[3], requests: sys.argv[4]}
parsed = {n: {l.split()[0]: [float(v) for v in l.split()[1:]] for l in text.splitlines()}
          for n, text in stores.items()}
print()
for call in ("engagement", "opens"):
    costs = [parsed[n][call][0] - parsed[n]["plain"][0] for n in (baseline, requests)]
    print(f"{call:<12} answer's own p50 (minus plain's): {costs[0]:.2f} ms on {baseline}, "
          f"{costs[1]:.2f} ms on {requests}")
print()
for n in (baseline, requests):
    for call, (p50, p99, rps) in parsed[n].items():
        print(f"BENCH store={n} call={call} p50_ms={p50:.3f} p99_ms={p99:.3f} rps={rps:.1f}")
for call in parsed[requests]:
    s, l = parsed[baseline][call], parsed[requests][call]
    print(f"BENCH call={call} p50_ratio={l[0] / max(s[0], 0.01):.2f} "
          f"p99_ratio={l[1] / max(s[1], 0.01):.2f} rps_ratio={l[2] / max(s[2], 0.01):.2f}")
PY
for n in "$BASELINE" "$REQUESTS"; do
  echo "BENCH store=$n start_s=$(<"$LOG_DIR/start-$n")"
done
# Only the answers: plain's p99 is the store's fsync, which the answers pay too (compare).
slow=$(join <(sort <<<"$small") <(sort <<<"$large") |
  awk -v max="$MAX_P99_MS" '$1 != "plain" && ($3 > max || $6 > max) { print $1 }' | tr '\n' ' ')
[[ -z $slow ]] || die "answers with a p99 above ${MAX_P99_MS} ms (see plain's for the append alone): $slow"
[[ -n $STORE_CACHE ]] || rm -rf "$small_dir" "$large_dir"
