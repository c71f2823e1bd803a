// list_cache_test.cpp — the list cache against a real redis-server: answers from memory once
// tracking is on, an edit (redis-cli style, from another connection) is seen on the very next
// lookup, and lost connections or a restarted Redis never leave stale answers behind.
#include <catch2/catch.hpp>

#include "common/list_cache.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

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

    // One lookup of `member` in `key`, waited for; nullopt when Redis did not answer.
    std::optional<bool> has(const std::string& key, const std::string& member) {
        std::vector<std::string> members{member};
        std::vector<ListCache::Query> queries{{&key, &members}};
        std::optional<std::pair<bool, std::vector<std::vector<bool>>>> result;
        cache->lookup(queries, [&](bool ok, auto hits) { result.emplace(ok, std::move(hits)); });
        run_until(io, [&] { return result.has_value(); });
        if (!result || !result->first) return std::nullopt;
        return !result->second[0].empty() && result->second[0][0];
    }
};

}  // namespace

TEST_CASE("lists come from memory once tracking is on, and edits are seen at once",
          "[redis][cache]") {
    Fixture f;
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    f.server.run({"SADD", "pw:block:sender", "a@x.example"});
    CHECK(f.has("pw:block:sender", "a@x.example") == true);
    CHECK(f.has("pw:block:sender", "b@x.example") == false);
    auto loads = f.cache->stats().loads;
    auto smembers = f.server.info_field("commandstats", "cmdstat_smembers");
    for (int i = 0; i < 50; ++i)
        CHECK(f.has("pw:block:sender", "a@x.example") == true);
    CHECK(f.cache->stats().loads == loads);  // answered from memory
    CHECK(f.server.info_field("commandstats", "cmdstat_smembers") == smembers);

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
    std::vector<std::string> members{"bad.example", "good.example"};
    std::optional<std::vector<std::vector<bool>>> hits;
    cache.lookup({{&key, &members}}, [&](bool ok, auto h) {
        REQUIRE(ok);
        hits = std::move(h);
    });
    REQUIRE(run_until(io, [&] { return hits.has_value(); }));
    CHECK((*hits)[0] == std::vector<bool>{true, false});
    CHECK(server.info_field("commandstats", "cmdstat_smismember").find("calls=1,") == 0);
    data.stop();
    run_for(io, 50ms);
}
