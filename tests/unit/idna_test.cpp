// idna_test.cpp — internationalized domain names in one spelling (common/idna.hpp,
// common/address.hpp): the conversion itself, and every place that compares or looks up a
// domain seeing one domain whichever way it is written: the operator's lists as policyd and the
// milter plan them, greylist keys, DMARC discovery and alignment, the header From.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "common/address.hpp"
#include "common/idna.hpp"
#include "common/mail/dmarc.hpp"
#include "common/mail/mail_header.hpp"
#include "policyd/decision.hpp"

using namespace postwarden;
using namespace postwarden::policy;

TEST_CASE("IDN to A-labels: mapping, case, dots, already converted", "[unit][idna]") {
    CHECK(to_a_label("bücher.example") == "xn--bcher-kva.example");
    CHECK(to_a_label("BÜCHER.Example") == "xn--bcher-kva.example");
    CHECK(to_a_label("bücher\u3002example") == "xn--bcher-kva.example");   // ideographic full stop
    CHECK(to_a_label("ＢÜＣＨＥＲ．example") == "xn--bcher-kva.example");  // full-width forms
    CHECK(to_a_label("xn--bcher-kva.example") == "xn--bcher-kva.example");
    CHECK(to_a_label("XN--BCHER-KVA.Example") == "xn--bcher-kva.example");
    CHECK(to_a_label("shop.РФ") == "shop.xn--p1ai");
    CHECK(to_a_label("faß.de") == "xn--fa-hia.de");  // non-transitional: ß is not "ss"
    CHECK(to_a_label("bücher.example.") == "xn--bcher-kva.example.");
    CHECK(to_a_label("_dmarc.Bücher.example") == "_dmarc.xn--bcher-kva.example");
    CHECK(to_a_label("sel._domainkey.bücher.example") == "sel._domainkey.xn--bcher-kva.example");
    CHECK(to_a_label("") == "");
}

TEST_CASE("IDN to A-labels: ASCII names are only lower-cased", "[unit][idna]") {
    CHECK(to_a_label("Mail.Example.COM") == "mail.example.com");
    // An ASCII name is what goes on the wire already: an xn-- label of IDNA2003 (an emoji
    // domain) or even invalid punycode is left alone, so such names stay reachable and listable.
    CHECK(to_a_label("xn--ls8h.la") == "xn--ls8h.la");
    CHECK(to_a_label("XN--ZZ.example") == "xn--zz.example");
    CHECK(is_ascii("plain.example"));
    CHECK_FALSE(is_ascii("bücher.example"));
    CHECK(is_ascii(""));
    for (std::size_t length = 1; length <= 24; ++length)  // eight bytes a step, and the rest
        for (std::size_t at = 0; at < length; ++at) {
            std::string text(length, 'a');
            CHECK(is_ascii(text));
            text[at] = '\x80';
            CHECK_FALSE(is_ascii(text));
        }
}

TEST_CASE("IDN to A-labels: names that cannot be converted", "[unit][idna]") {
    CHECK_FALSE(to_a_label("\xf0\x9f\x92\xa9.la"));  // emoji: IDNA2008 disallows it
    CHECK_FALSE(to_a_label("b\xfcr.example"));       // Latin-1, not UTF-8
    CHECK_FALSE(to_a_label("b\xc3.example"));        // a UTF-8 sequence cut short
    CHECK_FALSE(to_a_label("bücher.xn--zz"));        // invalid punycode beside a U-label
    CHECK_FALSE(to_a_label("-bücher.example"));      // hyphen at the start
    CHECK_FALSE(to_a_label("bücher..example"));      // empty label
    CHECK_FALSE(to_a_label(".bücher.example"));
    CHECK_FALSE(to_a_label(std::string("bücher\0.example", 16)));  // NUL inside
    std::string long_label;
    for (int i = 0; i < 60; ++i)
        long_label += "ü";  // 120 bytes as UTF-8; its A-label is over 63 octets
    CHECK_FALSE(to_a_label(long_label + ".example"));
    std::string fits;
    for (int i = 0; i < 40; ++i)
        fits += "ü";  // 80 bytes as UTF-8, but 47 octets as an A-label
    auto converted = to_a_label(fits + ".example");
    REQUIRE(converted);
    CHECK(converted->size() == std::string("xn--tda").size() + 39 + std::string(".example").size());
    std::string long_name = "bücher";
    while (long_name.size() < 250)
        long_name += ".abcdefghij";
    CHECK_FALSE(to_a_label(long_name));  // over 253 octets once converted
}

