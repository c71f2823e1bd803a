-- auth_fail.lua — one failed login (SPEC §8, S11), counted for one client address or for one
-- login: a single atomic step, so that however many policyd instances share Redis and however
-- many reports arrive at once, the count is exact and exactly one failure locks a client.
--
-- Called once for the client (two KEYS: it may lock) and once for the login (one KEY: it only
-- counts, for the tarpit); the two are separate calls because each entity's keys carry its own
-- hash tag, and a script's keys must share one Redis Cluster slot.
--
-- KEYS[1]  fails: <prefix>auth:{addr:<client>}:fails or <prefix>auth:{login:<login>}:fails
--          ZSET member → failure time (unix ms)
-- KEYS[2]  lock:  <prefix>auth:{addr:<client>}:lock  STRING: unix ms the lockout ends (client only)
-- ARGV[1]  now, unix milliseconds (the caller's clock, so tests control time)
-- ARGV[2]  window, ms: failures older than now − window no longer count
-- ARGV[3]  keep: the newest failures kept; with a lock key, the number that locks (ip_lockout's
--          count). Older ones are dropped: nothing ever needs to know more than this many.
-- ARGV[4]  lockout, ms (with a lock key)
-- ARGV[5]  member: unique per failure (the caller's random id), so two failures in the same
--          millisecond count twice
--
-- Writes, each with a TTL:
--   fails   ZADD now member, trimmed to the newest `keep`   PX window (refreshed on each failure)
--   lock    SET now + lockout                               PX lockout
-- While the lock exists nothing is counted and nothing is written: attempts while locked do not
-- extend the lockout, and the count starts afresh when it ends (locking deletes fails).
--
-- Returns {verdict, until_ms, count}:
--   {"counted", 0, n}   n failures within the window, this one included; not locked
--   {"locked", T, n}    this failure reached the limit: locked until T (n = the limit)
--   {"already", T, 0}   the client was locked already, until T; nothing counted
--
-- Replay: a replayed call with the same member counts nothing new (ZADD of a present member);
-- one with a new member is another failure, as Dovecot reporting it twice would be.
local fails, lock = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])

if lock then
    local until_ms = tonumber(redis.call('GET', lock))
    if until_ms then return {'already', until_ms, 0} end
end

redis.call('ZREMRANGEBYSCORE', fails, '-inf', now - window)
redis.call('ZADD', fails, now, ARGV[5])
redis.call('ZREMRANGEBYRANK', fails, 0, -keep - 1)
local count = redis.call('ZCARD', fails)

if lock and count >= keep then
    local lockout = tonumber(ARGV[4])
    redis.call('SET', lock, now + lockout, 'PX', lockout)
    redis.call('DEL', fails)
    return {'locked', now + lockout, count}
end
redis.call('PEXPIRE', fails, window)
return {'counted', 0, count}
