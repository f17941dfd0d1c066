// The Lua scripts the Redis adapter runs. Each one is a single atomic step in Redis, so numbering,
// storing and publishing can never be seen half done by another instance.
//
// Key layout (P is the prefix, `echohub:` by default; a room's keys share the hash tag `{room}`):
//   P{room}:state     hash: `seq` (last message number), `joins` (join counter, orders members),
//                     `epoch` (made with the hash: a room forgotten, or a Redis restarted empty, gets a new one)
//   P{room}:members   hash: client_id -> "<join order>,<instance>,<user JSON or empty>"
//   P{room}:history   stream capped at historySize, entry ID "<seq>-1", field `f` = the frame
//   P{room}:channel   pub/sub channel of the room's messages and presence events
//   P{room}:key:<k>   an idempotent send's key (`<key>` or `<key>|<user id>`): "<id>,<seq>,<epoch>", expiring with the window
//   P lobby-key:<k>   the same for the lobby: "<id>,,"
//   P rooms           sorted set: room -> +inf while it has members, else when it is forgotten (ms)
//   P id              the cluster-wide message counter; P epochs: a counter that makes each epoch new
//   P instance-counter, P instances (set of live instance numbers), P instance:<n> (heartbeat, with a TTL)
//   P lobby           pub/sub channel of lobby messages
//
// Channel messages: `m<id>,<seq>,<epoch>,<frame>` (seq and epoch empty in the lobby) and
// `p<j|l>,<client_id>,<count>,<user JSON or empty>`.
import { createHash } from 'node:crypto'

export interface Script {
  readonly lua: string
  readonly sha: string
}

