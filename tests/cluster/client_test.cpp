// client_test.cpp — redis::Client with Options::cluster against a real three-master cluster:
// commands, scripts and transactions reach the master of their slot; a slot moved by hand
// (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE) in the middle of load gives
// no error and no failed command, and every increment counts exactly once.
#include <catch2/catch.hpp>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <map>
#include <set>
#include <thread>

#include "common/redis/cluster.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

redis::Options cluster_options(RedisCluster& cluster) {
    auto o = options_for(cluster.endpoint(), 1000);
    o.cluster = true;
    return o;
}

const redis::Script two_keys("redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[2])");

}  // namespace

TEST_CASE("commands, scripts and transactions go to the master of their slot", "[cluster]") {
    RedisCluster cluster;
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    REQUIRE(client.cluster() != nullptr);
    CHECK(client.cluster()->masters().size() == 3);

    for (int i = 0; i < 60; ++i) {
        auto key = "k" + std::to_string(i);
        auto r = call(io, client, {"SET", key, "v" + key});
        REQUIRE(r);
        REQUIRE(r->ok);
        CHECK(r->value.str == "OK");
        // Written where the slot lives, and nowhere else.
        CHECK(cluster.owner(redis::key_slot(key)).run({"GET", key}).str == "v" + key);
    }
    std::optional<redis::Reply> script;
    client.eval(two_keys, {"{u1}:a", "{u1}:b"}, {}, [&](redis::Reply r) { script = r; });
    REQUIRE(run_until(io, [&] { return script.has_value(); }));
    REQUIRE(script->ok);
    CHECK(script->value.integer == 1);

    redis::Batch t;
    t.add({"INCR", "{u2}:a"});
    t.add({"INCRBY", "{u2}:b", "5"});
    std::optional<redis::Reply> exec;
    client.transaction(t, [&](redis::Reply r) { exec = r; });
    REQUIRE(run_until(io, [&] { return exec.has_value(); }));
    REQUIRE(exec->ok);
    REQUIRE(exec->value.elements.size() == 2);
    CHECK(exec->value.elements[1].integer == 5);

    // Keys of different slots in one script: Redis refuses it, and the caller sees why.
    std::optional<redis::Reply> cross;
    client.eval(two_keys, {"{u1}:a", "{u3}:a"}, {}, [&](redis::Reply r) { cross = r; });
    REQUIRE(run_until(io, [&] { return cross.has_value(); }));
    REQUIRE(cross->ok);
    CHECK(cross->value.str.rfind("CROSSSLOT", 0) == 0);
}

