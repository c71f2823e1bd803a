// idn_test.cpp — postwarden-milter with internationalized domains, against a real DNS server
// that publishes only A-label names (as DNS does): a DMARC policy, an SPF record and a DKIM key
// published for "bücher.example" live at "xn--bcher-kva.example", and every spelling of the
// domain in the From field, the envelope and d= must find them (RFC 8616). A From domain that
// has no A-label spelling is unreadable, not a domain without a policy.
#include <catch2/catch.hpp>

#include "tests/milter/support.hpp"

using namespace postwarden::test;

namespace {

std::string idn_zone() {
    return "xn--bcher-kva.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
           "_dmarc.xn--bcher-kva.example TXT \"v=DMARC1; p=reject\"\n"
           "rsa._domainkey.xn--bcher-kva.example TXT \"v=DKIM1; k=rsa; p=" +
           keys().rsa_public +
           "\"\n"
           "other.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
           "_dmarc.example TXT \"v=DMARC1; p=reject\"\n";
}

struct World {
    RedisServer redis;
    DnsServer dns{idn_zone()};
    MilterProcess milter{config(redis, dns, "[greylist]\nenabled = no\n")};
    Outcome run(const Transaction& t) { return MilterClient(milter).run(t); }
};

Transaction mail(const std::string& sender, const std::string& from) {
    Transaction t;
    t.sender = sender;
    t.headers = headers_from(from);
    return t;
}

const std::string rejected = "550 5.7.1 Rejected by DMARC policy for ";

}  // namespace

TEST_CASE("IDN DMARC: the policy at the A-label name rejects a U-label From", "[milter][idna]") {
    World w;
    // SPF passes for other.test, which does not align with the From domain; no signature.
    for (auto from : {"x@bücher.example", "X <x@BÜCHER.example>", "x@xn--bcher-kva.example",
                      "x@bücher\u3002example"}) {
        auto out = w.run(mail("x@other.test", from));
        INFO(from << "\n" << w.milter.log());
        CHECK(out.reply == 'y');
        CHECK(out.text.rfind(rejected, 0) == 0);
    }
    CHECK(w.dns.queries("_dmarc.xn--bcher-kva.example") >= 1);
    CHECK(w.dns.queries("_dmarc.bücher.example") == 0);
    CHECK(w.milter.log().find("action=reject reason=dmarc") != std::string::npos);
}

TEST_CASE("IDN DMARC: SPF and DKIM of the A-label domain align with a U-label From",
          "[milter][idna]") {
    World w;
    // The envelope in U-labels: SPF is looked up at the A-label name and aligns.
    auto out = w.run(mail("x@bücher.example", "x@BÜCHER.example"));
    INFO(w.milter.log());
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=pass") != std::string::npos);

    // No SPF for the From domain, a signature by d=xn--bcher-kva.example: DKIM aligns.
    auto t = mail("x@other.test", "x@bücher.example");
    t.client_ip = "203.0.113.9";
    t.headers.insert(t.headers.begin(), {"DKIM-Signature", sign(t.headers, t.body, "rsa", "rsa",
                                                                "xn--bcher-kva.example")});
    out = w.run(t);
    CHECK(out.accepted());
    auto ar = out.added("Authentication-Results");
    CHECK(ar.find("dkim=pass") != std::string::npos);
    CHECK(ar.find("dmarc=pass") != std::string::npos);
}

TEST_CASE("IDN DMARC: a From domain without an A-label spelling is a malformed From",
          "[milter][idna]") {
    World w;
    // An emoji under a p=reject domain: were it read as a domain without a policy, it would
    // pass as dmarc=none.
    auto out = w.run(mail("x@other.test", "x@\xf0\x9f\x92\xa9.example"));
    INFO(w.milter.log());
    CHECK(out.reply == 'y');
    CHECK(out.text.rfind("550 5.7.1 Rejected by DMARC policy", 0) == 0);
    CHECK(w.milter.log().find("malformed From") != std::string::npos);
    out = w.run(mail("x@other.test", "x@b\xfcr.example"));  // Latin-1, not UTF-8
    CHECK(out.reply == 'y');
}
