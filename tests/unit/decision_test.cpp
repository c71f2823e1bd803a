// decision_test.cpp — the pure decision functions: which sets are asked, what their answers
// mean (SPEC §3 precedence), greylist keys, reply texts and the log line.
#include <catch2/catch.hpp>

#include <set>

#include "policyd/decision.hpp"

using namespace postwarden;
using namespace postwarden::policy;

namespace {

Request rcpt(std::string sender, std::string recipient, std::string client = "203.0.113.5",
             std::string login = "") {
    Request r;
    r.add("request", "smtpd_access_policy");
    r.add("protocol_state", "RCPT");
    r.add("client_address", client);
    r.add("client_name", "mail.example.org");
    r.add("helo_name", "mail.example.org");
    r.add("queue_id", "4BXq1k2Yz");
    r.add("sender", sender);
    r.add("recipient", recipient);
    if (!login.empty()) r.add("sasl_username", login);
    return r;
}

// Answers the plan as if Redis held exactly `members` ("key member" strings).
ListOutcome decide(const Facts& f, const Config& c, std::set<std::string> members) {
    const ListPlan plan(list_subject(f), c);
    std::vector<std::vector<bool>> hits;
    for (const auto& q : plan) {
        std::vector<bool> h;
        for (const auto& m : q.spelled())
            h.push_back(members.count(std::string(q.key) + " " + m) > 0);
        hits.push_back(h);
    }
    return evaluate_lists(plan.queries(), hits, f.outbound);
}

}  // namespace

TEST_CASE("facts are normalised and the direction is found", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("Alice@Example.ORG", "Bob@Example.NET"), c);
    CHECK(f.sender == "alice@example.org");
    CHECK(f.sender_domain == "example.org");
    CHECK(f.recipient_domain == "example.net");
    CHECK(!f.outbound);
    CHECK(facts_of(rcpt("a@b.c", "d@e.f", "127.0.0.1"), c).outbound);
    CHECK(facts_of(rcpt("a@b.c", "d@e.f", "203.0.113.5", "User"), c).outbound);
    CHECK(facts_of(rcpt("a@b.c", "d@e.f", "203.0.113.5", "User"), c).login == "user");
}

TEST_CASE("list precedence: recipient domain over global, allow over block", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("spam@bad.example", "bob@example.net"), c);
    CHECK(decide(f, c, {}).verdict == ListVerdict::none);
    CHECK(decide(f, c, {"pw:block:sender spam@bad.example"}).verdict == ListVerdict::block_sender);
    CHECK(decide(f, c, {"pw:block:domain example"}).verdict == ListVerdict::block_sender);
    CHECK(decide(f, c, {"pw:block:net 203.0.113.0/24"}).verdict == ListVerdict::block_network);
    CHECK(decide(f, c, {"pw:block:net 203.0.113.5"}).verdict == ListVerdict::block_network);
    CHECK(decide(f, c, {"pw:block:net 203.0.113.5/32"}).verdict == ListVerdict::block_network);
    // same level: allow beats block
    CHECK(
        decide(f, c, {"pw:block:sender spam@bad.example", "pw:allow:net 203.0.113.0/24"}).verdict ==
        ListVerdict::allow);
    // per recipient domain beats global, both ways
    CHECK(decide(f, c,
                 {"pw:allow:domain bad.example", "pw:block:sender:example.net spam@bad.example"})
              .verdict == ListVerdict::block_sender);
    CHECK(decide(f, c,
                 {"pw:block:net 203.0.113.0/24", "pw:allow:sender:example.net spam@bad.example"})
              .verdict == ListVerdict::allow);
    // another recipient domain's list does not apply
    CHECK(decide(f, c, {"pw:block:sender:example.com spam@bad.example"}).verdict ==
          ListVerdict::none);
    auto o = decide(f, c, {"pw:block:domain:example.net bad.example"});
    CHECK(o.matched == "pw:block:domain:example.net bad.example");
}

TEST_CASE("TLD blocks and their exemptions", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("x@shop.example.icu", "bob@example.net"), c);
    CHECK(decide(f, c, {"pw:block:tld icu"}).verdict == ListVerdict::block_tld);
    CHECK(decide(f, c, {"pw:block:tld icu", "pw:allow:tld example.icu"}).verdict ==
          ListVerdict::none);
    CHECK(decide(f, c, {"pw:block:tld icu", "pw:allow:tld shop.example.icu"}).verdict ==
          ListVerdict::none);
    // an inbound allow entry skips block:tld too
    CHECK(decide(f, c, {"pw:block:tld icu", "pw:allow:sender x@shop.example.icu"}).verdict ==
          ListVerdict::allow);
}

