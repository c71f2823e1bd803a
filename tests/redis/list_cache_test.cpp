// list_cache_test.cpp — the list cache against a real redis-server: answers from memory once
// tracking is on, an edit (redis-cli style, from another connection) is seen on the very next
// lookup, and lost connections or a restarted Redis never leave stale answers behind.
#include <catch2/catch.hpp>

#include "common/redis/list_cache.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

std::optional<std::vector<std::string>> net_lookup(ListCache& cache, boost::asio::io_context& io,
                                                   const std::string& key,
                                                   const std::string& client) {
    auto ip = parse_ip(client);
    REQUIRE(ip);
    std::optional<std::pair<bool, std::vector<std::vector<bool>>>> result;
    cache.lookup({{key, {}, &*ip}},
                 [&](bool ok, auto hits) { result.emplace(ok, std::move(hits)); });
    run_until(io, [&] { return result.has_value(); });
    if (!result || !result->first) return std::nullopt;
    auto spelled = network_candidates(*ip);
    REQUIRE(result->second.size() == 1);
    // A flag per candidate, or fewer (none for an empty set): the missing ones are "no".
    const auto& flags = result->second[0];
    REQUIRE(flags.size() <= spelled.size());
    std::vector<std::string> found;
    for (std::size_t j = 0; j < flags.size(); ++j)
        if (flags[j]) found.push_back(spelled[j]);
    return found;
}

struct Fixture {
    RedisServer server;
    boost::asio::io_context io;
    std::unique_ptr<redis::Client> data;
    std::unique_ptr<ListCache> cache;

    Fixture() {
        auto options = options_for(server.endpoint());
        options.on_ready = [this] {
            if (cache) cache->data_connection_ready();
        };
        data = std::make_unique<redis::Client>(io, options);
        cache = std::make_unique<ListCache>(io, *data, options_for(server.endpoint()), "pw:");
        data->start();
        cache->start();
    }
    ~Fixture() {
        cache->stop();
        data->stop();
        run_for(io, 50ms);
    }

    // A redis-cli style edit from another connection, then the invalidation it causes.
    void edit(const std::vector<std::string>& argv) {
        auto before = cache->stats().invalidations;
        server.run(argv);
        REQUIRE(run_until(io, [&] { return cache->stats().invalidations > before; }));
    }

    // The candidates of `client` found in the net set `key`, spelled; nullopt: no answer.
    std::optional<std::vector<std::string>> nets(const std::string& key,
                                                 const std::string& client) {
        return net_lookup(*cache, io, key, client);
    }

    // One lookup of `member` in `key`, waited for; nullopt when Redis did not answer.
    std::optional<bool> has(const std::string& key, const std::string& member) {
        std::vector<std::string_view> members{member};
        std::vector<ListCache::Query> queries{{key, members}};
        std::optional<std::pair<bool, std::vector<std::vector<bool>>>> result;
        cache->lookup(queries, [&](bool ok, auto hits) { result.emplace(ok, std::move(hits)); });
        run_until(io, [&] { return result.has_value(); });
        if (!result || !result->first) return std::nullopt;
        return !result->second[0].empty() && result->second[0][0];
    }
};

}  // namespace

TEST_CASE("lists come from memory once tracking is on, and edits are seen at once",
          "[redis][cache][cluster]") {
    Fixture f;
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    f.server.run({"SADD", "pw:block:sender", "a@x.example"});
    CHECK(f.has("pw:block:sender", "a@x.example") == true);
    CHECK(f.has("pw:block:sender", "b@x.example") == false);
    auto loads = f.cache->stats().loads;
    auto smembers = f.server.info_field("commandstats", "cmdstat_smembers");
    auto pages = f.server.info_field("commandstats", "cmdstat_sscan");
    for (int i = 0; i < 50; ++i)
        CHECK(f.has("pw:block:sender", "a@x.example") == true);
    CHECK(f.cache->stats().loads == loads);  // answered from memory
    CHECK(f.server.info_field("commandstats", "cmdstat_smembers") == smembers);
    CHECK(f.server.info_field("commandstats", "cmdstat_sscan") == pages);

    // an edit from another connection (redis-cli) reaches the next lookup
    f.edit({"SADD", "pw:block:sender", "b@x.example"});
    CHECK(f.has("pw:block:sender", "b@x.example") == true);
    f.edit({"SREM", "pw:block:sender", "a@x.example"});
    CHECK(f.has("pw:block:sender", "a@x.example") == false);
    // a set that does not exist yet is cached as empty, and its creation is seen too
    CHECK(f.has("pw:allow:net:example.net", "192.0.2.1") == false);
    f.edit({"SADD", "pw:allow:net:example.net", "192.0.2.1"});
    CHECK(f.has("pw:allow:net:example.net", "192.0.2.1") == true);
    // FLUSHALL empties everything
    f.edit({"FLUSHALL"});
    CHECK(f.has("pw:allow:net:example.net", "192.0.2.1") == false);
}

