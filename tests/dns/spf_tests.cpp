// spf_tests.cpp — spf::Checker through dns::Resolver against a real DNS server on loopback:
// each result, the HELO identity, <>, IPv6, include/redirect, bad input, many threads,
// checks answered from the DNS cache alone, and the deadline that bounds a whole check.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/dns/dns_cache.hpp"
#include "common/dns/spf.hpp"
#include "common/metrics.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;
using spf::Result;

namespace {

const char* const zone = R"(
pass.test           TXT  "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"
soft.test           TXT  "v=spf1 ~all"
neutral.test        TXT  "v=spf1 ?all"
norecord.test       TXT  "just some text"
norecord.test       A    192.0.2.9
broken.test         TXT  "v=spf1 ip4:999.1.1.1 -all"
twice.test          TXT  "v=spf1 -all"
twice.test          TXT  "v=spf1 +all"
slow.test           TIMEOUT
includer.test       TXT  "v=spf1 include:pass.test -all"
redirector.test     TXT  "v=spf1 redirect=pass.test"
withexp.test        TXT  "v=spf1 -all exp=why.withexp.test"
why.withexp.test    TXT  "%{i} is not one of %{d}'s servers"
mx.test             TXT  "v=spf1 mx a:host.mx.test -all"
mx.test             MX   10 mail.mx.test
mail.mx.test        A    198.51.100.7
host.mx.test        AAAA 2001:db8:1::25
helo.example.test   TXT  "v=spf1 a -all"
helo.example.test   A    203.0.113.5
local.test          TXT  "v=spf1 exists:%{l}.ok.local.test -all"
alice.ok.local.test A    127.0.0.2
inclocal.test       TXT  "v=spf1 include:local.test ~all"
macro.test          TXT  "v=spf1 exists:%{ir}.%{d2}.%{h} -all"
)";

}  // namespace

TEST_CASE("SPF results for MAIL FROM", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));

    CHECK(checker.check_mailfrom("192.0.2.10", "a@pass.test", "x.test").result == Result::pass);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@pass.test", "x.test").result == Result::fail);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@soft.test", "x.test").result ==
          Result::softfail);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@neutral.test", "x.test").result ==
          Result::neutral);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@norecord.test", "x.test").result ==
          Result::none);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@nxdomain.test", "x.test").result ==
          Result::none);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@broken.test", "x.test").result ==
          Result::permerror);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@twice.test", "x.test").result ==
          Result::permerror);
    auto outcome = checker.check_mailfrom("198.51.100.1", "a@pass.test", "x.test");
    CHECK(outcome.domain == "pass.test");
    // no exp= in the record: our default explanation, expanded for this request
    INFO(outcome.explanation);
    CHECK(outcome.explanation.rfind(
              "Please see https://www.open-spf.org/Why?s=mfrom;id=a%40pass.test;ip=198.51.100.1;r=",
              0) == 0);
    // only a fail has one
    CHECK(checker.check_mailfrom("198.51.100.1", "a@soft.test", "x.test").explanation.empty());
}

TEST_CASE("a DNS timeout is temperror", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(400));
    CHECK(checker.check_mailfrom("192.0.2.10", "a@slow.test", "x.test").result ==
          Result::temperror);
}

TEST_CASE("include, redirect, mx, a and exp", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));
    CHECK(checker.check_mailfrom("192.0.2.10", "a@includer.test", "h.test").result == Result::pass);
    CHECK(checker.check_mailfrom("198.51.100.1", "a@includer.test", "h.test").result ==
          Result::fail);
    CHECK(checker.check_mailfrom("192.0.2.10", "a@redirector.test", "h.test").result ==
          Result::pass);
    CHECK(checker.check_mailfrom("198.51.100.7", "a@mx.test", "h.test").result == Result::pass);
    CHECK(checker.check_mailfrom("2001:db8:1::25", "a@mx.test", "h.test").result == Result::pass);
    auto outcome = checker.check_mailfrom("198.51.100.1", "a@withexp.test", "h.test");
    CHECK(outcome.result == Result::fail);
    CHECK(outcome.explanation == "198.51.100.1 is not one of withexp.test's servers");
}

TEST_CASE("IPv6 clients and IPv4-mapped addresses", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));
    CHECK(checker.check_mailfrom("2001:db8::25", "a@pass.test", "h.test").result == Result::pass);
    CHECK(checker.check_mailfrom("2001:db9::25", "a@pass.test", "h.test").result == Result::fail);
    CHECK(checker.check_mailfrom("::ffff:192.0.2.10", "a@pass.test", "h.test").result ==
          Result::pass);
}

