// idn_tests.cpp — dns::Resolver with internationalized names against a real DNS server on
// loopback that, like every DNS server, knows names only in A-labels: a U-label name is asked,
// and cached, at its A-label spelling; one that has no A-label spelling never reaches the wire.
#include <catch2/catch.hpp>

#include "common/dns/dns.hpp"
#include "common/dns/dns_cache.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;

namespace {

const char* const zone = R"(
xn--bcher-kva.example        TXT "v=spf1 -all"
_dmarc.xn--bcher-kva.example TXT "v=DMARC1; p=reject"
)";

}  // namespace

TEST_CASE("IDN names: U-labels are asked at their A-label spelling", "[dns][idna]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    for (auto name : {"_dmarc.bücher.example", "_dmarc.BÜCHER.example",
                      "_dmarc.bücher\u3002example", "_dmarc.xn--bcher-kva.example"}) {
        INFO(name);
        auto answer = resolver.query(name, dns::Type::txt);
        CHECK(answer.status == dns::Status::ok);
        CHECK(answer.texts == std::vector<std::string>{"v=DMARC1; p=reject"});
    }
    CHECK(server.queries("_dmarc.xn--bcher-kva.example") == 4);
    CHECK(server.queries() == 4);  // nothing else reached the server
}

TEST_CASE("IDN names: one without an A-label spelling is nxdomain, asked of nobody",
          "[dns][idna]") {
    test::DnsServer server(zone);
    dns::Resolver resolver(server.resolver_options());
    for (auto name : {"_dmarc.\xf0\x9f\x92\xa9.example", "b\xfcr.example", "-bücher.example"}) {
        INFO(name);
        auto answer = resolver.query(name, dns::Type::txt);
        CHECK(answer.status == dns::Status::nxdomain);
    }
    CHECK(server.queries() == 0);
}

TEST_CASE("IDN names: the cache keeps one answer for every spelling", "[dns][idna]") {
    test::DnsServer server(zone);
    auto options = server.resolver_options();
    options.cache = std::make_shared<dns::AnswerCache>(100);
    dns::Resolver resolver(options);
    CHECK(resolver.query("bücher.example", dns::Type::txt).status == dns::Status::ok);
    CHECK(resolver.query("xn--bcher-kva.example", dns::Type::txt).status == dns::Status::ok);
    auto kept = resolver.cached("BÜCHER.example", dns::Type::txt);
    REQUIRE(kept);
    CHECK(kept->texts == std::vector<std::string>{"v=spf1 -all"});
    CHECK_FALSE(resolver.cached("\xf0\x9f\x92\xa9.example", dns::Type::txt));
    CHECK(server.queries() == 1);
}
