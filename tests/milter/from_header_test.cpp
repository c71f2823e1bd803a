// from_header_test.cpp — the header From as postwarden-milter reads it for DMARC and S8: valid
// fields with brackets, commas and routes inside quotes or comments are read, not refused as
// malformed; S8 compares a quoted local part in its RFC 5321 form.
#include <catch2/catch.hpp>

#include "tests/milter/support.hpp"

using namespace postwarden::test;

namespace {

const std::string no_greylist = "[greylist]\nenabled = no\n";

Transaction inbound(const std::string& from) {
    Transaction t;
    t.sender = "news@sender.test";  // SPF passes from 192.0.2.10: DMARC passes when aligned
    t.headers = headers_from(from);
    return t;
}

Transaction submission(const std::string& login, const std::string& from) {
    Transaction t;
    t.client_ip = "198.51.100.44";
    t.login = login;
    t.sender = login;
    t.headers = headers_from(from);
    return t;
}

}  // namespace

TEST_CASE("From: quoted brackets, comments and routes are read, DMARC judges the address",
          "[milter]") {
    MilterWorld w(no_greylist);
    for (const std::string from :
         {"\"John <Sales>\" <news@sender.test>", "\"Doe, John; G:\" <news@sender.test>",
          "News (the <list>, \"really\") <@relay.test:news@sender.test>",
          "=?utf-8?Q?Doe,_John?= <news@sender.test>", "news . letter@sender.test (x)"}) {
        auto out = w.run(inbound(from));
        INFO("From: " << from << "\n" << w.milter.log());
        CHECK(out.accepted());
        CHECK(out.added("Authentication-Results").find("dmarc=pass") != std::string::npos);
        CHECK(out.added("Authentication-Results").find("header.from=sender.test") !=
              std::string::npos);
    }
    // the address in angle brackets is the one DMARC judges, whatever the display name says
    auto out = w.run(inbound("\"news@sender.test\" <ceo@other.test>"));
    CHECK(out.added("Authentication-Results").find("header.from=other.test") != std::string::npos);
    // a field that cannot be read is still refused
    out = w.run(inbound("\"John <Sales> <news@sender.test>"));
    CHECK(out.text.rfind("550 5.7.1 Rejected by DMARC policy: malformed From", 0) == 0);
}

TEST_CASE("S8: a quoted local part is compared in its RFC 5321 form", "[milter]") {
    MilterWorld w(no_greylist);
    const std::string mismatch = "550 5.7.1 Sender address does not match your login";
    CHECK(w.run(submission("alice@rcpt.example", "\"alice\"@rcpt.example")).accepted());
    CHECK(w.run(submission("alice@rcpt.example", "\"John <Sales>\" <alice@rcpt.example>"))
              .accepted());
    CHECK(w.run(submission("alice@rcpt.example", "\"ali ce\"@rcpt.example")).text == mismatch);
    CHECK(w.run(submission("alice@rcpt.example", "ali(x)ce@rcpt.example")).text == mismatch);
    CHECK(w.run(submission("alice@rcpt.example", "\"alice\\\"\"@rcpt.example")).text == mismatch);
}