TEST_CASE("slots migrated under load, no error, every increment counted once", "[cluster]") {
    RedisCluster cluster;
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));

    // 40 users; each request, a transaction or a script, increments both of a user's keys.
    constexpr int users = 40, in_flight = 30;
    std::map<std::string, long long> sent;  // "{uN}" → increments acknowledged
    std::vector<std::string> errors;
    std::atomic<bool> stop{false};
    std::atomic<long> done{0};
    int next = 0;
    std::function<void()> issue = [&] {
        if (stop) return;
        int n = next++;
        std::string user = "{u" + std::to_string(n % users) + "}";
        auto on_reply = [&, user](redis::Reply r) {
            if (!r.ok)
                errors.push_back(user + ": " + r.error);
            else if (r.value.is_error())
                errors.push_back(user + ": " + r.value.str);
            else
                ++sent[user];
            ++done;
            issue();
        };
        if (n % 2) return client.eval(two_keys, {user + ":a", user + ":b"}, {}, on_reply);
        redis::Batch t;
        t.add({"INCR", user + ":a"});
        t.add({"INCR", user + ":b"});
        client.transaction(t, on_reply);
    };
    std::thread loop([&] {
        boost::asio::post(io, [&] {
            for (int i = 0; i < in_flight; ++i)
                issue();
        });
        while (!stop || done < next) {
            if (io.stopped()) io.restart();
            io.run_one_for(std::chrono::milliseconds(10));
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // Every user's slot goes to the next master, while the load goes on.
    std::set<int> slots;
    for (int i = 0; i < users; ++i)
        slots.insert(redis::key_slot("{u" + std::to_string(i) + "}"));
    std::map<int, unsigned short> moved_to;
    for (int slot : slots) {
        auto to = (cluster.owner_index(slot) + 1) % cluster.size();
        cluster.move_slot(slot, to);
        moved_to[slot] = cluster.node(to).port();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    loop.join();

    for (std::size_t i = 0; i < errors.size() && i < 10; ++i)
        UNSCOPED_INFO(errors[i]);
    CHECK(errors.empty());
    CHECK(done > 300);
    for (const auto& [user, count] : sent) {
        INFO(user);
        auto a = cluster.run({"GET", user + ":a"});
        auto b = cluster.run({"GET", user + ":b"});
        CHECK(std::stoll(a.str) == count);
        CHECK(std::stoll(b.str) == count);
    }
    for (const auto& [slot, port] : moved_to)
        CHECK(cluster.owner(slot).port() == port);
    // Both redirections were met and followed: ASK while a slot was moving, MOVED after.
    CHECK(client.stats().asked > 0);
    CHECK(client.stats().moved > 0);
}

TEST_CASE("a master replaced by its replica is found again without a restart", "[cluster]") {
    RedisCluster cluster(3, 1);
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    const std::string key = "{failover}:count";
    auto ok = [&] {
        auto r = call(io, client, {"INCR", key});
        return r && r->ok && !r->value.is_error();
    };
    REQUIRE(ok());

    auto& master = cluster.owner(redis::key_slot(key));
    RedisServer* replica = nullptr;
    for (std::size_t i = 0; i < cluster.size(); ++i)
        if (cluster.node(i).info_field("replication", "master_port") ==
            std::to_string(master.port()))
            replica = &cluster.node(i);
    REQUIRE(replica);
    master.stop();
    CHECK_FALSE(ok());  // its master is gone: answered at once, per fail_mode in a daemon
    REQUIRE(replica->run({"CLUSTER", "FAILOVER", "TAKEOVER"}).str == "OK");
    // The client asks for the map every second while a master is unreachable.
    CHECK(run_until(io, ok, 10s));
    CHECK(cluster.owner(redis::key_slot(key)).port() == replica->port());
}

TEST_CASE("cluster = yes against a Redis that is no cluster fails commands at once", "[cluster]") {
    RedisServer plain;
    boost::asio::io_context io;
    auto options = options_for(plain.endpoint());
    options.cluster = true;
    redis::Client client(io, options);
    client.start();
    run_for(io, 300ms);  // connected to the node, refused CLUSTER SLOTS
    CHECK_FALSE(client.connected());
    auto started = steady::now();
    auto r = call(io, client, {"GET", "k"});
    REQUIRE(r);
    CHECK_FALSE(r->ok);
    CHECK(r->error == "not connected");
    CHECK(elapsed_ms(started) < 100);
}

TEST_CASE("nodes that disagree for a moment on a slot's owner are waited out", "[cluster]") {
    RedisCluster cluster;
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    const std::string key = "{disagree}:k";
    auto slot = std::to_string(redis::key_slot(key));
    auto a = cluster.owner_index(redis::key_slot(key)), b = (a + 1) % cluster.size();
    // The owner hands the (empty) slot to b, which has not heard of it yet: each says MOVED to
    // the other.
    REQUIRE(cluster.node(a).run({"CLUSTER", "SETSLOT", slot, "NODE", cluster.id(b)}).str == "OK");
    std::optional<redis::Reply> reply;
    client.command({"INCR", key}, [&](redis::Reply r) { reply = std::move(r); });
    run_for(io, 100ms);
    CHECK_FALSE(reply.has_value());  // still being redirected, more slowly after a few times
    for (std::size_t i = 0; i < cluster.size(); ++i)
        if (i != a) cluster.node(i).run({"CLUSTER", "SETSLOT", slot, "NODE", cluster.id(b)});
    REQUIRE(run_until(io, [&] { return reply.has_value(); }));
    REQUIRE(reply->ok);
    CHECK(reply->value.integer == 1);
    CHECK(client.stats().moved >= 4);
}

TEST_CASE("a script meets its key moved to a node without the script cached: it runs there once",
          "[cluster]") {
    RedisCluster cluster;
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));

    const redis::Script incr("return redis.call('INCR', KEYS[1])");
    const std::string key = "{ask-noscript}:n";
    const int slot = redis::key_slot(key);
    const auto from = cluster.owner_index(slot), to = (from + 1) % cluster.size();
    auto& source = cluster.node(from);
    auto& target = cluster.node(to);
    REQUIRE(source.run({"SET", key, "41"}).str == "OK");
    // The node the key goes to has never run the script (a node just added to the cluster).
    for (std::size_t i = 0; i < cluster.size(); ++i)
        REQUIRE(cluster.node(i).run({"SCRIPT", "FLUSH"}).str == "OK");
    // The slot mid-move, its key already on the target: the owner answers ASK.
    const auto s = std::to_string(slot);
    REQUIRE(target.run({"CLUSTER", "SETSLOT", s, "IMPORTING", cluster.id(from)}).str == "OK");
    REQUIRE(source.run({"CLUSTER", "SETSLOT", s, "MIGRATING", cluster.id(to)}).str == "OK");
    REQUIRE(source
                .run({"MIGRATE", "127.0.0.1", std::to_string(target.port()), "", "0", "5000",
                      "KEYS", key})
                .str == "OK");

    std::optional<redis::Reply> r;
    client.eval(incr, {key}, {}, [&](redis::Reply reply) { r = std::move(reply); });
    REQUIRE(run_until(io, [&] { return r.has_value(); }));
    REQUIRE(r->ok);
    INFO(r->value.str);
    CHECK_FALSE(r->value.is_error());
    CHECK(r->value.integer == 42);
    CHECK(client.stats().asked > 0);

    for (std::size_t i = 0; i < cluster.size(); ++i)
        cluster.node(i).run({"CLUSTER", "SETSLOT", s, "NODE", cluster.id(to)});
    CHECK(cluster.run({"GET", key}).str == "42");  // run once, on the target
}

TEST_CASE("a redirection to a node not yet connected waits for its connection, not fails",
          "[cluster]") {
    RedisCluster cluster(3, 1);
    boost::asio::io_context io;
    redis::Client client(io, cluster_options(cluster));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    const std::string key = "{handover}:count";
    auto incr = [&] { return call(io, client, {"INCR", key}); };
    auto first = incr();
    REQUIRE(first);
    REQUIRE(first->ok);

    auto& master = cluster.owner(redis::key_slot(key));
    RedisServer* replica = nullptr;
    for (std::size_t i = 0; i < cluster.size(); ++i)
        if (cluster.node(i).info_field("replication", "master_port") ==
            std::to_string(master.port()))
            replica = &cluster.node(i);
    REQUIRE(replica);
    // A planned handover: the old master stays up and answers MOVED to its replica, a node the
    // client has never connected to (replicas are not in its map).
    REQUIRE(replica->run({"CLUSTER", "FAILOVER"}).str == "OK");
    REQUIRE(wait_until(
        [&] {
            return master.run({"ROLE"}).elements.at(0).str == "slave" &&
                   replica->run({"ROLE"}).elements.at(0).str == "master";
        },
        10s));

    auto r = incr();
    REQUIRE(r);
    INFO(r->error << r->value.str);
    CHECK(r->ok);
    CHECK_FALSE(r->value.is_error());
    CHECK(r->value.integer == 2);
    CHECK(client.stats().moved > 0);
}
