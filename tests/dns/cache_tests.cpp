// cache_tests.cpp — dns::AnswerCache under dns::Resolver against a real DNS server on loopback
// (dnsserver.py), counting the queries that reach the server: TTLs from the answer records and
// the CNAME chain, negative answers per RFC 2308 (SOA), failures never kept, the size bound
// (least recently used out first), and many threads sharing one cache.
//
// Every case also shows something being answered from the cache, so each one fails when the
// cache is missing or ignored.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/dns/dns.hpp"
#include "common/dns/dns_cache.hpp"
#include "common/metrics.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;
using namespace std::chrono_literals;

namespace {

// TTLs are the second column (dnsserver.py; 300 when absent). In neg.test the SOA's own TTL is
// the smaller (1 s), in neg2.test its MINIMUM (1 s).
const char* const zone = R"(
long.test           300   A      192.0.2.1
short.test          1     A      192.0.2.2
zero.test           0     A      192.0.2.3
capped.test         86400 A      192.0.2.4
alias.test          1     CNAME  target.test
target.test         300   A      192.0.2.5
neg.test            1     SOA    ns.neg.test host.neg.test 1 7200 900 86400 300
neg.test                  A      192.0.2.6
neg2.test           300   SOA    ns.neg2.test host.neg2.test 1 7200 900 86400 1
host.neg2.test            A      192.0.2.7
nosoa.test                A      192.0.2.8
broken.test               SERVFAIL
slow.test                 TIMEOUT
a.test                    A      198.51.100.1
b.test                    A      198.51.100.2
c.test                    A      198.51.100.3
d.test                    A      198.51.100.4
e.test                    A      198.51.100.5
)";

dns::ResolverOptions cached(const test::DnsServer& server, std::size_t entries = 100,
                            int timeout_ms = 2000) {
    auto options = server.resolver_options(timeout_ms);
    options.cache = std::make_shared<dns::AnswerCache>(entries);
    return options;
}

// Past a 1 s TTL, with room for the server's own pace.
void outlive_one_second() {
    std::this_thread::sleep_for(1300ms);
}

}  // namespace

TEST_CASE("answer cache: a second query within the TTL does not reach the server", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    auto first = resolver.query("long.test", dns::Type::a);
    REQUIRE(first.status == dns::Status::ok);
    auto second = resolver.query("LONG.test.", dns::Type::a);  // the same question
    CHECK(second.status == dns::Status::ok);
    CHECK(second.addresses == std::vector<std::string>{"192.0.2.1"});
    CHECK(second.packet == first.packet);  // libopendkim gets the packet from the cache too
    CHECK(server.queries("long.test") == 1);
    // another type is another question
    CHECK(resolver.query("long.test", dns::Type::txt).status == dns::Status::nodata);
    CHECK(server.queries("long.test") == 2);
}

TEST_CASE("answer cache: after the TTL the server is asked again", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    REQUIRE(resolver.query("short.test", dns::Type::a).status == dns::Status::ok);
    CHECK(resolver.query("short.test", dns::Type::a).status == dns::Status::ok);
    CHECK(server.queries("short.test") == 1);
    outlive_one_second();
    CHECK(resolver.query("short.test", dns::Type::a).addresses ==
          std::vector<std::string>{"192.0.2.2"});
    CHECK(server.queries("short.test") == 2);
    CHECK(resolver.query("short.test", dns::Type::a).status == dns::Status::ok);
    CHECK(server.queries("short.test") == 2);  // kept again
}

TEST_CASE("answer cache: TTL 0 is not kept, long TTLs are capped at an hour", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    for (int i = 0; i < 3; ++i)
        CHECK(resolver.query("zero.test", dns::Type::a).status == dns::Status::ok);
    CHECK(server.queries("zero.test") == 3);

    auto capped = resolver.query("capped.test", dns::Type::a);
    REQUIRE(capped.status == dns::Status::ok);
    CHECK(dns::cache_seconds(capped, dns::Type::a) == dns::max_cache_seconds);
    CHECK(dns::cache_seconds(resolver.query("long.test", dns::Type::a), dns::Type::a) == 300);
    resolver.query("capped.test", dns::Type::a);
    CHECK(server.queries("capped.test") == 1);
}

TEST_CASE("answer cache: a CNAME chain lives as long as its shortest TTL", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    auto a = resolver.query("alias.test", dns::Type::a);
    REQUIRE(a.status == dns::Status::ok);
    CHECK(a.addresses == std::vector<std::string>{"192.0.2.5"});
    CHECK(dns::cache_seconds(a, dns::Type::a) == 1);  // the CNAME's 1 s, not the A's 300
    resolver.query("alias.test", dns::Type::a);
    CHECK(server.queries("alias.test") == 1);
    outlive_one_second();
    CHECK(resolver.query("alias.test", dns::Type::a).status == dns::Status::ok);
    CHECK(server.queries("alias.test") == 2);
}

