//! The Lua scripts of the Redis store: each is one atomic unit on one
//! slot (see the module doc of `store::redis` for the keys).

use ::redis::Script;

/// The Lua scripts, loaded once.
pub(super) struct Scripts {
    pub(super) cas: Script,
    pub(super) mark: Script,
    pub(super) unmark: Script,
    pub(super) clear_mark: Script,
    pub(super) moves: Script,
    pub(super) trim: Script,
    pub(super) events: Script,
    pub(super) prune: Script,
    pub(super) create_subscription: Script,
    pub(super) update_subscription: Script,
    pub(super) delete_subscription: Script,
    pub(super) enqueue: Script,
    pub(super) due_deliveries: Script,
    pub(super) next_delivery: Script,
    pub(super) remove_deliveries: Script,
    pub(super) retry_deliveries: Script,
    pub(super) save_time: Script,
    pub(super) indexed_users: Script,
    pub(super) reset: Script,
    pub(super) restore_users: Script,
}

impl Scripts {
    /// Every script, hashed once (loaded into Redis on first use).
    pub(super) fn new() -> Self {
        Self {
            cas: Script::new(CAS),
            mark: Script::new(MARK),
            unmark: Script::new(UNMARK),
            clear_mark: Script::new(CLEAR_MARK),
            moves: Script::new(MOVE),
            trim: Script::new(TRIM),
            events: Script::new(EVENTS),
            prune: Script::new(PRUNE),
            create_subscription: Script::new(CREATE_SUBSCRIPTION),
            update_subscription: Script::new(UPDATE_SUBSCRIPTION),
            delete_subscription: Script::new(&format!("{STREAM}{DELETE_SUBSCRIPTION}")),
            enqueue: Script::new(ENQUEUE),
            due_deliveries: Script::new(&format!("{STREAM}{DUE_DELIVERIES}")),
            next_delivery: Script::new(&format!("{STREAM}{NEXT_DELIVERY}")),
            remove_deliveries: Script::new(&format!("{STREAM}{REMOVE_DELIVERIES}")),
            retry_deliveries: Script::new(&format!("{STREAM}{RETRY_DELIVERIES}")),
            save_time: Script::new(SAVE_TIME),
            indexed_users: Script::new(INDEXED_USERS),
            reset: Script::new(&format!("{STREAM}{RESET}")),
            restore_users: Script::new(RESTORE_USERS),
        }
    }
}

/// Stores the user's new facts and an outbox entry, if the write counter is
/// still the one the writer read. Answers `{n, outbox…}`, or `{}` on a
/// conflict.
const CAS: &str = r#"
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n ~= tonumber(ARGV[1]) then return {} end
n = n + 1
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'f', ARGV[3], 'n', n)
redis.call('RPUSH', KEYS[2], n .. ' ' .. ARGV[4])
local out = redis.call('LRANGE', KEYS[2], 0, -1)
table.insert(out, 1, tostring(n))
return out
"#;

/// Marks a user in-flight (KEYS: pend, pendat; ARGV: user).
const MARK: &str = r#"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1
"#;

/// Ends one writer's in-flight mark.
const UNMARK: &str = r#"
local c = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if c <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return c
"#;

/// The sweeper's: clears a mark unless it was renewed since it was read
/// (ARGV: user, the score read).
const CLEAR_MARK: &str = r#"
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"#;

