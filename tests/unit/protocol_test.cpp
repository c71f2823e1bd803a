// protocol_test.cpp — the policy request parser: transcripts in, requests out (STYLE §9).
#include <catch2/catch.hpp>

#include "policyd/protocol.hpp"

using postwarden::policy::format_reply;
using postwarden::policy::Limits;
using postwarden::policy::Parser;

namespace {
const std::string request =
    "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
    "sender=a@example.com\nrecipient=b@example.net\n\n";
}

TEST_CASE("a whole request is parsed", "[protocol]") {
    Parser p;
    REQUIRE(p.feed(request));
    auto r = p.next();
    REQUIRE(r);
    CHECK(r->get("protocol_state") == "RCPT");
    CHECK(r->get("sender") == "a@example.com");
    CHECK(r->get("absent").empty());
    CHECK(!p.next());
}

TEST_CASE("a request split at every byte is parsed the same", "[protocol]") {
    Parser p;
    for (char c : request)
        REQUIRE(p.feed(std::string_view(&c, 1)));
    auto r = p.next();
    REQUIRE(r);
    CHECK(r->get("recipient") == "b@example.net");
    CHECK(r->size() == 5);
}

TEST_CASE("several requests in one read come out in order", "[protocol]") {
    Parser p;
    std::string two = request + "request=smtpd_access_policy\nsender=second@x\n\n";
    REQUIRE(p.feed(two + "request=smtpd_access_policy\nsender=third"));
    CHECK(p.next()->get("sender") == "a@example.com");
    CHECK(p.next()->get("sender") == "second@x");
    CHECK(!p.next());
    CHECK(p.partial());
    REQUIRE(p.feed("@x\n\n"));
    CHECK(p.next()->get("sender") == "third@x");
}

TEST_CASE("values keep '=' and CRLF line ends are accepted", "[protocol]") {
    Parser p;
    REQUIRE(p.feed("ccert_subject=CN=a,O=b\r\nsender=x@y\r\n\r\n"));
    auto r = p.next();
    REQUIRE(r);
    CHECK(r->get("ccert_subject") == "CN=a,O=b");
    CHECK(r->get("sender") == "x@y");
}

TEST_CASE("an empty value is kept as empty (null sender)", "[protocol]") {
    Parser p;
    REQUIRE(p.feed("sender=\n\n"));
    auto r = p.next();
    REQUIRE(r);
    CHECK(r->has("sender"));
    CHECK(r->get("sender").empty());
}

TEST_CASE("limits stop the parser with a clear error", "[protocol]") {
    Limits small{64, 4, 200};
    SECTION("line too long, even without a newline") {
        Parser p(small);
        CHECK(!p.feed(std::string(65, 'x')));
        CHECK(p.error() == "line longer than 64 bytes");
    }
    SECTION("too many attributes") {
        Parser p(small);
        CHECK(!p.feed("a=1\nb=2\nc=3\nd=4\ne=5\n\n"));
        CHECK(p.error() == "more than 4 attributes");
    }
    SECTION("request too large") {
        Limits l{100, 100, 50};
        Parser p(l);
        CHECK(!p.feed("a=" + std::string(30, 'x') + "\nb=" + std::string(30, 'y') + "\n\n"));
        CHECK(p.error() == "request larger than 50 bytes");
    }
    SECTION("too many requests sent without waiting for a reply") {
        Limits l;
        l.max_waiting = 3;
        Parser p(l);
        CHECK(!p.feed("a=1\n\nb=2\n\nc=3\n\nd=4\n\n"));
        CHECK(p.error() == "more than 3 requests sent without waiting for a reply");
        int handed_out = 0;
        while (p.next())
            ++handed_out;
        CHECK(handed_out == 3);  // the ones before the error are still answered
        Parser q(l);             // taking them as they come keeps a client within the limit
        for (int i = 0; i < 10; ++i) {
            CHECK(q.feed("a=1\n\n"));
            CHECK(q.next());
        }
    }
    SECTION("a line without '='") {
        Parser p(small);
        CHECK(!p.feed("garbage\n"));
        CHECK(p.error() == "malformed line: expected name=value");
        CHECK(!p.feed("sender=x\n\n"));  // stays failed
        CHECK(!p.next());
    }
    SECTION("binary junk") {
        Parser p(small);
        std::string junk = "\x01\xff\x00\x7f";
        junk.push_back('\n');
        CHECK(!p.feed(junk));
        CHECK(p.failed());
    }
}

TEST_CASE("attribute names must look like Postfix' names", "[protocol]") {
    Parser p;
    CHECK(!p.feed("\x01\xfe=value\n"));
    CHECK(p.error() == "malformed attribute name");
    Parser q;
    CHECK(q.feed("sasl_username=\xc3\xa9l\xc3\xa8ve\n"));  // 8-bit values are fine
}

TEST_CASE("requests before an error are still handed out", "[protocol]") {
    Parser p;
    CHECK(!p.feed(request + "junk\n"));
    CHECK(p.next());
}

TEST_CASE("replies are one line and end with an empty line", "[protocol]") {
    CHECK(format_reply("DUNNO") == "action=DUNNO\n\n");
    CHECK(format_reply("REJECT a\nb") == "action=REJECT a b\n\n");
}
