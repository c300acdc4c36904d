"""The Lua scripts of :class:`~spane.state.redis.RedisStateStore`, one atomic step each.

Every script's contract (KEYS, ARGV, reply) is written above it. Floats travel as
Python ``repr`` strings so no precision is lost in Lua's number formatting.
"""

from __future__ import annotations

_WRITE_TIMERS = """
-- The timers the records cancel (C ids from ARGV[first]) and schedule (S id / fire_at /
-- Timer JSON triples after them); returns the index of the argument after them.
local function write_timers(timers, data, first, cancels, schedules)
  for i = first, first + cancels - 1 do
    redis.call('ZREM', timers, ARGV[i])
    redis.call('HDEL', data, ARGV[i])
  end
  local at = first + cancels
  for i = at, at + 3 * (schedules - 1), 3 do
    redis.call('ZADD', timers, ARGV[i + 1], ARGV[i])
    redis.call('HSET', data, ARGV[i], ARGV[i + 2])
  end
  return at + 3 * schedules
end
"""

_WRITE_EXECUTION = (
    _WRITE_TIMERS
    + """
local function hset_pairs(key, first, last)
  for i = first, last, 1000 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end

local function record_applied(applied, log, event_id, commands, max_applied)
  if redis.call('HSET', applied, event_id, commands) == 1 then
    local size = redis.call('RPUSH', log, event_id)
    if size > max_applied then
      local dropped = redis.call('LPOP', log, size - max_applied)
      redis.call('HDEL', applied, unpack(dropped))
    end
  end
end

-- A finished execution is queued for the archive (scored by when it is due); its
-- keys expire only once it is archived (ARCHIVED), so retention never deletes an
-- execution the archive does not hold.
local function queue_archive(key, due, execution_id)
  if due ~= '0' then
    redis.call('ZADD', key, 'NX', due, execution_id)
  end
end
"""
)

CREATE = (
    _WRITE_EXECUTION
    + """
-- KEYS: meta, nodes, applied, applied-log, executions index, workflow executions index,
--       to-archive zset, loops, timers zset, timer-data hash (the execution's shard's)
-- ARGV: meta JSON (without the input), event id, commands JSON, max applied, archive
--       due ('0' = running), created_at, execution id, number of loop data fields L,
--       timers cancelled C, timers scheduled S, input JSON, then L field / JSON pairs,
--       then C timer ids, then S timer id / fire_at / Timer JSON triples, then node id /
--       NodeState JSON pairs
-- Reply: 0 if the execution exists (nothing written), else 1.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- The timers first: a write Redis refuses then aborts the script before any other.
local loops_end = 11 + 2 * tonumber(ARGV[8])
local nodes_from = write_timers(KEYS[9], KEYS[10], loops_end + 1, tonumber(ARGV[9]),
  tonumber(ARGV[10]))
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[8])
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'revision', 1, 'input', ARGV[11], 'created', ARGV[6])
hset_pairs(KEYS[8], 12, loops_end)
hset_pairs(KEYS[2], nodes_from, #ARGV)
record_applied(KEYS[3], KEYS[4], ARGV[2], ARGV[3], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[7])
queue_archive(KEYS[7], ARGV[5], ARGV[7])
return 1
"""
)

