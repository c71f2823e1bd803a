// milter_headers_test.cpp — the header work of the milter that is pure: Authentication-Results
// formatting and authserv-id parsing (common/auth_results.hpp), From address lists
// (common/mail/mail_header.hpp) and DKIM canonical body lengths for l= (common/mail/dkim.hpp).
#include <catch2/catch.hpp>

#include "common/auth_results.hpp"
#include "common/config.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/mail_header.hpp"

using namespace postwarden;

TEST_CASE("Authentication-Results: one header, RFC 8601 entries, hostile values quoted",
          "[unit][auth_results]") {
    AuthResults r;
    r.authserv_id = "mx.example.org";
    r.spf_mailfrom = AuthResults::Spf{"pass", "example.com"};
    r.dkim.push_back({"pass", "example.com", "sel", "ed25519-sha256", ""});
    r.dkim.push_back({"fail", "evil;dmarc=pass", "s", "rsa-sha256", "body hash (mismatch)"});
    r.dmarc.push_back({"pass", "example.com", "p=reject"});
    CHECK(format_auth_results(r) ==
          "mx.example.org;\n\tspf=pass smtp.mailfrom=example.com;\n\t"
          "dkim=pass header.d=example.com header.s=sel header.a=ed25519-sha256;\n\t"
          "dkim=fail (body hash mismatch) header.d=\"evil;dmarc=pass\" header.s=s "
          "header.a=rsa-sha256;\n\tdmarc=pass (p=reject) header.from=example.com");
    AuthResults empty;
    empty.authserv_id = "mx";
    CHECK(format_auth_results(empty) == "mx;\n\tdkim=none;\n\tdmarc=none");
    CHECK(header_value_token("a\r\nb\"c") == "\"ab\\\"c\"");
}

// Every form RFC 8601 allows for the id that is ours (value = token / quoted-string, CFWS
// around it, case-insensitive, a DNS name with or without its final dot) must be recognised,
// or a forged verdict stays in the message; and nothing else may be taken for ours.
TEST_CASE("authserv-id: every spelling of ours is recognised, others are not",
          "[unit][auth_results]") {
    struct Row {
        const char* value;
        bool ours;
    };
    const std::vector<Row> rows = {
        {"mx.example; dmarc=pass", true},
        {"mx.example 1; dmarc=pass", true},  // with a version
        {"MX.Example; dmarc=pass", true},
        {"mx.example.; dmarc=pass", true},  // absolute DNS name
        {"MX.EXAMPLE.; none", true},
        {"\"mx.example\"; dmarc=pass", true},
        {"\"MX.example.\"; dmarc=pass", true},
        {"\"mx\\.example\"; dmarc=pass", true},  // quoted-pair
        {"\" mx.example \"; dmarc=pass", true},  // FWS inside the quotes
        {"(c) mx.example; dmarc=pass", true},
        {"(a (nested) comment) mx.example; dmarc=pass", true},
        {"(comment with \\) paren) mx.example; none", true},
        {"\r\n\t(folded)\r\n mx.example\n\t; dmarc=pass", true},
        {" \t mx.example(after); dmarc=pass", true},
        {"mx.example(.other.example; dkim=pass", true},  // the CVE-2020-12272 shape
        {"mx.example@other.example; dkim=pass", true},   // '@' ends a token too
        {"mx.example;dmarc=pass", true},
        {"mx.example", true},
        {"mx.example.other; dmarc=pass", false},
        {"other.mx.example; dmarc=pass", false},
        {"mx.example..; dmarc=pass", false},
        {"mx-example; dmarc=pass", false},
        {"\"mx.example; dmarc=pass", false},  // unterminated quoted string
        {"(mx.example) other.example; dmarc=pass", false},
        {"(unterminated mx.example; dmarc=pass", false},
        {"; dmarc=pass", false},
        {"", false},
    };
    for (const auto& row : rows) {
        INFO(row.value);
        CHECK(claims_authserv_id(row.value, "mx.example") == row.ours);
        CHECK(claims_authserv_id(row.value, "MX.example.") == row.ours);  // ours, spelt so
    }
}