TEST_CASE("HELO identity and the null sender", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));
    auto helo = checker.check_helo("203.0.113.5", "helo.example.test");
    CHECK(helo.result == Result::pass);
    CHECK(helo.domain == "helo.example.test");
    auto null_sender = checker.check_mailfrom("203.0.113.6", "", "helo.example.test");
    CHECK(null_sender.result == Result::fail);
    CHECK(null_sender.domain == "helo.example.test");
    CHECK(checker.check_mailfrom("203.0.113.5", "@helo.example.test", "x").result == Result::pass);
}

TEST_CASE("bad input gives a result, never a crash", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(500));
    CHECK(checker.check_mailfrom("not-an-ip", "a@pass.test", "h.test").result == Result::none);
    CHECK(checker.check_mailfrom("", "a@pass.test", "h.test").result == Result::none);
    CHECK(
        checker.check_mailfrom("192.0.2.10", "a@" + std::string(300, 'x') + ".test", "h").result ==
        Result::none);
    CHECK(checker.check_mailfrom("192.0.2.10", "a@\xff\xfe.test", "h").result == Result::none);
    CHECK(checker.check_mailfrom("192.0.2.10", std::string("a\0b@pass.test", 13), "h").result ==
          Result::none);
    CHECK(checker.check_mailfrom("192.0.2.10", "a@pass.test", std::string(1000, '\x01')).result ==
          Result::pass);
    CHECK(checker.check_helo("192.0.2.10", "[192.0.2.10]").result == Result::none);
    CHECK(checker.check_helo("192.0.2.10", "").result == Result::none);
    CHECK(checker.check_mailfrom("127.0.0.1", "a@pass.test", "h.test").result == Result::fail);
}

TEST_CASE("a check answered from the DNS cache alone asks nothing and agrees with a full check",
          "[spf]") {
    test::DnsServer server(zone);
    metrics::Registry registry;
    metrics::CounterFamily results(registry, "pw_cache_total", "x", "result",
                                   dns::cache_result_labels());
    auto options = server.resolver_options(1000);
    options.cache = std::make_shared<dns::AnswerCache>(100, &results);
    spf::Checker checker(options);

    // Nothing cached yet: no answer, and nothing asked of the network or counted as a miss.
    CHECK_FALSE(checker.check_mailfrom_cached("192.0.2.10", "a@includer.test", "h.test"));
    CHECK(server.queries() == 0);
    CHECK(results.value(dns::AnswerCache::miss) == 0);

    // A full check fills the cache (includer.test, then pass.test); now both identities are
    // answered from it, the failing one with its explanation, and the server hears nothing.
    REQUIRE(checker.check_mailfrom("192.0.2.10", "a@includer.test", "h.test").result ==
            Result::pass);
    int asked = server.queries();
    auto pass = checker.check_mailfrom_cached("192.0.2.10", "b@includer.test", "h.test");
    REQUIRE(pass);
    CHECK(pass->result == Result::pass);
    CHECK(pass->domain == "includer.test");
    auto fail = checker.check_mailfrom_cached("198.51.100.1", "a@includer.test", "h.test");
    REQUIRE(fail);
    auto full = checker.check_mailfrom("198.51.100.1", "a@includer.test", "h.test");
    CHECK(fail->result == Result::fail);
    CHECK(fail->result == full.result);
    CHECK(fail->explanation == full.explanation);
    CHECK(server.queries() == asked);

    // Part of what a check needs is cached: the IPv4 client matched mx.test's MX host by its A
    // record; an IPv6 client needs the host's AAAA, which is not cached. No answer, nothing
    // asked; the full check then finds it.
    REQUIRE(checker.check_mailfrom("198.51.100.7", "a@mx.test", "h.test").result == Result::pass);
    asked = server.queries();
    CHECK(checker.check_mailfrom_cached("198.51.100.7", "a@mx.test", "h.test"));
    CHECK_FALSE(checker.check_mailfrom_cached("2001:db8:1::25", "a@mx.test", "h.test"));
    CHECK(server.queries() == asked);
    CHECK(checker.check_mailfrom("2001:db8:1::25", "a@mx.test", "h.test").result == Result::pass);
    // ...on the way it learnt that mail.mx.test has no AAAA, but with no SOA in the zone that
    // answer is not kept (RFC 2308), so the next check must ask again too.
    CHECK_FALSE(checker.check_mailfrom_cached("2001:db8:1::25", "a@mx.test", "h.test"));

    // A DNS failure is never cached, so it is never answered from the cache.
    CHECK(checker.check_mailfrom("192.0.2.10", "a@slow.test", "h.test").result ==
          Result::temperror);
    CHECK_FALSE(checker.check_mailfrom_cached("192.0.2.10", "a@slow.test", "h.test"));
}

