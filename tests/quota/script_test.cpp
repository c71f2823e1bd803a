// script_test.cpp — common/redis/lua/quota.lua against a real redis-server, with the clock under
// the test's control (the time is an ARGV): window boundaries to the millisecond, several windows,
// the penalty formula, replays, reservations released and committed, auto_block, bounded memory and
// TTLs; each with the script alone and with policyd's transaction first (Quota, below), and what
// a lost script call after a transaction leaves. The keys, arguments and transaction are built
// by policyd/quota.hpp, as policyd builds them.
#include <catch2/catch.hpp>

#include "common/redis/scripts.hpp"
#include "policyd/quota.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::policy;
using namespace postwarden::test;

namespace {

constexpr long long t0 = 1714564800000;  // 2024-05-01T12:00:00Z, on a whole minute

// One user's quota as policyd drives it, with EVAL and a chosen time. Every test runs three
// times: reserving with the script alone; with reserve_transaction first and the script (told to
// undo the transaction) only for what the transaction does not decide; and that, with a
// QuotaMemo as policyd keeps one, so that a window's TTL is set once per bucket (and a key
// made anew gets its PEXPIRE after the transaction, as policyd sends it). All must give the same
// answers and leave the same counts, and every key a TTL.
struct Quota {
    RedisServer& redis;
    Config config;
    std::string login = "alice@example.com";
    const int mode = GENERATE(0, 1, 2);
    const bool transaction_first = mode > 0;
    QuotaMemo memo;
    Reservations reservations;  // what this "policyd" reserved, for its commit transaction
    int script_calls = 0;

    Quota(RedisServer& r, const std::string& quota_section) : redis(r) {
        std::string error;
        auto c = parse_config("[quota]\n" + quota_section, "test", &error);
        INFO(error);
        REQUIRE(c);
        config = *c;
    }

    Facts facts(const std::string& instance, const std::string& rcpt) const {
        Facts f;
        f.state = "RCPT";
        f.login = login;
        f.instance = instance;
        f.recipient = rcpt;
        return f;
    }

    redis::Value eval(const ScriptCall& call) {
        std::vector<std::string> argv{"EVAL", std::string(script_text("quota")),
                                      std::to_string(call.keys.size())};
        argv.insert(argv.end(), call.keys.begin(), call.keys.end());
        argv.insert(argv.end(), call.args.begin(), call.args.end());
        return redis.run(argv);
    }

    QuotaOutcome reserve(long long now, const std::string& instance, const std::string& rcpt) {
        auto limits = merge_windows(config.quota.limits);
        auto f = facts(instance, rcpt);
        Undo undo = Undo::nothing;
        std::pair<std::string, std::string> held_member;  // held and member, when transacted
        if (transaction_first && !limits.empty()) {
            auto t = reserve_transaction(f, limits, now, config, mode == 2 ? &memo : nullptr);
            auto read = read_reserve_transaction(transaction(t.commands), t, limits, now, config);
            REQUIRE(read);
            for (const auto& argv : note_transaction(memo, t, *read))
                REQUIRE(redis.run(argv).type == redis::Value::Type::integer);
            if (read->reserved) {
                reservations.add(t.held, t.member, now);
                return *read->reserved;
            }
            undo = read->undo;
            held_member = {t.held, t.member};
        }
        ++script_calls;
        auto v = eval(reserve_call(f, limits, now, config, undo));
        INFO(v.str);
        auto o = parse_reserve_reply(v);
        REQUIRE(o);
        if (o->verdict == QuotaVerdict::reserved && !held_member.first.empty())
            reservations.add(held_member.first, held_member.second, now);
        return *o;
    }

    // reserve_transaction's commands in MULTI ... EXEC; EXEC's answer.
    redis::Value transaction(const redis::Batch& commands) {
        redis::Batch all;
        all.add({"MULTI"});
        all.append(commands);
        all.add({"EXEC"});
        auto replies = redis.run(all);
        REQUIRE(replies.front().str == "OK");
        for (std::size_t i = 1; i + 1 < replies.size(); ++i)
            REQUIRE(replies[i].str == "QUEUED");
        return replies.back();
    }

