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
// recording time in µs), 11 the outbox, 12 the stream's appends in the outbox (see outbox.go),
// 13 ... each event's type index (sorted set of positions), in the order of the events.
//
// ARGV: 1 the expected version's kind (any, no_stream, stream_exists, exact), 2 the exact
// version, 3 the most events a stream may hold (0: no limit), 4 the number of events n, 5 the
// idempotency key ("": none), 6 the rest of its record (JSON), 7 the stream id, 8 the channel
// that wakes relays, then per event its id, type and payload.
//
// The idempotency record is "firstVersion lastVersion firstPosition lastPosition µs json". The
// key is checked first: a command retried after its append landed is told so, whatever its
// stream did since. The append enters the outbox as its entry "firstPosition:lastPosition:
// stream", even when its stream is held: the relay reads it once and settles it behind the
// hold, as it counts it.
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
	local id = ARGV[9 + 3 * i]
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
	redis.call('HSET', KEYS[3], pos, version .. ' ' .. ts .. ' ' .. ARGV[11 + 3 * i])
	redis.call('HSET', KEYS[4], ARGV[9 + 3 * i], pos)
	redis.call('HINCRBY', KEYS[5], ARGV[10 + 3 * i], 1)
	redis.call('ZADD', KEYS[2], pos, pos)
	redis.call('ZADD', KEYS[13 + i], pos, pos)
end
redis.call('ZADD', KEYS[7], ts, string.format('%d', first + n - 1))
if idem ~= '' then
	redis.call('HSET', KEYS[9], idem, string.format('%d %d %d %d ', actual + 1, actual + n, first, first + n - 1) .. ts .. ' ' .. ARGV[6])
	redis.call('ZADD', KEYS[10], ts, idem)
end
local entry = string.format('%d:%d:', first, first + n - 1) .. ARGV[7]
redis.call('ZADD', KEYS[12], string.format('%d', actual + 1), entry)
redis.call('ZADD', KEYS[11], string.format('%d', first), entry)
redis.call('PUBLISH', ARGV[8], '1')
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

// The publishing relay's lease: taken with SET NX PX (outbox.go), renewed and released only
// by the holder of its token. KEYS: 1 the lease; ARGV: 1 the token, 2 the lease's length in ms.
var (
	renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)
	releaseLeaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)
)

// settleScript settles a relay's round, fenced by its lease: a relay whose token is no longer
// the lease's settles nothing and is told "lost". A published append leaves the outbox; a
// held one records its stream's hold (the first hold of a stream stays) and, like one
// behind, is moved among the held appends, but only while its stream's hold exists, so that
// a hold released meanwhile leaves nothing marked. An entry already gone is passed over.
//
// KEYS: 1 the lease, 2 the outbox, 3 the held appends, 4 the holds, 5 the held streams, 6 ...
// each settlement's stream's appends in the outbox. ARGV: 1 the token, then per settlement
// its kind (p published, h held, b behind), its first version and its hold's reason.
//
// A hold is "firstVersion lastVersion µs reason".
var settleScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
local now = redis.call('TIME')
local ts = string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2]))
for i = 0, #KEYS - 6 do
	local kind, fv = ARGV[2 + 3 * i], ARGV[3 + 3 * i]
	local entry = redis.call('ZRANGEBYSCORE', KEYS[6 + i], fv, fv)[1]
	if entry then
		local fp, lp, stream = string.match(entry, '^(%d+):(%d+):(.*)$')
		if kind == 'p' then
			redis.call('ZREM', KEYS[2], entry)
			redis.call('ZREM', KEYS[3], entry)
			redis.call('ZREM', KEYS[6 + i], entry)
		else
			if kind == 'h' then
				local lv = string.format('%d', tonumber(fv) + tonumber(lp) - tonumber(fp))
				redis.call('HSETNX', KEYS[4], stream, fv .. ' ' .. lv .. ' ' .. ts .. ' ' .. ARGV[4 + 3 * i])
			end
			if redis.call('HEXISTS', KEYS[4], stream) == 1 then
				redis.call('ZREM', KEYS[2], entry)
				redis.call('ZADD', KEYS[3], fp, entry)
				redis.call('SADD', KEYS[5], stream)
			end
		end
	end
end
return 'ok'
`)

// releaseScript returns a stream's held appends to the flow. For a retry (ARGV[2] "retry") it
// deletes the stream's hold first, and does nothing when there is none; for a reconcile
// ("reconcile") it does nothing while the hold exists.
//
// KEYS: 1 the outbox, 2 the held appends, 3 the holds, 4 the held streams, 5 the stream's
// appends in the outbox. ARGV: 1 the stream id, 2 the mode. It returns {the hold released or
// "", the stream's appends in the outbox, the appends returned to the flow}.
var releaseScript = goredis.NewScript(`
local hold = redis.call('HGET', KEYS[3], ARGV[1])
if (ARGV[2] == 'retry' and not hold) or (ARGV[2] == 'reconcile' and hold) then return {'', 0, 0} end
redis.call('HDEL', KEYS[3], ARGV[1])
local waiting = redis.call('ZCARD', KEYS[5])
local moved = 0
for _, entry in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
	if redis.call('ZREM', KEYS[2], entry) == 1 then
		redis.call('ZADD', KEYS[1], string.match(entry, '^(%d+):'), entry)
		moved = moved + 1
	end
end
redis.call('SREM', KEYS[4], ARGV[1])
return {hold or '', waiting, moved}
`)

// skipScript gives up on a stream's held append, which must start at ARGV[2]: the append
// leaves the outbox for the dead appends (with the hold's reason, who skipped it and why), the
// hold is deleted, and the appends behind it return to the flow.
//
// KEYS: 1 the outbox, 2 the held appends, 3 the holds, 4 the held streams, 5 the stream's
// appends in the outbox, 6 the dead appends. ARGV: 1 the stream id, 2 the first version, 3 who
// skips, 4 why. It returns {"ok", hold, waiting} or {"not_held", the hold or ""}.
var skipScript = goredis.NewScript(`
local hold = redis.call('HGET', KEYS[3], ARGV[1])
if not hold then return {'not_held', ''} end
if string.match(hold, '^(%-?%d+) ') ~= ARGV[2] then return {'not_held', hold} end
local waiting = redis.call('ZCARD', KEYS[5])
local entry = redis.call('ZRANGEBYSCORE', KEYS[5], ARGV[2], ARGV[2])[1]
if entry then
	local now = redis.call('TIME')
	local ts = string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2]))
	redis.call('ZREM', KEYS[1], entry)
	redis.call('ZREM', KEYS[2], entry)
	redis.call('ZREM', KEYS[5], entry)
	redis.call('HSET', KEYS[6], ARGV[1] .. '@' .. ARGV[2], cjson.encode({
		entry = entry, hold = hold, skipped_by = ARGV[3], skip_reason = ARGV[4], skipped_at = ts}))
end
redis.call('HDEL', KEYS[3], ARGV[1])
for _, e in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
	if redis.call('ZREM', KEYS[2], e) == 1 then
		redis.call('ZADD', KEYS[1], string.match(e, '^(%d+):'), e)
	end
end
redis.call('SREM', KEYS[4], ARGV[1])
return {'ok', hold, waiting}
`)