/// Moves outbox entries to the global slot (KEYS: the moved-marks hash, the
/// in-flight count and times; ARGV: prefix, tenant:user, tenant, wanted n,
/// whether to end one writer's in-flight mark ("1"), then n/entry pairs in
/// order). Indexes the user (the tenant's `users:` set, the `tenants` set)
/// when anything new moves, and keeps its session count (`sc`) and the
/// total (`nsess`). Answers "seq queued" for the wanted n.
const MOVE: &str = r#"
local P, tu, tenant = ARGV[1], ARGV[2], ARGV[3]
local last = tonumber(redis.call('HGET', KEYS[1], tu) or '0')
local res = P .. 'res:' .. tu
if #ARGV >= 7 and tonumber(ARGV[#ARGV - 1]) > last then
  redis.call('ZADD', P .. 'users:' .. tenant, 0, string.sub(tu, #tenant + 2))
  redis.call('SADD', P .. 'tenants', tenant)
end
for i = 6, #ARGV, 2 do
  local n = tonumber(ARGV[i])
  if n > last then
    local e = cjson.decode(ARGV[i + 1])
    local seq, queued = 0, 0
    if e.ev then
      seq = redis.call('INCR', P .. 'seq')
      redis.call('ZADD', P .. 'ev', seq, seq)
      redis.call('ZADD', P .. 'evt:' .. tenant, seq, seq)
      redis.call('HSET', P .. 'evd', seq, e.ev)
    end
    if e.pay then
      for _, sid in ipairs(redis.call('SMEMBERS', P .. 'w:' .. tu)) do
        local exp = redis.call('HGET', P .. 'subexp', sid)
        if exp and tonumber(exp) > tonumber(e.now) then
          local id = redis.call('INCR', P .. 'dn')
          redis.call('HSET', P .. 'd:' .. id, 's', sid, 't', tenant, 'p', e.pay, 'c', e.now, 'n', e.now, 'a', 0)
          redis.call('ZADD', P .. 'dq', e.now, string.format('%020d', id))
          redis.call('SADD', P .. 'ds:' .. sid, id)
          queued = queued + 1
        end
      end
    end
    if e.due == '' then
      redis.call('ZREM', P .. 'due', tu)
    else
      redis.call('ZADD', P .. 'due', e.due, tu)
    end
    if e.s then
      local had, now = tonumber(redis.call('HGET', P .. 'sc', tu) or '0'), tonumber(e.s)
      redis.call('HSET', P .. 'sc', tu, e.s)
      redis.call('INCRBY', P .. 'nsess', now - had)
      if had == 0 and now > 0 then redis.call('INCR', P .. 'nonline') end
      if had > 0 and now == 0 then redis.call('DECR', P .. 'nonline') end
    end
    redis.call('HSET', KEYS[1], tu, n)
    redis.call('HSET', res, n, seq .. ' ' .. queued)
    last = n
  end
end
redis.call('EXPIRE', res, 600)
if ARGV[5] == '1' then
  local c = redis.call('HINCRBY', KEYS[2], tu, -1)
  if c <= 0 then
    redis.call('HDEL', KEYS[2], tu)
    redis.call('ZREM', KEYS[3], tu)
  end
end
return redis.call('HGET', res, ARGV[4])
"#;

/// Drops the leading outbox entries up to n (ARGV[1]).
const TRIM: &str = r#"
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local k = 0
for i, item in ipairs(items) do
  if tonumber(string.match(item, '^(%d+)')) <= tonumber(ARGV[1]) then k = i else break end
end
if k > 0 then redis.call('LTRIM', KEYS[1], k, -1) end
return k
"#;

/// Events after ARGV[2] from the index KEYS[1], at most ARGV[3]: flat
/// seq/blob pairs (ARGV[1]: prefix).
const EVENTS: &str = r#"
local seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, seq in ipairs(seqs) do
  local blob = redis.call('HGET', ARGV[1] .. 'evd', seq)
  if blob then
    table.insert(out, seq)
    table.insert(out, blob)
  end
end
return out
"#;

/// Drops events (ARGV: prefix, then seq/tenant pairs), raising
/// `pruned` to the last; answers how many were still there.
const PRUNE: &str = r#"
local P = ARGV[1]
local dropped, top = 0, 0
for i = 2, #ARGV, 2 do
  local seq = ARGV[i]
  if redis.call('ZREM', P .. 'ev', seq) == 1 then dropped = dropped + 1 end
  redis.call('ZREM', P .. 'evt:' .. ARGV[i + 1], seq)
  redis.call('HDEL', P .. 'evd', seq)
  if tonumber(seq) > top then top = tonumber(seq) end
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if top > cur then redis.call('SET', KEYS[1], top) end
return dropped
"#;

/// Creates a subscription if no subscription changed since the writer read
/// them, or in any case if the expected subv is "" (KEYS[1]: subv; ARGV:
/// prefix, expected subv, id, json, expiry, tenant, users…).
const CREATE_SUBSCRIPTION: &str = r#"
local P = ARGV[1]
if ARGV[2] ~= '' and tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', P .. 'subs', ARGV[3], ARGV[4])
redis.call('HSET', P .. 'subexp', ARGV[3], ARGV[5])
for i = 7, #ARGV do
  redis.call('SADD', P .. 'w:' .. ARGV[6] .. ':' .. ARGV[i], ARGV[3])
end
redis.call('INCR', KEYS[1])
return 1
"#;

/// Replaces a subscription of the same tenant (ARGV: prefix, id, tenant,
/// json, expiry).
const UPDATE_SUBSCRIPTION: &str = r#"
local P = ARGV[1]
local old = redis.call('HGET', P .. 'subs', ARGV[2])
if not old or cjson.decode(old).tenant ~= ARGV[3] then return 0 end
redis.call('HSET', P .. 'subs', ARGV[2], ARGV[4])
redis.call('HSET', P .. 'subexp', ARGV[2], ARGV[5])
redis.call('INCR', KEYS[1])
return 1
"#;

/// Deletes a subscription of the tenant, its watches and its deliveries
/// (ARGV: prefix, id, tenant).
const DELETE_SUBSCRIPTION: &str = r#"
local P, id = ARGV[1], ARGV[2]
local old = redis.call('HGET', P .. 'subs', id)
if not old then return 0 end
local s = cjson.decode(old)
if s.tenant ~= ARGV[3] then return 0 end
for _, u in ipairs(s.users) do
  redis.call('SREM', P .. 'w:' .. s.tenant .. ':' .. u, id)
end
for _, d in ipairs(redis.call('SMEMBERS', P .. 'ds:' .. id)) do
  unstream(P, d)
  redis.call('DEL', P .. 'd:' .. d)
  redis.call('ZREM', P .. 'dq', string.format('%020d', tonumber(d)))
end
redis.call('DEL', P .. 'ds:' .. id)
redis.call('HDEL', P .. 'once', id)
redis.call('HDEL', P .. 'subs', id)
redis.call('HDEL', P .. 'subexp', id)
redis.call('INCR', KEYS[1])
return 1
"#;

/// Queues deliveries (ARGV: prefix, now, then subscription/tenant/
/// payload/once quadruples). With `once` set ("1") a delivery is queued
/// only if the same subscription has not had one queued at the same `now`
/// (every node's scheduler queues a subscription's
/// `reauthorizationRequired` at the same instant: one is kept).
const ENQUEUE: &str = r#"
local P, now = ARGV[1], ARGV[2]
for i = 3, #ARGV, 4 do
  local fresh = true
  if ARGV[i + 3] == '1' then
    fresh = redis.call('HGET', P .. 'once', ARGV[i]) ~= now
    if fresh then redis.call('HSET', P .. 'once', ARGV[i], now) end
  end
  if fresh then
    local id = redis.call('INCR', KEYS[1])
    redis.call('HSET', P .. 'd:' .. id, 's', ARGV[i], 't', ARGV[i + 1], 'p', ARGV[i + 2], 'c', now, 'n', now, 'a', 0)
    redis.call('ZADD', P .. 'dq', now, string.format('%020d', id))
    redis.call('SADD', P .. 'ds:' .. ARGV[i], id)
  end
end
return 1
"#;

/// Shared by the delivery scripts (ARGV[1] is always the prefix): the
/// Redis server's time in milliseconds, the stream of due deliveries `S`
/// (consumer group `w`, one consumer per node), and `unstream`, which
/// ends a delivery's stream entry if it has one (acknowledged, deleted,
/// its lease dropped).
const STREAM: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local S = ARGV[1] .. 'dx'
local function unstream(P, id)
  local x = redis.call('HGET', P .. 'd:' .. id, 'x')
  if x then
    redis.call('XACK', S, 'w', x)
    redis.call('XDEL', S, x)
    redis.call('HDEL', P .. 'lease', x)
    redis.call('HDEL', P .. 'd:' .. id, 'x')
  end
end
"#;

/// Hands due deliveries to this node (KEYS[1]: the not-yet-due queue;
/// ARGV: prefix, now, count, me, lease ms): moves those due by `now` from
/// the queue into the stream, takes over stream entries whose holder's
/// lease lapsed (`XCLAIM`), reads the new ones (`XREADGROUP >`), then
/// answers this node's pending entries due by `now` (`XREADGROUP 0`),
/// renewing their lease: flat id/subscription/tenant/payload/created/
/// next/attempts groups.
const DUE_DELIVERIES: &str = r#"
local P, want, me = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local now = tonumber(ARGV[2])
local until_ms = string.format('%d', now_ms + tonumber(ARGV[5]))
if redis.call('EXISTS', S) == 0 then
  redis.call('XGROUP', 'CREATE', S, 'w', '0', 'MKSTREAM')
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1000)) do
  local id = tostring(tonumber(m))
  redis.call('ZREM', KEYS[1], m)
  if redis.call('EXISTS', P .. 'd:' .. id) == 1 then
    redis.call('HSET', P .. 'd:' .. id, 'x', redis.call('XADD', S, '*', 'd', id))
  end