    // As policyd commits: with the transaction first when it knows the message's reservations
    // (commit_transaction), the script for whatever that leaves.
    CommitOutcome commit(long long now, const std::string& instance, long count) {
        auto limits = merge_windows(config.quota.limits);
        auto f = facts(instance, "");
        f.state = "END-OF-MESSAGE";
        long long done = 0;
        if (transaction_first) {
            auto known = reservations.take(f, config);
            if (auto t = commit_transaction(f, count, known, now, config)) {
                auto read = read_commit_transaction(transaction(*t));
                REQUIRE(read);
                if (!read->others) return {read->committed, 0, 0};
                done = read->committed;
            }
        }
        long left = count < 0 ? -1 : std::max(0L, count - static_cast<long>(done));
        auto v = eval(commit_call(f, left, limits, now, config));
        INFO(v.str);
        auto o = parse_commit_reply(v);
        REQUIRE(o);
        o->committed += done;
        return *o;
    }

    long long held_size() { return redis.run({"ZCARD", "pw:quota:{" + login + "}:held"}).integer; }

    // Recipients counted in the window of that many seconds (reserved and committed).
    long long used(long seconds) {
        auto v = redis.run({"HVALS", "pw:quota:{" + login + "}:used:" + std::to_string(seconds)});
        long long sum = 0;
        for (const auto& e : v.elements)
            sum += std::stoll(e.str);
        return sum;
    }
};

bool reserved(const QuotaOutcome& o) {
    return o.verdict == QuotaVerdict::reserved;
}

}  // namespace

TEST_CASE("script: the limit is reached exactly, the refused recipient is not counted",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 3/60\nauto_block = 0\n");
    for (int i = 1; i <= 3; ++i) {
        auto o = q.reserve(t0 + i, "m1", "r" + std::to_string(i) + "@x.example");
        CHECK(reserved(o));
        CHECK(o.window == 1);
        CHECK(o.figure == i);
    }
    auto refused = q.reserve(t0 + 10, "m2", "r4@x.example");
    CHECK(refused.verdict == QuotaVerdict::throttled);
    CHECK(refused.figure == 3);
    // as policyd reserves, only the refusal needed the script
    CHECK(q.script_calls == (q.transaction_first ? 1 : 4));
    // the first bucket (1 s long) leaves the window at its end plus 60 s
    CHECK(refused.until_ms == t0 + 1000 + 60000);
    CHECK(q.used(60) == 3);
    // nor held: the refused recipient has no reservation to commit or give back
    CHECK(redis.run({"ZCARD", "pw:quota:{alice@example.com}:held"}).integer == 3);
    CHECK(redis.run({"ZSCORE", "pw:quota:{alice@example.com}:held", "m2 r4@x.example"}).type ==
          redis::Value::Type::nil);

    // honest: at T it fits again (no attempt in between)
    CHECK(reserved(q.reserve(t0 + 61000, "m3", "r5@x.example")));
    CHECK(q.used(60) == 1);

    // one millisecond early is still throttled, for another user in the same state
    q.login = "bob@example.com";
    for (int i = 1; i <= 3; ++i)
        q.reserve(t0 + i, "b1", "r" + std::to_string(i));
    CHECK(q.reserve(t0 + 10, "b2", "r4").until_ms == t0 + 61000);
    CHECK(q.reserve(t0 + 60999, "b3", "r5").verdict == QuotaVerdict::penalty);
}

// policyd's transaction counted a recipient past the limit, and the script call that was to take
// it back never came (a timeout, a lost connection): the member it left in held is not a
// reservation, and a retry of that recipient must not pass as its replay.
TEST_CASE("script: a member a lost call left in held is not trusted as a replay",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 2/60\nauto_block = 0\n");
    CHECK(reserved(q.reserve(t0, "m1", "a")));
    CHECK(reserved(q.reserve(t0, "m1", "b")));
    auto limits = merge_windows(q.config.quota.limits);
    auto t = reserve_transaction(q.facts("m2", "c"), limits, t0 + 1, q.config);
    auto read = read_reserve_transaction(q.transaction(t.commands), t, limits, t0 + 1, q.config);
    REQUIRE(read);
    CHECK_FALSE(read->reserved);
    CHECK(read->undo == Undo::counted_and_held);
    CHECK(q.used(60) == 3);  // ... and no script call follows

    auto retry = q.reserve(t0 + 2, "m2", "c");
    CHECK(retry.verdict == QuotaVerdict::throttled);
    CHECK(retry.figure == 2);
    CHECK(q.used(60) == 2);
    CHECK(redis.run({"ZSCORE", "pw:quota:{alice@example.com}:held", "m2 c"}).type ==
          redis::Value::Type::nil);
    // a true replay of a reservation is still one
    CHECK(reserved(q.reserve(t0 + 3, "m1", "a")));
    CHECK(q.used(60) == 2);
}

