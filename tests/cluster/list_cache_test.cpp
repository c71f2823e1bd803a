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

namespace {

// Moves slot to node `to` by hand: IMPORTING, MIGRATING, MIGRATE of its keys, SETSLOT NODE.
void move_slot(RedisCluster& cluster, int slot, std::size_t to) {
    auto& source = cluster.owner(slot);
    auto& target = cluster.node(to);
    std::string s = std::to_string(slot);
    std::string source_id = source.run({"CLUSTER", "MYID"}).str, target_id = cluster.id(to);
    REQUIRE(target.run({"CLUSTER", "SETSLOT", s, "IMPORTING", source_id}).str == "OK");
    REQUIRE(source.run({"CLUSTER", "SETSLOT", s, "MIGRATING", target_id}).str == "OK");
    auto keys = source.run({"CLUSTER", "GETKEYSINSLOT", s, "100"});
    for (const auto& k : keys.elements)
        REQUIRE(
            source.run({"MIGRATE", "127.0.0.1", std::to_string(target.port()), k.str, "0", "5000"})
                .str == "OK");
    for (std::size_t i = 0; i < cluster.size(); ++i)
        cluster.node(i).run({"CLUSTER", "SETSLOT", s, "NODE", target_id});
}

}  // namespace

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
    std::size_t to = 0;
    while (&cluster.node(to) == &cluster.owner(slot))
        ++to;
    move_slot(cluster, slot, to);
    CHECK(cluster.owner(slot).port() == cluster.node(to).port());
    CHECK(has(key, "b@x.example") == true);  // asked where it lives now, then cached again
    REQUIRE(run_until(io, [&] { return cache->tracking(); }));
    CHECK(has(key, "b@x.example") == true);
    edit({"SREM", key, "b@x.example"});
    CHECK(has(key, "b@x.example") == false);
    edit({"SADD", key, "c@x.example"});
    CHECK(has(key, "c@x.example") == true);
}
