#!/usr/bin/env python3
"""Per-request latency of one journey endpoint, for bench/journey_answers.sh.

wrk's latency percentiles on a shared disk are made by the stalls of the durable append every
journey call is (a plain call's wrk p99 reached 145-400 ms while its median was 0.5 ms), and
it has no way to say which requests stalled. This client times each request on its own
keep-alive connection (CONNS of them, in threads), for random people of
bench/inspector_fill.sql's store, and prints one line:

    TIMED n=<requests> p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. non2xx=..

Usage: journey_latency.py PORT PATH REQUESTS CONNS PEOPLE [TOKEN]
"""

import http.client
import random
import statistics
import sys
import threading
import time


def run(port, path, count, token, people, seed, out, failures):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(count):
        url = f"{path}?email=user{rng.randrange(people)}%40example.com"
        started = time.perf_counter()
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - started)
        if not 200 <= response.status < 300:
            failures.append(response.status)
    conn.close()


def main():
    port, path, requests, conns, people = sys.argv[1:6]
    token = sys.argv[6] if len(sys.argv) > 6 else ""
    conns, requests, people = int(conns), int(requests), int(people)
    timings, failures = [], []
    threads = [
        threading.Thread(
            target=run,
            args=(int(port), path, requests // conns, token, people, seed, timings, failures),
        )
        for seed in range(conns)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = sorted(t * 1000 for t in timings)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(
        f"TIMED n={len(ms)} p50_ms={statistics.median(ms):.2f} p90_ms={pick(0.90):.2f} "
        f"p99_ms={pick(0.99):.2f} max_ms={ms[-1]:.2f} non2xx={len(failures)}"
    )


if __name__ == "__main__":
    main()