end
for _, p in ipairs(redis.call('XPENDING', S, 'w', '-', '+', 10000)) do
  if p[2] ~= me and tonumber(redis.call('HGET', P .. 'lease', p[1]) or '0') <= now_ms then
    redis.call('XCLAIM', S, 'w', me, 0, p[1])
    redis.call('HSET', P .. 'lease', p[1], until_ms)
  end
end
local fresh = redis.call('XREADGROUP', 'GROUP', 'w', me, 'COUNT', 10000, 'STREAMS', S, '>')
if fresh and fresh[1] then
  for _, e in ipairs(fresh[1][2]) do redis.call('HSET', P .. 'lease', e[1], until_ms) end
end
local out, taken = {}, 0
local mine = redis.call('XREADGROUP', 'GROUP', 'w', me, 'COUNT', 10000, 'STREAMS', S, '0')
if mine and mine[1] then
  for _, e in ipairs(mine[1][2]) do
    if taken >= want then break end
    local xid, fields = e[1], e[2]
    local id = fields and fields[2]
    local f = id and redis.call('HMGET', P .. 'd:' .. id, 's', 't', 'p', 'c', 'n', 'a')
    if not f or not f[1] then
      redis.call('XACK', S, 'w', xid)
      redis.call('XDEL', S, xid)
      redis.call('HDEL', P .. 'lease', xid)
    elseif tonumber(f[5]) <= now then
      redis.call('HSET', P .. 'lease', xid, until_ms)
      table.insert(out, id)
      for j = 1, 6 do table.insert(out, f[j]) end
      taken = taken + 1
    end
  end
