// quota_test.cpp — the pure quota functions: which limits apply, the keys and arguments of
// common/redis/lua/quota.lua, the reservation transaction and how its answer is read, what the
// script's replies mean, the replies, log details and RFC 3339 times. The script's semantics are
// tested against a real redis-server in tests/quota/.
#include <catch2/catch.hpp>

#include "policyd/quota.hpp"

using namespace postwarden;
using namespace postwarden::policy;

namespace {

Facts sasl_facts(std::string login) {
    Facts f;
    f.state = "RCPT";
    f.instance = "4c1f.6632a1b0.7d3e2.0";
    f.login = std::move(login);
    f.recipient = "friend@elsewhere.example";
    f.outbound = true;
    return f;
}

redis::Value integer(long long n) {
    redis::Value v;
    v.type = redis::Value::Type::integer;
    v.integer = n;
    return v;
}

redis::Value reply(std::string verdict, long long until, long long window, long long figure) {
    redis::Value v, s;
    s.type = redis::Value::Type::string;
    s.str = std::move(verdict);
    v.type = redis::Value::Type::array;
    v.elements = {s, integer(until), integer(window), integer(figure)};
    return v;
}

}  // namespace

TEST_CASE("quota applies to SASL users while limits or auto_block is set", "[quota]") {
    auto c = default_config();
    auto f = sasl_facts("alice@example.com");
    CHECK(quota_applies(f, c));
    f.login.clear();  // a trusted network without login is outbound but not counted
    CHECK_FALSE(quota_applies(f, c));
    f.login = "alice@example.com";
    c.quota.limits.clear();
    CHECK(quota_applies(f, c));
    c.quota.auto_block.clear();
    CHECK_FALSE(quota_applies(f, c));
}

TEST_CASE("the override replaces the default limits, invalid text keeps the default", "[quota]") {
    auto c = default_config();
    CHECK(quota_override_key("alice@example.com", c) == "pw:quota:limits:alice@example.com");

    auto none = effective_limits(std::nullopt, c);
    CHECK_FALSE(none.overridden);
    REQUIRE(none.windows.size() == 2);
    CHECK(window_text(none.windows[0]) == "100/3600");
    CHECK(window_text(none.windows[1]) == "1000/86400");

    auto one = effective_limits("50/60, 500/3600", c);
    CHECK(one.overridden);
    CHECK(one.warning.empty());
    REQUIRE(one.windows.size() == 2);
    CHECK(window_text(one.windows[0]) == "50/60");

    auto unlimited = effective_limits("0", c);
    CHECK(unlimited.overridden);
    CHECK(unlimited.windows.empty());

    auto bad = effective_limits("lots", c);
    CHECK_FALSE(bad.overridden);
    CHECK(bad.warning.find("expected COUNT/SECONDS") != std::string::npos);
    CHECK(bad.windows.size() == 2);
}

TEST_CASE("windows of the same length share a key: the smaller count wins", "[quota]") {
    auto w = merge_windows({{20, 60}, {100, 3600}, {10, 60}});
    REQUIRE(w.size() == 2);
    CHECK(window_text(w[0]) == "10/60");
    CHECK(window_text(w[1]) == "100/3600");
}

TEST_CASE("buckets are 1/60 of the window, rounded up to the millisecond", "[quota]") {
    CHECK(bucket_ms({100, 3600}) == 60000);
    CHECK(bucket_ms({1, 2}) == 34);
    CHECK(bucket_ms({1, 1}) == 17);
    CHECK(bucket_ms({1000, 86400}) == 1440000);
}