// The id we write must be one token, or no header could ever claim it and nothing forged would
// be removed: anything else stops the program at start with FILE:LINE: [milter] authserv_id.
TEST_CASE("authserv-id: [milter] authserv_id must be a token", "[unit][auth_results]") {
    auto error_of = [](const std::string& value) {
        std::string error;
        auto c = parse_config("[milter]\nauthserv_id = " + value + "\n", "test.conf", &error);
        return c ? std::string() : error;
    };
    for (const char* good : {"mx.example", "MX.Example.", "mx1", "mail_in.example-1.net"}) {
        INFO(good);
        CHECK(error_of(good).empty());
    }
    for (const char* bad : {"mx example", "mx;example", "mx(example)", "\"mx\"", "mx@example",
                            "mx/example", "mx:1", "mx\texample", "m\xc3\xa9.example", "mx=1",
                            "[mx.example]", "mx,example", "mx\\example", "mx.example..", ".mx"}) {
        INFO(bad);
        CHECK(error_of(bad).rfind("test.conf:2: [milter] authserv_id: ", 0) == 0);
    }
}

TEST_CASE("authserv-id of incoming Authentication-Results", "[unit][auth_results]") {
    CHECK(authserv_id_of("mx.example.org; spf=pass") == "mx.example.org");
    CHECK(authserv_id_of(" (comment (nested)) MX.Example.ORG 1; none") == "mx.example.org");
    CHECK(authserv_id_of("\"mx.example.org\"; none") == "mx.example.org");
    CHECK_FALSE(authserv_id_of(";"));
    CHECK_FALSE(authserv_id_of(""));
    CHECK(claims_authserv_id("mx.example.org(.other.example; dkim=pass", "MX.example.org"));
    CHECK_FALSE(claims_authserv_id("mx.example.org.evil; dkim=pass", "mx.example.org"));
    CHECK_FALSE(claims_authserv_id("other.example; dkim=pass", "mx.example.org"));
}

namespace {
std::vector<std::string> addresses(std::string_view value) {
    std::vector<std::string> out;
    auto list = parse_address_list(value);
    if (!list) return {"<error>"};
    for (const auto& a : *list)
        out.push_back(a.address());
    return out;
}
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("From address lists", "[unit][from]") {
    CHECK(addresses("user@Example.COM") == V{"user@example.com"});
    CHECK(addresses("\"Doe, John\" <john@example.com>") == V{"john@example.com"});
    CHECK(addresses("John (the man) <john@example.com> (work)") == V{"john@example.com"});
    CHECK(addresses("a@x.example, B <b@y.example>") == V{"a@x.example", "b@y.example"});
    CHECK(addresses("Team: a@x.example, b@y.example;") == V{"a@x.example", "b@y.example"});
    CHECK(addresses("undisclosed-recipients:;") == V{});
    CHECK(addresses("<@route.example:user@example.com>") == V{"user@example.com"});
    CHECK(addresses("\"odd@local\"@example.com") == V{"\"odd@local\"@example.com"});
    CHECK(addresses("=?utf-8?q?J=C3=B6rg?= <j@example.com>") == V{"j@example.com"});
    // a display name that looks like an address: DMARC judges the real one
    CHECK(addresses("a@x.example <b@y.example>") == V{"b@y.example"});
    // unreadable: the CVE shapes (unbalanced brackets) and missing parts
    CHECK(addresses("Bank <ceo@bank.example") == V{"<error>"});
    CHECK(addresses("ceo@bank.example>") == V{"<error>"});
    CHECK(addresses("John Doe john@example.com") == V{"<error>"});
    CHECK(addresses("nobody") == V{"<error>"});
    CHECK(addresses("x@[192.0.2.1]") == V{"<error>"});
    CHECK(addresses("x@") == V{"<error>"});
    CHECK(addresses("\"unterminated <a@b.example>") == V{"<error>"});
    CHECK(addresses(std::string(100000, '(')) == V{"<error>"});
}

TEST_CASE("canonical body length for l=", "[unit][dkim]") {
    dkim::BodyLength empty;
    CHECK(empty.simple() == 2);
    CHECK(empty.relaxed() == 0);
    dkim::BodyLength b;
    b.feed("Hello  \t world \r\n\r\n");
    b.feed("\r\n");
    CHECK(b.simple() == 17);   // "Hello  \t world \r\n": trailing empty lines dropped
    CHECK(b.relaxed() == 13);  // "Hello world\r\n"
    b.feed("more");            // an unterminated last line gets its CRLF, empty lines count
    CHECK(b.simple() == 17 + 4 + 6);
    CHECK(b.relaxed() == 13 + 4 + 6);
}