end
return out
"#;

/// The earliest `next_at` of a delivery not in `skip` (ARGV[3..]) among
/// the not-yet-due queue (KEYS[1]) and the stream entries this node holds
/// or whose holder's lease lapsed (ARGV: prefix, me).
const NEXT_DELIVERY: &str = r#"
local P, me = ARGV[1], ARGV[2]
local skip = {}
for i = 3, #ARGV do skip[ARGV[i]] = true end
local best = nil
local offset = 0
while offset < 20000 and not best do
  local page = redis.call('ZRANGE', KEYS[1], offset, offset + 199, 'WITHSCORES')
  if #page == 0 then break end
  offset = offset + #page / 2
  for i = 1, #page, 2 do
    if not skip[tostring(tonumber(page[i]))] then
      best = tonumber(page[i + 1])
      break
    end
  end
end
if redis.call('EXISTS', S) == 1 then
  for _, p in ipairs(redis.call('XPENDING', S, 'w', '-', '+', 10000)) do
    if p[2] == me or tonumber(redis.call('HGET', P .. 'lease', p[1]) or '0') <= now_ms then
      local e = redis.call('XRANGE', S, p[1], p[1])
      local id = e[1] and e[1][2] and e[1][2][2]
      if id and not skip[id] then
        local n = tonumber(redis.call('HGET', P .. 'd:' .. id, 'n') or 'none')
        if n and (not best or n < best) then best = n end
      end
    end
  end
end
if not best then return false end
return string.format('%d', best)
"#;

/// Removes deliveries (ARGV: prefix, ids…).
const REMOVE_DELIVERIES: &str = r#"
local P = ARGV[1]
for i = 2, #ARGV do
  local key = P .. 'd:' .. ARGV[i]
  local s = redis.call('HGET', key, 's')
  if s then redis.call('SREM', P .. 'ds:' .. s, ARGV[i]) end
  unstream(P, ARGV[i])
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], string.format('%020d', tonumber(ARGV[i])))
end
return 1
"#;

/// Counts a failed attempt and reschedules (ARGV: prefix, next, ids…).
const RETRY_DELIVERIES: &str = r#"
local P = ARGV[1]
for i = 3, #ARGV do
  local key = P .. 'd:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'a', 1)
    redis.call('HSET', key, 'n', ARGV[2])
    unstream(P, ARGV[i])
    redis.call('ZADD', KEYS[1], ARGV[2], string.format('%020d', tonumber(ARGV[i])))
  end
end
return 1
"#;

/// The user index: every indexed user of every tenant, as flat
/// tenant/user pairs (ARGV: prefix).
const INDEXED_USERS: &str = r#"
local P = ARGV[1]
local out = {}
for _, t in ipairs(redis.call('SMEMBERS', P .. 'tenants')) do
  for _, u in ipairs(redis.call('ZRANGE', P .. 'users:' .. t, 0, -1)) do
    table.insert(out, t)
    table.insert(out, u)
  end
end
return out
"#;