TEST_CASE("script keys share the login's hash tag, arguments follow the script header", "[quota]") {
    auto c = default_config();
    auto f = sasl_facts("Odd{login}%");
    auto limits = effective_limits(std::nullopt, c).windows;
    auto r = reserve_call(f, limits, 1700000000123, c);
    std::string base = "pw:quota:{Odd%7blogin%7d%25}:";
    CHECK(r.keys == std::vector<std::string>{base + "held", base + "throttle", base + "used:3600",
                                             base + "used:86400", base + "tried:3600"});
    CHECK(r.args == std::vector<std::string>{"reserve", "1700000000123",
                                             "4c1f.6632a1b0.7d3e2.0 friend@elsewhere.example",
                                             "900", "86400", "2", "100", "3600000", "60000", "1000",
                                             "86400000", "1440000", "1", "3000", "3600000",
                                             "60000"});

    f.instance = "has space";
    auto m = commit_call(f, 3, limits, 5, c);
    CHECK(m.keys == std::vector<std::string>{base + "held", base + "throttle", base + "used:3600",
                                             base + "used:86400"});
    CHECK(m.args == std::vector<std::string>{"commit", "5", "has_space", "900", "3", "2", "100",
                                             "3600000", "60000", "1000", "86400000", "1440000",
                                             "0"});
    CHECK(commit_call(f, -7, limits, 5, c).args[4] == "-1");
}

TEST_CASE("the transaction counts first, then reads, the undo argument follows the windows",
          "[quota]") {
    auto c = default_config();  // limits 100/3600, 1000/86400; auto_block 3000/3600
    auto f = sasl_facts("alice");
    auto limits = effective_limits(std::nullopt, c).windows;
    const long long now = 1700000000123;
    std::string base = "pw:quota:{alice}:";
    redis::Batch expected;
    expected.add({"ZADD", base + "held", "NX", "1700000000123",
                  "4c1f.6632a1b0.7d3e2.0 friend@elsewhere.example"});
    expected.add({"HINCRBY", base + "used:3600", "28333333", "1"});
    expected.add({"PEXPIRE", base + "used:3600", "3660000"});
    expected.add({"HINCRBY", base + "used:86400", "1180555", "1"});
    expected.add({"PEXPIRE", base + "used:86400", "87840000"});
    expected.add({"HINCRBY", base + "tried:3600", "28333333", "1"});
    expected.add({"PEXPIRE", base + "tried:3600", "3660000"});
    expected.add({"PEXPIRE", base + "held", "87840000"});
    expected.add({"HGETALL", base + "used:3600"});
    expected.add({"HGETALL", base + "used:86400"});
    expected.add({"HGETALL", base + "tried:3600"});
    expected.add({"HGET", base + "throttle", "until"});
    expected.add({"ZCOUNT", base + "held", "-1699912160123", "1699999100123"});
    auto t = reserve_transaction(f, limits, now, c);
    CHECK(t.commands.size() == 13);
    CHECK(t.commands.encoded() == expected.encoded());
    REQUIRE(t.windows.size() == 3);
    CHECK(t.windows[1].key == base + "used:86400");
    CHECK(t.windows[1].ttl_ms == 87840000);
    CHECK(t.windows[1].bucket == 1180555);
    CHECK(t.windows[1].sets_ttl);
    CHECK(reserve_call(f, limits, now, c, Undo::counted).args.back() == "1");
    CHECK(reserve_call(f, limits, now, c, Undo::counted_and_held).args.back() == "2");
    CHECK(reserve_call(f, limits, now, c).args.back() == "60000");  // no undo argument
}