TEST_CASE("answer cache: NXDOMAIN and NODATA with an SOA are kept for min(SOA TTL, MINIMUM)",
          "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    // NXDOMAIN, SOA TTL 1 s < MINIMUM 300 s; NODATA, SOA TTL 300 s > MINIMUM 1 s
    auto nx = resolver.query("nowhere.neg.test", dns::Type::a);
    REQUIRE(nx.status == dns::Status::nxdomain);
    CHECK(dns::cache_seconds(nx, dns::Type::a) == 1);
    auto nodata = resolver.query("host.neg2.test", dns::Type::txt);
    REQUIRE(nodata.status == dns::Status::nodata);
    CHECK(dns::cache_seconds(nodata, dns::Type::txt) == 1);
    for (int i = 0; i < 2; ++i) {
        CHECK(resolver.query("nowhere.neg.test", dns::Type::a).status == dns::Status::nxdomain);
        CHECK(resolver.query("host.neg2.test", dns::Type::txt).status == dns::Status::nodata);
    }
    CHECK(server.queries("nowhere.neg.test") == 1);
    CHECK(server.queries("host.neg2.test") == 1);
    outlive_one_second();
    CHECK(resolver.query("nowhere.neg.test", dns::Type::a).status == dns::Status::nxdomain);
    CHECK(resolver.query("host.neg2.test", dns::Type::txt).status == dns::Status::nodata);
    CHECK(server.queries("nowhere.neg.test") == 2);
    CHECK(server.queries("host.neg2.test") == 2);
}

TEST_CASE("answer cache: negative answers without an SOA are not kept", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server));
    for (int i = 0; i < 2; ++i) {
        CHECK(resolver.query("nowhere.nosoa.test", dns::Type::a).status == dns::Status::nxdomain);
        CHECK(resolver.query("nosoa.test", dns::Type::txt).status == dns::Status::nodata);
        CHECK(resolver.query("nosoa.test", dns::Type::a).status == dns::Status::ok);
    }
    CHECK(server.queries("nowhere.nosoa.test") == 2);
    CHECK(server.queries("nosoa.test") == 3);  // TXT twice; A once, from the cache the second time
}

TEST_CASE("answer cache: SERVFAIL and timeouts are never kept", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(cached(server, 100, 300));
    auto failed = resolver.query("broken.test", dns::Type::a);
    REQUIRE(failed.status == dns::Status::temp_error);
    CHECK(dns::cache_seconds(failed, dns::Type::a) == 0);
    int servfails = server.queries("broken.test");
    CHECK(resolver.query("broken.test", dns::Type::a).status == dns::Status::temp_error);
    CHECK(server.queries("broken.test") > servfails);

    REQUIRE(resolver.query("slow.test", dns::Type::a).status == dns::Status::temp_error);
    int timeouts = server.queries("slow.test");
    CHECK(resolver.query("slow.test", dns::Type::a).status == dns::Status::temp_error);
    CHECK(server.queries("slow.test") > timeouts);

    // the same resolver does keep what succeeded
    resolver.query("long.test", dns::Type::a);
    resolver.query("long.test", dns::Type::a);
    CHECK(server.queries("long.test") == 1);
}

TEST_CASE("answer cache: holds at most its size, dropping the least recently used", "[dns]") {
    test::DnsServer server(zone);
    auto options = cached(server, 2);
    auto& cache = *options.cache;
    dns::Resolver resolver(options);
    resolver.query("a.test", dns::Type::a);
    resolver.query("b.test", dns::Type::a);
    resolver.query("a.test", dns::Type::a);  // a is now used more recently than b
    CHECK(server.queries() == 2);
    resolver.query("c.test", dns::Type::a);  // full: b goes
    CHECK(cache.size() == 2);
    resolver.query("a.test", dns::Type::a);
    resolver.query("c.test", dns::Type::a);
    CHECK(server.queries() == 3);
    resolver.query("b.test", dns::Type::a);  // asked again; a goes (c was used after it)
    CHECK(server.queries() == 4);
    CHECK(cache.size() == 2);
    for (const char* name : {"a.test", "b.test", "c.test", "d.test", "e.test"})
        resolver.query(name, dns::Type::a);
    CHECK(cache.size() == 2);
}