/// Wipes one tenant (ARGV[2]) or every tenant (ARGV[2] = "") from the
/// global slot: its users' index entries, session counts and schedule,
/// its events, its
/// subscriptions with their watches and their queued deliveries; a wipe
/// of every tenant also marks the whole event log pruned (KEYS[1]: subv;
/// ARGV[1]: prefix). Answers the wiped users as flat tenant/user pairs, for
/// the caller to wipe their facts in their own slots.
const RESET: &str = r#"
local P, only = ARGV[1], ARGV[2]
local function wiped_tenant(t) return only == '' or t == only end
local tenants = {only}
if only == '' then tenants = redis.call('SMEMBERS', P .. 'tenants') end
local wiped = {}
for _, t in ipairs(tenants) do
  for _, u in ipairs(redis.call('ZRANGE', P .. 'users:' .. t, 0, -1)) do
    table.insert(wiped, t)
    table.insert(wiped, u)
    redis.call('ZREM', P .. 'due', t .. ':' .. u)
    local had = redis.call('HGET', P .. 'sc', t .. ':' .. u)
    if had then
      redis.call('HDEL', P .. 'sc', t .. ':' .. u)
      redis.call('DECRBY', P .. 'nsess', had)
      if tonumber(had) > 0 then redis.call('DECR', P .. 'nonline') end
    end
  end
  for _, seq in ipairs(redis.call('ZRANGE', P .. 'evt:' .. t, 0, -1)) do
    redis.call('ZREM', P .. 'ev', seq)
    redis.call('HDEL', P .. 'evd', seq)
  end
  redis.call('DEL', P .. 'users:' .. t, P .. 'evt:' .. t)
  redis.call('SREM', P .. 'tenants', t)
end
local subs = redis.call('HGETALL', P .. 'subs')
for i = 1, #subs, 2 do
  local id, s = subs[i], cjson.decode(subs[i + 1])
  if wiped_tenant(s.tenant) then
    for _, u in ipairs(s.users) do
      redis.call('SREM', P .. 'w:' .. s.tenant .. ':' .. u, id)
    end
    redis.call('DEL', P .. 'ds:' .. id)
    redis.call('HDEL', P .. 'once', id)
    redis.call('HDEL', P .. 'subs', id)
    redis.call('HDEL', P .. 'subexp', id)
  end
end
for _, m in ipairs(redis.call('ZRANGE', P .. 'dq', 0, -1)) do
  local id = tostring(tonumber(m))
  local t = redis.call('HGET', P .. 'd:' .. id, 't')
  if not t or wiped_tenant(t) then
    redis.call('DEL', P .. 'd:' .. id)
    redis.call('ZREM', P .. 'dq', m)
  end
end
if redis.call('EXISTS', S) == 1 then
  for _, e in ipairs(redis.call('XRANGE', S, '-', '+')) do
    local id = e[2] and e[2][2]
    local t = id and redis.call('HGET', P .. 'd:' .. id, 't')
    if not t or wiped_tenant(t) then
      redis.call('XACK', S, 'w', e[1])
      redis.call('XDEL', S, e[1])
      redis.call('HDEL', P .. 'lease', e[1])
      if id then redis.call('DEL', P .. 'd:' .. id) end
    end
  end
end
if only == '' then
  local seq = redis.call('GET', P .. 'seq')
  if seq then redis.call('SET', P .. 'pruned', seq) end
end
redis.call('INCR', KEYS[1])
return wiped
"#;

/// Indexes restored users, counts their sessions and schedules their next
/// transitions (ARGV: prefix, then tenant/user/due/sessions quadruples,
/// due "" for none).
const RESTORE_USERS: &str = r#"
local P = ARGV[1]
for i = 2, #ARGV, 4 do
  local t, u, due = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local had = tonumber(redis.call('HGET', P .. 'sc', t .. ':' .. u) or '0')
  local now = tonumber(ARGV[i + 3])
  redis.call('HSET', P .. 'sc', t .. ':' .. u, ARGV[i + 3])
  redis.call('INCRBY', P .. 'nsess', now - had)
  if had == 0 and now > 0 then redis.call('INCR', P .. 'nonline') end
  if had > 0 and now == 0 then redis.call('DECR', P .. 'nonline') end
  redis.call('ZADD', P .. 'users:' .. t, 0, u)
  redis.call('SADD', P .. 'tenants', t)
  if due ~= '' then redis.call('ZADD', P .. 'due', due, t .. ':' .. u) end
end
return 1
"#;

/// Keeps the later emulator time.
const SAVE_TIME: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(cur) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"#;
