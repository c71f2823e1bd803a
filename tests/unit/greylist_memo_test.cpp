// greylist_memo_test.cpp — the passes policyd remembers (policyd/greylist_memo.hpp): only
// passes, the client's auto-allow before the triplet as greylist.lua checks them, for at most
// the hold period, forgotten when the settings they depend on change, and bounded.
#include <catch2/catch.hpp>

#include "policyd/greylist_memo.hpp"

using namespace postwarden;
using postwarden::policy::GreylistMemo;

namespace {

GreylistKeys keys(const std::string& client, const std::string& rcpt) {
    return {client, "pw:grey:{" + client + "}:a@x.example:" + rcpt,
            "pw:awl-domains:{" + client + "}"};
}

Config config(long auto_allow = 5, long pass_ttl = 3024000) {
    auto c = default_config();
    c.greylist.auto_allow_clients = auto_allow;
    c.greylist.pass_ttl = pass_ttl;
    return c;
}

constexpr long long t0 = 1'700'000'000'000;

}  // namespace

TEST_CASE("greylist memo: passes are recalled, deferrals never", "[greylist]") {
    GreylistMemo memo;
    auto c = config();
    auto a = keys("192.0.2.0/24", "b@y.example");
    CHECK_FALSE(memo.recall(a, c, t0));
    memo.remember(a, {GreylistVerdict::defer_new, 300}, c, t0);
    memo.remember(a, {GreylistVerdict::defer_early, 100}, c, t0);
    CHECK_FALSE(memo.recall(a, c, t0 + 1));
    memo.remember(a, {GreylistVerdict::passed, 320}, c, t0 + 2);
    auto got = memo.recall(a, c, t0 + 3);
    REQUIRE(got);
    CHECK(got->verdict == GreylistVerdict::known);  // as the script answers a second time
    // another recipient from the same client is another triplet
    CHECK_FALSE(memo.recall(keys("192.0.2.0/24", "c@y.example"), c, t0 + 3));
}

TEST_CASE("greylist memo: an auto-allowed client covers its other triplets", "[greylist]") {
    GreylistMemo memo;
    auto c = config(5);
    memo.remember(keys("192.0.2.0/24", "b@y.example"), {GreylistVerdict::client_allowed, 7}, c, t0);
    auto got = memo.recall(keys("192.0.2.0/24", "z@y.example"), c, t0 + 10);
    REQUIRE(got);
    CHECK(got->verdict == GreylistVerdict::client_allowed);
    CHECK(got->seconds == 7);
    // auto-allow switched off (a reload): the client's pass no longer counts, nothing is kept
    CHECK_FALSE(memo.recall(keys("192.0.2.0/24", "z@y.example"), config(0), t0 + 20));
    CHECK(memo.size() == 0);
}

TEST_CASE("greylist memo: kept at most 60 s, or half of a shorter pass_ttl", "[greylist]") {
    GreylistMemo memo;
    auto c = config();
    auto a = keys("192.0.2.0/24", "b@y.example");
    memo.remember(a, {GreylistVerdict::known, 0}, c, t0);
    CHECK(memo.recall(a, c, t0 + 59'999));
    CHECK_FALSE(memo.recall(a, c, t0 + 60'000));  // Redis is asked again: its TTL is refreshed
    memo.remember(a, {GreylistVerdict::known, 0}, c, t0 + 60'000);
    CHECK(memo.recall(a, c, t0 + 60'001));
    // a clock that steps back ends the period too
    CHECK_FALSE(memo.recall(a, c, t0 + 59'000));

    auto short_ttl = config(5, 40);  // passes live 40 s in Redis: remembered at most 20 s
    memo.remember(a, {GreylistVerdict::known, 0}, short_ttl, t0);
    CHECK(memo.recall(a, short_ttl, t0 + 19'999));
    CHECK_FALSE(memo.recall(a, short_ttl, t0 + 20'000));
}

TEST_CASE("greylist memo: bounded, the pass used least recently goes first", "[greylist]") {
    auto c = config();
    auto k = [](int i) { return keys("192.0.2.0/24", std::to_string(i) + "@y.example"); };
    // room for three entries of these keys (ByteLru's cost: the key twice, the value, a node)
    GreylistMemo memo(3 * (k(0).triplet.size() * 2 + sizeof(long) + ByteLru<long>::kOverhead));
    for (int i = 0; i < 10; ++i) {
        memo.remember(k(i), {GreylistVerdict::passed, 1}, c, t0);
        CHECK(memo.recall(k(0), c, t0));  // in use: kept
    }
    CHECK(memo.size() == 3);
    CHECK(memo.recall(k(9), c, t0));
    CHECK(memo.recall(k(8), c, t0));
    CHECK_FALSE(memo.recall(k(7), c, t0));
}

// Senders choose how long the keys are (4 KB sender and recipient fields reach policyd): the
// memo is bounded in bytes, and a pass in use stays while new ones push old ones out.
TEST_CASE("greylist memo: bounded in bytes with large keys, hot passes stay", "[greylist]") {
    constexpr std::size_t budget = 256 * 1024;
    GreylistMemo memo(budget);
    auto c = config();
    const std::string big(4000, 'x');
    auto large = [&](int i) {
        return keys("192.0.2.0/24", std::to_string(i) + big + "@y.example");
    };
    auto hot = keys("192.0.2.0/24", "hot@y.example");
    memo.remember(hot, {GreylistVerdict::known, 0}, c, t0);
    for (int i = 0; i < 2000; ++i) {
        memo.remember(large(i), {GreylistVerdict::passed, 1}, c, t0 + 1);
        REQUIRE(memo.recall(hot, c, t0 + 2));
    }
    // each large entry holds two 4 KB keys' worth: a handful fit, not 2000
    CHECK(memo.size() <= budget / 8000);
    CHECK(memo.bytes() <= budget);
    // the newest pass is remembered (the oldest unused ones made room), the first ones are gone
    CHECK(memo.recall(large(1999), c, t0 + 3));
    CHECK_FALSE(memo.recall(large(0), c, t0 + 3));
}
