// policyd_test.cpp — postwarden-policyd as Postfix meets it: a real daemon from the build tree, a
// real redis-server, requests over TCP. Every row of the SPEC §4 reply table, list precedence,
// edits seen at once, greylisting timings, and Redis going away under the daemon.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::string greylisted_prefix = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in ";

// Configuration for a test: our Redis, a DNS server that is not there (SPF: temperror, so the
// client network is the greylist identity), and whatever the test adds.
std::string config_for(RedisServer& redis, const std::string& extra = "") {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\ntimeout_ms = 200\n[dns]\nnameservers = 127.0.0.1:" + std::to_string(free_port()) +
           "\ntimeout_ms = 200\n" + extra;
}

void sadd(RedisServer& redis, const std::string& key, const std::string& member) {
    redis.run({"SADD", key, member});
}

Attributes outbound(const std::string& login, const std::string& sender) {
    auto a = inbound("198.51.100.7", sender, "friend@elsewhere.example");
    a["sasl_username"] = login;
    return a;
}

}  // namespace

TEST_CASE("every list row of the reply table", "[policyd][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient client(policyd.port());

    sadd(redis, "pw:block:login", "mallory");
    CHECK(client.ask(outbound("Mallory", "mallory@example.com")) ==
          "REJECT 5.7.1 Sender address rejected: Access denied");

    sadd(redis, "pw:block:sender", "spam@bad.example");
    CHECK(client.ask(inbound("192.0.2.10", "spam@bad.example", "bob@example.net")) ==
          "REJECT 5.7.1 Sender email or domain is blacklisted from sending through this relay");

    sadd(redis, "pw:block:domain", "evil.example");
    CHECK(client.ask(inbound("192.0.2.10", "x@mail.evil.example", "bob@example.net")) ==
          "REJECT 5.7.1 Sender email or domain is blacklisted from sending through this relay");

    sadd(redis, "pw:block:net", "198.18.0.0/15");
    CHECK(client.ask(inbound("198.19.4.4", "a@fine.example", "bob@example.net")) ==
          "REJECT 5.7.1 Your network is blacklisted");
    sadd(redis, "pw:block:net", "2001:db8:bad::/48");
    CHECK(client.ask(inbound("2001:db8:bad:1::25", "a@fine.example", "bob@example.net")) ==
          "REJECT 5.7.1 Your network is blacklisted");

    sadd(redis, "pw:block:tld", "icu");
    CHECK(client.ask(inbound("192.0.2.10", "a@shop.icu", "bob@example.net")) ==
          "REJECT 5.7.1 Your domain's TLD is blacklisted from sending through this relay");
    CHECK(client.ask(outbound("user@example.com", "a@shop.icu")) ==
          "REJECT 5.7.1 Your domain's TLD is blacklisted from sending through this relay");
    sadd(redis, "pw:allow:tld", "shop.icu");
    CHECK(client.ask(outbound("user@example.com", "a@shop.icu")) == "DUNNO");

    // nothing to say: an outbound mail that no list names, well under its quota
    CHECK(client.ask(outbound("user@example.com", "user@example.com")) == "DUNNO");
    // other protocol states are not ours to decide
    auto data = inbound("192.0.2.10", "a@fine.example", "bob@example.net");
    data["protocol_state"] = "DATA";
    CHECK(client.ask(data) == "DUNNO");
    CHECK(policyd.log().find("4BXq1k2Yz: action=REJECT reason=block-net "
                             "client=mail.example.org[198.19.4.4]") != std::string::npos);
}

TEST_CASE("list edits take effect on the next request, per recipient domain first",
          "[policyd][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "[greylist]\nenabled = no\n"));
    PolicyClient client(policyd.port());
    auto mail = inbound("203.0.113.9", "news@shop.example", "bob@example.net");

    CHECK(client.ask(mail) == "DUNNO");
    sadd(redis, "pw:block:domain", "shop.example");
    CHECK(client.ask(mail).rfind("REJECT 5.7.1 Sender email", 0) == 0);
    // the domain admin of example.net allows the sender: beats the global block
    sadd(redis, "pw:allow:sender:example.net", "news@shop.example");
    CHECK(client.ask(mail) == "DUNNO");
    // ... but only for mail to example.net
    CHECK(client.ask(inbound("203.0.113.9", "news@shop.example", "eve@example.org"))
              .rfind("REJECT", 0) == 0);
    // a global allow and a per-domain block: the per-domain entry wins
    redis.run({"DEL", "pw:allow:sender:example.net", "pw:block:domain"});
    sadd(redis, "pw:allow:net", "203.0.113.0/24");
    sadd(redis, "pw:block:net:example.net", "203.0.113.9");
    CHECK(client.ask(mail) == "REJECT 5.7.1 Your network is blacklisted");
    redis.run({"SREM", "pw:block:net:example.net", "203.0.113.9"});
    CHECK(client.ask(mail) == "DUNNO");
    // names are compared lower-cased
    sadd(redis, "pw:block:sender", "boss@corp.example");
    CHECK(
        client.ask(inbound("192.0.2.1", "Boss@CORP.example", "x@example.net")).rfind("REJECT", 0) ==
        0);
}

