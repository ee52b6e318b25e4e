-- wrk script for scripts/bench.sh (issue #14): the same requests go to the
-- bare axum baseline (examples/baseline.rs) and to presenced. Run with one
-- wrk thread (-t1); everything is configured by environment variables:
--
--   WRK_MODE    get   GET /v1.0/users/{id}/presence, rotating over the users
--               set   POST …/setPresence, rotating over the users; each pass
--                     flips every user between Busy/InACall and
--                     DoNotDisturb/Presenting, so every write is a change
--                     (event-log row, fsync'd before the answer); neither
--                     pair fades, so no scheduler work follows
--               load  POST …/setPresence once per (user, session), session
--                     j written with WRK_TOKENS[j] as app WRK_APPS[j]
--                     (Busy/InACall, PT4H); stops after the last answer
--               bulk  POST /v1.0/communications/getPresencesByUserId with
--                     WRK_IDS random loaded users (16 pre-built bodies)
--   WRK_USERS   how many users (ids user(0) … user(N-1))
--   WRK_SALT    first group of the user ids: user(i) is
--               printf '%08x-0000-4000-8000-%012x' SALT i
--   WRK_TOKENS  bearer token(s), space-separated (load: one per session)
--   WRK_APPS    app id(s) matching the tokens (setPresence's sessionId)
--   WRK_IDS     ids per bulk read (default 650)
--   WRK_OFFSET  get/set: start this many requests into the rotation
--               (default 0; two wrk processes on two nodes use it to stay
--               apart)
--   WRK_DONE_FILE  load: created once the last write is answered (wrk only
--               ends at its -d, so the script interrupts it then)
--
-- done() prints one line, `wrk-result key=value …`, for the script to parse
-- (latencies in microseconds).

local mode = os.getenv("WRK_MODE") or "get"
local users = tonumber(os.getenv("WRK_USERS") or "1000")
local salt = tonumber(os.getenv("WRK_SALT") or "1")

local function words(text)
  local out = {}
  for w in string.gmatch(text or "", "%S+") do
    out[#out + 1] = w
  end
  return out
end

local tokens = words(os.getenv("WRK_TOKENS"))
local apps = words(os.getenv("WRK_APPS"))

local function user(i)
  return string.format("%08x-0000-4000-8000-%012x", salt, i)
end

local function headers(j)
  local h = { ["Content-Type"] = "application/json" }
  if tokens[j] then
    h["Authorization"] = "Bearer " .. tokens[j]
  end
  return h
end

local function set_body(j, busy)
  local av, ac = "Busy", "InACall"
  if not busy then
    av, ac = "DoNotDisturb", "Presenting"
  end
  return string.format(
    '{"sessionId":"%s","availability":"%s","activity":"%s","expirationDuration":"PT4H"}',
    apps[j] or "", av, ac)
end

local function set_path(i)
  return "/v1.0/users/" .. user(i) .. "/presence/setPresence"
end

local requests = {}
local next_request = tonumber(os.getenv("WRK_OFFSET") or "0")
local total = 0
local answered = 0

function init(args)
  if mode == "get" then
    for i = 0, users - 1 do
      requests[#requests + 1] = wrk.format("GET", "/v1.0/users/" .. user(i) .. "/presence", headers(1))
    end
  elseif mode == "set" then
    for pass = 0, 1 do
      for i = 0, users - 1 do
        requests[#requests + 1] = wrk.format("POST", set_path(i), headers(1), set_body(1, pass == 0))
      end
    end
  elseif mode == "bulk" then
    local ids = tonumber(os.getenv("WRK_IDS") or "650")
    math.randomseed(20261124)
    for _ = 1, 16 do
      local picked = {}
      for k = 1, ids do
        picked[k] = '"' .. user(math.random(0, users - 1)) .. '"'
      end
      local body = '{"ids":[' .. table.concat(picked, ",") .. ']}'
      requests[#requests + 1] = wrk.format("POST", "/v1.0/communications/getPresencesByUserId", headers(1), body)
    end
  elseif mode == "load" then
    total = users * #tokens
  else
    error("unknown WRK_MODE " .. mode)
  end
end

function request()
  if mode == "load" then
    -- Session j of every user, then session j + 1; past the end (answers
    -- still in flight when the thread stops) it refreshes from the start.
    local i = next_request % total
    next_request = next_request + 1
    local j = math.floor(i / users) + 1
    return wrk.format("POST", set_path(i % users), headers(j), set_body(j, true))
  end
  local r = requests[next_request % #requests + 1]
  next_request = next_request + 1
  return r
end

if mode == "load" then
  function response(status, hdrs, body)
    answered = answered + 1
    if answered == total then
      local marker = os.getenv("WRK_DONE_FILE")
      if marker then
        io.open(marker, "w"):close()
      end
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "wrk-result requests=%d secs=%.3f rps=%.1f status_errors=%d socket_errors=%d "
      .. "p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, secs, summary.requests / secs, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