COMMIT = (
    _WRITE_EXECUTION
    + """
-- KEYS: meta, nodes, applied, applied-log, to-archive zset, loops, timers zset,
--       timer-data hash (the execution's shard's)
-- ARGV: expected revision, meta JSON (without the input if the create stored it
--       apart; the input field is never written here), max applied, archive due ('0' = running),
--       execution id, number of events N, number of loop data fields L, timers
--       cancelled C, timers scheduled S, created_at, then N event id / commands JSON
--       pairs, then L field / JSON pairs, then C timer ids, then S timer id / fire_at /
--       Timer JSON triples, then node id / NodeState JSON pairs
-- Reply: the new revision, or -1 (nothing written) if the stored revision differs
--        from the expected one, the execution does not exist, it is another
--        incarnation of the id (created at another time: a view of the one before,
--        expired, cannot write over it), or one of the events was applied already.
local current = redis.call('HMGET', KEYS[1], 'revision', 'created')
if not current[1] or current[1] ~= ARGV[1] then
  return -1
end
if current[2] and current[2] ~= ARGV[10] then
  return -1
end
local events_end = 10 + 2 * tonumber(ARGV[6])
for i = 11, events_end, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then
    return -1
  end
end
-- The timers first: a write Redis refuses then aborts the script before any other.
local loops_end = events_end + 2 * tonumber(ARGV[7])
local nodes_from = write_timers(KEYS[7], KEYS[8], loops_end + 1, tonumber(ARGV[8]),
  tonumber(ARGV[9]))
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
local revision = redis.call('HINCRBY', KEYS[1], 'revision', 1)
for i = 11, events_end, 2 do
  record_applied(KEYS[3], KEYS[4], ARGV[i], ARGV[i + 1], tonumber(ARGV[3]))
end
hset_pairs(KEYS[6], events_end + 1, loops_end)
hset_pairs(KEYS[2], nodes_from, #ARGV)
queue_archive(KEYS[5], ARGV[4], ARGV[5])
-- Running again (a retry of a finished execution): out of the archive queue, and the
-- retention an archived execution's keys had is over (the archive upserts it again
-- when it finishes).
if ARGV[4] == '0' then
  if redis.call('PERSIST', KEYS[1]) == 1 then
    redis.call('PERSIST', KEYS[2])
    redis.call('PERSIST', KEYS[3])
    redis.call('PERSIST', KEYS[4])
    redis.call('PERSIST', KEYS[6])
  end
  redis.call('ZREM', KEYS[5], ARGV[5])
end
return revision
"""
)

PREFETCH_LOOP = """
-- KEYS: nodes, loops
-- ARGV: loop node id, M (iterations of it that finished in the batch being loaded)
-- Reply: field / JSON (nil: never written) pairs, flat: the loop data the batch's
--        events will likely read: the items of the next M iterations to start, and
--        every result when the loop may complete (nothing left to start, at most M
--        running). A field this misses is loaded when the core asks for it.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return {}
end
local state = cjson.decode(raw)
local loop = state['loop']
if type(loop) ~= 'table' or type(loop['total']) ~= 'number' then
  return {}
end
local m = tonumber(ARGV[2])
local first, total = loop['next'], loop['total']
local prefix = ARGV[1] .. ':' .. state['attempt'] .. ':'
local fields = {}
for i = first, math.min(first + m, total) - 1 do
  fields[#fields + 1] = prefix .. 'i:' .. i
end
if first >= total and #loop['running'] <= m then
  for i = 0, total - 1 do
    fields[#fields + 1] = prefix .. 'r:' .. i
  end
end
local out = {}
for i = 1, #fields, 1000 do
  local last = math.min(i + 999, #fields)
  local values = redis.call('HMGET', KEYS[2], unpack(fields, i, last))
  for j = i, last do
    out[#out + 1] = fields[j]
    out[#out + 1] = values[j - i + 1]
  end
end
return out
"""

LIST_EXECUTIONS = """
-- KEYS: the index to read (zset by created_at), the global index
-- ARGV: limit, meta key prefix, meta key suffix (prefix .. id .. suffix = meta key)
-- Reply: up to `limit` {ExecutionMeta JSON, input JSON or false} pairs, newest first.
--        Ids whose meta has expired are removed from both indexes on the way.
-- The meta keys are derived from the index, so this script is for a single Redis node.
local limit = tonumber(ARGV[1])
local found = {}
local start = 0
while #found < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + limit - 1)
  local stale = 0
  for _, id in ipairs(ids) do
    local meta = redis.call('HMGET', ARGV[2] .. id .. ARGV[3], 'meta', 'input')
    if not meta[1] then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      stale = stale + 1
    elseif #found < limit then
      found[#found + 1] = meta
    end
  end
  if #ids < limit then
    break
  end
  start = start + #ids - stale
end
return found
"""