TEST_CASE("script: several windows, the one that is full decides", "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 2/10, 3/3600\nauto_block = 0\n");
    CHECK(reserved(q.reserve(t0, "m1", "a")));
    auto second = q.reserve(t0, "m1", "b");
    CHECK(second.window == 1);  // 2/2 of the short window is fuller than 2/3
    CHECK(second.figure == 2);
    auto short_full = q.reserve(t0 + 1, "m1", "c");
    CHECK(short_full.verdict == QuotaVerdict::throttled);
    CHECK(short_full.window == 1);
    long long bucket_end = (t0 / 167 + 1) * 167;  // buckets of 10 s / 60 = 167 ms
    CHECK(short_full.until_ms == bucket_end + 10000);
    CHECK(q.reserve(bucket_end + 9999, "m2", "d").verdict == QuotaVerdict::penalty);
    CHECK(reserved(q.reserve(short_full.until_ms + 40000, "m3", "d")));
    auto long_full = q.reserve(short_full.until_ms + 40000, "m4", "e");
    CHECK(long_full.verdict == QuotaVerdict::throttled);
    CHECK(long_full.window == 2);
    CHECK(long_full.figure == 3);
    CHECK(long_full.until_ms == t0 + 60000 + 3600000);
}

TEST_CASE(
    "script: penalty doubles the time left, at most penalty_max, same message and "
    "replays do not move it",
    "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 1/60\npenalty_max = 100\nauto_block = 0\n");
    CHECK(reserved(q.reserve(t0, "m1", "a")));
    auto first = q.reserve(t0 + 20000, "m2", "b");
    long long T = t0 + 1000 + 60000;
    CHECK(first.until_ms == T);

    // a replay of the same request: the same answer, no penalty
    CHECK(q.reserve(t0 + 20001, "m2", "b").until_ms == T);
    CHECK(q.reserve(t0 + 20001, "m2", "b").verdict == QuotaVerdict::throttled);
    // another recipient of the same message: the same time
    CHECK(q.reserve(t0 + 20002, "m2", "c").until_ms == T);

    // a new message at t: T becomes t + min(penalty_max, 2 (T - t))
    long long t = t0 + 50000;  // 11 s left → 22 s
    auto p1 = q.reserve(t, "m3", "b");
    CHECK(p1.verdict == QuotaVerdict::penalty);
    CHECK(p1.until_ms == t + 2 * (T - t));
    T = p1.until_ms;
    t += 1000;  // 21 s left → 42 s
    CHECK(q.reserve(t, "m4", "b").until_ms == t + 2 * (T - t));
    T = t + 2 * (T - t);
    for (int i = 0; i < 5; ++i) {
        t += 500;
        auto p = q.reserve(t, "m5" + std::to_string(i), "b");
        CHECK(p.until_ms <= t + 100000);  // never beyond penalty_max from the attempt
        CHECK(p.until_ms >= T);           // never earlier
        T = p.until_ms;
    }
    CHECK(T == t + 100000);
    // the throttle state expires with T, and at T mail flows again
    CHECK(redis.run({"PTTL", "pw:quota:{alice@example.com}:throttle"}).integer > 0);
    CHECK(reserved(q.reserve(T, "m6", "b")));

    // penalty_max shorter than the time a window needs: T is never moved earlier
    q.login = "carol@example.com";
    q.config.quota.penalty_max = 5;
    q.reserve(t0, "c1", "a");
    auto c = q.reserve(t0 + 1, "c2", "b");
    CHECK(q.reserve(t0 + 2, "c3", "b").until_ms == c.until_ms);
}

