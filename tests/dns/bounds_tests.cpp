// bounds_tests.cpp — the DNS lookups one message can cost (HARDENING.md, "Resource bounds"),
// counted on a real DNS server: DKIM verifies at most max_signatures signatures (one key lookup
// each) and none at all past max_headers or max_header_bytes; one SPF check stays within RFC
// 7208's limits whatever the records say.
#include <catch2/catch.hpp>

#include <string>

#include "common/dns/spf.hpp"
#include "common/mail/dkim.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;

namespace {

// A resolver on the real server that counts what it is asked.
struct CountingResolver {
    dns::Resolver real;
    int lookups = 0;
    explicit CountingResolver(const test::DnsServer& server) : real(server.resolver_options()) {}
    dns::Resolver resolver() {
        return dns::Resolver(dns::AnswerSource([this](std::string_view name, dns::Type type) {
            ++lookups;
            return real.query(name, type);
        }));
    }
};

std::string signature(int i) {
    return "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d" + std::to_string(i) +
           ".test; s=sel; h=from; bh=AAAA; b=AAAA";
}

std::vector<postwarden::dkim::Signature> verify(const postwarden::dkim::Library& library,
                                                const std::vector<std::string>& fields) {
    postwarden::dkim::Verifier v(library, "test");
    for (const auto& f : fields)
        v.header(f);
    v.end_of_headers();
    v.body("body\r\n");
    return v.finish();
}

}  // namespace

TEST_CASE("bounds: DKIM verifies at most max_signatures signatures per message", "[bounds]") {
    test::DnsServer server("d0.test A 192.0.2.1\n");
    CountingResolver counting(server);
    postwarden::dkim::Library library(counting.resolver());
    REQUIRE(library.limits().max_signatures == 8);
    std::vector<std::string> fields = {"From: a@d0.test"};
    for (int i = 0; i < 20; ++i)
        fields.push_back(signature(i));
    auto verdicts = verify(library, fields);
    CHECK(verdicts.size() == 8);
    CHECK(counting.lookups == 8);
}

TEST_CASE("bounds: DKIM gives up on more than max_headers fields or max_header_bytes", "[bounds]") {
    test::DnsServer server("d0.test A 192.0.2.1\n");
    CountingResolver counting(server);
    postwarden::dkim::Library library(counting.resolver());
    REQUIRE(library.limits().max_headers == 1000);
    REQUIRE(library.limits().max_header_bytes == 1024 * 1024);

    std::vector<std::string> fields = {signature(0), "From: a@d0.test"};
    for (int i = 0; i < 998; ++i)
        fields.push_back("X-Filler: " + std::to_string(i));
    CHECK(verify(library, fields).size() == 1);  // exactly 1000 fields: verified
    CHECK(counting.lookups == 1);
    fields.push_back("X-Filler: one more");
    auto verdicts = verify(library, fields);
    REQUIRE(verdicts.size() == 1);
    CHECK(verdicts[0].result == postwarden::dkim::Result::permerror);
    CHECK(verdicts[0].reason == "headers too large to verify");
    CHECK(counting.lookups == 1);  // no lookup for the oversized message

    std::vector<std::string> big = {signature(0), "From: a@d0.test",
                                    "X-Big: " + std::string(1024 * 1024, 'x')};
    verdicts = verify(library, big);
    REQUIRE(verdicts.size() == 1);
    CHECK(verdicts[0].reason == "headers too large to verify");
    CHECK(counting.lookups == 1);
}

TEST_CASE("bounds: one SPF check makes at most 1 + 10 * 11 + 1 lookups", "[bounds]") {
    // Ten mx terms (the most RFC 7208 allows), each naming ten hosts with no address, and an
    // exp= modifier: the worst a record can ask for without being cut off.
    std::string zone = "hostile.test TXT \"v=spf1";
    for (int i = 0; i < 10; ++i)
        zone += " mx:m" + std::to_string(i) + ".test";
    zone += " -all exp=exp.hostile.test\"\nexp.hostile.test TXT \"no\"\n";
    for (int i = 0; i < 10; ++i)
        for (int j = 0; j < 10; ++j)
            zone += "m" + std::to_string(i) + ".test MX " + std::to_string(j) + " h" +
                    std::to_string(j) + ".m" + std::to_string(i) + ".test\n";
    test::DnsServer server(zone);
    CountingResolver counting(server);
    spf::Checker checker(counting.resolver());
    auto outcome = checker.check_mailfrom("192.0.2.1", "a@hostile.test", "helo.test");
    INFO("lookups: " << counting.lookups);
    CHECK(outcome.result != spf::Result::pass);
    CHECK(counting.lookups <= 1 + 10 * 11 + 1);
    CHECK(counting.lookups >= 11);

    // An eleventh DNS term: permerror, and nothing past it is asked.
    test::DnsServer eleven(
        "e.test TXT \"v=spf1 a:1.e.test a:2.e.test a:3.e.test a:4.e.test a:5.e.test a:6.e.test "
        "a:7.e.test a:8.e.test a:9.e.test a:10.e.test a:11.e.test -all\"\n"
        "1.e.test A 198.51.100.1\n2.e.test A 198.51.100.1\n3.e.test A 198.51.100.1\n"
        "4.e.test A 198.51.100.1\n5.e.test A 198.51.100.1\n6.e.test A 198.51.100.1\n"
        "7.e.test A 198.51.100.1\n8.e.test A 198.51.100.1\n9.e.test A 198.51.100.1\n"
        "10.e.test A 198.51.100.1\n11.e.test A 192.0.2.1\n");
    CountingResolver counting11(eleven);
    spf::Checker checker11(counting11.resolver());
    CHECK(checker11.check_mailfrom("192.0.2.1", "a@e.test", "helo.test").result ==
          spf::Result::permerror);
    CHECK(counting11.lookups == 11);  // the record and ten terms; the eleventh is not asked
}