TEST_CASE("outbound: login first, block:tld whatever the allow lists say", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("user@example.icu", "x@gmail.example", "198.51.100.1", "user"), c);
    REQUIRE(f.outbound);
    CHECK(decide(f, c, {"pw:block:login user"}).verdict == ListVerdict::block_login);
    CHECK(decide(f, c, {"pw:block:login user", "pw:allow:sender user@example.icu"}).verdict ==
          ListVerdict::block_login);
    CHECK(decide(f, c, {"pw:block:tld icu", "pw:allow:sender user@example.icu"}).verdict ==
          ListVerdict::block_tld);
    CHECK(decide(f, c, {"pw:block:sender user@example.icu"}).verdict == ListVerdict::block_sender);
    // outbound ignores network lists and per-recipient-domain lists
    CHECK(decide(f, c, {"pw:block:net 198.51.100.1"}).verdict == ListVerdict::none);
    CHECK(decide(f, c, {"pw:block:sender:gmail.example user@example.icu"}).verdict ==
          ListVerdict::none);
}

TEST_CASE("the null sender only meets the network lists", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("", "bob@example.net"), c);
    for (const auto& q : ListPlan(list_subject(f), c))
        CHECK(q.what == ListWhat::net);
    CHECK(decide(f, c, {"pw:block:net 203.0.0.0/16"}).verdict == ListVerdict::block_network);
}

// What a plan asks, as text: "key kind what per-domain member…" per query.
std::vector<std::string> asked(const ListPlan& plan) {
    std::vector<std::string> out;
    for (const auto& q : plan) {
        std::string line = std::string(q.key) + " " + std::to_string(static_cast<int>(q.kind)) +
                           std::to_string(static_cast<int>(q.what)) +
                           (q.per_recipient_domain ? "d" : "g");
        for (const auto& m : q.spelled())
            line += " " + m;
        out.push_back(line);
    }
    return out;
}

TEST_CASE("keys spelled once per recipient domain ask what a plan of its own asks", "[decision]") {
    auto c = default_config();
    ListKeys keys;
    auto in = facts_of(rcpt("A@Sub.Example.ORG", "b@example.net"), c);
    auto other = facts_of(rcpt("x@example.org", "y@example.com", "198.51.100.9"), c);
    auto out = facts_of(rcpt("a@example.org", "b@example.net", "203.0.113.5", "User"), c);
    // longer than a DNS name: spelled for its plan, not kept
    auto odd = facts_of(rcpt("x@example.org", "y@" + std::string(300, 'd') + ".example"), c);
    for (int round = 0; round < 2; ++round)  // the second round finds the keys kept
        for (const auto* f : {&in, &other, &out, &odd})
            CHECK(asked(ListPlan(list_subject(*f), c, &keys)) ==
                  asked(ListPlan(list_subject(*f), c)));
    const ListPlan plan(list_subject(in), c, &keys);
    REQUIRE(plan.size() == 14);
    CHECK(plan.queries()[0].key == "pw:allow:sender:example.net");
    CHECK(plan.queries()[6].key == "pw:allow:sender");
    // A reload with another prefix: no key of the old one is handed out again.
    c.redis.prefix = "other:";
    const ListPlan renamed(list_subject(in), c, &keys);
    for (const auto& q : renamed)
        CHECK(q.key.substr(0, 6) == "other:");
    // A plan keeps its keys alive when the cache lets them go (it holds 4096 domains).
    for (int i = 0; i < 5000; ++i)
        (void)keys.level(c.redis.prefix, "d" + std::to_string(i) + ".example");
    CHECK(renamed.queries()[0].key == "other:allow:sender:example.net");
}

TEST_CASE("greylist keys: subnet or SPF domain, one hash tag", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("A@x.example", "b@y.example", "203.0.113.77"), c);
    auto k = greylist_keys(f.client, f.sender, f.recipient, "", c);
    CHECK(k.identity == "203.0.113.0/24");
    CHECK(k.triplet == "pw:grey:{203.0.113.0/24}:a@x.example:b@y.example");
    CHECK(k.client == "pw:awl-domains:{203.0.113.0/24}");
    CHECK(k.network);
    auto spf = greylist_keys(f.client, f.sender, f.recipient, "X.example", c);
    CHECK(spf.triplet == "pw:grey:{x.example}:a@x.example:b@y.example");
    // an SPF domain never earns auto-allow: it may authorize every address
    CHECK_FALSE(spf.network);
    CHECK(greylist_auto_allow(spf, c) == 0);
    CHECK(greylist_auto_allow(k, c) == c.greylist.auto_allow_clients);
    CHECK(greylist_args(spf, 1, c).at(4) == "0");
    auto v6 = greylist_keys(*parse_ip("2001:db8:1:2:3::9"), "a@x", "b@y", "", c);
    CHECK(v6.identity == "2001:db8:1:2::/64");
    CHECK(greylist_keys(f.client, f.sender, f.recipient, "evil}{tag", c).client ==
          "pw:awl-domains:{evil__tag}");
}

