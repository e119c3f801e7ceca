-- wrk script for bench/run.sh and bench/growth.sh (BODIES=mixed): the bodies of
-- bench/unique_body.lua, whose `createdAt` values mix live traffic with a backlog Iterable
-- redelivers after an outage (every other request: a second of the last hour, 3,600 distinct
-- ones in turn). Same template, same unique `messageId`, same `BENCH ...` line: this file only
-- selects the mode and loads that one.
--
-- Usage: wrk -t2 -c200 -d10s --latency -s bench/mixed_body.lua http://127.0.0.1:PORT/iterable/default

BODY_CREATED_AT = "mixed"

-- wrk loads a script by its path, so its chunk name is "@<path>": the template sits beside it.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "unique_body.lua")
