// list_cache_keepalive_test.cpp — the list cache when its links misbehave without closing: a
// subscriber link that goes silent (half-open, frozen) must stop the cache within one keepalive
// interval plus timeout_ms, a CLIENT TRACKING that timed out must be retried without waiting
// for a reconnect, and the cache stays within its byte budget however many large recipient
// domains fill it, keeping the lists in use.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#include "common/redis/list_cache.hpp"
#include "tests/fixtures/latency_proxy.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

// A data client and a list cache, each reaching Redis at its own address (direct, or through a
// proxy that can freeze that link alone).
struct Fixture {
    RedisServer& server;
    boost::asio::io_context io;
    std::unique_ptr<redis::Client> data;
    std::unique_ptr<ListCache> cache;

    Fixture(RedisServer& s, const Endpoint& data_at, const Endpoint& subscriber_at,
            ListCacheSettings settings = {})
        : server(s) {
        auto options = options_for(data_at);
        options.on_ready = [this] {
            if (cache) cache->data_connection_ready();
        };
        data = std::make_unique<redis::Client>(io, options);
        cache = std::make_unique<ListCache>(io, *data, options_for(subscriber_at), "pw:", settings);
        data->start();
        cache->start();
    }
    ~Fixture() {
        cache->stop();
        data->stop();
        run_for(io, 50ms);
    }

    std::optional<bool> has(const std::string& key, const std::string& member) {
        std::vector<std::string_view> members{member};
        std::vector<ListCache::Query> queries{{key, members}};
        std::optional<std::pair<bool, std::vector<std::vector<bool>>>> result;
        cache->lookup(queries, [&](bool ok, auto hits) { result.emplace(ok, std::move(hits)); });
        run_until(io, [&] { return result.has_value(); });
        if (!result || !result->first) return std::nullopt;
        return !result->second[0].empty() && result->second[0][0];
    }

    // Looks key up until an answer comes from memory (the set is loaded).
    bool cached(const std::string& key) {
        return run_until(io, [&] {
            auto hits = cache->stats().hits;
            has(key, "anyone");
            return cache->stats().hits > hits;
        });
    }
};

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

}  // namespace

TEST_CASE("list cache: a silent subscriber link stops the cache within a keepalive",
          "[redis][cache][keepalive]") {
    RedisServer server;
    LatencyProxy proxy(server.port());
    Fixture f(server, server.endpoint(), proxy.endpoint());
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    server.run({"SADD", "pw:block:sender", "a@x.example"});
    REQUIRE(f.cached("pw:block:sender"));
    CHECK(f.has("pw:block:sender", "a@x.example") == true);

    // The subscriber's link goes silent without closing: the invalidation of the next edit
    // never arrives.
    proxy.pause();
    server.run({"SREM", "pw:block:sender", "a@x.example"});
    auto start = steady::now();
    bool seen = run_until(
        f.io, [&] { return f.has("pw:block:sender", "a@x.example") == false; }, 5s);
    const double took_ms = elapsed_ms(start);
    INFO("the edit took effect after " << took_ms << " ms");
    CHECK(seen);
    CHECK(took_ms < 1000 + 250 + 500);  // keepalive + timeout_ms + a loaded machine's margin
    CHECK(f.cache->stats().pings_missed >= 1);
    CHECK_FALSE(f.cache->tracking());

    // The link comes back: tracking is set up again on a new subscriber connection, and edits
    // are seen from memory as before.
    proxy.resume();
    REQUIRE(run_until(
        f.io, [&] { return f.cache->tracking(); }, 10s));
    CHECK(f.has("pw:block:sender", "a@x.example") == false);
    server.run({"SADD", "pw:block:sender", "b@x.example"});
    CHECK(run_until(f.io, [&] { return f.has("pw:block:sender", "b@x.example") == true; }));
}

TEST_CASE("list cache: a CLIENT TRACKING that timed out is retried on the same connection",
          "[redis][cache][keepalive]") {
    RedisServer server;
    LatencyProxy proxy(server.port());
    proxy.set_delay(400ms);  // the data link slower than timeout_ms (250 ms) for a while
    Fixture f(server, proxy.endpoint(), server.endpoint());
    REQUIRE(run_until(f.io, [&] { return f.data->stats().timeouts > 0; }));
    CHECK_FALSE(f.cache->tracking());
    proxy.set_delay(0ms);  // before the 8 × timeout_ms stall would drop the connection
    CHECK(run_until(
        f.io, [&] { return f.cache->tracking(); }, 5s));
    CHECK(f.data->stats().connects == 1);  // no reconnect was needed
}

