-- wrk script for bench/journey_answers.sh: GETs one journey endpoint, as a User Profile or Live
-- Data tile calls it, for a random person of bench/inspector_fill.sql's store each time, and ends
-- with one machine-readable `BENCH ...` line (the fields of bench/unique_body.lua's, plus the
-- first answer that was not 2xx, so a failing run says what it was answered).
--
-- Environment:
--   JOURNEY_PATH   the endpoint, e.g. /iterable/journeys/journey/engagement (required)
--   JOURNEY_TOKEN  a bearer token for the source, sent as `Authorization: Bearer <token>` (optional)
--   PEOPLE         how many people the store has: user0 .. user<PEOPLE-1>@example.com (500000)
--
-- Usage: JOURNEY_PATH=/iterable/default/journey/plain \
--          wrk -t1 -c2 -d10s --latency -s bench/journey_answers.lua http://127.0.0.1:PORT

local path = os.getenv("JOURNEY_PATH") or error("JOURNEY_PATH is not set")
local token = os.getenv("JOURNEY_TOKEN") or ""
local people = tonumber(os.getenv("PEOPLE") or "500000")

-- Setup phase (main Lua state): a distinct seed per thread, so threads ask for different people.
local threads = {}
local next_thread_id = 1

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

-- Running phase (one Lua state per thread).
local headers = {}
if token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end
not2xx = 0
first_not2xx = ""

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  local person = math.random(0, people - 1)
  return wrk.format("GET", string.format("%s?email=user%d%%40example.com", path, person), headers)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    not2xx = not2xx + 1
    if first_not2xx == "" then
      first_not2xx = status .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

-- Done phase (main Lua state). wrk reports durations and latencies in microseconds. `non2xx`
-- counts every answer outside 200..299 (wrk's own `errors.status` counts only those above 399).
function done(summary, latency, requests)
  local count, first = 0, ""
  for _, thread in ipairs(threads) do
    count = count + thread:get("not2xx")
    if first == "" then
      first = thread:get("first_not2xx")
    end
  end
  local duration_s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d non2xx=%d errors_connect=%d errors_read=%d errors_write=%d "
      .. "errors_timeout=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, count, e.connect, e.read, e.write, e.timeout, duration_s,
    summary.requests / duration_s, latency:percentile(50) / 1000, latency:percentile(99) / 1000
  ))
  if count > 0 then
    io.write("FIRST_NOT_2XX " .. string.gsub(first, "\n", " ") .. "\n")
  end
end