TEST_CASE("a result says whether the sender's local part was used", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));
    auto alice = checker.check_mailfrom("192.0.2.10", "alice@local.test", "h.test");
    CHECK(alice.result == Result::pass);
    CHECK(alice.local_part_used);
    CHECK(checker.check_mailfrom("192.0.2.10", "bob@local.test", "h.test").result == Result::fail);
    // through an include too
    auto included = checker.check_mailfrom("192.0.2.10", "bob@inclocal.test", "h.test");
    CHECK(included.result == Result::softfail);
    CHECK(included.local_part_used);
    // other macros, and none at all: the same result for every sender of the domain
    CHECK_FALSE(checker.check_mailfrom("192.0.2.10", "bob@macro.test", "h.test").local_part_used);
    CHECK_FALSE(checker.check_mailfrom("192.0.2.10", "bob@pass.test", "h.test").local_part_used);
    CHECK_FALSE(checker.check_mailfrom("192.0.2.10", "", "pass.test").local_part_used);
    // a local part that cannot be checked gives none for this sender only
    auto unusable = checker.check_mailfrom("192.0.2.10", std::string("a\0b@pass.test", 13), "h");
    CHECK(unusable.result == Result::none);
    CHECK(unusable.local_part_used);
}

TEST_CASE("without a DNS cache, no check is answered from it", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(1000));
    REQUIRE(checker.check_mailfrom("192.0.2.10", "a@pass.test", "h.test").result == Result::pass);
    CHECK_FALSE(checker.check_mailfrom_cached("192.0.2.10", "a@pass.test", "h.test"));
}

TEST_CASE("checks run concurrently from several threads", "[spf]") {
    test::DnsServer server(zone);
    spf::Checker checker(server.resolver_options(2000));
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 15; ++i) {
                bool pass = (i + t) % 2 == 0;
                auto outcome = checker.check_mailfrom(pass ? "192.0.2.77" : "198.51.100.77",
                                                      "u@includer.test", "h.test");
                if (outcome.result != (pass ? Result::pass : Result::fail)) ++wrong;
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    CHECK(wrong == 0);
}

namespace {

// Every answer under late.test comes 250 ms late: a record of many such terms would take
// seconds, each lookup well within timeout_ms.
const char* const late_zone = R"(
many.late.test  TXT  "v=spf1 mx:m1.late.test a:a1.late.test include:i1.late.test mx:m2.late.test a:a2.late.test include:i2.late.test mx:m3.late.test a:a3.late.test -all"
*.late.test     DELAY 250
*.late.test     A    192.0.2.200
*.late.test     MX   10 mail.late.test
*.late.test     TXT  "v=spf1 ?all"
)";

}  // namespace

TEST_CASE("SPF: a record of many slow terms ends at the check's deadline as temperror", "[spf]") {
    test::DnsServer server(late_zone);
    spf::Checker checker(server.resolver_options(1000), std::chrono::milliseconds(1000));
    CHECK(checker.deadline() == std::chrono::milliseconds(1000));

    auto start = std::chrono::steady_clock::now();
    auto outcome = checker.check_mailfrom("198.51.100.1", "a@many.late.test", "x.test");
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(outcome.result == Result::temperror);
    CHECK(took < std::chrono::milliseconds(1500));  // all its terms would take 2.75 s
    int asked = server.queries();

    // the HELO identity is bounded the same way, and a deadline already past asks nothing
    start = std::chrono::steady_clock::now();
    CHECK(checker.check_helo("198.51.100.1", "many.late.test").result == Result::temperror);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
    asked = server.queries();
    CHECK(checker
              .check_mailfrom("198.51.100.1", "a@many.late.test", "x.test",
                              std::chrono::steady_clock::now())
              .result == Result::temperror);
    CHECK(server.queries() == asked);

    // both identities checked under one deadline (the milter at MAIL FROM) end by it together
    start = std::chrono::steady_clock::now();
    auto both = start + std::chrono::milliseconds(1000);
    CHECK(
        checker.check_mailfrom("198.51.100.1", "a@many.late.test", "many.late.test", both).result ==
        Result::temperror);
    CHECK(checker.check_helo("198.51.100.1", "many.late.test", both).result == Result::temperror);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));

    // with time enough, the same record is evaluated to its end
    spf::Checker patient(server.resolver_options(1000), std::chrono::milliseconds(10000));
    CHECK(patient.check_mailfrom("198.51.100.1", "a@many.late.test", "x.test").result ==
          Result::fail);
}