TEST_CASE("script: reservations commit, are given back beyond recipient_count, expire",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 10/3600\nreserve_ttl = 60\nauto_block = 0\n");
    for (auto r : {"a", "b", "c"})
        CHECK(reserved(q.reserve(t0, "done", r)));
    for (auto r : {"a", "b"})
        CHECK(reserved(q.reserve(t0 + 1000, "aborted", r)));
    for (auto r : {"a", "b", "c"})
        CHECK(reserved(q.reserve(t0 + 2000, "partly", r)));
    CHECK(q.used(3600) == 8);
    // replays of reserved recipients count nothing
    CHECK(reserved(q.reserve(t0 + 2500, "done", "a")));
    CHECK(q.used(3600) == 8);

    auto done = q.commit(t0 + 5000, "done", 3);
    CHECK(done.committed == 3);
    CHECK(done.released == 0);
    auto partly = q.commit(t0 + 5000, "partly", 1);  // a later restriction refused two
    CHECK(partly.committed == 1);
    CHECK(partly.released == 2);
    CHECK(q.used(3600) == 6);
    // a replayed END-OF-MESSAGE finds nothing
    CHECK(q.commit(t0 + 5001, "done", 3).committed == 0);
    CHECK(q.used(3600) == 6);

    // "aborted" never commits: released reserve_ttl after its RCPT, on the next request
    CHECK(q.reserve(t0 + 60999, "next", "a").figure == 7);
    CHECK(q.reserve(t0 + 61000, "next", "b").figure == 6);
    CHECK(q.used(3600) == 6);
    const std::string held = "pw:quota:{alice@example.com}:held";
    CHECK(redis.run({"ZCOUNT", held, "(0", "+inf"}).integer == 2);  // reserved: next's
    // aborted's two are kept, given back, should its END-OF-MESSAGE still come
    CHECK(redis.run({"ZCOUNT", held, "-inf", "(0"}).integer == 2);
    CHECK(redis.run({"ZCARD", held}).integer == 4);
    // committed usage stays
    CHECK(q.commit(t0 + 62000, "next", -1).committed == 2);
    CHECK(q.used(3600) == 6);
}

// A client that keeps its session open past reserve_ttl (NOOPs, a slow DATA) has its reservations
// given back like an abandoned message's; when its END-OF-MESSAGE comes after all, the mail has
// left and is charged then, in the current bucket of every window.
TEST_CASE("script: a message that ends after reserve_ttl is charged when it ends, once",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 10/3600, 20/86400\nreserve_ttl = 60\nauto_block = 0\n");
    for (auto r : {"a", "b", "c"})
        CHECK(reserved(q.reserve(t0, "slow", r)));
    CHECK(q.used(3600) == 3);
    // the user's next request, past reserve_ttl, gives them back
    CHECK(q.reserve(t0 + 61000, "other", "x").figure == 1);
    CHECK(q.used(3600) == 1);
    CHECK(q.used(86400) == 1);

    auto late = q.commit(t0 + 120000, "slow", 3);
    CHECK(late.committed == 3);
    CHECK(late.released == 0);
    CHECK(late.late == 3);
    CHECK(q.used(3600) == 4);
    CHECK(q.used(86400) == 4);
    // counted again where END-OF-MESSAGE falls, so it leaves the window a window after that
    CHECK(redis
              .run({"HGET", "pw:quota:{alice@example.com}:used:3600",
                    std::to_string((t0 + 120000) / 60000)})
              .str == "3");
    // a replayed END-OF-MESSAGE charges nothing more
    auto replay = q.commit(t0 + 120001, "slow", 3);
    CHECK(replay.committed == 0);
    CHECK(replay.late == 0);
    CHECK(q.used(3600) == 4);
    CHECK(q.commit(t0 + 120000, "other", 1).committed == 1);
    CHECK(q.used(3600) == 4);

    // nothing in between: the commit itself gives them back and charges them
    for (auto r : {"d", "e"})
        CHECK(reserved(q.reserve(t0 + 130000, "slow2", r)));
    CHECK(q.used(3600) == 6);
    auto alone = q.commit(t0 + 200000, "slow2", 2);
    CHECK(alone.committed == 2);
    CHECK(alone.late == 2);
    CHECK(q.used(3600) == 6);
    CHECK(q.used(86400) == 6);

    // recipient_count still bounds the charge: Postfix accepted one of three
    for (auto r : {"f", "g", "h"})
        CHECK(reserved(q.reserve(t0 + 210000, "slow3", r)));
    CHECK(q.reserve(t0 + 280000, "other2", "y").figure == 7);  // slow3's three given back
    auto partly = q.commit(t0 + 290000, "slow3", 1);
    CHECK(partly.committed == 1);
    CHECK(partly.released == 2);
    CHECK(partly.late == 1);
    CHECK(q.used(3600) == 8);
    CHECK(q.used(86400) == 8);
    CHECK(q.commit(t0 + 290001, "slow3", 1).committed == 0);
    CHECK(q.used(3600) == 8);
}

