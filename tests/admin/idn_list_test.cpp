// idn_list_test.cpp — `postwarden list` with internationalized domains, against a real
// redis-server: whatever spelling the operator types (U-labels, A-labels, any case), the CLI
// stores the A-label spelling, and that is what policyd's list plan asks Redis for whichever
// spelling a sender uses. del and show accept either spelling.
#include <catch2/catch.hpp>

#include <set>

#include "common/lists.hpp"
#include "tests/admin/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

std::vector<std::string> set_members(RedisServer& redis, const std::string& key) {
    std::vector<std::string> out;
    for (const auto& e : redis.run({"SMEMBERS", key}).elements)
        out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
}

// Whether policyd, planning its lookups for this mail as it does (common/lists.hpp), finds a
// member in the sets Redis holds: one SMISMEMBER per query, as the list cache asks when it is
// not tracking.
bool policyd_finds(RedisServer& redis, std::string sender, std::string rcpt_domain,
                   std::string_view wanted_key) {
    auto sender_domain = sender.substr(sender.rfind('@') + 1);
    auto config = default_config();
    const ListPlan plan({parse_ip("203.0.113.5"), sender, sender_domain, rcpt_domain, "", false},
                        config);
    for (const auto& q : plan) {
        if (q.key != wanted_key) continue;
        std::vector<std::string> argv{"SMISMEMBER", std::string(q.key)};
        for (const auto& m : q.spelled())
            argv.push_back(m);
        for (const auto& e : redis.run(argv).elements)
            if (e.integer) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("IDN list members: stored as A-labels whatever spelling is typed", "[admin][idna]") {
    RedisServer redis;
    Cli cli(redis);
    auto r = cli.run({"list", "add", "block:domain", "Bücher.example", "xn--MNCHEN-3ya.example",
                      "ＢÜＣＨＥＲ．example"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:block:domain") ==
          std::vector<std::string>{"xn--bcher-kva.example", "xn--mnchen-3ya.example"});
    CHECK(r.out.find("added xn--bcher-kva.example to block:domain") != std::string::npos);
    for (auto sender : {"x@bücher.example", "x@BÜCHER.example", "x@xn--bcher-kva.example",
                        "x@mail.Bücher.example", "x@münchen.example"}) {
        INFO(sender);
        CHECK(policyd_finds(redis, sender, "", "pw:block:domain"));
    }

    r = cli.run({"list", "add", "block:sender", "JÖRG@Bücher.example", "Anna@MÜNCHEN.example"});
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:block:sender") ==
          std::vector<std::string>{"anna@xn--mnchen-3ya.example", "jÖrg@xn--bcher-kva.example"});
    CHECK(policyd_finds(redis, "jÖrg@xn--bcher-kva.example", "", "pw:block:sender"));
    CHECK(policyd_finds(redis, "anna@münchen.example", "", "pw:block:sender"));

    r = cli.run({"list", "add", "block:tld", "РФ"});
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:block:tld") == std::vector<std::string>{"xn--p1ai"});
    CHECK(policyd_finds(redis, "a@shop.рф", "", "pw:block:tld"));
    CHECK(policyd_finds(redis, "a@shop.xn--p1ai", "", "pw:block:tld"));
    r = cli.run({"list", "add", "allow:tld", "Магаз.РФ"});
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:allow:tld") == std::vector<std::string>{"xn--80aairv.xn--p1ai"});
    CHECK(policyd_finds(redis, "a@магаз.рф", "", "pw:allow:tld"));
}

TEST_CASE("IDN list names: the recipient domain is spelled in A-labels", "[admin][idna]") {
    RedisServer redis;
    Cli cli(redis);
    auto r = cli.run({"list", "add", "block:sender:Bücher.example", "spam@example.org"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:block:sender:xn--bcher-kva.example") ==
          std::vector<std::string>{"spam@example.org"});
    CHECK(redis.run({"EXISTS", "pw:block:sender:bücher.example"}).integer == 0);
    for (auto rcpt : {"bücher.example", "xn--bcher-kva.example", "BÜCHER.example"}) {
        INFO(rcpt);
        CHECK(policyd_finds(redis, "spam@example.org", rcpt,
                            "pw:block:sender:xn--bcher-kva.example"));
    }
    r = cli.run({"list", "show", "block:sender:xn--BCHER-kva.example"});
    CHECK(r.out == "spam@example.org\n");
    r = cli.run({"list", "add", "allow:domain:München.example", "Bücher.example"});
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:allow:domain:xn--mnchen-3ya.example") ==
          std::vector<std::string>{"xn--bcher-kva.example"});
}

TEST_CASE("IDN list del and show: either spelling, and U-labels stored by hand go too",
          "[admin][idna]") {
    RedisServer redis;
    Cli cli(redis);
    REQUIRE(cli.run({"list", "add", "block:domain", "bücher.example", "münchen.example"}).code ==
            0);
    auto r = cli.run({"list", "show", "block:domain", "BÜCHER.example", "xn--mnchen-3ya.example"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find("xn--bcher-kva.example   listed") != std::string::npos);

    r = cli.run({"list", "del", "block:domain", "Bücher.example"});
    CHECK(r.code == 0);
    CHECK(r.out == "removed xn--bcher-kva.example from block:domain\n");
    r = cli.run({"list", "del", "block:domain", "xn--mnchen-3ya.example"});
    CHECK(r.code == 0);
    CHECK(redis.run({"EXISTS", "pw:block:domain"}).integer == 0);

    // An entry an operator wrote as typed, before postwarden spelled IDNs in A-labels: del with
    // the same spelling removes it, and the A-label one.
    redis.run({"SADD", "pw:block:domain", "bücher.example", "xn--bcher-kva.example"});
    r = cli.run({"list", "del", "block:domain", "Bücher.example"});
    CHECK(r.code == 0);
    CHECK(r.out.find("removed bücher.example") != std::string::npos);
    CHECK(redis.run({"EXISTS", "pw:block:domain"}).integer == 0);
    redis.run({"SADD", "pw:block:domain", "bücher.example"});
    r = cli.run({"list", "del", "block:domain", "bücher.example"});
    CHECK(r.code == 0);
    CHECK(r.out ==
          "removed bücher.example from block:domain\n"
          "xn--bcher-kva.example was not on block:domain\n");
}

TEST_CASE("IDN list add: names without an A-label spelling are refused", "[admin][idna]") {
    RedisServer redis;
    Cli cli(redis);
    struct Bad {
        std::vector<std::string> args;
        std::string why;
    };
    std::string long_label;
    for (int i = 0; i < 60; ++i)
        long_label += "ü";
    std::vector<Bad> cases = {
        {{"block:domain", "ok.example", "\xf0\x9f\x92\xa9.la"}, "internationalized domain"},
        {{"block:domain", "ok.example", "b\xfcr.example"}, "internationalized domain"},
        {{"block:domain", "ok.example", long_label + ".example"}, "internationalized domain"},
        {{"block:sender", "ok@example.com", "x@-bücher.example"}, "internationalized domain"},
        {{"block:tld", "icu", "\xf0\x9f\x92\xa9"}, "internationalized TLD"},
        {{"block:tld", "icu", "shop\u3002рф"}, "one label only"},
        {{"block:sender:\xf0\x9f\x92\xa9.la", "x@example.com"}, "recipient domain"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"list", "add"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        auto r = cli.run(args);
        INFO(c.args[0] << ": " << r.err);
        CHECK(r.code == 2);
        CHECK(r.err.find(c.why) != std::string::npos);
        CHECK(r.out.empty());
    }
    CHECK(redis.run({"DBSIZE"}).integer == 0);
    // An ASCII name is what DNS holds: an IDNA2003 xn-- name stays listable.
    auto r = cli.run({"list", "add", "block:domain", "XN--LS8H.la"});
    CHECK(r.code == 0);
    CHECK(set_members(redis, "pw:block:domain") == std::vector<std::string>{"xn--ls8h.la"});
}
