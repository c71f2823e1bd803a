// spf_test.cpp — policyd's SPF step against a real DNS server on loopback: SPF-domain triplets
// for sender pools (SPEC §4), the hand-off of SPF-passing mail to the milter (S2), and DNS
// trouble that must never turn into a reject.
#include <catch2/catch.hpp>

#include <memory>
#include <thread>
#include <vector>

#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::string zone =
    "pool.example TXT \"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all\"\n"
    "mx.pool.example A 192.0.2.10\n"
    "mx.pool.example TXT \"v=spf1 a -all\"\n"
    "slow.example TIMEOUT\n"
    "plusall.example TXT \"v=spf1 +all\"\n";

std::string config_for(RedisServer& redis, DnsServer& dns, const std::string& extra) {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\n[dns]\nnameservers = " + dns.nameserver() + "\ntimeout_ms = 300\n" + extra;
}

}  // namespace

TEST_CASE("SPF pass: the authenticated domain is the client, so a pool's retry passes",
          "[policyd][spf]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(
        redis, dns, "[greylist]\ndelay = 1\ntrust_authenticated = no\nauto_allow_clients = 0\n"));
    PolicyClient client(policyd.port());

    auto first = client.ask(inbound("192.0.2.10", "news@pool.example", "bob@example.net"));
    CHECK(first.rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    std::this_thread::sleep_for(1100ms);
    // the retry comes from another address of the pool, in another /24
    CHECK(client.ask(inbound("198.51.100.20", "news@pool.example", "bob@example.net"))
              .rfind("PREPEND X-Greylist:", 0) == 0);
    CHECK(
        redis.run({"EXISTS", "pw:grey:{pool.example}:news@pool.example:bob@example.net"}).integer ==
        1);
    CHECK(policyd.log().find("spf=pass spf_domain=pool.example") != std::string::npos);

    // a client SPF does not authorise is greylisted by its network, and not rejected here:
    // SPF failures are the milter's (DMARC) business
    CHECK(client.ask(inbound("203.0.113.5", "news@pool.example", "bob@example.net"))
              .rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    CHECK(redis.run({"EXISTS", "pw:grey:{203.0.113.0/24}:news@pool.example:bob@example.net"})
              .integer == 1);
}

// A domain may authorize every address (+all): passes under its name say nothing about the
// clients, and an allow earned by it would apply from everywhere.
TEST_CASE("SPF pass: an SPF-domain identity never earns auto-allow", "[policyd][spf]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(
        redis, dns, "[greylist]\ndelay = 1\ntrust_authenticated = no\nauto_allow_clients = 2\n"));
    PolicyClient client(policyd.port());
    auto mail = [](int i) {
        return inbound("198.18." + std::to_string(i) + ".1",
                       "u" + std::to_string(i) + "@plusall.example",
                       "r" + std::to_string(i) + "@example.net");
    };
    for (int i = 0; i < 4; ++i)
        CHECK(client.ask(mail(i)).rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    std::this_thread::sleep_for(1100ms);
    for (int i = 0; i < 4; ++i)
        CHECK(client.ask(mail(i)).rfind("PREPEND X-Greylist:", 0) == 0);
    CHECK(client.ask(mail(9)).rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    // Even a count written for it is not read: only networks are auto-allowed.
    redis.run({"SADD", "pw:awl-domains:{plusall.example}", "a.example", "b.example"});
    CHECK(client.ask(mail(10)).rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    CHECK(policyd.log().find("reason=greylist-client") == std::string::npos);
}

TEST_CASE("SPF pass with trust_authenticated: handed to the milter, not deferred at RCPT",
          "[policyd][spf]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(redis, dns, "[greylist]\ndelay = 60\n"));
    PolicyClient client(policyd.port());
    CHECK(client.ask(inbound("198.51.100.7", "news@pool.example", "bob@example.net")) == "DUNNO");
    CHECK(policyd.log().find("reason=spf-handoff") != std::string::npos);
    CHECK(redis.run({"KEYS", "pw:grey:*"}).elements.empty());

    // the null sender is checked with its HELO name (RFC 7208 §2.4)
    auto bounce = inbound("192.0.2.10", "", "bob@example.net");
    bounce["helo_name"] = "mx.pool.example";
    CHECK(client.ask(bounce) == "DUNNO");
    CHECK(policyd.log().find("spf_domain=mx.pool.example") != std::string::npos);
    bounce["client_address"] = "203.0.113.99";
    CHECK(client.ask(bounce).rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
}

TEST_CASE("DNS that does not answer: temperror, greylisted by network, never rejected",
          "[policyd][spf]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(redis, dns, "[greylist]\ndelay = 60\n"));
    PolicyClient client(policyd.port());
    auto started = std::chrono::steady_clock::now();
    CHECK(client.ask(inbound("192.0.2.10", "someone@slow.example", "bob@example.net"))
              .rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(policyd.log().find("spf=temperror") != std::string::npos);
}

TEST_CASE("SPF: while one slow domain's checks fill the pool, other senders are answered fast",
          "[policyd][spf]") {
    // ten mx terms whose answers come 250 ms late, each within timeout_ms: 2.5 s a check, and
    // names of each client's own (%{i}), so no answer cached for one check serves the next
    std::string record = "v=spf1";
    for (int i = 0; i < 10; ++i)
        record += " mx:m" + std::to_string(i) + ".%{i}.late.example";
    RedisServer redis;
    DnsServer dns(zone + "stall.example TXT \"" + record + " -all\"\n" +
                  "*.late.example DELAY 250\n"
                  "*.late.example MX 10 mail.late.example\n"
                  "*.late.example A 192.0.2.200\n");
    // config_for() ends in [dns]; a short deadline keeps the test short
    PolicydProcess policyd(
        config_for(redis, dns, "spf_deadline_ms = 2000\n[greylist]\ndelay = 60\n"));
    // more checks at once than policyd has SPF threads (8), each from another client
    std::vector<std::unique_ptr<PolicyClient>> stallers;
    for (int i = 0; i < 16; ++i) {
        stallers.push_back(std::make_unique<PolicyClient>(policyd.port()));
        stallers.back()->send_raw(format_request(
            inbound("203.0.113." + std::to_string(i + 1), "x@stall.example", "bob@example.net")));
    }
    std::this_thread::sleep_for(100ms);  // the slow checks are under way
    PolicyClient client(policyd.port());
    auto started = std::chrono::steady_clock::now();
    CHECK(client.ask(inbound("192.0.2.10", "news@pool.example", "bob@example.net")) == "DUNNO");
    CHECK(std::chrono::steady_clock::now() - started < 600ms);  // 2 × timeout_ms
    CHECK(policyd.log().find("spf=pass spf_domain=pool.example") != std::string::npos);

    // the slow domain's senders are answered too, by the deadline, and never rejected
    for (auto& staller : stallers)
        CHECK(staller->read_reply(10s).rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - started < 3s);
    CHECK(policyd.log().find("spf=temperror") != std::string::npos);
}
