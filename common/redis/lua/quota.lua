-- quota.lua — sending quotas of authenticated users (SPEC §4 Quotas, S3/S4): one atomic decision
-- per call, for one user. ARGV[1] names the operation:
--   "reserve"  at RCPT: may this recipient be sent? If so it is reserved (counted at once).
--   "commit"   at END-OF-MESSAGE: the message's reservations become usage.
-- (One file for both, so that they share the window and release code.)
--
-- Window semantics: a rolling window counted in 60 buckets per window length. A recipient counts
-- against a window from its RCPT until the end of its bucket plus the window length, so for
-- between W and W + W/60 seconds: never less than a true sliding window (the limit is never
-- passed in any W seconds), and at most 61 counters per window however high the limit.
-- A reserved recipient is counted in used:* at its RCPT time; committing drops its reservation so
-- that it is never given back; a reservation older than reserve_ttl is released (given back).
--
-- Late END-OF-MESSAGE: a session may outlast reserve_ttl (NOOPs, a slow DATA), and its
-- reservations are then given back like an abandoned message's. Its mail still leaves, so it is
-- still charged: a released reservation stays in held, renamed "<instance> \n<rcpt>" with the
-- score −RCPT time (a policy attribute never holds a newline, so no reservation has that name),
-- and a commit of its message charges it again, in the current bucket of every window, as a
-- recipient sent now. That happens even when it passes a limit: the mail is gone, the user is
-- over the limit, and the next RCPT is throttled until the windows have room (frees_at counts
-- whatever the windows hold). A released reservation is kept as long as held lives, the longest
-- window and its bucket (or reserve_ttl) after its RCPT; later it is pruned, and a commit after
-- that charges nothing for it. A limit thus holds for what is reserved at RCPT; what a session
-- holds open past reserve_ttl is charged when it ends, and delays the user's next mail.
--
-- KEYS[1]  held:      <prefix>quota:{<login>}:held      ZSET "<instance> <rcpt>" → RCPT time (ms)
--                                                       (released: "<instance> \n<rcpt>" → −RCPT)
-- KEYS[2]  throttle:  <prefix>quota:{<login>}:throttle  HASH until (ms), instance, last
-- KEYS[3 .. 2+L]      <prefix>quota:{<login>}:used:<seconds>   HASH bucket → recipients
-- KEYS[3+L .. 2+L+B]  <prefix>quota:{<login>}:tried:<seconds>  HASH bucket → attempts
--          {<login>} is the hash tag: all keys of one user live in one Redis Cluster slot.
-- ARGV[1]  "reserve" or "commit"
-- ARGV[2]  now, unix milliseconds (the caller's clock, so tests control time)
-- ARGV[3]  reserve: "<instance> <rcpt>"; commit: "<instance>" (the instance has no spaces)
-- ARGV[4]  reserve_ttl (s)
-- ARGV[5]  reserve: penalty_max (s); commit: recipient_count, -1 when unknown (all commit)
-- ARGV[6]  L, then L × (count, window ms, bucket ms): the limits, in KEYS order
-- then     B, then B × (count, window ms, bucket ms): the auto_block windows (commit: B = 0)
-- then     reserve, optional: what policyd's transaction wrote at this same now, to be taken
--          back first (policyd/quota.hpp, reserve_transaction): "1" the recipient counted in
--          every window, limits and auto_block; "2" that, and the member added to held
--
-- Writes, each with a TTL:
--   used:<s>, tried:<s>  HINCRBY of the current bucket    PX window + bucket (set when a
--                                                         bucket is first written; policyd's
--                                                         transaction once per bucket and
--                                                         process, QuotaMemo)
--   held                 ZADD NX member now               PX max(reserve_ttl, longest window +
--                        bucket), so an expired reservation can still be given back while it
--                        counts, and a released one charged by a late commit
--   throttle             HSET until, instance, last       PX until − now
--   Releases (HINCRBY −1 / HDEL in used:*, a rename in held), prunes and commits (ZREM in held)
--   create no key; a late commit's HINCRBY in used:* sets the TTL as a reservation does.
--
-- Returns, reserve: {verdict, until_ms, window, figure}
--   {"reserved", 0, i, used}       fits: reserved; i is the limit window closest to its limit
--                                  (0 when there are no limits), used its count with this one
--   {"throttled", T, i, used}      limit window i is full: refused, not counted; T is when it has
--                                  room again (or the unchanged T, for the same message)
--   {"penalty", T, i, used}        a new message while throttled: T moved later (SPEC §4)
--   {"blocked", 0, j, attempts}    auto_block window j was passed: policyd writes block:login and
--                                  block:why; the attempt counters start over
-- Returns, commit: {committed, released, late}: reservations of the message that became usage,
--   those not sent because Postfix accepted fewer recipients (the earliest ones commit; their
--   room is given back), and how many of the committed had been released and were charged now.
--
-- Replay (Postfix retries a request once when a reply is lost): a replayed reserved recipient
-- finds its member in held and gets "reserved" again without counting; a replayed refused one
-- finds itself as "last" in throttle and gets the same T, without penalty or another attempt; a
-- replayed commit finds no members left, live or released, and returns {0, 0, 0}.
--
-- policyd makes the usual reservation without this script (a MULTI that counts first and reads
-- after; policyd/quota.hpp) and calls it, with the undo argument, for everything else. Likewise
-- the usual commit: a MULTI takes out of held the members policyd itself reserved for the message
-- (ZREM, which is all a commit does to them) and lists held; the script commits what that finds
-- left of the message, with recipient_count less what the MULTI committed. The MULTI's ZREM names
-- live reservations only: a released one has another name, so the MULTI never takes it for
-- committed, and its ZSCAN (MATCH "<instance> *") finds it and hands the message to this script,
-- which charges it. Likewise policyd's reservation MULTI asks for members due for release or
-- pruning with one ZCOUNT over [keep − now, now − reserve_ttl]: released scores are negative,
-- live ones positive, so that range holds exactly the released ones older than keep and the live
-- ones older than reserve_ttl.
-- If the script call after a reservation MULTI is lost (a timeout, a dropped connection), a
-- member stays in held that was never reserved. So a member found while a window is past its
-- count (that, or a late commit) is not trusted as a replay: it is given back and decided again.

local op = ARGV[1]
-- Numbers arrive as strings; `s + 0` converts one, as tonumber does, for a fifth of what tonumber
-- costs in Redis' Lua (callgrind: 0.35k instructions against 1.7k), and a reservation converts
-- about a dozen.
local now = ARGV[2] + 0
local member = ARGV[3]
local reserve_ms = ARGV[4] * 1000
local held, throttle = KEYS[1], KEYS[2]
local limits, blocks

-- A member's instance: up to its first space (the instance has none).
local function instance_of(m)
    return string.match(m, '^[^ ]*')
end

-- Windows from ARGV[pos]: a count n, then n × (count, window ms, bucket ms); their keys are
-- KEYS[key_pos + 1 ..]. Returns the windows and the positions after them.
local function windows(pos, key_pos)
    local n = ARGV[pos] + 0
    local out = {}
    for i = 1, n do
        local a = pos + 3 * (i - 1)
        out[i] = {count = ARGV[a + 1] + 0, span = ARGV[a + 2] + 0, bucket = ARGV[a + 3] + 0,
                  key = KEYS[key_pos + i]}
    end
    return out, pos + 1 + 3 * n, key_pos + n
end

-- The hash field of the bucket holding time ms.
--
-- Numbers given to redis.call are written with '%d' here: Lua would write them with '%.17g',
-- which cost more than the command itself (callgrind). Every time and span is a whole number
-- of milliseconds.
local function bucket_of(w, ms)
    return string.format('%d', math.floor(ms / w.bucket))
end

-- Gives back one counted at ms in window w, unless its bucket already left the window (then
-- there is nothing left to give back).
local function give_back(w, ms)
    local field = bucket_of(w, ms)
    local n = (redis.call('HGET', w.key, field) or 0) + 0
    if n > 1 then
        redis.call('HINCRBY', w.key, field, -1)
    elseif n == 1 then
        redis.call('HDEL', w.key, field)
    end
end

-- Gives back the recipient a reservation made at ms added to every limit window.
local function release_one(ms)
    for _, w in ipairs(limits) do give_back(w, ms) end
end

-- Takes back what policyd's transaction wrote (the undo argument, see the header).
local function undo(how)
    for _, w in ipairs(limits) do give_back(w, now) end
    for _, w in ipairs(blocks) do give_back(w, now) end
    if how == '2' then redis.call('ZREM', held, member) end
end

-- How long held keeps a member: reserve_ttl, or the longest window and its bucket (held's TTL).
local function keep_ms()
    local keep = reserve_ms
    for _, w in ipairs(limits) do
        if w.span + w.bucket > keep then keep = w.span + w.bucket end
    end
    return keep
end

-- Runs a command on held with many arguments, in slices that Lua's unpack can take.
local function in_slices(command, args)
    for i = 1, #args, 200 do
        redis.call(command, held, unpack(args, i, math.min(i + 199, #args)))
    end
end

-- Releases the reservations older than reserve_ttl: messages that never reached END-OF-MESSAGE,
-- or whose session is still open. Each is given back, and kept renamed for a late commit (see the
-- header); released ones older than keep are dropped. One read finds both: [keep − now, cutoff]
-- holds the released older than keep (scores −RCPT) and the live older than reserve_ttl. Done
-- lazily here, on the user's next request, which is the only moment the count matters.
local function release_expired()
    local cutoff = string.format('%d', now - reserve_ms)
    local old = redis.call('ZRANGEBYSCORE', held, string.format('%d', keep_ms() - now), cutoff,
                           'WITHSCORES')
    local gone, renamed = {}, {}
    for i = 1, #old, 2 do
        local ms = old[i + 1] + 0
        gone[#gone + 1] = old[i]
        if ms > 0 then
            release_one(ms)
            local space = string.find(old[i], ' ', 1, true)  -- policyd's members all have one
            if space then
                renamed[#renamed + 1] = string.format('%d', -ms)
                renamed[#renamed + 1] = string.sub(old[i], 1, space) .. '\n' ..
                                            string.sub(old[i], space + 1)
            end
        end
    end
    if #gone > 0 then in_slices('ZREM', gone) end
    if #renamed > 0 then in_slices('ZADD', renamed) end
end

-- A bucket stops counting at the end of its own span plus the window.
local function bucket_end(w, b)
    return (b + 1) * w.bucket + w.span
end

-- The recipients window w counts at now, and HGETALL's answer (frees_at reads it when the window
-- is full); buckets that left the window are deleted on the way.
local function usage(w)
    local flat = redis.call('HGETALL', w.key)
    local total = 0
    for i = 1, #flat, 2 do
        if bucket_end(w, flat[i] + 0) <= now then
            redis.call('HDEL', w.key, flat[i])
        else
            total = total + flat[i + 1]
        end
    end
    return total, flat
end

-- Counts one in the current bucket. The key's TTL is set when a bucket is first written: from
-- then, window + bucket outlasts the bucket, the newest, so the key lives while it counts.
local function add_one(w)
    if redis.call('HINCRBY', w.key, bucket_of(w, now), '1') == 1 then
        redis.call('PEXPIRE', w.key, string.format('%d', w.span + w.bucket))
    end
end

-- When a full window has room for one more: the oldest buckets leave until the total is below
-- the count. Pending reservations are assumed to become usage, so the time is never too early.
local function frees_at(w, total, flat)
    local live = {}
    for i = 1, #flat, 2 do
        local b = flat[i] + 0
        if bucket_end(w, b) > now then live[#live + 1] = {b, flat[i + 1] + 0} end
    end
    table.sort(live, function(x, y) return x[1] < y[1] end)
    local excess = total - w.count + 1
    for _, e in ipairs(live) do
        excess = excess - e[2]
        if excess <= 0 then return bucket_end(w, e[1]) end
    end
    return now
end

-- The limit window with the highest used/count, for the log.
local function fullest(totals)
    local best, ratio = 0, -1
    for i, w in ipairs(limits) do
        if totals[i] / w.count > ratio then best, ratio = i, totals[i] / w.count end
    end
    return best, best > 0 and totals[best] or 0
end

-- A refusal: T is remembered with the message and the recipient refused, for the penalty and
-- for replays; the key lives until T.
local function refuse(verdict, t, totals, which)
    redis.call('HSET', throttle, 'until', string.format('%d', t), 'instance', instance_of(member),
               'last', member)
    redis.call('PEXPIRE', throttle, string.format('%d', t - now))
    local i, used = fullest(totals)
    if which then i, used = which, totals[which] end
    return {verdict, t, i, used}
end

-- The reservation's first answer again, for a replayed RCPT (nil when it is not one). taken:
-- this call's ZADD NX added the member, so it was not reserved before (without limits nothing
-- is reserved, and held is only looked at).
local function replayed(totals, state, taken)
    if not taken and (#limits > 0 or redis.call('ZSCORE', held, member)) then
        local i, used = fullest(totals)
        return {'reserved', 0, i, used}
    end
    local until_ms = (state[1] or 0) + 0
    if until_ms > now and state[3] == member then
        local i, used = fullest(totals)
        return {'throttled', until_ms, i, used}
    end
end

-- auto_block counts every attempt, refused ones included: hammering the limit is what it
-- catches. Returns the "blocked" reply when a window is passed (nil otherwise).
local function count_attempt()
    for j, w in ipairs(blocks) do
        add_one(w)
        local attempts = usage(w)
        if attempts > w.count then
            for _, b in ipairs(blocks) do redis.call('DEL', b.key) end
            return {'blocked', 0, j, attempts}
        end
    end
end

-- While throttled, a new message moves T: each retry doubles the time left, at most penalty_max
-- from now, and never earlier than T (which may be when a window frees room). More recipients
-- of the message that was refused first are not retries: they get the same T.
local function penalty(totals, state)
    local until_ms = state[1] + 0
    if state[2] == instance_of(member) then return refuse('throttled', until_ms, totals) end
    local penalty_ms = ARGV[5] * 1000
    local t = math.max(until_ms, now + math.min(penalty_ms, 2 * (until_ms - now)))
    return refuse('penalty', t, totals)
end

-- True when a limit window counts more than its count: only what policyd's transaction
-- counted and did not take back, or a late commit, can do that.
local function past_count(totals)
    for i, w in ipairs(limits) do
        if totals[i] > w.count then return true end
    end
    return false
end

-- The first refused attempt announces T: when every full window has room again (nil when
-- none is full).
local function over_limit(totals, flats)
    local t, which = 0, nil
    for i, w in ipairs(limits) do
        if totals[i] >= w.count then
            local f = frees_at(w, totals[i], flats[i])
            if f > t then t, which = f, i end
        end
    end
    if which then return refuse('throttled', t, totals, which) end
end

-- The reservation is taken first, so that one command both makes it and shows a replay (ZADD NX
-- adds nothing); every answer but "reserved" gives it back.
local function reserve()
    local totals, flats = {}, {}
    for i, w in ipairs(limits) do totals[i], flats[i] = usage(w) end
    local taken = #limits > 0 and redis.call('ZADD', held, 'NX', ARGV[2], member) == 1
    if #limits > 0 and not taken and past_count(totals) then
        -- not trusted as a replay (see the header): given back, and decided as a new one
        release_one(redis.call('ZSCORE', held, member) + 0)
        for i, w in ipairs(limits) do totals[i], flats[i] = usage(w) end
        redis.call('ZADD', held, ARGV[2], member)
        taken = true
    end
    local state = redis.call('HMGET', throttle, 'until', 'instance', 'last')
    local answer = replayed(totals, state, taken) or count_attempt()
    if not answer and (state[1] or 0) + 0 > now then answer = penalty(totals, state) end
    answer = answer or over_limit(totals, flats)
    if answer then
        if taken then redis.call('ZREM', held, member) end
        return answer
    end

    if taken then
        for i, w in ipairs(limits) do
            add_one(w)
            totals[i] = totals[i] + 1
        end
        redis.call('PEXPIRE', held, string.format('%d', keep_ms()))
    end
    local i, used = fullest(totals)
    return {'reserved', 0, i, used}
end

-- The message's reservations, in RCPT order, become usage up to recipient_count: a live one is
-- counted already, a released one is charged now. The rest (the recipients a later restriction
-- rejected) are not sent: a live one is given back, a released one was already. O(reservations
-- pending or released for the user).
local function commit()
    local accepted = ARGV[5] + 0
    local prefix = member .. ' '
    local all = redis.call('ZRANGEBYSCORE', held, '-inf', '+inf', 'WITHSCORES')
    local mine = {}
    for i = 1, #all, 2 do
        if string.sub(all[i], 1, #prefix) == prefix then
            local ms = all[i + 1] + 0
            mine[#mine + 1] = {name = all[i], ms = ms, rcpt = math.abs(ms)}
        end
    end
    table.sort(mine, function(x, y)
        if x.rcpt ~= y.rcpt then return x.rcpt < y.rcpt end
        return x.name < y.name
    end)
    local committed, released, late, names = 0, 0, 0, {}
    for _, m in ipairs(mine) do
        names[#names + 1] = m.name
        local sent = accepted < 0 or committed < accepted
        if sent then committed = committed + 1 else released = released + 1 end
        if sent and m.ms < 0 then
            late = late + 1
            for _, w in ipairs(limits) do add_one(w) end
        elseif not sent and m.ms > 0 then
            release_one(m.ms)
        end
    end
    if #names > 0 then in_slices('ZREM', names) end
    return {committed, released, late}
end

local next_pos, next_key, undo_pos
limits, next_pos, next_key = windows(6, 2)
blocks, undo_pos = windows(next_pos, next_key)
if ARGV[undo_pos] then undo(ARGV[undo_pos]) end
release_expired()
if op == 'commit' then return commit() end
return reserve()