TEST_CASE("greylisting: defer, early retry keeps the clock, pass with header, known",
          "[policyd][greylist][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(
        config_for(redis, "[greylist]\ndelay = 2\nretry_window = 60\nauto_allow_clients = 0\n"));
    PolicyClient client(policyd.port());
    auto mail = inbound("192.0.2.44", "alice@sender.example", "bob@example.net");

    CHECK(client.ask(mail) == greylisted_prefix + "2 seconds");
    std::this_thread::sleep_for(1200ms);
    CHECK(client.ask(mail) == greylisted_prefix + "1 seconds");
    std::this_thread::sleep_for(900ms);
    auto passed = client.ask(mail);
    CHECK(passed.rfind("PREPEND X-Greylist: delayed ", 0) == 0);
    CHECK(passed.find(" seconds by postwarden") != std::string::npos);
    CHECK(client.ask(mail) == "DUNNO");
    // Known now: answered from memory (policyd/greylist_memo.hpp), not by the script again.
    auto evals = redis.info_field("commandstats", "cmdstat_evalsha");
    REQUIRE_FALSE(evals.empty());
    for (int i = 0; i < 5; ++i)
        CHECK(client.ask(mail) == "DUNNO");
    CHECK(redis.info_field("commandstats", "cmdstat_evalsha") == evals);
    // the same network (/24) is the same client; another one starts over
    CHECK(client.ask(inbound("192.0.2.200", "alice@sender.example", "bob@example.net")) == "DUNNO");
    CHECK(client.ask(inbound("192.0.3.44", "alice@sender.example", "bob@example.net")) ==
          greylisted_prefix + "2 seconds");
    // the null sender is a sender like any other
    CHECK(client.ask(inbound("192.0.2.44", "", "bob@example.net")) ==
          greylisted_prefix + "2 seconds");
    // every key written has a TTL: retry_window while waiting, pass_ttl (35 days) once passed
    auto keys = redis.run({"KEYS", "pw:*"});
    REQUIRE(keys.elements.size() >= 3);
    for (const auto& k : keys.elements) {
        INFO(k.str);
        auto ttl = redis.run({"TTL", k.str}).integer;
        CHECK(ttl > 0);
        if (k.str.rfind("pw:grey:", 0) == 0) {
            bool passed_key = redis.run({"GET", k.str}).str == "p";
            CHECK(ttl <= (passed_key ? 35 * 86400 : 60));
            CHECK(ttl > (passed_key ? 35 * 86400 - 60 : 50));
        }
    }
    CHECK(policyd.log().find("reason=greylist-passed") != std::string::npos);
}

// Passing greylisting at RCPT costs a client nothing but a retry: forged triplets retried once
// must not let its network skip greylisting. Auto-allow is earned by accepted mail of several
// sender domains, counted by the milter at end of message (tests/milter/greylist_test.cpp).
TEST_CASE("greylisting: triplets passed at RCPT alone earn no auto-allow", "[policyd][greylist]") {
    RedisServer redis;
    PolicydProcess policyd(
        config_for(redis, "[greylist]\ndelay = 1\nretry_window = 60\nauto_allow_clients = 5\n"));
    PolicyClient client(policyd.port());
    auto forged = [](int i) {
        return inbound("192.0.2.5",
                       "s" + std::to_string(i) + "@forged" + std::to_string(i) + ".example",
                       "r" + std::to_string(i) + "@example.net");
    };
    for (int i = 0; i < 6; ++i)
        CHECK(client.ask(forged(i)).rfind("DEFER_IF_PERMIT", 0) == 0);
    std::this_thread::sleep_for(1100ms);
    for (int i = 0; i < 6; ++i)
        CHECK(client.ask(forged(i)).rfind("PREPEND", 0) == 0);
    CHECK(client.ask(inbound("192.0.2.77", "new@y.example", "c@example.net"))
              .rfind("DEFER_IF_PERMIT", 0) == 0);
    CHECK(redis.run({"EXISTS", "pw:awl-domains:{192.0.2.0/24}"}).integer == 0);
    // What the milter counted is what allows the network.
    redis.run({"SADD", "pw:awl-domains:{192.0.2.0/24}", "a.example", "b.example", "c.example",
               "d.example", "e.example"});
    CHECK(client.ask(inbound("192.0.2.77", "other@z.example", "c@example.net")) == "DUNNO");
    CHECK(policyd.log().find("reason=greylist-client") != std::string::npos);
}