TEST_CASE("canonical domains and addresses: one spelling for lists and keys", "[unit][idna]") {
    CHECK(canonical_domain("Example.ORG") == "example.org");
    CHECK(canonical_domain("BÜCHER.example") == "xn--bcher-kva.example");
    // Unconvertible: lower-cased (ASCII), equal only to itself.
    CHECK(canonical_domain("\xf0\x9f\x92\xa9.LA") == "\xf0\x9f\x92\xa9.la");
    CHECK(canonical_address("Alice@Example.ORG") == "alice@example.org");
    CHECK(canonical_address("Alice@BÜCHER.example") == "alice@xn--bcher-kva.example");
    // A UTF-8 local part keeps its non-ASCII letters; ASCII ones are lower-cased.
    CHECK(canonical_address("JÖRG@Bücher.example") == "jÖrg@xn--bcher-kva.example");
    CHECK(canonical_address("jörg@example.org") == "jörg@example.org");
    CHECK(canonical_address("") == "");
}

namespace {

Request rcpt(std::string sender, std::string recipient, std::string login = "") {
    Request r;
    r.add("request", "smtpd_access_policy");
    r.add("protocol_state", "RCPT");
    r.add("client_address", "203.0.113.5");
    r.add("client_name", "mail.example.org");
    r.add("helo_name", "mail.example.org");
    r.add("sender", sender);
    r.add("recipient", recipient);
    if (!login.empty()) r.add("sasl_username", login);
    return r;
}

// The verdict policyd reaches for this request when Redis holds exactly `members`
// ("key member" strings).
ListVerdict verdict(const Request& request, std::set<std::string> members) {
    auto c = default_config();
    auto f = facts_of(request, c);
    const ListPlan plan(list_subject(f), c);
    std::vector<std::vector<bool>> hits;
    for (const auto& q : plan) {
        std::vector<bool> h;
        for (const auto& m : q.spelled())
            h.push_back(members.count(std::string(q.key) + " " + m) > 0);
        hits.push_back(h);
    }
    return evaluate_lists(plan.queries(), hits, f.outbound).verdict;
}

}  // namespace

TEST_CASE("IDN lists: every spelling of a sender domain meets its A-label entry",
          "[unit][idna][lists]") {
    const std::set<std::string> blocked{"pw:block:domain xn--bcher-kva.example"};
    for (auto sender : {"x@xn--bcher-kva.example", "x@bücher.example", "x@BÜCHER.example",
                        "x@XN--BCHER-KVA.EXAMPLE", "x@mail.Bücher.example"}) {
        INFO(sender);
        CHECK(verdict(rcpt(sender, "bob@example.net"), blocked) == ListVerdict::block_sender);
        CHECK(verdict(rcpt(sender, "bob@example.net", "user"), blocked) ==
              ListVerdict::block_sender);
    }
    CHECK(verdict(rcpt("x@bucher.example", "bob@example.net"), blocked) == ListVerdict::none);
}

TEST_CASE("IDN lists: sender addresses, TLDs and their exemptions", "[unit][idna][lists]") {
    const std::set<std::string> sender{"pw:block:sender jörg@xn--bcher-kva.example"};
    CHECK(verdict(rcpt("jörg@Bücher.example", "b@example.net"), sender) ==
          ListVerdict::block_sender);
    CHECK(verdict(rcpt("JöRG@xn--bcher-kva.example", "b@example.net"), sender) ==
          ListVerdict::block_sender);

    const std::set<std::string> tld{"pw:block:tld xn--p1ai"};
    CHECK(verdict(rcpt("a@shop.xn--p1ai", "b@example.net"), tld) == ListVerdict::block_tld);
    CHECK(verdict(rcpt("a@shop.рф", "b@example.net"), tld) == ListVerdict::block_tld);
    CHECK(verdict(rcpt("a@SHOP.РФ", "b@example.net", "user"), tld) == ListVerdict::block_tld);
    auto exempt = tld;
    exempt.insert("pw:allow:tld xn--80aairv.xn--p1ai");  // "магаз.рф"
    CHECK(verdict(rcpt("a@магаз.рф", "b@example.net"), exempt) == ListVerdict::none);
    CHECK(verdict(rcpt("a@Магаз.РФ", "b@example.net"), exempt) == ListVerdict::none);
}

