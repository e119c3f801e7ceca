-- wrk script for bench/run.sh and bench/growth.sh: POSTs an Iterable `emailOpen` system webhook
-- (~600 bytes) whose body is different on every request, so a receiver that deduplicates or
-- caches cannot look faster than one that stores each request. Ends with one machine-readable
-- `BENCH ...` line.
--
-- `createdAt` is the current second ("realistic", live traffic) unless the global
-- BODY_CREATED_AT is "mixed", which bench/mixed_body.lua sets before loading this file: then
-- live traffic is interleaved with a redelivered backlog (see created_at_offset below).
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
local created_at_mode = BODY_CREATED_AT or "now"
if created_at_mode ~= "now" and created_at_mode ~= "mixed" then
  error("BODY_CREATED_AT must be \"now\" or \"mixed\", not \"" .. tostring(created_at_mode) .. "\"")
end
-- The outage whose backlog "mixed" redelivers: its events happened up to an hour ago.
local BACKLOG_S = 3600
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

-- Seconds before now for this request's `createdAt`. "now": 0, every event is seconds old, so
-- consecutive events share a second. "mixed": what Iterable sends after an outage, when it
-- redelivers the backlog while live events keep coming: every other request is live (0), the
-- others walk through the last hour oldest first, one second further per backlog request, and
-- start over after 3,600 (so 3,600 distinct seconds per 7,200 requests of a thread).
local function created_at_offset()
  if created_at_mode == "mixed" and counter % 2 == 0 then
    return BACKLOG_S - (counter / 2) % BACKLOG_S
  end
  return 0
end

function request()
  counter = counter + 1
  -- 32 hex digits: thread (8) + run salt (8) + counter (16); unique across threads and runs.
  local message_id = string.format("%08x%08x%016x", thread_id, run_salt, counter)
  local email = string.format("user%d.%d@example.com", thread_id, counter % 100000)
  local created_at = os.date("!%Y-%m-%d %H:%M:%S +00:00", os.time() - created_at_offset())
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
