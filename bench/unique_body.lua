-- wrk script for bench/run.sh: POSTs an Iterable `emailOpen` system webhook (~600 bytes) whose
-- body is different on every request, so a receiver that deduplicates or caches cannot look
-- faster than one that stores each request. Ends with one machine-readable `BENCH ...` line.
--
-- Usage: wrk -t2 -c50 -d10s --latency -s bench/unique_body.lua http://127.0.0.1:PORT/iterable/default

-- Setup phase (main Lua state): give each thread a distinct id, plus a per-run salt so two runs
-- of the benchmark never send the same bodies either.
local next_thread_id = 1
local run_salt = os.time() % 0x10000000

function setup(thread)
  thread:set("thread_id", next_thread_id)
  thread:set("run_salt", run_salt)
  next_thread_id = next_thread_id + 1
end

-- Running phase (one Lua state per thread). Globals set by setup() are visible here.
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

-- The shape Iterable documents for an `emailOpen` system webhook. `%s` slots: email (x2),
-- createdAt, messageId, email. createdAt is the send time in Iterable's own format, as in real
-- traffic, where events reach the webhook seconds after they happen.
local template = '{"email":"%s","eventName":"emailOpen","dataFields":{'
  .. '"email":"%s","createdAt":"%s",'
  .. '"campaignId":12345,"templateId":67890,"messageId":"%s",'
  .. '"emailId":"c12345:t67890:%s",'
  .. '"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
  .. '(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",'
  .. '"userAgentDevice":"Computer","ip":"203.0.113.7","city":"San Francisco",'
  .. '"region":"CA","country":"US","proxySource":"Gmail","isBot":false,'
  .. '"contentId":331201,"catalogCollectionCount":0,"catalogLookupCount":0,'
  .. '"channelId":2598,"messageTypeId":2870,"locale":null}}'

function request()
  counter = counter + 1
  -- 32 hex digits: thread (8) + run salt (8) + counter (16); unique across threads and runs.
  local message_id = string.format("%08x%08x%016x", thread_id, run_salt, counter)
  local email = string.format("user%d.%d@example.com", thread_id, counter % 100000)
  local created_at = os.date("!%Y-%m-%d %H:%M:%S +00:00")
  local body = string.format(template, email, email, created_at, message_id, email)
  return wrk.format("POST", nil, headers, body)
end

-- Done phase (main Lua state). wrk reports durations and latencies in microseconds.
-- `non2xx` is wrk's `errors.status`, which counts responses with a status above 399.
function done(summary, latency, requests)
  local duration_s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d non2xx=%d errors_connect=%d errors_read=%d errors_write=%d "
      .. "errors_timeout=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout, duration_s,
    summary.requests / duration_s, latency:percentile(50) / 1000, latency:percentile(99) / 1000
  ))
end
