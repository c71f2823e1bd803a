// dmarc_test.cpp — DMARC record parsing, organizational domains (libpsl), alignment, discovery
// and evaluation (common/mail/dmarc.hpp), with DNS answers given as values.
#include <catch2/catch.hpp>

#include <map>

#include "common/mail/dmarc.hpp"

using namespace postwarden;
using namespace postwarden::dmarc;

TEST_CASE("DMARC records: tags, defaults, invalid values", "[unit][dmarc]") {
    std::string error;
    auto r =
        parse_record("v=DMARC1; p=reject; sp=none; adkim=s; aspf=r; pct=20; rua=mailto:x", &error);
    REQUIRE(r);
    CHECK(r->p == Policy::reject);
    CHECK(r->sp == Policy::none);
    CHECK(r->adkim == Alignment::strict);
    CHECK(r->aspf == Alignment::relaxed);
    CHECK(r->pct == 20);

    r = parse_record("v=DMARC1;p=Quarantine", &error);
    REQUIRE(r);
    CHECK(r->p == Policy::quarantine);
    CHECK_FALSE(r->sp);
    CHECK(r->pct == 100);

    r = parse_record("  v = DMARC1 ; p=bogus; pct=250; adkim=x; future=1", &error);
    REQUIRE(r);  // a broken p= is p=none, broken optional tags fall back to defaults
    CHECK(r->p == Policy::none);
    CHECK(r->pct == 100);
    CHECK(r->adkim == Alignment::relaxed);

    CHECK_FALSE(parse_record("p=reject; v=DMARC1", &error));
    CHECK_FALSE(parse_record("v=spf1 -all", &error));
    CHECK_FALSE(parse_record("", &error));
    CHECK_FALSE(parse_record(std::string("v=DMARC1\0; p=reject", 19), &error));
}

TEST_CASE("organizational domains and alignment", "[unit][dmarc]") {
    PublicSuffixList psl;
    CHECK(psl.organizational_domain("mail.Example.CO.UK.") == "example.co.uk");
    CHECK(psl.organizational_domain("a.b.example.com") == "example.com");
    CHECK(psl.organizational_domain("x.example.test") == "example.test");
    CHECK(psl.organizational_domain("com") == "com");
    CHECK(psl.organizational_domain("") == "");
    CHECK(aligned("mail.example.com", "example.com", Alignment::relaxed, psl));
    CHECK_FALSE(aligned("mail.example.com", "example.com", Alignment::strict, psl));
    CHECK(aligned("Example.com", "example.com.", Alignment::strict, psl));
    CHECK_FALSE(aligned("example.co.uk", "other.co.uk", Alignment::relaxed, psl));
    CHECK_FALSE(aligned("", "", Alignment::relaxed, psl));
}

namespace {

TxtLookup zone(std::map<std::string, dns::Answer> answers) {
    return [answers](const std::string& name) {
        auto it = answers.find(name);
        if (it != answers.end()) return it->second;
        return dns::Answer{dns::Status::nxdomain, {}, {}, {}, {}, {}, ""};
    };
}

dns::Answer txt(std::vector<std::string> texts) {
    return dns::Answer{dns::Status::ok, {}, std::move(texts), {}, {}, {}, ""};
}

}  // namespace

TEST_CASE("discovery: the From domain, then the organizational domain", "[unit][dmarc]") {
    PublicSuffixList psl;
    auto lookup = zone(
        {{"_dmarc.example.com", txt({"v=DMARC1; p=reject; sp=quarantine"})},
         {"_dmarc.two.example", txt({"v=DMARC1; p=reject", "v=DMARC1; p=none"})},
         {"_dmarc.sub.temp.example", {dns::Status::temp_error, {}, {}, {}, {}, {}, "timeout"}}});
    auto d = discover("mail.example.com", lookup, psl);
    CHECK(d.status == Discovery::Status::found);
    CHECK(d.record_domain == "example.com");
    d = discover("two.example", lookup, psl);
    CHECK(d.status == Discovery::Status::none);  // two records: none (RFC 7489 6.6.3)
    d = discover("sub.temp.example", lookup, psl);
    CHECK(d.status == Discovery::Status::temperror);
    d = discover("nothing.example", lookup, psl);
    CHECK(d.status == Discovery::Status::none);
}