UPDATE_TIMERS = (
    _WRITE_TIMERS
    + """
-- KEYS: timers zset, timer-data hash (one shard's)
-- ARGV: timers cancelled C, timers scheduled S, then C timer ids, then S timer id /
--       fire_at / Timer JSON triples
-- Reply: 1.
write_timers(KEYS[1], KEYS[2], 3, tonumber(ARGV[1]), tonumber(ARGV[2]))
return 1
"""
)

CLAIM_TIMERS = """
-- KEYS: timers zset, timer-data hash
-- ARGV: now, limit, lease end (now + lease)
-- Reply: the JSON of up to `limit` timers scored <= now. Each is re-scored to the
--        lease end, so it is due again then unless acknowledged (its claimer died).
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local claimed = {}
for _, id in ipairs(ids) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    claimed[#claimed + 1] = data
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return claimed
"""

CLAIM_ARCHIVE = """
-- KEYS: to-archive zset
-- ARGV: now, limit, lease end (now + lease)
-- Reply: up to `limit` execution ids due for the archive, each re-scored to the lease
--        end: due again then unless ARCHIVED (its archiver died).
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
end
return ids
"""

ACK_TIMERS = """
-- KEYS: timers zset, timer-data hash
-- ARGV: timer id / claimed Timer JSON pairs
-- Reply: how many timers were removed. A timer whose stored JSON differs from the
--        claimed one was re-scheduled since the claim and stays.
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""

CLAIM_TASK = """
-- KEYS: the task's claim hash {worker, expires_at, result, cancelled}[, the execution's
--       nodes hash when the attempt is checked]
-- ARGV: worker id, now, lease end (now + lease), key TTL in ms[, node id, attempt]
-- Reply: {'finished', TaskResult JSON} when a result is stored; {'cancelled'} when the
--        attempt was cancelled; {'unknown'} when the node's running attempt is not this
--        one (a forged or superseded task message); {'running', worker} when another
--        worker's claim is still live; else {'claimed'} after taking (or renewing) it.
local claim = redis.call('HMGET', KEYS[1], 'worker', 'expires_at', 'result', 'cancelled')
if claim[3] then
  return {'finished', claim[3]}
end
if claim[4] then
  return {'cancelled'}
end
if KEYS[2] then
  local raw = redis.call('HGET', KEYS[2], ARGV[5])
  if not raw then
    return {'unknown'}
  end
  local node = cjson.decode(raw)
  if node['status'] ~= 'running' or tonumber(node['attempt']) ~= tonumber(ARGV[6]) then
    return {'unknown'}
  end
end
if claim[1] and claim[1] ~= ARGV[1] and tonumber(claim[2]) > tonumber(ARGV[2]) then
  return {'running', claim[1]}
end
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'claimed'}
"""

ACQUIRE_SLOT = """
-- KEYS: slot holders set, slot queue zset (FIFO by score)
-- ARGV: execution id, limit
-- Reply: 1 if the execution holds a slot (already, or taken now: there is room and
--        nobody is queued); else 0 after queueing it at the end (once).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  local score = 0
  if last[2] then
    score = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[2], score, ARGV[1])
end
return 0
"""

RELEASE_SLOT = """
-- KEYS: slot holders set, slot queue zset (FIFO by score)
-- ARGV: execution id, limit
-- Reply: the queued executions (oldest first) that now hold the freed slot(s).
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local promoted = {}
local free = tonumber(ARGV[2]) - redis.call('SCARD', KEYS[1])
if free > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], free)
  for i = 1, #popped, 2 do
    redis.call('SADD', KEYS[1], popped[i])
    promoted[#promoted + 1] = popped[i]
  end
end
return promoted
"""