namespace {

redis::Value text(std::string s) {
    redis::Value v;
    v.type = redis::Value::Type::string;
    v.str = std::move(s);
    return v;
}

redis::Value array(std::vector<redis::Value> elements) {
    redis::Value v;
    v.type = redis::Value::Type::array;
    v.elements = std::move(elements);
    return v;
}

// EXEC's answer for the default config's three windows: ZADD's answer, each window's
// {bucket, count} pairs, the throttle's until (nil when absent), whether reservations are due
// for release. counted: HINCRBY's answers (1 when not given); sets_ttl: which windows have a
// PEXPIRE's answer (all when not given); asks_due: whether ZCOUNT's answer is there.
redis::Value exec(long long added, std::vector<std::vector<std::string>> windows,
                  std::optional<std::string> until = std::nullopt, bool expired = false,
                  std::vector<long long> counted = {}, std::vector<bool> sets_ttl = {},
                  bool asks_due = true) {
    std::vector<redis::Value> e{integer(added)};
    for (std::size_t i = 0; i < windows.size(); ++i) {
        e.push_back(integer(i < counted.size() ? counted[i] : 1));         // HINCRBY
        if (i >= sets_ttl.size() || sets_ttl[i]) e.push_back(integer(1));  // PEXPIRE
    }
    e.push_back(integer(1));  // PEXPIRE held
    for (const auto& w : windows) {
        std::vector<redis::Value> flat;
        for (const auto& s : w)
            flat.push_back(text(s));
        e.push_back(array(std::move(flat)));
    }
    e.push_back(until ? text(*until) : redis::Value{});
    if (asks_due) e.push_back(integer(expired ? 2 : 0));
    return array(std::move(e));
}

}  // namespace

TEST_CASE("the transaction's answer is the reservation only when quota.lua would give it",
          "[quota]") {
    auto c = default_config();
    auto limits = effective_limits(std::nullopt, c).windows;
    const long long now = 1700000000123;
    const std::string hour = "28333333", day = "1180555", old_hour = "28333271";  // 62 min ago
    const auto t = reserve_transaction(sasl_facts("alice"), limits, now, c);
    auto read = [&](const redis::Value& v) {
        auto r = read_reserve_transaction(v, t, limits, now, c);
        REQUIRE(r);
        return *r;
    };

    // room everywhere: reserved, the fullest window named (60/100 beats 300/1000)
    auto usual = read(exec(1, {{hour, "59", "28333300", "1"}, {day, "300"}, {hour, "7"}}));
    REQUIRE(usual.reserved);
    CHECK(usual.reserved->verdict == QuotaVerdict::reserved);
    CHECK(usual.reserved->window == 1);
    CHECK(usual.reserved->figure == 60);
    // exactly at the count (this recipient included) is still room
    CHECK(read(exec(1, {{hour, "100"}, {day, "1"}, {hour, "1"}})).reserved);

    // anything else goes to the script, which first takes back what the transaction wrote
    auto past = read(exec(1, {{hour, "101"}, {day, "1"}, {hour, "1"}}));
    CHECK_FALSE(past.reserved);
    CHECK(past.undo == Undo::counted_and_held);
    auto replay = read(exec(0, {{hour, "5"}, {day, "5"}, {hour, "5"}}));
    CHECK_FALSE(replay.reserved);
    CHECK(replay.undo == Undo::counted);
    CHECK_FALSE(read(exec(1, {{hour, "5"}, {day, "5"}, {hour, "3001"}})).reserved);  // auto_block
    CHECK_FALSE(read(exec(1, {{hour, "5"}, {day, "5"}, {hour, "5"}}, "1700000000124")).reserved);
    CHECK(read(exec(1, {{hour, "5"}, {day, "5"}, {hour, "5"}}, "1700000000123")).reserved);
    CHECK_FALSE(read(exec(1, {{hour, "5", old_hour, "1"}, {day, "5"}, {hour, "5"}})).reserved);
    CHECK_FALSE(read(exec(1, {{hour, "5"}, {day, "5"}, {hour, "5"}}, std::nullopt, true)).reserved);

    // another shape is not read at all
    CHECK_FALSE(read_reserve_transaction(exec(1, {{hour, "5"}, {day, "5"}}), t, limits, now, c));
    CHECK_FALSE(read_reserve_transaction(exec(1, {{hour, "x"}, {day, "5"}, {hour, "5"}}), t, limits,
                                         now, c));
    CHECK_FALSE(
        read_reserve_transaction(exec(1, {{hour}, {day, "5"}, {hour, "5"}}), t, limits, now, c));
    redis::Value aborted;
    aborted.type = redis::Value::Type::error;
    aborted.str = "EXECABORT Transaction discarded because of previous errors.";
    CHECK_FALSE(read_reserve_transaction(aborted, t, limits, now, c));
}