// A hostile sender's DNS may answer 64 KiB over TCP: the bytes are bounded too, so a cache of
// N entries takes at most N * bytes_per_entry whatever the answers.
TEST_CASE("answer cache: big answers count against a byte bound", "[dns]") {
    std::string text = zone;
    std::string chunk(250, 'x');
    for (int i = 0; i < 40; ++i)  // about 10 KB of TXT, over TCP
        text += "big.test TXT \"" + std::to_string(i) + chunk + "\"\n";
    for (int i = 0; i < 4; ++i)
        text += "big" + std::to_string(i) + ".test TXT \"" + chunk + chunk + chunk + chunk + "\"\n";
    test::DnsServer server(text);
    SECTION("an answer bigger than the whole budget is not kept") {
        auto options = cached(server, 4);  // 8 KiB
        dns::Resolver resolver(options);
        auto big = resolver.query("big.test", dns::Type::txt);
        REQUIRE(big.status == dns::Status::ok);
        REQUIRE(big.texts.size() == 40);
        int asked = server.queries("big.test");  // UDP, truncated, then TCP
        resolver.query("big.test", dns::Type::txt);
        CHECK(server.queries("big.test") > asked);
        CHECK(options.cache->size() == 0);
        resolver.query("long.test", dns::Type::a);  // small ones still are
        resolver.query("long.test", dns::Type::a);
        CHECK(server.queries("long.test") == 1);
    }
    SECTION("answers that fill the budget push out the least recently used") {
        auto options = cached(server, 4);  // 8 KiB: room for 4 small answers, not 4 of ~2.5 KB
        dns::Resolver resolver(options);
        for (int i = 0; i < 4; ++i)
            REQUIRE(resolver.query("big" + std::to_string(i) + ".test", dns::Type::txt).status ==
                    dns::Status::ok);
        CHECK(options.cache->size() < 4);
        CHECK(options.cache->bytes() <= 4 * dns::AnswerCache::bytes_per_entry);
        int last = server.queries("big3.test"), first = server.queries("big0.test");
        resolver.query("big3.test", dns::Type::txt);  // the last one stayed
        CHECK(server.queries("big3.test") == last);
        resolver.query("big0.test", dns::Type::txt);  // the first one went
        CHECK(server.queries("big0.test") > first);
    }
}

TEST_CASE("answer cache: several resolvers share one, and it counts hits and misses", "[dns]") {
    test::DnsServer server(zone);
    metrics::Registry registry;
    metrics::CounterFamily results(registry, "pw_cache_total", "x", "result",
                                   dns::cache_result_labels());
    auto options = server.resolver_options();
    options.cache = std::make_shared<dns::AnswerCache>(100, &results);
    dns::Resolver dmarc(options), spf(options), dkim(options);  // as the milter's Services
    dmarc.query("long.test", dns::Type::a);
    spf.query("long.test", dns::Type::a);
    dkim.query("long.test", dns::Type::a);
    spf.query("zero.test", dns::Type::a);
    CHECK(server.queries("long.test") == 1);
    CHECK(results.value(dns::AnswerCache::hit) == 2);
    CHECK(results.value(dns::AnswerCache::miss) == 2);
    CHECK(registry.render().find("pw_cache_total{result=\"hit\"} 2") != std::string::npos);
}

TEST_CASE("answer cache: many threads share one cache safely", "[dns]") {
    test::DnsServer server(zone);
    const std::vector<std::pair<std::string, std::string>> names = {{"a.test", "198.51.100.1"},
                                                                    {"b.test", "198.51.100.2"},
                                                                    {"c.test", "198.51.100.3"},
                                                                    {"d.test", "198.51.100.4"},
                                                                    {"e.test", "198.51.100.5"}};
    constexpr int threads = 8, rounds = 60;
    // Room for 3 of the 5 names: stores, evictions and hits race with each other.
    for (std::size_t entries : {std::size_t{3}, std::size_t{100}}) {
        auto options = cached(server, entries);
        dns::Resolver resolver(options);
        int before = server.queries();
        std::atomic<int> wrong{0};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                for (int i = 0; i < rounds; ++i) {
                    const auto& [name, address] = names[(t + i) % names.size()];
                    auto answer = resolver.query(name, dns::Type::a);
                    if (answer.status != dns::Status::ok || answer.addresses.size() != 1 ||
                        answer.addresses[0] != address)
                        ++wrong;
                }
            });
        for (auto& thread : pool)
            thread.join();
        INFO("cache of " << entries);
        CHECK(wrong == 0);
        CHECK(options.cache->size() <= std::min<std::size_t>(entries, names.size()));
        // With room for all, each thread misses each name at most once (then it is kept).
        if (entries == 100) CHECK(server.queries() - before <= threads * int(names.size()));
    }
}
