// inet_test.cpp — IP/CIDR parsing, matching, and the candidate spellings for list lookups.
#include <catch2/catch.hpp>

#include <algorithm>

#include "common/address.hpp"
#include "common/endpoint.hpp"
#include "common/inet.hpp"

using namespace postwarden;

TEST_CASE("IP addresses parse and print canonically", "[inet]") {
    CHECK(parse_ip("192.0.2.1")->to_string() == "192.0.2.1");
    CHECK(parse_ip("2001:DB8:0:0::1")->to_string() == "2001:db8::1");
    CHECK(!parse_ip("192.0.2.256"));
    CHECK(!parse_ip(""));
    CHECK(!parse_ip("example.com"));
    CHECK(!parse_ip(std::string(100, '1')));
    auto mapped = parse_ip("::ffff:192.0.2.7");
    REQUIRE(mapped);
    CHECK(!mapped->v6);
    CHECK(mapped->to_string() == "192.0.2.7");
}

TEST_CASE("CIDR networks parse, reject host bits and match", "[inet]") {
    std::string error;
    auto n = parse_cidr("192.0.2.0/24", &error);
    REQUIRE(n);
    CHECK(n->contains(*parse_ip("192.0.2.200")));
    CHECK(!n->contains(*parse_ip("192.0.3.1")));
    CHECK(!n->contains(*parse_ip("::1")));
    CHECK(!parse_cidr("10.1.2.3/8", &error));
    CHECK(error.find("did you mean 10.0.0.0/8") != std::string::npos);
    CHECK(!parse_cidr("10.0.0.0/33", &error));
    CHECK(!parse_cidr("10.0.0.0/", &error));
    auto v6 = parse_cidr("2001:db8::/32", &error);
    REQUIRE(v6);
    CHECK(v6->contains(*parse_ip("2001:db8:ffff::1")));
    CHECK(!v6->contains(*parse_ip("2001:db9::1")));
    CHECK(parse_cidr("0.0.0.0/0", &error)->contains(*parse_ip("203.0.113.9")));
    auto list = parse_cidr_list("127.0.0.0/8, ::1/128", &error);
    REQUIRE(list);
    CHECK(list->size() == 2);
    CHECK(any_contains(*list, *parse_ip("::1")));
    CHECK(!any_contains(*list, *parse_ip("::2")));
}

TEST_CASE("network candidates cover every prefix length", "[inet]") {
    auto v4 = network_candidates(*parse_ip("203.0.113.77"));
    CHECK(v4.size() == 34);
    CHECK(v4.front() == "203.0.113.77");
    auto has = [&](const std::vector<std::string>& c, const std::string& s) {
        return std::find(c.begin(), c.end(), s) != c.end();
    };
    CHECK(has(v4, "203.0.113.77/32"));
    CHECK(has(v4, "203.0.113.0/24"));
    CHECK(has(v4, "203.0.112.0/20"));
    CHECK(has(v4, "0.0.0.0/0"));
    auto v6 = network_candidates(*parse_ip("2001:db8:1:2::5"));
    CHECK(v6.size() == 130);
    CHECK(has(v6, "2001:db8:1:2::/64"));
    CHECK(has(v6, "2001:db8::/32"));
}

TEST_CASE("addresses and domains", "[address]") {
    CHECK(domain_of("User@Example.COM") == "example.com");
    CHECK(domain_of("") == "");
    CHECK(domain_of("no-at-sign") == "");
    CHECK(domain_of("\"a@b\"@example.org") == "example.org");
    CHECK(domain_and_parents("a.b.example.com.") ==
          std::vector<std::string_view>{"a.b.example.com", "b.example.com", "example.com", "com"});
    CHECK(domain_and_parents("").empty());
    CHECK(top_level_domain("mail.example.icu") == "icu");
    CHECK(top_level_domain("[192.0.2.1]") == "");
    CHECK(top_level_domain("") == "");
}

TEST_CASE("endpoints", "[endpoint]") {
    std::string error;
    auto a = parse_endpoint("127.0.0.1:6379", &error);
    REQUIRE(a);
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == 6379);
    auto b = parse_endpoint("[::1]:10040", &error);
    REQUIRE(b);
    CHECK(b->host == "::1");
    CHECK(b->to_string() == "[::1]:10040");
    auto c = parse_endpoint("unix:/run/redis.sock", &error);
    REQUIRE(c);
    CHECK(c->kind == Endpoint::Kind::unix_socket);
    CHECK(!parse_endpoint("::1:10040", &error));
    CHECK(!parse_endpoint("host:0", &error));
    CHECK(!parse_endpoint("host:65536", &error));
    CHECK(!parse_endpoint("unix:relative", &error));
    CHECK(!parse_endpoint(":25", &error));
}
