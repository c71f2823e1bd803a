// from_address_test.cpp — the From parser (common/mail/mail_header.hpp) on a table of the forms
// RFC 5322 §3.4 and §4.4 allow, the ones real mailers write, and the ones that cannot be read;
// then its bounds. Each row gives every address as MailAddress::address() (the RFC 5321 form S8
// compares) or the start of the error. tests/mail/from_differential.py compares the same parser
// with Python's email.headerregistry over generated fields.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "common/mail/mail_header.hpp"

using namespace postwarden;

namespace {

struct Row {
    std::string value;
    std::vector<std::string> addresses;  // when readable
    std::string error;                   // the start of the error, when not
};

void check(const Row& row) {
    INFO("From: " << row.value);
    auto list = read_address_list(row.value);
    if (!row.error.empty()) {
        CHECK(list.error.rfind(row.error, 0) == 0);
        CHECK(list.addresses.empty());
        CHECK_FALSE(parse_address_list(row.value));
        return;
    }
    CHECK(list.error == "");
    std::vector<std::string> got;
    for (const auto& a : list.addresses)
        got.push_back(a.address());
    CHECK(got == row.addresses);
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("From address: RFC 5322 forms and what mailers write", "[unit][from]") {
    const std::vector<Row> rows = {
        // addr-spec, name-addr, angle-addr
        {"alice@example.org", V{"alice@example.org"}, ""},
        {"<alice@example.org>", V{"alice@example.org"}, ""},
        {"Alice <alice@Example.ORG>", V{"alice@example.org"}, ""},
        {"Alice Smith<alice@example.org>", V{"alice@example.org"}, ""},
        {"\"Smith, Alice\" <alice@example.org>", V{"alice@example.org"}, ""},
        // a quoted display name holds specials: '<' '>' '@' ',' ';' ':' and escapes
        {"\"John <Sales>\" <alice@example.org>", V{"alice@example.org"}, ""},
        {"\"a@b.example, c@d.example; G:\" <alice@example.org>", V{"alice@example.org"}, ""},
        {"\"Say \\\"hi\\\" \\\\o/\" <alice@example.org>", V{"alice@example.org"}, ""},
        {"\"\" <alice@example.org>", V{"alice@example.org"}, ""},
        // comments, nested, with escapes, anywhere CFWS may stand
        {"alice@example.org (Alice)", V{"alice@example.org"}, ""},
        {"(x)alice(y)@(z)example(w).org(v)", V{"alice@example.org"}, ""},
        {"Alice (Sales (EMEA) \\) dept) <alice@example.org>", V{"alice@example.org"}, ""},
        {"Alice <alice@example.org> (work, \"quoted\" <x@y>)", V{"alice@example.org"}, ""},
        // folding: CRLF or Postfix's LF, then a blank
        {"Alice\r\n <alice@example.org>", V{"alice@example.org"}, ""},
        {"\"Alice\n\tSmith\"\n <alice@example.org>,\n\tbob@example.net",
         V{"alice@example.org", "bob@example.net"}, ""},
        // quoted local parts compare in the RFC 5321 form
        {"\"alice\"@example.org", V{"alice@example.org"}, ""},
        {"\"ali ce\"@example.org", V{"\"ali ce\"@example.org"}, ""},
        {"\"ali\\ce\"@example.org", V{"alice@example.org"}, ""},
        {"\"a\\\"b\"@example.org", V{"\"a\\\"b\"@example.org"}, ""},
        {"\"odd@local\"@example.org", V{"\"odd@local\"@example.org"}, ""},
        {"\"a.b\"@example.org", V{"a.b@example.org"}, ""},
        {"\"a..b\"@example.org", V{"\"a..b\"@example.org"}, ""},
        {"\"\"@example.org", V{"\"\"@example.org"}, ""},
        {"\"ali\r\n ce\"@example.org", V{"\"ali ce\"@example.org"}, ""},
        {"x!#$%&'*+-/=?^_`{|}~@example.org", V{"x!#$%&'*+-/=?^_`{|}~@example.org"}, ""},
        // obsolete forms (RFC 5322 §4.4)
        {"a . b @ example . org", V{"a.b@example.org"}, ""},
        {"\"a\".b@example.org", V{"a.b@example.org"}, ""},
        {"\"a b\".c@example.org", V{"\"a b.c\"@example.org"}, ""},
        {"<@relay.example:alice@example.org>", V{"alice@example.org"}, ""},
        {"Alice <@a.example,@b.example:alice@example.org>", V{"alice@example.org"}, ""},
        {"<,@a.example,,@[192.0.2.1]:alice@example.org>", V{"alice@example.org"}, ""},
        {"J. R. \"Bob\" Dobbs <bob@example.org>", V{"bob@example.org"}, ""},
        {"Bob. <bob@example.org>", V{"bob@example.org"}, ""},
        {"a@x.example,,b@y.example", V{"a@x.example", "b@y.example"}, ""},
        {", a@x.example ,", V{"a@x.example"}, ""},
        {"G: ,a@x.example,, b@y.example,;", V{"a@x.example", "b@y.example"}, ""},
        // several mailboxes, groups
        {"a@x.example, B <b@y.example>", V{"a@x.example", "b@y.example"}, ""},
        {"Team: a@x.example, B <b@y.example>;", V{"a@x.example", "b@y.example"}, ""},
        {"Team: a@x.example;, c@z.example", V{"a@x.example", "c@z.example"}, ""},
        {"undisclosed-recipients:;", V{}, ""},
        {"undisclosed-recipients: ; (none)", V{}, ""},
        {"", V{}, ""},
        {" (only a comment) ", V{}, ""},
        // RFC 2047 encoded words in display names: skipped, whatever their text holds
        {"=?utf-8?q?J=C3=B6rg?= <j@example.org>", V{"j@example.org"}, ""},
        {"=?utf-8?Q?Doe,_John?= <j@example.org>", V{"j@example.org"}, ""},
        {"=?iso-8859-1?q?a<b>@c;d:?= =?utf-8?b?w7Y=?= <j@example.org>", V{"j@example.org"}, ""},
        {"\"=?utf-8?q?J=C3=B6rg?=\" <j@example.org>", V{"j@example.org"}, ""},
        // ... and plain text in an addr-spec (RFC 2047 §5)
        {"=?utf-8?q?a?=@example.org", V{"=?utf-8?q?a?=@example.org"}, ""},
        {"=?x?q?a.b?=@example.org", V{"=?x?q?a.b?=@example.org"}, ""},
        // UTF-8 (RFC 6532)
        {"Jörg <jörg@bücher.example>", V{"jörg@bücher.example"}, ""},
        {"\"Jörg Müller\" <JÖRG@Bücher.EXAMPLE>", V{"JÖRG@bücher.example"}, ""},
        {"\xe7\x94\xb0\xe4\xb8\xad <tanaka@example.jp>", V{"tanaka@example.jp"}, ""},
        // 8-bit bytes that are not UTF-8 in a display name (old mailers): skipped
        {"J\xf6rg <j@example.org>", V{"j@example.org"}, ""},
        // beyond RFC 5322 on purpose: '@' in a display name, dots anywhere in a local part, a
        // trailing dot on the domain
        {"alice@example.org <alice@example.org>", V{"alice@example.org"}, ""},
        {"a@x.example <b@y.example>", V{"b@y.example"}, ""},
        {"a..b@docomo.example", V{"\"a..b\"@docomo.example"}, ""},
        {"a.@docomo.example", V{"\"a.\"@docomo.example"}, ""},
        {"alice@example.org.", V{"alice@example.org"}, ""},
        {"alice@EXAMPLE.org. (trailing dot)", V{"alice@example.org"}, ""},
        // unreadable: brackets and quotes (the OpenDMARC bypass shapes)
        {"Bank <ceo@bank.example", {}, "unbalanced '<'"},
        {"ceo@bank.example>", {}, "'>' without '<'"},
        {"<<ceo@bank.example>>", {}, "'<' inside"},
        {"<a@x.example> <b@y.example>", {}, "text after '>'"},
        {"Bob <b@y.example> trailer", {}, "text after '>'"},
        {"\"unterminated <a@b.example>", {}, "unterminated quoted string"},
        {"a@b.example (unterminated", {}, "unterminated comment"},
        {"a@b.example)", {}, "')' without '('"},
        {"a\\b@example.org", {}, "'\\' outside"},
        {"a@b.example]", {}, "']' without '['"},
        {"John [Sales] <a@b.example>", {}, "unexpected domain literal in a display name"},
        // unreadable: not a mailbox
        {"John Doe john@example.com", {}, "words without '.'"},
        {"a\"b\"@example.org", {}, "words without '.'"},
        {"a@x.example b@y.example", {}, "unexpected word"},
        {"nobody", {}, "no '@'"},
        {"@example.org", {}, "empty local part"},
        {"alice@", {}, "no domain after '@'"},
        {"alice@@example.org", {}, "unexpected '@'"},
        {"a@b@example.org", {}, "unexpected '@'"},
        {"<>", {}, "empty address '<>'"},
        {"Alice <>", {}, "empty address '<>'"},
        {"Doe, John <john@example.org>", {}, "no '@'"},
        {"<@relay.example alice@example.org>", {}, "route without ':'"},
        {"<@:alice@example.org>", {}, "route without a domain"},
        {"=?utf-8?q?a,b?=@example.org", {}, "unexpected encoded word in a local part"},
        // unreadable: groups
        {"a@x.example; b@y.example", {}, "';' outside a group"},
        {"a@x.example;", {}, "';' outside a group"},
        {"Team: a@x.example, b@y.example", {}, "group without ';'"},
        {"G: a@x.example, H: b@y.example;;", {}, "group inside a group"},
        {": a@x.example;", {}, "group without a name"},
        {"G: a@x.example; b@y.example", {}, "unexpected word after an address"},
        // unreadable: domains DMARC cannot look up
        {"x@[192.0.2.1]", {}, "address literal"},
        {"Alice <alice@[IPv6:2001:db8::1]>", {}, "address literal"},
        {"alice@example..org", {}, "unexpected '.' in the domain"},
        {"alice@.example.org", {}, "unexpected '.' in the domain"},
        {"alice@exa!mple.org", {}, "domain is not a host name"},
        {"alice@\"example\".org", {}, "unexpected quoted string in the domain"},
        {"alice@" + std::string(64, 'a') + ".org", {}, "domain label longer than 63"},
        {"alice@" + std::string(250, 'a') + ".org", {}, "domain longer than 253"},
        {"alice@b\xfc"
         "cher.example",
         {},
         "invalid UTF-8 in the domain"},
        // unreadable: what no mailbox holds
        {"\"a\\\x01\"@example.org", {}, "control character in the local part"},
        {"\"\xc0\xaf\"@example.org", {}, "invalid UTF-8 in the local part"},
        {std::string("a@b\0c.example", 13), {}, "NUL byte"},
    };
    for (const auto& row : rows)
        check(row);
}

TEST_CASE("From address: local part and domain as read", "[unit][from]") {
    auto list = read_address_list("\"Ali \\\"Ce\\\"\" . x @ Example.ORG.");
    REQUIRE(list.ok());
    REQUIRE(list.addresses.size() == 1);
    CHECK(list.addresses[0].local == "Ali \"Ce\".x");
    CHECK(list.addresses[0].domain == "example.org");
    CHECK(list.addresses[0].address() == "\"Ali \\\"Ce\\\".x\"@example.org");
    // the error says where reading stopped
    CHECK(read_address_list("Bank <ceo@bank.example").error == "unbalanced '<' at byte 5");
}

TEST_CASE("From address: bounded in length, comment depth and addresses", "[unit][from]") {
    std::string nested =
        "a@b.example " + std::string(max_comment_depth, '(') + std::string(max_comment_depth, ')');
    CHECK(read_address_list(nested).ok());
    std::string deeper = "a@b.example " + std::string(max_comment_depth + 1, '(') +
                         std::string(max_comment_depth + 1, ')');
    CHECK(read_address_list(deeper).error.rfind("comments nested deeper than 32", 0) == 0);
    CHECK_FALSE(read_address_list(std::string(100000, '(')).ok());

    std::string many;
    for (std::size_t i = 0; i < max_addresses; ++i)
        many += "a" + std::to_string(i) + "@x.example,";
    CHECK(read_address_list(many).addresses.size() == max_addresses);
    CHECK(read_address_list(many + "z@x.example").error.rfind("more than 256 addresses", 0) == 0);

    std::string longest(max_address_list_bytes, ' ');
    longest.replace(0, 11, "a@b.example");
    CHECK(read_address_list(longest).ok());
    CHECK(read_address_list(longest + " ").error.rfind("longer than 65536 bytes", 0) == 0);
}

TEST_CASE("From address: time stays linear on hostile shapes", "[unit][from]") {
    // Shapes that make a backtracking or rescanning parser quadratic: many '<' or '@' or dots
    // in one element, many empty elements, quotes and comments that are nearly closed.
    const std::vector<std::string> pieces = {"<",  "@",       ".",  ",",  "a",    "\"a",
                                             "(a", "=?a?q?b", "a@", "G:", "<@a,", "\\"};
    for (const auto& piece : pieces) {
        std::string value;
        while (value.size() + piece.size() <= max_address_list_bytes)
            value += piece;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < 10; ++i)
            (void)read_address_list(value);
        auto took = std::chrono::steady_clock::now() - start;
        INFO("piece " << piece);
        CHECK(took < std::chrono::seconds(2));
    }
}
