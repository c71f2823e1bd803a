// spf_service_test.cpp — SpfService under a DNS that does not answer: the queue of checks is
// bounded (past max_pending a check answers temperror at once) and shutting down does not wait
// for the queued checks' timeouts.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>

#include "policyd/spf_service.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;
using namespace std::chrono_literals;

TEST_CASE("SPF checks past max_pending answer temperror at once; shutdown does not wait",
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
