#!/usr/bin/env bash
# What the inspector's index of events by person (`person_index`: email and user id, made
# while `[admin]` is on) costs the embedded sink: the time the `sqlite` sink takes to load a
# store of EVENTS requests from its cursor at 0 with `serve --admin` (the index made before
# the round starts) and, in the same run with the same binary, with plain `serve` (no index).
# Rounds alternate.
#
#   bench/embedded_indexes.sh        # EVENTS=1000000 ROUNDS=2 WORK_ROOT=/var/tmp
#   INDEX=answer bench/embedded_indexes.sh
#   INDEX=campaign bench/embedded_indexes.sh
#
# INDEX=answer measures the journey answers' index instead (`answer_index`: person, name, time,
# source, covering url, link_url, recipient_state; made while a journey answers): `serve
# --config` with an engagement journey against plain `serve`. INDEX=campaign the campaign
# metric views' index (`store.campaign_index = true`: campaign and time).
#
# The store is filled by bench/inspector_fill.sql (valid Iterable bodies, so the sink runs the
# real pipeline on each); before each round its embedded rows are deleted and the cursor set to
# 0 with sqlite3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

EVENTS=${EVENTS:-1000000}
INDEX=${INDEX:-person}
[[ $INDEX == person || $INDEX == answer || $INDEX == campaign ]] ||
  die "INDEX is person, answer or campaign, not $INDEX"
ROUNDS=${ROUNDS:-2}
WORK=$(mktemp -d "${WORK_ROOT:-/var/tmp}/hookhouse-indexbench.XXXXXX")
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
log "filling a store with $EVENTS requests"
sed "s/__N__/$EVENTS/g" bench/inspector_fill.sql | sqlite3 "$WORK/source/hookhouse.db"
# Every fill request carries an event of its own (the fill's resends and failures are rows it
# wrote, not bodies that read so), so the sink makes one event per request.
events=$EVENTS

# catchup VARIANT: seconds the sink takes to load the whole store again.
catchup() {
  local variant=$1 dir=$WORK/$1 seconds
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$WORK/source/hookhouse.db" "$dir/"
  local reset="DELETE FROM events; DELETE FROM failed_events; DELETE FROM journey_calls;
    UPDATE sink_cursors SET position = 0 WHERE sink = 'sqlite';"
  local admin=()
  if [[ $variant == with && $INDEX == person ]]; then
    reset+="CREATE INDEX events_email ON events (email, raw_seq) WHERE email IS NOT NULL;
      CREATE INDEX events_user_id ON events (user_id, raw_seq) WHERE user_id IS NOT NULL;"
    admin=(--admin "127.0.0.1:$(free_port)")
  elif [[ $variant == with && $INDEX == campaign ]]; then
    # The statement of src/spool/schema.rs's CAMPAIGN_INDEX.
    reset+="CREATE INDEX events_campaign ON events (campaign_id, created_at)
      WHERE campaign_id IS NOT NULL;"
    printf '[store]\ncampaign_index = true\n' >"$WORK/campaign.toml"
    admin=(--config "$WORK/campaign.toml")
  elif [[ $variant == with ]]; then
    # The statements of src/spool/schema.rs's ANSWER_INDEX.
    reset+="CREATE INDEX events_email_answer ON events (email, event_name, created_at, source,
        url, link_url, recipient_state) WHERE email IS NOT NULL;
      CREATE INDEX events_user_id_answer ON events (user_id, event_name, created_at, source,
        url, link_url, recipient_state) WHERE user_id IS NOT NULL;"
    printf '[[sources]]\nname = "default"\n[[sources]]\nname = "journeys"\n%s\n' \
      '[[sources.journeys]]
name = "engagement"
answer = "engagement"' >"$WORK/answers.toml"
    admin=(--config "$WORK/answers.toml")
  fi
  sqlite3 "$dir/hookhouse.db" "$reset VACUUM;"
  port=$(free_port)
  local start=$EPOCHREALTIME deadline=$((SECONDS + CATCHUP_TIMEOUT_S))
  "$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" "${admin[@]}" --data-dir "$dir" \
    >"$LOG_DIR/$variant.log" 2>&1 &
  SERVER_PID=$!
  # The sink's cursor, read from the store while it loads (WAL lets a reader in).
  until [[ $(sqlite3 "$dir/hookhouse.db" "SELECT position FROM sink_cursors WHERE sink = 'sqlite'" 2>/dev/null) == "$EVENTS" ]]; do
    ((SECONDS < deadline)) || die "the $variant store was not loaded in ${CATCHUP_TIMEOUT_S}s"
    sleep 0.05
  done
  seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }')
  stop_server hookhouse
  [[ $(sqlite3 "$dir/hookhouse.db" 'SELECT count(*) FROM events') == "$events" ]] ||
    die "the $variant store does not hold the $events events again"
  rm -rf "$dir"
  echo "$seconds"
}

results=()
for round in $(seq 1 "$ROUNDS"); do
  for variant in with without; do
    seconds=$(catchup "$variant")
    rate=$(python3 -c "print(round($events / $seconds))")
    log "round $round, $variant the indexes: $events events in $seconds s ($rate events/s)"
    results+=("$round $variant $seconds $rate")
  done
done
printf '\nround variant seconds events/s\n'
printf '%s\n' "${results[@]}"
python3 - "${results[@]}" <<'PY'
import sys
rates = {"with": [], "without": []}
for line in sys.argv[1:]:
    _, variant, _, rate = line.split()
    rates[variant].append(float(rate))
mean = lambda xs: sum(xs) / len(xs)
print(f"with / without the indexes: {mean(rates['with']) / mean(rates['without']):.3f} "
      f"({mean(rates['with']):.0f} vs {mean(rates['without']):.0f} events/s)")
PY
rm -rf "$WORK"
