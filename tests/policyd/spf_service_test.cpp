// spf_service_test.cpp — SpfService against a real DNS server on loopback: results kept per
// domain unless the records use the local part, in a cache bounded in bytes; under a DNS that
// does not answer, the queue of checks is bounded (past max_pending a check answers temperror
// at once) and shutting down does not wait for the queued checks' timeouts; identical checks
// share one evaluation, and a slow domain cannot hold the whole pool.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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
        // each from another client: identical checks would share one evaluation
        for (std::size_t i = 0; i < policy::SpfService::max_pending + extra; ++i)
            spf.check("198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1),
                      "u" + std::to_string(i) + "@slow.example", "mx.slow.example",
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

namespace {

// Runs `io` until `done()` or about two seconds have passed.
template <typename Done>
void run_until(boost::asio::io_context& io, Done done) {
    for (int i = 0; i < 400 && !done(); ++i) {
        io.restart();
        io.poll();
        if (!done()) std::this_thread::sleep_for(5ms);
    }
}

}  // namespace

TEST_CASE("SPF checks: identical checks in flight share one evaluation", "[policyd][spf]") {
    test::DnsServer dns(
        "merge.example TXT \"v=spf1 a:host.merge.example -all\"\n"
        "host.merge.example DELAY 200\n"
        "host.merge.example A 192.0.2.1\n");
    boost::asio::io_context io;
    policy::SpfService spf(io, dns.resolver_options(1000), 4);  // no DNS answer cache
    constexpr int checks = 10;
    std::vector<spf::Result> results;
    for (int i = 0; i < checks; ++i)  // the same sender, then a list's VERP senders
        spf.check("192.0.2.1",
                  i < checks / 2 ? "a@merge.example" : "b" + std::to_string(i) + "@merge.example",
                  "mx.example", [&](spf::Outcome o) { results.push_back(o.result); });
    run_until(io, [&] { return results.size() == checks; });
    REQUIRE(results.size() == checks);
    for (auto result : results)
        CHECK(result == spf::Result::pass);
    CHECK(dns.queries("merge.example") == 1);
    CHECK(dns.queries("host.merge.example") == 1);

    // records that use the local part: each sender still gets its own evaluation
    test::DnsServer local(
        "local.example TXT \"v=spf1 exists:%{l}.ok.local.example -all\"\n"
        "local.example DELAY 200\n"
        "alice.ok.local.example A 127.0.0.2\n");
    policy::SpfService spf2(io, local.resolver_options(1000), 4);
    std::map<std::string, spf::Result> by_sender;
    for (const char* sender : {"alice", "bob", "alice", "carol"})
        spf2.check("192.0.2.1", std::string(sender) + "@local.example", "mx.example",
                   [&, sender](spf::Outcome o) { by_sender[sender] = o.result; });
    run_until(io, [&] { return by_sender.size() == 3; });
    CHECK(by_sender["alice"] == spf::Result::pass);
    CHECK(by_sender["bob"] == spf::Result::fail);
    CHECK(by_sender["carol"] == spf::Result::fail);
}

TEST_CASE("SPF checks: a slow domain holds a share of the pool, other domains keep flowing",
          "[policyd][spf]") {
    // ten mx terms whose answers come 250 ms late: about 5 s a check without a deadline
    std::string record = "v=spf1";
    for (int i = 0; i < 10; ++i)
        record += " mx:m" + std::to_string(i) + ".late.example";
    test::DnsServer dns("slow.example TXT \"" + record + " -all\"\n" + "a.slow.example TXT \"" +
                        record + " -all\"\n" +
                        "*.late.example DELAY 250\n"
                        "*.late.example MX 10 mail.late.example\n"
                        "*.late.example A 192.0.2.200\n"
                        "quick.example TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n");
    boost::asio::io_context io;
    constexpr int threads = 8;
    policy::SpfService spf(io, dns.resolver_options(300), threads, 1500ms);
    CHECK(spf.max_per_domain() == 2);
    std::vector<spf::Outcome> slow;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 3 * threads; ++i)  // every client another check, on subdomains too
        spf.check("203.0.113." + std::to_string(i),
                  "u@" + std::string(i % 2 ? "a." : "") + "slow.example", "mx.example",
                  [&](spf::Outcome o) { slow.push_back(o); });
    std::optional<std::chrono::steady_clock::duration> quick_took;
    spf.check("198.51.100.7", "u@quick.example", "mx.example", [&](spf::Outcome o) {
        CHECK(o.result == spf::Result::pass);
        quick_took = std::chrono::steady_clock::now() - start;
    });
    run_until(io, [&] { return quick_took.has_value(); });
    REQUIRE(quick_took);
    CHECK(*quick_took < 600ms);  // two DNS timeouts; not behind 24 slow checks

    // the slow domain's checks end by their deadline, queued ones included, as temperror
    run_until(io, [&] { return slow.size() == 3 * threads; });
    CHECK(std::chrono::steady_clock::now() - start < 2500ms);
    REQUIRE(slow.size() == 3 * threads);
    for (const auto& o : slow)
        CHECK(o.result == spf::Result::temperror);
}

TEST_CASE("SPF checks: the result cache is bounded in bytes and keeps what is used",
          "[policyd][spf]") {
    test::DnsServer dns("list.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n");
    boost::asio::io_context io;
    constexpr std::size_t bound = 256 * 1024;
    policy::SpfService spf(io, dns.resolver_options(1000), 2, 20000ms, bound);
    auto check = [&](const std::string& sender, const std::string& helo) {
        std::optional<spf::Result> got;
        spf.check("192.0.2.1", sender, helo, [&](spf::Outcome o) { got = o.result; });
        bool in_the_call = got.has_value();  // answered from the cache
        run_until(io, [&] { return got.has_value(); });
        REQUIRE(got);
        CHECK(*got == spf::Result::pass);
        return in_the_call;
    };
    CHECK_FALSE(check("hot@list.example", "mx.example"));
    for (int i = 0; i < 200; ++i) {  // 4 KB HELO names: 200 results would take 1.6 MB
        CHECK_FALSE(check("u@list.example", std::string(4000, 'h') + std::to_string(i)));
        CHECK(spf.cache_bytes() <= bound);
        CHECK(check("hot@list.example", "mx.example"));  // still cached
    }
    CHECK(spf.cache_bytes() > bound / 2);
}
