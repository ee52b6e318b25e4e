-- wrk script for the batch section of scripts/bench.sh (issue #18):
-- setPresence sent one request at a time against the same writes sent as
-- Graph JSON batches. Run with one wrk thread (-t1); configured by
-- environment variables:
--
--   WRK_MODE    single  POST /v1.0/users/{id}/presence/setPresence, rotating
--                       over the users
--               batch   POST /v1.0/$batch of WRK_BATCH setPresence requests
--                       for consecutive users, rotating over the users
--               In both, each pass over the users flips every user between
--               Busy/InACall and DoNotDisturb/Presenting, so every write is
--               a change (event-log row, fsync'd before the answer).
--   WRK_USERS   how many users (ids user(0) … user(N-1))
--   WRK_SALT    first group of the user ids: user(i) is
--               printf '%08x-0000-4000-8000-%012x' SALT i
--   WRK_TOKENS  the bearer token (one: an application token with
--               Presence.ReadWrite.All)
--   WRK_APPS    its app id (setPresence's sessionId)
--   WRK_BATCH   requests per batch (default 20, Graph's limit)
--
-- done() prints one line, `wrk-result key=value …`: HTTP requests/s (rps),
-- setPresence calls per HTTP request (per_request: 1 or WRK_BATCH),
-- batched answers other than 200 (inner_errors; the script refuses a run
-- with any), latencies in microseconds.

local mode = os.getenv("WRK_MODE") or "single"
local users = tonumber(os.getenv("WRK_USERS") or "1000")
local salt = tonumber(os.getenv("WRK_SALT") or "1")
local token = os.getenv("WRK_TOKENS") or ""
local app = os.getenv("WRK_APPS") or ""
local per_batch = tonumber(os.getenv("WRK_BATCH") or "20")

local function user(i)
  return string.format("%08x-0000-4000-8000-%012x", salt, i)
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. token,
}

local function pair(busy)
  if busy then
    return "Busy", "InACall"
  end
  return "DoNotDisturb", "Presenting"
end

local function set_body(busy)
  local av, ac = pair(busy)
  return string.format(
    '{"sessionId":"%s","availability":"%s","activity":"%s","expirationDuration":"PT4H"}',
    app, av, ac)
end

local requests = {}
local next_request = 0
local inner_errors = 0 -- per thread; done() sums them over the threads
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  if mode == "single" then
    for pass = 0, 1 do
      for i = 0, users - 1 do
        requests[#requests + 1] = wrk.format("POST",
          "/v1.0/users/" .. user(i) .. "/presence/setPresence", headers, set_body(pass == 0))
      end
    end
  elseif mode == "batch" then
    local batches = math.floor(users / per_batch)
    if batches < 1 then
      error("WRK_USERS must be at least WRK_BATCH")
    end
    for pass = 0, 1 do
      for b = 0, batches - 1 do
        local items = {}
        for k = 0, per_batch - 1 do
          local i = b * per_batch + k
          items[#items + 1] = string.format(
            '{"id":"%d","method":"POST","url":"/users/%s/presence/setPresence",'
              .. '"headers":{"Content-Type":"application/json"},"body":%s}',
            k, user(i), set_body(pass == 0))
        end
        local body = '{"requests":[' .. table.concat(items, ",") .. ']}'
        requests[#requests + 1] = wrk.format("POST", "/v1.0/$batch", headers, body)
      end
    end
  else
    error("unknown WRK_MODE " .. mode)
  end
end

function request()
  local r = requests[next_request % #requests + 1]
  next_request = next_request + 1
  return r
end

if mode == "batch" then
  function response(status, hdrs, body)
    if status ~= 200 then
      return
    end
    local ok = 0
    for code in string.gmatch(body, '"status":(%d+)') do
      if code == "200" then
        ok = ok + 1
      end
    end
    inner_errors = inner_errors + (per_batch - ok)
    wrk.thread:set("inner_errors", inner_errors)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local per_request = 1
  if mode == "batch" then
    per_request = per_batch
  end
  local inner_errors = 0
  for _, thread in ipairs(threads) do
    inner_errors = inner_errors + (tonumber(thread:get("inner_errors")) or 0)
  end
  io.write(string.format(
    "wrk-result requests=%d secs=%.3f rps=%.1f per_request=%d inner_errors=%d "
      .. "status_errors=%d socket_errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, secs, summary.requests / secs, per_request, inner_errors,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
