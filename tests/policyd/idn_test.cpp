// idn_test.cpp — postwarden-policyd with internationalized domains, against a real
// redis-server: the lists hold A-labels (as `postwarden list` stores them) and every spelling a
// client uses for the sender's or recipient's domain meets them, both while the list cache
// answers from memory and when it asks Redis.
#include <catch2/catch.hpp>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;

namespace {

std::string config_for(RedisServer& redis) {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\ntimeout_ms = 200\n[dns]\nnameservers = 127.0.0.1:" + std::to_string(free_port()) +
           "\ntimeout_ms = 200\n[greylist]\nenabled = no\n";
}

const std::string blocked_sender =
    "REJECT 5.7.1 Sender email or domain is blacklisted from sending through this relay";
const std::string blocked_tld =
    "REJECT 5.7.1 Your domain's TLD is blacklisted from sending through this relay";

}  // namespace

TEST_CASE("IDN lists: U-label, A-label and mixed-case senders meet A-label entries",
          "[policyd][idna]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient client(policyd.port());
    redis.run({"SADD", "pw:block:domain", "xn--bcher-kva.example"});
    redis.run({"SADD", "pw:block:sender", "jörg@xn--mnchen-3ya.example"});
    redis.run({"SADD", "pw:block:tld", "xn--p1ai"});
    for (int round = 0; round < 2; ++round) {  // the second from the list cache
        for (auto sender : {"x@bücher.example", "x@BÜCHER.example", "x@xn--bcher-kva.example",
                            "x@XN--BCHER-KVA.example", "x@mail.Bücher.example",
                            "jörg@MÜNCHEN.example", "JöRG@xn--mnchen-3ya.example"}) {
            INFO(sender << "\n" << policyd.log());
            CHECK(client.ask(inbound("203.0.113.9", sender, "bob@example.net")) == blocked_sender);
        }
        CHECK(client.ask(inbound("203.0.113.9", "x@shop.рф", "bob@example.net")) == blocked_tld);
        CHECK(client.ask(inbound("203.0.113.9", "x@SHOP.РФ", "bob@example.net")) == blocked_tld);
        CHECK(client.ask(inbound("203.0.113.9", "x@bucher.example", "bob@example.net")) == "DUNNO");
    }
    redis.run({"SADD", "pw:allow:tld", "xn--80aairv.xn--p1ai"});
    CHECK(client.ask(inbound("203.0.113.9", "x@Магаз.рф", "bob@example.net")) == "DUNNO");
    CHECK(policyd.log().find("list=pw:block:domain xn--bcher-kva.example") != std::string::npos);
}

TEST_CASE("IDN lists: per-recipient-domain lists are named with the A-label domain",
          "[policyd][idna]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient client(policyd.port());
    redis.run({"SADD", "pw:block:sender:xn--bcher-kva.example", "spam@example.org"});
    for (int round = 0; round < 2; ++round) {
        for (auto rcpt :
             {"bob@bücher.example", "bob@BÜCHER.example", "bob@xn--bcher-kva.example"}) {
            INFO(rcpt);
            CHECK(client.ask(inbound("203.0.113.9", "spam@example.org", rcpt)) == blocked_sender);
        }
        CHECK(client.ask(inbound("203.0.113.9", "spam@example.org", "bob@example.net")) == "DUNNO");
    }
}
