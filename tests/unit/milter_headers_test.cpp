// milter_headers_test.cpp — the header work of the milter that is pure: Authentication-Results
// formatting and authserv-id parsing (common/auth_results.hpp), From address lists
// (common/mail_header.hpp) and DKIM canonical body lengths for l= (common/dkim.hpp).
#include <catch2/catch.hpp>

#include "common/auth_results.hpp"
#include "common/dkim.hpp"
#include "common/mail_header.hpp"

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
