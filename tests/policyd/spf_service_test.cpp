// spf_service_test.cpp — SpfService against a real DNS server on loopback: results kept per
// domain unless the records use the local part; under a DNS that does not answer, the queue of
// checks is bounded (past max_pending a check answers temperror at once) and shutting down does
// not wait for the queued checks' timeouts.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "policyd/spf_service.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;
using namespace std::chrono_literals;

TEST_CASE("SPF checks past max_pending answer temperror at once, shutdown does not wait",
          "[policyd][spf]") {
    test::DnsServer dns("slow.example TIMEOUT\n");
    boost::asio::io_context io;
    constexpr std::size_t extra = 20;
    std::size_t quick_temperrors = 0;
    auto start = std::chrono::steady_clock::now();
    auto destroyed = start;
    {
        policy::SpfService spf(io, dns.resolver_options(300), 2);
        for (std::size_t i = 0; i < policy::SpfService::max_pending + extra; ++i)
            spf.check("192.0.2.1", "u" + std::to_string(i) + "@slow.example", "mx.slow.example",
                      [&](spf::Outcome o) {
                          if (o.result == spf::Result::temperror &&
                              std::chrono::steady_clock::now() - start < 250ms)
                              ++quick_temperrors;
                      });
        io.run_for(500ms);
        destroyed = std::chrono::steady_clock::now();
    }
    auto shutdown = std::chrono::steady_clock::now() - destroyed;
    CHECK(quick_temperrors == extra);  // the first max_pending wait for the DNS
    CHECK(shutdown < 3s);              // 512 queued checks × 300 ms / 2 threads would be 77 s
}

TEST_CASE("SPF results are kept per domain unless the records use the local part or it fails",
          "[policyd][spf]") {
    test::DnsServer dns(
        "list.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
        "local.example TXT \"v=spf1 exists:%{l}.ok.local.example -all\"\n"
        "alice.ok.local.example A 127.0.0.2\n");
    boost::asio::io_context io;
    policy::SpfService spf(io, dns.resolver_options(1000), 2);  // no DNS answer cache
    auto result = [&](const std::string& ip, const std::string& sender) {
        std::optional<spf::Result> got;
        spf.check(ip, sender, "mx.example", [&](spf::Outcome o) { got = o.result; });
        for (int i = 0; i < 400 && !got; ++i) {  // the pool posts the result back to io
            io.restart();
            io.poll();
            if (!got) std::this_thread::sleep_for(5ms);
        }
        REQUIRE(got);
        return *got;
    };

    // VERP senders of a list: one check for them all, from one client and HELO name
    CHECK(result("192.0.2.1", "bounce-1-a=x.example@list.example") == spf::Result::pass);
    CHECK(result("192.0.2.1", "bounce-2-b=y.example@list.example") == spf::Result::pass);
    CHECK(result("192.0.2.1", "bounce-3-c=z.example@list.example") == spf::Result::pass);
    CHECK(dns.queries("list.example") == 1);
    CHECK(result("192.0.2.2", "bounce-4-d=z.example@list.example") == spf::Result::pass);
    CHECK(dns.queries("list.example") == 2);  // another client is another check

    // a fail is kept per sender (its explanation names the sender)
    CHECK(result("203.0.113.1", "x@list.example") == spf::Result::fail);
    CHECK(result("203.0.113.1", "y@list.example") == spf::Result::fail);
    CHECK(dns.queries("list.example") == 4);
    CHECK(result("203.0.113.1", "y@list.example") == spf::Result::fail);
    CHECK(dns.queries("list.example") == 4);

    // records that look at the local part: each sender is checked, and gets its own result
    CHECK(result("192.0.2.1", "alice@local.example") == spf::Result::pass);
    CHECK(result("192.0.2.1", "bob@local.example") == spf::Result::fail);
    CHECK(result("192.0.2.1", "alice@local.example") == spf::Result::pass);
    CHECK(dns.queries("local.example") == 2);
}