// "calls=N" of a command in INFO commandstats; 0 when it never ran.
long calls(RedisServer& redis, const std::string& command) {
    auto field = redis.info_field("commandstats", "cmdstat_" + command);
    return field.empty() ? 0 : std::stol(field.substr(6, field.find(',') - 6));
}

TEST_CASE("greylisting: a new triplet costs one SET, not the script, and writes what it writes",
          "[policyd][greylist][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(
        config_for(redis, "[greylist]\ndelay = 2\nretry_window = 60\nauto_allow_clients = 3\n"));
    PolicyClient client(policyd.port());
    using namespace std::chrono;
    auto ms = [] {
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    };
    auto before = ms();
    CHECK(client.ask(inbound("192.0.2.44", "alice@sender.example", "bob@example.net")) ==
          greylisted_prefix + "2 seconds");
    auto after = ms();
    CHECK(calls(redis, "evalsha") == 0);
    CHECK(calls(redis, "set") == 1);
    CHECK(calls(redis, "scard") == 1);  // the client's auto-allow domains, sent with the SET
    // The record greylist.lua writes for a new triplet: "f<first seen, ms>", retry_window TTL.
    const std::string key = "pw:grey:{192.0.2.0/24}:alice@sender.example:bob@example.net";
    auto record = redis.run({"GET", key}).str;
    REQUIRE(record.size() > 1);
    CHECK(record[0] == 'f');
    auto first = std::stoll(record.substr(1));
    CHECK(first >= before);
    CHECK(first <= after);
    auto ttl = redis.run({"TTL", key}).integer;
    CHECK(ttl <= 60);
    CHECK(ttl > 50);
    // Seen before: the SET writes nothing, and the script answers (an early retry keeps the clock).
    CHECK(client.ask(inbound("192.0.2.44", "alice@sender.example", "bob@example.net"))
              .rfind(greylisted_prefix, 0) == 0);
    CHECK(calls(redis, "evalsha") == 1);
    CHECK(redis.run({"GET", key}).str == record);
    // A client at the auto-allow threshold is the script's: accepted, and no triplet left (the
    // record the SET wrote is deleted before the script runs, which would not have written it).
    redis.run({"SADD", "pw:awl-domains:{198.51.100.0/24}", "a.example", "b.example", "c.example"});
    CHECK(client.ask(inbound("198.51.100.9", "carol@x.example", "bob@example.net")) == "DUNNO");
    CHECK(redis.run({"EXISTS", "pw:grey:{198.51.100.0/24}:carol@x.example:bob@example.net"})
              .integer == 0);
    CHECK(calls(redis, "evalsha") == 2);
    CHECK(calls(redis, "del") == 1);
    // Below it, the client is greylisted the same way.
    redis.run({"SADD", "pw:awl-domains:{203.0.113.0/24}", "a.example", "b.example"});
    CHECK(client.ask(inbound("203.0.113.9", "dave@x.example", "bob@example.net")) ==
          greylisted_prefix + "2 seconds");
    CHECK(calls(redis, "evalsha") == 2);
    CHECK(policyd.log().find("reason=greylist-client") != std::string::npos);
}

TEST_CASE("greylisting with no delay: a new triplet passes at once", "[policyd][greylist]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "[greylist]\ndelay = 0\nauto_allow_clients = 0\n"));
    PolicyClient client(policyd.port());
    auto mail = inbound("192.0.2.44", "alice@sender.example", "bob@example.net");
    CHECK(client.ask(mail) == "DUNNO");  // nothing delayed: no X-Greylist header
    CHECK(policyd.log().find("reason=greylist-passed") != std::string::npos);
    CHECK(redis.run({"GET", "pw:grey:{192.0.2.0/24}:alice@sender.example:bob@example.net"}).str ==
          "p");
    CHECK(client.ask(mail) == "DUNNO");
}