TEST_CASE("IDN lists: the recipient domain in a list's name is spelled in A-labels",
          "[unit][idna][lists]") {
    const std::set<std::string> per_domain{
        "pw:block:sender:xn--bcher-kva.example spam@example.org",
        "pw:allow:domain:xn--mnchen-3ya.example xn--bcher-kva.example"};
    CHECK(verdict(rcpt("spam@example.org", "bob@Bücher.example"), per_domain) ==
          ListVerdict::block_sender);
    CHECK(verdict(rcpt("spam@example.org", "bob@xn--bcher-kva.example"), per_domain) ==
          ListVerdict::block_sender);
    auto global_block = per_domain;
    global_block.insert("pw:block:domain xn--bcher-kva.example");
    CHECK(verdict(rcpt("x@bücher.example", "bob@MÜNCHEN.example"), global_block) ==
          ListVerdict::allow);
}

TEST_CASE("IDN lists: an unconvertible domain meets only its own spelling and its parents",
          "[unit][idna][lists]") {
    CHECK(verdict(rcpt("x@\xf0\x9f\x92\xa9.example", "b@example.net"),
                  {"pw:block:domain example"}) == ListVerdict::block_sender);
    CHECK(verdict(rcpt("x@\xf0\x9f\x92\xa9.example", "b@example.net"),
                  {"pw:block:domain \xf0\x9f\x92\xa9.example"}) == ListVerdict::block_sender);
    CHECK(verdict(rcpt("x@\xf0\x9f\x92\xa9.example", "b@example.net"),
                  {"pw:block:domain xn--ls8h.example"}) == ListVerdict::none);
}

TEST_CASE("IDN greylist keys: one triplet and one client for every spelling",
          "[unit][idna][greylist]") {
    auto c = default_config();
    auto client = parse_ip("203.0.113.77");
    auto a = greylist_keys(client, "X@Bücher.example", "b@MÜNCHEN.example", "BÜCHER.example", c);
    auto b = greylist_keys(client, "x@xn--bcher-kva.example", "b@xn--mnchen-3ya.example",
                           "xn--bcher-kva.example", c);
    CHECK(a.identity == "xn--bcher-kva.example");
    CHECK(a.triplet == b.triplet);
    CHECK(a.client == b.client);
    CHECK(a.triplet ==
          "pw:grey:{xn--bcher-kva.example}:x@xn--bcher-kva.example:"
          "b@xn--mnchen-3ya.example");
}

TEST_CASE("IDN DMARC: alignment across spellings, discovery at the A-label name",
          "[unit][idna][dmarc]") {
    dmarc::PublicSuffixList psl;
    using dmarc::Alignment;
    CHECK(dmarc::aligned("xn--bcher-kva.example", "BÜCHER.example", Alignment::strict, psl));
    CHECK(dmarc::aligned("mail.xn--bcher-kva.example", "bücher.example", Alignment::relaxed, psl));
    CHECK(psl.organizational_domain("www.shop.РФ") == "shop.xn--p1ai");
    std::vector<std::string> asked;
    dmarc::TxtLookup lookup = [&](const std::string& name) {
        asked.push_back(name);
        return dns::Answer{dns::Status::nxdomain, {}, {}, {}, {}, {}, ""};
    };
    dmarc::discover("mail.Bücher.example", lookup, psl);
    CHECK(asked == std::vector<std::string>{"_dmarc.mail.xn--bcher-kva.example",
                                            "_dmarc.xn--bcher-kva.example"});
}

TEST_CASE("IDN header From: a domain without an A-label spelling is unreadable",
          "[unit][idna][from]") {
    auto ok = parse_address_list("Jörg <jörg@Bücher.example>");
    REQUIRE(ok);
    REQUIRE(ok->size() == 1);
    CHECK(ok->front().domain == "bücher.example");  // as written: S8 compares it with the login
    CHECK_FALSE(parse_address_list("x@\xf0\x9f\x92\xa9.example"));
    CHECK_FALSE(parse_address_list("x@b\xfcr.example"));
    CHECK(parse_address_list("x@xn--ls8h.la"));
}
