// list_cache_test.cpp — the list cache on a Redis Cluster: tracking on every master, so an edit
// on whichever master holds a list counts on the next lookup, also after the list's slot moved
// to another master (the old one reports the MIGRATE's delete, the new one later edits).
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include "common/redis/cluster.hpp"
#include "common/redis/list_cache.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

TEST_CASE("the list cache tracks every master, and a list whose slot moved", "[cluster]") {
    RedisCluster cluster;
    boost::asio::io_context io;
    auto options = options_for(cluster.endpoint());
    options.cluster = true;
    std::unique_ptr<ListCache> cache;
    options.on_ready = [&] {
        if (cache) cache->data_connection_ready();
    };
    redis::Client data(io, options);
    cache = std::make_unique<ListCache>(io, data, options, "pw:");
    data.start();
    cache->start();
    REQUIRE(run_until(io, [&] { return cache->tracking(); }));

    auto has = [&](const std::string& key, const std::string& member) -> std::optional<bool> {
        std::vector<std::string_view> members{member};
        std::vector<ListCache::Query> queries{{key, members}};
        std::optional<std::pair<bool, std::vector<std::vector<bool>>>> result;
        cache->lookup(queries, [&](bool ok, auto hits) { result.emplace(ok, std::move(hits)); });
        run_until(io, [&] { return result.has_value(); });
        if (!result || !result->first) return std::nullopt;
        return !result->second[0].empty() && result->second[0][0];
    };
    auto edit = [&](const std::vector<std::string>& argv) {
        auto before = cache->stats().invalidations;
        cluster.run(argv);
        REQUIRE(run_until(io, [&] { return cache->stats().invalidations > before; }));
    };

    // Lists on each of the three masters, each cached, each edit seen at once.
    std::vector<std::string> keys;
    for (int i = 0; keys.size() < 3 && i < 1000; ++i) {
        auto key = "pw:block:sender" + std::string(i ? ":d" + std::to_string(i) : "");
        bool new_owner = true;
        for (const auto& k : keys)
            if (&cluster.owner(redis::key_slot(k)) == &cluster.owner(redis::key_slot(key)))
                new_owner = false;
        if (new_owner) keys.push_back(key);
    }
    REQUIRE(keys.size() == 3);
    for (const auto& key : keys) {
        INFO(key);
        cluster.run({"SADD", key, "a@x.example"});
        CHECK(has(key, "a@x.example") == true);
        auto loads = cache->stats().loads;
        CHECK(has(key, "a@x.example") == true);
        CHECK(cache->stats().loads == loads);  // from memory
        edit({"SADD", key, "b@x.example"});
        CHECK(has(key, "b@x.example") == true);
    }

    // The first list's slot goes to another master; edits there are seen as well.
    const auto& key = keys[0];
    int slot = redis::key_slot(key);
    auto to = (cluster.owner_index(slot) + 1) % cluster.size();
    cluster.move_slot(slot, to);
    CHECK(cluster.owner(slot).port() == cluster.node(to).port());
    CHECK(has(key, "b@x.example") == true);  // asked where it lives now, then cached again
    REQUIRE(run_until(io, [&] { return cache->tracking(); }));
    CHECK(has(key, "b@x.example") == true);
    edit({"SREM", key, "b@x.example"});
    CHECK(has(key, "b@x.example") == false);
    edit({"SADD", key, "c@x.example"});
    CHECK(has(key, "c@x.example") == true);
}