TEST_CASE("allow lists skip greylisting, outbound is never greylisted", "[policyd][greylist]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient client(policyd.port());
    sadd(redis, "pw:allow:domain", "partner.example");
    CHECK(client.ask(inbound("192.0.2.5", "x@mx.partner.example", "b@example.net")) == "DUNNO");
    CHECK(client.ask(outbound("u@example.com", "u@example.com")) == "DUNNO");
    auto trusted = inbound("127.0.0.1", "app@example.com", "someone@example.org");
    CHECK(client.ask(trusted) == "DUNNO");
    CHECK(client.ask(inbound("192.0.2.5", "x@other.example", "b@example.net"))
              .rfind("DEFER_IF_PERMIT", 0) == 0);
}

TEST_CASE("Redis down: fail modes, answered within the timeout, recovery by itself",
          "[policyd][redis-down]") {
    RedisServer redis;
    PolicydProcess open_daemon(config_for(redis, "[greylist]\ndelay = 1\n"));
    PolicydProcess closed_daemon(config_for(redis, "[policyd]\nfail_mode = closed\n"));
    PolicydProcess mixed_daemon(config_for(redis, "[greylist]\nfail_mode = closed\n"));
    PolicyClient open_client(open_daemon.port()), closed_client(closed_daemon.port()),
        mixed_client(mixed_daemon.port());
    auto mail = inbound("192.0.2.9", "a@x.example", "b@example.net");
    REQUIRE(open_client.ask(mail).rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0);

    redis.stop();
    auto started = std::chrono::steady_clock::now();
    CHECK(open_client.ask(mail) == "DUNNO");
    CHECK(closed_client.ask(mail) == "DEFER_IF_PERMIT 4.3.0 Policy service unavailable");
    CHECK(mixed_client.ask(mail) == "DEFER_IF_PERMIT 4.3.0 Policy service unavailable");
    // blocked lists fail open in the mixed daemon but greylisting is closed: still deferred
    CHECK(std::chrono::steady_clock::now() - started < 3s);
    CHECK(open_daemon.log().find("reason=lists-unavailable") == std::string::npos);
    CHECK(open_daemon.log().find("reason=greylist-unavailable") != std::string::npos);

    redis.start();  // same port, empty: greylisting starts over once the client reconnects
    CHECK(wait_until([&] { return open_client.ask(mail).rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0; },
                     10s));
    CHECK(wait_until([&] { return closed_client.ask(mail).rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0; },
                     10s));
}

TEST_CASE("Redis that does not answer: the request is answered per fail_mode in time",
          "[policyd][redis-down]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient client(policyd.port());
    auto mail = inbound("192.0.2.9", "a@x.example", "b@example.net");
    REQUIRE(client.ask(mail).rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0);
    kill(redis.pid(), SIGSTOP);  // alive but silent, like a Redis stuck in a fork
    auto started = std::chrono::steady_clock::now();
    auto reply = client.ask(mail);
    auto took = std::chrono::steady_clock::now() - started;
    kill(redis.pid(), SIGCONT);
    CHECK(reply == "DUNNO");
    CHECK(took < 1500ms);  // timeout_ms = 200 per step
    CHECK(wait_until([&] { return client.ask(mail).rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0; }, 10s));
}

TEST_CASE("lists are answered from memory, and every edit still counts on the next request",
          "[policyd][cache][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "[greylist]\nenabled = no\n"));
    PolicyClient client(policyd.port());
    auto mail = inbound("203.0.113.9", "a@shop.example", "bob@example.net");
    REQUIRE(
        wait_until([&] { return policyd.log().find("list cache on") != std::string::npos; }, 5s));
    CHECK(client.ask(mail) == "DUNNO");  // loads the sets once
    auto loads = redis.info_field("commandstats", "cmdstat_smembers");
    auto pages = redis.info_field("commandstats", "cmdstat_sscan");
    CHECK_FALSE(pages.empty());  // the sets were read
    for (int i = 0; i < 20; ++i)
        CHECK(client.ask(mail) == "DUNNO");
    CHECK(redis.info_field("commandstats", "cmdstat_smembers") == loads);
    CHECK(redis.info_field("commandstats", "cmdstat_sscan") == pages);
    CHECK(redis.info_field("commandstats", "cmdstat_smismember").empty());
    for (int i = 0; i < 20; ++i) {
        sadd(redis, "pw:block:domain", "shop.example");
        CHECK(client.ask(mail).rfind("REJECT 5.7.1 Sender email", 0) == 0);
        redis.run({"SREM", "pw:block:domain", "shop.example"});
        CHECK(client.ask(mail) == "DUNNO");
    }
}