// The mail has left, so a late END-OF-MESSAGE is charged even when that passes a limit; the user
// is then over it, and the next recipients wait until the window has room again.
TEST_CASE("script: a late message is charged past the limit, and the next recipient waits",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 3/3600\nreserve_ttl = 60\nauto_block = 0\n");
    for (auto r : {"a", "b", "c"})
        CHECK(reserved(q.reserve(t0, "slow", r)));
    // past reserve_ttl they are given back, and another message takes the room
    for (auto r : {"d", "e", "f"})
        CHECK(reserved(q.reserve(t0 + 61000, "fast", r)));
    CHECK(q.used(3600) == 3);
    auto late = q.commit(t0 + 62000, "slow", 3);
    CHECK(late.committed == 3);
    CHECK(late.late == 3);
    CHECK(q.used(3600) == 6);
    auto next = q.reserve(t0 + 63000, "next", "g");
    CHECK(next.verdict == QuotaVerdict::throttled);
    CHECK(next.figure == 6);
    CHECK(next.until_ms == t0 + 120000 + 3600000);  // when the minute bucket of both leaves
    CHECK(q.commit(t0 + 64000, "fast", 3).committed == 3);
    CHECK(q.used(3600) == 6);
}

// Two policyd whose clocks differ: the one ahead gives back reservations that the other still
// takes for its own. Its commit transaction must not count them as committed (they were given
// back): the script charges them.
TEST_CASE("script: a reservation given back meanwhile is charged by the commit transaction too",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 10/3600\nreserve_ttl = 60\nauto_block = 0\n");
    for (auto r : {"a", "b"})
        CHECK(reserved(q.reserve(t0, "m1", r)));
    // another policyd, a second ahead, reserves for another message and gives m1's back
    Reservations mine = std::move(q.reservations);
    q.reservations = Reservations();
    CHECK(q.reserve(t0 + 61000, "m2", "x").figure == 1);
    q.reservations = std::move(mine);
    // this one, a second behind, commits m1 while its reservations look fresh to it
    auto commit = q.commit(t0 + 59000, "m1", 2);
    CHECK(commit.committed == 2);
    CHECK(commit.late == 2);
    CHECK(q.used(3600) == 3);
    CHECK(q.commit(t0 + 59001, "m1", 2).committed == 0);
    CHECK(q.used(3600) == 3);
}

// What is given back is remembered for a late END-OF-MESSAGE as long as held lives (the longest
// window and its bucket, or reserve_ttl), then dropped: held does not grow with abandoned messages.
TEST_CASE("script: reservations given back are kept for a late commit, then pruned",
          "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 10/600\nreserve_ttl = 60\nauto_block = 0\n");  // buckets of 10 s
    for (auto r : {"a", "b"})
        CHECK(reserved(q.reserve(t0, "gone", r)));
    CHECK(reserved(q.reserve(t0 + 61000, "m1", "x")));
    CHECK(q.commit(t0 + 61000, "m1", 1).committed == 1);
    CHECK(q.used(600) == 1);
    CHECK(q.held_size() == 2);  // gone's two, given back, kept
    // 610 s after their RCPT they go, with the user's next request
    CHECK(reserved(q.reserve(t0 + 609999, "m2", "x")));
    CHECK(q.held_size() == 3);
    CHECK(reserved(q.reserve(t0 + 610000, "m3", "x")));
    CHECK(q.held_size() == 2);  // m2's and m3's
    CHECK(q.commit(t0 + 620000, "gone", 2).committed == 0);
    CHECK(q.held_size() == 2);
    auto keys = redis.run({"KEYS", "pw:*"});
    for (const auto& k : keys.elements) {
        INFO(k.str);
        CHECK(redis.run({"PTTL", k.str}).integer > 0);
    }
}

