package redis

import goredis "github.com/redis/go-redis/v9"

// appendScript checks an append and writes it, atomically: Redis runs a script alone, and the
// AOF records its writes as one MULTI/EXEC. A script is not rolled back when it fails half
// way, so every check comes before the first write, and the writes that follow are commands
// on keys of known types that cannot fail.
//
// KEYS: 1 position counter, 2 the stream's positions (sorted set, score and member the global
// position), 3 events (hash position -> "version µs payload"), 4 event ids (hash id ->
// position), 5 counts by type (hash), 6 stream counter, 7 appends by time (sorted set, score
// the recording time in µs, member the append's last position), 8 last recording time, 9
// idempotency records (hash key -> record), 10 idempotency keys by time (sorted set, score the
// recording time in µs), 11 ... each event's type index (sorted set of positions), in the
// order of the events.
//
// ARGV: 1 the expected version's kind (any, no_stream, stream_exists, exact), 2 the exact
// version, 3 the most events a stream may hold (0: no limit), 4 the number of events n, 5 the
// idempotency key ("": none), 6 the rest of its record (JSON), then per event its id, type and
// payload.
//
// The idempotency record is "firstVersion lastVersion firstPosition lastPosition µs json". The
// key is checked first: a command retried after its append landed is told so, whatever its
// stream did since.
//
// It returns {"taken", 0}, {"conflict", actual}, {"full", actual}, {"duplicate", id} or {"ok",
// actual, first position, recording time in µs}.
var appendScript = goredis.NewScript(`
local idem = ARGV[5]
if idem ~= '' and redis.call('HEXISTS', KEYS[9], idem) == 1 then return {'taken', 0} end
local actual = redis.call('ZCARD', KEYS[2]) - 1
local kind = ARGV[1]
local allowed = kind == 'any' or (kind == 'no_stream' and actual < 0) or
	(kind == 'stream_exists' and actual >= 0) or (kind == 'exact' and actual == tonumber(ARGV[2]))
if not allowed then return {'conflict', actual} end
local n = tonumber(ARGV[4])
local max = tonumber(ARGV[3])
if max > 0 and actual + n >= max then return {'full', actual} end
for i = 0, n - 1 do
	local id = ARGV[7 + 3 * i]
	if redis.call('HEXISTS', KEYS[4], id) == 1 then return {'duplicate', id} end
end

local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[8]) or '0')
if t <= last then t = last + 1 end
local ts = string.format('%.0f', t)
redis.call('SET', KEYS[8], ts)
local first = redis.call('INCRBY', KEYS[1], n) - n + 1
if actual < 0 then redis.call('INCR', KEYS[6]) end
for i = 0, n - 1 do
	local pos = string.format('%d', first + i)
	local version = string.format('%d', actual + 1 + i)
	redis.call('HSET', KEYS[3], pos, version .. ' ' .. ts .. ' ' .. ARGV[9 + 3 * i])
	redis.call('HSET', KEYS[4], ARGV[7 + 3 * i], pos)
	redis.call('HINCRBY', KEYS[5], ARGV[8 + 3 * i], 1)
	redis.call('ZADD', KEYS[2], pos, pos)
	redis.call('ZADD', KEYS[11 + i], pos, pos)
end
redis.call('ZADD', KEYS[7], ts, string.format('%d', first + n - 1))
if idem ~= '' then
	redis.call('HSET', KEYS[9], idem, string.format('%d %d %d %d ', actual + 1, actual + n, first, first + n - 1) .. ts .. ' ' .. ARGV[6])
	redis.call('ZADD', KEYS[10], ts, idem)
end
return {'ok', actual, first, ts}
`)

// pruneIdempotencyScript deletes up to ARGV[2] idempotency records made more than ARGV[1] µs
// ago by the server's clock, and returns how many. KEYS: 1 records, 2 keys by time.
var pruneIdempotencyScript = goredis.NewScript(`
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000000 + tonumber(now[2]) - tonumber(ARGV[1])
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', cutoff), 'LIMIT', 0, tonumber(ARGV[2]))
if #keys == 0 then return 0 end
redis.call('HDEL', KEYS[1], unpack(keys))
redis.call('ZREM', KEYS[2], unpack(keys))
return #keys
`)