TEST_CASE("evaluation: alignment, sp, pct, temporary errors", "[unit][dmarc]") {
    PublicSuffixList psl;
    auto lookup =
        zone({{"_dmarc.example.com", txt({"v=DMARC1; p=reject; sp=quarantine; pct=50; aspf=s"})}});
    auto at_domain = discover("example.com", lookup, psl);
    auto at_sub = discover("news.example.com", lookup, psl);

    Identifiers spf_sub;
    spf_sub.spf_pass = true;
    spf_sub.spf_domain = "bounce.example.com";
    auto e = evaluate("example.com", at_domain, spf_sub, psl, 0);
    CHECK(e.result == Result::fail);  // aspf=s: bounce.example.com is not example.com
    CHECK(e.policy == Policy::reject);

    Identifiers dkim;
    dkim.dkim_pass_domains = {"mail.example.com"};
    CHECK(evaluate("example.com", at_domain, dkim, psl, 0).result == Result::pass);

    Identifiers nothing;
    nothing.dkim_temperror = true;
    e = evaluate("news.example.com", at_sub, nothing, psl, 10);
    CHECK(e.result == Result::fail);
    CHECK(e.published == Policy::quarantine);  // sp applies below the record's domain
    CHECK(e.maybe_temporary);
    e = evaluate("example.com", at_domain, nothing, psl, 75);  // outside pct=50
    CHECK(e.sampled_out);
    CHECK(e.policy == Policy::quarantine);

    Discovery temp;
    temp.status = Discovery::Status::temperror;
    CHECK(evaluate("example.com", temp, nothing, psl, 0).result == Result::temperror);
    CHECK(evaluate("example.com", Discovery{}, nothing, psl, 0).result == Result::none);
}

// SPEC §10: a record that could not be fetched says nothing about the policy, so the caller
// must know whether anything aligned; with no record to read adkim/aspf from, alignment is
// relaxed (the default, and the most a record could allow).
TEST_CASE("evaluation: a policy lookup that failed temporarily, aligned or not", "[unit][dmarc]") {
    PublicSuffixList psl;
    Discovery temp;
    temp.status = Discovery::Status::temperror;
    struct Row {
        const char* what;
        bool spf_pass;
        std::string spf_domain;
        std::vector<std::string> dkim;
        bool aligned;
    };
    const std::vector<Row> rows = {
        {"nothing", false, "", {}, false},
        {"SPF fails for the From domain", false, "example.com", {}, false},
        {"SPF passes for another domain", true, "other.example", {}, false},
        {"SPF passes for a subdomain", true, "bounce.example.com", {}, true},
        {"SPF passes for the From domain", true, "example.com", {}, true},
        {"DKIM passes for another domain", false, "", {"other.example"}, false},
        {"DKIM passes for a subdomain", false, "", {"x.other.example", "mail.example.com"}, true},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        Identifiers ids;
        ids.spf_pass = row.spf_pass;
        ids.spf_domain = row.spf_domain;
        ids.dkim_pass_domains = row.dkim;
        auto e = evaluate("Example.COM", temp, ids, psl, 0);
        CHECK(e.result == Result::temperror);
        CHECK(e.from_domain == "example.com");
        CHECK(e.aligned == row.aligned);
    }
    // a record that was found sets it too
    auto lookup = zone({{"_dmarc.example.com", txt({"v=DMARC1; p=reject; adkim=s"})}});
    Identifiers dkim_sub;
    dkim_sub.dkim_pass_domains = {"mail.example.com"};
    auto e = evaluate("example.com", discover("example.com", lookup, psl), dkim_sub, psl, 0);
    CHECK(e.result == Result::fail);
    CHECK_FALSE(e.aligned);
}
