#!/usr/bin/env bash
# Peak memory of hookhouse under load that tries to make it hold request bodies (hardening
# finding 4): 4 HTTP/2 connections x 200 streams x 1 MiB without END_STREAM, and 1,000
# concurrent 1 MiB HTTP/1.1 POSTs. Each scenario gets a fresh server with the default
# configuration; the figure is its VmHWM (peak RSS) from /proc.
#
# Usage (from the repo root):  bench/memory.sh [path/to/hookhouse]
# Without an argument it builds and measures the release binary of this checkout.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
# The server is what is measured: release. The load generator is built like the tests (its
# dev-dependencies would otherwise change the release build's features and rebuild it all).
cargo build --release --bin hookhouse >&2
cargo build --example memory >&2
HOOKHOUSE_BIN=${1:-$TARGET_DIR/release/hookhouse}
LOAD_BIN="$TARGET_DIR/debug/examples/memory"
ulimit -n 65536 2>/dev/null || true

SERVER_PID=""
DATA_DIR=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  [[ -n $DATA_DIR ]] && rm -rf "$DATA_DIR"
  return 0
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_scenario MODE: starts a server, runs the load, prints the peak RSS in MiB.
run_scenario() {
  local mode=$1 port
  port=$(free_port)
  DATA_DIR=$(mktemp -d /tmp/hookhouse-memory.XXXXXX)
  "$HOOKHOUSE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$DATA_DIR" \
    >"$DATA_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    sleep 0.1
  done
  local idle_kb
  idle_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
  local outcome
  outcome=$("$LOAD_BIN" "$mode" "127.0.0.1:$port")
  local peak_kb
  peak_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  rm -rf "$DATA_DIR"
  DATA_DIR=""
  printf '%-3s  idle %4d MiB  peak %5d MiB  %s\n' "$mode" $((idle_kb / 1024)) \
    $((peak_kb / 1024)) "$outcome"
}

echo "hookhouse: $HOOKHOUSE_BIN"
run_scenario h2
run_scenario h1