TEST_CASE("list cache: bounded in bytes, a hot list survives many large recipient domains",
          "[redis][cache][bounds]") {
    RedisServer server;
    ListCacheSettings settings;
    settings.max_bytes = 4 << 20;
    Fixture f(server, server.endpoint(), server.endpoint(), settings);
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    server.run({"SADD", "pw:block:sender", "hot@x.example"});
    REQUIRE(f.cached("pw:block:sender"));
    const long rss_before = rss_kib();

    // Per-recipient-domain lists of 4,000-character domains, as a client's fields can name
    // them: each miss caches an empty set under an 8 KB key.
    const std::string padding(4000, 'd');
    for (int i = 0; i < 12000; ++i) {
        REQUIRE(f.has("pw:block:sender:" + std::to_string(i) + padding, "hot@x.example"));
        if (i % 20 == 0) REQUIRE(f.has("pw:block:sender", "hot@x.example") == true);
        if (i % 100 == 0) run_for(f.io, 1ms);  // let the loads of the last domains finish
        REQUIRE(f.cache->bytes() <= settings.max_bytes);
    }
    run_for(f.io, 200ms);
    CHECK(f.cache->bytes() <= settings.max_bytes);
    CHECK(f.cache->bytes() > settings.max_bytes / 2);  // it did fill up and evict
    // The hot list is still in memory: no load, an answer from memory.
    auto loads = f.cache->stats().loads;
    auto hits = f.cache->stats().hits;
    CHECK(f.has("pw:block:sender", "hot@x.example") == true);
    CHECK(f.cache->stats().loads == loads);
    CHECK(f.cache->stats().hits == hits + 1);
    const long grown_mib = (rss_kib() - rss_before) / 1024;
    INFO("RSS grew by " << grown_mib << " MiB");
#if !defined(__SANITIZE_ADDRESS__)
    // Under ASan the RSS says nothing about the cache: its quarantine keeps freed memory (the
    // byte count above is checked in every build).
    CHECK(grown_mib < 24);  // 12,000 domains of 4 KB names would be over 48 MB unbounded
#endif
}

TEST_CASE("list cache: sets loading at once hold at most the budget together",
          "[redis][cache][bounds]") {
    RedisServer server;
    ListCacheSettings settings;
    settings.max_bytes = 2 << 20;  // sets get 15/16 of it
    settings.scan_count = 200;     // many pages per load, so the loads overlap
    Fixture f(server, server.endpoint(), server.endpoint(), settings);
    REQUIRE(run_until(f.io, [&] { return f.cache->tracking(); }));
    // Six sets of 9,000 members (~0.7 MiB each): each fits the budget, together they do not.
    const int sets = 6, members = 9000;
    for (int s = 0; s < sets; ++s) {
        std::vector<std::string> sadd{"SADD", "pw:block:sender:d" + std::to_string(s) + ".example"};
        for (int m = 0; m < members; ++m)
            sadd.push_back("m" + std::to_string(m) + "@x.example");
        server.run(sadd);
    }
    for (int s = 0; s < sets; ++s)  // each miss starts a load that goes on in the background
        REQUIRE(f.has("pw:block:sender:d" + std::to_string(s) + ".example", "m1@x.example") ==
                true);
    run_for(f.io, 2s);
    const std::size_t page = settings.scan_count * (72 + 20) * 2;  // SSCAN may return a bit more
    INFO("peak " << f.cache->stats().peak_loading_bytes << ", abandoned "
                 << f.cache->stats().loads_abandoned);
    CHECK(f.cache->stats().loads_abandoned > 0);
    CHECK(f.cache->stats().peak_loading_bytes <= settings.max_bytes + page);
    CHECK(f.cache->bytes() <= settings.max_bytes);
    // Whatever was given up, every answer is still right.
    for (int s = 0; s < sets; ++s) {
        const std::string key = "pw:block:sender:d" + std::to_string(s) + ".example";
        CHECK(f.has(key, "m8999@x.example") == true);
        CHECK(f.has(key, "nobody@x.example") == false);
    }
}