TEST_CASE("a killed subscriber or a restarted Redis leaves no stale answer", "[redis][cache]") {
    Fixture f;
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    f.server.run({"SADD", "pw:block:net", "192.0.2.0/24"});
    CHECK(f.has("pw:block:net", "192.0.2.0/24") == true);

    // the subscriber is killed: no invalidation can arrive, so the cache must not answer
    f.server.run({"CLIENT", "KILL", "TYPE", "pubsub"});
    f.server.run({"SREM", "pw:block:net", "192.0.2.0/24"});
    CHECK(f.has("pw:block:net", "192.0.2.0/24") == false);
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));  // back by itself
    CHECK(f.has("pw:block:net", "192.0.2.0/24") == false);

    // Redis restarted empty: the old set must not survive in memory
    f.server.run({"SADD", "pw:block:net", "198.51.100.0/24"});
    CHECK(f.has("pw:block:net", "198.51.100.0/24") == true);
    f.server.stop();
    CHECK(!f.has("pw:block:net", "198.51.100.0/24").has_value());  // no answer: fail_mode
    f.server.start();
    REQUIRE(run_until(
        f.io, [&] { return f.cache->tracking(); }, 10s));
    CHECK(f.has("pw:block:net", "198.51.100.0/24") == false);
}

TEST_CASE("without tracking the lists are asked for on every lookup", "[redis][cache]") {
    RedisServer server;
    boost::asio::io_context io;
    redis::Client data(io, options_for(server.endpoint()));  // no on_ready: never tracking
    data.start();
    REQUIRE(run_until(io, [&] { return data.connected(); }));
    ListCache cache(io, data, options_for(server.endpoint()), "pw:");
    server.run({"SADD", "pw:block:domain", "bad.example"});
    std::string key = "pw:block:domain";
    std::vector<std::string_view> members{"bad.example", "good.example"};
    std::optional<std::vector<std::vector<bool>>> hits;
    cache.lookup({{key, members}}, [&](bool ok, auto h) {
        REQUIRE(ok);
        hits = std::move(h);
    });
    REQUIRE(run_until(io, [&] { return hits.has_value(); }));
    CHECK((*hits)[0] == std::vector<bool>{true, false});
    CHECK(server.info_field("commandstats", "cmdstat_smismember").find("calls=1,") == 0);
    data.stop();
    run_for(io, 50ms);
}

// A net lookup from memory asks only for the prefix lengths the set holds; it must find exactly
// what a lookup of every spelling (SMISMEMBER, the path without tracking) finds.
TEST_CASE("net lists match the client's address and every network holding it", "[redis][cache]") {
    Fixture f;
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    const std::string key = "pw:block:net";
    f.server.run({"SADD", key, "192.0.2.7", "198.51.100.0/24", "203.0.113.9/32", "10.0.0.0/8",
                  "2001:db8:1::/48", "2001:db8::5", "not-a-network", "192.0.2.0/25"});
    using V = std::vector<std::string>;
    CHECK(f.nets(key, "192.0.2.7") == V{"192.0.2.7", "192.0.2.0/25"});
    CHECK(f.nets(key, "198.51.100.200") == V{"198.51.100.0/24"});
    CHECK(f.nets(key, "203.0.113.9") == V{"203.0.113.9/32"});
    CHECK(f.nets(key, "10.200.1.1") == V{"10.0.0.0/8"});
    CHECK(f.nets(key, "192.0.2.200") == V{});
    CHECK(f.nets(key, "2001:db8:1:ffff::1") == V{"2001:db8:1::/48"});
    CHECK(f.nets(key, "2001:db8::5") == V{"2001:db8::5"});
    CHECK(f.nets(key, "2001:db8:2::5") == V{});
    auto loads = f.cache->stats().loads;
    // a new prefix length written by redis-cli is seen on the next lookup
    f.edit({"SADD", key, "192.0.0.0/16"});
    CHECK(f.nets(key, "192.0.9.9") == V{"192.0.0.0/16"});
    CHECK(f.cache->stats().loads == loads + 1);
    CHECK(f.nets(key, "192.0.2.7") == V{"192.0.2.7", "192.0.2.0/25", "192.0.0.0/16"});
    // an empty or missing set answers no for every candidate
    CHECK(f.nets("pw:allow:net", "192.0.2.7") == V{});

    // the same answers without tracking, where every spelling is asked for
    redis::Client plain(f.io, options_for(f.server.endpoint()));
    plain.start();
    REQUIRE(run_until(f.io, [&] { return plain.connected(); }));
    ListCache uncached(f.io, plain, options_for(f.server.endpoint()), "pw:");
    CHECK(net_lookup(uncached, f.io, key, "192.0.2.7") ==
          V{"192.0.2.7", "192.0.2.0/25", "192.0.0.0/16"});
    CHECK(net_lookup(uncached, f.io, key, "2001:db8:1:ffff::1") == V{"2001:db8:1::/48"});
    CHECK(net_lookup(uncached, f.io, key, "192.0.3.1") == V{"192.0.0.0/16"});
    CHECK(net_lookup(uncached, f.io, key, "192.1.2.7") == V{});
    plain.stop();
}
