"""Samples the PostgreSQL sink's lag for bench/postgres.sh, every 250 ms, from the spool.

Lag is the age of the oldest request the sink has not loaded (0 when caught up). On SIGTERM
prints `MAXLAG <seconds>` and `RATE <events/s>`: events the sink loaded per second between the
first and the last sample in which requests were still arriving.

Usage: python3 bench/pg_lag_sampler.py DATA_DIR/hookhouse.db
"""

import signal
import sqlite3
import sys
import time
from datetime import datetime, timezone

db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
samples = []  # (time, last seq, cursor position, events loaded, lag seconds)


def sample():
    now = time.time()
    last = db.execute("SELECT coalesce(max(seq), 0) FROM raw_requests").fetchone()[0]
    row = db.execute("SELECT position FROM sink_cursors WHERE sink = 'postgres'").fetchone()
    position = row[0] if row else 0
    oldest = db.execute(
        "SELECT received_at FROM raw_requests WHERE seq > ? ORDER BY seq LIMIT 1", (position,)
    ).fetchone()
    lag = 0.0
    if oldest:
        received = datetime.fromisoformat(oldest[0].replace("Z", "+00:00"))
        lag = max(0.0, now - received.timestamp())
    # The load sends one event per request, numbered from 1: the cursor counts loaded events.
    loaded = position
    samples.append((now, last, position, loaded, lag))


def finish(*_):
    arriving = [s for i, s in enumerate(samples) if i > 0 and s[1] > samples[i - 1][1]]
    rate = 0.0
    if len(arriving) >= 2:
        first, last = arriving[0], arriving[-1]
        rate = (last[3] - first[3]) / (last[0] - first[0])
    print(f"MAXLAG {max((s[4] for s in samples), default=0.0):.2f}")
    print(f"RATE {rate:.0f}")
    sys.stdout.flush()
    sys.exit(0)


signal.signal(signal.SIGTERM, finish)
while True:
    try:
        sample()
    except sqlite3.OperationalError:
        pass  # the store is busy or not created yet; the next sample will do
    time.sleep(0.25)