TEST_CASE("a window's TTL is set once per bucket and due reservations asked once a second",
          "[quota]") {
    auto c = default_config();  // limits 100/3600, 1000/86400; auto_block 3000/3600
    auto f = sasl_facts("alice");
    auto limits = effective_limits(std::nullopt, c).windows;
    const long long now = 1700000000123;  // hour buckets of 60 s, day buckets of 24 min
    const std::string base = "pw:quota:{alice}:";
    const std::string hour = "28333333", day = "1180555";
    QuotaMemo memo;
    auto sets = [](const ReserveTransaction& t) {
        std::vector<bool> out;
        for (const auto& w : t.windows)
            out.push_back(w.sets_ttl);
        return out;
    };

    // nothing remembered: every TTL is set, as without a memo
    auto first = reserve_transaction(f, limits, now, c, &memo);
    CHECK(first.commands.encoded() == reserve_transaction(f, limits, now, c).commands.encoded());
    auto read = read_reserve_transaction(exec(1, {{hour, "1"}, {day, "1"}, {hour, "1"}}), first,
                                         limits, now, c);
    REQUIRE(read);
    CHECK(read->untimed.empty());  // counts of 1, but the TTLs were set with them
    CHECK(note_transaction(memo, first, *read).empty());
    CHECK(memo.size() == 4);  // the windows' buckets and held's second

    // later in the same buckets: no window PEXPIRE; held's is still set (a commit may delete it)
    auto same = reserve_transaction(f, limits, now + 1000, c, &memo);
    CHECK(sets(same) == std::vector<bool>{false, false, false});
    redis::Batch expected;
    expected.add({"ZADD", base + "held", "NX", "1700000001123",
                  "4c1f.6632a1b0.7d3e2.0 friend@elsewhere.example"});
    expected.add({"HINCRBY", base + "used:3600", hour, "1"});
    expected.add({"HINCRBY", base + "used:86400", day, "1"});
    expected.add({"HINCRBY", base + "tried:3600", hour, "1"});
    expected.add({"PEXPIRE", base + "held", "87840000"});
    expected.add({"HGETALL", base + "used:3600"});
    expected.add({"HGETALL", base + "used:86400"});
    expected.add({"HGETALL", base + "tried:3600"});
    expected.add({"HGET", base + "throttle", "until"});
    expected.add({"ZCOUNT", base + "held", "-1699912161123", "1699999101123"});
    CHECK(same.commands.encoded() == expected.encoded());

    // the day's key had been deleted: its count is 1 again, so it may lack a TTL
    auto gone = read_reserve_transaction(
        exec(1, {{hour, "2"}, {day, "1"}, {hour, "2"}}, std::nullopt, false, {2, 1, 2}, sets(same)),
        same, limits, now + 1000, c);
    REQUIRE(gone);
    CHECK(gone->reserved);  // the decision is the same
    CHECK(gone->untimed == std::vector<std::size_t>{1});
    auto pexpire = note_transaction(memo, same, *gone);
    CHECK(pexpire ==
          std::vector<std::vector<std::string>>{{"PEXPIRE", base + "used:86400", "87840000"}});
    CHECK(sets(reserve_transaction(f, limits, now + 2000, c, &memo)) ==
          std::vector<bool>{false, true, false});  // and the next count sets it too
    // within the same second, held is not asked again for reservations due for release: they
    // only make the windows look fuller, and quota.lua gives them back when one looks full
    auto soon = reserve_transaction(f, limits, now + 1500, c, &memo);
    CHECK(sets(soon) == std::vector<bool>{false, true, false});
    CHECK_FALSE(soon.asks_due);
    CHECK(soon.commands.size() == 10);  // ZADD, 3 HINCRBY, 2 PEXPIRE, 3 HGETALL, HGET: no ZCOUNT
    auto read_soon = [&](std::vector<std::string> hour_counts, bool asks_due) {
        return read_reserve_transaction(exec(1, {hour_counts, {day, "2"}, {hour, "3"}},
                                             std::nullopt, false, {3, 2, 3}, sets(soon), asks_due),
                                        soon, limits, now + 1500, c);
    };
    auto fits = read_soon({hour, "3"}, false);
    REQUIRE(fits);
    CHECK(fits->reserved);
    CHECK(fits->untimed.empty());
    auto full = read_soon({hour, "101"}, false);
    REQUIRE(full);
    CHECK_FALSE(full->reserved);
    CHECK_FALSE(read_soon({hour, "3"}, true));  // one answer too many
    note_transaction(memo, soon, *fits);
    CHECK_FALSE(reserve_transaction(f, limits, now + 1876, c, &memo).asks_due);  // ...001.999
    CHECK(reserve_transaction(f, limits, now + 1877, c, &memo).asks_due);        // the next second
    // a reply of the shape with every PEXPIRE is not this transaction's
    CHECK_FALSE(read_reserve_transaction(exec(1, {{hour, "2"}, {day, "1"}, {hour, "2"}}), same,
                                         limits, now + 1000, c));

    // the next hour bucket: those windows set their TTL again; the day's bucket is the same
    auto next = reserve_transaction(f, limits, now + 60000, c, &memo);
    CHECK(sets(next) == std::vector<bool>{true, false, true});  // the day's was set again by soon
    note_transaction(memo, next, *read);
    CHECK(sets(reserve_transaction(f, limits, now + 61000, c, &memo)) ==
          std::vector<bool>{false, false, false});
    CHECK(sets(reserve_transaction(f, limits, now + 120000, c, &memo)) ==
          std::vector<bool>{true, false, true});
    // a clock that went back is another bucket too
    CHECK(sets(reserve_transaction(f, limits, now, c, &memo)) ==
          std::vector<bool>{true, false, true});
}

