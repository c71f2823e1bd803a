-- greylist.lua — greylisting for one triplet, atomically (SPEC §4, S1): the decision, made by
-- policyd at RCPT and by the milter at end of message (S2), and the count towards auto-allow,
-- made by the milter when it accepted a message. Both programs apply the same rules to the same
-- keys through this one script.
--
-- KEYS[1]  triplet:  <prefix>grey:{<identity>}:<sender>:<recipient>
-- KEYS[2]  client:   <prefix>awl-domains:{<identity>}   SET of the sender domains of accepted
--                    mail that passed greylisting on a triplet of this identity
--          <identity> is the client network (subnet_v4/v6) or the SPF-authenticated domain; the
--          braces make it the hash tag, so both keys live in one slot on Redis Cluster.
-- ARGV[1]  now, unix milliseconds (the caller's clock, so tests control time; milliseconds so
--          that "try again in N seconds" is not off by one from rounding)
-- ARGV[2]  delay            ARGV[3] retry_window      ARGV[4] pass_ttl
-- ARGV[5]  auto_allow_clients for this identity (0 = off). greylist_args (common/greylist.hpp)
--          gives 0 for an SPF-domain identity: a domain can authorize any address (+all), so
--          only client networks earn auto-allow.
-- ARGV[6]  absent: decide. A sender domain: count it (the milter accepted a message of this
--          triplet from that domain).
--
-- Deciding writes, each with a TTL:
--   KEYS[1] = "f<first-ms>"    EX retry_window   when new (not extended by early retries)
--   KEYS[1] = "p"              EX pass_ttl       once passed; the TTL is refreshed on every pass
--   KEYS[2]                    EXPIRE pass_ttl   refreshed when the client is allowed, and on
--                                                passes (it is not added to here)
-- and returns {verdict, seconds}:
--   {"new", delay}      first sight: defer
--   {"early", left}     retried before the delay: defer again, the clock is not reset
--                       (left: whole seconds, rounded up)
--   {"passed", waited}  first retry after the delay: accept (waited = now - first, in seconds)
--   {"known", 0}        passed before: accept
--   {"client", n}       n >= auto_allow_clients sender domains of this identity had accepted
--                       mail that passed greylisting: accept
-- policyd writes the first record of a new triplet itself, with SET NX GET in place of this
-- script (greylist_first_sight_command, greylist.hpp): a change to it must be made there too.
--
-- Counting writes, only when the triplet has passed ("p") and the identity earns auto-allow:
--   SADD KEYS[2] ARGV[6] while the set has fewer than auto_allow_clients members (so it never
--   holds more), EXPIRE KEYS[2] pass_ttl
-- and returns {"counted", members} or, when nothing was counted, {"uncounted", members}.
-- Passing greylisting alone earns nothing: a triplet counts once mail on it was accepted, and a
-- client identity is allowed only for several sender domains, not several forged triplets.
--
-- Replay (Postfix retries a request once when a reply is lost): a replayed "new" answers
-- "early" (still a defer, same clock); a replayed "passed" answers "known" (still an accept); a
-- replayed count adds a member that is there already.

-- Times go back to Redis as the caller's own strings: Lua would write a number with '%.14g',
-- which costs more than the SET itself (callgrind).
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local auto_allow = tonumber(ARGV[5])

if ARGV[6] then
    local members = redis.call('SCARD', KEYS[2])
    if auto_allow > 0 and ARGV[6] ~= '' and members < auto_allow and
        redis.call('GET', KEYS[1]) == 'p' then
        members = members + redis.call('SADD', KEYS[2], ARGV[6])
        redis.call('EXPIRE', KEYS[2], ARGV[4])
        return {'counted', members}
    end
    return {'uncounted', members}
end

if auto_allow > 0 then
    local domains = redis.call('SCARD', KEYS[2])
    if domains >= auto_allow then
        redis.call('EXPIRE', KEYS[2], ARGV[4])
        return {'client', domains}
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
return {'passed', math.floor(waited / 1000)}