TEST_CASE("script: auto_block counts every attempt, throttled ones included", "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 2/60\nauto_block = 4/60\n");
    CHECK(reserved(q.reserve(t0, "m1", "a")));
    CHECK(reserved(q.reserve(t0, "m1", "b")));
    CHECK(q.reserve(t0, "m1", "c").verdict == QuotaVerdict::throttled);
    CHECK(q.reserve(t0, "m1", "c").verdict == QuotaVerdict::throttled);  // replay: not counted
    CHECK(q.reserve(t0, "m2", "c").verdict == QuotaVerdict::penalty);
    auto blocked = q.reserve(t0 + 1, "m3", "d");
    CHECK(blocked.verdict == QuotaVerdict::blocked);
    CHECK(blocked.window == 1);
    CHECK(blocked.figure == 5);
    // the attempt count starts over, so an operator's unblock is not undone by the next request
    CHECK(redis.run({"EXISTS", "pw:quota:{alice@example.com}:tried:60"}).integer == 0);
}

TEST_CASE("script: a window's key lives as long as its newest bucket counts", "[quota][script]") {
    RedisServer redis;
    Quota q(redis, "limits = 100/3600\nauto_block = 0\n");  // buckets of 60 s
    const std::string key = "pw:quota:{alice@example.com}:used:3600";
    auto ttl = [&] { return redis.run({"PTTL", key}).integer; };
    REQUIRE(reserved(q.reserve(t0, "m1", "a")));
    CHECK(ttl() > 3600000);  // window + bucket from now: 3,660,000 ms
    CHECK(ttl() <= 3660000);
    // Later in the same bucket the TTL still covers it: that bucket stops counting at
    // t0 + 60 s + 3600 s, and the key was given 3,660 s at t0.
    redis.run({"PEXPIRE", key, "3600500"});  // as if 59.5 s had gone by
    REQUIRE(reserved(q.reserve(t0 + 59500, "m2", "a")));
    CHECK(ttl() > 3600000);
    // The next bucket is first written: the key must now last to its end (t0 + 120 s + 3600 s).
    redis.run({"PEXPIRE", key, "1000"});
    REQUIRE(reserved(q.reserve(t0 + 60000, "m3", "a")));
    CHECK(ttl() > 3600000);
    CHECK(q.used(3600) == 3);
}

TEST_CASE("script: memory stays bounded and every key expires", "[quota][script]") {
    RedisServer redis;
    Quota q(redis,
            "limits = 100000/3600, 100000/86400\nauto_block = 100000/3600\n"
            "reserve_ttl = 900\n");
    // 3000 recipients over 4 hours, each message committed
    for (int i = 0; i < 3000; ++i) {
        long long now = t0 + i * 4800LL;
        auto m = "m" + std::to_string(i);
        REQUIRE(reserved(q.reserve(now, m, "r@x.example")));
        REQUIRE(q.commit(now + 10, m, 1).committed == 1);
    }
    auto base = "pw:quota:{alice@example.com}:";
    CHECK(redis.run({"HLEN", base + std::string("used:3600")}).integer <= 61);
    CHECK(redis.run({"HLEN", base + std::string("used:86400")}).integer <= 61);
    CHECK(redis.run({"HLEN", base + std::string("tried:3600")}).integer <= 61);
    CHECK(redis.run({"ZCARD", base + std::string("held")}).integer == 0);
    // one per 4.8 s over the window, plus at most its last bucket (60 s)
    CHECK(q.used(3600) >= 750);
    CHECK(q.used(3600) <= 763);

    q.reserve(t0 + 3000 * 4800LL, "open", "r@x.example");
    q.config.quota.limits = {{1, 60}};
    q.reserve(t0 + 3000 * 4800LL, "open", "s@x.example");
    CHECK(q.reserve(t0 + 3000 * 4800LL, "refused", "r@x.example").verdict ==
          QuotaVerdict::throttled);
    auto keys = redis.run({"KEYS", "pw:*"});
    REQUIRE(keys.elements.size() >= 5);
    for (const auto& k : keys.elements) {
        INFO(k.str);
        CHECK(redis.run({"PTTL", k.str}).integer > 0);
    }
}
