// slot_test.cpp — the hash slot of a key as Redis Cluster computes it, and the proof that every
// key one script or one transaction touches lives in one slot (else a cluster answers
// CROSSSLOT): the keys are built by the same functions policyd and the milter use, for
// ordinary and hostile identities and logins.
#include <catch2/catch.hpp>

#include "common/config.hpp"
#include "common/greylist.hpp"
#include "common/inet.hpp"
#include "common/quota_keys.hpp"
#include "common/redis/cluster.hpp"
#include "policyd/decision.hpp"
#include "policyd/quota.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

// The commands of a batch, decoded from the RESP it encoded (our own, well formed).
std::vector<std::vector<std::string>> commands_of(const redis::Batch& batch) {
    std::vector<std::vector<std::string>> out;
    const auto& s = batch.encoded();
    std::size_t pos = 0;
    while (pos < s.size()) {
        auto end = s.find("\r\n", pos);
        std::size_t n = std::stoul(s.substr(pos + 1, end - pos - 1));
        pos = end + 2;
        auto& argv = out.emplace_back();
        for (std::size_t i = 0; i < n; ++i) {
            end = s.find("\r\n", pos);
            std::size_t len = std::stoul(s.substr(pos + 1, end - pos - 1));
            argv.push_back(s.substr(end + 2, len));
            pos = end + 2 + len + 2;
        }
    }
    return out;
}

const std::vector<std::string> hostile = {"alice@example.com",
                                          "}",
                                          "{",
                                          "{}",
                                          "a{b}c",
                                          "}{",
                                          "%7b",
                                          "x}y{z",
                                          "a b",
                                          std::string("\0\xff", 2),
                                          "very-long-" + std::string(300, 'q')};

}  // namespace

TEST_CASE("key_slot agrees with CLUSTER KEYSLOT, hash tags included", "[cluster]") {
    RedisServer::Settings settings;
    settings.cluster_node = true;
    RedisServer node(settings);
    std::vector<std::string> keys = {"",
                                     "a",
                                     "foo",
                                     "123456789",
                                     "{user1000}.following",
                                     "{user1000}.followers",
                                     "foo{}{bar}",
                                     "foo{{bar}}zap",
                                     "foo{bar}{zap}",
                                     "{",
                                     "}",
                                     "{}",
                                     "a{b",
                                     "pw:grey:{203.0.113.0/24}:a:b",
                                     std::string("\0\x01\xfe\xff", 4)};
    for (const auto& k : hostile)
        keys.push_back("pw:quota:{" + k + "}:held");
    for (int i = 0; i < 200; ++i)
        keys.push_back("key:" + std::to_string(i * 7919));
    for (const auto& key : keys) {
        INFO(key);
        auto answer = node.run({"CLUSTER", "KEYSLOT", key});
        REQUIRE(answer.type == redis::Value::Type::integer);
        CHECK(redis::key_slot(key) == answer.integer);
    }
}

TEST_CASE("every key of each script and transaction shares one hash slot", "[cluster]") {
    auto config = default_config();
    std::vector<QuotaWindow> limits = {{100, 3600}, {1000, 86400}, {5, 60}};
    config.quota.auto_block = {{3000, 3600}};
    for (const auto& name : hostile) {
        INFO(name);
        // greylist.lua and the first-sight SET + SCARD: the triplet and the client's domains.
        for (const char* spf : {"", "example.org"}) {
            auto g = greylist_keys(parse_ip("203.0.113.9"), name + "@s.example", "r@d.example",
                                   spf[0] ? std::string_view(spf) : std::string_view(name), config);
            CHECK(redis::key_slot(g.triplet) == redis::key_slot(g.client));
        }
        auto v6 = greylist_keys(parse_ip("2001:db8::1"), name, name, "", config);
        CHECK(redis::key_slot(v6.triplet) == redis::key_slot(v6.client));
        // quota.lua's KEYS.
        auto keys = quota_script_keys(name, limits, block_windows(config), config);
        for (const auto& k : keys)
            CHECK(redis::key_slot(k) == redis::key_slot(keys[0]));
        // The reservation and commit transactions: every command's key.
        policy::Facts facts;
        facts.login = name;
        facts.recipient = name + "@r.example";
        facts.instance = "1a2b." + name;
        auto reserve =
            policy::reserve_transaction(facts, limits, 1'700'000'000'000, config, nullptr);
        for (const auto& argv : commands_of(reserve.commands))
            CHECK(redis::key_slot(argv[1]) == redis::key_slot(keys[0]));
        std::vector<policy::Reservations::Reserved> known = {{"1a2b r@x", 1'700'000'000'000}};
        auto commit = policy::commit_transaction(facts, 1, known, 1'700'000'000'100, config);
        REQUIRE(commit);
        for (const auto& argv : commands_of(*commit))
            CHECK(redis::key_slot(argv[1]) == redis::key_slot(keys[0]));
    }
}

TEST_CASE("several Redis addresses are seed nodes, accepted only with cluster = yes", "[cluster]") {
    std::string error;
    auto c = parse_config("[redis]\ncluster = yes\naddress = 127.0.0.1:7000, [::1]:7001\n",
                          "test.conf", &error);
    REQUIRE(c);
    CHECK(c->redis.cluster);
    REQUIRE(c->redis.seeds.size() == 2);
    CHECK(c->redis.seeds[1].to_string() == "[::1]:7001");
    CHECK(c->redis.address.to_string() == "127.0.0.1:7000");

    CHECK_FALSE(
        parse_config("[redis]\naddress = 127.0.0.1:7000, 127.0.0.1:7001\n", "test.conf", &error));
    CHECK(error.find("test.conf:2") != std::string::npos);
    CHECK(error.find("several addresses need cluster = yes") != std::string::npos);

    auto single = parse_config("", "test.conf", &error);
    REQUIRE(single);
    CHECK_FALSE(single->redis.cluster);
    CHECK(single->redis.seeds.size() == 1);
}