TEST_CASE("the quota memo is bounded", "[quota]") {
    QuotaMemo memo(2);
    memo.set("a", 1);
    memo.set("b", 1);
    memo.set("a", 2);  // a key it has is updated in place
    CHECK(memo.size() == 2);
    CHECK(memo.fresh("a", 2));
    CHECK_FALSE(memo.fresh("a", 1));
    memo.set("c", 1);  // full: everything is forgotten first
    CHECK(memo.size() == 1);
    CHECK_FALSE(memo.fresh("a", 2));
    CHECK(memo.fresh("c", 1));
    memo.forget("c");
    CHECK_FALSE(memo.fresh("c", 1));
}

TEST_CASE("the reservations of a message are remembered per user and message, and bounded",
          "[quota]") {
    auto c = default_config();
    auto f = sasl_facts("alice");
    const std::string held = "pw:quota:{alice}:held", instance = "4c1f.6632a1b0.7d3e2.0 ";
    Reservations known(2);
    known.add(held, instance + "friend@elsewhere.example", 100);
    known.add(held, instance + "friend@elsewhere.example", 150);  // a replay keeps the first time
    known.add(held, instance + "other@elsewhere.example", 200);
    // the same instance of another user is another message
    known.add("pw:quota:{bob}:held", instance + "friend@elsewhere.example", 300);
    CHECK(known.size() == 2);

    // as the reservation transaction names them
    auto t = reserve_transaction(f, effective_limits(std::nullopt, c).windows, 100, c);
    CHECK(t.held == held);
    CHECK(t.member == instance + "friend@elsewhere.example");

    f.state = "END-OF-MESSAGE";
    auto taken = known.take(f, c);
    REQUIRE(taken.size() == 2);
    CHECK(taken[0].member == instance + "friend@elsewhere.example");
    CHECK(taken[0].ms == 100);
    CHECK(taken[1].member == instance + "other@elsewhere.example");
    CHECK(known.take(f, c).empty());  // taken once
    CHECK(known.size() == 1);

    known.add(held, "next friend@elsewhere.example", 400);
    known.add(held, "third friend@elsewhere.example", 500);  // full: everything is forgotten first
    CHECK(known.size() == 1);
    CHECK(known.take(sasl_facts("bob"), c).empty());
    f.instance = "third";
    CHECK(known.take(f, c).size() == 1);
}