function script (body: string): Script {
  const lua = COMMON + body
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

const COMMON = `
local function now ()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A room exists while it has members (score +inf) or until the time it is forgotten.
local function exists (rooms, room, t)
  local score = redis.call('ZSCORE', rooms, room)
  return score ~= false and (score == 'inf' or tonumber(score) > t)
end

-- Room keys left from a forgotten room are dropped; false when maxRooms rooms exist already.
local function create (rooms, t, maxRooms, state, members, history)
  redis.call('ZREMRANGEBYSCORE', rooms, '-inf', t)
  if redis.call('ZCARD', rooms) >= maxRooms then return false end
  redis.call('DEL', state, members, history)
  return true
end

-- The room history's epoch, made when its state is: a short string no earlier life of the room had.
local function epochOf (state, room, counter)
  local epoch = redis.call('HGET', state, 'epoch')
  if epoch then return epoch end
  local t = redis.call('TIME')
  epoch = string.sub(redis.sha1hex(room .. ':' .. t[1] .. ':' .. t[2] .. ':' .. redis.call('INCR', counter)), 1, 12)
  redis.call('HSET', state, 'epoch', epoch)
  return epoch
end

-- An empty room is forgotten, history included, ttl ms from now.
local function forgetLater (rooms, room, t, ttl, state, history)
  if ttl <= 0 then
    redis.call('DEL', state, history)
    redis.call('ZREM', rooms, room)
  else
    redis.call('PEXPIRE', state, ttl)
    redis.call('PEXPIRE', history, ttl)
    redis.call('ZADD', rooms, t + ttl, room)
  end
end
`

/**
 * Room message. KEYS: id, rooms, state, members, history, epoch counter, and the send's key if it has one.
 * ARGV: room, head, tail, historySize, maxRooms, roomTtl, channel, dedupe window (ms).
 * Returns {id, seq, duplicate (0|1), epoch}, or 0 when the room would be one too many. A key seen
 * within the window in this epoch of the room: the first message's numbers, nothing published.
 */
export const PUBLISH = script(`
local t = now()
local room = ARGV[1]
local fresh = not exists(KEYS[2], room, t)
if fresh and not create(KEYS[2], t, tonumber(ARGV[5]), KEYS[3], KEYS[4], KEYS[5]) then return 0 end
local epoch = epochOf(KEYS[3], room, KEYS[6])
if KEYS[7] then
  local first = redis.call('GET', KEYS[7])
  if first then
    local fid, fseq, fepoch = string.match(first, '^(%d+),(%d+),(.*)$')
    if fepoch == epoch then return {tonumber(fid), tonumber(fseq), 1, epoch} end
  end
end
local id = redis.call('INCR', KEYS[1])
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
local frame = ARGV[2] .. ',"id":' .. id .. ',"seq":' .. seq .. ARGV[3]
local size = tonumber(ARGV[4])
if size > 0 then
  local added = redis.pcall('XADD', KEYS[5], 'MAXLEN', size, seq .. '-1', 'f', frame)
  if type(added) == 'table' and added.err then
    -- A stream ahead of its seq (left over from lost state): history restarts with this message.
    redis.call('DEL', KEYS[5])
    redis.call('XADD', KEYS[5], 'MAXLEN', size, seq .. '-1', 'f', frame)
  end
end
if redis.call('EXISTS', KEYS[4]) == 0 then forgetLater(KEYS[2], room, t, tonumber(ARGV[6]), KEYS[3], KEYS[5]) end
if KEYS[7] then redis.call('SET', KEYS[7], id .. ',' .. seq .. ',' .. epoch, 'PX', ARGV[8]) end
redis.call('PUBLISH', ARGV[7], 'm' .. id .. ',' .. seq .. ',' .. epoch .. ',' .. frame)
return {id, seq, 0, epoch}
`)

/**
 * Lobby message: numbered and published, never stored. KEYS: id, and the send's key if it has one.
 * ARGV: head, tail, channel, dedupe window (ms). Returns {id, duplicate (0|1)}.
 */
export const LOBBY = script(`
if KEYS[2] then
  local first = redis.call('GET', KEYS[2])
  if first then return {tonumber(string.match(first, '^(%d+)')), 1} end
end
local id = redis.call('INCR', KEYS[1])
if KEYS[2] then redis.call('SET', KEYS[2], id .. ',,', 'PX', ARGV[4]) end
redis.call('PUBLISH', ARGV[3], 'm' .. id .. ',,,' .. ARGV[1] .. ',"id":' .. id .. ARGV[2])
return {id, 0}
`)

/**
 * Join. KEYS: epoch counter, rooms, state, members, history.
 * ARGV: room, clientId, instance, user JSON (or ''), maxRooms, channel.
 * Returns {seq, added (0|1), count, {clientId, member, ...}, epoch}, or 0 when the room would be one too many.
 */
export const JOIN = script(`
local t = now()
local room = ARGV[1]
local added = 0
if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 0 then
  if not exists(KEYS[2], room, t) and not create(KEYS[2], t, tonumber(ARGV[5]), KEYS[3], KEYS[4], KEYS[5]) then return 0 end
  local order = redis.call('HINCRBY', KEYS[3], 'joins', 1)
  redis.call('HSET', KEYS[4], ARGV[2], order .. ',' .. ARGV[3] .. ',' .. ARGV[4])
  redis.call('ZADD', KEYS[2], '+inf', room)
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[5])
  added = 1
end
local epoch = epochOf(KEYS[3], room, KEYS[1])
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local count = redis.call('HLEN', KEYS[4])
if added == 1 then redis.call('PUBLISH', ARGV[6], 'pj,' .. ARGV[2] .. ',' .. count .. ',' .. ARGV[4]) end
return {seq, added, count, redis.call('HGETALL', KEYS[4]), epoch}
`)

/**
 * Rejoin: puts back, in one step, members of one room that this instance still has and Redis may
 * have lost (a Redis restarted, or this instance's heartbeat lapsed and another swept it). Only the
 * missing ones are added, each with a presence `join` on the channel; the member list is not sent
 * back (a room of thousands would make every batch's answer thousands long).
 * KEYS: epoch counter, rooms, state, members, history.
 * ARGV: room, instance, maxRooms, channel, then clientId and user JSON (or '') for each member.
 * Returns {seq, added, epoch}, or 0 when the room would be one too many.
 */
export const REJOIN = script(`
local t = now()
local room = ARGV[1]
local added = 0
for i = 5, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
    if added == 0 and not exists(KEYS[2], room, t) and not create(KEYS[2], t, tonumber(ARGV[3]), KEYS[3], KEYS[4], KEYS[5]) then return 0 end
    local order = redis.call('HINCRBY', KEYS[3], 'joins', 1)
    redis.call('HSET', KEYS[4], ARGV[i], order .. ',' .. ARGV[2] .. ',' .. ARGV[i + 1])
    added = added + 1
    redis.call('PUBLISH', ARGV[4], 'pj,' .. ARGV[i] .. ',' .. redis.call('HLEN', KEYS[4]) .. ',' .. ARGV[i + 1])
  end
end
if added > 0 then
  redis.call('ZADD', KEYS[2], '+inf', room)
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[5])
end
local epoch = epochOf(KEYS[3], room, KEYS[1])
return {tonumber(redis.call('HGET', KEYS[3], 'seq') or '0'), added, epoch}
`)

/**
 * Leave. KEYS: rooms, state, members, history. ARGV: room, clientId, roomTtl, channel.
 * Returns the members left, or -1 when the client was not in the room.
 */
export const LEAVE = script(`
local member = redis.call('HGET', KEYS[3], ARGV[2])
if not member then return -1 end
redis.call('HDEL', KEYS[3], ARGV[2])
local count = redis.call('HLEN', KEYS[3])
local user = string.match(member, '^%d+,%d+,(.*)$') or ''
redis.call('PUBLISH', ARGV[4], 'pl,' .. ARGV[2] .. ',' .. count .. ',' .. user)
if count == 0 then forgetLater(KEYS[1], ARGV[1], now(), tonumber(ARGV[3]), KEYS[2], KEYS[4]) end
return count
`)

/**
 * Removes the members of dead instances from one room, publishing a `leave` for each: HDEL
 * succeeds for one sweeper only, so each leave is sent once however many instances sweep.
 * An instance whose heartbeat is back by now is not dead: it may already have put its members
 * back, and they stay.
 * KEYS: rooms, state, members, history, then the heartbeat key of each dead instance.
 * ARGV: room, roomTtl, channel, dead instance numbers (in the order of their heartbeat keys)...
 * Returns how many members were removed.
 */
export const SWEEP = script(`
local dead = {}
for i = 4, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then dead[ARGV[i]] = true end
end
local all = redis.call('HGETALL', KEYS[3])
local removed = 0
for i = 1, #all, 2 do
  local instance, user = string.match(all[i + 1], '^%d+,(%d+),(.*)$')
  if dead[instance] then
    redis.call('HDEL', KEYS[3], all[i])
    removed = removed + 1
    redis.call('PUBLISH', ARGV[3], 'pl,' .. all[i] .. ',' .. redis.call('HLEN', KEYS[3]) .. ',' .. user)
  end
end
if removed > 0 and redis.call('HLEN', KEYS[3]) == 0 then
  forgetLater(KEYS[1], ARGV[1], now(), tonumber(ARGV[2]), KEYS[2], KEYS[4])
end
return removed
`)

/**
 * History. KEYS: state, history. ARGV: first seq wanted ('' for the newest), limit.
 * Returns {seq, entries, epoch} with entries oldest first from a start, newest first without one
 * (epoch '' for a room that does not exist).
 */
export const HISTORY = script(`
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
local entries
if ARGV[1] == '' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
else
  entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
end
return {seq, entries, epoch}
`)

/**
 * Every room that exists, with its member count and seq. KEYS: rooms. ARGV: prefix.
 * Returns {room, members, seq, ...}.
 */
export const ROOMS = script(`
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now(), '+inf')
local out = {}
for _, room in ipairs(names) do
  local base = ARGV[1] .. '{' .. room .. '}:'
  out[#out + 1] = room
  out[#out + 1] = redis.call('HLEN', base .. 'members')
  out[#out + 1] = tonumber(redis.call('HGET', base .. 'state', 'seq') or '0')
end
return out
`)

/**
 * After an outage: counters never go below what this instance has seen, so a Redis that lost its
 * data does not hand out message ids or instance numbers again. KEYS: id, instance-counter. ARGV: id, instance.
 */
export const FLOOR = script(`
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i]) then redis.call('SET', KEYS[i], ARGV[i]) end
end
return 1
`)
