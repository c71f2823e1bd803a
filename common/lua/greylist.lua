-- greylist.lua — one greylisting decision for one triplet, atomically (SPEC §4, S1).
-- Shared by policyd (at RCPT) and the milter (end of message, S2), so both apply the same rules
-- to the same keys.
--
-- KEYS[1]  triplet:  <prefix>grey:{<identity>}:<sender>:<recipient>
-- KEYS[2]  client:   <prefix>awl:{<identity>}   (triplets this client identity has passed)
--          <identity> is the client network (subnet_v4/v6) or the SPF-authenticated domain; the
--          braces make it the hash tag, so both keys live in one slot on Redis Cluster.
-- ARGV[1]  now, unix milliseconds (the caller's clock, so tests control time; milliseconds so
--          that "try again in N seconds" is not off by one from rounding)
-- ARGV[2]  delay            ARGV[3] retry_window      ARGV[4] pass_ttl
-- ARGV[5]  auto_allow_clients (0 = off)
--
-- Writes, each with a TTL:
--   KEYS[1] = "f<first-ms>"    EX retry_window   when new (not extended by early retries)
--   KEYS[1] = "p"              EX pass_ttl       once passed; the TTL is refreshed on every pass
--   KEYS[2] = count            EX pass_ttl       incremented on each first pass, refreshed on passes
-- policyd writes the first record of a new triplet itself, with SET NX GET in place of this
-- script (greylist_first_sight_command, greylist.hpp): a change to it must be made there too.
--
-- Returns {verdict, seconds}:
--   {"new", delay}      first sight: defer
--   {"early", left}     retried before the delay: defer again, the clock is not reset
--                       (left: whole seconds, rounded up)
--   {"passed", waited}  first retry after the delay: accept (waited = now - first, in seconds)
--   {"known", 0}        passed before: accept
--   {"client", n}       the client identity passed n >= auto_allow_clients triplets: accept
--
-- Replay (Postfix retries a request once when a reply is lost): a replayed "new" answers
-- "early" (still a defer, same clock); a replayed "passed" answers "known" (still an accept, and
-- the client count is not incremented twice, because only the first pass increments it).

-- Times go back to Redis as the caller's own strings: Lua would write a number with '%.14g',
-- which costs more than the SET itself (callgrind).
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local auto_allow = tonumber(ARGV[5])

if auto_allow > 0 then
    local passed = tonumber(redis.call('GET', KEYS[2]) or '0')
    if passed >= auto_allow then
        redis.call('EXPIRE', KEYS[2], ARGV[4])
        return {'client', passed}
    end
end

local state = redis.call('GET', KEYS[1])

if state == 'p' then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    if auto_allow > 0 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
    return {'known', 0}
end

local first = state and tonumber(string.sub(state, 2))
if not first then
    if delay > 0 then
        redis.call('SET', KEYS[1], 'f' .. ARGV[1], 'EX', ARGV[3])
        return {'new', delay}
    end
    first = now
end

local waited = now - first
if waited < delay * 1000 then
    local left = math.ceil((delay * 1000 - waited) / 1000)
    if left > delay then left = delay end -- a clock behind the first writer's
    return {'early', left}
end

redis.call('SET', KEYS[1], 'p', 'EX', ARGV[4])
if auto_allow > 0 then
    redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return {'passed', math.floor(waited / 1000)}