TEST_CASE("the usual commit is a transaction, the script commits what it cannot", "[quota]") {
    auto c = default_config();
    c.quota.reserve_ttl = 600;
    auto f = sasl_facts("alice");
    f.state = "END-OF-MESSAGE";
    f.instance = "4c1f 1*";  // a space would end the instance early: it is replaced
    const long long now = 1700000000000;
    const std::vector<Reservations::Reserved> two = {{"4c1f_1* a@x.example", now - 2000},
                                                     {"4c1f_1* b@x.example", now - 1000}};

    auto t = commit_transaction(f, 2, two, now, c);
    REQUIRE(t);
    redis::Batch expected;
    expected.add({"ZREM", "pw:quota:{alice}:held", "4c1f_1* a@x.example", "4c1f_1* b@x.example"});
    // the message's other members, picked out by Redis; the instance's * is no wildcard
    expected.add({"ZSCAN", "pw:quota:{alice}:held", "0", "MATCH", "4c1f_1\\* *", "COUNT", "1000"});
    CHECK(t->encoded() == expected.encoded());
    CHECK(commit_transaction(f, -1, two, now, c));  // recipient_count unknown: all commit
    CHECK(commit_transaction(f, 3, two, now, c));   // more accepted than known: ZSCAN tells

    CHECK_FALSE(commit_transaction(f, 2, {}, now, c));                   // none known
    CHECK_FALSE(commit_transaction(f, 1, two, now, c));                  // one of two to give back
    CHECK_FALSE(commit_transaction(f, 2, two, now - 2000 + 600000, c));  // the first is due
    CHECK(commit_transaction(f, 2, two, now - 2001 + 600000, c));

    auto text = [](std::string s) {
        redis::Value v;
        v.type = redis::Value::Type::string;
        v.str = std::move(s);
        return v;
    };
    auto exec = [&](long long removed, std::string cursor, std::vector<std::string> found) {
        redis::Value v, scan, list;
        list.type = scan.type = v.type = redis::Value::Type::array;
        for (auto& m : found)
            list.elements.push_back(text(std::move(m)));
        scan.elements = {text(std::move(cursor)), list};
        v.elements = {integer(removed), scan};
        return v;
    };
    auto alone = read_commit_transaction(exec(2, "0", {}));
    REQUIRE(alone);
    CHECK(alone->committed == 2);
    CHECK_FALSE(alone->others);
    auto more = read_commit_transaction(exec(1, "0", {"4c1f_1* c@x.example", "1700000000000"}));
    REQUIRE(more);
    CHECK(more->committed == 1);
    CHECK(more->others);  // reserved elsewhere: the script commits it
    auto large = read_commit_transaction(exec(2, "8192", {}));
    REQUIRE(large);
    CHECK(large->others);  // not scanned whole: the script looks

    CHECK_FALSE(read_commit_transaction(integer(2)));
    CHECK_FALSE(read_commit_transaction(exec(2, "0", {}).elements[1]));
    auto odd = exec(2, "0", {});
    odd.elements[1].elements[1] = integer(0);
    CHECK_FALSE(read_commit_transaction(odd));
    redis::Value wrong_type;  // held is not a sorted set: EXEC carries the commands' errors
    wrong_type.type = redis::Value::Type::error;
    wrong_type.str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    odd = exec(2, "0", {});
    odd.elements[0] = wrong_type;
    CHECK_FALSE(read_commit_transaction(odd));
}