TEST_CASE("replies use the SPEC texts", "[decision]") {
    auto c = default_config();
    CHECK(list_decision({ListVerdict::block_login, "k m"}, c).action ==
          "REJECT 5.7.1 Sender address rejected: Access denied");
    CHECK(list_decision({ListVerdict::block_sender, "k m"}, c).action ==
          "REJECT 5.7.1 Sender email or domain is blacklisted from sending through this relay");
    CHECK(list_decision({ListVerdict::block_network, "k m"}, c).action ==
          "REJECT 5.7.1 Your network is blacklisted");
    CHECK(list_decision({ListVerdict::block_tld, "k m"}, c).action ==
          "REJECT 5.7.1 Your domain's TLD is blacklisted from sending through this relay");
    CHECK(greylist_decision({GreylistVerdict::defer_new, 300}, c).action ==
          "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds");
    CHECK(greylist_decision({GreylistVerdict::passed, 312}, c).action ==
          "PREPEND X-Greylist: delayed 312 seconds by postwarden");
    CHECK(greylist_decision({GreylistVerdict::known, 0}, c).action == "DUNNO");
    CHECK(unavailable_decision(FailMode::open, "greylist", c).action == "DUNNO");
    CHECK(unavailable_decision(FailMode::closed, "greylist", c).action ==
          "DEFER_IF_PERMIT 4.3.0 Policy service unavailable");
    CHECK(!parse_greylist_reply("bogus", 1));
    CHECK(!parse_greylist_reply("new", -1));
    CHECK(parse_greylist_reply("early", 12)->verdict == GreylistVerdict::defer_early);
}

TEST_CASE("the log line has a fixed field order and no control characters", "[decision]") {
    auto c = default_config();
    auto f = facts_of(rcpt("a\nb@x.example", "b@y.example"), c);
    auto line = log_line(f, greylist_decision({GreylistVerdict::defer_new, 300}, c));
    CHECK(line ==
          "4BXq1k2Yz: action=DEFER_IF_PERMIT reason=greylist client=mail.example.org[203.0.113.5] "
          "helo=<mail.example.org> sender=<a\\x0ab@x.example> rcpt=<b@y.example> triplet=new");
    // at either end, and DEL
    f = facts_of(rcpt("\177a@x.example\r", "b@y.example"), c);  // \177: DEL
    line = log_line(f, greylist_decision({GreylistVerdict::defer_new, 300}, c));
    CHECK(line.find(" sender=<\\x7fa@x.example\\x0d> ") != std::string::npos);
}

TEST_CASE("when the lists fail, the next check's fail_mode answers", "[decision]") {
    auto c = default_config();
    c.lists.fail_mode = FailMode::open;
    c.greylist.enabled = true;
    c.greylist.fail_mode = FailMode::closed;
    c.quota.fail_mode = FailMode::closed;
    auto in = facts_of(rcpt("a@x.example", "b@y.example"), c);
    auto out = facts_of(rcpt("a@x.example", "b@y.example", "203.0.113.5", "user"), c);

    auto d = lists_unavailable_decision(in, false, c);
    CHECK(d.reason == "greylist-unavailable");
    CHECK(d.detail == "fail_mode=closed");
    d = lists_unavailable_decision(out, true, c);
    CHECK(d.reason == "quota-unavailable");
    CHECK(d.detail == "fail_mode=closed");
    d = lists_unavailable_decision(out, false, c);  // a SASL user without quotas
    CHECK(d.reason == "lists-unavailable");
    CHECK(d.action == "DUNNO");

    c.greylist.enabled = false;
    d = lists_unavailable_decision(in, false, c);
    CHECK(d.reason == "lists-unavailable");
    CHECK(d.detail == "fail_mode=open");

    c.lists.fail_mode = FailMode::closed;  // the lists' own closed mode comes first
    for (const auto* f : {&in, &out}) {
        d = lists_unavailable_decision(*f, true, c);
        CHECK(d.reason == "lists-unavailable");
        CHECK(d.action == "DEFER_IF_PERMIT 4.3.0 Policy service unavailable");
    }
}
