// greylist_script_test.cpp — common/redis/lua/greylist.lua's auto-allow count against a real
// redis-server, with the keys and arguments common/greylist.hpp builds for both daemons: only a
// triplet that passed counts, each sender domain once, never past the threshold, never for an
// SPF-domain identity, and a replay changes nothing.
#include <catch2/catch.hpp>

#include "common/greylist.hpp"
#include "common/redis/scripts.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

constexpr long long t0 = 1714564800000;

struct Script {
    RedisServer& redis;
    Config config;

    redis::Value run(const GreylistKeys& k, std::vector<std::string> args) {
        std::vector<std::string> argv{"EVAL", std::string(script_text("greylist")), "2", k.triplet,
                                      k.client};
        argv.insert(argv.end(), args.begin(), args.end());
        return redis.run(argv);
    }
    std::string decide(const GreylistKeys& k, long long now) {
        return run(k, greylist_args(k, now, config)).elements.at(0).str;
    }
    std::pair<std::string, long long> count(const GreylistKeys& k, const std::string& domain) {
        auto v = run(k, greylist_count_args(k, domain, t0, config));
        return {v.elements.at(0).str, v.elements.at(1).integer};
    }
};

Config config_with(const std::string& greylist) {
    std::string error;
    auto c = parse_config("[greylist]\n" + greylist, "test", &error);
    INFO(error);
    REQUIRE(c);
    return *c;
}

}  // namespace

TEST_CASE("greylist script: auto-allow counts accepted domains of passed network triplets",
          "[greylist]") {
    RedisServer redis;
    Script s{redis, config_with("delay = 60\nauto_allow_clients = 2\n")};
    auto net = [&](const std::string& sender, const std::string& rcpt) {
        return greylist_keys(parse_ip("192.0.2.7"), sender, rcpt, "", s.config);
    };
    auto a = net("a@one.example", "r@example.net");
    // Not passed yet: nothing counts, whatever the caller says.
    CHECK(s.count(a, "one.example") == std::pair<std::string, long long>{"uncounted", 0});
    CHECK(s.decide(a, t0) == "new");
    CHECK(s.count(a, "one.example").first == "uncounted");
    CHECK(s.decide(a, t0 + 61000) == "passed");
    CHECK(redis.run({"EXISTS", a.client}).integer == 0);  // passing alone earns nothing
    CHECK(s.count(a, "one.example") == std::pair<std::string, long long>{"counted", 1});
    CHECK(s.count(a, "One.Example") == std::pair<std::string, long long>{"counted", 1});  // replay
    CHECK(s.count(a, "") == std::pair<std::string, long long>{"uncounted", 1});  // null sender
    CHECK(s.decide(net("b@one.example", "q@example.net"), t0) == "new");
    // A second domain reaches the threshold; a third is not stored.
    auto b = net("b@two.example", "r@example.net");
    s.decide(b, t0);
    s.decide(b, t0 + 61000);
    CHECK(s.count(b, "two.example") == std::pair<std::string, long long>{"counted", 2});
    CHECK(s.count(b, "three.example") == std::pair<std::string, long long>{"uncounted", 2});
    CHECK(redis.run({"SCARD", a.client}).integer == 2);
    CHECK(redis.run({"TTL", a.client}).integer > 35 * 86400 - 60);
    CHECK(s.decide(net("c@four.example", "z@example.net"), t0) == "client");

    // An SPF-domain identity: passes and counts are never turned into an allow.
    auto spf = greylist_keys(parse_ip("192.0.2.7"), "u@plusall.example", "r@example.net",
                             "plusall.example", s.config);
    s.decide(spf, t0);
    CHECK(s.decide(spf, t0 + 61000) == "passed");
    CHECK(s.count(spf, "plusall.example").first == "uncounted");
    redis.run({"SADD", spf.client, "x.example", "y.example"});
    CHECK(s.decide(greylist_keys(parse_ip("203.0.113.1"), "v@plusall.example", "r@example.net",
                                 "plusall.example", s.config),
                   t0) == "new");
}