TEST_CASE("script replies are parsed strictly", "[quota]") {
    auto ok = parse_reserve_reply(reply("reserved", 0, 1, 57));
    REQUIRE(ok);
    CHECK(ok->verdict == QuotaVerdict::reserved);
    CHECK(ok->window == 1);
    CHECK(ok->figure == 57);
    auto t = parse_reserve_reply(reply("throttled", 1700000003600, 2, 1000));
    REQUIRE(t);
    CHECK(t->verdict == QuotaVerdict::throttled);
    CHECK(t->until_ms == 1700000003600);
    CHECK(parse_reserve_reply(reply("penalty", 9, 1, 1))->verdict == QuotaVerdict::penalty);
    CHECK(parse_reserve_reply(reply("blocked", 0, 1, 3001))->verdict == QuotaVerdict::blocked);

    CHECK_FALSE(parse_reserve_reply(reply("maybe", 0, 1, 1)));
    CHECK_FALSE(parse_reserve_reply(reply("throttled", 0, 1, 1)));  // refused without a time
    CHECK_FALSE(parse_reserve_reply(reply("reserved", 0, -1, 1)));
    CHECK_FALSE(parse_reserve_reply(integer(1)));

    redis::Value commit;
    commit.type = redis::Value::Type::array;
    commit.elements = {integer(3), integer(1), integer(2)};
    auto c = parse_commit_reply(commit);
    REQUIRE(c);
    CHECK(c->committed == 3);
    CHECK(c->released == 1);
    CHECK(c->late == 2);
    CHECK(commit_detail(*c) == "committed=3 released=1 late=2");
    CHECK(commit_detail({3, 1, 0}) == "committed=3 released=1");
    commit.elements.pop_back();
    CHECK_FALSE(parse_commit_reply(commit));
}

TEST_CASE("RFC 3339 times are UTC and rounded up to the second", "[quota]") {
    CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(rfc3339(1714564800000) == "2024-05-01T12:00:00Z");
    CHECK(rfc3339(1714564800001) == "2024-05-01T12:00:01Z");
    CHECK(rfc3339(1714564800999) == "2024-05-01T12:00:01Z");
}

TEST_CASE("replies and log details say which window and the usage", "[quota]") {
    auto c = default_config();
    auto limits = effective_limits(std::nullopt, c).windows;

    auto ok = quota_decision({QuotaVerdict::reserved, 0, 1, 57}, limits, c);
    CHECK(ok.action == "DUNNO");
    CHECK(ok.reason == "quota-ok");
    CHECK(ok.detail == "window=100/3600 used=57");
    CHECK(quota_decision({QuotaVerdict::reserved, 0, 0, 0}, {}, c).detail == "window=none");

    auto t = quota_decision({QuotaVerdict::throttled, 1714564800500, 1, 100}, limits, c);
    CHECK(t.action ==
          "DEFER 4.7.1 Sending rate limit exceeded, try again after 2024-05-01T12:00:01Z");
    CHECK(t.reason == "quota-throttled");
    CHECK(t.detail == "window=100/3600 used=100 until=2024-05-01T12:00:01Z");

    auto p = quota_decision({QuotaVerdict::penalty, 1714564800000, 2, 1000}, limits, c);
    CHECK(p.reason == "quota-throttled");
    CHECK(p.detail == "window=1000/86400 used=1000 until=2024-05-01T12:00:00Z penalty=yes");

    auto b = quota_decision({QuotaVerdict::blocked, 0, 1, 3001}, limits, c);
    CHECK(b.action == "REJECT 5.7.1 Sender address rejected: Access denied");
    CHECK(b.reason == "quota-blocked");
    CHECK(b.detail == "auto_block=3000/3600 attempted=3001");
    CHECK(block_reason({QuotaVerdict::blocked, 0, 1, 3001}, c, 1714564800999) ==
          "auto_block 3000/3600: 3001 recipients attempted at 2024-05-01T12:00:00Z");
}
