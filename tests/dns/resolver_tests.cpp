// resolver_tests.cpp — dns::Resolver against a real DNS server on loopback (dnsserver.py):
// every record type SPF needs, NXDOMAIN versus NODATA, TCP fallback, timeouts, and reused
// channels (fresh source ports, threads sharing a resolver).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/dns/dns.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;

namespace {

const char* const zone = R"(
example.test        A      192.0.2.1
example.test        A      192.0.2.2
example.test        AAAA   2001:db8::1
example.test        MX     10 mail.example.test
example.test        MX     20 backup.example.test
example.test        TXT    "v=spf1 " "ip4:192.0.2.0/24" " -all"
example.test        TXT    other
1.2.0.192.in-addr.arpa PTR mail.example.test
alias.example.test  CNAME  example.test
slow.example.test   TIMEOUT
broken.example.test SERVFAIL
)";

std::string big_zone() {
    std::string text = zone;
    for (int i = 0; i < 40; ++i)
        text += "big.example.test A 198.51.100." + std::to_string(i) + "\n";
    return text;
}

}  // namespace

TEST_CASE("resolver answers each record type", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());

    auto a = resolver.query("example.test", dns::Type::a);
    REQUIRE(a.status == dns::Status::ok);
    CHECK(a.addresses == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
    CHECK_FALSE(a.packet.empty());

    auto aaaa = resolver.query("example.test", dns::Type::aaaa);
    REQUIRE(aaaa.status == dns::Status::ok);
    CHECK(aaaa.addresses == std::vector<std::string>{"2001:db8::1"});

    auto mx = resolver.query("example.test", dns::Type::mx);
    REQUIRE(mx.status == dns::Status::ok);
    REQUIRE(mx.mx.size() == 2);
    CHECK(mx.mx[0].preference == 10);
    CHECK(mx.mx[0].host == "mail.example.test");

    auto txt = resolver.query("example.test", dns::Type::txt);
    REQUIRE(txt.status == dns::Status::ok);
    CHECK(txt.texts == std::vector<std::string>{"v=spf1 ip4:192.0.2.0/24 -all", "other"});

    auto ptr = resolver.query("1.2.0.192.in-addr.arpa", dns::Type::ptr);
    REQUIRE(ptr.status == dns::Status::ok);
    CHECK(ptr.names == std::vector<std::string>{"mail.example.test"});
}

TEST_CASE("resolver follows CNAME answers", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    auto a = resolver.query("alias.example.test", dns::Type::a);
    REQUIRE(a.status == dns::Status::ok);
    CHECK(a.addresses.size() == 2);
}

TEST_CASE("resolver tells NXDOMAIN from NODATA", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    CHECK(resolver.query("nowhere.example.test", dns::Type::a).status == dns::Status::nxdomain);
    CHECK(resolver.query("1.2.0.192.in-addr.arpa", dns::Type::a).status == dns::Status::nodata);
    CHECK(resolver.query("example.test", dns::Type::ptr).status == dns::Status::nodata);
}

TEST_CASE("SERVFAIL and timeouts are temporary errors", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options(600));
    CHECK(resolver.query("broken.example.test", dns::Type::a).status == dns::Status::temp_error);

    auto start = std::chrono::steady_clock::now();
    auto slow = resolver.query("slow.example.test", dns::Type::a);
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(slow.status == dns::Status::temp_error);
    CHECK(slow.error == "timeout");
    CHECK(elapsed < std::chrono::milliseconds(1500));
    // The channel that timed out is not kept: the next query is answered normally.
    CHECK(resolver.query("example.test", dns::Type::a).status == dns::Status::ok);
}

// Channels are reused between queries (dns.cpp, ChannelPool), but never their sockets: a socket
// kept open would send every query from one source port, which RFC 5452 says to randomise.
TEST_CASE("each query leaves from a new source port", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    constexpr int rounds = 20;
    for (int i = 0; i < rounds; ++i)
        REQUIRE(resolver.query("example.test", dns::Type::a).status == dns::Status::ok);
    auto ports = server.source_ports();
    REQUIRE(ports.size() == rounds);
    std::sort(ports.begin(), ports.end());
    auto distinct = std::unique(ports.begin(), ports.end()) - ports.begin();
    // The kernel picks each port at random: a few may repeat, one socket would give 1.
    CHECK(distinct >= rounds - 5);
}

// Threads share one Resolver and its idle channels (run under ThreadSanitizer by test.sh).
TEST_CASE("threads share one resolver", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    constexpr int threads = 6, rounds = 15;
    std::atomic<int> answered{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int i = 0; i < rounds; ++i) {
                auto mx = resolver.query("example.test", dns::Type::mx);
                if (mx.status == dns::Status::ok && mx.mx.size() == 2) ++answered;
            }
        });
    for (auto& thread : pool)
        thread.join();
    CHECK(answered == threads * rounds);
    CHECK(server.queries("example.test") == threads * rounds);
}

TEST_CASE("an answer over 512 bytes comes over TCP", "[dns]") {
    test::DnsServer server(big_zone());
    dns::Resolver resolver(server.resolver_options());
    auto a = resolver.query("big.example.test", dns::Type::a);
    REQUIRE(a.status == dns::Status::ok);
    CHECK(a.addresses.size() == 40);
}

TEST_CASE("a server that does not answer is a temporary error", "[dns]") {
    dns::ResolverOptions options;
    options.nameservers = {"127.0.0.1:" + std::to_string(test::free_port())};
    options.timeout_ms = 300;
    dns::Resolver resolver(options);
    CHECK(resolver.query("example.test", dns::Type::a).status == dns::Status::temp_error);
}

TEST_CASE("nameservers option values are validated", "[dns]") {
    CHECK(dns::validate_nameservers("").empty());
    CHECK(dns::validate_nameservers("127.0.0.1").empty());
    CHECK(dns::validate_nameservers("127.0.0.1:5353, [::1]:53, ::1").empty());
    CHECK_FALSE(dns::validate_nameservers("ns.example.com").empty());
    CHECK_FALSE(dns::validate_nameservers("127.0.0.1:0").empty());
    CHECK_FALSE(dns::validate_nameservers("127.0.0.1:99999").empty());
    CHECK_FALSE(dns::validate_nameservers("[::1").empty());
    CHECK_FALSE(dns::validate_nameservers("127.0.0.1:").empty());
    CHECK(dns::split_nameservers(" 127.0.0.1:5353 ,[::1]:53") ==
          std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"});
    CHECK_THROWS_AS(dns::Resolver(dns::ResolverOptions{{"bogus"}, 1000}), std::invalid_argument);
}

// decode_reply() is what query() does with a packet (the fuzz targets feed it hostile ones):
// the real server's packets decode to the answers query() gave.
TEST_CASE("decode_reply reads a packet as query() does", "[dns]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    for (auto [name, type] : {std::pair{"example.test", dns::Type::txt},
                              {"example.test", dns::Type::mx},
                              {"alias.example.test", dns::Type::a},
                              {"nothing.example.test", dns::Type::a},
                              {"example.test", dns::Type::ptr}}) {
        auto real = resolver.query(name, type);
        REQUIRE(!real.packet.empty());
        auto decoded = dns::decode_reply(real.packet, type);
        CHECK(decoded.status == real.status);
        CHECK(decoded.addresses == real.addresses);
        CHECK(decoded.texts == real.texts);
        CHECK(decoded.names == real.names);
        CHECK(decoded.mx.size() == real.mx.size());
    }
    auto servfail = resolver.query("broken.example.test", dns::Type::a);
    if (!servfail.packet.empty())
        CHECK(dns::decode_reply(servfail.packet, dns::Type::a).status == dns::Status::temp_error);
    auto cut = resolver.query("example.test", dns::Type::txt).packet;
    cut.resize(cut.size() - 3);
    CHECK(dns::decode_reply(cut, dns::Type::txt).status == dns::Status::temp_error);
    CHECK(dns::decode_reply({1, 2, 3}, dns::Type::a).status == dns::Status::temp_error);
}
